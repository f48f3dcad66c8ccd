/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  Async jobs: the queue (jobs.c), the launcher and job workers
 *	  (worker.c), CSV import (csv_import.c) and its sources (source.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOBS_H
#define BATCH_OPS_JOBS_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/jsonb.h"

#include "item_error.h"
#include "target.h"

/* GUC variables (jobs.c) */
extern int	batch_ops_max_workers;
extern int	batch_ops_max_async_items;
extern int	batch_ops_job_ttl;		/* seconds */
extern int	batch_ops_poll_interval;	/* seconds */

/* Databases with queued work that the launcher has not served yet. */
#define JOBS_MAX_PENDING_DBS	64

/* One running job worker. */
typedef struct JobWorkerSlot
{
	bool		in_use;
	pid_t		pid;
	Oid			dboid;
	int64		job_id;			/* 0 while between jobs */
	bool		cancel;			/* cancel_job() committed for job_id */
	Latch	   *latch;
} JobWorkerSlot;

typedef struct JobsShared
{
	slock_t		mutex;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	bool		scan_all;		/* start a worker in every database */
	int			npending;
	Oid			pending[JOBS_MAX_PENDING_DBS];
	int			nslots;
	JobWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} JobsShared;

extern JobsShared *jobs_shared;

/* A job as the worker sees it. */
typedef struct Job
{
	int64		id;
	Oid			role;
	char	   *kind;			/* "import" or "batch" */
	BatchOp		op;
	Oid			relid;
	char	   *source;
	Jsonb	   *options;
	bool		atomic;
	int64		bytes_total;
	int64		ckpt_offset;	/* byte offset of the next unread record */
	int64		ckpt_line;		/* lines consumed so far (COPY's count) */
	int64		ckpt_index;		/* next item of a batch */
	int64		items_total;
	char	   *columns;		/* resolved column map, JSON text, or NULL */
	int64		errors_total;
	bool		finished;		/* its final status has committed */
	JobWorkerSlot *slot;
} Job;

/* Counters of one chunk, written with its checkpoint. */
typedef struct ChunkResult
{
	int64		applied;
	int64		failed;
	int64		next_offset;
	int64		next_line;
	int64		next_index;
	int64		bytes_total;	/* -1 if unknown */
	int64		rows_seen;		/* rows (items) read in this chunk */
	int			nerrors;
	/* the chunk's errors, parallel arrays */
	int64	   *err_line;		/* 0 for batches */
	int64	   *err_index;		/* -1 for imports */
	char	  **err_name;
	char	  **err_message;
	char	  **err_sqlstate;
	char	  **err_detail;
	char	  **err_raw;
	int			err_alloc;
	MemoryContext cxt;			/* where the errors live */
} ChunkResult;

/* Options of an import, as validated at submit time (csv_import.c). */
typedef struct ImportOptions
{
	bool		header;
	char		delimiter;
	char		quote;
	char		escape;
	char	   *null_string;
	int			encoding;		/* of the file; -1 = the database's */
	Jsonb	   *columns;		/* array or object, or NULL */
	bool		atomic;
	int			chunk_size;
	int64		max_errors;		/* -1 = no limit */
	int			max_record_bytes;	/* longer records are row errors */
} ImportOptions;

/* max_record_bytes: default and bounds (a record goes whole into one jsonb) */
#define RECORD_BYTES_DEFAULT	(16 * 1024 * 1024)
#define RECORD_BYTES_MIN		1024
#define RECORD_BYTES_MAX		(128 * 1024 * 1024)

/* Options of a submit_batch job (jobs.c). */
typedef struct BatchOptions
{
	bool		atomic;
	int			chunk_size;
} BatchOptions;

/* Call for each key of a job's options object. */
typedef void (*JobOptionFn) (const char *name, JsonbValue *val, void *arg);

/* Raise the privileges to the job tables' owner, with a safe search_path. */
typedef struct OwnerSwitch
{
	Oid			save_user;
	int			save_sec;
	int			nestlevel;
} OwnerSwitch;

/* jobs.c */
extern void jobs_owner_begin(OwnerSwitch *sw);
extern void jobs_owner_end(OwnerSwitch *sw);
extern void jobs_init(void);
extern int64 jobs_purge(void);
extern void job_options_foreach(Jsonb *options, JobOptionFn fn, void *arg);
extern bool job_option_bool(const char *name, JsonbValue *val);
extern int64 job_option_int(const char *name, JsonbValue *val, int64 min, int64 max);
extern void batch_options_parse(Jsonb *options, BatchOptions *o);
extern bool jobs_preloaded(void);
extern void jobs_wake_launcher(Oid dboid);
extern void notify_job_status(int64 job_id, const char *status);
extern void job_check_cancel(Job *job);
extern void job_check_target(Job *job);
extern void chunk_add_error(ChunkResult *res, int64 line, int64 index,
							const char *name, const char *message,
							const char *sqlstate, const char *detail,
							const char *raw, int rawlen);
extern int64 jsonb_get_applied(Jsonb *response);
extern void chunk_add_response_errors(ChunkResult *res, Jsonb *response,
									  const int64 *lines, char **raws,
									  const int *rawlens, int64 index_base);

/* worker.c */
extern void jobs_register_launcher(void);
extern PGDLLEXPORT void batch_ops_launcher_main(Datum main_arg);
extern PGDLLEXPORT void batch_ops_job_worker_main(Datum main_arg);
typedef struct JobRoleSwitch
{
	Oid			save_user;
	int			save_sec;
	int			nestlevel;
} JobRoleSwitch;

extern void job_begin_chunk(void);
extern void job_commit_chunk_ex(Job *job, ChunkResult *res,
								const char *final_status, const char *error);
extern void job_commit_atomic(Job *job, Subxact *all, ChunkResult *res,
							  const char *final, char *final_error,
							  const char *what, const char *done);
extern void job_as_role_begin(Job *job, JobRoleSwitch *rs);
extern void job_as_role_end(JobRoleSwitch *rs);

/* csv_import.c */
extern void csv_import_run(Job *job);
extern void import_options_parse(Jsonb *options, ImportOptions *opts);
extern char *job_raw_text(const char *raw, int len, int encoding, int limit);
extern void batch_job_run(Job *job);

/* copy_path.c: runs of CSV records written by COPY, split at failures */
typedef struct RecordRun
{
	StringInfoData data;		/* the records as in the file, each + '\n' */
	int			nrec;
	int			maxrec;
	int		   *start;			/* offset of record i in data; [nrec] = len */
	int64	   *line;			/* its (last) line in the file, COPY's count */
	int		   *nl;				/* line feeds inside its quoted fields */
} RecordRun;

typedef struct CopyPath CopyPath;

/* Write records [first, last) of a run some other way (the batch engine). */
typedef void (*CopyFallback) (void *arg, RecordRun *run, int first, int last,
							  ChunkResult *res);

extern void record_run_init(RecordRun *run);
extern void record_run_reset(RecordRun *run);
extern void record_run_add(RecordRun *run, const char *data, int len, int64 line,
						   int nl);
extern void record_run_close(RecordRun *run, int64 line, int nl);
extern bool copy_path_usable(CopyPath *cp);
extern CopyPath *copy_path_begin(Job *job, ImportOptions *o, char **cols, int ncols,
								 int run_records, CopyFallback fallback, void *arg);
extern void copy_path_apply(CopyPath *cp, RecordRun *run, ChunkResult *res);
extern int64 copy_path_subxacts(CopyPath *cp);

/* source.c, url_policy.c: import sources and who may read them */
#include "source.h"

#endif							/* BATCH_OPS_JOBS_H */
