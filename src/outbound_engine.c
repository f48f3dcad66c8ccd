/*-------------------------------------------------------------------------
 *
 * outbound_engine.c
 *	  The engine of outbound batches: every target of a spec to its result,
 *	  through one transport (engine_internal.h): HTTP (http_engine.c,
 *	  libcurl) or SSH (ssh_engine.c, libssh2), driven from a WaitEventSet.
 *
 * The engine runs in a job worker (kind_outbound.c) or, for
 * run_outbound, in the calling backend; the same loop serves both.  The
 * wait set holds the process latch (signals: cancel, SIGTERM), postmaster
 * death, and the sockets the transport asks for (engine_socket_set); the
 * transport's next timer bounds the wait.  The set is rebuilt whenever
 * the sockets change (PostgreSQL 15 has no way to remove an event from a
 * set).  A worker waits with no transaction and no snapshot open; the
 * hooks (OutboundHooks) open their own short transactions to store
 * results.
 *
 * Limits, each checked before a target starts: the job's concurrency; per
 * host, host_concurrency (fifo: a target waiting to send a follow-up,
 * a poll, keeps its place, so no more than host_concurrency are started
 * and not done) or one target at a time in input order
 * (pinned, whose connection the transport keeps and reuses); the
 * cluster-wide batch_ops.outbound_concurrency, a counter in shared memory
 * (job_shmem.c), whose share this process holds is given back on ERROR
 * and at exit; and token buckets per rate_key (rate_per_sec, from the
 * driver).  A target not started by options.expires_at is "expired".
 *
 * Retries: after connect errors, timeouts and a retryable reply (the
 * driver's verdict: HTTP 408, 429, 502, 503, 504), up to options.retries
 * times, with exponential backoff and full jitter, at least Retry-After.
 * A change is re-sent after a reply (or a timeout once connected) only
 * with retry_unsafe, or when the driver says the device refused it with
 * nothing done (out.not_applied); the transport says which of its errors
 * may be retried.  Before a change is sent the first time, the
 * mark_started hook makes that durable (batched per round).
 *
 * Everything the transport holds is released on ERROR (PG_FINALLY) as
 * well as at the end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "engine_internal.h"
#include "job_shmem.h"
#include "outbound_policy.h"

int			batch_ops_outbound_concurrency = 256;

#define BACKOFF_BASE_MS		250
#define BACKOFF_MAX_MS		30000
#define MAX_WAIT_MS			1000
#define GLOBAL_POLL_MS		20
#define MAX_TRACKED_PORTS	16

typedef struct Bucket
{
	char		key[256];
	double		tokens;
	TimestampTz last;
} Bucket;

/* ---------------------------------------------------------------------
 * Sockets (called from library callbacks: never throw)
 * ---------------------------------------------------------------------
 */

bool
engine_socket_set(Engine *e, pgsocket fd, uint32 events)
{
	int			i;

	for (i = 0; i < e->nsock; i++)
		if (e->sock_fd[i] == fd)
			break;
	if (events == 0)
	{
		if (i < e->nsock)
		{
			e->sock_fd[i] = e->sock_fd[e->nsock - 1];
			e->sock_events[i] = e->sock_events[e->nsock - 1];
			e->nsock--;
			e->sock_dirty = true;
		}
		return true;
	}
	if (i == e->nsock)
	{
		if (e->nsock == e->sockcap)
		{
			int			cap = Max(16, e->sockcap * 2);
			pgsocket   *f = realloc(e->sock_fd, sizeof(pgsocket) * cap);
			uint32	   *w;

			if (f == NULL)
				return false;
			e->sock_fd = f;
			w = realloc(e->sock_events, sizeof(uint32) * cap);
			if (w == NULL)
				return false;
			e->sock_events = w;
			e->sockcap = cap;
		}
		e->nsock++;
	}
	else if (e->sock_events[i] == events)
		return true;
	e->sock_fd[i] = fd;
	e->sock_events[i] = events;
	e->sock_dirty = true;
	return true;
}

/* ---------------------------------------------------------------------
 * Setup and teardown
 * ---------------------------------------------------------------------
 */

/* Give back everything the transport and the wait set hold; safe twice. */
static void
engine_cleanup(Engine *e)
{
	int			i;

	for (i = 0; e->et && i < e->n; i++)
		if (e->et[i].x)
			e->tr->release(e, &e->et[i]);
	e->tr->cleanup(e);
	if (e->wes)
	{
		FreeWaitEventSet(e->wes);
		e->wes = NULL;
	}
	if (e->global_held > 0)
	{
		outbound_inflight_release(e->global_held);
		e->global_held = 0;
	}
	free(e->sock_fd);
	free(e->sock_events);
	e->sock_fd = NULL;
	e->sock_events = NULL;
	e->nsock = e->sockcap = 0;
}

static Host *
host_get(Engine *e, const char *name)
{
	char		key[256];
	bool		found;
	Host	   *h;

	memset(key, 0, sizeof(key));
	strlcpy(key, name, sizeof(key));
	h = hash_search(e->hosts, key, HASH_ENTER, &found);
	if (!found)
	{
		h->running = 0;
		h->polling = 0;
		h->busy = false;
		h->order = NULL;
		h->norder = 0;
		h->pos = 0;
		h->nports = 0;
		h->ports = NULL;
	}
	return h;
}

/*
 * The count of a host's targets on a port not sent yet: +1 at setup, -1
 * at the first send.  Returns the entry (NULL: not tracked, the host has
 * more than MAX_TRACKED_PORTS ports).
 */
static HostPort *
host_port(Engine *e, Host *h, int port, bool add)
{
	int			i;

	for (i = 0; i < h->nports; i++)
		if (h->ports[i].port == port)
			return &h->ports[i];
	if (!add || h->nports < 0)
		return NULL;
	if (h->nports == MAX_TRACKED_PORTS)
	{
		h->nports = -1;			/* stop tracking: never forbid reuse */
		return NULL;
	}
	if (h->ports == NULL)
		h->ports = MemoryContextAlloc(e->cxt, sizeof(HostPort));
	else if ((h->nports & (h->nports - 1)) == 0)
		h->ports = repalloc(h->ports, sizeof(HostPort) * h->nports * 2);
	h->ports[h->nports].port = port;
	h->ports[h->nports].left = 0;
	return &h->ports[h->nports++];
}

static void
engine_setup(Engine *e)
{
	HASHCTL		ctl;
	int			i;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = 256;
	ctl.entrysize = sizeof(Host);
	ctl.hcxt = e->cxt;
	e->hosts = hash_create("batch_ops outbound hosts", 256, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ctl.entrysize = sizeof(Bucket);
	e->buckets = hash_create("batch_ops outbound rates", 16, &ctl,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	e->et = palloc0(sizeof(ETarget) * e->n);
	for (i = 0; i < e->n; i++)
	{
		ETarget    *et = &e->et[i];

		et->t = &e->spec->targets[i];
		et->host = host_get(e, et->t->hostname);
		et->state = T_PENDING;
		if (e->hooks->skip && e->hooks->skip(e->hooks->arg, i))
		{
			et->state = T_DONE;
			e->ndone++;
			continue;
		}
		{
			HostPort   *hp = host_port(e, et->host, et->t->port, true);

			if (hp)
				hp->left++;
		}
		if (e->spec->opts.pinned)
		{
			Host	   *h = et->host;

			if (h->order == NULL)
				h->order = palloc(sizeof(int) * 8);
			else if ((h->norder & (h->norder - 1)) == 0 && h->norder >= 8)
				h->order = repalloc(h->order, sizeof(int) * h->norder * 2);
			h->order[h->norder++] = i;
		}
	}
	e->tr->setup(e);
	e->sock_dirty = true;
}

/* ---------------------------------------------------------------------
 * Results
 * ---------------------------------------------------------------------
 */

static void
target_finish(Engine *e, ETarget *et, bool success, long status,
			  Jsonb *output, const char *error, char *message)
{
	OutboundResult r;
	TimestampTz now = GetCurrentTimestamp();

	memset(&r, 0, sizeof(r));
	r.index = et->t->index;
	r.hostname = et->t->hostname;
	r.success = success;
	r.status_code = status;
	r.output = output;
	r.error = success ? NULL : error;
	r.message = message;
	r.attempts = et->attempts;
	r.started_at = et->started_at;
	r.finished_at = now;
	r.execution_time = et->started_at ?
		(double) (now - et->started_at) / 1000000.0 : 0.0;
	e->hooks->result(e->hooks->arg, &r);

	if (et->x)
		e->tr->release(e, et);
	if (et->cxt)
	{
		MemoryContextDelete(et->cxt);
		et->cxt = NULL;
	}
	et->req = NULL;
	et->state = T_DONE;
	e->ndone++;
	if (e->spec->opts.pinned)
	{
		Host	   *h = et->host;

		h->busy = false;
		while (h->pos < h->norder && e->et[h->order[h->pos]].state == T_DONE)
			h->pos++;
	}
}

/* ---------------------------------------------------------------------
 * Starting targets
 * ---------------------------------------------------------------------
 */

/* Take a token of the request's rate bucket, or say how long to wait. */
static bool
bucket_take(Engine *e, OutboundRequest *req, TimestampTz now, long *wait_ms)
{
	char		key[256];
	bool		found;
	Bucket	   *b;
	double		rate = req->rate_per_sec;

	if (req->rate_key == NULL || rate <= 0)
		return true;
	memset(key, 0, sizeof(key));
	strlcpy(key, req->rate_key, sizeof(key));
	b = hash_search(e->buckets, key, HASH_ENTER, &found);
	/*
	 * No burst: requests go out evenly spaced, so that the server's own
	 * bucket (which may also allow a burst) never runs dry from clock
	 * skew between the two.
	 */
	if (!found)
	{
		b->tokens = 1.0;
		b->last = now;
	}
	b->tokens = Min(1.0, b->tokens + rate * (double) (now - b->last) / 1000000.0);
	b->last = now;
	if (b->tokens >= 1.0)
	{
		b->tokens -= 1.0;
		return true;
	}
	*wait_ms = (long) ceil((1.0 - b->tokens) / rate * 1000.0);
	return false;
}

/* Build the target's request (once; a follow-up replaces it). */
static void
target_build(Engine *e, ETarget *et)
{
	MemoryContext old;

	if (et->req)
		return;
	if (et->cxt == NULL)
		et->cxt = AllocSetContextCreate(e->cxt, "batch_ops outbound target",
										ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(et->cxt);
	et->req = palloc0(sizeof(OutboundRequest));
	e->spec->driver->build_request(et->t, et->req);
	MemoryContextSwitchTo(old);
}

/* Hand the request to the transport. */
static void
target_send(Engine *e, ETarget *et)
{
	e->tr->send(e, et);
	et->attempts++;
	if (et->started_at == 0)
		et->started_at = GetCurrentTimestamp();
	et->state = T_RUNNING;
	e->running++;
	et->host->running++;
	if (et->polling)
	{
		et->polling = false;
		et->host->polling--;
	}
}

/* Is et the last target of its host and port to be sent? */
bool
engine_last_for_port(Engine *e, ETarget *et)
{
	HostPort   *hp;

	if (et->attempts != 0)
		return false;
	hp = host_port(e, et->host, et->t->port, false);
	return hp && --hp->left <= 0;
}

/*
 * Start what may start now; returns how long until something else may
 * (-1: only a completion will free a slot).
 */
static long
start_ready(Engine *e)
{
	TimestampTz now = GetCurrentTimestamp();
	const OutboundOptions *o = &e->spec->opts;
	int		   *batch = palloc(sizeof(int) * Max(1, Min(o->concurrency, e->n)));
	int			nbatch = 0;
	int		   *marks = palloc(sizeof(int) * Max(1, Min(o->concurrency, e->n)));
	int			nmarks = 0;
	long		wake = -1;
	int			i;

	while (e->cursor < e->n && e->et[e->cursor].state == T_DONE)
		e->cursor++;
	for (i = e->cursor; i < e->n && e->running + nbatch < o->concurrency; i++)
	{
		ETarget    *et = &e->et[i];
		long		w;
		const char *why;

		if (et->state != T_PENDING)
			continue;
		if (et->started_at == 0 && o->expires_at != 0 && now > o->expires_at)
		{
			target_finish(e, et, false, 0, NULL, "expired",
						  pstrdup("the target had not started when the job's ttl ran out"));
			continue;
		}
		if (et->not_before > now)
		{
			w = (long) ((et->not_before - now + 999) / 1000);
			wake = wake < 0 ? w : Min(wake, w);
			continue;
		}
		if (o->pinned)
		{
			Host	   *h = et->host;

			if ((h->busy && et->started_at == 0) ||
				h->pos >= h->norder || h->order[h->pos] != i)
				continue;
		}
		else if (!et->polling &&
				 et->host->running + et->host->polling >= o->host_concurrency)
			continue;

		if (e->spec->credential_error && e->spec->credential_error[i])
		{
			target_finish(e, et, false, 0, NULL, "credential_error",
						  pstrdup(e->spec->credential_error[i]));
			continue;
		}
		target_build(e, et);
		why = et->req->url ? outbound_url_refusal(et->req->url) :
			outbound_host_refusal(et->t->hostname);
		if (why)
		{
			target_finish(e, et, false, 0, NULL, "not_allowed", pstrdup(why));
			continue;
		}
		if (!bucket_take(e, et->req, now, &w))
		{
			et->not_before = now + w * INT64CONST(1000);
			wake = wake < 0 ? w : Min(wake, w);
			continue;
		}
		if (e->global_held - e->running - nbatch <= 0)
		{
			if (outbound_inflight_acquire(1, batch_ops_outbound_concurrency) == 0)
			{
				wake = wake < 0 ? GLOBAL_POLL_MS : Min(wake, GLOBAL_POLL_MS);
				break;
			}
			e->global_held++;
		}
		if (o->pinned)
			et->host->busy = true;
		else
			et->host->running++;	/* held until sent, see below */
		if (et->req->is_change && !et->marked)
			marks[nmarks++] = i;
		batch[nbatch++] = i;
	}
	if (nmarks > 0 && e->hooks->mark_started)
		e->hooks->mark_started(e->hooks->arg, marks, nmarks);
	for (i = 0; i < nbatch; i++)
	{
		ETarget    *et = &e->et[batch[i]];

		et->marked = et->marked || et->req->is_change;
		if (!o->pinned)
			et->host->running--;
		target_send(e, et);
	}
	pfree(batch);
	pfree(marks);
	return wake;
}

/* ---------------------------------------------------------------------
 * Completions
 * ---------------------------------------------------------------------
 */

/* Backoff before attempt et->attempts + 1: exponential, full jitter. */
static void
schedule_retry(ETarget *et, int retry_after_ms)
{
	long		cap = Min((long) BACKOFF_BASE_MS << Min(et->attempts - 1, 10),
						  BACKOFF_MAX_MS);
	long		delay = cap / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (cap / 2));

	if (retry_after_ms >= 0)
		delay = Max(delay, retry_after_ms);
	et->not_before = GetCurrentTimestamp() + delay * INT64CONST(1000);
	et->state = T_PENDING;
}

/* The attempt in flight ended: its slots are free. */
static void
attempt_ended(Engine *e, ETarget *et)
{
	e->running--;
	if (!e->spec->opts.pinned)
		et->host->running--;
}

void
engine_failed(Engine *e, ETarget *et, const char *error, char *message,
			  bool retry)
{
	attempt_ended(e, et);
	if (retry && et->attempts <= e->spec->opts.retries)
	{
		e->tr->release(e, et);
		schedule_retry(et, -1);
		return;
	}
	target_finish(e, et, false, 0, NULL, error, message);
}

void
engine_answered(Engine *e, ETarget *et, OutboundOutcome *out, long status,
				int retry_after_ms)
{
	const OutboundOptions *o = &e->spec->opts;

	attempt_ended(e, et);
	if (out->next)
	{
		e->tr->release(e, et);
		et->req = out->next;
		if (!et->polling)
		{
			et->polling = true;
			et->host->polling++;
		}
		et->not_before = GetCurrentTimestamp() + (int64) Max(out->next_delay_ms, 0) * 1000;
		et->state = T_PENDING;
		return;
	}
	if (!out->success && out->retryable && et->attempts <= o->retries &&
		(!et->req->is_change || o->retry_unsafe || out->not_applied))
	{
		e->tr->release(e, et);
		schedule_retry(et, retry_after_ms);
		return;
	}
	target_finish(e, et, out->success, status, out->output,
				  out->success ? NULL : (out->error ? out->error : "http_error"),
				  out->message);
}

/* ---------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------
 */

static void
rebuild_wait_set(Engine *e)
{
	int			i;

	if (!e->sock_dirty && e->wes)
		return;
	if (e->wes)
		FreeWaitEventSet(e->wes);
	e->wes = NULL;
	e->wes = CreateWaitEventSet(e->cxt, e->nsock + 2);
	AddWaitEventToSet(e->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(e->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < e->nsock; i++)
		AddWaitEventToSet(e->wes, e->sock_events[i], e->sock_fd[i], NULL, NULL);
	e->sock_dirty = false;
}

/* The shortest of two waits (-1: none). */
static long
min_wait(long a, long b)
{
	if (b < 0)
		return a;
	return a < 0 ? b : Min(a, b);
}

/*
 * The loop.  What a round allocates in passing (the policy's checks, error
 * messages, the hooks' scratch) goes into loop_cxt, reset every round;
 * what outlives a round is allocated in e->cxt or a target's context
 * explicitly.
 */
static void
engine_loop(Engine *e)
{
	WaitEvent  *events = NULL;
	int			nevents_alloc = 0;
	MemoryContext loop_cxt = AllocSetContextCreate(e->cxt, "batch_ops outbound round",
												   ALLOCSET_DEFAULT_SIZES);

	while (e->ndone < e->n)
	{
		long		timeout;
		int			nev;
		int			i;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (e->hooks->tick)
			e->hooks->tick(e->hooks->arg);
		timeout = start_ready(e);
		if (e->ndone >= e->n)
			break;
		timeout = min_wait(timeout, e->tr->next_timeout(e));
		if (e->hooks->tick_wait)
			timeout = min_wait(timeout, e->hooks->tick_wait(e->hooks->arg));
		timeout = timeout < 0 ? MAX_WAIT_MS : Min(timeout, MAX_WAIT_MS);

		rebuild_wait_set(e);
		if (nevents_alloc < e->nsock + 2)
		{
			nevents_alloc = e->nsock + 2;
			events = events ? repalloc(events, sizeof(WaitEvent) * nevents_alloc) :
				MemoryContextAlloc(e->cxt, sizeof(WaitEvent) * nevents_alloc);
		}
		nev = WaitEventSetWait(e->wes, timeout, events, nevents_alloc,
							   PG_WAIT_EXTENSION);
		for (i = 0; i < nev; i++)
		{
			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				continue;
			}
			if (events[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
				e->tr->socket_ready(e, events[i].fd, events[i].events);
		}
		e->tr->progress(e);
		/* keep only the global slots still in use */
		if (e->global_held > e->running)
		{
			outbound_inflight_release(e->global_held - e->running);
			e->global_held = e->running;
		}
	}
}

/*
 * Run every target of the spec (those hooks->skip names excepted) to its
 * result.  Throws what the hooks throw (a cancel), after releasing
 * everything the transport holds.
 */
void
outbound_engine_run(OutboundSpec *spec, const OutboundHooks *hooks)
{
	Engine	   *e = palloc0(sizeof(Engine));

	e->spec = spec;
	e->hooks = hooks;
	e->n = spec->ntargets;
#ifdef WITH_SSH
	e->tr = spec->driver->transport == OUTBOUND_TRANSPORT_SSH ?
		&ssh_transport : &http_transport;
#else
	if (spec->driver->transport == OUTBOUND_TRANSPORT_SSH)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("driver \"%s\" is not supported by this build", spec->driver_name),
				 errhint("batch_ops was built without libssh2.")));
	e->tr = &http_transport;
#endif
	e->cxt = AllocSetContextCreate(CurrentMemoryContext, "batch_ops outbound engine",
								   ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		MemoryContext old = MemoryContextSwitchTo(e->cxt);

		engine_setup(e);
		engine_loop(e);
		MemoryContextSwitchTo(old);
	}
	PG_FINALLY();
	{
		engine_cleanup(e);
	}
	PG_END_TRY();
	MemoryContextDelete(e->cxt);
	pfree(e);
}

/* ---------------------------------------------------------------------
 * The cluster-wide count (job_shmem.h, JobsShared.outbound_inflight)
 * ---------------------------------------------------------------------
 */

/*
 * The cluster-wide count of outbound requests in flight
 * (batch_ops.outbound_concurrency).  What this process holds is given back
 * at exit; a crash resets shared memory anyway.  Without the preload
 * (run_outbound in a plain backend) there is no shared count: the limit
 * is then per call.
 */
static int	inflight_held = 0;
static bool inflight_exit_registered = false;

void
outbound_inflight_release(int n)
{
	if (jobs_shared == NULL || n <= 0)
		return;
	SpinLockAcquire(&jobs_shared->mutex);
	jobs_shared->outbound_inflight = Max(jobs_shared->outbound_inflight - n, 0);
	SpinLockRelease(&jobs_shared->mutex);
	inflight_held = Max(inflight_held - n, 0);
}

static void
inflight_at_exit(int code, Datum arg)
{
	outbound_inflight_release(inflight_held);
}

/* Take up to want slots under limit; returns how many were taken. */
int
outbound_inflight_acquire(int want, int limit)
{
	int			got;

	if (jobs_shared == NULL)
		return want;
	if (!inflight_exit_registered)
	{
		before_shmem_exit(inflight_at_exit, (Datum) 0);
		inflight_exit_registered = true;
	}
	SpinLockAcquire(&jobs_shared->mutex);
	got = Max(Min(want, limit - jobs_shared->outbound_inflight), 0);
	jobs_shared->outbound_inflight += got;
	SpinLockRelease(&jobs_shared->mutex);
	inflight_held += got;
	return got;
}

/* Settings, from _PG_init. */
void
outbound_engine_init(void)
{
	DefineCustomIntVariable("batch_ops.outbound_concurrency",
							"Maximum number of outbound requests in flight, cluster-wide.",
							NULL,
							&batch_ops_outbound_concurrency,
							256, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
#ifdef WITH_SSH
	ssh_transport.init();
#endif
}
