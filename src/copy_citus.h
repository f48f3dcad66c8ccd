/*-------------------------------------------------------------------------
 *
 * copy_citus.h
 *	  COPY's parser feeding a Citus table (copy_citus.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_COPY_CITUS_H
#define BATCH_OPS_COPY_CITUS_H

#include "commands/copy.h"
#include "utils/rel.h"

typedef struct CopyCitus
{
	int			nfields;
	AttrNumber *attnums;		/* per field: its column */
	FmgrInfo   *in;				/* per field: its column type's input */
	Oid		   *ioparams;
	int32	   *typmods;
	TupleDesc	desc;			/* the table's row type */
	Oid			rowtype;
	Oid			rowarraytype;
	char	   *sql;			/* INSERT ... SELECT FROM unnest($1) */
	bool		in_field;		/* the last error came from a field's input */
	bool		sent;			/* ... or from the INSERT, after reading */
} CopyCitus;

extern CopyCitus *copy_citus_begin(Relation rel, List *attnames);
extern void copy_citus_run(CopyCitus *cc, CopyFromState cstate, Relation rel,
						   List *range_table);

#endif							/* BATCH_OPS_COPY_CITUS_H */
