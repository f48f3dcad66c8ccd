/*-------------------------------------------------------------------------
 *
 * target.c
 *	  Describe the table a batch writes to.
 *
 * target_open() checks that the relation is something batch_ops can
 * write to (an ordinary or partitioned table), takes RowExclusiveLock on
 * it -- the lock the INSERT, UPDATE or DELETE would take anyway, held to
 * the end of the transaction -- and copies out what the engine needs:
 * the live columns with their types, defaults and the caller's column
 * privileges, the primary key, the unique indexes and CHECK constraints
 * that can be evaluated on an item's own values (with each unique index's
 * own equality operators), whether a BEFORE ROW trigger can change or skip
 * rows, whether Citus keeps its rows on other nodes (citus_table.c), and
 * a name for the item position column of the engine's statements that no
 * column of the table has.  The relation is closed
 * again before returning; only the lock is kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "citus_table.h"
#include "target.h"

/* The SQL function of an operation, for messages. */
const char *
batch_op_name(BatchOp op)
{
	switch (op)
	{
		case BATCH_CREATE:
			return "batch_create";
		case BATCH_UPDATE:
			return "batch_update";
		case BATCH_DELETE:
			return "batch_delete";
	}
	return "?";
}

/* The privilege an operation needs on the table or on a column. */
static AclMode
write_privilege(BatchOp op)
{
	switch (op)
	{
		case BATCH_CREATE:
			return ACL_INSERT;
		case BATCH_UPDATE:
			return ACL_UPDATE;
		case BATCH_DELETE:
			return ACL_DELETE;
	}
	return ACL_NO_RIGHTS;
}

/*
 * Refuse up front what the engine's statements cannot write to: views,
 * foreign tables, sequences...
 */
static void
check_relkind(Relation rel)
{
	char		relkind = rel->rd_rel->relkind;

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot run a batch on relation \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail_relkind_not_supported(relkind),
				 errhint("batch_ops writes to ordinary and partitioned tables.")));
}

/*
 * Live columns with their types and the caller's privileges, looked up
 * once per batch rather than per item.
 */
static void
describe_columns(Target *target, Relation rel, BatchOp op)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			userid = GetUserId();
	AclMode		privilege = write_privilege(op);
	bool		table_write;
	bool		table_read;
	int			i;

	/* column privileges add to, never replace, the table's own */
	table_write = pg_class_aclcheck(target->relid, userid, privilege) == ACLCHECK_OK;
	table_read = pg_class_aclcheck(target->relid, userid, ACL_SELECT) == ACLCHECK_OK;
	target->may_write_table = table_write;

	target->cols = palloc0(sizeof(TargetColumn) * desc->natts);
	target->col_of_attnum = palloc(sizeof(int) * desc->natts);
	target->read_all = true;
	target->id_alias = true;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		TargetColumn *col;

		target->col_of_attnum[i] = -1;
		if (att->attisdropped)
			continue;

		col = &target->cols[target->ncols];
		target->col_of_attnum[i] = target->ncols++;
		col->attnum = att->attnum;
		col->name = pstrdup(NameStr(att->attname));
		col->quoted = pstrdup(quote_identifier(col->name));
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		col->collation = att->attcollation;
		col->notnull = att->attnotnull;
		col->has_default = att->atthasdef || att->attidentity != '\0';
		col->generated = att->attgenerated;
		col->identity = att->attidentity;
		col->may_write = table_write ||
			pg_attribute_aclcheck(target->relid, att->attnum,
								  userid, privilege) == ACLCHECK_OK;
		col->may_read = table_read ||
			pg_attribute_aclcheck(target->relid, att->attnum,
								  userid, ACL_SELECT) == ACLCHECK_OK;
		if (!col->may_read)
			target->read_all = false;
		if (strcmp(col->name, "id") == 0)
			target->id_alias = false;
	}
}

/* Column indexes of an index's key columns; false if it has expressions. */
static bool
index_columns(Target *target, Relation index, int **cols)
{
	Form_pg_index form = index->rd_index;
	int			nkeys = form->indnkeyatts;
	int			i;

	*cols = palloc(sizeof(int) * nkeys);
	for (i = 0; i < nkeys; i++)
	{
		AttrNumber	attnum = form->indkey.values[i];

		if (attnum <= 0)
			return false;
		(*cols)[i] = target->col_of_attnum[attnum - 1];
	}
	return true;
}

/*
 * The equality operator of a unique index's key column, from its operator
 * family, as the index's own unique check uses it; InvalidOid if none.
 */
static Oid
index_equality(Relation index, int k)
{
	if (index->rd_rel->relam != BTREE_AM_OID)
		return InvalidOid;
	return get_opfamily_member(index->rd_opfamily[k], index->rd_opcintype[k],
							   index->rd_opcintype[k], BTEqualStrategyNumber);
}

/*
 * The primary key, and the unique indexes that precheck.c can check
 * item values against.
 */
static void
describe_indexes(Target *target, Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	Oid			pkoid = RelationGetPrimaryKeyIndex(rel);
	ListCell   *lc;
	int			nconflicting = 0;

	target->uniques = palloc0(sizeof(TargetUnique) * Max(list_length(indexes), 1));

	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	index = index_open(indexoid, AccessShareLock);
		Form_pg_index form = index->rd_index;
		int		   *cols;
		bool		plain = index_columns(target, index, &cols);

		if (form->indisunique || form->indisexclusion)
			nconflicting++;

		if (indexoid == pkoid && plain)
		{
			target->npk = form->indnkeyatts;
			target->pk = cols;
		}

		/*
		 * Only immediate, non-partial, plain-column unique indexes can be
		 * checked on item values; the others are left to the statement.
		 */
		if (form->indisunique && form->indimmediate && plain &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL))
		{
			TargetUnique *u = &target->uniques[target->nuniques++];
			int			i;

			u->indexoid = indexoid;
			u->name = pstrdup(RelationGetRelationName(index));
			u->ncols = form->indnkeyatts;
			u->cols = cols;
			u->nulls_not_distinct = form->indnullsnotdistinct;
			u->readable = true;
			u->eqops = palloc(sizeof(Oid) * u->ncols);
			for (i = 0; i < u->ncols; i++)
			{
				if (!target->cols[cols[i]].may_read)
					u->readable = false;
				u->eqops[i] = index_equality(index, i);
			}
		}
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	target->conflicts_known = (nconflicting == target->nuniques);
}

/*
 * The CHECK constraints evaluable on an item's own values, with the
 * columns each one reads.
 */
static void
describe_checks(Target *target, Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	int			i;

	if (constr == NULL || constr->num_check == 0)
		return;

	target->checks = palloc0(sizeof(TargetCheck) * constr->num_check);
	for (i = 0; i < constr->num_check; i++)
	{
		TargetCheck *check = &target->checks[target->nchecks++];
		Bitmapset  *attrs = NULL;
		int			k = -1;

		check->name = pstrdup(constr->check[i].ccname);
		check->expr = (Expr *) stringToNode(constr->check[i].ccbin);
		pull_varattnos((Node *) check->expr, 1, &attrs);
		while ((k = bms_next_member(attrs, k)) >= 0)
		{
			AttrNumber	attnum = k + FirstLowInvalidHeapAttributeNumber;

			/* whole-row or system column: not evaluable on item values */
			if (attnum <= 0)
			{
				check->cols = NULL;
				target->nchecks--;
				break;
			}
			check->cols = bms_add_member(check->cols,
										 target->col_of_attnum[attnum - 1]);
		}
	}
}

/*
 * The name of the item position column of the engine's statements, which
 * must not be the name of any column of the table: __batch_ops_ord, or
 * __batch_ops_ord_N with the first N that is free.
 */
static char *
choose_ord_alias(Target *target)
{
	char		name[NAMEDATALEN];
	int			n = 0;

	strlcpy(name, "__batch_ops_ord", sizeof(name));
	while (target_column_index(target, name, strlen(name), -1) >= 0)
		snprintf(name, sizeof(name), "__batch_ops_ord_%d", ++n);
	return pstrdup(quote_identifier(name));
}

/* A BEFORE ROW trigger for the operation on this relation? */
static bool
has_row_before_trigger(Relation rel, BatchOp op)
{
	TriggerDesc *trig = rel->trigdesc;

	if (trig == NULL)
		return false;
	switch (op)
	{
		case BATCH_CREATE:
			return trig->trig_insert_before_row;
		case BATCH_UPDATE:
			return trig->trig_update_before_row;
		case BATCH_DELETE:
			return trig->trig_delete_before_row;
	}
	return false;
}

/*
 * A BEFORE ROW trigger may return NULL and skip the row, which breaks the
 * one-row-per-item correspondence of an INSERT's RETURNING list.  On a
 * partitioned table the trigger may sit on any partition.
 */
static bool
tree_has_row_before_trigger(Relation rel, BatchOp op)
{
	List	   *members;
	ListCell   *lc;
	bool		found = false;

	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return has_row_before_trigger(rel, op);

	members = find_all_inheritors(RelationGetRelid(rel), RowExclusiveLock, NULL);
	foreach(lc, members)
	{
		Relation	member = table_open(lfirst_oid(lc), NoLock);

		found = has_row_before_trigger(member, op);
		table_close(member, NoLock);
		if (found)
			break;
	}
	list_free(members);
	return found;
}

/* Lock and describe the table (see the file header). */
Target *
target_open(Oid relid, BatchOp op)
{
	Target	   *target = palloc0(sizeof(Target));
	Relation	rel;

	rel = relation_open(relid, RowExclusiveLock);
	check_relkind(rel);

	target->relid = relid;
	target->relname = pstrdup(RelationGetRelationName(rel));
	target->qualname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												  target->relname);
	target->rowtype = rel->rd_rel->reltype;
	target->rowarraytype = get_array_type(target->rowtype);
	if (!OidIsValid(target->rowarraytype))
		elog(ERROR, "row type of relation \"%s\" has no array type",
			 target->relname);
	target->tupdesc = CreateTupleDescCopy(RelationGetDescr(rel));
	target->partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
	target->citus = citus_table_managed(relid);

	describe_columns(target, rel, op);
	describe_indexes(target, rel);
	describe_checks(target, rel);
	target->ord_alias = choose_ord_alias(target);
	target->row_before_trigger = tree_has_row_before_trigger(rel, op);

	if (op != BATCH_CREATE && target->npk == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("table \"%s\" has no primary key", target->relname),
				 errdetail("%s finds rows by their primary key.", batch_op_name(op)),
				 errhint("Add a primary key with ALTER TABLE ... ADD PRIMARY KEY.")));

	relation_close(rel, NoLock);
	return target;
}

/* A JSON key, not NUL-terminated, against a column name. */
static bool
column_name_is(TargetColumn *col, const char *name, int len)
{
	return strncmp(col->name, name, len) == 0 && col->name[len] == '\0';
}

/*
 * Column index of a column name given as a JSON key, or -1.  Items of a
 * batch usually share their keys, so the caller passes the index found
 * for the same key position of the previous item as a hint.
 */
int
target_column_index(Target *target, const char *name, int len, int hint)
{
	int			i;

	if (hint >= 0 && hint < target->ncols &&
		column_name_is(&target->cols[hint], name, len))
		return hint;
	for (i = 0; i < target->ncols; i++)
		if (column_name_is(&target->cols[i], name, len))
			return i;
	return -1;
}
