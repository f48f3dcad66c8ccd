/*-------------------------------------------------------------------------
 *
 * driver_meraki.c
 *	  The "meraki" driver of outbound batches: the Cisco Meraki Dashboard
 *	  API, one REST call per action (options.mode "requests").
 *
 * A target is one action {"resource", "operation", "body"}: create is POST,
 * update PUT and destroy DELETE, on connection_args.base_url (by default
 * https://api.meraki.com/api/v1) followed by the resource.  The key goes in
 * X-Cisco-Meraki-API-Key (the credential's api_key; its options.header
 * renames it), or as Bearer for a token.  Every request of one organization
 * shares one rate (rate_key "meraki:<organization_id>", 10 per second, the
 * Dashboard's own limit), and a 429's Retry-After is the engine's to honour.
 *
 * The output is the reply's JSON (null for 204).  400, 404 and 422 with
 * Meraki's {"errors": ["..."]} are a device_error whose message joins the
 * errors; every other status follows outbound_outcome_http().  Mode
 * "action_batch" is refused by check_spec (0A000) for now.  No I/O, no
 * catalog access, no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "driver_internal.h"

#define MERAKI_BASE_URL "https://api.meraki.com/api/v1"
#define MERAKI_KEY_HEADER "X-Cisco-Meraki-API-Key"
#define MERAKI_RATE_PER_SEC 10.0

static void
meraki_check_action(Jsonb *a, int i)
{
	char	   *resource = jb_get_string(a, "resource");
	char	   *op = jb_get_string(a, "operation");
	JsonbValue *body = jb_get(a, "body");

	if (resource == NULL || resource[0] != '/' || strpbrk(resource, " #\r\n") != NULL)
		check_spec_bad_key(psprintf("actions[%d].resource", i),
						   "A resource is a path that starts with \"/\", without spaces, \"#\", CR or LF.");
	if (op == NULL || (strcmp(op, "create") != 0 && strcmp(op, "update") != 0 &&
					   strcmp(op, "destroy") != 0))
		check_spec_bad_key(psprintf("actions[%d].operation", i),
						   "The operation must be create, update or destroy.");
	if (body && (body->type != jbvBinary ||
				 !JsonContainerIsObject(body->val.binary.data)))
		check_spec_bad_key(psprintf("actions[%d].body", i),
						   "The body must be an object.");
}

static void
meraki_check_spec(Jsonb *spec)
{
	JsonbValue *actions = jb_get(spec, "actions");
	Jsonb	   *options = jb_get_jsonb(spec, "options");
	JsonbValue *org = jb_get(options, "organization_id");
	char	   *mode = jb_get_string(options, "mode");
	int			n = 0;

	if (actions == NULL || actions->type != jbvBinary ||
		!JsonContainerIsArray(actions->val.binary.data) ||
		(n = JsonContainerSize(actions->val.binary.data)) == 0)
		check_spec_bad_key("actions",
						   "The meraki driver needs a non-empty array of actions.");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *a = getIthJsonbValueFromContainer(actions->val.binary.data, i);

		if (a->type != jbvBinary || !JsonContainerIsObject(a->val.binary.data))
			check_spec_bad_key(psprintf("actions[%d]", i),
							   "An action is an object with \"resource\", \"operation\" and \"body\".");
		meraki_check_action(jb_from_value(a), i);
	}
	if (org == NULL || (org->type != jbvString && org->type != jbvNumeric))
		check_spec_bad_key("options.organization_id",
						   "The meraki driver needs the organization's id.");
	if (mode && strcmp(mode, "action_batch") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("meraki mode \"action_batch\" is not supported yet"),
				 errhint("Use mode \"requests\".")));
	if (mode && strcmp(mode, "requests") != 0)
		check_spec_bad_key("options.mode",
						   "The mode must be \"requests\" or \"action_batch\".");
}

static void
meraki_auth(const OutboundTarget *target, OutboundRequest *req)
{
	const OutboundSecret *s = target->secret;

	if (s && s->api_key)
		outbound_request_header(req,
								s->api_key_header ? s->api_key_header : MERAKI_KEY_HEADER,
								s->api_key);
	else
		outbound_request_auth(target, req);
}

static void
meraki_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	Jsonb	   *a = target->action;
	char	   *base = jb_get_string(target->connection_args, "base_url");
	char	   *resource = jb_get_string(a, "resource");
	char	   *op = jb_get_string(a, "operation");
	Jsonb	   *body = jb_get_jsonb(a, "body");
	int			blen;

	if (base == NULL)
		base = pstrdup(MERAKI_BASE_URL);
	blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		base[--blen] = '\0';

	if (op && strcmp(op, "destroy") == 0)
		req->method = "DELETE";
	else if (op && strcmp(op, "update") == 0)
		req->method = "PUT";
	else
		req->method = "POST";
	req->url = psprintf("%s%s", base, resource ? resource : "/");
	outbound_request_header(req, "Accept", "application/json");
	meraki_auth(target, req);
	if (body && strcmp(req->method, "DELETE") != 0)
	{
		req->body = JsonbToCString(NULL, &body->root, VARSIZE(body));
		req->body_len = strlen(req->body);
		outbound_request_header(req, "Content-Type", "application/json");
	}
	req->is_change = true;
	req->rate_key = psprintf("meraki:%s",
							 jb_scalar_text(jb_get(target->options,
												   "organization_id")));
	req->rate_per_sec = MERAKI_RATE_PER_SEC;
}

/* Meraki's {"errors": [...]} joined by "; ", or NULL. */
static char *
meraki_errors(const OutboundResponse *resp)
{
	Jsonb	   *reply = driver_parse_json(resp->body, resp->body_len);
	JsonbValue *errors = jb_get(reply, "errors");
	List	   *texts;
	ListCell   *lc;
	StringInfoData buf;

	if (errors == NULL || errors->type != jbvBinary ||
		!JsonContainerIsArray(errors->val.binary.data))
		return NULL;
	texts = jb_string_list(jb_from_value(errors));
	if (texts == NIL)
		return NULL;
	initStringInfo(&buf);
	foreach(lc, texts)
	{
		if (lc != list_head(texts))
			appendStringInfoString(&buf, "; ");
		appendStringInfoString(&buf, (char *) lfirst(lc));
	}
	return buf.data;
}

static void
meraki_parse_response(const OutboundTarget *target, const OutboundRequest *req,
					  const OutboundResponse *resp, OutboundOutcome *out)
{
	long		status = resp->status_code;

	if (status == 400 || status == 404 || status == 422)
	{
		char	   *errors = meraki_errors(resp);

		if (errors)
		{
			driver_fail(out, "device_error", errors);
			return;
		}
	}
	if (!outbound_outcome_http(resp, out))
		return;
	if (resp->body_len > 0)
	{
		out->output = driver_parse_json(resp->body, resp->body_len);
		if (out->output == NULL)
		{
			driver_fail(out, "protocol_error", "the reply is not JSON");
			return;
		}
	}
	out->success = true;
}

const OutboundDriver outbound_driver_meraki = {
	.name = "meraki",
	.check_spec = meraki_check_spec,
	.build_request = meraki_build_request,
	.parse_response = meraki_parse_response,
};
