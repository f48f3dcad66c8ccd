/*-------------------------------------------------------------------------
 *
 * kind_batch.c
 *	  The "batch" kind: large create/update/delete batches (submit_batch)
 *	  run in chunks.
 *
 * The items are stored one per row in batch_ops.job_item at submit time,
 * with their position (job_store.c).  run() reads them chunk_size at a
 * time, runs each chunk with batch_execute() in partial mode as the job's
 * role, and maps the engine's item indexes back to positions in the
 * whole list.  Each chunk's writes, its errors and the checkpoint
 * ({"index": next position}) commit together; atomic jobs run in one
 * transaction and undo everything if any item failed.  The role's rate
 * limit is waited for (ratelimit_wait) before each chunk's transaction,
 * for the chunk's items; an atomic job waits for all of its items before
 * its one transaction starts.
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

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "job_kind.h"
#include "ratelimit.h"
#include "target.h"

/* GUC: batch_ops.max_async_items */
static int	batch_ops_max_async_items = 1000000;

/* Options of a batch job. */
typedef struct BatchOptions
{
	bool		atomic;
	int			chunk_size;
} BatchOptions;

/* One option of submit_batch (job_options_foreach's callback). */
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

/* The options of submit_batch, checked at submit and read again by run(). */
static void
batch_options_parse(Jsonb *options, BatchOptions *o)
{
	o->atomic = false;
	o->chunk_size = 1000;
	job_options_foreach(options, batch_option, o);
}

/* The operation's name as stored in the row, as the engine's enum. */
static BatchOp
batch_op_from_name(const char *opname)
{
	if (strcmp(opname, "create") == 0)
		return BATCH_CREATE;
	if (strcmp(opname, "update") == 0)
		return BATCH_UPDATE;
	if (strcmp(opname, "delete") == 0)
		return BATCH_DELETE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown operation \"%s\"", opname),
			 errhint("The operation is one of create, update, delete.")));
	return BATCH_CREATE;		/* keep the compiler quiet */
}

/* submit_batch's checks, in the caller's identity. */
static void
batch_check_submit(JobSubmit *s)
{
	BatchOp		op = batch_op_from_name(s->operation);
	BatchOptions opts;
	int			n;

	batch_options_parse(s->options, &opts);
	if (!JB_ROOT_IS_ARRAY(s->items) || JB_ROOT_IS_SCALAR(s->items))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must be a JSON array")));
	n = JB_ROOT_COUNT(s->items);
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
			job_check_target_privilege(s->target, ACL_INSERT, "INSERT");
			break;
		case BATCH_UPDATE:
			job_check_target_privilege(s->target, ACL_UPDATE, "UPDATE");
			break;
		case BATCH_DELETE:
			job_check_target_privilege(s->target, ACL_DELETE, "DELETE");
			break;
	}
	s->atomic = opts.atomic;
	s->items_total = n;
}

/* The checkpoint: the position of the next item to run. */
static Jsonb *
batch_checkpoint(int64 next)
{
	char	   *text = psprintf("{\"index\": " INT64_FORMAT "}", next);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* What a chunk adds to the counters: "applied" counts as the operation. */
static void
batch_counts(JobCounts *delta, BatchOp op, int64 applied, int64 read)
{
	memset(delta, 0, sizeof(JobCounts));
	if (op == BATCH_CREATE)
		delta->created = applied;
	else if (op == BATCH_UPDATE)
		delta->updated = applied;
	else
		delta->deleted = applied;
	delta->rows_done = read;
}

/* Progress: the share of items run, below 100 until the job completes. */
static int
batch_progress(int64 next, int64 total)
{
	if (total <= 0)
		return -1;
	return (int) Min(99, (100 * next) / total);
}

/* Run the batch from its checkpoint to its end. */
static void
batch_run_job(JobContext *ctx)
{
	const JobInfo *job = job_info(ctx);
	MemoryContext job_cxt = CurrentMemoryContext;
	MemoryContext chunk_cxt = AllocSetContextCreate(job_cxt, "batch_ops batch chunk",
													ALLOCSET_DEFAULT_SIZES);
	BatchOp		op = batch_op_from_name(job->operation);
	BatchOptions opts;
	bool		atomic = job->atomic;
	int64		next = atomic ? 0 : Max(job_jsonb_int(job->checkpoint, "index", 0), 0);
	int64		total = Max(job_jsonb_int(job->summary, "items_total", 0), 0);
	int64		read = 0;
	const char *final = NULL;
	char	   *final_error = NULL;
	Subxact		all;
	JobCounts	delta;

	batch_options_parse(job->options, &opts);

	if (atomic)
	{
		/* the role's rate limit: every item's tokens, before the transaction */
		ratelimit_wait(job->role, total - next);
		job_begin_chunk(ctx);
		subxact_begin(&all);
	}
	while (final == NULL)
	{
		Jsonb	   *items;
		BatchResult *result;
		RoleSwitch	rs;
		int			n = 0;

		job_check_cancel(ctx);
		MemoryContextReset(chunk_cxt);
		if (!atomic)
		{
			/* the role's rate limit: the chunk's tokens, before its transaction */
			ratelimit_wait(job->role, Min(opts.chunk_size, total - next));
			read = 0;
			job_begin_chunk(ctx);
		}
		MemoryContextSwitchTo(chunk_cxt);

		if (next < total)
		{
			items = job_store_fetch_items(job->id, next, opts.chunk_size, &n);
			/* a job that failed under 0.3.0 lost its items (resume_job) */
			if (n == 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the items of the job from index " INT64_FORMAT " are gone", next),
						 errdetail("A job that failed before batch_ops 0.4.0 kept no items.")));
			/* see a REVOKE or a new policy committed meanwhile (atomic jobs) */
			AcceptInvalidationMessages();
			CHECK_FOR_INTERRUPTS();
			job_as_role_begin(ctx, &rs);
			result = batch_execute(op, job->target, items, false, false);
			job_as_role_end(&rs);
			(void) job_report_batch_result(ctx, result, NULL, NULL, NULL, next);
		}
		next += n;
		read += n;
		if (next >= total || n == 0)
			final = "completed";
		if (!atomic)
		{
			batch_counts(&delta, op, job_chunk_result(ctx)->applied, read);
			job_commit_chunk(ctx, batch_checkpoint(next), batch_progress(next, total),
							 &delta, final, final_error);
		}
	}
	if (atomic)
	{
		int			nfailed = job_atomic_end(ctx, &all);

		if (nfailed > 0)
		{
			final = "failed";
			final_error = psprintf(ngettext("%d item failed; nothing was applied (atomic)",
											"%d items failed; nothing was applied (atomic)",
											nfailed),
								   nfailed);
		}
		batch_counts(&delta, op, job_chunk_result(ctx)->applied, read);
		job_commit_chunk(ctx, batch_checkpoint(next), batch_progress(next, total),
						 &delta, final, final_error);
	}
	MemoryContextSwitchTo(job_cxt);
}

/* Settings of the kind, from _PG_init. */
static void
batch_kind_init(void)
{
	DefineCustomIntVariable("batch_ops.max_async_items",
							"Maximum number of items in one submit_batch job.",
							NULL,
							&batch_ops_max_async_items,
							1000000, 0, INT_MAX / 2,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}

const JobKind batch_job_kind = {
	.name = "batch",
	.has_target = true,
	.check_submit = batch_check_submit,
	.run = batch_run_job,
	.init = batch_kind_init,
	.can_resume = true,
};
