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
 * errors; every other status follows outbound_outcome_http().
 *
 * Mode "action_batch" sends actions as the organization's own action
 * batches: meraki_pack.c groups them into packs of options.batch_size
 * (at most 100; 20 with options.synchronous) and hands the engine one
 * target per pack, whose action is {"actions": [...]}.  The batch is POST
 * /organizations/{org}/actionBatches {"confirmed": true, "synchronous":
 * options.synchronous, "actions": [...]}, then polled with GET
 * /organizations/{org}/actionBatches/{id} through outcome->next (every
 * options.poll_interval_ms, 1000 by default) until its status is completed
 * (success, the output is the batch) or failed (device_error, its errors;
 * the output is the batch too).  meraki_pack.c turns that into one result
 * per action.  Meraki's refusal of a sixth running batch of the
 * organization is rate_limited and retryable, a change too (nothing was
 * created: not_applied).  No I/O, no catalog access, no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "driver_internal.h"

#define MERAKI_BASE_URL "https://api.meraki.com/api/v1"
#define MERAKI_KEY_HEADER "X-Cisco-Meraki-API-Key"
#define MERAKI_RATE_PER_SEC 10.0
#define MERAKI_POLL_MS 1000

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

/* options.poll_interval_ms: an integer of milliseconds, 10 to 600000. */
static void
meraki_check_poll(JsonbValue *v)
{
	char	   *text;
	char	   *end;
	long		ms;

	if (v == NULL)
		return;
	text = jb_scalar_text(v);
	errno = 0;
	ms = strtol(text, &end, 10);
	if (v->type != jbvNumeric || *end != '\0' || errno != 0 ||
		ms < 10 || ms > 600000)
		check_spec_bad_key("options.poll_interval_ms",
						   "It must be an integer from 10 to 600000.");
}

/*
 * options.synchronous, a boolean; options.batch_size, an integer from 1 to
 * Meraki's limit: 100 actions in a batch, 20 in a synchronous one.
 */
static void
meraki_check_batch(Jsonb *options)
{
	JsonbValue *sync = jb_get(options, "synchronous");
	JsonbValue *size = jb_get(options, "batch_size");
	int			max;
	char	   *end;
	long		n;

	if (sync && sync->type != jbvBool)
		check_spec_bad_key("options.synchronous", "It must be true or false.");
	if (size == NULL)
		return;
	max = meraki_synchronous(options) ? 20 : 100;
	errno = 0;
	n = strtol(jb_scalar_text(size), &end, 10);
	if (size->type != jbvNumeric || *end != '\0' || errno != 0 || n < 1 || n > max)
		check_spec_bad_key("options.batch_size",
						   psprintf("It must be an integer from 1 to %d: Meraki takes at most 100 actions in a batch, 20 in a synchronous one.",
									max));
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
	if (mode && strcmp(mode, "requests") != 0 &&
		strcmp(mode, "action_batch") != 0)
		check_spec_bad_key("options.mode",
						   "The mode must be \"requests\" or \"action_batch\".");
	meraki_check_poll(jb_get(options, "poll_interval_ms"));
	meraki_check_batch(options);
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

/* connection_args.base_url (or Meraki's), without a trailing "/". */
static char *
meraki_base(const OutboundTarget *target)
{
	char	   *base = jb_get_string(target->connection_args, "base_url");
	int			blen;

	if (base == NULL)
		base = pstrdup(MERAKI_BASE_URL);
	blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		base[--blen] = '\0';
	return base;
}

static bool
meraki_batch_mode(const OutboundTarget *target)
{
	char	   *mode = jb_get_string(target->options, "mode");

	return mode && strcmp(mode, "action_batch") == 0;
}

static void
meraki_common(const OutboundTarget *target, OutboundRequest *req)
{
	outbound_request_header(req, "Accept", "application/json");
	meraki_auth(target, req);
	req->rate_key = psprintf("meraki:%s",
							 jb_scalar_text(jb_get(target->options,
												   "organization_id")));
	req->rate_per_sec = MERAKI_RATE_PER_SEC;
}

/* .../organizations/{org}/actionBatches, the escaped org id. */
static char *
meraki_batches_url(const OutboundTarget *target)
{
	char	   *org = jb_scalar_text(jb_get(target->options, "organization_id"));

	return psprintf("%s/organizations/%s/actionBatches", meraki_base(target),
					driver_url_escape(org, SUBST_SEGMENT));
}

/* The POST that creates the batch. */
static void
meraki_build_batch(const OutboundTarget *target, OutboundRequest *req)
{
	Jsonb	   *chunk = jb_get_jsonb(target->action, "actions");
	Jsonb	   *a = target->action;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"confirmed\": true, \"synchronous\": %s, \"actions\": ",
					 meraki_synchronous(target->options) ? "true" : "false");
	if (chunk && JB_ROOT_IS_ARRAY(chunk) && !JB_ROOT_IS_SCALAR(chunk))
		JsonbToCString(&buf, &chunk->root, VARSIZE(chunk));
	else
	{
		appendStringInfoChar(&buf, '[');
		JsonbToCString(&buf, &a->root, VARSIZE(a));
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfoChar(&buf, '}');

	req->method = "POST";
	req->url = meraki_batches_url(target);
	meraki_common(target, req);
	outbound_request_header(req, "Content-Type", "application/json");
	req->body = buf.data;
	req->body_len = buf.len;
	req->is_change = true;
}

static void
meraki_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	Jsonb	   *a = target->action;
	char	   *resource = jb_get_string(a, "resource");
	char	   *op = jb_get_string(a, "operation");
	Jsonb	   *body = jb_get_jsonb(a, "body");

	if (meraki_batch_mode(target))
	{
		meraki_build_batch(target, req);
		return;
	}
	if (op && strcmp(op, "destroy") == 0)
		req->method = "DELETE";
	else if (op && strcmp(op, "update") == 0)
		req->method = "PUT";
	else
		req->method = "POST";
	req->url = psprintf("%s%s", meraki_base(target), resource ? resource : "/");
	meraki_common(target, req);
	if (body && strcmp(req->method, "DELETE") != 0)
	{
		req->body = JsonbToCString(NULL, &body->root, VARSIZE(body));
		req->body_len = strlen(req->body);
		outbound_request_header(req, "Content-Type", "application/json");
	}
	req->is_change = true;
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

/* The poll of batch id, after the interval. */
static void
meraki_poll(const OutboundTarget *target, const char *id, OutboundOutcome *out)
{
	OutboundRequest *poll = palloc0(sizeof(OutboundRequest));
	JsonbValue *iv = jb_get(target->options, "poll_interval_ms");

	poll->method = "GET";
	poll->url = psprintf("%s/%s", meraki_batches_url(target),
						 driver_url_escape(id, SUBST_SEGMENT));
	meraki_common(target, poll);
	poll->is_change = false;
	out->next = poll;
	/* check_spec made sure it is an integer in range */
	out->next_delay_ms = iv && iv->type == jbvNumeric ?
		(int) strtol(jb_scalar_text(iv), NULL, 10) : MERAKI_POLL_MS;
}

/* A batch (created or polled): done, failed, or poll again. */
static void
meraki_batch_state(const OutboundTarget *target, Jsonb *batch,
				   OutboundOutcome *out)
{
	Jsonb	   *status = jb_get_jsonb(batch, "status");
	JsonbValue *done = jb_get(status, "completed");
	JsonbValue *failed = jb_get(status, "failed");
	JsonbValue *idv = jb_get(batch, "id");

	out->output = batch;
	if (failed && failed->type == jbvBool && failed->val.boolean)
	{
		Jsonb	   *errors = jb_get_jsonb(status, "errors");
		List	   *texts = jb_string_list(errors);
		StringInfoData buf;
		ListCell   *lc;

		initStringInfo(&buf);
		foreach(lc, texts)
			appendStringInfo(&buf, "%s%s", lc == list_head(texts) ? "" : "; ",
							 (char *) lfirst(lc));
		driver_fail(out, "device_error",
					buf.len ? buf.data : "the action batch failed");
		out->output = batch;
		return;
	}
	out->success = true;
	if (done && done->type == jbvBool && done->val.boolean)
		return;
	if (idv == NULL)
	{
		driver_fail(out, "protocol_error", "the action batch has no id");
		return;
	}
	meraki_poll(target, jb_scalar_text(idv), out);
}

static void
meraki_parse_response(const OutboundTarget *target, const OutboundRequest *req,
					  const OutboundResponse *resp, OutboundOutcome *out)
{
	long		status = resp->status_code;
	bool		batch = meraki_batch_mode(target);

	if (status == 400 || status == 404 || status == 422)
	{
		char	   *errors = meraki_errors(resp);

		if (errors && batch && strstr(errors, "concurrently executing batches"))
		{
			/* Meraki's 5 running batches per organization: not created */
			driver_fail(out, "rate_limited", errors);
			out->retryable = true;
			out->not_applied = true;
			return;
		}
		if (errors)
		{
			driver_fail(out, "device_error", errors);
			return;
		}
	}
	if (!outbound_outcome_http(resp, out) || !driver_output_json(resp, out))
		return;
	if (batch)
	{
		if (out->output == NULL || !JB_ROOT_IS_OBJECT(out->output))
			driver_fail(out, "protocol_error", "the reply is not an action batch");
		else
			meraki_batch_state(target, out->output, out);
		return;
	}
	out->success = true;
}

const OutboundDriver outbound_driver_meraki = {
	.name = "meraki",
	.check_spec = meraki_check_spec,
	.build_request = meraki_build_request,
	.parse_response = meraki_parse_response,
};
