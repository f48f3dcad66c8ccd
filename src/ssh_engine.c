/*-------------------------------------------------------------------------
 *
 * ssh_engine.c
 *	  The SSH transport of the outbound engine (engine_internal.h): CLI
 *	  devices over libssh2, non-blocking, every session driven from the
 *	  engine's one wait loop.
 *
 * A connection (Conn) goes: name resolution (numeric at once; a name
 * through glibc's getaddrinfo_a, polled, so the loop never blocks on DNS),
 * a non-blocking TCP connect to each address in turn that the outbound
 * policy allows (outbound_socket_allowed(), the check libcurl's sockets
 * get), the SSH handshake, the host key against known_hosts, user
 * authentication (public key, password, keyboard-interactive), and then
 * either an interactive shell with a pty (network CLIs: the device type's
 * prompt ends each command's output) or one exec channel per command
 * (linux).  Every libssh2 call is non-blocking: LIBSSH2_ERROR_EAGAIN means
 * "wait for what libssh2_session_block_directions() says", and the
 * connection's socket goes into the engine's wait set for that.  Nothing
 * here blocks for longer than a system call, so cancel and SIGTERM are
 * seen within the engine's wait (at most a second).
 *
 * A shell conversation is a sequence of phases (Phase): the banner up to
 * the first prompt (its base, "sw1", is learned then), paging off,
 * enable, configuration mode, the lines or commands, leaving
 * configuration mode.  A session that ends a target at a prompt is kept
 * (C_IDLE) and taken again by the next target for the same host, port,
 * credential and device type: queue_strategy "pinned" (the default for
 * ssh) runs a host's targets one after the other on it, so only the first
 * pays for connect and authentication.  Kept sessions live as long as the
 * run (the job, or the run_outbound call) and are closed at its end, or
 * after the host's last target: not across runs, since a session logged
 * in with a job's secrets should end with the job (DESIGN.md: secrets
 * are erased when it ends).
 *
 * Callbacks from inside libssh2 (keyboard-interactive) never throw.  An
 * attempt's end is recorded in its Conn and reported to the engine from
 * progress(), never from inside a socket's handling, so that the engine
 * may release (and free) the connection.  All a connection holds (socket,
 * libssh2 session, pending getaddrinfo_a request) is freed by cleanup,
 * after an ERROR too.  The enable password and the passwords go to the
 * device only; outputs and messages are masked for them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh2.h>

#include "common/base64.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "driver_internal.h"
#include "engine_internal.h"
#include "outbound_policy.h"
#include "ssh_device.h"

/* settings */
static char *ssh_known_hosts_file = NULL;
static bool ssh_accept_new_host_keys = false;

#define READ_CHUNK 16384
#define DNS_POLL_MS 10
#define PTY_WIDTH 511

typedef enum
{
	C_RESOLVE,					/* getaddrinfo_a in flight */
	C_CONNECT,					/* TCP connect in flight */
	C_HANDSHAKE,
	C_AUTH,
	C_SHELL_OPEN,				/* channel, pty, shell */
	C_DIALOG,					/* shell: a phase in progress */
	C_EXEC,						/* exec channels, one per line */
	C_IDLE,						/* kept between targets */
	C_BROKEN					/* closed when released */
} CState;

typedef enum
{
	P_BANNER,					/* up to the first prompt */
	P_PAGING,
	P_ENABLE,
	P_ENABLE_PW,
	P_CONFIG_ENTER,
	P_LINE,
	P_CONFIG_LEAVE,
	P_COMMAND,
	P_DONE
} Phase;

typedef enum
{
	O_NONE,
	O_ANSWERED,					/* a verdict: success or device_error */
	O_FAILED					/* a transport error */
} Outcome;

typedef struct Conn
{
	MemoryContext cxt;
	Engine	   *e;
	ETarget    *et;				/* the target being served, or NULL */
	const SshDeviceType *dt;
	/* what a kept session is taken again for */
	const char *host;
	int			port;
	const OutboundSecret *secret;

	CState		state;
	int			sub;			/* step within a state */
	pgsocket	fd;
	char	   *name;			/* the host to resolve (malloc'd) */
	struct gaicb *gai;			/* malloc'd; getaddrinfo_a */
	struct addrinfo *ai_list;
	struct addrinfo *ai;		/* the address being tried */
	bool		ai_from_gai;
	OutboundSocketCheck check;
	int			connect_errno;
	LIBSSH2_SESSION *session;
	LIBSSH2_CHANNEL *channel;
	char	   *auth_methods;
	int			auth_try;
	TimestampTz connect_deadline;	/* 0: connected and authenticated */
	TimestampTz deadline;		/* the target's */
	bool		last;			/* close after this target */

	/* the shell */
	Phase		phase;
	int			idx;
	StringInfoData in;
	StringInfoData out;
	int			out_off;
	bool		erase_next;		/* a pager's marker was cut: erase follows */
	char		base[SSH_MAX_PROMPT + 1];
	char		mode;			/* '>' or '#' of the last prompt */
	bool		paging_done;
	bool		in_config;
	const char *sent;			/* the line whose echo to strip */

	/* the target (memory: the target's context) */
	List	   *lines;
	int			nlines;
	char	  **outputs;
	int			noutputs;
	int			exit_status;
	StringInfoData err;			/* exec: stderr */
	bool		sent_change;
	Outcome		outcome;
	const char *error;
	char	   *message;
	bool		retry;
} Conn;

typedef struct Ssh
{
	MemoryContext cxt;
	Conn	  **conns;			/* every connection, busy or kept */
	int			nconns;
	int			cap;
	Conn	  **by_fd;
	int			nfd;
	char	   *known_hosts;	/* the file's text, or NULL */
	char	   *known_hosts_error;	/* why it could not be read */
} Ssh;

#define SSH(e) ((Ssh *) (e)->tp)
#define CONN(et) ((Conn *) (et)->x)

static bool ssh_library_ready = false;

static void conn_step(Conn *c);

/* ---------------------------------------------------------------------
 * Outcomes (recorded here, reported from progress)
 * ---------------------------------------------------------------------
 */

/* mask the credential's passwords in what a device or libssh2 said */
static void
mask_secrets(Conn *c, char *s)
{
	if (c->secret == NULL || s == NULL)
		return;
	ssh_mask_secret(s, c->secret->enable_password);
	ssh_mask_secret(s, c->secret->password);
}

static void
conn_fail(Conn *c, const char *error, char *message, bool retry)
{
	if (c->outcome != O_NONE)
		return;
	message = MemoryContextStrdup(c->et->cxt, message);
	mask_secrets(c, message);
	c->state = C_BROKEN;
	c->outcome = O_FAILED;
	c->error = error;
	c->message = message;
	c->retry = retry;
}

/* A failure once connected: a change may have reached the device. */
static void
conn_broke(Conn *c, const char *error, char *message)
{
	const OutboundOptions *o = &c->e->spec->opts;

	conn_fail(c, error, message,
			  !c->et->req->is_change || o->retry_unsafe || !c->sent_change);
}

static char *
ssh_errmsg(Conn *c, const char *what)
{
	char	   *msg = NULL;

	if (c->session)
		libssh2_session_last_error(c->session, &msg, NULL, 0);
	return psprintf("%s: %s", what, msg && *msg ? msg : "unknown error");
}

/* the device's verdict: the outputs so far, and a complaint if any */
static void
conn_answer(Conn *c, const char *error, char *message)
{
	if (c->outcome != O_NONE)
		return;
	if (message)
		message = MemoryContextStrdup(c->et->cxt, message);
	mask_secrets(c, message);
	c->outcome = O_ANSWERED;
	c->error = error;
	c->message = message;
}

/* ---------------------------------------------------------------------
 * Sockets
 * ---------------------------------------------------------------------
 */

static void
conn_wait(Conn *c, uint32 events)
{
	if (c->fd == PGINVALID_SOCKET)
		return;
	if (!engine_socket_set(c->e, c->fd, events))
		conn_fail(c, "connect_error", pstrdup("out of memory"), false);
}

/* wait for what libssh2 is blocked on (reading when it says nothing) */
static void
conn_wait_libssh2(Conn *c)
{
	int			dir = libssh2_session_block_directions(c->session);
	uint32		ev = 0;

	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		ev |= WL_SOCKET_READABLE;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		ev |= WL_SOCKET_WRITEABLE;
	conn_wait(c, ev ? ev : WL_SOCKET_READABLE);
}

static void
map_fd(Ssh *s, Conn *c)
{
	if (c->fd >= s->nfd)
	{
		int			n = Max(c->fd + 1, s->nfd * 2);

		if (s->by_fd == NULL)
			s->by_fd = MemoryContextAllocZero(s->cxt, sizeof(Conn *) * n);
		else
		{
			s->by_fd = repalloc(s->by_fd, sizeof(Conn *) * n);
			memset(s->by_fd + s->nfd, 0, sizeof(Conn *) * (n - s->nfd));
		}
		s->nfd = n;
	}
	s->by_fd[c->fd] = c;
}

/* ---------------------------------------------------------------------
 * Connecting
 * ---------------------------------------------------------------------
 */

static void
close_socket(Conn *c)
{
	if (c->fd == PGINVALID_SOCKET)
		return;
	engine_socket_set(c->e, c->fd, 0);
	if (c->fd < SSH(c->e)->nfd)
		SSH(c->e)->by_fd[c->fd] = NULL;
	close(c->fd);
	c->fd = PGINVALID_SOCKET;
}

/* Connect to the next address the policy allows; false when none is left. */
static bool
connect_next(Conn *c)
{
	for (; c->ai; c->ai = c->ai->ai_next)
	{
		struct addrinfo *a = c->ai;
		pgsocket	fd;
		int			one = 1;

		if (!outbound_socket_allowed(&c->check, a->ai_family, a->ai_addr))
			continue;
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
		{
			c->connect_errno = errno;
			continue;
		}
		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS)
		{
			c->fd = fd;
			map_fd(SSH(c->e), c);
			c->state = C_CONNECT;
			conn_wait(c, WL_SOCKET_WRITEABLE);
			return true;
		}
		c->connect_errno = errno;
		close(fd);
	}
	return false;
}

static void
connect_failed(Conn *c)
{
	if (c->connect_errno == 0 && c->check.refused)
		conn_fail(c, "not_allowed",
				  psprintf("address %s is not allowed by batch_ops.outbound_networks",
						   c->check.address), false);
	else
		conn_fail(c, "connect_error",
				  psprintf("could not connect to %s port %d: %s", c->host, c->port,
						   c->connect_errno ? strerror(c->connect_errno) :
						   "no address"), true);
}

static void
resolved(Conn *c, struct addrinfo *list, bool from_gai)
{
	c->ai_list = list;
	c->ai_from_gai = from_gai;
	c->ai = list;
	if (!connect_next(c))
		connect_failed(c);
}

/* Numeric hosts at once; names through getaddrinfo_a (polled). */
static void
conn_resolve(Conn *c)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char		port[16];
	char	   *name = outbound_unbracket_host(c->host);
	int			rc;

	snprintf(port, sizeof(port), "%d", c->port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(name, port, &hints, &res);
	if (rc == 0)
	{
		resolved(c, res, false);
		return;
	}
	{
		struct gaicb *g = calloc(1, sizeof(struct gaicb));
		struct addrinfo *h = calloc(1, sizeof(struct addrinfo));
		struct sigevent sev;

		c->name = malloc(strlen(name) + 1 + sizeof(port));
		if (g == NULL || h == NULL || c->name == NULL)
		{
			free(g);
			free(h);
			conn_fail(c, "dns_error", pstrdup("out of memory"), false);
			return;
		}
		strcpy(c->name, name);
		strcpy(c->name + strlen(name) + 1, port);
		h->ai_socktype = SOCK_STREAM;
		h->ai_flags = AI_NUMERICSERV;
		g->ar_name = c->name;
		g->ar_service = c->name + strlen(name) + 1;
		g->ar_request = h;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_NONE;
		c->gai = g;
		c->state = C_RESOLVE;
		if (getaddrinfo_a(GAI_NOWAIT, &c->gai, 1, &sev) != 0)
			conn_fail(c, "dns_error",
					  psprintf("could not resolve \"%s\"", name), false);
	}
}

/* A pending lookup: done yet? */
static void
resolve_poll(Conn *c)
{
	int			rc = gai_error(c->gai);

	if (rc == EAI_INPROGRESS)
		return;
	if (rc != 0)
	{
		conn_fail(c, "dns_error",
				  psprintf("could not resolve \"%s\": %s", c->host, gai_strerror(rc)),
				  false);
		return;
	}
	resolved(c, c->gai->ar_result, true);
	c->gai->ar_result = NULL;
	if (c->outcome == O_NONE)
		conn_step(c);
}

static void
free_lookup(Conn *c)
{
	if (c->gai)
	{
		/* a lookup still running cannot be freed: it is left to finish */
		if (gai_error(c->gai) == EAI_INPROGRESS && gai_cancel(c->gai) != EAI_CANCELED)
		{
			c->gai = NULL;
			c->name = NULL;
		}
		else
		{
			if (c->gai->ar_result)
				freeaddrinfo(c->gai->ar_result);
			free((void *) c->gai->ar_request);
			free(c->gai);
			free(c->name);
			c->gai = NULL;
			c->name = NULL;
		}
	}
	if (c->ai_list)
	{
		freeaddrinfo(c->ai_list);
		c->ai_list = NULL;
	}
}

static void
connect_done(Conn *c)
{
	int			err = 0;
	socklen_t	len = sizeof(err);
	struct pollfd pfd;

	/* not writable yet: the connect is still in progress */
	pfd.fd = c->fd;
	pfd.events = POLLOUT;
	pfd.revents = 0;
	if (poll(&pfd, 1, 0) == 0)
		return;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	if (err != 0)
	{
		c->connect_errno = err;
		close_socket(c);
		c->ai = c->ai->ai_next;
		if (!connect_next(c))
			connect_failed(c);
		return;
	}
	free_lookup(c);
	c->session = libssh2_session_init_ex(NULL, NULL, NULL, c);
	if (c->session == NULL)
	{
		conn_fail(c, "connect_error", pstrdup("could not create an SSH session"), false);
		return;
	}
	libssh2_session_set_blocking(c->session, 0);
	c->state = C_HANDSHAKE;
}

/* ---------------------------------------------------------------------
 * Host key and authentication
 * ---------------------------------------------------------------------
 */

static int
known_key_type(int hostkey_type)
{
	switch (hostkey_type)
	{
		case LIBSSH2_HOSTKEY_TYPE_RSA:
			return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
		case LIBSSH2_HOSTKEY_TYPE_DSS:
			return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
			return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
			return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
			return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
		case LIBSSH2_HOSTKEY_TYPE_ED25519:
			return LIBSSH2_KNOWNHOST_KEY_ED25519;
	}
	return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
}

static void
add_known_lines(LIBSSH2_KNOWNHOSTS *kh, const char *text)
{
	const char *p = text;

	while (p && *p)
	{
		const char *nl = strchr(p, '\n');
		size_t		n = nl ? (size_t) (nl - p) : strlen(p);

		/* comments, blank and unparsable lines are skipped */
		if (n > 0 && p[0] != '#')
		{
			/* libssh2 1.10 reads past len: give it the line alone */
			char	   *line = pnstrdup(p, n);

			(void) libssh2_knownhost_readline(kh, line, n, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
			pfree(line);
		}
		p = nl ? nl + 1 : NULL;
	}
}

/* "SHA256:..." of the server's key, as ssh-keygen -l shows it */
static char *
key_fingerprint(Conn *c)
{
	const char *hash = libssh2_hostkey_hash(c->session, LIBSSH2_HOSTKEY_HASH_SHA256);
	char		b64[64];
	int			n;

	if (hash == NULL)
		return pstrdup("(no fingerprint)");
	n = pg_b64_encode(hash, 32, b64, sizeof(b64) - 1);
	if (n < 0)
		return pstrdup("(no fingerprint)");
	while (n > 0 && b64[n - 1] == '=')
		n--;
	b64[n] = '\0';
	return psprintf("SHA256:%s", b64);
}

/* The server's key against known_hosts; false (and failed) if refused. */
static bool
host_key_ok(Conn *c)
{
	Ssh		   *s = SSH(c->e);
	size_t		len;
	int			type;
	const char *key = libssh2_session_hostkey(c->session, &len, &type);
	LIBSSH2_KNOWNHOSTS *kh;
	int			rc;
	char	   *host = outbound_unbracket_host(c->host);

	if (key == NULL)
	{
		conn_fail(c, "host_key_error", ssh_errmsg(c, "no host key"), false);
		return false;
	}
	if (s->known_hosts_error && !(c->secret && c->secret->known_hosts))
	{
		conn_fail(c, "host_key_error", pstrdup(s->known_hosts_error), false);
		return false;
	}
	kh = libssh2_knownhost_init(c->session);
	if (kh == NULL)
	{
		conn_fail(c, "host_key_error", pstrdup("out of memory"), false);
		return false;
	}
	if (c->secret && c->secret->known_hosts)
		add_known_lines(kh, c->secret->known_hosts);
	if (s->known_hosts)
		add_known_lines(kh, s->known_hosts);
	rc = libssh2_knownhost_checkp(kh, host, c->port, key, len,
								  LIBSSH2_KNOWNHOST_TYPE_PLAIN |
								  LIBSSH2_KNOWNHOST_KEYENC_RAW |
								  known_key_type(type), NULL);
	libssh2_knownhost_free(kh);
	if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		return true;
	if (rc == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && ssh_accept_new_host_keys)
		return true;
	conn_fail(c, "host_key_error",
			  psprintf(rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH ?
					   "the host key of %s port %d (%s) does not match known_hosts" :
					   "the host key of %s port %d (%s) is not in known_hosts",
					   host, c->port, key_fingerprint(c)),
			  false);
	return false;
}

/* keyboard-interactive: the password for every prompt (never throws) */
static void
kbdint_cb(const char *name, int name_len, const char *instruction,
		  int instruction_len, int num_prompts,
		  const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
		  LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract)
{
	Conn	   *c = *abstract;
	const char *pw = c->secret ? c->secret->password : NULL;

	for (int i = 0; i < num_prompts; i++)
	{
		responses[i].text = pw ? strdup(pw) : NULL;
		responses[i].length = responses[i].text ? strlen(pw) : 0;
	}
}

typedef enum
{
	AUTH_KEY,
	AUTH_PASSWORD,
	AUTH_KBDINT,
	AUTH_METHODS
} AuthMethod;

static bool
method_usable(Conn *c, AuthMethod m)
{
	const char *names[] = {"publickey", "password", "keyboard-interactive"};

	if (c->auth_methods == NULL || strstr(c->auth_methods, names[m]) == NULL)
		return false;
	if (m == AUTH_KEY)
		return c->secret->private_key != NULL;
	return c->secret->password != NULL;
}

/* One step of authentication: 1 done, 0 wait, -1 failed (recorded). */
static int
auth_step(Conn *c)
{
	const char *user = c->secret ? c->secret->username : NULL;
	int			rc;

	if (user == NULL)
	{
		conn_fail(c, "auth_error",
				  pstrdup("no user name: give connection_args.username or a credential with one"),
				  false);
		return -1;
	}
	if (c->auth_methods == NULL)
	{
		char	   *list = libssh2_userauth_list(c->session, user, strlen(user));

		if (list == NULL)
		{
			if (libssh2_userauth_authenticated(c->session))
				return 1;
			if (libssh2_session_last_errno(c->session) == LIBSSH2_ERROR_EAGAIN)
				return 0;
			conn_fail(c, "auth_error", ssh_errmsg(c, "authentication failed"), false);
			return -1;
		}
		c->auth_methods = MemoryContextStrdup(c->cxt, list);
		c->auth_try = 0;
	}
	for (; c->auth_try < AUTH_METHODS; c->auth_try++)
	{
		if (!method_usable(c, c->auth_try))
			continue;
		if (c->auth_try == AUTH_KEY)
			rc = libssh2_userauth_publickey_frommemory(c->session, user, strlen(user),
													   NULL, 0, c->secret->private_key,
													   strlen(c->secret->private_key),
													   NULL);
		else if (c->auth_try == AUTH_PASSWORD)
			rc = libssh2_userauth_password(c->session, user, c->secret->password);
		else
			rc = libssh2_userauth_keyboard_interactive(c->session, user, kbdint_cb);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		if (rc == 0)
			return 1;
	}
	conn_fail(c, "auth_error",
			  psprintf("authentication of user \"%s\" failed (the server offers: %s)",
					   user, c->auth_methods), false);
	return -1;
}

/* ---------------------------------------------------------------------
 * The target's conversation
 * ---------------------------------------------------------------------
 */

static void
send_line(Conn *c, const char *line, bool echo_expected)
{
	resetStringInfo(&c->in);
	appendStringInfoString(&c->out, line);
	appendStringInfoChar(&c->out, '\n');
	c->sent = echo_expected ? line : NULL;
}

static const char *
current_line(Conn *c)
{
	return (const char *) list_nth(c->lines, c->idx);
}

/* Start the first phase at or after p that applies. */
static void
start_phase(Conn *c, Phase p)
{
	const SshDeviceType *dt = c->dt;
	bool		config = c->et->t->config != NULL;

	for (;; p++)
	{
		c->phase = p;
		switch (p)
		{
			case P_BANNER:
				if (c->base[0] != '\0')
					continue;
				resetStringInfo(&c->in);
				c->sent = NULL;
				return;
			case P_PAGING:
				if (dt->paging_off == NULL || c->paging_done)
					continue;
				send_line(c, dt->paging_off, true);
				return;
			case P_ENABLE:
				if (dt->enable == NULL || c->mode == '#' ||
					!(config || (c->secret && c->secret->enable_password)))
					continue;
				send_line(c, dt->enable, true);
				return;
			case P_ENABLE_PW:
				continue;		/* entered from P_ENABLE only */
			case P_CONFIG_ENTER:
				if (!config || c->in_config)
					continue;
				send_line(c, dt->config_enter, true);
				return;
			case P_LINE:
				if (!config)
					continue;
				c->idx = 0;
				send_line(c, current_line(c), true);
				c->sent_change = true;
				return;
			case P_CONFIG_LEAVE:
				if (!config)
					continue;
				send_line(c, dt->config_leave, true);
				return;
			case P_COMMAND:
				if (config)
					continue;
				c->idx = 0;
				send_line(c, current_line(c), true);
				return;
			case P_DONE:
				c->state = C_IDLE;
				conn_wait(c, 0);
				conn_answer(c, c->error, c->message);
				return;
		}
	}
}

static char *
line_complaint(Conn *c, const char *what, char *complaint)
{
	return psprintf("%s %d \"%s\": %s", what, c->idx + 1, current_line(c), complaint);
}

/*
 * A config line's or a command's output: kept; a complaint ends the lines
 * (the rest are not sent) and goes on with phase after, as does the last
 * line; else the next line.
 */
static void
line_done(Conn *c, char *out, const char *what, Phase after)
{
	char	   *complaint = ssh_device_complaint(c->dt, out);

	c->outputs[c->noutputs++] = out;
	if (complaint)
	{
		c->error = "device_error";
		c->message = line_complaint(c, what, complaint);
		start_phase(c, after);
	}
	else if (++c->idx < c->nlines)
		send_line(c, current_line(c), true);
	else
		start_phase(c, after);
}

/* What came back up to a prompt (text) ends the phase. */
static void
phase_done(Conn *c, const char *text, int textlen, char mode)
{
	char	   *out = ssh_output_text(text, textlen, c->sent);
	char	   *complaint;

	c->mode = mode;
	switch (c->phase)
	{
		case P_BANNER:
			start_phase(c, P_PAGING);
			return;
		case P_PAGING:
			c->paging_done = true;
			start_phase(c, P_ENABLE);
			return;
		case P_ENABLE:
		case P_ENABLE_PW:
			if (mode != '#')
			{
				conn_fail(c, "auth_error",
						  pstrdup("the device refused enable mode (check the credential's enable_password)"),
						  false);
				return;
			}
			start_phase(c, P_CONFIG_ENTER);
			return;
		case P_CONFIG_ENTER:
			if ((complaint = ssh_device_complaint(c->dt, out)) != NULL)
			{
				conn_answer(c, "device_error",
							psprintf("%s: %s", c->dt->config_enter, complaint));
				c->state = C_BROKEN;	/* mode unknown: not kept */
				return;
			}
			c->in_config = true;
			start_phase(c, P_LINE);
			return;
		case P_LINE:
			line_done(c, out, "config line", P_CONFIG_LEAVE);
			return;
		case P_CONFIG_LEAVE:
			c->in_config = false;
			if ((complaint = ssh_device_complaint(c->dt, out)) != NULL && c->error == NULL)
			{
				c->error = "device_error";
				c->message = psprintf("%s: %s", c->dt->config_leave, complaint);
			}
			start_phase(c, P_DONE);
			return;
		case P_COMMAND:
			line_done(c, out, "command", P_DONE);
			return;
		case P_DONE:
			return;
	}
}

/* Bytes from the shell: pager markers out, then is the phase done? */
static void
shell_input(Conn *c, const char *buf, int n)
{
	int			more;
	int			ps;

	if (c->erase_next)
	{
		int			skip = ssh_erase_length(buf, n);

		buf += skip;
		n -= skip;
		c->erase_next = (n == 0);
	}
	appendBinaryStringInfo(&c->in, buf, n);
	if ((more = ssh_more_start(c->in.data, c->in.len)) >= 0)
	{
		c->in.len = more;
		c->in.data[more] = '\0';
		appendStringInfoChar(&c->out, ' ');
		c->erase_next = true;
		return;
	}
	if (c->phase == P_ENABLE && ssh_password_prompt(c->in.data, c->in.len))
	{
		const char *pw = c->secret ? c->secret->enable_password : NULL;

		resetStringInfo(&c->in);
		appendStringInfoString(&c->out, pw ? pw : "");
		appendStringInfoChar(&c->out, '\n');
		c->sent = NULL;
		c->phase = P_ENABLE_PW;
		return;
	}
	if (c->phase == P_ENABLE_PW && ssh_password_prompt(c->in.data, c->in.len))
	{
		conn_fail(c, "auth_error",
				  pstrdup("the device refused the enable password"), false);
		return;
	}
	ps = ssh_prompt_start(c->dt, c->in.data, c->in.len, c->base);
	if (ps < 0)
		return;
	if (c->base[0] == '\0')
		ssh_prompt_base(c->in.data + ps, c->in.len - ps, c->base, sizeof(c->base));
	{
		char		mode = ssh_prompt_mode(c->in.data, ps, c->in.len);
		MemoryContext old = MemoryContextSwitchTo(c->et->cxt);
		int			textlen = ps;

		phase_done(c, c->in.data, textlen, mode);
		MemoryContextSwitchTo(old);
	}
}

/* Write what is queued, read what came; 1 progress, 0 wait, -1 broken. */
static int
shell_io(Conn *c)
{
	char		buf[READ_CHUNK];
	ssize_t		n;
	int64		max = c->e->spec->opts.max_output_bytes;

	while (c->out_off < c->out.len)
	{
		n = libssh2_channel_write(c->channel, c->out.data + c->out_off,
								  c->out.len - c->out_off);
		if (n == LIBSSH2_ERROR_EAGAIN)
			return 0;
		if (n < 0)
		{
			conn_broke(c, "connect_error", ssh_errmsg(c, "could not send to the device"));
			return -1;
		}
		c->out_off += n;
	}
	resetStringInfo(&c->out);
	c->out_off = 0;
	n = libssh2_channel_read(c->channel, buf, sizeof(buf));
	if (n == LIBSSH2_ERROR_EAGAIN)
		return 0;
	if (n < 0)
	{
		conn_broke(c, "connect_error", ssh_errmsg(c, "the session broke"));
		return -1;
	}
	if (n == 0)
	{
		if (libssh2_channel_eof(c->channel))
		{
			conn_broke(c, "connect_error",
					   pstrdup("the device closed the session before its prompt came back"));
			return -1;
		}
		return 0;
	}
	if (c->in.len + n > max)
	{
		conn_fail(c, "response_too_large",
				  psprintf("the output exceeds max_output_bytes (" INT64_FORMAT ")", max),
				  false);
		return -1;
	}
	shell_input(c, buf, (int) n);
	return 1;
}

/* Open the channel, a pty and the shell; 1 done, 0 wait, -1 failed. */
static int
shell_open(Conn *c)
{
	int			rc;

	if (c->sub == 0)
	{
		c->channel = libssh2_channel_open_session(c->session);
		if (c->channel == NULL)
		{
			if (libssh2_session_last_errno(c->session) == LIBSSH2_ERROR_EAGAIN)
				return 0;
			conn_fail(c, "connect_error", ssh_errmsg(c, "could not open a channel"), true);
			return -1;
		}
		c->sub = 1;
	}
	if (c->sub == 1)
	{
		rc = libssh2_channel_request_pty_ex(c->channel, "vt100", 5, NULL, 0,
											PTY_WIDTH, 24, 0, 0);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		if (rc != 0)
		{
			conn_fail(c, "connect_error", ssh_errmsg(c, "the device refused a pty"), true);
			return -1;
		}
		c->sub = 2;
	}
	rc = libssh2_channel_shell(c->channel);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return 0;
	if (rc != 0)
	{
		conn_fail(c, "connect_error", ssh_errmsg(c, "the device refused a shell"), true);
		return -1;
	}
	c->sub = 0;
	return 1;
}

/*
 * exec channels (linux): one per line; a line fails by its exit status.
 * Returns 1 when the target is done, 0 to wait, -1 failed.
 */
static int
exec_step(Conn *c)
{
	char		buf[READ_CHUNK];
	ssize_t		n;
	int			rc;
	int64		max = c->e->spec->opts.max_output_bytes;

	for (;;)
	{
		switch (c->sub)
		{
			case 0:
				if (c->idx >= c->nlines)
					return 1;
				c->channel = libssh2_channel_open_session(c->session);
				if (c->channel == NULL)
				{
					if (libssh2_session_last_errno(c->session) == LIBSSH2_ERROR_EAGAIN)
						return 0;
					conn_broke(c, "connect_error", ssh_errmsg(c, "could not open a channel"));
					return -1;
				}
				resetStringInfo(&c->in);
				resetStringInfo(&c->err);
				c->sub = 1;
				break;
			case 1:
				rc = libssh2_channel_exec(c->channel, current_line(c));
				if (rc == LIBSSH2_ERROR_EAGAIN)
					return 0;
				if (c->et->t->config)
					c->sent_change = true;
				if (rc != 0)
				{
					conn_broke(c, "connect_error", ssh_errmsg(c, "the server refused the command"));
					return -1;
				}
				c->sub = 2;
				break;
			case 2:
				n = libssh2_channel_read(c->channel, buf, sizeof(buf));
				if (n > 0)
				{
					if (c->in.len + n > max)
					{
						conn_fail(c, "response_too_large",
								  psprintf("the output exceeds max_output_bytes (" INT64_FORMAT ")", max),
								  false);
						return -1;
					}
					appendBinaryStringInfo(&c->in, buf, n);
					break;
				}
				if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
				{
					conn_broke(c, "connect_error", ssh_errmsg(c, "the session broke"));
					return -1;
				}
				n = libssh2_channel_read_stderr(c->channel, buf, sizeof(buf));
				if (n > 0)
				{
					if (c->err.len < 4096)
						appendBinaryStringInfo(&c->err, buf, Min(n, 4096));
					break;
				}
				if (!libssh2_channel_eof(c->channel))
					return 0;
				c->sub = 3;
				break;
			case 3:
				rc = libssh2_channel_close(c->channel);
				if (rc == LIBSSH2_ERROR_EAGAIN)
					return 0;
				c->sub = 4;
				break;
			case 4:
				rc = libssh2_channel_wait_closed(c->channel);
				if (rc == LIBSSH2_ERROR_EAGAIN)
					return 0;
				c->exit_status = libssh2_channel_get_exit_status(c->channel);
				rc = libssh2_channel_free(c->channel);
				if (rc == LIBSSH2_ERROR_EAGAIN)
					return 0;
				c->channel = NULL;
				{
					MemoryContext old = MemoryContextSwitchTo(c->et->cxt);

					c->outputs[c->noutputs++] = pnstrdup(c->in.data, c->in.len);
					if (c->exit_status != 0)
					{
						const char *nl = memchr(c->err.data, '\n', c->err.len);

						c->error = "device_error";
						c->message = psprintf("%s %d \"%s\" exited with status %d%s%.*s",
											  c->et->t->config ? "config line" : "command",
											  c->idx + 1, current_line(c), c->exit_status,
											  c->err.len ? ": " : "",
											  nl ? (int) (nl - c->err.data) : c->err.len,
											  c->err.data);
						c->idx = c->nlines;
					}
					MemoryContextSwitchTo(old);
				}
				c->idx++;
				c->sub = 0;
				break;
		}
	}
}

/* ---------------------------------------------------------------------
 * The state machine
 * ---------------------------------------------------------------------
 */

static void
authenticated(Conn *c)
{
	c->connect_deadline = 0;
	c->sub = 0;
	if (c->dt->shell)
		c->state = C_SHELL_OPEN;
	else
		c->state = C_EXEC;
}

/* Begin the target's work on a connected, authenticated session. */
static void
target_begin(Conn *c)
{
	if (c->dt->shell)
	{
		c->state = C_DIALOG;
		start_phase(c, P_BANNER);
	}
	else
	{
		c->state = C_EXEC;
		c->sub = 0;
		c->idx = 0;
	}
}

/* Drive the connection as far as it goes without waiting. */
static void
conn_step(Conn *c)
{
	int			rc;

	while (c->outcome == O_NONE)
	{
		switch (c->state)
		{
			case C_RESOLVE:
				return;
			case C_CONNECT:
				connect_done(c);
				if (c->state == C_CONNECT)
					return;
				break;
			case C_HANDSHAKE:
				rc = libssh2_session_handshake(c->session, c->fd);
				if (rc == LIBSSH2_ERROR_EAGAIN)
				{
					conn_wait_libssh2(c);
					return;
				}
				if (rc != 0)
				{
					conn_fail(c, "connect_error", ssh_errmsg(c, "SSH handshake failed"), true);
					break;
				}
				if (!host_key_ok(c))
					break;
				c->state = C_AUTH;
				break;
			case C_AUTH:
				rc = auth_step(c);
				if (rc == 0)
				{
					conn_wait_libssh2(c);
					return;
				}
				if (rc > 0)
				{
					authenticated(c);
					if (c->state == C_SHELL_OPEN)
						break;
					target_begin(c);
				}
				break;
			case C_SHELL_OPEN:
				rc = shell_open(c);
				if (rc == 0)
				{
					conn_wait_libssh2(c);
					return;
				}
				if (rc > 0)
					target_begin(c);
				break;
			case C_DIALOG:
				rc = shell_io(c);
				if (rc == 0)
				{
					uint32		ev = WL_SOCKET_READABLE;

					if (c->out_off < c->out.len &&
						(libssh2_session_block_directions(c->session) & LIBSSH2_SESSION_BLOCK_OUTBOUND))
						ev |= WL_SOCKET_WRITEABLE;
					conn_wait(c, ev);
					return;
				}
				break;
			case C_EXEC:
				rc = exec_step(c);
				if (rc == 0)
				{
					conn_wait_libssh2(c);
					return;
				}
				if (rc > 0)
				{
					c->state = C_IDLE;
					conn_wait(c, 0);
					conn_answer(c, c->error, c->message);
				}
				break;
			case C_IDLE:
			case C_BROKEN:
				return;
		}
	}
}

/* ---------------------------------------------------------------------
 * Connections: new, kept, freed
 * ---------------------------------------------------------------------
 */

static void
conn_destroy(Ssh *s, Conn *c)
{
	int			i;

	if (c->fd != PGINVALID_SOCKET)
		(void) shutdown(c->fd, SHUT_RDWR);
	if (c->session)
	{
		/* the socket is shut: libssh2 cannot wait on it any more */
		for (i = 0; i < 4; i++)
			if (libssh2_session_free(c->session) != LIBSSH2_ERROR_EAGAIN)
				break;
		c->session = NULL;
		c->channel = NULL;
	}
	close_socket(c);
	free_lookup(c);
	for (i = 0; i < s->nconns; i++)
		if (s->conns[i] == c)
		{
			s->conns[i] = s->conns[--s->nconns];
			break;
		}
	MemoryContextDelete(c->cxt);
}

static bool
same_string(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* the same login: inline secrets are one struct per target, so by value */
static bool
same_secret(const OutboundSecret *a, const OutboundSecret *b)
{
	return a == b ||
		(a && b && same_string(a->username, b->username) &&
		 same_string(a->password, b->password) &&
		 same_string(a->private_key, b->private_key) &&
		 same_string(a->enable_password, b->enable_password) &&
		 same_string(a->known_hosts, b->known_hosts));
}

static bool
same_session(Conn *c, ETarget *et, const SshDeviceType *dt)
{
	return c->et == NULL && c->state == C_IDLE && c->dt == dt &&
		c->port == et->t->port && same_secret(c->secret, et->t->secret) &&
		strcmp(c->host, et->t->hostname) == 0;
}

static Conn *
conn_new(Engine *e, ETarget *et, const SshDeviceType *dt)
{
	Ssh		   *s = SSH(e);
	MemoryContext cxt = AllocSetContextCreate(s->cxt, "batch_ops ssh session",
											  ALLOCSET_SMALL_SIZES);
	Conn	   *c = MemoryContextAllocZero(cxt, sizeof(Conn));
	MemoryContext old = MemoryContextSwitchTo(cxt);

	c->cxt = cxt;
	c->e = e;
	c->dt = dt;
	c->host = pstrdup(et->t->hostname);
	c->port = et->t->port;
	c->secret = et->t->secret;
	c->fd = PGINVALID_SOCKET;
	initStringInfo(&c->in);
	initStringInfo(&c->out);
	initStringInfo(&c->err);
	outbound_socket_check_init(&c->check, c->host, false);
	MemoryContextSwitchTo(old);
	if (s->nconns == s->cap)
	{
		s->cap = Max(16, s->cap * 2);
		s->conns = s->conns ? repalloc(s->conns, sizeof(Conn *) * s->cap) :
			MemoryContextAlloc(s->cxt, sizeof(Conn *) * s->cap);
	}
	s->conns[s->nconns++] = c;
	return c;
}

static void
ssh_send(Engine *e, ETarget *et)
{
	Ssh		   *s = SSH(e);
	const SshDeviceType *dt = ssh_device_type(et->t);
	Conn	   *c = NULL;
	bool		fresh = false;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old;

	for (int i = 0; i < s->nconns; i++)
		if (same_session(s->conns[i], et, dt))
		{
			c = s->conns[i];
			break;
		}
	if (c == NULL)
	{
		c = conn_new(e, et, dt);
		fresh = true;
	}
	et->x = c;
	c->et = et;
	c->last = engine_last_for_port(e, et);
	c->outcome = O_NONE;
	c->error = NULL;
	c->message = NULL;
	c->sent_change = false;
	c->deadline = now + (int64) et->t->timeout_ms * 1000;
	old = MemoryContextSwitchTo(et->cxt);
	c->lines = jb_string_list(et->t->config ? et->t->config : et->t->command);
	c->nlines = list_length(c->lines);
	c->outputs = palloc0(sizeof(char *) * Max(c->nlines, 1));
	c->noutputs = 0;
	c->idx = 0;
	MemoryContextSwitchTo(old);
	if (fresh)
	{
		c->connect_deadline = now + (int64) et->t->connect_timeout_ms * 1000;
		if (!ssh_library_ready)
		{
			if (libssh2_init(0) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not initialize libssh2")));
			ssh_library_ready = true;
		}
		conn_resolve(c);
	}
	else
		target_begin(c);
	conn_step(c);
}

static void
ssh_release(Engine *e, ETarget *et)
{
	Conn	   *c = CONN(et);

	if (c == NULL)
		return;
	et->x = NULL;
	c->et = NULL;
	c->lines = NULL;
	c->outputs = NULL;
	c->outcome = O_NONE;
	if (c->state != C_IDLE || c->last)
		conn_destroy(SSH(e), c);
}

static void
ssh_socket_ready(Engine *e, pgsocket fd, uint32 events)
{
	Ssh		   *s = SSH(e);
	Conn	   *c = fd < s->nfd ? s->by_fd[fd] : NULL;

	if (c && c->et)
		conn_step(c);
}

static long
ssh_next_timeout(Engine *e)
{
	Ssh		   *s = SSH(e);
	TimestampTz now = GetCurrentTimestamp();
	long		wait = -1;

	for (int i = 0; i < s->nconns; i++)
	{
		Conn	   *c = s->conns[i];
		TimestampTz d;
		long		w;

		if (c->et == NULL)
			continue;
		if (c->outcome != O_NONE)
			return 0;
		if (c->state == C_RESOLVE)
			wait = wait < 0 ? DNS_POLL_MS : Min(wait, DNS_POLL_MS);
		d = c->connect_deadline ? Min(c->connect_deadline, c->deadline) : c->deadline;
		w = (long) Max((d - now + 999) / 1000, 0);
		wait = wait < 0 ? w : Min(wait, w);
	}
	return wait;
}

/* the transport's error for a target whose time ran out */
static void
conn_timed_out(Conn *c, TimestampTz now)
{
	if (c->connect_deadline && now >= c->connect_deadline)
		conn_fail(c, "timeout",
				  psprintf("could not connect and log in within connect_timeout (%d ms)",
						   c->et->t->connect_timeout_ms), true);
	else
		conn_broke(c, "timeout",
				   psprintf("the device did not answer within the timeout (%d ms)",
							c->et->t->timeout_ms));
}

/* report one attempt's end to the engine */
static void
report(Engine *e, Conn *c)
{
	ETarget    *et = c->et;
	OutboundOutcome out;
	MemoryContext old;

	if (c->outcome == O_FAILED)
	{
		engine_failed(e, et, c->error, c->message, c->retry);
		return;
	}
	old = MemoryContextSwitchTo(et->cxt);
	memset(&out, 0, sizeof(out));
	{
		JsonbParseState *st = NULL;

		pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
		for (int i = 0; i < c->noutputs; i++)
		{
			JsonbValue	v;

			mask_secrets(c, c->outputs[i]);
			v.type = jbvString;
			v.val.string.val = c->outputs[i];
			v.val.string.len = strlen(c->outputs[i]);
			pushJsonbValue(&st, WJB_ELEM, &v);
		}
		out.output = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_ARRAY, NULL));
	}
	out.success = c->error == NULL;
	out.error = c->error;
	out.message = c->message;
	MemoryContextSwitchTo(old);
	engine_answered(e, et, &out, 0, -1);
}

static void
ssh_progress(Engine *e)
{
	Ssh		   *s = SSH(e);
	TimestampTz now = GetCurrentTimestamp();
	int			i = 0;

	while (i < s->nconns)
	{
		Conn	   *c = s->conns[i];

		if (c->et && c->outcome == O_NONE)
		{
			if (c->state == C_RESOLVE)
				resolve_poll(c);
			if (c->outcome == O_NONE &&
				(now >= c->deadline || (c->connect_deadline && now >= c->connect_deadline)))
				conn_timed_out(c, now);
		}
		if (c->et && c->outcome != O_NONE)
		{
			/* may free c and move the last connection into slot i */
			report(e, c);
			continue;
		}
		i++;
	}
}

static void
ssh_setup(Engine *e)
{
	Ssh		   *s = palloc0(sizeof(Ssh));

	s->cxt = AllocSetContextCreate(e->cxt, "batch_ops ssh transport",
								   ALLOCSET_DEFAULT_SIZES);
	e->tp = s;
	if (ssh_known_hosts_file && ssh_known_hosts_file[0] != '\0')
	{
		FILE	   *f = AllocateFile(ssh_known_hosts_file, "r");

		if (f == NULL)
			s->known_hosts_error = psprintf("could not read batch_ops.ssh_known_hosts_file \"%s\": %m",
											ssh_known_hosts_file);
		else
		{
			StringInfoData buf;
			char		chunk[8192];
			size_t		n;

			initStringInfo(&buf);
			while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
				appendBinaryStringInfo(&buf, chunk, n);
			FreeFile(f);
			s->known_hosts = buf.data;
		}
	}
}

static void
ssh_cleanup(Engine *e)
{
	Ssh		   *s = SSH(e);

	if (s == NULL)
		return;
	while (s->nconns > 0)
		conn_destroy(s, s->conns[s->nconns - 1]);
}

static void ssh_engine_init(void);

const EngineTransport ssh_transport = {
	.init = ssh_engine_init,
	.setup = ssh_setup,
	.cleanup = ssh_cleanup,
	.send = ssh_send,
	.release = ssh_release,
	.socket_ready = ssh_socket_ready,
	.next_timeout = ssh_next_timeout,
	.progress = ssh_progress,
};

/* Settings, from outbound_engine_init(). */
static void
ssh_engine_init(void)
{
	DefineCustomStringVariable("batch_ops.ssh_known_hosts_file",
							   "An OpenSSH known_hosts file that the ssh driver checks host keys against.",
							   "Read at the start of each run, in addition to the known_hosts field of the target's credential.",
							   &ssh_known_hosts_file,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("batch_ops.ssh_accept_new_host_keys",
							 "Accept the host key of an SSH device not listed in known_hosts.",
							 "A key that contradicts a listed one is still refused; accepted keys are not recorded.",
							 &ssh_accept_new_host_keys,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}
