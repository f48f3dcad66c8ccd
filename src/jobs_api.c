/*-------------------------------------------------------------------------
 *
 * jobs_api.c
 *	  The SQL API of jobs: submit_import, submit_batch, job, wait_job,
 *	  cancel_job, resume_job, job_errors, job_list (the view
 *	  batch_ops.jobs), purge.
 *
 * The functions are SECURITY INVOKER like every other batch_ops
 * function.  A submit names its kind; the kind's check_submit checks the
 * options and what the caller may do, as the caller, then the job row is
 * written as the tables' owner (job_store.c) and the launcher is woken
 * when the transaction commits (job_shmem.c).
 *
 * wait_job and snapshots: a C function called from a SELECT runs inside
 * the statement's snapshot, which the portal holds until the statement
 * ends; that snapshot is what pins the backend's xmin (and with it the
 * cluster's vacuum horizon).  wait_job polls job() with a fresh catalog
 * and transaction snapshot each time (READ COMMITTED), and between polls
 * it holds no snapshot of its own, but it cannot release the snapshot of
 * the statement that called it: so a wait of an hour holds the xmin
 * horizon for an hour.  PostgreSQL 17 made pg_wal_replay_wait a
 * procedure for the same reason (a CALL at top level runs without a
 * snapshot).  Keeping wait_job a function (the contract's signature),
 * the advice is: wait with short timeouts in a loop of the client (each
 * call its own statement), or LISTEN batch_ops_jobs, whose NOTIFY a
 * finished job sends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "idempotency.h"
#include "job_kind.h"
#include "jobs_api.h"
#include "launcher.h"

PG_FUNCTION_INFO_V1(batch_ops_submit_import);
PG_FUNCTION_INFO_V1(batch_ops_submit_batch);
PG_FUNCTION_INFO_V1(batch_ops_purge);
PG_FUNCTION_INFO_V1(batch_ops_job);
PG_FUNCTION_INFO_V1(batch_ops_wait_job);
PG_FUNCTION_INFO_V1(batch_ops_cancel_job);
PG_FUNCTION_INFO_V1(batch_ops_resume_job);
PG_FUNCTION_INFO_V1(batch_ops_job_errors);
PG_FUNCTION_INFO_V1(batch_ops_job_list);

/* _PG_init of the job runtime: settings, kinds, shared memory, launcher. */
void
jobs_init(void)
{
	job_store_init();
	launcher_init();
	job_kinds_init();
	job_shmem_init();
	/* the launcher, like the shared memory, needs the preload */
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
		launcher_register();
}

/* The message of a NULL argument of a STRICT-less function. */
void
arg_not_null(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/* An empty options object, for a NULL argument. */
static Jsonb *
empty_object(void)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}

/*
 * Queue a job of the named kind: its check, its row (and items), the
 * launcher's wake-up at commit.  Its summary starts with zero counters.
 */
int64
jobs_submit(const char *kind_name, JobSubmit *s)
{
	const JobKind *kind = job_kind_lookup(kind_name);
	char	   *summary;
	int64		id;

	if (kind == NULL)
		elog(ERROR, "job kind \"%s\" is not in this build", kind_name);
	jobs_require_preload();
	job_store_require_current();
	s->atomic = false;
	s->items_total = -1;
	kind->check_submit(s);

	if (s->items_total >= 0)
		summary = psprintf("{\"created\": 0, \"updated\": 0, \"deleted\": 0, \"failed\": 0,"
						   " \"items_total\": " INT64_FORMAT "}", s->items_total);
	else
		summary = "{\"created\": 0, \"updated\": 0, \"deleted\": 0, \"failed\": 0}";
	id = job_store_insert(kind->name, s->operation, s->target, s->source, s->options,
						  s->atomic,
						  DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															 CStringGetDatum(summary))));
	if (s->items)
		job_store_insert_items(id, s->items);
	jobs_wake_at_commit(id);
	return id;
}

/* submit_import(target, source, options): an "import" job. */
Datum
batch_ops_submit_import(PG_FUNCTION_ARGS)
{
	JobSubmit	s;

	jobs_require_preload();
	arg_not_null(fcinfo, 0, "target");
	arg_not_null(fcinfo, 1, "source");
	memset(&s, 0, sizeof(s));
	s.target = PG_GETARG_OID(0);
	s.source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	s.options = PG_ARGISNULL(2) ? empty_object() : PG_GETARG_JSONB_P(2);
	PG_RETURN_INT64(jobs_submit("import", &s));
}

/* submit_batch(operation, target, items, options): a "batch" job. */
Datum
batch_ops_submit_batch(PG_FUNCTION_ARGS)
{
	JobSubmit	s;

	jobs_require_preload();
	arg_not_null(fcinfo, 0, "operation");
	arg_not_null(fcinfo, 1, "target");
	arg_not_null(fcinfo, 2, "items");
	memset(&s, 0, sizeof(s));
	s.operation = text_to_cstring(PG_GETARG_TEXT_PP(0));
	s.target = PG_GETARG_OID(1);
	s.items = PG_GETARG_JSONB_P(2);
	s.options = PG_ARGISNULL(3) ? empty_object() : PG_GETARG_JSONB_P(3);
	PG_RETURN_INT64(jobs_submit("batch", &s));
}

/*
 * batch_ops.purge() RETURNS bigint
 *
 * Deletes the expired idempotency keys of every role, the finished jobs
 * past batch_ops.job_ttl of every role and what the kinds expire (action
 * batches: drafts past batch_ops.action_draft_ttl); returns how many.  Expired
 * keys are already ignored by the batch functions, so this only reclaims
 * space.  Not executable by PUBLIC.
 */
Datum
batch_ops_purge(PG_FUNCTION_ARGS)
{
	int64		n = idempotency_purge();

	n += job_kinds_purge();
	PG_RETURN_INT64(n + job_store_purge());
}

/* job(job_id): status, progress and results of one of the caller's jobs. */
Datum
batch_ops_job(PG_FUNCTION_ARGS)
{
	arg_not_null(fcinfo, 0, "job_id");
	PG_RETURN_JSONB_P(job_store_job_json(PG_GETARG_INT64(0), NULL));
}

/* Longer waits than this (a century) are waits without a deadline. */
#define WAIT_FOREVER_USECS (100.0 * DAYS_PER_YEAR * USECS_PER_DAY)

/*
 * When a wait of "timeout" from now ends: now for a zero or negative
 * timeout, DT_NOEND (no deadline) for none or one longer than a century,
 * so that '1000000 years' waits rather than overflowing a timestamp.
 */
static TimestampTz
wait_deadline(Interval *timeout)
{
	double		usecs;

	if (timeout == NULL)
		return DT_NOEND;
	usecs = (double) timeout->time +
		((double) timeout->month * DAYS_PER_MONTH + timeout->day) * USECS_PER_DAY;
	if (usecs >= WAIT_FOREVER_USECS)
		return DT_NOEND;
	return GetCurrentTimestamp() + (int64) Max(usecs, 0.0);
}

/*
 * Poll job() until the job has finished or the deadline has passed.  See
 * the file header for why the calling statement's snapshot stays held.
 */
Datum
batch_ops_wait_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	Interval   *timeout;
	TimestampTz deadline;
	long		sleep_ms = 5;
	Jsonb	   *result;
	bool		finished;

	arg_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	timeout = PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1);

	if (job_submitted_in_xact(job_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot wait for a job submitted in the same transaction"),
				 errdetail("A job starts when the transaction that submitted it commits."),
				 errhint("Commit before waiting for the job.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("wait_job cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("Its snapshot would never show the job's progress.")));

	deadline = wait_deadline(timeout);
	if (deadline == DT_NOEND)
		timeout = NULL;
	for (;;)
	{
		long		left;

		result = job_store_job_json(job_id, &finished);
		if (finished)
			break;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (timeout && left <= 0)
			break;
		/* hold no catalog snapshot of ours while sleeping */
		InvalidateCatalogSnapshot();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout ? Min(sleep_ms, left) : sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		sleep_ms = Min(sleep_ms * 2, 100);
	}
	PG_RETURN_JSONB_P(result);
}

/*
 * cancel_job(job_id): a queued job is cancelled now; a running one is
 * flagged and its worker signalled when this transaction commits.
 */
Datum
batch_ops_cancel_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	char	   *status;
	bool		result;

	arg_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);

	/* queued: cancelled at once; running: the worker stops at commit */
	status = job_store_cancel(job_id);
	result = strcmp(status, "queued") == 0 || strcmp(status, "running") == 0;
	if (result)
		jobs_cancel_at_commit(job_id);
	PG_RETURN_BOOL(result);
}

/*
 * resume_job(job_id): a failed job goes back to the queue from its last
 * checkpoint, as a crash leaves it, and runs again as its submitter; the
 * launcher is woken at commit, as for a submit.  A cancelled job stays
 * cancelled: the cancel was the user's decision.
 */
Datum
batch_ops_resume_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	char	   *status;
	char	   *kind;
	bool		atomic;

	arg_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	jobs_require_preload();

	status = job_store_resume_lock(job_id, &kind, &atomic);
	if (strcmp(status, "failed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job " INT64_FORMAT " has not failed", job_id),
				 errdetail("Its status is \"%s\".", status),
				 strcmp(status, "cancelled") == 0 ?
				 errhint("A cancelled job cannot be resumed; submit it again.") : 0));
	job_kind_check_resume(kind, atomic);
	job_store_requeue(job_id);
	jobs_wake_at_commit(job_id);
	PG_RETURN_JSONB_P(job_store_job_json(job_id, NULL));
}

/* job_errors(job_id): every error of one of the caller's jobs. */
Datum
batch_ops_job_errors(PG_FUNCTION_ARGS)
{
	arg_not_null(fcinfo, 0, "job_id");
	InitMaterializedSRF(fcinfo, 0);
	job_store_errors(fcinfo, PG_GETARG_INT64(0));
	return (Datum) 0;
}

/* job_list(): the rows of the view batch_ops.jobs. */
Datum
batch_ops_job_list(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	job_store_list(fcinfo);
	return (Datum) 0;
}
