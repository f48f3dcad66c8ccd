/*-------------------------------------------------------------------------
 *
 * response.h
 *	  The JSON answer of the SQL functions, from a BatchResult
 *	  (response.c).  Job kinds read the BatchResult itself.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_RESPONSE_H
#define BATCH_OPS_RESPONSE_H

#include "utils/jsonb.h"

#include "batch.h"

extern Jsonb *response_build(BatchResult *result);

/*
 * batch_execute() and the JSON answer of the SQL functions, in the
 * caller's memory context.  With return_rows false the answer is
 * {"applied": n, "errors": [...]} (deletes: "deleted") and no row is
 * turned into JSON.
 */
extern Jsonb *batch_run(BatchOp op, Oid relid, Jsonb *items, bool atomic,
						bool return_rows);

#endif							/* BATCH_OPS_RESPONSE_H */
