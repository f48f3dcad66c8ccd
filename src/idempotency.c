/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  Idempotency keys for batch_create, batch_update and batch_delete.
 *
 * A call that gives an idempotency_key is remembered in the table
 * batch_ops.idempotency_keys, one row per (role, key): a SHA-256 hash of
 * the request and the response.  The row is written in the caller's
 * transaction, so it commits with the work or goes away with it.  The
 * request hash covers the operation, the target's OID, the atomic option
 * and the items as canonical jsonb text (keys sorted, no insignificant
 * white space), so a retry that sends the same JSON matches.
 *
 * Claim, before the work (a new key, the common case, is inserted at once,
 * step 2; only when that finds the key taken does the claim start at 1):
 *	1. Look the key up.  Same hash and a stored response: a replay, the
 *	   stored response is the answer.  Another hash: ERROR (BO422).
 *	2. Absent: INSERT ... ON CONFLICT (role, key) DO NOTHING.  If another
 *	   transaction has inserted the same key and not ended yet, the insert
 *	   waits for it to end (a transaction lock wait: lock_timeout and
 *	   deadlock detection apply).  Inserted: the key is ours, the caller
 *	   runs the batch.  Not inserted: the other call committed; back to 1,
 *	   which now replays it.  If the other call rolled back, the insert
 *	   simply goes through.
 *	3. Expired: treated as absent.  The row is taken over by an UPDATE
 *	   that re-checks the expiry, so concurrent takers queue the same way.
 * Store, after the work: UPDATE the claimed row with the response.
 *
 * So of the calls that use one key, exactly one runs its batch; the others
 * wait for it and replay its response.  Under REPEATABLE READ or
 * SERIALIZABLE a waiter whose snapshot cannot see the winner's row gets
 * PostgreSQL's serialization failure (40001) from the insert; retried, the
 * transaction replays.
 *
 * Privileges: PUBLIC has no access to the key table.  The batch functions
 * are SECURITY INVOKER, so the statements on the key table run as the
 * table's owner: the user id is switched around them only
 * (spi_util.c, role_switch_to_owner, which also pins search_path), and
 * no user code can run meanwhile (the key table has no triggers, the
 * statements call built-in operators only, named with their schema).  The
 * role a key belongs to is the caller's current user, taken before the
 * switch, and every statement filters on it.  An error raised while
 * switched is safe: (sub)transaction abort restores the user id.
 *
 * Locking: only row locks on the key table, as described above.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "idempotency.h"
#include "spi_util.h"


int			batch_ops_idempotency_ttl = 86400;

/* How often a claim goes round when concurrent calls keep changing the row. */
#define CLAIM_ATTEMPTS	10

/*
 * The statements on the key table, prepared once per backend and kept
 * (spi_util.c); the plan cache re-analyses a kept plan if the table is
 * re-created.
 */
typedef enum KeyStmt
{
	STMT_LOOKUP,
	STMT_INSERT,
	STMT_RECLAIM,
	STMT_STORE,
	STMT_PURGE,
	NUM_KEY_STMTS
} KeyStmt;

static SpiStmt key_stmts[NUM_KEY_STMTS] = {
	[STMT_LOOKUP] = {
		"SELECT request_hash, response, expires_at"
		" FROM batch_ops.idempotency_keys"
		" WHERE role OPERATOR(pg_catalog.=) $1"
		" AND key OPERATOR(pg_catalog.=) $2",
		SPI_OK_SELECT, 2, {OIDOID, TEXTOID}
	},
	[STMT_INSERT] = {
		"INSERT INTO batch_ops.idempotency_keys"
		" (role, key, request_hash, created_at, expires_at)"
		" VALUES ($1, $2, $3, $4, $5)"
		" ON CONFLICT (role, key) DO NOTHING",
		SPI_OK_INSERT, 5, {OIDOID, TEXTOID, BYTEAOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
	[STMT_RECLAIM] = {
		"UPDATE batch_ops.idempotency_keys"
		" SET request_hash = $3, response = NULL,"
		" created_at = $4, expires_at = $5"
		" WHERE role OPERATOR(pg_catalog.=) $1"
		" AND key OPERATOR(pg_catalog.=) $2"
		" AND expires_at OPERATOR(pg_catalog.<=) $4",
		SPI_OK_UPDATE, 5, {OIDOID, TEXTOID, BYTEAOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
	[STMT_STORE] = {
		"UPDATE batch_ops.idempotency_keys SET response = $3"
		" WHERE role OPERATOR(pg_catalog.=) $1"
		" AND key OPERATOR(pg_catalog.=) $2"
		" AND response IS NULL",
		SPI_OK_UPDATE, 3, {OIDOID, TEXTOID, JSONBOID}
	},
	[STMT_PURGE] = {
		"DELETE FROM batch_ops.idempotency_keys"
		" WHERE expires_at OPERATOR(pg_catalog.<=) $1",
		SPI_OK_DELETE, 1, {TIMESTAMPTZOID}
	},
};

/* What a claim found. */
typedef enum KeyState
{
	KEY_ABSENT,					/* no row, or not visible yet */
	KEY_EXPIRED,				/* a row past its expiry: as good as absent */
	KEY_REPLAY,					/* same request, response stored */
	KEY_MISMATCH,				/* another request used this key */
	KEY_PENDING					/* same request, this transaction, not done */
} KeyState;

/* The key TTL setting, from _PG_init. */
void
idempotency_init(void)
{
	DefineCustomIntVariable("batch_ops.idempotency_ttl",
							"How long an idempotency key and its stored response are kept.",
							"After that, a call with the same key runs again; "
							"batch_ops.purge() deletes expired keys.",
							&batch_ops_idempotency_ttl,
							86400,
							1,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------
 */
static void
check_key(const char *key)
{
	int			len = strlen(key);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key must not be empty"),
				 errhint("Pass NULL to call without an idempotency key.")));
	if (len > IDEMPOTENCY_KEY_MAX_LENGTH)
	{
		int			nchars = pg_mbstrlen_with_len(key, len);

		if (nchars > IDEMPOTENCY_KEY_MAX_LENGTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency_key is too long"),
					 errdetail("The key has %d characters; at most %d are allowed.",
							   nchars, IDEMPOTENCY_KEY_MAX_LENGTH)));
	}
}

static const char *
op_name(BatchOp op)
{
	switch (op)
	{
		case BATCH_CREATE:
			return "create";
		case BATCH_UPDATE:
			return "update";
		case BATCH_DELETE:
			return "delete";
	}
	return "?";
}

/*
 * SHA-256 of everything that makes the request: a versioned header with
 * the operation, the target and the options, then the items.  The header
 * fields cannot contain a newline, so the encoding is unambiguous.
 */
static bytea *
request_hash(BatchOp op, Oid relid, Jsonb *items, bool atomic)
{
	StringInfoData buf;
	pg_cryptohash_ctx *ctx;
	bytea	   *hash = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	initStringInfo(&buf);
	appendStringInfo(&buf, "batch_ops request 2\n%s\n%u\n%s\n",
					 op_name(op), relid, atomic ? "atomic" : "partial");

	/*
	 * The items in jsonb's binary form, which is canonical (keys sorted,
	 * duplicates removed, numbers as numeric) and on-disk stable, so equal
	 * JSON hashes the same without being printed first.
	 */
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA(items),
							 VARSIZE(items) - VARHDRSZ) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(hash),
							PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute the request hash: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	pfree(buf.data);

	SET_VARSIZE(hash, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	return hash;
}

static bool
hash_equal(Datum stored, bytea *hash)
{
	bytea	   *s = DatumGetByteaPP(stored);

	return VARSIZE_ANY_EXHDR(s) == PG_SHA256_DIGEST_LENGTH &&
		memcmp(VARDATA_ANY(s), VARDATA(hash), PG_SHA256_DIGEST_LENGTH) == 0;
}

/* ---------------------------------------------------------------------
 * The key table
 * ---------------------------------------------------------------------
 */

/* The owner of the key table; InvalidOid if it does not exist and missing_ok. */
static Oid
key_table_owner(bool missing_ok)
{
	return extension_table_owner("idempotency_keys", missing_ok);
}

/* Connect to SPI and become the key table's owner. */
static void
key_table_open(RoleSwitch *sw, Oid owner)
{
	spi_connect();
	role_switch_to_owner(sw, owner, false);
}

/* Back to the caller's user id and (SPI_finish) memory context. */
static void
key_table_close(RoleSwitch *sw)
{
	role_switch_end(sw);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

/* Run one statement (connected to SPI); returns SPI_processed. */
static uint64
key_exec(KeyStmt stmt, Datum *values, const char *nulls)
{
	return spi_exec(&key_stmts[stmt], values, nulls);
}

/*
 * Look the key up.  For a replay, *response is set to a copy of the
 * stored response in the caller's memory context.
 */
static KeyState
key_lookup(Datum *values, bytea *hash, TimestampTz now, Jsonb **response)
{
	HeapTuple	tuple;
	TupleDesc	tupdesc;
	Datum		d;
	bool		isnull;

	if (key_exec(STMT_LOOKUP, values, NULL) == 0)
		return KEY_ABSENT;

	tuple = SPI_tuptable->vals[0];
	tupdesc = SPI_tuptable->tupdesc;

	d = SPI_getbinval(tuple, tupdesc, 3, &isnull);
	if (isnull || DatumGetTimestampTz(d) <= now)
		return KEY_EXPIRED;

	d = SPI_getbinval(tuple, tupdesc, 1, &isnull);
	if (isnull || !hash_equal(d, hash))
		return KEY_MISMATCH;

	d = SPI_getbinval(tuple, tupdesc, 2, &isnull);
	if (isnull)
		return KEY_PENDING;

	/*
	 * A copy in the caller's context, which outlives SPI_finish(): detoasted
	 * first (a large response is stored compressed or out of line, and
	 * detoasting later would allocate in SPI's context, or read the key
	 * table as the caller), then moved up whole.
	 */
	*response = DatumGetJsonbP(SPI_datumTransfer(PointerGetDatum(PG_DETOAST_DATUM(d)),
												 false, -1));
	return KEY_REPLAY;
}

/* ---------------------------------------------------------------------
 * Claim, store, purge
 * ---------------------------------------------------------------------
 */
Jsonb *
idempotency_claim(const char *key, BatchOp op, Oid relid, Jsonb *items,
				  bool atomic)
{
	Oid			role = GetUserId();
	TimestampTz now = GetCurrentTimestamp();
	RoleSwitch	sw;
	Datum		values[5];
	bytea	   *hash;
	Jsonb	   *response = NULL;
	KeyState	state = KEY_ABSENT;
	bool		claimed = false;
	int			attempt;

	check_key(key);
	hash = request_hash(op, relid, items, atomic);

	values[0] = ObjectIdGetDatum(role);
	values[1] = CStringGetTextDatum(key);
	values[2] = PointerGetDatum(hash);
	values[3] = TimestampTzGetDatum(now);
	values[4] = TimestampTzGetDatum(now +
									(int64) batch_ops_idempotency_ttl * USECS_PER_SEC);

	key_table_open(&sw, key_table_owner(false));
	/*
	 * The common case, a new key: claim it at once, without a lookup (not in
	 * a read-only transaction, where a replay must still work).
	 */
	if (!XactReadOnly)
		claimed = key_exec(STMT_INSERT, values, NULL) == 1;
	for (attempt = 0; attempt < CLAIM_ATTEMPTS && !claimed; attempt++)
	{
		state = key_lookup(values, hash, now, &response);
		if (state == KEY_ABSENT)
			claimed = key_exec(STMT_INSERT, values, NULL) == 1;
		else if (state == KEY_EXPIRED)
			claimed = key_exec(STMT_RECLAIM, values, NULL) == 1;
		else
			break;
		/* not claimed: a concurrent call got there first; look again */
	}
	key_table_close(&sw);

	if (claimed)
		return NULL;

	switch (state)
	{
		case KEY_REPLAY:
			return response;
		case KEY_MISMATCH:
			ereport(ERROR,
					(errcode(ERRCODE_BATCH_OPS_IDEMPOTENCY_KEY_REUSED),
					 errmsg("idempotency key \"%s\" was already used for a different request",
							key),
					 errdetail("A key can be reused only with the same operation, target, items and options."),
					 errhint("Use a new idempotency key for a new request.")));
			break;
		case KEY_PENDING:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("idempotency key \"%s\" is in use by a call that has not finished",
							key),
					 errdetail("A batch function called with this key is still running in this transaction, for example from a trigger.")));
			break;
		case KEY_ABSENT:
		case KEY_EXPIRED:
			/* only a flood of concurrent takers and purges gets here */
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not claim idempotency key \"%s\" after %d attempts",
							key, CLAIM_ATTEMPTS),
					 errdetail("Concurrent calls kept changing the key.")));
			break;
	}
	return NULL;
}

/* After the work: the claimed key gets its response, in the same transaction. */
void
idempotency_store(const char *key, Jsonb *response)
{
	RoleSwitch	sw;
	Datum		values[3];

	values[0] = ObjectIdGetDatum(GetUserId());
	values[1] = CStringGetTextDatum(key);
	values[2] = JsonbPGetDatum(response);

	key_table_open(&sw, key_table_owner(false));
	if (key_exec(STMT_STORE, values, NULL) != 1)
		elog(ERROR, "idempotency key \"%s\" was not claimed by this call", key);
	key_table_close(&sw);
}

/* Expired keys of every role; batch_ops.purge() and each job worker call it. */
int64
idempotency_purge(void)
{
	Oid			owner = key_table_owner(true);
	RoleSwitch	sw;
	Datum		values[1];
	int64		n;

	if (!OidIsValid(owner))
		return 0;

	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	key_table_open(&sw, owner);
	n = (int64) key_exec(STMT_PURGE, values, NULL);
	key_table_close(&sw);
	return n;
}
