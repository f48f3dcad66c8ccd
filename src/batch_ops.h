/*-------------------------------------------------------------------------
 *
 * batch_ops.h
 *	  Settings and entry points shared by every part of batch_ops.
 *
 * Each subsystem has its own header (batch.h, target.h, ...); this one
 * holds the module's entry points and what _PG_init defines: the GUC
 * variables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_H
#define BATCH_OPS_H

#include "fmgr.h"

/*
 * Entry points.  The library is built with hidden visibility (Makefile):
 * only what is declared PGDLLEXPORT is exported.  PG15's
 * PG_FUNCTION_INFO_V1 exports the info function but not the function
 * itself, so every SQL function is declared here too.
 */
extern PGDLLEXPORT void _PG_init(void);

/* crud.c */
extern PGDLLEXPORT Datum batch_ops_create(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_update(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_delete(PG_FUNCTION_ARGS);
/* crud.c: the same under the symbols of 0.1.0's install script */
extern PGDLLEXPORT Datum batch_create(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_update(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_delete(PG_FUNCTION_ARGS);

/* GUC variables (batch_ops.c) */
extern int	batch_ops_max_create_items;
extern int	batch_ops_max_update_items;
extern int	batch_ops_max_delete_items;

#endif							/* BATCH_OPS_H */
