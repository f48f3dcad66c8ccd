/*-------------------------------------------------------------------------
 *
 * driver_eapi.c
 *	  The "eapi" driver of outbound batches: Arista eAPI, JSON-RPC 2.0
 *	  "runCmds" on POST /command-api.
 *
 * A read sends the target's commands as they are.  A change sends
 * ["enable", "configure", <config...>, "end"], the enable carrying the
 * credential's enable_password as {"cmd": "enable", "input": ...} when it
 * has one.  The output is the reply's "result" array, one entry per
 * command or config line (the entries of enable, configure and end are
 * left out, so output[i] answers config[i]).
 *
 * A JSON-RPC error is a device_error (auth_error for eAPI's code 1005,
 * protocol_error for JSON-RPC's own negative codes) whose message is the
 * error's message followed by the failing command's "errors" (eAPI puts
 * them in the last entry of error.data); the enable password is masked in
 * it, as pyeapi does.  The output of a failed target is error.data, the
 * replies of the commands that ran.  No I/O, no catalog access, no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "driver_internal.h"

/* Entries before and after the config lines: enable, configure / end. */
#define EAPI_CONFIG_HEAD 2
#define EAPI_CONFIG_TAIL 1

static void
eapi_check_spec(Jsonb *spec)
{
	check_cli_spec(spec, true);
}

static void
append_cmds(StringInfo buf, List *cmds)
{
	ListCell   *lc;

	foreach(lc, cmds)
	{
		appendStringInfoString(buf, ", ");
		escape_json(buf, (char *) lfirst(lc));
	}
}

static void
eapi_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	StringInfoData buf;
	const char *pw = target->secret ? target->secret->enable_password : NULL;
	bool		change = target->config != NULL;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"jsonrpc\": \"2.0\", \"method\": \"runCmds\", "
						   "\"params\": {\"version\": 1, \"cmds\": [");
	if (change)
	{
		if (pw)
		{
			appendStringInfoString(&buf, "{\"cmd\": \"enable\", \"input\": ");
			escape_json(&buf, pw);
			appendStringInfoChar(&buf, '}');
		}
		else
			appendStringInfoString(&buf, "\"enable\"");
		appendStringInfoString(&buf, ", \"configure\"");
		append_cmds(&buf, jb_string_list(target->config));
		appendStringInfoString(&buf, ", \"end\"");
	}
	else
	{
		List	   *cmds = jb_string_list(target->command);

		/* the first without its leading ", " */
		if (cmds != NIL)
		{
			escape_json(&buf, (char *) linitial(cmds));
			append_cmds(&buf, list_delete_first(cmds));
		}
	}
	appendStringInfo(&buf, "], \"format\": \"json\"}, \"id\": \"batch_ops-%d\"}",
					 target->index);

	driver_json_post(target, req, "/command-api", &buf, change);
}

/* The elements [from, size - tail) of a jsonb array. */
static Jsonb *
array_slice(JsonbValue *array, int from, int tail)
{
	JsonbParseState *state = NULL;
	JsonbContainer *c = array->val.binary.data;
	int			n = JsonContainerSize(c);

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = from; i < n - tail; i++)
		pushJsonbValue(&state, WJB_ELEM, getIthJsonbValueFromContainer(c, i));
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
}

static bool
is_array(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/* "errors" of the last entry of error.data that has any, joined. */
static void
append_command_errors(StringInfo buf, JsonbValue *data)
{
	JsonbContainer *c = data->val.binary.data;

	for (int i = JsonContainerSize(c) - 1; i >= 0; i--)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(c, i);
		Jsonb	   *ej;
		JsonbValue *errors;
		List	   *texts;
		ListCell   *lc;

		if (e->type != jbvBinary || !JsonContainerIsObject(e->val.binary.data))
			continue;
		ej = jb_from_value(e);
		errors = jb_get(ej, "errors");
		if (!is_array(errors))
			continue;
		texts = jb_string_list(jb_from_value(errors));
		foreach(lc, texts)
		{
			appendStringInfoString(buf, lc == list_head(texts) ? ": " : "; ");
			appendStringInfoString(buf, (char *) lfirst(lc));
		}
		return;
	}
}

/*
 * Mask the secret where eAPI echoes it: a quoted string ('en' or "en") in
 * the failing command's text.  Unquoted matches are left alone, so that a
 * short password does not blot out the words around it.
 */
static void
mask_secret(char *s, const char *secret)
{
	size_t		len;
	char	   *p = s;

	if (secret == NULL || (len = strlen(secret)) == 0)
		return;
	while ((p = strstr(p, secret)) != NULL)
	{
		if (p > s && (p[-1] == '\'' || p[-1] == '"') &&
			(p[len] == '\'' || p[len] == '"'))
			memset(p, '*', len);
		p += len;
	}
}

static void
eapi_error(const OutboundTarget *target, Jsonb *error, OutboundOutcome *out)
{
	JsonbValue *code = jb_get(error, "code");
	JsonbValue *data = jb_get(error, "data");
	char	   *msg = jb_get_string(error, "message");
	char	   *codetext = code ? jb_scalar_text(code) : pstrdup("?");
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, msg ? msg : "eAPI error");
	if (is_array(data))
		append_command_errors(&buf, data);
	appendStringInfo(&buf, " (eAPI %s)", codetext);
	if (target->secret)
		mask_secret(buf.data, target->secret->enable_password);

	if (strcmp(codetext, "1005") == 0)
		driver_fail(out, "auth_error", buf.data);
	else if (codetext[0] == '-')
		driver_fail(out, "protocol_error", buf.data);
	else
		driver_fail(out, "device_error", buf.data);
	if (is_array(data))
		out->output = target->config ?
			array_slice(data, Min(EAPI_CONFIG_HEAD, JsonContainerSize(data->val.binary.data)), 0) :
			jb_from_value(data);
}

static void
eapi_parse_response(const OutboundTarget *target, const OutboundRequest *req,
					const OutboundResponse *resp, OutboundOutcome *out)
{
	Jsonb	   *reply;
	JsonbValue *result;
	Jsonb	   *error;

	if (!outbound_outcome_http(resp, out))
		return;
	reply = driver_parse_json(resp->body, resp->body_len);
	if (reply == NULL || !JB_ROOT_IS_OBJECT(reply))
	{
		driver_fail(out, "protocol_error", "the reply is not a JSON-RPC object");
		return;
	}
	if ((error = jb_get_jsonb(reply, "error")) != NULL &&
		JB_ROOT_IS_OBJECT(error))
	{
		eapi_error(target, error, out);
		return;
	}
	result = jb_get(reply, "result");
	if (!is_array(result))
	{
		driver_fail(out, "protocol_error",
					"the JSON-RPC reply has neither \"result\" nor \"error\"");
		return;
	}
	if (target->config &&
		JsonContainerSize(result->val.binary.data) >= EAPI_CONFIG_HEAD + EAPI_CONFIG_TAIL)
		out->output = array_slice(result, EAPI_CONFIG_HEAD, EAPI_CONFIG_TAIL);
	else
		out->output = jb_from_value(result);
	out->success = true;
}

const OutboundDriver outbound_driver_eapi = {
	.name = "eapi",
	.check_spec = eapi_check_spec,
	.build_request = eapi_build_request,
	.parse_response = eapi_parse_response,
};
