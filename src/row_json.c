/*-------------------------------------------------------------------------
 *
 * row_json.c
 *	  Turn the rows a statement returns into JSON, as to_jsonb() would.
 *
 * Each item's answer is its row as stored, in to_jsonb() form.  Calling
 * to_jsonb(t) in RETURNING costs as much as the insert itself: it looks
 * up every column's type category for every row and builds a jsonb that
 * the answer would then unpack again.  Instead the type categories are
 * worked out once per batch; the statement returns the plain columns
 * where the conversion is simple (integers, numeric, boolean, text) and
 * pg_catalog.to_jsonb(t.col) for the others (dates, arrays, json,
 * composites...), so their JSON form is still PostgreSQL's own; and rows
 * are built here as JsonbValue trees that the answer encodes once.
 *
 * Citus refuses a function that is not IMMUTABLE in the RETURNING of a
 * distributed UPDATE or DELETE, and to_jsonb() is STABLE (its output
 * depends on DateStyle and TimeZone): on a Citus table the statement
 * returns the plain column and to_jsonb() is called here, through an
 * FmgrInfo that carries the argument's type as the SQL call would.  Same
 * function, same session settings, same JSON.
 *
 * Only the columns the caller may SELECT are returned.  jsonb keeps
 * object keys sorted (shorter first, then bytewise), so the columns are
 * put in that order once, and objects are built already sorted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "row_json.h"

typedef enum RowJsonKind
{
	RJ_INTEGER,
	RJ_NUMERIC,
	RJ_BOOL,
	RJ_TEXT,
	RJ_VIA_JSONB				/* the statement returns to_jsonb(t.col) */
} RowJsonKind;

typedef struct RowJsonColumn
{
	TargetColumn *col;
	RowJsonKind kind;
	Oid			base_type;
	FmgrInfo   *to_jsonb;		/* RJ_VIA_JSONB converted here, not in
								 * the statement (Citus tables) */
} RowJsonColumn;

struct RowJson
{
	int			ncols;
	RowJsonColumn *cols;		/* in jsonb key order */
};

/*
 * The types whose JSON form is built here; the others go through
 * PostgreSQL's own to_jsonb().
 */
static RowJsonKind
kind_of(Oid base_type)
{
	switch (base_type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return RJ_INTEGER;
		case NUMERICOID:
			return RJ_NUMERIC;
		case BOOLOID:
			return RJ_BOOL;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return RJ_TEXT;
		default:
			return RJ_VIA_JSONB;
	}
}

/* jsonb's key order (length first, then bytes): rows are built sorted. */
static int
compare_key_order(const void *a, const void *b)
{
	const char *x = ((const RowJsonColumn *) a)->col->name;
	const char *y = ((const RowJsonColumn *) b)->col->name;
	size_t		lx = strlen(x);
	size_t		ly = strlen(y);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return memcmp(x, y, lx);
}

/* A call of to_jsonb(anyelement) on a value of the type. */
static FmgrInfo *
to_jsonb_call(Oid typid)
{
	FmgrInfo   *flinfo = palloc0(sizeof(FmgrInfo));
	Node	   *arg = (Node *) makeNullConst(typid, -1, InvalidOid);

	fmgr_info(F_TO_JSONB, flinfo);
	fmgr_info_set_expr((Node *) makeFuncExpr(F_TO_JSONB, JSONBOID, list_make1(arg),
											 InvalidOid, InvalidOid,
											 COERCE_EXPLICIT_CALL),
					   flinfo);
	return flinfo;
}

/* Decide once per batch how each readable column becomes JSON. */
RowJson *
row_json_prepare(Target *target)
{
	RowJson    *rj = palloc0(sizeof(RowJson));
	int			c;

	rj->cols = palloc0(sizeof(RowJsonColumn) * Max(target->ncols, 1));
	for (c = 0; c < target->ncols; c++)
	{
		RowJsonColumn *rc;

		if (!target->cols[c].may_read)
			continue;
		rc = &rj->cols[rj->ncols++];
		rc->col = &target->cols[c];
		rc->base_type = getBaseType(rc->col->typid);
		rc->kind = kind_of(rc->base_type);
		if (rc->kind == RJ_VIA_JSONB && target->citus)
			rc->to_jsonb = to_jsonb_call(rc->col->typid);
	}
	qsort(rj->cols, rj->ncols, sizeof(RowJsonColumn), compare_key_order);
	return rj;
}

/* ", t.a, pg_catalog.to_jsonb(t.b), ..." -- one entry per returned column */
void
row_json_append_select_list(RowJson *rj, StringInfo buf)
{
	int			i;

	for (i = 0; i < rj->ncols; i++)
	{
		RowJsonColumn *rc = &rj->cols[i];

		if (rc->kind == RJ_VIA_JSONB && rc->to_jsonb == NULL)
			appendStringInfo(buf, ", pg_catalog.to_jsonb(t.%s)", rc->col->quoted);
		else
			appendStringInfo(buf, ", t.%s", rc->col->quoted);
	}
}

/* A jsonb as a JsonbValue tree (scalars as they are), sharing its memory. */
void
jsonb_to_value(Jsonb *jb, JsonbValue *out)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue *res = NULL;
	JsonbIteratorToken tok;

	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, out);
		return;
	}
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
		res = pushJsonbValue(&state, tok,
							 (tok == WJB_KEY || tok == WJB_VALUE || tok == WJB_ELEM) ? &v : NULL);
	*out = *res;
}

/* A JSON string, copied out of the tuple. */
static void
string_value(JsonbValue *out, const char *s, int len)
{
	out->type = jbvString;
	out->val.string.val = pnstrdup(s, len);
	out->val.string.len = len;
}

/* One column's value as JSON, as to_jsonb() would make it. */
static void
column_value(RowJsonColumn *rc, Datum d, JsonbValue *out)
{
	switch (rc->kind)
	{
		case RJ_INTEGER:
			out->type = jbvNumeric;
			out->val.numeric = int64_to_numeric(rc->base_type == INT8OID ? DatumGetInt64(d) :
												rc->base_type == INT4OID ? DatumGetInt32(d) :
												DatumGetInt16(d));
			break;
		case RJ_NUMERIC:
			{
				Numeric		num = DatumGetNumericCopy(d);

				/* as to_jsonb: NaN and infinities are not JSON numbers */
				if (numeric_is_nan(num) || numeric_is_inf(num))
				{
					char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
																		NumericGetDatum(num)));

					string_value(out, s, strlen(s));
					break;
				}
				out->type = jbvNumeric;
				out->val.numeric = num;
				break;
			}
		case RJ_BOOL:
			out->type = jbvBool;
			out->val.boolean = DatumGetBool(d);
			break;
		case RJ_TEXT:
			{
				text	   *t = DatumGetTextPP(d);

				string_value(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				break;
			}
		case RJ_VIA_JSONB:
			if (rc->to_jsonb)
				d = FunctionCall1(rc->to_jsonb, d);
			jsonb_to_value(DatumGetJsonbPCopy(d), out);
			break;
	}
}

/*
 * Build the row object from the tuple's columns first_attno.. (in the
 * order of row_json_append_select_list), in the current memory context.
 */
void
row_json_from_tuple(RowJson *rj, HeapTuple tuple, TupleDesc desc,
					int first_attno, JsonbValue *out)
{
	JsonbPair  *pairs = palloc(sizeof(JsonbPair) * Max(rj->ncols, 1));
	int			i;

	for (i = 0; i < rj->ncols; i++)
	{
		RowJsonColumn *rc = &rj->cols[i];
		bool		isnull;
		Datum		d = SPI_getbinval(tuple, desc, first_attno + i, &isnull);

		pairs[i].key.type = jbvString;
		pairs[i].key.val.string.val = rc->col->name;
		pairs[i].key.val.string.len = strlen(rc->col->name);
		pairs[i].order = i;
		if (isnull)
			pairs[i].value.type = jbvNull;
		else
			column_value(rc, d, &pairs[i].value);
	}
	out->type = jbvObject;
	out->val.object.nPairs = rj->ncols;
	out->val.object.pairs = pairs;
}

/* jsonb key order, for json_object_from_pairs(). */
static int
compare_pairs(const void *a, const void *b)
{
	const JsonbValue *x = &((const JsonbPair *) a)->key;
	const JsonbValue *y = &((const JsonbPair *) b)->key;

	if (x->val.string.len != y->val.string.len)
		return x->val.string.len < y->val.string.len ? -1 : 1;
	return memcmp(x->val.string.val, y->val.string.val, x->val.string.len);
}

/* An object from pairs with distinct keys, sorted into jsonb key order. */
JsonbValue *
json_object_from_pairs(JsonbPair *pairs, int npairs)
{
	JsonbValue *obj = palloc(sizeof(JsonbValue));
	int			i;

	qsort(pairs, npairs, sizeof(JsonbPair), compare_pairs);
	for (i = 0; i < npairs; i++)
		pairs[i].order = i;
	obj->type = jbvObject;
	obj->val.object.nPairs = npairs;
	obj->val.object.pairs = pairs;
	return obj;
}
