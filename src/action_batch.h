/*-------------------------------------------------------------------------
 *
 * action_batch.h
 *	  Action batches (the Cisco Meraki model): the SQL API, the store of
 *	  batches, and the execution of a batch's actions with the batch
 *	  engine (action_batch.c).  The asynchronous kind is
 *	  kind_action_batch.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_ACTION_BATCH_H
#define BATCH_OPS_ACTION_BATCH_H

#include "fmgr.h"
#include "utils/jsonb.h"

/* GUCs */
extern int	batch_ops_max_sync_actions;
extern int	batch_ops_max_async_actions;
extern int	batch_ops_max_running_action_batches;
extern int	batch_ops_action_batch_timeout;	/* seconds */
extern int	batch_ops_action_draft_ttl; /* seconds */

/* What a batch's run wrote, for its job's counters. */
typedef struct ActionCounts
{
	int64		created;
	int64		updated;
	int64		deleted;
} ActionCounts;

/* Settings; the kind's init calls it from _PG_init. */
extern void action_batch_init(void);

/*
 * For the kind.  action_batch_load: the actions of batch_id, which must
 * belong to role (as the tables' owner).  action_batch_execute: resolve
 * and run them as the current user, in one subtransaction that is rolled
 * back if any action failed, each on the table it named at confirmation
 * (the job's options); returns the status object.
 * action_batch_finish: record the end and send its NOTIFY.  The running
 * slot: at most max_running_action_batches of a role at once.
 */
extern Jsonb *action_batch_load(int64 batch_id, Oid role);
extern Jsonb *action_batch_execute(Jsonb *actions, Jsonb *options, bool *failed,
								   ActionCounts *counts);
extern void action_batch_finish(int64 batch_id, const char *state, Jsonb *status);
extern Jsonb *action_batch_failure_status(const char *name, const char *message);
extern bool action_slot_try(Oid role, int limit, bool session, int *slot);
extern void action_slot_release(Oid role, int slot, bool session);

/* batch_ops.purge(): drafts past action_draft_ttl, finished past job_ttl. */
extern int64 action_batch_purge(void);

/* SQL */
extern PGDLLEXPORT Datum batch_ops_create_action_batch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_update_action_batch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_delete_action_batch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_action_batch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_wait_action_batch(PG_FUNCTION_ARGS);

#endif							/* BATCH_OPS_ACTION_BATCH_H */
