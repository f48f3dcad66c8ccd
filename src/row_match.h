/*-------------------------------------------------------------------------
 *
 * row_match.h
 *	  Match the rows an INSERT returns to the items by their values
 *	  (row_match.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_ROW_MATCH_H
#define BATCH_OPS_ROW_MATCH_H

#include "batch_internal.h"

typedef struct RowMatch RowMatch;

extern int	row_match_columns(Batch *batch, Bitmapset *shape, int *cols);
extern RowMatch *row_match_begin(Batch *batch, const int *cols, int ncols,
								 const int *members, int nmembers);
extern int	row_match_take(RowMatch *match, HeapTuple tuple, TupleDesc desc,
						   int first_attno);

#endif							/* BATCH_OPS_ROW_MATCH_H */
