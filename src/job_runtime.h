/*-------------------------------------------------------------------------
 *
 * job_runtime.h
 *	  What the job runtime gives a kind (job_kind.h): its job's fields and
 *	  checkpoint, chunk transactions, run-as-the-submitter, cancel checks
 *	  and a sink for per-item errors; plus the entry points job_worker.c
 *	  uses to run a claimed job.
 *
 * A kind's run() is called outside a transaction.  It works in chunks:
 * job_begin_chunk() starts a transaction (and locks the kind's target
 * table, if it has one), the kind writes rows as the submitter between
 * job_as_role_begin() and job_as_role_end() and reports failed items with
 * job_report_error(); job_commit_chunk() then writes the errors, the
 * kind's checkpoint, counters and progress, and commits, all in the
 * chunk's transaction.  A crash therefore resumes from the last
 * checkpoint without losing or repeating an item.  An atomic job makes
 * one chunk of all its work, in a subtransaction (job_atomic_end()).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOB_RUNTIME_H
#define BATCH_OPS_JOB_RUNTIME_H

#include "utils/acl.h"
#include "utils/jsonb.h"

#include "batch.h"
#include "item_error.h"
#include "job_shmem.h"
#include "job_store.h"
#include "spi_util.h"

typedef struct JobContext JobContext;	/* opaque; job_runtime.c */

/* A job as its kind sees it (job_info). */
typedef struct JobInfo
{
	int64		id;
	Oid			role;			/* the submitter: the work runs as it */
	const char *kind;
	Oid			target;			/* InvalidOid if the kind has none */
	const char *operation;		/* NULL if the kind has none */
	const char *source;			/* NULL if the kind has none */
	Jsonb	   *options;
	bool		atomic;
	Jsonb	   *checkpoint;		/* the kind's; '{}' for a new job */
	Jsonb	   *summary;		/* as committed so far */
	int64		errors_total;	/* errors committed so far */
} JobInfo;

/* What a chunk adds to the job's counters (failures come from the errors). */
typedef struct JobCounts
{
	int64		created;
	int64		updated;
	int64		deleted;
	int64		rows_done;		/* rows or items read, good or bad */
} JobCounts;

/* For a kind's run() */
extern const JobInfo *job_info(JobContext *ctx);
extern void job_begin_chunk(JobContext *ctx);
extern ChunkResult *job_chunk_result(JobContext *ctx);
extern void job_report_error(JobContext *ctx, int64 line, int64 index,
							 const char *name, const char *message,
							 const char *sqlstate, const char *detail,
							 const char *raw, int rawlen);
extern void job_summary_set(JobContext *ctx, const char *key, int64 value);
extern void job_commit_chunk(JobContext *ctx, Jsonb *checkpoint, int progress,
							 const JobCounts *delta, const char *final_status,
							 const char *error);
extern int	job_atomic_end(JobContext *ctx, Subxact *all);
extern void job_as_role_begin(JobContext *ctx, RoleSwitch *sw);
extern void job_as_role_end(RoleSwitch *sw);
extern void job_check_cancel(JobContext *ctx);
extern int64 job_jsonb_int(Jsonb *obj, const char *key, int64 dflt);
extern int64 job_report_batch_result(JobContext *ctx, BatchResult *result,
									 const int64 *lines, char **raws,
									 const int *rawlens, int64 index_base);

/* Errors of a chunk; job_report_error() adds to the context's. */
extern void chunk_add_error(ChunkResult *res, int64 line, int64 index,
							const char *name, const char *message,
							const char *sqlstate, const char *detail,
							const char *raw, int rawlen);
extern char *job_raw_text(const char *raw, int len, int encoding, int limit);

/* Options: call fn for each key of a job's options object. */
typedef void (*JobOptionFn) (const char *name, JsonbValue *val, void *arg);
extern void job_options_foreach(Jsonb *options, JobOptionFn fn, void *arg);
extern bool job_option_bool(const char *name, JsonbValue *val);
extern int64 job_option_int(const char *name, JsonbValue *val, int64 min, int64 max);

/* At submit: may the caller run a job on the table? */
extern void job_check_target_privilege(Oid relid, AclMode mode, const char *privname);

/* For job_worker.c */
extern JobContext *job_context_create(JobRow *row, bool has_target,
									  JobWorkerSlot *slot);
extern bool job_context_finished(JobContext *ctx);
extern void job_context_fail(JobContext *ctx, const char *status, const char *error);
extern void job_bookkeeping_begin(void);
extern void job_xact_commit(void);

#endif							/* BATCH_OPS_JOB_RUNTIME_H */
