/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher: a background worker that starts job workers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_LAUNCHER_H
#define BATCH_OPS_LAUNCHER_H

#include "fmgr.h"

/* GUC: batch_ops.poll_interval, seconds */
extern int	batch_ops_poll_interval;

/* _PG_init: the poll interval setting. */
extern void launcher_init(void);

/* While preloading: register the launcher with the postmaster. */
extern void launcher_register(void);

extern PGDLLEXPORT void batch_ops_launcher_main(Datum main_arg);

#endif							/* BATCH_OPS_LAUNCHER_H */
