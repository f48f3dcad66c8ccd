/*-------------------------------------------------------------------------
 *
 * item_convert.c
 *	  Convert a JSON value of an item to the value of a table column.
 *
 * The rules are those of jsonb_populate_record, with clearer errors:
 * a JSON string is read with the column type's input function, a number
 * by its text, a boolean as true/false; JSON null is SQL NULL; json and
 * jsonb columns take the JSON value itself; a JSON array fills an array
 * column (nested arrays make a multidimensional array).  A domain column
 * is read as its base type and then checked with domain_check(), so its
 * NOT NULL and CHECK constraints apply to every value.
 *
 * A CSV import gives every field as a JSON string, and a field is text,
 * not JSON: column_input_field() reads it with the input function of any
 * type, json and jsonb included, as COPY does -- so '{"a": 1}' is that
 * object, not a JSON string, and invalid JSON is the row's error.
 *
 * Input functions report bad data with ereport(ERROR); the caller runs
 * conversion inside a subtransaction (which writes nothing and so takes
 * no XID) and turns the error into the item's validation_error, whatever
 * its SQLSTATE (a tsquery syntax error is 42601, an unknown regclass
 * 42P01), unless it is not about the value at all -- a cancel, a
 * deadlock, out of memory -- which propagates (item_error.c).  A JSON
 * value that no text could make valid (an object for an integer column)
 * is returned as an ItemError directly.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "item_convert.h"

/*
 * Look a column's input function up once per batch rather than per
 * value; a domain is read as its base type and checked afterwards.
 */
void
column_input_init(ColumnInput *input, Oid typid, int32 typmod,
				  MemoryContext mcxt)
{
	Oid			infunc;
	int32		base_typmod = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &base_typmod);

	memset(input, 0, sizeof(ColumnInput));
	input->base_type = base;
	input->base_typmod = base_typmod;
	input->domain_type = (base != typid) ? typid : InvalidOid;
	input->is_jsonb = (base == JSONBOID);
	input->is_json = (base == JSONOID);
	input->is_array = OidIsValid(get_element_type(base));
	input->mcxt = mcxt;
	getTypeInputInfo(base, &infunc, &input->ioparam);
	fmgr_info_cxt(infunc, &input->infunc, mcxt);
	input->ready = true;
}

/* The JSON type of a value, for messages. */
static const char *
json_type_name(JsonbValue *value)
{
	switch (value->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		case jbvBinary:
			return JsonContainerIsArray(value->val.binary.data) ? "array" : "object";
		default:
			return "value";
	}
}

/*
 * The text an input function reads for a JSON value: strings unquoted,
 * numbers and booleans as written.
 */
static char *
scalar_text(JsonbValue *value)
{
	switch (value->type)
	{
		case jbvString:
			return pnstrdup(value->val.string.val, value->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(value->val.numeric)));
		case jbvBool:
			return pstrdup(value->val.boolean ? "true" : "false");
		default:
			break;
	}
	/* objects and arrays: their JSON text */
	return JsonbToCString(NULL, &JsonbValueToJsonb(value)->root, -1);
}

/*
 * One array element, quoted and escaped, so that commas, braces and
 * spaces stay inside it.
 */
static void
append_quoted_element(StringInfo buf, const char *text)
{
	const char *p;

	appendStringInfoChar(buf, '"');
	for (p = text; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
}

/* Write a JSON array as a PostgreSQL array literal, nested arrays as such. */
static void
append_array_literal(StringInfo buf, JsonbContainer *array)
{
	JsonbIterator *it = JsonbIteratorInit(array);
	JsonbValue	elem;
	JsonbIteratorToken tok;
	bool		first = true;

	/* nested arrays recurse */
	check_stack_depth();
	appendStringInfoChar(buf, '{');
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		if (elem.type == jbvNull)
			appendStringInfoString(buf, "NULL");
		else if (elem.type == jbvBinary && JsonContainerIsArray(elem.val.binary.data))
			append_array_literal(buf, elem.val.binary.data);
		else
			append_quoted_element(buf, scalar_text(&elem));
	}
	appendStringInfoChar(buf, '}');
}

/*
 * A JSON object or array for a column that takes neither: no text could
 * make it valid, so it is refused without calling the input function.
 */
static ItemError *
wrong_json_type(ColumnInput *input, const char *colname, JsonbValue *value)
{
	return item_error_make(ITEM_VALIDATION_ERROR, ERRCODE_DATATYPE_MISMATCH,
						   colname,
						   "column \"%s\" is of type %s but the item gives a JSON %s",
						   colname,
						   format_type_be(OidIsValid(input->domain_type) ?
										  input->domain_type : input->base_type),
						   json_type_name(value));
}

/* Read the value as the base type; the caller applies domain checks. */
static ItemError *
read_base_value(ColumnInput *input, const char *colname, JsonbValue *value,
				Datum *datum)
{
	char	   *text;

	if (input->is_jsonb)
	{
		*datum = JsonbPGetDatum(JsonbValueToJsonb(value));
		return NULL;
	}

	if (value->type == jbvBinary && !input->is_json)
	{
		StringInfoData buf;

		if (!input->is_array || !JsonContainerIsArray(value->val.binary.data))
			return wrong_json_type(input, colname, value);
		initStringInfo(&buf);
		append_array_literal(&buf, value->val.binary.data);
		text = buf.data;
	}
	else if (input->is_json)
		text = JsonbToCString(NULL, &JsonbValueToJsonb(value)->root, -1);
	else
		text = scalar_text(value);

	*datum = InputFunctionCall(&input->infunc, text, input->ioparam,
							   input->base_typmod);
	return NULL;
}

/*
 * Convert one value.  Returns an ItemError for a JSON value of the wrong
 * kind; bad text for the type ereports, as input functions do.
 */
ItemError *
column_input_value(ColumnInput *input, const char *colname, JsonbValue *value,
				   Datum *datum, bool *isnull)
{
	*datum = (Datum) 0;
	*isnull = (value->type == jbvNull);

	if (!*isnull)
	{
		ItemError  *err = read_base_value(input, colname, value, datum);

		if (err)
			return err;
	}

	if (OidIsValid(input->domain_type))
		domain_check(*datum, *isnull, input->domain_type,
					 &input->domain_extra, input->mcxt);
	return NULL;
}

/*
 * Convert one field given as text (a CSV field, or NULL): the column
 * type's input function reads it whatever the type, then the domain's
 * checks apply -- COPY's rule, which column_input_value() cannot follow
 * because for a json or jsonb column it takes the JSON value itself.
 */
void
column_input_field(ColumnInput *input, const char *text,
				   Datum *datum, bool *isnull)
{
	*isnull = (text == NULL);
	*datum = *isnull ? (Datum) 0 :
		InputFunctionCall(&input->infunc, unconstify(char *, text),
						  input->ioparam, input->base_typmod);
	if (OidIsValid(input->domain_type))
		domain_check(*datum, *isnull, input->domain_type,
					 &input->domain_extra, input->mcxt);
}
