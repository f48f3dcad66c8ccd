/*-------------------------------------------------------------------------
 *
 * csv_reader.h
 *	  The import's CSV record splitter (csv_reader.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_CSV_READER_H
#define BATCH_OPS_CSV_READER_H

#include "lib/stringinfo.h"

#include "import_job.h"
#include "source.h"

#define READ_BUFFER_SIZE	(64 * 1024)
/* bytes of a bad record kept for its row error */
#define RAW_KEEP			1024
/* a record this long goes to the engine alone, its buffers given back */
#define BIG_RECORD_BYTES	(1024 * 1024)

/* The reader's state: a buffer of the source and the current record. */
typedef struct CsvReader
{
	Source	   *src;
	ImportOptions *opts;
	char	   *buf;
	int			len;
	int			pos;
	bool		eof;
	int64		offset;			/* file offset of buf[pos] */
	int64		line;			/* physical lines read (csv_reader.c) */
	int			rec_nl;			/* line feeds inside quotes, current record
								 * (COPY's count, for copy_path.c) */
	int			rec_lines;		/* line ends inside quotes (\n, \r\n, \r) */
	StringInfoData raw;			/* the current record, without its line end */
	StringInfo	dest;			/* where the record's bytes go: raw, or a run */
	int			dest_start;		/* where the record starts in *dest */
	int64		rec_bytes;		/* the record's length in the file */
	bool		too_long;		/* longer than max_record_bytes: dest keeps
								 * only its start */
	bool		unterminated;
	char		rec_eol[2];		/* the record's line end, as in the file */
	int			rec_eol_len;	/* 0 (end of file), 1 or 2 */
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

/* Set up a reader of src from offset/line, with the import's options. */
extern void csv_reader_init(CsvReader *r, Source *src, ImportOptions *opts,
							int64 offset, int64 line);
extern bool csv_next_record(CsvReader *r);
extern bool csv_next_record_into(CsvReader *r, StringInfo dest);
extern void csv_skip_bom(CsvReader *r);
extern const char *csv_parse_record(CsvReader *r, int *sqlstate);
extern void csv_buffer_resize(StringInfo s, int size);

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

#endif							/* BATCH_OPS_CSV_READER_H */
