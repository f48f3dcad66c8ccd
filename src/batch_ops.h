/*-------------------------------------------------------------------------
 *
 * batch_ops.h
 *	  Settings and entry points shared by every part of batch_ops.
 *
 * Each subsystem has its own header (target.h, item_convert.h, ...);
 * this one only holds what _PG_init defines: the GUC variables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_H
#define BATCH_OPS_H

/* GUC variables (batch_ops.c) */
extern int	batch_ops_max_create_items;
extern int	batch_ops_max_update_items;
extern int	batch_ops_max_delete_items;

#endif							/* BATCH_OPS_H */
