/*-------------------------------------------------------------------------
 *
 * job_shmem.c
 *	  Shared memory of the job runtime, and the wake-ups and cancels a
 *	  transaction sends when it commits.
 *
 * Shared memory: one small JobsShared struct (job_shmem.h says which
 * lock protects which field), requested and initialised in chained
 * hooks while the library is preloaded.
 *
 * Waking the launcher: a submit remembers that this database has new
 * work; when the transaction commits, an xact callback adds the database
 * to the pending list and sets the launcher's latch (launcher.c), so a
 * job starts without polling delay and never before its row is visible.
 *
 * Cancelling: cancel_job() remembers the job id with the subtransaction
 * it ran in.  A subtransaction that rolls back forgets its ids, one that
 * commits hands them to its parent, and at top-level commit each
 * remaining id's worker gets its slot's cancel flag and SIGINT.  The
 * row's cancel_requested (job_store.c) covers a worker that starts later.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "job_shmem.h"

int			batch_ops_max_workers = 2;

JobsShared *jobs_shared = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* A job id this transaction submitted or cancelled, and where. */
typedef struct XactJob
{
	int64		job_id;
	SubTransactionId subid;
	bool		cancel;			/* else: submitted */
} XactJob;

/* What this transaction asks for at commit (in TopTransactionContext). */
static bool xact_callbacks_registered = false;
static bool wake_at_commit = false;
static List *xact_jobs = NIL;

/* The struct's size: a slot per possible worker. */
static Size
job_shmem_size(void)
{
	return add_size(offsetof(JobsShared, slots),
					mul_size(sizeof(JobWorkerSlot), batch_ops_max_workers));
}

/* shmem_request_hook: reserve our struct. */
static void
job_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(job_shmem_size());
}

/* shmem_startup_hook: create (postmaster) or attach (EXEC_BACKEND) it. */
static void
job_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jobs_shared = ShmemInitStruct("batch_ops jobs", job_shmem_size(), &found);
	if (!found)
	{
		memset(jobs_shared, 0, job_shmem_size());
		SpinLockInit(&jobs_shared->mutex);
		jobs_shared->nslots = batch_ops_max_workers;
		/* after a restart, look for jobs to resume everywhere */
		jobs_shared->scan_all = true;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * A PGC_POSTMASTER setting and shared memory exist only while preloading;
 * otherwise the jobs API refuses to submit (jobs_require_preload).
 */
void
job_shmem_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("batch_ops.max_workers",
							"Maximum number of job workers running at once.",
							"Each takes a background worker slot (max_worker_processes).",
							&batch_ops_max_workers,
							2, 1, 64,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = job_shmem_request;
#else
	job_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = job_shmem_startup;
}

bool
jobs_preloaded(void)
{
	return jobs_shared != NULL;
}

/* The submit functions' refusal when no worker could ever run the job. */
void
jobs_require_preload(void)
{
	if (!jobs_preloaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("batch_ops must be loaded via shared_preload_libraries to run async jobs"),
				 errhint("Add batch_ops to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * Add the database to the pending list (or, if the list is full, ask for
 * a scan of every database) and set the launcher's latch.
 */
void
jobs_wake_launcher(Oid dboid)
{
	Latch	   *latch;
	int			i;

	if (!jobs_shared)
		return;
	SpinLockAcquire(&jobs_shared->mutex);
	for (i = 0; i < jobs_shared->npending; i++)
		if (jobs_shared->pending[i] == dboid)
			break;
	if (i == jobs_shared->npending)
	{
		if (jobs_shared->npending < JOBS_MAX_PENDING_DBS)
			jobs_shared->pending[jobs_shared->npending++] = dboid;
		else
			jobs_shared->scan_all = true;
	}
	latch = jobs_shared->launcher_latch;
	SpinLockRelease(&jobs_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Stop the worker that runs job_id, if any: flag its slot and send it
 * SIGINT, the signal of a query cancel, so that the work stops at its
 * next CHECK_FOR_INTERRUPTS() (a slow trigger, a network read) rather
 * than at the end of the chunk.  The worker accepts query cancels only
 * while it runs a job's work (job_worker.c).
 */
static void
cancel_running_job(int64 job_id)
{
	pid_t		pid = 0;
	int			i;

	SpinLockAcquire(&jobs_shared->mutex);
	for (i = 0; i < jobs_shared->nslots; i++)
	{
		JobWorkerSlot *slot = &jobs_shared->slots[i];

		if (slot->in_use && slot->dboid == MyDatabaseId && slot->job_id == job_id)
		{
			slot->cancel = true;
			pid = slot->pid;
		}
	}
	SpinLockRelease(&jobs_shared->mutex);
	if (pid != 0)
		(void) kill(pid, SIGINT);
}

/* At top-level commit send what the transaction asked for; forget it at its end. */
static void
jobs_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				jobs_wake_launcher(MyDatabaseId);
			foreach(lc, xact_jobs)
			{
				XactJob    *xj = lfirst(lc);

				if (xj->cancel)
					cancel_running_job(xj->job_id);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared submit is found by the launcher's slow poll */
			break;
		default:
			return;
	}
	wake_at_commit = false;
	/* allocated in TopTransactionContext: gone with the transaction */
	xact_jobs = NIL;
}

/*
 * A subtransaction that rolls back takes its submits and cancels with it;
 * one that commits leaves them to its parent.
 */
static void
jobs_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			foreach(lc, xact_jobs)
			{
				XactJob    *xj = lfirst(lc);

				if (xj->subid == mySubid)
					xact_jobs = foreach_delete_current(xact_jobs, lc);
			}
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			foreach(lc, xact_jobs)
			{
				XactJob    *xj = lfirst(lc);

				if (xj->subid == mySubid)
					xj->subid = parentSubid;
			}
			break;
		default:
			break;
	}
}

/* The callbacks above, registered once per backend, when first needed. */
static void
register_xact_callbacks(void)
{
	if (!xact_callbacks_registered)
	{
		RegisterXactCallback(jobs_xact_callback, NULL);
		RegisterSubXactCallback(jobs_subxact_callback, NULL);
		xact_callbacks_registered = true;
	}
}

/* Remember job_id until the end of the transaction. */
static void
remember_in_xact(int64 job_id, bool cancel)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	XactJob    *xj = palloc(sizeof(XactJob));

	xj->job_id = job_id;
	xj->subid = GetCurrentSubTransactionId();
	xj->cancel = cancel;
	xact_jobs = lappend(xact_jobs, xj);
	MemoryContextSwitchTo(old);
	register_xact_callbacks();
}

/* A submit: wake the launcher when (and only if) the row is committed. */
void
jobs_wake_at_commit(int64 job_id)
{
	remember_in_xact(job_id, false);
	wake_at_commit = true;
}

/*
 * ALTER EXTENSION batch_ops UPDATE: the jobs that waited for the update
 * (job_store_is_current) can run once it commits, not at the next poll.
 */
void
jobs_wake_database_at_commit(void)
{
	register_xact_callbacks();
	wake_at_commit = true;
}

/* wait_job() refuses to wait for a job that cannot start before we commit. */
bool
job_submitted_in_xact(int64 job_id)
{
	ListCell   *lc;

	foreach(lc, xact_jobs)
	{
		XactJob    *xj = lfirst(lc);

		if (!xj->cancel && xj->job_id == job_id)
			return true;
	}
	return false;
}

/* cancel_job(): signal the worker only once the cancel is committed. */
void
jobs_cancel_at_commit(int64 job_id)
{
	if (jobs_preloaded())
		remember_in_xact(job_id, true);
}

/*
 * Per-kind worker caps (JobKind.max_workers), checked by the claim: the
 * count and the mark are made under the mutex, so two workers claiming at
 * once cannot both pass the cap.
 */
bool
jobs_slot_take_kind(JobWorkerSlot *self, const char *kind, int limit)
{
	int			i;
	int			n = 0;

	SpinLockAcquire(&jobs_shared->mutex);
	for (i = 0; i < jobs_shared->nslots; i++)
	{
		JobWorkerSlot *s = &jobs_shared->slots[i];

		if (s != self && s->in_use && strcmp(s->capped_kind, kind) == 0)
			n++;
	}
	if (n < limit)
		strlcpy(self->capped_kind, kind, sizeof(self->capped_kind));
	SpinLockRelease(&jobs_shared->mutex);
	return n < limit;
}
