/*-------------------------------------------------------------------------
 *
 * job_shmem.h
 *	  The shared memory of the job runtime: the launcher, the databases
 *	  with work waiting for it, one slot per job worker; and what a
 *	  transaction asks of them when it commits.
 *
 * Locking: every field of JobsShared and of its slots is read and written
 * under JobsShared.mutex, a spinlock, and nothing is done while holding
 * it but plain loads and stores (no palloc, no elog, no system call):
 *	- launcher_pid, launcher_latch: written by the launcher (launcher.c);
 *	- scan_all, npending, pending[]: written by any backend
 *	  (jobs_wake_launcher), emptied by the launcher;
 *	- slots[i].in_use, dboid: set by the launcher when it starts a worker,
 *	  cleared by the worker at exit or by the launcher when it reaps one;
 *	- slots[i].pid, latch, job_id: written by the slot's worker;
 *	- slots[i].cancel: set by a committing cancel_job(), read and cleared
 *	  by the slot's worker.
 * nslots is fixed at start-up.  A latch is set after the lock is
 * released.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOB_SHMEM_H
#define BATCH_OPS_JOB_SHMEM_H

#include "storage/latch.h"
#include "storage/spin.h"

/* GUC: batch_ops.max_workers (job_shmem.c) */
extern int	batch_ops_max_workers;

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
	char		capped_kind[32];	/* the job's kind, if the kind has a cap
									 * on its workers (jobs_slot_take_kind) */
} JobWorkerSlot;

typedef struct JobsShared
{
	slock_t		mutex;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	bool		scan_all;		/* start a worker in every database */
	int			npending;
	Oid			pending[JOBS_MAX_PENDING_DBS];
	int			outbound_inflight;	/* requests in flight (outbound_engine.c) */
	int			nslots;
	JobWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} JobsShared;

extern JobsShared *jobs_shared;

/* _PG_init: the max_workers setting and the shared memory hooks. */
extern void job_shmem_init(void);

/* Is the library preloaded, so that jobs can run? */
extern bool jobs_preloaded(void);

/* ERROR unless preloaded: the message for the submit functions. */
extern void jobs_require_preload(void);

/* Tell the launcher that a database has queued work. */
extern void jobs_wake_launcher(Oid dboid);

/* At this transaction's commit: wake the launcher for this database. */
extern void jobs_wake_at_commit(int64 job_id);
extern void jobs_wake_database_at_commit(void);

/* Was job_id submitted by the transaction still in progress? */
extern bool job_submitted_in_xact(int64 job_id);

/* At commit (unless rolled back to a savepoint): stop the job's worker. */
extern void jobs_cancel_at_commit(int64 job_id);

/*
 * A kind with a cap on its workers (JobKind.max_workers): take the slot
 * for it if fewer than limit other workers run that kind; false if not.
 */
extern bool jobs_slot_take_kind(JobWorkerSlot *self, const char *kind, int limit);

#endif							/* BATCH_OPS_JOB_SHMEM_H */
