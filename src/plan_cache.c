/*-------------------------------------------------------------------------
 *
 * plan_cache.c
 *	  Run the engine's statements as prepared, generic SPI plans.
 *
 * Every statement the engine runs takes one parameter, $1: an array of
 * rows of the target table's own composite type, which the statement
 * reads with plan_rows_source() -- unnest($1) WITH ORDINALITY -- so that
 * values travel in binary, already converted and checked, and never as
 * SQL text.
 *
 * The statement text names nothing through the caller's search_path: a
 * role that can CREATE in a schema on it could otherwise plant a
 * same-named function or operator (an unnest(orders[]), an =(int, int)
 * ahead of pg_catalog) and have it run with the caller's rights.  So
 * functions are written pg_catalog.f(...), and rows are matched by key
 * with plan_append_key_match(), which spells out each key column's
 * equality operator -- the type's default one from the type cache, or a
 * unique index's own -- as OPERATOR(schema.name), and casts the operands
 * to the operator's input types, named with their schema, when the
 * column's type differs (a domain, varchar for text), so that exactly
 * that operator is chosen (a type whose equality lives outside
 * pg_catalog, citext say, works the same).  Tables and columns are quoted
 * identifiers; the aliases (t, r and the position column,
 * Target.ord_alias) cannot clash with a column name.
 *
 * The statement text depends only on the table and on which
 * columns the items give, so plans are prepared once per session and
 * kept (SPI_keepplan); the plan cache re-plans them after DDL.  The
 * array type's OID is part of the key, so a table dropped and created
 * again under the same name gets a fresh plan.
 *
 * Plans are generic (CURSOR_OPT_GENERIC_PLAN): the planner then assumes
 * a small unnest() and joins it to the table through the key's index,
 * which is what a batch of up to a few thousand items wants; a custom
 * plan that knows the array length may choose to scan the whole table.
 *
 * (The existing-key query of precheck.c on partitioned tables is the
 * exception: see plan_execute_custom.  So are all statements on Citus
 * tables, which Citus cannot plan with an unbound parameter: batch.c,
 * precheck.c and copy_citus.c run them with plan_execute_custom, its
 * cursor twin plan_execute_custom_fetch, or plan_execute_args, which
 * binds one array per key column instead of the row array.)
 *
 * The cache is a small round-robin array searched with strcmp(): a
 * session rarely works on more than a few tables and shapes at once, and
 * a lookup happens once per statement (one per group of up to thousands
 * of items), where 64 comparisons -- which mostly stop within the first
 * few dozen bytes, at the table or column names -- cost microseconds
 * against the milliseconds of the statement.  A hash table would need
 * the whole text hashed on every lookup anyway.  Eviction frees the
 * oldest plan; a plan still running (a nested batch from a trigger) is
 * kept alive by the plan cache's own reference count.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "plan_cache.h"

#define PLAN_CACHE_SIZE 64

typedef struct CachedStatement
{
	char	   *sql;
	Oid			argtype;
	int			cursor_options;
	SPIPlanPtr	plan;
} CachedStatement;

static CachedStatement plan_cache[PLAN_CACHE_SIZE];
static int	plan_cache_next = 0;

/* pg_catalog.unnest($1) WITH ORDINALITY AS r(<every live column>, <ord_alias>) */
char *
plan_rows_source(Target *target)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.unnest($1) WITH ORDINALITY AS r(");
	for (i = 0; i < target->ncols; i++)
		appendStringInfo(&buf, "%s, ", target->cols[i].quoted);
	appendStringInfo(&buf, "%s)", target->ord_alias);
	return buf.data;
}

/* schema.name of a type, quoted: never found through the search_path */
static char *
qualified_type_name(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	Form_pg_type form;
	char	   *name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	form = (Form_pg_type) GETSTRUCT(tup);
	name = quote_qualified_identifier(get_namespace_name(form->typnamespace),
									  NameStr(form->typname));
	ReleaseSysCache(tup);
	return name;
}

/* "ref" as an operand of type opertype, cast to it if the column's differs */
static void
append_operand(StringInfo buf, const char *ref, Oid coltype, Oid opertype)
{
	if (coltype == opertype || get_typtype(opertype) == TYPTYPE_PSEUDO)
		appendStringInfoString(buf, ref);
	else
		appendStringInfo(buf, "CAST(%s AS %s)", ref, qualified_type_name(opertype));
}

/* The equality a key column is matched with: its type's default one. */
static Oid
column_equality(Target *target, TargetColumn *col)
{
	TypeCacheEntry *type = lookup_type_cache(getBaseType(col->typid),
											 TYPECACHE_EQ_OPR);

	if (!OidIsValid(type->eq_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not identify an equality operator for type %s",
						format_type_be(col->typid)),
				 errdetail("Rows of relation \"%s\" are found by column \"%s\", whose type has no default equality operator.",
						   target->relname, col->name)));
	return type->eq_opr;
}

/*
 * "<left> OPERATOR(schema.op) <right>" with the given operator, each
 * operand (of type lefttype, righttype) cast to the operator's input type
 * where it differs.
 */
void
plan_append_operator(StringInfo buf, const char *left, Oid lefttype, Oid opno,
					 const char *right, Oid righttype)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator form;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	form = (Form_pg_operator) GETSTRUCT(tup);

	append_operand(buf, left, lefttype, form->oprleft);
	/* an operator name is not an identifier: it cannot be quoted, nor needs to be */
	appendStringInfo(buf, " OPERATOR(%s.%s) ",
					 quote_identifier(get_namespace_name(form->oprnamespace)),
					 NameStr(form->oprname));
	append_operand(buf, right, righttype, form->oprright);
	ReleaseSysCache(tup);
}

/* "t.col OPERATOR(schema.=) <right>" with the given equality operator */
static void
append_equal(StringInfo buf, TargetColumn *col, Oid eqop, const char *right)
{
	plan_append_operator(buf, psprintf("t.%s", col->quoted), col->typid, eqop,
						 right, col->typid);
}

/*
 * "t.a OPERATOR(...) <a's value> AND ..." over the given columns, with
 * the given equality operators (a unique index's own), or with each
 * column type's default equality when eqops is NULL.  The values are the
 * columns of r, or the parameters $1, $2, ... in key order.
 */
static void
append_key_equalities(StringInfo buf, Target *target, int ncols,
					  const int *cols, const Oid *eqops, bool params)
{
	int			k;

	for (k = 0; k < ncols; k++)
	{
		TargetColumn *col = &target->cols[cols[k]];

		if (k > 0)
			appendStringInfoString(buf, " AND ");
		append_equal(buf, col, eqops ? eqops[k] : column_equality(target, col),
					 params ? psprintf("$%d", k + 1) : psprintf("r.%s", col->quoted));
	}
}

/* "t.a OPERATOR(...) r.a AND ...": rows of the table and of r by key */
void
plan_append_key_match(StringInfo buf, Target *target, int ncols,
					  const int *cols, const Oid *eqops)
{
	append_key_equalities(buf, target, ncols, cols, eqops, false);
}

/*
 * "t.a OPERATOR(...) $1 AND t.b OPERATOR(...) $2 ...": one key given as
 * parameters of the key columns' types.
 */
void
plan_append_key_params(StringInfo buf, Target *target, int ncols,
					   const int *cols, const Oid *eqops)
{
	append_key_equalities(buf, target, ncols, cols, eqops, true);
}

/*
 * ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), ...) WITH
 * ORDINALITY AS r(<key columns>, <ord_alias>): the key columns of some
 * items as one array per column, each of the column's own type.  What a
 * distributed query ships to every shard is then the keys alone, not
 * whole rows (precheck.c).  (The parser turns unnest(a, b) into this only
 * when the name is not schema-qualified.)
 */
char *
plan_keys_source(Target *target, int ncols, const int *cols)
{
	StringInfoData buf;
	int			k;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "ROWS FROM (");
	for (k = 0; k < ncols; k++)
		appendStringInfo(&buf, "%spg_catalog.unnest($%d)", k ? ", " : "", k + 1);
	appendStringInfoString(&buf, ") WITH ORDINALITY AS r(");
	for (k = 0; k < ncols; k++)
		appendStringInfo(&buf, "%s, ", target->cols[cols[k]].quoted);
	appendStringInfo(&buf, "%s)", target->ord_alias);
	return buf.data;
}

/*
 * The kept plan of a statement, prepared on first use (see the file
 * header for why a small array will do).
 */
static SPIPlanPtr
plan_lookup(const char *sql, Oid argtype, int cursor_options)
{
	CachedStatement *entry;
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < PLAN_CACHE_SIZE; i++)
	{
		entry = &plan_cache[i];
		if (entry->sql && entry->argtype == argtype &&
			entry->cursor_options == cursor_options &&
			strcmp(entry->sql, sql) == 0)
			return entry->plan;
	}

	plan = SPI_prepare_cursor(sql, 1, &argtype, cursor_options);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");

	entry = &plan_cache[plan_cache_next];
	plan_cache_next = (plan_cache_next + 1) % PLAN_CACHE_SIZE;
	if (entry->sql)
	{
		SPI_freeplan(entry->plan);
		pfree(entry->sql);
	}
	entry->sql = MemoryContextStrdup(TopMemoryContext, sql);
	entry->argtype = argtype;
	entry->cursor_options = cursor_options;
	entry->plan = plan;
	return plan;
}

/* Accept only the results the engine's statements give. */
static int
check_result(const char *sql, int rc)
{
	switch (rc)
	{
		case SPI_OK_SELECT:
		case SPI_OK_INSERT_RETURNING:
		case SPI_OK_UPDATE_RETURNING:
		case SPI_OK_DELETE_RETURNING:
			break;
		default:
			elog(ERROR, "SPI execution failed for \"%s\": %s",
				 sql, SPI_result_code_string(rc));
	}
	return rc;
}

/* Execute a plan with the row array as $1. */
static int
plan_run(const char *sql, Oid argtype, Datum arg, int cursor_options)
{
	SPIPlanPtr	plan = plan_lookup(sql, argtype, cursor_options);

	return check_result(sql, SPI_execute_plan(plan, &arg, " ", false, 0));
}

/*
 * Execute a statement with the row array as $1.  Results are left in
 * SPI_tuptable / SPI_processed; the caller frees the tuple table.
 */
int
plan_execute(const char *sql, Oid argtype, Datum arg)
{
	return plan_run(sql, argtype, arg, CURSOR_OPT_GENERIC_PLAN);
}

/*
 * The same, planned afresh for each call with the actual array, for
 * queries whose best plan depends on the table's size at the time.
 */
int
plan_execute_custom(const char *sql, Oid argtype, Datum arg)
{
	return plan_run(sql, argtype, arg, CURSOR_OPT_CUSTOM_PLAN);
}

/*
 * The same as plan_execute_custom(), for an INSERT ... ON CONFLICT DO
 * NOTHING ... RETURNING on a Citus table.  Citus counts the rows it
 * skipped among those processed, so SPI_execute_plan() would find fewer
 * rows than the count and refuse them ("consistency check on SPI tuple
 * count failed"); a cursor counts the rows that come back.  (Wrapping the
 * INSERT in a WITH query would do as well, but Citus then plans the
 * INSERT apart and gathers its rows on the coordinator: about 15% slower
 * for 1,000 rows into 32 shards.)
 */
int
plan_execute_custom_fetch(const char *sql, Oid argtype, Datum arg)
{
	SPIPlanPtr	plan = plan_lookup(sql, argtype, CURSOR_OPT_CUSTOM_PLAN);
	Portal		portal;

	portal = SPI_cursor_open(NULL, plan, &arg, " ", false);
	SPI_cursor_fetch(portal, true, FETCH_ALL);
	SPI_cursor_close(portal);
	return SPI_OK_INSERT_RETURNING;
}

/*
 * Execute a statement once with the given parameters (none null), planned
 * for their values.  Not kept: these are the statements on Citus tables
 * whose text depends on a key's columns (precheck.c), each planned anew
 * anyway, and Citus's planning of them costs far more than their parsing.
 */
int
plan_execute_args(const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	return check_result(sql, SPI_execute_with_args(sql, nargs, argtypes, args,
												   NULL, false, 0));
}
