/*-------------------------------------------------------------------------
 *
 * driver_internal.h
 *	  What the drivers of outbound batches (driver_*.c) share: their
 *	  OutboundDriver definitions for the registry, and small helpers to read
 *	  specs and targets, fill in templates, build JSON bodies and read
 *	  replies (implemented in outbound_driver.c).
 *
 * Nothing here does I/O or touches the catalogs: the helpers used by
 * build_request() and parse_response() run in the job worker outside a
 * transaction and never throw for anything a device sends.  The check_*
 * helpers run at submit, as the caller, and throw 22023 naming the key.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_DRIVER_INTERNAL_H
#define BATCH_OPS_DRIVER_INTERNAL_H

#include "lib/stringinfo.h"

#include "outbound_driver.h"

extern const OutboundDriver outbound_driver_http;
extern const OutboundDriver outbound_driver_eapi;
extern const OutboundDriver outbound_driver_nxapi;
extern const OutboundDriver outbound_driver_restconf;
extern const OutboundDriver outbound_driver_meraki;
extern const OutboundDriver outbound_driver_callback;
extern const OutboundDriver outbound_driver_ssh;

/* meraki_pack.c: options of meraki's action batches */
extern bool meraki_synchronous(Jsonb *options);
extern int	meraki_batch_size(Jsonb *options);

/* Reading jsonb: NULL when jb is NULL, the key is absent or JSON null. */
extern JsonbValue *jb_get(Jsonb *jb, const char *key);
extern char *jb_get_string(Jsonb *jb, const char *key);
extern Jsonb *jb_get_jsonb(Jsonb *jb, const char *key);
extern Jsonb *jb_from_value(JsonbValue *v);
extern char *jb_scalar_text(JsonbValue *v);
extern List *jb_string_list(Jsonb *array);
extern Jsonb *jb_string(const char *s, int len);

/*
 * Templates: {{host}}, {{port}}, {{index}}, {{device.<key>}}; substituted
 * values are left as they are (SUBST_TEXT), percent-encoded for a path
 * keeping "/" (SUBST_PATH), or for one path segment (SUBST_SEGMENT: all
 * but RFC 3986's unreserved characters, as RFC 8040 wants list keys).
 */
#define SUBST_TEXT 0
#define SUBST_PATH 1
#define SUBST_SEGMENT 2
extern char *driver_substitute(const OutboundTarget *target, const char *tmpl,
							   int escape);
extern char *driver_url_escape(const char *value, int escape);
extern char *driver_body_json(const OutboundTarget *target, Jsonb *body);

/* The target's base URL (scheme://host:port) followed by path. */
extern char *driver_url(const OutboundTarget *target, const char *path);
extern bool driver_method_is_change(const char *method);

/* Requests: the request's own headers; a JSON POST (eAPI, NX-API). */
#define DRIVER_HEADER_CONTENT_TYPE	0x01
#define DRIVER_HEADER_AUTHORIZATION 0x02
#define DRIVER_HEADER_ACCEPT		0x04
extern int	driver_request_headers(const OutboundTarget *target,
								   Jsonb *headers, OutboundRequest *req);
extern void driver_json_post(const OutboundTarget *target,
							 OutboundRequest *req, const char *path,
							 StringInfo body, bool is_change);

/* Replies. */
extern Jsonb *driver_parse_json(const char *body, size_t len);
extern Jsonb *driver_body_output(const OutboundResponse *resp);
extern bool driver_output_json(const OutboundResponse *resp,
							   OutboundOutcome *out);
extern void driver_fail(OutboundOutcome *out, const char *error,
						const char *message);

/* Spec checks (at submit; ERROR 22023 naming the key). */
extern void check_spec_bad_key(const char *key, const char *detail);
extern void check_cli_spec(Jsonb *spec, bool allow_semicolon);
extern void check_request_spec(Jsonb *spec, bool path_required);

#endif							/* BATCH_OPS_DRIVER_INTERNAL_H */
