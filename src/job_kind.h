/*-------------------------------------------------------------------------
 *
 * job_kind.h
 *	  Kinds of job: what each brings to the runtime, and the registry.
 *
 * A kind is one file (kind_*.c) that defines a JobKind and one line in
 * the static table of job_kind.c, as core maps bgworker entry points by
 * name in a static table.  A job row stores its kind's name, never a
 * pointer: a row whose kind this build does not know fails with a clear
 * message (job_worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_JOB_KIND_H
#define BATCH_OPS_JOB_KIND_H

#include "job_runtime.h"

/* A submit, as the SQL API received it; check_submit fills the rest. */
typedef struct JobSubmit
{
	const char *operation;		/* NULL if the SQL function has none */
	Oid			target;			/* InvalidOid if none */
	const char *source;			/* NULL if none */
	Jsonb	   *options;		/* an object, '{}' if not given */
	Jsonb	   *items;			/* NULL if none; stored in job_item */
	/* set by check_submit */
	bool		atomic;
	int64		items_total;	/* -1: not known; else in the summary */
} JobSubmit;

typedef struct JobKind
{
	const char *name;			/* job_queue.kind */
	bool		has_target;		/* chunks lock the target; claim fails the
								 * job if the table is gone */
	/* ERROR if the submit is not valid or not allowed; called as the caller */
	void		(*check_submit) (JobSubmit *submit);
	/* from the checkpoint to a final status; called outside a transaction */
	void		(*run) (JobContext *ctx);
	/* optional: define settings (from _PG_init) */
	void		(*init) (void);
	/* optional: at most this many workers run jobs of the kind at once */
	int			(*max_workers) (void);
	/* optional: delete the kind's own expired rows (batch_ops.purge()) */
	int64		(*purge) (void);

	/*
	 * resume_job() may put a failed job of the kind back in the queue: its
	 * run() resumes at the checkpoint, as after a crash, and its items are
	 * kept when it fails (job_runtime.c).  Atomic jobs never resume (their
	 * checkpoint may say "done" while nothing was applied).  If false,
	 * resume_hint says what to do instead.
	 */
	bool		can_resume;
	const char *resume_hint;
} JobKind;

/* The kind named so, or NULL if this build has none. */
extern const JobKind *job_kind_lookup(const char *name);

/* The claim's verdict for a capped kind's job: "queued" means skip it. */
#define JOB_CLAIM_SKIP "queued"

/* ERROR unless resume_job() may requeue a failed job of the kind. */
extern void job_kind_check_resume(const char *name, bool atomic);

/* _PG_init: every kind's init. */
extern void job_kinds_init(void);

/* batch_ops.purge(): every kind's purge; how many rows they deleted. */
extern int64 job_kinds_purge(void);

#endif							/* BATCH_OPS_JOB_KIND_H */
