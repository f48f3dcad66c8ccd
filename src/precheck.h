/*-------------------------------------------------------------------------
 *
 * precheck.h
 *	  Find failing items before writing anything (precheck.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_PRECHECK_H
#define BATCH_OPS_PRECHECK_H

#include "batch_internal.h"

extern ItemError *precheck_item_constraints(Batch *batch, BatchItem *item);
extern void precheck_duplicates(Batch *batch, int ncols, const int *cols,
								int *occurrence);
extern void precheck_unique_in_batch(Batch *batch);
extern void precheck_keys_visible(Batch *batch, int *members, int nmembers,
								  bool *found);
extern void precheck_skipped_conflicts(Batch *batch, int *members,
									   int nmembers);
extern bool precheck_key_exists(Batch *batch, BatchItem *item);
extern int	precheck_fk_suspects(Batch *batch, int *members, int nmembers,
								 bool *suspect);
extern uint64 precheck_existing_keys(Batch *batch, int *members, int nmembers,
									 uint64 mask);

#endif							/* BATCH_OPS_PRECHECK_H */
