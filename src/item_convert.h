/*-------------------------------------------------------------------------
 *
 * item_convert.h
 *	  Convert JSON item values to column values.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_ITEM_CONVERT_H
#define BATCH_OPS_ITEM_CONVERT_H

#include "fmgr.h"
#include "utils/jsonb.h"

#include "item_error.h"

typedef struct ColumnInput
{
	bool		ready;
	Oid			base_type;		/* the type the value is read as */
	int32		base_typmod;
	Oid			domain_type;	/* the column's domain, or InvalidOid */
	void	   *domain_extra;	/* domain_check() cache */
	bool		is_jsonb;
	bool		is_json;
	bool		is_array;
	FmgrInfo	infunc;
	Oid			ioparam;
	MemoryContext mcxt;			/* where the caches live */
} ColumnInput;

extern void column_input_init(ColumnInput *input, Oid typid, int32 typmod,
							  MemoryContext mcxt);
extern ItemError *column_input_value(ColumnInput *input, const char *colname,
									 JsonbValue *value,
									 Datum *datum, bool *isnull);
extern void column_input_field(ColumnInput *input, const char *text,
							   Datum *datum, bool *isnull);

#endif							/* BATCH_OPS_ITEM_CONVERT_H */
