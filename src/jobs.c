/*-------------------------------------------------------------------------
 *
 * jobs.c
 *	  The async job queue: settings, shared memory, and the SQL API
 *	  (submit_import, submit_batch, job, wait_job, cancel_job, job_errors
 *	  and the rows behind the view batch_ops.jobs).
 *
 * Jobs live in tables of the extension's schema in each database
 * (batch_ops.job_queue, batch_ops.job_error, batch_ops.job_item), which
 * PUBLIC cannot read.  The SQL functions are SECURITY INVOKER like every
 * other batch_ops function: they check what the caller may do (file or
 * URL access, the privilege on the target table) as the caller, then
 * reach the tables as their owner (SetUserIdAndSecContext, with
 * search_path pinned to pg_catalog as a SECURITY DEFINER function would
 * have it) and show a role only its own jobs; a superuser sees all.
 *
 * Waking the workers: a submit remembers that this database has new
 * work; when the transaction commits, an xact callback sets a flag for
 * the database in shared memory and the launcher's latch (worker.c), so
 * a job starts without polling delay and never before it is visible.
 * cancel_job() likewise tells the worker running the job at commit, by a
 * flag in its shared-memory slot and its latch; the row's
 * cancel_requested covers a worker that starts later.
 *
 * Shared memory: one small JobsShared struct (launcher, pending
 * databases, one slot per job worker) under a spinlock, requested and
 * initialised in chained hooks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "idempotency.h"
#include "jobs.h"
#include "sql_quote.h"

PG_FUNCTION_INFO_V1(batch_ops_submit_import);
PG_FUNCTION_INFO_V1(batch_ops_submit_batch);
PG_FUNCTION_INFO_V1(batch_ops_purge);
PG_FUNCTION_INFO_V1(batch_ops_job);
PG_FUNCTION_INFO_V1(batch_ops_wait_job);
PG_FUNCTION_INFO_V1(batch_ops_cancel_job);
PG_FUNCTION_INFO_V1(batch_ops_job_errors);
PG_FUNCTION_INFO_V1(batch_ops_job_list);

int			batch_ops_max_workers = 2;
int			batch_ops_max_async_items = 1000000;
int			batch_ops_job_ttl = 7 * 24 * 3600;
int			batch_ops_poll_interval = 60;

JobsShared *jobs_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* What this transaction asks for at commit. */
static bool xact_callback_registered = false;
static bool wake_at_commit = false;
static List *submitted_in_xact = NIL;	/* job ids, for wait_job */
static List *cancel_at_commit = NIL;	/* job ids */

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */
static Size
jobs_shmem_size(void)
{
	return add_size(offsetof(JobsShared, slots),
					mul_size(sizeof(JobWorkerSlot), batch_ops_max_workers));
}

static void
jobs_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(jobs_shmem_size());
}

static void
jobs_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jobs_shared = ShmemInitStruct("batch_ops jobs", jobs_shmem_size(), &found);
	if (!found)
	{
		memset(jobs_shared, 0, jobs_shmem_size());
		SpinLockInit(&jobs_shared->mutex);
		jobs_shared->nslots = batch_ops_max_workers;
		/* after a restart, look for jobs to resume everywhere */
		jobs_shared->scan_all = true;
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
jobs_preloaded(void)
{
	return jobs_shared != NULL;
}

static void
require_preload(void)
{
	if (!jobs_preloaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("batch_ops must be loaded via shared_preload_libraries to run async jobs"),
				 errhint("Add batch_ops to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Tell the launcher that a database has queued work. */
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
 * while it runs a job's work (worker.c).
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
			foreach(lc, cancel_at_commit)
				cancel_running_job(*(int64 *) lfirst(lc));
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
	submitted_in_xact = NIL;
	cancel_at_commit = NIL;
}

static void
remember_in_xact(List **list, int64 id)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	int64	   *p = palloc(sizeof(int64));

	*p = id;
	*list = lappend(*list, p);
	MemoryContextSwitchTo(old);
	if (!xact_callback_registered)
	{
		RegisterXactCallback(jobs_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/* ---------------------------------------------------------------------
 * Settings and module load
 * ---------------------------------------------------------------------
 */
void
jobs_init(void)
{
	DefineCustomIntVariable("batch_ops.max_async_items",
							"Maximum number of items in one submit_batch job.",
							NULL,
							&batch_ops_max_async_items,
							1000000, 0, INT_MAX / 2,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.job_ttl",
							"How long finished jobs and their errors are kept.",
							NULL,
							&batch_ops_job_ttl,
							7 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.poll_interval",
							"How often the launcher looks for queued jobs in every database.",
							"Submitted jobs wake a worker when their transaction commits; this poll is only a safety net.",
							&batch_ops_poll_interval,
							60, 1, 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	source_init();

	/* a PGC_POSTMASTER setting can only be defined while preloading */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("batch_ops.max_workers",
							"Maximum number of job workers running at once.",
							"Each takes a background worker slot (max_worker_processes).",
							&batch_ops_max_workers,
							2, 1, 64,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = jobs_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = jobs_shmem_startup;

	if (!IsBinaryUpgrade)
		jobs_register_launcher();
}

/* ---------------------------------------------------------------------
 * Reaching the job tables
 * ---------------------------------------------------------------------
 */
/* Set a setting until the GUC nest level of the caller is unwound. */
static void
pin_setting(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

static Oid
jobs_table_owner(void)
{
	Oid			nsp = get_namespace_oid("batch_ops", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("job_queue", nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the batch_ops job tables do not exist in this database"),
				 errhint("Run CREATE EXTENSION batch_ops.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Reach the job tables as their owner, as a SECURITY DEFINER function
 * with "SET search_path = pg_catalog, pg_temp" would: names in the
 * statements resolve in pg_catalog whatever the caller's (or, in a job
 * worker, the database's or the submitter's) search_path says.  The
 * timeouts are pinned too, so that a role's own statement_timeout or
 * lock_timeout cannot cut a job's bookkeeping in half.  Undone by
 * jobs_owner_end().
 */
void
jobs_owner_begin(OwnerSwitch *sw)
{
	Oid			owner = jobs_table_owner();

	GetUserIdAndSecContext(&sw->save_user, &sw->save_sec);
	SetUserIdAndSecContext(owner, sw->save_sec | SECURITY_LOCAL_USERID_CHANGE);
	sw->nestlevel = NewGUCNestLevel();
	pin_setting("search_path", "pg_catalog, pg_temp");
	pin_setting("statement_timeout", "0");
	pin_setting("lock_timeout", "0");
}

void
jobs_owner_end(OwnerSwitch *sw)
{
	AtEOXact_GUC(true, sw->nestlevel);
	SetUserIdAndSecContext(sw->save_user, sw->save_sec);
}

static void
spi_exec(const char *sql, int nargs, Oid *types, Datum *values,
		 const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed (%d): %s", rc, sql);
}

/* One statement on the job tables, as their owner; returns SPI_processed. */
static uint64
spi_exec_as_owner(const char *sql, int nargs, Oid *types, Datum *values,
				  const char *nulls, int expected)
{
	OwnerSwitch sw;
	uint64		n;

	jobs_owner_begin(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_exec(sql, nargs, types, values, nulls, expected);
	n = SPI_processed;
	SPI_finish();
	jobs_owner_end(&sw);
	return n;
}

/* ---------------------------------------------------------------------
 * Arguments
 * ---------------------------------------------------------------------
 */
static void
arg_not_null(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

static void
check_target(Oid relid, AclMode mode, const char *privname)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot run a job on relation \"%s\"", get_rel_name(relid)),
				 errdetail("Only tables and partitioned tables can be job targets.")));
	/* a worker's session cannot see this session's temporary tables */
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot run a job on temporary table \"%s\"", get_rel_name(relid)),
				 errdetail("Jobs run in a background worker's session, which cannot see the temporary tables of this session."),
				 errhint("Use a permanent or unlogged table, or call the batch functions in this session.")));
	/*
	 * As for the batch functions, privileges on some columns are enough for
	 * INSERT and UPDATE: each item is then checked column by column.
	 */
	if (pg_class_aclcheck(relid, GetUserId(), mode) != ACLCHECK_OK &&
		(mode == ACL_DELETE ||
		 pg_attribute_aclcheck_all(relid, GetUserId(), mode, ACLMASK_ANY) != ACLCHECK_OK))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("Jobs run as the role that submits them, which needs %s privilege on the table or some of its columns.",
						   privname)));
}

/* ---------------------------------------------------------------------
 * Submit
 * ---------------------------------------------------------------------
 */
static int64
insert_job(const char *kind, BatchOp op, Oid relid, const char *source,
		   Jsonb *options, bool atomic, int64 items_total)
{
	OwnerSwitch sw;
	Oid			types[8] = {OIDOID, TEXTOID, TEXTOID, OIDOID, TEXTOID, JSONBOID,
	BOOLOID, INT8OID};
	Datum		values[8];
	char		nulls[8] = "        ";
	Oid			role = GetUserId();
	int64		id;
	bool		isnull;

	values[0] = ObjectIdGetDatum(role);
	values[1] = CStringGetTextDatum(kind);
	values[2] = CStringGetTextDatum(op == BATCH_CREATE ? "create" :
									op == BATCH_UPDATE ? "update" : "delete");
	values[3] = ObjectIdGetDatum(relid);
	if (source)
		values[4] = CStringGetTextDatum(source);
	else
		nulls[4] = 'n';
	values[5] = JsonbPGetDatum(options);
	values[6] = BoolGetDatum(atomic);
	values[7] = Int64GetDatum(items_total);
	if (items_total < 0)
		nulls[7] = 'n';

	jobs_owner_begin(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_exec("INSERT INTO batch_ops.job_queue"
			 " (role, kind, operation, target, source, options, atomic, items_total)"
			 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
			 8, types, values, nulls, SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									 1, &isnull));
	SPI_finish();
	jobs_owner_end(&sw);

	remember_in_xact(&submitted_in_xact, id);
	wake_at_commit = true;
	return id;
}

Datum
batch_ops_submit_import(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *source;
	Jsonb	   *options;
	ImportOptions opts;

	require_preload();
	arg_not_null(fcinfo, 0, "target");
	arg_not_null(fcinfo, 1, "source");
	relid = PG_GETARG_OID(0);
	source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	options = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	if (options == NULL)
		options = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));

	import_options_parse(options, &opts);
	check_target(relid, ACL_INSERT, "INSERT");
	source_check_access(source, GetUserId());

	PG_RETURN_INT64(insert_job("import", BATCH_CREATE, relid, source, options,
							   opts.atomic, -1));
}

/* ---------------------------------------------------------------------
 * Purge
 * ---------------------------------------------------------------------
 */

/* Delete finished jobs (and so their errors) older than batch_ops.job_ttl. */
int64
jobs_purge(void)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];

	values[0] = Int32GetDatum(batch_ops_job_ttl);
	return (int64) spi_exec_as_owner("DELETE FROM batch_ops.job_queue"
									 " WHERE status" SQL_EQ "ANY ('{completed,failed,cancelled}'::pg_catalog.text[])"
									 " AND finished_at" SQL_LT "(pg_catalog.now()" SQL_MINUS
									 "pg_catalog.make_interval(secs => $1))",
									 1, types, values, NULL, SPI_OK_DELETE);
}

/*
 * batch_ops.purge() RETURNS bigint
 *
 * Deletes the expired idempotency keys of every role and the finished jobs
 * past batch_ops.job_ttl of every role; returns how many of both.  Expired
 * keys are already ignored by the batch functions, so this only reclaims
 * space.  Not executable by PUBLIC.
 */
Datum
batch_ops_purge(PG_FUNCTION_ARGS)
{
	int64		n = idempotency_purge();

	PG_RETURN_INT64(n + jobs_purge());
}

/* ---------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------
 */

/* Call fn for each key of the options object, with its value. */
void
job_options_foreach(Jsonb *options, JobOptionFn fn, void *arg)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	val;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(key.val.string.val, key.val.string.len);
		(void) JsonbIteratorNext(&it, &val, true);
		fn(name, &val, arg);
	}
}

bool
job_option_bool(const char *name, JsonbValue *val)
{
	if (val->type != jbvBool)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a boolean (true or false)", name)));
	return val->val.boolean;
}

/*
 * An integer option in [min, max].  The number is compared as a numeric,
 * so that a fraction, 1e30 or -1e30 get this message rather than a cast
 * error; anything but a JSON number (a string "10", "NaN") is refused.
 */
int64
job_option_int(const char *name, JsonbValue *val, int64 min, int64 max)
{
	Datum		num;

	if (val->type == jbvNumeric)
	{
		num = NumericGetDatum(val->val.numeric);
		if (DatumGetBool(DirectFunctionCall2(numeric_eq, num,
											 DirectFunctionCall1(numeric_floor, num))) &&
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, num,
											  DirectFunctionCall1(int8_numeric, Int64GetDatum(min)))) >= 0 &&
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, num,
											  DirectFunctionCall1(int8_numeric, Int64GetDatum(max)))) <= 0)
			return DatumGetInt64(DirectFunctionCall1(numeric_int8, num));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
					name, min, max),
			 errdetail("The value given is %s.",
					   JsonbToCString(NULL, &JsonbValueToJsonb(val)->root, -1))));
	return 0;					/* keep the compiler quiet */
}

static void
batch_option(const char *name, JsonbValue *val, void *arg)
{
	BatchOptions *o = arg;

	if (strcmp(name, "atomic") == 0)
		o->atomic = job_option_bool(name, val);
	else if (strcmp(name, "chunk_size") == 0)
		o->chunk_size = (int) job_option_int(name, val, 1, 100000);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\"", name),
				 errhint("Valid options for submit_batch are: atomic, chunk_size.")));
}

/* The options of submit_batch, checked at submit and read by the worker. */
void
batch_options_parse(Jsonb *options, BatchOptions *o)
{
	o->atomic = false;
	o->chunk_size = 1000;
	job_options_foreach(options, batch_option, o);
}

Datum
batch_ops_submit_batch(PG_FUNCTION_ARGS)
{
	char	   *opname;
	Oid			relid;
	Jsonb	   *items;
	Jsonb	   *options;
	BatchOp		op;
	BatchOptions opts;
	int			n;
	int64		id;
	Oid			types[2] = {INT8OID, JSONBOID};
	Datum		values[2];

	require_preload();
	arg_not_null(fcinfo, 0, "operation");
	arg_not_null(fcinfo, 1, "target");
	arg_not_null(fcinfo, 2, "items");
	opname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	items = PG_GETARG_JSONB_P(2);
	options = PG_ARGISNULL(3) ?
		DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P(3);

	if (strcmp(opname, "create") == 0)
		op = BATCH_CREATE;
	else if (strcmp(opname, "update") == 0)
		op = BATCH_UPDATE;
	else if (strcmp(opname, "delete") == 0)
		op = BATCH_DELETE;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown operation \"%s\"", opname),
				 errhint("The operation is one of create, update, delete.")));
	batch_options_parse(options, &opts);

	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must be a JSON array")));
	n = JB_ROOT_COUNT(items);
	if (n > batch_ops_max_async_items)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("batch of %d items exceeds the limit of %d", n,
						batch_ops_max_async_items),
				 errdetail("The limit is set by batch_ops.max_async_items."),
				 errhint("Split the items into several jobs.")));
	switch (op)
	{
		case BATCH_CREATE:
			check_target(relid, ACL_INSERT, "INSERT");
			break;
		case BATCH_UPDATE:
			check_target(relid, ACL_UPDATE, "UPDATE");
			break;
		case BATCH_DELETE:
			check_target(relid, ACL_DELETE, "DELETE");
			break;
	}

	id = insert_job("batch", op, relid, NULL, options, opts.atomic, n);

	values[0] = Int64GetDatum(id);
	values[1] = JsonbPGetDatum(items);
	(void) spi_exec_as_owner("INSERT INTO batch_ops.job_item (job_id, idx, item)"
							 " SELECT $1, o" SQL_MINUS "1, v FROM pg_catalog.jsonb_array_elements($2)"
							 " WITH ORDINALITY AS e(v, o)",
							 2, types, values, NULL, SPI_OK_INSERT);

	PG_RETURN_INT64(id);
}

/* ---------------------------------------------------------------------
 * Looking at jobs
 * ---------------------------------------------------------------------
 */

/*
 * The caller's own job, as the owner sees it: run a query whose $1 is
 * the job id, $2 "sees every job" and $3 the caller, and which returns
 * nothing for someone else's job.  Leaves SPI connected and the owner
 * switched: the caller calls lookup_end().
 */
static void
lookup_begin(OwnerSwitch *sw, const char *sql, int64 job_id, int expected)
{
	Oid			types[3] = {INT8OID, BOOLOID, OIDOID};
	Datum		values[3];
	Oid			caller = GetUserId();

	values[0] = Int64GetDatum(job_id);
	values[1] = BoolGetDatum(superuser_arg(caller));
	values[2] = ObjectIdGetDatum(caller);
	jobs_owner_begin(sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_exec(sql, 3, types, values, NULL, expected);
}

static void
lookup_end(OwnerSwitch *sw)
{
	SPI_finish();
	jobs_owner_end(sw);
}

static void
job_not_found(int64 job_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("job " INT64_FORMAT " does not exist", job_id),
			 errdetail("A role sees only the jobs it submitted.")));
}

#define OWN_JOB " (j.id" SQL_EQ "$1 AND ($2 OR j.role" SQL_EQ "$3)) "

static const char *job_json_sql =
"SELECT pg_catalog.jsonb_build_object("
"  'job_id', j.id, 'kind', j.kind, 'operation', j.operation,"
"  'target', j.target::pg_catalog.regclass::pg_catalog.text,"
"  'source', j.source, 'status', j.status, 'progress', j.progress,"
"  'rows_done', j.rows_done, 'atomic', j.atomic, 'error', j.error,"
"  'submitted_by', coalesce(pg_catalog.pg_get_userbyid(j.role)::pg_catalog.text,"
"                            j.role::pg_catalog.text),"
"  'submitted_at', j.submitted_at, 'started_at', j.started_at,"
"  'finished_at', j.finished_at,"
"  'results', pg_catalog.jsonb_build_object('created', j.created, 'updated', j.updated,"
"     'deleted', j.deleted, 'failed', j.failed, 'errors_total', j.errors_total,"
"     'errors', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_strip_nulls("
"            pg_catalog.jsonb_build_object("
"            'line', e.line, 'index', e.index, 'error', e.error,"
"            'message', e.message, 'sqlstate', e.sqlstate, 'detail', e.detail,"
"            'raw', e.raw)) ORDER BY e.pos)"
"          FROM (SELECT * FROM batch_ops.job_error e WHERE e.job_id" SQL_EQ "j.id"
"                ORDER BY e.pos LIMIT 100) e), '[]'::pg_catalog.jsonb)))"
" FROM batch_ops.job_queue j WHERE" OWN_JOB;

static Jsonb *
job_json(int64 job_id, bool *finished)
{
	OwnerSwitch sw;
	Jsonb	   *result;
	bool		isnull;
	MemoryContext caller = CurrentMemoryContext;

	lookup_begin(&sw, job_json_sql, job_id, SPI_OK_SELECT);
	if (SPI_processed == 0)
		job_not_found(job_id);
	result = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		result = DatumGetJsonbPCopy(PointerGetDatum(result));
		MemoryContextSwitchTo(old);
	}
	if (finished)
	{
		JsonbValue *st = getKeyJsonValueFromContainer(&result->root, "status", 6, NULL);

		*finished = st && st->type == jbvString &&
			!(st->val.string.len == 6 && strncmp(st->val.string.val, "queued", 6) == 0) &&
			!(st->val.string.len == 7 && strncmp(st->val.string.val, "running", 7) == 0);
	}
	lookup_end(&sw);
	return result;
}

Datum
batch_ops_job(PG_FUNCTION_ARGS)
{
	arg_not_null(fcinfo, 0, "job_id");
	PG_RETURN_JSONB_P(job_json(PG_GETARG_INT64(0), NULL));
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

Datum
batch_ops_wait_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	Interval   *timeout;
	TimestampTz deadline;
	long		sleep_ms = 5;
	ListCell   *lc;
	Jsonb	   *result;
	bool		finished;

	arg_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	timeout = PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1);

	foreach(lc, submitted_in_xact)
		if (*(int64 *) lfirst(lc) == job_id)
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

		result = job_json(job_id, &finished);
		if (finished)
			break;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (timeout && left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout ? Min(sleep_ms, left) : sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		sleep_ms = Min(sleep_ms * 2, 100);
	}
	PG_RETURN_JSONB_P(result);
}

Datum
batch_ops_cancel_job(PG_FUNCTION_ARGS)
{
	OwnerSwitch sw;
	int64		job_id;
	char	   *status;
	bool		result;

	arg_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);

	/* queued: cancelled at once; running: the worker stops at commit */
	lookup_begin(&sw,
				 "UPDATE batch_ops.job_queue j SET"
				 "  cancel_requested = j.status" SQL_EQ "ANY ('{queued,running}'::pg_catalog.text[]),"
				 "  status = CASE WHEN j.status" SQL_EQ "'queued' THEN 'cancelled' ELSE j.status END,"
				 "  finished_at = CASE WHEN j.status" SQL_EQ "'queued' THEN pg_catalog.now()"
				 "    ELSE j.finished_at END"
				 " WHERE" OWN_JOB
				 " RETURNING (SELECT o.status FROM batch_ops.job_queue o WHERE o.id" SQL_EQ "j.id)",
				 job_id, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
		job_not_found(job_id);
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	lookup_end(&sw);

	result = strcmp(status, "queued") == 0 || strcmp(status, "running") == 0;
	if (strcmp(status, "queued") == 0)
		notify_job_status(job_id, "cancelled");
	if (result && jobs_preloaded())
		remember_in_xact(&cancel_at_commit, job_id);
	PG_RETURN_BOOL(result);
}

/* NOTIFY batch_ops_jobs, '{"job_id": n, "status": "..."}' */
void
notify_job_status(int64 job_id, const char *status)
{
	char	   *payload = psprintf("{\"job_id\": " INT64_FORMAT ", \"status\": \"%s\"}",
								   job_id, status);

	Async_Notify("batch_ops_jobs", payload);
}

/* Copy every row of an open cursor into the function's result set. */
static void
cursor_to_tuplestore(FunctionCallInfo fcinfo, Portal portal)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			natts = rsinfo->setDesc->natts;
	Datum	   *values = palloc(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);

	for (;;)
	{
		uint64		r;

		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (r = 0; r < SPI_processed; r++)
		{
			int			a;

			for (a = 0; a < natts; a++)
				values[a] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
										  a + 1, &nulls[a]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}

Datum
batch_ops_job_errors(PG_FUNCTION_ARGS)
{
	OwnerSwitch sw;
	int64		job_id;
	Portal		portal;
	Oid			types[3] = {INT8OID, BOOLOID, OIDOID};
	Datum		values[3];
	Oid			caller = GetUserId();

	arg_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	InitMaterializedSRF(fcinfo, 0);

	/* not found is an error, as for job() */
	lookup_begin(&sw, "SELECT 1 FROM batch_ops.job_queue j WHERE" OWN_JOB,
				 job_id, SPI_OK_SELECT);
	if (SPI_processed == 0)
		job_not_found(job_id);

	values[0] = Int64GetDatum(job_id);
	values[1] = BoolGetDatum(superuser_arg(caller));
	values[2] = ObjectIdGetDatum(caller);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT e.line, e.index::pg_catalog.int4, e.error, e.message, e.raw"
									   " FROM batch_ops.job_error e"
									   " WHERE e.job_id" SQL_EQ "$1 ORDER BY e.pos",
									   3, types, values, NULL, true, 0);
	cursor_to_tuplestore(fcinfo, portal);
	lookup_end(&sw);
	return (Datum) 0;
}

Datum
batch_ops_job_list(PG_FUNCTION_ARGS)
{
	OwnerSwitch sw;
	Portal		portal;
	Oid			types[2] = {BOOLOID, OIDOID};
	Datum		values[2];
	Oid			caller = GetUserId();

	InitMaterializedSRF(fcinfo, 0);
	values[0] = BoolGetDatum(superuser_arg(caller));
	values[1] = ObjectIdGetDatum(caller);
	jobs_owner_begin(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT j.id, j.kind, j.operation,"
									   "  j.target::pg_catalog.regclass::pg_catalog.text,"
									   "  j.source, j.status, j.progress, j.rows_done,"
									   "  j.created, j.updated, j.deleted, j.failed, j.errors_total,"
									   "  j.error, coalesce(pg_catalog.pg_get_userbyid(j.role)::pg_catalog.text,"
									   "                    j.role::pg_catalog.text),"
									   "  j.options, j.submitted_at, j.started_at, j.finished_at"
									   " FROM batch_ops.job_queue j"
									   " WHERE $1 OR j.role" SQL_EQ "$2 ORDER BY j.id",
									   2, types, values, NULL, true, 0);
	cursor_to_tuplestore(fcinfo, portal);
	SPI_finish();
	jobs_owner_end(&sw);
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * Errors of a chunk
 * ---------------------------------------------------------------------
 */
#define RAW_LIMIT 1024

void
chunk_add_error(ChunkResult *res, int64 line, int64 index, const char *name,
				const char *message, const char *sqlstate, const char *detail,
				const char *raw, int rawlen)
{
	int			n = res->nerrors;
	MemoryContext old = MemoryContextSwitchTo(res->cxt ? res->cxt : CurrentMemoryContext);

	if (n == res->err_alloc)
	{
		int			alloc = Max(16, n * 2);

		if (n == 0)
		{
			res->err_line = palloc(sizeof(int64) * alloc);
			res->err_index = palloc(sizeof(int64) * alloc);
			res->err_name = palloc(sizeof(char *) * alloc);
			res->err_message = palloc(sizeof(char *) * alloc);
			res->err_sqlstate = palloc(sizeof(char *) * alloc);
			res->err_detail = palloc(sizeof(char *) * alloc);
			res->err_raw = palloc(sizeof(char *) * alloc);
		}
		else
		{
			res->err_line = repalloc(res->err_line, sizeof(int64) * alloc);
			res->err_index = repalloc(res->err_index, sizeof(int64) * alloc);
			res->err_name = repalloc(res->err_name, sizeof(char *) * alloc);
			res->err_message = repalloc(res->err_message, sizeof(char *) * alloc);
			res->err_sqlstate = repalloc(res->err_sqlstate, sizeof(char *) * alloc);
			res->err_detail = repalloc(res->err_detail, sizeof(char *) * alloc);
			res->err_raw = repalloc(res->err_raw, sizeof(char *) * alloc);
		}
		res->err_alloc = alloc;
	}
	res->err_line[n] = line;
	res->err_index[n] = index;
	res->err_name[n] = pstrdup(name ? name : "validation_error");

	/*
	 * Every text is stored valid in the database encoding, whatever bytes
	 * it came with, so that job(), job_errors() and the jobs view can be
	 * read with any client encoding: a byte that is not part of a valid
	 * character is written \xNN.  (Imports convert a record from the
	 * file's encoding first; what is left here is a safety net.)  The raw
	 * text is cut to 1 kB, on a character boundary.
	 */
	message = message ? message : "";
	res->err_message[n] = job_raw_text(message, strlen(message),
									   GetDatabaseEncoding(), MaxAllocSize / 8);
	res->err_sqlstate[n] = sqlstate ? pstrdup(sqlstate) : NULL;
	res->err_detail[n] = detail ?
		job_raw_text(detail, strlen(detail), GetDatabaseEncoding(), MaxAllocSize / 8) :
		NULL;
	if (raw)
		res->err_raw[n] = job_raw_text(raw, rawlen < 0 ? strlen(raw) : rawlen,
									   GetDatabaseEncoding(), RAW_LIMIT);
	else
		res->err_raw[n] = NULL;
	res->nerrors++;
	res->failed++;
	MemoryContextSwitchTo(old);
}

/* "applied" (or "deleted") of a batch_run() response */
int64
jsonb_get_applied(Jsonb *response)
{
	JsonbValue	v;

	if ((getKeyJsonValueFromContainer(&response->root, "applied", 7, &v) ||
		 getKeyJsonValueFromContainer(&response->root, "deleted", 7, &v)) &&
		v.type == jbvNumeric)
		return DatumGetInt64(DirectFunctionCall1(numeric_int8,
												 NumericGetDatum(v.val.numeric)));
	return 0;
}

static char *
jsonb_string_field(JsonbContainer *obj, const char *key)
{
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(obj, key, strlen(key), &v))
		return NULL;
	if (v.type == jbvString)
		return pnstrdup(v.val.string.val, v.val.string.len);
	if (v.type == jbvNull)
		return NULL;
	return JsonbToCString(NULL, &JsonbValueToJsonb(&v)->root, -1);
}

/*
 * Errors of a batch_run() response, by item index: lines and raws give
 * each item's file line and text (imports), or index_base is added to
 * the index (batches; the raw text is the item).
 */
void
chunk_add_response_errors(ChunkResult *res, Jsonb *response,
						  const int64 *lines, char **raws, const int *rawlens,
						  int64 index_base)
{
	JsonbValue	errors;
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;

	if (!getKeyJsonValueFromContainer(&response->root, "errors", 6, &errors) ||
		errors.type != jbvBinary)
		return;
	it = JsonbIteratorInit(errors.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		JsonbContainer *e;
		JsonbValue	v;
		int64		index = 0;

		if (tok != WJB_ELEM || elem.type != jbvBinary)
			continue;
		e = elem.val.binary.data;
		if (getKeyJsonValueFromContainer(e, "index", 5, &v) && v.type == jbvNumeric)
			index = DatumGetInt64(DirectFunctionCall1(numeric_int8,
													  NumericGetDatum(v.val.numeric)));
		if (lines)
			chunk_add_error(res, lines[index], -1,
							jsonb_string_field(e, "error"),
							jsonb_string_field(e, "message"),
							jsonb_string_field(e, "sqlstate"),
							jsonb_string_field(e, "detail"),
							raws[index], rawlens[index]);
		else
		{
			char	   *raw = jsonb_string_field(e, "item");

			if (raw == NULL)
				raw = jsonb_string_field(e, "id");
			chunk_add_error(res, 0, index_base + index,
							jsonb_string_field(e, "error"),
							jsonb_string_field(e, "message"),
							jsonb_string_field(e, "sqlstate"),
							jsonb_string_field(e, "detail"),
							raw, -1);
		}
	}
}
