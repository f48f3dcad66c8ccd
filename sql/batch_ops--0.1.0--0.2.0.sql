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

-- The job table fits any kind of job: the kind is checked in C against
-- the kinds the library has, target and operation are checked per kind,
-- and the kind's own state moves into checkpoint and summary (jsonb).
ALTER TABLE batch_ops.job_queue
	ADD COLUMN checkpoint jsonb NOT NULL DEFAULT '{}',
	ADD COLUMN summary jsonb NOT NULL DEFAULT '{}';

UPDATE batch_ops.job_queue SET
	checkpoint = CASE kind
		WHEN 'import' THEN pg_catalog.jsonb_build_object(
			'offset', ckpt_offset, 'line', ckpt_line, 'columns', columns)
		ELSE pg_catalog.jsonb_build_object('index', ckpt_index)
	END,
	summary = pg_catalog.jsonb_build_object(
			'created', created, 'updated', updated, 'deleted', deleted, 'failed', failed)
		OPERATOR(pg_catalog.||) pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
			'bytes_total', bytes_total, 'items_total', items_total));

ALTER TABLE batch_ops.job_queue
	DROP CONSTRAINT job_queue_kind_check,
	DROP CONSTRAINT job_queue_operation_check,
	ALTER COLUMN operation DROP NOT NULL,
	ALTER COLUMN target DROP NOT NULL,
	DROP COLUMN bytes_total,
	DROP COLUMN items_total,
	DROP COLUMN created,
	DROP COLUMN updated,
	DROP COLUMN deleted,
	DROP COLUMN failed,
	DROP COLUMN ckpt_offset,
	DROP COLUMN ckpt_line,
	DROP COLUMN ckpt_index,
	DROP COLUMN columns;

COMMENT ON COLUMN batch_ops.job_queue.kind IS
'the job''s kind, by name (checked against the kinds the library has)';
COMMENT ON COLUMN batch_ops.job_queue.checkpoint IS
'the kind''s checkpoint, committed with the work before it (imports: offset, line, columns; batches: index)';
COMMENT ON COLUMN batch_ops.job_queue.summary IS
'counters (created, updated, deleted, failed) and the kind''s totals (bytes_total, items_total)';
