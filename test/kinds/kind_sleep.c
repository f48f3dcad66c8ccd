/*-------------------------------------------------------------------------
 *
 * kind_sleep.c
 *	  A test-only job kind, "sleep": proves that a kind plugs into the
 *	  runtime with its own file and one line of job_kind.c.
 *
 * Built only by "make TEST_MODULES=1".  It has no target table and no SQL
 * in the install script: test/t/060_toy_kind.pl binds its entry point
 * with CREATE FUNCTION ... LANGUAGE C as a superuser.
 *
 * submit_sleep(options) queues a job of "items" items; run() sleeps
 * "sleep_ms" per item, commits every "chunk_size" items with the
 * checkpoint {"index": next item}, counts an item as "created", and
 * reports every item whose index is a multiple of "fail_every" as a
 * failed item.  Progress is the share of items done; a cancel stops it
 * between items (and during a sleep); after a crash it resumes at the
 * checkpoint.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "jobs_api.h"

extern PGDLLEXPORT Datum batch_ops_submit_sleep(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(batch_ops_submit_sleep);

/* The options of a sleep job. */
typedef struct SleepOptions
{
	int64		items;
	int			sleep_ms;
	int			chunk_size;
	int			fail_every;		/* 0: no item fails */
} SleepOptions;

/* One option (job_options_foreach's callback). */
static void
sleep_option(const char *name, JsonbValue *val, void *arg)
{
	SleepOptions *o = arg;

	if (strcmp(name, "items") == 0)
		o->items = job_option_int(name, val, 0, 1000000);
	else if (strcmp(name, "sleep_ms") == 0)
		o->sleep_ms = (int) job_option_int(name, val, 0, 60000);
	else if (strcmp(name, "chunk_size") == 0)
		o->chunk_size = (int) job_option_int(name, val, 1, 100000);
	else if (strcmp(name, "fail_every") == 0)
		o->fail_every = (int) job_option_int(name, val, 0, 1000000);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\"", name),
				 errhint("Valid options for a sleep job are: items, sleep_ms, chunk_size, fail_every.")));
}

/* The options with their defaults, at submit and again in run(). */
static void
sleep_options_parse(Jsonb *options, SleepOptions *o)
{
	o->items = 10;
	o->sleep_ms = 10;
	o->chunk_size = 1;
	o->fail_every = 0;
	job_options_foreach(options, sleep_option, o);
}

/* The submit-time check: only the options. */
static void
sleep_check_submit(JobSubmit *s)
{
	SleepOptions o;

	sleep_options_parse(s->options, &o);
	s->items_total = o.items;
}

/* The position of the next item, from the checkpoint (0 for a new job). */
static int64
checkpoint_index(Jsonb *checkpoint)
{
	JsonbValue	v;

	if (checkpoint && JB_ROOT_IS_OBJECT(checkpoint) &&
		getKeyJsonValueFromContainer(&checkpoint->root, "index", 5, &v) &&
		v.type == jbvNumeric)
		return DatumGetInt64(DirectFunctionCall1(numeric_int8,
												 NumericGetDatum(v.val.numeric)));
	return 0;
}

/* Sleep ms milliseconds, waking for interrupts (a cancel's SIGINT). */
static void
sleep_item(int ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* From the checkpoint to the last item, a chunk per transaction. */
static void
sleep_run(JobContext *ctx)
{
	const JobInfo *job = job_info(ctx);
	SleepOptions o;
	int64		next = checkpoint_index(job->checkpoint);

	sleep_options_parse(job->options, &o);
	for (;;)
	{
		JobCounts	delta;
		int64		end = Min(next + o.chunk_size, o.items);
		const char *final;
		char	   *checkpoint;

		memset(&delta, 0, sizeof(delta));
		job_check_cancel(ctx);
		job_begin_chunk(ctx);
		for (; next < end; next++)
		{
			sleep_item(o.sleep_ms);
			job_check_cancel(ctx);
			if (o.fail_every > 0 && next % o.fail_every == 0)
				job_report_error(ctx, 0, next, "sleep_error",
								 psprintf("item " INT64_FORMAT " failed on purpose", next),
								 "P0001", NULL, psprintf(INT64_FORMAT, next), -1);
			else
				delta.created++;
			delta.rows_done++;
		}
		final = next >= o.items ? "completed" : NULL;
		checkpoint = psprintf("{\"index\": " INT64_FORMAT "}", next);
		job_summary_set(ctx, "slept_items", next);
		job_commit_chunk(ctx,
						 DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															CStringGetDatum(checkpoint))),
						 o.items > 0 ? (int) Min(99, 100 * next / o.items) : -1,
						 &delta, final, NULL);
		if (final)
			break;
	}
}

const JobKind sleep_job_kind = {
	.name = "sleep",
	.has_target = false,
	.check_submit = sleep_check_submit,
	.run = sleep_run,
	.can_resume = true,
};

/* submit_sleep(options jsonb) RETURNS bigint, bound by the test. */
Datum
batch_ops_submit_sleep(PG_FUNCTION_ARGS)
{
	JobSubmit	s;

	memset(&s, 0, sizeof(s));
	s.options = PG_ARGISNULL(0) ?
		DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P(0);
	PG_RETURN_INT64(jobs_submit("sleep", &s));
}
