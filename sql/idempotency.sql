--
-- Idempotency keys: the idempotency_key parameter of the batch functions.
--
-- The first call with a key runs and stores its response with a hash of the
-- request, in the same transaction.  The same key with the same request
-- returns the stored response, byte for byte, and changes nothing; with a
-- different request it is an ERROR with SQLSTATE BO422.  Keys belong to the
-- calling role and expire after batch_ops.idempotency_ttl.  Concurrent calls
-- with one key are in test/isolation/specs/idempotency_*.spec.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
RESET client_min_messages;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_idem;
SET search_path = bo_idem, public;

CREATE TABLE items (
    id   serial PRIMARY KEY,
    sku  text NOT NULL UNIQUE,
    qty  integer NOT NULL CHECK (qty >= 0)
);

-- What the key table holds for this test's keys (the response only as a
-- flag; hashes are SHA-256, 32 bytes).
CREATE VIEW keys AS
    SELECT pg_get_userbyid(role) AS role, key, length(request_hash) AS hash_bytes,
           response IS NOT NULL AS has_response, expires_at - created_at AS ttl
      FROM batch_ops.idempotency_keys
     WHERE key LIKE 'idem-%'
     ORDER BY 1, 2;

-- ---------------------------------------------------------------------------
-- First call and replay
-- ---------------------------------------------------------------------------

-- The first call runs; item 1 fails, and that is part of the response.
SELECT batch_ops.batch_create('items',
    '[{"sku": "a", "qty": 1}, {"sku": "b", "qty": -1}]',
    idempotency_key => 'idem-create-1') AS first \gset
SELECT :'first' AS response;
SELECT * FROM keys;
SELECT last_value AS seq_before FROM items_id_seq \gset

-- The same call again: the stored response, byte for byte, failed item
-- included, and nothing written (no row, no sequence value).
SELECT batch_ops.batch_create('items',
    '[{"sku": "a", "qty": 1}, {"sku": "b", "qty": -1}]',
    idempotency_key => 'idem-create-1') AS replay \gset
SELECT :'replay' = :'first' AS same_bytes;
SELECT count(*) AS rows FROM items;
SELECT last_value = :seq_before AS sequence_untouched FROM items_id_seq;

-- The same request spelt differently (key order, white space) is the same
-- request: jsonb is compared, not the text sent.
SELECT batch_ops.batch_create('items',
    '[ {"qty":1,"sku":"a"},   {"qty":-1, "sku":"b"} ]',
    idempotency_key => 'idem-create-1') = :'first'::jsonb AS replayed;

-- A replay is a read: it works in a read-only transaction.
BEGIN READ ONLY;
SELECT batch_ops.batch_create('items',
    '[{"sku": "a", "qty": 1}, {"sku": "b", "qty": -1}]',
    idempotency_key => 'idem-create-1') = :'first'::jsonb AS replayed;
COMMIT;

-- Without a key, the same items run again (and "a" now conflicts).
SELECT batch_ops.batch_create('items', '[{"sku": "a", "qty": 1}]')->'errors'->0->>'error' AS error;

-- ---------------------------------------------------------------------------
-- Same key, different request: BO422, and nothing runs
-- ---------------------------------------------------------------------------

-- other items
SELECT batch_ops.batch_create('items', '[{"sku": "c", "qty": 1}]',
    idempotency_key => 'idem-create-1');
\echo :SQLSTATE
-- the same items with another option
SELECT batch_ops.batch_create('items',
    '[{"sku": "a", "qty": 1}, {"sku": "b", "qty": -1}]', true,
    idempotency_key => 'idem-create-1');
\echo :SQLSTATE
-- another operation
SELECT batch_ops.batch_delete('items', '[1]', idempotency_key => 'idem-create-1');
\echo :SQLSTATE
-- another target
CREATE TABLE items2 (LIKE items INCLUDING ALL);
SELECT batch_ops.batch_create('items2',
    '[{"sku": "a", "qty": 1}, {"sku": "b", "qty": -1}]',
    idempotency_key => 'idem-create-1');
\echo :SQLSTATE
SELECT count(*) AS rows FROM items2;
-- a number written differently is a different request: the items are
-- compared as JSON text, and 1.0 is not 1 there
SELECT batch_ops.batch_create('items',
    '[{"sku": "a", "qty": 1.0}, {"sku": "b", "qty": -1}]',
    idempotency_key => 'idem-create-1');
\echo :SQLSTATE
SELECT count(*) AS rows FROM items;

-- ---------------------------------------------------------------------------
-- Update, delete, atomic mode
-- ---------------------------------------------------------------------------

SELECT batch_ops.batch_update('items', '[{"id": 1, "qty": 5}]',
    idempotency_key => 'idem-update-1');
UPDATE items SET qty = 0 WHERE id = 1;
-- a replay does not apply the update again
SELECT batch_ops.batch_update('items', '[{"id": 1, "qty": 5}]',
    idempotency_key => 'idem-update-1');
SELECT qty FROM items WHERE id = 1;

SELECT batch_ops.batch_delete('items', '[1, 999]', idempotency_key => 'idem-delete-1');
-- a replay answers "deleted": 1 again although the row is gone
SELECT batch_ops.batch_delete('items', '[1, 999]', idempotency_key => 'idem-delete-1');

-- An atomic batch that rolled back stores its response too: the replay says
-- rolled_back and lists every failure, and still nothing is written.
SELECT batch_ops.batch_create('items',
    '[{"sku": "x", "qty": 1}, {"sku": "y", "qty": -1}, {"sku": "z", "qty": -2}]',
    true, 'idem-atomic-1') AS atomic_first \gset
SELECT :'atomic_first' AS response;
SELECT batch_ops.batch_create('items',
    '[{"sku": "x", "qty": 1}, {"sku": "y", "qty": -1}, {"sku": "z", "qty": -2}]',
    true, 'idem-atomic-1') = :'atomic_first'::jsonb AS replayed;
SELECT count(*) AS xyz_rows FROM items WHERE sku IN ('x', 'y', 'z');

-- ---------------------------------------------------------------------------
-- Transactions: the key commits with the work, or goes away with it
-- ---------------------------------------------------------------------------

BEGIN;
SELECT batch_ops.batch_create('items', '[{"sku": "r1", "qty": 1}]',
    idempotency_key => 'idem-rollback-1');
ROLLBACK;
SELECT count(*) AS keys_left FROM keys WHERE key = 'idem-rollback-1';
-- so the key is free, even for another request
SELECT batch_ops.batch_create('items', '[{"sku": "r2", "qty": 2}]',
    idempotency_key => 'idem-rollback-1')->'data'->0->>'sku' AS created;

-- A savepoint rolled back takes the key with it.
BEGIN;
SAVEPOINT s;
SELECT batch_ops.batch_create('items', '[{"sku": "s1", "qty": 1}]',
    idempotency_key => 'idem-savepoint-1')->'data'->0->>'sku' AS created;
ROLLBACK TO s;
SELECT batch_ops.batch_create('items', '[{"sku": "s2", "qty": 1}]',
    idempotency_key => 'idem-savepoint-1')->'data'->0->>'sku' AS created;
-- in the same transaction, a second call already replays
SELECT batch_ops.batch_create('items', '[{"sku": "s2", "qty": 1}]',
    idempotency_key => 'idem-savepoint-1')->'data'->0->>'sku' AS replayed;
COMMIT;
SELECT sku FROM items WHERE sku LIKE 's%' ORDER BY sku;

-- An ERROR raised by the batch itself (here: malformed input) stores nothing.
SELECT batch_ops.batch_create('items', '{"sku": "e"}', idempotency_key => 'idem-error-1');
SELECT count(*) AS keys_left FROM keys WHERE key = 'idem-error-1';

-- A call that re-enters with its own key before it has finished (here from a
-- trigger) is an error, not a replay of a response that does not exist yet.
CREATE FUNCTION reenter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sku = 'loop' THEN
        PERFORM batch_ops.batch_create('bo_idem.items', '[{"sku": "loop", "qty": 1}]',
                                       idempotency_key => 'idem-reenter-1');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER reenter BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION reenter();
SELECT batch_ops.batch_create('items', '[{"sku": "loop", "qty": 1}]',
    idempotency_key => 'idem-reenter-1');
\echo :SQLSTATE
DROP TRIGGER reenter ON items;
SELECT count(*) AS keys_left FROM keys WHERE key = 'idem-reenter-1';

-- ---------------------------------------------------------------------------
-- Bad keys
-- ---------------------------------------------------------------------------

SELECT batch_ops.batch_create('items', '[{"sku": "k1", "qty": 1}]', idempotency_key => '');
\echo :SQLSTATE
SELECT batch_ops.batch_create('items', '[{"sku": "k1", "qty": 1}]',
    idempotency_key => 'idem-' || repeat('x', 251));
\echo :SQLSTATE
-- 255 characters is the limit, counted in characters, not bytes
SELECT batch_ops.batch_create('items', '[{"sku": "k1", "qty": 1}]',
    idempotency_key => 'idem-' || repeat('é', 250))->'data'->0->>'sku' AS created;
SELECT length(key) AS chars, octet_length(key) AS bytes FROM keys WHERE key LIKE 'idem-é%';
-- NULL means no key: nothing is stored
SELECT count(*) AS keys_before FROM batch_ops.idempotency_keys \gset
SELECT batch_ops.batch_create('items', '[{"sku": "k2", "qty": 1}]', idempotency_key => NULL)->'data'->0->>'sku' AS created;
SELECT count(*) = :keys_before AS nothing_stored FROM batch_ops.idempotency_keys;

-- ---------------------------------------------------------------------------
-- Roles: keys are per role, and the key table is closed to them
-- ---------------------------------------------------------------------------

CREATE ROLE bo_idem_alice;
CREATE ROLE bo_idem_bob;
GRANT USAGE ON SCHEMA bo_idem TO bo_idem_alice, bo_idem_bob;
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO bo_idem_alice, bo_idem_bob;
GRANT USAGE ON SEQUENCE items_id_seq TO bo_idem_alice, bo_idem_bob;

SET ROLE bo_idem_alice;
SELECT batch_ops.batch_create('items', '[{"sku": "alice", "qty": 1}]',
    idempotency_key => 'idem-shared')->'data'->0->>'sku' AS created;
-- Bob's call with the same key is his own: it runs, even with other items
SET ROLE bo_idem_bob;
SELECT batch_ops.batch_create('items', '[{"sku": "bob", "qty": 1}]',
    idempotency_key => 'idem-shared')->'data'->0->>'sku' AS created;
-- and so is his call with Alice's exact request: it runs (and conflicts)
SELECT batch_ops.batch_create('items', '[{"sku": "alice", "qty": 1}]',
    idempotency_key => 'idem-alice')->'errors'->0->>'error' AS error;
-- Bob cannot read the stored responses, nor change them, nor purge
SELECT count(*) FROM batch_ops.idempotency_keys;
\echo :SQLSTATE
DELETE FROM batch_ops.idempotency_keys;
\echo :SQLSTATE
SELECT batch_ops.purge();
\echo :SQLSTATE
RESET ROLE;
SELECT * FROM keys WHERE key IN ('idem-shared', 'idem-alice');

-- Alice's own retry replays her response.
SET ROLE bo_idem_alice;
SELECT batch_ops.batch_create('items', '[{"sku": "alice", "qty": 1}]',
    idempotency_key => 'idem-shared')->'data'->0->>'sku' AS replayed;
RESET ROLE;

-- A key belongs to the current user: in SECURITY DEFINER code, that is the
-- function's owner.
CREATE FUNCTION alice_create(sku text) RETURNS jsonb
LANGUAGE sql SECURITY DEFINER SET search_path = bo_idem, public AS $$
    SELECT batch_ops.batch_create('bo_idem.items',
        jsonb_build_array(jsonb_build_object('sku', sku, 'qty', 1)),
        idempotency_key => 'idem-definer')
$$;
ALTER FUNCTION alice_create(text) OWNER TO bo_idem_alice;
SET ROLE bo_idem_bob;
SELECT alice_create('definer')->'data'->0->>'sku' AS created;
RESET ROLE;
SELECT role, key FROM keys WHERE key = 'idem-definer';

-- ---------------------------------------------------------------------------
-- Expiry and purge
-- ---------------------------------------------------------------------------

SHOW batch_ops.idempotency_ttl;
SET batch_ops.idempotency_ttl = '90min';
SELECT batch_ops.batch_create('items', '[{"sku": "t1", "qty": 1}]',
    idempotency_key => 'idem-ttl-1')->'data'->0->>'sku' AS created;
SELECT key, ttl FROM keys WHERE key = 'idem-ttl-1';
RESET batch_ops.idempotency_ttl;
-- not a setting a role may change itself
SET ROLE bo_idem_alice;
SET batch_ops.idempotency_ttl = '1s';
RESET ROLE;

-- An expired key counts as absent: the call runs, even with another request,
-- and the key starts a new life.
UPDATE batch_ops.idempotency_keys SET created_at = created_at - interval '2 days',
       expires_at = expires_at - interval '2 days'
 WHERE key = 'idem-ttl-1';
SELECT batch_ops.batch_create('items', '[{"sku": "t2", "qty": 1}]',
    idempotency_key => 'idem-ttl-1')->'data'->0->>'sku' AS created;
SELECT key, expires_at > now() AS live, expires_at - created_at AS ttl
  FROM batch_ops.idempotency_keys WHERE key = 'idem-ttl-1';

-- purge() deletes the expired keys, of every role, and says how many.
UPDATE batch_ops.idempotency_keys SET created_at = created_at - interval '2 days',
       expires_at = expires_at - interval '2 days'
 WHERE key IN ('idem-ttl-1', 'idem-shared');
SELECT batch_ops.purge() AS purged;
SELECT role, key FROM keys WHERE key IN ('idem-ttl-1', 'idem-shared');
SELECT batch_ops.purge() AS purged;

-- A large response is stored compressed or out of line (TOAST); its replay
-- is the same answer, whatever memory the lookup used.
CREATE FUNCTION big_items(tag text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_agg(jsonb_build_object(
           'sku', tag || '-' || i || '-' || md5(tag || i) || md5(i || tag) || md5(tag || i || tag),
           'qty', i))
    FROM generate_series(1, 100) i $$;
CREATE TEMP TABLE big_answer AS
SELECT batch_ops.batch_create('items', big_items('big'), idempotency_key => 'idem-big') AS first;
SELECT pg_column_size(k.response) > 2000 AS large,
       b.first = batch_ops.batch_create('items', big_items('big'), idempotency_key => 'idem-big') AS replayed_same,
       jsonb_array_length(b.first->'data') AS rows
  FROM big_answer b, batch_ops.idempotency_keys k WHERE k.key = 'idem-big';
SELECT count(*) AS rows_once FROM items WHERE sku LIKE 'big-%';

-- ---------------------------------------------------------------------------
-- Clean up
-- ---------------------------------------------------------------------------
DELETE FROM batch_ops.idempotency_keys WHERE key LIKE 'idem-%';
SET client_min_messages = warning;
DROP SCHEMA bo_idem CASCADE;
DROP OWNED BY bo_idem_alice, bo_idem_bob;
DROP ROLE bo_idem_alice, bo_idem_bob;
