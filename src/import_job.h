/*-------------------------------------------------------------------------
 *
 * import_job.h
 *	  The "import" kind's own types, shared by its files: kind_import.c
 *	  (options, chunk loop), csv_reader.c, copy_path.c and source.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_IMPORT_JOB_H
#define BATCH_OPS_IMPORT_JOB_H

#include "job_runtime.h"

/* An import job as the import's files see it (from job_info and its checkpoint). */
typedef struct Job
{
	JobContext *ctx;
	int64		id;
	Oid			role;
	Oid			relid;			/* the target table */
	char	   *source;
	Jsonb	   *options;
	bool		atomic;
	int64		bytes_total;	/* of the source, -1 if not known yet */
	int64		ckpt_offset;	/* byte offset of the next unread record */
	int64		ckpt_line;		/* lines consumed so far (COPY's count) */
	char	   *columns;		/* resolved column map, JSON text, or NULL */
	int64		errors_total;
} Job;

/* Options of an import, as validated at submit time (kind_import.c). */
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
	bool		chunk_size_given;	/* else the default for the table */
	int64		max_errors;		/* -1 = no limit */
	int			max_record_bytes;	/* longer records are row errors */
} ImportOptions;

/* max_record_bytes: default and bounds (a record goes whole into one jsonb) */
#define RECORD_BYTES_DEFAULT	(16 * 1024 * 1024)
#define RECORD_BYTES_MIN		1024
#define RECORD_BYTES_MAX		(128 * 1024 * 1024)

/*
 * The cancel point of code that holds the import's Job.  source.c is
 * maintained apart and calls job_check_cancel(job) with a Job; this maps
 * that call to the runtime's job_check_cancel(JobContext *).  Included
 * only by the import's files, after job_runtime.h.
 */
static inline void
import_job_check_cancel(Job *job)
{
	job_check_cancel(job->ctx);
}

#define job_check_cancel(job) import_job_check_cancel(job)

#endif							/* BATCH_OPS_IMPORT_JOB_H */
