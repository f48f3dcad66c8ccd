/*-------------------------------------------------------------------------
 *
 * engine_internal.h
 *	  The outbound engine (outbound_engine.c) and its transports: HTTP
 *	  through libcurl (http_engine.c) and SSH through libssh2
 *	  (ssh_engine.c).
 *
 * The engine owns everything that does not depend on the wire: the
 * targets' queue, per-host slots (fifo, pinned), the job's and the
 * cluster's concurrency, rate buckets, ttl (expired), retries with
 * backoff, the started marks of changes, the hooks, and the wait loop
 * (latch, postmaster death, the transport's sockets).  A transport starts
 * a target's request (send), tells the engine which sockets it waits on
 * (engine_socket_set), acts on their readiness and on its own timers, and
 * reports each attempt's end through engine_answered() or engine_failed().
 * A transport's callbacks into third-party libraries never throw; its own
 * functions may, and the engine then calls its cleanup (PG_FINALLY).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_ENGINE_INTERNAL_H
#define BATCH_OPS_ENGINE_INTERNAL_H

#include "storage/latch.h"
#include "utils/hsearch.h"

#include "outbound.h"

typedef enum
{
	T_PENDING,					/* not started, or waiting to retry */
	T_RUNNING,
	T_DONE
} TState;

/* A host's port and how many of its targets have not been sent yet. */
typedef struct HostPort
{
	int			port;
	int			left;
} HostPort;

typedef struct Host
{
	char		name[256];		/* hash key */
	int			running;		/* in flight (fifo) */
	int			polling;		/* between a reply and its follow-up (fifo) */
	bool		busy;			/* pinned: a target of the host is not done */
	int		   *order;			/* pinned: the host's targets, in order */
	int			norder;
	int			pos;			/* pinned: next in order */
	int			nports;			/* ports[]: targets not yet sent, per port */
	HostPort   *ports;			/* NULL: untracked (too many ports) */
} Host;

/* A target's state: kept small, there may be 100000 of them. */
typedef struct ETarget
{
	OutboundTarget *t;
	Host	   *host;
	TState		state;
	int			attempts;
	TimestampTz not_before;
	TimestampTz started_at;
	MemoryContext cxt;
	OutboundRequest *req;
	bool		marked;			/* its started mark is durable */
	void	   *x;				/* the transport's attempt in flight, or NULL */
	bool		polling;		/* waiting to send a follow-up */
} ETarget;

typedef struct Engine Engine;

typedef struct EngineTransport
{
	/* _PG_init: the transport's settings; may be NULL */
	void		(*init) (void);
	/* before the loop: the transport's state in e->tp */
	void		(*setup) (Engine *e);
	/* give back everything; safe to call twice, after an ERROR too */
	void		(*cleanup) (Engine *e);
	/* start the attempt of et->req (et->x), counted by the engine */
	void		(*send) (Engine *e, ETarget *et);
	/* drop et's attempt (et->x = NULL); never throws */
	void		(*release) (Engine *e, ETarget *et);
	/* a socket of engine_socket_set() is ready (WL_SOCKET_* events) */
	void		(*socket_ready) (Engine *e, pgsocket fd, uint32 events);
	/* ms until the transport's next timer, -1: none */
	long		(*next_timeout) (Engine *e);
	/* after the waits of a round: timers due, attempts that ended */
	void		(*progress) (Engine *e);
} EngineTransport;

struct Engine
{
	OutboundSpec *spec;
	const OutboundHooks *hooks;
	const EngineTransport *tr;
	void	   *tp;				/* the transport's own state */
	MemoryContext cxt;
	ETarget    *et;
	int			n;
	int			ndone;
	int			cursor;			/* targets before it are done */
	int			running;
	int			global_held;
	HTAB	   *hosts;
	HTAB	   *buckets;
	/* the sockets waited on (malloc'd: set from library callbacks) */
	int			nsock;
	int			sockcap;
	pgsocket   *sock_fd;
	uint32	   *sock_events;
	bool		sock_dirty;
	WaitEventSet *wes;
};

/* outbound_engine.c, for the transports */

/* wait on fd for events (WL_SOCKET_*), 0: no longer; false if out of memory */
extern bool engine_socket_set(Engine *e, pgsocket fd, uint32 events);

/* true if et is its host and port's last target not yet sent */
extern bool engine_last_for_port(Engine *e, ETarget *et);

/*
 * An attempt ended: with the driver's verdict on a reply (status: the
 * HTTP status or 0), or with a transport error (retry: a transport error
 * after which the engine may send again within options.retries; a change
 * is re-sent only if nothing can have reached the device, which the
 * transport says).
 */
extern void engine_answered(Engine *e, ETarget *et, OutboundOutcome *out,
							long status, int retry_after_ms);
extern void engine_failed(Engine *e, ETarget *et, const char *error,
						  char *message, bool retry);

extern const EngineTransport http_transport;
#ifdef WITH_SSH
extern const EngineTransport ssh_transport;
#endif

#endif							/* BATCH_OPS_ENGINE_INTERNAL_H */
