/*-------------------------------------------------------------------------
 *
 * target.h
 *	  What the batch engine needs to know about the table it writes to.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_TARGET_H
#define BATCH_OPS_TARGET_H

#include "access/attnum.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "nodes/bitmapset.h"
#include "nodes/execnodes.h"
#include "utils/jsonb.h"

#include "batch.h"				/* BatchOp */


/* One live (not dropped) column of the target table. */
typedef struct TargetColumn
{
	AttrNumber	attnum;
	char	   *name;
	char	   *quoted;			/* quote_identifier(name) */
	Oid			typid;			/* declared type, maybe a domain */
	int32		typmod;
	Oid			collation;
	bool		notnull;
	bool		has_default;	/* DEFAULT, serial or identity */
	char		generated;		/* attgenerated */
	char		identity;		/* attidentity */
	bool		may_write;		/* INSERT or UPDATE privilege, per op */
	bool		may_read;		/* SELECT privilege */
} TargetColumn;

/* A unique index that item values can be checked against before writing. */
typedef struct TargetUnique
{
	Oid			indexoid;
	char	   *name;
	int			ncols;
	int		   *cols;			/* column indexes into Target.cols */
	bool		nulls_not_distinct;
	bool		readable;		/* caller may SELECT every key column */
	Oid		   *eqops;			/* per key column: the index's equality */
} TargetUnique;

/* A CHECK constraint of the table, evaluable on an item's own values. */
typedef struct TargetCheck
{
	char	   *name;
	Expr	   *expr;
	Bitmapset  *cols;			/* column indexes the expression reads */
	ExprState  *state;			/* prepared on first use */
} TargetCheck;

typedef struct Target
{
	Oid			relid;
	char	   *relname;		/* unqualified, for messages */
	char	   *qualname;		/* quoted schema.table, for SQL text */
	char	   *ord_alias;		/* quoted name of the item position column
								 * of the statements, unlike every column's */
	Oid			rowtype;		/* composite type of the table's rows */
	Oid			rowarraytype;	/* its array type */
	TupleDesc	tupdesc;		/* copy of the table's descriptor */
	int			ncols;
	TargetColumn *cols;
	int		   *col_of_attnum;	/* attnum - 1 -> column index, or -1 */
	int			npk;
	int		   *pk;				/* column indexes of the primary key */
	int			nuniques;
	TargetUnique *uniques;
	int			nchecks;
	TargetCheck *checks;
	bool		read_all;		/* caller may SELECT every column */
	bool		may_write_table;	/* table-level privilege for the op */
	bool		row_before_trigger; /* some BEFORE ROW trigger for the op */
	bool		id_alias;		/* "id" may name the key (no column "id") */
	bool		partitioned;	/* its indexes have no storage of their own */
	bool		citus;			/* Citus-managed: its rows are in shards */
	bool		conflicts_known;	/* every unique and exclusion index is
									 * one of uniques */
	char	  **citus_names;	/* names a shard's error may carry, made on
								 * the first such error (citus_table.c) */
	int			ncitus_names;
} Target;

extern Target *target_open(Oid relid, BatchOp op);
extern int	target_column_index(Target *target, const char *name, int len,
								int hint);
extern const char *batch_op_name(BatchOp op);

#endif							/* BATCH_OPS_TARGET_H */
