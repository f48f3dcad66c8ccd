--
-- resume_job(): a failed job back in the queue from its last checkpoint
-- (issue #13).  Errors and states; the resumed work itself (every row
-- once, no error twice) is in test/t/019_jobs_resume.pl.
--
-- Job ids and timestamps are never shown: other tests may submit jobs in
-- the same database.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_resume;
SET search_path = bo_resume, public;

CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL);
CREATE ROLE regress_bo_resume_a;
CREATE ROLE regress_bo_resume_b;
GRANT USAGE ON SCHEMA bo_resume TO regress_bo_resume_a, regress_bo_resume_b;
GRANT SELECT, INSERT ON items TO regress_bo_resume_a;

-- resume_job(job) as the current role: the answer's status, or the error
-- with the job's id written N
CREATE FUNCTION try_resume(job bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN batch_ops.resume_job(job)->>'status';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	RETURN concat_ws(E'\n', st || ': ' || replace(msg, job::text, 'N'),
					 'DETAIL: ' || nullif(det, ''), 'HINT: ' || nullif(hnt, ''));
END
$$;

-- a NULL id, an id that was never used
SELECT batch_ops.resume_job(NULL);
SELECT batch_ops.resume_job(-1);

--
-- A transient failure: an import from a server file, run after its
-- submitter left pg_read_server_files (the job checks again when it runs).
-- Back in the role, the submitter resumes it and it completes.
--
\set csv '/tmp/bo_jobs_resume.csv'
COPY (SELECT i AS id, 'n' || i AS name FROM generate_series(1, 5) i) TO :'csv' WITH (FORMAT csv, HEADER);
GRANT pg_read_server_files TO regress_bo_resume_a;
BEGIN;
SET LOCAL ROLE regress_bo_resume_a;
SELECT batch_ops.submit_import('items', :'csv') AS job \gset
RESET ROLE;
REVOKE pg_read_server_files FROM regress_bo_resume_a;
COMMIT;
SELECT w->>'status' AS status, w->>'error' AS error, w->'results' AS results
  FROM batch_ops.wait_job(:job) w;

-- another role: the same answer as for a job that does not exist
SET ROLE regress_bo_resume_b;
SELECT try_resume(:job);
RESET ROLE;

GRANT pg_read_server_files TO regress_bo_resume_a;
SET ROLE regress_bo_resume_a;
SELECT r->>'status' AS status, r->>'error' AS error, r->'resumed' AS resumed,
       r->'finished_at' AS finished_at
  FROM batch_ops.resume_job(:job) r;
RESET ROLE;
SELECT w->>'status' AS status, w->>'error' AS error, w->'resumed' AS resumed,
       w->'results' AS results
  FROM batch_ops.wait_job(:job) w;
SELECT * FROM items ORDER BY id;
SELECT attempts FROM batch_ops.job_queue WHERE id = :job;

-- a completed job is not resumable: 55000, its state in the detail
SELECT try_resume(:job);

-- a job never resumed has no "resumed"
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 6, "name": "six"}]') AS job2 \gset
SELECT w->>'status' AS status, w ? 'resumed' AS has_resumed FROM batch_ops.wait_job(:job2) w;

-- a cancelled job stays cancelled
BEGIN;
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 7, "name": "seven"}]') AS job3 \gset
SELECT batch_ops.cancel_job(:job3);
COMMIT;
SELECT try_resume(:job3);

-- a queued job (submitted in this transaction, so it has not started)
BEGIN;
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 8, "name": "eight"}]') AS job4 \gset
SELECT try_resume(:job4);
ROLLBACK;

-- a failed atomic job applied nothing: submit it again
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 9, "name": "nine"}, {"id": 1}]',
                              '{"atomic": true}') AS job5 \gset
SELECT w->>'status' AS status, w->>'error' AS error FROM batch_ops.wait_job(:job5) w;
SELECT try_resume(:job5);
SELECT status FROM batch_ops.jobs WHERE job_id = :job5;

DROP SCHEMA bo_resume CASCADE;
DROP ROLE regress_bo_resume_a;
DROP ROLE regress_bo_resume_b;
