/*-------------------------------------------------------------------------
 *
 * batch_job.c
 *	  submit_batch jobs: large create/update/delete batches run in chunks.
 *
 * The items were stored one per row in batch_ops.job_item at submit
 * time, with their position.  The worker reads them chunk_size at a time
 * (as the tables' owner), runs each chunk with batch_run() in partial
 * mode as the job's role, and maps the engine's item indexes back to
 * positions in the whole list.  As for imports, each chunk's writes, its
 * errors and the checkpoint (the next position) commit together; atomic
 * jobs run in one transaction and undo everything if any item failed.
 * The role's rate limit is waited for (ratelimit_wait) before each
 * chunk's transaction, for the chunk's items; an atomic job waits for all
 * of its items before its one transaction starts.
 *
 * Privileges: the engine runs every statement as the role, so its table
 * and column privileges and row-level security apply to every chunk as
 * they are when the chunk runs (invalidation messages are read before
 * each chunk, so that a long atomic job sees a REVOKE or a new policy
 * too).  An item the role may no longer write is a permission_denied
 * item error, as for batch_create; the job goes on (items may give
 * different columns, and column privileges are per item).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "item_error.h"
#include "jobs.h"
#include "ratelimit.h"

/* Items [from, from + n) of the job as a JSON array, in the caller's context. */
static Jsonb *
fetch_items(Job *job, int64 from, int n, int *count)
{
	MemoryContext caller = CurrentMemoryContext;
	OwnerSwitch sw;
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	JsonbParseState *state = NULL;
	JsonbValue *array;
	Jsonb	   *result;
	uint64		r;

	values[0] = Int64GetDatum(job->id);
	values[1] = Int64GetDatum(from);
	values[2] = Int64GetDatum(from + n);
	jobs_owner_begin(&sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT item FROM batch_ops.job_item"
							  " WHERE job_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
							  3, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the items of job " INT64_FORMAT, job->id);

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
	SPI_finish();
	MemoryContextSwitchTo(caller);
	jobs_owner_end(&sw);
	return result;
}

void
batch_job_run(Job *job)
{
	MemoryContext job_cxt = CurrentMemoryContext;
	MemoryContext chunk_cxt = AllocSetContextCreate(job_cxt, "batch_ops batch chunk",
													ALLOCSET_DEFAULT_SIZES);
	BatchOptions opts;
	bool		atomic = job->atomic;
	int64		next = atomic ? 0 : Max(job->ckpt_index, 0);
	int64		total = Max(job->items_total, 0);
	const char *final = NULL;
	char	   *final_error = NULL;
	ChunkResult res;
	Subxact		all;

	batch_options_parse(job->options, &opts);

	memset(&res, 0, sizeof(res));
	res.cxt = job_cxt;
	res.bytes_total = -1;
	if (atomic)
	{
		/* the role's rate limit: every item's tokens, before the transaction */
		ratelimit_wait(job->role, total - next);
		job_begin_chunk();
		job_check_target(job);
		subxact_begin(&all);
	}
	while (final == NULL)
	{
		Jsonb	   *items;
		Jsonb	   *response;
		JobRoleSwitch rs;
		int			n = 0;

		job_check_cancel(job);
		MemoryContextReset(chunk_cxt);
		if (!atomic)
		{
			/* the role's rate limit: the chunk's tokens, before its transaction */
			ratelimit_wait(job->role, Min(opts.chunk_size, total - next));
			memset(&res, 0, sizeof(res));
			res.cxt = chunk_cxt;
			res.bytes_total = -1;
			job_begin_chunk();
			job_check_target(job);
		}
		MemoryContextSwitchTo(chunk_cxt);

		if (next < total)
		{
			items = fetch_items(job, next, opts.chunk_size, &n);
			/* see a REVOKE or a new policy committed meanwhile (atomic jobs) */
			AcceptInvalidationMessages();
			job_as_role_begin(job, &rs);
			response = batch_run(job->op, job->relid, items, false, false);
			job_as_role_end(&rs);
			res.applied += jsonb_get_applied(response);
			chunk_add_response_errors(&res, response, NULL, NULL, NULL, next);
		}
		next += n;
		res.rows_seen += n;
		res.next_index = next;
		if (next >= total || n == 0)
			final = "completed";
		if (!atomic)
			job_commit_chunk_ex(job, &res, final, final_error);
	}
	if (atomic)
		job_commit_atomic(job, &all, &res, final, final_error, "items", "applied");
	MemoryContextSwitchTo(job_cxt);
}
