/*-------------------------------------------------------------------------
 *
 * job_store.h
 *	  Every statement on the job tables (batch_ops.job_queue, job_error,
 *	  job_item): insert, claim, chunk commit, finish, purge, notify, and
 *	  the lookups behind job(), job_errors(), cancel_job(), resume_job()
 *	  and the jobs view.
 *
 * The store knows no kind: a row's kind, checkpoint and summary are
 * opaque to it.  Each function runs its statements as the tables' owner
 * (spi_util.h) in the caller's transaction; none commits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOB_STORE_H
#define BATCH_OPS_JOB_STORE_H

#include "fmgr.h"
#include "utils/jsonb.h"

/* GUC: batch_ops.job_ttl, seconds (job_store.c) */
extern int	batch_ops_job_ttl;

/* The errors of a chunk, written with its checkpoint (job_runtime.c fills it). */
typedef struct ChunkResult
{
	int64		applied;		/* rows or items written, for the kind */
	int64		failed;			/* rows or items that failed */
	int			nerrors;
	/* the chunk's errors, parallel arrays */
	int64	   *err_line;		/* 0: none (batches) */
	int64	   *err_index;		/* -1: none (imports) */
	char	  **err_name;
	char	  **err_message;
	char	  **err_sqlstate;
	char	  **err_detail;
	char	  **err_raw;
	int			err_alloc;
	MemoryContext cxt;			/* where the errors live */
} ChunkResult;

/* A job row as a worker claims it. */
typedef struct JobRow
{
	int64		id;
	Oid			role;
	char	   *kind;
	char	   *operation;		/* NULL if the kind has none */
	Oid			target;			/* InvalidOid if the kind has none */
	char	   *source;
	Jsonb	   *options;
	bool		atomic;
	Jsonb	   *checkpoint;		/* the kind's, '{}' at first */
	Jsonb	   *summary;
	int64		errors_total;
	/* what the claim checks */
	bool		cancel_requested;
	bool		was_running;	/* interrupted (crash, shutdown) */
	int			attempts;
	bool		role_exists;
	bool		target_exists;	/* false if it has none */
} JobRow;

/*
 * The claim's verdict on a locked candidate: NULL to run it, else the
 * status to give it ("failed", "cancelled") and, in *error, why.
 */
typedef const char *(*JobClaimCheck) (const JobRow *row, const char **error);

/* _PG_init: the batch_ops.job_ttl setting. */
extern void job_store_init(void);
extern bool job_store_is_current(char **installed);
extern void job_store_require_current(void);

extern int64 job_store_insert(const char *kind, const char *operation, Oid target,
							  const char *source, Jsonb *options, bool atomic,
							  Jsonb *summary);
extern void job_store_insert_items(int64 job_id, Jsonb *items);
extern Jsonb *job_store_fetch_items(int64 job_id, int64 from, int n, int *count);

extern JobRow *job_store_claim(JobClaimCheck check, MemoryContext cxt, int *queued);
extern void job_store_unlock(int64 job_id);

extern bool job_store_commit(int64 job_id, ChunkResult *res, Jsonb *checkpoint,
							 Jsonb *summary, int64 rows_done, int progress,
							 const char *status, const char *error);
extern void job_store_finish(int64 job_id, const char *status, const char *error,
							 bool keep_items);
extern int64 job_store_purge(void);
extern void job_store_notify(int64 job_id, const char *status);

/* The SQL API's lookups: the caller's own jobs (every job for a superuser). */
extern Jsonb *job_store_job_json(int64 job_id, bool *finished);
extern char *job_store_cancel(int64 job_id);
extern char *job_store_resume_lock(int64 job_id, char **kind, bool *atomic);
extern void job_store_requeue(int64 job_id);
extern void job_store_errors(FunctionCallInfo fcinfo, int64 job_id);
extern void job_store_list(FunctionCallInfo fcinfo);

#endif							/* BATCH_OPS_JOB_STORE_H */
