/*-------------------------------------------------------------------------
 *
 * kind_import.c
 *	  The "import" kind: CSV files and URLs into a table, in chunks.
 *
 * The bytes come from source.c, are cut into records by csv_reader.c,
 * and reach the table two ways: runs of good records through COPY
 * (copy_path.c) while COPY can write them as the engine would, and
 * everything else through the batch engine: each chunk of records becomes
 * a JSON array of objects, column name -> field (a JSON string, or null),
 * passed to batch_execute_fields(BATCH_CREATE, ...) in partial mode as the
 * job's role; the engine reads every field with its column's input
 * function (a json or jsonb column's too, as COPY does), checks the
 * constraints it can check in advance, writes set-based and reports every
 * failing item by index, which maps back to the record's line and raw
 * text.
 *
 * A record that is malformed -- an unterminated quoted field, too many or
 * too few fields, bytes that are not valid in the file's encoding, longer
 * than max_record_bytes -- is a row error with the COPY message and
 * SQLSTATE, and the import goes on with the next record.  As in COPY, a
 * record's fields are judged in the file's order: a record with too few
 * fields, or a row the engine fails with a validation_error (the engine
 * reads an object's keys in jsonb's order), gets the error of its first
 * field that its column rejects, if any (first_field_error).  The raw text of
 * every row error is stored converted to the database encoding, each
 * byte that is not part of a valid (or convertible) character written
 * \xNN (job_raw_text), so that any client can read the errors.  Good
 * records are grouped into chunks (chunk_size records -- by default
 * 10,000, on a Citus table 100,000 -- or 32 MB; under a
 * rate limit at most the role's burst, whose tokens are taken before the
 * chunk's transaction starts -- inside it for an atomic import -- and
 * given back for records the chunk did not read).
 *
 * Partial mode (the default): each chunk's rows, its errors and the job's
 * checkpoint ({"offset", "line", "columns"}: where the next unread record
 * starts, and the column of each field) commit together, so after a
 * crash the job resumes at the checkpoint and no row is lost or imported
 * twice.  Atomic mode runs the whole import in one transaction (its data
 * in one subtransaction, rolled back if any row failed; the errors are
 * kept in memory meanwhile); after a crash it starts over.  The summary
 * adds "bytes_total", the source's size once known, from which progress
 * is computed.
 *
 * Privileges: COPY checks them when its statement starts; a job is a long
 * series of statements, so before each that writes (a COPY run, an engine
 * chunk) the role's INSERT privilege on the table or on every imported
 * column is checked again, after reading invalidation messages, and the
 * job fails with 42501 once it is gone (import_check_insert).  The COPY
 * path is also given up as soon as row-level security applies to the
 * role (copy_path_usable): the rest goes through the engine, which
 * applies the policies row by row.
 *
 * Memory: one buffer of the source, the current record, and the current
 * chunk (a context reset after each chunk), whatever the file's size.  A
 * record is read straight into COPY's run when the COPY path takes it
 * (one copy, not two); a record of 1 MB or more that goes to the engine
 * is sent in a chunk of its own, its field values not copied, and the
 * reader's buffers are given back before the engine makes its copies.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "citus_table.h"
#include "copy_path.h"
#include "csv_reader.h"
#include "item_convert.h"
#include "item_error.h"
#include "job_kind.h"
#include "ratelimit.h"
#include "source.h"
#include "target.h"

#define CHUNK_MAX_BYTES		(32 * 1024 * 1024)

/*
 * records and bytes per run handed to COPY (copy_path.c): a default chunk
 * (10,000 records) is one COPY statement, whose start costs as much as a
 * few hundred rows (it makes a slot for each of up to 1,000 buffered rows)
 */
#define RUN_RECORDS			16384
#define RUN_BYTES			(4 * 1024 * 1024)
/*
 * On a Citus table a run is one distributed INSERT ... SELECT
 * (copy_citus.c), whose fixed cost (a COPY to each shard, 0.1-0.3 s for
 * 32 shards here) is far above a local COPY's start: a run is a whole
 * default chunk, up to CHUNK_MAX_BYTES.
 */
#define RUN_RECORDS_CITUS	100000
/*
 * records per chunk unless the job says: 10,000 -- on a Citus table
 * 100,000, because each chunk's commit is a two-phase commit on every
 * connection to the workers, and 100,000 rows of a few hundred bytes are
 * still far under CHUNK_MAX_BYTES.  A bigger chunk means a coarser
 * checkpoint: a job stopped midway resumes at most 100,000 records back.
 * Measured with test/bench/citus.sh (100,000 rows, 32 shards), against
 * Citus's COPY FROM: 1.58-1.97 x with 10,000-row chunks of 16,384-record
 * runs, 1.54 x with 100,000-row chunks of such runs, 1.18-1.27 x with one
 * run per 100,000-row chunk; see README.md "Citus".
 */
#define CHUNK_SIZE_DEFAULT		10000
#define CHUNK_SIZE_CITUS		100000
/* commit a chunk early rather than overflow the subxid cache (64) */
#define CHUNK_MAX_SUBXACTS	48

/* ---------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------
 */
static const char *valid_import_options =
"format, header, delimiter, quote, escape, null, encoding, columns, atomic, chunk_size, max_errors, max_record_bytes";

/* ---------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------
 */
/* A one-byte character option (delimiter, quote, escape). */
static char
option_char(const char *name, JsonbValue *val)
{
	if (val->type != jbvString || val->val.string.len != 1 ||
		IS_HIGHBIT_SET(val->val.string.val[0]) ||
		val->val.string.val[0] == '\n' || val->val.string.val[0] == '\r')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a single one-byte character", name),
				 errdetail("It is a JSON string of one ASCII character other than a line feed or carriage return.")));
	return val->val.string.val[0];
}

/* The one message of a bad "columns" option, with why. */
static void
columns_invalid(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"columns\" must be an array of column names or an object mapping CSV header names to column names"),
			 errdetail("%s", why)));
}

/*
 * The "columns" option: an array whose elements are column names (or null
 * to skip the field), or an object whose values are.  At least one column,
 * none twice.  Whether the columns exist is checked when the job runs.
 */
static Jsonb *
option_columns(JsonbValue *val)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *seen = NIL;
	bool		is_array;

	if (val->type != jbvBinary)
		columns_invalid("The value given is not an array or an object.");
	jb = JsonbValueToJsonb(val);
	is_array = JB_ROOT_IS_ARRAY(jb);
	if (is_array && JB_ROOT_COUNT(jb) == 0)
		columns_invalid("The array is empty.");
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *col;
		ListCell   *lc;

		if (tok != WJB_ELEM && tok != WJB_VALUE)
			continue;
		if (v.type == jbvNull)
			continue;
		if (v.type != jbvString)
			columns_invalid("Column names are JSON strings (or null to skip a field).");
		col = pnstrdup(v.val.string.val, v.val.string.len);
		if (col[0] == '\0')
			columns_invalid("A column name is empty.");
		foreach(lc, seen)
			if (strcmp(lfirst(lc), col) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"columns\" names column \"%s\" more than once", col)));
		seen = lappend(seen, col);
	}
	if (is_array && seen == NIL)
		columns_invalid("Every field is skipped: the array names no column.");
	return jb;
}

/* The file's encoding: a name COPY knows, convertible to the database's. */
static int
option_encoding(JsonbValue *val)
{
	char	   *name;
	int			enc;
	int			db = GetDatabaseEncoding();

	if (val->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"encoding\" must be the name of an encoding")));
	name = pnstrdup(val->val.string.val, val->val.string.len);
	enc = pg_char_to_encoding(name);
	if (enc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"encoding\": \"%s\" is not a valid encoding name", name)));
	/* the catalog is read only in a transaction (not by a worker's parse) */
	if (enc != db && enc != PG_SQL_ASCII && db != PG_SQL_ASCII &&
		IsTransactionState() && !OidIsValid(FindDefaultConversionProc(enc, db)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"encoding\": no conversion from \"%s\" to the database encoding \"%s\"",
						pg_encoding_to_char(enc), pg_encoding_to_char(db))));
	return enc;
}

/*
 * One option of submit_import (job_options_foreach's callback).  An option
 * another part of batch_ops adds (a URL source's, say) is one more
 * "else if" branch before the last one.
 */
static void
import_option(const char *name, JsonbValue *val, void *arg)
{
	ImportOptions *o = arg;

	if (source_option(name, val, NULL))
		return;					/* checked; source.c reads it */
	if (strcmp(name, "format") == 0)
	{
		if (val->type != jbvString || val->val.string.len != 3 ||
			pg_strncasecmp(val->val.string.val, "csv", 3) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"format\" must be \"csv\""),
					 errhint("The only format is \"csv\".")));
	}
	else if (strcmp(name, "header") == 0)
		o->header = job_option_bool(name, val);
	else if (strcmp(name, "delimiter") == 0)
		o->delimiter = option_char(name, val);
	else if (strcmp(name, "quote") == 0)
		o->quote = option_char(name, val);
	else if (strcmp(name, "escape") == 0)
		o->escape = option_char(name, val);
	else if (strcmp(name, "null") == 0)
	{
		if (val->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"null\" must be a string")));
		o->null_string = pnstrdup(val->val.string.val, val->val.string.len);
		/* COPY's rule; its checks would refuse it only in the worker */
		if (strchr(o->null_string, '\n') || strchr(o->null_string, '\r'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"null\" must not contain a line feed or carriage return")));
	}
	else if (strcmp(name, "encoding") == 0)
		o->encoding = option_encoding(val);
	else if (strcmp(name, "columns") == 0)
	{
		if (val->type != jbvNull)
			o->columns = option_columns(val);
	}
	else if (strcmp(name, "atomic") == 0)
		o->atomic = job_option_bool(name, val);
	else if (strcmp(name, "chunk_size") == 0)
	{
		o->chunk_size = (int) job_option_int(name, val, 1, 1000000);
		o->chunk_size_given = true;
	}
	else if (strcmp(name, "max_errors") == 0)
		o->max_errors = val->type == jbvNull ? -1 :
			job_option_int(name, val, 0, PG_INT64_MAX);
	else if (strcmp(name, "max_record_bytes") == 0)
		o->max_record_bytes = (int) job_option_int(name, val, RECORD_BYTES_MIN,
												   RECORD_BYTES_MAX);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\"", name),
				 errhint("Valid options for submit_import are: %s, %s.", valid_import_options,
						 SOURCE_OPTION_NAMES)));
}

/* The import's options with their defaults, checked; ERROR if one is bad. */
static void
import_options_parse(Jsonb *options, ImportOptions *o)
{
	memset(o, 0, sizeof(ImportOptions));
	o->header = true;
	o->delimiter = ',';
	o->quote = '"';
	o->null_string = "";
	o->encoding = -1;
	o->chunk_size = CHUNK_SIZE_DEFAULT;
	o->max_errors = -1;
	o->max_record_bytes = RECORD_BYTES_DEFAULT;

	job_options_foreach(options, import_option, o);

	if (o->escape == '\0')
		o->escape = o->quote;
	if (o->delimiter == o->quote)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the delimiter and the quote must differ")));
	if (strchr(o->null_string, o->delimiter) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the null string must not contain the delimiter")));
	if (o->columns && !o->header && !JB_ROOT_IS_ARRAY(o->columns))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("without a header, \"columns\" must be an array of column names")));
}

/* ---------------------------------------------------------------------
 * Columns
 * ---------------------------------------------------------------------
 */

/* Every column COPY would fill by default: not dropped, not generated. */
static List *
table_columns(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *cols = NIL;
	int			a;

	for (a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped || att->attgenerated)
			continue;
		cols = lappend(cols, pstrdup(NameStr(att->attname)));
	}
	return cols;
}

/* A column name of the "columns" option; NULL skips the field. */
static char *
json_text(JsonbValue *v)
{
	if (v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"columns\" must give column names as strings")));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * The table column of each field of the file (NULL: not imported), from
 * the header and the "columns" option, as a JSON array for the job row.
 */
static char *
resolve_columns(Job *job, ImportOptions *o, CsvReader *r, bool have_header)
{
	Relation	rel = relation_open(job->relid, AccessShareLock);
	List	   *cols = NIL;
	StringInfoData out;
	ListCell   *lc;
	int			i;

	if (o->columns && JB_ROOT_IS_ARRAY(o->columns))
	{
		JsonbIterator *it = JsonbIteratorInit(&o->columns->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
				cols = lappend(cols, json_text(&v));
	}
	else if (have_header)
	{
		for (i = 0; i < r->nfields; i++)
		{
			char	   *name = r->text.data + r->field_start[i];
			char	   *col = name;

			if (o->columns)
			{
				JsonbValue	v;

				if (getKeyJsonValueFromContainer(&o->columns->root, name,
												 strlen(name), &v))
					col = json_text(&v);
			}
			cols = lappend(cols, col ? pstrdup(col) : NULL);
		}
	}
	else
		cols = table_columns(rel);

	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	i = 0;
	foreach(lc, cols)
	{
		char	   *col = lfirst(lc);
		ListCell   *lc2;

		if (col != NULL)
		{
			if (get_attnum(job->relid, col) == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation \"%s\" does not exist",
								col, RelationGetRelationName(rel)),
						 errhint("Map CSV header names to columns, or to null to skip them, with the \"columns\" option.")));
			foreach(lc2, cols)
			{
				if (lc2 == lc)
					break;
				if (lfirst(lc2) && strcmp(lfirst(lc2), col) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_COLUMN),
							 errmsg("column \"%s\" is imported more than once", col)));
			}
		}
		if (i++ > 0)
			appendStringInfoString(&out, ", ");
		if (col)
			escape_json(&out, col);
		else
			appendStringInfoString(&out, "null");
	}
	appendStringInfoChar(&out, ']');
	relation_close(rel, AccessShareLock);
	return out.data;
}

/* The column map kept in the checkpoint, as an array of names. */
static char **
columns_from_json(const char *json, int *ncols)
{
	Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	  **cols = palloc(sizeof(char *) * Max(JB_ROOT_COUNT(jb), 1));
	int			n = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			cols[n++] = v.type == jbvString ?
				pnstrdup(v.val.string.val, v.val.string.len) : NULL;
	*ncols = n;
	return cols;
}

/* ---------------------------------------------------------------------
 * The import
 * ---------------------------------------------------------------------
 */
typedef struct Chunk
{
	JsonbParseState *state;
	int			nrows;
	int			maxrows;
	int64	   *lines;
	char	  **raws;
	int		   *rawlens;
	int64		bytes;
	StringInfo	release;		/* give back once the items are built */
} Chunk;

/*
 * Add the parsed record to the chunk.  Its field values are copied, since
 * the reader's buffer is reused, unless in_place: then the chunk must be
 * written before the next record is read.
 */
static void
chunk_add_row(Chunk *chunk, CsvReader *r, char **cols, int ncols, bool in_place)
{
	JsonbValue	k;
	JsonbValue	v;
	char	   *copy;
	int			i;
	/* the record as the database has it, on a character boundary */
	int			rawlen = pg_mbcliplen(r->rec_data, r->rec_len, Min(r->rec_len, RAW_KEEP));

	if (chunk->nrows == chunk->maxrows)
	{
		chunk->maxrows *= 2;
		chunk->lines = repalloc(chunk->lines, sizeof(int64) * chunk->maxrows);
		chunk->raws = repalloc(chunk->raws, sizeof(char *) * chunk->maxrows);
		chunk->rawlens = repalloc(chunk->rawlens, sizeof(int) * chunk->maxrows);
	}
	chunk->lines[chunk->nrows] = r->line;
	chunk->raws[chunk->nrows] = pnstrdup(r->rec_data, rawlen);
	chunk->rawlens[chunk->nrows] = rawlen;
	chunk->nrows++;

	if (in_place)
		copy = r->text.data;
	else
	{
		copy = palloc(r->text.len + 1);
		memcpy(copy, r->text.data, r->text.len);
	}
	pushJsonbValue(&chunk->state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < ncols; i++)
	{
		if (cols[i] == NULL)
			continue;
		k.type = jbvString;
		k.val.string.val = cols[i];
		k.val.string.len = strlen(cols[i]);
		pushJsonbValue(&chunk->state, WJB_KEY, &k);
		if (r->field_null[i])
			v.type = jbvNull;
		else
		{
			v.type = jbvString;
			v.val.string.val = copy + r->field_start[i];
			v.val.string.len = strlen(v.val.string.val);
		}
		pushJsonbValue(&chunk->state, WJB_VALUE, &v);
	}
	pushJsonbValue(&chunk->state, WJB_END_OBJECT, NULL);
}

/* An empty chunk, its arrays sized for a usual one. */
static void
chunk_start(Chunk *chunk)
{
	memset(chunk, 0, sizeof(Chunk));
	chunk->maxrows = 1024;
	chunk->lines = palloc(sizeof(int64) * chunk->maxrows);
	chunk->raws = palloc(sizeof(char *) * chunk->maxrows);
	chunk->rawlens = palloc(sizeof(int) * chunk->maxrows);
	pushJsonbValue(&chunk->state, WJB_BEGIN_ARRAY, NULL);
}

/*
 * Does the job's role still have the right to write the rows?  COPY
 * checks its privileges once, when its statement starts; a job is a long
 * series of statements, so the check is made before every one that
 * writes (a COPY run or an engine chunk), as COPY's own check would be
 * made: INSERT on the table or on every column imported.  Invalidation
 * messages are read first, so that a REVOKE committed while the job's
 * transaction runs (an atomic job, a long chunk) is seen.  A privilege
 * gone fails the job (42501): every later row would fail the same way,
 * and nothing more must be written.
 */
static void
import_check_insert(Job *job, char **cols, int ncols)
{
	char	   *relname;
	char	   *rolename;
	int			i;

	AcceptInvalidationMessages();
	if (pg_class_aclcheck(job->relid, job->role, ACL_INSERT) == ACLCHECK_OK)
		return;
	relname = get_rel_name(job->relid);
	rolename = GetUserNameFromId(job->role, true);
	for (i = 0; i < ncols; i++)
	{
		AttrNumber	attnum;

		if (cols[i] == NULL)
			continue;
		attnum = get_attnum(job->relid, cols[i]);
		if (attnum != InvalidAttrNumber &&
			pg_attribute_aclcheck(job->relid, attnum, job->role, ACL_INSERT) == ACLCHECK_OK)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s: role \"%s\" no longer has INSERT privilege on column \"%s\"",
						relname ? relname : "?", rolename ? rolename : "?", cols[i]),
				 errdetail("The privilege was revoked while the job ran; the job writes no more rows.")));
	}
	if (ncols == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s: role \"%s\" no longer has INSERT privilege",
						relname ? relname : "?", rolename ? rolename : "?")));
}

typedef struct ImportState
{
	Job		   *job;
	ImportOptions opts;
	CsvReader	r;
	MemoryContext job_cxt;
	MemoryContext chunk_cxt;
	char	  **cols;
	int			ncols;
	bool		copy_checked;	/* copy was decided */
	int			run_records;	/* records and bytes per run: RUN_* */
	int			run_bytes;
	CopyPath   *copy;			/* the COPY fast path, or NULL */
	RecordRun	run;			/* records waiting for it */
} ImportState;

static void fields_in_file_order(ImportState *st, BatchResult *result);

/* Write the chunk's good rows as the job's role; add their errors to res. */
static void
chunk_write(ImportState *st, Chunk *chunk, ChunkResult *res)
{
	Job		   *job = st->job;
	Jsonb	   *items;
	BatchResult *result;
	RoleSwitch	rs;
	JsonbValue *array;

	array = pushJsonbValue(&chunk->state, WJB_END_ARRAY, NULL);
	chunk->state = NULL;
	if (chunk->nrows == 0)
		return;
	items = JsonbValueToJsonb(array);
	if (chunk->release)
		csv_buffer_resize(chunk->release, 0);

	import_check_insert(job, st->cols, st->ncols);
	job_as_role_begin(job->ctx, &rs);
	result = batch_execute_fields(BATCH_CREATE, job->relid, items, false, false);
	job_as_role_end(&rs);
	fields_in_file_order(st, result);

	(void) job_report_batch_result(job->ctx, result, chunk->lines, chunk->raws,
								   chunk->rawlens, 0);
}

/* A malformed record: its raw text from the file's encoding, \xNN for bad bytes. */
static void
row_error(ChunkResult *res, CsvReader *r, int sqlstate, const char *message)
{
	int			len = record_len(r);
	char	   *raw;

	/* a record cut at max_record_bytes: not inside a character */
	if (r->too_long)
		len = pg_encoding_mbcliplen(r->file_encoding, record_data(r), len, len);
	raw = job_raw_text(record_data(r), len, r->file_encoding, RAW_KEEP);
	chunk_add_error(res, r->line, -1, ITEM_VALIDATION_ERROR, message,
					unpack_sql_state(sqlstate), NULL, raw, -1);
}

/*
 * COPY reads a record's fields into their columns from left to right,
 * before any constraint or trigger sees the row, and stops at the first
 * value a column's input function (or domain) rejects.  The error of the
 * first of the fields texts[0 .. n) (NULL: SQL NULL) that its column
 * rejects, or NULL.  Read as the job's role, in a subtransaction that
 * writes nothing.
 */
static ItemError *
first_field_error(ImportState *st, const char **texts, int n)
{
	ItemError  *volatile err = NULL;
	RoleSwitch	rs;
	Subxact		sx;

	job_as_role_begin(st->job->ctx, &rs);
	subxact_begin(&sx);
	PG_TRY();
	{
		int			i;

		for (i = 0; i < n && i < st->ncols; i++)
		{
			ColumnInput input;
			Oid			typid;
			int32		typmod;
			Oid			collid;
			Datum		d;
			bool		isnull;

			if (st->cols[i] == NULL)
				continue;
			get_atttypetypmodcoll(st->job->relid,
								  get_attnum(st->job->relid, st->cols[i]),
								  &typid, &typmod, &collid);
			column_input_init(&input, typid, typmod, CurrentMemoryContext);
			column_input_field(&input, texts[i], &d, &isnull);
		}
		subxact_rollback(&sx);
	}
	PG_CATCH();
	{
		err = subxact_abort_value(&sx);
	}
	PG_END_TRY();
	job_as_role_end(&rs);
	return err;
}

/*
 * A record with too few fields: its error is that of a field its column
 * rejects, if any, before "missing data" (first_field_error).  Returns
 * that error's message (and *sqlstate), or NULL.
 */
static const char *
short_record_error(ImportState *st, CsvReader *r, int *sqlstate)
{
	const char **texts = palloc(sizeof(char *) * Max(r->nfields, 1));
	ItemError  *err;
	int			i;

	for (i = 0; i < r->nfields; i++)
		texts[i] = r->field_null[i] ? NULL : r->text.data + r->field_start[i];
	err = first_field_error(st, texts, r->nfields);
	pfree(texts);
	if (err == NULL)
		return NULL;
	*sqlstate = err->sqlerrcode;
	return err->message;
}

/*
 * The engine reads an item's fields in the order of its JSON object's keys
 * (jsonb's: shortest first), not the file's.  A row it failed with a
 * validation_error may hold several bad values: its error is made the
 * first one in the file's order, as COPY's (first_field_error), when a
 * field is bad at all.  Only failed rows pay for this.
 */
static void
fields_in_file_order(ImportState *st, BatchResult *result)
{
	const char **texts = palloc(sizeof(char *) * Max(st->ncols, 1));
	int			e;

	for (e = 0; e < result->nerrors; e++)
	{
		BatchError *be = &result->errors[e];
		ItemError  *err;
		int			i;

		if (strcmp(be->error->name, ITEM_VALIDATION_ERROR) != 0 ||
			be->item == NULL || be->item->type != jbvBinary)
			continue;
		for (i = 0; i < st->ncols; i++)
		{
			JsonbValue	v;

			texts[i] = NULL;
			if (st->cols[i] &&
				getKeyJsonValueFromContainer(be->item->val.binary.data, st->cols[i],
											 strlen(st->cols[i]), &v) &&
				v.type == jbvString)
				texts[i] = pnstrdup(v.val.string.val, v.val.string.len);
		}
		err = first_field_error(st, texts, st->ncols);
		if (err)
			be->error = err;
	}
	pfree(texts);
}

/* Take the current record the batch engine's way: parse it, or fail it. */
static void
take_record(ImportState *st, Chunk *chunk, ChunkResult *res)
{
	CsvReader  *r = &st->r;
	int			sqlstate;
	const char *msg = csv_parse_record(r, &sqlstate);

	if (msg == NULL && r->nfields < st->ncols)
		msg = short_record_error(st, r, &sqlstate);
	if (msg == NULL && r->nfields != st->ncols)
	{
		sqlstate = ERRCODE_BAD_COPY_FILE_FORMAT;
		msg = r->nfields > st->ncols ? "extra data after last expected column" :
			psprintf("missing data for column \"%s\"",
					 st->cols[r->nfields] ? st->cols[r->nfields] : "?");
	}
	if (msg)
		row_error(res, r, sqlstate, msg);
	else if (record_len(r) < BIG_RECORD_BYTES)
		chunk_add_row(chunk, r, st->cols, st->ncols, false);
	else
	{
		/*
		 * A big record goes to the engine on its own, its values not
		 * copied; the reader's buffers are given back before the engine
		 * makes its own copies, so that few copies live at once.
		 */
		chunk_write(st, chunk, res);
		chunk_start(chunk);
		chunk_add_row(chunk, r, st->cols, st->ncols, true);
		if (r->rec_data != record_data(r))
			pfree(r->rec_data);		/* converted from the file's encoding */
		if (r->dest == &r->raw)
			csv_buffer_resize(&r->raw, 0);
		chunk->release = &r->text;
		chunk_write(st, chunk, res);
		chunk_start(chunk);
	}
}

/* Make record i of a run the reader's current record, in r->raw. */
static void
reader_take_run_record(CsvReader *r, RecordRun *run, int i)
{
	resetStringInfo(&r->raw);
	appendBinaryStringInfo(&r->raw, run->data.data + run->start[i],
						   run->start[i + 1] - run->start[i] - 1);
	r->dest = &r->raw;
	r->dest_start = 0;
	r->rec_bytes = r->raw.len;
	r->too_long = false;
	r->unterminated = false;
	r->rec_eol_len = 0;			/* its line end is not kept */
	r->line = run->line[i];
}

/* copy_path.c's fallback: records of a run through the batch engine. */
static void
engine_fallback(void *arg, RecordRun *run, int first, int last, ChunkResult *res)
{
	ImportState *st = arg;
	CsvReader  *r = &st->r;
	CsvReader	saved = *r;		/* the reader's own current record */
	Chunk		chunk;
	int			i;

	initStringInfo(&r->raw);
	chunk_start(&chunk);
	for (i = first; i < last; i++)
	{
		reader_take_run_record(r, run, i);
		take_record(st, &chunk, res);
	}
	pfree(r->raw.data);
	r->raw = saved.raw;
	r->dest = saved.dest;
	r->dest_start = saved.dest_start;
	r->rec_bytes = saved.rec_bytes;
	r->too_long = saved.too_long;
	r->unterminated = saved.unterminated;
	memcpy(r->rec_eol, saved.rec_eol, sizeof(r->rec_eol));
	r->rec_eol_len = saved.rec_eol_len;
	r->line = saved.line;
	chunk_write(st, &chunk, res);
}

/*
 * Write the records collected for COPY, as the job's role.  Checked
 * first, as for every statement: the role's privileges (the job fails
 * without them), and whether COPY may still write the rows as the
 * engine would -- row-level security may apply now (ENABLE or FORCE ROW
 * LEVEL SECURITY, a role that lost BYPASSRLS), a column may have become
 * generated.  If not, this run and every later record go to the engine,
 * which applies the policies row by row as they are when it runs.
 */
static void
apply_run(ImportState *st, ChunkResult *res)
{
	RoleSwitch	rs;

	if (st->run.nrec == 0)
		return;
	import_check_insert(st->job, st->cols, st->ncols);
	if (!copy_path_usable(st->copy))
	{
		engine_fallback(st, &st->run, 0, st->run.nrec, res);
		record_run_reset(&st->run);
		st->copy = NULL;
		return;
	}
	job_as_role_begin(st->job->ctx, &rs);
	copy_path_apply(st->copy, &st->run, res);
	job_as_role_end(&rs);
	record_run_reset(&st->run);
}

/* COPY would end the data at a line "\." */
static bool
copy_end_marker(CsvReader *r)
{
	return record_len(r) == 2 && record_data(r)[0] == '\\' && record_data(r)[1] == '.';
}

/* Decide once per run of the job whether COPY can write the rows. */
static void
choose_path(ImportState *st)
{
	MemoryContext old = MemoryContextSwitchTo(st->job_cxt);

	st->copy = copy_path_begin(st->job, &st->opts, st->cols, st->ncols,
							   st->run_records, engine_fallback, st);
	if (st->copy)
		record_run_init(&st->run);
	st->copy_checked = true;
	MemoryContextSwitchTo(old);
}

/*
 * Read the next record for the COPY path: straight into the run, where
 * it stays if COPY can take it (true); else it is moved to r->raw.
 */
static bool
next_record_for_copy(ImportState *st, bool *eof)
{
	CsvReader  *r = &st->r;

	*eof = !csv_next_record_into(r, &st->run.data);
	if (*eof)
		return false;
	if (!r->unterminated && !r->too_long && !copy_end_marker(r))
	{
		record_run_close(&st->run, r->line, r->rec_nl);
		return true;
	}
	resetStringInfo(&r->raw);
	appendBinaryStringInfo(&r->raw, record_data(r), record_len(r));
	st->run.data.len = r->dest_start;
	st->run.data.data[st->run.data.len] = '\0';
	r->dest = &r->raw;
	r->dest_start = 0;
	return false;
}

/* The checkpoint: where the next record starts, and the column map. */
static Jsonb *
import_checkpoint(Job *job, CsvReader *r)
{
	char	   *text = psprintf("{\"offset\": " INT64_FORMAT ", \"line\": " INT64_FORMAT
								", \"columns\": %s}",
								r->offset, r->line, job->columns ? job->columns : "null");

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* Progress: the share of the file's bytes read, below 100 until done. */
static int
import_progress(Job *job, CsvReader *r)
{
	if (job->bytes_total <= 0)
		return -1;
	return (int) Min(99, (100 * r->offset) / job->bytes_total);
}

/* Commit what the reader has consumed, its rows and errors (partial or atomic). */
static void
import_commit(Job *job, CsvReader *r, int64 nread, const char *final,
			  const char *final_error)
{
	JobCounts	delta;

	memset(&delta, 0, sizeof(delta));
	delta.created = job_chunk_result(job->ctx)->applied;
	delta.rows_done = nread;
	job_commit_chunk(job->ctx, import_checkpoint(job, r), import_progress(job, r),
					 &delta, final, final_error);
}

/* Read the header (if any) and fix the column of each field. */
static void
import_resolve_columns(Job *job, ImportState *st)
{
	ImportOptions *o = &st->opts;
	CsvReader  *r = &st->r;
	bool		have_header = false;

	if (o->header)
	{
		int			sqlstate;
		const char *msg;

		/*
		 * An empty file has no header line and no rows: COPY loads it as
		 * zero rows, and so does the job (the columns are then those of a
		 * file without a header).
		 */
		if (csv_next_record(r))
		{
			msg = csv_parse_record(r, &sqlstate);
			if (msg)
				ereport(ERROR,
						(errcode(sqlstate),
						 errmsg("bad header line: %s", msg)));
			have_header = true;
		}
	}
	MemoryContextSwitchTo(st->job_cxt);
	job->columns = resolve_columns(job, o, r, have_header);
	st->cols = columns_from_json(job->columns, &st->ncols);
	MemoryContextSwitchTo(st->chunk_cxt);
}

/* The chunk loop: read, write, commit, until the end of the file. */
static void
import_chunks(Job *job, ImportState *st)
{
	ImportOptions *o = &st->opts;
	CsvReader  *r = &st->r;
	bool		atomic = o->atomic;
	Subxact		all;
	ChunkResult *res = job_chunk_result(job->ctx);
	int64		errors_before = atomic ? 0 : job->errors_total;
	int64		nread_total = 0;
	const char *final = NULL;
	char	   *final_error = NULL;

	if (atomic)
	{
		job_begin_chunk(job->ctx);
		subxact_begin(&all);
	}
	while (final == NULL)
	{
		Chunk		chunk;
		int			nread = 0;
		bool		eof = false;
		int64		subxacts_before;
		int64		allowed;	/* records the rate limit lets it read */
		int64		size;

		job_check_cancel(job);
		/* the role's rate limit: the chunk's tokens, before its transaction */
		allowed = ratelimit_reserve(job->role, o->chunk_size);
		MemoryContextReset(st->chunk_cxt);
		if (!atomic)
		{
			nread_total = 0;
			job_begin_chunk(job->ctx);
		}
		MemoryContextSwitchTo(st->chunk_cxt);

		if (st->cols == NULL)
			import_resolve_columns(job, st);

		if (!st->copy_checked)
			choose_path(st);
		subxacts_before = copy_path_subxacts(st->copy);

		chunk_start(&chunk);
		while (nread < allowed && chunk.bytes < CHUNK_MAX_BYTES &&
			   copy_path_subxacts(st->copy) - subxacts_before < CHUNK_MAX_SUBXACTS)
		{
			CHECK_FOR_INTERRUPTS();
			if (st->copy)
			{
				if (next_record_for_copy(st, &eof))
				{
					nread++;
					chunk.bytes += r->rec_bytes;
					if (st->run.nrec >= st->run_records || st->run.data.len >= st->run_bytes)
						apply_run(st, res);
					continue;
				}
			}
			else if (!csv_next_record(r))
				eof = true;
			if (eof)
				break;
			nread++;
			chunk.bytes += r->rec_bytes;
			/* keep file order: what COPY has waiting goes first */
			if (st->copy)
				apply_run(st, res);
			take_record(st, &chunk, res);
			if (st->copy)
			{
				chunk_write(st, &chunk, res);
				chunk_start(&chunk);
			}
		}

		if (st->copy)
			apply_run(st, res);
		chunk_write(st, &chunk, res);
		nread_total += nread;
		ratelimit_release(job->role, allowed - nread);
		size = source_size(r->src);
		if (size >= 0)
		{
			job->bytes_total = size;
			job_summary_set(job->ctx, "bytes_total", size);
		}

		if (o->max_errors >= 0 && errors_before + res->nerrors > o->max_errors)
		{
			final = "failed";
			final_error = psprintf("too many bad rows: more than " INT64_FORMAT " (max_errors)",
								   o->max_errors);
		}
		else if (eof)
			final = "completed";

		if (!atomic)
		{
			errors_before += res->nerrors;
			import_commit(job, r, nread_total, final, final_error);
		}
	}

	if (atomic)
	{
		int			nfailed = job_atomic_end(job->ctx, &all);

		if (nfailed > 0)
		{
			final = "failed";
			if (final_error == NULL)
				final_error = psprintf(ngettext("%d row failed; nothing was imported (atomic)",
												"%d rows failed; nothing was imported (atomic)",
												nfailed),
									   nfailed);
		}
		import_commit(job, r, nread_total, final, final_error);
	}
}

/* The import job from the runtime's job and the kind's checkpoint. */
static Job *
import_job(JobContext *ctx)
{
	const JobInfo *info = job_info(ctx);
	Job		   *job = palloc0(sizeof(Job));
	JsonbValue	v;

	job->ctx = ctx;
	job->id = info->id;
	job->role = info->role;
	job->relid = info->target;
	job->source = pstrdup(info->source);
	job->options = info->options;
	job->atomic = info->atomic;
	job->errors_total = info->errors_total;
	job->bytes_total = job_jsonb_int(info->summary, "bytes_total", -1);
	job->ckpt_offset = job_jsonb_int(info->checkpoint, "offset", 0);
	job->ckpt_line = job_jsonb_int(info->checkpoint, "line", 0);
	if (JB_ROOT_IS_OBJECT(info->checkpoint) &&
		getKeyJsonValueFromContainer(&info->checkpoint->root, "columns", 7, &v) &&
		v.type == jbvBinary)
		job->columns = JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
	return job;
}

/*
 * Is the job's table Citus-managed?  run() is called outside a
 * transaction; the catalog is read in one of its own.
 */
static bool
import_target_citus(Job *job)
{
	MemoryContext old = CurrentMemoryContext;
	bool		citus;

	StartTransactionCommand();
	citus = citus_table_managed(job->relid);
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);
	return citus;
}

/* The kind's run(): from the checkpoint (or the start) to the end of the file. */
static void
import_run(JobContext *ctx)
{
	Job		   *job = import_job(ctx);
	ImportState *st = palloc0(sizeof(ImportState));
	CsvReader  *r = &st->r;
	Source	   *src;

	st->job = job;
	st->job_cxt = CurrentMemoryContext;
	import_options_parse(job->options, &st->opts);
	st->run_records = RUN_RECORDS;
	st->run_bytes = RUN_BYTES;
	if (import_target_citus(job))
	{
		if (!st->opts.chunk_size_given)
			st->opts.chunk_size = CHUNK_SIZE_CITUS;
		st->run_records = RUN_RECORDS_CITUS;
		st->run_bytes = CHUNK_MAX_BYTES;
	}
	job_check_source_access(job->source, job->role);

	/* atomic jobs start over; partial ones resume at the checkpoint */
	if (st->opts.atomic)
	{
		job->ckpt_offset = 0;
		job->ckpt_line = 0;
		job->columns = NULL;
	}
	if (job->columns)
		st->cols = columns_from_json(job->columns, &st->ncols);
	st->chunk_cxt = AllocSetContextCreate(st->job_cxt, "batch_ops import chunk",
										  ALLOCSET_DEFAULT_SIZES);
	src = source_open(job->source, job->ckpt_offset, job);
	csv_reader_init(r, src, &st->opts, job->ckpt_offset, job->ckpt_line);

	PG_TRY();
	{
		if (r->offset == 0 && r->file_encoding == PG_UTF8)
			csv_skip_bom(r);
		import_chunks(job, st);
	}
	PG_FINALLY();
	{
		source_close(src);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(st->job_cxt);
}

/* submit_import's checks, in the caller's identity. */
static void
import_check_submit(JobSubmit *s)
{
	ImportOptions opts;

	import_options_parse(s->options, &opts);
	job_check_target_privilege(s->target, ACL_INSERT, "INSERT");
	source_check_access(s->source, GetUserId());
	s->operation = "create";
	s->atomic = opts.atomic;
}

const JobKind import_job_kind = {
	.name = "import",
	.has_target = true,
	.check_submit = import_check_submit,
	.run = import_run,
	.init = source_init,
	.can_resume = true,
};
