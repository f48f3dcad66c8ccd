/*-------------------------------------------------------------------------
 *
 * jobs_api.h
 *	  The SQL functions of jobs (jobs_api.c), and the runtime's settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOBS_API_H
#define BATCH_OPS_JOBS_API_H

/* _PG_init: the job runtime's settings, shared memory and kinds. */
extern void jobs_init(void);

#endif							/* BATCH_OPS_JOBS_API_H */
