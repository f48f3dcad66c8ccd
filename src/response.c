/*-------------------------------------------------------------------------
 *
 * response.c
 *	  Build the JSON answer of a batch call from its BatchResult.
 *
 *	  create/update: {"data": [row | null, ...], "errors": [...]}
 *	  delete:        {"deleted": n, "errors": [...]}
 *
 * Atomic calls add "rolled_back": true or false.  Callers that need no
 * rows get {"applied": n, "errors": [...]} instead.  Each error carries the item's 0-based
 * "index", the stable "error" name, PostgreSQL's "message" and
 * "sqlstate", "detail", "constraint" and "column" where known, and the
 * "item" as given ("id" for deletes).
 *
 * Only the SQL functions need JSON: the engine itself (batch.c) hands
 * back C structures, which job kinds read directly.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "response.h"
#include "row_json.h"

/* A key of the object being built; the key is not copied. */
static void
push_key(JsonbParseState **state, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
}

/* "key": "value", or nothing when the value is NULL (unknown). */
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

/* "key": value, as a JSON number. */
static void
push_number(JsonbParseState **state, const char *key, int64 value)
{
	JsonbValue	v;

	push_key(state, key);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* One element of "errors": the item's position, the error, the item. */
static void
push_error(JsonbParseState **state, BatchResult *result, BatchError *e)
{
	ItemError  *err = e->error;

	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	push_number(state, "index", e->index);
	push_string(state, "error", err->name);
	push_string(state, "message", err->message);
	push_string(state, "sqlstate", pstrdup(unpack_sql_state(err->sqlerrcode)));
	push_string(state, "detail", err->detail);
	push_string(state, "constraint", err->constraint);
	push_string(state, "column", err->column);
	push_key(state, result->op == BATCH_DELETE ? "id" : "item");
	pushJsonbValue(state, WJB_VALUE, e->item);
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/* The errors array, as a JsonbValue tree. */
static JsonbValue *
errors_value(BatchResult *result)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	int			i;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < result->nerrors; i++)
		push_error(&state, result, &result->errors[i]);
	res = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return res;
}

/*
 * The data array: each item's row object (row_json.c), or null.  The
 * result's rows are already JsonbValues: the array shares them.
 */
static JsonbValue *
data_value(BatchResult *result)
{
	JsonbValue *data = palloc(sizeof(JsonbValue));

	data->type = jbvArray;
	data->val.array.rawScalar = false;
	data->val.array.nElems = result->nitems;
	data->val.array.elems = result->rows;
	return data;
}

/* A pair of the top-level object, whose keys are literals. */
static void
set_pair(JsonbPair *pair, const char *key, JsonbValue *value)
{
	pair->key.type = jbvString;
	pair->key.val.string.val = (char *) key;
	pair->key.val.string.len = strlen(key);
	pair->value = *value;
}

/* A JSON number as a JsonbValue. */
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
response_build(BatchResult *result)
{
	JsonbPair	pairs[3];
	int			npairs = 0;
	JsonbValue	v;

	if (result->rows == NULL)
	{
		v = number_value(result->applied);
		set_pair(&pairs[npairs++], result->op == BATCH_DELETE ? "deleted" : "applied", &v);
	}
	else
		set_pair(&pairs[npairs++], "data", data_value(result));
	set_pair(&pairs[npairs++], "errors", errors_value(result));
	if (result->atomic)
	{
		v.type = jbvBool;
		v.val.boolean = result->rolled_back;
		set_pair(&pairs[npairs++], "rolled_back", &v);
	}
	return JsonbValueToJsonb(json_object_from_pairs(pairs, npairs));
}

/*
 * Run one batch and return its JSON answer in the caller's memory
 * context.  The answer is built in the result's context, next to the
 * rows it shares, and copied out once.
 */
Jsonb *
batch_run(BatchOp op, Oid relid, Jsonb *items, bool atomic, bool return_rows)
{
	MemoryContext caller = CurrentMemoryContext;
	BatchResult *result = batch_execute(op, relid, items, atomic, return_rows);
	Jsonb	   *response;

	MemoryContextSwitchTo(result->cxt);
	response = response_build(result);
	MemoryContextSwitchTo(caller);
	response = DatumGetJsonbPCopy(PointerGetDatum(response));
	batch_result_free(result);
	return response;
}
