/*-------------------------------------------------------------------------
 *
 * outbound_policy.c
 *	  Who may send what where (see outbound_policy.h and DESIGN.md).
 *
 * Senders: superusers and members of the role batch_ops_outbound, which
 * the extension creates NOLOGIN (as it does batch_ops_fetch).
 *
 * Where: batch_ops.outbound_networks, a superuser setting, lists CIDR
 * blocks ("10.0.0.0/8", "2001:db8::/32", a bare address is a /32 or
 * /128), host names ("api.meraki.com") and wildcards ("*.lab.example":
 * any name that ends in ".lab.example").  Empty (the default) allows
 * nothing.  A value with an entry that is none of these is rejected when
 * it is set, which is safe: a rejected value leaves the old one, or the
 * empty default, and empty allows nothing.  Host names are compared as
 * url_policy.c compares them (url_normalize_host: lower case, no trailing
 * dot), and URL hosts come from the same libcurl parse, so a numeric
 * spelling of an address ("2130706433", "0x7f.1") is the address.
 *
 * Two checks:
 *	- outbound_url_refusal(), before anything is sent (at submit): the
 *	  scheme is http or https, there is no userinfo, and the host is
 *	  listed -- an address must lie in a listed block; a name must be
 *	  listed, or match a wildcard, unless blocks are listed, in which case
 *	  the address it resolves to decides at connect.  Nothing is resolved.
 *	- the open-socket callback of every connection (libcurl's
 *	  CURLOPT_OPENSOCKETFUNCTION), with the address actually connected to:
 *	  it must lie in a listed block, or the connection must be for a
 *	  listed name (then any address it resolves to will do).  An
 *	  IPv4-mapped IPv6 address (::ffff:a.b.c.d) is checked as the IPv4
 *	  address.  This is what defeats DNS rebinding and names that point
 *	  inside: the address is judged when the socket is opened, after
 *	  resolution.  Loopback (127/8, ::1), link-local (169.254/16,
 *	  fe80::/10) and unspecified (0/8, ::) addresses pass only when a
 *	  listed block at least as narrow as their range holds them
 *	  ("127.0.0.1/32" or "127.0.0.0/8", not "0.0.0.0/0" nor a listed name).
 *
 * libcurl options (outbound_policy_apply): protocols http and https only,
 * redirects not followed, the proxy of batch_ops.outbound_proxy or none
 * (an empty CURLOPT_PROXY and CURLOPT_NOPROXY, so http_proxy, https_proxy
 * and no_proxy of the server's environment are ignored), TLS peers and
 * host names verified unless batch_ops.outbound_tls_insecure_hosts lists
 * the host.  Through a proxy the socket is the proxy's, which a superuser
 * chose: the callback lets it through, and the URL check is what holds.
 *
 * The lists are parsed by the settings' check hooks into one malloc'd
 * block each (the GUC "extra"), so the open-socket callback, which runs
 * inside libcurl, possibly outside a transaction, neither allocates nor
 * throws.  It reads the list in force when the socket is opened.
 *
 * The ssh transport (ssh_engine.c) opens its own sockets and asks
 * outbound_socket_allowed() for each address, the check open_socket()
 * makes; its hosts go through outbound_host_refusal(), the URL check
 * without the URL.
 *
 * URL imports (source.c) get the same open-socket check whenever
 * batch_ops.outbound_networks is set (outbound_policy_guard_socket).
 * Both set up libcurl's global state through outbound_curl_init(), once
 * per process (a static flag: each backend and worker is one thread).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "outbound_policy.h"
#include "source.h"

char	   *batch_ops_outbound_networks = NULL;
char	   *batch_ops_outbound_proxy = NULL;
char	   *batch_ops_outbound_tls_insecure_hosts = NULL;

/* One CIDR block: AF_INET (4 bytes of addr used) or AF_INET6. */
typedef struct NetBlock
{
	int			family;
	int			bits;
	unsigned char addr[16];
} NetBlock;

/*
 * A parsed list, in one malloc'd chunk: the blocks, then the names as
 * consecutive NUL-terminated strings ("*.x" for a wildcard).
 */
typedef struct HostList
{
	int			nblocks;
	int			nnames;
	Size		names_off;		/* from the start of the struct */
	NetBlock	blocks[FLEXIBLE_ARRAY_MEMBER];
} HostList;

static HostList *networks = NULL;
static HostList *insecure_hosts = NULL;

static char *policy_host(const char *host);

/* ---- parsing ---- */

/* An address with optional [brackets]; true and *b (full length) if one. */
static bool
parse_address(const char *s, NetBlock *b)
{
	char		buf[INET6_ADDRSTRLEN + 2];
	size_t		len = strlen(s);

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']')
	{
		s++;
		len -= 2;
	}
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(b, 0, sizeof(NetBlock));
	if (inet_pton(AF_INET, buf, b->addr) == 1)
	{
		b->family = AF_INET;
		b->bits = 32;
		return true;
	}
	if (inet_pton(AF_INET6, buf, b->addr) == 1)
	{
		b->family = AF_INET6;
		b->bits = 128;
		return true;
	}
	return false;
}

/* "addr/bits" or an address; the host bits are cleared. */
static bool
parse_block(const char *s, NetBlock *b)
{
	const char *slash = strchr(s, '/');
	char	   *end;
	long		bits;
	int			i;

	if (slash == NULL)
		return parse_address(s, b);
	if (!parse_address(pnstrdup(s, slash - s), b))
		return false;
	errno = 0;
	bits = strtol(slash + 1, &end, 10);
	if (slash[1] == '\0' || *end != '\0' || errno != 0 || bits < 0 || bits > b->bits)
		return false;
	b->bits = (int) bits;
	for (i = 0; i < 16; i++)
	{
		int			keep = Max(0, Min(8, b->bits - i * 8));

		b->addr[i] &= (unsigned char) (0xff00 >> keep);
	}
	return true;
}

/* A host name: letters, digits, "-", "_" and dots, not only digits and dots. */
static bool
valid_host_name(const char *s)
{
	bool		alpha = false;
	const char *c;

	if (*s == '\0' || strlen(s) > 253)
		return false;
	for (c = s; *c; c++)
	{
		if (isalpha((unsigned char) *c) || *c == '-' || *c == '_')
			alpha = true;
		else if (!isdigit((unsigned char) *c) && *c != '.')
			return false;
	}
	return alpha;
}

/*
 * Parse a list setting into a HostList (malloc'd, for the GUC's extra);
 * false with GUC_check_errdetail if an entry is not usable.
 */
static bool
host_list_check(char **newval, void **extra, GucSource source)
{
	char	   *list = pstrdup(*newval);
	char	   *tok;
	char	   *save;
	NetBlock   *blocks = palloc(sizeof(NetBlock) * (strlen(list) / 2 + 1));
	StringInfoData names;
	int			nblocks = 0;
	int			nnames = 0;
	HostList   *result;
	Size		off;

	initStringInfo(&names);
	for (tok = strtok_r(list, ", \t\n", &save); tok;
		 tok = strtok_r(NULL, ", \t\n", &save))
	{
		const char *name = tok[0] == '*' && tok[1] == '.' ? tok + 2 : tok;

		if (parse_block(tok, &blocks[nblocks]))
			nblocks++;
		else if (strchr(tok, '/') == NULL && valid_host_name(name) &&
				 !parse_address(policy_host(name), &blocks[nblocks]))
		{
			if (name != tok)
				appendStringInfoString(&names, "*.");
			appendStringInfoString(&names, policy_host(name));
			appendStringInfoChar(&names, '\0');
			nnames++;
		}
		else
		{
			GUC_check_errdetail("\"%s\" is not a CIDR block, an IP address, a host name or a \"*.suffix\" wildcard.",
								tok);
			return false;
		}
	}
	off = offsetof(HostList, blocks) + sizeof(NetBlock) * nblocks;
	/* the GUC machinery free()s an extra: malloc, as guc_malloc (static in PG15) */
	result = malloc(off + names.len);
	if (result == NULL)
	{
		GUC_check_errdetail("out of memory");
		return false;
	}
	result->nblocks = nblocks;
	result->nnames = nnames;
	result->names_off = off;
	memcpy(result->blocks, blocks, sizeof(NetBlock) * nblocks);
	memcpy((char *) result + off, names.data, names.len);
	*extra = result;
	return true;
}

static void
networks_assign(const char *newval, void *extra)
{
	networks = (HostList *) extra;
}

static void
insecure_assign(const char *newval, void *extra)
{
	insecure_hosts = (HostList *) extra;
}

void
outbound_curl_init(void)
{
	static bool curl_ready = false;

	if (curl_ready)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialize libcurl")));
	curl_ready = true;
}

void
outbound_policy_init(void)
{
	DefineCustomStringVariable("batch_ops.outbound_networks",
							   "CIDR blocks, host names and *.suffix wildcards that outbound requests may reach; empty allows none.",
							   "The address a connection is opened to must lie in a listed block, or the connection must be for a listed name.",
							   &batch_ops_outbound_networks,
							   "",
							   PGC_SUSET, 0,
							   host_list_check, networks_assign, NULL);
	DefineCustomStringVariable("batch_ops.outbound_proxy",
							   "Proxy for outbound requests (a libcurl proxy URL); empty: none, whatever the server's environment says.",
							   NULL,
							   &batch_ops_outbound_proxy,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("batch_ops.outbound_tls_insecure_hosts",
							   "Hosts whose TLS certificates outbound requests do not verify.",
							   "Host names, *.suffix wildcards and addresses; every other host's certificate is verified.",
							   &batch_ops_outbound_tls_insecure_hosts,
							   "",
							   PGC_SUSET, 0,
							   host_list_check, insecure_assign, NULL);
}

/* ---- matching (no allocation, no ERROR: used in the socket callback) ---- */

static bool
block_contains(const NetBlock *b, int family, const unsigned char *addr)
{
	int			full = b->bits / 8;
	int			rest = b->bits % 8;

	if (b->family != family)
		return false;
	if (memcmp(b->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return (b->addr[full] ^ addr[full]) >> (8 - rest) == 0;
}

/* Is the (normalized) host a listed name or under a listed wildcard? */
static bool
name_listed(const HostList *list, const char *host)
{
	const char *n;
	size_t		hlen = strlen(host);
	int			i;

	if (list == NULL)
		return false;
	n = (const char *) list + list->names_off;
	for (i = 0; i < list->nnames; i++, n += strlen(n) + 1)
	{
		if (n[0] == '*' && n[1] == '.')
		{
			size_t		slen = strlen(n + 1);	/* ".suffix" */

			if (hlen > slen && strcmp(host + hlen - slen, n + 1) == 0)
				return true;
		}
		else if (strcmp(host, n) == 0)
			return true;
	}
	return false;
}

/*
 * The prefix length of the special range holding the address (loopback,
 * link-local, unspecified), or -1 if it is in none.
 */
static int
special_range_bits(int family, const unsigned char *a)
{
	static const unsigned char zero[16] = {0};

	if (family == AF_INET)
	{
		if (a[0] == 127 || a[0] == 0)
			return 8;
		if (a[0] == 169 && a[1] == 254)
			return 16;
		return -1;
	}
	if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
		return 128;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return 10;
	return -1;
}

/*
 * May a connection be opened to the address?  name_ok: the connection is
 * for a listed name.  An IPv4-mapped address is judged as IPv4.
 */
static bool
address_allowed(const HostList *list, int family, const unsigned char *addr,
				bool name_ok)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	int			special;
	int			i;

	if (list == NULL)
		return false;
	if (family == AF_INET6 && memcmp(addr, mapped, 12) == 0)
	{
		family = AF_INET;
		addr += 12;
	}
	special = special_range_bits(family, addr);
	if (special < 0 && name_ok)
		return true;
	for (i = 0; i < list->nblocks; i++)
		if (block_contains(&list->blocks[i], family, addr) &&
			list->blocks[i].bits >= special)
			return true;
	return false;
}

/* Strip the brackets of an IPv6 literal (palloc'd). */
char *
outbound_unbracket_host(const char *h)
{
	size_t		len = strlen(h);

	if (len >= 2 && h[0] == '[' && h[len - 1] == ']')
		return pnstrdup(h + 1, len - 2);
	return pstrdup(h);
}

/*
 * The host as the lists compare it: through libcurl's URL parser, as
 * url_policy.c does, so that "0x7f.1" is 127.0.0.1 here too; IPv6
 * without brackets.  A host the parser refuses is only normalized.
 */
static char *
policy_host(const char *host)
{
	const char *form = strchr(host, ':') && host[0] != '[' ? "http://[%s]/" : "http://%s/";
	char	   *scheme;
	char	   *canonical;
	int			port;

	if (url_origin(psprintf(form, host), &scheme, &canonical, &port) == NULL)
		return outbound_unbracket_host(canonical);
	return outbound_unbracket_host(url_normalize_host(host));
}

/* Is the host (a name or an address literal) in the list? */
static bool
host_in_list(const HostList *list, const char *host, bool *is_address)
{
	NetBlock	b;

	*is_address = parse_address(host, &b);
	if (*is_address)
		return address_allowed(list, b.family, b.addr, false);
	return name_listed(list, host);
}

/* ---- the API ---- */

void
outbound_check_sender(Oid role)
{
	Oid			outbound = get_role_oid("batch_ops_outbound", true);

	if (superuser_arg(role) ||
		(OidIsValid(outbound) && has_privs_of_role(role, outbound)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to send outbound requests"),
			 errdetail("Only superusers and members of the role batch_ops_outbound may send outbound requests."),
			 errhint("An administrator can run GRANT batch_ops_outbound TO %s.",
					 quote_identifier(GetUserNameFromId(role, false)))));
}

const char *
outbound_url_refusal(const char *url)
{
	char	   *scheme;
	char	   *host;
	int			port;
	const char *problem = url_origin(url, &scheme, &host, &port);

	if (problem != NULL)
		return problem;
	return outbound_host_refusal(host);
}

const char *
outbound_host_refusal(const char *host)
{
	bool		is_address;

	if (networks == NULL || (networks->nblocks == 0 && networks->nnames == 0))
		return "batch_ops.outbound_networks is empty, so no outbound request is allowed";
	host = policy_host(host);
	if (host_in_list(networks, host, &is_address))
		return NULL;
	if (!is_address && networks->nblocks > 0)
		return NULL;			/* its address decides, at connect */
	return psprintf("host \"%s\" is not in batch_ops.outbound_networks", host);
}

/*
 * May a socket to the address be opened for the check's connection?  If
 * not, the address is recorded in check.  Neither allocates nor throws.
 */
bool
outbound_socket_allowed(OutboundSocketCheck *check, int family,
						const struct sockaddr *sa)
{
	const unsigned char *addr = NULL;

	if (family == AF_INET)
		addr = (const unsigned char *) &((const struct sockaddr_in *) sa)->sin_addr;
	else if (family == AF_INET6)
		addr = (const unsigned char *) &((const struct sockaddr_in6 *) sa)->sin6_addr;
	if (check->via_proxy ||
		(addr != NULL && address_allowed(networks, family, addr, check->name_listed)))
		return true;
	check->refused = true;
	if (addr == NULL ||
		inet_ntop(family, addr, check->address, sizeof(check->address)) == NULL)
		strlcpy(check->address, "(unknown address)", sizeof(check->address));
	return false;
}

/* libcurl's open-socket callback: see the file header. */
static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	OutboundSocketCheck *check = (OutboundSocketCheck *) clientp;

	if (!outbound_socket_allowed(check, address->family, &address->addr))
		return CURL_SOCKET_BAD;
	return socket(address->family, address->socktype, address->protocol);
}

/* The check of a direct connection to host (no proxy), before it opens. */
void
outbound_socket_check_init(OutboundSocketCheck *check, const char *host,
						   bool via_proxy)
{
	char	   *h = policy_host(host);
	NetBlock	b;

	memset(check, 0, sizeof(OutboundSocketCheck));
	check->via_proxy = via_proxy;
	check->name_listed = !parse_address(h, &b) && name_listed(networks, h);
}

/* Install the open-socket check for a connection to host. */
static void
guard_socket(CURL *handle, const char *host, OutboundSocketCheck *check,
			 bool via_proxy)
{
	outbound_socket_check_init(check, host, via_proxy);
	curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(handle, CURLOPT_OPENSOCKETDATA, check);
}

void
outbound_policy_apply(CURL *handle, const char *host, OutboundSocketCheck *check)
{
	const char *proxy = batch_ops_outbound_proxy ? batch_ops_outbound_proxy : "";
	bool		is_address;
	bool		insecure = host_in_list(insecure_hosts, policy_host(host), &is_address);

	curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(handle, CURLOPT_MAXREDIRS, 0L);
	/* "" is no proxy at all, and the environment's variables are not read */
	curl_easy_setopt(handle, CURLOPT_PROXY, proxy);
	curl_easy_setopt(handle, CURLOPT_NOPROXY, "");
	curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
	curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
	guard_socket(handle, host, check, proxy[0] != '\0');
}

bool
outbound_policy_guard_socket(CURL *handle, const char *host,
							 OutboundSocketCheck *check)
{
	if (networks == NULL || (networks->nblocks == 0 && networks->nnames == 0))
		return false;
	guard_socket(handle, host, check, false);
	return true;
}
