/*-------------------------------------------------------------------------
 *
 * driver_callback.c
 *	  The internal "callback" driver of outbound batches: the POST of a
 *	  finished action batch's answer to its callback URL (action_batch.c
 *	  submits the job; DESIGN.md "Action batches").
 *
 * The target's request is {"path": "/ab?x=1", "body": <the answer>}; the
 * body is sent as the answer's JSON text, with no template substitution
 * (the answer holds the caller's data, which may contain "{{...}}").  If
 * the target's credential has an hmac_secret, the request carries
 *
 *	X-Batch-Ops-Signature: t=<unix time>,v1=<hex HMAC-SHA256("<t>.<body>")>
 *
 * computed here (drivers do no I/O, but may compute), when the engine
 * builds the request, just before its first attempt: t is the time of
 * sending, not of the batch's end, so a receiver may bound the age of
 * what it accepts.  Retries re-send the same request (same t).
 *
 * Delivery is at least once: the request is not a change (is_change
 * false), so the engine retries it after connect errors and timeouts
 * too, and a resumed job sends it again; receivers deduplicate on the
 * batch's id.  Every 5xx counts as transient (DESIGN.md: "retried up to
 * 3 times"), besides the common 408 and 429.
 *
 * Only action_batch.c may submit a spec of this driver
 * (outbound_callback_internal, checked by outbound_spec_parse): a role
 * allowed to use a shared credential must not get arbitrary bodies
 * signed under its hmac_secret.
 *
 * No I/O, no catalog access, no locks (see outbound_driver.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "driver_internal.h"
#include "outbound.h"

/* true while action_batch.c submits a callback job */
bool		outbound_callback_internal = false;

/* "t=<t>,v1=<hex>" over "<t>.<body>" */
static char *
callback_signature(const char *secret, const char *body, size_t body_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char		hex[EVP_MAX_MD_SIZE * 2 + 1];
	long		t = (long) time(NULL);
	StringInfoData msg;
	unsigned int i;

	initStringInfo(&msg);
	appendStringInfo(&msg, "%ld.", t);
	appendBinaryStringInfo(&msg, body, body_len);
	if (HMAC(EVP_sha256(), secret, (int) strlen(secret),
			 (const unsigned char *) msg.data, msg.len, mac, &mac_len) == NULL)
		elog(ERROR, "HMAC-SHA256 failed");
	for (i = 0; i < mac_len; i++)
		snprintf(hex + i * 2, 3, "%02x", mac[i]);
	hex[mac_len * 2] = '\0';
	pfree(msg.data);
	return psprintf("t=%ld,v1=%s", t, hex);
}

static void
callback_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	Jsonb	   *r = target->request;
	char	   *path = r ? jb_get_string(r, "path") : NULL;
	Jsonb	   *body = r ? jb_get_jsonb(r, "body") : NULL;

	req->method = "POST";
	req->url = driver_url(target, path ? path : "/");
	req->body = body ? JsonbToCString(NULL, &body->root, VARSIZE(body)) : pstrdup("null");
	req->body_len = strlen(req->body);
	outbound_request_header(req, "Content-Type", "application/json");
	if (target->secret && target->secret->hmac_secret)
		outbound_request_header(req, "X-Batch-Ops-Signature",
								callback_signature(target->secret->hmac_secret,
												   req->body, req->body_len));
	req->is_change = false;
}

static void
callback_parse_response(const OutboundTarget *target, const OutboundRequest *req,
						const OutboundResponse *resp, OutboundOutcome *out)
{
	if (!outbound_outcome_http(resp, out))
	{
		if (resp->status_code >= 500 && resp->status_code <= 599)
			out->retryable = true;
		return;
	}
	/* the receiver's reply is kept if it is text; its content is not judged */
	out->output = driver_body_output(resp);
	out->success = true;
}

const OutboundDriver outbound_driver_callback = {
	.name = "callback",
	.check_spec = NULL,
	.build_request = callback_build_request,
	.parse_response = callback_parse_response,
};
