/*-------------------------------------------------------------------------
 *
 * precheck.c
 *	  Find failing items before writing anything.
 *
 * A batch is written with one set-based statement per shape of item, in
 * one subtransaction.  When an item fails inside that statement, the
 * whole statement is lost and the batch must be split to find it, which
 * costs subtransactions and XIDs.  So the checks that can be made on the
 * item's own values are made first, without writing:
 *
 *	- NOT NULL on the columns an item gives (and, for creates, on the
 *	  columns it leaves out that have no default);
 *	- CHECK constraints that read only columns the item gives, evaluated
 *	  with the executor just as ExecRelCheck() does;
 *	- duplicate keys inside the batch, for every unique index that is
 *	  immediate, not partial and on plain columns (a hash table keyed with
 *	  the type's default hash and equality);
 *	- keys that already exist in the table, by probing each unique index
 *	  directly (a query for partitioned tables, and a distributed query
 *	  for Citus tables, whose rows are on the workers: it ships only the
 *	  key columns, one array each, to every shard), run only when it is
 *	  likely to find something (see batch.c: after a failed statement, or
 *	  when the last create on the table found some, or on a Citus table
 *	  when precheck_key_exists() finds the first and last keys there).
 *
 * After a statement on a Citus table failed on a foreign key, the items
 * whose values name no row of the referenced table are looked for too
 * (precheck_fk_suspects): a guess that orders the tries, not an error.
 *
 * What cannot be checked here (foreign keys, row-level security, partial
 * or expression indexes, triggers, rows that other sessions commit
 * meanwhile) is still caught by the statement, which is the safety net.
 * A table with a BEFORE ROW trigger for the operation gets none of the
 * value checks: the trigger may change the row they would look at.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "access/genam.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "precheck.h"
#include "plan_cache.h"

/* The error PostgreSQL's NOT NULL check would raise, made without raising. */
static ItemError *
not_null_error(Batch *batch, TargetColumn *col)
{
	ItemError  *err;

	err = item_error_make(ITEM_VALIDATION_ERROR, ERRCODE_NOT_NULL_VIOLATION,
						  col->name,
						  "null value in column \"%s\" of relation \"%s\" violates not-null constraint",
						  col->name, batch->target->relname);
	return err;
}

/*
 * NOT NULL on the columns given and, for creates, on those left out that
 * have no default to fill them.
 */
static ItemError *
check_not_null(Batch *batch, BatchItem *item)
{
	Target	   *target = batch->target;
	int			i;

	for (i = 0; i < target->ncols; i++)
	{
		TargetColumn *col = &target->cols[i];

		if (!col->notnull)
			continue;
		if (bms_is_member(i, item->present))
		{
			if (item->isnull[i])
				return not_null_error(batch, col);
		}
		else if (batch->op == BATCH_CREATE && !col->has_default &&
				 col->generated == '\0')
			return not_null_error(batch, col);
	}
	return NULL;
}

/*
 * Executor state for CHECK expressions, made on first use: most batches
 * need none.
 */
static void
prepare_check_state(Batch *batch)
{
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);

	batch->estate = CreateExecutorState();
	batch->slot = MakeSingleTupleTableSlot(batch->target->tupdesc,
										   &TTSOpsVirtual);
	MemoryContextSwitchTo(old);
}

/* Prepare a CHECK expression once per batch, in the executor's memory. */
static ExprState *
check_state(Batch *batch, TargetCheck *check)
{
	if (check->state == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(batch->estate->es_query_cxt);

		check->state = ExecPrepareExpr(check->expr, batch->estate);
		MemoryContextSwitchTo(old);
	}
	return check->state;
}

/*
 * The item as a virtual tuple for ExecCheck(); columns it does not give
 * are NULL, and no check evaluated reads them.
 */
static void
store_item_in_slot(Batch *batch, BatchItem *item)
{
	Target	   *target = batch->target;
	TupleTableSlot *slot = batch->slot;
	int			natts = target->tupdesc->natts;
	int			a;

	ExecClearTuple(slot);
	for (a = 0; a < natts; a++)
	{
		int			c = target->col_of_attnum[a];

		if (c >= 0 && bms_is_member(c, item->present))
		{
			slot->tts_values[a] = item->values[c];
			slot->tts_isnull[a] = item->isnull[c];
		}
		else
		{
			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
		}
	}
	ExecStoreVirtualTuple(slot);
}

/*
 * The CHECK constraints that read only columns the item gives, evaluated
 * as ExecRelCheck() does (NULL passes).
 */
static ItemError *
check_constraints(Batch *batch, BatchItem *item)
{
	Target	   *target = batch->target;
	ExprContext *econtext;
	bool		stored = false;
	ItemError  *err = NULL;
	int			i;

	for (i = 0; i < target->nchecks && err == NULL; i++)
	{
		TargetCheck *check = &target->checks[i];

		if (!bms_is_subset(check->cols, item->present))
			continue;
		if (batch->estate == NULL)
			prepare_check_state(batch);
		if (!stored)
		{
			store_item_in_slot(batch, item);
			stored = true;
		}
		econtext = GetPerTupleExprContext(batch->estate);
		econtext->ecxt_scantuple = batch->slot;
		if (!ExecCheck(check_state(batch, check), econtext))
		{
			err = item_error_make(ITEM_VALIDATION_ERROR, ERRCODE_CHECK_VIOLATION,
								  NULL,
								  "new row for relation \"%s\" violates check constraint \"%s\"",
								  target->relname, check->name);
			err->constraint = pstrdup(check->name);
		}
		ResetPerTupleExprContext(batch->estate);
	}
	return err;
}

/*
 * NOT NULL and CHECK on the item's own values; may ereport (run in a
 * subxact).  A BEFORE ROW trigger may change the row before the
 * constraints see it (fill a NOT NULL column, clamp a value), so with one
 * the constraints are left to the statement.
 */
ItemError *
precheck_item_constraints(Batch *batch, BatchItem *item)
{
	ItemError  *err;

	if (batch->target->row_before_trigger)
		return NULL;
	err = check_not_null(batch, item);

	if (err == NULL && batch->op != BATCH_DELETE)
		err = check_constraints(batch, item);
	return err;
}

/* ---------------------------------------------------------------------
 * Duplicate keys inside the batch
 * ---------------------------------------------------------------------
 */
static TypeCacheEntry *
key_type(TargetColumn *col)
{
	return lookup_type_cache(getBaseType(col->typid),
							 TYPECACHE_HASH_PROC_FINFO | TYPECACHE_EQ_OPR_FINFO);
}

/*
 * Can the item's key take part?  It must give every key column, and a
 * NULL never conflicts unless NULLS NOT DISTINCT.
 */
static bool
key_usable(BatchItem *item, int ncols, const int *cols, bool nulls_distinct)
{
	int			k;

	if (!item_alive(item))
		return false;
	for (k = 0; k < ncols; k++)
	{
		if (!bms_is_member(cols[k], item->present))
			return false;
		if (item->isnull[cols[k]] && nulls_distinct)
			return false;
	}
	return true;
}

/* Two items' keys by the types' default equality, for the hash table. */
static bool
keys_equal(Batch *batch, TypeCacheEntry **types, int ncols, const int *cols,
		   BatchItem *a, BatchItem *b)
{
	int			k;

	for (k = 0; k < ncols; k++)
	{
		int			c = cols[k];

		if (a->isnull[c] || b->isnull[c])
		{
			if (a->isnull[c] != b->isnull[c])
				return false;
			continue;
		}
		if (!DatumGetBool(FunctionCall2Coll(&types[k]->eq_opr_finfo,
											batch->target->cols[c].collation,
											a->values[c], b->values[c])))
			return false;
	}
	return true;
}

/* An item's key hashed with the types' default hash functions. */
static uint32
key_hash(Batch *batch, TypeCacheEntry **types, int ncols, const int *cols,
		 BatchItem *item)
{
	uint32		hash = 0;
	int			k;

	for (k = 0; k < ncols; k++)
	{
		int			c = cols[k];
		uint32		h = 0;

		if (!item->isnull[c])
			h = DatumGetUInt32(FunctionCall1Coll(&types[k]->hash_proc_finfo,
												 batch->target->cols[c].collation,
												 item->values[c]));
		hash = hash_combine(hash, h);
	}
	return hash;
}

/*
 * occurrence[i] := number of earlier live items with the same key as item
 * i (0 for the first), for items that give every key column.  NULLs are
 * distinct unless nulls_not_distinct is set by passing nulls_distinct
 * false.  Returns without counting if the key types cannot be hashed.
 */
static void
find_duplicates(Batch *batch, int ncols, const int *cols, bool nulls_distinct,
				int *occurrence)
{
	TypeCacheEntry **types = palloc(sizeof(TypeCacheEntry *) * ncols);
	int			nslots = 16;
	int		   *slot_item;		/* first item with the slot's key, or -1 */
	uint32	   *slot_hash;
	int		   *count;			/* per first item: occurrences so far */
	int			i;
	int			k;

	memset(occurrence, 0, sizeof(int) * batch->nitems);
	for (k = 0; k < ncols; k++)
	{
		types[k] = key_type(&batch->target->cols[cols[k]]);
		if (!OidIsValid(types[k]->hash_proc) || !OidIsValid(types[k]->eq_opr))
			return;
	}

	/* open addressing, at most half full */
	while (nslots < 2 * batch->nitems)
		nslots *= 2;
	slot_item = palloc(sizeof(int) * nslots);
	slot_hash = palloc(sizeof(uint32) * nslots);
	count = palloc0(sizeof(int) * batch->nitems);
	memset(slot_item, -1, sizeof(int) * nslots);

	for (i = 0; i < batch->nitems; i++)
	{
		BatchItem  *item = &batch->items[i];
		uint32		hash;
		int			s;

		CHECK_FOR_INTERRUPTS();
		if (!key_usable(item, ncols, cols, nulls_distinct))
			continue;
		hash = key_hash(batch, types, ncols, cols, item);
		for (s = hash & (nslots - 1);; s = (s + 1) & (nslots - 1))
		{
			int			first = slot_item[s];

			if (first < 0)
			{
				slot_item[s] = i;
				slot_hash[s] = hash;
				count[i] = 1;
				break;
			}
			if (slot_hash[s] == hash &&
				keys_equal(batch, types, ncols, cols, &batch->items[first], item))
			{
				occurrence[i] = count[first]++;
				break;
			}
		}
	}
	pfree(slot_item);
	pfree(slot_hash);
	pfree(count);
}

/*
 * Update and delete: how often each primary key came earlier, for the
 * rounds of batch.c.
 */
void
precheck_duplicates(Batch *batch, int ncols, const int *cols, int *occurrence)
{
	find_duplicates(batch, ncols, cols, true, occurrence);
}

/* "(a, b)=(1, x)" as in PostgreSQL's unique violation detail */
static char *
key_description(Batch *batch, BatchItem *item, int ncols, const int *cols)
{
	StringInfoData buf;
	int			k;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (k = 0; k < ncols; k++)
		appendStringInfo(&buf, "%s%s", k ? ", " : "",
						 batch->target->cols[cols[k]].quoted);
	appendStringInfoString(&buf, ")=(");
	for (k = 0; k < ncols; k++)
	{
		TargetColumn *col = &batch->target->cols[cols[k]];
		Oid			outfunc;
		bool		varlena;

		if (k)
			appendStringInfoString(&buf, ", ");
		if (item->isnull[cols[k]])
		{
			appendStringInfoString(&buf, "null");
			continue;
		}
		getTypeOutputInfo(col->typid, &outfunc, &varlena);
		appendStringInfoString(&buf, OidOutputFunctionCall(outfunc, item->values[cols[k]]));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * Fail an item with the unique violation the insert would raise, with
 * the same detail text.
 */
static void
mark_conflict(Batch *batch, BatchItem *item, TargetUnique *u)
{
	ItemError  *err;

	err = item_error_make(ITEM_CONFLICT, ERRCODE_UNIQUE_VIOLATION, NULL,
						  "duplicate key value violates unique constraint \"%s\"",
						  u->name);
	err->constraint = pstrdup(u->name);
	err->detail = psprintf("Key %s already exists.",
						   key_description(batch, item, u->ncols, u->cols));
	item->error = err;
}

/*
 * Creates: a later item repeating an earlier item's unique key conflicts.
 * Not with a BEFORE ROW trigger, which may change the key.
 */
void
precheck_unique_in_batch(Batch *batch)
{
	int		   *occurrence;
	int			u;
	int			i;

	if (batch->target->row_before_trigger)
		return;
	occurrence = palloc(sizeof(int) * batch->nitems);

	for (u = 0; u < batch->target->nuniques; u++)
	{
		TargetUnique *unique = &batch->target->uniques[u];

		find_duplicates(batch, unique->ncols, unique->cols,
						!unique->nulls_not_distinct, occurrence);
		for (i = 0; i < batch->nitems; i++)
			if (occurrence[i] > 0 && item_alive(&batch->items[i]))
				mark_conflict(batch, &batch->items[i], unique);
	}
	pfree(occurrence);
}

/* ---------------------------------------------------------------------
 * Keys that already exist in the table
 * ---------------------------------------------------------------------
 */
/*
 * The same question for a Citus table, as a join that Citus pushes down
 * to the shards (a correlated EXISTS over unnest() it cannot plan): the
 * bound arrays go along to each shard, and the positions of the keys
 * found there come back.  rows_source is plan_rows_source() or
 * plan_keys_source().
 */
static char *
existing_key_query_citus(Batch *batch, const char *rows_source, int ncols,
						 const int *cols, const Oid *eqops)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT r.%s FROM %s t JOIN %s ON ",
					 batch->target->ord_alias, batch->target->qualname,
					 rows_source);
	plan_append_key_match(&buf, batch->target, ncols, cols, eqops);
	return buf.data;
}

/*
 * The positions of the rows whose key the table holds, comparing with the
 * given equality operators (NULL: the key types' default ones).
 */
static char *
existing_key_query(Batch *batch, int ncols, const int *cols, const Oid *eqops)
{
	StringInfoData buf;

	if (batch->target->citus)
		return existing_key_query_citus(batch, plan_rows_source(batch->target),
										ncols, cols, eqops);
	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT r.%s FROM %s WHERE EXISTS (SELECT FROM %s t WHERE ",
					 batch->target->ord_alias, plan_rows_source(batch->target),
					 batch->target->qualname);
	plan_append_key_match(&buf, batch->target, ncols, cols, eqops);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The key columns of some members as one array per column, of the
 * column's type, for plan_keys_source(); false when a column's type has
 * no array type.
 */
static bool
key_arrays(Batch *batch, int ncols, const int *cols, int *members,
		   int nmembers, Oid *types, Datum *arrays)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(nmembers, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(nmembers, 1));
	int			dims[1] = {nmembers};
	int			lbs[1] = {1};
	int			k;
	int			i;

	for (k = 0; k < ncols; k++)
	{
		TargetColumn *col = &batch->target->cols[cols[k]];
		int16		typlen;
		bool		typbyval;
		char		typalign;

		types[k] = get_array_type(col->typid);
		if (!OidIsValid(types[k]))
			return false;
		get_typlenbyvalalign(col->typid, &typlen, &typbyval, &typalign);
		for (i = 0; i < nmembers; i++)
		{
			BatchItem  *item = &batch->items[members[i]];

			elems[i] = item->values[cols[k]];
			nulls[i] = item->isnull[cols[k]];
		}
		arrays[k] = PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
													   col->typid, typlen,
													   typbyval, typalign));
	}
	return true;
}

/*
 * Run the query for the positions (from 1) of the members whose key the
 * table holds; the rows are left in SPI_tuptable.  On a Citus table every
 * shard gets the whole argument, so only the key columns are sent, as
 * arrays: whole rows would cost each shard the parsing of every column
 * of every item (about twice the time for a narrow table, see
 * test/bench/citus.sh).
 */
static void
run_existing_key_query(Batch *batch, int ncols, const int *cols,
					   const Oid *eqops, int *members, int nmembers)
{
	Target	   *target = batch->target;
	Oid			types[INDEX_MAX_KEYS];
	Datum		arrays[INDEX_MAX_KEYS];

	if (target->citus && ncols <= INDEX_MAX_KEYS &&
		key_arrays(batch, ncols, cols, members, nmembers, types, arrays))
	{
		plan_execute_args(existing_key_query_citus(batch,
												   plan_keys_source(target, ncols, cols),
												   ncols, cols, eqops),
						  ncols, types, arrays);
		return;
	}
	plan_execute_custom(existing_key_query(batch, ncols, cols, eqops),
						target->rowarraytype,
						batch_row_array(batch, members, nmembers));
}

/*
 * Probe a unique index for one item's key, as the unique check of the
 * insert would: by the index's own equality operators and a dirty snapshot, seeing every row
 * in the index whatever row-level security hides (a conflict with a
 * hidden row fails the insert just the same).
 */
typedef struct KeyProbe
{
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData keys[INDEX_MAX_KEYS];
	int			nkeys;
	SnapshotData *snapshot;		/* a dirty snapshot */
} KeyProbe;

/*
 * Open an index scan to probe keys with; false if the index is not a
 * btree with an equality for every key column.
 */
static bool
probe_begin(KeyProbe *probe, Target *target, TargetUnique *unique,
			Snapshot snapshot)
{
	int			k;

	probe->heap = table_open(target->relid, NoLock);
	probe->index = index_open(unique->indexoid, AccessShareLock);
	probe->nkeys = unique->ncols;
	for (k = 0; k < unique->ncols; k++)
	{
		Oid			opcintype = probe->index->rd_opcintype[k];
		Oid			eqop = get_opfamily_member(probe->index->rd_opfamily[k],
											   opcintype, opcintype,
											   BTEqualStrategyNumber);

		if (probe->index->rd_rel->relam != BTREE_AM_OID || !OidIsValid(eqop))
		{
			index_close(probe->index, AccessShareLock);
			table_close(probe->heap, NoLock);
			return false;
		}
		ScanKeyEntryInitialize(&probe->keys[k], 0, k + 1, BTEqualStrategyNumber,
							   opcintype, probe->index->rd_indcollation[k],
							   get_opcode(eqop), (Datum) 0);
	}
	probe->snapshot = snapshot;
	probe->slot = table_slot_create(probe->heap, NULL);
	probe->scan = index_beginscan(probe->heap, probe->index, snapshot,
								  probe->nkeys, 0);
	return true;
}

/*
 * Does the index hold the item's key in a row that is certainly there?  A
 * row that an open transaction is inserting or deleting (the dirty
 * snapshot says so by setting its xmin or xmax) is not certain: the
 * insert would wait for that transaction, so the statement must decide.
 */
static bool
probe_key(KeyProbe *probe, TargetUnique *unique, BatchItem *item)
{
	int			k;

	for (k = 0; k < probe->nkeys; k++)
		probe->keys[k].sk_argument = item->values[unique->cols[k]];
	index_rescan(probe->scan, probe->keys, probe->nkeys, NULL, 0);
	while (index_getnext_slot(probe->scan, ForwardScanDirection, probe->slot))
	{
		if (!TransactionIdIsValid(probe->snapshot->xmin) &&
			!TransactionIdIsValid(probe->snapshot->xmax))
			return true;
	}
	return false;
}

/* Close the probe; the lock target_open() took on the table stays. */
static void
probe_end(KeyProbe *probe)
{
	index_endscan(probe->scan);
	ExecDropSingleTupleTableSlot(probe->slot);
	index_close(probe->index, AccessShareLock);
	table_close(probe->heap, NoLock);
}

/* Members (with non-null keys) whose key the index already holds. */
static uint64
existing_keys_by_probe(Batch *batch, TargetUnique *unique, int *members,
					   int nmembers, bool *probed)
{
	SnapshotData dirty;
	KeyProbe	probe;
	uint64		found = 0;
	int			i;

	InitDirtySnapshot(dirty);
	*probed = probe_begin(&probe, batch->target, unique, &dirty);
	if (*probed)
	{
		for (i = 0; i < nmembers; i++)
		{
			BatchItem  *item = &batch->items[members[i]];

			/* one index probe per item: may read from disk */
			CHECK_FOR_INTERRUPTS();
			if (key_usable(item, unique->ncols, unique->cols, true) &&
				probe_key(&probe, unique, item))
			{
				mark_conflict(batch, item, unique);
				found++;
			}
		}
		probe_end(&probe);
	}
	return found;
}

/*
 * A partitioned table's unique index has no storage to probe: ask with a
 * query, planned for the actual batch and table (a plan cached while the
 * table was small would scan it whole once it is not).
 */
static uint64
existing_keys_by_query(Batch *batch, TargetUnique *unique, int *members,
					   int nmembers, int *subset)
{
	uint64		found = 0;
	int			n = 0;
	int			i;
	uint64		row;
	MemoryContext old;

	/* no equality to compare with: the statement decides */
	for (i = 0; i < unique->ncols; i++)
		if (!OidIsValid(unique->eqops[i]))
			return 0;
	for (i = 0; i < nmembers; i++)
		if (key_usable(&batch->items[members[i]], unique->ncols, unique->cols,
					   !unique->nulls_not_distinct))
			subset[n++] = members[i];
	if (n == 0)
		return 0;

	run_existing_key_query(batch, unique->ncols, unique->cols, unique->eqops,
						   subset, n);
	/* SPI leaves its procedure context current, gone at SPI_finish() */
	old = MemoryContextSwitchTo(batch->cxt);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int64		ord = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row],
													  SPI_tuptable->tupdesc,
													  1, &isnull));
		BatchItem  *item = &batch->items[subset[ord - 1]];

		if (item_alive(item))
		{
			mark_conflict(batch, item, unique);
			found++;
		}
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/*
 * Mark the members whose unique keys already exist in the table as
 * conflicts, checking the unique indexes in the mask (bit u: index u;
 * indexes past the 64th are always checked).  Read-only: takes no XID.
 * Only unique indexes on columns the caller may read are checked, so the
 * answer names no key the caller could not have looked up.  Returns the
 * mask of indexes on which conflicts were found.
 */
uint64
precheck_existing_keys(Batch *batch, int *members, int nmembers, uint64 mask)
{
	MemoryContext caller = CurrentMemoryContext;
	int		   *subset;
	uint64		found = 0;
	int			u;

	/* a BEFORE ROW trigger may change the keys: leave them to bisection */
	if (batch->target->row_before_trigger)
		return 0;
	subset = palloc(sizeof(int) * nmembers);

	for (u = 0; u < batch->target->nuniques; u++)
	{
		TargetUnique *unique = &batch->target->uniques[u];
		uint64		bit = (u < 64) ? UINT64CONST(1) << u : 0;
		bool		probed = false;
		uint64		n = 0;

		if (!unique->readable || (bit != 0 && (mask & bit) == 0))
			continue;
		if (!batch->target->partitioned && !batch->target->citus)
			n = existing_keys_by_probe(batch, unique, members, nmembers, &probed);
		if (!probed)
			n = existing_keys_by_query(batch, unique, members, nmembers, subset);
		if (n > 0)
			found |= bit;
	}
	pfree(subset);
	/* SPI calls leave SPI's procedure context current */
	MemoryContextSwitchTo(caller);
	return found;
}

/*
 * Does the table hold the item's key, on the first unique index that the
 * caller may read and that has an equality for every key column?  One
 * query on one key, which Citus sends to the one shard that may hold it
 * (under a millisecond): batch.c asks it of a Citus create's first and
 * last items to tell a batch of rows that are all there already, which a
 * look for existing keys then settles without writing.  A row that an
 * open transaction is inserting is not seen: this is a guess, not a check.
 */
bool
precheck_key_exists(Batch *batch, BatchItem *item)
{
	Target	   *target = batch->target;
	MemoryContext caller = CurrentMemoryContext;
	int			u;

	for (u = 0; u < target->nuniques; u++)
	{
		TargetUnique *unique = &target->uniques[u];
		Oid			types[INDEX_MAX_KEYS];
		Datum		args[INDEX_MAX_KEYS];
		StringInfoData sql;
		bool		found;
		int			k;

		if (!unique->readable || !key_usable(item, unique->ncols, unique->cols, true))
			continue;
		for (k = 0; k < unique->ncols; k++)
		{
			if (!OidIsValid(unique->eqops[k]))
				break;
			types[k] = target->cols[unique->cols[k]].typid;
			args[k] = item->values[unique->cols[k]];
		}
		if (k < unique->ncols)
			continue;

		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT FROM %s t WHERE ", target->qualname);
		plan_append_key_params(&sql, target, unique->ncols, unique->cols,
							   unique->eqops);
		appendStringInfoString(&sql, " LIMIT 1");
		plan_execute_args(sql.data, unique->ncols, types, args);
		found = SPI_processed > 0;
		SPI_freetuptable(SPI_tuptable);
		MemoryContextSwitchTo(caller);
		return found;
	}
	return false;
}

/*
 * Creates that INSERT ... ON CONFLICT DO NOTHING skipped (batch.c, on a
 * Citus table whose unique indexes are all in target->uniques): each one
 * conflicts with a row of the table on one of them.  With one unique
 * index that is the one; with several, the table is asked which.  A key
 * that another session deleted meanwhile is still a conflict (generic).
 */
void
precheck_skipped_conflicts(Batch *batch, int *members, int nmembers)
{
	Target	   *target = batch->target;
	int			i;

	if (nmembers == 0)
		return;
	if (target->nuniques == 1 && target->uniques[0].readable)
	{
		for (i = 0; i < nmembers; i++)
			mark_conflict(batch, &batch->items[members[i]], &target->uniques[0]);
		return;
	}
	precheck_existing_keys(batch, members, nmembers, ~UINT64CONST(0));
	for (i = 0; i < nmembers; i++)
	{
		BatchItem  *item = &batch->items[members[i]];

		if (item_alive(item))
			item->error = item_error_make(ITEM_CONFLICT, ERRCODE_UNIQUE_VIOLATION, NULL,
										  "duplicate key value violates a unique constraint of relation \"%s\"",
										  target->relname);
	}
}

/*
 * found[ord - 1] = true for each row of the query just run, whose first
 * column is a position from 1 (Target.ord_alias); frees the rows.
 */
static void
mark_found_positions(bool *found)
{
	uint64		row;

	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int64		ord = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row],
													  SPI_tuptable->tupdesc,
													  1, &isnull));

		found[ord - 1] = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Update and delete: of the members, mark those whose primary key names a
 * row the caller can see (row-level security applies: this is the
 * caller's query) in found[] (indexed like members).  Tells a row that a
 * BEFORE ROW trigger skipped from a key with no row.  Read-only.
 */
void
precheck_keys_visible(Batch *batch, int *members, int nmembers, bool *found)
{
	Target	   *target = batch->target;
	MemoryContext caller = CurrentMemoryContext;

	memset(found, 0, sizeof(bool) * nmembers);
	if (nmembers == 0)
		return;
	run_existing_key_query(batch, target->npk, target->pk, NULL, members, nmembers);
	mark_found_positions(found);
	MemoryContextSwitchTo(caller);
}

/* ---------------------------------------------------------------------
 * Foreign keys that name no row
 * ---------------------------------------------------------------------
 */

/*
 * Can the caller's own query tell which values of the foreign key name a
 * row?  Only if every referencing column is a column of the batch, the
 * caller may read the referenced columns, and no row-level security hides
 * referenced rows (the foreign key's own check sees them all).
 */
static bool
fk_readable(Target *target, ForeignKeyCacheInfo *fk, int *cols)
{
	bool		read_table;
	int			k;

	if (check_enable_rls(fk->confrelid, InvalidOid, true) == RLS_ENABLED)
		return false;
	read_table = pg_class_aclcheck(fk->confrelid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
	for (k = 0; k < fk->nkeys; k++)
	{
		cols[k] = target->col_of_attnum[fk->conkey[k] - 1];
		if (cols[k] < 0)
			return false;
		/* a column's own ACL grants only what the table's does not */
		if (!read_table &&
			pg_attribute_aclcheck(fk->confrelid, fk->confkey[k], GetUserId(),
								  ACL_SELECT) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/*
 * "SELECT r.ord FROM <referenced table> p JOIN <the values> r ON
 * p.a OPERATOR(...) r.x AND ...": the positions of the values that name a
 * row, compared with the key's own PK = FK operators.
 */
static char *
fk_found_query(Target *target, ForeignKeyCacheInfo *fk, int *cols)
{
	StringInfoData buf;
	int			k;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT r.%s FROM %s p JOIN %s ON ", target->ord_alias,
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(fk->confrelid)),
												get_rel_name(fk->confrelid)),
					 plan_keys_source(target, fk->nkeys, cols));
	for (k = 0; k < fk->nkeys; k++)
	{
		TargetColumn *col = &target->cols[cols[k]];

		if (k > 0)
			appendStringInfoString(&buf, " AND ");
		plan_append_operator(&buf,
							 psprintf("p.%s", quote_identifier(get_attname(fk->confrelid,
																		  fk->confkey[k],
																		  false))),
							 get_atttype(fk->confrelid, fk->confkey[k]),
							 fk->conpfeqop[k],
							 psprintf("r.%s", col->quoted), col->typid);
	}
	return buf.data;
}

/*
 * Mark in suspect[] (indexed like members) the members whose values for
 * one foreign key name no row of the referenced table.
 */
static void
fk_mark_suspects(Batch *batch, ForeignKeyCacheInfo *fk, int *cols,
				 int *members, int nmembers, bool *suspect)
{
	int		   *subset = palloc(sizeof(int) * Max(nmembers, 1));
	int		   *pos = palloc(sizeof(int) * Max(nmembers, 1));
	bool	   *found;
	Oid			types[INDEX_MAX_KEYS];
	Datum		arrays[INDEX_MAX_KEYS];
	int			n = 0;
	int			i;
	int			k;

	/* values given in full and not null: those the key checks */
	for (i = 0; i < nmembers; i++)
	{
		BatchItem  *item = &batch->items[members[i]];

		for (k = 0; k < fk->nkeys; k++)
			if (!bms_is_member(cols[k], item->present) || item->isnull[cols[k]])
				break;
		if (k == fk->nkeys)
		{
			pos[n] = i;
			subset[n++] = members[i];
		}
	}
	if (n == 0 || !key_arrays(batch, fk->nkeys, cols, subset, n, types, arrays))
		return;

	plan_execute_args(fk_found_query(batch->target, fk, cols), fk->nkeys, types, arrays);
	found = palloc0(sizeof(bool) * n);
	mark_found_positions(found);
	for (i = 0; i < n; i++)
		if (!found[i])
			suspect[pos[i]] = true;
}

/*
 * After a statement failed on a foreign key: mark in suspect[] (indexed
 * like members) the members whose values for a foreign key of the table
 * name no row the caller's query finds, and return how many.  A guess
 * that only orders the next tries (batch.c): a suspect is still written
 * by itself, and its error is the statement's own, with the statement's
 * message; a member not suspected still fails if the statement says so.
 * Used on Citus tables, where each failed distributed statement costs a
 * rollback on every node and bisection would cost many.  Read-only.
 */
int
precheck_fk_suspects(Batch *batch, int *members, int nmembers, bool *suspect)
{
	MemoryContext caller = CurrentMemoryContext;
	Relation	rel = table_open(batch->target->relid, NoLock);
	List	   *fkeys = copyObject(RelationGetFKeyList(rel));
	int			cols[INDEX_MAX_KEYS];
	int			nsuspects = 0;
	ListCell   *lc;
	int			i;

	/* the lock target_open() took stays */
	table_close(rel, NoLock);
	memset(suspect, 0, sizeof(bool) * nmembers);
	foreach(lc, fkeys)
	{
		ForeignKeyCacheInfo *fk = lfirst_node(ForeignKeyCacheInfo, lc);

		if (fk_readable(batch->target, fk, cols))
			fk_mark_suspects(batch, fk, cols, members, nmembers, suspect);
	}
	MemoryContextSwitchTo(caller);
	for (i = 0; i < nmembers; i++)
		if (suspect[i])
			nsuspects++;
	return nsuspects;
}
