/*-------------------------------------------------------------------------
 *
 * url_policy.c
 *	  Who may import from which source: a server file (superuser or
 *	  pg_read_server_files, and only a regular file) or an http(s) URL
 *	  (superuser or batch_ops_fetch, and only under
 *	  batch_ops.fetch_url_prefixes when that is set).
 *
 * The access check runs at submit time as the submitting role, and again
 * in the job worker when the job starts (job_check_source_access); the
 * worker then fetches the URL through a handle made here
 * (url_checked_handle), from the same parse that was checked.
 *
 * URLs are compared with the allowed prefixes as parsed parts, never as
 * text: both go through libcurl's URL parser -- the one the fetch uses,
 * which also resolves "." and ".." path segments -- and then
 *
 *	- the scheme, the host and the port must be equal: the host compared
 *	  case-insensitively and without a trailing dot, IPv4 addresses in the
 *	  dotted form libcurl connects to (so "2130706433", "0x7f.1" and
 *	  "127.1" are 127.0.0.1), IPv6 addresses in libcurl's canonical form,
 *	  with their zone; a missing port is the scheme's default.  Host names
 *	  are compared as names: nothing is resolved here;
 *	- the prefix's path must be a prefix of the URL's path on segment
 *	  boundaries, segment by segment after percent-decoding: "/data"
 *	  allows "/data" and "/data/x.csv", not "/database.csv".  A trailing
 *	  "/" on a prefix makes no difference; a prefix without a path allows
 *	  every path of its origin;
 *	- the query string is not compared (it is sent as given); a fragment
 *	  is never sent to a server, and is dropped from the request.
 *
 * Refused outright, whatever the prefixes: a URL with a user name or
 * password ("user:pass@host": batch_ops has no credential mechanism, and
 * the form is a classic way to disguise the host), and a path that
 * servers read differently -- a backslash, a percent-encoded "/" or "\",
 * a NUL, a malformed percent-escape, or a segment that decodes to "." or
 * ".." (also with a ";parameter", which some servers strip).  Such a
 * path can leave a prefix on the server even though it stays under it as
 * text.
 *
 * A prefix that does not parse, or that has a user name, a query or a
 * fragment, allows nothing (it is not rejected when set: a rejected value
 * in postgresql.conf would leave the setting empty, which allows every
 * URL).
 *
 * Which prefix list: at submit time the one in force in the submitting
 * session.  In the job worker, which runs as the bootstrap superuser, the
 * one a new session of the job's role would get: ALTER ROLE ... IN
 * DATABASE, then ALTER ROLE, then ALTER DATABASE, then the server's
 * configuration -- read from pg_db_role_setting, so that a list given to
 * a role applies when its jobs run, not only when they are submitted.
 *
 * Server files: anything but a regular file (after following symbolic
 * links) is refused, at submit if the path exists then and again when the
 * file is opened (source.c): reading a FIFO, a device or a socket blocks
 * or never ends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include <curl/curl.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_db_role_setting.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "source.h"

char	   *batch_ops_fetch_url_prefixes = NULL;

/* A URL or a prefix as compared: see the file header. */
typedef struct UrlParts
{
	char	   *scheme;
	char	   *host;			/* lower case, no trailing dot */
	char	   *zoneid;			/* IPv6 zone, "" if none */
	int			port;
	bool		has_user;		/* user, password or login options */
	bool		has_query;
	bool		has_fragment;
	int			nseg;
	char	  **seg;			/* decoded path segments */
} UrlParts;

/* Why a URL was refused (url_parse's result). */
typedef enum UrlProblem
{
	URL_OK,
	URL_INVALID,
	URL_SCHEME,
	URL_USERINFO,
	URL_AMBIGUOUS_PATH
} UrlProblem;

/* Define batch_ops.fetch_url_prefixes; called by source_init(). */
void
url_policy_init(void)
{
	DefineCustomStringVariable("batch_ops.fetch_url_prefixes",
							   "Comma-separated URL prefixes that imports may fetch; empty allows any http(s) URL.",
							   "Only members of batch_ops_fetch (and superusers) may import from URLs at all.",
							   &batch_ops_fetch_url_prefixes,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}

/*
 * Is the source meant as a URL?  Only the scheme is looked at: whether it
 * is a valid and allowed URL is check_access()'s question.
 */
bool
source_is_url(const char *location)
{
	return pg_strncasecmp(location, "http://", 7) == 0 ||
		pg_strncasecmp(location, "https://", 8) == 0;
}

/* A part of a parsed URL, palloc'd, or NULL if it is absent. */
static char *
url_part(CURLU *h, CURLUPart what, unsigned int flags)
{
	char	   *out = NULL;
	char	   *result;

	if (curl_url_get(h, what, &out, flags) != CURLUE_OK || out == NULL)
		return NULL;
	result = pstrdup(out);
	curl_free(out);
	return result;
}

/* The value of a hexadecimal digit, or -1: for percent-escapes. */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * One path segment, percent-decoded, or NULL if servers could read it
 * differently: see the file header.
 */
static char *
decode_segment(const char *s, int len)
{
	char	   *out = palloc(len + 1);
	char	   *name_end;
	int			n = 0;
	int			i;

	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c == '\\')
			return NULL;
		if (c == '%')
		{
			if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return NULL;
			c = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
			if (c == '/' || c == '\\' || c == '\0')
				return NULL;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	/* "..;x" is ".." to servers that strip path parameters */
	name_end = strchr(out, ';');
	n = name_end ? name_end - out : n;
	if ((n == 1 && out[0] == '.') || (n == 2 && out[0] == '.' && out[1] == '.'))
		return NULL;
	return out;
}

/* Split a path as libcurl gives it ("/a/b") into decoded segments. */
static bool
split_path(const char *path, UrlParts *u)
{
	const char *p = path;
	int			max = 8;

	u->nseg = 0;
	u->seg = palloc(sizeof(char *) * max);
	if (*p == '/')
		p++;
	for (;;)
	{
		const char *end = strchr(p, '/');
		int			len = end ? end - p : strlen(p);
		char	   *seg = decode_segment(p, len);

		if (seg == NULL)
			return false;
		if (u->nseg == max)
		{
			max *= 2;
			u->seg = repalloc(u->seg, sizeof(char *) * max);
		}
		u->seg[u->nseg++] = seg;
		if (end == NULL)
			return true;
		p = end + 1;
	}
}

/* The host as compared: lower case, without one trailing dot. */
char *
url_normalize_host(const char *host)
{
	char	   *h = pstrdup(host);
	int			len = strlen(h);
	int			i;

	for (i = 0; i < len; i++)
		h[i] = pg_ascii_tolower((unsigned char) h[i]);
	if (len > 1 && h[len - 1] == '.')
		h[len - 1] = '\0';
	return h;
}

/*
 * Parse a URL (or a prefix) with libcurl's parser into the parts that are
 * compared.  *detail gets libcurl's reason when it cannot parse it.
 *
 * Never throws for a URL it refuses (only for out of memory): it returns
 * why, and the caller decides.  A prefix that does not parse must allow
 * nothing rather than fail the check (prefix_parse()), and catching an
 * ERROR instead would need a subtransaction (PostgreSQL's rule for
 * PG_CATCH: re-throw, or abort a (sub)transaction);
 * url_parse_or_error() turns the answer into the error a user sees.
 */
static UrlProblem
url_parse(const char *url, UrlParts *u, const char **detail)
{
	CURLU	   *h = curl_url();
	CURLUcode	rc;
	char	   *path;
	char	   *port;
	char	   *host;
	UrlProblem	result = URL_OK;

	memset(u, 0, sizeof(UrlParts));
	*detail = NULL;
	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	rc = curl_url_set(h, CURLUPART_URL, url, 0);
	if (rc != CURLUE_OK)
	{
		*detail = curl_url_strerror(rc);
		curl_url_cleanup(h);
		return URL_INVALID;
	}
	u->scheme = url_part(h, CURLUPART_SCHEME, 0);
	host = url_part(h, CURLUPART_HOST, 0);
	u->zoneid = url_part(h, CURLUPART_ZONEID, 0);
	port = url_part(h, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	path = url_part(h, CURLUPART_PATH, 0);
	u->has_user = url_part(h, CURLUPART_USER, 0) != NULL ||
		url_part(h, CURLUPART_PASSWORD, 0) != NULL ||
		url_part(h, CURLUPART_OPTIONS, 0) != NULL;
	u->has_query = url_part(h, CURLUPART_QUERY, 0) != NULL;
	u->has_fragment = url_part(h, CURLUPART_FRAGMENT, 0) != NULL;
	curl_url_cleanup(h);

	if (u->scheme == NULL || host == NULL || host[0] == '\0' || port == NULL)
		return URL_INVALID;
	u->scheme = url_normalize_host(u->scheme);
	if (strcmp(u->scheme, "http") != 0 && strcmp(u->scheme, "https") != 0)
		return URL_SCHEME;
	/* an "@" anywhere before the path is userinfo, even an empty one */
	if (u->has_user)
		return URL_USERINFO;
	u->host = url_normalize_host(host);
	if (u->zoneid == NULL)
		u->zoneid = "";
	u->port = atoi(port);
	if (!split_path(path ? path : "/", u))
		result = URL_AMBIGUOUS_PATH;
	return result;
}

/* Does the URL lie under the prefix?  Both parsed; see the file header. */
static bool
url_under_prefix(const UrlParts *u, const UrlParts *p)
{
	int			n = p->nseg;
	int			i;

	if (strcmp(u->scheme, p->scheme) != 0 ||
		strcmp(u->host, p->host) != 0 ||
		strcmp(u->zoneid, p->zoneid) != 0 ||
		u->port != p->port)
		return false;
	/* "/data/" is "/data"; "/" (or no path) is every path */
	while (n > 0 && p->seg[n - 1][0] == '\0')
		n--;
	if (u->nseg < n)
		return false;
	for (i = 0; i < n; i++)
		if (strcmp(u->seg[i], p->seg[i]) != 0)
			return false;
	return true;
}

/*
 * A prefix of the list, parsed, or false if it is not a usable prefix
 * (then it allows nothing).
 */
static bool
prefix_parse(const char *prefix, UrlParts *p)
{
	const char *detail;

	return url_parse(prefix, p, &detail) == URL_OK &&
		!p->has_query && !p->has_fragment;
}

/* Does one of the comma- or space-separated prefixes allow the URL? */
static bool
url_prefix_allowed(const UrlParts *u, const char *prefixes)
{
	char	   *list;
	char	   *tok;
	char	   *save;

	if (prefixes == NULL || prefixes[0] == '\0')
		return true;
	list = pstrdup(prefixes);
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
	{
		UrlParts	p;

		if (prefix_parse(tok, &p) && url_under_prefix(u, &p))
			return true;
	}
	return false;
}

/* Parse a URL to be fetched; anything that is refused whatever the prefixes is an ERROR. */
static void
url_parse_or_error(const char *url, UrlParts *u)
{
	const char *detail;

	switch (url_parse(url, u, &detail))
	{
		case URL_OK:
			return;
		case URL_INVALID:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid URL \"%s\"", url),
					 detail ? errdetail("%s", detail) : 0));
			break;
		case URL_SCHEME:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unsupported import source \"%s\"", url),
					 errhint("Give an absolute server file path or an http:// or https:// URL.")));
			break;
		case URL_USERINFO:
			/* the URL is not echoed: it may hold a password */
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL must not contain a user name or password"),
					 errdetail("batch_ops has no way to keep credentials, so a URL with \"user:password@\" before the host is refused.")));
			break;
		case URL_AMBIGUOUS_PATH:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL \"%s\" has an ambiguous path", url),
					 errdetail("Backslashes, percent-encoded \"/\", \"\\\" or NUL, malformed percent-escapes and segments that decode to \".\" or \"..\" are refused, because servers read them differently.")));
			break;
	}
}

/*
 * For outbound_policy.c: the scheme, host and port of a URL as compared
 * here (the host canonical: see the file header), or why it is refused
 * (NULL if it is not).  The path is not judged: outbound requests may
 * need percent-encoded "/" (RESTCONF list keys).
 */
const char *
url_origin(const char *url, char **scheme, char **host, int *port)
{
	UrlParts	u;
	const char *detail;

	switch (url_parse(url, &u, &detail))
	{
		case URL_OK:
		case URL_AMBIGUOUS_PATH:
			*scheme = u.scheme;
			*host = u.host;
			*port = u.port;
			return NULL;
		case URL_INVALID:
			return detail ? psprintf("invalid URL: %s", detail) : "invalid URL";
		case URL_SCHEME:
			return "only http and https URLs are allowed";
		case URL_USERINFO:
			return "a URL must not contain a user name or password";
	}
	return "invalid URL";
}

/*
 * A libcurl URL handle for the URL, checked as at submit (userinfo and
 * path), without its fragment: what the worker fetches.
 */
void *
url_checked_handle(const char *url)
{
	UrlParts	u;
	CURLU	   *h;

	url_parse_or_error(url, &u);
	h = curl_url();
	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK)
	{
		curl_url_cleanup(h);
		elog(ERROR, "could not parse URL \"%s\" again", url);
	}
	return h;
}

/*
 * The value of a setting for the role in this database as a new session
 * would get it from pg_db_role_setting (ALTER ROLE ... IN DATABASE, ALTER
 * ROLE, ALTER DATABASE), or NULL if none of them sets it.
 */
static char *
role_setting(Oid role, const char *name)
{
	Oid			keys[3][2] = {{MyDatabaseId, role}, {InvalidOid, role},
	{MyDatabaseId, InvalidOid}};
	Relation	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	char	   *result = NULL;
	int			k;

	for (k = 0; k < 3 && result == NULL; k++)
	{
		ScanKeyData skey[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&skey[0], Anum_pg_db_role_setting_setdatabase,
					BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(keys[k][0]));
		ScanKeyInit(&skey[1], Anum_pg_db_role_setting_setrole,
					BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(keys[k][1]));
		scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true,
								  NULL, 2, skey);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
										 RelationGetDescr(rel), &isnull);
			Datum	   *elems;
			int			nelems;
			int			i;

			if (!isnull)
			{
				deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false,
								  TYPALIGN_INT, &elems, NULL, &nelems);
				for (i = 0; i < nelems; i++)
				{
					char	   *n;
					char	   *v;

					ParseLongOption(TextDatumGetCString(elems[i]), &n, &v);
					if (v != NULL && pg_strcasecmp(n, name) == 0)
						result = v;
				}
			}
		}
		systable_endscan(scan);
	}
	table_close(rel, AccessShareLock);
	return result;
}

/* A server file's type, as a phrase for messages. */
static const char *
file_type_name(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO (named pipe)";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

/* Refuse a server file that is not a regular file. */
void
source_check_file_type(const char *path, mode_t mode)
{
	if (!S_ISREG(mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a regular file", path),
				 errdetail("It is %s.  Imports read regular files only: reading a FIFO, a device or a socket can block or never end.",
						   file_type_name(mode))));
}

/* Who may read the source, with the URL prefixes that apply. */
static void
check_access(const char *source, Oid role, const char *prefixes)
{
	if (source_is_url(source))
	{
		Oid			fetch_role = get_role_oid("batch_ops_fetch", true);
		UrlParts	u;

		if (!superuser_arg(role) &&
			!(OidIsValid(fetch_role) && has_privs_of_role(role, fetch_role)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to import from a URL"),
					 errdetail("Only superusers and members of the role batch_ops_fetch may import from http(s) URLs."),
					 errhint("An administrator can run GRANT batch_ops_fetch TO %s.",
							 quote_identifier(GetUserNameFromId(role, false)))));
		url_parse_or_error(source, &u);
		if (!url_prefix_allowed(&u, prefixes))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("URL \"%s\" is not allowed", source),
					 errdetail("batch_ops.fetch_url_prefixes does not list a prefix of this URL.")));
		return;
	}
	if (strstr(source, "://") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported import source \"%s\"", source),
				 errhint("Give an absolute server file path or an http:// or https:// URL.")));
	if (!is_absolute_path(source))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("import file path \"%s\" must be absolute", source)));
	if (!superuser_arg(role) && !has_privs_of_role(role, ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to import from a file"),
				 errdetail("Only roles with privileges of the \"pg_read_server_files\" role may import from a server file, as for COPY FROM a file."),
				 errhint("An administrator can run GRANT pg_read_server_files TO %s.",
						 quote_identifier(GetUserNameFromId(role, false)))));
	/* only after the privilege check: no one else learns a file's type */
	{
		struct stat st;

		/* a missing file fails when the job runs, as it always did */
		if (stat(source, &st) == 0)
			source_check_file_type(source, st.st_mode);
	}
}

/* At submit: as the submitting role, with the session's prefix list. */
void
source_check_access(const char *source, Oid role)
{
	check_access(source, role, batch_ops_fetch_url_prefixes);
}

/*
 * In a job worker, which may be between transactions: as the job's role,
 * with the prefix list a session of that role would have.
 */
void
job_check_source_access(const char *source, Oid role)
{
	MemoryContext old = CurrentMemoryContext;
	bool		own_xact = !IsTransactionState();
	char	   *prefixes;

	if (own_xact)
		StartTransactionCommand();
	prefixes = role_setting(role, "batch_ops.fetch_url_prefixes");
	check_access(source, role, prefixes ? prefixes : batch_ops_fetch_url_prefixes);
	if (own_xact)
	{
		CommitTransactionCommand();
		MemoryContextSwitchTo(old);
	}
}
