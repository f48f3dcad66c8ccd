/*-------------------------------------------------------------------------
 *
 * driver_ssh.c
 *	  The ssh driver (alias netmiko): CLI devices over SSH, and its device
 *	  types.
 *
 * Unlike the HTTP drivers, this one builds no request: the ssh transport
 * of the engine (ssh_engine.c) holds the conversation with the device,
 * and asks this file what the device type's CLI looks like (the static
 * table below: prompt characters, the command that turns paging off, how
 * to enter and leave enable and configuration mode, how complaints
 * start) and how to cut a command's output out of what came back.
 * build_request() only says whether a target is a change (config), which
 * the engine needs for its started marks and retry rules.
 *
 * The table is deliberately small (netmiko has thirty-odd classes): the
 * prompt is learned from the session's first one ("sw1>", base "sw1"),
 * and afterwards only a line made of that base, an optional "(...)" mode
 * and one of the type's prompt characters ends a command's output.
 *
 * Nothing here does I/O or touches the catalogs; the helpers never throw
 * for anything a device sends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "driver_internal.h"
#include "ssh_device.h"

static const char *const cisco_errors[] = {
	"% Invalid", "% Incomplete", "% Ambiguous", "% Unknown", "% Bad",
	"% Error", "% Unrecognized", NULL
};
static const char *const nxos_errors[] = {
	"% Invalid", "% Incomplete", "% Ambiguous", "% Permission denied",
	"Syntax error", NULL
};
static const char *const eos_errors[] = {
	"% Invalid", "% Incomplete", "% Ambiguous", "% Error", "% Unavailable",
	"% Authorization denied", NULL
};
static const char *const junos_errors[] = {
	"syntax error", "unknown command", "error:", "missing argument", NULL
};
static const char *const no_errors[] = {NULL};

static const SshDeviceType device_types[] = {
	{"cisco_ios", true, "terminal length 0", "enable", "configure terminal",
	"end", ">#", cisco_errors},
	{"cisco_nxos", true, "terminal length 0", NULL, "configure terminal",
	"end", ">#", nxos_errors},
	{"arista_eos", true, "terminal length 0", "enable", "configure terminal",
	"end", ">#", eos_errors},
	{"juniper_junos", true, "set cli screen-length 0", NULL, "configure",
	"commit and-quit", ">#%", junos_errors},
	/* exec channels: a command fails by its exit status */
	{"linux", false, NULL, NULL, NULL, NULL, "$#", no_errors},
};

#define DEVICE_TYPE_LIST "cisco_ios, cisco_nxos, arista_eos, juniper_junos, linux"

static const SshDeviceType *
device_type_named(const char *name)
{
	for (int i = 0; i < lengthof(device_types); i++)
		if (strcmp(device_types[i].name, name) == 0)
			return &device_types[i];
	return NULL;
}

const SshDeviceType *
ssh_device_type(const OutboundTarget *target)
{
	char	   *name = jb_get_string(target->connection_args, "device_type");
	const SshDeviceType *dt = device_type_named(name ? name : SSH_DEFAULT_DEVICE_TYPE);

	/* checked at submit; a stored spec is the submitted one */
	return dt ? dt : &device_types[0];
}

/* ---------------------------------------------------------------------
 * The spec (at submit, as the caller)
 * ---------------------------------------------------------------------
 */

static void
check_device_type(Jsonb *obj, const char *prefix)
{
	JsonbValue *v = jb_get(obj, "device_type");

	if (v == NULL)
		return;
	if (v->type != jbvString ||
		device_type_named(pnstrdup(v->val.string.val, v->val.string.len)) == NULL)
		check_spec_bad_key(psprintf("%sdevice_type", prefix),
						   "It must be one of " DEVICE_TYPE_LIST ".");
}

/* A command or config line: a string, or an array of strings, one line each. */
static void
check_lines(JsonbValue *v, const char *key)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	if (v->type == jbvString)
	{
		if (v->val.string.len == 0 ||
			memchr(v->val.string.val, '\n', v->val.string.len) ||
			memchr(v->val.string.val, '\r', v->val.string.len) ||
			memchr(v->val.string.val, '\0', v->val.string.len))
			check_spec_bad_key(key, "A command must be a non-empty line (no CR or LF).");
		return;
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) == 0)
		check_spec_bad_key(key, "It must be a string or a non-empty array of strings.");
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			check_spec_bad_key(psprintf("%s[%d]", key, n),
							   "Commands must be strings.");
		check_lines(&e, psprintf("%s[%d]", key, n));
		n++;
	}
}

/* One level (spec or device): command/config and device_type; true if any. */
static bool
check_level(Jsonb *obj, const char *prefix)
{
	JsonbValue *command = jb_get(obj, "command");
	JsonbValue *config = jb_get(obj, "config");
	Jsonb	   *ca = jb_get_jsonb(obj, "connection_args");

	if (command && config)
		check_spec_bad_key(psprintf("%sconfig", prefix),
						   "Give either \"command\" (read) or \"config\" (change), not both.");
	if (command)
		check_lines(command, psprintf("%scommand", prefix));
	if (config)
		check_lines(config, psprintf("%sconfig", prefix));
	check_device_type(obj, prefix);
	if (ca)
		check_device_type(ca, psprintf("%sconnection_args.", prefix));
	return command || config;
}

static void
ssh_check_spec(Jsonb *spec)
{
	bool		at_spec = check_level(spec, "");
	Jsonb	   *devices = jb_get_jsonb(spec, "devices");
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			i = 0;

	if (devices == NULL || !JB_ROOT_IS_ARRAY(devices))
	{
		if (!at_spec)
			check_spec_bad_key("command", "The driver needs \"command\" or \"config\".");
		return;
	}
	it = JsonbIteratorInit(&devices->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *prefix;

		if (tok != WJB_ELEM)
			continue;
		prefix = psprintf("devices[%d].", i++);
		if (v.type != jbvBinary)
			continue;			/* the spec's own check names it */
		if (!check_level(jb_from_value(&v), prefix) && !at_spec)
			check_spec_bad_key(psprintf("%scommand", prefix),
							   "The driver needs \"command\" or \"config\", in the spec or in each device.");
	}
}

/* No request to build: the transport talks to the device. */
static void
ssh_build_request(const OutboundTarget *target, OutboundRequest *req)
{
	req->method = "SSH";
	req->url = NULL;			/* the engine checks the host alone */
	req->is_change = target->config != NULL;
}

const OutboundDriver outbound_driver_ssh = {
	.name = "ssh",
	.transport = OUTBOUND_TRANSPORT_SSH,
	.check_spec = ssh_check_spec,
	.build_request = ssh_build_request,
	.parse_response = NULL,
};

/* ---------------------------------------------------------------------
 * What devices print
 * ---------------------------------------------------------------------
 */

/* The last line of buf[0..len): its start; *end excludes trailing blanks. */
static int
last_line(const char *buf, int len, int *end)
{
	int			e = len;
	int			s;

	while (e > 0 && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
		e--;
	s = e;
	while (s > 0 && buf[s - 1] != '\n' && buf[s - 1] != '\r')
		s--;
	*end = e;
	return s;
}

int
ssh_prompt_start(const SshDeviceType *dt, const char *buf, int len,
				 const char *base)
{
	int			end;
	int			s = last_line(buf, len, &end);
	int			blen = strlen(base);
	int			i;

	if (end - s < 2 || end - s > SSH_MAX_PROMPT ||
		strchr(dt->prompt_ends, buf[end - 1]) == NULL)
		return -1;
	for (i = s; i < end; i++)
		if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\b')
			return -1;
	if (blen == 0)
		return s;
	/* base, then nothing or a "(mode)", then the prompt character */
	if (end - s < blen + 1 || memcmp(buf + s, base, blen) != 0)
		return -1;
	i = s + blen;
	if (i < end - 1)
	{
		if (buf[i] != '(' || buf[end - 2] != ')')
			return -1;
	}
	return s;
}

void
ssh_prompt_base(const char *line, int len, char *base, int size)
{
	int			n = len;

	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	if (n > 0)
		n--;					/* the prompt character */
	if (n > 0 && line[n - 1] == ')')
	{
		const char *open = memchr(line, '(', n);

		if (open)
			n = open - line;
	}
	n = Min(n, size - 1);
	memcpy(base, line, n);
	base[n] = '\0';
}

char
ssh_prompt_mode(const char *buf, int start, int len)
{
	int			e = len;

	while (e > start && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
		e--;
	return e > start ? buf[e - 1] : 0;
}

bool
ssh_password_prompt(const char *buf, int len)
{
	int			e = len;

	while (e > 0 && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
		e--;
	return e >= 9 && pg_strncasecmp(buf + e - 9, "password:", 9) == 0;
}

int
ssh_more_start(const char *buf, int len)
{
	int			e = len;
	int			s;

	while (e > 0 && buf[e - 1] == ' ')
		e--;
	if (e < 8 || memcmp(buf + e - 8, "--More--", 8) != 0)
		return -1;
	s = e - 8;
	while (s > 0 && buf[s - 1] == ' ')
		s--;
	return s;
}

int
ssh_erase_length(const char *buf, int len)
{
	int			i = 0;

	/* backspaces, blanks over the marker, backspaces again; or CR blanks CR */
	if (i < len && (buf[i] == '\b' || buf[i] == '\r'))
	{
		char		c = buf[i];

		while (i < len && buf[i] == c)
			i++;
		while (i < len && buf[i] == ' ')
			i++;
		while (i < len && buf[i] == c)
			i++;
	}
	return i;
}

char *
ssh_output_text(const char *buf, int len, const char *sent)
{
	StringInfoData out;
	int			i = 0;

	/* the echo: the first line, when it ends with what was sent */
	if (sent)
	{
		const char *nl = memchr(buf, '\n', len);
		int			e = nl ? nl - buf : len;
		int			slen = strlen(sent);
		int			te = e;

		while (te > 0 && (buf[te - 1] == '\r' || buf[te - 1] == ' '))
			te--;
		if (te >= slen && memcmp(buf + te - slen, sent, slen) == 0)
			i = nl ? e + 1 : len;
	}
	initStringInfo(&out);
	for (; i < len; i++)
	{
		if (buf[i] == '\r' && (i + 1 == len || buf[i + 1] == '\n' || buf[i + 1] == '\r'))
			continue;
		appendStringInfoChar(&out, buf[i]);
	}
	return out.data;
}

char *
ssh_device_complaint(const SshDeviceType *dt, const char *output)
{
	const char *line = output;

	while (*line)
	{
		const char *nl = strchr(line, '\n');
		int			n = nl ? nl - line : strlen(line);
		const char *p = line;

		while (p < line + n && (*p == ' ' || *p == '\t'))
			p++;
		for (int i = 0; dt->errors[i]; i++)
		{
			int			el = strlen(dt->errors[i]);

			if (line + n - p >= el && pg_strncasecmp(p, dt->errors[i], el) == 0)
				return pnstrdup(p, line + n - p);
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return NULL;
}

void
ssh_mask_secret(char *s, const char *secret)
{
	size_t		len;
	char	   *p = s;

	if (s == NULL || secret == NULL || (len = strlen(secret)) == 0)
		return;
	while ((p = strstr(p, secret)) != NULL)
	{
		memset(p, '*', len);
		p += len;
	}
}
