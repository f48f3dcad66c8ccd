/*-------------------------------------------------------------------------
 *
 * kind_action_batch.c
 *	  The "action_batch" kind: a confirmed asynchronous action batch
 *	  (action_batch.c), run by a job worker as the role that confirmed it.
 *
 * The job's options name the batch ({"batch_id", "actions", "timeout",
 * "deadline", "tables"}: the table of each action when the batch was confirmed, as
 * the session's search_path found it).
 * run() waits for the role's rate limit (one token per action) and for
 * one of the role's running slots (batch_ops.max_running_action_batches,
 * shared with synchronous batches), then runs every action in one
 * transaction, in a subtransaction that is rolled back if any action
 * failed; the batch's status and end, the job's counters and final
 * status, and the NOTIFYs commit together.
 *
 * Timeout: batch_ops.action_batch_timeout counts from the confirmation
 * (Meraki: "completed within 10 minutes from confirmation").  The work
 * runs under the statement timeout's timer set to what is left; when it
 * fires, the transaction is aborted and the batch recorded as failed in a
 * new one.  A cancel (cancel_job on the batch's job) ends it as failed
 * too, and the job as cancelled.  Any other error is recorded the same
 * way; an error in that recording is left to the worker, which fails the
 * job (and action_batch_info then shows the batch as failed).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "action_batch.h"
#include "job_kind.h"
#include "ratelimit.h"

/* The options are written by action_batch.c, never by a user. */
static void
action_check_submit(JobSubmit *s)
{
	if (job_jsonb_int(s->options, "batch_id", -1) < 0)
		elog(ERROR, "action_batch job without a batch_id");
	s->atomic = true;
	s->items_total = job_jsonb_int(s->options, "actions", 0);
}

/* Wait for a running slot of the role; false if the deadline passed first. */
static bool
wait_for_slot(JobContext *ctx, Oid role, TimestampTz deadline, int *slot)
{
	while (!action_slot_try(role, batch_ops_max_running_action_batches, true, slot))
	{
		job_check_cancel(ctx);
		if (GetCurrentTimestamp() >= deadline)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 20, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	return true;
}

/* Record a batch that ended without its actions' status, in a new transaction. */
static void
fail_batch(JobContext *ctx, int64 batch_id, const char *job_status,
		   const char *name, const char *message)
{
	job_begin_chunk(ctx);
	action_batch_finish(batch_id, "failed", action_batch_failure_status(name, message));
	job_commit_chunk(ctx, NULL, -1, NULL, job_status, message);
}

static char *
timeout_message(JobContext *ctx, int64 batch_id)
{
	return psprintf("action batch " INT64_FORMAT " did not finish within "
					"batch_ops.action_batch_timeout (" INT64_FORMAT " s) of its confirmation",
					batch_id, job_jsonb_int(job_info(ctx)->options, "timeout", 0));
}

/* Run the batch's actions in the chunk's transaction, and commit. */
static void
run_actions(JobContext *ctx, int64 batch_id, TimestampTz deadline)
{
	const JobInfo *job = job_info(ctx);
	Jsonb	   *actions;
	Jsonb	   *status;
	bool		failed;
	ActionCounts counts;
	JobCounts	delta;
	RoleSwitch	rs;

	job_begin_chunk(ctx);
	enable_timeout_after(STATEMENT_TIMEOUT,
						 (int) Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																	  deadline)));
	actions = action_batch_load(batch_id, job->role);
	job_as_role_begin(ctx, &rs);
	status = action_batch_execute(actions, job->options, &failed, &counts);
	job_as_role_end(&rs);
	disable_timeout(STATEMENT_TIMEOUT, false);

	action_batch_finish(batch_id, failed ? "failed" : "completed", status);
	memset(&delta, 0, sizeof(delta));
	if (!failed)
	{
		delta.created = counts.created;
		delta.updated = counts.updated;
		delta.deleted = counts.deleted;
	}
	delta.rows_done = JB_ROOT_COUNT(actions);
	job_commit_chunk(ctx, NULL, 100, &delta, failed ? "failed" : "completed",
					 failed ? "some actions failed; nothing was applied (atomic)" : NULL);
}

static void
action_run_job(JobContext *ctx)
{
	const JobInfo *job = job_info(ctx);
	MemoryContext job_cxt = CurrentMemoryContext;
	int64		batch_id = job_jsonb_int(job->options, "batch_id", -1);
	int64		nactions = job_jsonb_int(job->options, "actions", 0);
	TimestampTz deadline = (TimestampTz) job_jsonb_int(job->options, "deadline", 0);
	int			slot = -1;

	ratelimit_wait(job->role, nactions);
	if (!wait_for_slot(ctx, job->role, deadline, &slot))
	{
		fail_batch(ctx, batch_id, "failed", "timeout", timeout_message(ctx, batch_id));
		return;
	}
	PG_TRY();
	{
		run_actions(ctx, batch_id, deadline);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		timed_out;
		bool		cancelled;

		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(job_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(job_cxt);
		QueryCancelPending = false;
		timed_out = edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
			GetCurrentTimestamp() >= deadline;
		cancelled = !timed_out && edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
		if (job_context_finished(ctx))
			ReThrowError(edata);
		if (timed_out)
			fail_batch(ctx, batch_id, "failed", "timeout", timeout_message(ctx, batch_id));
		else if (cancelled)
			fail_batch(ctx, batch_id, "cancelled", "cancelled",
					   psprintf("the job of action batch " INT64_FORMAT " was cancelled",
								batch_id));
		else
			fail_batch(ctx, batch_id, "failed", "job_failed", edata->message);
	}
	PG_END_TRY();
	action_slot_release(job->role, slot, true);
	MemoryContextSwitchTo(job_cxt);
}

/* Settings of action batches, from _PG_init. */
static void
action_kind_init(void)
{
	action_batch_init();
}

const JobKind action_batch_job_kind = {
	.name = "action_batch",
	.has_target = false,
	.check_submit = action_check_submit,
	.run = action_run_job,
	.init = action_kind_init,
	.purge = action_batch_purge,
	/* the batch's own state (action_batch.c) ended with the job */
	.can_resume = false,
	.resume_hint = "Create the action batch again with batch_ops.create_action_batch().",
};
