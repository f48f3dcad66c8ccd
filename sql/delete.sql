--
-- batch_delete: delete rows by primary key.
--
-- ids is a JSON array of key values ("u1"), of {"id": value} objects, or --
-- for composite keys -- of objects of the key columns.  The answer is
-- {"deleted": n, "errors": [...]}; each error carries the id as given.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_delete;
SET search_path = bo_delete, public;

CREATE TABLE notes (id integer PRIMARY KEY, body text);
INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 10) i;

-- Key values, and {"id": value} objects, mixed freely.
SELECT batch_ops.batch_delete('notes', '[1, 2, {"id": 3}]');
SELECT id FROM notes ORDER BY id;

-- A key that matches no row is "not_found"; the others are still deleted.
SELECT batch_ops.batch_delete('notes', '[4, 40, 5]');

-- The same key twice: the first deletes the row, the second finds nothing.
SELECT batch_ops.batch_delete('notes', '[6, 6]');

-- Values that are not keys: a value the key type rejects is a
-- validation_error; null, arrays and objects with other keys are invalid.
SELECT batch_ops.batch_delete('notes', '["seven", null, [7], {"id": 7, "body": "x"}, {"nope": 7}, 7]');
SELECT id FROM notes ORDER BY id;

-- A number given as a JSON string is read with the key type's input function.
SELECT batch_ops.batch_delete('notes', '["8"]');

-- An empty array deletes nothing.
SELECT batch_ops.batch_delete('notes', '[]');

-- Named argument "ids".
SELECT batch_ops.batch_delete(target => 'notes', ids => '[9]');

-- Text and uuid keys.
CREATE TABLE users (username text PRIMARY KEY);
INSERT INTO users VALUES ('u1'), ('u2'), ('u3');
SELECT batch_ops.batch_delete('users', '["u1", {"id": "u2"}, "U3"]');
SELECT * FROM users;
CREATE TABLE sessions (id uuid PRIMARY KEY);
INSERT INTO sessions VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12');
SELECT batch_ops.batch_delete('sessions',
    '["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "not-a-uuid"]');
SELECT * FROM sessions;

-- Composite keys: objects of the key columns, or {"id": {...}}.  A bare
-- value, or an object that lacks a key column, is an invalid item.
CREATE TABLE memberships (org text, member integer, role text, PRIMARY KEY (org, member));
INSERT INTO memberships VALUES ('acme', 1, 'admin'), ('acme', 2, 'user'), ('acme', 3, 'user'), ('initech', 1, 'user');
SELECT batch_ops.batch_delete('memberships',
    '[{"org": "acme", "member": 1},
      {"id": {"org": "acme", "member": 2}},
      {"org": "acme"},
      "acme",
      {"org": "acme", "member": 3, "role": "user"},
      {"org": "globex", "member": 1}]');
SELECT * FROM memberships ORDER BY org, member;

-- A row that another table still references cannot be deleted: that id is a
-- "reference_error" with PostgreSQL's detail; the others are deleted.
CREATE TABLE authors (id integer PRIMARY KEY, name text);
CREATE TABLE books (id integer PRIMARY KEY, author integer REFERENCES authors);
INSERT INTO authors VALUES (1, 'ann'), (2, 'ben'), (3, 'cy');
INSERT INTO books VALUES (10, 2);
SELECT batch_ops.batch_delete('authors', '[1, 2, 3]');
SELECT * FROM authors ORDER BY id;

-- ON DELETE CASCADE works as for a DELETE statement.
CREATE TABLE chapters (id integer PRIMARY KEY, book integer REFERENCES books ON DELETE CASCADE);
INSERT INTO chapters VALUES (100, 10), (101, 10);
SELECT batch_ops.batch_delete('books', '[10]');
SELECT count(*) AS chapters_left FROM chapters;

-- The deletes run in the caller's transaction.
BEGIN;
SELECT batch_ops.batch_delete('authors', '[2]');
ROLLBACK;
SELECT * FROM authors ORDER BY id;

SET client_min_messages = warning;
DROP SCHEMA bo_delete CASCADE;
RESET client_min_messages;
RESET search_path;
