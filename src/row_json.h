/*-------------------------------------------------------------------------
 *
 * row_json.h
 *	  Turn the rows a statement returns into JSON, as to_jsonb() would.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_ROW_JSON_H
#define BATCH_OPS_ROW_JSON_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "target.h"

typedef struct RowJson RowJson;

extern RowJson *row_json_prepare(Target *target);
extern void row_json_append_select_list(RowJson *rj, StringInfo buf);
extern void row_json_from_tuple(RowJson *rj, HeapTuple tuple, TupleDesc desc,
								int first_attno, JsonbValue *out);
extern JsonbValue *json_object_from_pairs(JsonbPair *pairs, int npairs);
extern void jsonb_to_value(Jsonb *jb, JsonbValue *out);

#endif							/* BATCH_OPS_ROW_JSON_H */
