/*-------------------------------------------------------------------------
 *
 * outbound_policy.h
 *	  Who may send what where: membership in batch_ops_outbound, the hosts
 *	  and networks of batch_ops.outbound_networks, and the libcurl options
 *	  that hold a connection to them (no redirects, no environment proxy,
 *	  TLS verified, the resolved address checked when the socket opens).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_OUTBOUND_POLICY_H
#define BATCH_OPS_OUTBOUND_POLICY_H

#include <curl/curl.h>

/* _PG_init: settings */
extern void outbound_policy_init(void);

/*
 * libcurl's global state, set up once per process before the first handle
 * (URL imports and the outbound engine); ERROR XX000 if it cannot be.
 */
extern void outbound_curl_init(void);

/* ERROR 42501 unless role is superuser or a member of batch_ops_outbound */
extern void outbound_check_sender(Oid role);

/*
 * Is the URL's scheme http(s) and its host listed?  NULL if allowed, else
 * why not (for the target's not_allowed message).  No name is resolved.
 */
extern const char *outbound_url_refusal(const char *url);

/*
 * The same check for a host alone (the ssh driver: no URL, the scheme is
 * the driver's).
 */
extern const char *outbound_host_refusal(const char *host);

/* "[::1]" as "::1", other hosts as they are (palloc'd) */
extern char *outbound_unbracket_host(const char *host);

/* Per easy handle: what the open-socket callback saw. */
typedef struct OutboundSocketCheck
{
	bool		refused;		/* the resolved address was not allowed */
	char		address[64];	/* the address refused, for the message */
	/* set by outbound_policy_apply(), read by the callback */
	bool		name_listed;	/* the host is a listed name: any address */
	bool		via_proxy;		/* the socket is the proxy's: not checked */
} OutboundSocketCheck;

/*
 * Set the policy's options on an easy handle: protocols http/https only,
 * no redirects, proxy from batch_ops.outbound_proxy or none, TLS verified
 * unless the host is in batch_ops.outbound_tls_insecure_hosts, and the
 * open-socket callback that refuses an address outside the policy
 * (recorded in *check, which must outlive the transfer).  host is the
 * host of the URL the handle fetches: a listed name lets its connection
 * reach any address but loopback and link-local ones.  A refused address
 * makes libcurl try the next one; check->refused says one was refused,
 * which is the cause only if the transfer then failed to connect.
 */
extern void outbound_policy_apply(CURL *handle, const char *host,
								  OutboundSocketCheck *check);

/*
 * The open-socket check without libcurl (the ssh transport, ssh_engine.c,
 * connects its own sockets): init once per connection to host, then ask
 * for each address before connecting to it.  The second neither allocates
 * nor throws; false records the refused address in *check.
 */
struct sockaddr;
extern void outbound_socket_check_init(OutboundSocketCheck *check,
									   const char *host, bool via_proxy);
extern bool outbound_socket_allowed(OutboundSocketCheck *check, int family,
									const struct sockaddr *sa);

/*
 * URL imports (source.c): only the open-socket check, and only when
 * batch_ops.outbound_networks is set; false (nothing done) if it is not.
 */
extern bool outbound_policy_guard_socket(CURL *handle, const char *host,
										 OutboundSocketCheck *check);

#endif							/* BATCH_OPS_OUTBOUND_POLICY_H */
