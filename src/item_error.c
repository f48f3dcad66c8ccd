/*-------------------------------------------------------------------------
 *
 * item_error.c
 *	  Decide which errors are an item's fault, and catch them.
 *
 * An error is the item's fault when retrying the same item would fail
 * the same way whatever else happens in the database: bad data (class
 * 22), a violated constraint (class 23), a privilege or row-level
 * security refusal (42501), a generated column written to (428C9), or a
 * RAISE EXCEPTION in a user trigger (P0001).  Everything else --
 * serialization failures, deadlocks, cancels, timeouts, out of memory,
 * shutdown, internal errors -- is not, and is re-thrown as the ERROR it
 * is, so that the caller's retry logic and PostgreSQL's own handling
 * still see it.  This is an allow-list: an error we have not thought of
 * propagates rather than being swallowed.
 *
 * Converting an item's own value (its type's input function, a domain's
 * CHECK) is judged the other way round: whatever the SQLSTATE -- a
 * tsquery or jsonpath syntax error (42601), an unknown relation for
 * regclass (42P01), a custom code raised by a domain's CHECK function --
 * the value is what failed, so it is the item's validation_error.  Only
 * the classes that speak of the session, the transaction or the server
 * rather than of the value (cancel, shutdown, serialization failure,
 * deadlock, out of memory, internal errors...) still propagate:
 * error_is_environmental().
 *
 * The subtransaction helpers follow exec_stmt_block() in pl_exec.c:
 * remember the memory context and resource owner, start an internal
 * subtransaction, and on error copy the error data out before rolling
 * the subtransaction back and restoring both.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "item_error.h"

/*
 * The API name of an error that is an item's fault, or NULL: the
 * allow-list described above.
 */
const char *
item_error_name(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_UNIQUE_VIOLATION:
			return ITEM_CONFLICT;
		case ERRCODE_FOREIGN_KEY_VIOLATION:
		case ERRCODE_RESTRICT_VIOLATION:
			return ITEM_REFERENCE_ERROR;
		case ERRCODE_EXCLUSION_VIOLATION:
			return ITEM_EXCLUSION;
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
			return ITEM_PERMISSION_DENIED;
		case ERRCODE_RAISE_EXCEPTION:
			return ITEM_TRIGGER_ERROR;
		case ERRCODE_GENERATED_ALWAYS:
			return ITEM_VALIDATION_ERROR;
	}

	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
			return ITEM_VALIDATION_ERROR;
	}
	return NULL;
}

/*
 * Does an error say something about the session, the transaction or the
 * server rather than about the data being worked on?  Such an error is
 * never an item's fault, whatever raised it.
 */
bool
error_is_environmental(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_CONNECTION_EXCEPTION:	/* 08 */
		case ERRCODE_INVALID_TRANSACTION_INITIATION:	/* 0B */
		case ERRCODE_INVALID_TRANSACTION_STATE:	/* 25 */
		case ERRCODE_INVALID_TRANSACTION_TERMINATION:	/* 2D */
		case ERRCODE_SAVEPOINT_EXCEPTION:	/* 3B */
		case ERRCODE_TRANSACTION_ROLLBACK:	/* 40: serialization, deadlock */
		case ERRCODE_INSUFFICIENT_RESOURCES:	/* 53: out of memory, disk */
		case ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE:	/* 55: locks */
		case ERRCODE_OPERATOR_INTERVENTION: /* 57: cancel, shutdown */
		case ERRCODE_SYSTEM_ERROR:	/* 58: I/O */
		case ERRCODE_SNAPSHOT_TOO_OLD:	/* 72 */
		case ERRCODE_CONFIG_FILE_ERROR: /* F0 */
		case ERRCODE_FDW_ERROR: /* HV: a foreign server */
		case ERRCODE_INTERNAL_ERROR:	/* XX */
			return true;
	}
	return false;
}

/*
 * An item's error made without throwing (checks made before writing);
 * the message is formatted as errmsg() formats it.
 */
ItemError *
item_error_make(const char *name, int sqlerrcode, const char *column,
				const char *fmt,...)
{
	ItemError  *err = palloc0(sizeof(ItemError));
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}

	err->name = name;
	err->sqlerrcode = sqlerrcode;
	err->message = buf.data;
	err->column = column ? pstrdup(column) : NULL;
	return err;
}

/* An item's error from a caught one; shares the ErrorData's strings. */
ItemError *
item_error_from_edata(ErrorData *edata)
{
	ItemError  *err = palloc0(sizeof(ItemError));

	err->name = item_error_name(edata->sqlerrcode);
	err->sqlerrcode = edata->sqlerrcode;
	err->message = edata->message ? edata->message : pstrdup("unknown error");
	err->detail = edata->detail;
	err->constraint = edata->constraint_name;
	err->column = edata->column_name;
	return err;
}

/* A copy in the current memory context. */
ItemError *
item_error_copy(const ItemError *err)
{
	ItemError  *copy = palloc(sizeof(ItemError));

	copy->name = err->name;
	copy->sqlerrcode = err->sqlerrcode;
	copy->message = pstrdup(err->message);
	copy->detail = err->detail ? pstrdup(err->detail) : NULL;
	copy->constraint = err->constraint ? pstrdup(err->constraint) : NULL;
	copy->column = err->column ? pstrdup(err->column) : NULL;
	return copy;
}

/* Start an internal subtransaction, remembering what its end restores. */
void
subxact_begin(Subxact *sx)
{
	sx->oldcontext = CurrentMemoryContext;
	sx->oldowner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	/* work in the caller's context, not the subtransaction's */
	MemoryContextSwitchTo(sx->oldcontext);
}

/* Commit the subtransaction; back to the caller's context and owner. */
void
subxact_commit(Subxact *sx)
{
	ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;
}

/* Undo a subtransaction that did not fail (atomic mode found item errors). */
void
subxact_rollback(Subxact *sx)
{
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;
}

/* Call from PG_CATCH: roll back, and return the error if it is the item's. */
ItemError *
subxact_abort(Subxact *sx)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(sx->oldcontext);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;

	if (item_error_name(edata->sqlerrcode) == NULL)
		ReThrowError(edata);
	return item_error_from_edata(edata);
}

/*
 * Call from PG_CATCH when the error was raised while converting an item's
 * own value: roll back, and return it as the item's validation_error
 * unless it is environmental, which is re-thrown.
 */
ItemError *
subxact_abort_value(Subxact *sx)
{
	ErrorData  *edata;
	ItemError  *err;

	MemoryContextSwitchTo(sx->oldcontext);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;

	if (error_is_environmental(edata->sqlerrcode))
		ReThrowError(edata);
	err = item_error_from_edata(edata);
	err->name = ITEM_VALIDATION_ERROR;
	return err;
}

/*
 * Call from PG_CATCH around a subtransaction that must not swallow any
 * error: roll it back, then re-throw.  An internal subtransaction left
 * open by an error would leave the caller's transaction aborted.
 */
void
subxact_abort_rethrow(Subxact *sx)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(sx->oldcontext);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;
	ReThrowError(edata);
}
