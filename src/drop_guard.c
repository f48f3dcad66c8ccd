/*-------------------------------------------------------------------------
 *
 * drop_guard.c
 *	  Refuse DROP EXTENSION batch_ops (or DROP SCHEMA batch_ops) while a
 *	  job of this database is running; after ALTER EXTENSION batch_ops
 *	  UPDATE, start the jobs that waited for it.
 *
 * A job worker writes the job tables in every chunk.  DROP EXTENSION
 * locks the extension's objects one by one as it finds them, so a DROP
 * that meets a running job would wait for a table the worker holds while
 * the worker waits for one the DROP already holds: a deadlock, which one
 * of the two loses after deadlock_timeout.  A ProcessUtility hook looks
 * before the DROP locks anything:
 *
 * 1. it takes the job queue's lock itself, without waiting: if a worker
 *    is in a transaction on the job tables (claiming, writing a chunk,
 *    purging), the DROP fails at once; once the DROP has the lock, no
 *    worker can claim a job until the DROP has committed (a worker that
 *    tries waits, then finds no table and exits);
 * 2. then it reads the workers' slots in shared memory: a worker sets its
 *    slot's job id before its claim commits (job_worker.c), so a job claimed
 *    before step 1 is seen here, and the DROP fails naming it, with a
 *    hint to cancel it or wait.
 *
 * Locking: the slots are read under the jobs spinlock, copied to a local
 * array; nothing else is done while it is held.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "drop_guard.h"
#include "job_shmem.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* The schema of batch_ops in this database, or InvalidOid. */
static Oid
extension_schema(void)
{
	Oid			ext = get_extension_oid("batch_ops", true);
	Oid			nsp = InvalidOid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(ext))
		return InvalidOid;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/* Does this DROP name batch_ops, or the schema its tables live in? */
static bool
drops_batch_ops(Node *parsetree, Oid ext_nsp)
{
	DropStmt   *stmt;
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt))
		return false;
	stmt = (DropStmt *) parsetree;
	if (stmt->removeType != OBJECT_EXTENSION && stmt->removeType != OBJECT_SCHEMA)
		return false;
	foreach(lc, stmt->objects)
	{
		const char *name = strVal(lfirst(lc));

		if (stmt->removeType == OBJECT_EXTENSION ?
			strcmp(name, "batch_ops") == 0 :
			get_namespace_oid(name, true) == ext_nsp)
			return true;
	}
	return false;
}

/* The ids of the jobs that workers of this database are running. */
static int
running_jobs(int64 *ids, int max)
{
	int			n = 0;
	int			i;

	SpinLockAcquire(&jobs_shared->mutex);
	for (i = 0; i < jobs_shared->nslots && n < max; i++)
	{
		JobWorkerSlot *slot = &jobs_shared->slots[i];

		if (slot->in_use && slot->dboid == MyDatabaseId && slot->job_id != 0)
			ids[n++] = slot->job_id;
	}
	SpinLockRelease(&jobs_shared->mutex);
	return n;
}

/*
 * Fail the DROP, before it locks anything, if a worker of this database is
 * using the job tables or running a job: steps 1 and 2 of the header.
 */
static void
refuse_drop_while_jobs_run(Oid ext_nsp)
{
	Oid			queue = get_relname_relid("job_queue", ext_nsp);
	int64		ids[64];
	int			n;
	int			i;
	StringInfoData list;

	if (OidIsValid(queue) && !ConditionalLockRelationOid(queue, AccessExclusiveLock))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot drop extension batch_ops while a job worker is using its tables"),
				 errhint("Cancel the running jobs with batch_ops.cancel_job(), or wait for them to finish, then try again.")));

	n = running_jobs(ids, lengthof(ids));
	if (n == 0)
		return;
	initStringInfo(&list);
	for (i = 0; i < n; i++)
		appendStringInfo(&list, "%s" INT64_FORMAT, i > 0 ? ", " : "", ids[i]);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("cannot drop extension batch_ops while jobs are running in this database"),
			 errdetail_plural("Job %s is running.", "Jobs %s are running.", n, list.data),
			 errhint("Cancel them with batch_ops.cancel_job(), or wait for them to finish, then try again.")));
}

/*
 * The ProcessUtility hook: look at a DROP of batch_ops (or of its schema)
 * first, then hand every statement on.  Without the preloaded library there
 * are no job workers to collide with, and nothing is checked.
 */
static void
drop_guard_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (jobs_preloaded() && IsA(parsetree, DropStmt))
	{
		Oid			ext_nsp = extension_schema();

		if (OidIsValid(ext_nsp) && drops_batch_ops(parsetree, ext_nsp))
			refuse_drop_while_jobs_run(ext_nsp);
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/*
	 * Jobs wait while the database's SQL objects are at another version
	 * than the library (job_store.c): wake the launcher when the update
	 * commits rather than leave them to its next poll.
	 */
	if (jobs_preloaded() && IsA(parsetree, AlterExtensionStmt) &&
		strcmp(((AlterExtensionStmt *) parsetree)->extname, "batch_ops") == 0)
		jobs_wake_database_at_commit();
}

/* Install the hook, chained after any earlier one; called from _PG_init. */
void
drop_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = drop_guard_utility;
}
