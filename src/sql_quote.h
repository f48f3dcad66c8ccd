/*-------------------------------------------------------------------------
 *
 * sql_quote.h
 *	  Schema-qualified operators for SQL text that batch_ops runs.
 *
 * Bookkeeping statements run as the job tables' owner, and job workers
 * run as a superuser: an unqualified operator in their text would be
 * looked up on search_path, where a role that can CREATE in a schema
 * could plant its own "=".  The callers also pin search_path (spi_util.c,
 * role_switch_to_owner); these spellings make the text itself safe too, so
 * that it stays safe if it is ever run without the pin.
 *
 * OPERATOR(...) binds like any user-defined operator: tighter than the
 * comparison operators, all at one level, left to right.  An expression
 * that mixes them needs parentheses: a < (b - c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_SQL_QUOTE_H
#define BATCH_OPS_SQL_QUOTE_H

#define SQL_EQ		" OPERATOR(pg_catalog.=) "
#define SQL_NE		" OPERATOR(pg_catalog.<>) "
#define SQL_LT		" OPERATOR(pg_catalog.<) "
#define SQL_LE		" OPERATOR(pg_catalog.<=) "
#define SQL_GT		" OPERATOR(pg_catalog.>) "
#define SQL_GE		" OPERATOR(pg_catalog.>=) "
#define SQL_PLUS	" OPERATOR(pg_catalog.+) "
#define SQL_MINUS	" OPERATOR(pg_catalog.-) "
#define SQL_MUL		" OPERATOR(pg_catalog.*) "
#define SQL_DIV		" OPERATOR(pg_catalog./) "

#endif							/* BATCH_OPS_SQL_QUOTE_H */
