/*-------------------------------------------------------------------------
 *
 * job_worker.c
 *	  The job worker: claim a job, run its kind, record how it ended.
 *
 * A job worker connects to its database as the bootstrap superuser and
 * exits at once if batch_ops is not installed there.  It purges expired
 * jobs and keys, then claims one job (job_store.c): the claim fails a job
 * at once if its kind is unknown to this build, its role is gone, its
 * target table is gone (only for a kind that has one), or it was
 * interrupted too often.  When more work is queued it wakes the launcher
 * so that a second worker can start.
 *
 * The job's kind (job_kind.c, looked up by the name in the row) runs
 * outside a transaction; job_runtime.c gives it its chunks.  The
 * session's identity is the job's role, with that role's own settings
 * (ALTER ROLE ... SET), so that the work sees what a session of the role
 * would; each piece of work runs as a security-restricted operation
 * (spi_util.c, role_switch_to_submitter), and only the job's bookkeeping
 * runs as the tables' owner.
 *
 * A job that fails (bad source, a table dropped, an error that is not a
 * row's fault) is caught: the transaction is aborted and the job is
 * marked failed with the error's message in a new transaction.  Query
 * cancels (cancel_job()'s SIGINT) are accepted only while the kind runs;
 * the bookkeeping around it holds them off.
 *
 * One job per process: nothing a job leaves in its session (temporary
 * objects, prepared statements, advisory locks, LISTEN, settings, cached
 * plans) can reach the next job, which gets a new process.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_db_role_setting.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "citus_table.h"
#include "idempotency.h"
#include "job_kind.h"
#include "job_runtime.h"
#include "job_worker.h"

/* a job interrupted this many times (crash, shutdown) fails instead */
#define JOB_MAX_ATTEMPTS 10

static JobWorkerSlot *MySlot = NULL;
static MemoryContext worker_cxt = NULL;

/*
 * Free our slot and tell the launcher, which may start another worker.
 * Exiting in the middle of a job (pg_terminate_backend, a FATAL error)
 * leaves the job running in its row, unlocked: the database goes back on
 * the pending list so that a new worker resumes it from its checkpoint
 * now, not at the next poll.  A worker that exits between jobs has no
 * job_id, so this cannot turn into a loop of workers that find nothing.
 * A worker that ran a job of a capped kind (job_kind.h, max_workers)
 * wakes the launcher too: a job of that kind may have been left queued
 * for want of the slot this worker held.
 */
static void
worker_exit(int code, Datum arg)
{
	Latch	   *latch;
	bool		in_job;
	bool		capped;

	SpinLockAcquire(&jobs_shared->mutex);
	in_job = MySlot->job_id != 0;
	MySlot->in_use = false;
	MySlot->latch = NULL;
	MySlot->job_id = 0;
	capped = MySlot->capped_kind[0] != '\0';
	MySlot->capped_kind[0] = '\0';
	latch = jobs_shared->launcher_latch;
	SpinLockRelease(&jobs_shared->mutex);
	if ((in_job || capped) && MyDatabaseId != InvalidOid)
		jobs_wake_launcher(MyDatabaseId);
	else if (latch)
		SetLatch(latch);
}

/*
 * Is batch_ops installed in this database?  A catalog lookup, not SQL: the
 * worker is a superuser session that has the database's own settings
 * (ALTER DATABASE ... SET search_path), which its owner controls.
 */
static bool
extension_installed(void)
{
	bool		found;

	StartTransactionCommand();
	found = OidIsValid(get_extension_oid("batch_ops", true));
	CommitTransactionCommand();
	return found;
}

/*
 * Are this database's job tables at the library's version?  Not between a
 * restart on a new library and ALTER EXTENSION batch_ops UPDATE: the jobs
 * wait for the update (README "Upgrading").
 */
static bool
schema_current(void)
{
	char	   *installed = NULL;
	bool		current;

	StartTransactionCommand();
	current = job_store_is_current(&installed);
	if (!current)
		ereport(LOG,
				(errmsg("batch_ops jobs in database \"%s\" wait: its SQL objects are at version %s, the library at version %s",
						get_database_name(MyDatabaseId),
						installed ? installed : "(none)", BATCH_OPS_VERSION),
				 errhint("Run ALTER EXTENSION batch_ops UPDATE in that database.")));
	CommitTransactionCommand();
	return current;
}

/* What batch_ops.purge() does, each time a worker starts in a database. */
static void
purge_jobs(void)
{
	job_bookkeeping_begin();
	(void) job_store_purge();
	(void) idempotency_purge();
	job_xact_commit();
}

/* The claim's verdict on a candidate (job_store.h, JobClaimCheck). */
static const char *
check_candidate(const JobRow *row, const char **error)
{
	const JobKind *kind = job_kind_lookup(row->kind);

	if (row->cancel_requested)
		return "cancelled";
	if (kind == NULL)
	{
		*error = psprintf("unknown job kind \"%s\": this build of batch_ops cannot run the job",
						  row->kind);
		return "failed";
	}
	if (row->was_running && row->attempts >= JOB_MAX_ATTEMPTS)
	{
		/* it was interrupted each time: do not crash-loop on it */
		*error = psprintf("the job was interrupted %d times; giving up", row->attempts);
		return "failed";
	}
	if (!row->role_exists)
	{
		*error = "the role that submitted the job no longer exists";
		return "failed";
	}
	if (kind->has_target && !row->target_exists)
	{
		*error = "the target table of the job no longer exists";
		return "failed";
	}
	/* a kind with a cap on its workers: leave the job queued at the cap */
	if (kind->max_workers &&
		!jobs_slot_take_kind(MySlot, kind->name, kind->max_workers()))
		return JOB_CLAIM_SKIP;
	return NULL;
}

/*
 * Claim the next job of this database, or return NULL.  The job is named
 * in our slot before the claim commits: a DROP EXTENSION (drop_guard.c)
 * then either fails at once on the claim's lock or, once the claim has
 * committed, finds the job in the slot.
 */
static JobRow *
claim_job(void)
{
	JobRow	   *job;
	int			queued;

	job_bookkeeping_begin();
	job = job_store_claim(check_candidate, worker_cxt, &queued);
	if (job)
	{
		SpinLockAcquire(&jobs_shared->mutex);
		MySlot->job_id = job->id;
		MySlot->cancel = false;
		SpinLockRelease(&jobs_shared->mutex);
	}
	job_xact_commit();

	if (queued > 0)
		jobs_wake_launcher(MyDatabaseId);
	if (job == NULL && queued > 0)
		return claim_job();
	return job;
}

/*
 * Give the session the settings a session of the job's role would have in
 * this database: ALTER ROLE ... IN DATABASE ... SET, then ALTER ROLE ...
 * SET, as the postmaster applies them at connection (the database's own
 * settings are in place since the worker connected).  They are session
 * settings, so they last for the job's chunks; the worker runs one job
 * and exits, and its bookkeeping pins what it depends on (spi_util.c,
 * role_switch_to_owner).  In a transaction: it reads the catalog.
 */
static void
apply_role_settings(Oid role)
{
	Relation	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	Snapshot	snapshot = RegisterSnapshot(GetCatalogSnapshot(DbRoleSettingRelationId));

	ApplySetting(snapshot, MyDatabaseId, role, rel, PGC_S_DATABASE_USER);
	ApplySetting(snapshot, InvalidOid, role, rel, PGC_S_USER);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
}

/*
 * Run one claimed job to its end.  A cancel that comes too late for a
 * job whose final status has already committed is ignored.
 */
static void
run_job(JobRow *row)
{
	MemoryContext job_cxt = AllocSetContextCreate(worker_cxt, "batch_ops job",
												  ALLOCSET_DEFAULT_SIZES);
	const JobKind *kind = job_kind_lookup(row->kind);
	JobContext *ctx;

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("batch_ops job " INT64_FORMAT " (%s)", row->id, row->kind));
	ctx = job_context_create(row, kind->has_target, MySlot);
	/* superuser_arg() reads the catalog: in a transaction */
	StartTransactionCommand();
	SetSessionAuthorization(row->role, superuser_arg(row->role));
	apply_role_settings(row->role);
	CommitTransactionCommand();
	MemoryContextSwitchTo(worker_cxt);

	PG_TRY();
	{
		MemoryContextSwitchTo(job_cxt);
		/* a cancel signal meant for an earlier job is not for this one */
		QueryCancelPending = false;
		RESUME_CANCEL_INTERRUPTS();
		kind->run(ctx);
		HOLD_CANCEL_INTERRUPTS();
		MemoryContextSwitchTo(worker_cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		cancelled;

		/* errfinish() reset the holdoff counts */
		HOLD_CANCEL_INTERRUPTS();
		MemoryContextSwitchTo(worker_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		QueryCancelPending = false;

		SetSessionAuthorization(BOOTSTRAP_SUPERUSERID, true);
		SpinLockAcquire(&jobs_shared->mutex);
		cancelled = MySlot->cancel;
		MySlot->cancel = false;
		SpinLockRelease(&jobs_shared->mutex);
		/* pg_cancel_backend() on the worker cancels its job too */
		cancelled = cancelled || edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
		/* a worker node that went away is named (citus_table.c) */
		edata->message = citus_error_with_node(edata->message, edata->context);
		/* an error after the final commit leaves the job as it ended */
		if (!job_context_finished(ctx))
		{
			if (!cancelled)
				ereport(LOG,
						(errmsg("batch_ops job " INT64_FORMAT " failed: %s", row->id,
								edata->message)));
			job_context_fail(ctx, cancelled ? "cancelled" : "failed",
							 cancelled ? NULL : edata->message);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();

	SetSessionAuthorization(BOOTSTRAP_SUPERUSERID, true);
	job_store_unlock(row->id);
	SpinLockAcquire(&jobs_shared->mutex);
	MySlot->job_id = 0;
	MySlot->cancel = false;
	SpinLockRelease(&jobs_shared->mutex);
	QueryCancelPending = false;
	MemoryContextDelete(job_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * A job worker: take our slot, connect to the database, purge, claim one
 * job and run it, then exit (one job per process, see the file header).
 */
void
batch_ops_job_worker_main(Datum main_arg)
{
	int			slotno = DatumGetInt32(main_arg);
	Oid			dboid;
	JobRow	   *job;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	/* SIGINT is StatementCancelHandler; see run_job() for when it acts */
	HOLD_CANCEL_INTERRUPTS();
	BackgroundWorkerUnblockSignals();

	MySlot = &jobs_shared->slots[slotno];
	SpinLockAcquire(&jobs_shared->mutex);
	MySlot->pid = MyProcPid;
	MySlot->latch = MyLatch;
	MySlot->capped_kind[0] = '\0';
	MySlot->job_id = 0;
	MySlot->cancel = false;
	SpinLockRelease(&jobs_shared->mutex);
	before_shmem_exit(worker_exit, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("batch_ops job worker");
	worker_cxt = AllocSetContextCreate(TopMemoryContext, "batch_ops worker",
									   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(worker_cxt);

	if (!extension_installed())
		proc_exit(0);
	if (!schema_current())
		proc_exit(0);
	purge_jobs();

	/* claim_job() has asked the launcher for another worker if more were queued */
	job = claim_job();
	if (job != NULL)
		run_job(job);
	proc_exit(0);
}
