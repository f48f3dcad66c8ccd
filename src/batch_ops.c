/*-------------------------------------------------------------------------
 *
 * batch_ops.c
 *	  Module load: GUC definitions and subsystem initialisation.
 *
 * _PG_init only defines settings and calls each subsystem's init
 * function.  The batch functions themselves need no shared memory, so
 * they work whether or not the library is in shared_preload_libraries.
 *
 * The size limits are PGC_SUSET: an administrator can give a role its own
 * limit with ALTER ROLE ... SET, and the role cannot raise it itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "batch_ops.h"
#include "credential.h"
#include "drop_guard.h"
#include "idempotency.h"
#include "jobs_api.h"
#include "outbound_policy.h"
#include "ratelimit.h"

PG_MODULE_MAGIC;

int			batch_ops_max_create_items = 100;
int			batch_ops_max_update_items = 100;
int			batch_ops_max_delete_items = 1000;

/* The three size limits differ only in name, text and default. */
static void
define_size_limit(const char *name, const char *description, int *variable,
				  int boot_value)
{
	DefineCustomIntVariable(name,
							description,
							"Larger batches are refused; submit them as an async job instead.",
							variable,
							boot_value,
							0,
							1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

/* Module load: settings first, then each subsystem's init. */
void
_PG_init(void)
{
	define_size_limit("batch_ops.max_create_items",
					  "Maximum number of items in one batch_create call.",
					  &batch_ops_max_create_items, 100);
	define_size_limit("batch_ops.max_update_items",
					  "Maximum number of items in one batch_update call.",
					  &batch_ops_max_update_items, 100);
	define_size_limit("batch_ops.max_delete_items",
					  "Maximum number of ids in one batch_delete call.",
					  &batch_ops_max_delete_items, 1000);

	idempotency_init();
	ratelimit_init();
	jobs_init();
	drop_guard_init();
	credential_init();
	outbound_policy_init();

	MarkGUCPrefixReserved("batch_ops");
}
