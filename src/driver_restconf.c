/*-------------------------------------------------------------------------
 *
 * driver_restconf.c
 *	  The "restconf" driver of outbound batches: RFC 8040 over
 *	  application/yang-data+json.
 *
 * request.path names the resource under /restconf/data (a path that
 * starts with /restconf/ is taken as it is, for operations); method
 * (GET by default), headers and body are those of the http driver, with
 * the same {{...}} substitution; in the path a value is percent-encoded as
 * one segment ("Gi1/0" becomes "Gi1%2F0", as RFC 8040 wants list keys).  Accept, and Content-Type when there is a
 * body, are application/yang-data+json unless the request names its own.
 *
 * A 2xx reply's output is its JSON (null when empty, as after PUT, PATCH
 * or DELETE: 204).  A 4xx other than 401, 403, 408 and 429 whose body is
 * an RFC 8040 errors document ({"ietf-restconf:errors": {"error": [...]}})
 * is a device_error, message "error-tag: error-message" per error; every
 * other status follows outbound_outcome_http().  No I/O, no catalog
 * access, no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "driver_internal.h"

#define YANG_JSON "application/yang-data+json"

static void
restconf_check_spec(Jsonb *spec)
{
	check_request_spec(spec, true);
}

static void
restconf_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	Jsonb	   *r = target->request;
	char	   *method = jb_get_string(r, "method");
	char	   *path = jb_get_string(r, "path");
	char	   *full;
	int			named;

	if (path == NULL)
		path = "/";
	path = driver_substitute(target, path, SUBST_SEGMENT);
	if (strncmp(path, "/restconf/", 10) == 0)
		full = path;
	else
		full = psprintf("/restconf/data%s%s", path[0] == '/' ? "" : "/", path);

	req->method = method ? method : "GET";
	req->url = driver_url(target, full);
	named = driver_request_headers(target, jb_get_jsonb(r, "headers"), req);
	if (!(named & DRIVER_HEADER_ACCEPT))
		outbound_request_header(req, "Accept", YANG_JSON);
	outbound_request_auth(target, req);
	req->body = driver_body_json(target, jb_get_jsonb(r, "body"));
	req->body_len = req->body ? strlen(req->body) : 0;
	if (req->body && !(named & DRIVER_HEADER_CONTENT_TYPE))
		outbound_request_header(req, "Content-Type", YANG_JSON);
	req->is_change = driver_method_is_change(req->method);
}

/*
 * The errors of an RFC 8040 errors document as "tag: message; ...", or
 * NULL if body is not one.
 */
static char *
restconf_errors(const OutboundResponse *resp)
{
	Jsonb	   *reply = driver_parse_json(resp->body, resp->body_len);
	Jsonb	   *errors = jb_get_jsonb(reply, "ietf-restconf:errors");
	JsonbValue *list = jb_get(errors, "error");
	StringInfoData buf;
	int			n;

	if (list == NULL || list->type != jbvBinary)
		return NULL;
	initStringInfo(&buf);
	n = JsonContainerIsArray(list->val.binary.data) ?
		JsonContainerSize(list->val.binary.data) : 1;
	for (int i = 0; i < n; i++)
	{
		Jsonb	   *e = JsonContainerIsArray(list->val.binary.data) ?
			jb_from_value(getIthJsonbValueFromContainer(list->val.binary.data, i)) :
			jb_from_value(list);
		char	   *tag = jb_get_string(e, "error-tag");
		char	   *msg = jb_get_string(e, "error-message");

		if (i > 0)
			appendStringInfoString(&buf, "; ");
		appendStringInfo(&buf, "%s%s%s", tag ? tag : "error",
						 msg ? ": " : "", msg ? msg : "");
	}
	return n > 0 ? buf.data : NULL;
}

static void
restconf_parse_response(const OutboundTarget *target, const OutboundRequest *req,
						const OutboundResponse *resp, OutboundOutcome *out)
{
	long		status = resp->status_code;

	if (status >= 400 && status <= 499 && status != 401 && status != 403 &&
		status != 408 && status != 429)
	{
		char	   *errors = restconf_errors(resp);

		if (errors)
		{
			driver_fail(out, "device_error", errors);
			out->output = driver_parse_json(resp->body, resp->body_len);
			return;
		}
	}
	if (!outbound_outcome_http(resp, out) || !driver_output_json(resp, out))
		return;
	out->success = true;
}

const OutboundDriver outbound_driver_restconf = {
	.name = "restconf",
	.check_spec = restconf_check_spec,
	.build_request = restconf_build_request,
	.parse_response = restconf_parse_response,
};
