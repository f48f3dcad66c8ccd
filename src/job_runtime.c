/*-------------------------------------------------------------------------
 *
 * job_runtime.c
 *	  The job runtime's services to kinds (job_runtime.h): chunk
 *	  transactions, counters and progress, per-item errors, the switch to
 *	  the submitter, cancel checks; options and text helpers they share.
 *
 * The runtime knows no kind.  A kind hands its checkpoint (jsonb, its own
 * shape), its progress (0..99, or -1 to keep it) and what the chunk
 * added to the counters; the runtime keeps the running totals (created,
 * updated, deleted, failed, and the kind's own numbers set with
 * job_summary_set) and writes them as the row's summary, from which
 * job() answers.  Only this process writes a running job's row (the
 * claim's advisory lock, job_store.c), so the totals in memory are the
 * row's.
 *
 * Cancels: cancel_job() sets the slot's flag and sends SIGINT at its
 * commit (job_shmem.c); a cancel that a chunk's commit finds in the row
 * (a worker that started after the cancel) sets the flag too.
 * job_check_cancel() turns the flag into an ERROR, which job_worker.c
 * catches and records as "cancelled".
 *
 * Memory: the errors of a chunk live in a context of their own, emptied
 * after each commit; an atomic job's stay until its one commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/pmsignal.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "job_kind.h"
#include "job_runtime.h"

#define MAX_SUMMARY_EXTRAS	8

struct JobContext
{
	JobInfo		info;
	bool		has_target;
	bool		finished;		/* its final status has committed */
	JobWorkerSlot *slot;
	ChunkResult res;			/* the errors of the current chunk */
	MemoryContext err_cxt;
	/* totals as committed */
	int64		created;
	int64		updated;
	int64		deleted;
	int64		failed;
	int			nextras;
	const char *extra_key[MAX_SUMMARY_EXTRAS];
	int64		extra_value[MAX_SUMMARY_EXTRAS];
};

/*
 * A number in a jsonb object (a kind's checkpoint or summary), or dflt if
 * absent: the kinds keep their counters and positions there.
 */
int64
job_jsonb_int(Jsonb *obj, const char *key, int64 dflt)
{
	JsonbValue	v;

	if (obj && JB_ROOT_IS_OBJECT(obj) &&
		getKeyJsonValueFromContainer(&obj->root, key, strlen(key), &v) &&
		v.type == jbvNumeric)
		return DatumGetInt64(DirectFunctionCall1(numeric_int8,
												 NumericGetDatum(v.val.numeric)));
	return dflt;
}

/* The context of a claimed job, in the current memory context. */
JobContext *
job_context_create(JobRow *row, bool has_target, JobWorkerSlot *slot)
{
	JobContext *ctx = palloc0(sizeof(JobContext));

	ctx->info.id = row->id;
	ctx->info.role = row->role;
	ctx->info.kind = row->kind;
	ctx->info.target = row->target;
	ctx->info.operation = row->operation;
	ctx->info.source = row->source;
	ctx->info.options = row->options;
	ctx->info.atomic = row->atomic;
	ctx->info.checkpoint = row->checkpoint;
	ctx->info.summary = row->summary;
	ctx->info.errors_total = row->errors_total;
	ctx->has_target = has_target;
	ctx->slot = slot;
	ctx->created = job_jsonb_int(row->summary, "created", 0);
	ctx->updated = job_jsonb_int(row->summary, "updated", 0);
	ctx->deleted = job_jsonb_int(row->summary, "deleted", 0);
	ctx->failed = job_jsonb_int(row->summary, "failed", 0);
	ctx->err_cxt = AllocSetContextCreate(CurrentMemoryContext, "batch_ops job errors",
										 ALLOCSET_DEFAULT_SIZES);
	ctx->res.cxt = ctx->err_cxt;
	return ctx;
}

const JobInfo *
job_info(JobContext *ctx)
{
	return &ctx->info;
}

bool
job_context_finished(JobContext *ctx)
{
	return ctx->finished;
}

/* ---------------------------------------------------------------------
 * Transactions
 * ---------------------------------------------------------------------
 */

/*
 * A transaction of the worker's own bookkeeping (claim, purge, finish):
 * read-write whatever default_transaction_read_only the database or the
 * job's role sets, which govern the job's own work only.
 */
void
job_bookkeeping_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) set_config_option("transaction_read_only", "off", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	PushActiveSnapshot(GetTransactionSnapshot());
}

/* Commit a transaction begun by job_begin_chunk or job_bookkeeping_begin. */
void
job_xact_commit(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/*
 * Start a chunk's transaction.  A kind with a target table gets it locked
 * as its statements will lock it, so that it cannot be dropped under the
 * chunk, and the job fails with a clear message if it already was.
 */
void
job_begin_chunk(JobContext *ctx)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (ctx->has_target)
	{
		LockRelationOid(ctx->info.target, RowExclusiveLock);
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(ctx->info.target)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the target table of the job no longer exists")));
	}
}

ChunkResult *
job_chunk_result(JobContext *ctx)
{
	return &ctx->res;
}

/* The kind's sink for a failed item: written with the chunk's commit. */
void
job_report_error(JobContext *ctx, int64 line, int64 index, const char *name,
				 const char *message, const char *sqlstate, const char *detail,
				 const char *raw, int rawlen)
{
	chunk_add_error(&ctx->res, line, index, name, message, sqlstate, detail,
					raw, rawlen);
}

/* A number of the kind's own in the summary (bytes_total, items_total). */
void
job_summary_set(JobContext *ctx, const char *key, int64 value)
{
	int			i;

	for (i = 0; i < ctx->nextras; i++)
		if (strcmp(ctx->extra_key[i], key) == 0)
			break;
	if (i == ctx->nextras)
	{
		if (i == MAX_SUMMARY_EXTRAS)
			elog(ERROR, "too many summary values");
		ctx->extra_key[i] = key;
		ctx->nextras++;
	}
	ctx->extra_value[i] = value;
}

/* The summary after this chunk: the counters' totals and the kind's numbers. */
static Jsonb *
summary_jsonb(JobContext *ctx, const JobCounts *delta)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf,
					 "{\"created\": " INT64_FORMAT ", \"updated\": " INT64_FORMAT
					 ", \"deleted\": " INT64_FORMAT ", \"failed\": " INT64_FORMAT,
					 ctx->created + delta->created, ctx->updated + delta->updated,
					 ctx->deleted + delta->deleted, ctx->failed + ctx->res.failed);
	for (i = 0; i < ctx->nextras; i++)
	{
		appendStringInfoString(&buf, ", ");
		escape_json(&buf, ctx->extra_key[i]);
		appendStringInfo(&buf, ": " INT64_FORMAT, ctx->extra_value[i]);
	}
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/*
 * Write the chunk's errors and the job's new checkpoint, counters and
 * progress in the transaction of the chunk's rows, and commit.
 * final_status, when not NULL, finishes the job (and sends its NOTIFY) in
 * the same transaction.  Returns after the commit; throws if a cancel was
 * requested meanwhile.
 */
void
job_commit_chunk(JobContext *ctx, Jsonb *checkpoint, int progress,
				 const JobCounts *delta, const char *final_status,
				 const char *error)
{
	static const JobCounts none;
	bool		cancel_requested;

	if (delta == NULL)
		delta = &none;
	cancel_requested = job_store_commit(ctx->info.id, &ctx->res, checkpoint,
										summary_jsonb(ctx, delta), delta->rows_done,
										progress,
										final_status ? final_status : "running", error);

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
	job_xact_commit();
	if (final_status)
		ctx->finished = true;

	/* committed: the totals in memory are the row's */
	ctx->created += delta->created;
	ctx->updated += delta->updated;
	ctx->deleted += delta->deleted;
	ctx->failed += ctx->res.failed;
	ctx->info.errors_total += ctx->res.nerrors;
	MemoryContextReset(ctx->err_cxt);
	memset(&ctx->res, 0, sizeof(ChunkResult));
	ctx->res.cxt = ctx->err_cxt;

	if (!final_status && cancel_requested)
	{
		SpinLockAcquire(&jobs_shared->mutex);
		ctx->slot->cancel = true;
		SpinLockRelease(&jobs_shared->mutex);
	}
	if (!final_status)
		job_check_cancel(ctx);
}

/*
 * The end of an atomic job's work, which ran in one subtransaction: rolled
 * back if any item failed (nothing is applied, the errors are kept), kept
 * otherwise.  Returns the number of failures; the kind words the job's
 * error and commits with job_commit_chunk().
 */
int
job_atomic_end(JobContext *ctx, Subxact *all)
{
	if (ctx->res.nerrors > 0)
	{
		subxact_rollback(all);
		ctx->res.applied = 0;
		return ctx->res.nerrors;
	}
	subxact_commit(all);
	return 0;
}

/*
 * A failed job keeps its items if resume_job() may requeue it: its kind
 * resumes (job_kind.h) and it is not atomic.
 */
static bool
job_keeps_items(JobContext *ctx, const char *status)
{
	const JobKind *kind = job_kind_lookup(ctx->info.kind);

	return strcmp(status, "failed") == 0 && kind && kind->can_resume &&
		!ctx->info.atomic;
}

/* Finish a job that failed or was cancelled, in a transaction of its own. */
void
job_context_fail(JobContext *ctx, const char *status, const char *error)
{
	job_bookkeeping_begin();
	job_store_finish(ctx->info.id, status, error, job_keeps_items(ctx, status));
	job_xact_commit();
	ctx->finished = true;
}

/*
 * A cancel point: a pending interrupt, a dead postmaster (a worker must
 * not go on writing once it is gone) or a cancel of this job.
 */
void
job_check_cancel(JobContext *ctx)
{
	bool		cancel;

	CHECK_FOR_INTERRUPTS();
	if (!PostmasterIsAlive())
		proc_exit(1);
	SpinLockAcquire(&jobs_shared->mutex);
	cancel = ctx->slot->cancel;
	SpinLockRelease(&jobs_shared->mutex);
	if (cancel)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("job " INT64_FORMAT " was cancelled", ctx->info.id)));
}

/*
 * Run the job's own work as its role, until job_as_role_end(); settings
 * it changes are undone then (spi_util.c, role_switch_to_submitter).
 */
void
job_as_role_begin(JobContext *ctx, RoleSwitch *sw)
{
	role_switch_to_submitter(sw, ctx->info.role);
}

void
job_as_role_end(RoleSwitch *sw)
{
	role_switch_end(sw);
}

/*
 * The batch engine's result for a chunk, as the kind's counters and
 * errors: returns how many items it applied and adds its errors (by item
 * index; lines and raws map an index to a file line and text, else
 * index_base is added to it).  The engine's C-level result is read as it
 * is -- no JSON in between -- and freed here, before the chunk commits,
 * since it lives in the engine's memory (src/batch.h).
 */
int64
job_report_batch_result(JobContext *ctx, BatchResult *result, const int64 *lines,
						char **raws, const int *rawlens, int64 index_base)
{
	int64		applied = result->applied;
	int			k;

	for (k = 0; k < result->nerrors; k++)
	{
		const BatchError *e = &result->errors[k];
		const ItemError *err = e->error;
		const char *sqlstate = unpack_sql_state(err->sqlerrcode);

		if (lines)
			chunk_add_error(&ctx->res, lines[e->index], -1, err->name,
							err->message, sqlstate, err->detail,
							raws[e->index], rawlens[e->index]);
		else
			chunk_add_error(&ctx->res, 0, index_base + e->index, err->name,
							err->message, sqlstate, err->detail,
							batch_error_item_text(e), -1);
	}
	ctx->res.applied += applied;
	batch_result_free(result);
	return applied;
}

/* ---------------------------------------------------------------------
 * Raw text of a bad row
 * ---------------------------------------------------------------------
 */
static void
append_escaped_bytes(StringInfo out, const char *p, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		appendStringInfo(out, "\\x%02x", (unsigned char) p[i]);
}

/* How many bytes at p are ASCII (and not NUL). */
static int
ascii_prefix(const char *p, int n)
{
	int			i;

	for (i = 0; i < n && p[i] != '\0' && !IS_HIGHBIT_SET(p[i]); i++)
		;
	return i;
}

/*
 * The text of raw (len bytes in "encoding") in the database encoding, for
 * job_error: each run of valid characters converted, each byte that is
 * not part of one -- or of a character the database encoding lacks --
 * written \xNN, so that the result is valid whatever came in.  At most
 * limit bytes, never cut inside a character or an escape.
 */
char *
job_raw_text(const char *raw, int len, int encoding, int limit)
{
	int			db = GetDatabaseEncoding();
	bool		convert = encoding != db && encoding != PG_SQL_ASCII && db != PG_SQL_ASCII;
	int			out_enc = db == PG_SQL_ASCII ? encoding : db;
	bool		ascii_only = false;
	Oid			proc = InvalidOid;
	char	   *conv = NULL;
	int			convsize = 0;
	StringInfoData out;
	int			pos = 0;

	/* the catalog is read only in a transaction */
	if (convert && IsTransactionState())
		proc = FindDefaultConversionProc(encoding, db);
	if (convert && !OidIsValid(proc))
	{
		convert = false;
		ascii_only = true;
	}
	/* each output byte comes from at most four input bytes */
	len = Min(len, limit * 4);
	initStringInfo(&out);
	while (pos < len)
	{
		int			valid;
		int			bad = 1;

		if (ascii_only)
			valid = ascii_prefix(raw + pos, len - pos);
		else
			valid = pg_encoding_verifymbstr(convert ? encoding : out_enc,
											raw + pos, len - pos);
		if (valid > 0)
		{
			const char *text = raw + pos;
			int			textlen = valid;
			int			used = valid;

			if (convert)
			{
				int			n = pg_encoding_mbcliplen(encoding, text, valid,
													  Min(valid, limit - out.len));

				if (n == 0)
					break;
				if (convsize < n * MAX_CONVERSION_GROWTH + 1)
				{
					convsize = n * MAX_CONVERSION_GROWTH + 1;
					conv = conv ? repalloc(conv, convsize) : palloc(convsize);
				}
				used = pg_do_encoding_conversion_buf(proc, encoding, db,
													 (unsigned char *) text, n,
													 (unsigned char *) conv, convsize,
													 true);
				text = conv;
				textlen = strlen(conv);
			}
			if (textlen > limit - out.len)
			{
				appendBinaryStringInfo(&out, text,
									   pg_encoding_mbcliplen(out_enc, text, textlen,
															 limit - out.len));
				break;
			}
			appendBinaryStringInfo(&out, text, textlen);
			pos += used;
			if (used > 0)
				continue;
			/* the next character has no equivalent in the database encoding */
			bad = Min(pg_encoding_mblen(encoding, raw + pos), len - pos);
		}
		if (out.len + 4 * bad > limit)
			break;
		append_escaped_bytes(&out, raw + pos, bad);
		pos += bad;
	}
	return out.data;
}


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

/* A boolean option; anything but true or false is refused. */
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


/* The table may be a job target and the caller may write it as the job will. */
void
job_check_target_privilege(Oid relid, AclMode mode, const char *privname)
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


#define RAW_LIMIT 1024

/* Add one error to a chunk, in the chunk's memory context. */
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

