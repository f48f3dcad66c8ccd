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
 * source_read(), which waits on the socket in short steps and checks for
 * a cancel between them.  When the buffer of received data is full the
 * transfer is paused until the parser has consumed it.
 *
 * Resuming at a byte offset: a file is positioned with lseek(); a URL is
 * requested with a Range header, and if the server answers 200 instead
 * of 206 the first bytes are skipped as they arrive.
 *
 * TLS is verified (libcurl's defaults: peer and host name); only http
 * and https are allowed, and redirects are not followed, so the URL
 * checked at submit time is the one fetched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "miscadmin.h"

#include "jobs.h"

/* more than libcurl ever hands over at once (CURL_MAX_READ_SIZE) */
#define HTTP_BUFFER_MAX (1024 * 1024)

struct Source
{
	char	   *location;
	bool		is_url;
	int			fd;
	int64		size;
	Job		   *job;
	/* http */
	CURLM	   *multi;
	CURL	   *easy;
	char	   *buf;
	size_t		len;
	size_t		pos;
	bool		paused;
	bool		done;
	CURLcode	result;
	bool		checked;		/* status code looked at */
	long		status;
	int64		offset;
	int64		skip;			/* bytes still to drop (no Range support) */
	char	   *range;			/* "offset-" when resuming */
	char		errbuf[CURL_ERROR_SIZE];
};

static bool curl_ready = false;

/*
 * The URL as libcurl requests it: parsed and put back together, "." and
 * ".." path segments resolved.  The access check (jobs.c) compares this
 * form with batch_ops.fetch_url_prefixes and the worker fetches this form,
 * so "prefix/../elsewhere" cannot leave the prefix.
 */
char *
source_normalize_url(const char *url)
{
	CURLU	   *h = curl_url();
	char	   *out = NULL;
	char	   *result;
	CURLUcode	rc;

	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	rc = curl_url_set(h, CURLUPART_URL, url, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(h, CURLUPART_URL, &out, 0);
	if (rc != CURLUE_OK)
	{
		curl_url_cleanup(h);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid URL \"%s\"", url),
				 errdetail("%s", curl_url_strerror(rc))));
	}
	result = pstrdup(out);
	curl_free(out);
	curl_url_cleanup(h);
	return result;
}

static void
check_status(Source *src)
{
	curl_off_t	cl = -1;

	if (src->checked)
		return;
	curl_easy_getinfo(src->easy, CURLINFO_RESPONSE_CODE, &src->status);
	if (src->status == 0)
		return;
	src->checked = true;
	if (src->status >= 300)
		return;
	curl_easy_getinfo(src->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (src->offset > 0 && src->status != 206)
		src->skip = src->offset;	/* whole file again */
	if (cl >= 0)
		src->size = (int64) cl + (src->status == 206 ? src->offset : 0);
}

static size_t
http_write(char *data, size_t size, size_t nmemb, void *arg)
{
	Source	   *src = (Source *) arg;
	size_t		n = size * nmemb;
	size_t		drop;

	check_status(src);
	if (src->status >= 300)
		return 0;				/* aborts the transfer: reported by the caller */
	drop = (size_t) Min((int64) n, src->skip);
	if (src->len + (n - drop) > HTTP_BUFFER_MAX)
	{
		/* the parser has not caught up: libcurl keeps this piece for later */
		src->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	src->skip -= drop;
	memcpy(src->buf + src->len, data + drop, n - drop);
	src->len += n - drop;
	return n;
}

Source *
source_open(const char *location, int64 offset, Job *job)
{
	Source	   *src = palloc0(sizeof(Source));

	src->location = pstrdup(location);
	src->is_url = source_is_url(location);
	src->fd = -1;
	src->size = -1;
	src->job = job;
	src->offset = offset;

	if (!src->is_url)
	{
		struct stat st;

		src->fd = open(location, O_RDONLY | PG_BINARY, 0);
		if (src->fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\" for reading: %m", location)));
		if (fstat(src->fd, &st) == 0)
		{
			if (S_ISDIR(st.st_mode))
			{
				close(src->fd);
				src->fd = -1;
				ereport(ERROR,
						(errcode(ERRCODE_WRONG_OBJECT_TYPE),
						 errmsg("\"%s\" is a directory", location)));
			}
			src->size = st.st_size;
		}
		if (offset > 0 && lseek(src->fd, offset, SEEK_SET) != offset)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not seek to byte " INT64_FORMAT " of file \"%s\": %m",
							offset, location)));
		return src;
	}

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not initialize libcurl")));
		curl_ready = true;
	}
	src->easy = curl_easy_init();
	src->multi = curl_multi_init();
	if (src->easy == NULL || src->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	src->buf = palloc(HTTP_BUFFER_MAX);
	curl_easy_setopt(src->easy, CURLOPT_URL, source_normalize_url(location));
	curl_easy_setopt(src->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(src->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(src->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(src->easy, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(src->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(src->easy, CURLOPT_LOW_SPEED_TIME, 300L);
	curl_easy_setopt(src->easy, CURLOPT_USERAGENT, "batch_ops/0.1");
	curl_easy_setopt(src->easy, CURLOPT_ERRORBUFFER, src->errbuf);
	curl_easy_setopt(src->easy, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(src->easy, CURLOPT_WRITEDATA, src);
	curl_easy_setopt(src->easy, CURLOPT_BUFFERSIZE, 65536L);
	if (offset > 0)
	{
		/*
		 * A plain Range request: with CURLOPT_RESUME_FROM libcurl would give
		 * up on a server that answers 200, instead of letting check_status()
		 * skip what was read before.
		 */
		src->range = psprintf(INT64_FORMAT "-", offset);
		curl_easy_setopt(src->easy, CURLOPT_RANGE, src->range);
	}
	curl_multi_add_handle(src->multi, src->easy);
	return src;
}

static void
http_fail(Source *src)
{
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

static int
http_read(Source *src, char *buf, int len)
{
	int			n;

	while (src->pos >= src->len)
	{
		int			running = 0;
		CURLMsg    *msg;
		int			left;

		src->pos = src->len = 0;
		if (src->done)
		{
			if (src->result != CURLE_OK || src->status >= 300)
				http_fail(src);
			return 0;
		}
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
		check_status(src);
		if (src->len == 0 && !src->done)
		{
			(void) curl_multi_poll(src->multi, NULL, 0, 100, NULL);
			if (src->job)
				job_check_cancel(src->job);
		}
	}
	n = Min((size_t) len, src->len - src->pos);
	memcpy(buf, src->buf + src->pos, n);
	src->pos += n;
	return n;
}

int
source_read(Source *src, char *buf, int len)
{
	if (src->is_url)
		return http_read(src, buf, len);
	for (;;)
	{
		ssize_t		n = read(src->fd, buf, len);

		if (n >= 0)
			return (int) n;
		if (errno != EINTR)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", src->location)));
		CHECK_FOR_INTERRUPTS();
	}
}

int64
source_size(Source *src)
{
	return src->size;
}

void
source_close(Source *src)
{
	if (src == NULL)
		return;
	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
	if (src->multi)
	{
		if (src->easy)
			curl_multi_remove_handle(src->multi, src->easy);
		curl_multi_cleanup(src->multi);
		src->multi = NULL;
	}
	if (src->easy)
		curl_easy_cleanup(src->easy);
	src->easy = NULL;
}
