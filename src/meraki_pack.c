/*-------------------------------------------------------------------------
 *
 * meraki_pack.c
 *	  meraki, options.mode "action_batch": a spec's actions packed into the
 *	  organization's own action batches, with one result per action.
 *
 * Before the engine runs (kind_outbound.c: the job and run_outbound), the
 * actions not yet done are grouped in input order into packs of
 * options.batch_size actions (by default Meraki's own limits: 100 in a
 * batch, 20 in a synchronous one).  The engine (outbound_engine.c) is given a
 * spec with one synthetic target per pack whose action is {"actions":
 * [...]}: driver_meraki.c sends it as one action batch and polls it to the
 * end, under the engine's usual limits (outbound_spec.c caps
 * host_concurrency at 5 in this mode: a spec is one organization, and
 * Meraki runs at most 5 of its batches at once).  No engine change: the
 * caller's hooks are wrapped, and skip, mark_started and result map a
 * pack to its member actions, so that everything the caller keeps (the
 * started marks, the results, a cancel's verdicts) stays per action.
 *
 * Crash rules hold per action: a pack's started mark is each member's,
 * committed before its batch is sent; after a crash every member of a
 * batch that may have been sent comes back 'interrupted' and is never
 * sent again, and the members never dispatched are packed anew when the
 * job resumes.
 *
 * A batch is atomic: Meraki runs all of its actions or none.  Each member
 * gets the batch's success, status code, error, message, attempts and
 * times.  Its output is {"action_batch_id", "position"} (the batch's id,
 * the action's place in it, from 0) once Meraki has answered with the
 * batch, and for a create action of a completed batch "created_resource",
 * the entry of status.createdResources that Meraki lists for it (one per
 * create action, in the batch's order); null when the batch was never
 * created (a transport error, a refusal).
 *
 * No I/O, no catalog access, no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "driver_internal.h"
#include "outbound.h"

#define MERAKI_BATCH_MAX		100
#define MERAKI_SYNC_BATCH_MAX	20

typedef struct MerakiPack
{
	OutboundSpec *spec;			/* the caller's: one target per action */
	const OutboundHooks *inner; /* the caller's hooks */
	int			npacks;
	int		   *first;			/* per pack: its first entry in members */
	int		   *count;			/* per pack: how many actions */
	int		   *members;		/* action indexes, pack after pack */
} MerakiPack;

/* options.synchronous */
bool
meraki_synchronous(Jsonb *options)
{
	JsonbValue *v = jb_get(options, "synchronous");

	return v && v->type == jbvBool && v->val.boolean;
}

/* options.batch_size, or Meraki's limit for the kind of batch. */
int
meraki_batch_size(Jsonb *options)
{
	JsonbValue *v = jb_get(options, "batch_size");

	/* check_spec made sure it is an integer in range */
	if (v && v->type == jbvNumeric)
		return (int) strtol(jb_scalar_text(v), NULL, 10);
	return meraki_synchronous(options) ? MERAKI_SYNC_BATCH_MAX : MERAKI_BATCH_MAX;
}

/* true if the spec's actions are sent as action batches */
static bool
meraki_packs(const OutboundSpec *spec)
{
	char	   *mode;

	if (strcmp(spec->driver->name, "meraki") != 0 || spec->ntargets == 0)
		return false;
	mode = jb_get_string(spec->targets[0].options, "mode");
	return mode && strcmp(mode, "action_batch") == 0;
}

/* {"actions": [...]} of the pack's member actions */
static Jsonb *
pack_action(const OutboundSpec *spec, const int *members, int n)
{
	JsonbParseState *st = NULL;
	int			i;

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < n; i++)
	{
		Jsonb	   *a = spec->targets[members[i]].action;
		JsonbValue	v;

		v.type = jbvBinary;
		v.val.binary.data = &a->root;
		v.val.binary.len = VARSIZE(a) - VARHDRSZ;
		pushJsonbValue(&st, WJB_ELEM, &v);
	}
	return outbound_jsonb_wrap("actions",
							   JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_ARRAY, NULL)));
}

/* A member's output: the batch's id, its place, what it created. */
static Jsonb *
member_output(const char *batch_id, int position, JsonbValue *created)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"action_batch_id\": ");
	escape_json(&buf, batch_id);
	appendStringInfo(&buf, ", \"position\": %d", position);
	if (created)
	{
		Jsonb	   *c = JsonbValueToJsonb(created);

		appendStringInfoString(&buf, ", \"created_resource\": ");
		(void) JsonbToCString(&buf, &c->root, VARSIZE(c));
	}
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* Wrapped hooks */

static bool
pack_skip(void *arg, int p)
{
	MerakiPack *mp = arg;
	int			i;

	if (mp->inner->skip == NULL)
		return false;
	for (i = 0; i < mp->count[p]; i++)
		if (!mp->inner->skip(mp->inner->arg, mp->members[mp->first[p] + i]))
			return false;
	return true;
}

static void
pack_mark_started(void *arg, const int *packs, int n)
{
	MerakiPack *mp = arg;
	int		   *idx;
	int			nidx = 0;
	int			total = 0;
	int			i;

	if (mp->inner->mark_started == NULL)
		return;
	for (i = 0; i < n; i++)
		total += mp->count[packs[i]];
	idx = palloc(sizeof(int) * Max(total, 1));
	for (i = 0; i < n; i++)
	{
		int			j;

		for (j = 0; j < mp->count[packs[i]]; j++)
			idx[nidx++] = mp->members[mp->first[packs[i]] + j];
	}
	mp->inner->mark_started(mp->inner->arg, idx, nidx);
	pfree(idx);
}

/* The pack's result, once per member action. */
static void
pack_result(void *arg, const OutboundResult *res)
{
	MerakiPack *mp = arg;
	int			p = res->index;
	JsonbValue *idv = jb_get(res->output, "id");
	char	   *batch_id = idv ? jb_scalar_text(idv) : NULL;
	Jsonb	   *status = jb_get_jsonb(res->output, "status");
	JsonbValue *created = res->success ? jb_get(status, "createdResources") : NULL;
	int			ncreated = 0;
	int			ncreates = 0;
	int			i;

	if (created && created->type == jbvBinary &&
		JsonContainerIsArray(created->val.binary.data))
		ncreated = JsonContainerSize(created->val.binary.data);
	for (i = 0; i < mp->count[p]; i++)
	{
		int			m = mp->members[mp->first[p] + i];
		const OutboundTarget *t = &mp->spec->targets[m];
		char	   *op = jb_get_string(t->action, "operation");
		JsonbValue *mine = NULL;
		OutboundResult r = *res;

		if (op && strcmp(op, "create") == 0 && ncreates++ < ncreated)
			mine = getIthJsonbValueFromContainer(created->val.binary.data,
												 ncreates - 1);
		r.index = m;
		r.hostname = t->hostname;
		r.output = batch_id ? member_output(batch_id, i, mine) : NULL;
		mp->inner->result(mp->inner->arg, &r);
	}
}

static void
pack_tick(void *arg)
{
	MerakiPack *mp = arg;

	mp->inner->tick(mp->inner->arg);
}

static long
pack_tick_wait(void *arg)
{
	MerakiPack *mp = arg;

	return mp->inner->tick_wait(mp->inner->arg);
}

/* Group the actions not done into packs of at most size, in order. */
static void
pack_group(MerakiPack *mp, int size)
{
	const OutboundSpec *spec = mp->spec;
	const OutboundHooks *inner = mp->inner;
	int			nmembers = 0;
	int			i;

	mp->members = palloc(sizeof(int) * spec->ntargets);
	mp->first = palloc(sizeof(int) * spec->ntargets);
	mp->count = palloc0(sizeof(int) * spec->ntargets);
	mp->npacks = 0;
	for (i = 0; i < spec->ntargets; i++)
	{
		if (inner->skip && inner->skip(inner->arg, i))
			continue;
		if (mp->npacks == 0 || mp->count[mp->npacks - 1] == size)
		{
			mp->first[mp->npacks] = nmembers;
			mp->npacks++;
		}
		mp->members[nmembers++] = i;
		mp->count[mp->npacks - 1]++;
	}
}

/*
 * The spec the engine should run, and its hooks (*outer).  Not a meraki
 * action_batch spec: the spec itself, the hooks as given.  Otherwise a
 * spec of one target per pack, whose hooks call inner per action.
 * Everything is allocated in the current memory context, which must last
 * until the engine returns.
 */
OutboundSpec *
meraki_pack_spec(OutboundSpec *spec, const OutboundHooks *inner,
				 OutboundHooks *outer)
{
	MerakiPack *mp;
	OutboundSpec *packed;
	int			p;

	*outer = *inner;
	if (!meraki_packs(spec))
		return spec;
	mp = palloc0(sizeof(MerakiPack));
	mp->spec = spec;
	mp->inner = inner;
	pack_group(mp, meraki_batch_size(spec->targets[0].options));

	packed = palloc(sizeof(OutboundSpec));
	*packed = *spec;
	packed->ntargets = mp->npacks;
	packed->targets = palloc0(sizeof(OutboundTarget) * Max(mp->npacks, 1));
	if (spec->credential_error)
		packed->credential_error = palloc0(sizeof(char *) * Max(mp->npacks, 1));
	for (p = 0; p < mp->npacks; p++)
	{
		int			lead = mp->members[mp->first[p]];
		OutboundTarget *t = &packed->targets[p];

		/* one spec is one organization: every action shares the rest */
		*t = spec->targets[lead];
		t->index = p;
		t->action = pack_action(spec, &mp->members[mp->first[p]], mp->count[p]);
		t->device = t->action;
		if (spec->credential_error)
			packed->credential_error[p] = spec->credential_error[lead];
	}

	outer->arg = mp;
	outer->skip = pack_skip;
	outer->mark_started = inner->mark_started ? pack_mark_started : NULL;
	outer->result = pack_result;
	outer->tick = inner->tick ? pack_tick : NULL;
	outer->tick_wait = inner->tick_wait ? pack_tick_wait : NULL;
	return packed;
}
