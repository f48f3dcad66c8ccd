/*-------------------------------------------------------------------------
 *
 * job_worker.h
 *	  The job worker: a dynamic background worker that runs one job.
 *
 * launcher.c starts it by its entry point's name.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOB_WORKER_H
#define BATCH_OPS_JOB_WORKER_H

#include "fmgr.h"

extern PGDLLEXPORT void batch_ops_job_worker_main(Datum main_arg);

#endif							/* BATCH_OPS_JOB_WORKER_H */
