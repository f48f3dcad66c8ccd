/*-------------------------------------------------------------------------
 *
 * row_match.c
 *	  Match the rows an INSERT returns to the items they came from, by the
 *	  values the items gave rather than by position.
 *
 * On a local table RETURNING lists the rows of INSERT ... SELECT FROM
 * unnest($1) in array order, and batch.c matches row k to item k.  On a
 * Citus table (citus_table.c) the rows come back grouped by shard, so
 * batch.c asks RETURNING for the columns the items gave (those the caller
 * may read) ahead of the row's other columns, and each returned row is
 * given to the first unmatched item whose given values print the same
 * (each value as its type's output function prints it, length-prefixed,
 * so that no two different keys are equal).  Items that gave the same
 * values are interchangeable: whichever gets which row, each item's row
 * holds the values it gave.  A column the caller may not read cannot be
 * returned and is left out of the key.
 *
 * The keys of the items are sorted by hash once per statement and each
 * returned row is found by binary search: O(n log n) for n items.
 *
 * Memory: everything in the caller's context (the statement's, reset
 * after each attempt).  No locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/lsyscache.h"

#include "row_match.h"

typedef struct MatchKey
{
	uint32		hash;
	int			item;			/* index into batch->items */
	bool		used;
	char	   *text;
} MatchKey;

struct RowMatch
{
	int			ncols;
	FmgrInfo   *out;			/* output function per key column */
	MatchKey   *keys;
	int			nkeys;
};

/* The readable columns of the shape, in column order; how many. */
int
row_match_columns(Batch *batch, Bitmapset *shape, int *cols)
{
	int			n = 0;
	int			c = -1;

	while ((c = bms_next_member(shape, c)) >= 0)
		if (batch->target->cols[c].may_read)
			cols[n++] = c;
	return n;
}

/* one value of the key: "N" for null, else "<length>:<text>" */
static void
append_value(StringInfo buf, FmgrInfo *out, Datum value, bool isnull)
{
	char	   *text;

	if (isnull)
	{
		appendStringInfoChar(buf, 'N');
		return;
	}
	text = OutputFunctionCall(out, value);
	appendStringInfo(buf, "%zu:%s", strlen(text), text);
}

static int
compare_keys(const void *a, const void *b)
{
	const MatchKey *x = a;
	const MatchKey *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->item - y->item;	/* equal keys: first item first */
}

/* The items' keys over the given columns, ready for row_match_take(). */
RowMatch *
row_match_begin(Batch *batch, const int *cols, int ncols,
				const int *members, int nmembers)
{
	RowMatch   *m = palloc0(sizeof(RowMatch));
	StringInfoData buf;
	int			i;
	int			k;

	m->ncols = ncols;
	m->out = palloc(sizeof(FmgrInfo) * Max(ncols, 1));
	for (k = 0; k < ncols; k++)
	{
		Oid			func;
		bool		varlena;

		getTypeOutputInfo(batch->target->cols[cols[k]].typid, &func, &varlena);
		fmgr_info(func, &m->out[k]);
	}
	m->keys = palloc(sizeof(MatchKey) * Max(nmembers, 1));
	m->nkeys = nmembers;
	initStringInfo(&buf);
	for (i = 0; i < nmembers; i++)
	{
		BatchItem  *item = &batch->items[members[i]];

		resetStringInfo(&buf);
		for (k = 0; k < ncols; k++)
			append_value(&buf, &m->out[k], item->values[cols[k]], item->isnull[cols[k]]);
		m->keys[i].text = pstrdup(buf.data);
		m->keys[i].hash = hash_bytes((unsigned char *) buf.data, buf.len);
		m->keys[i].item = members[i];
		m->keys[i].used = false;
	}
	qsort(m->keys, nmembers, sizeof(MatchKey), compare_keys);
	return m;
}

/*
 * The item a returned row belongs to (its key columns start at
 * first_attno), or -1 if no unmatched item gave its values.
 */
int
row_match_take(RowMatch *m, HeapTuple tuple, TupleDesc desc, int first_attno)
{
	StringInfoData buf;
	uint32		hash;
	int			lo = 0;
	int			hi = m->nkeys;
	int			k;

	initStringInfo(&buf);
	for (k = 0; k < m->ncols; k++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(tuple, desc, first_attno + k, &isnull);

		append_value(&buf, &m->out[k], d, isnull);
	}
	hash = hash_bytes((unsigned char *) buf.data, buf.len);

	/* the first key with this hash */
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (m->keys[mid].hash < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < m->nkeys && m->keys[lo].hash == hash; lo++)
	{
		if (!m->keys[lo].used && strcmp(m->keys[lo].text, buf.data) == 0)
		{
			m->keys[lo].used = true;
			pfree(buf.data);
			return m->keys[lo].item;
		}
	}
	pfree(buf.data);
	return -1;
}
