/*-------------------------------------------------------------------------
 *
 * copy_citus.c
 *	  The COPY path of imports into a Citus table: COPY's own parser, and
 *	  one INSERT ... SELECT that Citus routes to the shards.
 *
 * On a Citus table (citus_table.c) CopyFrom() would write the rows into
 * the coordinator's shell, where no query reads them.  Citus loads data
 * through its COPY hook, which works on a CopyStmt FROM a client or a
 * file; a job's background worker has neither (no client for FROM STDIN,
 * and the records are in memory, not in a file the job's role may read).
 * What Citus does route well from a background worker is INSERT ...
 * SELECT FROM unnest($1) over an array of rows, planned with the array
 * bound (Citus cannot plan a generic plan's parameter): it evaluates the
 * SELECT on the coordinator and sends each shard its rows with COPY.
 * Measured on the 3-node loopback cluster of the benchmark
 * (test/bench/citus.sh, 32 shards): 10,000 rows in 65 ms this way, where
 * the batch engine (CSV fields to JSON to values) took about 0.35 s for
 * the same rows; see README.md "Citus" for the import figures.
 *
 * So copy_path.c keeps everything of its COPY path -- the runs, the
 * attempts, the precheck, the line of a failing record, the fallback to
 * the engine -- and only the write differs: copy_citus_run() reads the
 * attempt's records with NextCopyFromRawFields() (COPY's CSV parser, its
 * encoding conversion and its line counter), converts each field with its
 * column type's input function as NextCopyFrom() does -- the same
 * functions, the same errors, raised while COPY's line counter is on the
 * record -- checks NOT NULL and CHECK constraints with ExecConstraints()
 * on the coordinator's shell (which has the table's constraints), as
 * CopyFrom() does before it inserts a row, so those errors too are the
 * record's, with COPY's message -- and sends the rows in one statement.  Columns not in the file
 * take their defaults from the INSERT, once (NextCopyFrom() would evaluate
 * them too, a sequence twice).  An error from the INSERT (a constraint
 * checked on a worker) is not tied to a record: copy_path.c then hands the
 * attempt to the batch engine, which finds the failing rows.
 *
 * Memory: the rows and the array live in the caller's attempt context.
 * Locking: the INSERT takes what Citus takes (RowExclusiveLock on the
 * table and its shards).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/value.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "copy_citus.h"
#include "plan_cache.h"

/* The fields' columns, their input functions, and the statement. */
CopyCitus *
copy_citus_begin(Relation rel, List *attnames)
{
	CopyCitus  *cc = palloc0(sizeof(CopyCitus));
	StringInfoData cols;
	StringInfoData sel;
	ListCell   *lc;
	int			i = 0;

	cc->nfields = list_length(attnames);
	cc->attnums = palloc(sizeof(AttrNumber) * Max(cc->nfields, 1));
	cc->in = palloc(sizeof(FmgrInfo) * Max(cc->nfields, 1));
	cc->ioparams = palloc(sizeof(Oid) * Max(cc->nfields, 1));
	cc->typmods = palloc(sizeof(int32) * Max(cc->nfields, 1));
	cc->desc = CreateTupleDescCopy(RelationGetDescr(rel));
	cc->rowtype = rel->rd_rel->reltype;
	cc->rowarraytype = get_array_type(cc->rowtype);
	initStringInfo(&cols);
	appendStringInfoChar(&cols, '(');
	initStringInfo(&sel);
	foreach(lc, attnames)
	{
		const char *name = strVal(lfirst(lc));
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);
		Form_pg_attribute att;
		Oid			func;

		if (attnum == InvalidAttrNumber)
			elog(ERROR, "column \"%s\" of relation \"%s\" does not exist",
				 name, RelationGetRelationName(rel));
		att = TupleDescAttr(cc->desc, attnum - 1);
		cc->attnums[i] = attnum;
		cc->typmods[i] = att->atttypmod;
		getTypeInputInfo(att->atttypid, &func, &cc->ioparams[i]);
		fmgr_info(func, &cc->in[i]);
		appendStringInfo(&cols, "%s%s", i ? ", " : "", quote_identifier(name));
		appendStringInfo(&sel, "%sr.%s", i ? ", " : "", quote_identifier(name));
		i++;
	}
	appendStringInfoChar(&cols, ')');
	/*
	 * No name is resolved through the search_path: the table is
	 * schema-qualified, cols is its parenthesized column list, and the
	 * only function, unnest, is pg_catalog's.
	 */
	cc->sql = psprintf("INSERT INTO %s %s SELECT %s FROM pg_catalog.unnest($1) AS r RETURNING 1",
					   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												  RelationGetRelationName(rel)),
					   cols.data, sel.data);
	return cc;
}

/*
 * The row of one record: each field through its column's input function
 * (a NULL field is NULL), the other columns NULL (the INSERT leaves them
 * out).  The field count errors are NextCopyFrom()'s own.
 */
static Datum
record_row(CopyCitus *cc, char **fields, int nfields, Datum *values, bool *nulls,
		   ResultRelInfo *rri, TupleTableSlot *slot, EState *estate)
{
	HeapTuple	tuple;
	Datum		row;
	int			i;

	if (nfields > cc->nfields)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("extra data after last expected column")));
	if (nfields < cc->nfields)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("missing data for column \"%s\"",
						NameStr(TupleDescAttr(cc->desc, cc->attnums[nfields] - 1)->attname))));
	memset(nulls, true, sizeof(bool) * cc->desc->natts);
	for (i = 0; i < cc->nfields; i++)
	{
		int			a = cc->attnums[i] - 1;

		cc->in_field = true;
		values[a] = InputFunctionCall(&cc->in[i], fields[i], cc->ioparams[i],
									  cc->typmods[i]);
		nulls[a] = (fields[i] == NULL);
		cc->in_field = false;
	}
	tuple = heap_form_tuple(cc->desc, values, nulls);
	if (rri->ri_RelationDesc->rd_att->constr)
	{
		ExecStoreHeapTuple(tuple, slot, false);
		ExecConstraints(rri, slot, estate);
		ExecClearTuple(slot);
	}
	row = heap_copy_tuple_as_datum(tuple, cc->desc);
	heap_freetuple(tuple);
	return row;
}

/*
 * Read every record COPY's state gives and insert the rows in one
 * statement; throws on the first error (cc->in_field and cc->sent say
 * where it came from).
 */
void
copy_citus_run(CopyCitus *cc, CopyFromState cstate, Relation rel,
			   List *range_table)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(cc->desc, &TTSOpsHeapTuple);
	Datum	   *values = palloc(sizeof(Datum) * Max(cc->desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(cc->desc->natts, 1));
	int			size = 1024;
	Datum	   *rows = palloc(sizeof(Datum) * size);
	int			n = 0;
	char	  **fields;
	int			nfields;
	Datum		array;

	cc->in_field = false;
	cc->sent = false;
	/* the constraint checks as CopyFrom() sets them up */
	ExecInitRangeTable(estate, range_table);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	while (NextCopyFromRawFields(cstate, &fields, &nfields))
	{
		CHECK_FOR_INTERRUPTS();
		if (n == size)
		{
			size *= 2;
			rows = repalloc(rows, sizeof(Datum) * size);
		}
		rows[n++] = record_row(cc, fields, nfields, values, nulls, rri, slot, estate);
		ResetPerTupleExprContext(estate);
	}
	ExecDropSingleTupleTableSlot(slot);
	FreeExecutorState(estate);
	cc->sent = true;
	if (n == 0)
		return;
	array = PointerGetDatum(construct_array(rows, n, cc->rowtype, -1, false,
											TYPALIGN_DOUBLE));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan_execute_custom(cc->sql, cc->rowarraytype, array);
	if (SPI_processed != (uint64) n)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("INSERT into a Citus table returned " UINT64_FORMAT " rows for %d records",
						SPI_processed, n)));
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}
