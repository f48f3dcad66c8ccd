/*-------------------------------------------------------------------------
 *
 * csv_import.c
 *	  CSV import jobs: a streaming CSV parser feeding the batch engine.
 *
 * The file is read in fixed-size buffers (source.c) and cut into records
 * the way COPY ... (FORMAT csv) does: a record ends at an unquoted line
 * end (\n, \r\n or \r), fields are split at the delimiter, quotes and the
 * escape character work as in COPY, and an unquoted field equal to the
 * null string is NULL.  Line numbers count lines as COPY does: a header
 * is line 1, a line end inside a quoted field counts too, and a record is
 * known by its last line (the line COPY names in its errors).
 *
 * A record that is malformed -- an unterminated quoted field, too many or
 * too few fields, bytes that are not valid in the file's encoding -- is
 * a row error with the COPY message and SQLSTATE, and the import goes on
 * with the next record.  Good records are grouped into chunks
 * (chunk_size records, or 32 MB) and each chunk becomes a JSON array of
 * objects, column name -> field (a JSON string, or null), passed to
 * batch_run(BATCH_CREATE, ...) in partial mode as the job's role; the
 * engine converts every field with its column's input function, checks
 * the constraints it can check in advance, writes set-based and reports
 * every failing item by index, which maps back to the record's line and
 * raw text.
 *
 * Partial mode (the default): each chunk's rows, its errors and the job's
 * checkpoint (byte offset and line number of the next unread record)
 * commit together, so after a crash the job resumes at the checkpoint and
 * no row is lost or imported twice.  Atomic mode runs the whole import in
 * one transaction (its data in one subtransaction, rolled back if any row
 * failed; the errors are kept in memory meanwhile); after a crash it
 * starts over.
 *
 * Memory: one buffer of the source, the current record, and the current
 * chunk (a context reset after each chunk), whatever the file's size.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "item_error.h"
#include "jobs.h"

#define READ_BUFFER_SIZE	(64 * 1024)
#define CHUNK_MAX_BYTES		(32 * 1024 * 1024)
#define RAW_KEEP			1024

/* records and bytes per run handed to COPY (copy_path.c) */
#define RUN_RECORDS			8192
#define RUN_BYTES			(4 * 1024 * 1024)
/* commit a chunk early rather than overflow the subxid cache (64) */
#define CHUNK_MAX_SUBXACTS	48

static const char *valid_import_options =
"format, header, delimiter, quote, escape, null, encoding, columns, atomic, chunk_size, max_errors";

/* ---------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------
 */
static char
option_char(const char *name, JsonbValue *val)
{
	if (val->type != jbvString || val->val.string.len != 1 ||
		IS_HIGHBIT_SET(val->val.string.val[0]) ||
		val->val.string.val[0] == '\n' || val->val.string.val[0] == '\r')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a single one-byte character", name)));
	return val->val.string.val[0];
}

/* One option of submit_import (job_options_foreach's callback). */
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
					 errmsg("unsupported import format"),
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
	}
	else if (strcmp(name, "encoding") == 0)
	{
		char	   *enc;

		if (val->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"encoding\" must be a string")));
		enc = pnstrdup(val->val.string.val, val->val.string.len);
		o->encoding = pg_char_to_encoding(enc);
		if (o->encoding < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" is not a valid encoding name", enc)));
	}
	else if (strcmp(name, "columns") == 0)
	{
		if (val->type == jbvNull)
			return;
		if (val->type != jbvBinary)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"columns\" must be an array of column names or an object mapping CSV header names to column names")));
		o->columns = JsonbValueToJsonb(val);
	}
	else if (strcmp(name, "atomic") == 0)
		o->atomic = job_option_bool(name, val);
	else if (strcmp(name, "chunk_size") == 0)
		o->chunk_size = (int) job_option_int(name, val, 1, 1000000);
	else if (strcmp(name, "max_errors") == 0)
		o->max_errors = val->type == jbvNull ? -1 :
			job_option_int(name, val, 0, PG_INT64_MAX);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\"", name),
				 errhint("Valid options for submit_import are: %s, %s.", valid_import_options,
						 SOURCE_OPTION_NAMES)));
}

void
import_options_parse(Jsonb *options, ImportOptions *o)
{
	memset(o, 0, sizeof(ImportOptions));
	o->header = true;
	o->delimiter = ',';
	o->quote = '"';
	o->null_string = "";
	o->encoding = -1;
	o->chunk_size = 10000;
	o->max_errors = -1;

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
 * Reading records
 * ---------------------------------------------------------------------
 */
typedef struct CsvReader
{
	Source	   *src;
	ImportOptions *opts;
	char	   *buf;
	int			len;
	int			pos;
	bool		eof;
	int64		offset;			/* file offset of buf[pos] */
	int64		line;			/* lines read, as COPY counts them */
	int			rec_nl;			/* line feeds inside quotes, current record */
	int			rec_cr;			/* lone carriage returns inside quotes */
	StringInfoData raw;			/* the current record, without its line end */
	bool		unterminated;
	/* fields of the current record */
	StringInfoData text;		/* field texts, each followed by \0 */
	int			nfields;
	int			maxfields;
	int		   *field_start;
	bool	   *field_null;
	int			file_encoding;
	int			db_encoding;
} CsvReader;

static bool
fill(CsvReader *r)
{
	if (r->eof)
		return false;
	r->len = source_read(r->src, r->buf, READ_BUFFER_SIZE);
	r->pos = 0;
	if (r->len == 0)
		r->eof = true;
	return r->len > 0;
}

/* Read the next record into r->raw; false at the end of the file. */
static bool
next_record(CsvReader *r)
{
	const char	quote = r->opts->quote;
	const char	escape = r->opts->escape;
	bool		in_quote = false;
	bool		esc_pending = false;
	bool		any = false;

	resetStringInfo(&r->raw);
	r->unterminated = false;
	r->rec_nl = r->rec_cr = 0;
	for (;;)
	{
		char	   *p;
		char	   *end;
		char	   *start;

		if (r->pos >= r->len && !fill(r))
			break;
		any = true;
		start = p = r->buf + r->pos;
		end = r->buf + r->len;
		while (p < end)
		{
			char		c = *p;

			if (esc_pending)
			{
				esc_pending = false;
				if (c == quote || c == escape)
				{
					p++;
					continue;
				}
			}
			if (in_quote)
			{
				if (c == escape && escape != quote)
					esc_pending = true;
				else if (c == quote)
					in_quote = false;
				else if (c == '\n')
					r->rec_nl++;
				else if (c == '\r' && p + 1 < end && p[1] != '\n')
					r->rec_cr++;
				p++;
				continue;
			}
			if (c == quote)
			{
				in_quote = true;
				p++;
				continue;
			}
			if (c == '\n' || c == '\r')
			{
				appendBinaryStringInfo(&r->raw, start, p - start);
				r->offset += p - start + 1;
				r->pos += p - start + 1;
				if (c == '\r')
				{
					if (r->pos >= r->len)
						(void) fill(r);
					if (r->pos < r->len && r->buf[r->pos] == '\n')
					{
						r->pos++;
						r->offset++;
					}
				}
				r->line += 1 + r->rec_nl + r->rec_cr;
				return true;
			}
			p++;
		}
		appendBinaryStringInfo(&r->raw, start, p - start);
		r->offset += p - start;
		r->pos += p - start;
	}
	if (!any || r->raw.len == 0)
		return false;
	r->unterminated = in_quote;
	r->line += 1 + r->rec_nl + r->rec_cr;
	return true;
}

static void
add_field(CsvReader *r, int start, bool isnull)
{
	if (r->nfields == r->maxfields)
	{
		r->maxfields *= 2;
		r->field_start = repalloc(r->field_start, sizeof(int) * r->maxfields);
		r->field_null = repalloc(r->field_null, sizeof(bool) * r->maxfields);
	}
	r->field_start[r->nfields] = start;
	r->field_null[r->nfields] = isnull;
	r->nfields++;
	appendStringInfoChar(&r->text, '\0');
}

/* Split r->raw (already in the database encoding) into fields. */
static void
split_fields(CsvReader *r, const char *data, int len)
{
	const char	quote = r->opts->quote;
	const char	escape = r->opts->escape;
	const char	delim = r->opts->delimiter;
	const char *null_string = r->opts->null_string;
	int			null_len = strlen(null_string);
	int			i = 0;

	resetStringInfo(&r->text);
	r->nfields = 0;
	for (;;)
	{
		int			start = r->text.len;
		int			raw_start = i;
		bool		saw_quote = false;
		bool		in_quote = false;

		while (i < len)
		{
			char		c = data[i];

			if (in_quote)
			{
				if (c == escape && i + 1 < len &&
					(data[i + 1] == quote || data[i + 1] == escape) &&
					!(escape == quote && data[i + 1] != quote))
				{
					appendStringInfoChar(&r->text, data[i + 1]);
					i += 2;
					continue;
				}
				if (c == quote)
				{
					in_quote = false;
					i++;
					continue;
				}
				appendStringInfoChar(&r->text, c);
				i++;
				continue;
			}
			if (c == delim)
				break;
			if (c == quote)
			{
				in_quote = saw_quote = true;
				i++;
				continue;
			}
			appendStringInfoChar(&r->text, c);
			i++;
		}
		add_field(r, start,
				  !saw_quote && i - raw_start == null_len &&
				  strncmp(data + raw_start, null_string, null_len) == 0);
		if (i >= len)
			break;
		i++;					/* the delimiter */
	}
}

/* The record in the database encoding, or NULL and the error. */
static char *
convert_record(char *data, int len, int encoding, ErrorData **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile converted = NULL;

	/* conversion functions only ereport; they hold no resources */
	PG_TRY();
	{
		converted = pg_any_to_server(data, len, encoding);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		*error = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	return converted;
}

/*
 * Check the record's encoding and split it.  Returns NULL, or the error
 * message (with *sqlstate) of a malformed record.
 */
static const char *
parse_record(CsvReader *r, int *sqlstate)
{
	char	   *data = r->raw.data;
	int			len = r->raw.len;

	if (r->unterminated)
	{
		*sqlstate = ERRCODE_BAD_COPY_FILE_FORMAT;
		return "unterminated CSV quoted field";
	}
	if (!pg_verify_mbstr(r->file_encoding, data, len, true))
	{
		*sqlstate = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
		return psprintf("invalid byte sequence for encoding \"%s\"",
						pg_encoding_to_char(r->file_encoding));
	}
	if (r->file_encoding != r->db_encoding)
	{
		ErrorData  *edata = NULL;

		data = convert_record(data, len, r->file_encoding, &edata);
		if (edata)
		{
			*sqlstate = edata->sqlerrcode;
			return edata->message;
		}
		len = strlen(data);
	}
	split_fields(r, data, len);
	return NULL;
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
} Chunk;

static void
chunk_add_row(Chunk *chunk, CsvReader *r, char **cols, int ncols)
{
	JsonbValue	k;
	JsonbValue	v;
	char	   *copy;
	int			i;
	int			rawlen = Min(r->raw.len, RAW_KEEP);

	if (chunk->nrows == chunk->maxrows)
	{
		chunk->maxrows *= 2;
		chunk->lines = repalloc(chunk->lines, sizeof(int64) * chunk->maxrows);
		chunk->raws = repalloc(chunk->raws, sizeof(char *) * chunk->maxrows);
		chunk->rawlens = repalloc(chunk->rawlens, sizeof(int) * chunk->maxrows);
	}
	chunk->lines[chunk->nrows] = r->line;
	chunk->raws[chunk->nrows] = pnstrdup(r->raw.data, rawlen);
	chunk->rawlens[chunk->nrows] = rawlen;
	chunk->nrows++;

	copy = palloc(r->text.len + 1);
	memcpy(copy, r->text.data, r->text.len);
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

/* Write the chunk's good rows as the job's role; add their errors to res. */
static void
chunk_write(Job *job, Chunk *chunk, ChunkResult *res)
{
	Jsonb	   *items;
	Jsonb	   *response;
	JobRoleSwitch rs;
	JsonbValue *array;

	array = pushJsonbValue(&chunk->state, WJB_END_ARRAY, NULL);
	chunk->state = NULL;
	if (chunk->nrows == 0)
		return;
	items = JsonbValueToJsonb(array);

	job_as_role_begin(job, &rs);
	response = batch_run(BATCH_CREATE, job->relid, items, false, false);
	job_as_role_end(&rs);

	res->applied += jsonb_get_applied(response);
	chunk_add_response_errors(res, response, chunk->lines, chunk->raws,
							  chunk->rawlens, 0);
}

static void
row_error(ChunkResult *res, CsvReader *r, int sqlstate, const char *message)
{
	chunk_add_error(res, r->line, -1, item_error_name(sqlstate), message,
					unpack_sql_state(sqlstate), NULL, r->raw.data, r->raw.len);
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
	CopyPath   *copy;			/* the COPY fast path, or NULL */
	RecordRun	run;			/* records waiting for it */
} ImportState;

/* Take the current record the batch engine's way: parse it, or fail it. */
static void
take_record(ImportState *st, Chunk *chunk, ChunkResult *res)
{
	CsvReader  *r = &st->r;
	int			sqlstate;
	const char *msg = parse_record(r, &sqlstate);

	if (msg == NULL && r->nfields != st->ncols)
	{
		sqlstate = ERRCODE_BAD_COPY_FILE_FORMAT;
		msg = r->nfields > st->ncols ? "extra data after last expected column" :
			psprintf("missing data for column \"%s\"",
					 st->cols[r->nfields] ? st->cols[r->nfields] : "?");
	}
	if (msg)
		row_error(res, r, sqlstate, msg);
	else
		chunk_add_row(chunk, r, st->cols, st->ncols);
}

/* copy_path.c's fallback: records of a run through the batch engine. */
static void
engine_fallback(void *arg, RecordRun *run, int first, int last, ChunkResult *res)
{
	ImportState *st = arg;
	CsvReader  *r = &st->r;
	int64		reader_line = r->line;
	Chunk		chunk;
	int			i;

	chunk_start(&chunk);
	for (i = first; i < last; i++)
	{
		resetStringInfo(&r->raw);
		appendBinaryStringInfo(&r->raw, run->data.data + run->start[i],
							   run->start[i + 1] - run->start[i] - 1);
		r->unterminated = false;
		r->line = run->line[i];
		take_record(st, &chunk, res);
	}
	r->line = reader_line;
	chunk_write(st->job, &chunk, res);
}

/* Write the records collected for COPY, as the job's role. */
static void
apply_run(ImportState *st, ChunkResult *res)
{
	JobRoleSwitch rs;

	if (st->run.nrec == 0)
		return;
	job_as_role_begin(st->job, &rs);
	copy_path_apply(st->copy, &st->run, res);
	job_as_role_end(&rs);
	record_run_reset(&st->run);
}

/* COPY would end the data at a line "\." */
static bool
copy_end_marker(CsvReader *r)
{
	return r->raw.len == 2 && r->raw.data[0] == '\\' && r->raw.data[1] == '.';
}

/* Decide once per run of the job whether COPY can write the rows. */
static void
choose_path(ImportState *st)
{
	MemoryContext old = MemoryContextSwitchTo(st->job_cxt);

	st->copy = copy_path_begin(st->job, &st->opts, st->cols, st->ncols,
							   RUN_RECORDS, engine_fallback, st);
	if (st->copy)
		record_run_init(&st->run);
	st->copy_checked = true;
	MemoryContextSwitchTo(old);
}

static void
import_chunks(Job *job, ImportState *st)
{
	ImportOptions *o = &st->opts;
	CsvReader  *r = &st->r;
	bool		atomic = o->atomic;
	Subxact		all;
	ChunkResult res;
	int64		errors_before = atomic ? 0 : job->errors_total;
	const char *final = NULL;
	char	   *final_error = NULL;

	memset(&res, 0, sizeof(res));
	res.cxt = st->job_cxt;		/* atomic: errors outlive the chunks */
	if (atomic)
	{
		job_begin_chunk();
		job_check_target(job);
		subxact_begin(&all);
	}
	while (final == NULL)
	{
		Chunk		chunk;
		int			nread = 0;
		bool		eof = false;
		int64		subxacts_before;

		job_check_cancel(job);
		MemoryContextReset(st->chunk_cxt);
		if (!atomic)
		{
			memset(&res, 0, sizeof(res));
			res.cxt = st->chunk_cxt;
			job_begin_chunk();
			job_check_target(job);
		}
		MemoryContextSwitchTo(st->chunk_cxt);

		if (st->cols == NULL)
		{
			bool		have_header = false;

			if (o->header)
			{
				int			sqlstate;
				const char *msg;

				if (!next_record(r))
					ereport(ERROR,
							(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
							 errmsg("the file is empty: it has no header line")));
				msg = parse_record(r, &sqlstate);
				if (msg)
					ereport(ERROR,
							(errcode(sqlstate),
							 errmsg("bad header line: %s", msg)));
				have_header = true;
			}
			MemoryContextSwitchTo(st->job_cxt);
			job->columns = resolve_columns(job, o, r, have_header);
			st->cols = columns_from_json(job->columns, &st->ncols);
			MemoryContextSwitchTo(st->chunk_cxt);
		}

		if (!st->copy_checked)
			choose_path(st);
		subxacts_before = copy_path_subxacts(st->copy);

		chunk_start(&chunk);
		while (nread < o->chunk_size && chunk.bytes < CHUNK_MAX_BYTES &&
			   copy_path_subxacts(st->copy) - subxacts_before < CHUNK_MAX_SUBXACTS)
		{
			if (!next_record(r))
			{
				eof = true;
				break;
			}
			nread++;
			chunk.bytes += r->raw.len;
			if (st->copy && !r->unterminated && !copy_end_marker(r))
			{
				record_run_add(&st->run, r->raw.data, r->raw.len, r->line, r->rec_nl);
				if (st->run.nrec >= RUN_RECORDS || st->run.data.len >= RUN_BYTES)
					apply_run(st, &res);
				continue;
			}
			/* keep file order: what COPY has waiting goes first */
			if (st->copy)
				apply_run(st, &res);
			take_record(st, &chunk, &res);
			if (st->copy)
			{
				chunk_write(job, &chunk, &res);
				chunk_start(&chunk);
			}
		}

		if (st->copy)
			apply_run(st, &res);
		chunk_write(job, &chunk, &res);
		res.rows_seen += nread;
		res.next_offset = r->offset;
		res.next_line = r->line;
		res.bytes_total = source_size(r->src);

		if (o->max_errors >= 0 && errors_before + res.nerrors > o->max_errors)
		{
			final = "failed";
			final_error = psprintf("too many bad rows: more than " INT64_FORMAT " (max_errors)",
								   o->max_errors);
		}
		else if (eof)
			final = "completed";

		if (!atomic)
		{
			errors_before += res.nerrors;
			job_commit_chunk_ex(job, &res, final, final_error);
		}
	}

	if (atomic)
		job_commit_atomic(job, &all, &res, final, final_error, "rows", "imported");
}

void
csv_import_run(Job *job)
{
	ImportState *st = palloc0(sizeof(ImportState));
	CsvReader  *r = &st->r;

	st->job = job;
	st->job_cxt = CurrentMemoryContext;
	import_options_parse(job->options, &st->opts);
	job_check_source_access(job->source, job->role);

	r->opts = &st->opts;
	r->buf = palloc(READ_BUFFER_SIZE);
	initStringInfo(&r->raw);
	initStringInfo(&r->text);
	r->maxfields = 64;
	r->field_start = palloc(sizeof(int) * r->maxfields);
	r->field_null = palloc(sizeof(bool) * r->maxfields);
	r->db_encoding = GetDatabaseEncoding();
	r->file_encoding = st->opts.encoding >= 0 ? st->opts.encoding : r->db_encoding;

	/* atomic jobs start over; partial ones resume at the checkpoint */
	if (st->opts.atomic)
	{
		job->ckpt_offset = 0;
		job->ckpt_line = 0;
		job->columns = NULL;
	}
	r->offset = job->ckpt_offset;
	r->line = job->ckpt_line;
	if (job->columns)
		st->cols = columns_from_json(job->columns, &st->ncols);
	st->chunk_cxt = AllocSetContextCreate(st->job_cxt, "batch_ops import chunk",
										  ALLOCSET_DEFAULT_SIZES);
	r->src = source_open(job->source, r->offset, job);

	PG_TRY();
	{
		import_chunks(job, st);
	}
	PG_CATCH();
	{
		source_close(r->src);
		PG_RE_THROW();
	}
	PG_END_TRY();
	source_close(r->src);
	MemoryContextSwitchTo(st->job_cxt);
}
