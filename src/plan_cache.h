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

#include "lib/stringinfo.h"

extern char *plan_rows_source(Target *target);
extern void plan_append_operator(StringInfo buf, const char *left, Oid lefttype,
								 Oid opno, const char *right, Oid righttype);
extern void plan_append_key_match(StringInfo buf, Target *target, int ncols,
								  const int *cols, const Oid *eqops);
extern int	plan_execute(const char *sql, Oid argtype, Datum arg);
extern int	plan_execute_custom(const char *sql, Oid argtype, Datum arg);
extern int	plan_execute_custom_fetch(const char *sql, Oid argtype, Datum arg);
extern char *plan_keys_source(Target *target, int ncols, const int *cols);
extern void plan_append_key_params(StringInfo buf, Target *target, int ncols,
								   const int *cols, const Oid *eqops);
extern int	plan_execute_args(const char *sql, int nargs, Oid *argtypes,
							  Datum *args);

#endif							/* BATCH_OPS_PLAN_CACHE_H */
