/*-------------------------------------------------------------------------
 *
 * job_store.c
 *	  The job tables: every statement batch_ops runs on them.
 *
 * The tables (batch_ops.job_queue, job_error, job_item) are in the
 * extension's schema of each database, and PUBLIC cannot read them.  The
 * SQL functions are SECURITY INVOKER; what the caller may do is checked
 * as the caller (jobs_api.c, the kinds' check_submit), and only then are
 * the tables reached as their owner with a pinned search_path
 * (spi_util.c).  A role sees only its own jobs; a superuser sees all.
 *
 * Claiming: a queued or running row locked FOR UPDATE SKIP LOCKED, and a
 * session-level advisory lock on the job id held until the job is
 * finished, so that a job is run by one worker at a time and a "running"
 * job whose worker died (the lock went with it) is resumed from its
 * checkpoint.
 *
 * The row's checkpoint and summary are jsonb owned by the job's kind; the
 * store writes them as given (the summary merged key by key).  job() and
 * the jobs view read the counters created, updated, deleted and failed
 * from the summary.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/async.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"

#include "job_store.h"
#include "spi_util.h"
#include "sql_quote.h"

/* advisory lock tag field 4: not 1 or 2, which user advisory locks use */
#define JOB_LOCK_FIELD4 0x4A4F

int			batch_ops_job_ttl = 7 * 24 * 3600;

/* a summary counter as a jsonb number, 0 if absent */
#define SUMMARY_JSONB(key) \
	"coalesce(j.summary OPERATOR(pg_catalog.->) '" key "', '0'::pg_catalog.jsonb)"
/* and as a bigint */
#define SUMMARY_INT8(key) \
	"coalesce((j.summary OPERATOR(pg_catalog.->>) '" key "')::pg_catalog.int8, 0)"

/* the caller's own job: $1 the id, $2 "sees every job", $3 the caller */
#define OWN_JOB " (j.id" SQL_EQ "$1 AND ($2 OR j.role" SQL_EQ "$3)) "
#define OWN_JOB_ARGS 3, {INT8OID, BOOLOID, OIDOID}

/*
 * The version of batch_ops's SQL objects in this database (palloc'd), or
 * NULL if the extension is not there.  Read from pg_extension by OID, not
 * through SQL.
 */
static char *
installed_version(void)
{
	Oid			ext = get_extension_oid("batch_ops", true);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	if (!OidIsValid(ext))
		return NULL;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * Do the job tables have the shape this library's statements expect?
 * Only once ALTER EXTENSION batch_ops UPDATE has brought the database's
 * SQL objects to the library's version (README "Upgrading"); between the
 * restart on a new library and the update, jobs wait.  A yes is
 * remembered: versions only move forward.  In a transaction.
 */
bool
job_store_is_current(char **installed)
{
	static bool current = false;
	char	   *version;

	if (current)
		return true;
	version = installed_version();
	if (installed)
		*installed = version;
	current = version != NULL && strcmp(version, BATCH_OPS_VERSION) == 0;
	return current;
}

/* The SQL API's check: an ERROR telling what to run if not current. */
void
job_store_require_current(void)
{
	char	   *installed = NULL;

	if (!job_store_is_current(&installed))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("batch_ops's SQL objects in this database are at version %s, its library at version %s",
						installed ? installed : "(none)", BATCH_OPS_VERSION),
				 errhint("Run ALTER EXTENSION batch_ops UPDATE.")));
}

/* The setting of purge, defined with the others from _PG_init. */
void
job_store_init(void)
{
	DefineCustomIntVariable("batch_ops.job_ttl",
							"How long finished jobs and their errors are kept.",
							NULL,
							&batch_ops_job_ttl,
							7 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Submit
 * ---------------------------------------------------------------------
 */
static SpiStmt insert_stmt = {
	"INSERT INTO batch_ops.job_queue"
	" (role, kind, operation, target, source, options, atomic, summary)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
	SPI_OK_INSERT_RETURNING, 8,
	{OIDOID, TEXTOID, TEXTOID, OIDOID, TEXTOID, JSONBOID, BOOLOID, JSONBOID}
};

/* Queue a job for the current user; the row is seen once we commit. */
int64
job_store_insert(const char *kind, const char *operation, Oid target,
				 const char *source, Jsonb *options, bool atomic, Jsonb *summary)
{
	RoleSwitch	sw;
	Datum		values[8];
	char		nulls[8] = "        ";
	int64		id;
	bool		isnull;

	values[0] = ObjectIdGetDatum(GetUserId());
	values[1] = CStringGetTextDatum(kind);
	if (operation)
		values[2] = CStringGetTextDatum(operation);
	else
		nulls[2] = 'n';
	values[3] = ObjectIdGetDatum(target);
	if (!OidIsValid(target))
		nulls[3] = 'n';
	if (source)
		values[4] = CStringGetTextDatum(source);
	else
		nulls[4] = 'n';
	values[5] = JsonbPGetDatum(options);
	values[6] = BoolGetDatum(atomic);
	values[7] = JsonbPGetDatum(summary);

	job_tables_begin(&sw);
	spi_exec(&insert_stmt, values, nulls);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									 1, &isnull));
	job_tables_end(&sw);
	return id;
}

static SpiStmt insert_items_stmt = {
	"INSERT INTO batch_ops.job_item (job_id, idx, item)"
	" SELECT $1, o" SQL_MINUS "1, v FROM pg_catalog.jsonb_array_elements($2)"
	" WITH ORDINALITY AS e(v, o)",
	SPI_OK_INSERT, 2, {INT8OID, JSONBOID}
};

/* The items of a job (a JSON array), one row each, by position. */
void
job_store_insert_items(int64 job_id, Jsonb *items)
{
	RoleSwitch	sw;
	Datum		values[2];

	values[0] = Int64GetDatum(job_id);
	values[1] = JsonbPGetDatum(items);
	job_tables_begin(&sw);
	spi_exec(&insert_items_stmt, values, NULL);
	job_tables_end(&sw);
}

static SpiStmt fetch_items_stmt = {
	"SELECT item FROM batch_ops.job_item"
	" WHERE job_id" SQL_EQ "$1 AND idx" SQL_GE "$2 AND idx" SQL_LT "$3 ORDER BY idx",
	SPI_OK_SELECT, 3, {INT8OID, INT8OID, INT8OID}
};

/* Items [from, from + n) of a job as a JSON array, in the caller's context. */
Jsonb *
job_store_fetch_items(int64 job_id, int64 from, int n, int *count)
{
	MemoryContext caller = CurrentMemoryContext;
	RoleSwitch	sw;
	Datum		values[3];
	JsonbParseState *state = NULL;
	JsonbValue *array;
	Jsonb	   *result;
	uint64		r;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(from);
	values[2] = Int64GetDatum(from + n);
	job_tables_begin(&sw);
	spi_exec(&fetch_items_stmt, values, NULL);

	MemoryContextSwitchTo(caller);
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		Jsonb	   *item = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 1,
														&isnull));
		JsonbValue	v;

		if (JB_ROOT_IS_SCALAR(item))
			(void) JsonbExtractScalar(&item->root, &v);
		else
		{
			v.type = jbvBinary;
			v.val.binary.data = &item->root;
			v.val.binary.len = VARSIZE(item) - VARHDRSZ;
		}
		pushJsonbValue(&state, WJB_ELEM, &v);
	}
	array = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	result = JsonbValueToJsonb(array);
	*count = (int) SPI_processed;
	job_tables_end(&sw);
	MemoryContextSwitchTo(caller);
	return result;
}

/* ---------------------------------------------------------------------
 * Claim
 * ---------------------------------------------------------------------
 */

/* The session-level advisory lock that says "this worker runs the job". */
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

void
job_store_unlock(int64 job_id)
{
	(void) lock_job(job_id, false);
}

static SpiStmt candidates_stmt = {
	"SELECT id, role, kind, operation, target, source, options, atomic,"
	"  checkpoint, summary, errors_total, cancel_requested,"
	"  status" SQL_EQ "'running',"
	"  attempts,"
	"  EXISTS (SELECT FROM pg_catalog.pg_authid a WHERE a.oid" SQL_EQ "role),"
	"  EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid" SQL_EQ "target)"
	" FROM batch_ops.job_queue"
	" WHERE status" SQL_EQ "ANY ('{queued,running}'::pg_catalog.text[])"
	" ORDER BY id LIMIT 64 FOR UPDATE SKIP LOCKED",
	SPI_OK_SELECT, 0, {0}
};

static SpiStmt claim_stmt = {
	"UPDATE batch_ops.job_queue SET status = $2, error = $3,"
	" started_at = coalesce(started_at, pg_catalog.clock_timestamp()),"
	" finished_at = CASE WHEN $2" SQL_NE "'running'"
	"   THEN pg_catalog.clock_timestamp() END,"
	" worker_pid = pg_catalog.pg_backend_pid(), attempts = attempts" SQL_PLUS "1"
	" WHERE id" SQL_EQ "$1",
	SPI_OK_UPDATE, 3, {INT8OID, TEXTOID, TEXTOID}
};

/* Column att of a candidate as a C string in cxt, NULL for NULL. */
static char *
column_text(HeapTuple tup, TupleDesc desc, int att)
{
	return SPI_getvalue(tup, desc, att);
}

/* Column att as a bool, int4 or int8 (false, 0 for NULL). */
static Datum
column_datum(HeapTuple tup, TupleDesc desc, int att, bool *isnull)
{
	return SPI_getbinval(tup, desc, att, isnull);
}

/* Read a locked candidate into a JobRow allocated in the current context. */
static JobRow *
candidate_row(HeapTuple tup, TupleDesc desc)
{
	JobRow	   *row = palloc0(sizeof(JobRow));
	bool		isnull;
	Datum		d;

	row->id = DatumGetInt64(column_datum(tup, desc, 1, &isnull));
	row->role = DatumGetObjectId(column_datum(tup, desc, 2, &isnull));
	row->kind = column_text(tup, desc, 3);
	row->operation = column_text(tup, desc, 4);
	d = column_datum(tup, desc, 5, &isnull);
	row->target = isnull ? InvalidOid : DatumGetObjectId(d);
	row->source = column_text(tup, desc, 6);
	row->options = DatumGetJsonbPCopy(column_datum(tup, desc, 7, &isnull));
	row->atomic = DatumGetBool(column_datum(tup, desc, 8, &isnull));
	row->checkpoint = DatumGetJsonbPCopy(column_datum(tup, desc, 9, &isnull));
	row->summary = DatumGetJsonbPCopy(column_datum(tup, desc, 10, &isnull));
	row->errors_total = DatumGetInt64(column_datum(tup, desc, 11, &isnull));
	row->cancel_requested = DatumGetBool(column_datum(tup, desc, 12, &isnull));
	row->was_running = DatumGetBool(column_datum(tup, desc, 13, &isnull));
	row->attempts = DatumGetInt32(column_datum(tup, desc, 14, &isnull));
	row->role_exists = DatumGetBool(column_datum(tup, desc, 15, &isnull));
	row->target_exists = DatumGetBool(column_datum(tup, desc, 16, &isnull));
	return row;
}

/*
 * Claim the next job of this database, or return NULL.  Candidates are
 * locked one by one; check() says whether to run one or to finish it at
 * once (its NOTIFY then goes with the caller's commit).  The claimed job
 * is marked running and locked (advisory, session level); *queued counts
 * the other candidates, for which the caller asks for another worker.
 */
JobRow *
job_store_claim(JobClaimCheck check, MemoryContext cxt, int *queued)
{
	RoleSwitch	sw;
	JobRow	   *job = NULL;
	SPITupleTable *candidates;
	uint64		ncandidates;
	uint64		r;

	*queued = 0;
	job_tables_begin(&sw);
	spi_exec(&candidates_stmt, NULL, NULL);
	/* the UPDATE below replaces SPI_tuptable and SPI_processed */
	candidates = SPI_tuptable;
	ncandidates = SPI_processed;

	for (r = 0; r < ncandidates; r++)
	{
		HeapTuple	tup = candidates->vals[r];
		TupleDesc	desc = candidates->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(column_datum(tup, desc, 1, &isnull));
		JobRow	   *row;
		MemoryContext old;
		Datum		values[3];
		char		nulls[3] = "   ";
		const char *status;
		const char *error = NULL;

		if (job != NULL)
		{
			(*queued)++;
			continue;
		}
		if (!lock_job(id, true))
			continue;

		old = MemoryContextSwitchTo(cxt);
		row = candidate_row(tup, desc);
		MemoryContextSwitchTo(old);
		status = check(row, &error);
		if (status && strcmp(status, "queued") == 0)
		{
			/* left for later (a kind at its worker cap): not counted */
			lock_job(id, false);
			continue;
		}

		values[0] = Int64GetDatum(id);
		values[1] = CStringGetTextDatum(status ? status : "running");
		if (error)
			values[2] = CStringGetTextDatum(error);
		else
			nulls[2] = 'n';
		spi_exec(&claim_stmt, values, nulls);
		if (status == NULL)
			job = row;
		else
		{
			job_store_notify(id, status);
			lock_job(id, false);
			/* look again, in the next round */
			(*queued)++;
		}
	}
	job_tables_end(&sw);
	return job;
}

/* ---------------------------------------------------------------------
 * Progress and the end of a job
 * ---------------------------------------------------------------------
 */

/* A text[] of n C strings (NULL elements allowed). */
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

/* A bigint[] of n values. */
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
 * An error is known by its line (imports) or its index (batches); pos,
 * the order of job_errors(), is whichever it has.
 */
static SpiStmt insert_errors_stmt = {
	"INSERT INTO batch_ops.job_error"
	" (job_id, pos, line, index, error, message, sqlstate, detail, raw)"
	" SELECT $1, CASE WHEN l" SQL_GT "0 THEN l ELSE i END,"
	"   CASE WHEN l" SQL_GT "0 THEN l END, CASE WHEN i" SQL_GE "0 THEN i END,"
	"   e, m, s, d, r"
	" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
	"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
	"   pg_catalog.unnest($7), pg_catalog.unnest($8)) AS u(l, i, e, m, s, d, r)",
	SPI_OK_INSERT, 8, {INT8OID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID}
};

/* A chunk's errors in one statement (arrays unnested), not one per error. */
static void
insert_errors(int64 job_id, ChunkResult *res)
{
	Datum		values[8];

	values[0] = Int64GetDatum(job_id);
	values[1] = int8_array(res->err_line, res->nerrors);
	values[2] = int8_array(res->err_index, res->nerrors);
	values[3] = text_array(res->err_name, res->nerrors);
	values[4] = text_array(res->err_message, res->nerrors);
	values[5] = text_array(res->err_sqlstate, res->nerrors);
	values[6] = text_array(res->err_detail, res->nerrors);
	values[7] = text_array(res->err_raw, res->nerrors);
	spi_exec(&insert_errors_stmt, values, NULL);
}

static SpiStmt commit_stmt = {
	"UPDATE batch_ops.job_queue SET"
	" checkpoint = coalesce($2, checkpoint),"
	" summary = summary OPERATOR(pg_catalog.||) $3,"
	" rows_done = rows_done" SQL_PLUS "$4,"
	" errors_total = errors_total" SQL_PLUS "$5,"
	" status = $6, error = $7,"
	" progress = CASE WHEN $6" SQL_EQ "'completed' THEN 100"
	"   WHEN $8" SQL_GE "0 THEN $8 ELSE progress END,"
	" finished_at = CASE WHEN $6" SQL_NE "'running' THEN pg_catalog.clock_timestamp() END"
	" WHERE id" SQL_EQ "$1 RETURNING cancel_requested",
	SPI_OK_UPDATE_RETURNING, 8,
	{INT8OID, JSONBOID, JSONBOID, INT8OID, INT8OID, TEXTOID, TEXTOID, INT4OID}
};

static SpiStmt delete_items_stmt = {
	"DELETE FROM batch_ops.job_item WHERE job_id" SQL_EQ "$1",
	SPI_OK_DELETE, 1, {INT8OID}
};

/*
 * Write a chunk's errors, the kind's new checkpoint (NULL: unchanged) and
 * summary (merged into the stored one), the rows done and the progress
 * (-1: unchanged) with status "running", or a final status: then the
 * job's items go and its NOTIFY is sent with the commit.  Returns whether
 * a cancel was requested meanwhile.
 */
bool
job_store_commit(int64 job_id, ChunkResult *res, Jsonb *checkpoint, Jsonb *summary,
				 int64 rows_done, int progress, const char *status, const char *error)
{
	RoleSwitch	sw;
	Datum		values[8];
	char		nulls[8] = "        ";
	bool		cancel_requested = false;
	bool		isnull;

	job_tables_begin(&sw);
	if (res->nerrors > 0)
		insert_errors(job_id, res);

	values[0] = Int64GetDatum(job_id);
	if (checkpoint)
		values[1] = JsonbPGetDatum(checkpoint);
	else
		nulls[1] = 'n';
	values[2] = JsonbPGetDatum(summary);
	values[3] = Int64GetDatum(rows_done);
	values[4] = Int64GetDatum(res->nerrors);
	values[5] = CStringGetTextDatum(status);
	if (error)
		values[6] = CStringGetTextDatum(error);
	else
		nulls[6] = 'n';
	values[7] = Int32GetDatum(progress);
	if (spi_exec(&commit_stmt, values, nulls) == 1)
		cancel_requested = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));
	if (strcmp(status, "running") != 0)
	{
		spi_exec(&delete_items_stmt, values, NULL);
		job_store_notify(job_id, status);
	}
	job_tables_end(&sw);
	return cancel_requested;
}

static SpiStmt finish_stmt = {
	"UPDATE batch_ops.job_queue SET status = $2, error = $3,"
	" finished_at = pg_catalog.clock_timestamp()"
	" WHERE id" SQL_EQ "$1",
	SPI_OK_UPDATE, 3, {INT8OID, TEXTOID, TEXTOID}
};

/*
 * Finish a job that failed or was cancelled: its checkpoint and counters
 * stay, and its items too if keep_items (a failed job that resume_job()
 * may requeue; purge() deletes them with the job).
 */
void
job_store_finish(int64 job_id, const char *status, const char *error, bool keep_items)
{
	RoleSwitch	sw;
	Datum		values[3];
	char		nulls[3] = "   ";

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(status);
	if (error)
		values[2] = CStringGetTextDatum(error);
	else
		nulls[2] = 'n';
	job_tables_begin(&sw);
	spi_exec(&finish_stmt, values, nulls);
	if (!keep_items)
		spi_exec(&delete_items_stmt, values, NULL);
	job_store_notify(job_id, status);
	job_tables_end(&sw);
}

static SpiStmt purge_stmt = {
	"DELETE FROM batch_ops.job_queue"
	" WHERE status" SQL_EQ "ANY ('{completed,failed,cancelled}'::pg_catalog.text[])"
	" AND finished_at" SQL_LT "(pg_catalog.now()" SQL_MINUS
	"pg_catalog.make_interval(secs => $1))",
	SPI_OK_DELETE, 1, {INT4OID}
};

/* Delete finished jobs (and so their errors) older than batch_ops.job_ttl. */
int64
job_store_purge(void)
{
	RoleSwitch	sw;
	Datum		values[1];
	int64		n;

	values[0] = Int32GetDatum(batch_ops_job_ttl);
	job_tables_begin(&sw);
	n = (int64) spi_exec(&purge_stmt, values, NULL);
	job_tables_end(&sw);
	return n;
}

/* NOTIFY batch_ops_jobs, '{"job_id": n, "status": "..."}', sent at commit. */
void
job_store_notify(int64 job_id, const char *status)
{
	char	   *payload = psprintf("{\"job_id\": " INT64_FORMAT ", \"status\": \"%s\"}",
								   job_id, status);

	Async_Notify("batch_ops_jobs", payload);
}

/* ---------------------------------------------------------------------
 * Lookups for the SQL API
 * ---------------------------------------------------------------------
 */

/*
 * Run a statement on the caller's own job (OWN_JOB's parameters), as the
 * owner.  Leaves SPI connected and the owner switched: the caller calls
 * lookup_end().
 */
static uint64
lookup_begin(RoleSwitch *sw, SpiStmt *stmt, int64 job_id)
{
	Datum		values[3];
	Oid			caller = GetUserId();

	values[0] = Int64GetDatum(job_id);
	values[1] = BoolGetDatum(superuser_arg(caller));
	values[2] = ObjectIdGetDatum(caller);
	job_tables_begin(sw);
	return spi_exec(stmt, values, NULL);
}

static void
lookup_end(RoleSwitch *sw)
{
	job_tables_end(sw);
}

/* The same answer for someone else's job as for none: nothing to probe. */
static void
job_not_found(int64 job_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("job " INT64_FORMAT " does not exist", job_id),
			 errdetail("A role sees only the jobs it submitted.")));
}

/*
 * An outbound job's results (kind_outbound.c): the answer of run_outbound,
 * with the first 100 targets.
 */
#define OUTBOUND_JOB_RESULTS \
	"pg_catalog.jsonb_build_object(" \
	"  'success', j.status" SQL_EQ "'completed' AND " SUMMARY_INT8("failed") SQL_EQ "0," \
	"  'summary', pg_catalog.jsonb_build_object('total', " SUMMARY_JSONB("total") "," \
	"     'successful', " SUMMARY_JSONB("successful") ", 'failed', " SUMMARY_JSONB("failed") ")," \
	"  'results', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_strip_nulls(" \
	"     pg_catalog.jsonb_build_object('index', r.index, 'hostname', r.hostname," \
	"       'success', r.success, 'status_code', r.status_code, 'output', r.output," \
	"       'error', r.error, 'message', r.message, 'execution_time', r.execution_time," \
	"       'attempts', r.attempts)) ORDER BY r.index)" \
	"     FROM (SELECT * FROM batch_ops.outbound_result r WHERE r.job_id" SQL_EQ "j.id" \
	"           ORDER BY r.index LIMIT 100) r), '[]'::pg_catalog.jsonb))"

static SpiStmt job_json_stmt = {
	"SELECT pg_catalog.jsonb_build_object("
	"  'job_id', j.id, 'kind', j.kind, 'operation', j.operation,"
	"  'target', j.target::pg_catalog.regclass::pg_catalog.text,"
	"  'source', j.source, 'status', j.status, 'progress', j.progress,"
	"  'rows_done', j.rows_done, 'atomic', j.atomic, 'error', j.error,"
	"  'submitted_by', coalesce(pg_catalog.pg_get_userbyid(j.role)::pg_catalog.text,"
	"                            j.role::pg_catalog.text),"
	"  'submitted_at', j.submitted_at, 'started_at', j.started_at,"
	"  'finished_at', j.finished_at,"
	"  'results', CASE WHEN j.kind" SQL_EQ "'outbound' THEN " OUTBOUND_JOB_RESULTS
	"  ELSE pg_catalog.jsonb_build_object('created', " SUMMARY_JSONB("created") ","
	"     'updated', " SUMMARY_JSONB("updated") ", 'deleted', " SUMMARY_JSONB("deleted") ","
	"     'failed', " SUMMARY_JSONB("failed") ", 'errors_total', j.errors_total,"
	"     'errors', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_strip_nulls("
	"            pg_catalog.jsonb_build_object("
	"            'line', e.line, 'index', e.index, 'error', e.error,"
	"            'message', e.message, 'sqlstate', e.sqlstate, 'detail', e.detail,"
	"            'raw', e.raw)) ORDER BY e.pos)"
	"          FROM (SELECT * FROM batch_ops.job_error e WHERE e.job_id" SQL_EQ "j.id"
	"                ORDER BY e.pos LIMIT 100) e), '[]'::pg_catalog.jsonb)) END)"
	/* "resumed": only for a job that resume_job() has requeued */
	" OPERATOR(pg_catalog.||) CASE WHEN j.summary OPERATOR(pg_catalog.?) 'resumed'"
	"   THEN pg_catalog.jsonb_build_object('resumed', j.summary OPERATOR(pg_catalog.->) 'resumed')"
	"   ELSE '{}'::pg_catalog.jsonb END"
	" FROM batch_ops.job_queue j WHERE" OWN_JOB,
	SPI_OK_SELECT, OWN_JOB_ARGS
};

/* job()'s answer, in the caller's context; *finished: no longer queued or running. */
Jsonb *
job_store_job_json(int64 job_id, bool *finished)
{
	RoleSwitch	sw;
	Jsonb	   *result;
	bool		isnull;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;

	job_store_require_current();

	if (lookup_begin(&sw, &job_json_stmt, job_id) == 0)
		job_not_found(job_id);
	result = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	old = MemoryContextSwitchTo(caller);
	result = DatumGetJsonbPCopy(PointerGetDatum(result));
	MemoryContextSwitchTo(old);
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

static SpiStmt cancel_stmt = {
	"UPDATE batch_ops.job_queue j SET"
	"  cancel_requested = j.status" SQL_EQ "ANY ('{queued,running}'::pg_catalog.text[]),"
	"  status = CASE WHEN j.status" SQL_EQ "'queued' THEN 'cancelled' ELSE j.status END,"
	"  finished_at = CASE WHEN j.status" SQL_EQ "'queued' THEN pg_catalog.now()"
	"    ELSE j.finished_at END"
	" WHERE" OWN_JOB
	" RETURNING (SELECT o.status FROM batch_ops.job_queue o WHERE o.id" SQL_EQ "j.id)",
	SPI_OK_UPDATE_RETURNING, OWN_JOB_ARGS
};

/*
 * Mark the caller's job cancelled (queued) or to be cancelled (running);
 * returns its status before, in the caller's context.
 */
char *
job_store_cancel(int64 job_id)
{
	RoleSwitch	sw;
	char	   *status;
	MemoryContext caller = CurrentMemoryContext;

	job_store_require_current();

	if (lookup_begin(&sw, &cancel_stmt, job_id) == 0)
		job_not_found(job_id);
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	status = MemoryContextStrdup(caller, status);
	lookup_end(&sw);
	if (strcmp(status, "queued") == 0)
		job_store_notify(job_id, "cancelled");
	return status;
}

static SpiStmt resume_lock_stmt = {
	"SELECT j.status, j.kind, j.atomic FROM batch_ops.job_queue j WHERE" OWN_JOB
	" FOR UPDATE",
	SPI_OK_SELECT, OWN_JOB_ARGS
};

/*
 * resume_job()'s first step: lock the caller's job (not found: as for
 * job()) and return its status, kind and atomic flag, in the caller's
 * context.  The row lock holds until the caller's transaction ends, so
 * the checks the caller makes stay true until job_store_requeue().
 */
char *
job_store_resume_lock(int64 job_id, char **kind, bool *atomic)
{
	RoleSwitch	sw;
	char	   *status;
	bool		isnull;
	MemoryContext caller = CurrentMemoryContext;

	job_store_require_current();

	if (lookup_begin(&sw, &resume_lock_stmt, job_id) == 0)
		job_not_found(job_id);
	status = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1));
	*kind = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 2));
	*atomic = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 3, &isnull));
	lookup_end(&sw);
	return status;
}

/*
 * The failed job goes back to the queue as a crash leaves it: checkpoint,
 * counters, rows done and errors kept; its error, end and attempts
 * cleared; "resumed" counted in its summary.  started_at stays (the first
 * start).
 */
static SpiStmt requeue_stmt = {
	"UPDATE batch_ops.job_queue SET status = 'queued', error = NULL,"
	" finished_at = NULL, worker_pid = NULL, attempts = 0,"
	" cancel_requested = false,"
	" summary = summary OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('resumed',"
	"   coalesce((summary OPERATOR(pg_catalog.->>) 'resumed')::pg_catalog.int8, 0)"
	SQL_PLUS "1)"
	" WHERE id" SQL_EQ "$1 AND status" SQL_EQ "'failed'",
	SPI_OK_UPDATE, 1, {INT8OID}
};

/* Put a failed job locked by job_store_resume_lock() back in the queue. */
void
job_store_requeue(int64 job_id)
{
	RoleSwitch	sw;
	Datum		values[1];

	values[0] = Int64GetDatum(job_id);
	job_tables_begin(&sw);
	if (spi_exec(&requeue_stmt, values, NULL) != 1)
		elog(ERROR, "job " INT64_FORMAT " is no longer failed", job_id);
	job_tables_end(&sw);
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

static SpiStmt job_exists_stmt = {
	"SELECT 1 FROM batch_ops.job_queue j WHERE" OWN_JOB,
	SPI_OK_SELECT, OWN_JOB_ARGS
};

static SpiStmt job_errors_stmt = {
	"SELECT e.line, e.index::pg_catalog.int4, e.error, e.message, e.raw"
	" FROM batch_ops.job_error e"
	" WHERE e.job_id" SQL_EQ "$1 ORDER BY e.pos",
	SPI_OK_SELECT, 1, {INT8OID}
};

/* job_errors()'s rows (materialized SRF already set up by the caller). */
void
job_store_errors(FunctionCallInfo fcinfo, int64 job_id)
{
	RoleSwitch	sw;
	Datum		values[1];

	job_store_require_current();

	/* not found is an error, as for job() */
	if (lookup_begin(&sw, &job_exists_stmt, job_id) == 0)
		job_not_found(job_id);
	values[0] = Int64GetDatum(job_id);
	cursor_to_tuplestore(fcinfo, spi_cursor_open(&job_errors_stmt, values, NULL));
	lookup_end(&sw);
}

static SpiStmt job_list_stmt = {
	"SELECT j.id, j.kind, j.operation,"
	"  j.target::pg_catalog.regclass::pg_catalog.text,"
	"  j.source, j.status, j.progress, j.rows_done,"
	"  " SUMMARY_INT8("created") ", " SUMMARY_INT8("updated") ","
	"  " SUMMARY_INT8("deleted") ", " SUMMARY_INT8("failed") ", j.errors_total,"
	"  j.error, coalesce(pg_catalog.pg_get_userbyid(j.role)::pg_catalog.text,"
	"                    j.role::pg_catalog.text),"
	"  j.options, j.submitted_at, j.started_at, j.finished_at"
	" FROM batch_ops.job_queue j"
	" WHERE $1 OR j.role" SQL_EQ "$2 ORDER BY j.id",
	SPI_OK_SELECT, 2, {BOOLOID, OIDOID}
};

/* job_list()'s rows: the caller's jobs, every job for a superuser. */
void
job_store_list(FunctionCallInfo fcinfo)
{
	RoleSwitch	sw;
	Datum		values[2];
	Oid			caller = GetUserId();

	job_store_require_current();

	values[0] = BoolGetDatum(superuser_arg(caller));
	values[1] = ObjectIdGetDatum(caller);
	job_tables_begin(&sw);
	cursor_to_tuplestore(fcinfo, spi_cursor_open(&job_list_stmt, values, NULL));
	job_tables_end(&sw);
}
