/*-------------------------------------------------------------------------
 *
 * driver_probe.c
 *	  Test-only SQL functions that run an outbound driver's check_spec,
 *	  build_request and parse_response (src/driver_*.c) in the calling
 *	  backend, without the HTTP engine; linked into the test build of the
 *	  library (make TEST_MODULES=1) and bound by test/t/080_drivers.pl.
 *
 * The target is given as jsonb: {"index", "hostname", "scheme", "port",
 * "device", "connection_args", "command", "config", "request", "action",
 * "options", "secret": {"username", "password", ...}} -- the fields of
 * OutboundTarget, defaults merged in as the engine would.  The answers are
 * jsonb so that a test can compare them whole.  Nothing is sent anywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "driver_internal.h"

extern PGDLLEXPORT Datum batch_ops_test_driver_check(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_test_driver_request(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_test_driver_parse(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(batch_ops_test_driver_check);
PG_FUNCTION_INFO_V1(batch_ops_test_driver_request);
PG_FUNCTION_INFO_V1(batch_ops_test_driver_parse);

static const OutboundDriver *
probe_driver(text *name)
{
	char	   *s = text_to_cstring(name);
	const OutboundDriver *d = outbound_driver_lookup(s);

	if (d == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("driver \"%s\" is not supported", s)));
	return d;
}

static OutboundSecret *
probe_secret(Jsonb *s)
{
	OutboundSecret *secret;

	if (s == NULL)
		return NULL;
	secret = palloc0(sizeof(OutboundSecret));
	secret->username = jb_get_string(s, "username");
	secret->password = jb_get_string(s, "password");
	secret->enable_password = jb_get_string(s, "enable_password");
	secret->token = jb_get_string(s, "token");
	secret->api_key = jb_get_string(s, "api_key");
	secret->api_key_header = jb_get_string(s, "api_key_header");
	return secret;
}

static int
probe_int(Jsonb *t, const char *key, int dflt)
{
	JsonbValue *v = jb_get(t, key);

	return v ? pg_strtoint32(jb_scalar_text(v)) : dflt;
}

static OutboundTarget *
probe_target(Jsonb *t)
{
	OutboundTarget *target = palloc0(sizeof(OutboundTarget));
	char	   *scheme = jb_get_string(t, "scheme");
	char	   *host = jb_get_string(t, "hostname");

	target->index = probe_int(t, "index", 0);
	target->hostname = host ? host : "127.0.0.1";
	target->scheme = scheme ? scheme : "https";
	target->port = probe_int(t, "port",
							 strcmp(target->scheme, "http") == 0 ? 80 : 443);
	target->device = jb_get_jsonb(t, "device");
	target->connection_args = jb_get_jsonb(t, "connection_args");
	target->command = jb_get_jsonb(t, "command");
	target->config = jb_get_jsonb(t, "config");
	target->request = jb_get_jsonb(t, "request");
	target->action = jb_get_jsonb(t, "action");
	target->options = jb_get_jsonb(t, "options");
	target->secret = probe_secret(jb_get_jsonb(t, "secret"));
	target->timeout_ms = 30000;
	target->connect_timeout_ms = 10000;
	return target;
}

static void
append_json_string(StringInfo buf, const char *s)
{
	if (s)
		escape_json(buf, s);
	else
		appendStringInfoString(buf, "null");
}

static void
append_request(StringInfo buf, const OutboundRequest *req)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfoString(buf, "{\"method\": ");
	append_json_string(buf, req->method);
	appendStringInfoString(buf, ", \"url\": ");
	append_json_string(buf, req->url);
	appendStringInfoString(buf, ", \"headers\": [");
	foreach(lc, req->headers)
	{
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		escape_json(buf, (char *) lfirst(lc));
	}
	appendStringInfoString(buf, "], \"body\": ");
	append_json_string(buf, req->body ? pnstrdup(req->body, req->body_len) : NULL);
	appendStringInfo(buf, ", \"is_change\": %s, \"rate_key\": ",
					 req->is_change ? "true" : "false");
	append_json_string(buf, req->rate_key);
	appendStringInfo(buf, ", \"rate_per_sec\": %g}", req->rate_per_sec);
}

static Datum
json_datum(StringInfo buf)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf->data));
}

/* driver_check(driver text, spec jsonb) RETURNS boolean: true, or ERROR. */
Datum
batch_ops_test_driver_check(PG_FUNCTION_ARGS)
{
	const OutboundDriver *d = probe_driver(PG_GETARG_TEXT_PP(0));

	d->check_spec(PG_GETARG_JSONB_P(1));
	PG_RETURN_BOOL(true);
}

/* driver_request(driver text, target jsonb) RETURNS jsonb */
Datum
batch_ops_test_driver_request(PG_FUNCTION_ARGS)
{
	const OutboundDriver *d = probe_driver(PG_GETARG_TEXT_PP(0));
	OutboundTarget *target = probe_target(PG_GETARG_JSONB_P(1));
	OutboundRequest req = {0};
	StringInfoData buf;

	d->build_request(target, &req);
	initStringInfo(&buf);
	append_request(&buf, &req);
	PG_RETURN_DATUM(json_datum(&buf));
}

/*
 * driver_parse(driver text, target jsonb, status int, body text,
 * content_type text, retry_after_ms int) RETURNS jsonb
 */
Datum
batch_ops_test_driver_parse(PG_FUNCTION_ARGS)
{
	const OutboundDriver *d = probe_driver(PG_GETARG_TEXT_PP(0));
	OutboundTarget *target = probe_target(PG_GETARG_JSONB_P(1));
	OutboundRequest req = {0};
	OutboundResponse resp = {0};
	OutboundOutcome out = {0};
	StringInfoData buf;

	d->build_request(target, &req);
	resp.status_code = PG_GETARG_INT32(2);
	resp.body = PG_ARGISNULL(3) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(3));
	resp.body_len = strlen(resp.body);
	resp.content_type = PG_ARGISNULL(4) ? NULL :
		text_to_cstring(PG_GETARG_TEXT_PP(4));
	resp.retry_after_ms = PG_ARGISNULL(5) ? -1 : PG_GETARG_INT32(5);
	if (d->parse_response == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("driver \"%s\" parses no HTTP reply", d->name)));
	d->parse_response(target, &req, &resp, &out);

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"success\": %s, \"output\": %s, \"error\": ",
					 out.success ? "true" : "false",
					 out.output ? JsonbToCString(NULL, &out.output->root,
												 VARSIZE(out.output)) : "null");
	append_json_string(&buf, out.error);
	appendStringInfoString(&buf, ", \"message\": ");
	append_json_string(&buf, out.message);
	appendStringInfo(&buf, ", \"retryable\": %s, \"next_delay_ms\": %d, \"next\": ",
					 out.retryable ? "true" : "false", out.next_delay_ms);
	if (out.next)
		append_request(&buf, out.next);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(json_datum(&buf));
}
