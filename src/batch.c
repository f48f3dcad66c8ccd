/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  The batch engine: write a JSON array of items to a table with
 *	  set-based statements, and report every item that failed.
 *
 * batch_execute() is used by the SQL functions (crud.c) and by the job
 * kinds; it knows nothing of either.  A batch is handled in three phases.
 *
 * 1. Read.  Every item is parsed, its values converted to the column
 *	  types and checked (precheck.c) without writing anything.  Input
 *	  functions report bad values by throwing, so this runs inside a
 *	  subtransaction; it writes nothing and therefore takes no XID.  When
 *	  an item throws, that subtransaction is rolled back, the item is
 *	  marked failed and a new subtransaction carries on from the next
 *	  item: k bad items cost k+1 cheap subtransactions, not n.  An error
 *	  thrown while converting a value (an input function, a domain's
 *	  CHECK) is the item's whatever its SQLSTATE -- a tsquery syntax error
 *	  is 42601 -- unless it is environmental (item_error.c); other errors
 *	  of this phase are judged as the statement's would be.
 *
 * 2. Write.  The surviving items are grouped by shape -- the set of
 *	  columns they give (and, for update and delete, how many earlier
 *	  items had the same key, so that repeated keys apply in order) -- and
 *	  each group is written by ONE set-based statement over unnest() of
 *	  an array of table rows (plan_cache.c, which also says how the
 *	  statements keep the caller's search_path out of them), inside ONE
 *	  subtransaction.
 *	  That subtransaction is the safety net for what could not be checked
 *	  in advance.  If it fails with an error that is the item's fault
 *	  (item_error.c), creates first look for keys that already exist
 *	  (one read-only query), and then the group is bisected: each half
 *	  is tried in its own subtransaction, down to single items, so k
 *	  unforeseen failures cost O(k log n) subtransactions.  Errors that
 *	  are not an item's fault are re-thrown as they are.
 *
 * 3. Result: a BatchResult (batch.h) with the failed items in item
 *	  order and, when asked for, the rows as stored, as JSON values
 *	  (row_json.c).  The SQL functions turn it into JSON (response.c).
 *
 * On a Citus table (citus_table.c) the rows live on other nodes and
 * Citus plans the statements: they are planned for the actual rows
 * (execute_rows), a create's RETURNING rows are matched to the items by
 * value (row_match.c) since they come back by shard, a create skips keys
 * that exist with ON CONFLICT DO NOTHING where it can and reports those
 * items as conflicts (create_skips_conflicts) -- unless its first and
 * last keys are there already, when a read settles every item without a
 * write (group_likely_all_existing) -- a statement that failed on a
 * foreign key is split around the items whose values name no row instead
 * of bisected (split_around_fk_suspects), and workers' errors get the
 * logical table's names back (unshard_error).
 *
 * Atomic mode does the same inside one more subtransaction, which is
 * rolled back if any item failed.  The items that passed phase 1 are
 * written even when others failed it, so that the answer lists every
 * failing item (a foreign key only the write can check, say), not only
 * the first kind of failure found.
 *
 * Locking: the target is locked with RowExclusiveLock when the batch
 * starts (target.c); rows are locked by the statements themselves.
 *
 * Memory: everything lives in the batch's context (batch_memory_get),
 * which becomes the BatchResult's; each statement attempt works in a
 * context reset after it.
 *
 * Calls: batch.c -> precheck.c, plan_cache.c, row_json.c, item_convert.c,
 * item_error.c, target.c; none of them calls back (what precheck.c needs
 * of a Batch is inline in batch_internal.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "batch_internal.h"
#include "citus_table.h"
#include "plan_cache.h"
#include "precheck.h"
#include "row_match.h"

/* Items that write with the same statement. */
typedef struct ItemGroup
{
	int			round;
	Bitmapset  *shape;
	int			nmembers;
	int		   *members;		/* item indexes, in item order */
	char	   *sql;
	bool		skips_conflicts;	/* ON CONFLICT DO NOTHING (Citus) */
} ItemGroup;

/*
 * The last table on which a create found keys that already existed, and
 * on which of its unique indexes: the next create on it checks those
 * before writing instead of after a failed statement.  Only a matter of
 * speed, never of results: a wrong hint costs one read-only query, or a
 * failed statement and a second try.  It is per session because a client
 * that sends duplicates tends to send them batch after batch (a retried
 * import, say), and one OID and one mask are all it costs; the hint is
 * not reset on abort because it holds no reference to anything.
 */
static Oid	existing_keys_relid = InvalidOid;
static uint64 existing_keys_mask = 0;

/* ---------------------------------------------------------------------
 * Phase 1: read and check the items
 * ---------------------------------------------------------------------
 */
static ColumnInput *
column_input(Batch *batch, int c)
{
	ColumnInput *input = &batch->inputs[c];

	if (!input->ready)
		column_input_init(input, batch->target->cols[c].typid,
						  batch->target->cols[c].typmod, batch->cxt);
	return input;
}

/*
 * Convert one value into the item, noting the column for error reports
 * and that an error now is the value's (batch->converting).  A batch of
 * CSV fields (batch_execute_fields) reads each string as text with the
 * column's input function, json and jsonb columns included.
 */
static ItemError *
set_column(Batch *batch, BatchItem *item, int c, JsonbValue *value)
{
	TargetColumn *col = &batch->target->cols[c];
	ColumnInput *input = column_input(batch, c);
	ItemError  *err;

	batch->current_column = col->name;
	item->present = bms_add_member(item->present, c);
	batch->converting = true;
	if (batch->fields_text && (value->type == jbvString || value->type == jbvNull))
	{
		char	   *text = NULL;

		if (value->type == jbvString)
			text = pnstrdup(value->val.string.val, value->val.string.len);
		column_input_field(input, text, &item->values[c], &item->isnull[c]);
		err = NULL;
	}
	else
		err = column_input_value(input, col->name, value,
								 &item->values[c], &item->isnull[c]);
	batch->converting = false;
	return err;
}

#define invalid_item(...) \
	item_error_make(ITEM_INVALID, ERRCODE_INVALID_PARAMETER_VALUE, NULL, __VA_ARGS__)

/* Can this item write this column?  NULL if so. */
static ItemError *
check_writable(Batch *batch, TargetColumn *col)
{
	const char *relname = batch->target->relname;

	if (col->generated != '\0' ||
		(col->identity == ATTRIBUTE_IDENTITY_ALWAYS && batch->op == BATCH_CREATE))
	{
		ItemError  *err;

		if (batch->op == BATCH_CREATE)
			err = item_error_make(ITEM_VALIDATION_ERROR, ERRCODE_GENERATED_ALWAYS,
								  col->name,
								  "cannot insert a non-DEFAULT value into column \"%s\"",
								  col->name);
		else
			err = item_error_make(ITEM_VALIDATION_ERROR, ERRCODE_GENERATED_ALWAYS,
								  col->name,
								  "column \"%s\" can only be updated to DEFAULT",
								  col->name);
		err->detail = psprintf(col->generated != '\0' ?
							   "Column \"%s\" is a generated column." :
							   "Column \"%s\" is an identity column defined as GENERATED ALWAYS.",
							   col->name);
		return err;
	}
	if (!col->may_write)
		return item_error_make(ITEM_PERMISSION_DENIED, ERRCODE_INSUFFICIENT_PRIVILEGE,
							   col->name,
							   "permission denied for column \"%s\" of relation \"%s\"",
							   col->name, relname);
	return NULL;
}

/* Key columns identify the row in update and delete: matched, never written. */
static bool
is_key_column(Target *target, int c)
{
	int			k;

	for (k = 0; k < target->npk; k++)
		if (target->pk[k] == c)
			return true;
	return false;
}

/*
 * Key values given as "id": a scalar for a one-column key, an object of
 * the key columns for a composite one.  Key columns the item also gives
 * must agree: the key identifies the row and cannot be changed.
 */
static ItemError *
read_id_alias(Batch *batch, BatchItem *item, JsonbValue *id)
{
	Target	   *target = batch->target;
	int			k;

	for (k = 0; k < target->npk; k++)
	{
		int			c = target->pk[k];
		const char *name = target->cols[c].name;
		JsonbValue	value;
		Datum		given = item->values[c];
		bool		given_null = item->isnull[c];
		bool		had = bms_is_member(c, item->present);
		ItemError  *err;

		if (target->npk == 1 && id->type != jbvBinary)
			value = *id;
		else if (id->type == jbvBinary && JsonContainerIsObject(id->val.binary.data))
		{
			if (!getKeyJsonValueFromContainer(id->val.binary.data, name,
											  strlen(name), &value))
				return invalid_item("id has no value for primary key column \"%s\"",
									name);
		}
		else
			return invalid_item("\"id\" must be an object of the primary key columns of \"%s\"",
								target->relname);

		err = set_column(batch, item, c, &value);
		if (err)
			return err;
		if (had && (given_null != item->isnull[c] ||
					(!given_null && !datumIsEqual(given, item->values[c],
												  get_typbyval(target->cols[c].typid),
												  get_typlen(target->cols[c].typid)))))
			return item_error_make(ITEM_INVALID, ERRCODE_INVALID_PARAMETER_VALUE,
								   name,
								   "item changes primary key column \"%s\"",
								   name);
	}
	return NULL;
}

/*
 * Update and delete find the row by its whole primary key, which the
 * caller must be allowed to read, as a WHERE on it would need.
 */
static ItemError *
check_key_given(Batch *batch, BatchItem *item)
{
	Target	   *target = batch->target;
	int			k;

	for (k = 0; k < target->npk; k++)
	{
		int			c = target->pk[k];

		if (!bms_is_member(c, item->present))
			return invalid_item("item has no value for primary key column \"%s\"",
								target->cols[c].name);
		if (!target->cols[c].may_read)
		{
			ItemError  *err;

			err = item_error_make(ITEM_PERMISSION_DENIED, ERRCODE_INSUFFICIENT_PRIVILEGE,
								  target->cols[c].name,
								  "permission denied for column \"%s\" of relation \"%s\"",
								  target->cols[c].name, target->relname);
			err->detail = pstrdup("Rows are found by their primary key, which needs SELECT privilege on its columns.");
			return err;
		}
		if (item->isnull[c])
			return invalid_item("primary key column \"%s\" must not be null",
								target->cols[c].name);
	}
	return NULL;
}

/*
 * An update that gives only the key would change nothing: refuse it
 * rather than report it applied.
 */
static ItemError *
check_something_to_update(Batch *batch, BatchItem *item)
{
	int			c = -1;

	while ((c = bms_next_member(item->present, c)) >= 0)
		if (!is_key_column(batch->target, c))
			return NULL;
	return invalid_item("item gives no column to update");
}

/* One item of batch_create or batch_update: an object of column values. */
static ItemError *
read_row_item(Batch *batch, BatchItem *item, int *hints)
{
	Target	   *target = batch->target;
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbValue	id;
	bool		has_id = false;
	JsonbIteratorToken tok;
	int			pos = 0;
	ItemError  *err;

	if (item->source.type != jbvBinary ||
		!JsonContainerIsObject(item->source.val.binary.data))
		return invalid_item("item must be a JSON object");

	it = JsonbIteratorInit(item->source.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		int			c;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &value, true);
		c = target_column_index(target, key.val.string.val, key.val.string.len,
								hints[Min(pos, target->ncols)]);
		if (c < 0 && batch->op == BATCH_UPDATE && target->id_alias &&
			key.val.string.len == 2 && strncmp(key.val.string.val, "id", 2) == 0)
		{
			id = value;
			has_id = true;
			continue;
		}
		if (c < 0)
		{
			char	   *name = pnstrdup(key.val.string.val, key.val.string.len);

			return item_error_make(ITEM_VALIDATION_ERROR, ERRCODE_UNDEFINED_COLUMN,
								   name,
								   "column \"%s\" of relation \"%s\" does not exist",
								   name, target->relname);
		}
		hints[Min(pos++, target->ncols)] = c;
		if (batch->op == BATCH_CREATE || !is_key_column(target, c))
		{
			err = check_writable(batch, &target->cols[c]);
			if (err)
				return err;
		}
		err = set_column(batch, item, c, &value);
		if (err)
			return err;
	}

	if (batch->op == BATCH_UPDATE)
	{
		if (has_id && (err = read_id_alias(batch, item, &id)) != NULL)
			return err;
		if ((err = check_key_given(batch, item)) != NULL)
			return err;
		if ((err = check_something_to_update(batch, item)) != NULL)
			return err;
	}
	return precheck_item_constraints(batch, item);
}

/* One id of batch_delete: a key value, an object of key columns, or {"id": ...}. */
static ItemError *
read_delete_item(Batch *batch, BatchItem *item)
{
	Target	   *target = batch->target;
	JsonbValue *source = &item->source;
	ItemError  *err;

	if (!target->may_write_table)
		return item_error_make(ITEM_PERMISSION_DENIED, ERRCODE_INSUFFICIENT_PRIVILEGE,
							   NULL, "permission denied for table %s",
							   target->relname);

	if (source->type == jbvNull ||
		(source->type == jbvBinary && JsonContainerIsArray(source->val.binary.data)))
		return invalid_item("id must be a key value or a JSON object");

	if (source->type != jbvBinary)
	{
		if (target->npk != 1)
			return invalid_item("table \"%s\" has a composite primary key: give each id as an object of its key columns",
								target->relname);
		err = set_column(batch, item, target->pk[0], source);
	}
	else
	{
		JsonbContainer *obj = source->val.binary.data;
		JsonbValue	id;

		if (target->id_alias &&
			getKeyJsonValueFromContainer(obj, "id", 2, &id))
		{
			if (JsonContainerSize(obj) != 1)
				return invalid_item("an object with \"id\" must have no other keys");
			err = read_id_alias(batch, item, &id);
		}
		else
		{
			if (JsonContainerSize(obj) != target->npk)
				return invalid_item("id objects must give exactly the primary key columns of \"%s\"",
									target->relname);
			err = read_id_alias(batch, item, source);
		}
	}
	if (err == NULL)
		err = check_key_given(batch, item);
	return err;
}

/*
 * Convert and check one item, storing its error on it; runs in the
 * subtransaction of read_items().
 */
static void
read_item(Batch *batch, BatchItem *item, int *hints)
{
	Target	   *target = batch->target;

	item->values = palloc0(sizeof(Datum) * target->ncols);
	item->isnull = palloc(sizeof(bool) * target->ncols);
	memset(item->isnull, true, sizeof(bool) * target->ncols);
	batch->current_column = NULL;

	if (batch->op == BATCH_DELETE)
		item->error = read_delete_item(batch, item);
	else
		item->error = read_row_item(batch, item, hints);
}

/*
 * The array's elements, once: each item keeps its JsonbValue for error
 * reports.
 */
static void
collect_elements(Batch *batch, Jsonb *items)
{
	JsonbIterator *it = JsonbIteratorInit(&items->root);
	JsonbValue	elem;
	JsonbIteratorToken tok;
	int			i = 0;

	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			batch->items[i++].source = elem;
}

/*
 * Convert and check every item.  Runs in read-only subtransactions so
 * that a value its type's input function rejects fails only its item.
 */
static void
read_items(Batch *batch, Jsonb *items)
{
	volatile int next = 0;
	int		   *hints = palloc(sizeof(int) * (batch->target->ncols + 1));

	memset(hints, -1, sizeof(int) * (batch->target->ncols + 1));
	collect_elements(batch, items);

	while (next < batch->nitems)
	{
		Subxact		sx;

		subxact_begin(&sx);
		PG_TRY();
		{
			for (; next < batch->nitems; next++)
			{
				CHECK_FOR_INTERRUPTS();
				read_item(batch, &batch->items[next], hints);
			}
			subxact_commit(&sx);
		}
		PG_CATCH();
		{
			ItemError  *err;

			/* whatever its SQLSTATE, a value's own conversion error is the item's */
			if (batch->converting)
				err = subxact_abort_value(&sx);
			else
				err = subxact_abort(&sx);
			batch->converting = false;
			if (err->column == NULL && batch->current_column)
				err->column = pstrdup(batch->current_column);
			batch->items[next].error = err;
			next++;
		}
		PG_END_TRY();
	}
}

/* ---------------------------------------------------------------------
 * Rows and groups
 * ---------------------------------------------------------------------
 */
static void
form_rows(Batch *batch)
{
	Target	   *target = batch->target;
	int			natts = target->tupdesc->natts;
	Datum	   *values = palloc(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);
	int			i;

	for (i = 0; i < batch->nitems; i++)
	{
		BatchItem  *item = &batch->items[i];
		HeapTuple	tuple;
		int			a;

		/* a job's chunk may hold a million items */
		CHECK_FOR_INTERRUPTS();
		if (!item_alive(item))
			continue;
		for (a = 0; a < natts; a++)
		{
			int			c = target->col_of_attnum[a];

			values[a] = (c >= 0) ? item->values[c] : (Datum) 0;
			nulls[a] = (c >= 0) ? item->isnull[c] : true;
		}
		tuple = heap_form_tuple(target->tupdesc, values, nulls);
		item->row = heap_copy_tuple_as_datum(tuple, target->tupdesc);
		heap_freetuple(tuple);
	}
}

/* update and delete: the n-th repetition of a key goes in round n */
static void
assign_rounds(Batch *batch)
{
	int		   *occurrence = palloc(sizeof(int) * batch->nitems);
	int			i;

	precheck_duplicates(batch, batch->target->npk, batch->target->pk, occurrence);
	for (i = 0; i < batch->nitems; i++)
		batch->items[i].round = occurrence[i];
	pfree(occurrence);
}

/* Groups run round by round, so that a repeated key applies in item order. */
static int
compare_group_round(const void *a, const void *b)
{
	const ItemGroup *x = a;
	const ItemGroup *y = b;

	return x->round - y->round;
}

/*
 * One group per (round, shape): the statement text depends on the shape,
 * so each group is one statement.
 */
static ItemGroup *
make_groups(Batch *batch, int *ngroups)
{
	ItemGroup	   *groups = palloc0(sizeof(ItemGroup) * Max(batch->nitems, 1));
	int			n = 0;
	int			i;

	for (i = 0; i < batch->nitems; i++)
	{
		BatchItem  *item = &batch->items[i];
		ItemGroup	   *g = NULL;
		int			k;

		if (!item_alive(item))
			continue;
		for (k = n - 1; k >= 0 && g == NULL; k--)
			if (groups[k].round == item->round &&
				bms_equal(groups[k].shape, item->present))
				g = &groups[k];
		if (g == NULL)
		{
			g = &groups[n++];
			g->round = item->round;
			g->shape = item->present;
			g->members = palloc(sizeof(int) * batch->nitems);
		}
		g->members[g->nmembers++] = i;
	}
	/* qsort is not stable: order equal rounds by first member */
	for (i = 0; i < n; i++)
		groups[i].round = groups[i].round * (batch->nitems + 1) + groups[i].members[0];
	qsort(groups, n, sizeof(ItemGroup), compare_group_round);
	*ngroups = n;
	return groups;
}

/* ---------------------------------------------------------------------
 * Statements
 * ---------------------------------------------------------------------
 */

/*
 * Does a create on a Citus table write with ON CONFLICT DO NOTHING?  A
 * key that already exists on a worker then costs nothing: the row is
 * skipped, not a failed distributed statement (which Citus answers by
 * dropping connections and rolling back savepoints on every node it
 * touched) followed by a distributed look for existing keys and a second
 * try.  The items whose rows did not come back are the conflicts
 * (precheck_skipped_conflicts).  Only when every unique and exclusion
 * index is one the engine knows (an exclusion constraint would be
 * skipped too, and must be reported as itself), no BEFORE ROW trigger
 * may skip rows, and RETURNING may read every column given, by which the
 * rows are matched to their items.
 */
static bool
create_skips_conflicts(Batch *batch, Bitmapset *shape)
{
	Target	   *target = batch->target;
	int			c = -1;

	if (batch->op != BATCH_CREATE || !target->citus || target->row_before_trigger ||
		!target->conflicts_known || target->nuniques == 0)
		return false;
	while ((c = bms_next_member(shape, c)) >= 0)
		if (!target->cols[c].may_read)
			return false;
	return true;
}

/*
 * The columns by which the rows a create returns are matched to its
 * items (row_match.c): on a Citus table, where RETURNING lists rows by
 * shard, the readable columns the items gave; none elsewhere, where row
 * k is item k.  Only the rows' order or the skipped rows need it.
 */
static int
create_match_columns(Batch *batch, Bitmapset *shape, int *cols)
{
	if (!batch->target->citus ||
		(batch->row_json == NULL && !create_skips_conflicts(batch, shape)))
		return 0;
	return row_match_columns(batch, shape, cols);
}

/*
 * RETURNING: a first column (the item's position for update and delete),
 * the match columns of a create on a Citus table, then the row's readable
 * columns when the answer carries rows.
 */
static void
append_returning(StringInfo buf, Batch *batch, Bitmapset *shape)
{
	if (batch->op == BATCH_CREATE)
	{
		int		   *cols = palloc(sizeof(int) * Max(batch->target->ncols, 1));
		int			n = create_match_columns(batch, shape, cols);
		int			k;

		appendStringInfoString(buf, " RETURNING 1");
		for (k = 0; k < n; k++)
			appendStringInfo(buf, ", t.%s", batch->target->cols[cols[k]].quoted);
	}
	else
		appendStringInfo(buf, " RETURNING r.%s", batch->target->ord_alias);
	if (batch->row_json)
		row_json_append_select_list(batch->row_json, buf);
}

/* rows are found by their primary key, with its types' own equality */
static void
append_key_match(StringInfo buf, Target *target)
{
	plan_append_key_match(buf, target, target->npk, target->pk, NULL);
}

/*
 * INSERT of the shape's columns from the row array; the others take their
 * defaults, as they would if the item were an INSERT of its own.
 */
static char *
create_statement(Batch *batch, Bitmapset *shape)
{
	Target	   *target = batch->target;
	StringInfoData cols;
	StringInfoData sql;
	int			c = -1;

	initStringInfo(&cols);
	initStringInfo(&sql);
	while ((c = bms_next_member(shape, c)) >= 0)
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", target->cols[c].quoted);

	if (cols.len == 0)
	{
		/* every column its default, one row per item (a SELECT of no columns) */
		appendStringInfo(&sql, "INSERT INTO %s AS t SELECT FROM %s",
						 target->qualname, plan_rows_source(target));
	}
	else
	{
		appendStringInfo(&sql, "INSERT INTO %s AS t (%s) SELECT ",
						 target->qualname, cols.data);
		c = -1;
		while ((c = bms_next_member(shape, c)) >= 0)
			appendStringInfo(&sql, "%sr.%s", c == bms_next_member(shape, -1) ? "" : ", ",
							 target->cols[c].quoted);
		/*
		 * No ORDER BY: a scan of unnest() feeds the INSERT in array order,
		 * and RETURNING lists rows in the order they were inserted.
		 */
		appendStringInfo(&sql, " FROM %s", plan_rows_source(target));
	}
	if (!create_skips_conflicts(batch, shape))
	{
		append_returning(&sql, batch, shape);
		return sql.data;
	}

	/* run with plan_execute_custom_fetch(): see there why */
	appendStringInfoString(&sql, " ON CONFLICT DO NOTHING");
	append_returning(&sql, batch, shape);
	return sql.data;
}

/* UPDATE of the shape's non-key columns, rows matched by key. */
static char *
update_statement(Batch *batch, Bitmapset *shape)
{
	Target	   *target = batch->target;
	StringInfoData sql;
	int			c = -1;
	bool		first = true;

	initStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s AS t SET ", target->qualname);
	while ((c = bms_next_member(shape, c)) >= 0)
	{
		if (is_key_column(target, c))
			continue;
		appendStringInfo(&sql, "%s%s = r.%s", first ? "" : ", ",
						 target->cols[c].quoted, target->cols[c].quoted);
		first = false;
	}
	appendStringInfo(&sql, " FROM %s WHERE ", plan_rows_source(target));
	append_key_match(&sql, target);
	append_returning(&sql, batch, shape);
	return sql.data;
}

/* DELETE of the rows matched by key. */
static char *
delete_statement(Batch *batch)
{
	Target	   *target = batch->target;
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM %s AS t USING %s WHERE ",
					 target->qualname, plan_rows_source(target));
	append_key_match(&sql, target);
	append_returning(&sql, batch, NULL);
	return sql.data;
}

/* The statement text of a group; plan_cache.c keeps its plan. */
static char *
group_statement(Batch *batch, ItemGroup *group)
{
	switch (batch->op)
	{
		case BATCH_CREATE:
			return create_statement(batch, group->shape);
		case BATCH_UPDATE:
			return update_statement(batch, group->shape);
		case BATCH_DELETE:
			return delete_statement(batch);
	}
	return NULL;
}

/* ---------------------------------------------------------------------
 * Phase 2: write
 * ---------------------------------------------------------------------
 */
static void
keep_result(Batch *batch, BatchItem *item, HeapTuple tuple, TupleDesc desc,
			int first_attno)
{
	MemoryContext old;

	item->applied = true;
	if (batch->row_json == NULL)
		return;
	old = MemoryContextSwitchTo(batch->cxt);
	row_json_from_tuple(batch->row_json, tuple, desc, first_attno, &item->result);
	item->has_result = true;
	MemoryContextSwitchTo(old);
}

/*
 * Run the group's statement over some of its rows.  Citus cannot plan a
 * statement with an unbound parameter, so on its tables the plan is made
 * for the actual rows (plan_cache.c); elsewhere the kept generic plan
 * serves.
 */
static void
execute_rows(Batch *batch, ItemGroup *group, int *members, int n)
{
	Oid			argtype = batch->target->rowarraytype;
	Datum		rows = batch_row_array(batch, members, n);

	if (group->skips_conflicts)
		plan_execute_custom_fetch(group->sql, argtype, rows);
	else if (batch->target->citus)
		plan_execute_custom(group->sql, argtype, rows);
	else
		plan_execute(group->sql, argtype, rows);
}

/*
 * The rows a create returned, matched to the members: by the values
 * they gave (row_match.c) where the match columns are returned, else row
 * k is member k.
 */
static void
keep_created(Batch *batch, ItemGroup *group, int *members, int n)
{
	int		   *cols = palloc(sizeof(int) * Max(batch->target->ncols, 1));
	int			ncols = create_match_columns(batch, group->shape, cols);
	RowMatch   *match = NULL;
	uint64		row;

	if (batch->target->citus && (batch->row_json || group->skips_conflicts))
		match = row_match_begin(batch, cols, ncols, members, n);
	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[row];
		int			item = match ? row_match_take(match, tuple, SPI_tuptable->tupdesc, 2)
			: members[row];

		if (item < 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("INSERT into relation \"%s\" returned a row that matches no item",
							batch->target->relname),
					 errdetail("A trigger or a rule changed the values given, so rows cannot be matched to items.")));
		keep_result(batch, &batch->items[item], tuple, SPI_tuptable->tupdesc,
					2 + ncols);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Run the group's statement over some members; may throw. */
static void
execute_members(Batch *batch, ItemGroup *group, int *members, int n)
{
	uint64		row;

	if (batch->op == BATCH_CREATE)
	{
		/*
		 * RETURNING lists inserted rows in the order they were inserted,
		 * which is the array's (create_statement), so row k is member k
		 * (on a Citus table, matched by value: keep_created).  A BEFORE
		 * ROW trigger may skip rows, so then insert one at a time.
		 */
		bool		one_by_one = batch->target->row_before_trigger;
		int			step = one_by_one ? 1 : n;
		int			i;

		for (i = 0; i < n; i += step)
		{
			execute_rows(batch, group, members + i, step);

			/*
			 * Rows can still go missing without a trigger: a DO INSTEAD
			 * rule whose action inserts only some rows, or a foreign
			 * partition whose FDW skips some.  Rows and items could then
			 * not be matched: the statement's error, not an item's.
			 */
			if (SPI_processed != (uint64) step && !one_by_one && !group->skips_conflicts)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("INSERT into relation \"%s\" returned " UINT64_FORMAT " rows for %d items",
								batch->target->relname, SPI_processed, step),
						 errdetail("A rule or a foreign table changed the number of rows inserted, so rows cannot be matched to items.")));
			keep_created(batch, group, members + i, step);
		}
		return;
	}

	execute_rows(batch, group, members, n);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int64		ord = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row],
													  SPI_tuptable->tupdesc, 1, &isnull));

		keep_result(batch, &batch->items[members[ord - 1]], SPI_tuptable->vals[row],
					SPI_tuptable->tupdesc, 2);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* A failed attempt wrote nothing: its members' rows must not be reported. */
static void
forget_results(Batch *batch, int *members, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		batch->items[members[i]].applied = false;
		batch->items[members[i]].has_result = false;
	}
}

/*
 * A worker's error names the shard and its constraints: give it the
 * logical table's names (citus_table.c).
 */
static void
unshard_error(Batch *batch, ItemError *err)
{
	Target	   *target = batch->target;

	if (target->citus_names == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(batch->cxt);

		target->citus_names = citus_table_names(target->relid, &target->ncitus_names);
		MemoryContextSwitchTo(old);
	}
	citus_error_unshard(err, target->citus_names, target->ncitus_names);
}

/* Try the members in one subtransaction; the error if it failed. */
static ItemError *
try_members(Batch *batch, ItemGroup *group, int *members, int n)
{
	ItemError  *volatile err = NULL;
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);
	Subxact		sx;

	/* errors are copied to the batch context, statement data is not */
	subxact_begin(&sx);
	PG_TRY();
	{
		MemoryContextSwitchTo(batch->stmt_cxt);
		execute_members(batch, group, members, n);
		subxact_commit(&sx);
	}
	PG_CATCH();
	{
		err = subxact_abort(&sx);
		forget_results(batch, members, n);
		if (batch->target->citus)
			unshard_error(batch, err);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(old);
	MemoryContextReset(batch->stmt_cxt);
	return err;
}

/* Drop the members that have failed meanwhile; returns how many are left. */
static int
keep_alive(Batch *batch, int *members, int n)
{
	int			kept = 0;
	int			i;

	for (i = 0; i < n; i++)
		if (item_alive(&batch->items[members[i]]))
			members[kept++] = members[i];
	return kept;
}

static void bisect(Batch *batch, ItemGroup *group, int *members, int n);

/* The members failed together with err: split until each failure is alone. */
static void
split_failed(Batch *batch, ItemGroup *group, int *members, int n,
			 ItemError *err)
{
	int			half = n / 2;

	if (n == 1)
	{
		batch->items[members[0]].error = err;
		return;
	}
	bisect(batch, group, members, half);
	bisect(batch, group, members + half, n - half);
}

/*
 * Try the members together and split them on failure (split_failed), so
 * that k failures cost O(k log n) subtransactions.
 */
static void
bisect(Batch *batch, ItemGroup *group, int *members, int n)
{
	ItemError  *err;

	if (n == 0)
		return;
	err = try_members(batch, group, members, n);
	if (err != NULL)
		split_failed(batch, group, members, n, err);
}

/*
 * A statement on a Citus table failed on a foreign key.  Bisection would
 * find the failing items with a failed distributed statement per try
 * (Citus then rolls back a savepoint on every node: 0.1 to 1.5 s each on
 * the test cluster), so the items whose values name no row are looked
 * for first (precheck_fk_suspects), and the members are written in item
 * order: each run of unsuspected members together (bisected if it fails
 * after all), each suspect by itself, its error the statement's own.
 * False when there is no suspect: then bisection.
 */
static bool
split_around_fk_suspects(Batch *batch, ItemGroup *group)
{
	int			n = group->nmembers;
	bool	   *suspect = palloc(sizeof(bool) * Max(n, 1));
	int			start = 0;
	int			i;

	if (precheck_fk_suspects(batch, group->members, n, suspect) == 0)
		return false;
	for (i = 0; i <= n; i++)
	{
		ItemError  *err;

		if (i < n && !suspect[i])
			continue;
		bisect(batch, group, group->members + start, i - start);
		start = i + 1;
		if (i == n)
			break;
		err = try_members(batch, group, group->members + i, 1);
		if (err != NULL)
			batch->items[group->members[i]].error = err;
	}
	return true;
}

/*
 * Mark the members whose keys already exist, and remember on which
 * indexes for the next create (the hint above).
 */
static void
check_existing_keys(Batch *batch, ItemGroup *group, uint64 mask)
{
	uint64		found = precheck_existing_keys(batch, group->members,
											   group->nmembers, mask);

	existing_keys_relid = found ? batch->target->relid : InvalidOid;
	existing_keys_mask = found;
	group->nmembers = keep_alive(batch, group->members, group->nmembers);
}

/*
 * Are the keys of a Citus create's group likely to be all there already
 * (a retried import, a batch sent twice)?  Then a look for existing keys
 * (one read of every shard) settles the items before anything is written,
 * where the write would cost as much plus a two-phase commit on every
 * worker, only to skip every row.  Guessed from the group's first and
 * last items, one single-shard query each; a group with some existing
 * keys among new ones is written at once, and ON CONFLICT DO NOTHING
 * skips those (report_skipped).
 */
static bool
group_likely_all_existing(Batch *batch, ItemGroup *group)
{
	int			last = group->members[group->nmembers - 1];

	return precheck_key_exists(batch, &batch->items[group->members[0]]) &&
		(group->nmembers == 1 ||
		 precheck_key_exists(batch, &batch->items[last]));
}

/*
 * Should a create look for existing keys before it writes?  After a
 * create on the same table found some (the hint above) -- except on a
 * Citus table, whose writes skip existing keys anyway: there only when
 * the group's keys are likely to be all there.
 */
static bool
check_keys_first(Batch *batch, ItemGroup *group)
{
	if (batch->op != BATCH_CREATE || group->nmembers == 0)
		return false;
	if (group->skips_conflicts)
		return group_likely_all_existing(batch, group);
	return existing_keys_relid == batch->target->relid;
}

/*
 * Write one group: one statement; on failure, for creates, a look for
 * existing keys and a second try; then bisection.
 */
static void
apply_group(Batch *batch, ItemGroup *group)
{
	ItemError  *err;

	group->sql = group_statement(batch, group);
	group->skips_conflicts = create_skips_conflicts(batch, group->shape);
	if (check_keys_first(batch, group))
		check_existing_keys(batch, group, group->skips_conflicts ?
							~UINT64CONST(0) : existing_keys_mask);
	if (group->nmembers == 0)
		return;

	err = try_members(batch, group, group->members, group->nmembers);
	if (err == NULL)
		return;

	if (batch->op == BATCH_CREATE && !group->skips_conflicts)
	{
		check_existing_keys(batch, group, ~UINT64CONST(0));
		if (group->nmembers == 0)
			return;
		err = try_members(batch, group, group->members, group->nmembers);
		if (err == NULL)
			return;
	}
	if (batch->target->citus && batch->op != BATCH_DELETE &&
		err->sqlerrcode == ERRCODE_FOREIGN_KEY_VIOLATION &&
		split_around_fk_suspects(batch, group))
		return;
	split_failed(batch, group, group->members, group->nmembers, err);
}

/*
 * The error of an update or delete whose key names no row, the key printed
 * as PostgreSQL prints it.
 */
static ItemError *
not_found_error(Batch *batch, BatchItem *item)
{
	Target	   *target = batch->target;
	StringInfoData key;
	int			k;

	initStringInfo(&key);
	for (k = 0; k < target->npk; k++)
	{
		TargetColumn *col = &target->cols[target->pk[k]];
		Oid			outfunc;
		bool		varlena;

		getTypeOutputInfo(col->typid, &outfunc, &varlena);
		appendStringInfo(&key, "%s%s", k ? ", " : "",
						 OidOutputFunctionCall(outfunc, item->values[target->pk[k]]));
	}
	return item_error_make(ITEM_NOT_FOUND, ERRCODE_NO_DATA_FOUND, NULL,
						   "no row of relation \"%s\" has primary key (%s)",
						   target->relname, key.data);
}

/*
 * Update and delete: an item that is still alive but changed no row names
 * no row -- unless a BEFORE ROW trigger returned NULL for it, which skips
 * the row as it would skip it for UPDATE or DELETE: no error, no data.
 * Only with such a trigger is the table asked which keys exist.
 */
static void
report_not_found(Batch *batch)
{
	int		   *members = palloc(sizeof(int) * Max(batch->nitems, 1));
	bool	   *exists;
	int			n = 0;
	int			i;

	for (i = 0; i < batch->nitems; i++)
		if (!batch->items[i].applied && item_alive(&batch->items[i]))
			members[n++] = i;
	exists = palloc0(sizeof(bool) * Max(n, 1));
	if (n > 0 && batch->target->row_before_trigger)
		precheck_keys_visible(batch, members, n, exists);
	for (i = 0; i < n; i++)
		if (!exists[i])
			batch->items[members[i]].error = not_found_error(batch, &batch->items[members[i]]);
	pfree(members);
	pfree(exists);
}

/*
 * The members that ON CONFLICT DO NOTHING skipped: alive, not applied.
 * (Its statements ran in subtransactions that committed, so the rows
 * that came back are written.)
 */
static void
report_skipped(Batch *batch, ItemGroup *group)
{
	int		   *skipped = palloc(sizeof(int) * Max(group->nmembers, 1));
	int			n = 0;
	int			i;

	for (i = 0; i < group->nmembers; i++)
	{
		BatchItem  *item = &batch->items[group->members[i]];

		if (item_alive(item) && !item->applied)
			skipped[n++] = group->members[i];
	}
	precheck_skipped_conflicts(batch, skipped, n);
	pfree(skipped);
}

/* Phase 2: form rows, group them, write each group, count what applied. */
static void
write_items(Batch *batch)
{
	ItemGroup	   *groups;
	int			ngroups;
	int			g;
	int			i;

	form_rows(batch);
	groups = make_groups(batch, &ngroups);
	for (g = 0; g < ngroups; g++)
		apply_group(batch, &groups[g]);
	for (g = 0; g < ngroups; g++)
		if (groups[g].skips_conflicts)
			report_skipped(batch, &groups[g]);

	for (i = 0; i < batch->nitems; i++)
		if (batch->items[i].applied)
			batch->applied++;
	if (batch->op != BATCH_CREATE)
		report_not_found(batch);
}

/* Atomic mode rolls back when any item failed. */
static bool
any_error(Batch *batch)
{
	int			i;

	for (i = 0; i < batch->nitems; i++)
		if (!item_alive(&batch->items[i]))
			return true;
	return false;
}

/* ---------------------------------------------------------------------
 * Entry point
 * ---------------------------------------------------------------------
 */

/*
 * The memory of a batch, which becomes its result's.  A batch of 1000
 * items needs a few MB.  Given back to malloc at the end of every call,
 * that memory goes back to the kernel and comes back through page faults
 * on the next call; so a call that is not nested in another batch uses a
 * context kept for the session, whose first block of BATCH_KEPT_BLOCK
 * bytes survives the reset when the result is freed.  A backend that has
 * run a batch keeps that much allocated.  Measured when the BatchResult
 * was introduced (100 calls of batch_create with 1000 clean items, each
 * its own transaction, 4 alternating rounds on a loaded 2-core machine):
 * 3.3-4.6 s with the kept context, 5.6-6.6 s with a context made and
 * deleted per call; batch_update moved less (5.1-7.6 s either way).
 *
 * An error, or a result never freed, leaves the kept context in use: it
 * is reset at the end of the transaction, and calls meanwhile (and nested
 * calls, from a trigger say) get contexts of their own below the caller's.
 */
#define BATCH_KEPT_BLOCK	(4 * 1024 * 1024)

static MemoryContext kept_cxt = NULL;
static bool kept_in_use = false;

/* End of transaction: nothing can use the kept context any more. */
static void
kept_cxt_xact_callback(XactEvent event, void *arg)
{
	if (kept_in_use && (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT ||
						event == XACT_EVENT_PARALLEL_ABORT ||
						event == XACT_EVENT_PREPARE))
	{
		MemoryContextReset(kept_cxt);
		kept_in_use = false;
	}
}

/* The kept context if it is free, else a context of the call's own. */
static MemoryContext
batch_memory_get(void)
{
	if (kept_in_use)
		return AllocSetContextCreate(CurrentMemoryContext, "batch_ops batch",
									 ALLOCSET_DEFAULT_SIZES);
	if (kept_cxt == NULL)
	{
		kept_cxt = AllocSetContextCreate(TopMemoryContext, "batch_ops batch",
										 BATCH_KEPT_BLOCK, ALLOCSET_DEFAULT_INITSIZE,
										 ALLOCSET_DEFAULT_MAXSIZE);
		RegisterXactCallback(kept_cxt_xact_callback, NULL);
	}
	kept_in_use = true;
	return kept_cxt;
}

/* Set up a batch: its memory, its target (locked), an empty item array. */
static Batch *
batch_begin(BatchOp op, Oid relid, Jsonb *items, bool atomic)
{
	MemoryContext cxt = batch_memory_get();
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Batch	   *batch = palloc0(sizeof(Batch));

	batch->op = op;
	batch->atomic = atomic;
	batch->cxt = cxt;
	batch->stmt_cxt = AllocSetContextCreate(cxt, "batch_ops statement",
											ALLOCSET_DEFAULT_SIZES);
	batch->target = target_open(relid, op);
	batch->nitems = JB_ROOT_COUNT(items);
	batch->items = palloc0(sizeof(BatchItem) * Max(batch->nitems, 1));
	batch->inputs = palloc0(sizeof(ColumnInput) * Max(batch->target->ncols, 1));
	MemoryContextSwitchTo(old);
	return batch;
}

/* Release what the result does not need: executor state, statement memory. */
static void
batch_end(Batch *batch)
{
	if (batch->estate)
	{
		ExecDropSingleTupleTableSlot(batch->slot);
		FreeExecutorState(batch->estate);
		batch->estate = NULL;
	}
	MemoryContextDelete(batch->stmt_cxt);
	batch->stmt_cxt = NULL;
}

/* Read, check, write; in atomic mode undo everything if an item failed. */
static bool
run_batch(Batch *batch, Jsonb *items)
{
	Subxact		all;
	bool		rolled_back;

	read_items(batch, items);
	if (batch->op == BATCH_CREATE)
		precheck_unique_in_batch(batch);
	else
		assign_rounds(batch);

	if (!batch->atomic)
	{
		write_items(batch);
		return false;
	}

	subxact_begin(&all);
	PG_TRY();
	{
		write_items(batch);
	}
	PG_CATCH();
	{
		subxact_abort_rethrow(&all);
	}
	PG_END_TRY();
	rolled_back = any_error(batch);
	if (rolled_back)
		subxact_rollback(&all);
	else
		subxact_commit(&all);
	return rolled_back;
}

/*
 * The result of a finished batch, in the batch's context.  Errors and
 * rows are shared with the items, not copied.
 */
static BatchResult *
batch_result_make(Batch *batch, bool rolled_back)
{
	BatchResult *result = palloc0(sizeof(BatchResult));
	int			nerrors = 0;
	int			i;

	result->op = batch->op;
	result->atomic = batch->atomic;
	result->rolled_back = rolled_back;
	result->nitems = batch->nitems;
	result->applied = rolled_back ? 0 : batch->applied;
	result->cxt = batch->cxt;

	for (i = 0; i < batch->nitems; i++)
		if (!item_alive(&batch->items[i]))
			nerrors++;
	result->errors = palloc(sizeof(BatchError) * Max(nerrors, 1));
	for (i = 0; i < batch->nitems; i++)
	{
		BatchItem  *item = &batch->items[i];
		BatchError *e;

		if (item_alive(item))
			continue;
		e = &result->errors[result->nerrors++];
		e->index = i;
		e->error = item->error;
		e->item = &item->source;
	}

	if (batch->row_json)
	{
		result->rows = palloc(sizeof(JsonbValue) * Max(batch->nitems, 1));
		for (i = 0; i < batch->nitems; i++)
		{
			BatchItem  *item = &batch->items[i];

			if (item->has_result && !rolled_back)
				result->rows[i] = item->result;
			else
				result->rows[i].type = jbvNull;
		}
	}
	return result;
}

/*
 * Run one batch; fields_text: every string is a field's text (CSV), read
 * with its column's input function whatever the type.  The engine's
 * statements run through SPI, connected here so that callers need not be.
 */
static BatchResult *
batch_execute_common(BatchOp op, Oid relid, Jsonb *items, bool atomic,
					 bool return_rows, bool fields_text)
{
	MemoryContext caller = CurrentMemoryContext;
	Batch	   *batch;
	BatchResult *result;
	bool		rolled_back;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(caller);

	batch = batch_begin(op, relid, items, atomic);
	MemoryContextSwitchTo(batch->cxt);
	batch->return_rows = return_rows;
	batch->fields_text = fields_text;
	if (return_rows && op != BATCH_DELETE)
		batch->row_json = row_json_prepare(batch->target);
	rolled_back = run_batch(batch, items);
	result = batch_result_make(batch, rolled_back);
	batch_end(batch);

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(caller);
	return result;
}

/* Run one batch of JSON values (batch.h). */
BatchResult *
batch_execute(BatchOp op, Oid relid, Jsonb *items, bool atomic,
			  bool return_rows)
{
	return batch_execute_common(op, relid, items, atomic, return_rows, false);
}

/* Run one batch of text fields (batch.h). */
BatchResult *
batch_execute_fields(BatchOp op, Oid relid, Jsonb *items, bool atomic,
					 bool return_rows)
{
	return batch_execute_common(op, relid, items, atomic, return_rows, true);
}

/* Free a result and everything it points to, but not the items given. */
void
batch_result_free(BatchResult *result)
{
	if (result->cxt == kept_cxt)
	{
		MemoryContextReset(kept_cxt);
		kept_in_use = false;
	}
	else
		MemoryContextDelete(result->cxt);
}

/* A failed item as text (batch.h), as a job records it. */
char *
batch_error_item_text(const BatchError *error)
{
	JsonbValue *item = error->item;

	if (item->type == jbvString)
		return pnstrdup(item->val.string.val, item->val.string.len);
	if (item->type == jbvNull)
		return NULL;
	return JsonbToCString(NULL, &JsonbValueToJsonb(item)->root, -1);
}
