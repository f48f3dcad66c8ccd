/*-------------------------------------------------------------------------
 *
 * outbound.h
 *	  Outbound batches: the spec (outbound_spec.c), the engine
 *	  (outbound_engine.c, with its HTTP and SSH transports), the job kind
 *	  and the SQL API (kind_outbound.c).
 *
 * The spec is parsed once at submit (as the caller: every check that can
 * fail fails there) and again by the worker from the stored copy, which
 * carries no secret: inline passwords are sealed (credential.h) into
 * batch_ops.outbound_secret and erased when the job ends.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_OUTBOUND_H
#define BATCH_OPS_OUTBOUND_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/jsonb.h"

#include "outbound_driver.h"

/* GUCs (outbound_spec.c, outbound_engine.c, kind_outbound.c) */
extern int	batch_ops_max_outbound_targets;
extern int	batch_ops_max_sync_targets;
extern int	batch_ops_outbound_concurrency;
extern int	batch_ops_max_outbound_workers;

typedef struct OutboundOptions
{
	bool		pinned;			/* queue_strategy pinned (else fifo) */
	int			ttl;			/* seconds from submit; 0: none */
	int			concurrency;	/* in flight for this job */
	int			host_concurrency;	/* in flight per host (fifo) */
	int			retries;
	bool		retry_unsafe;
	int64		max_output_bytes;
	TimestampTz expires_at;		/* 0: never (from ttl, set at submit) */
} OutboundOptions;

/* An inline secret of the spec: the target it belongs to (-1: all). */
typedef struct OutboundInlineSecret
{
	int			index;
	char	   *password;
} OutboundInlineSecret;

typedef struct OutboundSpec
{
	const OutboundDriver *driver;
	const char *driver_name;
	OutboundOptions opts;
	int			ntargets;
	OutboundTarget *targets;
	/* credential name per target (NULL: none) */
	const char **credential;
	/* inline usernames per target (NULL: none) */
	const char **username;
	/*
	 * per target: why its named credential cannot be used in the worker
	 * (NULL: none, or the array NULL); the target fails "credential_error"
	 */
	const char **credential_error;
	List	   *secrets;		/* of OutboundInlineSecret *, found inline */
	Jsonb	   *stored;			/* the spec without its inline secrets */
} OutboundSpec;

/* driver_callback.c: true while action_batch.c submits a callback */
extern bool outbound_callback_internal;

/* outbound_spec.c */
extern void outbound_spec_init(void);
extern OutboundSpec *outbound_spec_parse(Jsonb *spec, bool sync, bool stored);
extern void outbound_spec_check_urls(OutboundSpec *spec);
extern void outbound_spec_attach_secrets(OutboundSpec *spec, Oid role,
										 List *inline_secrets,
										 bool per_target_errors);

/* One target's result. */
typedef struct OutboundResult
{
	int			index;
	const char *hostname;
	bool		success;
	long		status_code;	/* 0: none */
	Jsonb	   *output;			/* NULL: none */
	const char *error;			/* NULL on success */
	char	   *message;
	int			attempts;
	double		execution_time; /* seconds */
	TimestampTz started_at;		/* 0: never started */
	TimestampTz finished_at;
} OutboundResult;

/* What the engine asks of its caller (kind_outbound.c or run_outbound). */
typedef struct OutboundHooks
{
	void	   *arg;
	/* skip this target (already done, interrupted); may be NULL */
	bool		(*skip) (void *arg, int index);
	/* changes about to be sent: make them durable first; may be NULL */
	void		(*mark_started) (void *arg, const int *indexes, int n);
	/* a target's final result (memory: the engine's per-target context) */
	void		(*result) (void *arg, const OutboundResult *res);
	/* called each time round the loop: cancel checks, timed flushes */
	void		(*tick) (void *arg);
	/* ms until tick wants to run again, -1: no wish */
	long		(*tick_wait) (void *arg);
} OutboundHooks;

/* meraki_pack.c: the spec and hooks the engine runs (packs of actions) */
extern OutboundSpec *meraki_pack_spec(OutboundSpec *spec,
									  const OutboundHooks *inner,
									  OutboundHooks *outer);

/* outbound_engine.c */
extern void outbound_engine_init(void);
extern void outbound_engine_run(OutboundSpec *spec, const OutboundHooks *hooks);

/* shared memory: the cluster-wide count of requests in flight (job_shmem.c) */
extern int	outbound_inflight_acquire(int want, int limit);
extern void outbound_inflight_release(int n);
extern bool outbound_worker_acquire(int limit);

/* SQL functions (kind_outbound.c) */
extern PGDLLEXPORT Datum batch_ops_submit_outbound(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_run_outbound(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_outbound_results(PG_FUNCTION_ARGS);

#endif							/* BATCH_OPS_OUTBOUND_H */
