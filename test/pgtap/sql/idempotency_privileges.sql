\unset ECHO
-- pgTAP: privileges around idempotency keys and rate limits.
--
-- The key table holds every role's stored responses, so no ordinary role may
-- touch it; the batch functions reach it as its owner, and only for the
-- caller's own keys.  Runs in one transaction, rolled back at the end.
-- psql settings, the session's styles, BEGIN, the extensions (pg_regress
-- feeds the file on stdin from the top of the tree)
\i test/pgtap/setup.psql

SELECT plan(26);

-- ---------------------------------------------------------------- the table
SELECT has_table('batch_ops', 'idempotency_keys', 'the key table exists');
SELECT col_is_pk('batch_ops', 'idempotency_keys', ARRAY['role', 'key'],
                 'a key is unique per role');
SELECT table_owner_is('batch_ops', 'idempotency_keys',
                      (SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'batch_ops'),
                      'the key table belongs to the extension owner');
SELECT table_privs_are('batch_ops', 'idempotency_keys', 'public', ARRAY[]::text[],
                       'PUBLIC has no privilege on the key table');
SELECT is((SELECT count(*) FROM information_schema.column_privileges
            WHERE table_schema = 'batch_ops' AND table_name = 'idempotency_keys'
              AND grantee = 'PUBLIC'),
          0::bigint, 'nor on any of its columns');
SELECT ok(EXISTS (SELECT FROM pg_depend
                   WHERE classid = 'pg_class'::regclass
                     AND objid = 'batch_ops.idempotency_keys'::regclass
                     AND refclassid = 'pg_extension'::regclass AND deptype = 'e'),
          'the key table is a member of the extension');
SELECT ok(NOT coalesce((SELECT 'batch_ops.idempotency_keys'::regclass = ANY (extconfig)
                          FROM pg_extension WHERE extname = 'batch_ops'), false),
          'its rows are not dumped: keys are transient');

-- ---------------------------------------------------------------- functions
SELECT function_privs_are('batch_ops', 'purge', ARRAY[]::text[], 'public', ARRAY[]::text[],
                          'PUBLIC cannot run purge()');
SELECT function_privs_are('batch_ops', 'rate_limit_status', ARRAY[]::text[], 'public',
                          ARRAY['EXECUTE'], 'PUBLIC can see its own token bucket');
SELECT isnt_definer('batch_ops', 'batch_create', ARRAY['regclass', 'jsonb', 'boolean', 'text'],
                    'batch_create is SECURITY INVOKER');
SELECT isnt_definer('batch_ops', 'purge', ARRAY[]::text[],
                    'purge is not SECURITY DEFINER (it switches user in C)');
SELECT function_returns('batch_ops', 'purge', ARRAY[]::text[], 'bigint',
                        'purge() returns the number of keys deleted');

-- ---------------------------------------------------------------- as roles
CREATE ROLE bo_tap_alice;
CREATE ROLE bo_tap_bob;
CREATE SCHEMA bo_tap;
CREATE TABLE bo_tap.t (id serial PRIMARY KEY, v int);
GRANT USAGE ON SCHEMA bo_tap TO bo_tap_alice, bo_tap_bob;
GRANT SELECT, INSERT ON bo_tap.t TO bo_tap_alice, bo_tap_bob;
GRANT USAGE ON SEQUENCE bo_tap.t_id_seq TO bo_tap_alice, bo_tap_bob;

-- Run a statement as a role (pgTAP's own bookkeeping stays with us): the
-- SQLSTATE it ends with, and its result when it returns one.
CREATE FUNCTION bo_tap.run(stmt text, OUT code text, OUT result text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt INTO result;
    code := '00000';
EXCEPTION WHEN OTHERS THEN
    code := SQLSTATE;
END $$;
CREATE FUNCTION bo_tap.as_alice(stmt text, OUT code text, OUT result text)
LANGUAGE sql SECURITY DEFINER AS $$ SELECT * FROM bo_tap.run(stmt) $$;
CREATE FUNCTION bo_tap.as_bob(stmt text, OUT code text, OUT result text)
LANGUAGE sql SECURITY DEFINER AS $$ SELECT * FROM bo_tap.run(stmt) $$;
ALTER FUNCTION bo_tap.as_alice(text) OWNER TO bo_tap_alice;
ALTER FUNCTION bo_tap.as_bob(text) OWNER TO bo_tap_bob;
GRANT EXECUTE ON FUNCTION bo_tap.run(text) TO bo_tap_alice, bo_tap_bob;

SELECT table_privs_are('batch_ops', 'idempotency_keys', 'bo_tap_alice', ARRAY[]::text[],
                       'an ordinary role has no privilege on the key table');
SELECT is((bo_tap.as_alice('SELECT count(*) FROM batch_ops.idempotency_keys')).code,
          '42501', 'an ordinary role cannot read the key table');
SELECT is((bo_tap.as_alice($$INSERT INTO batch_ops.idempotency_keys
                               VALUES ('bo_tap_bob'::regrole, 'forged', '\x00', '{}', now(), now() + '1 day')$$)).code,
          '42501', 'nor insert into it (no forged responses)');
SELECT is((bo_tap.as_alice('UPDATE batch_ops.idempotency_keys SET response = NULL')).code,
          '42501', 'nor update it');
SELECT is((bo_tap.as_alice('DELETE FROM batch_ops.idempotency_keys')).code,
          '42501', 'nor delete from it');
SELECT is((bo_tap.as_alice('TRUNCATE batch_ops.idempotency_keys')).code,
          '42501', 'nor truncate it');
SELECT is((bo_tap.as_alice('SELECT batch_ops.purge()')).code,
          '42501', 'nor run purge()');

-- Yet the batch functions store and replay the role's own keys.
SELECT is((bo_tap.as_alice($$SELECT batch_ops.batch_create('bo_tap.t', '[{"v": 1}]',
                                                            idempotency_key => 'tap-1')->'data'->0->>'id'$$)).result,
          '1', 'a role''s keyed call runs');
SELECT is((SELECT pg_get_userbyid(role) FROM batch_ops.idempotency_keys WHERE key = 'tap-1'),
          'bo_tap_alice', 'and its key is stored under the calling role');
SELECT is((bo_tap.as_alice($$SELECT batch_ops.batch_create('bo_tap.t', '[{"v": 1}]',
                                                            idempotency_key => 'tap-1')->'data'->0->>'id'$$)).result,
          '1', 'its retry replays its response');
-- Another role with the same key and request gets its own run, never the
-- first role's stored response.
SELECT is((bo_tap.as_bob($$SELECT batch_ops.batch_create('bo_tap.t', '[{"v": 1}]',
                                                          idempotency_key => 'tap-1')->'data'->0->>'id'$$)).result,
          '2', 'another role using the same key cannot read the first role''s response');
SELECT is((SELECT count(*) FROM bo_tap.t), 2::bigint, 'one run per role');

-- The owner switch is undone after each call.
SELECT is((bo_tap.as_alice($$SELECT batch_ops.batch_create('bo_tap.t', '[{"v": 2}]',
                                                            idempotency_key => 'tap-2')::text
                                 || current_user$$)).result LIKE '%bo_tap_alice',
          true, 'the caller is still the current user after a keyed call');
SELECT is((bo_tap.as_alice('SELECT role FROM batch_ops.rate_limit_status()')).result,
          'bo_tap_alice', 'rate_limit_status() shows an ordinary role its own bucket');

SELECT * FROM finish();
ROLLBACK;
