/*-------------------------------------------------------------------------
 *
 * resource.h
 *	  Resources of action batches: REST-like path templates mapped to
 *	  tables (register_resource), and the resolution of an action
 *	  ({"resource", "operation", "body"}) to the table, operation and item
 *	  the batch engine runs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_RESOURCE_H
#define BATCH_OPS_RESOURCE_H

#include "fmgr.h"
#include "utils/jsonb.h"

#include "batch.h"

/* A registered template, its path cut into segments. */
typedef struct ResourceTemplate
{
	char	   *path;
	Oid			target;
	int			nsegs;
	char	  **segs;			/* a literal, or the variable's column name */
	bool	   *is_var;
	int			nliterals;
} ResourceTemplate;

/* Every template of the database, the most specific first. */
typedef struct ResourceSet
{
	int			n;
	ResourceTemplate *t;
} ResourceSet;

/* An action, resolved: what the engine runs for it. */
typedef struct ResolvedAction
{
	const char *resource;		/* as given */
	const char *opname;			/* create, update or destroy */
	BatchOp		op;
	Oid			relid;
	JsonbValue *itemv;			/* create/update: body and path variables;
								 * destroy: the key (a jbvObject tree) */
	Jsonb	   *item;			/* the same as Jsonb, once made
								 * (resource_action_item) */
	Jsonb	   *check;			/* update/destroy: key and the path's other
								 * variables, which the row must have; NULL
								 * when the path gives only key columns */
	char	   *shape;			/* actions of one shape run as one batch: */
	int			shapelen;		/* table, operation, sorted column names */
	int			tmpl;			/* template matched, -1: /<table>[/<key>] */
	int			nsegs;			/* the resource's path segments */
	char	  **segs;
	int			nkeys;			/* the table's primary key columns */
	char	  **keys;
} ResolvedAction;

extern ResourceSet *resource_set_load(void);
extern void resource_lookups_reset(void);
extern void resource_resolve(ResourceSet *set, int index, JsonbValue *action,
							 Oid pinned, ResolvedAction *out);
extern char *resource_created_uri(ResourceSet *set, const ResolvedAction *a,
								  JsonbValue *row, char **id);
extern char *jsonb_scalar_text(JsonbValue *v);
extern Jsonb *resource_action_item(ResolvedAction *a);

/* SQL */
extern PGDLLEXPORT Datum batch_ops_register_resource(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_unregister_resource(PG_FUNCTION_ARGS);

#endif							/* BATCH_OPS_RESOURCE_H */
