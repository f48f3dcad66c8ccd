/*-------------------------------------------------------------------------
 *
 * outbound_spec.c
 *	  The spec of an outbound batch (DESIGN.md "Outbound device / API
 *	  batches"): parsed, checked and turned into one OutboundTarget per
 *	  device (or, for meraki, per action).
 *
 * Every key is checked: an unknown or ill-typed one is an ERROR 22023
 * that names it, so a typo never silently falls back to a default.  The
 * spec is parsed at submit, as the caller, and again in the worker from
 * the stored copy, which is the spec less its inline passwords (these are
 * sealed into batch_ops.outbound_secret by kind_outbound.c) plus the
 * deadline that ttl gives (options.expires_at, which only a stored spec
 * may carry).
 *
 * A target's connection arguments are the spec's connection_args
 * overridden by the device's own keys of the same names (and by the keys
 * of a device's "connection_args" object, if it has one).
 *
 * Nothing here does I/O or takes a lock; credential names are resolved
 * by outbound_spec_attach_secrets() in a transaction, as the role that
 * submitted the job; in the worker, each name in a subtransaction of its
 * own, so that a credential that cannot be used fails only its targets
 * (credential_error).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "credential.h"
#include "outbound.h"
#include "outbound_policy.h"

int			batch_ops_max_outbound_targets = 100000;
int			batch_ops_max_sync_targets = 50;

static const char *const spec_keys[] = {
	"driver", "devices", "actions", "connection_args", "command", "config",
	"request", "options", NULL
};
static const char *const conn_keys[] = {
	"scheme", "port", "credential", "username", "password", "timeout",
	"connect_timeout", "base_url", "device_type", "host", NULL
};
static const char *const option_keys[] = {
	"queue_strategy", "ttl", "concurrency", "host_concurrency", "retries",
	"retry_unsafe", "max_output_bytes", "organization_id", "mode",
	"poll_interval_ms", "batch_size", "synchronous", NULL
};

static bool
key_in(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

static char *
key_list(const char *const *list)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; *list; list++)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", *list);
	return buf.data;
}

static void
bad_key(const char *where, const char *key, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for key \"%s%s\" of the outbound spec", where, key),
			 errdetail("The value must be %s.", what)));
}

/* Check that every key of obj is in list. */
static void
check_keys(Jsonb *obj, const char *where, const char *const *list)
{
	JsonbIterator *it = JsonbIteratorInit(&obj->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (!key_in(key, list))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%s%s\" in the outbound spec", where, key),
					 errhint("Valid keys are: %s.", key_list(list))));
	}
}

/* The value of key in obj (a JSON object), or NULL. */
static JsonbValue *
get_key(Jsonb *obj, const char *key)
{
	if (obj == NULL || !JB_ROOT_IS_OBJECT(obj))
		return NULL;
	return getKeyJsonValueFromContainer(&obj->root, key, strlen(key), NULL);
}

/* A container value as a Jsonb of its own. */
static Jsonb *
value_jsonb(JsonbValue *v)
{
	return JsonbValueToJsonb(v);
}

static Jsonb *
get_object(Jsonb *obj, const char *where, const char *key)
{
	JsonbValue *v = get_key(obj, key);
	Jsonb	   *j;

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_key(where, key, "a JSON object");
	j = value_jsonb(v);
	return j;
}

static char *
get_string(Jsonb *obj, const char *where, const char *key)
{
	JsonbValue *v = get_key(obj, key);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
		bad_key(where, key, "a string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * The key's number in *d; false if the key is absent or null.  A value
 * that is not a number is an error saying what was expected.
 */
static bool
key_number(Jsonb *obj, const char *where, const char *key,
		   const char *expected, double *d)
{
	JsonbValue *v = get_key(obj, key);

	if (v == NULL || v->type == jbvNull)
		return false;
	if (v->type != jbvNumeric)
		bad_key(where, key, expected);
	*d = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
											NumericGetDatum(v->val.numeric)));
	return true;
}

static double
get_number(Jsonb *obj, const char *where, const char *key, double dflt,
		   double min, double max)
{
	const char *expected = psprintf("a number between %g and %g", min, max);
	double		d;

	if (!key_number(obj, where, key, expected, &d))
		return dflt;
	if (!(d >= min && d <= max))
		bad_key(where, key, expected);
	return d;
}

static int
get_int(Jsonb *obj, const char *where, const char *key, int dflt, int min, int max)
{
	const char *expected = psprintf("an integer between %d and %d", min, max);
	double		d;

	if (!key_number(obj, where, key, expected, &d))
		return dflt;
	if (!(d >= min && d <= max) || d != floor(d))
		bad_key(where, key, expected);
	return (int) d;
}

static bool
get_bool(Jsonb *obj, const char *where, const char *key, bool dflt)
{
	JsonbValue *v = get_key(obj, key);

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvBool)
		bad_key(where, key, "true or false");
	return v->val.boolean;
}

/* command / config: an array of strings (a single string is one command). */
static Jsonb *
get_commands(Jsonb *obj, const char *where, const char *key)
{
	JsonbValue *v = get_key(obj, key);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
	{
		JsonbParseState *st = NULL;

		pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
		pushJsonbValue(&st, WJB_ELEM, v);
		return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_ARRAY, NULL));
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		bad_key(where, key, "an array of strings");
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			bad_key(where, key, "an array of strings");
		n++;
	}
	if (n == 0)
		bad_key(where, key, "a non-empty array of strings");
	return value_jsonb(v);
}

/* The options of the spec. */
static void
parse_options(Jsonb *options, bool stored, OutboundOptions *o)
{
	char	   *qs;

	memset(o, 0, sizeof(*o));
	o->concurrency = 100;
	o->host_concurrency = 4;
	o->retries = 2;
	o->max_output_bytes = 1024 * 1024;
	if (options == NULL)
		return;
	if (stored)
	{
		static const char *const stored_keys[] = {
			"queue_strategy", "ttl", "concurrency", "host_concurrency", "retries",
			"retry_unsafe", "max_output_bytes", "organization_id", "mode",
			"poll_interval_ms", "batch_size", "synchronous", "expires_at", NULL
		};

		check_keys(options, "options.", stored_keys);
		o->expires_at = (TimestampTz) get_number(options, "options.", "expires_at",
												 0, 0, 1e18);
	}
	else
		check_keys(options, "options.", option_keys);
	qs = get_string(options, "options.", "queue_strategy");
	if (qs && strcmp(qs, "pinned") == 0)
		o->pinned = true;
	else if (qs && strcmp(qs, "fifo") != 0)
		bad_key("options.", "queue_strategy", "\"fifo\" or \"pinned\"");
	o->ttl = get_int(options, "options.", "ttl", 0, 0, 86400 * 30);
	o->concurrency = get_int(options, "options.", "concurrency", 100, 1, 10000);
	o->host_concurrency = get_int(options, "options.", "host_concurrency", 4, 1, 1000);
	o->retries = get_int(options, "options.", "retries", 2, 0, 10);
	o->retry_unsafe = get_bool(options, "options.", "retry_unsafe", false);
	o->max_output_bytes = (int64) get_number(options, "options.", "max_output_bytes",
											 1024 * 1024, 1, 64 * 1024 * 1024);
}

/* ssh: the driver is ssh, whose scheme is "ssh" and which has device types */
static void
check_conn_args(Jsonb *ca, const char *where, bool ssh)
{
	char	   *scheme;

	if (ca == NULL)
		return;
	check_keys(ca, where, conn_keys);
	scheme = get_string(ca, where, "scheme");
	if (ssh && scheme && strcmp(scheme, "ssh") != 0)
		bad_key(where, "scheme", "\"ssh\" with driver \"ssh\"");
	if (!ssh && scheme && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		bad_key(where, "scheme", "\"https\" or \"http\"");
	if (!ssh && get_key(ca, "device_type"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"%sdevice_type\" is valid only with driver \"ssh\"", where)));
	if (!ssh && get_key(ca, "host"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"%shost\" is valid only with driver \"ssh\"", where),
				 errhint("Other drivers take their hosts in \"devices\".")));
	(void) get_string(ca, where, "device_type");
	(void) get_string(ca, where, "host");
	(void) get_int(ca, where, "port", 0, 1, 65535);
	(void) get_string(ca, where, "credential");
	(void) get_string(ca, where, "username");
	(void) get_string(ca, where, "password");
	(void) get_string(ca, where, "base_url");
	(void) get_number(ca, where, "timeout", 30, 0.001, 86400);
	(void) get_number(ca, where, "connect_timeout", 10, 0.001, 3600);
}

/*
 * The target's connection arguments: the spec's, then the device's keys
 * of the same names, then the device's own connection_args; no password.
 */
static Jsonb *
merge_conn_args(Jsonb *spec_ca, Jsonb *device, Jsonb *dev_ca)
{
	JsonbParseState *st = NULL;
	Jsonb	   *srcs[3] = {spec_ca, device, dev_ca};
	int			i;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < 3; i++)
	{
		JsonbIterator *it;
		JsonbValue	k;
		JsonbValue	v;
		JsonbIteratorToken tok;

		if (srcs[i] == NULL)
			continue;
		it = JsonbIteratorInit(&srcs[i]->root);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;

			if (tok != WJB_KEY)
				continue;
			(void) JsonbIteratorNext(&it, &v, true);
			key = pnstrdup(k.val.string.val, k.val.string.len);
			if (!key_in(key, conn_keys) || strcmp(key, "password") == 0)
				continue;
			pushJsonbValue(&st, WJB_KEY, &k);
			pushJsonbValue(&st, WJB_VALUE, &v);
		}
	}
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/* Remove the key path from a jsonb (jsonb #- path). */
static Jsonb *
delete_path(Jsonb *j, const char *a, const char *b, const char *c)
{
	Datum		elems[3];
	int			n = 0;
	ArrayType  *path;

	elems[n++] = CStringGetTextDatum(a);
	if (b)
		elems[n++] = CStringGetTextDatum(b);
	if (c)
		elems[n++] = CStringGetTextDatum(c);
	path = construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_delete_path, JsonbPGetDatum(j),
											  PointerGetDatum(path)));
}

/* What every device shares unless it overrides it (parsed once). */
typedef struct SpecDefaults
{
	Jsonb	   *spec_ca;		/* the spec's connection_args */
	Jsonb	   *merged_ca;		/* those, merged, without a password */
	Jsonb	   *command;
	Jsonb	   *config;
	Jsonb	   *request;
	Jsonb	   *last_ca;		/* the last device's own merged arguments */
	const char *last_host;		/* the last device's host */
	const char *last_credential;	/* the last device's credential name */
	const char *last_username;	/* the last device's username */
} SpecDefaults;

/* An inline password, kept where the spec lives. */
static void
add_secret(OutboundSpec *spec, int index, char *password)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(spec));
	OutboundInlineSecret *s = palloc(sizeof(OutboundInlineSecret));

	s->index = index;
	s->password = pstrdup(password);
	spec->secrets = lappend(spec->secrets, s);
	MemoryContextSwitchTo(old);
}

static Jsonb *
jsonb_copy(Jsonb *j)
{
	return j ? DatumGetJsonbPCopy(JsonbPGetDatum(j)) : NULL;
}

static char *
str_copy(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

/*
 * Whether any string of the spec holds "{{device.": the only use of a
 * target's device object once the spec is parsed (driver_substitute() in
 * outbound_driver.c).  Without one, the worker keeps no copy of each
 * device (about 80 bytes each, 8 MB for 100,000).
 */
static bool
mentions_device(Jsonb *spec)
{
	static const char needle[] = "{{device.";
	const int	nlen = sizeof(needle) - 1;
	JsonbIterator *it = JsonbIteratorInit(&spec->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		const char *p;
		int			left;

		if (v.type != jbvString || (tok != WJB_VALUE && tok != WJB_ELEM &&
									tok != WJB_KEY))
			continue;
		p = v.val.string.val;
		left = v.val.string.len;
		while (left >= nlen)
		{
			const char *brace = memchr(p, '{', left - nlen + 1);

			if (brace == NULL)
				break;
			if (memcmp(brace, needle, nlen) == 0)
				return true;
			left -= brace + 1 - p;
			p = brace + 1;
		}
	}
	return false;
}

/*
 * A kept copy of s, shared with the previous device's when equal: a
 * credential name given once in connection_args would otherwise be
 * copied for each of 100,000 devices (3 MB).
 */
static const char *
str_share(const char *s, const char **last)
{
	if (s == NULL)
		return NULL;
	if (*last && strcmp(*last, s) == 0)
		return *last;
	return *last = str_copy(s);
}

/*
 * Copy what a device's target keeps out of the scratch context it was
 * parsed in (into the current one); what it shares with the spec is not
 * copied.
 */
static bool
jsonb_same(Jsonb *a, Jsonb *b)
{
	return a && b && VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0;
}

/*
 * Memory: there may be 100,000 targets, kept for the whole job.  Equal
 * merged arguments of consecutive devices (every device giving the same
 * port, say), and equal host names, are kept once; the scheme is one of
 * two constants.
 */
static void
keep_target(OutboundSpec *spec, SpecDefaults *d, int i)
{
	OutboundTarget *t = &spec->targets[i];

	t->hostname = str_share(t->hostname, &d->last_host);
	if (strcmp(t->scheme, "https") == 0)
		t->scheme = "https";
	else if (strcmp(t->scheme, "http") == 0)
		t->scheme = "http";
	else
		t->scheme = str_copy(t->scheme);
	if (t->connection_args == d->merged_ca)
		;
	else if (jsonb_same(t->connection_args, d->merged_ca))
		t->connection_args = d->merged_ca;
	else if (jsonb_same(t->connection_args, d->last_ca))
		t->connection_args = d->last_ca;
	else
		t->connection_args = d->last_ca = jsonb_copy(t->connection_args);
	if (t->command != d->command)
		t->command = jsonb_copy(t->command);
	if (t->config != d->config)
		t->config = jsonb_copy(t->config);
	if (t->request != d->request)
		t->request = jsonb_copy(t->request);
	spec->credential[i] = str_share(spec->credential[i], &d->last_credential);
	spec->username[i] = str_share(spec->username[i], &d->last_username);
}

/* scheme://host:port of a target, for the policy's check at submit. */
static char *
target_base_url(const OutboundTarget *t)
{
	bool		v6 = strchr(t->hostname, ':') != NULL;

	return psprintf("%s://%s%s%s:%d/", t->scheme, v6 ? "[" : "", t->hostname,
					v6 ? "]" : "", t->port);
}

/* Fill a target's transport fields from its merged connection arguments. */
static void
target_transport(OutboundTarget *t, const char *host, bool ssh)
{
	char	   *scheme = get_string(t->connection_args, "connection_args.", "scheme");

	t->hostname = host;
	t->scheme = scheme ? scheme : (ssh ? "ssh" : "https");
	t->port = get_int(t->connection_args, "connection_args.", "port",
					  ssh ? 22 : strcmp(t->scheme, "http") == 0 ? 80 : 443,
					  1, 65535);
	t->timeout_ms = (int) (1000 * get_number(t->connection_args, "connection_args.",
											 "timeout", 30, 0.001, 86400));
	t->connect_timeout_ms = (int) (1000 * get_number(t->connection_args,
													 "connection_args.",
													 "connect_timeout", 10,
													 0.001, 3600));
}

/*
 * meraki, options.mode "action_batch": the actions go in packs, each one
 * of the organization's action batches (meraki_pack.c), and Meraki runs
 * at most 5 batches of one organization at a time (it refuses a sixth),
 * so no more than 5 run at once per host (one spec carries one
 * organization), and 5 unless the spec asks for fewer.
 */
static void
meraki_cap_batches(Jsonb *options, OutboundOptions *o)
{
	char	   *mode = options ? get_string(options, "options.", "mode") : NULL;

	if (mode && strcmp(mode, "action_batch") == 0)
		o->host_concurrency = Min(get_int(options, "options.",
										  "host_concurrency", 5, 1, 1000),
								  5);
}

/* meraki: the host of base_url (default api.meraki.com). */
static char *
meraki_host(Jsonb *ca, char **scheme, int *port)
{
	char	   *base = get_string(ca, "connection_args.", "base_url");
	CURLU	   *u;
	char	   *host = NULL;
	char	   *sch = NULL;
	char	   *portstr = NULL;
	char	   *result;

	if (base == NULL)
		base = "https://api.meraki.com/api/v1";
	u = curl_url();
	if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &sch, 0) != CURLUE_OK)
	{
		curl_url_cleanup(u);
		bad_key("connection_args.", "base_url", "an http or https URL");
	}
	(void) curl_url_get(u, CURLUPART_PORT, &portstr, CURLU_DEFAULT_PORT);
	result = pstrdup(host);
	*scheme = pstrdup(sch);
	*port = portstr ? atoi(portstr) : 443;
	curl_free(host);
	curl_free(sch);
	if (portstr)
		curl_free(portstr);
	curl_url_cleanup(u);
	if (strcmp(*scheme, "http") != 0 && strcmp(*scheme, "https") != 0)
		bad_key("connection_args.", "base_url", "an http or https URL");
	return result;
}

/* Count the elements of an array value, checking they are objects. */
static int
count_objects(JsonbValue *arr, const char *key)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	if (arr->type != jbvBinary || !JsonContainerIsArray(arr->val.binary.data))
		bad_key("", key, "an array of objects");
	it = JsonbIteratorInit(arr->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvBinary || !JsonContainerIsObject(e.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for key \"%s[%d]\" of the outbound spec", key, n),
					 errdetail("Each element must be a JSON object.")));
		n++;
	}
	return n;
}

static void
check_count(int n, bool sync, const char *key)
{
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the outbound spec has no targets"),
				 errhint("Give at least one element in \"%s\".", key)));
	if (sync && n > batch_ops_max_sync_targets)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("run_outbound of %d targets exceeds the limit of %d", n,
						batch_ops_max_sync_targets),
				 errdetail("The limit is set by batch_ops.max_sync_targets."),
				 errhint("Use batch_ops.submit_outbound for larger batches.")));
	if (n > batch_ops_max_outbound_targets)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("outbound batch of %d targets exceeds the limit of %d", n,
						batch_ops_max_outbound_targets),
				 errdetail("The limit is set by batch_ops.max_outbound_targets."),
				 errhint("Split the targets into several jobs.")));
}

/* A device's target. */

static void
device_target(OutboundSpec *spec, SpecDefaults *d, Jsonb *device,
			  int i, bool cli, bool rest)
{
	Jsonb	   *spec_ca = d->spec_ca;
	bool		own_conn = false;
	OutboundTarget *t = &spec->targets[i];
	char	   *where = psprintf("devices[%d].", i);
	char	   *host = get_string(device, where, "host");
	Jsonb	   *dev_ca = get_object(device, where, "connection_args");
	bool		ssh = spec->driver->transport == OUTBOUND_TRANSPORT_SSH;
	char	   *pw;

	if (host == NULL || host[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"%shost\" of the outbound spec is missing", where),
				 errdetail("Each device needs a host name or address.")));
	/* the device's own connection keys are checked as connection_args are */
	{
		JsonbParseState *st = NULL;
		JsonbIterator *it = JsonbIteratorInit(&device->root);
		JsonbValue	k;
		JsonbValue	v;
		JsonbIteratorToken tok;

		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;

			if (tok != WJB_KEY)
				continue;
			(void) JsonbIteratorNext(&it, &v, true);
			key = pnstrdup(k.val.string.val, k.val.string.len);
			if (!key_in(key, conn_keys) || strcmp(key, "host") == 0)
				continue;
			own_conn = true;
			pushJsonbValue(&st, WJB_KEY, &k);
			pushJsonbValue(&st, WJB_VALUE, &v);
		}
		if (own_conn)
			check_conn_args(JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL)),
							where, ssh);
	}
	check_conn_args(dev_ca, psprintf("devices[%d].connection_args.", i), ssh);

	t->index = i;
	t->device = device;
	/* most devices override nothing: they share the spec's arguments */
	t->connection_args = (own_conn || dev_ca) ?
		merge_conn_args(spec_ca, device, dev_ca) : d->merged_ca;
	target_transport(t, host, ssh);
	t->command = get_commands(device, where, "command");
	t->config = get_commands(device, where, "config");
	t->request = get_object(device, where, "request");
	if (!t->command && !t->config && !t->request)
	{
		t->command = d->command;
		t->config = d->config;
		t->request = d->request;
	}
	if (cli && (t->command == NULL) == (t->config == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target %d of the outbound spec needs exactly one of \"command\" and \"config\"", i),
				 errhint("Give \"command\" (read) or \"config\" (change) in the spec or in the device.")));
	if (rest && t->request == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target %d of the outbound spec has no \"request\"", i),
				 errhint("Driver \"%s\" sends the spec's or the device's request object (method, path, headers, body).",
						 spec->driver_name)));

	spec->credential[i] = get_string(t->connection_args, "connection_args.", "credential");
	spec->username[i] = get_string(t->connection_args, "connection_args.", "username");
	pw = get_string(device, where, "password");
	if (pw == NULL && dev_ca)
		pw = get_string(dev_ca, where, "password");
	if (pw)
		add_secret(spec, i, pw);
}

/*
 * The spec with every device's inline password removed (its
 * connection_args' too), in one pass: the stored copy of a job.
 */
static Jsonb *
strip_device_passwords(Jsonb *stored, OutboundSpec *spec)
{
	JsonbParseState *st = NULL;
	JsonbValue *arr;
	Datum		path[1];
	int			i;

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < spec->ntargets; i++)
	{
		Jsonb	   *dev = spec->targets[i].device;
		JsonbIterator *it = JsonbIteratorInit(&dev->root);
		JsonbValue	k;
		JsonbValue	v;
		JsonbIteratorToken tok;

		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			if (tok != WJB_KEY)
				continue;
			(void) JsonbIteratorNext(&it, &v, true);
			if (k.val.string.len == 8 && strncmp(k.val.string.val, "password", 8) == 0)
				continue;
			if (k.val.string.len == 15 &&
				strncmp(k.val.string.val, "connection_args", 15) == 0 &&
				v.type == jbvBinary)
			{
				Jsonb	   *ca = delete_path(value_jsonb(&v), "password", NULL, NULL);

				v.val.binary.data = &ca->root;
				v.val.binary.len = VARSIZE(ca) - VARHDRSZ;
			}
			pushJsonbValue(&st, WJB_KEY, &k);
			pushJsonbValue(&st, WJB_VALUE, &v);
		}
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	arr = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	path[0] = CStringGetTextDatum("devices");
	return DatumGetJsonbP(DirectFunctionCall4(jsonb_set, JsonbPGetDatum(stored),
											  PointerGetDatum(construct_array(path, 1, TEXTOID, -1, false, TYPALIGN_INT)),
											  JsonbPGetDatum(JsonbValueToJsonb(arr)),
											  BoolGetDatum(false)));
}

/*
 * NetPulse's request for one device names it in connection_args.host:
 * the devices array of that one device.
 */
static JsonbValue *
single_device(const char *host)
{
	JsonbParseState *st = NULL;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *res = palloc(sizeof(JsonbValue));
	Jsonb	   *arr;

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "host";
	k.val.string.len = 4;
	v.type = jbvString;
	v.val.string.val = (char *) host;
	v.val.string.len = strlen(host);
	pushJsonbValue(&st, WJB_KEY, &k);
	pushJsonbValue(&st, WJB_VALUE, &v);
	pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	arr = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_ARRAY, NULL));
	res->type = jbvBinary;
	res->val.binary.data = &arr->root;
	res->val.binary.len = VARSIZE(arr) - VARHDRSZ;
	return res;
}

/*
 * Parse and check a spec.  sync: run_outbound's limit; stored: the copy
 * a worker reads (may carry options.expires_at).
 */
OutboundSpec *
outbound_spec_parse(Jsonb *specj, bool sync, bool stored)
{
	OutboundSpec *spec = palloc0(sizeof(OutboundSpec));
	SpecDefaults defaults;
	bool		with_password = false;
	Jsonb	   *spec_ca;
	Jsonb	   *options;
	JsonbValue *devices;
	JsonbValue *actions;
	char	   *pw;
	bool		cli;
	bool		rest;
	bool		ssh;
	int			n;

	if (!JB_ROOT_IS_OBJECT(specj))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the outbound spec must be a JSON object")));
	check_keys(specj, "", spec_keys);
	spec->driver_name = get_string(specj, "", "driver");
	if (spec->driver_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"driver\" of the outbound spec is missing"),
				 errhint("Valid drivers are: eapi, nxapi, restconf, http, meraki, ssh (alias netmiko).")));
#ifndef WITH_SSH
	if (strcmp(spec->driver_name, "ssh") == 0 || strcmp(spec->driver_name, "netmiko") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("driver \"%s\" is not supported by this build", spec->driver_name),
				 errhint("batch_ops was built without libssh2 (libssh2-1-dev); use a device's HTTP API instead: eapi, nxapi, restconf or http.")));
#endif
	spec->driver = outbound_driver_lookup(spec->driver_name);
	if (spec->driver == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown driver \"%s\" in the outbound spec", spec->driver_name),
				 errhint("Valid drivers are: eapi, nxapi, restconf, http, meraki, ssh (alias netmiko).")));
	/* callbacks are action_batch.c's (driver_callback.c) */
	if (strcmp(spec->driver->name, "callback") == 0 && !stored &&
		!outbound_callback_internal)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown driver \"%s\" in the outbound spec", spec->driver_name),
				 errhint("Valid drivers are: eapi, nxapi, restconf, http, meraki, ssh (alias netmiko).")));
	ssh = spec->driver->transport == OUTBOUND_TRANSPORT_SSH;
	cli = strcmp(spec->driver->name, "eapi") == 0 ||
		strcmp(spec->driver->name, "nxapi") == 0 || ssh;
	rest = strcmp(spec->driver->name, "http") == 0 || strcmp(spec->driver->name, "restconf") == 0;

	spec_ca = get_object(specj, "", "connection_args");
	check_conn_args(spec_ca, "connection_args.", ssh);
	options = get_object(specj, "", "options");
	parse_options(options, stored, &spec->opts);
	/* ssh: a kept session per host unless told otherwise (NetPulse's way) */
	if (ssh && (options == NULL || get_key(options, "queue_strategy") == NULL))
		spec->opts.pinned = true;
	defaults.spec_ca = spec_ca;
	defaults.merged_ca = merge_conn_args(spec_ca, NULL, NULL);
	defaults.command = get_commands(specj, "", "command");
	defaults.config = get_commands(specj, "", "config");
	defaults.request = get_object(specj, "", "request");
	defaults.last_ca = NULL;
	defaults.last_host = NULL;
	defaults.last_credential = NULL;
	defaults.last_username = NULL;

	devices = get_key(specj, "devices");
	actions = get_key(specj, "actions");
	if (ssh && devices == NULL && get_key(spec_ca, "host"))
		devices = single_device(get_string(spec_ca, "connection_args.", "host"));
	if (strcmp(spec->driver->name, "meraki") == 0)
	{
		if (devices)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key \"devices\" is not valid with driver \"meraki\""),
					 errhint("A meraki spec carries \"actions\".")));
		if (actions == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key \"actions\" of the outbound spec is missing")));
		n = count_objects(actions, "actions");
		meraki_cap_batches(options, &spec->opts);
	}
	else
	{
		if (actions)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key \"actions\" is valid only with driver \"meraki\"")));
		if (devices == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key \"devices\" of the outbound spec is missing")));
		n = count_objects(devices, "devices");
	}
	check_count(n, sync, actions ? "actions" : "devices");

	/*
	 * The driver's own checks (22023 naming the key), in a context of
	 * their own: they may allocate per device, which the job would
	 * otherwise keep (20 MB for 100,000 devices).
	 */
	if (spec->driver->check_spec)
	{
		MemoryContext check = AllocSetContextCreate(CurrentMemoryContext,
													"batch_ops outbound spec check",
													ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(check);

		spec->driver->check_spec(specj);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(check);
	}

	spec->ntargets = n;
	spec->targets = palloc0(sizeof(OutboundTarget) * n);
	spec->credential = palloc0(sizeof(char *) * n);
	spec->username = palloc0(sizeof(char *) * n);
	spec->stored = specj;
	pw = spec_ca ? get_string(spec_ca, "connection_args.", "password") : NULL;
	if (pw)
	{
		add_secret(spec, -1, pw);
		spec->stored = delete_path(spec->stored, "connection_args", "password", NULL);
	}

	{
		JsonbIterator *it = JsonbIteratorInit((actions ? actions : devices)->val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;
		int			i = 0;
		char	   *mscheme = NULL;
		int			mport = 443;
		char	   *mhost = actions ? meraki_host(spec_ca, &mscheme, &mport) : NULL;
		MemoryContext scratch = AllocSetContextCreate(CurrentMemoryContext,
													  "batch_ops outbound device",
													  ALLOCSET_SMALL_SIZES);
		/* at submit, every device (its password is stripped from it) */
		bool		keep_devices = !stored || mentions_device(specj);
		const char *mcred = NULL;
		const char *muser = NULL;

		if (actions)
		{
			/* one spec, one set of connection arguments for every action */
			mcred = get_string(defaults.merged_ca, "", "credential");
			muser = get_string(defaults.merged_ca, "", "username");
		}
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			Jsonb	   *obj;

			if (tok != WJB_ELEM)
				continue;
			if (actions)
			{
				OutboundTarget *t = &spec->targets[i];

				obj = value_jsonb(&e);
				t->index = i;
				t->action = obj;
				t->device = obj;
				t->connection_args = defaults.merged_ca;
				target_transport(t, mhost, false);
				t->scheme = mscheme;
				t->port = mport;
				spec->credential[i] = mcred;
				spec->username[i] = muser;
			}
			else
			{
				/* the checks' garbage goes with scratch; what stays is copied */
				MemoryContext keep;

				obj = keep_devices ? value_jsonb(&e) : NULL;
				keep = MemoryContextSwitchTo(scratch);
				if (obj == NULL)
					obj = value_jsonb(&e);
				device_target(spec, &defaults, obj, i, cli, rest);
				if (get_key(obj, "password") ||
					(get_key(obj, "connection_args") &&
					 get_key(get_object(obj, "", "connection_args"), "password")))
					with_password = true;
				MemoryContextSwitchTo(keep);
				keep_target(spec, &defaults, i);
				if (!keep_devices)
					spec->targets[i].device = NULL;
				MemoryContextReset(scratch);
			}
			spec->targets[i].options = options;
			i++;
		}
	}
	if (with_password)
		spec->stored = strip_device_passwords(spec->stored, spec);
	return spec;
}

/* At submit and before a run: every target's host must be allowed. */
void
outbound_spec_check_urls(OutboundSpec *spec)
{
	int			i;

	for (i = 0; i < spec->ntargets; i++)
	{
		const OutboundTarget *t = &spec->targets[i];
		const char *why = strcmp(t->scheme, "ssh") == 0 ?
			outbound_host_refusal(t->hostname) :
			outbound_url_refusal(target_base_url(t));

		if (why)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("outbound target %d (%s) is not allowed", i,
							spec->targets[i].hostname),
					 errdetail("%s", why),
					 errhint("A superuser lists the hosts and networks that outbound batches may reach in batch_ops.outbound_networks.")));
	}
}

/*
 * Each target's secret: its credential (as role; needs a transaction) or
 * its inline username and password (inline_secrets: the spec's, or the
 * ones read back from batch_ops.outbound_secret).
 */
/*
 * A target's named credential, in a subtransaction: an ERROR (the
 * credential was dropped since the submit, the key file changed) fails
 * this target only, "credential_error" with the error's message.  A
 * cancel, and anything worse than ERROR, still stops the job.
 */
static OutboundSecret *
fetch_credential(OutboundSpec *spec, int i, Oid role)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	OutboundSecret *volatile secret = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		secret = credential_fetch(spec->credential[i], role);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
			edata->elevel > ERROR)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (spec->credential_error == NULL)
			spec->credential_error = palloc0(sizeof(char *) * spec->ntargets);
		spec->credential_error[i] = edata->message;
		secret = NULL;
	}
	PG_END_TRY();
	return secret;
}

/*
 * per_target_errors: a named credential that cannot be fetched fails its
 * targets (the worker); else it is the caller's ERROR (run_outbound).
 */
void
outbound_spec_attach_secrets(OutboundSpec *spec, Oid role, List *inline_secrets,
							 bool per_target_errors)
{
	char	   *all_pw = NULL;
	char	  **pw = palloc0(sizeof(char *) * spec->ntargets);
	ListCell   *lc;
	int			i;

	foreach(lc, inline_secrets)
	{
		OutboundInlineSecret *s = lfirst(lc);

		if (s->index < 0)
			all_pw = s->password;
		else if (s->index < spec->ntargets)
			pw[s->index] = s->password;
	}
	for (i = 0; i < spec->ntargets; i++)
	{
		OutboundTarget *t = &spec->targets[i];
		char	   *p = pw[i] ? pw[i] : all_pw;

		if (spec->credential[i])
		{
			int			j;

			/* one fetch per name */
			for (j = 0; j < i; j++)
				if (spec->credential[j] &&
					strcmp(spec->credential[j], spec->credential[i]) == 0)
					break;
			if (j < i)
			{
				t->secret = spec->targets[j].secret;
				if (spec->credential_error)
					spec->credential_error[i] = spec->credential_error[j];
			}
			else if (per_target_errors)
				t->secret = fetch_credential(spec, i, role);
			else
				t->secret = credential_fetch(spec->credential[i], role);
		}
		else if (spec->username[i] || p)
		{
			OutboundSecret *s = palloc0(sizeof(OutboundSecret));

			s->username = (char *) spec->username[i];
			s->password = p;
			t->secret = s;
		}
	}
}

/* Settings, from _PG_init. */
void
outbound_spec_init(void)
{
	DefineCustomIntVariable("batch_ops.max_outbound_targets",
							"Maximum number of targets in one outbound job.",
							NULL,
							&batch_ops_max_outbound_targets,
							100000, 1, 10000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.max_sync_targets",
							"Maximum number of targets of one run_outbound call.",
							NULL,
							&batch_ops_max_sync_targets,
							50, 1, 10000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}
