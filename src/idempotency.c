/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  Idempotency keys (placeholder until issue #3 lands).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "idempotency.h"

Jsonb *
idempotency_claim(const char *key, BatchOp op, Oid relid, Jsonb *items,
				  bool atomic)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("idempotency keys are not supported yet")));
	return NULL;
}

void
idempotency_store(const char *key, Jsonb *response)
{
}
