/*-------------------------------------------------------------------------
 *
 * kind_outbound.c
 *	  The "outbound" kind (submit_outbound), run_outbound, and
 *	  outbound_results: one request per target through the HTTP engine
 *	  (meraki action batches: one per pack of actions, meraki_pack.c, with
 *	  the results still one per action).
 *
 * Worker model.  An outbound job is a job like the others: one job per
 * worker process (job_worker.c), so that nothing of one role's job (its
 * settings, its credentials in memory) can reach another's; its worker
 * drives all of the job's connections through one libcurl multi handle
 * (outbound_engine.c), so one process serves thousands of devices.  Slow
 * devices must not take every worker from imports and batches:
 * batch_ops.max_outbound_workers (default max_workers - 1, at least 1)
 * caps how many workers run outbound jobs at once, and the claim leaves
 * an outbound job queued at the cap (JobKind.max_workers).  The requests
 * in flight are capped cluster-wide by batch_ops.outbound_concurrency.
 *
 * Results.  Each target's result is a row of batch_ops.outbound_result,
 * written as the tables' owner in the job's chunk transactions: at most
 * every RESULT_BATCH (1,000) results or RESULT_DELAY_MS after the first
 * one waiting, whichever comes first: fast results take about one XID
 * per 1,000 (the target is <= 1 per 500, and the job's own transactions
 * count too), slow ones at most four chunks a second, and the first
 * result is visible within 250 ms.  A failed target is also a job error
 * (job_errors(), the summary's "failed").  The summary counts total,
 * successful and failed; job() shows the first 100 targets
 * (job_store.c).
 *
 * Crash safety.  Before a change (config, POST/PUT/PATCH/DELETE) is sent
 * the first time, a row without finished_at marks it started, committed
 * with the other changes starting in the same round (mark_started).  A
 * resumed job reports each such row 'interrupted' and never sends it
 * again; read-only targets without a row run again.  A cancel stops the
 * engine (the latch wakes it at once); the targets not done are
 * 'cancelled', changes in flight 'interrupted'.
 *
 * Secrets.  Inline passwords are sealed (credential_seal) into
 * batch_ops.outbound_secret at submit, never stored in the job's options,
 * and deleted with the job's final chunk; credential names are resolved
 * in the worker as the submitter (credential_fetch), each in a
 * subtransaction: one that cannot be used (dropped since the submit, the
 * key changed) fails its targets, "credential_error", not the job.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "credential.h"
#include "idempotency.h"
#include "job_kind.h"
#include "jobs_api.h"
#include "outbound.h"
#include "outbound_policy.h"
#include "ratelimit.h"
#include "sql_quote.h"

#define RESULT_BATCH		1000
#define RESULT_DELAY_MS		250

int			batch_ops_max_outbound_workers = -1;

PG_FUNCTION_INFO_V1(batch_ops_submit_outbound);
PG_FUNCTION_INFO_V1(batch_ops_run_outbound);
PG_FUNCTION_INFO_V1(batch_ops_outbound_results);

/* ---------------------------------------------------------------------
 * Submit
 * ---------------------------------------------------------------------
 */

/* The spec check_submit parsed, for submit_outbound to seal its secrets. */
static OutboundSpec *submitted_spec = NULL;

/* Every credential the spec names must be usable by role. */
static void
check_credentials(OutboundSpec *spec, Oid role)
{
	int			i;

	for (i = 0; i < spec->ntargets; i++)
		if (spec->credential[i])
			(void) credential_fetch(spec->credential[i], role);
}

/* options.expires_at of the stored spec: now + ttl (options exist: ttl came from them). */
static Jsonb *
stored_with_deadline(Jsonb *stored, int ttl)
{
	Datum		path[2];
	ArrayType  *patharr;
	char	   *when;

	if (ttl <= 0)
		return stored;
	path[0] = CStringGetTextDatum("options");
	path[1] = CStringGetTextDatum("expires_at");
	patharr = construct_array(path, 2, TEXTOID, -1, false, TYPALIGN_INT);
	when = psprintf(INT64_FORMAT, GetCurrentTimestamp() + (int64) ttl * USECS_PER_SEC);
	return DatumGetJsonbP(DirectFunctionCall4(jsonb_set, JsonbPGetDatum(stored),
											  PointerGetDatum(patharr),
											  DirectFunctionCall1(jsonb_in,
																  CStringGetDatum(when)),
											  BoolGetDatum(true)));
}

static void
outbound_check_submit(JobSubmit *s)
{
	OutboundSpec *spec;

	outbound_check_sender(GetUserId());
	spec = outbound_spec_parse(s->options, false, false);
	outbound_spec_check_urls(spec);
	check_credentials(spec, GetUserId());
	if (spec->secrets != NIL && !credential_key_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("inline passwords in an outbound job need a credential key file"),
				 errdetail("A job stores its spec; inline secrets are stored encrypted, under the key named by batch_ops.credential_key_file, which is not set."),
				 errhint("Store the secret with batch_ops.credential_set and name it in \"credential\", or use run_outbound, which stores nothing.")));
	/* targets count as items for the role's rate limit */
	ratelimit_consume(spec->ntargets);
	s->options = stored_with_deadline(spec->stored, spec->opts.ttl);
	s->items_total = spec->ntargets;
	submitted_spec = spec;
}

static SpiStmt secret_insert_stmt = {
	"INSERT INTO batch_ops.outbound_secret (job_id, index, sealed) VALUES ($1, $2, $3)",
	SPI_OK_INSERT, 3, {INT8OID, INT4OID, BYTEAOID}
};

/* Seal the spec's inline passwords for the job's worker. */
static void
store_secrets(int64 job_id, OutboundSpec *spec)
{
	RoleSwitch	sw;
	ListCell   *lc;

	if (spec->secrets == NIL)
		return;
	job_tables_begin(&sw);
	foreach(lc, spec->secrets)
	{
		OutboundInlineSecret *sec = lfirst(lc);
		Datum		values[3];

		values[0] = Int64GetDatum(job_id);
		values[1] = Int32GetDatum(sec->index);
		values[2] = PointerGetDatum(credential_seal(sec->password, strlen(sec->password)));
		spi_exec(&secret_insert_stmt, values, NULL);
	}
	job_tables_end(&sw);
}

/*
 * What an idempotency key of submit_outbound stands for: the spec without
 * its inline passwords (no hash of a secret is stored), under a name no
 * batch function uses (the key store knows batch operations on tables;
 * InvalidOid as the table keeps the two apart).
 */
static Jsonb *
idempotency_request(Jsonb *spec)
{
	OutboundSpec *parsed = outbound_spec_parse(spec, false, false);

	return outbound_jsonb_wrap("submit_outbound", parsed->stored);
}

/* submit_outbound(spec, idempotency_key): an "outbound" job. */
Datum
batch_ops_submit_outbound(PG_FUNCTION_ARGS)
{
	JobSubmit	s;
	int64		id;
	char	   *key = NULL;
	Jsonb	   *stored;

	jobs_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("spec must not be null")));
	if (!PG_ARGISNULL(1))
	{
		key = text_to_cstring(PG_GETARG_TEXT_PP(1));
		stored = idempotency_claim(key, BATCH_CREATE, InvalidOid,
								   idempotency_request(PG_GETARG_JSONB_P(0)), false);
		if (stored)
			PG_RETURN_INT64(job_jsonb_int(stored, "job_id", 0));
	}
	memset(&s, 0, sizeof(s));
	s.options = PG_GETARG_JSONB_P(0);
	submitted_spec = NULL;
	id = jobs_submit("outbound", &s);
	store_secrets(id, submitted_spec);
	submitted_spec = NULL;
	if (key)
		idempotency_store(key, DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																  CStringGetDatum(psprintf("{\"job_id\": " INT64_FORMAT "}", id)))));
	PG_RETURN_INT64(id);
}

/* ---------------------------------------------------------------------
 * The job
 * ---------------------------------------------------------------------
 */

typedef struct OutboundRun
{
	JobContext *ctx;
	OutboundSpec *spec;
	MemoryContext buf_cxt;
	bool	   *done;			/* result committed (or to be skipped) */
	bool	   *marked;			/* started mark committed, no result yet */
	int			ndone;
	int64		successful;
	/* results waiting for their chunk */
	int			nbuf;
	int			bufalloc;
	OutboundResult *buf;
	TimestampTz first_buffered;
	bool		committing;
} OutboundRun;

static SpiStmt results_stmt = {
	"INSERT INTO batch_ops.outbound_result AS o (job_id, index, hostname, success,"
	"  status_code, output, error, message, attempts, execution_time, started_at,"
	"  finished_at)"
	" SELECT $1, r.i, r.h, r.s, r.c, r.o, r.e, r.m, r.a, r.x, r.st, r.f"
	" FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.int4[]),"
	"   pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.bool[]),"
	"   pg_catalog.unnest($5::pg_catalog.int4[]), pg_catalog.unnest($6::pg_catalog.jsonb[]),"
	"   pg_catalog.unnest($7::pg_catalog.text[]), pg_catalog.unnest($8::pg_catalog.text[]),"
	"   pg_catalog.unnest($9::pg_catalog.int4[]), pg_catalog.unnest($10::pg_catalog.float8[]),"
	"   pg_catalog.unnest($11::pg_catalog.timestamptz[]),"
	"   pg_catalog.unnest($12::pg_catalog.timestamptz[])) AS r(i, h, s, c, o, e, m, a, x, st, f)"
	" ON CONFLICT (job_id, index) DO UPDATE SET success = excluded.success,"
	"  status_code = excluded.status_code, output = excluded.output,"
	"  error = excluded.error, message = excluded.message,"
	"  attempts = excluded.attempts, execution_time = excluded.execution_time,"
	"  started_at = coalesce(o.started_at, excluded.started_at),"
	"  finished_at = excluded.finished_at",
	SPI_OK_INSERT, 12,
	{INT8OID, INT4ARRAYOID, TEXTARRAYOID, BOOLARRAYOID, INT4ARRAYOID, JSONBARRAYOID,
	 TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, FLOAT8ARRAYOID, TIMESTAMPTZARRAYOID,
	TIMESTAMPTZARRAYOID}
};

static SpiStmt mark_stmt = {
	"INSERT INTO batch_ops.outbound_result (job_id, index, hostname, started_at)"
	" SELECT $1, i, h, pg_catalog.clock_timestamp()"
	" FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.int4[]),"
	"   pg_catalog.unnest($3::pg_catalog.text[])) AS r(i, h)"
	" ON CONFLICT (job_id, index) DO NOTHING",
	SPI_OK_INSERT, 3, {INT8OID, INT4ARRAYOID, TEXTARRAYOID}
};

static SpiStmt state_stmt = {
	"SELECT index, finished_at IS NOT NULL, success FROM batch_ops.outbound_result"
	" WHERE job_id" SQL_EQ "$1",
	SPI_OK_SELECT, 1, {INT8OID}
};

static SpiStmt interrupt_stmt = {
	"UPDATE batch_ops.outbound_result SET success = false, error = 'interrupted',"
	"  message = 'the job stopped while this change may have been sent; it is not sent again',"
	"  finished_at = pg_catalog.clock_timestamp()"
	" WHERE job_id" SQL_EQ "$1 AND finished_at IS NULL"
	" RETURNING index, hostname",
	SPI_OK_UPDATE_RETURNING, 1, {INT8OID}
};

static SpiStmt secret_read_stmt = {
	"SELECT index, sealed FROM batch_ops.outbound_secret WHERE job_id" SQL_EQ "$1",
	SPI_OK_SELECT, 1, {INT8OID}
};

static SpiStmt secret_erase_stmt = {
	"DELETE FROM batch_ops.outbound_secret WHERE job_id" SQL_EQ "$1",
	SPI_OK_DELETE, 1, {INT8OID}
};

/* An array of n Datums of type elemtype (nulls[i] marks NULL). */
static Datum
datum_array(Datum *d, bool *nulls, int n, Oid elemtype)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, elemtype,
											  typlen, typbyval, typalign));
}

/* Write the buffered results (and optionally the started marks) in the chunk. */
static void
write_results(OutboundRun *run)
{
	int			n = run->nbuf;
	Datum		values[12];
	Datum	   *cols[11];
	bool	   *nulls[11];
	static const Oid types[11] = {INT4OID, TEXTOID, BOOLOID, INT4OID, JSONBOID, TEXTOID,
	TEXTOID, INT4OID, FLOAT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	RoleSwitch	sw;
	int			c;
	int			i;

	if (n == 0)
		return;
	for (c = 0; c < 11; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}
	for (i = 0; i < n; i++)
	{
		OutboundResult *r = &run->buf[i];

		cols[0][i] = Int32GetDatum(r->index);
		cols[1][i] = CStringGetTextDatum(r->hostname);
		cols[2][i] = BoolGetDatum(r->success);
		cols[3][i] = Int32GetDatum((int32) r->status_code);
		nulls[3][i] = r->status_code == 0;
		cols[4][i] = r->output ? JsonbPGetDatum(r->output) : (Datum) 0;
		nulls[4][i] = r->output == NULL;
		cols[5][i] = r->error ? CStringGetTextDatum(r->error) : (Datum) 0;
		nulls[5][i] = r->error == NULL;
		cols[6][i] = r->message ? CStringGetTextDatum(r->message) : (Datum) 0;
		nulls[6][i] = r->message == NULL;
		cols[7][i] = Int32GetDatum(r->attempts);
		cols[8][i] = Float8GetDatum(r->execution_time);
		cols[9][i] = TimestampTzGetDatum(r->started_at);
		nulls[9][i] = r->started_at == 0;
		cols[10][i] = TimestampTzGetDatum(r->finished_at);
		if (!r->success)
			job_report_error(run->ctx, 0, r->index, r->error, r->message,
							 NULL, NULL, r->hostname, -1);
	}
	values[0] = Int64GetDatum(job_info(run->ctx)->id);
	for (c = 0; c < 11; c++)
		values[c + 1] = datum_array(cols[c], nulls[c], n, types[c]);
	job_tables_begin(&sw);
	spi_exec(&results_stmt, values, NULL);
	job_tables_end(&sw);
}

/* The summary numbers of the kind, after n more results. */
static void
set_summary(OutboundRun *run)
{
	job_summary_set(run->ctx, "total", run->spec->ntargets);
	job_summary_set(run->ctx, "successful", run->successful);
	job_summary_set(run->ctx, "items_total", run->spec->ntargets);
}

static int
run_progress(OutboundRun *run)
{
	return (int) Min(99, (100 * (int64) run->ndone) / Max(run->spec->ntargets, 1));
}

/*
 * Commit the buffered results (and marks) in one chunk; final_status ends
 * the job and erases its sealed secrets in the same transaction.
 */
static void
flush(OutboundRun *run, const int *marks, int nmarks, const char *final_status,
	  const char *error)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	JobCounts	delta;
	int			i;

	if (run->nbuf == 0 && nmarks == 0 && final_status == NULL)
		return;
	job_begin_chunk(run->ctx);
	old = MemoryContextSwitchTo(run->buf_cxt);
	write_results(run);
	if (nmarks > 0)
	{
		Datum		values[3];
		Datum	   *idx = palloc(sizeof(Datum) * nmarks);
		Datum	   *host = palloc(sizeof(Datum) * nmarks);
		RoleSwitch	sw;

		for (i = 0; i < nmarks; i++)
		{
			idx[i] = Int32GetDatum(marks[i]);
			host[i] = CStringGetTextDatum(run->spec->targets[marks[i]].hostname);
		}
		values[0] = Int64GetDatum(job_info(run->ctx)->id);
		values[1] = datum_array(idx, NULL, nmarks, INT4OID);
		values[2] = datum_array(host, NULL, nmarks, TEXTOID);
		job_tables_begin(&sw);
		spi_exec(&mark_stmt, values, NULL);
		job_tables_end(&sw);
	}
	if (final_status)
	{
		RoleSwitch	sw;
		Datum		values[1];

		values[0] = Int64GetDatum(job_info(run->ctx)->id);
		job_tables_begin(&sw);
		spi_exec(&secret_erase_stmt, values, NULL);
		job_tables_end(&sw);
	}
	for (i = 0; i < run->nbuf; i++)
	{
		run->done[run->buf[i].index] = true;
		run->marked[run->buf[i].index] = false;
		if (run->buf[i].success)
			run->successful++;
	}
	run->ndone += run->nbuf;
	for (i = 0; i < nmarks; i++)
		run->marked[marks[i]] = true;
	set_summary(run);
	memset(&delta, 0, sizeof(delta));
	delta.rows_done = run->nbuf;
	run->committing = true;
	MemoryContextSwitchTo(old);
	job_commit_chunk(run->ctx, NULL, final_status ? 100 : run_progress(run), &delta,
					 final_status, error);

	/*
	 * A chunk commits without waiting for its WAL (job_runtime.c), but a
	 * change's started mark must be durable before the change is sent:
	 * lost in a crash, the resumed job would send the change again.
	 */
	if (nmarks > 0)
		XLogFlush(GetXLogInsertRecPtr());
	/* the commit left us in TopMemoryContext: back to the engine's */
	MemoryContextSwitchTo(caller);
	run->committing = false;
	run->nbuf = 0;
	run->first_buffered = 0;
	MemoryContextReset(run->buf_cxt);
	run->buf = NULL;
	run->bufalloc = 0;
}

/* Hooks of the engine */

static bool
hook_skip(void *arg, int index)
{
	OutboundRun *run = arg;

	return run->done[index];
}

static void
hook_mark_started(void *arg, const int *indexes, int n)
{
	flush((OutboundRun *) arg, indexes, n, NULL, NULL);
}

static void
hook_result(void *arg, const OutboundResult *res)
{
	OutboundRun *run = arg;
	MemoryContext old = MemoryContextSwitchTo(run->buf_cxt);
	OutboundResult *r;

	if (run->nbuf == run->bufalloc)
	{
		run->bufalloc = Max(64, run->bufalloc * 2);
		run->buf = run->buf ? repalloc(run->buf, sizeof(OutboundResult) * run->bufalloc) :
			palloc(sizeof(OutboundResult) * run->bufalloc);
	}
	r = &run->buf[run->nbuf++];
	*r = *res;
	r->hostname = pstrdup(res->hostname);
	r->output = res->output ? DatumGetJsonbPCopy(JsonbPGetDatum(res->output)) : NULL;
	r->error = res->error ? pstrdup(res->error) : NULL;
	r->message = res->message ? pstrdup(res->message) : NULL;
	MemoryContextSwitchTo(old);
	if (run->first_buffered == 0)
		run->first_buffered = GetCurrentTimestamp();
	if (run->nbuf >= RESULT_BATCH)
		flush(run, NULL, 0, NULL, NULL);
}

static long
hook_tick_wait(void *arg)
{
	OutboundRun *run = arg;
	long		since;

	if (run->nbuf == 0)
		return -1;
	since = (long) ((GetCurrentTimestamp() - run->first_buffered) / 1000);
	return Max(RESULT_DELAY_MS - since, 0);
}

static void
hook_tick(void *arg)
{
	OutboundRun *run = arg;

	job_check_cancel(run->ctx);
	if (run->nbuf > 0 && hook_tick_wait(arg) == 0)
		flush(run, NULL, 0, NULL, NULL);
}

/*
 * The first chunk of a (resumed) job: its sealed secrets, the results
 * already committed, and the changes that a crash interrupted.
 */
static List *
load_state(OutboundRun *run, int64 job_id)
{
	RoleSwitch	sw;
	Datum		values[1];
	List	   *secrets = NIL;
	uint64		r;

	values[0] = Int64GetDatum(job_id);
	job_tables_begin(&sw);
	spi_exec(&secret_read_stmt, values, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int			index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 1, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r],
														   SPI_tuptable->tupdesc, 2, &isnull));
		OutboundInlineSecret *s;
		MemoryContext old = MemoryContextSwitchTo(run->buf_cxt->parent);
		size_t		len;

		s = palloc(sizeof(OutboundInlineSecret));
		s->index = index;
		s->password = credential_unseal(sealed, &len);
		secrets = lappend(secrets, s);
		MemoryContextSwitchTo(old);
	}
	spi_exec(&interrupt_stmt, values, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int			index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 1, &isnull));

		job_report_error(run->ctx, 0, index, "interrupted",
						 "the job stopped while this change may have been sent; it is not sent again",
						 NULL, NULL, SPI_getvalue(SPI_tuptable->vals[r],
												  SPI_tuptable->tupdesc, 2), -1);
	}
	spi_exec(&state_stmt, values, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int			index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 1, &isnull));
		bool		finished = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r],
														  SPI_tuptable->tupdesc, 2, &isnull));

		if (finished && index >= 0 && index < run->spec->ntargets && !run->done[index])
		{
			run->done[index] = true;
			run->ndone++;
		}
	}
	job_tables_end(&sw);
	return secrets;
}

/* After a cancel: every target not done is cancelled (a change in flight, interrupted). */
static void
finish_cancelled(OutboundRun *run)
{
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < run->spec->ntargets; i++)
	{
		OutboundResult r;
		int			j;
		bool		buffered = false;

		if (run->done[i])
			continue;
		for (j = 0; j < run->nbuf; j++)
			if (run->buf[j].index == i)
				buffered = true;
		if (buffered)
			continue;
		memset(&r, 0, sizeof(r));
		r.index = i;
		r.hostname = run->spec->targets[i].hostname;
		r.finished_at = now;
		if (run->marked[i])
		{
			r.error = "interrupted";
			r.message = "the job was cancelled while this change may have been sent";
		}
		else
		{
			r.error = "cancelled";
			r.message = "the job was cancelled before this target finished";
		}
		/* no flush at RESULT_BATCH here: one final chunk */
		{
			MemoryContext old = MemoryContextSwitchTo(run->buf_cxt);

			if (run->nbuf == run->bufalloc)
			{
				run->bufalloc = Max(64, run->bufalloc * 2);
				run->buf = run->buf ? repalloc(run->buf, sizeof(OutboundResult) * run->bufalloc) :
					palloc(sizeof(OutboundResult) * run->bufalloc);
			}
			run->buf[run->nbuf++] = r;
			MemoryContextSwitchTo(old);
		}
	}
	flush(run, NULL, 0, "cancelled",
		  psprintf("job " INT64_FORMAT " was cancelled", job_info(run->ctx)->id));
}

static void
outbound_run_job(JobContext *ctx)
{
	const JobInfo *job = job_info(ctx);
	MemoryContext job_cxt = CurrentMemoryContext;
	OutboundRun *run = palloc0(sizeof(OutboundRun));
	OutboundHooks hooks;
	OutboundHooks engine_hooks;
	OutboundSpec *engine_spec;
	List	   *secrets;

	run->ctx = ctx;
	run->buf_cxt = AllocSetContextCreate(job_cxt, "batch_ops outbound results",
										 ALLOCSET_DEFAULT_SIZES);

	/* the first chunk: sender check, spec, secrets, state after a crash */
	job_begin_chunk(ctx);
	MemoryContextSwitchTo(job_cxt);
	outbound_check_sender(job->role);
	run->spec = outbound_spec_parse(job->options, false, true);
	run->done = palloc0(sizeof(bool) * run->spec->ntargets);
	run->marked = palloc0(sizeof(bool) * run->spec->ntargets);
	run->successful = job_jsonb_int(job->summary, "successful", 0);
	secrets = load_state(run, job->id);
	outbound_spec_attach_secrets(run->spec, job->role, secrets, true);
	set_summary(run);
	MemoryContextSwitchTo(job_cxt);
	job_commit_chunk(ctx, NULL, run_progress(run), NULL, NULL, NULL);
	MemoryContextSwitchTo(job_cxt);

	memset(&hooks, 0, sizeof(hooks));
	hooks.arg = run;
	hooks.skip = hook_skip;
	hooks.mark_started = hook_mark_started;
	hooks.result = hook_result;
	hooks.tick = hook_tick;
	hooks.tick_wait = hook_tick_wait;
	/* meraki action batches: one engine target per batch */
	engine_spec = meraki_pack_spec(run->spec, &hooks, &engine_hooks);

	PG_TRY();
	{
		outbound_engine_run(engine_spec, &engine_hooks);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(job_cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		if (IsTransactionState())
			AbortCurrentTransaction();
		else if (run->committing)
		{
			/* the chunk committed, then the cancel was seen */
			run->nbuf = 0;
		}
		run->committing = false;
		MemoryContextSwitchTo(job_cxt);
		finish_cancelled(run);
		MemoryContextSwitchTo(job_cxt);
		return;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(job_cxt);
	flush(run, NULL, 0, "completed", NULL);
	MemoryContextSwitchTo(job_cxt);
}

/* batch_ops.max_outbound_workers, -1: max_workers - 1, at least 1 */
static int
outbound_max_workers(void)
{
	if (batch_ops_max_outbound_workers >= 1)
		return batch_ops_max_outbound_workers;
	return Max(batch_ops_max_workers - 1, 1);
}

static void
outbound_kind_init(void)
{
	outbound_spec_init();
	outbound_engine_init();
	DefineCustomIntVariable("batch_ops.max_outbound_workers",
							"Maximum number of job workers running outbound jobs at once.",
							"-1 means batch_ops.max_workers - 1, at least 1.",
							&batch_ops_max_outbound_workers,
							-1, -1, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
}

const JobKind outbound_job_kind = {
	.name = "outbound",
	.has_target = false,
	.check_submit = outbound_check_submit,
	.run = outbound_run_job,
	.init = outbound_kind_init,
	.max_workers = outbound_max_workers,
	/* inline secrets are erased when the job ends (outbound.h) */
	.can_resume = false,
	.resume_hint = "An outbound job's inline secrets are erased when it ends: submit the spec again.",
};

/* ---------------------------------------------------------------------
 * run_outbound
 * ---------------------------------------------------------------------
 */

typedef struct SyncRun
{
	MemoryContext cxt;
	OutboundResult *res;		/* by index */
	bool	   *have;
} SyncRun;

static void
sync_result(void *arg, const OutboundResult *res)
{
	SyncRun    *sr = arg;
	MemoryContext old = MemoryContextSwitchTo(sr->cxt);
	OutboundResult *r = &sr->res[res->index];

	*r = *res;
	r->hostname = pstrdup(res->hostname);
	r->output = res->output ? DatumGetJsonbPCopy(JsonbPGetDatum(res->output)) : NULL;
	r->error = res->error ? pstrdup(res->error) : NULL;
	r->message = res->message ? pstrdup(res->message) : NULL;
	sr->have[res->index] = true;
	MemoryContextSwitchTo(old);
}

/* One target's object of the answer. */
static void
append_result_json(StringInfo buf, const OutboundResult *r)
{
	appendStringInfo(buf, "{\"index\": %d, \"hostname\": ", r->index);
	escape_json(buf, r->hostname);
	appendStringInfo(buf, ", \"success\": %s", r->success ? "true" : "false");
	if (r->status_code)
		appendStringInfo(buf, ", \"status_code\": %ld", r->status_code);
	if (r->output)
	{
		appendStringInfoString(buf, ", \"output\": ");
		(void) JsonbToCString(buf, &r->output->root, VARSIZE(r->output));
	}
	if (r->error)
	{
		appendStringInfoString(buf, ", \"error\": ");
		escape_json(buf, r->error);
	}
	if (r->message)
	{
		appendStringInfoString(buf, ", \"message\": ");
		escape_json(buf, r->message);
	}
	appendStringInfo(buf, ", \"execution_time\": %.3f, \"attempts\": %d}",
					 r->execution_time, r->attempts);
}

/* run_outbound(spec): the batch now, in this backend; nothing is stored. */
Datum
batch_ops_run_outbound(PG_FUNCTION_ARGS)
{
	OutboundSpec *spec;
	OutboundHooks hooks;
	OutboundHooks engine_hooks;
	SyncRun		sr;
	StringInfoData buf;
	int			ok = 0;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("spec must not be null")));
	outbound_check_sender(GetUserId());
	spec = outbound_spec_parse(PG_GETARG_JSONB_P(0), true, false);
	outbound_spec_check_urls(spec);
	ratelimit_consume(spec->ntargets);
	outbound_spec_attach_secrets(spec, GetUserId(), spec->secrets, false);
	if (spec->opts.ttl > 0)
		spec->opts.expires_at = GetCurrentTimestamp() + (int64) spec->opts.ttl * USECS_PER_SEC;

	sr.cxt = CurrentMemoryContext;
	sr.res = palloc0(sizeof(OutboundResult) * spec->ntargets);
	sr.have = palloc0(sizeof(bool) * spec->ntargets);
	memset(&hooks, 0, sizeof(hooks));
	hooks.arg = &sr;
	hooks.result = sync_result;
	outbound_engine_run(meraki_pack_spec(spec, &hooks, &engine_hooks), &engine_hooks);

	for (i = 0; i < spec->ntargets; i++)
		if (sr.have[i] && sr.res[i].success)
			ok++;
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"success\": %s, \"summary\": {\"total\": %d, \"successful\": %d, \"failed\": %d}, \"results\": [",
					 ok == spec->ntargets ? "true" : "false", spec->ntargets, ok,
					 spec->ntargets - ok);
	for (i = 0; i < spec->ntargets; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		append_result_json(&buf, &sr.res[i]);
	}
	appendStringInfoString(&buf, "]}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* ---------------------------------------------------------------------
 * outbound_results
 * ---------------------------------------------------------------------
 */

static SpiStmt results_read_stmt = {
	"SELECT index, hostname, success, status_code, output, error, message, attempts,"
	"  execution_time, started_at, finished_at FROM batch_ops.outbound_result"
	" WHERE job_id" SQL_EQ "$1 ORDER BY index",
	SPI_OK_SELECT, 1, {INT8OID}
};

/* outbound_results(job_id): every target's result of one of the caller's jobs. */
Datum
batch_ops_outbound_results(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RoleSwitch	sw;
	Datum		values[1];
	uint64		r;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job_id must not be null")));
	/* another role's job "does not exist", as for job() */
	(void) job_store_job_json(PG_GETARG_INT64(0), NULL);
	InitMaterializedSRF(fcinfo, 0);
	values[0] = Int64GetDatum(PG_GETARG_INT64(0));
	job_tables_begin(&sw);
	spi_exec(&results_read_stmt, values, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		Datum		row[11];
		bool		nulls[11];
		int			c;

		for (c = 0; c < 11; c++)
			row[c] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
								   c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	job_tables_end(&sw);
	return (Datum) 0;
}
