/*-------------------------------------------------------------------------
 *
 * crud.c
 *	  The SQL functions batch_create, batch_update and batch_delete.
 *
 * They check their arguments and the size limits (batch_ops.max_*_items),
 * answer a replayed idempotency key with the stored response
 * (idempotency.c), take the rate limit's tokens (ratelimit.c), run the
 * batch with the engine (batch.c) and turn its result into JSON
 * (response.c).  The engine itself knows none of this.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "batch.h"
#include "batch_ops.h"
#include "idempotency.h"
#include "ratelimit.h"
#include "response.h"

PG_FUNCTION_INFO_V1(batch_ops_create);
PG_FUNCTION_INFO_V1(batch_ops_update);
PG_FUNCTION_INFO_V1(batch_ops_delete);

/* ---------------------------------------------------------------------
 * Arguments
 * ---------------------------------------------------------------------
 */
/* The size limit of an operation, and the setting that gives it. */
static int
batch_limit(BatchOp op, const char **guc)
{
	switch (op)
	{
		case BATCH_CREATE:
			*guc = "batch_ops.max_create_items";
			return batch_ops_max_create_items;
		case BATCH_UPDATE:
			*guc = "batch_ops.max_update_items";
			return batch_ops_max_update_items;
		case BATCH_DELETE:
			*guc = "batch_ops.max_delete_items";
			return batch_ops_max_delete_items;
	}
	return 0;
}

/* What a JSON value that should have been an array is, for the message. */
static const char *
jsonb_root_type(Jsonb *jb)
{
	if (JB_ROOT_IS_SCALAR(jb))
		return "scalar";
	return JB_ROOT_IS_OBJECT(jb) ? "object" : "array";
}

/*
 * The arguments every batch function shares: no NULLs (the functions are
 * not STRICT, so that a NULL is an error rather than a NULL answer), a
 * JSON array, no more items than the limit.  Returns the items.
 */
static Jsonb *
check_arguments(FunctionCallInfo fcinfo, BatchOp op, bool *atomic)
{
	const char *items_name = (op == BATCH_DELETE) ? "ids" : "items";
	const char *guc;
	int			limit = batch_limit(op, &guc);
	Jsonb	   *items;
	int			n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", items_name)));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("atomic must not be null")));
	*atomic = PG_GETARG_BOOL(2);
	items = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON array", items_name),
				 errdetail("The value given is a JSON %s.", jsonb_root_type(items))));

	n = JB_ROOT_COUNT(items);
	if (n > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("batch of %d items exceeds the limit of %d", n, limit),
				 errdetail("The limit is set by %s.", guc),
				 errhint("Split the batch, or submit it as an async job with batch_ops.submit_batch().")));
	return items;
}

/* ---------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------
 */
/*
 * The body of the three functions.  The idempotency key is claimed before
 * the rate limit is charged, so that a replay costs no tokens; the answer
 * is stored under the key in the same transaction as the writes.
 */
static Datum
batch_entry(FunctionCallInfo fcinfo, BatchOp op)
{
	bool		atomic;
	Jsonb	   *items = check_arguments(fcinfo, op, &atomic);
	Oid			relid = PG_GETARG_OID(0);
	char	   *key = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	Jsonb	   *response;

	if (key != NULL)
	{
		/* a replay answers with the stored response and takes no tokens */
		response = idempotency_claim(key, op, relid, items, atomic);
		if (response != NULL)
			PG_RETURN_JSONB_P(response);
	}
	ratelimit_consume(JB_ROOT_COUNT(items));

	response = batch_run(op, relid, items, atomic, true);

	if (key != NULL)
		idempotency_store(key, response);
	PG_RETURN_JSONB_P(response);
}

/* batch_ops.batch_create(target, items, atomic, idempotency_key) */
Datum
batch_ops_create(PG_FUNCTION_ARGS)
{
	return batch_entry(fcinfo, BATCH_CREATE);
}

/* batch_ops.batch_update(target, items, atomic, idempotency_key) */
Datum
batch_ops_update(PG_FUNCTION_ARGS)
{
	return batch_entry(fcinfo, BATCH_UPDATE);
}

/* batch_ops.batch_delete(target, ids, atomic, idempotency_key) */
Datum
batch_ops_delete(PG_FUNCTION_ARGS)
{
	return batch_entry(fcinfo, BATCH_DELETE);
}

/*
 * The C symbols of version 0.1.0, whose install script
 * (sql/batch_ops--0.1.0.sql, kept as released) names them: CREATE
 * EXTENSION ... VERSION '0.1.0' checks that they exist, and a database
 * not yet updated to 0.2.0 (whose upgrade script points the functions at
 * the batch_ops_* symbols) calls them.  Entry points like the others, if
 * with generic names.
 */
PG_FUNCTION_INFO_V1(batch_create);
PG_FUNCTION_INFO_V1(batch_update);
PG_FUNCTION_INFO_V1(batch_delete);

/* 0.1.0's batch_ops.batch_create */
Datum
batch_create(PG_FUNCTION_ARGS)
{
	return batch_entry(fcinfo, BATCH_CREATE);
}

/* 0.1.0's batch_ops.batch_update */
Datum
batch_update(PG_FUNCTION_ARGS)
{
	return batch_entry(fcinfo, BATCH_UPDATE);
}

/* 0.1.0's batch_ops.batch_delete */
Datum
batch_delete(PG_FUNCTION_ARGS)
{
	return batch_entry(fcinfo, BATCH_DELETE);
}
