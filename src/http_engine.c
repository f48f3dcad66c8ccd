/*-------------------------------------------------------------------------
 *
 * http_engine.c
 *	  The HTTP engine of outbound batches: every target's request through
 *	  one libcurl multi handle, driven from a WaitEventSet.
 *
 * The engine runs in a job worker (kind_outbound.c) or, for
 * run_outbound, in the calling backend; the same loop serves both.  The
 * wait set holds the process latch (signals: cancel, SIGTERM), postmaster
 * death, and the sockets libcurl asks for through CURLMOPT_SOCKETFUNCTION;
 * libcurl's timer (CURLMOPT_TIMERFUNCTION) is the wait's timeout.  The
 * set is rebuilt whenever libcurl changes its sockets (PostgreSQL 15 has
 * no way to remove an event from a set).  A worker waits with no
 * transaction and no snapshot open; the hooks (OutboundHooks) open their
 * own short transactions to store results.
 *
 * Limits, each checked before a target starts: the job's concurrency; per
 * host, host_concurrency (fifo: a target waiting to send a follow-up,
 * a poll, keeps its place, so no more than host_concurrency are started
 * and not done) or one target at a time in input order
 * (pinned, whose connection libcurl keeps alive and reuses); the
 * cluster-wide batch_ops.outbound_concurrency, a counter in shared memory
 * (job_shmem.c), whose share this process holds is given back on ERROR
 * and at exit; and token buckets per rate_key (rate_per_sec, from the
 * driver).  A target not started by options.expires_at is "expired".
 *
 * Retries: after connect errors, timeouts and a retryable status (the
 * driver's verdict: 408, 429, 502, 503, 504), up to options.retries times,
 * with exponential backoff and full jitter, at least Retry-After.  A
 * change is re-sent after a response (or a timeout once connected) only
 * with retry_unsafe, or when the driver says the device refused it with
 * nothing done (out.not_applied).  Before a change is sent the first time, the
 * mark_started hook makes that durable (batched per round).
 *
 * libcurl's callbacks never throw: they use malloc, not palloc, and
 * record what they saw for the loop to act on.  Everything libcurl holds
 * is released on ERROR (PG_CATCH) as well as at the end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <curl/curl.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "job_shmem.h"
#include "outbound.h"
#include "outbound_policy.h"

int			batch_ops_outbound_concurrency = 256;

#define BACKOFF_BASE_MS		250
#define BACKOFF_MAX_MS		30000
#define MAX_WAIT_MS			1000
#define GLOBAL_POLL_MS		20

typedef enum
{
	T_PENDING,					/* not started, or waiting to retry */
	T_RUNNING,
	T_DONE
} TState;

typedef struct Host
{
	char		name[256];		/* hash key */
	int			running;		/* in flight (fifo) */
	int			polling;		/* between a reply and its follow-up (fifo) */
	bool		busy;			/* pinned: a target of the host is not done */
	int		   *order;			/* pinned: the host's targets, in order */
	int			norder;
	int			pos;			/* pinned: next in order */
	int			nports;			/* ports[]: targets not yet sent, per port */
	struct HostPort *ports;		/* NULL: untracked (too many ports) */
} Host;

/* A host's port and how many of its targets have not been sent yet. */
typedef struct HostPort
{
	int			port;
	int			left;
} HostPort;

#define MAX_TRACKED_PORTS	16

typedef struct Bucket
{
	char		key[256];
	double		tokens;
	TimestampTz last;
} Bucket;

/* A transfer in flight: only as many as requests in flight. */
typedef struct Xfer
{
	CURL	   *easy;
	struct curl_slist *hdrs;
	char	   *buf;			/* malloc'd */
	size_t		len;
	size_t		cap;
	bool		too_large;
	int64		max_output;
	int			retry_after_ms;
	OutboundSocketCheck check;
	char		errbuf[CURL_ERROR_SIZE];
	struct Xfer *next_free;
} Xfer;

/* A target's state: kept small, there may be 100000 of them. */
typedef struct ETarget
{
	OutboundTarget *t;
	Host	   *host;
	TState		state;
	int			attempts;
	TimestampTz not_before;
	TimestampTz started_at;
	MemoryContext cxt;
	OutboundRequest *req;
	bool		marked;			/* its started mark is durable */
	Xfer	   *x;				/* the transfer in flight, or NULL */
	bool		polling;		/* waiting to send a follow-up */
} ETarget;

typedef struct Engine
{
	OutboundSpec *spec;
	const OutboundHooks *hooks;
	MemoryContext cxt;
	ETarget    *et;
	int			n;
	int			ndone;
	int			cursor;			/* targets before it are done */
	int			running;
	int			global_held;
	HTAB	   *hosts;
	HTAB	   *buckets;
	CURLM	   *multi;
	TimestampTz curl_deadline;	/* 0: no timer */
	/* libcurl's sockets */
	int			nsock;
	int			sockcap;
	curl_socket_t *sock_fd;		/* malloc'd */
	int		   *sock_what;		/* malloc'd */
	bool		sock_dirty;
	WaitEventSet *wes;
	Xfer	   *free_xfers;
} Engine;

/* ---------------------------------------------------------------------
 * libcurl's callbacks (never throw)
 * ---------------------------------------------------------------------
 */

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	Engine	   *e = userp;
	int			i;

	for (i = 0; i < e->nsock; i++)
		if (e->sock_fd[i] == s)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < e->nsock)
		{
			e->sock_fd[i] = e->sock_fd[e->nsock - 1];
			e->sock_what[i] = e->sock_what[e->nsock - 1];
			e->nsock--;
		}
	}
	else
	{
		if (i == e->nsock)
		{
			if (e->nsock == e->sockcap)
			{
				int			cap = Max(16, e->sockcap * 2);
				curl_socket_t *fd = realloc(e->sock_fd, sizeof(curl_socket_t) * cap);
				int		   *w;

				if (fd == NULL)
					return -1;
				e->sock_fd = fd;
				w = realloc(e->sock_what, sizeof(int) * cap);
				if (w == NULL)
					return -1;
				e->sock_what = w;
				e->sockcap = cap;
			}
			e->nsock++;
		}
		e->sock_fd[i] = s;
		e->sock_what[i] = what;
	}
	e->sock_dirty = true;
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	Engine	   *e = userp;

	if (timeout_ms < 0)
		e->curl_deadline = 0;
	else
		e->curl_deadline = GetCurrentTimestamp() + timeout_ms * INT64CONST(1000);
	return 0;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	ETarget    *et = userdata;
	size_t		n = size * nmemb;

	if (et->x->len + n > (size_t) et->x->max_output)
	{
		et->x->too_large = true;
		return 0;
	}
	if (et->x->len + n > (size_t) et->x->cap)
	{
		size_t		cap = Max(et->x->cap * 2, et->x->len + n + 1);
		char	   *b;

		b = realloc(et->x->buf, cap + 1);
		if (b == NULL)
			return 0;
		et->x->buf = b;
		et->x->cap = cap;
	}
	memcpy(et->x->buf + et->x->len, ptr, n);
	et->x->len += n;
	return n;
}

/* Retry-After: seconds or an HTTP date. */
static size_t
header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	ETarget    *et = userdata;
	size_t		n = size * nitems;

	if (n > 12 && pg_strncasecmp(buffer, "retry-after:", 12) == 0)
	{
		char		val[64];
		size_t		l = Min(n - 12, sizeof(val) - 1);
		char	   *p = val;
		char	   *end;
		long		secs;

		memcpy(val, buffer + 12, l);
		val[l] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		secs = strtol(p, &end, 10);
		if (end != p && secs >= 0)
			et->x->retry_after_ms = (int) Min(secs, 3600) * 1000;
		else
		{
			time_t		t = curl_getdate(p, NULL);

			if (t > 0)
				et->x->retry_after_ms = (int) Min(Max((long) (t - time(NULL)), 0), 3600) * 1000;
		}
	}
	return n;
}

/* ---------------------------------------------------------------------
 * Setup and teardown
 * ---------------------------------------------------------------------
 */

static Engine *current_engine = NULL;

static void
engine_release_transfer(Engine *e, ETarget *et)
{
	Xfer	   *x = et->x;

	if (x == NULL)
		return;
	if (x->easy)
	{
		curl_multi_remove_handle(e->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	if (x->hdrs)
	{
		curl_slist_free_all(x->hdrs);
		x->hdrs = NULL;
	}
	if (x->buf)
	{
		free(x->buf);
		x->buf = NULL;
	}
	x->len = x->cap = 0;
	x->next_free = e->free_xfers;
	e->free_xfers = x;
	et->x = NULL;
}

/* Give back everything libcurl and the wait set hold; safe to call twice. */
static void
engine_cleanup(Engine *e)
{
	int			i;

	for (i = 0; i < e->n; i++)
		engine_release_transfer(e, &e->et[i]);
	if (e->multi)
	{
		curl_multi_cleanup(e->multi);
		e->multi = NULL;
	}
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
	free(e->sock_what);
	e->sock_fd = NULL;
	e->sock_what = NULL;
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

	outbound_curl_init();
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
	e->multi = curl_multi_init();
	if (e->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS,
					  (long) Max(e->spec->opts.concurrency * 2, 16));
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

	engine_release_transfer(e, et);
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

/* Hand the request to libcurl. */
static void
target_send(Engine *e, ETarget *et)
{
	OutboundRequest *req = et->req;
	CURL	   *easy = curl_easy_init();
	ListCell   *lc;

	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	if (e->free_xfers)
	{
		et->x = e->free_xfers;
		e->free_xfers = et->x->next_free;
	}
	else
		et->x = MemoryContextAllocZero(e->cxt, sizeof(Xfer));
	et->x->easy = easy;
	et->x->len = 0;
	et->x->too_large = false;
	et->x->max_output = e->spec->opts.max_output_bytes;
	et->x->retry_after_ms = -1;
	et->x->errbuf[0] = '\0';
	memset(&et->x->check, 0, sizeof(et->x->check));
	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "batch_ops/" BATCH_OPS_VERSION);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, et->x->errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, et);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, et);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, et);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) et->t->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) et->t->connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
					 (curl_off_t) e->spec->opts.max_output_bytes);
	foreach(lc, req->headers)
	{
		struct curl_slist *l = curl_slist_append(et->x->hdrs, (char *) lfirst(lc));

		if (l == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		et->x->hdrs = l;
	}
	if (et->x->hdrs)
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, et->x->hdrs);
	if (strcmp(req->method, "GET") == 0)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->body)
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
	}
	/*
	 * libcurl 7.88 prunes its DNS cache by walking every entry at each
	 * name lookup, IP literals included: with thousands of devices that is
	 * quadratic (most of the worker's time).  Timeout 0 keeps only the
	 * entries in use; a kept-alive connection needs no lookup anyway.
	 */
	curl_easy_setopt(easy, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	/*
	 * The last target for a host and port: nothing would reuse its
	 * connection, so close it at once rather than park it in the multi's
	 * connection cache (and have libcurl close the oldest there later).
	 */
	if (et->attempts == 0)
	{
		HostPort   *hp = host_port(e, et->host, et->t->port, false);

		if (hp && --hp->left <= 0)
			curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
	}
	outbound_policy_apply(easy, et->t->hostname, &et->x->check);
	if (curl_multi_add_handle(e->multi, easy) != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not add a transfer to the libcurl multi handle")));
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
		why = outbound_url_refusal(et->req->url);
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

static const char *
curl_error_name(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return "dns_error";
		case CURLE_OPERATION_TIMEDOUT:
			return "timeout";
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_USE_SSL_FAILED:
			return "tls_error";
		case CURLE_FILESIZE_EXCEEDED:
			return "response_too_large";
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
			return "not_allowed";
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_HTTP2:
		case CURLE_BAD_CONTENT_ENCODING:
			return "protocol_error";
		default:
			return "connect_error";
	}
}

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

/* A transfer ended with a libcurl error. */
static void
transfer_failed(Engine *e, ETarget *et, CURLcode rc)
{
	const OutboundOptions *o = &e->spec->opts;
	const char *name = curl_error_name(rc);
	char	   *msg;
	bool		retry = false;

	if (et->x->check.refused)
	{
		target_finish(e, et, false, 0, NULL, "not_allowed",
					  psprintf("address %s is not allowed by batch_ops.outbound_networks",
							   et->x->check.address));
		return;
	}
	if (et->x->too_large || rc == CURLE_FILESIZE_EXCEEDED ||
		(rc == CURLE_WRITE_ERROR && et->x->len >= (size_t) o->max_output_bytes))
	{
		target_finish(e, et, false, 0, NULL, "response_too_large",
					  psprintf("the response exceeds max_output_bytes (" INT64_FORMAT ")",
							   o->max_output_bytes));
		return;
	}
	msg = pstrdup(et->x->errbuf[0] ? et->x->errbuf : curl_easy_strerror(rc));
	if (rc == CURLE_COULDNT_CONNECT)
		retry = true;
	else if (rc == CURLE_OPERATION_TIMEDOUT)
	{
		curl_off_t	connected = 0;

		curl_easy_getinfo(et->x->easy, CURLINFO_CONNECT_TIME_T, &connected);
		/* a change may have reached the device once the connection was up */
		retry = !et->req->is_change || o->retry_unsafe || connected == 0;
	}
	if (retry && et->attempts <= o->retries)
	{
		engine_release_transfer(e, et);
		schedule_retry(et, -1);
		return;
	}
	target_finish(e, et, false, 0, NULL, name, msg);
}

/* A transfer ended with an HTTP response: the driver's verdict. */
static void
transfer_answered(Engine *e, ETarget *et)
{
	const OutboundOptions *o = &e->spec->opts;
	OutboundResponse resp;
	OutboundOutcome out;
	char	   *ctype = NULL;
	MemoryContext old;

	if (et->x->len > (size_t) o->max_output_bytes)
	{
		target_finish(e, et, false, 0, NULL, "response_too_large",
					  psprintf("the response exceeds max_output_bytes (" INT64_FORMAT ")",
							   o->max_output_bytes));
		return;
	}
	old = MemoryContextSwitchTo(et->cxt);
	memset(&resp, 0, sizeof(resp));
	memset(&out, 0, sizeof(out));
	curl_easy_getinfo(et->x->easy, CURLINFO_RESPONSE_CODE, &resp.status_code);
	curl_easy_getinfo(et->x->easy, CURLINFO_CONTENT_TYPE, &ctype);
	resp.content_type = ctype ? pstrdup(ctype) : NULL;
	resp.body_len = et->x->len;
	resp.body = et->x->buf ? pnstrdup(et->x->buf, et->x->len) : pstrdup("");
	resp.retry_after_ms = et->x->retry_after_ms;
	e->spec->driver->parse_response(et->t, et->req, &resp, &out);
	MemoryContextSwitchTo(old);

	if (out.next)
	{
		engine_release_transfer(e, et);
		et->req = out.next;
		if (!et->polling)
		{
			et->polling = true;
			et->host->polling++;
		}
		et->not_before = GetCurrentTimestamp() + (int64) Max(out.next_delay_ms, 0) * 1000;
		et->state = T_PENDING;
		return;
	}
	if (!out.success && out.retryable && et->attempts <= o->retries &&
		(!et->req->is_change || o->retry_unsafe || out.not_applied))
	{
		engine_release_transfer(e, et);
		schedule_retry(et, resp.retry_after_ms);
		return;
	}
	target_finish(e, et, out.success, resp.status_code, out.output,
				  out.success ? NULL : (out.error ? out.error : "http_error"),
				  out.message);
}

static void
process_done(Engine *e)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(e->multi, &left)) != NULL)
	{
		ETarget    *et = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &et);
		e->running--;
		if (!e->spec->opts.pinned)
			et->host->running--;
		if (msg->data.result == CURLE_OK)
			transfer_answered(e, et);
		else
			transfer_failed(e, et, msg->data.result);
	}
	/* keep only the global slots still in use */
	if (e->global_held > e->running)
	{
		outbound_inflight_release(e->global_held - e->running);
		e->global_held = e->running;
	}
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
	{
		uint32		ev = 0;

		if (e->sock_what[i] & CURL_POLL_IN)
			ev |= WL_SOCKET_READABLE;
		if (e->sock_what[i] & CURL_POLL_OUT)
			ev |= WL_SOCKET_WRITEABLE;
		if (ev)
			AddWaitEventToSet(e->wes, ev, e->sock_fd[i], NULL, NULL);
	}
	e->sock_dirty = false;
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
		long		w;
		int			nev;
		int			i;
		int			still;
		bool		acted = false;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (e->hooks->tick)
			e->hooks->tick(e->hooks->arg);
		timeout = start_ready(e);
		if (e->ndone >= e->n)
			break;
		if (e->curl_deadline != 0)
		{
			w = (long) Max((e->curl_deadline - GetCurrentTimestamp() + 999) / 1000, 0);
			timeout = timeout < 0 ? w : Min(timeout, w);
		}
		if (e->hooks->tick_wait)
		{
			w = e->hooks->tick_wait(e->hooks->arg);
			if (w >= 0)
				timeout = timeout < 0 ? w : Min(timeout, w);
		}
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
			int			mask = 0;

			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				continue;
			}
			if (events[i].events & WL_SOCKET_READABLE)
				mask |= CURL_CSELECT_IN;
			if (events[i].events & WL_SOCKET_WRITEABLE)
				mask |= CURL_CSELECT_OUT;
			if (mask)
			{
				curl_multi_socket_action(e->multi, events[i].fd, mask, &still);
				acted = true;
			}
		}
		if (e->curl_deadline != 0 && GetCurrentTimestamp() >= e->curl_deadline)
		{
			e->curl_deadline = 0;
			curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &still);
			acted = true;
		}
		if (acted || e->running > 0)
			process_done(e);
	}
}

/*
 * Run every target of the spec (those hooks->skip names excepted) to its
 * result.  Throws what the hooks throw (a cancel), after releasing
 * everything libcurl holds.
 */
void
http_engine_run(OutboundSpec *spec, const OutboundHooks *hooks)
{
	Engine	   *e = palloc0(sizeof(Engine));

	e->spec = spec;
	e->hooks = hooks;
	e->n = spec->ntargets;
	e->cxt = AllocSetContextCreate(CurrentMemoryContext, "batch_ops outbound engine",
								   ALLOCSET_DEFAULT_SIZES);
	current_engine = e;
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
		current_engine = NULL;
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
http_engine_init(void)
{
	DefineCustomIntVariable("batch_ops.outbound_concurrency",
							"Maximum number of outbound requests in flight, cluster-wide.",
							NULL,
							&batch_ops_outbound_concurrency,
							256, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
}
