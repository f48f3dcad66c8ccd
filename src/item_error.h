/*-------------------------------------------------------------------------
 *
 * item_error.h
 *	  Per-item errors: classification and the subtransaction envelope.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_ITEM_ERROR_H
#define BATCH_OPS_ITEM_ERROR_H

#include "utils/elog.h"
#include "utils/palloc.h"
#include "utils/resowner.h"

/* Stable error names of the API (README.md, "Error names"). */
#define ITEM_VALIDATION_ERROR	"validation_error"
#define ITEM_CONFLICT			"conflict"
#define ITEM_REFERENCE_ERROR	"reference_error"
#define ITEM_EXCLUSION			"exclusion_violation"
#define ITEM_NOT_FOUND			"not_found"
#define ITEM_PERMISSION_DENIED	"permission_denied"
#define ITEM_INVALID			"invalid_item"
#define ITEM_TRIGGER_ERROR		"trigger_error"

typedef struct ItemError
{
	const char *name;			/* one of the names above */
	int			sqlerrcode;
	char	   *message;
	char	   *detail;			/* may be NULL */
	char	   *constraint;		/* may be NULL */
	char	   *column;			/* may be NULL */
} ItemError;

extern const char *item_error_name(int sqlerrcode);
extern bool error_is_environmental(int sqlerrcode);
extern ItemError *item_error_make(const char *name, int sqlerrcode,
								  const char *column,
								  const char *fmt,...) pg_attribute_printf(4, 5);
extern ItemError *item_error_from_edata(ErrorData *edata);
extern ItemError *item_error_copy(const ItemError *err);

/*
 * The subtransaction envelope of PL/pgSQL's exec_stmt_block, in three
 * parts as PL/Python has it.  subxact_abort() returns the error as an
 * ItemError when it is the item's fault, and re-throws it otherwise;
 * subxact_abort_value() does the same for an error raised while
 * converting an item's value, which is the item's unless it is
 * environmental.
 */
typedef struct Subxact
{
	MemoryContext oldcontext;
	ResourceOwner oldowner;
} Subxact;

extern void subxact_begin(Subxact *sx);
extern void subxact_commit(Subxact *sx);
extern void subxact_rollback(Subxact *sx);
extern ItemError *subxact_abort(Subxact *sx);
extern ItemError *subxact_abort_value(Subxact *sx);
extern void subxact_abort_rethrow(Subxact *sx) pg_attribute_noreturn();

#endif							/* BATCH_OPS_ITEM_ERROR_H */
