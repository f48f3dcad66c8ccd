/*-------------------------------------------------------------------------
 *
 * source.c
 *	  The bytes of an import: a server file, or an http(s) URL streamed
 *	  with libcurl.
 *
 * Both are read in fixed-size pieces, so the worker never holds the file:
 * a file with read(2) from a plain descriptor (it must outlive the
 * chunk transactions, so it is not one of fd.c's transaction-scoped
 * files); a URL with libcurl's multi interface driven from
 * source_read(), which waits on the socket in short steps (100 ms) and
 * checks for a cancel, a terminate or a shutdown between them, so a
 * stalled server never holds a worker that has been told to stop.  When
 * the buffer of received data is full the transfer is paused until the
 * parser has consumed it.
 *
 * A server file must be a regular file (symbolic links are followed):
 * it is stat()ed, opened with O_NONBLOCK so that a FIFO swapped in
 * meanwhile cannot block open(2), fstat()ed to see that the descriptor is
 * still that regular file, and only then switched back to blocking reads.
 * A FIFO, a device, a socket or a directory is refused (url_policy.c also
 * refuses them at submit).
 *
 * Limits of a download (job options, defaults and caps in settings):
 * "timeout" is the wall-clock time one download may take, from the
 * request to the last byte, including the time spent writing rows while
 * the transfer is paused; "low_speed_limit"/"low_speed_time" fail a
 * download whose server sends fewer than low_speed_limit bytes per second
 * over low_speed_time seconds of waiting for it (time spent writing rows
 * is not counted: a slow table is not a slow server); "max_size" bounds
 * the size of the file.  The limits are checked here, not by libcurl, so
 * that the error names the limit.  Each run of a job (after a restart)
 * is a new download with a new timeout.
 *
 * Resuming at a byte offset: a file is positioned with lseek(); a URL is
 * requested with a Range header.  A 206 answer is trusted only as far as
 * its Content-Range header says: it must be present and readable, start
 * at or before the requested byte (earlier bytes are skipped), and run to
 * the end of the file; its total must agree with the size the job saw
 * before the restart.  A 200 answer is the whole file again: the bytes
 * before the offset are skipped.  A 416 whose Content-Range total is the
 * offset means the checkpoint was the end of the file.
 *
 * libcurl's callbacks never throw (a longjmp through libcurl is not
 * allowed): they record the failure in the Source and abort the
 * transfer, and source_read() reports it.
 *
 * Resources: the file descriptor and the libcurl handles (multi, easy,
 * URL; the easy handle owns the socket) are not memory, so neither a
 * memory context nor a resource owner would free them.  source_open()
 * therefore registers a reset callback (MemoryContextRegisterResetCallback)
 * on the memory context it is called in, the one that owns the Source:
 * when that context is reset or deleted -- at the end of a job, or by the
 * cleanup after an ERROR anywhere between source_open() and source_close()
 * -- the callback releases whatever is still open.  source_close()
 * releases them earlier, and the callback then finds nothing left.  A
 * caller needs no PG_TRY to avoid leaking a Source, however many it opens
 * in one process; it must only open it in a context that lives as long as
 * the Source is used and not longer than the process needs it.
 *
 * Locking: none.  A Source is private to the process that opened it.
 *
 * TLS is verified (libcurl's defaults: peer and host name); only http
 * and https are allowed, and redirects are not followed, so the URL
 * checked at submit time is the one fetched (url_policy.c).
 *
 * When batch_ops.outbound_networks is set, the address each connection
 * is opened to must also pass the outbound policy's open-socket check
 * (outbound_policy.c): a name that resolves inside a network the policy
 * does not list is refused when the socket opens, not only by its text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "import_job.h"
#include "outbound_policy.h"
#include "source.h"

/* more than libcurl ever hands over at once (CURL_MAX_READ_SIZE) */
#define HTTP_BUFFER_MAX (1024 * 1024)

/* longest wait for the server between two looks at interrupts */
#define HTTP_WAIT_STEP_MS 100

int			batch_ops_fetch_timeout = 3600;
int			batch_ops_fetch_low_speed_limit = 1024;
int			batch_ops_fetch_low_speed_time = 60;
int			batch_ops_fetch_max_size = 0;

struct Source
{
	char	   *location;
	bool		is_url;
	int			fd;
	int64		size;
	Job		   *job;
	SourceOptions opts;
	/* http */
	CURLM	   *multi;
	CURL	   *easy;
	CURLU	   *url;
	char	   *buf;
	size_t		len;
	size_t		pos;
	bool		paused;
	bool		done;
	CURLcode	result;
	bool		checked;		/* status code looked at */
	bool		at_end;			/* 416: the offset is the end of the file */
	long		status;
	int64		offset;			/* the byte requested first */
	int64		skip;			/* bytes still to drop before the offset */
	int64		start_pos;		/* file position of the first byte received */
	int64		received;		/* bytes received, skipped ones included */
	int64		expect_total;	/* size seen by an earlier run, or -1 */
	char	   *range;			/* "offset-" when resuming */
	instr_time	started;
	double		waited;			/* seconds spent waiting for the server */
	double		win_waited;		/* low-speed window: waited at its start */
	int64		win_received;	/* and received at its start */
	bool		has_content_range;
	char		content_range[128];
	int			failcode;		/* a callback's failure, reported later */
	char		failmsg[256];
	char		errbuf[CURL_ERROR_SIZE];
	OutboundSocketCheck sockcheck;	/* batch_ops.outbound_networks, if set */
	MemoryContextCallback release;	/* frees fd and handles: see the header */
};

/* ---------------------------------------------------------------------
 * Settings and options
 * ---------------------------------------------------------------------
 */

/* Define the fetch settings (and url_policy.c's); called from _PG_init. */
void
source_init(void)
{
	url_policy_init();
	DefineCustomIntVariable("batch_ops.fetch_timeout",
							"Longest time one URL download of an import may take; 0 means no limit.",
							"The default and the maximum of the import option \"timeout\".",
							&batch_ops_fetch_timeout,
							3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.fetch_low_speed_limit",
							"Bytes per second below which a URL download fails after batch_ops.fetch_low_speed_time; 0 turns the check off.",
							"The default of the import option \"low_speed_limit\".",
							&batch_ops_fetch_low_speed_limit,
							1024, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.fetch_low_speed_time",
							"Seconds of waiting for a server that sends less than batch_ops.fetch_low_speed_limit before the download fails.",
							"The default of the import option \"low_speed_time\".",
							&batch_ops_fetch_low_speed_time,
							60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.fetch_max_size",
							"Largest file an import may download; 0 means no limit.",
							"The default and the maximum of the import option \"max_size\".",
							&batch_ops_fetch_max_size,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);
}

/* Compare a JSON number with an int64 without converting (and overflowing) it. */
static int
numeric_cmp_int8(Datum num, int64 v)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, num,
											 NumericGetDatum(int64_to_numeric(v))));
}

/*
 * An integer option in [min, max], compared as a numeric first so that no
 * value can overflow; cap names the setting that sets max, if one does.
 */
static int64
option_integer(const char *name, JsonbValue *val, int64 min, int64 max,
			   const char *cap)
{
	Datum		num;
	Datum		whole;

	if (val->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a number", name)));
	num = NumericGetDatum(val->val.numeric);
	whole = DirectFunctionCall2(numeric_trunc, num, Int32GetDatum(0));
	if (numeric_cmp_int8(num, min) < 0 || numeric_cmp_int8(num, max) > 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, num, whole)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
						name, min, max),
				 cap ? errdetail("The maximum is set by %s.", cap) : 0));
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, num));
}

/*
 * An option of the source: check it and set it in opts (if not NULL).
 * Returns false for a name that is not a source option.
 */
bool
source_option(const char *name, JsonbValue *val, SourceOptions *opts)
{
	SourceOptions dummy;
	int64		cap;

	if (opts == NULL)
		opts = &dummy;
	if (strcmp(name, "timeout") == 0)
	{
		cap = batch_ops_fetch_timeout > 0 ? batch_ops_fetch_timeout : INT_MAX;
		opts->timeout = (int) option_integer(name, val, 1, cap,
											 batch_ops_fetch_timeout > 0 ? "batch_ops.fetch_timeout" : NULL);
	}
	else if (strcmp(name, "low_speed_limit") == 0)
		opts->low_speed_limit = (int) option_integer(name, val, 0, INT_MAX, NULL);
	else if (strcmp(name, "low_speed_time") == 0)
		opts->low_speed_time = (int) option_integer(name, val, 1, 86400, NULL);
	else if (strcmp(name, "max_size") == 0)
	{
		cap = batch_ops_fetch_max_size > 0 ?
			(int64) batch_ops_fetch_max_size * 1024 : PG_INT64_MAX;
		opts->max_size = option_integer(name, val, 1, cap,
										batch_ops_fetch_max_size > 0 ? "batch_ops.fetch_max_size" : NULL);
	}
	else
		return false;
	return true;
}

/* job_options_foreach() callback: the job's other options are not ours. */
static void
source_option_cb(const char *name, JsonbValue *val, void *arg)
{
	(void) source_option(name, val, (SourceOptions *) arg);
}

/* The limits of a download: the settings, then the job's options. */
void
source_options_parse(Jsonb *options, SourceOptions *opts)
{
	opts->timeout = batch_ops_fetch_timeout;
	opts->low_speed_limit = batch_ops_fetch_low_speed_limit;
	opts->low_speed_time = batch_ops_fetch_low_speed_time;
	opts->max_size = (int64) batch_ops_fetch_max_size * 1024;
	if (options)
		job_options_foreach(options, source_option_cb, opts);
}

/* ---------------------------------------------------------------------
 * Server files
 * ---------------------------------------------------------------------
 */

/* Open a regular file without ever blocking in open(2); see the header. */
static int
open_regular_file(const char *path, int64 *size)
{
	struct stat before;
	struct stat st;
	int			fd;
	int			flags;

	if (stat(path, &before) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	source_check_file_type(path, before.st_mode);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | PG_BINARY, 0);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	if (fstat(fd, &st) != 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	}
	if (!S_ISREG(st.st_mode) || st.st_dev != before.st_dev || st.st_ino != before.st_ino)
	{
		close(fd);
		source_check_file_type(path, st.st_mode);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("file \"%s\" was replaced while it was being opened", path)));
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not set file \"%s\" to blocking mode: %m", path)));
	}
	*size = st.st_size;
	return fd;
}

/* ---------------------------------------------------------------------
 * URLs: libcurl's callbacks (they must not throw)
 * ---------------------------------------------------------------------
 */

/* Record a failure in a callback; the caller aborts the transfer. */
static bool
http_failed(Source *src, int code, const char *fmt,...)
	pg_attribute_printf(3, 4);

static bool
http_failed(Source *src, int code, const char *fmt,...)
{
	va_list		ap;

	if (src->failmsg[0] == '\0')
	{
		va_start(ap, fmt);
		vsnprintf(src->failmsg, sizeof(src->failmsg), fmt, ap);
		va_end(ap);
		src->failcode = code;
	}
	return false;
}

/* Keep the Content-Range header of the last response. */
static size_t
http_header(char *data, size_t size, size_t nitems, void *arg)
{
	Source	   *src = (Source *) arg;
	size_t		n = size * nitems;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		src->has_content_range = false;
		src->content_range[0] = '\0';
	}
	else if (n > 14 && pg_strncasecmp(data, "Content-Range:", 14) == 0)
	{
		const char *v = data + 14;
		size_t		len = n - 14;

		while (len > 0 && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
						   v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		src->has_content_range = true;
		/* too long to be valid: keep a prefix, the parse will refuse it */
		if (len >= sizeof(src->content_range))
			len = sizeof(src->content_range) - 1;
		memcpy(src->content_range, v, len);
		src->content_range[len] = '\0';
	}
	return n;
}

/* A decimal byte position; false unless the whole of [s, end) is one. */
static bool
parse_pos(const char *s, const char *end, int64 *out)
{
	int64		v = 0;

	if (s >= end)
		return false;
	for (; s < end; s++)
	{
		if (*s < '0' || *s > '9' || v > (PG_INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return true;
}

/*
 * "bytes FIRST-LAST/TOTAL" (TOTAL may be "*": *total = -1), or
 * "bytes * /TOTAL" (for a 416: *first = -1).
 */
static bool
parse_content_range(const char *cr, int64 *first, int64 *last, int64 *total)
{
	const char *p;
	const char *dash;
	const char *slash;

	if (pg_strncasecmp(cr, "bytes ", 6) != 0)
		return false;
	p = cr + 6;
	slash = strchr(p, '/');
	if (slash == NULL)
		return false;
	if (strcmp(slash + 1, "*") == 0)
		*total = -1;
	else if (!parse_pos(slash + 1, slash + strlen(slash), total))
		return false;
	if (slash - p == 1 && *p == '*')
	{
		*first = *last = -1;
		return *total >= 0;
	}
	dash = memchr(p, '-', slash - p);
	if (dash == NULL || !parse_pos(p, dash, first) || !parse_pos(dash + 1, slash, last))
		return false;
	return *first <= *last && (*total < 0 || *last < *total);
}

/* Where the body starts in the file, for a 206: see the file header. */
static bool
check_partial(Source *src, curl_off_t cl)
{
	int64		first;
	int64		last;
	int64		total;

	if (!src->has_content_range)
		return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
						   "the server answered 206 (partial content) without a Content-Range header");
	if (!parse_content_range(src->content_range, &first, &last, &total) || first < 0)
		return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
						   "the server answered 206 (partial content) with an invalid Content-Range header \"%s\"",
						   src->content_range);
	if (first > src->offset)
		return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
						   "the server sent the file from byte " INT64_FORMAT ", after the requested byte " INT64_FORMAT,
						   first, src->offset);
	if (total >= 0 && last + 1 != total)
		return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
						   "the server sent bytes " INT64_FORMAT "-" INT64_FORMAT " of " INT64_FORMAT ", not the rest of the file from byte " INT64_FORMAT,
						   first, last, total, src->offset);
	if (cl >= 0 && cl != last - first + 1)
		return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
						   "the server's Content-Length " INT64_FORMAT " does not match its Content-Range \"%s\"",
						   (int64) cl, src->content_range);
	src->start_pos = first;
	src->skip = src->offset - first;
	src->size = total >= 0 ? total : last + 1;
	return true;
}

/*
 * Look at the response once its headers are in: where the body starts,
 * the file's size, and whether it fits the limits.
 */
static bool
check_status(Source *src)
{
	curl_off_t	cl = -1;
	int64		first;
	int64		last;
	int64		total;

	if (src->checked)
		return src->failmsg[0] == '\0';
	curl_easy_getinfo(src->easy, CURLINFO_RESPONSE_CODE, &src->status);
	if (src->status == 0)
		return true;
	src->checked = true;
	curl_easy_getinfo(src->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (src->status == 416 && src->offset > 0 && src->has_content_range &&
		parse_content_range(src->content_range, &first, &last, &total) &&
		first < 0 && total == src->offset)
	{
		/* the checkpoint is the end of the file: nothing is left */
		if (src->expect_total > 0 && total != src->expect_total)
			return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
							   "the file changed size since the job started (" INT64_FORMAT " bytes, now " INT64_FORMAT ")",
							   src->expect_total, total);
		src->at_end = true;
		src->size = total;
		return true;
	}
	if (src->status >= 300)
		return true;			/* reported with the status */
	if (src->status == 206)
	{
		if (!check_partial(src, cl))
			return false;
	}
	else
	{
		/* the whole file (again) */
		src->start_pos = 0;
		src->skip = src->offset;
		if (cl >= 0)
			src->size = cl;
	}
	if (src->size >= 0 && src->size < src->offset)
		return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
						   "the file has " INT64_FORMAT " bytes, fewer than the job's checkpoint at byte " INT64_FORMAT,
						   src->size, src->offset);
	if (src->offset > 0 && src->expect_total > 0 && src->size >= 0 &&
		src->size != src->expect_total)
		return http_failed(src, ERRCODE_PROTOCOL_VIOLATION,
						   "the file changed size since the job started (" INT64_FORMAT " bytes, now " INT64_FORMAT ")",
						   src->expect_total, src->size);
	if (src->opts.max_size > 0 && src->size > src->opts.max_size)
		return http_failed(src, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
						   "the file has " INT64_FORMAT " bytes, more than " INT64_FORMAT " (max_size)",
						   src->size, src->opts.max_size);
	return true;
}

/*
 * libcurl's write callback: check the answer once, drop the bytes before
 * the offset, enforce max_size, and pause the transfer rather than grow
 * the buffer past HTTP_BUFFER_MAX while the parser catches up.
 */
static size_t
http_write(char *data, size_t size, size_t nmemb, void *arg)
{
	Source	   *src = (Source *) arg;
	size_t		n = size * nmemb;
	size_t		drop;

	if (!check_status(src))
		return 0;				/* aborts the transfer: reported by the caller */
	if (src->at_end)
		return n;				/* the body of a 416 */
	if (src->status >= 300)
		return 0;
	if (src->opts.max_size > 0 &&
		src->start_pos + src->received + (int64) n > src->opts.max_size)
	{
		(void) http_failed(src, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
						   "the file is larger than " INT64_FORMAT " bytes (max_size)",
						   src->opts.max_size);
		return 0;
	}
	drop = (size_t) Min((int64) n, src->skip);
	if (src->len + (n - drop) > HTTP_BUFFER_MAX)
	{
		/* the parser has not caught up: libcurl keeps this piece for later */
		src->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	src->skip -= drop;
	src->received += n;
	memcpy(src->buf + src->len, data + drop, n - drop);
	src->len += n - drop;
	return n;
}

/* ---------------------------------------------------------------------
 * Opening, reading, closing
 * ---------------------------------------------------------------------
 */

/*
 * Release the descriptor and the libcurl handles, each once: called by
 * source_close(), and as the reset callback of the context that owns the
 * Source (see the header), so it must not throw.  The easy handle leaves
 * the multi handle before either is cleaned up, as libcurl requires.
 */
static void
source_release(void *arg)
{
	Source	   *src = (Source *) arg;

	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
	if (src->multi && src->easy)
		curl_multi_remove_handle(src->multi, src->easy);
	if (src->multi)
		curl_multi_cleanup(src->multi);
	src->multi = NULL;
	if (src->easy)
		curl_easy_cleanup(src->easy);
	src->easy = NULL;
	if (src->url)
		curl_url_cleanup(src->url);
	src->url = NULL;
}

/*
 * Set up the download of src->location (nothing is sent yet: the first
 * source_read() starts it).  Every handle goes straight into the Source,
 * whose reset callback is already registered, so an ERROR between two of
 * these steps leaks nothing.
 */
static void
http_open(Source *src)
{
	outbound_curl_init();
	/* userinfo and ambiguous paths are refused here too */
	src->url = (CURLU *) url_checked_handle(src->location);
	src->easy = curl_easy_init();
	src->multi = curl_multi_init();
	if (src->easy == NULL || src->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	src->buf = palloc(HTTP_BUFFER_MAX);
	curl_easy_setopt(src->easy, CURLOPT_CURLU, src->url);
	curl_easy_setopt(src->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(src->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(src->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(src->easy, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(src->easy, CURLOPT_USERAGENT, "batch_ops/0.1");
	curl_easy_setopt(src->easy, CURLOPT_ERRORBUFFER, src->errbuf);
	curl_easy_setopt(src->easy, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(src->easy, CURLOPT_HEADERDATA, src);
	curl_easy_setopt(src->easy, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(src->easy, CURLOPT_WRITEDATA, src);
	curl_easy_setopt(src->easy, CURLOPT_BUFFERSIZE, 65536L);
	{
		char	   *host = NULL;

		if (curl_url_get(src->url, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		{
			char	   *h = pstrdup(host);

			curl_free(host);
			(void) outbound_policy_guard_socket(src->easy, h, &src->sockcheck);
		}
	}
	if (src->offset > 0)
	{
		/*
		 * A plain Range request: with CURLOPT_RESUME_FROM libcurl would give
		 * up on a server that answers 200, instead of letting check_status()
		 * skip what was read before.
		 */
		src->range = psprintf(INT64_FORMAT "-", src->offset);
		curl_easy_setopt(src->easy, CURLOPT_RANGE, src->range);
	}
	INSTR_TIME_SET_CURRENT(src->started);
	curl_multi_add_handle(src->multi, src->easy);
}

/*
 * Open a server file or a URL, from byte offset on; job (may be NULL)
 * gives the options, the size seen by an earlier run and the cancel check.
 * The Source, and everything it holds open, belongs to the current memory
 * context: see the header.
 */
Source *
source_open(const char *location, int64 offset, Job *job)
{
	Source	   *src = palloc0(sizeof(Source));

	src->fd = -1;
	src->release.func = source_release;
	src->release.arg = src;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &src->release);
	src->location = pstrdup(location);
	src->is_url = source_is_url(location);
	src->size = -1;
	src->job = job;
	src->offset = offset;
	src->expect_total = job ? job->bytes_total : -1;
	source_options_parse(job ? job->options : NULL, &src->opts);

	if (src->is_url)
	{
		http_open(src);
		return src;
	}
	src->fd = open_regular_file(location, &src->size);
	if (offset > 0 && lseek(src->fd, offset, SEEK_SET) != offset)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not seek to byte " INT64_FORMAT " of file \"%s\": %m",
						offset, location)));
	return src;
}

/* Report a failed transfer: a callback's reason, the status, or libcurl's. */
static void http_fail(Source *src) pg_attribute_noreturn();

static void
http_fail(Source *src)
{
	if (src->failmsg[0] != '\0')
		ereport(ERROR,
				(errcode(src->failcode),
				 errmsg("could not fetch \"%s\": %s", src->location, src->failmsg)));
	if (src->sockcheck.refused && src->result != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("could not fetch \"%s\": address %s is not allowed",
						src->location, src->sockcheck.address),
				 errdetail("batch_ops.outbound_networks is set, and lists neither a network that holds this address nor the URL's host name.")));
	if (src->status >= 300)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch \"%s\": HTTP status %ld",
						src->location, src->status)));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("could not fetch \"%s\": %s", src->location,
					src->errbuf[0] ? src->errbuf : curl_easy_strerror(src->result))));
}

/* The transfer is over: fail unless it brought the rest of the file. */
static int
http_finish(Source *src)
{
	if (src->result == CURLE_OK)
		(void) check_status(src);	/* a response without a body */
	if (src->failmsg[0] != '\0' || src->result != CURLE_OK ||
		(src->status >= 300 && !src->at_end))
		http_fail(src);
	if (src->skip > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("could not fetch \"%s\": the server sent " INT64_FORMAT " bytes, fewer than the job's checkpoint at byte " INT64_FORMAT,
						src->location, src->start_pos + src->received, src->offset)));
	return 0;
}

/* The time limits of a download: see the file header. */
static void
http_check_time(Source *src)
{
	SourceOptions *o = &src->opts;
	instr_time	now;
	double		elapsed;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, src->started);
	elapsed = INSTR_TIME_GET_DOUBLE(now);
	if (o->timeout > 0 && elapsed >= o->timeout)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch \"%s\": timed out after %d s (timeout)",
						src->location, o->timeout)));
	if (o->low_speed_limit <= 0)
		return;
	/* a window closes as soon as it has its bytes, or fails at its end */
	if (src->received - src->win_received >= (int64) o->low_speed_limit * o->low_speed_time)
	{
		src->win_waited = src->waited;
		src->win_received = src->received;
	}
	else if (src->waited - src->win_waited >= o->low_speed_time)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch \"%s\": slower than %d bytes/s for %d s (low_speed_limit, low_speed_time)",
						src->location, o->low_speed_limit, o->low_speed_time)));
}

/*
 * Hand over buffered bytes, driving the transfer until there are some:
 * waits on the socket in steps of HTTP_WAIT_STEP_MS and checks for a
 * cancel and the time limits after each step.  0 at the end of the file.
 */
static int
http_read(Source *src, char *buf, int len)
{
	int			n;

	while (src->pos >= src->len)
	{
		int			running = 0;
		CURLMsg    *msg;
		int			left;
		instr_time	t0;
		instr_time	t1;

		src->pos = src->len = 0;
		if (src->done)
			return http_finish(src);
		INSTR_TIME_SET_CURRENT(t0);
		if (src->paused)
		{
			src->paused = false;
			curl_easy_pause(src->easy, CURLPAUSE_CONT);
		}
		curl_multi_perform(src->multi, &running);
		while ((msg = curl_multi_info_read(src->multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE)
			{
				src->done = true;
				src->result = msg->data.result;
			}
		if (src->len == 0 && !src->done)
			(void) curl_multi_poll(src->multi, NULL, 0, HTTP_WAIT_STEP_MS, NULL);
		INSTR_TIME_SET_CURRENT(t1);
		INSTR_TIME_SUBTRACT(t1, t0);
		src->waited += INSTR_TIME_GET_DOUBLE(t1);
		/* cancel_job(), pg_cancel_backend(), terminate, shutdown */
		if (src->job)
			job_check_cancel(src->job);
		else
			CHECK_FOR_INTERRUPTS();
		if (!src->done)
			http_check_time(src);
	}
	n = Min((size_t) len, src->len - src->pos);
	memcpy(buf, src->buf + src->pos, n);
	src->pos += n;
	return n;
}

/*
 * Up to len bytes of the source into buf; 0 at its end.  Each call is one
 * block of the caller's loop, so each one looks for a cancel first (for a
 * file as for a URL), before read(2) and after an EINTR alike.
 */
int
source_read(Source *src, char *buf, int len)
{
	if (src->is_url)
		return http_read(src, buf, len);
	for (;;)
	{
		ssize_t		n;

		/* cancel_job(), pg_cancel_backend(), terminate, shutdown */
		if (src->job)
			job_check_cancel(src->job);
		else
			CHECK_FOR_INTERRUPTS();
		n = read(src->fd, buf, len);
		if (n >= 0)
			return (int) n;
		if (errno != EINTR)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", src->location)));
	}
}

/* The size of the file, for progress; -1 until a URL's answer has said it. */
int64
source_size(Source *src)
{
	return src->size;
}

/*
 * Release the file or the connection now rather than when the Source's
 * memory context goes.  Safe to call more than once, and with NULL.
 */
void
source_close(Source *src)
{
	if (src == NULL)
		return;
	source_release(src);
}
