/*-------------------------------------------------------------------------
 *
 * legacy_exports.h
 *	  Transitional: exports the SQL functions of jobs.c and ratelimit.c,
 *	  which do not declare them PGDLLEXPORT themselves yet.
 *
 * The library is built with -fvisibility=hidden (Makefile), so a function
 * is exported only when declared PGDLLEXPORT, and PG15's
 * PG_FUNCTION_INFO_V1 exports the info function but not the function
 * itself (PG16's does both).  The Makefile force-includes this header
 * into those two files only.  Delete it, and its Makefile lines, once
 * the files that define these functions declare them as crud.c's are
 * declared in batch_ops.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_LEGACY_EXPORTS_H
#define BATCH_OPS_LEGACY_EXPORTS_H

#include "postgres.h"

#include "fmgr.h"

/* jobs.c */
extern PGDLLEXPORT Datum batch_ops_submit_import(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_submit_batch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_purge(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_job(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_wait_job(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_cancel_job(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_job_errors(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_job_list(PG_FUNCTION_ARGS);


#endif							/* BATCH_OPS_LEGACY_EXPORTS_H */
