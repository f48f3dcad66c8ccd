/*-------------------------------------------------------------------------
 *
 * copy_path.c
 *	  The fast path of CSV imports: runs of records written by COPY's own
 *	  executor, split at the rows that fail.
 *
 * kind_import.c cuts the file into records; where the import allows it
 * (every CSV field goes to a column, no row-level security applies, the
 * job's role may INSERT every column, no generated or GENERATED ALWAYS
 * identity column is given), the
 * records are collected into runs (RecordRun: the records' bytes as in
 * the file, each ended by a newline) and a run is handed to COPY FROM
 * through the COPY API (BeginCopyFrom with a data source callback, then
 * CopyFrom(), as DoCopy() does), inside a subtransaction.  A clean run
 * therefore costs what COPY costs: multi-row heap inserts, no per-row
 * executor start-up, no JSON.
 *
 * When COPY fails, the subtransaction is rolled back and the failing
 * record is found from COPY's own line counter (cur_lineno), which is
 * exact for the errors that COPY raises while it handles that row: bad
 * values and malformed records (class 22), NOT NULL and CHECK (23502,
 * 23514, also "no partition for the row"), and unique or exclusion
 * violations found while inserting index entries (23505, 23P01: COPY sets
 * the line of each buffered row as it flushes).  Then the records before
 * it are written again (recursively: they may hold a failure COPY had
 * not reached yet, since rows are buffered before they are inserted), the
 * failing record becomes a row error with COPY's message, and COPY goes on
 * after it.  A failure on the last record of a run might come from the
 * end of the statement (a deferred unique check) rather than from that
 * record, so that record is tried once more on its own to confirm it.
 *
 * An error raised while COPY converts a field (NextCopyFrom names the
 * column in cur_attname only while the column's input function runs) is
 * that record's validation_error whatever its SQLSTATE -- a tsquery or
 * jsonpath syntax error (42601), an unknown regclass or regtype (42P01,
 * 42704) -- unless it is never a row's fault (a cancel, out of memory,
 * a shutdown, a serialization failure or deadlock, an internal error).
 * Both judgements are item_error.c's (subxact_abort_value() and
 * subxact_abort()), so COPY's path and the batch engine classify every
 * error the same way.
 *
 * Every other error that is a row's fault -- a foreign key or an AFTER
 * trigger, whose errors COPY raises only at the end of the statement, or
 * a BEFORE trigger's RAISE -- is not tied to a line: the run is given to
 * the batch engine instead (the fallback callback), which finds the
 * failing rows by bisection.  Errors that are not a row's fault (a
 * deadlock, a cancel, out of memory) are re-thrown as they are.
 *
 * The precheck.  Each failure costs a rolled-back attempt and the
 * records before it written again; a duplicate key costs most, since COPY
 * finds it only when it flushes its buffered rows into the indexes, after
 * writing up to a thousand of them.  So once a run has had a failure, the
 * rest of it and the next run are checked cheaply before COPY sees them:
 * the record is cut into fields as COPY's CSV format does and is a
 * "suspect" when it has too many or too few fields, a NULL for a NOT NULL
 * column, an int2/int4/int8 field its input function would refuse (or
 * one with more digits than always fit), or the same key (the fields'
 * bytes) as a recent record for a unique index on plain columns (a table
 * of 64k hashes, emptied when half full).  A suspect goes to COPY alone,
 * after the records before it, so it never drags good records into a
 * rollback.  The precheck decides only how the records are grouped into
 * attempts, never what becomes of a record: every record is still
 * written or failed by COPY itself, in file order, with COPY's own error,
 * so a wrong guess costs one attempt more or less, and a key inserted by
 * another session after the check is found by COPY as before.  The one
 * exception is a record with too many fields and only ASCII bytes: COPY
 * counts the fields before it converts any, so its error ("extra data
 * after last expected column", 22P04) is known and is reported without
 * running COPY.  A run
 * without failures turns it off for the next run, so a clean file pays
 * nothing for it.  It is off in the client-only encodings, whose trail
 * bytes may look like a delimiter or a quote.
 *
 * Cost: one subtransaction for a clean run; about two per bad row, with
 * an XID only for those that wrote something (one per suspect and one per
 * stretch of good records between suspects once the precheck is on).  Attempts shrink after a
 * failure found while inserting (so that less is written and thrown
 * away) and grow again after each fresh attempt that worked; the rows
 * before such a failure, just inserted once, go back in one attempt and
 * change nothing in the size.  COPY's line counter is read relative to an
 * empty header line sent first (see copy_feed).  The caller commits its
 * transaction after a bounded number of subtransactions, so the
 * backend's subtransaction cache (64) is not overflowed.
 *
 * On a Citus table the same runs and attempts write through copy_citus.c
 * (COPY's parser, then one INSERT that Citus routes to the shards) instead
 * of CopyFrom(), which would fill the coordinator's empty shell table.
 *
 * Whether COPY may write the rows as the engine would (no row-level
 * security for the role, no generated column given, INSERT on every
 * column) is decided when the path is chosen and checked again before
 * every run (copy_path_usable): kind_import.c hands the rest of the import
 * to the engine when it no longer holds.
 *
 * Locking: every attempt opens the target with RowExclusiveLock, as COPY
 * FROM does; the lock is held to the end of the job's transaction.
 *
 * Memory: each attempt works in a context of its own, reset before the
 * next one (COPY's state lives there too, so it survives the rollback
 * long enough to read the line it failed on).
 *
 * The one internal header: COPY's line counter and the column it is
 * converting are fields of CopyFromStateData, which only the internal
 * commands/copyfrom_internal.h declares (copy.h has an opaque pointer).
 * copy_state_position() is the only code that reads the struct; see there
 * for what to check on a new major version.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h" /* copy_state_position() only */
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "citus_table.h"
#include "copy_citus.h"
#include "copy_path.h"
#include "item_error.h"

#define ATTEMPT_MIN_RECORDS		64

/* unique keys the precheck follows, and their columns */
#define PRECHECK_MAX_KEYS		4
#define PRECHECK_MAX_KEY_COLS	8
/* slots of the table of recent key hashes (a power of two); emptied when half full */
#define PRECHECK_HASH_SLOTS		(1 << 16)

/* What the precheck says of a record. */
#define PRECHECK_OK			0
#define PRECHECK_SUSPECT	1	/* to COPY alone */
#define PRECHECK_EXTRA		2	/* too many fields: COPY's error, without COPY */

/* What the precheck knows of each field's column. */
typedef enum PrecheckType
{
	PRE_OTHER,					/* not checked */
	PRE_INT2,
	PRE_INT4,
	PRE_INT8
} PrecheckType;

/*
 * The precheck (see the file header): what the records of a run are
 * cheaply checked against, and what it found.
 */
typedef struct Precheck
{
	bool		enabled;		/* an encoding whose bytes < 0x80 are ASCII */
	char		delimiter;
	char		quote;
	char		escape;
	const char *null_string;
	int			null_len;
	bool	   *notnull;		/* per field: its column is NOT NULL */
	PrecheckType *type;			/* per field */
	int			nkeys;			/* unique keys whose columns are all fields */
	int			key_nfields[PRECHECK_MAX_KEYS];
	int			key_field[PRECHECK_MAX_KEYS][PRECHECK_MAX_KEY_COLS];
	uint64	   *hashes;			/* recent keys' hashes, 0 = empty slot */
	int			nhashes;
	int		   *fstart;			/* fields of the record being checked */
	int		   *fend;
	bool	   *fquoted;
	int			maxfields;
	bool		active;			/* precheck the whole of the next run */
	bool		ready;			/* next[] is for the run being written... */
	int			from;			/* ... from this record on */
	int64		failed;			/* records COPY failed in this run */
	int		   *next;			/* per record: the first suspect >= it */
	char	   *verdict;		/* per record: PRECHECK_OK, _SUSPECT, _EXTRA */
	ItemError  *extra_error;	/* COPY's error for too many fields */
	int			maxrec;
	int64		suspects;		/* records isolated so far (for tests) */
} Precheck;

struct CopyPath
{
	Oid			relid;
	Oid			role;
	char	  **cols;			/* the import's columns, for copy_allowed() */
	int			ncols;
	int			file_encoding;	/* of the records, for the raw text of errors */
	List	   *attnames;		/* String nodes, in the order of the fields */
	List	   *options;		/* DefElems for BeginCopyFrom */
	int			attempt_max;	/* records per COPY attempt, adapted */
	int			attempt_limit;
	int64		subxacts;		/* attempts so far */
	MemoryContext attempt_cxt;
	CopyFallback fallback;
	void	   *fallback_arg;
	Precheck	pre;			/* the suspects of the current run */
	CopyCitus  *citus;			/* a Citus table: rows go through
								 * copy_citus.c, not CopyFrom() */
};

/*
 * What the data source callback reads: an empty header line, then the
 * records of one attempt.  COPY skips the header (HEADER true), and having
 * seen its line end it counts the line feeds inside quoted fields from the
 * first record on, as it does for a file (it does not before it knows the
 * file's line ends).  So COPY's line N is line N - 1 of the records.
 *
 * File-static because it must be: copy_data_source_cb (commands/copy.h)
 * takes no argument through which BeginCopyFrom() could hand it ours, in
 * PostgreSQL 15 as in 16 to 18.  One attempt at a time uses it:
 * copy_attempt() sets it up before BeginCopyFrom() and COPY reads it to
 * its end (or fails) before copy_attempt() returns; apply_range() may
 * recurse, but only between attempts.
 */
static const char *feed_data;
static int	feed_len;
static int	feed_pos;
static bool feed_header_sent;

/* COPY's data source callback: the header line, then the attempt's records. */
static int
copy_feed(void *outbuf, int minread, int maxread)
{
	int			n;

	if (!feed_header_sent)
	{
		((char *) outbuf)[0] = '\n';
		feed_header_sent = true;
		return 1;
	}
	n = Min(maxread, feed_len - feed_pos);
	memcpy(outbuf, feed_data + feed_pos, n);
	feed_pos += n;
	return n;
}

/* ---------------------------------------------------------------------
 * Runs of records
 * ---------------------------------------------------------------------
 */
/* An empty run in the current memory context, room for 1024 records. */
void
record_run_init(RecordRun *run)
{
	initStringInfo(&run->data);
	run->maxrec = 1024;
	run->nrec = 0;
	run->start = palloc(sizeof(int) * (run->maxrec + 1));
	run->line = palloc(sizeof(int64) * run->maxrec);
	run->nl = palloc(sizeof(int) * run->maxrec);
	run->start[0] = 0;
}

/* Empty the run for the next one, keeping its memory. */
void
record_run_reset(RecordRun *run)
{
	resetStringInfo(&run->data);
	run->nrec = 0;
	run->start[0] = 0;
}

/*
 * Add one record (its bytes as in the file), its line in the file and the
 * line feeds inside its quoted fields, which COPY counts as lines too.
 */
void
record_run_add(RecordRun *run, const char *data, int len, int64 line, int nl)
{
	appendBinaryStringInfo(&run->data, data, len);
	record_run_close(run, line, nl);
}

/*
 * End the record that was appended to run->data since the last one (the
 * reader appends it there itself, to save a copy).
 */
void
record_run_close(RecordRun *run, int64 line, int nl)
{
	if (run->nrec == run->maxrec)
	{
		run->maxrec *= 2;
		run->start = repalloc(run->start, sizeof(int) * (run->maxrec + 1));
		run->line = repalloc(run->line, sizeof(int64) * run->maxrec);
		run->nl = repalloc(run->nl, sizeof(int) * run->maxrec);
	}
	appendStringInfoChar(&run->data, '\n');
	run->line[run->nrec] = line;
	run->nl[run->nrec] = nl;
	run->nrec++;
	run->start[run->nrec] = run->data.len;
}

/* ---------------------------------------------------------------------
 * The precheck
 * ---------------------------------------------------------------------
 */
/* The precheck's type for a column type, and the digits it accepts. */
static PrecheckType
precheck_type(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return PRE_INT2;
		case INT4OID:
			return PRE_INT4;
		case INT8OID:
			return PRE_INT8;
		default:
			return PRE_OTHER;
	}
}

/* The field that column attnum is read from, or -1. */
static int
field_of_attnum(Relation rel, char **cols, int ncols, AttrNumber attnum)
{
	const char *name = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
	int			i;

	for (i = 0; i < ncols; i++)
		if (cols[i] && strcmp(cols[i], name) == 0)
			return i;
	return -1;
}

/*
 * The unique keys the precheck can follow: unique indexes on plain
 * columns, without a predicate, whose columns are all fields of the file.
 */
static void
precheck_keys(Precheck *pre, Relation rel, char **cols, int ncols)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Relation	idx;
		Form_pg_index index;
		bool		usable;
		int			k;

		if (pre->nkeys == PRECHECK_MAX_KEYS)
			break;
		idx = index_open(lfirst_oid(lc), AccessShareLock);
		index = idx->rd_index;
		usable = index->indisunique && index->indisvalid &&
			index->indnkeyatts <= PRECHECK_MAX_KEY_COLS &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL);
		for (k = 0; usable && k < index->indnkeyatts; k++)
		{
			int			f = field_of_attnum(rel, cols, ncols, index->indkey.values[k]);

			if (f < 0)
				usable = false;
			else
				pre->key_field[pre->nkeys][k] = f;
		}
		if (usable)
			pre->key_nfields[pre->nkeys++] = index->indnkeyatts;
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
}

/*
 * Set up the precheck of an import into rel (open), in the current
 * memory context.
 */
static void
precheck_init(Precheck *pre, Relation rel, ImportOptions *o, char **cols,
			  int ncols, int file_encoding)
{
	int			i;

	memset(pre, 0, sizeof(Precheck));
	/* the client-only encodings have trail bytes that look like ASCII */
	pre->enabled = PG_VALID_BE_ENCODING(file_encoding);
	if (!pre->enabled)
		return;
	pre->delimiter = o->delimiter;
	pre->quote = o->quote;
	pre->escape = o->escape;
	pre->null_string = o->null_string;
	pre->null_len = strlen(o->null_string);
	pre->notnull = palloc0(sizeof(bool) * ncols);
	pre->type = palloc0(sizeof(PrecheckType) * ncols);
	for (i = 0; i < ncols; i++)
	{
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), cols[i]);
		Form_pg_attribute att;

		if (attnum <= 0)
			continue;
		att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
		pre->notnull[i] = att->attnotnull;
		pre->type[i] = precheck_type(att->atttypid);
	}
	precheck_keys(pre, rel, cols, ncols);
	if (pre->nkeys > 0)
		pre->hashes = palloc0(sizeof(uint64) * PRECHECK_HASH_SLOTS);
	/* as COPY words it, in the messages' language (the server's domain) */
	pre->extra_error = item_error_make(item_error_name(ERRCODE_BAD_COPY_FILE_FORMAT),
									   ERRCODE_BAD_COPY_FILE_FORMAT, NULL, "%s",
									   _("extra data after last expected column"));
	pre->maxfields = ncols + 1;
	pre->fstart = palloc(sizeof(int) * pre->maxfields);
	pre->fend = palloc(sizeof(int) * pre->maxfields);
	pre->fquoted = palloc(sizeof(bool) * pre->maxfields);
}

/*
 * Would int2in, int4in or int8in read this unquoted field?  Blanks, a
 * sign, the digits, blanks; more digits than always fit count as not
 * (they may be out of range).
 */
static bool
precheck_integer(const char *p, int len, int maxdigits)
{
	const char *end = p + len;
	int			digits = 0;

	while (p < end && isspace((unsigned char) *p))
		p++;
	if (p < end && (*p == '+' || *p == '-'))
		p++;
	while (p < end && *p >= '0' && *p <= '9')
	{
		p++;
		digits++;
	}
	while (p < end && isspace((unsigned char) *p))
		p++;
	return p == end && digits > 0 && digits <= maxdigits;
}

/*
 * Cut a record into fields as COPY's CSV format does: the bounds of each
 * field's bytes, quotes included, and whether it had a quote.  The
 * number of fields; more than pre->maxfields are counted, not kept.
 * -1 for a quote that does not close (the reader has not let one by).
 */
static int
precheck_fields(Precheck *pre, const char *rec, int len)
{
	int			nfields = 0;
	int			i = 0;

	for (;;)
	{
		int			start = i;
		bool		quoted = false;
		bool		delim = false;

		while (i < len)
		{
			char		c = rec[i++];

			if (c == pre->delimiter)
			{
				delim = true;
				break;
			}
			if (c != pre->quote)
				continue;
			quoted = true;
			if (pre->escape == pre->quote)
			{
				/* the usual case: "" is a quote, a lone " ends the quotes */
				for (;;)
				{
					const char *q = memchr(rec + i, pre->quote, len - i);

					if (q == NULL)
						return -1;
					i = q - rec + 1;
					if (i < len && rec[i] == pre->quote)
						i++;
					else
						break;
				}
				continue;
			}
			for (;;)
			{
				if (i >= len)
					return -1;
				c = rec[i++];
				if (c == pre->escape && i < len &&
					(rec[i] == pre->escape || rec[i] == pre->quote))
				{
					i++;
					continue;
				}
				if (c == pre->quote)
					break;
			}
		}
		if (nfields < pre->maxfields)
		{
			pre->fstart[nfields] = start;
			pre->fend[nfields] = delim ? i - 1 : i;
			pre->fquoted[nfields] = quoted;
		}
		nfields++;
		if (!delim)
			return nfields;
	}
}

/* Is field f of the record COPY's NULL? */
static bool
precheck_null(Precheck *pre, const char *rec, int f)
{
	return !pre->fquoted[f] &&
		pre->fend[f] - pre->fstart[f] == pre->null_len &&
		memcmp(rec + pre->fstart[f], pre->null_string, pre->null_len) == 0;
}

/*
 * Has a recent record had this record's key k?  Its hash is remembered
 * either way.  The fields' bytes as in the file are hashed (quotes
 * included): the same value written two ways is not seen, which only
 * leaves that duplicate to COPY.  A key with a NULL is never a duplicate.
 */
static bool
precheck_duplicate(Precheck *pre, const char *rec, int k)
{
	uint64		h = k + 1;
	uint32		slot;
	int			j;

	for (j = 0; j < pre->key_nfields[k]; j++)
	{
		int			f = pre->key_field[k][j];

		if (precheck_null(pre, rec, f))
			return false;
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) rec + pre->fstart[f],
												  pre->fend[f] - pre->fstart[f], j));
	}
	if (h == 0)
		h = 1;
	if (pre->nhashes >= PRECHECK_HASH_SLOTS / 2)
	{
		memset(pre->hashes, 0, sizeof(uint64) * PRECHECK_HASH_SLOTS);
		pre->nhashes = 0;
	}
	for (slot = h & (PRECHECK_HASH_SLOTS - 1);; slot = (slot + 1) & (PRECHECK_HASH_SLOTS - 1))
	{
		if (pre->hashes[slot] == h)
			return true;
		if (pre->hashes[slot] == 0)
			break;
	}
	pre->hashes[slot] = h;
	pre->nhashes++;
	return false;
}

/*
 * Is the record likely to fail in COPY?  Too many or too few fields,
 * NULL in a NOT NULL column, an integer column's field that its input
 * function would refuse, a unique key a recent record had.
 */
static int
precheck_suspect(Precheck *pre, int ncols, const char *rec, int len)
{
	int			nfields = precheck_fields(pre, rec, len);
	bool		suspect = false;
	int			f;
	int			k;

	if (nfields > ncols)
	{
		/*
		 * COPY counts the fields before it converts any, so this is its
		 * error -- unless the record has a byte it might fail to convert
		 */
		for (f = 0; f < len; f++)
			if (IS_HIGHBIT_SET(rec[f]))
				return PRECHECK_SUSPECT;
		return PRECHECK_EXTRA;
	}
	if (nfields != ncols)
		return PRECHECK_SUSPECT;
	for (f = 0; f < ncols && !suspect; f++)
	{
		int			flen = pre->fend[f] - pre->fstart[f];

		if (precheck_null(pre, rec, f))
			suspect = pre->notnull[f];
		else if (pre->type[f] != PRE_OTHER && !pre->fquoted[f])
			suspect = !precheck_integer(rec + pre->fstart[f], flen,
										pre->type[f] == PRE_INT2 ? 4 :
										pre->type[f] == PRE_INT4 ? 9 : 18);
	}
	/* every key is remembered, whatever else is wrong with the record */
	for (k = 0; k < pre->nkeys; k++)
		if (precheck_duplicate(pre, rec, k))
			suspect = true;
	return suspect ? PRECHECK_SUSPECT : PRECHECK_OK;
}

/*
 * Precheck the records of a run from record from on: pre->next[i] is the
 * first suspect at or after record i >= from (run->nrec if none).
 */
static void
precheck_run(CopyPath *cp, RecordRun *run, int from)
{
	Precheck   *pre = &cp->pre;
	int			i;

	if (pre->maxrec < run->nrec + 1)
	{
		if (pre->next)
		{
			pfree(pre->next);
			pfree(pre->verdict);
		}
		pre->maxrec = Max(run->nrec + 1, 1024);
		pre->next = MemoryContextAlloc(GetMemoryChunkContext(cp), sizeof(int) * pre->maxrec);
		pre->verdict = MemoryContextAlloc(GetMemoryChunkContext(cp), pre->maxrec);
	}
	for (i = from; i < run->nrec; i++)
		pre->verdict[i] = precheck_suspect(pre, cp->ncols, run->data.data + run->start[i],
										   run->start[i + 1] - run->start[i] - 1);
	pre->next[run->nrec] = run->nrec;
	for (i = run->nrec - 1; i >= from; i--)
	{
		if (pre->verdict[i] != PRECHECK_OK)
		{
			pre->next[i] = i;
			pre->suspects++;
		}
		else
			pre->next[i] = pre->next[i + 1];
	}
	pre->from = from;
	pre->ready = true;
}

/* ---------------------------------------------------------------------
 * Can COPY do it?
 * ---------------------------------------------------------------------
 */
/*
 * Would COPY write the import's rows as the engine's INSERT would?  Not
 * with row-level security (COPY FROM refuses it), a skipped or unknown
 * field, a generated or GENERATED ALWAYS column (COPY writes them, INSERT
 * refuses), or a column the role may not INSERT; nor on a Citus table
 * with a BEFORE ROW trigger, which may skip rows that copy_citus.c's
 * INSERT must count.
 */
static bool
copy_allowed(Relation rel, Oid role, char **cols, int ncols)
{
	bool		table_insert;
	int			i;

	if (citus_table_managed(RelationGetRelid(rel)) && rel->trigdesc &&
		rel->trigdesc->trig_insert_before_row)
		return false;
	if (check_enable_rls(RelationGetRelid(rel), role, true) == RLS_ENABLED)
		return false;
	table_insert = pg_class_aclcheck(RelationGetRelid(rel), role, ACL_INSERT) == ACLCHECK_OK;
	for (i = 0; i < ncols; i++)
	{
		AttrNumber	attnum;
		Form_pg_attribute att;

		if (cols[i] == NULL)
			return false;		/* a skipped field: COPY cannot skip */
		attnum = get_attnum(RelationGetRelid(rel), cols[i]);
		if (attnum == InvalidAttrNumber)
			return false;
		att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
		/* COPY would write these (as OVERRIDING SYSTEM VALUE); INSERT refuses */
		if (att->attgenerated || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			return false;
		if (!table_insert &&
			pg_attribute_aclcheck(RelationGetRelid(rel), attnum, role,
								  ACL_INSERT) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/* A COPY option as the grammar would give it to BeginCopyFrom(). */
static DefElem *
copy_option(const char *name, const char *value)
{
	return makeDefElem(pstrdup(name), (Node *) makeString(pstrdup(value)), -1);
}

/* A one-character option value (delimiter, quote, escape). */
static char *
char_string(char c)
{
	char		s[2] = {c, '\0'};

	return pstrdup(s);
}

/*
 * The fast path for this import, or NULL when COPY cannot write it as
 * the batch engine would (see copy_allowed).  Call in a transaction;
 * the result lives in the current memory context.
 */
CopyPath *
copy_path_begin(Job *job, ImportOptions *o, char **cols, int ncols,
				int run_records, CopyFallback fallback, void *arg)
{
	Relation	rel = table_open(job->relid, AccessShareLock);
	CopyPath   *cp;
	bool		allowed = copy_allowed(rel, job->role, cols, ncols);
	int			i;

	if (!allowed)
	{
		table_close(rel, AccessShareLock);
		return NULL;
	}

	cp = palloc0(sizeof(CopyPath));
	cp->relid = job->relid;
	cp->role = job->role;
	cp->cols = cols;
	cp->ncols = ncols;
	cp->file_encoding = o->encoding >= 0 ? o->encoding : GetDatabaseEncoding();
	for (i = 0; i < ncols; i++)
		cp->attnames = lappend(cp->attnames, makeString(pstrdup(cols[i])));
	cp->options = list_make5(copy_option("header", "true"),
							 copy_option("format", "csv"),
							 copy_option("delimiter", char_string(o->delimiter)),
							 copy_option("quote", char_string(o->quote)),
							 copy_option("null", o->null_string));
	cp->options = lappend(cp->options, copy_option("escape", char_string(o->escape)));
	if (o->encoding >= 0)
		cp->options = lappend(cp->options,
							  copy_option("encoding", pg_encoding_to_char(o->encoding)));
	cp->attempt_limit = cp->attempt_max = Max(run_records, ATTEMPT_MIN_RECORDS);
	cp->attempt_cxt = AllocSetContextCreate(CurrentMemoryContext,
											"batch_ops COPY attempt",
											ALLOCSET_DEFAULT_SIZES);
	cp->fallback = fallback;
	cp->fallback_arg = arg;
	precheck_init(&cp->pre, rel, o, cols, ncols, cp->file_encoding);
	if (citus_table_managed(job->relid))
		cp->citus = copy_citus_begin(rel, cp->attnames);
	table_close(rel, AccessShareLock);
	return cp;
}

/* Attempts (subtransactions) so far, for the caller's commit cadence. */
int64
copy_path_subxacts(CopyPath *cp)
{
	return cp ? cp->subxacts : 0;
}

/*
 * Can COPY still write the rows as the engine would?  Checked before
 * every run: row-level security may apply by now (ENABLE or FORCE ROW
 * LEVEL SECURITY, the role lost BYPASSRLS), a column may have become
 * generated.  The caller has read the invalidation messages.
 */
bool
copy_path_usable(CopyPath *cp)
{
	Relation	rel;
	bool		allowed;

	if (cp == NULL)
		return false;
	rel = table_open(cp->relid, AccessShareLock);
	allowed = copy_allowed(rel, cp->role, cp->cols, cp->ncols);
	table_close(rel, AccessShareLock);
	return allowed;
}

/* ---------------------------------------------------------------------
 * One attempt
 * ---------------------------------------------------------------------
 */

/*
 * Where COPY stood when it failed: the line it was reading (COPY's own
 * count: 1 = the first line fed) and whether it was converting a field,
 * which NextCopyFrom() tells by naming the column in cur_attname only
 * while the column's input function runs.
 *
 * The one use of commands/copyfrom_internal.h (see the file header).
 * CopyFromStateData is private to COPY and has no stable layout: fields
 * were added in 16 and 17 (the soft-error state of ON_ERROR among them)
 * and its format routine moved to the front in 18.  Built against each
 * version's own header, the layout follows; what could break is the
 * meaning or the existence of these two fields.  They are
 * there, with this meaning, in 15, 16, 17 and 18 (CopyFromErrorCallback()
 * reports them), so no PG_VERSION_NUM guard is needed yet.  Check them on
 * every new major version; if they go, this function is the only code to
 * change (without a line, every failure would go to the fallback).
 */
static void
copy_state_position(CopyFromState cstate, uint64 *lineno, bool *in_field)
{
	*lineno = cstate->cur_lineno;
	*in_field = cstate->cur_attname != NULL;
}

/*
 * COPY records [first, last) of the run in a subtransaction.  NULL when
 * it worked; else the error (a row's fault: anything else is re-thrown)
 * and, in *lineno, the line of the attempt COPY was at (1 = first, 0 =
 * before any); *in_field tells that it came from converting a field.
 */
static ItemError *
copy_attempt(CopyPath *cp, RecordRun *run, int first, int last, uint64 *lineno,
			 bool *in_field)
{
	volatile CopyFromState cstate = NULL;
	ItemError  *err = NULL;
	Subxact		sx;

	feed_data = run->data.data + run->start[first];
	feed_len = run->start[last] - run->start[first];
	feed_pos = 0;
	feed_header_sent = false;
	*lineno = 0;
	*in_field = false;
	cp->subxacts++;

	subxact_begin(&sx);
	PG_TRY();
	{
		Relation	rel = table_open(cp->relid, RowExclusiveLock);
		ParseState *pstate = make_parsestate(NULL);

		(void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock,
											 NULL, false, false);
		PushActiveSnapshot(GetTransactionSnapshot());
		cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_feed,
							   cp->attnames, cp->options);
		if (cp->citus)
			copy_citus_run(cp->citus, cstate, rel, pstate->p_rtable);
		else
			(void) CopyFrom(cstate);
		EndCopyFrom(cstate);
		PopActiveSnapshot();
		table_close(rel, NoLock);
		subxact_commit(&sx);
		CommandCounterIncrement();
	}
	PG_CATCH();
	{
		uint64		copy_line = 0;

		/* COPY's state lives in the attempt context: still readable */
		if (cstate != NULL)
			copy_state_position(cstate, &copy_line, in_field);
		if (cp->citus)
		{
			/* an error of the INSERT, on a worker, is not a line's */
			*in_field = cp->citus->in_field;
			if (cp->citus->sent)
				copy_line = 0;
		}
		/* the header is line 1 */
		if (copy_line > 1)
			*lineno = copy_line - 1;

		/*
		 * Roll back; the error comes back if it is the row's fault and is
		 * re-thrown otherwise.  Converting a field, the value is at fault
		 * whatever the SQLSTATE (a tsquery or jsonpath syntax error 42601,
		 * an unknown regclass 42P01) unless the error is environmental.
		 */
		if (*in_field)
			err = subxact_abort_value(&sx);
		else
			err = subxact_abort(&sx);
	}
	PG_END_TRY();
	return err;
}

/*
 * The record of [first, last) on which COPY's line counter stood: COPY
 * counts the line feeds inside quoted fields too.  -1 if none.
 */
static int
record_at_line(RecordRun *run, int first, int last, uint64 lineno)
{
	uint64		seen = 0;
	int			k;

	for (k = first; k < last && lineno > 0; k++)
	{
		seen += 1 + run->nl[k];
		if (lineno <= seen)
			return k;
	}
	return -1;
}

/* Errors COPY raises while it handles the row its line counter names. */
static bool
error_has_line(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
		sqlerrcode == ERRCODE_NOT_NULL_VIOLATION ||
		sqlerrcode == ERRCODE_CHECK_VIOLATION ||
		sqlerrcode == ERRCODE_UNIQUE_VIOLATION ||
		sqlerrcode == ERRCODE_EXCLUSION_VIOLATION;
}

/* Found while inserting index entries, after the rows were written. */
static bool
error_after_write(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_UNIQUE_VIOLATION ||
		sqlerrcode == ERRCODE_EXCLUSION_VIOLATION;
}

/* Record a failed record as the row error of its line in the file. */
static void
add_row_error(CopyPath *cp, ChunkResult *res, RecordRun *run, int rec, ItemError *err)
{
	int			len = run->start[rec + 1] - run->start[rec] - 1;

	/* the record as in the file, converted; \xNN for bytes it cannot be */
	chunk_add_error(res, run->line[rec], -1, err->name, err->message,
					unpack_sql_state(err->sqlerrcode), err->detail,
					job_raw_text(run->data.data + run->start[rec], len,
								 cp->file_encoding, 1024), -1);
}

/* ---------------------------------------------------------------------
 * A run
 * ---------------------------------------------------------------------
 */
/*
 * Write records [first, last).  A "fresh" range is tried in attempts of
 * cp->attempt_max records, which halves after a failure found while
 * inserting and doubles after a fresh attempt that worked; a range that
 * is not fresh -- the records before a unique violation, which COPY has
 * just inserted without a failure -- goes in one attempt and teaches
 * nothing about the size.
 */
static void
apply_range(CopyPath *cp, RecordRun *run, int first, int last, ChunkResult *res,
			bool fresh)
{
	check_stack_depth();
	while (first < last)
	{
		int			n = fresh ? Min(last - first, cp->attempt_max) : last - first;
		MemoryContext old;
		ItemError  *err;
		uint64		lineno;
		bool		in_field;
		bool		after_write;
		int			bad;

		/* a suspect goes alone, after the records before it */
		if (fresh && cp->pre.ready && first >= cp->pre.from)
		{
			int			s = cp->pre.next[first];

			if (s == first && cp->pre.verdict[first] == PRECHECK_EXTRA)
			{
				/* COPY would fail it before converting a field */
				add_row_error(cp, res, run, first, cp->pre.extra_error);
				cp->pre.failed++;
				first++;
				continue;
			}
			if (s == first)
				n = 1;
			else if (s < first + n)
				n = s - first;
		}
		old = MemoryContextSwitchTo(cp->attempt_cxt);
		MemoryContextReset(cp->attempt_cxt);
		err = copy_attempt(cp, run, first, first + n, &lineno, &in_field);
		MemoryContextSwitchTo(old);
		if (err == NULL)
		{
			res->applied += n;
			first += n;
			if (fresh)
				cp->attempt_max = Min(cp->attempt_max * 2, cp->attempt_limit);
			continue;
		}
		bad = record_at_line(run, first, first + n, lineno);
		if (bad < 0 || !(in_field || error_has_line(err->sqlerrcode)))
		{
			/* not tied to a line: the batch engine finds the rows */
			cp->fallback(cp->fallback_arg, run, first, first + n, res);
			first += n;
			continue;
		}
		if (in_field)
			after_write = false;
		else
			after_write = error_after_write(err->sqlerrcode);
		if (after_write && n > 1)
			cp->attempt_max = Max(cp->attempt_max / 2, ATTEMPT_MIN_RECORDS);
		/* the first failure of a run: precheck the rest of it */
		cp->pre.failed++;
		if (cp->pre.enabled && !cp->pre.ready)
			precheck_run(cp, run, bad + 1);

		/*
		 * The records before the bad one: after a failure found while
		 * inserting they were all inserted; after one found while reading,
		 * COPY may not have inserted them yet, so they may hold a failure.
		 * (err lives in the attempt context: keep it out of their way.)
		 */
		err = item_error_copy(err);
		if (bad > first)
			apply_range(cp, run, first, bad, res, !after_write);
		if (bad == first + n - 1 && !in_field && n > 1)
		{
			/* maybe the end of the statement failed, not this record */
			MemoryContextSwitchTo(cp->attempt_cxt);
			MemoryContextReset(cp->attempt_cxt);
			if (copy_attempt(cp, run, bad, bad + 1, &lineno, &in_field) == NULL)
			{
				MemoryContextSwitchTo(old);
				res->applied++;
				first = bad + 1;
				continue;
			}
			MemoryContextSwitchTo(old);
		}
		add_row_error(cp, res, run, bad, err);
		first = bad + 1;
	}
}

/*
 * Write the records of the run (as the job's role: the caller switches),
 * counting them in res as applied or failed.
 */
void
copy_path_apply(CopyPath *cp, RecordRun *run, ChunkResult *res)
{
	cp->pre.failed = 0;
	cp->pre.ready = false;
	if (cp->pre.enabled && cp->pre.active)
		precheck_run(cp, run, 0);
	apply_range(cp, run, 0, run->nrec, res, true);
	/* a run without failures: the next is not prechecked */
	cp->pre.active = cp->pre.failed > 0;
	cp->pre.ready = false;
	MemoryContextReset(cp->attempt_cxt);
}
