/*-------------------------------------------------------------------------
 *
 * jobs_api.h
 *	  The SQL functions of jobs (jobs_api.c), and the runtime's settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOBS_API_H
#define BATCH_OPS_JOBS_API_H

#include "fmgr.h"

#include "job_kind.h"

/* _PG_init: the job runtime's settings, shared memory and kinds. */
extern void jobs_init(void);

/*
 * Queue a job of the named kind after its check_submit; returns its id.
 * For a kind's own SQL entry point (the SQL functions above use it).
 */
extern int64 jobs_submit(const char *kind_name, JobSubmit *submit);

/* ERROR 22004 "<name> must not be null" if argument n is NULL. */
extern void arg_not_null(FunctionCallInfo fcinfo, int n, const char *name);

/* The SQL functions (exported: the library is built with hidden visibility) */
extern PGDLLEXPORT Datum batch_ops_submit_import(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_submit_batch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_purge(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_job(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_wait_job(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_cancel_job(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_resume_job(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_job_errors(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_job_list(PG_FUNCTION_ARGS);

#endif							/* BATCH_OPS_JOBS_API_H */
