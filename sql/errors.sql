--
-- Errors: what is an item's fault, and what is not.
--
-- An item that fails gets an entry in "errors":
--   {"index": i, "error": name, "message": ..., "sqlstate": ...,
--    "detail"/"constraint"/"column" where known, "item": the item as given}
-- with these stable names:
--   validation_error     SQLSTATE class 22, 23502, 23514, unknown column,
--                        wrong JSON type, a generated column written
--   conflict             23505
--   reference_error      23503
--   exclusion_violation  23P01
--   not_found            update/delete of a missing key
--   permission_denied    42501, row-level security (see privileges.sql)
--   invalid_item         not an object, missing key, key change
--   trigger_error        P0001 raised by a user trigger (see triggers.sql)
--
-- Errors that are not the item's fault -- serialization failure, deadlock,
-- cancel and timeouts, out of memory, shutdown, internal errors -- are never
-- swallowed: they are raised as the ERROR they are.  Bad arguments are an
-- ERROR too, and change nothing.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_errors;
SET search_path = bo_errors, public;

CREATE TABLE customers (id integer PRIMARY KEY, email text UNIQUE);
INSERT INTO customers VALUES (1, 'a@example.com');
CREATE TABLE orders (
    id        integer PRIMARY KEY,
    customer  integer NOT NULL REFERENCES customers,
    code      varchar(6),
    qty       smallint CHECK (qty > 0),
    due       date,
    total     numeric(6,2),
    CONSTRAINT sensible_total CHECK (total < 1000)
);

-- validation_error, from every source: NOT NULL (23502), CHECK (23514,
-- with the constraint's name), a string too long (22001), a number out of
-- range (22003), a bad date (22008), numeric overflow (22003), text that is
-- not a number (22P02), a JSON object for a scalar column (42804), an
-- unknown column (42703, naming the column).
SELECT jsonb_pretty(batch_ops.batch_create('orders',
    '[{"id": 1, "customer": null},
      {"id": 2, "customer": 1, "qty": 0},
      {"id": 3, "customer": 1, "code": "TOO-LONG"},
      {"id": 4, "customer": 1, "qty": 40000},
      {"id": 5, "customer": 1, "due": "2024-02-30"},
      {"id": 6, "customer": 1, "total": 12345.67},
      {"id": 7, "customer": 1, "qty": "abc"},
      {"id": 8, "customer": 1, "qty": {"n": 1}},
      {"id": 9, "customer": 1, "colour": "red"},
      {"id": 10, "customer": 1, "total": 1500}]') -> 'errors');

-- conflict (23505) and reference_error (23503), with the detail and the
-- constraint that PostgreSQL reports.
SELECT batch_ops.batch_create('customers', '[{"id": 2, "email": "a@example.com"}]');
SELECT batch_ops.batch_create('orders', '[{"id": 20, "customer": 42}]');

-- exclusion_violation (23P01).
CREATE TABLE bookings (
    id      integer PRIMARY KEY,
    room    integer NOT NULL,
    during  int4range NOT NULL,
    EXCLUDE USING gist (during WITH &&)
);
SELECT batch_ops.batch_create('bookings',
    '[{"id": 1, "room": 1, "during": "[1,5)"}, {"id": 2, "room": 1, "during": "[3,8)"}, {"id": 3, "room": 1, "during": "[5,9)"}]');
SELECT * FROM bookings ORDER BY id;

-- The error entry carries the item exactly as given, and its 0-based index.
SELECT e ->> 'index' AS index, e -> 'item' AS item
FROM jsonb_array_elements(batch_ops.batch_create('customers',
    '[{"id": 3}, {"id": 1, "extra": [1, {"deep": true}]}, {"id": 4}]') -> 'errors') e;

--
-- Bad arguments: an ERROR, and nothing is applied.
--

-- items must be a JSON array (22023) ...
SELECT batch_ops.batch_create('customers', '{"id": 5}');
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_update('customers', '"not an array"');
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_delete('customers', '5');
\echo :LAST_ERROR_SQLSTATE
-- ... and not NULL (22004); nor may target or atomic be NULL.
SELECT batch_ops.batch_create('customers', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_delete('customers', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_create(NULL, '[{"id": 5}]');
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_update(NULL::regclass, '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_create('customers', '[{"id": 5}]', atomic => NULL);
\echo :LAST_ERROR_SQLSTATE

-- An unknown table is refused by the regclass argument itself.
SELECT batch_ops.batch_create('no_such_table', '[]');
\echo :LAST_ERROR_SQLSTATE

-- Only tables can be written to: views, materialized views, foreign tables
-- and sequences are refused with 42809 (wrong_object_type).
CREATE VIEW customer_view AS SELECT * FROM customers;
SELECT batch_ops.batch_create('customer_view', '[{"id": 5}]');
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW customer_matview AS SELECT * FROM customers;
SELECT batch_ops.batch_delete('customer_matview', '[1]');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN DATA WRAPPER bo_errors_fdw;
CREATE SERVER bo_errors_server FOREIGN DATA WRAPPER bo_errors_fdw;
CREATE FOREIGN TABLE remote_customers (id integer) SERVER bo_errors_server;
SELECT batch_ops.batch_update('remote_customers', '[{"id": 1}]');
\echo :LAST_ERROR_SQLSTATE
CREATE SEQUENCE some_seq;
SELECT batch_ops.batch_create('some_seq', '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_create('customers_pkey', '[]');
\echo :LAST_ERROR_SQLSTATE

-- batch_update and batch_delete find rows by primary key: a table without
-- one is refused with a hint (batch_create works, see create.sql).
CREATE TABLE keyless (a integer UNIQUE, b text);
SELECT batch_ops.batch_update('keyless', '[{"a": 1, "b": "x"}]');
SELECT batch_ops.batch_delete('keyless', '[1]');
SELECT count(*) AS customers FROM customers;

--
-- Errors that are not the item's fault are raised, not reported as items.
-- A trigger raises each kind of error here; the batch stops with that ERROR
-- and its SQLSTATE, and nothing of the batch stays applied -- not even the
-- items before the failing one.
--
CREATE TABLE jobs (id integer PRIMARY KEY, action text);
CREATE FUNCTION jobs_act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.action = 'sleep' THEN
        PERFORM pg_sleep(5);
    ELSIF NEW.action LIKE 'raise %' THEN
        RAISE EXCEPTION 'simulated error %', substr(NEW.action, 7)
            USING ERRCODE = substr(NEW.action, 7);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_act BEFORE INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_act();

-- serialization_failure
SELECT batch_ops.batch_create('jobs', '[{"id": 1, "action": "ok"}, {"id": 2, "action": "raise 40001"}]');
\echo :LAST_ERROR_SQLSTATE
-- deadlock_detected
SELECT batch_ops.batch_create('jobs', '[{"id": 1, "action": "ok"}, {"id": 2, "action": "raise 40P01"}]');
\echo :LAST_ERROR_SQLSTATE
-- out_of_memory
SELECT batch_ops.batch_create('jobs', '[{"id": 1, "action": "ok"}, {"id": 2, "action": "raise 53200"}]');
\echo :LAST_ERROR_SQLSTATE
-- query_canceled
SELECT batch_ops.batch_create('jobs', '[{"id": 1, "action": "ok"}, {"id": 2, "action": "raise 57014"}]');
\echo :LAST_ERROR_SQLSTATE
-- admin_shutdown
SELECT batch_ops.batch_create('jobs', '[{"id": 1, "action": "ok"}, {"id": 2, "action": "raise 57P01"}]');
\echo :LAST_ERROR_SQLSTATE
-- internal_error
SELECT batch_ops.batch_create('jobs', '[{"id": 1, "action": "ok"}, {"id": 2, "action": "raise XX000"}]');
\echo :LAST_ERROR_SQLSTATE
-- the same in atomic mode, and for updates
SELECT batch_ops.batch_create('jobs', '[{"id": 1, "action": "ok"}, {"id": 2, "action": "raise 40001"}]', atomic => true);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO jobs VALUES (1, 'ok'), (2, 'ok');
SELECT batch_ops.batch_update('jobs', '[{"id": 1, "action": "ok again"}, {"id": 2, "action": "raise 40P01"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM jobs ORDER BY id;

-- A real statement timeout cancels the batch with 57014.
SET statement_timeout = '200ms';
SELECT batch_ops.batch_create('jobs', '[{"id": 3, "action": "ok"}, {"id": 4, "action": "sleep"}]');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT * FROM jobs ORDER BY id;

-- In a transaction block the ERROR aborts the transaction, as any ERROR does;
-- nothing the batch did survives.
BEGIN;
SELECT batch_ops.batch_create('jobs', '[{"id": 5, "action": "ok"}, {"id": 6, "action": "raise 40001"}]');
SELECT 1;
ROLLBACK;
SELECT * FROM jobs ORDER BY id;

-- A data error raised by a trigger is the item's fault (class 22).
SELECT batch_ops.batch_create('jobs', '[{"id": 7, "action": "ok"}, {"id": 8, "action": "raise 22012"}]');

-- A batch inside a batch (a trigger that calls batch_create), and a batch
-- after an error that PL/pgSQL caught, in the same transaction: each call
-- has memory of its own and works as usual.
CREATE TABLE audit_log (id serial PRIMARY KEY, note text);
CREATE TABLE watched (id integer PRIMARY KEY);
CREATE FUNCTION watched_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM batch_ops.batch_create('audit_log',
        jsonb_build_array(jsonb_build_object('note', 'row ' || NEW.id)));
    RETURN NEW;
END $$;
CREATE TRIGGER watched_log AFTER INSERT ON watched FOR EACH ROW EXECUTE FUNCTION watched_log();
SELECT batch_ops.batch_create('watched', '[{"id": 1}, {"id": 2}]') AS watched;
DO $$
BEGIN
    BEGIN
        PERFORM batch_ops.batch_create('jobs', '[{"id": 9, "action": "raise 40001"}]');
    EXCEPTION WHEN serialization_failure THEN
        RAISE NOTICE 'caught: %', SQLERRM;
    END;
    PERFORM batch_ops.batch_create('watched', '[{"id": 3}]');
END $$;
SELECT note FROM audit_log ORDER BY id;

SET client_min_messages = warning;
DROP SCHEMA bo_errors CASCADE;
DROP SERVER bo_errors_server;
DROP FOREIGN DATA WRAPPER bo_errors_fdw;
RESET client_min_messages;
RESET search_path;
