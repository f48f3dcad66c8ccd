--
-- Atomic mode (atomic => true): all or nothing.
--
-- If any item fails, nothing of the batch stays applied, "data" is all null,
-- "errors" lists EVERY failing item (not only the first) and the answer has
-- "rolled_back": true.  It is an answer, not an ERROR: the caller's
-- transaction stays usable.  A batch without failures answers
-- "rolled_back": false.  Partial mode answers have no "rolled_back" key.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_atomic;
SET search_path = bo_atomic, public;

CREATE TABLE teams (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO teams VALUES (1, 'red'), (2, 'blue');
CREATE TABLE players (
    id      integer PRIMARY KEY,
    name    text NOT NULL,
    team    integer REFERENCES teams,
    score   integer NOT NULL DEFAULT 0 CHECK (score >= 0)
);

-- Atomic success: every row is stored, "rolled_back" is false.
SELECT batch_ops.batch_create('players',
    '[{"id": 1, "name": "ann", "team": 1}, {"id": 2, "name": "ben", "team": 2}]', atomic => true);

-- Atomic failure: item 1 breaks NOT NULL.  Item 0 would have worked, but
-- nothing is stored and its data slot is null too.
SELECT batch_ops.batch_create('players',
    '[{"id": 3, "name": "cy", "team": 1}, {"id": 4, "name": null}]', atomic => true);
SELECT id, name FROM players ORDER BY id;

-- Every failing item is reported, whatever the kind of failure: a NOT NULL
-- violation (item 1), a missing foreign key (item 2, found only by writing),
-- a CHECK violation (item 3), an existing key (item 4) and a repeated key
-- (item 6); items 0 and 5 are fine, and are not stored either.
SELECT batch_ops.batch_create('players',
    '[{"id": 10, "name": "ok"},
      {"id": 11, "name": null},
      {"id": 12, "name": "x", "team": 99},
      {"id": 13, "name": "y", "score": -5},
      {"id": 1, "name": "dup"},
      {"id": 15, "name": "ok too"},
      {"id": 15, "name": "again"}]', atomic => true);
SELECT id, name FROM players ORDER BY id;

-- The same with only failures that are found by writing (foreign keys).
SELECT batch_ops.batch_create('players',
    '[{"id": 20, "name": "a", "team": 1}, {"id": 21, "name": "b", "team": 98}, {"id": 22, "name": "c", "team": 99}]',
    atomic => true);
SELECT count(*) AS players FROM players;

-- The same batch in partial mode stores what it can, and has no "rolled_back".
SELECT batch_ops.batch_create('players',
    '[{"id": 20, "name": "a", "team": 1}, {"id": 21, "name": "b", "team": 98}, {"id": 22, "name": "c", "team": 99}]');
SELECT id, name, team FROM players ORDER BY id;

-- Atomic update: one missing row undoes the others.
SELECT batch_ops.batch_update('players',
    '[{"id": 1, "score": 10}, {"id": 2, "score": 20}, {"id": 404, "score": 1}]', atomic => true);
SELECT id, score FROM players ORDER BY id;
SELECT batch_ops.batch_update('players',
    '[{"id": 1, "score": 10}, {"id": 2, "score": 20}]', atomic => true);

-- Atomic update: a failure only the database can see (an unknown team) and
-- a bad value (a negative score), both reported; nothing changes.
SELECT batch_ops.batch_update('players',
    '[{"id": 1, "team": 77}, {"id": 2, "score": -1}, {"id": 20, "name": "fine"}]', atomic => true);
SELECT id, name, team, score FROM players ORDER BY id;

-- Atomic delete: {"deleted": 0, ..., "rolled_back": true} and every row
-- stays; without failures, the count and "rolled_back": false.
SELECT batch_ops.batch_delete('teams', '[1, 2]', atomic => true);
SELECT batch_ops.batch_delete('players', '[20, 999]', atomic => true);
SELECT id FROM players ORDER BY id;
SELECT batch_ops.batch_delete('players', '[20]', atomic => true);

-- Atomic mode with elements that are not objects: invalid items, rolled back.
SELECT batch_ops.batch_create('players', '[{"id": 30, "name": "z"}, 42]', atomic => true);

-- An empty atomic batch succeeds.
SELECT batch_ops.batch_create('players', '[]', atomic => true);
SELECT batch_ops.batch_delete('players', '[]', atomic => true);

-- The caller's transaction is still usable after a rolled-back batch: work
-- before and after it commits.
BEGIN;
INSERT INTO teams VALUES (3, 'green');
SELECT batch_ops.batch_create('players',
    '[{"id": 40, "name": "p", "team": 3}, {"id": 41, "name": "q", "team": 42}]', atomic => true) ->> 'rolled_back'
    AS rolled_back;
SELECT batch_ops.batch_create('players', '[{"id": 40, "name": "p", "team": 3}]', atomic => true) ->> 'rolled_back'
    AS rolled_back;
INSERT INTO teams VALUES (4, 'yellow');
COMMIT;
SELECT * FROM teams ORDER BY id;
SELECT id, name, team FROM players WHERE id >= 40 ORDER BY id;

-- Inside a savepoint too: the caller can still roll back to it afterwards.
BEGIN;
SAVEPOINT s;
SELECT batch_ops.batch_update('players', '[{"id": 40, "name": "p2"}, {"id": 0, "name": "x"}]', atomic => true)
    ->> 'rolled_back' AS rolled_back;
SELECT batch_ops.batch_update('players', '[{"id": 40, "name": "p3"}]', atomic => true) ->> 'rolled_back' AS rolled_back;
ROLLBACK TO SAVEPOINT s;
SELECT name FROM players WHERE id = 40;
COMMIT;

-- Sequences are not transactional: a rolled-back atomic create may use up
-- serial values, as a rolled-back INSERT does; the rows are gone.
CREATE TABLE events (id serial PRIMARY KEY, kind text NOT NULL CHECK (kind <> ''));
SELECT batch_ops.batch_create('events', '[{"kind": "a"}, {"kind": ""}]', atomic => true) - 'errors';
SELECT count(*) AS events FROM events;

SET client_min_messages = warning;
DROP SCHEMA bo_atomic CASCADE;
RESET client_min_messages;
RESET search_path;
