/*-------------------------------------------------------------------------
 *
 * driver_nxapi.c
 *	  The "nxapi" driver of outbound batches: Cisco NX-API, the "ins_api"
 *	  JSON format on POST /ins.
 *
 * The commands (type "cli_show") or config lines ("cli_conf") go in one
 * request, joined by " ;" as NX-API wants them; check_spec refuses a
 * command that holds a ";" itself.  The reply's ins_api.outputs.output is
 * one object for one command and an array for more; each has a "code"
 * ("200" for success), "msg", and "body" or "clierror".  The output is the
 * array of bodies (null where a command had none); the first command whose
 * code is not 200 makes the target a device_error with "msg: clierror".
 * No I/O, no catalog access, no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/json.h"

#include "driver_internal.h"

static void
nxapi_check_spec(Jsonb *spec)
{
	check_cli_spec(spec, false);
}

static void
nxapi_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	bool		change = target->config != NULL;
	List	   *cmds = jb_string_list(change ? target->config : target->command);
	StringInfoData input;
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&input);
	foreach(lc, cmds)
	{
		if (lc != list_head(cmds))
			appendStringInfoString(&input, " ;");
		appendStringInfoString(&input, (char *) lfirst(lc));
	}
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"ins_api\": {\"version\": \"1.0\", \"type\": \"%s\", "
					 "\"chunk\": \"0\", \"sid\": \"1\", \"input\": ",
					 change ? "cli_conf" : "cli_show");
	escape_json(&buf, input.data);
	appendStringInfoString(&buf, ", \"output_format\": \"json\"}}");

	driver_json_post(target, req, "/ins", &buf, change);
}

/* ins_api.outputs.output, or NULL. */
static JsonbValue *
nxapi_outputs(Jsonb *reply)
{
	Jsonb	   *ins = jb_get_jsonb(reply, "ins_api");
	Jsonb	   *outputs = jb_get_jsonb(ins, "outputs");
	JsonbValue *output = jb_get(outputs, "output");

	if (output == NULL || output->type != jbvBinary)
		return NULL;
	return output;
}

/* "msg: clierror", the clierror's trailing newlines cut. */
static char *
nxapi_message(Jsonb *o)
{
	char	   *msg = jb_get_string(o, "msg");
	char	   *clierror = jb_get_string(o, "clierror");
	char	   *code = jb_scalar_text(jb_get(o, "code"));
	int			len;

	if (clierror)
	{
		len = strlen(clierror);
		while (len > 0 && (clierror[len - 1] == '\n' || clierror[len - 1] == '\r'))
			clierror[--len] = '\0';
	}
	return psprintf("%s%s%s (NX-API code %s)", msg ? msg : "NX-API error",
					clierror ? ": " : "", clierror ? clierror : "", code);
}

static void
nxapi_parse_response(const OutboundTarget *target, const OutboundRequest *req,
					 const OutboundResponse *resp, OutboundOutcome *out)
{
	Jsonb	   *reply;
	JsonbValue *output;
	JsonbParseState *state = NULL;
	char	   *failure = NULL;
	int			n;
	bool		single;

	if (!outbound_outcome_http(resp, out))
		return;
	reply = driver_parse_json(resp->body, resp->body_len);
	if (reply == NULL || (output = nxapi_outputs(reply)) == NULL)
	{
		driver_fail(out, "protocol_error",
					"the reply has no ins_api.outputs.output");
		return;
	}
	single = JsonContainerIsObject(output->val.binary.data);
	n = single ? 1 : JsonContainerSize(output->val.binary.data);

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *ov = single ? output :
			getIthJsonbValueFromContainer(output->val.binary.data, i);
		Jsonb	   *o = jb_from_value(ov);
		JsonbValue *body = jb_get(o, "body");
		JsonbValue	null;
		char	   *code = jb_scalar_text(jb_get(o, "code"));

		null.type = jbvNull;
		pushJsonbValue(&state, WJB_ELEM, body ? body : &null);
		if (failure == NULL && strcmp(code, "200") != 0)
			failure = nxapi_message(o);
	}
	out->output = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
	if (failure)
	{
		driver_fail(out, "device_error", failure);
		return;
	}
	out->success = true;
}

const OutboundDriver outbound_driver_nxapi = {
	.name = "nxapi",
	.check_spec = nxapi_check_spec,
	.build_request = nxapi_build_request,
	.parse_response = nxapi_parse_response,
};
