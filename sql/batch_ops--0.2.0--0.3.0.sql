-- batch_ops 0.2.0 -> 0.3.0
--
-- Run by ALTER EXTENSION batch_ops UPDATE.  Every change to the install
-- script (sql/batch_ops.sql) since 0.2.0 has its counterpart here, so that
-- an updated database and a fresh one have the same objects; the upgrade
-- test compares them.

\echo Use "ALTER EXTENSION batch_ops UPDATE TO '0.3.0'" to load this file. \quit

-- ====================================================================
-- Outbound batches: the engine, the job kind and the SQL API (issue #10
-- items 3 and 5).  A job's per-target results and its sealed inline
-- secrets live in tables PUBLIC cannot read; outbound_results() shows a
-- role its own jobs' results only.
-- ====================================================================

CREATE TABLE batch_ops.outbound_result (
	job_id         bigint NOT NULL REFERENCES batch_ops.job_queue ON DELETE CASCADE,
	index          integer NOT NULL,
	hostname       text NOT NULL,
	success        boolean,
	status_code    integer,
	output         jsonb,
	error          text,
	message        text,
	attempts       integer NOT NULL DEFAULT 0,
	execution_time float8,
	started_at     timestamptz,
	finished_at    timestamptz,
	PRIMARY KEY (job_id, index)
);

COMMENT ON TABLE batch_ops.outbound_result IS
'one row per target of an outbound job; a row without finished_at marks a change that was about to be sent';

CREATE TABLE batch_ops.outbound_secret (
	job_id bigint NOT NULL REFERENCES batch_ops.job_queue ON DELETE CASCADE,
	index  integer NOT NULL,
	sealed bytea NOT NULL,
	PRIMARY KEY (job_id, index)
);

COMMENT ON TABLE batch_ops.outbound_secret IS
'inline passwords of outbound jobs, encrypted under the credential key, deleted when the job ends';

REVOKE ALL ON batch_ops.outbound_result, batch_ops.outbound_secret FROM PUBLIC;

CREATE FUNCTION batch_ops.submit_outbound(spec jsonb, idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'batch_ops_submit_outbound'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.submit_outbound(jsonb, text) IS
'queue an outbound batch (one request per device or action); returns the job id';

CREATE FUNCTION batch_ops.run_outbound(spec jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_run_outbound'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.run_outbound(jsonb) IS
'run an outbound batch of up to batch_ops.max_sync_targets targets now and return its results';

CREATE FUNCTION batch_ops.outbound_results(job_id bigint)
RETURNS TABLE (index integer, hostname text, success boolean, status_code integer,
               output jsonb, error text, message text, attempts integer,
               execution_time float8, started_at timestamptz, finished_at timestamptz)
AS 'MODULE_PATHNAME', 'batch_ops_outbound_results'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100;

COMMENT ON FUNCTION batch_ops.outbound_results(bigint) IS
'every target''s result of one of the caller''s outbound jobs, by index';
