/*-------------------------------------------------------------------------
 *
 * citus_table.c
 *	  Tell the tables whose rows Citus keeps on other nodes, and give
 *	  their errors the names of the logical table.
 *
 * batch_ops does not link with Citus nor need it at build time: a table
 * is Citus-managed (hash-distributed, reference or "Citus local") when
 * Citus's own catalog, pg_catalog.pg_dist_partition, has a row for it.
 * The catalog is found by its schema-qualified name through the syscache
 * (never through the search_path) and read with a catalog index scan on
 * its logicalrelid index, so a database without Citus pays one negative
 * syscache lookup per batch and no SPI.  target.c asks once per batch and
 * keeps the answer in the Target.  On such a table the relation seen
 * here is an empty shell: the rows live in shards, which the engine
 * reaches only through statements that Citus plans (batch.c, precheck.c).
 *
 * Errors raised by a worker name the shard, not the table: Citus appends
 * _<shardid> to the names of the shard relations and of their
 * constraints and indexes ("dist_102011", "dist_pkey_102011"), and it
 * passes on only the message, detail and hint, so the error has no
 * constraint field either.  citus_error_unshard() maps every quoted name
 * "X_<digits>" whose X is a name of the logical table (its own, one of
 * its constraints or indexes, a table its foreign keys reference, a
 * foreign key that references it and that key's table) back to X, and
 * reads the constraint from the message ("... constraint \"X\"").
 *
 * A job that fails because a worker node went away must say which:
 * Citus puts the node in the error's context ("while executing command
 * on host:port") when the message is the remote's own or libpq's ("server
 * closed the connection unexpectedly"); citus_error_with_node() moves it
 * into the message that job_worker.c stores.
 *
 * Locking: AccessShareLock on pg_dist_partition and pg_constraint while
 * they are read, released at once, as the syscache would.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_namespace.h"
#include "lib/stringinfo.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "citus_table.h"
#include "item_error.h"

/* Does Citus's catalog have a row for the relation? */
bool
citus_table_managed(Oid relid)
{
	Oid			catalog = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	Oid			index;
	AttrNumber	attnum;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(catalog))
		return false;
	attnum = get_attnum(catalog, "logicalrelid");
	if (attnum == InvalidAttrNumber)
		return false;
	index = get_relname_relid("pg_dist_partition_logical_relid_index",
							  PG_CATALOG_NAMESPACE);
	ScanKeyInit(&key, attnum, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	rel = table_open(catalog, AccessShareLock);
	scan = systable_beginscan(rel, index, OidIsValid(index), NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static void
add_name(char ***names, int *n, int *size, const char *name)
{
	if (name == NULL)
		return;
	if (*n == *size)
	{
		*size *= 2;
		*names = repalloc(*names, sizeof(char *) * *size);
	}
	(*names)[(*n)++] = pstrdup(name);
}

/*
 * The names a shard's error may carry with a _<shardid> suffix: the
 * table's, its indexes' and constraints', those of the tables its foreign
 * keys reference, and those of the foreign keys that reference it and of
 * their tables (a delete of a referenced row).
 */
char	  **
citus_table_names(Oid relid, int *nnames)
{
	int			size = 8;
	char	  **names = palloc(sizeof(char *) * size);
	Relation	rel;
	Relation	con;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	ListCell   *lc;
	List	   *indexes;

	*nnames = 0;
	add_name(&names, nnames, &size, get_rel_name(relid));
	rel = relation_open(relid, NoLock);
	indexes = RelationGetIndexList(rel);
	relation_close(rel, NoLock);
	foreach(lc, indexes)
		add_name(&names, nnames, &size, get_rel_name(lfirst_oid(lc)));

	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	con = table_open(ConstraintRelationId, AccessShareLock);
	scan = systable_beginscan(con, ConstraintRelidTypidNameIndexId, true,
							  NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint form = (Form_pg_constraint) GETSTRUCT(tup);

		add_name(&names, nnames, &size, NameStr(form->conname));
		if (form->contype == CONSTRAINT_FOREIGN)
			add_name(&names, nnames, &size, get_rel_name(form->confrelid));
	}
	systable_endscan(scan);

	/* foreign keys of other tables that reference this one (no index) */
	ScanKeyInit(&key, Anum_pg_constraint_confrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(con, InvalidOid, false, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint form = (Form_pg_constraint) GETSTRUCT(tup);

		add_name(&names, nnames, &size, NameStr(form->conname));
		add_name(&names, nnames, &size, get_rel_name(form->conrelid));
	}
	systable_endscan(scan);
	table_close(con, AccessShareLock);
	return names;
}

/* The logical name of a shard's name ("X_<digits>" with X known), or NULL. */
static const char *
logical_name(const char *s, int len, char **names, int nnames)
{
	int			i;

	for (i = 0; i < nnames; i++)
	{
		int			nlen = strlen(names[i]);
		int			k;

		if (len < nlen + 2 || strncmp(s, names[i], nlen) != 0 || s[nlen] != '_')
			continue;
		for (k = nlen + 1; k < len; k++)
			if (s[k] < '0' || s[k] > '9')
				break;
		if (k == len)
			return names[i];
	}
	return NULL;
}

/* The text with every quoted shard name replaced by its logical name. */
static char *
unshard_text(const char *text, char **names, int nnames)
{
	StringInfoData buf;
	const char *p = text;

	if (text == NULL)
		return NULL;
	initStringInfo(&buf);
	while (*p)
	{
		const char *end;
		const char *name;

		if (*p != '"' || (end = strchr(p + 1, '"')) == NULL)
		{
			appendStringInfoChar(&buf, *p++);
			continue;
		}
		name = logical_name(p + 1, end - p - 1, names, nnames);
		if (name)
			appendStringInfo(&buf, "\"%s\"", name);
		else
			appendBinaryStringInfo(&buf, p, end - p + 1);
		p = end + 1;
	}
	return buf.data;
}

/* The quoted name after "prefix \"" in the message, or NULL. */
static char *
quoted_after(const char *message, const char *prefix)
{
	const char *p = strstr(message, prefix);
	const char *end;

	if (p == NULL)
		return NULL;
	p += strlen(prefix);
	end = strchr(p, '"');
	return end ? pnstrdup(p, end - p) : NULL;
}

/*
 * Give a worker's error the logical table's names, and the constraint
 * and column fields that Citus does not pass on.
 */
void
citus_error_unshard(ItemError *err, char **names, int nnames)
{
	err->message = unshard_text(err->message, names, nnames);
	err->detail = unshard_text(err->detail, names, nnames);
	if (err->constraint)
	{
		const char *name = logical_name(err->constraint, strlen(err->constraint),
										names, nnames);

		if (name)
			err->constraint = pstrdup(name);
	}
	else
		err->constraint = quoted_after(err->message, "constraint \"");
	if (err->column == NULL && err->sqlerrcode == ERRCODE_NOT_NULL_VIOLATION)
		err->column = quoted_after(err->message, "value in column \"");
}

/*
 * An error's message, followed by the worker node it came from when only
 * the error's context names it (Citus's "while executing command on
 * host:port"); the message alone otherwise.
 */
char *
citus_error_with_node(const char *message, const char *context)
{
	const char *prefix = "while executing command on ";
	const char *node = context ? strstr(context, prefix) : NULL;
	const char *end;
	char	   *where;

	if (message == NULL || node == NULL)
		return (char *) message;
	node += strlen(prefix);
	end = strchr(node, '\n');
	where = end ? pnstrdup(node, end - node) : pstrdup(node);
	if (strstr(message, where) != NULL)
		return (char *) message;
	return psprintf("%s (on node %s)", message, where);
}
