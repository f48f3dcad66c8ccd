/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  The batch engine's public interface: run one batch of creates,
 *	  updates or deletes on a table, and get per-item results as C
 *	  structures.
 *
 * The engine knows nothing of jobs.  Its callers are the SQL functions
 * (crud.c, which turn a BatchResult into JSON with response.c) and the
 * job kinds, which read a BatchResult directly: the applied count, and
 * each failed item's position and ItemError.
 *
 * A BatchResult and everything it points to live in the engine's memory
 * for the batch (batch.c keeps one context for the session, for speed):
 * read what you need, then free it with batch_result_free() -- at the
 * latest, the end of the transaction frees it.  Copy what must outlive
 * the transaction.  The items a BatchError points to are those of the
 * Jsonb given to batch_execute(), which must outlive the result.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_BATCH_H
#define BATCH_OPS_BATCH_H

#include "utils/jsonb.h"

#include "item_error.h"

typedef enum BatchOp
{
	BATCH_CREATE,
	BATCH_UPDATE,
	BATCH_DELETE
} BatchOp;

/* One failed item. */
typedef struct BatchError
{
	int			index;			/* 0-based position of the item in the batch */
	ItemError  *error;			/* name, message, sqlstate, detail, ... */
	JsonbValue *item;			/* the item (or, for deletes, the id) as given */
} BatchError;

typedef struct BatchResult
{
	BatchOp		op;
	bool		atomic;
	bool		rolled_back;	/* atomic and some item failed: nothing was
								 * written, applied is 0 */
	int			nitems;
	int64		applied;		/* items that changed (created, updated,
								 * deleted) a row */
	int			nerrors;
	BatchError *errors;			/* the failed items, in item order */
	JsonbValue *rows;			/* with return_rows, for create and update:
								 * nitems values, each the item's row as
								 * stored (a jbvObject in to_jsonb() form)
								 * or jbvNull; otherwise NULL */
	MemoryContext cxt;			/* everything above lives here (the
								 * engine's: free with batch_result_free) */
} BatchResult;

/*
 * Run one batch: no size limit, no idempotency key, no rate limit (the
 * callers apply their own).  Item errors are in the result; any other
 * error is thrown.  The caller must not be connected to SPI.
 */
extern BatchResult *batch_execute(BatchOp op, Oid relid, Jsonb *items,
								  bool atomic, bool return_rows);

/*
 * The same for items whose values are text fields, as a CSV import gives
 * them: each JSON string is read with its column type's input function
 * whatever the type, as COPY reads a field -- for a json or jsonb column
 * too, where batch_execute() would store the JSON string itself.  JSON
 * null is SQL NULL.
 */
extern BatchResult *batch_execute_fields(BatchOp op, Oid relid, Jsonb *items,
										 bool atomic, bool return_rows);
extern void batch_result_free(BatchResult *result);

/*
 * A failed item as text, as a job records it: a JSON string's own text,
 * NULL for JSON null, the JSON text of anything else; in the current
 * memory context.
 */
extern char *batch_error_item_text(const BatchError *error);

#endif							/* BATCH_OPS_BATCH_H */
