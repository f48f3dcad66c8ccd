/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: starts a job worker for each database with work.
 *
 * The launcher is a static background worker registered while the
 * library is preloaded (and restarted by the postmaster if it dies).  It
 * connects to no database: it reads pg_database to find every database
 * that accepts connections, and starts a dynamic job worker
 * (job_worker.c) for a database when a submit there has committed
 * (job_shmem.c puts the database in the pending list and sets our
 * latch), at start-up (to resume jobs interrupted by a crash or
 * shutdown), and every batch_ops.poll_interval as a safety net.  At most
 * batch_ops.max_workers job workers run; a database that must wait stays
 * pending until a worker exits.  It knows nothing of jobs or kinds.
 *
 * Locking: the pending list is copied out under the spinlock into a
 * local array, and only then turned into workers (job_shmem.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "job_shmem.h"
#include "launcher.h"

int			batch_ops_poll_interval = 60;

/* The launcher's setting, defined whether or not preloaded (SHOW works). */
void
launcher_init(void)
{
	DefineCustomIntVariable("batch_ops.poll_interval",
							"How often the launcher looks for queued jobs in every database.",
							"Submitted jobs wake a worker when their transaction commits; this poll is only a safety net.",
							&batch_ops_poll_interval,
							60, 1, 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* A static worker, so the postmaster restarts it if it dies. */
void
launcher_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "batch_ops");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "batch_ops_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "batch_ops launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "batch_ops launcher");
	RegisterBackgroundWorker(&worker);
}

/* Say we are gone, so that nobody sets a latch that is no longer ours. */
static void
launcher_exit(int code, Datum arg)
{
	SpinLockAcquire(&jobs_shared->mutex);
	jobs_shared->launcher_pid = 0;
	jobs_shared->launcher_latch = NULL;
	SpinLockRelease(&jobs_shared->mutex);
}

/* Every database that accepts connections: the launcher connects to none. */
static List *
all_databases(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(caller);
		dbs = lappend_oid(dbs, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/*
 * Start a job worker for the database in a free slot; false if there is
 * no free slot or no free background worker slot (then try again later).
 */
static bool
start_worker(Oid dboid, BackgroundWorkerHandle **handles)
{
	BackgroundWorker worker;
	int			slotno = -1;
	int			i;

	SpinLockAcquire(&jobs_shared->mutex);
	for (i = 0; i < jobs_shared->nslots; i++)
		if (!jobs_shared->slots[i].in_use)
		{
			slotno = i;
			memset(&jobs_shared->slots[i], 0, sizeof(JobWorkerSlot));
			jobs_shared->slots[i].in_use = true;
			jobs_shared->slots[i].dboid = dboid;
			break;
		}
	SpinLockRelease(&jobs_shared->mutex);
	if (slotno < 0)
		return false;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "batch_ops");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "batch_ops_job_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "batch_ops job worker %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "batch_ops job worker");
	worker.bgw_main_arg = Int32GetDatum(slotno);
	memcpy(worker.bgw_extra, &dboid, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handles[slotno]))
	{
		SpinLockAcquire(&jobs_shared->mutex);
		jobs_shared->slots[slotno].in_use = false;
		SpinLockRelease(&jobs_shared->mutex);
		handles[slotno] = NULL;
		/* as core's logical replication launcher says it */
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("out of background worker slots"),
				 errdetail("batch_ops could not start a job worker."),
				 errhint("You might need to increase %s.", "max_worker_processes")));
		return false;
	}
	return true;
}

/* Free the slots of workers that stopped without freeing theirs. */
static void
reap_workers(BackgroundWorkerHandle **handles)
{
	int			i;

	for (i = 0; i < jobs_shared->nslots; i++)
	{
		pid_t		pid;

		if (handles[i] == NULL)
			continue;
		if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
		{
			SpinLockAcquire(&jobs_shared->mutex);
			if (jobs_shared->slots[i].pid == 0 || jobs_shared->slots[i].pid == pid)
				jobs_shared->slots[i].in_use = false;
			SpinLockRelease(&jobs_shared->mutex);
			pfree(handles[i]);
			handles[i] = NULL;
		}
	}
}

/* Add dboid to a list of n databases unless it is there. */
static int
add_database(Oid *dbs, int n, Oid dboid)
{
	int			i;

	for (i = 0; i < n; i++)
		if (dbs[i] == dboid)
			return n;
	dbs[n] = dboid;
	return n + 1;
}

/*
 * The launcher's loop: reap stopped workers, collect the databases with
 * work (pending list, or all of them at start-up and every poll
 * interval) and start a worker for each while slots are free.
 */
void
batch_ops_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle **handles;
	TimestampTz last_scan = 0;
	Oid			pending[JOBS_MAX_PENDING_DBS];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * jobs_shared->nslots);
	SpinLockAcquire(&jobs_shared->mutex);
	jobs_shared->launcher_pid = MyProcPid;
	jobs_shared->launcher_latch = MyLatch;
	SpinLockRelease(&jobs_shared->mutex);
	before_shmem_exit(launcher_exit, (Datum) 0);

	while (!ShutdownRequestPending)
	{
		Oid		   *dbs;
		int			ndbs;
		int			npending;
		int			nwaiting = 0;
		bool		scan_all;
		long		timeout;
		TimestampTz now = GetCurrentTimestamp();
		List	   *all = NIL;
		ListCell   *lc;
		int			i;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		reap_workers(handles);

		/* only loads and stores under the spinlock: copy the list out */
		SpinLockAcquire(&jobs_shared->mutex);
		if (TimestampDifferenceExceeds(last_scan, now, batch_ops_poll_interval * 1000))
			jobs_shared->scan_all = true;
		scan_all = jobs_shared->scan_all;
		jobs_shared->scan_all = false;
		npending = jobs_shared->npending;
		memcpy(pending, jobs_shared->pending, sizeof(Oid) * npending);
		jobs_shared->npending = 0;
		SpinLockRelease(&jobs_shared->mutex);

		if (scan_all)
		{
			all = all_databases();
			last_scan = now;
		}
		dbs = palloc(sizeof(Oid) * (npending + list_length(all)));
		ndbs = 0;
		for (i = 0; i < npending; i++)
			ndbs = add_database(dbs, ndbs, pending[i]);
		foreach(lc, all)
			ndbs = add_database(dbs, ndbs, lfirst_oid(lc));
		list_free(all);

		for (i = 0; i < ndbs; i++)
		{
			if (start_worker(dbs[i], handles))
				continue;
			/* no free slot: try again when a worker exits */
			jobs_wake_launcher(dbs[i]);
			nwaiting++;
		}
		pfree(dbs);
		timeout = nwaiting > 0 ? 1000L : batch_ops_poll_interval * 1000L;
		/* our own wake-ups above are not news: wait for the timeout */
		if (nwaiting > 0)
			ResetLatch(MyLatch);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	/* exit code 1: the postmaster restarts us unless it is shutting down */
	proc_exit(1);
}
