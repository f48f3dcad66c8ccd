/*-------------------------------------------------------------------------
 *
 * outbound_driver.h
 *	  Drivers of outbound batches: how a target's request is built in the
 *	  device's own format, and how the device's reply becomes a result.
 *
 * A driver is one file (driver_*.c) that defines an OutboundDriver and one
 * line in the static table of outbound_driver.c.  Drivers do no I/O: the
 * engine (outbound_engine.c) sends what build_request() made, through
 * its HTTP transport (http_engine.c), and hands the reply to
 * parse_response().  The ssh driver (driver_ssh.c) has its own transport
 * (ssh_engine.c): build_request() only says whether the target is a
 * change, and the transport runs the device's dialogue itself.  Both run in the job worker outside a
 * transaction (no catalog access, no SPI), in a memory context that the
 * engine resets once the target's result is stored.
 *
 * Status codes every driver maps the same way (outbound_outcome_http()):
 * 401/403 auth_error; 408, 429, 502, 503, 504 retryable (429 ends as
 * rate_limited, the others as http_error); other non-2xx http_error.
 * Transport failures (dns_error, connect_error, tls_error, timeout,
 * not_allowed, response_too_large) are the engine's, not the driver's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_OUTBOUND_DRIVER_H
#define BATCH_OPS_OUTBOUND_DRIVER_H

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* A credential's secret fields, decrypted (credential.h); NULL if absent. */
typedef struct OutboundSecret
{
	char	   *username;
	char	   *password;
	char	   *enable_password;
	char	   *token;			/* sent as "Authorization: Bearer" */
	char	   *api_key;		/* sent in the header api_key_header */
	char	   *api_key_header;	/* the credential's options.header */
	char	   *ca_cert;		/* PEM */
	char	   *client_cert;	/* PEM */
	char	   *client_key;		/* PEM */
	char	   *private_key;	/* SSH */
	char	   *hmac_secret;	/* callbacks */
	char	   *known_hosts;	/* SSH: OpenSSH known_hosts lines */
} OutboundSecret;

/* One target: a device (or, for meraki, an action), defaults merged in. */
typedef struct OutboundTarget
{
	int			index;			/* position in devices[] / actions[] */
	const char *hostname;		/* host as given; the result's hostname */
	const char *scheme;			/* "https" or "http" */
	int			port;			/* the scheme's default when not given */
	Jsonb	   *device;			/* the device object ({{device.key}}) */
	Jsonb	   *connection_args;	/* merged: spec's, then the device's */
	Jsonb	   *command;		/* array of strings (read), or NULL */
	Jsonb	   *config;			/* array of strings (change), or NULL */
	Jsonb	   *request;		/* http/restconf: method, path, headers, body */
	Jsonb	   *action;			/* meraki: resource, operation, body */
	Jsonb	   *options;		/* the spec's options */
	const OutboundSecret *secret;	/* NULL if no credential or password */
	int			timeout_ms;
	int			connect_timeout_ms;
} OutboundTarget;

/* What the engine sends.  Every field is palloc'd by the driver. */
typedef struct OutboundRequest
{
	const char *method;			/* "GET", "POST", ... */
	char	   *url;			/* complete: scheme://host:port/path?query */
	List	   *headers;		/* of char *, "Name: value" */
	char	   *body;			/* NULL: none */
	size_t		body_len;
	bool		is_change;		/* changes state: never sent twice */
	const char *rate_key;		/* NULL, or a key whose requests share a
								 * rate (meraki: the organization) */
	double		rate_per_sec;	/* with rate_key */
} OutboundRequest;

/* What came back (the engine has read it whole, up to max_output_bytes). */
typedef struct OutboundResponse
{
	long		status_code;
	const char *content_type;	/* NULL if none */
	const char *body;			/* NUL-terminated */
	size_t		body_len;
	int			retry_after_ms;	/* Retry-After, or -1 */
} OutboundResponse;

/* The driver's verdict on one reply. */
typedef struct OutboundOutcome
{
	bool		success;
	Jsonb	   *output;			/* the result's output, or NULL */
	const char *error;			/* an error name (DESIGN.md), or NULL */
	char	   *message;		/* the device's words, or NULL */
	bool		retryable;		/* transient: the engine may send again */
	bool		not_applied;	/* refused, nothing done: resend even a change */
	OutboundRequest *next;		/* a follow-up (a poll), or NULL */
	int			next_delay_ms;	/* wait before sending next */
} OutboundOutcome;

/* How a driver's targets travel (the engine's transport). */
#define OUTBOUND_TRANSPORT_HTTP	0	/* build_request, parse_response */
#define OUTBOUND_TRANSPORT_SSH	1	/* CLI over SSH (ssh_engine.c) */

typedef struct OutboundDriver
{
	const char *name;			/* the spec's "driver" */
	int			transport;		/* OUTBOUND_TRANSPORT_* (0: HTTP) */
	/* ERROR 22023 naming the bad key; at submit, as the caller */
	void		(*check_spec) (Jsonb *spec);
	void		(*build_request) (const OutboundTarget *target,
								  OutboundRequest *req);
	void		(*parse_response) (const OutboundTarget *target,
								   const OutboundRequest *req,
								   const OutboundResponse *resp,
								   OutboundOutcome *out);
} OutboundDriver;

/* The driver named so (aliases included), or NULL. */
extern const OutboundDriver *outbound_driver_lookup(const char *name);

/*
 * The common mapping of a status code; true if the driver should go on
 * parsing the body (2xx), false if out is complete.
 */
extern bool outbound_outcome_http(const OutboundResponse *resp,
								  OutboundOutcome *out);

/* Helpers for drivers: a header line, basic auth from the secret. */
extern void outbound_request_header(OutboundRequest *req, const char *name,
									const char *value);
extern void outbound_request_auth(const OutboundTarget *target,
								  OutboundRequest *req);

/* {"key": value}: value wrapped in an object of one key */
extern Jsonb *outbound_jsonb_wrap(const char *key, Jsonb *value);

#endif							/* BATCH_OPS_OUTBOUND_DRIVER_H */
