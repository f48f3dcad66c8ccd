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

#endif							/* BATCH_OPS_RESPONSE_H */
