/*-------------------------------------------------------------------------
 *
 * plan_cache.h
 *	  Prepared statements over a batch's rows, kept for the session.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_PLAN_CACHE_H
#define BATCH_OPS_PLAN_CACHE_H

#include "target.h"

/* name of the position column of plan_rows_source(); 1-based */
#define BATCH_ORD_COLUMN "__batch_ops_ord"

extern char *plan_rows_source(Target *target);
extern int	plan_execute(const char *sql, Oid argtype, Datum arg);
extern int	plan_execute_custom(const char *sql, Oid argtype, Datum arg);

#endif							/* BATCH_OPS_PLAN_CACHE_H */
