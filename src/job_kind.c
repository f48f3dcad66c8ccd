/*-------------------------------------------------------------------------
 *
 * job_kind.c
 *	  The registry of job kinds: a static table looked up by name.
 *
 * This is the only file that knows which kinds exist.  Adding a kind is
 * its file and one line below.  The table holds pointers to constant
 * structs in this library, so a name read from a row can only ever
 * select code that was compiled in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "job_kind.h"

extern const JobKind import_job_kind;	/* kind_import.c */
extern const JobKind batch_job_kind;	/* kind_batch.c */
extern const JobKind outbound_job_kind; /* kind_outbound.c */
extern const JobKind action_batch_job_kind; /* kind_action_batch.c */
extern const JobKind sleep_job_kind;	/* test/kinds/kind_sleep.c, make TEST_MODULES=1 */

static const JobKind *const job_kinds[] = {
	&import_job_kind,
	&batch_job_kind,
	&outbound_job_kind,
	&action_batch_job_kind,
#ifdef BATCH_OPS_TEST_KINDS
	&sleep_job_kind,
#endif
};

/* The kind a row names; NULL if this build has none (the job then fails). */
const JobKind *
job_kind_lookup(const char *name)
{
	int			i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < lengthof(job_kinds); i++)
		if (strcmp(job_kinds[i]->name, name) == 0)
			return job_kinds[i];
	return NULL;
}

/* Each kind's settings, from _PG_init. */
void
job_kinds_init(void)
{
	int			i;

	for (i = 0; i < lengthof(job_kinds); i++)
		if (job_kinds[i]->init)
			job_kinds[i]->init();
}

/* Each kind's purge, for batch_ops.purge(). */
int64
job_kinds_purge(void)
{
	int64		n = 0;
	int			i;

	for (i = 0; i < lengthof(job_kinds); i++)
		if (job_kinds[i]->purge)
			n += job_kinds[i]->purge();
	return n;
}

/*
 * resume_job()'s check on a failed job: its kind resumes failed jobs and
 * the job is not atomic (a failed atomic job applied nothing, while its
 * checkpoint may be at the end of its input: starting over is a new
 * submit).
 */
void
job_kind_check_resume(const char *name, bool atomic)
{
	const JobKind *kind = job_kind_lookup(name);

	if (kind == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a job of kind \"%s\" cannot be resumed", name),
				 errdetail("This build of batch_ops has no such kind of job.")));
	if (!kind->can_resume)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a job of kind \"%s\" cannot be resumed", name),
				 kind->resume_hint ? errhint("%s", kind->resume_hint) : 0));
	if (atomic)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an atomic job cannot be resumed"),
				 errdetail("A failed atomic job applied nothing."),
				 errhint("Submit it again.")));
}
