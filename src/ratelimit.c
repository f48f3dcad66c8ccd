/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  Item-counted rate limits (placeholder until issue #3 lands: no
 *	  limit is enforced and no setting exists yet).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "ratelimit.h"

void
ratelimit_consume(int64 nitems)
{
}
