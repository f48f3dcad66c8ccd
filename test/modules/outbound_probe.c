/*-------------------------------------------------------------------------
 *
 * outbound_probe.c
 *	  Test-only SQL functions over credential.c and outbound_policy.c;
 *	  linked into the test build (make TEST_MODULES=1) and bound by
 *	  test/t/070_credentials.pl and test/t/071_outbound_policy.pl.
 *
 * None of them returns a secret: credential_probe() gives the names of a
 * credential's fields and an MD5 of each value, which a test compares with
 * md5() of the value it stored; seal_probe() the MD5 of a round trip.
 * outbound_fetch() sends a GET through a libcurl handle set up by
 * outbound_policy_apply(), in the calling backend, and says what came of
 * it: the URL check's refusal, the address the open-socket check refused,
 * libcurl's error, or the HTTP status.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/md5.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "credential.h"
#include "outbound_policy.h"

extern PGDLLEXPORT Datum batch_ops_test_credential_probe(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_test_seal_probe(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_test_outbound_fetch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_test_outbound_sender(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(batch_ops_test_credential_probe);
PG_FUNCTION_INFO_V1(batch_ops_test_seal_probe);
PG_FUNCTION_INFO_V1(batch_ops_test_outbound_fetch);
PG_FUNCTION_INFO_V1(batch_ops_test_outbound_sender);

/* outbound_sender(role regrole) RETURNS bool: outbound_check_sender() */
Datum
batch_ops_test_outbound_sender(PG_FUNCTION_ARGS)
{
	outbound_check_sender(PG_GETARG_OID(0));
	PG_RETURN_BOOL(true);
}

static void
append_field(StringInfo out, const char *name, const char *value)
{
	char		hex[33];
	const char *errstr;

	if (value == NULL)
		return;
	if (!pg_md5_hash(value, strlen(value), hex, &errstr))
		elog(ERROR, "md5 failed: %s", errstr);
	appendStringInfo(out, "%s%s=%s", out->len ? " " : "", name, hex);
}

/*
 * credential_probe(name text, role regrole) RETURNS text: what
 * credential_fetch() gives that role, as "field=md5 ..." (header in clear).
 */
Datum
batch_ops_test_credential_probe(PG_FUNCTION_ARGS)
{
	OutboundSecret *s = credential_fetch(text_to_cstring(PG_GETARG_TEXT_PP(0)),
										 PG_GETARG_OID(1));
	StringInfoData out;

	initStringInfo(&out);
	append_field(&out, "username", s->username);
	append_field(&out, "password", s->password);
	append_field(&out, "enable_password", s->enable_password);
	append_field(&out, "token", s->token);
	append_field(&out, "api_key", s->api_key);
	append_field(&out, "ca_cert", s->ca_cert);
	append_field(&out, "client_cert", s->client_cert);
	append_field(&out, "client_key", s->client_key);
	append_field(&out, "private_key", s->private_key);
	append_field(&out, "hmac_secret", s->hmac_secret);
	if (s->api_key_header)
		appendStringInfo(&out, " header:%s", s->api_key_header);
	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}

/*
 * seal_probe(plain text) RETURNS text: the MD5 of unseal(seal(plain)),
 * and whether the sealed bytes hold the plaintext (they must not).
 */
Datum
batch_ops_test_seal_probe(PG_FUNCTION_ARGS)
{
	char	   *plain = text_to_cstring(PG_GETARG_TEXT_PP(0));
	size_t		len = strlen(plain);
	bytea	   *sealed = credential_seal(plain, len);
	size_t		outlen;
	char	   *opened = credential_unseal(sealed, &outlen);
	bool		visible = false;
	StringInfoData out;
	size_t		i;

	for (i = 0; len > 0 && i + len <= VARSIZE(sealed) - VARHDRSZ; i++)
		if (memcmp(VARDATA(sealed) + i, plain, len) == 0)
			visible = true;
	initStringInfo(&out);
	append_field(&out, "md5", opened);
	appendStringInfo(&out, " len=%zu overhead=%zu visible=%s", outlen,
					 VARSIZE(sealed) - VARHDRSZ - len, visible ? "yes" : "no");
	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

/*
 * outbound_fetch(url text, check_url bool) RETURNS text: GET the URL under
 * the policy.  check_url false skips outbound_url_refusal(), to reach the
 * open-socket check with URLs the URL check would stop first.
 */
Datum
batch_ops_test_outbound_fetch(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *refusal = PG_GETARG_BOOL(1) ? outbound_url_refusal(url) : NULL;
	OutboundSocketCheck check;
	char		errbuf[CURL_ERROR_SIZE] = "";
	CURLU	   *u;
	char	   *host = NULL;
	CURL	   *h;
	CURLcode	rc;
	long		status = 0;
	char	   *result;

	if (refusal != NULL)
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("refused: %s", refusal)));
	u = curl_url();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
	{
		curl_url_cleanup(u);
		PG_RETURN_TEXT_P(cstring_to_text("error: bad URL"));
	}
	h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	outbound_policy_apply(h, host, &check);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (check.refused && rc != CURLE_OK)
		result = psprintf("blocked %s", check.address);
	else if (rc != CURLE_OK)
		result = psprintf("error: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	else
		result = psprintf("status %ld", status);
	curl_easy_cleanup(h);
	curl_free(host);
	curl_url_cleanup(u);
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
