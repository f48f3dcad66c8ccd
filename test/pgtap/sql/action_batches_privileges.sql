\unset ECHO
-- pgTAP: who may do what with action batches and resources.
--
-- A role sees only its own action batches: another role's batch is "does
-- not exist" (42704) for action_batch(), wait_action_batch(),
-- update_action_batch() (so it cannot be confirmed or edited) and
-- delete_action_batch(), with the same error as a batch id never used,
-- and the view batch_ops.action_batches shows it nothing of them.  Only a
-- table's owner maps paths to it.  Actions run with the caller's
-- privileges.  The tables behind it all are closed to PUBLIC; the
-- functions are SECURITY INVOKER.
--
-- Everything runs in one transaction, rolled back at the end: roles,
-- tables, batches (the asynchronous ones never start).  Statements run as
-- a role through regress_bo_tap_ab.as_role() and try_as(), which SET
-- LOCAL ROLE inside a function, so that pgTAP's own bookkeeping stays
-- with the superuser.
\i test/pgtap/setup.psql

SELECT plan(48);

CREATE ROLE regress_bo_tap_ab_alice;
CREATE ROLE regress_bo_tap_ab_bob;
CREATE SCHEMA regress_bo_tap_ab;
GRANT USAGE ON SCHEMA regress_bo_tap_ab TO regress_bo_tap_ab_alice, regress_bo_tap_ab_bob;
CREATE TABLE regress_bo_tap_ab.items (id integer PRIMARY KEY, name text);
ALTER TABLE regress_bo_tap_ab.items OWNER TO regress_bo_tap_ab_alice;
INSERT INTO regress_bo_tap_ab.items VALUES (1, 'one'), (2, 'two');
GRANT SELECT ON regress_bo_tap_ab.items TO regress_bo_tap_ab_bob;

CREATE FUNCTION regress_bo_tap_ab.as_role(r text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', 'regress_bo_tap_ab_' || r);
    EXECUTE stmt INTO result;
    RESET ROLE;
    RETURN result;
END $$;
CREATE FUNCTION regress_bo_tap_ab.sql_as(r text, stmt text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('SELECT regress_bo_tap_ab.as_role(%L, %L)', r, stmt) $$;
-- stmt's error as r: "SQLSTATE: message (detail: ...)", NULL if it succeeds
CREATE FUNCTION regress_bo_tap_ab.try_as(r text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    det text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', 'regress_bo_tap_ab_' || r);
    EXECUTE stmt;
    RESET ROLE;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN format('%s: %s (detail: %s)', st, msg, det);
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA regress_bo_tap_ab TO PUBLIC;

-- ------------------------------------------------------------ resources
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob',
                     $$SELECT batch_ops.register_resource('/items/{id}', 'regress_bo_tap_ab.items')$$),
                 '42501', 'must be owner of table items',
                 'bob, who does not own the table, cannot map paths to it');
SELECT lives_ok(regress_bo_tap_ab.sql_as('alice',
                    $$SELECT batch_ops.register_resource('/things/{id}', 'regress_bo_tap_ab.items')$$),
                'alice, its owner, can');
SELECT is(regress_bo_tap_ab.as_role('alice',
              $$SELECT string_agg(path, ',') FROM batch_ops.resources WHERE target = 'regress_bo_tap_ab.items'::regclass$$),
          '/things/{id}', 'alice sees her template in batch_ops.resources');
SELECT is(regress_bo_tap_ab.as_role('bob',
              $$SELECT string_agg(path, ',') FROM batch_ops.resources WHERE target = 'regress_bo_tap_ab.items'::regclass$$),
          '/things/{id}', 'bob, who may read the table, sees it too');
CREATE ROLE regress_bo_tap_ab_carol;
SELECT is(regress_bo_tap_ab.as_role('carol',
              $$SELECT count(*)::text FROM batch_ops.resources WHERE path = '/things/{id}'$$),
          '0', 'carol, who may not use the table, does not');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob', $$SELECT batch_ops.unregister_resource('/things/{id}')$$),
                 '42501', 'permission denied to unregister resource "/things/{id}"',
                 'bob cannot unregister alice''s template');
SELECT is((SELECT count(*) FROM batch_ops.action_resource WHERE path = '/things/{id}'), 1::bigint,
          'it is still there');

-- ------------------------------------------------------------ batches: a role sees its own
SELECT regress_bo_tap_ab.as_role('alice',
           $$SELECT batch_ops.create_action_batch('[{"resource": "/things/1", "operation": "update", "body": {"name": "uno"}}]')->>'id'$$)
       AS alice_draft \gset
SELECT regress_bo_tap_ab.as_role('alice',
           $$SELECT batch_ops.create_action_batch('[{"resource": "/things/2", "operation": "update", "body": {"name": "dos"}}]', true, true)->>'id'$$)
       AS alice_done \gset
SELECT regress_bo_tap_ab.as_role('bob',
           $$SELECT batch_ops.create_action_batch('[{"resource": "/things/2", "operation": "destroy"}]')->>'id'$$)
       AS bob_draft \gset

SELECT is(regress_bo_tap_ab.as_role('alice',
              'SELECT string_agg(id::text, '','' ORDER BY id) FROM batch_ops.action_batches'),
          format('%s,%s', :alice_draft, :alice_done),
          'batch_ops.action_batches shows alice her two batches and nothing else');
SELECT is(regress_bo_tap_ab.as_role('bob',
              'SELECT string_agg(id::text, '','' ORDER BY id) FROM batch_ops.action_batches'),
          :'bob_draft', 'and bob his draft');
SELECT is(regress_bo_tap_ab.as_role('carol', 'SELECT count(*)::text FROM batch_ops.action_batches'),
          '0', 'and carol nothing');
SELECT is(regress_bo_tap_ab.as_role('alice',
              format('SELECT batch_ops.action_batch(%s)->>''submitted_by''', :alice_draft)),
          'regress_bo_tap_ab_alice', 'alice can look at her draft');

-- bob and alice's batches: they do not exist for him
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob', format('SELECT batch_ops.action_batch(%s)', :alice_draft)),
                 '42704', format('action batch %s does not exist', :alice_draft),
                 'bob cannot look at alice''s draft');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob', format('SELECT batch_ops.action_batch(%s)', :alice_done)),
                 '42704', format('action batch %s does not exist', :alice_done),
                 'nor at her finished batch');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob', format('SELECT batch_ops.wait_action_batch(%s, ''1 s'')', :alice_draft)),
                 '42704', format('action batch %s does not exist', :alice_draft),
                 'nor wait for it');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob',
                     format('SELECT batch_ops.update_action_batch(%s, confirmed => true, synchronous => true)', :alice_draft)),
                 '42704', format('action batch %s does not exist', :alice_draft),
                 'bob cannot confirm alice''s draft');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob',
                     format('SELECT batch_ops.update_action_batch(%s, confirmed => true)', :alice_draft)),
                 '42704', format('action batch %s does not exist', :alice_draft),
                 'nor confirm it as asynchronous');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob',
                     format($$SELECT batch_ops.update_action_batch(%s, actions => '[{"resource": "/things/1", "operation": "destroy"}]')$$,
                            :alice_draft)),
                 '42704', format('action batch %s does not exist', :alice_draft),
                 'nor edit its actions');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob', format('SELECT batch_ops.delete_action_batch(%s)', :alice_draft)),
                 '42704', format('action batch %s does not exist', :alice_draft),
                 'nor delete it');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob', format('SELECT batch_ops.delete_action_batch(%s)', :alice_done)),
                 '42704', format('action batch %s does not exist', :alice_done),
                 'nor her confirmed batch (not 55000: that would tell it exists)');
SELECT is((SELECT ARRAY[state, confirmed::text] FROM batch_ops.action_batch WHERE id = :alice_draft),
          ARRAY['draft', 'false'], 'alice''s draft is still an unconfirmed draft');
SELECT is((SELECT name FROM regress_bo_tap_ab.items WHERE id = 1), 'one', 'and its action did not run');
-- the same error as for a batch id that was never used
SELECT is(replace(regress_bo_tap_ab.try_as('bob', format('SELECT batch_ops.%s(%s)', f, :alice_draft)),
                  :'alice_draft', 'N'),
          replace(regress_bo_tap_ab.try_as('bob', format('SELECT batch_ops.%s(-1)', f)), '-1', 'N'),
          format('%s() on alice''s batch fails exactly as on one that does not exist', f))
  FROM unnest(ARRAY['action_batch', 'wait_action_batch', 'update_action_batch', 'delete_action_batch']) AS u(f);

-- a superuser sees every batch, but changes only its own
SELECT is(ARRAY(SELECT id FROM batch_ops.action_batches WHERE id IN (:alice_draft, :alice_done, :bob_draft) ORDER BY id),
          ARRAY[:alice_draft, :alice_done, :bob_draft]::bigint[], 'a superuser sees every role''s batches');
SELECT is(batch_ops.action_batch(:bob_draft)->>'submitted_by', 'regress_bo_tap_ab_bob',
          'and can look at bob''s');
SELECT throws_ok(format('SELECT batch_ops.delete_action_batch(%s)', :bob_draft),
                 '42704', format('action batch %s does not exist', :bob_draft),
                 'but cannot delete it');

-- ------------------------------------------------------------ actions run as the caller
-- bob may only read items: his synchronous update is a permission_denied action
SELECT is(regress_bo_tap_ab.as_role('bob',
              $$SELECT b->'status'->'errors'->0->>'error' FROM batch_ops.create_action_batch('[{"resource": "/things/1", "operation": "update", "body": {"name": "x"}}]', true, true) b$$),
          'permission_denied', 'bob''s update of a table he may only read fails as permission_denied');
SELECT is((SELECT name FROM regress_bo_tap_ab.items WHERE id = 1), 'one', 'and changed nothing');
-- an asynchronous batch is refused at confirmation, as submit_batch is
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob',
                     $$SELECT batch_ops.create_action_batch('[{"resource": "/things/1", "operation": "destroy"}]', true)$$),
                 '42501', 'permission denied for table items',
                 'bob cannot queue a destroy on a table he may not delete from');
SELECT throws_ok(regress_bo_tap_ab.sql_as('bob', format('SELECT batch_ops.update_action_batch(%s, confirmed => true)', :bob_draft)),
                 '42501', 'permission denied for table items',
                 'nor confirm his draft of one as asynchronous');
-- a path into a schema carol has no USAGE on is refused as SQL refuses it
SELECT throws_ok(regress_bo_tap_ab.sql_as('carol',
                     $$SELECT batch_ops.create_action_batch('[{"resource": "/regress_bo_tap_ab.items/1", "operation": "destroy"}]')$$),
                 '42501', 'permission denied for schema regress_bo_tap_ab',
                 'a path into a schema carol has no USAGE on: permission denied, as in SQL');

-- ------------------------------------------------------------ the objects
SELECT table_privs_are('batch_ops', t, 'public', ARRAY[]::name[],
                       format('PUBLIC has no privilege on batch_ops.%s', t))
  FROM unnest(ARRAY['action_batch', 'action_resource', 'action_batch_info']::name[]) AS u(t);
SELECT sequence_privs_are('batch_ops', 'action_batch_id_seq', 'public', ARRAY[]::name[],
                          'PUBLIC has no privilege on the batch id sequence');
SELECT table_privs_are('batch_ops', v, 'public', ARRAY['SELECT'],
                       format('PUBLIC may only SELECT from batch_ops.%s', v))
  FROM unnest(ARRAY['action_batches', 'resources']::name[]) AS u(v);
SELECT is(regress_bo_tap_ab.try_as('alice', 'SELECT * FROM batch_ops.action_batch'),
          '42501: permission denied for table action_batch (detail: )',
          'alice cannot read the batch table itself');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'batch_ops'::regnamespace
                   AND p.proname IN ('register_resource', 'unregister_resource', 'create_action_batch',
                                     'update_action_batch', 'delete_action_batch', 'action_batch',
                                     'wait_action_batch')
                   AND NOT p.prosecdef AND p.provolatile = 'v' AND p.proparallel = 'u'
                   AND NOT p.proisstrict
                   AND has_function_privilege('public', p.oid, 'EXECUTE')
                 ORDER BY 1),
          ARRAY['batch_ops.action_batch(bigint)',
                'batch_ops.create_action_batch(jsonb,boolean,boolean,jsonb,text)',
                'batch_ops.delete_action_batch(bigint)',
                'batch_ops.register_resource(text,regclass)',
                'batch_ops.unregister_resource(text)',
                'batch_ops.update_action_batch(bigint,boolean,boolean,jsonb)',
                'batch_ops.wait_action_batch(bigint,interval)'],
          'the seven functions are SECURITY INVOKER, VOLATILE, PARALLEL UNSAFE, not STRICT, executable by PUBLIC');
SELECT is(pg_get_function_arguments('batch_ops.create_action_batch(jsonb,boolean,boolean,jsonb,text)'::regprocedure),
          'actions jsonb, confirmed boolean DEFAULT false, synchronous boolean DEFAULT false, callback jsonb DEFAULT NULL::jsonb, idempotency_key text DEFAULT NULL::text',
          'create_action_batch: the contract''s arguments and defaults');
SELECT is(pg_get_function_arguments('batch_ops.update_action_batch(bigint,boolean,boolean,jsonb)'::regprocedure),
          'batch_id bigint, confirmed boolean DEFAULT NULL::boolean, synchronous boolean DEFAULT NULL::boolean, actions jsonb DEFAULT NULL::jsonb',
          'update_action_batch: the contract''s arguments and defaults');
SELECT is(pg_get_function_arguments('batch_ops.wait_action_batch(bigint,interval)'::regprocedure),
          'batch_id bigint, timeout interval DEFAULT ''00:10:00''::interval',
          'wait_action_batch waits 10 minutes by default');

-- ------------------------------------------------------------ settings
SELECT is((SELECT array_agg(ARRAY[name, boot_val, context] ORDER BY name) FROM pg_settings
            WHERE name IN ('batch_ops.max_sync_actions', 'batch_ops.max_async_actions',
                           'batch_ops.max_running_action_batches', 'batch_ops.action_batch_timeout',
                           'batch_ops.action_draft_ttl')),
          ARRAY[ARRAY['batch_ops.action_batch_timeout', '600', 'superuser'],
                ARRAY['batch_ops.action_draft_ttl', '604800', 'sighup'],
                ARRAY['batch_ops.max_async_actions', '100', 'superuser'],
                ARRAY['batch_ops.max_running_action_batches', '5', 'superuser'],
                ARRAY['batch_ops.max_sync_actions', '20', 'superuser']],
          'the settings of action batches, their defaults and who sets them');
SELECT is(regress_bo_tap_ab.try_as('alice', 'SET batch_ops.max_sync_actions = 100'),
          '42501: permission denied to set parameter "batch_ops.max_sync_actions" (detail: )',
          'a role cannot raise its own limit');
SELECT is(regress_bo_tap_ab.try_as('alice', 'SET batch_ops.max_running_action_batches = 100'),
          '42501: permission denied to set parameter "batch_ops.max_running_action_batches" (detail: )',
          'nor its running limit');

-- the template goes with its registrant's unregister
SELECT is(regress_bo_tap_ab.as_role('alice', $$SELECT batch_ops.unregister_resource('/things/{id}')::text$$),
          'true', 'alice unregisters her template');

SELECT * FROM finish();
ROLLBACK;
