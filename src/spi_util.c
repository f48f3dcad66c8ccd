/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Checked SPI with kept plans; the owner/role switch (see spi_util.h).
 *
 * Plans are kept per statement handle, not per call: the statements are
 * fixed texts, their names schema-qualified (sql_quote.h), and the plan
 * cache re-plans them if a table they use is re-created.  The switch to a
 * table's owner pins search_path, so the plans see the same path each
 * time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "spi_util.h"

/* Prepare and keep stmt's plan the first time it runs in this session. */
static SPIPlanPtr
stmt_plan(SpiStmt *stmt)
{
	if (stmt->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(stmt->sql, stmt->nargs, stmt->argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 stmt->sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		stmt->plan = plan;
	}
	return stmt->plan;
}

/* Run a kept statement; an unexpected result is a bug, so elog. */
uint64
spi_exec(SpiStmt *stmt, Datum *values, const char *nulls)
{
	int			rc = SPI_execute_plan(stmt_plan(stmt), values, nulls, false, 0);

	if (rc != stmt->expected)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 stmt->sql, SPI_result_code_string(rc));
	return SPI_processed;
}

/* A cursor for a set-returning function that copies rows in batches. */
Portal
spi_cursor_open(SpiStmt *stmt, Datum *values, const char *nulls)
{
	return SPI_cursor_open(NULL, stmt_plan(stmt), values, nulls, true);
}

/* SPI_connect() whose failure cannot be ignored. */
void
spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * Look the table up by name in the extension's schema, not on
 * search_path: the caller's path is not to be trusted.
 */
Oid
extension_table_owner(const char *relname, bool missing_ok)
{
	Oid			nsp = get_namespace_oid("batch_ops", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
	{
		if (missing_ok)
			return InvalidOid;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"batch_ops.%s\" does not exist", relname),
				 errhint("Run CREATE EXTENSION batch_ops in this database.")));
	}
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Set a setting until the switch's GUC nest level is unwound. */
static void
pin_setting(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Become the owner with the settings a SECURITY DEFINER function would
 * pin, so that names resolve in pg_catalog whatever the caller's (or a
 * worker's database's) search_path says.  pin_timeouts: a job's
 * bookkeeping must not be cut short by a role's timeouts; a batch
 * function's idempotency key wait must honour the caller's lock_timeout.
 */
void
role_switch_to_owner(RoleSwitch *sw, Oid owner, bool pin_timeouts)
{
	GetUserIdAndSecContext(&sw->save_user, &sw->save_sec);
	SetUserIdAndSecContext(owner, sw->save_sec | SECURITY_LOCAL_USERID_CHANGE);
	sw->nestlevel = NewGUCNestLevel();
	sw->undo_settings = false;
	pin_setting("search_path", "pg_catalog, pg_temp");
	if (pin_timeouts)
	{
		pin_setting("statement_timeout", "0");
		pin_setting("lock_timeout", "0");
	}
}

/*
 * Run work as the submitting role: it cannot change the role back (SET
 * ROLE, SET SESSION AUTHORIZATION), create temporary objects, LISTEN or
 * keep cursors past the switch, so it leaves nothing in the session.
 */
void
role_switch_to_submitter(RoleSwitch *sw, Oid role)
{
	GetUserIdAndSecContext(&sw->save_user, &sw->save_sec);
	SetUserIdAndSecContext(role, sw->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	sw->nestlevel = NewGUCNestLevel();
	sw->undo_settings = true;
}

/* Undo a switch: the submitter's setting changes too, the owner's pins. */
void
role_switch_end(RoleSwitch *sw)
{
	AtEOXact_GUC(!sw->undo_settings, sw->nestlevel);
	SetUserIdAndSecContext(sw->save_user, sw->save_sec);
}

/* The usual pair around a statement on the job tables. */
void
job_tables_begin(RoleSwitch *sw)
{
	role_switch_to_owner(sw, extension_table_owner("job_queue", false), true);
	spi_connect();
}

void
job_tables_end(RoleSwitch *sw)
{
	SPI_finish();
	role_switch_end(sw);
}
