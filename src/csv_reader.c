/*-------------------------------------------------------------------------
 *
 * csv_reader.c
 *	  Cut an import's bytes into CSV records and fields, as COPY does.
 *
 * The file is read in fixed-size buffers (source.c) and cut into records
 * the way COPY ... (FORMAT csv) does: a record ends at an unquoted line
 * end (\n, \r\n or \r), fields are split at the delimiter, quotes and the
 * escape character work as in COPY, and an unquoted field equal to the
 * null string is NULL.  A record's line is the physical line of the file
 * on which it ends, as an editor shows it: every line end counts -- \n,
 * \r\n and a lone \r, inside a quoted field or not, a header's too -- and
 * a \r\n counts once even when the read buffer ends between its bytes.
 * (COPY counts otherwise: not inside the first record of a headerless
 * file, nor line ends of another style than the file's.)  A file may mix
 * line-end styles: each record ends at its own.  The line feeds inside
 * quotes are also counted alone (rec_nl): copy_path.c needs them to find
 * the record COPY's own line counter names.
 *
 * In the client-only encodings (SJIS, BIG5, GBK, GB18030, JOHAB) the
 * trail byte of a multibyte character can look like ASCII -- a quote, a
 * backslash escape -- so the splitter steps over whole characters, as
 * COPY does, and a character split between two read buffers is finished
 * in the next one.  The fields are split after conversion to the
 * database encoding, which has no such bytes.
 *
 * A UTF-8 file's byte-order mark is skipped when the file is read from
 * its start (not when a job resumes at an offset).
 *
 * A record longer than max_record_bytes keeps only its first RAW_KEEP
 * bytes (for its row error); the rest is only counted up to the record's
 * end.  A record is converted from the file's encoding without throwing:
 * a malformed one is a message and a SQLSTATE for the caller's row error,
 * in COPY's words (an invalid byte sequence names its bytes) and COPY's
 * order (invalid bytes before an unterminated quoted field).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "csv_reader.h"

/* A reader that resumes at offset/line (the checkpoint), or starts at 0. */
void
csv_reader_init(CsvReader *r, Source *src, ImportOptions *opts, int64 offset,
				int64 line)
{
	memset(r, 0, sizeof(CsvReader));
	r->src = src;
	r->opts = opts;
	r->buf = palloc(READ_BUFFER_SIZE);
	initStringInfo(&r->raw);
	r->dest = &r->raw;
	initStringInfo(&r->text);
	r->maxfields = 64;
	r->field_start = palloc(sizeof(int) * r->maxfields);
	r->field_null = palloc(sizeof(bool) * r->maxfields);
	r->db_encoding = GetDatabaseEncoding();
	r->file_encoding = opts->encoding >= 0 ? opts->encoding : r->db_encoding;
	r->offset = offset;
	r->line = line;
}


/* Read the next buffer of the source; false at its end. */
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
 * The bytes csv_next_record_into() must look at, outside quotes and
 * inside them: a quote, a line end, inside quotes the escape, and in the
 * client-only encodings every byte with the high bit set.  Every other
 * byte is stepped over in a tight loop.  Built for the last options
 * seen (one import per worker).
 */
static bool stop_plain[256];
static bool stop_quoted[256];
static int	stop_key = -1;

static void
stop_tables(char quote, char escape, bool embeds_ascii)
{
	int			key = (unsigned char) quote | ((unsigned char) escape << 8) |
		(embeds_ascii ? 1 << 16 : 0);
	int			c;

	if (key == stop_key)
		return;
	for (c = 0; c < 256; c++)
	{
		bool		mb = embeds_ascii && IS_HIGHBIT_SET(c);

		stop_plain[c] = mb || c == '\n' || c == '\r' || c == (unsigned char) quote;
		stop_quoted[c] = stop_plain[c] || c == (unsigned char) escape;
	}
	stop_key = key;
}

/*
 * Read the next record, appending it to dest (r->raw if NULL, reset
 * first); false at the end of the file.  Reading straight into a run
 * for COPY saves a copy of every record.
 */
bool
csv_next_record_into(CsvReader *r, StringInfo dest)
{
	const char	quote = r->opts->quote;
	const char	escape = r->opts->escape;
	bool		in_quote = false;
	bool		esc_pending = false;
	bool		after_cr = false;	/* last byte (maybe of the previous
									 * buffer) was a \r inside quotes */
	bool		ends_eol = false;	/* and the last byte was a line end
									 * inside quotes (\r or \n) */
	int			mb_rest = 0;	/* trail bytes of a multibyte character
								 * still to step over */
	const bool	embeds_ascii = PG_ENCODING_IS_CLIENT_ONLY(r->file_encoding);

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
	r->rec_nl = r->rec_lines = 0;
	r->rec_eol_len = 0;
	stop_tables(quote, escape, embeds_ascii);
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
			char		c;
			bool		cr_before = after_cr;

			/* no state pending: step over the bytes that are data */
			if (mb_rest == 0 && !esc_pending && !after_cr)
			{
				const bool *stop = in_quote ? stop_quoted : stop_plain;
				const char *from = p;

				while (p < end && !stop[(unsigned char) *p])
					p++;
				if (p != from)
					ends_eol = false;	/* data after the line end */
				if (p == end)
					break;
			}
			c = *p;

			after_cr = false;
			ends_eol = false;
			if (mb_rest > 0)
			{
				/* a trail byte: never a quote, escape or line end */
				mb_rest--;
				p++;
				continue;
			}
			if (esc_pending)
			{
				esc_pending = false;
				if (c == quote || c == escape)
				{
					p++;
					continue;
				}
			}
			if (embeds_ascii && IS_HIGHBIT_SET(c))
			{
				/*
				 * The lead byte gives the length in all these encodings
				 * (GB18030's four-byte characters are stepped over as two
				 * two-byte ones: their second and fourth bytes are digits),
				 * so the next byte, maybe in the next buffer, is not read.
				 */
				char		lead[2] = {c, '\0'};

				mb_rest = pg_encoding_mblen(r->file_encoding, lead) - 1;
				p++;
				continue;
			}
			if (in_quote)
			{
				if (c == escape && escape != quote)
					esc_pending = true;
				else if (c == quote)
					in_quote = false;
				else if (c == '\n')
				{
					r->rec_nl++;
					if (!cr_before)
						r->rec_lines++; /* the \n of a \r\n is counted */
					ends_eol = true;
				}
				else if (c == '\r')
				{
					r->rec_lines++;
					after_cr = true;
					ends_eol = true;
				}
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
				r->rec_eol[r->rec_eol_len++] = c;
				if (c == '\r')
				{
					if (r->pos >= r->len)
						(void) fill(r);
					if (r->pos < r->len && r->buf[r->pos] == '\n')
					{
						r->rec_eol[r->rec_eol_len++] = '\n';
						r->pos++;
						r->offset++;
					}
				}
				r->line += 1 + r->rec_lines;
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
	r->line += 1 + r->rec_lines;

	/*
	 * An unterminated quoted field that runs to a file ending with a line
	 * end: the record ends on the line of that line end, not after it.
	 */
	if (ends_eol)
		r->line--;
	return true;
}

/* Read the next record into r->raw; false at the end of the file. */
bool
csv_next_record(CsvReader *r)
{
	return csv_next_record_into(r, NULL);
}

/*
 * A UTF-8 file may start with a byte-order mark, which is not data: skip
 * it when reading from the start (not when resuming at an offset).
 */
void
csv_skip_bom(CsvReader *r)
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

/* End the current field: where its text starts, and whether it is NULL. */
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
void
csv_buffer_resize(StringInfo s, int size)
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
			csv_buffer_resize(&r->text, len + 2);
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

/*
 * COPY's message for bytes invalid in an encoding (mbutils.c's
 * report_invalid_encoding()): the bytes of the first invalid character,
 * as many as its lead byte says (at most 8), taken from the record and,
 * where the record ends first, from its line end -- COPY reads on into
 * it.  data[0 .. len) is known to be invalid somewhere.
 */
static char *
invalid_encoding_msg(CsvReader *r, int encoding, const char *data, int len)
{
	int			bad = pg_encoding_verifymbstr(encoding, data, len);
	int			avail = len - bad + r->rec_eol_len;
	int			n = Min(Min(pg_encoding_mblen(encoding, data + bad), avail), 8);
	StringInfoData bytes;
	int			i;

	initStringInfo(&bytes);
	for (i = 0; i < n; i++)
	{
		unsigned char b = bad + i < len ? (unsigned char) data[bad + i] :
			(unsigned char) r->rec_eol[bad + i - len];

		appendStringInfo(&bytes, "%s0x%02x", i > 0 ? " " : "", b);
	}
	return psprintf("invalid byte sequence for encoding \"%s\": %s",
					pg_encoding_to_char(encoding), bytes.data);
}

/*
 * The record in the database encoding, or NULL with *sqlstate and *msg
 * set: the non-throwing conversion (mbutils.c), so that a character the
 * database encoding lacks is a row error and no error is caught.
 */
static char *
convert_record(CsvReader *r, char *data, int len, int *sqlstate, const char **msg)
{
	Oid			proc;
	char	   *out;
	int			used;

	if (r->db_encoding == PG_SQL_ASCII)
		return data;
	if (r->file_encoding == PG_SQL_ASCII)
	{
		/* any byte goes in SQL_ASCII: the data must suit the database */
		if (pg_verify_mbstr(r->db_encoding, data, len, true))
			return data;
		*sqlstate = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
		*msg = invalid_encoding_msg(r, r->db_encoding, data, len);
		return NULL;
	}
	proc = FindDefaultConversionProc(r->file_encoding, r->db_encoding);
	if (!OidIsValid(proc))
	{
		*sqlstate = ERRCODE_UNDEFINED_FUNCTION;
		*msg = psprintf("default conversion function for encoding \"%s\" to \"%s\" does not exist",
						pg_encoding_to_char(r->file_encoding),
						pg_encoding_to_char(r->db_encoding));
		return NULL;
	}
	if ((Size) len * MAX_CONVERSION_GROWTH + 1 >= MaxAllocSize)
	{
		*sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		*msg = "record too long for encoding conversion";
		return NULL;
	}
	out = palloc((Size) len * MAX_CONVERSION_GROWTH + 1);
	used = pg_do_encoding_conversion_buf(proc, r->file_encoding, r->db_encoding,
										 (unsigned char *) data, len,
										 (unsigned char *) out,
										 len * MAX_CONVERSION_GROWTH + 1, true);
	if (used < len)
	{
		/* the words of mbutils.c's report_untranslatable_char() */
		StringInfoData bytes;
		int			n = Min(Min(pg_encoding_mblen(r->file_encoding, data + used),
								len - used), 8);
		int			i;

		initStringInfo(&bytes);
		for (i = 0; i < n; i++)
			appendStringInfo(&bytes, "%s0x%02x", i > 0 ? " " : "",
							 (unsigned char) data[used + i]);
		pfree(out);
		*sqlstate = ERRCODE_UNTRANSLATABLE_CHARACTER;
		*msg = psprintf("character with byte sequence %s in encoding \"%s\" has no equivalent in encoding \"%s\"",
						bytes.data, pg_encoding_to_char(r->file_encoding),
						pg_encoding_to_char(r->db_encoding));
		return NULL;
	}
	return out;
}

/*
 * Check the record's encoding and split it.  Returns NULL, or the error
 * message (with *sqlstate) of a malformed record.
 */
const char *
csv_parse_record(CsvReader *r, int *sqlstate)
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
	/* COPY checks the bytes before it cuts them into lines */
	if (!pg_verify_mbstr(r->file_encoding, data, len, true))
	{
		*sqlstate = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
		return invalid_encoding_msg(r, r->file_encoding, data, len);
	}
	if (r->unterminated)
	{
		*sqlstate = ERRCODE_BAD_COPY_FILE_FORMAT;
		return "unterminated CSV quoted field";
	}
	if (r->file_encoding != r->db_encoding)
	{
		const char *msg = NULL;

		data = convert_record(r, data, len, sqlstate, &msg);
		if (data == NULL)
			return msg;
		if (data != record_data(r))
			len = strlen(data);
	}
	r->rec_data = data;
	r->rec_len = len;
	split_fields(r, data, len);
	return NULL;
}

