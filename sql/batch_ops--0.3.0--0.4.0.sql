-- batch_ops 0.3.0 -> 0.4.0
--
-- Run by ALTER EXTENSION batch_ops UPDATE.  Every change to the install
-- script (sql/batch_ops.sql) since 0.3.0 has its counterpart here, so that
-- an updated database and a fresh one have the same objects; the upgrade
-- test compares them.

\echo Use "ALTER EXTENSION batch_ops UPDATE TO '0.4.0'" to load this file. \quit

-- resume_job (issue #13): a failed job back in the queue from its last
-- checkpoint.  SECURITY INVOKER like every other job function; the
-- caller's own jobs only (jobs_api.c).
CREATE FUNCTION batch_ops.resume_job(job_id bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_resume_job'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.resume_job(bigint) IS
'put a failed job back in the queue from its last checkpoint; return job(job_id)';
