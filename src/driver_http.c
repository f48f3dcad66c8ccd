/*-------------------------------------------------------------------------
 *
 * driver_http.c
 *	  The "http" driver of outbound batches: any method, path, headers and
 *	  body, taken from the target's "request".
 *
 * {{host}}, {{port}}, {{index}} and {{device.<key>}} are replaced in the
 * path (values percent-encoded), in header values and in the body (in the
 * string values of a JSON body; a body given as a JSON string is sent as
 * that text).  A JSON body gets "Content-Type: application/json" unless
 * the request names one.  The credential is sent as outbound_request_auth()
 * says unless the request has its own Authorization header.
 *
 * The output is the reply's JSON if it parses, else its text as a JSON
 * string.  A request is a change unless its method is GET, HEAD or OPTIONS.
 * No I/O, no catalog access, no locks (see outbound_driver.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "driver_internal.h"

static void
http_check_spec(Jsonb *spec)
{
	check_request_spec(spec, false);
}

static void
http_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	Jsonb	   *r = target->request;
	char	   *method = jb_get_string(r, "method");
	char	   *path = jb_get_string(r, "path");
	Jsonb	   *body = jb_get_jsonb(r, "body");
	int			named;

	req->method = method ? method : "GET";
	req->url = driver_url(target,
						  driver_substitute(target, path ? path : "/", SUBST_PATH));
	named = driver_request_headers(target, jb_get_jsonb(r, "headers"), req);
	if (!(named & DRIVER_HEADER_AUTHORIZATION))
		outbound_request_auth(target, req);
	req->body = driver_body_json(target, body);
	req->body_len = req->body ? strlen(req->body) : 0;
	if (req->body && !(named & DRIVER_HEADER_CONTENT_TYPE) &&
		!JB_ROOT_IS_SCALAR(body))
		outbound_request_header(req, "Content-Type", "application/json");
	req->is_change = driver_method_is_change(req->method);
}

static void
http_parse_response(const OutboundTarget *target, const OutboundRequest *req,
					const OutboundResponse *resp, OutboundOutcome *out)
{
	if (!outbound_outcome_http(resp, out))
		return;
	out->output = driver_body_output(resp);
	if (out->output == NULL && resp->body_len > 0)
	{
		driver_fail(out, "protocol_error",
					"the reply is not text in the database encoding");
		return;
	}
	out->success = true;
}

const OutboundDriver outbound_driver_http = {
	.name = "http",
	.check_spec = http_check_spec,
	.build_request = http_build_request,
	.parse_response = http_parse_response,
};
