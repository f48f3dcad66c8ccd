-- batch_ops 0.1.0 -> 0.2.0
--
-- Run by ALTER EXTENSION batch_ops UPDATE.  Every change to the install
-- script (sql/batch_ops.sql) since 0.1.0 has its counterpart here, so that
-- an updated database and a fresh one have the same objects; the upgrade
-- test compares them.

\echo Use "ALTER EXTENSION batch_ops UPDATE TO '0.2.0'" to load this file. \quit

-- The C symbols of the batch functions carry the module's prefix
-- (batch_ops_create, ...): the library is built with hidden visibility
-- and exports only its entry points.
CREATE OR REPLACE FUNCTION batch_ops.batch_create(target regclass, items jsonb,
												  atomic boolean DEFAULT false,
												  idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_create'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE OR REPLACE FUNCTION batch_ops.batch_update(target regclass, items jsonb,
												  atomic boolean DEFAULT false,
												  idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_update'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE OR REPLACE FUNCTION batch_ops.batch_delete(target regclass, ids jsonb,
												  atomic boolean DEFAULT false,
												  idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE OR REPLACE FUNCTION batch_ops.rate_limit_status()
RETURNS TABLE (role name, tokens float8, rate int, burst int)
AS 'MODULE_PATHNAME', 'batch_ops_rate_limit_status'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 1;
