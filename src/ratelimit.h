/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *	  Item-counted rate limits: a token bucket per role in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_RATELIMIT_H
#define BATCH_OPS_RATELIMIT_H

/* A batch refused by the rate limit; retry after the wait in the detail. */
#define ERRCODE_BATCH_OPS_RATE_LIMITED	MAKE_SQLSTATE('B','O','4','2','9')

/* GUCs */
extern int	batch_ops_rate_limit;		/* items per second, 0 = off */
extern int	batch_ops_rate_limit_burst; /* bucket size, 0 = rate_limit */

/*
 * Define the settings and, while preloading, ask for the shared memory;
 * called from _PG_init.
 */
extern void ratelimit_init(void);

/* Take n tokens from the calling role's bucket, or fail with an ERROR. */
extern void ratelimit_consume(int64 nitems);

/*
 * Work that waits rather than fails (async batches, imports; outbound
 * targets and actions later): call before each chunk's transaction with
 * the number of items it will write or attempt.
 */
extern void ratelimit_wait(Oid role, int64 nitems);

/* Wait for the tokens of up to 'want' items (at most a burst); how many. */
extern int64 ratelimit_reserve(Oid role, int64 want);

/* Give back the tokens of reserved items that were not used. */
extern void ratelimit_release(Oid role, int64 nitems);

/* SQL: batch_ops.rate_limit_status(), and its 0.1.0 C name */
extern PGDLLEXPORT Datum batch_ops_rate_limit_status(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum rate_limit_status(PG_FUNCTION_ARGS);

#endif							/* BATCH_OPS_RATELIMIT_H */
