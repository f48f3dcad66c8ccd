/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  Item-counted rate limits: a token bucket per role in shared memory.
 *
 * Every role has a bucket that holds batch_ops.rate_limit_burst tokens (by
 * default as many as batch_ops.rate_limit) and refills continuously at
 * batch_ops.rate_limit tokens per second.  A batch of n items takes n
 * tokens, or fails with BO429 and the time after which it would pass;
 * taking nothing when it fails.  A batch larger than the bucket could
 * never pass, so it fails at once with 54000, as the size limits do.
 *
 * The buckets are in shared memory, in a hash table keyed by role OID, so
 * all the sessions of a role, in every database, drain the same bucket.
 * A bucket is made, full, the first time a role is limited.  A bucket that
 * has refilled is the same as no bucket, so when the table is full such
 * buckets are dropped to make room.
 *
 * The settings are those of the calling session.  They are superuser-only,
 * so an administrator can give a role its own limit with ALTER ROLE ...
 * SET and the role cannot change it.  A bucket remembers the settings it
 * was last used with, for rate_limit_status().
 *
 * Needs shared_preload_libraries: without it a non-zero rate limit is an
 * error, never silently ignored.  With rate_limit = 0 (the default)
 * nothing here touches shared memory.
 *
 * Work that runs on a role's behalf without a caller to answer -- async
 * batches, imports, later outbound targets -- waits instead of failing:
 * ratelimit_wait() takes the role's tokens (the job's role, not the
 * worker's) from the same bucket as the role's synchronous calls, as many
 * as there are each time round, so each take is at most the burst, and
 * sleeps on its latch until more have refilled.  The sleep is never
 * longer than a second, nor than the bucket takes to fill (a longer one
 * would let refilled tokens overflow and slow the job below the rate);
 * each round reads the settings again (a reload is applied between
 * transactions) and checks for interrupts, so a cancel, a terminate or a
 * fast shutdown acts within that second.  Tokens taken by a wait that is
 * interrupted by an ERROR are given back.  The settings are those in
 * force in the waiting process at the time of the wait: in a job worker,
 * the job's.  Callers take the tokens for a chunk before its transaction
 * starts, so a slow rate holds back no xmin horizon and no lock (only an
 * atomic import, one transaction throughout, waits inside it).
 * ratelimit_reserve() and ratelimit_release() serve a reader that cannot
 * count its chunk in advance (an import): it reserves at most a burst,
 * reads up to that many records, and gives back what it did not use.
 *
 * Locking: one LWLock (tranche "batch_ops_ratelimit") guards the hash
 * table and every bucket.  It is held exclusively for one lookup and a few
 * arithmetic operations, and in shared mode by rate_limit_status() while
 * it copies the buckets; no catalog access, error or sleep happens under
 * it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "ratelimit.h"

PG_FUNCTION_INFO_V1(batch_ops_rate_limit_status);
PG_FUNCTION_INFO_V1(rate_limit_status);

/* Buckets kept at once; refilled ones make room for new roles. */
#define RATELIMIT_MAX_ROLES		4096
#define RATELIMIT_TRANCHE		"batch_ops_ratelimit"

typedef struct RateBucket
{
	Oid			role;			/* hash key */
	double		tokens;			/* tokens left at 'updated' */
	TimestampTz updated;
	int			rate;			/* the settings of the last use */
	int			burst;
} RateBucket;

typedef struct RateLimitShared
{
	LWLock	   *lock;
} RateLimitShared;

int			batch_ops_rate_limit = 0;
int			batch_ops_rate_limit_burst = 0;

/* NULL unless the library was preloaded */
static RateLimitShared *rl_shared = NULL;
static HTAB *rl_buckets = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */
/* The shared struct and a hash table sized for RATELIMIT_MAX_ROLES buckets. */
static Size
ratelimit_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(RateLimitShared)),
					hash_estimate_size(RATELIMIT_MAX_ROLES, sizeof(RateBucket)));
}

/* shmem_request_hook: ask for the memory and the lock (PG 15 wants it here). */
static void
ratelimit_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(ratelimit_shmem_size());
	RequestNamedLWLockTranche(RATELIMIT_TRANCHE, 1);
}

/*
 * shmem_startup_hook: create, or attach to, the struct and the hash table
 * under AddinShmemInitLock, as every process that starts does.
 */
static void
ratelimit_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	rl_shared = NULL;
	rl_buckets = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rl_shared = ShmemInitStruct("batch_ops rate limit",
								sizeof(RateLimitShared), &found);
	if (!found)
		rl_shared->lock = &(GetNamedLWLockTranche(RATELIMIT_TRANCHE))->lock;

	info.keysize = sizeof(Oid);
	info.entrysize = sizeof(RateBucket);
	rl_buckets = ShmemInitHash("batch_ops rate limit buckets",
							   RATELIMIT_MAX_ROLES, RATELIMIT_MAX_ROLES,
							   &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Define the settings and, only while preloading, chain the shared memory
 * hooks: without preloading, require_shmem() refuses a non-zero limit.
 */
void
ratelimit_init(void)
{
	DefineCustomIntVariable("batch_ops.rate_limit",
							"Items per second that one role may send through the batch functions.",
							"0 turns the limit off.  A non-zero limit needs batch_ops "
							"in shared_preload_libraries.",
							&batch_ops_rate_limit,
							0,
							0,
							INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.rate_limit_burst",
							"Most items one role may send at once: the size of its token bucket.",
							"0 means as many as batch_ops.rate_limit.",
							&batch_ops_rate_limit_burst,
							0,
							0,
							INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ratelimit_shmem_request;
#else
	ratelimit_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ratelimit_shmem_startup;
}

/* A limit that cannot be enforced is an error, never silently ignored. */
static void
require_shmem(void)
{
	if (rl_buckets == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("batch_ops must be loaded via shared_preload_libraries to enforce rate limits"),
				 errhint("Add batch_ops to shared_preload_libraries and restart the server, "
						 "or set batch_ops.rate_limit to 0.")));
}

/* ---------------------------------------------------------------------
 * Buckets
 * ---------------------------------------------------------------------
 */
/* The bucket size in force: rate_limit_burst, or one second of rate_limit. */
static int
effective_burst(int rate)
{
	return batch_ops_rate_limit_burst > 0 ? batch_ops_rate_limit_burst : rate;
}

/* The tokens a bucket holds at 'now', refilled with the given settings. */
static double
bucket_tokens(RateBucket *b, TimestampTz now, int rate, int burst)
{
	double		tokens = b->tokens;

	if (now > b->updated)
		tokens += (double) (now - b->updated) / USECS_PER_SEC * rate;
	return Min(tokens, (double) burst);
}

/*
 * Find or make the role's bucket; caller holds the lock exclusively.
 * NULL if the table is full of buckets that are still refilling.
 */
static RateBucket *
bucket_enter(Oid role, TimestampTz now, int burst)
{
	RateBucket *b;
	bool		found;

	b = hash_search(rl_buckets, &role, HASH_FIND, NULL);
	if (b != NULL)
		return b;

	if (hash_get_num_entries(rl_buckets) >= RATELIMIT_MAX_ROLES)
	{
		HASH_SEQ_STATUS seq;
		RateBucket *old;

		hash_seq_init(&seq, rl_buckets);
		while ((old = hash_seq_search(&seq)) != NULL)
		{
			if (bucket_tokens(old, now, old->rate, old->burst) >= old->burst)
				hash_search(rl_buckets, &old->role, HASH_REMOVE, NULL);
		}
		if (hash_get_num_entries(rl_buckets) >= RATELIMIT_MAX_ROLES)
			return NULL;
	}

	b = hash_search(rl_buckets, &role, HASH_ENTER_NULL, &found);
	if (b != NULL && !found)
	{
		b->tokens = burst;
		b->updated = now;
	}
	return b;
}

/* The error of a full bucket table; the caller has released the lock. */
static void too_many_roles(void) pg_attribute_noreturn();

static void
too_many_roles(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("too many roles are being rate limited at once"),
			 errdetail("batch_ops keeps at most %d token buckets.",
					   RATELIMIT_MAX_ROLES)));
}

/*
 * The limit of a synchronous call: take nitems tokens from the calling
 * role's bucket, or take none and fail with BO429 and the time after which
 * the same call would pass, so that the caller can retry then.
 */
void
ratelimit_consume(int64 nitems)
{
	int			rate = batch_ops_rate_limit;
	int			burst;
	Oid			role;
	TimestampTz now;
	RateBucket *b;
	double		tokens;
	double		wait;

	if (rate <= 0)
		return;
	require_shmem();
	if (nitems <= 0)
		return;

	burst = effective_burst(rate);
	if (nitems > burst)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("batch of " INT64_FORMAT " items exceeds the rate limit burst of %d items",
						nitems, burst),
				 errdetail("A batch larger than the burst can never pass the rate limit, however long it waits."),
				 errhint("Split the batch into batches of at most %d items, or ask an administrator "
						 "to raise batch_ops.rate_limit_burst.", burst)));

	role = GetUserId();
	now = GetCurrentTimestamp();

	LWLockAcquire(rl_shared->lock, LW_EXCLUSIVE);
	b = bucket_enter(role, now, burst);
	if (b == NULL)
	{
		LWLockRelease(rl_shared->lock);
		too_many_roles();
	}
	tokens = bucket_tokens(b, now, rate, burst);
	b->updated = now;
	b->rate = rate;
	b->burst = burst;
	if (tokens >= (double) nitems)
	{
		b->tokens = tokens - nitems;
		LWLockRelease(rl_shared->lock);
		return;
	}
	b->tokens = tokens;
	LWLockRelease(rl_shared->lock);

	/* whole milliseconds, rounded up, so that retrying after them passes */
	wait = ceil((nitems - tokens) * 1000.0 / rate) / 1000.0;
	ereport(ERROR,
			(errcode(ERRCODE_BATCH_OPS_RATE_LIMITED),
			 errmsg("rate limit exceeded for role \"%s\"",
					GetUserNameFromId(role, false)),
			 errdetail("Retry after %.3f seconds.  The batch needs " INT64_FORMAT
					   " tokens, %.1f are left, and they refill at %d per second.",
					   wait, nitems, floor(tokens * 10) / 10, rate),
			 errhint("The limit is set by batch_ops.rate_limit and batch_ops.rate_limit_burst.")));
}

/* ---------------------------------------------------------------------
 * Waiting for tokens (jobs)
 * ---------------------------------------------------------------------
 */

/*
 * Take up to 'want' whole tokens from the role's bucket, as many as it
 * holds now; returns how many were taken.
 */
static int64
bucket_take(Oid role, int64 want, int rate, int burst)
{
	TimestampTz now = GetCurrentTimestamp();
	RateBucket *b;
	double		tokens;
	int64		got;

	LWLockAcquire(rl_shared->lock, LW_EXCLUSIVE);
	b = bucket_enter(role, now, burst);
	if (b == NULL)
	{
		LWLockRelease(rl_shared->lock);
		too_many_roles();
	}
	tokens = bucket_tokens(b, now, rate, burst);
	got = Min(want, (int64) floor(tokens));
	b->tokens = tokens - got;
	b->updated = now;
	b->rate = rate;
	b->burst = burst;
	LWLockRelease(rl_shared->lock);
	return got;
}

/* Put back n tokens taken but not used; a full bucket stays full. */
static void
bucket_give(Oid role, int64 n, int rate, int burst)
{
	TimestampTz now = GetCurrentTimestamp();
	RateBucket *b;

	LWLockAcquire(rl_shared->lock, LW_EXCLUSIVE);
	b = hash_search(rl_buckets, &role, HASH_FIND, NULL);
	if (b != NULL)
	{
		b->tokens = Min(bucket_tokens(b, now, rate, burst) + n, (double) burst);
		b->updated = now;
	}
	LWLockRelease(rl_shared->lock);
}

/*
 * Sleep until the bucket may hold what is still owed (at most a burst),
 * a second at most, or until the latch is set (a signal); then act on
 * interrupts and on a reload of the configuration.
 */
static void
wait_for_refill(int64 owed, int rate, int burst)
{
	double		ms = ceil((double) Min(owed, (int64) burst) * 1000.0 / rate);
	long		timeout = (long) Max(Min(ms, 1000.0), 1.0);

	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	/* between transactions only: a reload inside one would roll back with it */
	if (ConfigReloadPending && !IsTransactionState())
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * Take nitems tokens from the role's bucket, sleeping until they have
 * refilled: the rate limit of work that waits rather than fails (jobs).
 * Never fails for a count larger than the burst.  Returns at once when no
 * limit applies, or when the limit is lifted while it waits.
 */
void
ratelimit_wait(Oid role, int64 nitems)
{
	volatile int64 taken = 0;

	if (batch_ops_rate_limit <= 0 || nitems <= 0)
		return;
	require_shmem();

	PG_TRY();
	{
		for (;;)
		{
			int			rate = batch_ops_rate_limit;
			int			burst;

			if (rate <= 0)
				break;
			burst = effective_burst(rate);
			taken += bucket_take(role, nitems - taken, rate, burst);
			if (taken >= nitems)
				break;
			wait_for_refill(nitems - taken, rate, burst);
		}
	}
	PG_CATCH();
	{
		/* cancelled: the items were not written, so their tokens go back */
		if (batch_ops_rate_limit > 0)
			bucket_give(role, taken, batch_ops_rate_limit,
						effective_burst(batch_ops_rate_limit));
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * For a reader that learns how many items a chunk holds only as it reads
 * them: wait for and take the tokens of at most 'want' items, and at most
 * a burst; returns how many items the chunk may hold ('want' when no
 * limit applies).  Give back what was not used with ratelimit_release().
 */
int64
ratelimit_reserve(Oid role, int64 want)
{
	int			rate = batch_ops_rate_limit;
	int64		n;

	if (rate <= 0 || want <= 0)
		return want;
	n = Min(want, (int64) effective_burst(rate));
	ratelimit_wait(role, n);
	return n;
}

/* Give back the tokens of n reserved items that were not read. */
void
ratelimit_release(Oid role, int64 nitems)
{
	int			rate = batch_ops_rate_limit;

	if (rate <= 0 || nitems <= 0 || rl_buckets == NULL)
		return;
	bucket_give(role, nitems, rate, effective_burst(rate));
}

/* ---------------------------------------------------------------------
 * batch_ops.rate_limit_status()
 *	  RETURNS TABLE (role name, tokens float8, rate int, burst int)
 *
 * The caller's bucket, as the caller's settings see it (tokens NULL when
 * no limit applies); a superuser, or a member of pg_read_all_stats, also
 * sees every other role's bucket, with the settings it was last used with.
 * ---------------------------------------------------------------------
 */
typedef struct BucketRow
{
	Oid			role;
	double		tokens;
	bool		tokens_null;
	int			rate;
	int			burst;
	char	   *name;
} BucketRow;

/* Order the rows by role name, so that the output is stable. */
static int
bucket_row_cmp(const void *a, const void *b)
{
	return strcmp(((const BucketRow *) a)->name, ((const BucketRow *) b)->name);
}

/* SQL: the buckets the caller may see; see the section comment above. */
Datum
batch_ops_rate_limit_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			me = GetUserId();
	bool		all = superuser() || has_privs_of_role(me, ROLE_PG_READ_ALL_STATS);
	int			rate = batch_ops_rate_limit;
	int			burst = effective_burst(rate);
	TimestampTz now = GetCurrentTimestamp();
	BucketRow  *rows;
	int			nrows = 0;
	int			nvalid = 0;
	RateBucket *mine;
	int			i;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	/* copy under the lock; names are looked up after releasing it */
	LWLockAcquire(rl_shared->lock, LW_SHARED);
	rows = palloc((hash_get_num_entries(rl_buckets) + 1) * sizeof(BucketRow));

	mine = hash_search(rl_buckets, &me, HASH_FIND, NULL);
	rows[nrows].role = me;
	rows[nrows].rate = rate;
	rows[nrows].burst = burst;
	rows[nrows].tokens_null = (rate == 0);
	rows[nrows].tokens = (rate == 0) ? 0 :
		(mine ? bucket_tokens(mine, now, rate, burst) : burst);
	nrows++;

	if (all)
	{
		HASH_SEQ_STATUS seq;
		RateBucket *b;

		hash_seq_init(&seq, rl_buckets);
		while ((b = hash_seq_search(&seq)) != NULL)
		{
			if (b->role == me)
				continue;
			rows[nrows].role = b->role;
			rows[nrows].rate = b->rate;
			rows[nrows].burst = b->burst;
			rows[nrows].tokens_null = false;
			rows[nrows].tokens = bucket_tokens(b, now, b->rate, b->burst);
			nrows++;
		}
	}
	LWLockRelease(rl_shared->lock);

	/* roles dropped since they used their bucket are left out */
	for (i = 0; i < nrows; i++)
	{
		rows[i].name = GetUserNameFromId(rows[i].role, true);
		if (rows[i].name != NULL)
			rows[nvalid++] = rows[i];
	}
	qsort(rows, nvalid, sizeof(BucketRow), bucket_row_cmp);

	for (i = 0; i < nvalid; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = DirectFunctionCall1(namein, CStringGetDatum(rows[i].name));
		values[1] = Float8GetDatum(rows[i].tokens);
		nulls[1] = rows[i].tokens_null;
		values[2] = Int32GetDatum(rows[i].rate);
		values[3] = Int32GetDatum(rows[i].burst);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * 0.1.0's C name of batch_ops.rate_limit_status(): its install script
 * (sql/batch_ops--0.1.0.sql, kept as released) names it, so CREATE
 * EXTENSION ... VERSION '0.1.0' needs it, and a database not yet updated
 * calls it.
 */
Datum
rate_limit_status(PG_FUNCTION_ARGS)
{
	return batch_ops_rate_limit_status(fcinfo);
}
