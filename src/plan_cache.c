/*-------------------------------------------------------------------------
 *
 * plan_cache.c
 *	  Run the engine's statements as prepared, generic SPI plans.
 *
 * Every statement the engine runs takes one parameter, $1: an array of
 * rows of the target table's own composite type, which the statement
 * reads with plan_rows_source() -- unnest($1) WITH ORDINALITY -- so that
 * values travel in binary, already converted and checked, and never as
 * SQL text.  The statement text depends only on the table and on which
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
 * exception: see plan_execute_custom.)
 *
 * The cache is a small round-robin array: a session rarely works on
 * more than a few tables and shapes at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/memutils.h"

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

/* unnest($1) WITH ORDINALITY AS r(<every live column>, <ord_alias>) */
char *
plan_rows_source(Target *target)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "unnest($1) WITH ORDINALITY AS r(");
	for (i = 0; i < target->ncols; i++)
		appendStringInfo(&buf, "%s, ", target->cols[i].quoted);
	appendStringInfo(&buf, "%s)", target->ord_alias);
	return buf.data;
}

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

static int
execute(const char *sql, Oid argtype, Datum arg, int cursor_options)
{
	SPIPlanPtr	plan = plan_lookup(sql, argtype, cursor_options);
	int			rc;

	rc = SPI_execute_plan(plan, &arg, " ", false, 0);
	switch (rc)
	{
		case SPI_OK_SELECT:
		case SPI_OK_INSERT_RETURNING:
		case SPI_OK_UPDATE_RETURNING:
		case SPI_OK_DELETE_RETURNING:
			break;
		default:
			elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
				 sql, SPI_result_code_string(rc));
	}
	return rc;
}

/*
 * Execute a statement with the row array as $1.  Results are left in
 * SPI_tuptable / SPI_processed; the caller frees the tuple table.
 */
int
plan_execute(const char *sql, Oid argtype, Datum arg)
{
	return execute(sql, argtype, arg, CURSOR_OPT_GENERIC_PLAN);
}

/*
 * The same, planned afresh for each call with the actual array, for
 * queries whose best plan depends on the table's size at the time.
 */
int
plan_execute_custom(const char *sql, Oid argtype, Datum arg)
{
	return execute(sql, argtype, arg, CURSOR_OPT_CUSTOM_PLAN);
}
