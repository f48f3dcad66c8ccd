/*-------------------------------------------------------------------------
 *
 * http_engine.c
 *	  The HTTP transport of the outbound engine (engine_internal.h): every
 *	  target's request through one libcurl multi handle.
 *
 * libcurl tells which sockets it waits on (CURLMOPT_SOCKETFUNCTION, handed
 * to engine_socket_set) and its timer (CURLMOPT_TIMERFUNCTION, this
 * transport's next_timeout); the engine's loop waits on them with its
 * latch and calls curl_multi_socket_action for what is ready.  Pinned
 * targets reuse the connection libcurl keeps alive; the last target for a
 * host and port closes it (CURLOPT_FORBID_REUSE).  Every connection gets
 * the outbound policy (outbound_policy_apply): the resolved address is
 * checked when its socket opens.
 *
 * libcurl's callbacks never throw: they use malloc, not palloc, and
 * record what they saw for the loop to act on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "engine_internal.h"
#include "outbound_policy.h"

/* A transfer in flight: only as many as requests in flight. */
typedef struct Xfer
{
	CURL	   *easy;
	struct curl_slist *hdrs;
	char	   *buf;			/* malloc'd */
	size_t		len;
	size_t		cap;
	bool		too_large;
	int64		max_output;
	int			retry_after_ms;
	OutboundSocketCheck check;
	char		errbuf[CURL_ERROR_SIZE];
	struct Xfer *next_free;
} Xfer;

/* The transport's state (Engine.tp). */
typedef struct Http
{
	CURLM	   *multi;
	TimestampTz curl_deadline;	/* 0: no timer */
	Xfer	   *free_xfers;
} Http;

#define HTTP(e) ((Http *) (e)->tp)
#define XFER(et) ((Xfer *) (et)->x)

/* ---------------------------------------------------------------------
 * libcurl's callbacks (never throw)
 * ---------------------------------------------------------------------
 */

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	Engine	   *e = userp;
	uint32		ev = 0;

	if (what != CURL_POLL_REMOVE)
	{
		if (what & CURL_POLL_IN)
			ev |= WL_SOCKET_READABLE;
		if (what & CURL_POLL_OUT)
			ev |= WL_SOCKET_WRITEABLE;
	}
	return engine_socket_set(e, s, ev) ? 0 : -1;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	Engine	   *e = userp;

	if (timeout_ms < 0)
		HTTP(e)->curl_deadline = 0;
	else
		HTTP(e)->curl_deadline = GetCurrentTimestamp() + timeout_ms * INT64CONST(1000);
	return 0;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	ETarget    *et = userdata;
	size_t		n = size * nmemb;

	if (XFER(et)->len + n > (size_t) XFER(et)->max_output)
	{
		XFER(et)->too_large = true;
		return 0;
	}
	if (XFER(et)->len + n > (size_t) XFER(et)->cap)
	{
		size_t		cap = Max(XFER(et)->cap * 2, XFER(et)->len + n + 1);
		char	   *b;

		b = realloc(XFER(et)->buf, cap + 1);
		if (b == NULL)
			return 0;
		XFER(et)->buf = b;
		XFER(et)->cap = cap;
	}
	memcpy(XFER(et)->buf + XFER(et)->len, ptr, n);
	XFER(et)->len += n;
	return n;
}

/* Retry-After: seconds or an HTTP date. */
static size_t
header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	ETarget    *et = userdata;
	size_t		n = size * nitems;

	if (n > 12 && pg_strncasecmp(buffer, "retry-after:", 12) == 0)
	{
		char		val[64];
		size_t		l = Min(n - 12, sizeof(val) - 1);
		char	   *p = val;
		char	   *end;
		long		secs;

		memcpy(val, buffer + 12, l);
		val[l] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		secs = strtol(p, &end, 10);
		if (end != p && secs >= 0)
			XFER(et)->retry_after_ms = (int) Min(secs, 3600) * 1000;
		else
		{
			time_t		t = curl_getdate(p, NULL);

			if (t > 0)
				XFER(et)->retry_after_ms = (int) Min(Max((long) (t - time(NULL)), 0), 3600) * 1000;
		}
	}
	return n;
}

/* ---------------------------------------------------------------------
 * Setup and teardown
 * ---------------------------------------------------------------------
 */

static void
http_release(Engine *e, ETarget *et)
{
	Xfer	   *x = XFER(et);

	if (x == NULL)
		return;
	if (x->easy)
	{
		curl_multi_remove_handle(HTTP(e)->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	if (x->hdrs)
	{
		curl_slist_free_all(x->hdrs);
		x->hdrs = NULL;
	}
	if (x->buf)
	{
		free(x->buf);
		x->buf = NULL;
	}
	x->len = x->cap = 0;
	x->next_free = HTTP(e)->free_xfers;
	HTTP(e)->free_xfers = x;
	et->x = NULL;
}

static void
http_cleanup(Engine *e)
{
	if (e->tp && HTTP(e)->multi)
	{
		curl_multi_cleanup(HTTP(e)->multi);
		HTTP(e)->multi = NULL;
	}
}

static void
http_setup(Engine *e)
{
	Http	   *h = palloc0(sizeof(Http));

	outbound_curl_init();
	e->tp = h;
	h->multi = curl_multi_init();
	if (h->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, e);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
					  (long) Max(e->spec->opts.concurrency * 2, 16));
}

/* Hand the request to libcurl. */
static void
http_send(Engine *e, ETarget *et)
{
	OutboundRequest *req = et->req;
	CURL	   *easy = curl_easy_init();
	ListCell   *lc;

	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	if (HTTP(e)->free_xfers)
	{
		et->x = HTTP(e)->free_xfers;
		HTTP(e)->free_xfers = XFER(et)->next_free;
	}
	else
		et->x = MemoryContextAllocZero(e->cxt, sizeof(Xfer));
	XFER(et)->easy = easy;
	XFER(et)->len = 0;
	XFER(et)->too_large = false;
	XFER(et)->max_output = e->spec->opts.max_output_bytes;
	XFER(et)->retry_after_ms = -1;
	XFER(et)->errbuf[0] = '\0';
	memset(&XFER(et)->check, 0, sizeof(XFER(et)->check));
	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "batch_ops/" BATCH_OPS_VERSION);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, XFER(et)->errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, et);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, et);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, et);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) et->t->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) et->t->connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
					 (curl_off_t) e->spec->opts.max_output_bytes);
	foreach(lc, req->headers)
	{
		struct curl_slist *l = curl_slist_append(XFER(et)->hdrs, (char *) lfirst(lc));

		if (l == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		XFER(et)->hdrs = l;
	}
	if (XFER(et)->hdrs)
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, XFER(et)->hdrs);
	if (strcmp(req->method, "GET") == 0)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->body)
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
	}
	/*
	 * libcurl 7.88 prunes its DNS cache by walking every entry at each
	 * name lookup, IP literals included: with thousands of devices that is
	 * quadratic (most of the worker's time).  Timeout 0 keeps only the
	 * entries in use; a kept-alive connection needs no lookup anyway.
	 */
	curl_easy_setopt(easy, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	/*
	 * The last target for a host and port: nothing would reuse its
	 * connection, so close it at once rather than park it in the multi's
	 * connection cache (and have libcurl close the oldest there later).
	 */
	if (engine_last_for_port(e, et))
		curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
	outbound_policy_apply(easy, et->t->hostname, &XFER(et)->check);
	if (curl_multi_add_handle(HTTP(e)->multi, easy) != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not add a transfer to the libcurl multi handle")));
}

static const char *
curl_error_name(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return "dns_error";
		case CURLE_OPERATION_TIMEDOUT:
			return "timeout";
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_USE_SSL_FAILED:
			return "tls_error";
		case CURLE_FILESIZE_EXCEEDED:
			return "response_too_large";
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
			return "not_allowed";
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_HTTP2:
		case CURLE_BAD_CONTENT_ENCODING:
			return "protocol_error";
		default:
			return "connect_error";
	}
}

/* A transfer ended with a libcurl error. */
static void
transfer_failed(Engine *e, ETarget *et, CURLcode rc)
{
	const OutboundOptions *o = &e->spec->opts;
	Xfer	   *x = XFER(et);
	bool		retry = false;

	if (x->check.refused)
	{
		engine_failed(e, et, "not_allowed",
					  psprintf("address %s is not allowed by batch_ops.outbound_networks",
							   x->check.address), false);
		return;
	}
	if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED ||
		(rc == CURLE_WRITE_ERROR && x->len >= (size_t) o->max_output_bytes))
	{
		engine_failed(e, et, "response_too_large",
					  psprintf("the response exceeds max_output_bytes (" INT64_FORMAT ")",
							   o->max_output_bytes), false);
		return;
	}
	if (rc == CURLE_COULDNT_CONNECT)
		retry = true;
	else if (rc == CURLE_OPERATION_TIMEDOUT)
	{
		curl_off_t	connected = 0;

		curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connected);
		/* a change may have reached the device once the connection was up */
		retry = !et->req->is_change || o->retry_unsafe || connected == 0;
	}
	engine_failed(e, et, curl_error_name(rc),
				  pstrdup(x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc)),
				  retry);
}

/* A transfer ended with an HTTP response: the driver's verdict. */
static void
transfer_answered(Engine *e, ETarget *et)
{
	const OutboundOptions *o = &e->spec->opts;
	Xfer	   *x = XFER(et);
	OutboundResponse resp;
	OutboundOutcome out;
	char	   *ctype = NULL;
	MemoryContext old;

	if (x->len > (size_t) o->max_output_bytes)
	{
		engine_failed(e, et, "response_too_large",
					  psprintf("the response exceeds max_output_bytes (" INT64_FORMAT ")",
							   o->max_output_bytes), false);
		return;
	}
	old = MemoryContextSwitchTo(et->cxt);
	memset(&resp, 0, sizeof(resp));
	memset(&out, 0, sizeof(out));
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &resp.status_code);
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
	resp.content_type = ctype ? pstrdup(ctype) : NULL;
	resp.body_len = x->len;
	resp.body = x->buf ? pnstrdup(x->buf, x->len) : pstrdup("");
	resp.retry_after_ms = x->retry_after_ms;
	e->spec->driver->parse_response(et->t, et->req, &resp, &out);
	MemoryContextSwitchTo(old);
	engine_answered(e, et, &out, resp.status_code, resp.retry_after_ms);
}

/* ---------------------------------------------------------------------
 * The engine's calls
 * ---------------------------------------------------------------------
 */

static void
http_socket_ready(Engine *e, pgsocket fd, uint32 events)
{
	int			mask = 0;
	int			still;

	if (events & WL_SOCKET_READABLE)
		mask |= CURL_CSELECT_IN;
	if (events & WL_SOCKET_WRITEABLE)
		mask |= CURL_CSELECT_OUT;
	curl_multi_socket_action(HTTP(e)->multi, fd, mask, &still);
}

static long
http_next_timeout(Engine *e)
{
	if (HTTP(e)->curl_deadline == 0)
		return -1;
	return (long) Max((HTTP(e)->curl_deadline - GetCurrentTimestamp() + 999) / 1000, 0);
}

static void
http_progress(Engine *e)
{
	Http	   *h = HTTP(e);
	CURLMsg    *msg;
	int			left;
	int			still;

	if (h->curl_deadline != 0 && GetCurrentTimestamp() >= h->curl_deadline)
	{
		h->curl_deadline = 0;
		curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &still);
	}
	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL)
	{
		ETarget    *et = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &et);
		if (msg->data.result == CURLE_OK)
			transfer_answered(e, et);
		else
			transfer_failed(e, et, msg->data.result);
	}
}

const EngineTransport http_transport = {
	.setup = http_setup,
	.cleanup = http_cleanup,
	.send = http_send,
	.release = http_release,
	.socket_ready = http_socket_ready,
	.next_timeout = http_next_timeout,
	.progress = http_progress,
};
