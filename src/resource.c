/*-------------------------------------------------------------------------
 *
 * resource.c
 *	  Path templates of action batches (register_resource,
 *	  unregister_resource) and the resolution of an action to the table,
 *	  operation and item that the batch engine runs.
 *
 * A template such as '/networks/{network_id}/devices/{serial}' is a list
 * of segments, each a literal or a {variable} naming a column of its
 * table.  Two templates that would match the same paths (same literals,
 * variables at the same places) have the same "shape", which is unique,
 * so that a path never matches two templates of one shape; of templates
 * of different shapes that match, the one with the most literal segments
 * wins (then the first path in byte order).  A path that matches no
 * template is '/<table>' (create) or '/<table>/<key>' (update, destroy),
 * the table schema-qualified ("schema.table") or found on the caller's
 * search_path, as its name is written (no case folding, no
 * percent-decoding).
 *
 * Resolving an action merges its path variables into its body as column
 * values (JSON strings, which the engine reads with the column type's
 * input function); a body that gives a variable's column another value
 * contradicts its path and is refused.  Update and destroy need the whole
 * primary key from path and body; variables that are not key columns
 * ('/networks/{network_id}/devices/{serial}') must match the row, which
 * action_batch.c checks when the action runs (ResolvedAction.check).
 *
 * Templates confer nothing: actions run with the caller's privileges.
 * Only a table's owner may register a template for it, so that no role
 * can point paths that others use at a table of its own.  The template
 * table is reached as its owner (spi_util.c); PUBLIC cannot read it, and
 * the view batch_ops.resources shows the templates a role registered or
 * whose table it may use.
 *
 * Cache: every call needs the templates, so a backend keeps them (in
 * CacheMemoryContext) until a relcache invalidation of the template table
 * says they changed: register_resource and unregister_resource send one
 * with their commit (and their own backend sees it at once), as do DDL on
 * the table and DROP EXTENSION.  Change templates only through these
 * functions.  A set replaced while a call still uses it is freed at the
 * end of the transaction.
 *
 * Locking: the tables actions name are opened with AccessShareLock while
 * resolving (the engine takes its own locks when it writes); the template
 * table is read without locks and written with ordinary row locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "resource.h"
#include "spi_util.h"
#include "sql_quote.h"

PG_FUNCTION_INFO_V1(batch_ops_register_resource);
PG_FUNCTION_INFO_V1(batch_ops_unregister_resource);

#define RESOURCE_PATH_MAX	1024

/* ---------------------------------------------------------------------
 * Paths
 * ---------------------------------------------------------------------
 */

/*
 * Cut a path into its segments; false (with *why) if it is not
 * "/seg[/seg...]" with non-empty segments.
 */
static bool
path_split(const char *path, int *nsegs, char ***segs, const char **why)
{
	const char *p = path;
	int			n = 0;
	int			alloc = 8;
	char	  **out = palloc(sizeof(char *) * alloc);

	if (strlen(path) > RESOURCE_PATH_MAX)
	{
		*why = "it is longer than 1024 bytes";
		return false;
	}
	if (*p != '/')
	{
		*why = "it does not start with \"/\"";
		return false;
	}
	while (*p == '/')
	{
		const char *start = ++p;

		while (*p && *p != '/')
			p++;
		if (p == start)
		{
			*why = "it has an empty segment";
			return false;
		}
		if (n == alloc)
		{
			alloc *= 2;
			out = repalloc(out, sizeof(char *) * alloc);
		}
		out[n++] = pnstrdup(start, p - start);
	}
	*nsegs = n;
	*segs = out;
	return true;
}

/*
 * Parse a template: its segments, which are variables, its shape.  false
 * (with *why) if a segment is neither a literal nor a whole "{name}".
 */
static bool
template_parse(const char *path, ResourceTemplate *t, StringInfo shape,
			   const char **why)
{
	int			i;

	memset(t, 0, sizeof(ResourceTemplate));
	t->path = pstrdup(path);
	if (!path_split(path, &t->nsegs, &t->segs, why))
		return false;
	t->is_var = palloc0(sizeof(bool) * t->nsegs);
	for (i = 0; i < t->nsegs; i++)
	{
		char	   *s = t->segs[i];
		int			len = strlen(s);

		if (s[0] == '{' && len > 2 && s[len - 1] == '}' &&
			strpbrk(s + 1, "{}") == s + len - 1)
		{
			t->is_var[i] = true;
			t->segs[i] = pnstrdup(s + 1, len - 2);
		}
		else if (strpbrk(s, "{}") != NULL)
		{
			*why = "a segment with \"{\" or \"}\" must be a whole {variable}";
			return false;
		}
		else
			t->nliterals++;
		if (shape)
		{
			appendStringInfoChar(shape, '/');
			appendStringInfoString(shape, t->is_var[i] ? "{}" : s);
		}
	}
	return true;
}

/* Does the path (cut into segments) match the template? */
static bool
template_match(const ResourceTemplate *t, int nsegs, char **segs)
{
	int			i;

	if (t->nsegs != nsegs)
		return false;
	for (i = 0; i < nsegs; i++)
		if (!t->is_var[i] && strcmp(t->segs[i], segs[i]) != 0)
			return false;
	return true;
}

/* ---------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------
 */

/* The primary key's columns of a table (palloc'd names); 0 if it has none. */
static char **
key_columns(Oid relid, int *n)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	char	  **names = NULL;
	int			i;

	*n = 0;
	if (OidIsValid(pk))
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
		Form_pg_index idx;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", pk);
		idx = (Form_pg_index) GETSTRUCT(tup);
		*n = idx->indnkeyatts;
		names = palloc(sizeof(char *) * Max(*n, 1));
		for (i = 0; i < *n; i++)
			names[i] = get_attname(relid, idx->indkey.values[i], false);
		ReleaseSysCache(tup);
	}
	relation_close(rel, NoLock);
	return names;
}

/* Is name one of the n strings? */
static bool
name_in(const char *name, char **names, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/*
 * The table of a default path's first segment: "schema.table", or a name
 * on the caller's search_path (with the caller's USAGE on the schema).
 */
static Oid
default_table(const char *seg)
{
	const char *dot = strchr(seg, '.');
	RangeVar   *rv;

	if (dot)
		rv = makeRangeVar(pnstrdup(seg, dot - seg), pstrdup(dot + 1), -1);
	else
		rv = makeRangeVar(NULL, pstrdup(seg), -1);
	return RangeVarGetRelid(rv, NoLock, true);
}

/*
 * Lookups of one batch: the tables its default paths name and the keys of
 * its tables, remembered from one action to the next (a batch mostly
 * names one or two tables), forgotten by resource_lookups_reset() before
 * each batch is resolved, so that nothing outlives the caller's
 * search_path or a change of key.
 */
#define LOOKUP_SLOTS 8

typedef struct Lookup
{
	char	   *name;			/* a default path's first segment */
	Oid			relid;
	int			nkeys;
	char	  **keys;
} Lookup;

static Lookup name_lookups[LOOKUP_SLOTS];
static int	n_name_lookups = 0;
static Lookup key_lookups[LOOKUP_SLOTS];
static int	n_key_lookups = 0;

/* Forget the lookups (their memory is the caller's, gone with its context). */
void
resource_lookups_reset(void)
{
	n_name_lookups = 0;
	n_key_lookups = 0;
}

/* default_table(), remembered for the batch. */
static Oid
default_table_cached(const char *seg)
{
	Oid			relid;
	int			i;

	for (i = 0; i < n_name_lookups; i++)
		if (strcmp(name_lookups[i].name, seg) == 0)
			return name_lookups[i].relid;
	relid = default_table(seg);
	if (n_name_lookups < LOOKUP_SLOTS)
	{
		name_lookups[n_name_lookups].name = pstrdup(seg);
		name_lookups[n_name_lookups++].relid = relid;
	}
	return relid;
}

/* key_columns(), remembered for the batch. */
static char **
key_columns_cached(Oid relid, int *n)
{
	char	  **keys;
	int			i;

	for (i = 0; i < n_key_lookups; i++)
		if (key_lookups[i].relid == relid)
		{
			*n = key_lookups[i].nkeys;
			return key_lookups[i].keys;
		}
	keys = key_columns(relid, n);
	if (n_key_lookups < LOOKUP_SLOTS)
	{
		key_lookups[n_key_lookups].relid = relid;
		key_lookups[n_key_lookups].nkeys = *n;
		key_lookups[n_key_lookups++].keys = keys;
	}
	return keys;
}

/* ---------------------------------------------------------------------
 * The template table
 * ---------------------------------------------------------------------
 */
static void
resources_begin(RoleSwitch *sw)
{
	role_switch_to_owner(sw, extension_table_owner("action_resource", false), true);
	spi_connect();
}

static void
resources_end(RoleSwitch *sw)
{
	SPI_finish();
	role_switch_end(sw);
}

static int
template_cmp(const void *a, const void *b)
{
	const ResourceTemplate *x = a;
	const ResourceTemplate *y = b;

	if (x->nliterals != y->nliterals)
		return y->nliterals - x->nliterals;
	return strcmp(x->path, y->path);
}

static SpiStmt load_stmt = {
	"SELECT path, target FROM batch_ops.action_resource", SPI_OK_SELECT, 0, {0}
};

/*
 * The templates as last read, in their own context; NULL: read again.  A
 * set that gives way to a new one may still be in use by a call in
 * progress (a trigger can run an action batch inside another), so its
 * context is retired, not freed: retired contexts go at the end of the
 * transaction.
 */
static ResourceSet *cached_set = NULL;
static MemoryContext cached_cxt = NULL;
static MemoryContext retired_cxt = NULL;
static Oid	cached_table = InvalidOid;	/* batch_ops.action_resource */

/* Transaction end: no call is using a retired set any more. */
static void
resource_xact_end(XactEvent event, void *arg)
{
	if (retired_cxt != NULL &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		 event == XACT_EVENT_PARALLEL_ABORT))
		MemoryContextDeleteChildren(retired_cxt);
}

/* Relcache callback: the template table (or everything) changed. */
static void
resource_inval(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == cached_table)
		cached_set = NULL;
}

/* The OID of batch_ops.action_resource (InvalidOid if none). */
static Oid
template_table(void)
{
	Oid			nsp = get_namespace_oid("batch_ops", true);

	return OidIsValid(nsp) ? get_relname_relid("action_resource", nsp) : InvalidOid;
}

/* Tell every backend (this one at once) that the templates changed. */
static void
resource_changed(void)
{
	Oid			relid = template_table();

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	cached_set = NULL;
}

/*
 * Every template (read-only: the backend's cache), the most specific
 * first.  A template whose table was dropped is skipped when resolving.
 */
ResourceSet *
resource_set_load(void)
{
	static bool registered = false;
	MemoryContext caller = CurrentMemoryContext;
	ResourceSet *set;
	RoleSwitch	sw;
	uint64		r;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(resource_inval, (Datum) 0);
		RegisterXactCallback(resource_xact_end, NULL);
		retired_cxt = AllocSetContextCreate(CacheMemoryContext, "batch_ops retired resources",
											ALLOCSET_SMALL_SIZES);
		registered = true;
	}
	if (cached_set != NULL)
		return cached_set;
	if (cached_cxt != NULL)
		MemoryContextSetParent(cached_cxt, retired_cxt);
	cached_cxt = AllocSetContextCreate(CacheMemoryContext, "batch_ops resources",
									   ALLOCSET_SMALL_SIZES);
	cached_table = template_table();

	resources_begin(&sw);
	spi_exec(&load_stmt, NULL, NULL);
	MemoryContextSwitchTo(cached_cxt);
	set = palloc0(sizeof(ResourceSet));
	set->t = palloc0(sizeof(ResourceTemplate) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		char	   *path = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		Oid			target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[r],
															SPI_tuptable->tupdesc, 2,
															&isnull));
		const char *why;

		if (!template_parse(path, &set->t[set->n], NULL, &why))
			continue;
		set->t[set->n++].target = target;
	}
	resources_end(&sw);
	MemoryContextSwitchTo(caller);
	qsort(set->t, set->n, sizeof(ResourceTemplate), template_cmp);
	cached_set = set;
	return set;
}

/* ---------------------------------------------------------------------
 * Actions
 * ---------------------------------------------------------------------
 */

/* The text of a JSON scalar, as a path would give it; NULL for null. */
char *
jsonb_scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			return pstrdup("?");
	}
}

/* A string value of an action's key ("resource", "operation"), or NULL. */
static char *
action_string(JsonbValue *action, const char *key)
{
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(action->val.binary.data, key, strlen(key), &v))
		return NULL;
	if (v.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" of an action must be a JSON string", key)));
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* An action's error: "action N: ..." (actions are numbered from 0). */
#define action_error(code, index, aux, msg, ...) \
	ereport(ERROR, \
			(errcode(code), \
			 errmsg("invalid action %d: " msg, index, ##__VA_ARGS__), aux))

/* Only the keys of Meraki's actions. */
static void
check_action_keys(int index, JsonbValue *action)
{
	JsonbIterator *it = JsonbIteratorInit(action->val.binary.data);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		if (!((v.val.string.len == 8 && strncmp(v.val.string.val, "resource", 8) == 0) ||
			  (v.val.string.len == 9 && strncmp(v.val.string.val, "operation", 9) == 0) ||
			  (v.val.string.len == 4 && strncmp(v.val.string.val, "body", 4) == 0)))
			action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
						 errhint("An action has the keys resource, operation and body."),
						 "unknown key \"%s\"",
						 pnstrdup(v.val.string.val, v.val.string.len));
	}
}

/* The operation's name as the engine's enum. */
static BatchOp
action_op(int index, const char *opname)
{
	if (strcmp(opname, "create") == 0)
		return BATCH_CREATE;
	if (strcmp(opname, "update") == 0)
		return BATCH_UPDATE;
	if (strcmp(opname, "destroy") == 0)
		return BATCH_DELETE;
	action_error(ERRCODE_UNDEFINED_OBJECT, index,
				 errhint("The operations are create, update and destroy."),
				 "unknown operation \"%s\"", opname);
	return BATCH_CREATE;		/* keep the compiler quiet */
}

/* Path variables: column names and their values (text from the path). */
typedef struct PathVars
{
	int			n;
	char	  **cols;
	char	  **vals;
} PathVars;

/*
 * Find the template or the default table that the path names.  pinned,
 * if valid, is the table the path named when the batch was confirmed (a
 * job resolves again, with the role's search_path rather than the
 * session's): only a template of that table, or that table, will do.
 */
static void
resolve_path(ResourceSet *set, int index, ResolvedAction *a, PathVars *vars,
			 Oid pinned)
{
	int			i;

	vars->n = 0;
	vars->cols = palloc(sizeof(char *) * Max(a->nsegs, 1));
	vars->vals = palloc(sizeof(char *) * Max(a->nsegs, 1));
	for (i = 0; i < set->n; i++)
	{
		ResourceTemplate *t = &set->t[i];
		int			s;

		if (!template_match(t, a->nsegs, a->segs) ||
			(OidIsValid(pinned) && t->target != pinned) ||
			!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(t->target)))
			continue;
		a->tmpl = i;
		a->relid = t->target;
		for (s = 0; s < t->nsegs; s++)
			if (t->is_var[s])
			{
				vars->cols[vars->n] = t->segs[s];
				vars->vals[vars->n++] = a->segs[s];
			}
		a->keys = key_columns_cached(a->relid, &a->nkeys);
		return;
	}

	a->tmpl = -1;
	if (a->nsegs > 2)
		a->relid = InvalidOid;
	else if (OidIsValid(pinned))
		a->relid = SearchSysCacheExists1(RELOID, ObjectIdGetDatum(pinned)) ? pinned : InvalidOid;
	else
		a->relid = default_table_cached(a->segs[0]);
	if (!OidIsValid(a->relid))
		action_error(ERRCODE_UNDEFINED_OBJECT, index,
					 errdetail("No registered path template matches it, and it does not name a table as /<table> or /<table>/<key>."),
					 "unknown resource \"%s\"",
					 a->resource);
	a->keys = key_columns_cached(a->relid, &a->nkeys);
	if (a->nsegs == 1 && a->op != BATCH_CREATE)
		action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
					 errhint("Write the resource as /%s/<key>.", a->segs[0]),
					 "%s needs the key in the path",
					 a->opname);
	if (a->nsegs == 2 && a->op == BATCH_CREATE)
		action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
					 errhint("Write the resource as /%s.", a->segs[0]),
					 "create takes the table's path, not a row's");
	if (a->nsegs == 2)
	{
		if (a->nkeys != 1)
			action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
						 errhint("Register a path template that names every key column with batch_ops.register_resource()."),
						 "table \"%s\" has no single-column primary key for the path \"%s\"",
						 get_rel_name(a->relid), a->resource);
		vars->cols[0] = a->keys[0];
		vars->vals[0] = a->segs[1];
		vars->n = 1;
	}
}

/* A JSON string value for a path variable. */
static JsonbValue
string_value(const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	return v;
}

static int
cstring_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Merge path variables and body into the item: a body key that is a
 * variable must give the same text.  The item is kept as a JsonbValue
 * tree (action_batch.c puts the trees of a group into one array, without
 * a round trip through Jsonb).  The item's keys, sorted, make the shape
 * (NUL-separated: a JSON key in jsonb has no NUL); destroy keeps the key
 * columns only.  The check object is built only when the path has
 * variables that are not key columns.
 */
static void
build_item(int index, ResolvedAction *a, PathVars *vars, JsonbValue *body)
{
	JsonbParseState *state = NULL;
	JsonbParseState *cstate = NULL;
	int			nnames = 0;
	int			nbody = body ? JsonContainerSize(body->val.binary.data) : 0;
	char	  **names = palloc(sizeof(char *) * (vars->n + nbody + 1));
	StringInfoData shape;
	bool		check_extra = false;
	int			i;

	if (a->op != BATCH_CREATE)
		for (i = 0; i < vars->n; i++)
			check_extra |= !name_in(vars->cols[i], a->keys, a->nkeys);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (check_extra)
		pushJsonbValue(&cstate, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < vars->n; i++)
	{
		JsonbValue	k = string_value(vars->cols[i]);
		JsonbValue	v = string_value(vars->vals[i]);

		if (a->op != BATCH_DELETE || name_in(vars->cols[i], a->keys, a->nkeys))
		{
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
			names[nnames++] = vars->cols[i];
		}
		if (check_extra)
		{
			pushJsonbValue(&cstate, WJB_KEY, &k);
			pushJsonbValue(&cstate, WJB_VALUE, &v);
		}
	}
	if (body)
	{
		JsonbIterator *it = JsonbIteratorInit(body->val.binary.data);
		JsonbValue	k;
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *name;
			bool		is_key;
			int			j;

			if (tok != WJB_KEY)
				continue;
			name = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &v, true);
			is_key = name_in(name, a->keys, a->nkeys);
			for (j = 0; j < vars->n; j++)
				if (strcmp(vars->cols[j], name) == 0)
					break;
			if (j < vars->n)
			{
				char	   *text = jsonb_scalar_text(&v);

				if (text == NULL || strcmp(text, vars->vals[j]) != 0)
					action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
								 errdetail("The path \"%s\" gives \"%s\" the value \"%s\", the body %s.",
										   a->resource, name, vars->vals[j],
										   text ? psprintf("\"%s\"", text) : "null"),
								 "the body contradicts the path");
				continue;
			}
			if (a->op == BATCH_DELETE && !is_key)
				action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
							 errdetail("The body of a destroy can give only key columns."),
							 "destroy takes no column \"%s\"", name);
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
			if (check_extra && is_key)
			{
				pushJsonbValue(&cstate, WJB_KEY, &k);
				pushJsonbValue(&cstate, WJB_VALUE, &v);
			}
			names[nnames++] = name;
		}
	}
	a->itemv = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	a->item = NULL;
	a->check = check_extra ?
		JsonbValueToJsonb(pushJsonbValue(&cstate, WJB_END_OBJECT, NULL)) : NULL;

	if (a->op != BATCH_CREATE)
		for (i = 0; i < a->nkeys; i++)
			if (!name_in(a->keys[i], names, nnames))
				action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
							 errdetail("Neither the path \"%s\" nor the body gives it.", a->resource),
							 "%s needs the key column \"%s\" of table \"%s\"",
							 a->opname, a->keys[i], get_rel_name(a->relid));

	if (nnames > 1)
		qsort(names, nnames, sizeof(char *), cstring_cmp);
	initStringInfo(&shape);
	appendBinaryStringInfo(&shape, (char *) &a->relid, sizeof(Oid));
	appendBinaryStringInfo(&shape, (char *) &a->op, sizeof(BatchOp));
	for (i = 0; i < nnames; i++)
		appendBinaryStringInfo(&shape, names[i], strlen(names[i]) + 1);
	a->shape = shape.data;
	a->shapelen = shape.len;
}

/* The item as Jsonb (made on first use: only errors need it). */
Jsonb *
resource_action_item(ResolvedAction *a)
{
	if (a->item == NULL)
		a->item = JsonbValueToJsonb(a->itemv);
	return a->item;
}

/*
 * Resolve one action (an element of the actions array) as the caller:
 * ERROR with the action's index if it is not valid.  pinned: see
 * resolve_path().
 */
void
resource_resolve(ResourceSet *set, int index, JsonbValue *action, Oid pinned,
				 ResolvedAction *out)
{
	JsonbValue	body;
	bool		has_body;
	const char *why;

	memset(out, 0, sizeof(ResolvedAction));
	if (action->type != jbvBinary || !JsonContainerIsObject(action->val.binary.data))
		action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
					 errhint("An action is {\"resource\": \"/orders/17\", \"operation\": \"update\", \"body\": {...}}."),
					 "not a JSON object");
	check_action_keys(index, action);
	out->resource = action_string(action, "resource");
	out->opname = action_string(action, "operation");
	if (out->resource == NULL || out->opname == NULL)
		action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
					 errhint("An action is {\"resource\": \"/orders/17\", \"operation\": \"update\", \"body\": {...}}."),
					 "\"resource\" and \"operation\" are required");
	out->op = action_op(index, out->opname);
	if (!path_split(out->resource, &out->nsegs, &out->segs, &why))
		action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
					 errdetail("The path is not valid: %s.", why),
					 "resource \"%s\" is not a path", out->resource);
	has_body = getKeyJsonValueFromContainer(action->val.binary.data, "body", 4, &body) &&
		body.type != jbvNull;
	if (has_body && (body.type != jbvBinary || !JsonContainerIsObject(body.val.binary.data)))
		action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
					 errdetail("Its keys are column names."),
					 "\"body\" must be a JSON object");
	if (!has_body && out->op == BATCH_UPDATE)
		action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
					 errdetail("Its keys are the columns to change."),
					 "update needs a body");

	{
		PathVars	vars;

		resolve_path(set, index, out, &vars, pinned);
		if (out->op != BATCH_CREATE && out->nkeys == 0)
			action_error(ERRCODE_INVALID_PARAMETER_VALUE, index,
						 errdetail("Update and destroy find rows by primary key."),
						 "table \"%s\" has no primary key",
						 get_rel_name(out->relid));
		build_item(index, out, &vars, has_body ? &body : NULL);
	}
}

/* ---------------------------------------------------------------------
 * createdResources
 * ---------------------------------------------------------------------
 */

/* A column of a row (a jbvObject in to_jsonb form) as text; NULL if absent. */
static char *
row_column_text(JsonbValue *row, const char *name)
{
	int			i;

	if (row == NULL || row->type != jbvObject)
		return NULL;
	for (i = 0; i < row->val.object.nPairs; i++)
	{
		JsonbPair  *p = &row->val.object.pairs[i];

		if (p->key.val.string.len == strlen(name) &&
			strncmp(p->key.val.string.val, name, p->key.val.string.len) == 0)
			return jsonb_scalar_text(&p->value);
	}
	return NULL;
}

/* The template filled with the row's values, or NULL if one is missing. */
static char *
template_fill(const ResourceTemplate *t, JsonbValue *row)
{
	StringInfoData uri;
	int			i;

	initStringInfo(&uri);
	for (i = 0; i < t->nsegs; i++)
	{
		char	   *v = t->is_var[i] ? row_column_text(row, t->segs[i]) : t->segs[i];

		if (v == NULL)
			return NULL;
		appendStringInfoChar(&uri, '/');
		appendStringInfoString(&uri, v);
	}
	return uri.data;
}

/* Does t name every key column, and does the action's path lead to it? */
static bool
template_names_row(const ResourceTemplate *t, const ResolvedAction *a, bool prefix)
{
	int			i;

	for (i = 0; i < a->nkeys; i++)
	{
		int			s;

		for (s = 0; s < t->nsegs; s++)
			if (t->is_var[s] && strcmp(t->segs[s], a->keys[i]) == 0)
				break;
		if (s == t->nsegs)
			return false;
	}
	if (!prefix)
		return true;
	if (t->nsegs <= a->nsegs)
		return false;
	for (i = 0; i < a->nsegs; i++)
		if (!t->is_var[i] && strcmp(t->segs[i], a->segs[i]) != 0)
			return false;
	return true;
}

/*
 * The id and the URI of a row that a create action made: the key's text
 * (key columns joined by ","), and the template on the table that names
 * the whole key -- one that extends the action's own path first -- filled
 * with the row's values; for an unregistered '/<table>', '/<table>/<id>'.
 * Either may be NULL (a key column the caller may not read, no template).
 */
char *
resource_created_uri(ResourceSet *set, const ResolvedAction *a, JsonbValue *row, char **id)
{
	StringInfoData buf;
	int			pass;
	int			i;

	*id = NULL;
	initStringInfo(&buf);
	for (i = 0; i < a->nkeys; i++)
	{
		char	   *v = row_column_text(row, a->keys[i]);

		if (v == NULL)
			break;
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, v);
	}
	if (a->nkeys > 0 && i == a->nkeys)
		*id = buf.data;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < set->n; i++)
		{
			char	   *uri;

			if (set->t[i].target != a->relid ||
				!template_names_row(&set->t[i], a, pass == 0))
				continue;
			uri = template_fill(&set->t[i], row);
			if (uri)
				return uri;
		}
	if (a->tmpl < 0 && a->nkeys == 1 && *id)
		return psprintf("%s/%s", a->resource, *id);
	return NULL;
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */
/* A template whose table was dropped gives way to a new one. */
static SpiStmt stale_stmt = {
	"DELETE FROM batch_ops.action_resource r"
	" WHERE (r.path" SQL_EQ "$1 OR r.shape" SQL_EQ "$2)"
	" AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid" SQL_EQ "r.target)",
	SPI_OK_DELETE, 2, {TEXTOID, TEXTOID}
};

static SpiStmt register_stmt = {
	"INSERT INTO batch_ops.action_resource (path, shape, target, variables, registered_by)"
	" VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
	SPI_OK_INSERT, 5, {TEXTOID, TEXTOID, OIDOID, TEXTARRAYOID, OIDOID}
};

static SpiStmt conflict_stmt = {
	"SELECT path FROM batch_ops.action_resource"
	" WHERE path" SQL_EQ "$1 OR shape" SQL_EQ "$2 LIMIT 1",
	SPI_OK_SELECT, 2, {TEXTOID, TEXTOID}
};

/* The caller must own the table (and it must be a table). */
static void
check_table_owner(Oid relid)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(relid)),
				 errdetail("Resources map to tables and partitioned tables.")));
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s", get_rel_name(relid)),
				 errdetail("Only a table's owner may map paths to it.")));
}

/* The template's variables as a text[], after checking they are columns. */
static Datum
template_variables(ResourceTemplate *t, Oid relid)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(t->nsegs, 1));
	int			n = 0;
	int			i;
	int			j;

	for (i = 0; i < t->nsegs; i++)
	{
		AttrNumber	att;

		if (!t->is_var[i])
			continue;
		att = get_attnum(relid, t->segs[i]);
		if (att <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							t->segs[i], get_rel_name(relid)),
					 errdetail("Each {variable} of a path template names a column of its table.")));
		for (j = 0; j < i; j++)
			if (t->is_var[j] && strcmp(t->segs[j], t->segs[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("variable \"%s\" appears twice in path template \"%s\"",
								t->segs[i], t->path)));
		d[n++] = CStringGetTextDatum(t->segs[i]);
	}
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* register_resource(path, target) */
Datum
batch_ops_register_resource(PG_FUNCTION_ARGS)
{
	char	   *path;
	Oid			relid;
	ResourceTemplate t;
	StringInfoData shape;
	const char *why;
	Datum		values[5];
	RoleSwitch	sw;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "path" : "target")));
	path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	initStringInfo(&shape);
	if (!template_parse(path, &t, &shape, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid path template \"%s\"", path),
				 errdetail("The path is not valid: %s.", why),
				 errhint("A template is like /networks/{network_id}/devices/{serial}.")));
	check_table_owner(relid);

	values[0] = CStringGetTextDatum(path);
	values[1] = CStringGetTextDatum(shape.data);
	values[2] = ObjectIdGetDatum(relid);
	values[3] = template_variables(&t, relid);
	values[4] = ObjectIdGetDatum(GetUserId());
	resources_begin(&sw);
	spi_exec(&stale_stmt, values, NULL);
	if (spi_exec(&register_stmt, values, NULL) == 0)
	{
		char	   *other = "?";

		if (spi_exec(&conflict_stmt, values, NULL) > 0)
			other = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 strcmp(other, path) == 0 ?
				 errmsg("resource \"%s\" is already registered", path) :
				 errmsg("path template \"%s\" matches the same paths as \"%s\"", path, other),
				 errhint("Unregister it first with batch_ops.unregister_resource().")));
	}
	resources_end(&sw);
	resource_changed();
	PG_RETURN_VOID();
}

static SpiStmt lookup_stmt = {
	"SELECT target, registered_by FROM batch_ops.action_resource"
	" WHERE path" SQL_EQ "$1 FOR UPDATE",
	SPI_OK_SELECT, 1, {TEXTOID}
};

static SpiStmt unregister_stmt = {
	"DELETE FROM batch_ops.action_resource WHERE path" SQL_EQ "$1",
	SPI_OK_DELETE, 1, {TEXTOID}
};

/*
 * unregister_resource(path): who registered it, the table's owner or a
 * superuser; false if there is no such template.
 */
Datum
batch_ops_unregister_resource(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Datum		values[1];
	RoleSwitch	sw;
	Oid			target;
	Oid			registered_by;
	bool		isnull;
	bool		found;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("path must not be null")));
	values[0] = PG_GETARG_DATUM(0);
	resources_begin(&sw);
	found = spi_exec(&lookup_stmt, values, NULL) > 0;
	if (found)
	{
		target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
		registered_by = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 2, &isnull));
		if (registered_by != caller && !superuser_arg(caller) &&
			!(SearchSysCacheExists1(RELOID, ObjectIdGetDatum(target)) &&
			  pg_class_ownercheck(target, caller)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to unregister resource \"%s\"",
							text_to_cstring(PG_GETARG_TEXT_PP(0))),
					 errdetail("Only the role that registered it, the owner of its table or a superuser may.")));
		spi_exec(&unregister_stmt, values, NULL);
	}
	resources_end(&sw);
	if (found)
		resource_changed();
	PG_RETURN_BOOL(found);
}
