\unset ECHO
-- pgTAP: who may do what with async jobs.
--
-- Jobs run in a background worker after the submitting transaction has
-- committed (a job submitted in a transaction that rolls back never
-- starts), so a suite that runs in one transaction can only test what is
-- checked at submit time.  This file has three parts:
--
--   1. set-up, committed: three roles (alice, bob, carol), a schema with
--      three tables, and six jobs: one of alice's and one of bob's; one of
--      alice's into a table with row-level security; one of alice's into a
--      table whose INSERT privilege is revoked before the jobs start (in the
--      same transaction as the submit, so the job runs without it); two
--      imports of carol's, a server file and a URL, submitted while she is
--      a member of pg_read_server_files and batch_ops_fetch and run after
--      both memberships are revoked (README: "checked at submit time and
--      again when the job runs").  If anything fails here, psql stops and
--      the transaction is rolled back: nothing is left.
--   2. the tests, in one transaction that is rolled back: they wait for the
--      committed jobs (wait_job, as a superuser) and check what each role
--      sees of them; everything else they need (more roles, tables, jobs
--      that must never start) is created in this transaction and vanishes
--      with it.  ON_ERROR_STOP is off for this part only, so that an
--      unexpected error cannot skip part 3 (pg_prove then reports a bad
--      plan: fewer tests ran than planned).
--   3. clean-up, committed: the jobs of the three roles, the schema, the
--      roles, and the extension when this file created it.  Leftovers of an
--      interrupted run (psql killed) are removed before part 1.
--
-- Statements are run as a role by regress_bo_tap_jobs.as_role() and
-- try_as(), which SET LOCAL ROLE inside a function: pgTAP's own
-- bookkeeping (temporary tables of the session user) stays with the
-- superuser, and an error inside undoes the SET ROLE with the
-- subtransaction it aborts.  current_user is then the role and
-- superuser() is false, as for a role that logged in.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
-- pg_regress sets PGDATESTYLE, PGINTERVALSTYLE and PGTZ for its sessions;
-- these checks print values in the styles of test/regress.conf's server.
SET datestyle = 'ISO, MDY';
SET intervalstyle = postgres;
SET timezone = 'UTC';

-- ---------------------------------------------------------------- 0. leftovers
\set ON_ERROR_STOP 1
DO $$
BEGIN
    IF to_regclass('batch_ops.job_queue') IS NOT NULL THEN
        DELETE FROM batch_ops.job_queue
         WHERE role IN (SELECT oid FROM pg_roles
                         WHERE rolname IN ('regress_bo_tap_jp_alice', 'regress_bo_tap_jp_bob',
                                           'regress_bo_tap_jp_carol'));
    END IF;
END $$;
-- this file drops the extension at the end when it created it; a leftover
-- schema says whether an interrupted run did
SELECT NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'batch_ops')
       OR coalesce(obj_description(to_regnamespace('regress_bo_tap_jobs'), 'pg_namespace')
                   = 'regress_bo_tap: batch_ops created here', false)
       AS bo_tap_drop_extension \gset
DROP SCHEMA IF EXISTS regress_bo_tap_jobs CASCADE;
DROP ROLE IF EXISTS regress_bo_tap_jp_alice, regress_bo_tap_jp_bob, regress_bo_tap_jp_carol,
    regress_bo_tap_jp_reader, regress_bo_tap_jp_fetcher;

-- ---------------------------------------------------------------- 1. committed set-up
BEGIN;
CREATE EXTENSION IF NOT EXISTS batch_ops;
CREATE ROLE regress_bo_tap_jp_alice;
CREATE ROLE regress_bo_tap_jp_bob;
CREATE ROLE regress_bo_tap_jp_carol IN ROLE pg_read_server_files, batch_ops_fetch;
CREATE SCHEMA regress_bo_tap_jobs;
\if :bo_tap_drop_extension
COMMENT ON SCHEMA regress_bo_tap_jobs IS 'regress_bo_tap: batch_ops created here';
\endif
GRANT USAGE ON SCHEMA regress_bo_tap_jobs
    TO regress_bo_tap_jp_alice, regress_bo_tap_jp_bob, regress_bo_tap_jp_carol;
-- who: the role a row was written as (a job runs as the role that submitted it)
CREATE TABLE regress_bo_tap_jobs.items (
    id   integer PRIMARY KEY,
    name text NOT NULL,
    who  name NOT NULL DEFAULT current_user,
    sess name NOT NULL DEFAULT session_user
);
GRANT SELECT, INSERT ON regress_bo_tap_jobs.items
    TO regress_bo_tap_jp_alice, regress_bo_tap_jp_bob, regress_bo_tap_jp_carol;
CREATE TABLE regress_bo_tap_jobs.revoked (id integer PRIMARY KEY, name text);
GRANT SELECT, INSERT ON regress_bo_tap_jobs.revoked TO regress_bo_tap_jp_alice;
CREATE TABLE regress_bo_tap_jobs.docs (
    id    integer PRIMARY KEY,
    owner name NOT NULL DEFAULT current_user
);
ALTER TABLE regress_bo_tap_jobs.docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON regress_bo_tap_jobs.docs
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT, INSERT ON regress_bo_tap_jobs.docs TO regress_bo_tap_jp_alice;

SET ROLE regress_bo_tap_jp_alice;
SELECT batch_ops.submit_batch('create', 'regress_bo_tap_jobs.items',
                              '[{"id": 1, "name": "alice"}, {"id": 2}]') AS alice_job \gset
SELECT batch_ops.submit_batch('create', 'regress_bo_tap_jobs.revoked',
                              '[{"id": 1, "name": "x"}]') AS revoked_job \gset
SELECT batch_ops.submit_batch('create', 'regress_bo_tap_jobs.docs',
                              '[{"id": 1}, {"id": 2, "owner": "regress_bo_tap_jp_bob"}]') AS rls_job \gset
RESET ROLE;
SET ROLE regress_bo_tap_jp_carol;
SELECT batch_ops.submit_import('regress_bo_tap_jobs.items',
                               '/nonexistent/regress_bo_tap_jp.csv') AS carol_file_job \gset
SELECT batch_ops.submit_import('regress_bo_tap_jobs.items',
                               'http://127.0.0.1:9/regress_bo_tap_jp.csv') AS carol_url_job \gset
RESET ROLE;
SET ROLE regress_bo_tap_jp_bob;
SELECT batch_ops.submit_batch('create', 'regress_bo_tap_jobs.items',
                              '[{"id": 10, "name": "bob"}, {"id": 10, "name": "dup"}]') AS bob_job \gset
RESET ROLE;
-- submitted with these privileges, run without them
REVOKE INSERT ON regress_bo_tap_jobs.revoked FROM regress_bo_tap_jp_alice;
REVOKE pg_read_server_files, batch_ops_fetch FROM regress_bo_tap_jp_carol;
COMMIT;

-- ---------------------------------------------------------------- 2. the tests
\set ON_ERROR_STOP 0
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;

SELECT plan(78);

-- Run stmt as regress_bo_tap_jp_<r>; its first column, as text.
CREATE FUNCTION regress_bo_tap_jobs.as_role(r text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', 'regress_bo_tap_jp_' || r);
    EXECUTE stmt INTO result;
    RESET ROLE;
    RETURN result;
END $$;
-- The statement that runs stmt as r (for throws_ok and lives_ok).
CREATE FUNCTION regress_bo_tap_jobs.sql_as(r text, stmt text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('SELECT regress_bo_tap_jobs.as_role(%L, %L)', r, stmt) $$;
-- Run stmt as r: NULL when it succeeds, else its error, all of it:
-- "SQLSTATE: message (detail: ...; hint: ...)".
CREATE FUNCTION regress_bo_tap_jobs.try_as(r text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    det text;
    hnt text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', 'regress_bo_tap_jp_' || r);
    EXECUTE stmt;
    RESET ROLE;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    RETURN format('%s: %s (detail: %s; hint: %s)', st, msg, det, hnt);
END $$;
-- The SQLSTATE stmt ends with as r ('00000': it succeeded).
CREATE FUNCTION regress_bo_tap_jobs.code_as(r text, stmt text) RETURNS text
LANGUAGE sql AS $$ SELECT coalesce(left(regress_bo_tap_jobs.try_as(r, stmt), 5), '00000') $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA regress_bo_tap_jobs TO PUBLIC;

-- ------------------------------------------------ the committed jobs have run
-- (as a superuser, who sees every job)
SELECT is(batch_ops.wait_job(:alice_job, '30 s')->>'status', 'completed', 'alice''s job has run');
SELECT is(batch_ops.wait_job(:bob_job, '30 s')->>'status', 'completed', 'bob''s job has run');
SELECT is(batch_ops.wait_job(:revoked_job, '30 s')->>'status', 'completed',
          'alice''s job into the table she lost INSERT on has run');
SELECT is(batch_ops.wait_job(:rls_job, '30 s')->>'status', 'completed',
          'alice''s job into the table with row-level security has run');
SELECT is(batch_ops.wait_job(:carol_file_job, '30 s')->>'status', 'failed',
          'carol''s file import, run after she left pg_read_server_files, has failed');
SELECT is(batch_ops.wait_job(:carol_url_job, '30 s')->>'status', 'failed',
          'carol''s URL import, run after she left batch_ops_fetch, has failed');
-- Jobs run as the role that submitted them, not as the worker's superuser.
SELECT is((SELECT array_agg(ARRAY[who, sess]::text[] ORDER BY id) FROM regress_bo_tap_jobs.items),
          ARRAY[ARRAY['regress_bo_tap_jp_alice', 'regress_bo_tap_jp_alice'],
                ARRAY['regress_bo_tap_jp_bob', 'regress_bo_tap_jp_bob']]::text[],
          'each job wrote its rows as its own role (current_user and session_user)');

-- ------------------------------------------------ a role sees only its own jobs
SELECT is(regress_bo_tap_jobs.as_role('alice',
              'SELECT string_agg(job_id::text, '','' ORDER BY job_id) FROM batch_ops.jobs'),
          format('%s,%s,%s', :alice_job, :revoked_job, :rls_job),
          'batch_ops.jobs shows alice her three jobs and nothing else');
SELECT is(regress_bo_tap_jobs.as_role('bob',
              'SELECT string_agg(job_id::text, '','' ORDER BY job_id) FROM batch_ops.jobs'),
          :'bob_job', 'batch_ops.jobs shows bob his job and nothing else');
SELECT is(regress_bo_tap_jobs.as_role('alice',
              'SELECT string_agg(job_id::text, '','' ORDER BY job_id) FROM batch_ops.job_list()'),
          format('%s,%s,%s', :alice_job, :revoked_job, :rls_job),
          'so does job_list() called directly');
SELECT is(regress_bo_tap_jobs.as_role('bob',
              format('SELECT batch_ops.job(%s)->>''submitted_by''', :bob_job)),
          'regress_bo_tap_jp_bob', 'bob can look at his own job');
SELECT is(regress_bo_tap_jobs.as_role('bob',
              format('SELECT string_agg(error, '','') FROM batch_ops.job_errors(%s)', :bob_job)),
          'conflict', 'and at its errors');
SELECT is(regress_bo_tap_jobs.as_role('bob',
              format('SELECT batch_ops.wait_job(%s, ''1 s'')->>''status''', :bob_job)),
          'completed', 'and wait for it');

-- Someone else's job is a job that does not exist (expected/jobs.out:
-- "job -1 does not exist", SQLSTATE 42704).
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice', format('SELECT batch_ops.job(%s)', :bob_job)),
                 '42704', format('job %s does not exist', :bob_job),
                 'alice cannot look at bob''s job: job() says it does not exist');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice',
                     format('SELECT count(*) FROM batch_ops.job_errors(%s)', :bob_job)),
                 '42704', format('job %s does not exist', :bob_job),
                 'nor at its errors: job_errors() says it does not exist');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice',
                     format('SELECT batch_ops.wait_job(%s, ''30 s'')', :bob_job)),
                 '42704', format('job %s does not exist', :bob_job),
                 'nor wait for it: wait_job() says it does not exist');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice', format('SELECT batch_ops.cancel_job(%s)', :bob_job)),
                 '42704', format('job %s does not exist', :bob_job),
                 'nor cancel it: cancel_job() says it does not exist');
-- ... with the same error, detail and hint as for a job id that was never
-- used: nothing tells "someone else's" from "none".
SELECT is(replace(regress_bo_tap_jobs.try_as('alice', format('SELECT batch_ops.%s(%s)', f, :bob_job)),
                  :'bob_job', 'N'),
          replace(regress_bo_tap_jobs.try_as('alice', format('SELECT batch_ops.%s(-1)', f)), '-1', 'N'),
          format('%s() on bob''s job fails exactly as on a job that does not exist', f))
  FROM unnest(ARRAY['job', 'job_errors', 'wait_job', 'cancel_job', 'resume_job']) AS u(f);

-- A failed job (carol's import from a file, which she may no longer read):
-- alice cannot resume it, and it stays failed.
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice', format('SELECT batch_ops.resume_job(%s)', :carol_file_job)),
                 '42704', format('job %s does not exist', :carol_file_job),
                 'alice cannot resume carol''s failed job: resume_job() says it does not exist');
SELECT is((SELECT ARRAY[status, attempts::text] FROM batch_ops.job_queue WHERE id = :carol_file_job),
          ARRAY['failed', '1'], 'carol''s job is still failed, after one attempt');

-- A queued job (bob's, submitted in this transaction, so it never starts):
-- alice's cancel_job() fails and changes nothing.
SELECT regress_bo_tap_jobs.as_role('bob',
           $$SELECT batch_ops.submit_batch('create', 'regress_bo_tap_jobs.items', '[{"id": 11, "name": "q"}]')$$)
       AS bob_queued \gset
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice', format('SELECT batch_ops.cancel_job(%s)', :bob_queued)),
                 '42704', format('job %s does not exist', :bob_queued),
                 'alice cannot cancel bob''s queued job');
SELECT is((SELECT ARRAY[status, cancel_requested::text] FROM batch_ops.job_queue WHERE id = :bob_queued),
          ARRAY['queued', 'false'], 'bob''s job is still queued, and no cancel was requested');

-- A superuser sees every job.
SELECT is(ARRAY(SELECT job_id FROM batch_ops.jobs
                 WHERE job_id IN (:alice_job, :revoked_job, :rls_job, :bob_job, :carol_file_job,
                                  :carol_url_job, :bob_queued)
                 ORDER BY job_id),
          ARRAY(SELECT unnest(ARRAY[:alice_job, :revoked_job, :rls_job, :bob_job, :carol_file_job,
                                    :carol_url_job, :bob_queued]::bigint[]) ORDER BY 1),
          'a superuser sees the jobs of every role in batch_ops.jobs');
SELECT is(batch_ops.job(:bob_job)->>'submitted_by', 'regress_bo_tap_jp_bob',
          'a superuser can look at bob''s job');
SELECT is((SELECT count(*) FROM batch_ops.job_errors(:alice_job)), 1::bigint,
          'and at alice''s job''s errors');

-- ------------------------------------------------ the job tables themselves
SELECT is(regress_bo_tap_jobs.code_as('alice', s), '42501', d)
  FROM (VALUES
    ('SELECT count(*) FROM batch_ops.job_queue', 'alice cannot read batch_ops.job_queue'),
    ('SELECT count(*) FROM batch_ops.job_error', 'nor batch_ops.job_error'),
    ('SELECT count(*) FROM batch_ops.job_item', 'nor batch_ops.job_item'),
    (format('INSERT INTO batch_ops.job_queue (role, kind, operation, target) '
            'VALUES (%s, ''batch'', ''create'', ''regress_bo_tap_jobs.items''::regclass)',
            'regress_bo_tap_jp_bob'::regrole::oid),
         'alice cannot queue a job in bob''s name by writing job_queue'),
    (format('UPDATE batch_ops.job_queue SET status = ''cancelled'' WHERE id = %s', :bob_queued),
         'nor update job_queue'),
    (format('DELETE FROM batch_ops.job_queue WHERE id = %s', :bob_job), 'nor delete from job_queue'),
    ('TRUNCATE batch_ops.job_queue', 'nor truncate job_queue'),
    (format('INSERT INTO batch_ops.job_error (job_id, pos, error) VALUES (%s, 99, ''x'')', :bob_job),
         'nor write job_error'),
    ('UPDATE batch_ops.job_error SET message = NULL', 'nor update job_error'),
    ('DELETE FROM batch_ops.job_error', 'nor delete from job_error'),
    (format('INSERT INTO batch_ops.job_item (job_id, idx, item) VALUES (%s, 99, ''{}'')', :bob_queued),
         'nor add items to a job through job_item'),
    ('UPDATE batch_ops.job_item SET item = ''{}''', 'nor change the items of a queued job'),
    ('DELETE FROM batch_ops.job_item', 'nor delete from job_item'),
    ('SELECT nextval(''batch_ops.job_queue_id_seq'')', 'nor use the job id sequence')
  ) AS t(s, d);
SELECT is((SELECT item FROM batch_ops.job_item WHERE job_id = :bob_queued),
          '{"id": 11, "name": "q"}'::jsonb, 'bob''s queued item is as he gave it');

-- ------------------------------------------------ imports: server files
CREATE ROLE regress_bo_tap_jp_reader IN ROLE pg_read_server_files;
CREATE ROLE regress_bo_tap_jp_fetcher IN ROLE batch_ops_fetch;
GRANT USAGE ON SCHEMA regress_bo_tap_jobs TO regress_bo_tap_jp_reader, regress_bo_tap_jp_fetcher;
GRANT SELECT, INSERT ON regress_bo_tap_jobs.items TO regress_bo_tap_jp_reader, regress_bo_tap_jp_fetcher;
-- (every role here may INSERT into items: the refusals below are about the
-- source, not the table)
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', '/tmp/regress_bo_tap_jp.csv')$$),
                 '42501', 'permission denied to import from a file',
                 'a role without pg_read_server_files cannot import from a server file');
SELECT matches(regress_bo_tap_jobs.try_as('alice',
                   $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', '/tmp/regress_bo_tap_jp.csv')$$),
               'detail: [^;]*pg_read_server_files',
               'the error says that pg_read_server_files is needed');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('fetcher',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', '/tmp/regress_bo_tap_jp.csv')$$),
                 '42501', 'permission denied to import from a file',
                 'nor can a member of batch_ops_fetch (URLs only)');
SELECT lives_ok(regress_bo_tap_jobs.sql_as('reader',
                    $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', '/tmp/regress_bo_tap_jp.csv')$$),
                'a member of pg_read_server_files can submit an import from a server file');
SELECT is((SELECT count(*) FROM batch_ops.job_queue
            WHERE role = 'regress_bo_tap_jp_reader'::regrole AND kind = 'import'
              AND source = '/tmp/regress_bo_tap_jp.csv' AND status = 'queued'),
          1::bigint, 'and the import is queued as that role''s job');

-- ------------------------------------------------ imports: URLs
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'http://127.0.0.1:9/regress_bo_tap_jp.csv')$$),
                 '42501', 'permission denied to import from a URL',
                 'a role outside batch_ops_fetch cannot import from an http URL');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'HTTPS://127.0.0.1:9/regress_bo_tap_jp.csv')$$),
                 '42501', 'permission denied to import from a URL',
                 'nor from an https URL (whatever the case of the scheme)');
SELECT matches(regress_bo_tap_jobs.try_as('alice',
                   $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'https://127.0.0.1:9/regress_bo_tap_jp.csv')$$),
               'detail: [^;]*batch_ops_fetch',
               'the error says that membership in batch_ops_fetch is needed');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('reader',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'https://127.0.0.1:9/regress_bo_tap_jp.csv')$$),
                 '42501', 'permission denied to import from a URL',
                 'nor can a member of pg_read_server_files (files only)');
SELECT lives_ok(regress_bo_tap_jobs.sql_as('fetcher',
                    $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'http://127.0.0.1:9/regress_bo_tap_jp.csv')$$),
                'a member of batch_ops_fetch can submit an import from an http URL');
SELECT lives_ok(regress_bo_tap_jobs.sql_as('fetcher',
                    $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'https://127.0.0.1:9/regress_bo_tap_jp.csv')$$),
                'and from an https URL');
SELECT is((SELECT count(*) FROM batch_ops.job_queue
            WHERE role = 'regress_bo_tap_jp_fetcher'::regrole AND kind = 'import'
              AND source LIKE '%://127.0.0.1:9/regress_bo_tap_jp.csv' AND status = 'queued'),
          2::bigint, 'and the imports are queued as that role''s jobs');
SELECT lives_ok($$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'http://127.0.0.1:9/regress_bo_tap_jp.csv')$$,
                'a superuser can submit an import from a URL');
-- batch_ops.fetch_url_prefixes narrows the URLs even for batch_ops_fetch
SET LOCAL batch_ops.fetch_url_prefixes = 'https://data.example.com/';
SELECT throws_ok(regress_bo_tap_jobs.sql_as('fetcher',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.items', 'http://127.0.0.1:9/regress_bo_tap_jp.csv')$$),
                 '42501', 'URL "http://127.0.0.1:9/regress_bo_tap_jp.csv" is not allowed',
                 'a URL outside batch_ops.fetch_url_prefixes is refused to a member of batch_ops_fetch');
RESET batch_ops.fetch_url_prefixes;
-- and only a superuser sets the limits of the job API
SELECT is(regress_bo_tap_jobs.code_as('fetcher', 'SET batch_ops.fetch_url_prefixes = ''''' ), '42501',
          'a member of batch_ops_fetch cannot change batch_ops.fetch_url_prefixes');
SELECT is(regress_bo_tap_jobs.code_as('alice', 'SET batch_ops.max_async_items = 2000000'), '42501',
          'a role cannot raise batch_ops.max_async_items');

-- ------------------------------------------------ submit_batch and table privileges
-- A role that may not write the table is refused when it submits (the job
-- would run as that role): 42501 naming the table, and no job is queued.
CREATE TABLE regress_bo_tap_jobs.readonly (id integer PRIMARY KEY, v text);
GRANT SELECT ON regress_bo_tap_jobs.readonly TO regress_bo_tap_jp_alice;
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice',
                     format('SELECT batch_ops.submit_batch(%L, ''regress_bo_tap_jobs.readonly'', %L)', op, items)),
                 '42501', 'permission denied for table readonly',
                 format('submit_batch(''%s'') into a table alice may only read: permission denied at submit', op))
  FROM (VALUES ('create', '[{"id": 1, "v": "x"}]'),
               ('update', '[{"id": 1, "v": "x"}]'),
               ('delete', '[1]')) AS t(op, items);
SELECT matches(regress_bo_tap_jobs.try_as('alice',
                   $$SELECT batch_ops.submit_batch('update', 'regress_bo_tap_jobs.readonly', '[]')$$),
               'detail: [^;]*UPDATE privilege',
               'the error names the privilege the job would need');
SELECT is((SELECT count(*) FROM batch_ops.job_queue
            WHERE target = 'regress_bo_tap_jobs.readonly'::regclass),
          0::bigint, 'no job was queued for it');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('alice',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.readonly', '/tmp/regress_bo_tap_jp.csv')$$),
                 '42501', 'permission denied for table readonly',
                 'nor can she import into it');
SELECT throws_ok(regress_bo_tap_jobs.sql_as('reader',
                     $$SELECT batch_ops.submit_import('regress_bo_tap_jobs.readonly', '/tmp/regress_bo_tap_jp.csv')$$),
                 '42501', 'permission denied for table readonly',
                 'reading server files does not give the right to write a table');

-- Table privileges are checked again when the job runs (as the role): the
-- job submitted with INSERT and run after it was revoked wrote nothing and
-- reports its item as permission_denied.
SELECT is(batch_ops.job(:revoked_job)->'results'->'created', '0'::jsonb,
          'the job that lost its INSERT privilege created nothing');
SELECT is((SELECT array_agg(ARRAY[error, e->>'sqlstate']) FROM
             (SELECT e->>'error' AS error, e
                FROM jsonb_array_elements(batch_ops.job(:revoked_job)->'results'->'errors') AS e) s),
          ARRAY[ARRAY['permission_denied', '42501']],
          'its item is a permission_denied error (42501)');
SELECT is((SELECT count(*) FROM regress_bo_tap_jobs.revoked), 0::bigint, 'and the table is empty');

-- As for batch_create and batch_update, INSERT or UPDATE privilege on some
-- columns is enough to submit (the items are then checked column by
-- column); with none at all the submit fails (above).
CREATE TABLE regress_bo_tap_jobs.cols (id integer PRIMARY KEY, name text, secret text);
INSERT INTO regress_bo_tap_jobs.cols VALUES (1, 'one', 's');
GRANT SELECT (id, name), INSERT (id, name), UPDATE (name) ON regress_bo_tap_jobs.cols TO regress_bo_tap_jp_alice;
SELECT is(regress_bo_tap_jobs.as_role('alice',
              $$SELECT batch_ops.batch_create('regress_bo_tap_jobs.cols', '[{"id": 2, "name": "two"}]')->>'errors'$$),
          '[]', 'batch_create accepts a role with INSERT on the columns it gives');
SELECT lives_ok(regress_bo_tap_jobs.sql_as('alice',
                    $$SELECT batch_ops.submit_batch('create', 'regress_bo_tap_jobs.cols', '[{"id": 3, "name": "three"}]')$$),
                'submit_batch(''create'') accepts INSERT on the columns it gives');
SELECT lives_ok(regress_bo_tap_jobs.sql_as('alice',
                    $$SELECT batch_ops.submit_batch('update', 'regress_bo_tap_jobs.cols', '[{"id": 1, "name": "uno"}]')$$),
                'submit_batch(''update'') accepts UPDATE on the columns it changes');

-- Row-level security applies to a job's rows, row by row: alice's own row
-- was created, the one for bob is a permission_denied item.
SELECT is(batch_ops.job(:rls_job)->'results'->'created', '1'::jsonb,
          'the row-level security job created the row its policy allows');
SELECT is((SELECT string_agg(concat_ws(':', index, error), ',') FROM batch_ops.job_errors(:rls_job)),
          '1:permission_denied', 'and reported the row the policy rejects as permission_denied');
SELECT is((SELECT array_agg(owner::text ORDER BY id) FROM regress_bo_tap_jobs.docs),
          ARRAY['regress_bo_tap_jp_alice'], 'only alice''s row is in the table');

-- Source access is checked again when the job runs: carol's imports fail
-- with the privilege error, not with what reading the source would give
-- ("could not open file", "could not fetch").
SELECT is(batch_ops.job(:carol_file_job)->>'error', 'permission denied to import from a file',
          'the file import failed on the privilege check');
SELECT is(batch_ops.job(:carol_url_job)->>'error', 'permission denied to import from a URL',
          'the URL import failed on the privilege check');

SELECT * FROM finish();
ROLLBACK;

-- ---------------------------------------------------------------- 3. clean-up
\set ON_ERROR_STOP 1
-- Wait for the jobs (they have finished unless part 2 failed early), so
-- that no worker is running one when its row goes.
DO $$
BEGIN
    PERFORM batch_ops.wait_job(id, '30 s')
       FROM batch_ops.job_queue
      WHERE role IN (SELECT oid FROM pg_roles
                      WHERE rolname IN ('regress_bo_tap_jp_alice', 'regress_bo_tap_jp_bob',
                                        'regress_bo_tap_jp_carol'));
END $$;
DELETE FROM batch_ops.job_queue
 WHERE role IN (SELECT oid FROM pg_roles
                 WHERE rolname IN ('regress_bo_tap_jp_alice', 'regress_bo_tap_jp_bob',
                                   'regress_bo_tap_jp_carol'));
DROP SCHEMA regress_bo_tap_jobs CASCADE;
DROP ROLE regress_bo_tap_jp_alice, regress_bo_tap_jp_bob, regress_bo_tap_jp_carol;
\if :bo_tap_drop_extension
DROP EXTENSION batch_ops;
\endif
