/*-------------------------------------------------------------------------
 *
 * action_batch.c
 *	  Action batches: create_action_batch, update_action_batch,
 *	  delete_action_batch, action_batch, wait_action_batch; the store of
 *	  batches (batch_ops.action_batch); running a batch's actions.
 *
 * A batch is a list of actions ({"resource", "operation", "body"},
 * resolved by resource.c).  Unconfirmed, it is a draft that its owner
 * may edit, delete or confirm.  Confirmed and synchronous, it runs in the
 * call, in one subtransaction of the caller's transaction; confirmed and
 * asynchronous, it is a job of kind action_batch (kind_action_batch.c)
 * that starts when the caller commits and runs as the caller in one
 * transaction of a job worker.  A confirmed batch never changes again
 * (55000).
 *
 * Running: consecutive actions on the same table with the same operation
 * and the same columns run as one call of the batch engine, in partial
 * mode, so that every failing action is found; if any failed, the
 * subtransaction is rolled back and nothing of the batch stays (Meraki's
 * "all or nothing").  Update and destroy actions whose path names
 * columns that are not key columns first check that the row has those
 * values (not_found otherwise).
 *
 * Running at once: at most batch_ops.max_running_action_batches batches
 * of a role, counted with advisory locks on (role, slot) in every
 * database of the cluster; a synchronous batch that finds no free slot
 * fails with BO429, a job waits for one.  Actions count as items for the
 * role's rate limit.
 *
 * Privileges: the functions are SECURITY INVOKER; the store is reached as
 * its owner with a pinned search_path (spi_util.c), and every statement
 * filters on the caller, so another role's batch is "does not exist"
 * (42704), as a missing one.  A superuser may read every batch but
 * change only its own.
 *
 * Callbacks: a batch's callback is checked when it is registered (the
 * outbound policy, its credential) and, when the batch finishes, its
 * answer becomes an outbound job of the internal driver "callback"
 * (driver_callback.c, which signs it), submitted as the batch's owner in
 * the transaction that finishes the batch.  Why a job: the engine already
 * has the policy's checks, retries with backoff and crash safety; a
 * request sent from a transaction that may still roll back would announce
 * a batch that never happened; and a slow receiver must hold neither the
 * caller's transaction nor the batch's worker.  See "Callbacks" below.
 *
 * Locking: update_action_batch and delete_action_batch lock the batch's
 * row (FOR UPDATE, or the DELETE's own lock), so that of two sessions
 * confirming one draft, the second waits for the first and then finds it
 * confirmed (55000).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "action_batch.h"
#include "batch.h"
#include "credential.h"
#include "idempotency.h"
#include "item_error.h"
#include "job_kind.h"
#include "jobs_api.h"
#include "outbound.h"
#include "outbound_policy.h"
#include "plan_cache.h"
#include "ratelimit.h"
#include "resource.h"
#include "spi_util.h"
#include "sql_quote.h"
#include "target.h"

PG_FUNCTION_INFO_V1(batch_ops_create_action_batch);
PG_FUNCTION_INFO_V1(batch_ops_update_action_batch);
PG_FUNCTION_INFO_V1(batch_ops_delete_action_batch);
PG_FUNCTION_INFO_V1(batch_ops_action_batch);
PG_FUNCTION_INFO_V1(batch_ops_wait_action_batch);

/* advisory lock tag field 4 of the running slots: not 1, 2 (users) or jobs' */
#define ACTION_SLOT_FIELD4	0x4142

int			batch_ops_max_sync_actions = 20;
int			batch_ops_max_async_actions = 100;
int			batch_ops_max_running_action_batches = 5;
int			batch_ops_action_batch_timeout = 600;
int			batch_ops_action_draft_ttl = 7 * 24 * 3600;

void
action_batch_init(void)
{
	DefineCustomIntVariable("batch_ops.max_sync_actions",
							"Maximum number of actions in a synchronous action batch.",
							NULL, &batch_ops_max_sync_actions,
							20, 1, 1000000, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.max_async_actions",
							"Maximum number of actions in an asynchronous action batch.",
							NULL, &batch_ops_max_async_actions,
							100, 1, 1000000, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.max_running_action_batches",
							"Maximum number of action batches of one role running at once.",
							"A synchronous batch over the limit fails; an asynchronous one waits.",
							&batch_ops_max_running_action_batches,
							5, 1, 1000, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.action_batch_timeout",
							"Time from its confirmation after which an asynchronous action batch fails.",
							NULL, &batch_ops_action_batch_timeout,
							600, 1, INT_MAX / 1000, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("batch_ops.action_draft_ttl",
							"How long an unconfirmed action batch is kept.",
							"batch_ops.purge() deletes older drafts.",
							&batch_ops_action_draft_ttl,
							7 * 24 * 3600, 60, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Running slots
 * ---------------------------------------------------------------------
 */

/* Take a free slot of the role's (advisory lock, cluster-wide); false if none. */
bool
action_slot_try(Oid role, int limit, bool session, int *slot)
{
	int			k;

	for (k = 0; k < limit; k++)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_ADVISORY(tag, InvalidOid, role, (uint32) k, ACTION_SLOT_FIELD4);
		if (LockAcquire(&tag, ExclusiveLock, session, true) != LOCKACQUIRE_NOT_AVAIL)
		{
			*slot = k;
			return true;
		}
	}
	return false;
}

void
action_slot_release(Oid role, int slot, bool session)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, InvalidOid, role, (uint32) slot, ACTION_SLOT_FIELD4);
	LockRelease(&tag, ExclusiveLock, session);
}

/* ---------------------------------------------------------------------
 * JSON helpers
 * ---------------------------------------------------------------------
 */
static void
push_key(JsonbParseState **st, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(st, WJB_KEY, &v);
}

/* "key": "value" (null for NULL) */
static void
push_string(JsonbParseState **st, const char *key, const char *value, bool skip_null)
{
	JsonbValue	v;

	if (value == NULL && skip_null)
		return;
	push_key(st, key);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
push_number(JsonbParseState **st, const char *key, int64 n)
{
	JsonbValue	v;

	push_key(st, key);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(n);
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
push_bool(JsonbParseState **st, const char *key, bool b)
{
	JsonbValue	v;

	push_key(st, key);
	v.type = jbvBool;
	v.val.boolean = b;
	pushJsonbValue(st, WJB_VALUE, &v);
}

/* "key": <a Jsonb document> */
static void
push_jsonb(JsonbParseState **st, JsonbIteratorToken tok, Jsonb *jb)
{
	JsonbValue	v;

	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	pushJsonbValue(st, tok, &v);
}

/* An array of the Jsonb documents in the list. */
static void
push_array(JsonbParseState **st, const char *key, List *docs)
{
	ListCell   *lc;

	push_key(st, key);
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, docs)
		push_jsonb(st, WJB_ELEM, (Jsonb *) lfirst(lc));
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

static Jsonb *
jsonb_from_cstring(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}

/* ---------------------------------------------------------------------
 * Running the actions
 * ---------------------------------------------------------------------
 */

/*
 * One failed action: the engine's error object (its "item" is what the
 * engine ran: body and path variables) plus resource and operation.
 */
static Jsonb *
action_error_json(ResolvedAction *a, int index, const ItemError *err,
				  JsonbValue *item)
{
	JsonbParseState *st = NULL;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_number(&st, "index", index);
	push_string(&st, "resource", a->resource, false);
	push_string(&st, "operation", a->opname, false);
	push_string(&st, "error", err->name, true);
	push_string(&st, "message", err->message, true);
	push_string(&st, "sqlstate", unpack_sql_state(err->sqlerrcode), true);
	push_string(&st, "detail", err->detail, true);
	push_string(&st, "constraint", err->constraint, true);
	push_string(&st, "column", err->column, true);
	push_key(&st, "item");
	if (item)
		pushJsonbValue(&st, WJB_VALUE, item);
	else
		push_jsonb(&st, WJB_VALUE, resource_action_item(a));
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/* {"id": ..., "uri": ...} of a created row */
static Jsonb *
created_json(ResourceSet *set, const ResolvedAction *a, JsonbValue *row)
{
	JsonbParseState *st = NULL;
	char	   *id;
	char	   *uri = resource_created_uri(set, a, row, &id);

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_string(&st, "id", id, false);
	push_string(&st, "uri", uri, false);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/*
 * Does the row of an update or destroy have the values its path gives to
 * columns that are not key columns?  Found by key with each key type's
 * own equality (plan_cache.c), the values compared as text; run as the
 * current user in a subtransaction, so that a key that is not a valid
 * value is the action's error.  Returns the error, or NULL.
 */
static ItemError *
check_path_row(ResolvedAction *a)
{
	Target	   *target = target_open(a->relid, a->op);
	StringInfoData sql;
	int		   *keycols = palloc(sizeof(int) * Max(a->nkeys, 1));
	char	  **cols = palloc(sizeof(char *) * (a->nsegs + 1));
	char	  **vals = palloc(sizeof(char *) * (a->nsegs + 1));
	int			ncols = 0;
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Oid			argtypes[1] = {JSONBOID};
	Datum		args[1];
	Subxact		sx;
	ItemError  *err = NULL;
	int			i;

	for (i = 0; i < a->nkeys; i++)
		keycols[i] = target_column_index(target, a->keys[i], strlen(a->keys[i]), -1);
	it = JsonbIteratorInit(&a->check->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;
		int			j;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		for (j = 0; j < a->nkeys; j++)
			if (strcmp(a->keys[j], name) == 0)
				break;
		if (j == a->nkeys)
		{
			cols[ncols] = name;
			vals[ncols++] = jsonb_scalar_text(&v);
		}
	}

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (i = 0; i < ncols; i++)
		appendStringInfo(&sql, "%sCAST(t.%s AS pg_catalog.text)", i ? ", " : "",
						 quote_identifier(cols[i]));
	appendStringInfo(&sql, " FROM %s t, pg_catalog.jsonb_populate_record(NULL::%s, $1) r WHERE ",
					 target->qualname, target->qualname);
	plan_append_key_match(&sql, target, a->nkeys, keycols, NULL);
	args[0] = JsonbPGetDatum(a->check);

	subxact_begin(&sx);
	PG_TRY();
	{
		int			rc;

		spi_connect();
		rc = SPI_execute_with_args(sql.data, 1, argtypes, args, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
		if (SPI_processed == 0)
			err = item_error_make(ITEM_NOT_FOUND, ERRCODE_NO_DATA_FOUND, NULL,
								  "no row of table \"%s\" has the key and the values of path \"%s\"",
								  target->relname, a->resource);
		else
			for (i = 0; i < ncols && err == NULL; i++)
			{
				char	   *have = SPI_getvalue(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, i + 1);

				if (have == NULL || strcmp(have, vals[i]) != 0)
					err = item_error_make(ITEM_NOT_FOUND, ERRCODE_NO_DATA_FOUND, cols[i],
										  "the row of table \"%s\" does not have the value of path \"%s\" in column \"%s\"",
										  target->relname, a->resource, cols[i]);
			}
		SPI_finish();
		subxact_commit(&sx);
	}
	PG_CATCH();
	{
		err = subxact_abort_value(&sx);
	}
	PG_END_TRY();
	return err;
}

/*
 * The items of a group's actions that passed their checks, as one array:
 * their trees side by side, encoded once.
 */
static Jsonb *
group_items(ResolvedAction *acts, const int *members, int n)
{
	JsonbValue	array;
	int			i;

	array.type = jbvArray;
	array.val.array.rawScalar = false;
	array.val.array.nElems = n;
	array.val.array.elems = palloc(sizeof(JsonbValue) * Max(n, 1));
	for (i = 0; i < n; i++)
		array.val.array.elems[i] = *acts[members[i]].itemv;
	return JsonbValueToJsonb(&array);
}

/*
 * Run resolved actions in order as the current user: each run of
 * actions of one shape is one engine call.  Returns the status object
 * (Meraki's completed, failed, errors, createdResources); the caller
 * rolls the work back if *failed.
 */
static Jsonb *
actions_run(ResourceSet *set, ResolvedAction *acts, int n, bool *failed,
			ActionCounts *counts)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext group_cxt = AllocSetContextCreate(caller, "batch_ops action group",
													ALLOCSET_DEFAULT_SIZES);
	List	   *errors = NIL;
	List	   *created = NIL;
	int		   *members = palloc(sizeof(int) * n);
	JsonbParseState *st = NULL;
	int			g;
	int			end;

	memset(counts, 0, sizeof(ActionCounts));
	for (g = 0; g < n; g = end)
	{
		BatchOp		op = acts[g].op;
		BatchResult *r;
		int			m = 0;
		int			i;

		for (end = g + 1; end < n && acts[end].shapelen == acts[g].shapelen &&
			 memcmp(acts[end].shape, acts[g].shape, acts[g].shapelen) == 0; end++)
			;
		MemoryContextReset(group_cxt);
		MemoryContextSwitchTo(group_cxt);
		for (i = g; i < end; i++)
		{
			ItemError  *err = acts[i].check ? check_path_row(&acts[i]) : NULL;

			if (err)
			{
				MemoryContextSwitchTo(caller);
				errors = lappend(errors, action_error_json(&acts[i], i, err, NULL));
				MemoryContextSwitchTo(group_cxt);
			}
			else
				members[m++] = i;
		}
		if (m == 0)
			continue;
		r = batch_execute(op, acts[g].relid, group_items(acts, members, m), false,
						  op == BATCH_CREATE);
		MemoryContextSwitchTo(caller);
		for (i = 0; i < r->nerrors; i++)
		{
			int			a = members[r->errors[i].index];

			errors = lappend(errors, action_error_json(&acts[a], a, r->errors[i].error,
															r->errors[i].item));
		}
		if (op == BATCH_CREATE && r->rows)
			for (i = 0; i < m; i++)
				if (r->rows[i].type == jbvObject)
					created = lappend(created, created_json(set, &acts[members[i]], &r->rows[i]));
		if (op == BATCH_CREATE)
			counts->created += r->applied;
		else if (op == BATCH_UPDATE)
			counts->updated += r->applied;
		else
			counts->deleted += r->applied;
		batch_result_free(r);
	}
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(group_cxt);

	*failed = errors != NIL;
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_bool(&st, "completed", !*failed);
	push_bool(&st, "failed", *failed);
	push_array(&st, "errors", errors);
	push_array(&st, "createdResources", *failed ? NIL : created);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/* The status of a batch that could not run its actions. */
Jsonb *
action_batch_failure_status(const char *name, const char *message)
{
	JsonbParseState *st = NULL;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_bool(&st, "completed", false);
	push_bool(&st, "failed", true);
	push_key(&st, "errors");
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_string(&st, "error", name, false);
	push_string(&st, "message", message, false);
	pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	push_key(&st, "createdResources");
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/*
 * Resolve every action of the array (as the current user), or ERROR;
 * pinned (or NULL): each action's table at confirmation.
 */
static ResolvedAction *
actions_resolve(ResourceSet *set, Jsonb *actions, const Oid *pinned, int *n)
{
	ResolvedAction *acts;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			i = 0;

	*n = JB_ROOT_COUNT(actions);
	acts = palloc0(sizeof(ResolvedAction) * Max(*n, 1));
	resource_lookups_reset();
	it = JsonbIteratorInit(&actions->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
		{
			resource_resolve(set, i, &v, pinned ? pinned[i] : InvalidOid, &acts[i]);
			i++;
		}
	return acts;
}

/*
 * Resolve and run actions in one subtransaction of the current
 * transaction, rolled back if any action failed (or on any error).
 */
static Jsonb *
actions_run_atomic(Jsonb *actions, const Oid *pinned, bool *failed, ActionCounts *counts)
{
	ResourceSet *set = resource_set_load();
	int			n;
	ResolvedAction *acts = actions_resolve(set, actions, pinned, &n);
	Subxact		all;
	Jsonb	   *status = NULL;

	subxact_begin(&all);
	PG_TRY();
	{
		status = actions_run(set, acts, n, failed, counts);
	}
	PG_CATCH();
	{
		subxact_abort_rethrow(&all);
	}
	PG_END_TRY();
	if (*failed)
		subxact_rollback(&all);
	else
		subxact_commit(&all);
	return status;
}

/*
 * For the kind: the same, as the job's role, each action on the table
 * it named when the batch was confirmed (options "tables").
 */
Jsonb *
action_batch_execute(Jsonb *actions, Jsonb *options, bool *failed, ActionCounts *counts)
{
	int			n = JB_ROOT_COUNT(actions);
	Oid		   *pinned = palloc0(sizeof(Oid) * Max(n, 1));
	JsonbValue	tables;
	int			i;

	if (getKeyJsonValueFromContainer(&options->root, "tables", 6, &tables) &&
		tables.type == jbvBinary && JsonContainerIsArray(tables.val.binary.data))
		for (i = 0; i < n && i < JsonContainerSize(tables.val.binary.data); i++)
		{
			JsonbValue *v = getIthJsonbValueFromContainer(tables.val.binary.data, i);

			if (v && v->type == jbvNumeric)
				pinned[i] = DatumGetObjectId(DirectFunctionCall1(numeric_int8,
																 NumericGetDatum(v->val.numeric)));
		}
	return actions_run_atomic(actions, pinned, failed, counts);
}

/* ---------------------------------------------------------------------
 * The store
 * ---------------------------------------------------------------------
 */
static void
store_begin(RoleSwitch *sw)
{
	role_switch_to_owner(sw, extension_table_owner("action_batch", false), true);
	spi_connect();
}

static void
store_end(RoleSwitch *sw)
{
	SPI_finish();
	role_switch_end(sw);
}

static void callback_send(int64 id);

/*
 * A batch has finished (its row is written): NOTIFY batch_ops_jobs,
 * '{"action_batch_id": n, "status": "..."}', at commit, and its callback's
 * job, if it has one (callback_send).
 */
static void
notify_finished(int64 id, const char *state)
{
	Async_Notify("batch_ops_jobs",
				 psprintf("{\"action_batch_id\": " INT64_FORMAT ", \"status\": \"%s\"}",
						  id, state));
	callback_send(id);
}

/*
 * A new batch row.  Its times are given (now() and clock_timestamp() as
 * SQL would take them), so that the answer of a draft or a synchronous
 * batch is built here, as batch_ops.action_batch_info builds it, without
 * reading the row back.
 */
static SpiStmt insert_stmt = {
	"INSERT INTO batch_ops.action_batch"
	" (role, state, confirmed, synchronous, actions, callback, status,"
	"  created_at, confirmed_at, finished_at)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	" RETURNING id",
	SPI_OK_INSERT_RETURNING, 10,
	{OIDOID, TEXTOID, BOOLOID, BOOLOID, JSONBOID, JSONBOID, JSONBOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
};

static SpiStmt update_stmt = {
	"UPDATE batch_ops.action_batch SET state = $2, confirmed = $3, synchronous = $4,"
	" actions = $5, status = $6, job_id = $7,"
	" confirmed_at = CASE WHEN $3 THEN pg_catalog.now() END,"
	" finished_at = CASE WHEN $2" SQL_EQ "ANY ('{completed,failed}'::pg_catalog.text[])"
	"   THEN pg_catalog.clock_timestamp() END"
	" WHERE id" SQL_EQ "$1",
	SPI_OK_UPDATE, 7, {INT8OID, TEXTOID, BOOLOID, BOOLOID, JSONBOID, JSONBOID, INT8OID}
};

/* The row of a batch as update_action_batch reads it. */
typedef struct BatchRow
{
	int64		id;
	bool		confirmed;
	bool		synchronous;
	Jsonb	   *actions;
	Jsonb	   *callback;
} BatchRow;

/* The values of a batch row to write (insert or update). */
typedef struct BatchWrite
{
	const char *state;
	bool		confirmed;
	bool		synchronous;
	Jsonb	   *actions;
	Jsonb	   *callback;
	Jsonb	   *status;			/* NULL until it has run */
	int64		job_id;			/* 0: none */
} BatchWrite;

/* "key": a Jsonb document, or null */
static void
push_doc(JsonbParseState **st, const char *key, Jsonb *doc)
{
	push_key(st, key);
	if (doc)
		push_jsonb(st, WJB_VALUE, doc);
	else
	{
		JsonbValue	null;

		null.type = jbvNull;
		pushJsonbValue(st, WJB_VALUE, &null);
	}
}

/* "key": a time as jsonb writes timestamptz, or null for 0 */
static void
push_time(JsonbParseState **st, const char *key, TimestampTz t)
{
	char		buf[MAXDATELEN + 1];

	push_string(st, key,
				t ? JsonEncodeDateTime(buf, TimestampTzGetDatum(t), TIMESTAMPTZOID, NULL) : NULL,
				false);
}

/* The status of a batch that has not run. */
static Jsonb *
status_not_run(void)
{
	JsonbParseState *st = NULL;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_bool(&st, "completed", false);
	push_bool(&st, "failed", false);
	push_array(&st, "errors", NIL);
	push_array(&st, "createdResources", NIL);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/* The answer of a batch without a job (action_batch_info's, in C). */
static Jsonb *
answer_build(int64 id, const BatchWrite *w, TimestampTz created,
			 TimestampTz confirmed, TimestampTz finished)
{
	JsonbParseState *st = NULL;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_number(&st, "id", id);
	push_string(&st, "state", w->state, false);
	push_bool(&st, "confirmed", w->confirmed);
	push_bool(&st, "synchronous", w->synchronous);
	push_doc(&st, "status", w->status ? w->status : status_not_run());
	push_doc(&st, "actions", w->actions);
	push_doc(&st, "job_id", NULL);
	push_doc(&st, "callback", w->callback);
	push_string(&st, "submitted_by", GetUserNameFromId(GetUserId(), false), false);
	push_time(&st, "created_at", created);
	push_time(&st, "confirmed_at", confirmed);
	push_time(&st, "finished_at", finished);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/* Insert the row; returns its id, and its answer in *answer if asked. */
static int64
store_insert(const BatchWrite *w, Jsonb **answer)
{
	MemoryContext caller = CurrentMemoryContext;
	RoleSwitch	sw;
	Datum		values[10];
	char		nulls[10] = "          ";
	bool		isnull;
	int64		id;
	TimestampTz created = GetCurrentTransactionStartTimestamp();
	TimestampTz confirmed = w->confirmed ? created : 0;
	TimestampTz finished = (strcmp(w->state, "completed") == 0 ||
							strcmp(w->state, "failed") == 0) ? GetCurrentTimestamp() : 0;

	values[0] = ObjectIdGetDatum(GetUserId());
	values[1] = CStringGetTextDatum(w->state);
	values[2] = BoolGetDatum(w->confirmed);
	values[3] = BoolGetDatum(w->synchronous);
	values[4] = JsonbPGetDatum(w->actions);
	if (w->callback)
		values[5] = JsonbPGetDatum(w->callback);
	else
		nulls[5] = 'n';
	if (w->status)
		values[6] = JsonbPGetDatum(w->status);
	else
		nulls[6] = 'n';
	values[7] = TimestampTzGetDatum(created);
	values[8] = TimestampTzGetDatum(confirmed);
	nulls[8] = confirmed ? ' ' : 'n';
	values[9] = TimestampTzGetDatum(finished);
	nulls[9] = finished ? ' ' : 'n';
	store_begin(&sw);
	spi_exec(&insert_stmt, values, nulls);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	store_end(&sw);
	MemoryContextSwitchTo(caller);
	if (answer)
		*answer = answer_build(id, w, created, confirmed, finished);
	return id;
}

static void
store_update(int64 id, const BatchWrite *w)
{
	RoleSwitch	sw;
	Datum		values[7];
	char		nulls[7] = "       ";

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(w->state);
	values[2] = BoolGetDatum(w->confirmed);
	values[3] = BoolGetDatum(w->synchronous);
	values[4] = JsonbPGetDatum(w->actions);
	if (w->status)
		values[5] = JsonbPGetDatum(w->status);
	else
		nulls[5] = 'n';
	values[6] = Int64GetDatum(w->job_id);
	if (w->job_id == 0)
		nulls[6] = 'n';
	store_begin(&sw);
	spi_exec(&update_stmt, values, nulls);
	store_end(&sw);
}

/* the caller's own batch: $1 the id, $2 "may see every batch", $3 the caller */
#define OWN_BATCH " id" SQL_EQ "$1 AND ($2 OR role" SQL_EQ "$3) "
#define OWN_BATCH_ARGS 3, {INT8OID, BOOLOID, OIDOID}

static SpiStmt lock_stmt = {
	"SELECT confirmed, synchronous, actions, callback FROM batch_ops.action_batch"
	" WHERE" OWN_BATCH "FOR UPDATE",
	SPI_OK_SELECT, OWN_BATCH_ARGS
};

static SpiStmt answer_stmt = {
	"SELECT answer, state, job_id FROM batch_ops.action_batch_info WHERE" OWN_BATCH,
	SPI_OK_SELECT, OWN_BATCH_ARGS
};

static SpiStmt delete_stmt = {
	"DELETE FROM batch_ops.action_batch WHERE" OWN_BATCH "AND NOT confirmed",
	SPI_OK_DELETE, OWN_BATCH_ARGS
};

static SpiStmt exists_stmt = {
	"SELECT 1 FROM batch_ops.action_batch WHERE" OWN_BATCH,
	SPI_OK_SELECT, OWN_BATCH_ARGS
};

/* Run an OWN_BATCH statement as the owner; leaves SPI connected. */
static uint64
own_exec(RoleSwitch *sw, SpiStmt *stmt, int64 id, bool may_see_all)
{
	Oid			caller = GetUserId();
	Datum		values[3];

	values[0] = Int64GetDatum(id);
	values[1] = BoolGetDatum(may_see_all && superuser_arg(caller));
	values[2] = ObjectIdGetDatum(caller);
	store_begin(sw);
	return spi_exec(stmt, values, NULL);
}

static void
batch_not_found(int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("action batch " INT64_FORMAT " does not exist", id),
			 errdetail("A role sees only the action batches it created.")));
}

static void
batch_confirmed(int64 id, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("action batch " INT64_FORMAT " is already confirmed", id),
			 errdetail("A confirmed action batch can be neither %s.", what)));
}

/*
 * The answer of a batch (action_batch()'s), in the caller's context;
 * *state and *job_id when asked.
 */
static Jsonb *
batch_answer(int64 id, char **state, int64 *job_id)
{
	MemoryContext caller = CurrentMemoryContext;
	RoleSwitch	sw;
	Jsonb	   *answer;
	bool		isnull;
	Datum		d;

	if (own_exec(&sw, &answer_stmt, id, true) == 0)
		batch_not_found(id);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	MemoryContextSwitchTo(caller);
	answer = DatumGetJsonbPCopy(d);
	if (state)
		*state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (job_id)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		*job_id = isnull ? 0 : DatumGetInt64(d);
	}
	store_end(&sw);
	MemoryContextSwitchTo(caller);
	return answer;
}

static SpiStmt load_stmt = {
	"SELECT actions FROM batch_ops.action_batch"
	" WHERE id" SQL_EQ "$1 AND role" SQL_EQ "$2 AND confirmed",
	SPI_OK_SELECT, 2, {INT8OID, OIDOID}
};

/* For the kind: the actions of a confirmed batch of the role. */
Jsonb *
action_batch_load(int64 batch_id, Oid role)
{
	MemoryContext caller = CurrentMemoryContext;
	RoleSwitch	sw;
	Datum		values[2];
	Jsonb	   *actions;
	bool		isnull;
	Datum		d;

	values[0] = Int64GetDatum(batch_id);
	values[1] = ObjectIdGetDatum(role);
	store_begin(&sw);
	if (spi_exec(&load_stmt, values, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("action batch " INT64_FORMAT " of the job does not exist", batch_id)));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	MemoryContextSwitchTo(caller);
	actions = DatumGetJsonbPCopy(d);
	store_end(&sw);
	MemoryContextSwitchTo(caller);
	return actions;
}

static SpiStmt finish_stmt = {
	"UPDATE batch_ops.action_batch SET state = $2, status = $3,"
	" finished_at = pg_catalog.clock_timestamp() WHERE id" SQL_EQ "$1",
	SPI_OK_UPDATE, 3, {INT8OID, TEXTOID, JSONBOID}
};

/* For the kind: the end of a batch, with its NOTIFY. */
void
action_batch_finish(int64 batch_id, const char *state, Jsonb *status)
{
	RoleSwitch	sw;
	Datum		values[3];

	values[0] = Int64GetDatum(batch_id);
	values[1] = CStringGetTextDatum(state);
	values[2] = JsonbPGetDatum(status);
	store_begin(&sw);
	spi_exec(&finish_stmt, values, NULL);
	store_end(&sw);
	notify_finished(batch_id, state);
}

static SpiStmt purge_stmt = {
	"DELETE FROM batch_ops.action_batch"
	" WHERE (state" SQL_EQ "'draft' AND created_at" SQL_LT
	"        (pg_catalog.now()" SQL_MINUS "pg_catalog.make_interval(secs => $1)))"
	"    OR (state" SQL_EQ "ANY ('{completed,failed}'::pg_catalog.text[])"
	"        AND finished_at" SQL_LT
	"        (pg_catalog.now()" SQL_MINUS "pg_catalog.make_interval(secs => $2)))",
	SPI_OK_DELETE, 2, {INT4OID, INT4OID}
};

/* Drafts past action_draft_ttl, finished batches past job_ttl. */
int64
action_batch_purge(void)
{
	RoleSwitch	sw;
	Datum		values[2];
	int64		n;

	if (!OidIsValid(extension_table_owner("action_batch", true)))
		return 0;
	values[0] = Int32GetDatum(batch_ops_action_draft_ttl);
	values[1] = Int32GetDatum(batch_ops_job_ttl);
	store_begin(&sw);
	n = (int64) spi_exec(&purge_stmt, values, NULL);
	store_end(&sw);
	return n;
}

/* ---------------------------------------------------------------------
 * Arguments
 * ---------------------------------------------------------------------
 */
/* A JSON array of 1 to the mode's limit of actions. */
static void
check_actions(Jsonb *actions, bool synchronous)
{
	int			limit = synchronous ? batch_ops_max_sync_actions : batch_ops_max_async_actions;
	int			n;

	if (!JB_ROOT_IS_ARRAY(actions) || JB_ROOT_IS_SCALAR(actions))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("actions must be a JSON array")));
	n = JB_ROOT_COUNT(actions);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an action batch needs at least one action")));
	if (n > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s action batch of %d actions exceeds the limit of %d",
						synchronous ? "synchronous" : "asynchronous", n, limit),
				 errdetail("The limit is set by %s.",
						   synchronous ? "batch_ops.max_sync_actions" : "batch_ops.max_async_actions"),
				 synchronous ?
				 errhint("Submit it as an asynchronous batch (synchronous => false), or split it.") :
				 errhint("Split it into several batches.")));
}

/* ---------------------------------------------------------------------
 * Callbacks
 *
 * A callback is checked when it is registered (create_action_batch), as
 * the caller: the outbound policy's sender and host checks, and its
 * credential, which must be usable by the caller and hold an hmac_secret.
 * When the batch finishes (notify_finished: in the caller's transaction
 * for a synchronous batch, in the worker's for a job), its answer is
 * submitted as an outbound job of the internal driver "callback"
 * (driver_callback.c), as the batch's owner, in a subtransaction of the
 * same transaction: nothing is sent if that transaction rolls back, and
 * a callback that cannot be submitted any more (the policy or the
 * credential changed since, the role's rate limit) is a WARNING, not the
 * batch's failure.  The job retries CALLBACK_RETRIES times with the
 * engine's backoff; the connect-time address check of the outbound
 * policy applies to it as to every outbound job.
 * ---------------------------------------------------------------------
 */

#define CALLBACK_RETRIES	3

/* The string value of a key of an object, or NULL. */
static char *
callback_key(Jsonb *callback, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&callback->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A callback URL's parts, as the outbound spec names them. */
typedef struct CallbackUrl
{
	char	   *scheme;
	char	   *host;			/* without an IPv6 address's brackets */
	int			port;
	char	   *path;			/* with its query */
} CallbackUrl;

static char *
curl_part(CURLU *u, CURLUPart part, unsigned int flags)
{
	char	   *s = NULL;
	char	   *result;

	if (curl_url_get(u, part, &s, flags) != CURLUE_OK || s == NULL)
		return NULL;
	result = pstrdup(s);
	curl_free(s);
	return result;
}

static void
callback_url_parse(const char *url, CallbackUrl *cu)
{
	CURLU	   *u = curl_url();
	char	   *port;
	char	   *query;
	bool		userinfo;
	size_t		len;

	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
	{
		curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback url must be an http or https URL")));
	}
	cu->scheme = curl_part(u, CURLUPART_SCHEME, 0);
	cu->host = curl_part(u, CURLUPART_HOST, 0);
	port = curl_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	cu->path = curl_part(u, CURLUPART_PATH, 0);
	query = curl_part(u, CURLUPART_QUERY, 0);
	userinfo = curl_part(u, CURLUPART_USER, 0) != NULL ||
		curl_part(u, CURLUPART_PASSWORD, 0) != NULL;
	curl_url_cleanup(u);
	if (userinfo)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback url must not carry a user name or password"),
				 errhint("A callback is signed with its credential's hmac_secret; name the credential in \"credential\".")));
	if (cu->scheme == NULL || cu->host == NULL || port == NULL ||
		(strcmp(cu->scheme, "http") != 0 && strcmp(cu->scheme, "https") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback url must be an http or https URL")));
	len = strlen(cu->host);
	if (len > 2 && cu->host[0] == '[' && cu->host[len - 1] == ']')
		cu->host = pnstrdup(cu->host + 1, len - 2);
	cu->port = atoi(port);
	if (cu->path == NULL)
		cu->path = "/";
	if (query)
		cu->path = psprintf("%s?%s", cu->path, query);
}

/* At registration, as the caller: ERROR unless the callback can be sent. */
static void
callback_check_policy(Jsonb *callback)
{
	char	   *url = callback_key(callback, "url");
	char	   *credential = callback_key(callback, "credential");
	CallbackUrl cu;
	const char *why;

	jobs_require_preload();
	outbound_check_sender(GetUserId());
	callback_url_parse(url, &cu);
	why = outbound_url_refusal(url);
	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("callback url host \"%s\" is not allowed", cu.host),
				 errdetail("%s", why),
				 errhint("A superuser lists the hosts and networks that outbound batches may reach in batch_ops.outbound_networks.")));
	if (credential)
	{
		OutboundSecret *secret = credential_fetch(credential, GetUserId());

		if (secret->hmac_secret == NULL || secret->hmac_secret[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("credential \"%s\" has no hmac_secret", credential),
					 errdetail("A callback is signed with its credential's hmac_secret.")));
	}
}

/* The outbound spec that POSTs answer to the callback. */
static Jsonb *
callback_spec(Jsonb *answer, Jsonb *callback)
{
	char	   *credential = callback_key(callback, "credential");
	CallbackUrl cu;
	StringInfoData buf;

	callback_url_parse(callback_key(callback, "url"), &cu);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"driver\": \"callback\", \"devices\": [{\"host\": ");
	escape_json(&buf, cu.host);
	appendStringInfoString(&buf, ", \"request\": {\"path\": ");
	escape_json(&buf, cu.path);
	appendStringInfoString(&buf, ", \"body\": ");
	(void) JsonbToCString(&buf, &answer->root, VARSIZE(answer));
	appendStringInfoString(&buf, "}}], \"connection_args\": {\"scheme\": ");
	escape_json(&buf, cu.scheme);
	appendStringInfo(&buf, ", \"port\": %d", cu.port);
	if (credential)
	{
		appendStringInfoString(&buf, ", \"credential\": ");
		escape_json(&buf, credential);
	}
	appendStringInfo(&buf, "}, \"options\": {\"retries\": %d, \"concurrency\": 1}}",
					 CALLBACK_RETRIES);
	return jsonb_from_cstring(buf.data);
}

static SpiStmt callback_stmt = {
	"SELECT answer, role, callback FROM batch_ops.action_batch_info"
	" WHERE id" SQL_EQ "$1 AND callback IS NOT NULL",
	SPI_OK_SELECT, 1, {INT8OID}
};

/* Submit the outbound job of a callback, as role; a WARNING if it fails. */
static void
callback_submit(int64 id, Oid role, Jsonb *spec)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	JobSubmit	s;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		RoleSwitch	rs;

		memset(&s, 0, sizeof(s));
		s.options = spec;
		role_switch_to_submitter(&rs, role);
		outbound_callback_internal = true;
		(void) jobs_submit("outbound", &s);
		outbound_callback_internal = false;
		role_switch_end(&rs);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		outbound_callback_internal = false;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("the callback of action batch " INT64_FORMAT " is not sent", id),
				 errdetail("%s", edata->message)));
	}
	PG_END_TRY();
}

/* A finished batch's callback, if it has one (its row is written). */
static void
callback_send(int64 id)
{
	MemoryContext caller = CurrentMemoryContext;
	RoleSwitch	sw;
	Datum		values[1];
	bool		isnull;
	Jsonb	   *answer;
	Jsonb	   *callback;
	Oid			role;

	values[0] = Int64GetDatum(id);
	store_begin(&sw);
	if (spi_exec(&callback_stmt, values, NULL) == 0)
	{
		store_end(&sw);
		MemoryContextSwitchTo(caller);
		return;
	}
	MemoryContextSwitchTo(caller);
	answer = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
	role = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 2, &isnull));
	callback = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 3, &isnull));
	store_end(&sw);
	MemoryContextSwitchTo(caller);
	callback_submit(id, role, callback_spec(answer, callback));
}

/*
 * The callback: {"url": "http(s)://...", "credential": "name"}.  Checked
 * when it is registered, as the caller: the outbound policy (sender, host)
 * and the credential (usable, with an hmac_secret); sent by
 * callback_send() when the batch finishes.
 */
static void
check_callback(Jsonb *callback)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		has_url = false;

	if (!JB_ROOT_IS_OBJECT(callback))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback must be a JSON object"),
				 errhint("A callback is {\"url\": \"https://hooks.example/ab\", \"credential\": \"hook\"}.")));
	it = JsonbIteratorInit(&callback->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (strcmp(name, "url") == 0)
		{
			char	   *url = v.type == jbvString ?
				pnstrdup(v.val.string.val, v.val.string.len) : NULL;

			if (url == NULL ||
				!(strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) ||
				strpbrk(url, " \t\r\n") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("callback url must be an http or https URL")));
			has_url = true;
		}
		else if (strcmp(name, "credential") == 0)
		{
			if (v.type != jbvString || v.val.string.len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("callback credential must be a credential's name")));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown callback key \"%s\"", name),
					 errhint("Valid keys are: url, credential.")));
	}
	if (!has_url)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback needs a url")));
	callback_check_policy(callback);
}

/* What an idempotency key covers: the whole request. */
static Jsonb *
request_doc(Jsonb *actions, bool confirmed, bool synchronous, Jsonb *callback)
{
	JsonbParseState *st = NULL;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "create_action_batch");
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "actions");
	push_jsonb(&st, WJB_VALUE, actions);
	push_bool(&st, "confirmed", confirmed);
	push_bool(&st, "synchronous", synchronous);
	push_key(&st, "callback");
	if (callback)
		push_jsonb(&st, WJB_VALUE, callback);
	else
	{
		JsonbValue	null;

		null.type = jbvNull;
		pushJsonbValue(&st, WJB_VALUE, &null);
	}
	pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/* ---------------------------------------------------------------------
 * Confirming: run now, or queue the job
 * ---------------------------------------------------------------------
 */

/* A synchronous batch: a running slot, the rate limit, the actions. */
static Jsonb *
run_sync(Jsonb *actions, const char **state)
{
	Oid			role = GetUserId();
	int			slot;
	bool		failed;
	ActionCounts counts;
	Jsonb	   *status;

	if (!action_slot_try(role, batch_ops_max_running_action_batches, false, &slot))
		ereport(ERROR,
				(errcode(ERRCODE_BATCH_OPS_RATE_LIMITED),
				 errmsg("too many action batches of role \"%s\" are running",
						GetUserNameFromId(role, false)),
				 errdetail("At most %d may run at once (batch_ops.max_running_action_batches).",
						   batch_ops_max_running_action_batches),
				 errhint("Retry when one has finished, or submit the batch as asynchronous: it waits its turn.")));
	ratelimit_consume(JB_ROOT_COUNT(actions));
	status = actions_run_atomic(actions, NULL, &failed, &counts);
	action_slot_release(role, slot, false);
	*state = failed ? "failed" : "completed";
	return status;
}

/* An asynchronous batch: checks as the caller, then its job. */
static int64
submit_async(int64 id, Jsonb *actions)
{
	ResourceSet *set = resource_set_load();
	int			n;
	ResolvedAction *acts = actions_resolve(set, actions, NULL, &n);
	JobSubmit	s;
	StringInfoData opts;
	int			i;
	TimestampTz deadline = GetCurrentTransactionStartTimestamp() +
		(int64) batch_ops_action_batch_timeout * USECS_PER_SEC;

	for (i = 0; i < n; i++)
	{
		if (acts[i].op == BATCH_CREATE)
			job_check_target_privilege(acts[i].relid, ACL_INSERT, "INSERT");
		else if (acts[i].op == BATCH_UPDATE)
			job_check_target_privilege(acts[i].relid, ACL_UPDATE, "UPDATE");
		else
			job_check_target_privilege(acts[i].relid, ACL_DELETE, "DELETE");
	}
	memset(&s, 0, sizeof(s));
	initStringInfo(&opts);
	appendStringInfo(&opts, "{\"batch_id\": " INT64_FORMAT ", \"actions\": %d, "
					 "\"timeout\": %d, \"deadline\": " INT64_FORMAT ", \"tables\": [",
					 id, n, batch_ops_action_batch_timeout, (int64) deadline);
	for (i = 0; i < n; i++)
		appendStringInfo(&opts, "%s%u", i ? ", " : "", acts[i].relid);
	appendStringInfoString(&opts, "]}");
	s.options = jsonb_from_cstring(opts.data);
	return jobs_submit("action_batch", &s);
}

/*
 * Confirm: run a synchronous batch now, queue an asynchronous one.  Fills
 * w's state, status and job id; the row is written by the caller.
 */
static void
confirm(int64 id, BatchWrite *w)
{
	w->confirmed = true;
	if (w->synchronous)
		w->status = run_sync(w->actions, &w->state);
	else
	{
		w->job_id = submit_async(id, w->actions);
		w->state = "queued";
	}
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/* create_action_batch(actions, confirmed, synchronous, callback, idempotency_key) */
Datum
batch_ops_create_action_batch(PG_FUNCTION_ARGS)
{
	BatchWrite	w;
	char	   *key;
	Jsonb	   *request = NULL;
	Jsonb	   *answer;
	int64		id;

	arg_not_null(fcinfo, 0, "actions");
	arg_not_null(fcinfo, 1, "confirmed");
	arg_not_null(fcinfo, 2, "synchronous");
	memset(&w, 0, sizeof(w));
	w.actions = PG_GETARG_JSONB_P(0);
	w.confirmed = PG_GETARG_BOOL(1);
	w.synchronous = PG_GETARG_BOOL(2);
	w.callback = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	key = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));

	check_actions(w.actions, w.synchronous);
	if (w.callback)
		check_callback(w.callback);
	if (w.confirmed && !w.synchronous)
		jobs_require_preload();
	if (key)
	{
		request = request_doc(w.actions, w.confirmed, w.synchronous, w.callback);
		answer = idempotency_claim(key, BATCH_CREATE, InvalidOid, request, true);
		if (answer)
			PG_RETURN_JSONB_P(answer);
	}

	if (!w.confirmed)
	{
		/* a draft is checked now, and again when it is confirmed */
		int			n;

		(void) actions_resolve(resource_set_load(), w.actions, NULL, &n);
		w.state = "draft";
		(void) store_insert(&w, &answer);
	}
	else if (w.synchronous)
	{
		w.status = run_sync(w.actions, &w.state);
		id = store_insert(&w, &answer);
		notify_finished(id, w.state);
	}
	else
	{
		w.state = "queued";
		id = store_insert(&w, NULL);
		confirm(id, &w);
		store_update(id, &w);
		answer = batch_answer(id, NULL, NULL);
	}

	if (key)
		idempotency_store(key, answer);
	PG_RETURN_JSONB_P(answer);
}

/* The row of the caller's own batch, locked; ERROR if none. */
static void
lock_own_batch(int64 id, BatchRow *row)
{
	MemoryContext caller = CurrentMemoryContext;
	RoleSwitch	sw;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (own_exec(&sw, &lock_stmt, id, false) == 0)
		batch_not_found(id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	MemoryContextSwitchTo(caller);
	row->id = id;
	row->confirmed = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
	row->synchronous = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	row->actions = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	row->callback = isnull ? NULL : DatumGetJsonbPCopy(d);
	store_end(&sw);
	MemoryContextSwitchTo(caller);
}

/* update_action_batch(batch_id, confirmed, synchronous, actions) */
Datum
batch_ops_update_action_batch(PG_FUNCTION_ARGS)
{
	int64		id;
	BatchRow	row;
	BatchWrite	w;
	int			n;

	arg_not_null(fcinfo, 0, "batch_id");
	id = PG_GETARG_INT64(0);
	lock_own_batch(id, &row);
	if (row.confirmed)
		batch_confirmed(id, "un-confirmed, edited nor confirmed again");

	memset(&w, 0, sizeof(w));
	w.confirmed = false;
	w.synchronous = PG_ARGISNULL(2) ? row.synchronous : PG_GETARG_BOOL(2);
	w.actions = PG_ARGISNULL(3) ? row.actions : PG_GETARG_JSONB_P(3);
	w.callback = row.callback;
	w.state = "draft";
	check_actions(w.actions, w.synchronous);
	(void) actions_resolve(resource_set_load(), w.actions, NULL, &n);

	if (!PG_ARGISNULL(1) && PG_GETARG_BOOL(1))
	{
		if (!w.synchronous)
			jobs_require_preload();
		confirm(id, &w);
	}
	store_update(id, &w);
	if (w.confirmed && w.synchronous)
		notify_finished(id, w.state);
	PG_RETURN_JSONB_P(batch_answer(id, NULL, NULL));
}

/* delete_action_batch(batch_id): drafts only */
Datum
batch_ops_delete_action_batch(PG_FUNCTION_ARGS)
{
	int64		id;
	RoleSwitch	sw;
	uint64		deleted;
	uint64		exists = 0;

	arg_not_null(fcinfo, 0, "batch_id");
	id = PG_GETARG_INT64(0);
	deleted = own_exec(&sw, &delete_stmt, id, false);
	if (deleted == 0)
	{
		Datum		values[3];

		values[0] = Int64GetDatum(id);
		values[1] = BoolGetDatum(false);
		values[2] = ObjectIdGetDatum(sw.save_user);
		exists = spi_exec(&exists_stmt, values, NULL);
	}
	store_end(&sw);
	if (deleted == 0 && exists == 0)
		batch_not_found(id);
	if (deleted == 0)
		batch_confirmed(id, "edited nor deleted");
	PG_RETURN_BOOL(true);
}

/* action_batch(batch_id) */
Datum
batch_ops_action_batch(PG_FUNCTION_ARGS)
{
	arg_not_null(fcinfo, 0, "batch_id");
	PG_RETURN_JSONB_P(batch_answer(PG_GETARG_INT64(0), NULL, NULL));
}

/* Longer waits than this (a century) are waits without a deadline. */
#define WAIT_FOREVER_USECS (100.0 * DAYS_PER_YEAR * USECS_PER_DAY)

/*
 * wait_action_batch(batch_id, timeout): poll until the batch is neither
 * queued nor running (a draft or a finished batch answers at once).  As
 * wait_job, it holds the calling statement's snapshot while it waits.
 */
Datum
batch_ops_wait_action_batch(PG_FUNCTION_ARGS)
{
	int64		id;
	TimestampTz deadline = DT_NOEND;
	long		sleep_ms = 5;
	Jsonb	   *answer;
	char	   *state;
	int64		job_id;

	arg_not_null(fcinfo, 0, "batch_id");
	id = PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1))
	{
		Interval   *t = PG_GETARG_INTERVAL_P(1);
		double		usecs = (double) t->time +
			((double) t->month * DAYS_PER_MONTH + t->day) * USECS_PER_DAY;

		if (usecs < WAIT_FOREVER_USECS)
			deadline = GetCurrentTimestamp() + (int64) Max(usecs, 0.0);
	}
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("wait_action_batch cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("Its snapshot would never show the batch's progress.")));
	for (;;)
	{
		long		left;

		answer = batch_answer(id, &state, &job_id);
		if (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)
			break;
		if (job_id != 0 && job_submitted_in_xact(job_id))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot wait for an action batch confirmed in the same transaction"),
					 errdetail("An asynchronous batch starts when the transaction that confirmed it commits."),
					 errhint("Commit before waiting for the batch.")));
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (deadline != DT_NOEND && left <= 0)
			break;
		InvalidateCatalogSnapshot();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 deadline != DT_NOEND ? Min(sleep_ms, left) : sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		sleep_ms = Min(sleep_ms * 2, 50);
	}
	PG_RETURN_JSONB_P(answer);
}
