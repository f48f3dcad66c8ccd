--
-- Async jobs: submit_batch, job(), wait_job(), cancel_job(), job_errors()
-- and the view batch_ops.jobs.
--
-- A job runs in a background worker after the submitting transaction has
-- committed; wait_job() returns once it has finished, so the results below
-- do not depend on timing.  Job ids, timestamps and pids are never shown:
-- other tests may submit jobs in the same database.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_jobs;
SET search_path = bo_jobs, public;

CREATE TABLE items (
    id   integer PRIMARY KEY,
    name text NOT NULL,
    qty  integer NOT NULL DEFAULT 0 CHECK (qty >= 0)
);

--
-- submit_batch('create'): the same per-item semantics as batch_create.
-- Good items are applied, every bad one is reported with its index.
--
SELECT batch_ops.submit_batch('create', 'items',
    '[{"id": 1, "name": "bolt"},
      {"id": 2, "name": "nut", "qty": -1},
      {"id": 3, "name": "washer", "qty": 5},
      {"id": 4},
      {"id": 5, "name": "screw", "color": "red"},
      "not an object",
      {"id": 1, "name": "bolt again"}]') AS job \gset
SELECT w->>'status' AS status, w->'progress' AS progress, w->>'kind' AS kind,
       w->>'operation' AS operation, w->>'target' AS target,
       w->'rows_done' AS rows_done, w->>'submitted_by' AS submitted_by,
       (w->'job_id')::bigint = :job AS same_id
  FROM batch_ops.wait_job(:job) AS w;
SELECT jsonb_pretty(batch_ops.job(:job)->'results');
-- job_errors() returns every error, in item order.
SELECT * FROM batch_ops.job_errors(:job);
SELECT * FROM items ORDER BY id;

--
-- update and delete jobs.
--
SELECT batch_ops.submit_batch('update', 'items',
    '[{"id": 1, "qty": 10}, {"id": 3, "qty": -5}, {"id": 99, "qty": 1}]') AS job \gset
SELECT batch_ops.wait_job(:job)->'results' AS results;
SELECT * FROM batch_ops.job_errors(:job);
SELECT batch_ops.submit_batch('delete', 'items', '[3, 42]') AS job \gset
SELECT batch_ops.wait_job(:job)->'results' AS results;
SELECT * FROM batch_ops.job_errors(:job);
SELECT * FROM items ORDER BY id;

--
-- Chunks: a job commits every chunk_size items; the indexes of errors are
-- positions in the whole list, whatever the chunk.
--
SELECT batch_ops.submit_batch('create', 'items',
    (SELECT jsonb_agg(CASE WHEN g % 4 = 0
                           THEN jsonb_build_object('id', 100 + g, 'name', 'x', 'qty', -g)
                           ELSE jsonb_build_object('id', 100 + g, 'name', 'x') END
                      ORDER BY g)
       FROM generate_series(0, 9) AS g),
    '{"chunk_size": 3}') AS job \gset
SELECT w->>'status' AS status, w->'progress' AS progress, w->'rows_done' AS rows_done,
       w->'results'->'created' AS created, w->'results'->'failed' AS failed,
       w->'results'->'errors_total' AS errors_total
  FROM batch_ops.wait_job(:job) AS w;
SELECT index, error FROM batch_ops.job_errors(:job);
SELECT count(*) FROM items WHERE id >= 100;

--
-- atomic: true runs the whole job as one transaction: if any item fails,
-- nothing is applied, the job fails, and every failing item is listed.
--
SELECT batch_ops.submit_batch('create', 'items',
    '[{"id": 200, "name": "a"}, {"id": 201, "qty": 1}, {"id": 202, "name": "c", "qty": -1}]',
    '{"atomic": true, "chunk_size": 2}') AS job \gset
SELECT w->>'status' AS status, w->>'error' AS error, w->'results'->'created' AS created,
       w->'results'->'failed' AS failed
  FROM batch_ops.wait_job(:job) AS w;
SELECT index, error FROM batch_ops.job_errors(:job);
SELECT count(*) FROM items WHERE id >= 200;
-- and without a failure it commits everything
SELECT batch_ops.submit_batch('create', 'items',
    '[{"id": 200, "name": "a"}, {"id": 201, "name": "b"}, {"id": 202, "name": "c"}]',
    '{"atomic": true, "chunk_size": 2}') AS job \gset
SELECT w->>'status' AS status, w->'results'->'created' AS created
  FROM batch_ops.wait_job(:job) AS w;
SELECT count(*) FROM items WHERE id >= 200;

--
-- The view batch_ops.jobs lists the caller's jobs (every job for a
-- superuser).
--
SELECT kind, operation, target, status, progress, rows_done, created, updated,
       deleted, failed, errors_total, error, submitted_by, options
  FROM batch_ops.jobs WHERE target = 'bo_jobs.items' ORDER BY job_id;

--
-- cancel_job(): a job cancelled before it starts never runs.  The cancel
-- takes effect when the transaction commits, like the submit.
--
BEGIN;
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 300, "name": "never"}]') AS job \gset
SELECT batch_ops.cancel_job(:job);
-- the job does not start before the submitting transaction commits
SELECT batch_ops.wait_job(:job);
ROLLBACK;
BEGIN;
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 300, "name": "never"}]') AS job \gset
SELECT batch_ops.cancel_job(:job);
COMMIT;
SELECT w->>'status' AS status, w->'results'->'created' AS created
  FROM batch_ops.wait_job(:job) AS w;
SELECT count(*) FROM items WHERE id = 300;
-- a finished job cannot be cancelled
SELECT batch_ops.cancel_job(:job);

-- A running job: every item sleeps, so wait_job's timeout passes first.
CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$;
CREATE TABLE slow (id integer PRIMARY KEY);
CREATE TRIGGER slow BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION slow_insert();
SELECT batch_ops.submit_batch('create', 'slow',
    (SELECT jsonb_agg(jsonb_build_object('id', g)) FROM generate_series(1, 2000) AS g)) AS job \gset
SELECT batch_ops.wait_job(:job, '50 ms')->>'status' IN ('queued', 'running') AS not_finished;
SELECT batch_ops.cancel_job(:job);
SELECT w->>'status' AS status, w->'results'->'created' AS created
  FROM batch_ops.wait_job(:job) AS w;
SELECT count(*) FROM slow;

--
-- A job that fails as a whole (not an item's fault) is "failed" with the
-- error; the worker goes on with the next job.
--
CREATE TABLE doomed (id integer PRIMARY KEY);
BEGIN;
SELECT batch_ops.submit_batch('create', 'doomed', '[{"id": 1}]') AS job \gset
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 400, "name": "after"}]') AS job2 \gset
DROP TABLE doomed;
COMMIT;
SELECT w->>'status' AS status, w->>'error' AS error
  FROM batch_ops.wait_job(:job) AS w;
SELECT w->>'status' AS status, w->'results'->'created' AS created
  FROM batch_ops.wait_job(:job2) AS w;

--
-- Errors of the API.
--
-- options: unknown ones are listed with the valid ones; values are checked
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"chunk": 10}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"atomic": "yes"}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"chunk_size": 0}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '[]');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"delimitr": ";"}');
-- operation, items, target
SELECT batch_ops.submit_batch('upsert', 'items', '[]');
SELECT batch_ops.submit_batch('create', 'items', '{"id": 1}');
SELECT batch_ops.submit_batch('create', 'items', NULL);
SELECT batch_ops.submit_batch(NULL, 'items', '[]');
CREATE VIEW items_view AS SELECT * FROM items;
SELECT batch_ops.submit_batch('create', 'items_view', '[]');
SELECT batch_ops.submit_batch('create', 'no_such_table', '[]');
-- sources of imports
SELECT batch_ops.submit_import('items', 'relative/path.csv');
SELECT batch_ops.submit_import('items', 'ftp://example.com/x.csv');
-- batch_ops.max_async_items
SET batch_ops.max_async_items = 3;
SELECT batch_ops.submit_batch('create', 'items', '[{}, {}, {}, {}]');
SELECT batch_ops.submit_batch('delete', 'items', '[400, 401, 402]') AS job \gset
SELECT batch_ops.wait_job(:job)->'results'->'deleted' AS deleted;
RESET batch_ops.max_async_items;
-- jobs that do not exist (or belong to someone else)
SELECT batch_ops.job(-1);
SELECT batch_ops.wait_job(-1);
SELECT batch_ops.cancel_job(-1);
SELECT * FROM batch_ops.job_errors(-1);
SELECT batch_ops.job(NULL);
-- wait_job cannot wait for a job of its own transaction, nor in a snapshot
BEGIN;
SELECT batch_ops.submit_batch('create', 'items', '[]') AS job \gset
SELECT batch_ops.wait_job(:job);
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT batch_ops.wait_job(:job2);
ROLLBACK;
-- an empty batch completes at once
SELECT batch_ops.submit_batch('create', 'items', '[]') AS job \gset
SELECT w->>'status' AS status, w->'progress' AS progress, w->'results' AS results
  FROM batch_ops.wait_job(:job) AS w;

--
-- Imports write rows as batch_create would: a file that gives a GENERATED
-- ALWAYS identity column gets a validation_error per row (COPY itself
-- would write the values), and one that leaves it out is imported.
--
CREATE TABLE always_id (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
COPY (SELECT 100 AS id, 'a' AS name UNION ALL SELECT 101, 'b') TO '/tmp/bo_jobs_always_id.csv' (FORMAT csv, HEADER);
COPY (SELECT 'c' AS name UNION ALL SELECT 'd') TO '/tmp/bo_jobs_always_name.csv' (FORMAT csv, HEADER);
SELECT batch_ops.submit_import('always_id', '/tmp/bo_jobs_always_id.csv') AS job \gset
SELECT w->>'status' AS status, w->'results'->'created' AS created, w->'results'->'failed' AS failed
  FROM batch_ops.wait_job(:job) AS w;
SELECT line, error, message FROM batch_ops.job_errors(:job);
SELECT batch_ops.submit_import('always_id', '/tmp/bo_jobs_always_name.csv') AS job \gset
SELECT w->>'status' AS status, w->'results'->'created' AS created
  FROM batch_ops.wait_job(:job) AS w;
SELECT id, name FROM always_id ORDER BY id;

--
-- batch_ops.purge() deletes finished jobs older than batch_ops.job_ttl
-- (7 days by default), with their errors, as the workers do when they
-- start; here a finished job is made to look old.
--
SHOW batch_ops.job_ttl;
SELECT batch_ops.submit_batch('create', 'items',
    '[{"id": 500, "name": "old"}, {"id": 500, "name": "dup"}]') AS job \gset
SELECT batch_ops.wait_job(:job)->>'status' AS status;
SELECT count(*) AS errors FROM batch_ops.job_errors(:job);
UPDATE batch_ops.job_queue SET finished_at = now() - interval '8 days' WHERE id = :job;
SELECT batch_ops.purge() >= 1 AS purged;
SELECT count(*) AS jobs_left FROM batch_ops.jobs WHERE job_id = :job;
SELECT count(*) AS errors_left FROM batch_ops.job_error WHERE job_id = :job;

DROP SCHEMA bo_jobs CASCADE;
