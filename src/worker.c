/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The launcher and the job workers.
 *
 * The launcher is a static background worker registered while the
 * library is preloaded (and restarted by the postmaster if it dies).  It
 * connects to no database: it reads pg_database to find every database
 * that accepts connections, and starts a dynamic job worker for a
 * database when a submit there has committed (jobs.c sets a flag in
 * shared memory and the launcher's latch), at start-up (to resume jobs
 * interrupted by a crash or shutdown), and every batch_ops.poll_interval
 * as a safety net.  At most batch_ops.max_workers job workers run; a
 * database that must wait stays pending until a worker exits.
 *
 * A job worker connects to its database as the bootstrap superuser and
 * exits at once if batch_ops is not installed there.  It claims jobs one
 * at a time: a queued or running job row locked FOR UPDATE SKIP LOCKED
 * and a session-level advisory lock on the job id, held until the job is
 * finished, so that a job is run by one worker at a time and a "running"
 * job whose worker died (the lock went with it) is resumed from its
 * checkpoint.  When more work is queued it wakes the launcher so that a
 * second worker can start.
 *
 * The work of a job runs as the role that submitted it: the session user
 * and the current user are that role, with SECURITY_LOCAL_USERID_CHANGE
 * so that nothing the job runs (a trigger) can SET ROLE or SET SESSION
 * AUTHORIZATION back to the worker's superuser identity, and with a GUC
 * nest level that is unwound after each chunk so that settings changed
 * by one job never leak into the next.  Only the job's own bookkeeping
 * (its row, its errors) is written as the tables' owner, in the same
 * transaction as the chunk's rows.
 *
 * A job that fails (bad source, a table dropped, an error that is not a
 * row's fault) is caught: the transaction is aborted, the job is marked
 * failed with the error's message in a new transaction, and the worker
 * goes on with the next job.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_db_role_setting.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "idempotency.h"
#include "item_error.h"
#include "jobs.h"
#include "sql_quote.h"

/* advisory lock tag field 4: not 1 or 2, which user advisory locks use */
#define JOB_LOCK_FIELD4 0x4A4F

/* a job interrupted this many times (crash, shutdown) fails instead */
#define JOB_MAX_ATTEMPTS 10

static JobWorkerSlot *MySlot = NULL;
static MemoryContext worker_cxt = NULL;

/* ---------------------------------------------------------------------
 * Launcher
 * ---------------------------------------------------------------------
 */
void
jobs_register_launcher(void)
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

static void
launcher_exit(int code, Datum arg)
{
	SpinLockAcquire(&jobs_shared->mutex);
	jobs_shared->launcher_pid = 0;
	jobs_shared->launcher_latch = NULL;
	SpinLockRelease(&jobs_shared->mutex);
}

/* Every database that accepts connections. */
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
		ereport(LOG,
				(errmsg("batch_ops could not start a job worker"),
				 errhint("Consider increasing max_worker_processes.")));
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

void
batch_ops_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle **handles;
	TimestampTz last_scan = 0;

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
		List	   *pending = NIL;
		List	   *waiting = NIL;
		ListCell   *lc;
		bool		scan_all;
		long		timeout;
		TimestampTz now = GetCurrentTimestamp();
		int			i;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		reap_workers(handles);

		if (TimestampDifferenceExceeds(last_scan, now, batch_ops_poll_interval * 1000))
		{
			SpinLockAcquire(&jobs_shared->mutex);
			jobs_shared->scan_all = true;
			SpinLockRelease(&jobs_shared->mutex);
		}

		SpinLockAcquire(&jobs_shared->mutex);
		scan_all = jobs_shared->scan_all;
		jobs_shared->scan_all = false;
		for (i = 0; i < jobs_shared->npending; i++)
			pending = lappend_oid(pending, jobs_shared->pending[i]);
		jobs_shared->npending = 0;
		SpinLockRelease(&jobs_shared->mutex);

		if (scan_all)
		{
			pending = list_concat_unique_oid(pending, all_databases());
			last_scan = now;
		}

		foreach(lc, pending)
		{
			Oid			dboid = lfirst_oid(lc);

			if (!start_worker(dboid, handles))
				waiting = lappend_oid(waiting, dboid);
		}
		/* no free slot: try again when a worker exits */
		foreach(lc, waiting)
			jobs_wake_launcher(lfirst_oid(lc));
		timeout = waiting ? 1000L : batch_ops_poll_interval * 1000L;
		list_free(pending);
		list_free(waiting);
		if (waiting)
			ResetLatch(MyLatch);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	/* exit code 1: the postmaster restarts us unless it is shutting down */
	proc_exit(1);
}

/* ---------------------------------------------------------------------
 * Job worker: transactions and bookkeeping
 * ---------------------------------------------------------------------
 */
static void
worker_exit(int code, Datum arg)
{
	Latch	   *latch;

	SpinLockAcquire(&jobs_shared->mutex);
	MySlot->in_use = false;
	MySlot->latch = NULL;
	MySlot->job_id = 0;
	latch = jobs_shared->launcher_latch;
	SpinLockRelease(&jobs_shared->mutex);
	if (latch)
		SetLatch(latch);
}

void
job_begin_chunk(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * A transaction of the worker's own bookkeeping (claim, purge, finish):
 * read-write whatever default_transaction_read_only the database or the
 * job's role sets, which govern the job's own work only.
 */
static void
bookkeeping_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) set_config_option("transaction_read_only", "off", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
job_end_chunk(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

static void
spi_run(const char *sql, int nargs, Oid *types, Datum *values,
		const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed (%d): %s", rc, sql);
}

static Datum
text_array(char **strs, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = strs[i] == NULL;
		d[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strs[i]);
	}
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TEXTOID,
											  -1, false, TYPALIGN_INT));
}

static Datum
int8_array(int64 *vals, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(vals[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/*
 * Write a chunk's errors and the job's new checkpoint and counters, in
 * the transaction of the chunk's rows, and commit.  final_status, when
 * not NULL, finishes the job (and sends its NOTIFY) in the same
 * transaction.  Returns after the commit; throws if a cancel was
 * requested meanwhile.
 */
void
job_commit_chunk_ex(Job *job, ChunkResult *res, const char *final_status,
					const char *error)
{
	OwnerSwitch sw;
	Oid			types[14] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
		INT8OID, INT8OID, TEXTOID, BOOLOID, TEXTOID, TEXTOID, INT8OID, INT8OID};
	Datum		values[14];
	char		nulls[14];
	bool		isnull;
	bool		cancel_requested = false;

	memset(nulls, ' ', sizeof(nulls));
	jobs_owner_begin(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (res->nerrors > 0)
	{
		Oid			etypes[9] = {INT8OID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, BOOLOID};
		Datum		evalues[9];

		evalues[0] = Int64GetDatum(job->id);
		evalues[1] = int8_array(res->err_line, res->nerrors);
		evalues[2] = int8_array(res->err_index, res->nerrors);
		evalues[3] = text_array(res->err_name, res->nerrors);
		evalues[4] = text_array(res->err_message, res->nerrors);
		evalues[5] = text_array(res->err_sqlstate, res->nerrors);
		evalues[6] = text_array(res->err_detail, res->nerrors);
		evalues[7] = text_array(res->err_raw, res->nerrors);
		evalues[8] = BoolGetDatum(strcmp(job->kind, "import") == 0);
		spi_run("INSERT INTO batch_ops.job_error"
				" (job_id, pos, line, index, error, message, sqlstate, detail, raw)"
				" SELECT $1, CASE WHEN $9 THEN l ELSE i END,"
				"   CASE WHEN $9 THEN l END, CASE WHEN $9 THEN NULL ELSE i END,"
				"   e, m, s, d, r"
				" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
				"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
				"   pg_catalog.unnest($7), pg_catalog.unnest($8)) AS u(l, i, e, m, s, d, r)",
				9, etypes, evalues, NULL, SPI_OK_INSERT);
	}

	values[0] = Int64GetDatum(job->id);
	values[1] = Int64GetDatum(res->next_offset);
	values[2] = Int64GetDatum(res->next_line);
	values[3] = Int64GetDatum(res->next_index);
	values[4] = Int64GetDatum(res->applied);
	values[5] = Int64GetDatum(res->failed);
	values[6] = Int64GetDatum(res->nerrors);
	values[7] = Int64GetDatum(res->bytes_total);
	if (res->bytes_total < 0)
		nulls[7] = 'n';
	values[8] = CStringGetTextDatum(final_status ? final_status : "running");
	values[9] = BoolGetDatum(final_status != NULL);
	if (error)
		values[10] = CStringGetTextDatum(error);
	else
		nulls[10] = 'n';
	if (job->columns)
		values[11] = CStringGetTextDatum(job->columns);
	else
		nulls[11] = 'n';
	values[12] = Int64GetDatum(job->items_total);
	values[13] = Int64GetDatum(res->rows_seen);
	spi_run("UPDATE batch_ops.job_queue SET"
			" ckpt_offset = $2, ckpt_line = $3, ckpt_index = $4,"
			" rows_done = rows_done" SQL_PLUS "$14,"
			" created = created" SQL_PLUS "CASE WHEN operation" SQL_EQ "'create' THEN $5 ELSE 0 END,"
			" updated = updated" SQL_PLUS "CASE WHEN operation" SQL_EQ "'update' THEN $5 ELSE 0 END,"
			" deleted = deleted" SQL_PLUS "CASE WHEN operation" SQL_EQ "'delete' THEN $5 ELSE 0 END,"
			" failed = failed" SQL_PLUS "$6, errors_total = errors_total" SQL_PLUS "$7,"
			" bytes_total = coalesce($8, bytes_total),"
			" columns = coalesce($12::pg_catalog.jsonb, columns),"
			" status = $9, error = $11,"
			" progress = CASE WHEN $9" SQL_EQ "'completed' THEN 100"
			"   WHEN kind" SQL_EQ "'import' AND coalesce($8, bytes_total)" SQL_GT "0"
			"     THEN least(99, pg_catalog.floor(100.0" SQL_MUL "$2" SQL_DIV
			"       coalesce($8, bytes_total))::pg_catalog.int4)"
			"   WHEN kind" SQL_EQ "'batch' AND $13" SQL_GT "0"
			"     THEN least(99, pg_catalog.floor(100.0" SQL_MUL "$4" SQL_DIV "$13)::pg_catalog.int4)"
			"   ELSE progress END,"
			" finished_at = CASE WHEN $10 THEN pg_catalog.clock_timestamp() END"
			" WHERE id" SQL_EQ "$1 RETURNING cancel_requested",
			14, types, values, nulls, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 1)
		cancel_requested = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));
	if (final_status)
	{
		Oid			itypes[1] = {INT8OID};
		Datum		ivalues[1];

		ivalues[0] = Int64GetDatum(job->id);
		spi_run("DELETE FROM batch_ops.job_item WHERE job_id" SQL_EQ "$1",
				1, itypes, ivalues, NULL, SPI_OK_DELETE);
		notify_job_status(job->id, final_status);
	}
	SPI_finish();
	jobs_owner_end(&sw);

	/*
	 * A chunk's rows and its checkpoint commit together, so losing the
	 * last commits in a crash only moves the job back to an earlier
	 * checkpoint: no need to wait for the WAL flush.  The final commit
	 * does wait (and with it every earlier one), so a job reported
	 * finished stays finished.
	 */
	if (!final_status)
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	job_end_chunk();
	if (final_status)
		job->finished = true;

	job->errors_total += res->nerrors;
	if (!final_status && cancel_requested)
	{
		SpinLockAcquire(&jobs_shared->mutex);
		MySlot->cancel = true;
		SpinLockRelease(&jobs_shared->mutex);
	}
	if (!final_status)
		job_check_cancel(job);
}

/*
 * The end of an atomic job, whose work ran in one subtransaction: rolled
 * back if any row or item failed (the job fails, its errors are kept),
 * kept otherwise; either way the result commits with the final status.
 * "what" and "done" word the failure: "rows", "imported".
 */
void
job_commit_atomic(Job *job, Subxact *all, ChunkResult *res, const char *final,
				  char *final_error, const char *what, const char *done)
{
	if (res->nerrors > 0)
	{
		subxact_rollback(all);
		res->applied = 0;
		final = "failed";
		if (final_error == NULL)
			final_error = psprintf("%d %s failed; nothing was %s (atomic)",
								   res->nerrors, what, done);
	}
	else
		subxact_commit(all);
	job_commit_chunk_ex(job, res, final, final_error);
}

/* Finish a job that failed or was cancelled, in a transaction of its own. */
static void
job_finish(Job *job, const char *status, const char *error)
{
	ChunkResult res;
	OwnerSwitch sw;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;

	/* keep the checkpoint as it is: only the status changes */
	memset(&res, 0, sizeof(res));
	bookkeeping_begin();
	jobs_owner_begin(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = Int64GetDatum(job->id);
	spi_run("SELECT ckpt_offset, ckpt_line, ckpt_index FROM batch_ops.job_queue"
			" WHERE id" SQL_EQ "$1",
			1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		res.next_offset = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		res.next_line = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		res.next_index = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	}
	SPI_finish();
	jobs_owner_end(&sw);
	res.bytes_total = -1;
	job_commit_chunk_ex(job, &res, status, error);
}

void
job_check_cancel(Job *job)
{
	bool		cancel;

	CHECK_FOR_INTERRUPTS();
	/* a worker must not go on writing once the postmaster is gone */
	if (!PostmasterIsAlive())
		proc_exit(1);
	SpinLockAcquire(&jobs_shared->mutex);
	cancel = MySlot->cancel;
	SpinLockRelease(&jobs_shared->mutex);
	if (cancel)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("job " INT64_FORMAT " was cancelled", job->id)));
}

/*
 * In a chunk's transaction, before the job touches its table: lock it as
 * the statements will, so that it cannot be dropped under the chunk, and
 * fail the job with a clear message if it already was.
 */
void
job_check_target(Job *job)
{
	LockRelationOid(job->relid, RowExclusiveLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(job->relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the target table of the job no longer exists")));
}

/*
 * Run the job's own work as its role, until job_as_role_end(); settings
 * it changes are undone then.  As core does for code it runs on another
 * role's behalf (REFRESH MATERIALIZED VIEW, VACUUM's index functions),
 * the work is a security-restricted operation: it cannot change the
 * role, create temporary objects, LISTEN or keep cursors open past the
 * chunk, so it leaves nothing behind in the worker's session.
 */
void
job_as_role_begin(Job *job, JobRoleSwitch *rs)
{
	GetUserIdAndSecContext(&rs->save_user, &rs->save_sec);
	SetUserIdAndSecContext(job->role, rs->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	rs->nestlevel = NewGUCNestLevel();
}

void
job_as_role_end(JobRoleSwitch *rs)
{
	AtEOXact_GUC(false, rs->nestlevel);
	SetUserIdAndSecContext(rs->save_user, rs->save_sec);
}

/* ---------------------------------------------------------------------
 * Claiming jobs
 * ---------------------------------------------------------------------
 */
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

/* What batch_ops.purge() does, each time a worker starts in a database. */
static void
purge_jobs(void)
{
	bookkeeping_begin();
	(void) jobs_purge();
	(void) idempotency_purge();
	job_end_chunk();
}

static bool
lock_job(int64 id, bool lock)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id,
						 JOB_LOCK_FIELD4);
	if (lock)
		return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
	LockRelease(&tag, ExclusiveLock, true);
	return true;
}

static char *
getstr(HeapTuple tup, TupleDesc desc, int att)
{
	return SPI_getvalue(tup, desc, att);
}

static int
getint4(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, att, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

static int64
getint8(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, att, &isnull);

	return isnull ? -1 : DatumGetInt64(d);
}

/*
 * Claim the next job of this database, or return NULL.  A claimed job
 * is marked running and locked (advisory, session level) by this worker.
 */
static Job *
claim_job(void)
{
	OwnerSwitch sw;
	Job		   *job = NULL;
	SPITupleTable *candidates;
	uint64		ncandidates;
	uint64		r;
	int			queued = 0;
	MemoryContext old;

	bookkeeping_begin();
	jobs_owner_begin(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_run("SELECT id, role, kind, operation, target, source, options,"
			"  atomic, bytes_total, ckpt_offset, ckpt_line, ckpt_index,"
			"  items_total, columns::pg_catalog.text, errors_total, cancel_requested, status,"
			"  EXISTS (SELECT FROM pg_catalog.pg_authid a WHERE a.oid" SQL_EQ "role), attempts,"
			"  EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid" SQL_EQ "target)"
			" FROM batch_ops.job_queue"
			" WHERE status" SQL_EQ "ANY ('{queued,running}'::pg_catalog.text[])"
			" ORDER BY id LIMIT 64 FOR UPDATE SKIP LOCKED",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	/* the UPDATE below replaces SPI_tuptable and SPI_processed */
	candidates = SPI_tuptable;
	ncandidates = SPI_processed;

	for (r = 0; r < ncandidates; r++)
	{
		HeapTuple	tup = candidates->vals[r];
		TupleDesc	desc = candidates->tupdesc;
		int64		id = getint8(tup, desc, 1);
		char	   *op;
		bool		isnull;
		Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
		Datum		values[3];
		char		nulls[3] = "   ";
		const char *status = "running";
		const char *error = NULL;

		if (job != NULL)
		{
			queued++;
			continue;
		}
		if (!lock_job(id, true))
			continue;

		old = MemoryContextSwitchTo(worker_cxt);
		job = palloc0(sizeof(Job));
		job->id = id;
		job->role = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		job->kind = getstr(tup, desc, 3);
		op = getstr(tup, desc, 4);
		job->op = strcmp(op, "create") == 0 ? BATCH_CREATE :
			strcmp(op, "update") == 0 ? BATCH_UPDATE : BATCH_DELETE;
		job->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		job->source = getstr(tup, desc, 6);
		job->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 7, &isnull));
		job->atomic = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		job->bytes_total = getint8(tup, desc, 9);
		job->ckpt_offset = getint8(tup, desc, 10);
		job->ckpt_line = getint8(tup, desc, 11);
		job->ckpt_index = getint8(tup, desc, 12);
		job->items_total = getint8(tup, desc, 13);
		job->columns = getstr(tup, desc, 14);
		job->errors_total = getint8(tup, desc, 15);
		job->slot = MySlot;
		MemoryContextSwitchTo(old);

		if (DatumGetBool(SPI_getbinval(tup, desc, 16, &isnull)))
			status = "cancelled";
		else if (strcmp(getstr(tup, desc, 17), "running") == 0 &&
				 getint4(tup, desc, 19) >= JOB_MAX_ATTEMPTS)
		{
			/* it was interrupted each time: do not crash-loop on it */
			status = "failed";
			error = psprintf("the job was interrupted %d times; giving up",
							 getint4(tup, desc, 19));
		}
		else if (!DatumGetBool(SPI_getbinval(tup, desc, 18, &isnull)))
		{
			status = "failed";
			error = "the role that submitted the job no longer exists";
		}
		else if (!DatumGetBool(SPI_getbinval(tup, desc, 20, &isnull)))
		{
			status = "failed";
			error = "the target table of the job no longer exists";
		}

		values[0] = Int64GetDatum(id);
		values[1] = CStringGetTextDatum(status);
		if (error)
			values[2] = CStringGetTextDatum(error);
		else
			nulls[2] = 'n';
		spi_run("UPDATE batch_ops.job_queue SET status = $2, error = $3,"
				" started_at = coalesce(started_at, pg_catalog.clock_timestamp()),"
				" finished_at = CASE WHEN $2" SQL_NE "'running'"
				"   THEN pg_catalog.clock_timestamp() END,"
				" worker_pid = pg_catalog.pg_backend_pid(), attempts = attempts" SQL_PLUS "1"
				" WHERE id" SQL_EQ "$1",
				3, types, values, nulls, SPI_OK_UPDATE);
		if (strcmp(status, "running") != 0)
		{
			notify_job_status(id, status);
			lock_job(id, false);
			/* look again, in the next round */
			job = NULL;
			queued++;
		}
	}
	SPI_finish();
	jobs_owner_end(&sw);

	/*
	 * Name the job in our slot before the claim commits: a DROP EXTENSION
	 * (drop_guard.c) then either fails at once on the claim's lock or,
	 * once the claim has committed, finds the job in the slot.
	 */
	if (job)
	{
		SpinLockAcquire(&jobs_shared->mutex);
		MySlot->job_id = job->id;
		MySlot->cancel = false;
		SpinLockRelease(&jobs_shared->mutex);
	}
	job_end_chunk();

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
 * and exits, and its bookkeeping pins what it depends on (jobs.c,
 * jobs_owner_begin).  In a transaction: it reads the catalog.
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
 * Run one claimed job to its end.  Query cancels (cancel_job()'s SIGINT)
 * are accepted only while the job's own work runs; the bookkeeping
 * around it runs with them held off, and a cancel that comes too late
 * for a job whose final status has already committed is ignored.
 */
static void
run_job(Job *job)
{
	MemoryContext job_cxt = AllocSetContextCreate(worker_cxt, "batch_ops job",
												  ALLOCSET_DEFAULT_SIZES);

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("batch_ops job " INT64_FORMAT " (%s)", job->id, job->kind));
	/* superuser_arg() reads the catalog: in a transaction */
	StartTransactionCommand();
	SetSessionAuthorization(job->role, superuser_arg(job->role));
	apply_role_settings(job->role);
	CommitTransactionCommand();
	MemoryContextSwitchTo(worker_cxt);

	PG_TRY();
	{
		MemoryContextSwitchTo(job_cxt);
		/* a cancel signal meant for an earlier job is not for this one */
		QueryCancelPending = false;
		RESUME_CANCEL_INTERRUPTS();
		if (strcmp(job->kind, "import") == 0)
			csv_import_run(job);
		else
			batch_job_run(job);
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
		if (job->finished)
		{
			/* the error came after the final commit: the job stands */
		}
		else
		{
			if (!cancelled)
				ereport(LOG,
						(errmsg("batch_ops job " INT64_FORMAT " failed: %s", job->id,
								edata->message)));
			job_finish(job, cancelled ? "cancelled" : "failed",
					   cancelled ? NULL : edata->message);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();

	SetSessionAuthorization(BOOTSTRAP_SUPERUSERID, true);
	lock_job(job->id, false);
	SpinLockAcquire(&jobs_shared->mutex);
	MySlot->job_id = 0;
	MySlot->cancel = false;
	SpinLockRelease(&jobs_shared->mutex);
	QueryCancelPending = false;
	MemoryContextDelete(job_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
batch_ops_job_worker_main(Datum main_arg)
{
	int			slotno = DatumGetInt32(main_arg);
	Oid			dboid;
	Job		   *job;

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
	purge_jobs();

	/*
	 * One job per process: nothing a job leaves in its session (temporary
	 * objects, prepared statements, advisory locks, LISTEN, settings,
	 * cached plans) can reach the next job, which gets a new process.
	 * claim_job() has asked the launcher for another worker if more jobs
	 * were queued.
	 */
	job = claim_job();
	if (job != NULL)
		run_job(job);
	proc_exit(0);
}
