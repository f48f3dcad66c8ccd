/*-------------------------------------------------------------------------
 *
 * outbound_driver.c
 *	  The registry of outbound drivers, the status mapping and request
 *	  helpers every driver shares, and the small jsonb and template helpers
 *	  of driver_internal.h.
 *
 * The registry is a static table (the pattern of core's InternalBGWorkers):
 * adding a driver is one file and one line here.  "netmiko" is the ssh
 * driver's alias (NetPulse's name for its default driver); a build
 * without libssh2 keeps the ssh driver in the table (its spec check) and
 * the spec answers 0A000 for it (outbound_spec.c).
 *
 * Everything called from build_request() or parse_response() runs in the
 * job worker outside a transaction: no catalog access, no SPI, and nothing
 * a device sends may throw.  driver_parse_json() therefore catches the
 * data exceptions of jsonb_in() (malformed JSON, unconvertible escapes,
 * nesting too deep) and answers NULL; any other error is re-thrown.  No
 * locks are taken.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "driver_internal.h"

/* Longest piece of a reply quoted in a message. */
#define DRIVER_MESSAGE_MAX 200

static const OutboundDriver *const drivers[] = {
	&outbound_driver_http,
	&outbound_driver_eapi,
	&outbound_driver_nxapi,
	&outbound_driver_restconf,
	&outbound_driver_meraki,
	&outbound_driver_callback,
	&outbound_driver_ssh,
};

const OutboundDriver *
outbound_driver_lookup(const char *name)
{
	if (name == NULL)
		return NULL;
	if (strcmp(name, "netmiko") == 0)
		return &outbound_driver_ssh;
	for (int i = 0; i < lengthof(drivers); i++)
	{
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	}
	return NULL;
}

/* ----------------------------------------------------------------
 * Replies
 * ----------------------------------------------------------------
 */

/* The reply's body, if it is text in the database encoding. */
static bool
body_is_text(const char *body, size_t len)
{
	if (body == NULL)
		return false;
	if (memchr(body, '\0', len) != NULL)
		return false;
	return pg_verify_mbstr(GetDatabaseEncoding(), body, (int) len, true);
}

/* "HTTP 503", followed by the start of the body when it is text. */
static char *
status_message(const OutboundResponse *resp)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "HTTP %ld", resp->status_code);
	if (resp->body_len > 0 && body_is_text(resp->body, resp->body_len))
	{
		int			len = pg_mbcliplen(resp->body, (int) resp->body_len,
									   DRIVER_MESSAGE_MAX);

		appendStringInfoString(&buf, ": ");
		appendBinaryStringInfo(&buf, resp->body, len);
	}
	return buf.data;
}

bool
outbound_outcome_http(const OutboundResponse *resp, OutboundOutcome *out)
{
	if (resp->status_code >= 200 && resp->status_code <= 299)
		return true;

	out->success = false;
	out->output = NULL;
	out->retryable = false;
	switch (resp->status_code)
	{
		case 401:
		case 403:
			out->error = "auth_error";
			break;
		case 429:
			out->error = "rate_limited";
			out->retryable = true;
			break;
		case 408:
		case 502:
		case 503:
		case 504:
			out->error = "http_error";
			out->retryable = true;
			break;
		default:
			out->error = "http_error";
			break;
	}
	out->message = status_message(resp);
	return false;
}

void
driver_fail(OutboundOutcome *out, const char *error, const char *message)
{
	out->success = false;
	out->error = error;
	out->message = message ? pstrdup(message) : NULL;
	out->retryable = false;
}

/*
 * The body as jsonb, or NULL if it is not JSON (or not text in the
 * database encoding, or nested too deep).
 */
Jsonb *
driver_parse_json(const char *body, size_t len)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile result = NULL;

	if (len == 0 || !body_is_text(body, len))
		return NULL;

	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													CStringGetDatum(body)));
	}
	PG_CATCH();
	{
		int			code = geterrcode();

		MemoryContextSwitchTo(cxt);
		if (ERRCODE_TO_CATEGORY(code) != ERRCODE_DATA_EXCEPTION &&
			code != ERRCODE_STATEMENT_TOO_COMPLEX)
			PG_RE_THROW();
		FlushErrorState();
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

/*
 * The output of a plain reply: its JSON if it parses, else its text as a
 * JSON string; NULL for an empty body or one that is not text.
 */
Jsonb *
driver_body_output(const OutboundResponse *resp)
{
	Jsonb	   *jb;

	if (resp->body == NULL || resp->body_len == 0)
		return NULL;
	jb = driver_parse_json(resp->body, resp->body_len);
	if (jb == NULL && body_is_text(resp->body, resp->body_len))
		jb = jb_string(resp->body, (int) resp->body_len);
	return jb;
}

/*
 * Sets out->output to a reply's JSON (left NULL for an empty body); false,
 * with a protocol_error, when the body is not JSON.
 */
bool
driver_output_json(const OutboundResponse *resp, OutboundOutcome *out)
{
	if (resp->body_len == 0)
		return true;
	out->output = driver_parse_json(resp->body, resp->body_len);
	if (out->output == NULL)
	{
		driver_fail(out, "protocol_error", "the reply is not JSON");
		return false;
	}
	return true;
}

/* ----------------------------------------------------------------
 * Requests
 * ----------------------------------------------------------------
 */

/*
 * Header lines never carry CR or LF: check_spec refuses them in templates
 * and device values, and a secret holding one is cut there rather than
 * allowed to start a header of its own.
 */
void
outbound_request_header(OutboundRequest *req, const char *name,
						const char *value)
{
	char	   *line = psprintf("%s: %s", name, value ? value : "");

	for (char *p = line; *p; p++)
	{
		if (*p == '\r' || *p == '\n')
		{
			*p = '\0';
			break;
		}
	}
	req->headers = lappend(req->headers, line);
}

/* Token as Bearer, else the API key in its header, else Basic. */
void
outbound_request_auth(const OutboundTarget *target, OutboundRequest *req)
{
	const OutboundSecret *s = target->secret;

	if (s == NULL)
		return;
	if (s->token)
		outbound_request_header(req, "Authorization",
								psprintf("Bearer %s", s->token));
	else if (s->api_key)
		outbound_request_header(req,
								s->api_key_header ? s->api_key_header : "X-API-Key",
								s->api_key);
	else if (s->username)
	{
		char	   *plain = psprintf("%s:%s", s->username,
									 s->password ? s->password : "");
		int			plen = strlen(plain);
		int			elen = pg_b64_enc_len(plen);
		char	   *enc = palloc(elen + 1);
		int			n = pg_b64_encode(plain, plen, enc, elen);

		if (n < 0)
			elog(ERROR, "could not encode credentials");
		enc[n] = '\0';
		outbound_request_header(req, "Authorization",
								psprintf("Basic %s", enc));
		explicit_bzero(plain, plen);
	}
}

bool
driver_method_is_change(const char *method)
{
	return !(strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
			 strcmp(method, "OPTIONS") == 0);
}

char *
driver_url(const OutboundTarget *target, const char *path)
{
	bool		v6 = strchr(target->hostname, ':') != NULL;

	if (path == NULL || *path == '\0')
		path = "/";
	return psprintf("%s://%s%s%s:%d%s%s", target->scheme,
					v6 ? "[" : "", target->hostname, v6 ? "]" : "",
					target->port, *path == '/' ? "" : "/", path);
}

/*
 * Adds the request's own headers (an object; values substituted, SUBST_TEXT,
 * others than strings skipped) and returns which of the DRIVER_HEADER_*
 * names were among them, compared without regard to case.
 */
int
driver_request_headers(const OutboundTarget *target, Jsonb *headers,
					   OutboundRequest *req)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	int			named = 0;

	if (headers == NULL || !JB_ROOT_IS_OBJECT(headers))
		return 0;
	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvString)
			continue;
		outbound_request_header(req, name,
								driver_substitute(target,
												  pnstrdup(v.val.string.val,
														   v.val.string.len),
												  SUBST_TEXT));
		if (pg_strcasecmp(name, "content-type") == 0)
			named |= DRIVER_HEADER_CONTENT_TYPE;
		if (pg_strcasecmp(name, "authorization") == 0)
			named |= DRIVER_HEADER_AUTHORIZATION;
		if (pg_strcasecmp(name, "accept") == 0)
			named |= DRIVER_HEADER_ACCEPT;
	}
	return named;
}

/*
 * A POST of a JSON document (body, which the request keeps) to path, as
 * eAPI and NX-API want: JSON both ways, the credential as
 * outbound_request_auth() says.
 */
void
driver_json_post(const OutboundTarget *target, OutboundRequest *req,
				 const char *path, StringInfo body, bool is_change)
{
	req->method = "POST";
	req->url = driver_url(target, path);
	outbound_request_header(req, "Content-Type", "application/json");
	outbound_request_header(req, "Accept", "application/json");
	outbound_request_auth(target, req);
	req->body = body->data;
	req->body_len = body->len;
	req->is_change = is_change;
}

/* ----------------------------------------------------------------
 * jsonb
 * ----------------------------------------------------------------
 */

JsonbValue *
jb_get(Jsonb *jb, const char *key)
{
	JsonbValue *v;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	return v;
}

char *
jb_get_string(Jsonb *jb, const char *key)
{
	JsonbValue *v = jb_get(jb, key);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

Jsonb *
jb_get_jsonb(Jsonb *jb, const char *key)
{
	JsonbValue *v = jb_get(jb, key);

	return v ? jb_from_value(v) : NULL;
}

Jsonb *
jb_from_value(JsonbValue *v)
{
	return JsonbValueToJsonb(v);
}

Jsonb *
outbound_jsonb_wrap(const char *key, Jsonb *value)
{
	JsonbParseState *st = NULL;
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v.type = jbvBinary;
	v.val.binary.data = &value->root;
	v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&st, WJB_KEY, &k);
	pushJsonbValue(&st, WJB_VALUE, &v);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

Jsonb *
jb_string(const char *s, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = len;
	return JsonbValueToJsonb(&v);
}

/* A scalar as text ("" for null); containers as JSON text. */
char *
jb_scalar_text(JsonbValue *v)
{
	if (v == NULL)
		return pstrdup("");
	switch (v->type)
	{
		case jbvNull:
			return pstrdup("");
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			{
				Jsonb	   *jb = JsonbValueToJsonb(v);

				return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
			}
	}
}

/* The strings of a jsonb array (others skipped: check_spec refused them). */
List *
jb_string_list(Jsonb *array)
{
	List	   *result = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (array == NULL || !JB_ROOT_IS_ARRAY(array) || JB_ROOT_IS_SCALAR(array))
		return NIL;
	it = JsonbIteratorInit(&array->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_ELEM && v.type == jbvString)
			result = lappend(result, pnstrdup(v.val.string.val,
											  v.val.string.len));
	}
	return result;
}

/* ----------------------------------------------------------------
 * Templates
 * ----------------------------------------------------------------
 */

/*
 * What a substituted value keeps as it is: RFC 3986 pchar and "/" (minus
 * "%") in a path, the unreserved characters in a segment.
 */
static bool
url_char_ok(unsigned char c, int escape)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || (c != '\0' && strchr("-._~", c) != NULL))
		return true;
	return escape == SUBST_PATH && c != '\0' &&
		strchr("!$&'()*+,;=:@/", c) != NULL;
}

static void
append_value(StringInfo buf, const char *value, int escape)
{
	if (escape == SUBST_TEXT)
	{
		appendStringInfoString(buf, value);
		return;
	}
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
	{
		if (url_char_ok(*p, escape))
			appendStringInfoChar(buf, (char) *p);
		else
			appendStringInfo(buf, "%%%02X", *p);
	}
}

/* value percent-encoded (SUBST_PATH or SUBST_SEGMENT) */
char *
driver_url_escape(const char *value, int escape)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_value(&buf, value, escape);
	return buf.data;
}

/* The value of one placeholder name, or NULL if the name is unknown. */
static char *
placeholder_value(const OutboundTarget *target, const char *name, int len)
{
	if (len == 4 && strncmp(name, "host", 4) == 0)
		return pstrdup(target->hostname);
	if (len == 4 && strncmp(name, "port", 4) == 0)
		return psprintf("%d", target->port);
	if (len == 5 && strncmp(name, "index", 5) == 0)
		return psprintf("%d", target->index);
	if (len > 7 && strncmp(name, "device.", 7) == 0)
	{
		char	   *key = pnstrdup(name + 7, len - 7);

		return jb_scalar_text(jb_get(target->device, key));
	}
	return NULL;
}

/*
 * tmpl with {{host}}, {{port}}, {{index}} and {{device.<key>}} replaced
 * (a missing or null device key by ""); anything else is left as written.
 * escape says how substituted values are encoded (driver_internal.h).
 */
char *
driver_substitute(const OutboundTarget *target, const char *tmpl,
				  int escape)
{
	StringInfoData buf;
	const char *p = tmpl;

	initStringInfo(&buf);
	while (*p)
	{
		const char *open = strstr(p, "{{");
		const char *close;
		char	   *value;

		if (open == NULL || (close = strstr(open + 2, "}}")) == NULL)
			break;
		appendBinaryStringInfo(&buf, p, open - p);
		value = placeholder_value(target, open + 2, close - open - 2);
		if (value)
			append_value(&buf, value, escape);
		else
			appendBinaryStringInfo(&buf, open, close + 2 - open);
		p = close + 2;
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

/*
 * The text of a request body: a JSON string is sent as it is (after
 * substitution), anything else as JSON with substitution in its string
 * values (not in keys).
 */
char *
driver_body_json(const OutboundTarget *target, Jsonb *body)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue *res = NULL;
	JsonbIteratorToken tok;
	Jsonb	   *out;

	if (body == NULL)
		return NULL;
	if (JB_ROOT_IS_SCALAR(body))
	{
		JsonbValue	scalar;

		if (JsonbExtractScalar(&body->root, &scalar) &&
			scalar.type == jbvString)
			return driver_substitute(target,
									 pnstrdup(scalar.val.string.val,
											  scalar.val.string.len),
									 false);
	}

	it = JsonbIteratorInit(&body->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvString)
		{
			char	   *s = driver_substitute(target,
											  pnstrdup(v.val.string.val,
													   v.val.string.len),
											  SUBST_TEXT);

			v.val.string.val = s;
			v.val.string.len = strlen(s);
		}
		res = pushJsonbValue(&state, tok,
							 tok < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	out = JsonbValueToJsonb(res);
	return JsonbToCString(NULL, &out->root, VARSIZE(out));
}

/* ----------------------------------------------------------------
 * Spec checks (at submit, in a transaction, as the caller)
 * ----------------------------------------------------------------
 */

void
check_spec_bad_key(const char *key, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid outbound spec key \"%s\"", key),
			 detail ? errdetail_internal("%s", detail) : 0));
}

/* The i-th element of the spec's devices array, or NULL. */
static Jsonb *
spec_device(Jsonb *spec, int i)
{
	JsonbValue *devices = jb_get(spec, "devices");
	JsonbValue *v;

	if (devices == NULL || devices->type != jbvBinary ||
		!JsonContainerIsArray(devices->val.binary.data))
		return NULL;
	v = getIthJsonbValueFromContainer(devices->val.binary.data, i);
	return v ? jb_from_value(v) : NULL;
}

static int
spec_device_count(Jsonb *spec)
{
	JsonbValue *devices = jb_get(spec, "devices");

	if (devices == NULL || devices->type != jbvBinary ||
		!JsonContainerIsArray(devices->val.binary.data))
		return 0;
	return JsonContainerSize(devices->val.binary.data);
}

/* command / config: a non-empty array of non-empty strings. */
static void
check_string_array(JsonbValue *v, const char *key, bool allow_semicolon)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) == 0)
		check_spec_bad_key(key, "It must be a non-empty array of strings.");
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString || e.val.string.len == 0 ||
			memchr(e.val.string.val, '\0', e.val.string.len) != NULL)
			check_spec_bad_key(psprintf("%s[%d]", key, n),
							   "Commands must be non-empty strings.");
		if (!allow_semicolon &&
			memchr(e.val.string.val, ';', e.val.string.len) != NULL)
			check_spec_bad_key(psprintf("%s[%d]", key, n),
							   "This driver joins commands with \";\": a command cannot contain one.");
		n++;
	}
}

/* The command/config pair of one level (spec or device); true if any. */
static bool
check_cli_level(Jsonb *obj, const char *prefix, bool allow_semicolon)
{
	JsonbValue *command = jb_get(obj, "command");
	JsonbValue *config = jb_get(obj, "config");

	if (command && config)
		check_spec_bad_key(psprintf("%sconfig", prefix),
						   "Give either \"command\" (read) or \"config\" (change), not both.");
	if (command)
		check_string_array(command, psprintf("%scommand", prefix),
						   allow_semicolon);
	if (config)
		check_string_array(config, psprintf("%sconfig", prefix),
						   allow_semicolon);
	return command || config;
}

/*
 * CLI drivers (eapi, nxapi): exactly one of command and config for every
 * device, its own pair replacing the spec's.
 */
void
check_cli_spec(Jsonb *spec, bool allow_semicolon)
{
	bool		at_spec = check_cli_level(spec, "", allow_semicolon);
	int			n = spec_device_count(spec);

	for (int i = 0; i < n; i++)
	{
		char	   *prefix = psprintf("devices[%d].", i);

		if (!check_cli_level(spec_device(spec, i), prefix, allow_semicolon) &&
			!at_spec)
			check_spec_bad_key(psprintf("%scommand", prefix),
							   "The driver needs \"command\" or \"config\", in the spec or in each device.");
	}
	if (n == 0 && !at_spec)
		check_spec_bad_key("command",
						   "The driver needs \"command\" or \"config\".");
}

static bool
header_name_ok(const char *name, int len)
{
	if (len == 0)
		return false;
	for (int i = 0; i < len; i++)
	{
		unsigned char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

static bool
has_crlf(const char *s, int len)
{
	return memchr(s, '\r', len) || memchr(s, '\n', len) || memchr(s, '\0', len);
}

/*
 * Device values a header template refers to ({{device.k}}) must not carry
 * CR or LF either, or substitution would start a header of its own.
 */
static void
check_header_devices(Jsonb *spec, const char *tmpl, const char *key)
{
	const char *p = tmpl;
	int			n = spec_device_count(spec);

	while ((p = strstr(p, "{{device.")) != NULL)
	{
		const char *close = strstr(p, "}}");
		char	   *dkey;

		if (close == NULL)
			break;
		dkey = pnstrdup(p + 9, close - p - 9);
		for (int i = 0; i < n; i++)
		{
			char	   *s = jb_scalar_text(jb_get(spec_device(spec, i), dkey));

			if (has_crlf(s, strlen(s)))
				check_spec_bad_key(psprintf("devices[%d].%s", i, dkey),
								   psprintf("Header \"%s\" uses it, and header values cannot contain CR or LF.", key));
		}
		p = close + 2;
	}
}

static void
check_headers(Jsonb *spec, JsonbValue *headers, const char *prefix)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	const char *key = psprintf("%sheaders", prefix);

	if (headers->type != jbvBinary ||
		!JsonContainerIsObject(headers->val.binary.data))
		check_spec_bad_key(key, "It must be an object of header names and string values.");
	it = JsonbIteratorInit(headers->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;
		char	   *hkey;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		hkey = psprintf("%s.%s", key, name);
		tok = JsonbIteratorNext(&it, &v, true);
		if (!header_name_ok(k.val.string.val, k.val.string.len))
			check_spec_bad_key(hkey, "A header name must be an HTTP token.");
		if (pg_strcasecmp(name, "host") == 0 ||
			pg_strcasecmp(name, "content-length") == 0 ||
			pg_strcasecmp(name, "transfer-encoding") == 0 ||
			pg_strcasecmp(name, "connection") == 0)
			check_spec_bad_key(hkey, "Host, Content-Length, Transfer-Encoding and Connection are set by the engine.");
		if (v.type != jbvString || has_crlf(v.val.string.val, v.val.string.len))
			check_spec_bad_key(hkey, "A header value must be a string without CR or LF.");
		check_header_devices(spec, pnstrdup(v.val.string.val, v.val.string.len),
							 name);
	}
}

static const char *const methods[] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"
};

/* One request object; true if it has a path. */
static bool
check_request_level(Jsonb *spec, JsonbValue *req, const char *prefix)
{
	Jsonb	   *r;
	JsonbValue *v;
	const char *key = psprintf("%srequest", prefix);
	const char *sub = psprintf("%srequest.", prefix);

	if (req->type != jbvBinary || !JsonContainerIsObject(req->val.binary.data))
		check_spec_bad_key(key, "It must be an object with \"method\", \"path\", \"headers\" and \"body\".");
	r = jb_from_value(req);
	if ((v = jb_get(r, "method")) != NULL)
	{
		bool		ok = false;

		if (v->type == jbvString)
		{
			char	   *m = pnstrdup(v->val.string.val, v->val.string.len);

			for (int i = 0; i < lengthof(methods); i++)
				ok |= strcmp(m, methods[i]) == 0;
		}
		if (!ok)
			check_spec_bad_key(psprintf("%smethod", sub),
							   "The method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS.");
	}
	if ((v = jb_get(r, "path")) != NULL)
	{
		if (v->type != jbvString || v->val.string.len == 0 ||
			v->val.string.val[0] != '/' ||
			memchr(v->val.string.val, ' ', v->val.string.len) ||
			memchr(v->val.string.val, '#', v->val.string.len) ||
			has_crlf(v->val.string.val, v->val.string.len))
			check_spec_bad_key(psprintf("%spath", sub),
							   "The path must be a string that starts with \"/\", without spaces, \"#\", CR or LF.");
	}
	if ((v = jb_get(r, "headers")) != NULL)
		check_headers(spec, v, sub);
	return jb_get(r, "path") != NULL;
}

/*
 * http and restconf: "request" in the spec or in each device (a device's
 * own replaces the spec's whole, as outbound_spec.c merges them);
 * path_required for restconf.
 */
void
check_request_spec(Jsonb *spec, bool path_required)
{
	JsonbValue *req = jb_get(spec, "request");
	bool		spec_path = false;
	int			n = spec_device_count(spec);

	if (req)
		spec_path = check_request_level(spec, req, "");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *dreq = jb_get(spec_device(spec, i), "request");
		char	   *prefix = psprintf("devices[%d].", i);
		bool		path = spec_path;

		if (dreq)
			path = check_request_level(spec, dreq, prefix);
		else if (req == NULL)
			check_spec_bad_key(psprintf("%srequest", prefix),
							   "The driver needs \"request\", in the spec or in each device.");
		if (path_required && !path)
			check_spec_bad_key(psprintf("%srequest.path", prefix),
							   "The driver needs \"request.path\".");
	}
	if (n == 0 && req == NULL)
		check_spec_bad_key("request", "The driver needs \"request\".");
	if (n == 0 && path_required && !spec_path)
		check_spec_bad_key("request.path", "The driver needs \"request.path\".");
}
