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

/* The errors array, as a JsonbValue tree. */
static JsonbValue *
errors_value(Batch *batch)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	int			i;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < batch->nitems; i++)
		if (batch->items[i].error)
			push_error(&state, batch, i);
	res = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return res;
}

/* The data array: each item's row object (row_json.c), or null. */
static JsonbValue *
data_value(Batch *batch, bool rolled_back)
{
	JsonbValue *data = palloc(sizeof(JsonbValue));
	int			i;

	data->type = jbvArray;
	data->val.array.rawScalar = false;
	data->val.array.nElems = batch->nitems;
	data->val.array.elems = palloc(sizeof(JsonbValue) * Max(batch->nitems, 1));
	for (i = 0; i < batch->nitems; i++)
	{
		BatchItem  *item = &batch->items[i];

		if (item->has_result && !rolled_back)
			data->val.array.elems[i] = item->result;
		else
			data->val.array.elems[i].type = jbvNull;
	}
	return data;
}

static void
set_pair(JsonbPair *pair, const char *key, JsonbValue *value)
{
	pair->key.type = jbvString;
	pair->key.val.string.val = (char *) key;
	pair->key.val.string.len = strlen(key);
	pair->value = *value;
}

static JsonbValue
number_value(int64 n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(n);
	return v;
}

/*
 * The answer is assembled as one JsonbValue tree -- rows are already
 * trees -- and encoded once.
 */
Jsonb *
response_build(Batch *batch, bool rolled_back)
{
	JsonbPair	pairs[3];
	int			npairs = 0;
	JsonbValue	v;

	if (batch->op == BATCH_DELETE || !batch->return_rows)
	{
		v = number_value(rolled_back ? 0 : batch->applied);
		set_pair(&pairs[npairs++], batch->op == BATCH_DELETE ? "deleted" : "applied", &v);
	}
	else
		set_pair(&pairs[npairs++], "data", data_value(batch, rolled_back));
	set_pair(&pairs[npairs++], "errors", errors_value(batch));
	if (batch->atomic)
	{
		v.type = jbvBool;
		v.val.boolean = rolled_back;
		set_pair(&pairs[npairs++], "rolled_back", &v);
	}
	return JsonbValueToJsonb(json_object_from_pairs(pairs, npairs));
}
