--
-- Privileges and row-level security.
--
-- The batch functions are SECURITY INVOKER: they act with the caller's
-- privileges, and row-level security applies.  What the caller may not do is
-- a "permission_denied" item (SQLSTATE 42501), never a way around the rules:
-- missing table or column privileges, rows an RLS policy's WITH CHECK
-- rejects.  Rows a policy hides are not found, as for UPDATE and DELETE
-- statements.  Answers never show columns the caller may not read.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_priv;
SET search_path = bo_priv, public;
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_bo_alice;   -- left over from an interrupted run
DROP ROLE IF EXISTS regress_bo_bob;
RESET client_min_messages;
CREATE ROLE regress_bo_alice;
CREATE ROLE regress_bo_bob;
GRANT USAGE ON SCHEMA bo_priv TO regress_bo_alice, regress_bo_bob;

--
-- Table privileges.
--
CREATE TABLE readonly (id integer PRIMARY KEY, v text);
INSERT INTO readonly VALUES (1, 'one');
GRANT SELECT ON readonly TO regress_bo_alice;

-- Alice may only read: every item of every operation is permission_denied,
-- and the table is unchanged.
SET ROLE regress_bo_alice;
SELECT batch_ops.batch_create('readonly', '[{"id": 2, "v": "two"}]');
SELECT batch_ops.batch_update('readonly', '[{"id": 1, "v": "uno"}]');
SELECT batch_ops.batch_delete('readonly', '[1]');
SELECT batch_ops.batch_delete('readonly', '[1]', atomic => true);
RESET ROLE;
SELECT * FROM readonly ORDER BY id;

--
-- Column privileges.
--
CREATE TABLE staff (
    id      integer PRIMARY KEY,
    name    text NOT NULL,
    team    text,
    salary  integer,
    secret  text DEFAULT 'hidden'
);
INSERT INTO staff VALUES (1, 'ann', 'red', 100, 's1'), (2, 'ben', 'blue', 200, 's2');
GRANT SELECT (id, name, team), INSERT (id, name, team), UPDATE (team) ON staff TO regress_bo_alice;

SET ROLE regress_bo_alice;
-- Alice may insert id, name and team: an item that gives salary is refused,
-- naming the column.  The rows come back without the columns she may not
-- read (salary, secret) -- not even the default that filled secret.
SELECT batch_ops.batch_create('staff',
    '[{"id": 3, "name": "cy", "team": "red"}, {"id": 4, "name": "di", "salary": 999}]');
-- She may update team, but not name or salary.
SELECT batch_ops.batch_update('staff',
    '[{"id": 1, "team": "green"}, {"id": 2, "name": "BEN"}, {"id": 2, "salary": 1}]');
-- A conflict on a key she can read shows the key, as INSERT would.
SELECT batch_ops.batch_create('staff', '[{"id": 1, "name": "dup"}]');
RESET ROLE;
SELECT * FROM staff ORDER BY id;

-- Rows are found by their primary key, which needs SELECT on the key
-- columns: with UPDATE but no SELECT, items are permission_denied.
CREATE TABLE counters (id integer PRIMARY KEY, n integer);
INSERT INTO counters VALUES (1, 0);
GRANT UPDATE, DELETE ON counters TO regress_bo_alice;
SET ROLE regress_bo_alice;
SELECT batch_ops.batch_update('counters', '[{"id": 1, "n": 5}]');
SELECT batch_ops.batch_delete('counters', '[1]');
RESET ROLE;
SELECT * FROM counters;

-- INSERT without SELECT: the row is stored, and the answer shows none of it.
-- A conflict does not reveal the existing key either.
CREATE TABLE dropbox (id integer PRIMARY KEY, msg text);
INSERT INTO dropbox VALUES (1, 'first');
GRANT INSERT ON dropbox TO regress_bo_alice;
SET ROLE regress_bo_alice;
SELECT batch_ops.batch_create('dropbox', '[{"id": 2, "msg": "hi"}, {"id": 1, "msg": "again"}]');
RESET ROLE;
SELECT * FROM dropbox ORDER BY id;

--
-- Row-level security.
--
CREATE TABLE documents (
    id      integer PRIMARY KEY,
    owner   name NOT NULL DEFAULT current_user,
    title   text
);
INSERT INTO documents VALUES (1, 'regress_bo_alice', 'alice 1'), (2, 'regress_bo_bob', 'bob 1');
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON documents
    USING (owner = current_user)
    WITH CHECK (owner = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO regress_bo_alice, regress_bo_bob;

SET ROLE regress_bo_alice;
-- Alice can create her own rows (the DEFAULT current_user is the caller,
-- not some definer); a row for Bob is rejected by the policy.
SELECT batch_ops.batch_create('documents',
    '[{"id": 3, "title": "alice 2"}, {"id": 4, "owner": "regress_bo_bob", "title": "forged"}]');
-- Bob's row is invisible to her: updating or deleting it is not_found,
-- exactly as if it did not exist.  Handing her own row to Bob breaks the
-- policy's WITH CHECK: permission_denied.
SELECT batch_ops.batch_update('documents',
    '[{"id": 2, "title": "hacked"}, {"id": 1, "title": "alice 1 v2"}, {"id": 3, "owner": "regress_bo_bob"}]');
SELECT batch_ops.batch_delete('documents', '[2]');
-- Creating a row with the key of Bob's hidden row fails on the unique index,
-- but the answer does not show the hidden row's key.
SELECT batch_ops.batch_create('documents', '[{"id": 2, "title": "mine?"}]');
-- In atomic mode a policy violation rolls the batch back like any failure.
SELECT batch_ops.batch_create('documents',
    '[{"id": 5, "title": "ok"}, {"id": 6, "owner": "regress_bo_bob"}]', atomic => true);
SELECT * FROM documents ORDER BY id;
RESET ROLE;

SET ROLE regress_bo_bob;
SELECT * FROM documents ORDER BY id;
RESET ROLE;

-- The table owner (here a superuser) is not subject to the policy.
SELECT * FROM documents ORDER BY id;

--
-- Schema privileges: without USAGE on the table's schema the table cannot
-- even be named.
--
CREATE SCHEMA bo_priv_closed;
CREATE TABLE bo_priv_closed.vault (id integer PRIMARY KEY);
GRANT ALL ON bo_priv_closed.vault TO regress_bo_alice;
SET ROLE regress_bo_alice;
SELECT batch_ops.batch_create('bo_priv_closed.vault', '[{"id": 1}]');
RESET ROLE;

SET client_min_messages = warning;
DROP SCHEMA bo_priv CASCADE;
DROP SCHEMA bo_priv_closed CASCADE;
DROP ROLE regress_bo_alice;
DROP ROLE regress_bo_bob;
RESET client_min_messages;
RESET search_path;
