/*-------------------------------------------------------------------------
 *
 * citus_table.h
 *	  Tables whose rows Citus keeps on other nodes (citus_table.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_CITUS_TABLE_H
#define BATCH_OPS_CITUS_TABLE_H

#include "utils/elog.h"

struct ItemError;

extern bool citus_table_managed(Oid relid);
extern char **citus_table_names(Oid relid, int *nnames);
extern void citus_error_unshard(struct ItemError *err, char **names,
								int nnames);
extern char *citus_error_with_node(const char *message, const char *context);

#endif							/* BATCH_OPS_CITUS_TABLE_H */
