/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  The state of one batch call, shared by the engine's phases:
 *	  reading items (crud.c), checking them (precheck.c), writing them
 *	  (crud.c) and answering (response.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_BATCH_H
#define BATCH_OPS_BATCH_H

#include "nodes/bitmapset.h"
#include "nodes/execnodes.h"
#include "utils/jsonb.h"

#include "item_convert.h"
#include "item_error.h"
#include "row_json.h"
#include "target.h"

typedef struct BatchItem
{
	JsonbValue	source;			/* the element as given, for error reports */
	Datum	   *values;			/* converted values, by column index */
	bool	   *isnull;
	Bitmapset  *present;		/* column indexes the item gives */
	int			round;			/* earlier items with the same key */
	Datum		row;			/* the values as a row of the table's type */
	ItemError  *error;			/* set once the item has failed */
	JsonbValue	result;			/* the row as stored (jbvObject), if returned */
	bool		has_result;
	bool		applied;
} BatchItem;

typedef struct Batch
{
	BatchOp		op;
	bool		atomic;
	bool		return_rows;	/* answer with rows, or only a count */
	RowJson    *row_json;		/* how to turn returned rows into JSON */
	Target	   *target;
	int			nitems;
	BatchItem  *items;
	ColumnInput *inputs;		/* per column, set up on first use */
	int64		applied;		/* items that changed a row */
	MemoryContext cxt;			/* lives as long as the call */
	MemoryContext stmt_cxt;		/* reset after every statement attempt */
	const char *current_column;	/* being converted, for error reports */
	bool		converting;		/* in an input function or domain check */
	EState	   *estate;			/* for CHECK constraints, made on first use */
	TupleTableSlot *slot;
} Batch;

static inline bool
item_alive(BatchItem *item)
{
	return item->error == NULL;
}

/* precheck.c */
extern ItemError *precheck_item_constraints(Batch *batch, BatchItem *item);
extern void precheck_duplicates(Batch *batch, int ncols, const int *cols,
								int *occurrence);
extern void precheck_unique_in_batch(Batch *batch);
extern void precheck_keys_visible(Batch *batch, int *members, int nmembers,
								  bool *found);
extern uint64 precheck_existing_keys(Batch *batch, int *members, int nmembers,
									 uint64 mask);

/* response.c */
extern Jsonb *response_build(Batch *batch, bool rolled_back);

/* crud.c */
extern Datum batch_row_array(Batch *batch, int *members, int nmembers);

#endif							/* BATCH_OPS_BATCH_H */
