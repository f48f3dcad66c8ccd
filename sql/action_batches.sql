--
-- Action batches (the Cisco Meraki model): path templates, confirmed
-- synchronous batches, drafts confirmed later, asynchronous batches, all
-- or nothing with every failure listed, createdResources, limits, bad
-- input.
--
-- Batch ids, job ids and times are never shown (other tests may create
-- batches and jobs in the same database): show() drops them.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
RESET client_min_messages;
\set SHOW_CONTEXT never
CREATE SCHEMA bo_ab;
SET search_path = bo_ab, public;

CREATE FUNCTION show(answer jsonb) RETURNS text LANGUAGE sql AS
$$ SELECT jsonb_pretty(answer - '{id,job_id,created_at,confirmed_at,finished_at}'::text[]) $$;

CREATE TABLE networks (
    network_id text PRIMARY KEY,
    name       text NOT NULL CHECK (name <> '')
);
CREATE TABLE devices (
    serial     text PRIMARY KEY,
    network_id text NOT NULL REFERENCES networks,
    name       text
);
CREATE TABLE orders (
    id  serial PRIMARY KEY,
    qty integer NOT NULL CHECK (qty > 0)
);
INSERT INTO networks VALUES ('N_1', 'office'), ('N_2', 'lab');
INSERT INTO devices VALUES ('Q2XX-AAAA', 'N_1', 'ap'), ('Q2XX-BBBB', 'N_2', 'switch');

--
-- Path templates: {variables} are columns of the table.
--
SELECT batch_ops.register_resource('/networks/{network_id}', 'networks');
SELECT batch_ops.register_resource('/devices/{serial}', 'devices');
SELECT batch_ops.register_resource('/networks/{network_id}/devices', 'devices');
SELECT batch_ops.register_resource('/networks/{network_id}/devices/{serial}', 'devices');
SELECT path, target, variables, registered_by FROM batch_ops.resources
 WHERE target::text LIKE 'bo_ab.%' OR target::text IN ('networks', 'devices') ORDER BY path;
-- bad templates
SELECT batch_ops.register_resource('networks/{network_id}', 'networks');
SELECT batch_ops.register_resource('/networks//{network_id}', 'networks');
SELECT batch_ops.register_resource('/networks/x{network_id}', 'networks');
SELECT batch_ops.register_resource('/networks/{nope}', 'networks');
SELECT batch_ops.register_resource('/networks/{network_id}/{network_id}', 'networks');
-- the same path, or one that matches the same paths
SELECT batch_ops.register_resource('/networks/{network_id}', 'networks');
SELECT batch_ops.register_resource('/networks/{name}', 'networks');
SELECT batch_ops.register_resource(NULL, 'networks');
CREATE VIEW network_names AS SELECT name FROM networks;
SELECT batch_ops.register_resource('/names', 'network_names');
SELECT batch_ops.unregister_resource('/names');
SELECT batch_ops.register_resource('/x/{name}', 'networks');
SELECT batch_ops.unregister_resource('/x/{name}');

--
-- The Meraki flow: three actions (two network renames, one device
-- rename), confirmed and synchronous: they run in the call.
--
SELECT show(batch_ops.create_action_batch('[
    {"resource": "/networks/N_1", "operation": "update", "body": {"name": "HQ"}},
    {"resource": "/networks/N_2", "operation": "update", "body": {"name": "Lab West"}},
    {"resource": "/devices/Q2XX-AAAA", "operation": "update", "body": {"name": "lobby AP"}}
  ]', confirmed => true, synchronous => true));
SELECT * FROM networks ORDER BY network_id;
SELECT * FROM devices ORDER BY serial;
-- the status as a client polls it: status.completed
SELECT b->'status'->'completed' AS completed, b->'status'->'failed' AS failed
  FROM batch_ops.create_action_batch('[
    {"resource": "/networks/N_1", "operation": "update", "body": {"name": "Head office"}}
  ]', true, true) AS b;

--
-- createdResources: the id and the URI of each created row, built from
-- the template on the table that names the key (or /<table>/<id>).
--
SELECT show(batch_ops.create_action_batch('[
    {"resource": "/orders", "operation": "create", "body": {"qty": 2}},
    {"resource": "/orders", "operation": "create", "body": {"qty": 3}},
    {"resource": "/networks/N_1/devices", "operation": "create",
     "body": {"serial": "Q2XX-CCCC", "name": "camera"}},
    {"resource": "/networks", "operation": "create", "body": {"network_id": "N_3", "name": "depot"}}
  ]', true, true));
SELECT * FROM devices WHERE serial = 'Q2XX-CCCC';

--
-- All or nothing: one failing action undoes the others, and every
-- failing action is listed with its index, resource, operation and the
-- engine's error object.
--
SELECT show(batch_ops.create_action_batch('[
    {"resource": "/orders", "operation": "create", "body": {"qty": 5}},
    {"resource": "/orders", "operation": "create", "body": {"qty": 0}},
    {"resource": "/networks/N_1", "operation": "update", "body": {"name": ""}},
    {"resource": "/orders/9999", "operation": "update", "body": {"qty": 1}},
    {"resource": "/networks/N_2/devices/Q2XX-AAAA", "operation": "update", "body": {"name": "moved?"}},
    {"resource": "/devices/Q2XX-BBBB", "operation": "destroy"}
  ]', true, true));
-- nothing of it stayed: still two orders, the device is there
SELECT count(*) AS orders FROM orders;
SELECT * FROM devices ORDER BY serial;
-- the caller's transaction stays usable, and a ROLLBACK undoes a batch
BEGIN;
SELECT b->'status'->'completed' AS completed
  FROM batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     true, true) AS b;
SELECT count(*) AS orders FROM orders;
ROLLBACK;
SELECT count(*) AS orders FROM orders;
-- destroy through a template, with the path's other variable checked
SELECT b->'status'->'completed' AS completed, b->'status'->'errors' AS errors
  FROM batch_ops.create_action_batch('[
    {"resource": "/networks/N_1/devices/Q2XX-CCCC", "operation": "destroy"}]', true, true) AS b;
SELECT serial FROM devices ORDER BY serial;

--
-- Drafts: created unconfirmed, edited, confirmed later; a confirmed batch
-- can be neither un-confirmed, edited nor deleted.
--
SELECT batch_ops.create_action_batch('[
    {"resource": "/orders/1", "operation": "update", "body": {"qty": 10}}]') AS draft \gset
SELECT (:'draft'::jsonb)->'id' AS id \gset
SELECT show(:'draft');
SELECT state, confirmed, synchronous, completed, failed, job_id IS NULL AS no_job
  FROM batch_ops.action_batches WHERE id = :id;
-- nothing ran
SELECT qty FROM orders WHERE id = 1;
-- edit it: new actions
SELECT show(batch_ops.update_action_batch(:id, actions => '[
    {"resource": "/orders/1", "operation": "update", "body": {"qty": 11}},
    {"resource": "/orders/2", "operation": "update", "body": {"qty": 12}}]'));
-- un-confirming a draft leaves it a draft
SELECT batch_ops.update_action_batch(:id, confirmed => false)->>'state' AS state;
-- confirm it (asynchronous: a job that starts at commit), then poll it
SELECT b->>'state' AS state, b->'confirmed' AS confirmed, b->'job_id' IS NOT NULL AS has_job
  FROM batch_ops.update_action_batch(:id, confirmed => true) AS b;
SELECT set_config('bo_ab.id', :'id', false) IS NOT NULL AS set;
DO $$
DECLARE
    b jsonb;
BEGIN
    FOR i IN 1..3000 LOOP
        b := batch_ops.action_batch(current_setting('bo_ab.id')::bigint);
        EXIT WHEN b->>'state' NOT IN ('queued', 'running');
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
SELECT show(batch_ops.action_batch(:id));
SELECT id, qty FROM orders WHERE id IN (1, 2) ORDER BY id;
-- its job
SELECT j.kind, j.status, j.updated FROM batch_ops.jobs j
 WHERE j.job_id = (batch_ops.action_batch(:id)->'job_id')::bigint;
-- confirmed: no more changes (55000)
SELECT batch_ops.update_action_batch(:id, confirmed => true);
SELECT batch_ops.update_action_batch(:id, confirmed => false);
SELECT batch_ops.update_action_batch(:id, synchronous => true);
SELECT batch_ops.delete_action_batch(:id);
-- a draft can be deleted; then it does not exist (42704)
SELECT (batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]')->'id')::bigint AS id \gset
SELECT batch_ops.delete_action_batch(:id);
SELECT batch_ops.action_batch(:id);
SELECT batch_ops.delete_action_batch(:id);
SELECT batch_ops.update_action_batch(:id, confirmed => true);
-- a draft confirmed as synchronous runs in the call
SELECT (batch_ops.create_action_batch('[{"resource": "/orders/2", "operation": "update", "body": {"qty": 13}}]')->'id')::bigint AS id \gset
SELECT show(batch_ops.update_action_batch(:id, confirmed => true, synchronous => true));
SELECT qty FROM orders WHERE id = 2;

--
-- An asynchronous batch of 100 actions, waited on.
--
SELECT (batch_ops.create_action_batch(
          (SELECT jsonb_agg(jsonb_build_object('resource', '/orders', 'operation', 'create',
                                               'body', jsonb_build_object('qty', g)) ORDER BY g)
             FROM generate_series(1, 100) g),
          confirmed => true)->'id')::bigint AS id \gset
SELECT b->>'state' AS state, b->'status'->'completed' AS completed,
       jsonb_array_length(b->'status'->'createdResources') AS created,
       (SELECT bool_and(c->>'uri' = '/orders/' || (c->>'id'))
          FROM jsonb_array_elements(b->'status'->'createdResources') c) AS uris
  FROM batch_ops.wait_action_batch(:id) AS b;
SELECT count(*) AS orders FROM orders;
-- one failing action of an asynchronous batch: nothing applied
SELECT (batch_ops.create_action_batch('[
    {"resource": "/orders", "operation": "create", "body": {"qty": 1}},
    {"resource": "/orders", "operation": "create", "body": {"qty": -1}}]', true)->'id')::bigint AS id \gset
SELECT show(batch_ops.wait_action_batch(:id));
SELECT count(*) AS orders FROM orders;
-- waiting in the transaction that confirmed it would wait for ever
BEGIN;
SELECT (batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "update", "body": {"qty": 1}}]', true)->'id')::bigint AS id \gset
SELECT batch_ops.wait_action_batch(:id);
ROLLBACK;
-- the timeout counts from the confirmation
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$;
CREATE TABLE slow_rows (id integer PRIMARY KEY);
CREATE TRIGGER slow BEFORE INSERT ON slow_rows FOR EACH ROW EXECUTE FUNCTION slow();
SET batch_ops.action_batch_timeout = '1s';
SELECT (batch_ops.create_action_batch('[{"resource": "/slow_rows", "operation": "create", "body": {"id": 1}}]',
                                      true)->'id')::bigint AS id \gset
RESET batch_ops.action_batch_timeout;
SELECT b->>'state' AS state, b->'status' AS status
  FROM batch_ops.wait_action_batch(:id, '1 min') AS b;
SELECT j.status, j.error FROM batch_ops.jobs j
 WHERE j.job_id = (batch_ops.action_batch(:id)->'job_id')::bigint;
-- cancel_job() on its job ends a running batch as failed, "cancelled"
SELECT (batch_ops.create_action_batch('[{"resource": "/slow_rows", "operation": "create", "body": {"id": 2}}]',
                                      true)->'id')::bigint AS id \gset
DO $$
BEGIN
    FOR i IN 1..3000 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity
                           WHERE wait_event = 'PgSleep' AND backend_type = 'batch_ops job worker');
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
SELECT batch_ops.cancel_job((batch_ops.action_batch(:id)->'job_id')::bigint);
SELECT b->>'state' AS state, b->'status' AS status
  FROM batch_ops.wait_action_batch(:id, '1 min') AS b;
SELECT j.status FROM batch_ops.jobs j
 WHERE j.job_id = (batch_ops.action_batch(:id)->'job_id')::bigint;
SELECT count(*) AS slow_rows FROM slow_rows;

--
-- A batch inside a batch: a trigger that runs one for each row written.
--
CREATE TABLE audit (id serial PRIMARY KEY, note text NOT NULL);
CREATE TABLE tickets (id integer PRIMARY KEY, title text NOT NULL);
CREATE FUNCTION audit_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM batch_ops.create_action_batch(jsonb_build_array(jsonb_build_object(
        'resource', '/audit', 'operation', 'create',
        'body', jsonb_build_object('note', 'ticket ' || NEW.id))), true, true);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_ticket AFTER INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION audit_ticket();
SELECT b->'status'->'completed' AS completed, b->'status'->'createdResources' AS created
  FROM batch_ops.create_action_batch('[
    {"resource": "/tickets", "operation": "create", "body": {"id": 1, "title": "a"}},
    {"resource": "/tickets", "operation": "create", "body": {"id": 2, "title": "b"}}]', true, true) AS b;
SELECT note FROM audit ORDER BY id;

--
-- Idempotency keys: the same request replays its answer, another is refused.
--
SELECT batch_ops.create_action_batch('[{"resource": "/orders", "operation": "create", "body": {"qty": 7}}]',
                                     true, true, idempotency_key => 'ab-1') AS first \gset
SELECT batch_ops.create_action_batch('[{"resource": "/orders", "operation": "create", "body": {"qty": 7}}]',
                                     true, true, idempotency_key => 'ab-1') = :'first'::jsonb AS replayed;
SELECT count(*) AS sevens FROM orders WHERE qty = 7;
SELECT batch_ops.create_action_batch('[{"resource": "/orders", "operation": "create", "body": {"qty": 8}}]',
                                     true, true, idempotency_key => 'ab-1');

--
-- Rate limit: actions count as items.
--
SET batch_ops.rate_limit = 1;
SET batch_ops.rate_limit_burst = 2;
SELECT batch_ops.create_action_batch('[
    {"resource": "/orders/1", "operation": "update", "body": {"qty": 1}},
    {"resource": "/orders/2", "operation": "update", "body": {"qty": 1}},
    {"resource": "/orders/3", "operation": "update", "body": {"qty": 1}}]', true, true);
RESET batch_ops.rate_limit;
RESET batch_ops.rate_limit_burst;

--
-- Limits (54000): 20 synchronous, 100 asynchronous actions.
--
SELECT batch_ops.create_action_batch(
         (SELECT jsonb_agg('{"resource": "/orders/1", "operation": "update", "body": {"qty": 2}}'::jsonb)
            FROM generate_series(1, 21)), true, true);
SELECT batch_ops.create_action_batch(
         (SELECT jsonb_agg('{"resource": "/orders/1", "operation": "update", "body": {"qty": 2}}'::jsonb)
            FROM generate_series(1, 101)), true);
-- a draft of 21 is fine asynchronous, not once switched to synchronous
SELECT (batch_ops.create_action_batch(
          (SELECT jsonb_agg('{"resource": "/orders/1", "operation": "update", "body": {"qty": 2}}'::jsonb)
             FROM generate_series(1, 21)))->'id')::bigint AS id \gset
SELECT batch_ops.update_action_batch(:id, synchronous => true);
SELECT batch_ops.delete_action_batch(:id);
SET batch_ops.max_sync_actions = 1;
SELECT batch_ops.create_action_batch('[
    {"resource": "/orders/1", "operation": "update", "body": {"qty": 1}},
    {"resource": "/orders/2", "operation": "update", "body": {"qty": 1}}]', true, true);
RESET batch_ops.max_sync_actions;

--
-- Bad input: clear errors, nothing applied.
--
SELECT batch_ops.create_action_batch('[{"resource": "/nowhere/1", "operation": "update", "body": {"a": 1}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "cycle"}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "update", "body": {"id": 2, "qty": 1}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/networks/N_1/devices", "operation": "create", "body": {"network_id": "N_2"}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders", "operation": "update", "body": {"qty": 1}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/networks/N_1/devices", "operation": "update", "body": {"name": "x"}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy", "body": {"qty": 1}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "create", "body": {"qty": 1}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "update"}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "update", "body": [1]}]');
SELECT batch_ops.create_action_batch('[{"resource": "orders/1", "operation": "update", "body": {"qty": 1}}]');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "update", "body": {"qty": 1}, "extra": 1}]');
SELECT batch_ops.create_action_batch('[{"operation": "update", "body": {"qty": 1}}]');
SELECT batch_ops.create_action_batch('[{"resource": 1, "operation": "update"}]');
SELECT batch_ops.create_action_batch('["/orders/1"]');
SELECT batch_ops.create_action_batch('{"resource": "/orders/1"}');
SELECT batch_ops.create_action_batch('[]');
SELECT batch_ops.create_action_batch(NULL);
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]', NULL);
-- the second action is the bad one: the first is not applied either
SELECT batch_ops.create_action_batch('[
    {"resource": "/orders/1", "operation": "destroy"},
    {"resource": "/orders/1", "operation": "frob"}]', true, true);
SELECT count(*) AS order_1 FROM orders WHERE id = 1;
-- a key that is not a valid value is the action's error, not a bad batch
SELECT b->'status'->'errors'->0->>'error' AS error
  FROM batch_ops.create_action_batch('[{"resource": "/orders/x", "operation": "destroy"}]', true, true) AS b;
-- callbacks are checked (22023), against the outbound policy (42501) and
-- their credential, and stored (a draft sends nothing)
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     callback => '{"url": "ftp://x"}');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     callback => '{"url": "https://hooks.example/ab", "secret": "x"}');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     callback => '{"credential": "hook"}');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     callback => '{"url": "https://hooks.example/ab", "credential": "hook"}');
SET batch_ops.outbound_networks = 'hooks.example';
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     callback => '{"url": "https://hooks.example/ab", "credential": "no_such_hook"}');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     callback => '{"url": "https://u:pw@hooks.example/ab"}');
SELECT batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]',
                                     callback => '{"url": "https://hooks.example/ab?k=1"}')->'callback' AS callback;
RESET batch_ops.outbound_networks;
-- another role's batch, or none: 42704
SELECT batch_ops.action_batch(-1);
SELECT batch_ops.wait_action_batch(-1);

-- an asynchronous batch runs as the role that confirmed it
CREATE ROLE regress_bo_ab_clerk;
GRANT USAGE ON SCHEMA bo_ab TO regress_bo_ab_clerk;
CREATE TABLE signed (id integer PRIMARY KEY, who text NOT NULL DEFAULT current_user,
                     sess text NOT NULL DEFAULT session_user);
GRANT SELECT, INSERT ON signed TO regress_bo_ab_clerk;
SET ROLE regress_bo_ab_clerk;
SELECT (batch_ops.create_action_batch('[{"resource": "/signed", "operation": "create", "body": {"id": 1}}]',
                                      true)->'id')::bigint AS id \gset
SELECT batch_ops.wait_action_batch(:id)->>'state' AS state;
RESET ROLE;
SELECT * FROM signed;
SELECT batch_ops.action_batch(:id)->>'submitted_by' AS submitted_by;
DELETE FROM batch_ops.action_batch WHERE role = 'regress_bo_ab_clerk'::regrole;
DELETE FROM batch_ops.job_queue WHERE role = 'regress_bo_ab_clerk'::regrole;
DROP TABLE signed;
REVOKE USAGE ON SCHEMA bo_ab FROM regress_bo_ab_clerk;
DROP ROLE regress_bo_ab_clerk;

-- purge() deletes drafts older than batch_ops.action_draft_ttl (7 days),
-- and keeps younger ones
SELECT (batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]')->'id')::bigint AS old_draft \gset
SELECT (batch_ops.create_action_batch('[{"resource": "/orders/1", "operation": "destroy"}]')->'id')::bigint AS new_draft \gset
UPDATE batch_ops.action_batch SET created_at = now() - interval '8 days' WHERE id = :old_draft;
SELECT batch_ops.purge() >= 1 AS purged;
SELECT id = :new_draft AS kept FROM batch_ops.action_batch WHERE id IN (:old_draft, :new_draft);
SELECT batch_ops.unregister_resource('/networks/{network_id}/devices');
SELECT batch_ops.unregister_resource('/networks/{network_id}/devices');
SELECT batch_ops.unregister_resource(path) FROM batch_ops.resources
 WHERE target IN ('networks'::regclass, 'devices'::regclass) ORDER BY path;

DROP SCHEMA bo_ab CASCADE;
