/* batch_ops--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION batch_ops" to load this file. \quit

GRANT USAGE ON SCHEMA batch_ops TO PUBLIC;

--
-- Batch CRUD.  All SECURITY INVOKER: the caller's privileges and row-level
-- security apply to every row.  Not STRICT: a NULL target or item list is an
-- error, not a NULL answer.
--
CREATE FUNCTION batch_ops.batch_create(target regclass, items jsonb,
									   atomic boolean DEFAULT false,
									   idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_create'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.batch_create(regclass, jsonb, boolean, text) IS
'insert a JSON array of objects into target; returns {"data": [...], "errors": [...]}';

CREATE FUNCTION batch_ops.batch_update(target regclass, items jsonb,
									   atomic boolean DEFAULT false,
									   idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_update'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.batch_update(regclass, jsonb, boolean, text) IS
'update rows of target by primary key from a JSON array of objects; only the columns present change';

CREATE FUNCTION batch_ops.batch_delete(target regclass, ids jsonb,
									   atomic boolean DEFAULT false,
									   idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.batch_delete(regclass, jsonb, boolean, text) IS
'delete rows of target by primary key; returns {"deleted": n, "errors": [...]}';
