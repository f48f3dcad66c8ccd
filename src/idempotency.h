/*-------------------------------------------------------------------------
 *
 * idempotency.h
 *	  Idempotency keys for the batch functions.
 *
 * The contract (DESIGN.md, "Idempotency and rate limits") and how it is
 * kept are described at the top of idempotency.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_IDEMPOTENCY_H
#define BATCH_OPS_IDEMPOTENCY_H

#include "utils/jsonb.h"

#include "target.h"

/* A key reused with a different request (HTTP 422 in the IETF draft). */
#define ERRCODE_BATCH_OPS_IDEMPOTENCY_KEY_REUSED	MAKE_SQLSTATE('B','O','4','2','2')

/* The longest key accepted, in characters. */
#define IDEMPOTENCY_KEY_MAX_LENGTH	255

/* GUC: seconds a key and its stored response are kept (batch_ops.idempotency_ttl) */
extern int	batch_ops_idempotency_ttl;

/* Define the settings; called from _PG_init. */
extern void idempotency_init(void);

/*
 * Claim the key for this request.  Returns the stored response when the
 * same role already made the same request with this key (a replay), or
 * NULL when the caller is to run the batch and then call
 * idempotency_store() in the same transaction.  A concurrent call with the
 * same key waits here until the first one's transaction ends.  The caller
 * must not be connected to SPI.
 */
extern Jsonb *idempotency_claim(const char *key, BatchOp op, Oid relid,
								Jsonb *items, bool atomic);
extern void idempotency_store(const char *key, Jsonb *response);

/*
 * Delete the expired keys of every role in the current database and
 * return how many were deleted; 0 when batch_ops is not installed there.
 * For batch_ops.purge() and the background worker: needs a transaction
 * and an active snapshot.
 */
extern int64 idempotency_purge(void);

#endif							/* BATCH_OPS_IDEMPOTENCY_H */
