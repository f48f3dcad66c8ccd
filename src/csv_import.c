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
 * A UTF-8 file's byte-order mark is skipped when the file is read from
 * its start (not when a job resumes at an offset).
 *
 * A record that is malformed -- an unterminated quoted field, too many or
 * too few fields, bytes that are not valid in the file's encoding -- is
 * a row error with the COPY message and SQLSTATE, and the import goes on
 * with the next record.  So is a record longer than max_record_bytes
 * (54000): the reader keeps its first 1 kB for the error and only counts
 * the rest up to the record's end.  The raw text of every row error is
 * stored converted to the database encoding, each byte that is not part
 * of a valid (or convertible) character written \xNN (job_raw_text), so
 * that any client can read the errors.  Good records are grouped into chunks
 * (chunk_size records, or 32 MB; under a rate limit at most the role's
 * burst, whose tokens are taken before the chunk's transaction starts --
 * inside it for an atomic import -- and given back for records the chunk
 * did not read) and each chunk becomes a JSON array of
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

#include "item_error.h"
#include "jobs.h"
#include "ratelimit.h"

#define READ_BUFFER_SIZE	(64 * 1024)
#define CHUNK_MAX_BYTES		(32 * 1024 * 1024)
#define RAW_KEEP			1024
/* a record this long goes to the engine alone, its buffers given back */
#define BIG_RECORD_BYTES	(1024 * 1024)

/* records and bytes per run handed to COPY (copy_path.c) */
#define RUN_RECORDS			8192
#define RUN_BYTES			(4 * 1024 * 1024)
/* commit a chunk early rather than overflow the subxid cache (64) */
#define CHUNK_MAX_SUBXACTS	48

static const char *valid_import_options =
"format, header, delimiter, quote, escape, null, encoding, columns, atomic, chunk_size, max_errors, max_record_bytes";

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
				 errmsg("option \"%s\" must be a single one-byte character", name),
				 errdetail("It is a JSON string of one ASCII character other than a line feed or carriage return.")));
	return val->val.string.val[0];
}

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
		o->chunk_size = (int) job_option_int(name, val, 1, 1000000);
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
 * Raw text of a bad row
 * ---------------------------------------------------------------------
 */
static void
append_escaped_bytes(StringInfo out, const char *p, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		appendStringInfo(out, "\\x%02x", (unsigned char) p[i]);
}

/* How many bytes at p are ASCII (and not NUL). */
static int
ascii_prefix(const char *p, int n)
{
	int			i;

	for (i = 0; i < n && p[i] != '\0' && !IS_HIGHBIT_SET(p[i]); i++)
		;
	return i;
}

/*
 * The text of raw (len bytes in "encoding") in the database encoding, for
 * job_error: each run of valid characters converted, each byte that is
 * not part of one -- or of a character the database encoding lacks --
 * written \xNN, so that the result is valid whatever came in.  At most
 * limit bytes, never cut inside a character or an escape.
 */
char *
job_raw_text(const char *raw, int len, int encoding, int limit)
{
	int			db = GetDatabaseEncoding();
	bool		convert = encoding != db && encoding != PG_SQL_ASCII && db != PG_SQL_ASCII;
	int			out_enc = db == PG_SQL_ASCII ? encoding : db;
	bool		ascii_only = false;
	Oid			proc = InvalidOid;
	char	   *conv = NULL;
	int			convsize = 0;
	StringInfoData out;
	int			pos = 0;

	/* the catalog is read only in a transaction */
	if (convert && IsTransactionState())
		proc = FindDefaultConversionProc(encoding, db);
	if (convert && !OidIsValid(proc))
	{
		convert = false;
		ascii_only = true;
	}
	/* each output byte comes from at most four input bytes */
	len = Min(len, limit * 4);
	initStringInfo(&out);
	while (pos < len)
	{
		int			valid;
		int			bad = 1;

		if (ascii_only)
			valid = ascii_prefix(raw + pos, len - pos);
		else
			valid = pg_encoding_verifymbstr(convert ? encoding : out_enc,
											raw + pos, len - pos);
		if (valid > 0)
		{
			const char *text = raw + pos;
			int			textlen = valid;
			int			used = valid;

			if (convert)
			{
				int			n = pg_encoding_mbcliplen(encoding, text, valid,
													  Min(valid, limit - out.len));

				if (n == 0)
					break;
				if (convsize < n * MAX_CONVERSION_GROWTH + 1)
				{
					convsize = n * MAX_CONVERSION_GROWTH + 1;
					conv = conv ? repalloc(conv, convsize) : palloc(convsize);
				}
				used = pg_do_encoding_conversion_buf(proc, encoding, db,
													 (unsigned char *) text, n,
													 (unsigned char *) conv, convsize,
													 true);
				text = conv;
				textlen = strlen(conv);
			}
			if (textlen > limit - out.len)
			{
				appendBinaryStringInfo(&out, text,
									   pg_encoding_mbcliplen(out_enc, text, textlen,
															 limit - out.len));
				break;
			}
			appendBinaryStringInfo(&out, text, textlen);
			pos += used;
			if (used > 0)
				continue;
			/* the next character has no equivalent in the database encoding */
			bad = Min(pg_encoding_mblen(encoding, raw + pos), len - pos);
		}
		if (out.len + 4 * bad > limit)
			break;
		append_escaped_bytes(&out, raw + pos, bad);
		pos += bad;
	}
	return out.data;
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
	StringInfo	dest;			/* where the record's bytes go: raw, or a run */
	int			dest_start;		/* where the record starts in *dest */
	int64		rec_bytes;		/* the record's length in the file */
	bool		too_long;		/* longer than max_record_bytes: dest keeps
								 * only its start */
	bool		unterminated;
	char	   *rec_data;		/* the record in the database encoding */
	int			rec_len;
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

/*
 * Append n bytes of the current record to its destination, unless the
 * record has grown past max_record_bytes: then only its first RAW_KEEP
 * bytes are kept (for the row error), and the rest is only counted.
 */
static void
record_append(CsvReader *r, const char *p, int n)
{
	r->rec_bytes += n;
	if (r->too_long)
		return;
	if (r->rec_bytes > r->opts->max_record_bytes)
	{
		int			have = r->dest->len - r->dest_start;

		r->too_long = true;
		if (have >= RAW_KEEP)
		{
			r->dest->len = r->dest_start + RAW_KEEP;
			r->dest->data[r->dest->len] = '\0';
			return;
		}
		n = Min(n, RAW_KEEP - have);
	}
	appendBinaryStringInfo(r->dest, p, n);
}

/*
 * Read the next record, appending it to dest (r->raw if NULL, reset
 * first); false at the end of the file.  Reading straight into a run
 * for COPY saves a copy of every record.
 */
static bool
next_record_into(CsvReader *r, StringInfo dest)
{
	const char	quote = r->opts->quote;
	const char	escape = r->opts->escape;
	bool		in_quote = false;
	bool		esc_pending = false;

	if (dest == NULL)
	{
		dest = &r->raw;
		resetStringInfo(dest);
	}
	r->dest = dest;
	r->dest_start = dest->len;
	r->rec_bytes = 0;
	r->too_long = false;
	r->unterminated = false;
	r->rec_nl = r->rec_cr = 0;
	for (;;)
	{
		char	   *p;
		char	   *end;
		char	   *start;

		if (r->pos >= r->len && !fill(r))
			break;
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
				record_append(r, start, p - start);
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
		record_append(r, start, p - start);
		r->offset += p - start;
		r->pos += p - start;
	}
	if (r->rec_bytes == 0)
		return false;
	r->unterminated = in_quote;
	r->line += 1 + r->rec_nl + r->rec_cr;
	return true;
}

static bool
next_record(CsvReader *r)
{
	return next_record_into(r, NULL);
}

/* The current record's bytes (as kept: the start of a too long one). */
static inline char *
record_data(CsvReader *r)
{
	return r->dest->data + r->dest_start;
}

static inline int
record_len(CsvReader *r)
{
	return r->dest->len - r->dest_start;
}

/*
 * A UTF-8 file may start with a byte-order mark, which is not data: skip
 * it when reading from the start (not when resuming at an offset).
 */
static void
skip_bom(CsvReader *r)
{
	while (r->len < 3 && !r->eof)
	{
		int			n = source_read(r->src, r->buf + r->len, READ_BUFFER_SIZE - r->len);

		if (n == 0)
			r->eof = true;
		r->len += n;
	}
	if (r->len >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0)
	{
		r->pos = 3;
		r->offset += 3;
	}
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

/*
 * Give a buffer exactly size bytes (a big record's: no doubling), in the
 * memory context it was in; or, with size 0, give a big one back.
 */
static void
buffer_resize(StringInfo s, int size)
{
	MemoryContext cxt = GetMemoryChunkContext(s->data);

	if (size == 0)
	{
		if (s->maxlen < BIG_RECORD_BYTES)
			return;
		size = 1024;
	}
	pfree(s->data);
	s->data = MemoryContextAlloc(cxt, size);
	s->maxlen = size;
	resetStringInfo(s);
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
	/* the fields' text is never longer than the record (+ a NUL each) */
	if (r->text.maxlen < len + 2)
	{
		if (len >= BIG_RECORD_BYTES)
			buffer_resize(&r->text, len + 2);
		else
			enlargeStringInfo(&r->text, len + 2);
	}
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
	char	   *data = record_data(r);
	int			len = record_len(r);

	r->rec_data = NULL;
	if (r->too_long)
	{
		*sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		return psprintf("record of " INT64_FORMAT " bytes is longer than max_record_bytes (%d)",
						r->rec_bytes, r->opts->max_record_bytes);
	}
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
	r->rec_data = data;
	r->rec_len = len;
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
	CopyPath   *copy;			/* the COPY fast path, or NULL */
	RecordRun	run;			/* records waiting for it */
} ImportState;

/* Write the chunk's good rows as the job's role; add their errors to res. */
static void
chunk_write(ImportState *st, Chunk *chunk, ChunkResult *res)
{
	Job		   *job = st->job;
	Jsonb	   *items;
	Jsonb	   *response;
	JobRoleSwitch rs;
	JsonbValue *array;

	array = pushJsonbValue(&chunk->state, WJB_END_ARRAY, NULL);
	chunk->state = NULL;
	if (chunk->nrows == 0)
		return;
	items = JsonbValueToJsonb(array);
	if (chunk->release)
		buffer_resize(chunk->release, 0);

	import_check_insert(job, st->cols, st->ncols);
	job_as_role_begin(job, &rs);
	response = batch_run(BATCH_CREATE, job->relid, items, false, false);
	job_as_role_end(&rs);

	res->applied += jsonb_get_applied(response);
	chunk_add_response_errors(res, response, chunk->lines, chunk->raws,
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
			buffer_resize(&r->raw, 0);
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
	JobRoleSwitch rs;

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
	job_as_role_begin(st->job, &rs);
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
							   RUN_RECORDS, engine_fallback, st);
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

	*eof = !next_record_into(r, &st->run.data);
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
		int64		allowed;	/* records the rate limit lets it read */

		job_check_cancel(job);
		/* the role's rate limit: the chunk's tokens, before its transaction */
		allowed = ratelimit_reserve(job->role, o->chunk_size);
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
		while (nread < allowed && chunk.bytes < CHUNK_MAX_BYTES &&
			   copy_path_subxacts(st->copy) - subxacts_before < CHUNK_MAX_SUBXACTS)
		{
			if (st->copy)
			{
				if (next_record_for_copy(st, &eof))
				{
					nread++;
					chunk.bytes += r->rec_bytes;
					if (st->run.nrec >= RUN_RECORDS || st->run.data.len >= RUN_BYTES)
						apply_run(st, &res);
					continue;
				}
			}
			else if (!next_record(r))
				eof = true;
			if (eof)
				break;
			nread++;
			chunk.bytes += r->rec_bytes;
			/* keep file order: what COPY has waiting goes first */
			if (st->copy)
				apply_run(st, &res);
			take_record(st, &chunk, &res);
			if (st->copy)
			{
				chunk_write(st, &chunk, &res);
				chunk_start(&chunk);
			}
		}

		if (st->copy)
			apply_run(st, &res);
		chunk_write(st, &chunk, &res);
		res.rows_seen += nread;
		ratelimit_release(job->role, allowed - nread);
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
	r->dest = &r->raw;
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
		if (r->offset == 0 && r->file_encoding == PG_UTF8)
			skip_bom(r);
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
