/*-------------------------------------------------------------------------
 *
 * idempotency.h
 *	  Idempotency keys for the batch functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_IDEMPOTENCY_H
#define BATCH_OPS_IDEMPOTENCY_H

#include "utils/jsonb.h"

#include "target.h"

/*
 * Claim the key for this request.  Returns the stored response when the
 * same role already made the same request with this key (a replay), or
 * NULL when the caller is to run the batch and then call
 * idempotency_store() in the same transaction.
 */
extern Jsonb *idempotency_claim(const char *key, BatchOp op, Oid relid,
								Jsonb *items, bool atomic);
extern void idempotency_store(const char *key, Jsonb *response);

#endif							/* BATCH_OPS_IDEMPOTENCY_H */
