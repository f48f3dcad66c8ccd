/*-------------------------------------------------------------------------
 *
 * batch_internal.h
 *	  The state of one batch while the engine runs it, shared by its
 *	  phases: reading and writing items (batch.c) and checking them
 *	  (precheck.c).  Not for use outside the engine: its callers see only
 *	  batch.h.
 *
 * batch.c calls precheck.c and never the other way round; what both need
 * of a Batch is here, as inline functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_BATCH_INTERNAL_H
#define BATCH_OPS_BATCH_INTERNAL_H

#include "nodes/bitmapset.h"
#include "nodes/execnodes.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "batch.h"
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
	bool		fields_text;	/* strings are text fields (CSV), read by
								 * the input function of any type */
	RowJson    *row_json;		/* how to turn returned rows into JSON */
	Target	   *target;
	int			nitems;
	BatchItem  *items;
	ColumnInput *inputs;		/* per column, set up on first use */
	int64		applied;		/* items that changed a row */
	MemoryContext cxt;			/* the call's, then the result's */
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

/*
 * The rows of some items as an array of the table's row type: the $1 of
 * every statement of the engine (plan_cache.c).  Inline, so that precheck.c
 * needs nothing from batch.c.
 */
static inline Datum
batch_row_array(Batch *batch, int *members, int nmembers)
{
	Datum	   *rows = palloc(sizeof(Datum) * Max(nmembers, 1));
	int			i;

	for (i = 0; i < nmembers; i++)
		rows[i] = batch->items[members[i]].row;
	return PointerGetDatum(construct_array(rows, nmembers, batch->target->rowtype,
										   -1, false, TYPALIGN_DOUBLE));
}

#endif							/* BATCH_OPS_BATCH_INTERNAL_H */
