/*-------------------------------------------------------------------------
 *
 * drop_guard.h
 *	  DROP EXTENSION batch_ops is refused while jobs run (drop_guard.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_DROP_GUARD_H
#define BATCH_OPS_DROP_GUARD_H

extern void drop_guard_init(void);

#endif							/* BATCH_OPS_DROP_GUARD_H */
