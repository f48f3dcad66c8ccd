/*-------------------------------------------------------------------------
 *
 * response.c
 *	  Build the JSON answer of a batch call.
 *
 *	  create/update: {"data": [row | null, ...], "errors": [...]}
 *	  delete:        {"deleted": n, "errors": [...]}
 *
 * Atomic calls add "rolled_back": true or false.  Callers that need no
 * rows (the job workers) get {"applied": n, "errors": [...]} instead.  Each error carries the
 * item's 0-based "index", the stable "error" name, PostgreSQL's
 * "message" and "sqlstate", "detail", "constraint" and "column" where
 * known, and the "item" as given ("id" for deletes).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "batch.h"

static void
push_key(JsonbParseState **state, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
}

static void
push_string(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
		return;
	push_key(state, key);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_number(JsonbParseState **state, const char *key, int64 value)
{
	JsonbValue	v;

	push_key(state, key);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_bool(JsonbParseState **state, const char *key, bool value)
{
	JsonbValue	v;

	push_key(state, key);
	v.type = jbvBool;
	v.val.boolean = value;
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_error(JsonbParseState **state, Batch *batch, int index)
{
	BatchItem  *item = &batch->items[index];
	ItemError  *err = item->error;

	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	push_number(state, "index", index);
	push_string(state, "error", err->name);
	push_string(state, "message", err->message);
	push_string(state, "sqlstate", pstrdup(unpack_sql_state(err->sqlerrcode)));
	push_string(state, "detail", err->detail);
	push_string(state, "constraint", err->constraint);
	push_string(state, "column", err->column);
	push_key(state, batch->op == BATCH_DELETE ? "id" : "item");
	pushJsonbValue(state, WJB_VALUE, &item->source);
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

static void
push_errors(JsonbParseState **state, Batch *batch)
{
	int			i;

	push_key(state, "errors");
	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < batch->nitems; i++)
		if (batch->items[i].error)
			push_error(state, batch, i);
	pushJsonbValue(state, WJB_END_ARRAY, NULL);
}

static void
push_data(JsonbParseState **state, Batch *batch, bool rolled_back)
{
	JsonbValue	v;
	int			i;

	push_key(state, "data");
	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < batch->nitems; i++)
	{
		Jsonb	   *row = batch->items[i].result;

		if (row == NULL || rolled_back)
		{
			v.type = jbvNull;
			pushJsonbValue(state, WJB_ELEM, &v);
			continue;
		}
		v.type = jbvBinary;
		v.val.binary.data = &row->root;
		v.val.binary.len = VARSIZE(row) - VARHDRSZ;
		pushJsonbValue(state, WJB_ELEM, &v);
	}
	pushJsonbValue(state, WJB_END_ARRAY, NULL);
}

Jsonb *
response_build(Batch *batch, bool rolled_back)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (batch->op == BATCH_DELETE)
		push_number(&state, "deleted", rolled_back ? 0 : batch->applied);
	else if (!batch->return_rows)
		push_number(&state, "applied", rolled_back ? 0 : batch->applied);
	else
		push_data(&state, batch, rolled_back);
	push_errors(&state, batch);
	if (batch->atomic)
		push_bool(&state, "rolled_back", rolled_back);
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}
