/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  The one checked SPI helper and the one owner/role switch of batch_ops.
 *
 * Every statement batch_ops runs on its own tables (the job tables, the
 * idempotency keys) goes through spi_exec(): a static SpiStmt handle per
 * statement, prepared on first use and kept for the session
 * (SPI_keepplan), and an error if SPI answers other than expected.
 *
 * RoleSwitch is the user-id switch for two cases:
 *	- role_switch_to_owner(): become the owner of one of the extension's
 *	  tables, as a SECURITY DEFINER function with "SET search_path =
 *	  pg_catalog, pg_temp" would; for the job tables statement_timeout and
 *	  lock_timeout are pinned to 0 too, so that a role's own settings
 *	  cannot cut bookkeeping in half (the idempotency keys keep the
 *	  caller's: a key held by another call is a lock wait of the call).
 *	- role_switch_to_submitter(): run a job's work as the role that
 *	  submitted it, as a security-restricted operation (core does the same
 *	  for REFRESH MATERIALIZED VIEW); settings the work changes are undone
 *	  by role_switch_end().
 * Both open a GUC nest level; an error unwinds them with the transaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_SPI_UTIL_H
#define BATCH_OPS_SPI_UTIL_H

#include "executor/spi.h"

#define SPI_STMT_MAX_ARGS	16

/* One statement: its text, its parameters, the result it must give. */
typedef struct SpiStmt
{
	const char *sql;
	int			expected;		/* SPI_OK_* */
	int			nargs;
	Oid			argtypes[SPI_STMT_MAX_ARGS];
	SPIPlanPtr	plan;			/* prepared and kept on first use */
} SpiStmt;

/* Run stmt (connected to SPI); returns SPI_processed. */
extern uint64 spi_exec(SpiStmt *stmt, Datum *values, const char *nulls);

/* Open a read-only cursor over stmt's rows (connected to SPI). */
extern Portal spi_cursor_open(SpiStmt *stmt, Datum *values, const char *nulls);

/* SPI_connect() that cannot be ignored. */
extern void spi_connect(void);

/* The saved identity, security context and GUC nest level of a switch. */
typedef struct RoleSwitch
{
	Oid			save_user;
	int			save_sec;
	int			nestlevel;
	bool		undo_settings;	/* false: only the pinned ones are undone */
} RoleSwitch;

/* The owner of batch_ops.<relname>; InvalidOid if missing and missing_ok. */
extern Oid	extension_table_owner(const char *relname, bool missing_ok);

extern void role_switch_to_owner(RoleSwitch *sw, Oid owner, bool pin_timeouts);
extern void role_switch_to_submitter(RoleSwitch *sw, Oid role);
extern void role_switch_end(RoleSwitch *sw);

/* role_switch_to_owner() of the job tables plus spi_connect(), and back. */
extern void job_tables_begin(RoleSwitch *sw);
extern void job_tables_end(RoleSwitch *sw);

#endif							/* BATCH_OPS_SPI_UTIL_H */
