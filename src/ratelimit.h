/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *	  Item-counted rate limits: a token bucket per role in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_RATELIMIT_H
#define BATCH_OPS_RATELIMIT_H

/* Take n tokens from the calling role's bucket, or fail with an ERROR. */
extern void ratelimit_consume(int64 nitems);

#endif							/* BATCH_OPS_RATELIMIT_H */
