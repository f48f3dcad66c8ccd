--
-- Column names are the user's: none clashes with the engine's own names.
--
-- The engine's statements read the items as rows of the table, aliased
-- t (the table) and r (the items, one column per table column plus the
-- item's position).  Tables whose columns -- keys included -- are named
-- like those aliases, like the position column (__batch_ops_ord, and the
-- name it falls back to), like the ordinality column of unnest() or like
-- schemas and functions the statements name, work as any other table:
-- create, update and delete, with the prechecks (NOT NULL, CHECK,
-- duplicate and existing keys, the visible-key query of a table with a
-- BEFORE ROW trigger) and bisection all run.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_names;
SET search_path = bo_names, public;

-- Every name as a plain column; the position column's name unique.
CREATE TABLE clash (
    id              integer PRIMARY KEY,
    __batch_ops_ord integer UNIQUE,
    ordinality      bigint CHECK (ordinality >= 0),
    r               text NOT NULL,
    t               text,
    pg_catalog      integer,
    unnest          integer,
    to_jsonb        date,
    "RETURNING"     text,
    parent          integer REFERENCES clash (id)
);
SELECT batch_ops.batch_create('clash',
    '[{"id": 1, "__batch_ops_ord": 10, "ordinality": 0, "r": "a", "t": "x", "pg_catalog": 1,
       "unnest": 2, "to_jsonb": "2024-01-01", "RETURNING": "ret"},
      {"id": 2, "__batch_ops_ord": 20, "r": "b", "parent": 1},
      {"id": 3, "__batch_ops_ord": 10, "r": "dup position"},
      {"id": 4, "ordinality": -1, "r": "check"},
      {"id": 5, "r": null},
      {"id": 6, "r": "no parent", "parent": 99}]');
-- existing keys: on the primary key and on the unique column
SELECT batch_ops.batch_create('clash',
    '[{"id": 1, "r": "again"}, {"id": 7, "__batch_ops_ord": 20, "r": "taken"},
      {"id": 8, "__batch_ops_ord": 80, "r": "new"}]');
SELECT batch_ops.batch_update('clash',
    '[{"id": 1, "__batch_ops_ord": 11, "ordinality": 5, "t": "y"},
      {"id": 2, "r": "B", "parent": 98}, {"id": 9, "r": "none"},
      {"id": 8, "unnest": 3, "to_jsonb": null}, {"id": 8, "unnest": 4}]');
SELECT batch_ops.batch_update('clash',
    '[{"id": 1, "__batch_ops_ord": 12}, {"id": 2, "__batch_ops_ord": 12}]', true);
SELECT batch_ops.batch_delete('clash', '[1, 8, 42]');
SELECT batch_ops.batch_delete('clash', '[2, 1]', true);
SELECT * FROM clash ORDER BY id;

-- The names as a composite primary key, and both names the position
-- column could take: it falls back to the next free one.
CREATE TABLE clash_key (
    __batch_ops_ord   integer,
    __batch_ops_ord_1 text,
    ordinality        integer,
    t                 integer,
    PRIMARY KEY (__batch_ops_ord, __batch_ops_ord_1)
);
SELECT batch_ops.batch_create('clash_key',
    '[{"__batch_ops_ord": 1, "__batch_ops_ord_1": "a", "ordinality": 1, "t": 1},
      {"__batch_ops_ord": 1, "__batch_ops_ord_1": "b", "t": 2},
      {"__batch_ops_ord": 1, "__batch_ops_ord_1": "a", "t": 3}]');
SELECT batch_ops.batch_create('clash_key',
    '[{"__batch_ops_ord": 1, "__batch_ops_ord_1": "b", "t": 4},
      {"__batch_ops_ord": 2, "__batch_ops_ord_1": "c", "t": 5}]');
SELECT batch_ops.batch_update('clash_key',
    '[{"__batch_ops_ord": 1, "__batch_ops_ord_1": "a", "ordinality": 10},
      {"id": {"__batch_ops_ord": 2, "__batch_ops_ord_1": "c"}, "t": 50},
      {"__batch_ops_ord": 3, "__batch_ops_ord_1": "z", "t": 0},
      {"__batch_ops_ord": 1, "__batch_ops_ord_1": "a", "ordinality": 11}]');
SELECT batch_ops.batch_delete('clash_key',
    '[{"__batch_ops_ord": 1, "__batch_ops_ord_1": "b"}, {"id": {"__batch_ops_ord": 9, "__batch_ops_ord_1": "q"}}]');
SELECT * FROM clash_key ORDER BY 1, 2;

-- Tables named like the aliases, keyed by columns named like them.
CREATE TABLE r (t integer PRIMARY KEY, r text, __batch_ops_ord integer);
CREATE TABLE t (r text PRIMARY KEY, t integer);
SELECT batch_ops.batch_create('r', '[{"t": 1, "r": "one", "__batch_ops_ord": 5}, {"t": 2}, {"t": 1}]');
SELECT batch_ops.batch_update('r', '[{"t": 2, "r": "two", "__batch_ops_ord": 6}, {"t": 3, "r": "x"}]');
SELECT batch_ops.batch_delete('r', '[1, 3]');
SELECT batch_ops.batch_create('t', '[{"r": "a", "t": 1}, {"r": "b"}]');
SELECT batch_ops.batch_update('t', '[{"r": "a", "t": 10}]');
SELECT batch_ops.batch_delete('t', '["b"]', true);
SELECT * FROM r ORDER BY t;
SELECT * FROM t ORDER BY r;

-- A partitioned table (existing keys are found with a query) keyed by
-- the position column's name.
CREATE TABLE clash_part (
    r               text,
    __batch_ops_ord bigint,
    ordinality      integer,
    PRIMARY KEY (r, __batch_ops_ord)
) PARTITION BY LIST (r);
CREATE TABLE clash_part_a PARTITION OF clash_part FOR VALUES IN ('a');
CREATE TABLE clash_part_b PARTITION OF clash_part FOR VALUES IN ('b');
SELECT batch_ops.batch_create('clash_part',
    '[{"r": "a", "__batch_ops_ord": 1}, {"r": "b", "__batch_ops_ord": 1}, {"r": "a", "__batch_ops_ord": 2}]');
SELECT batch_ops.batch_create('clash_part',
    '[{"r": "a", "__batch_ops_ord": 3}, {"r": "a", "__batch_ops_ord": 1}, {"r": "c", "__batch_ops_ord": 1}]');
SELECT batch_ops.batch_update('clash_part',
    '[{"r": "b", "__batch_ops_ord": 1, "ordinality": 7}, {"r": "b", "__batch_ops_ord": 5, "ordinality": 1}]');
SELECT batch_ops.batch_delete('clash_part', '[{"r": "a", "__batch_ops_ord": 2}]');
SELECT * FROM clash_part ORDER BY 1, 2;

-- A BEFORE ROW trigger makes update and delete ask which keys exist.
CREATE TABLE clash_trig (__batch_ops_ord integer PRIMARY KEY, r text);
CREATE FUNCTION clash_trig_skip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RETURN CASE WHEN OLD.r = 'keep' THEN NULL ELSE OLD END;
    END IF;
    RETURN CASE WHEN NEW.r = 'skip' THEN NULL ELSE NEW END;
END $$;
CREATE TRIGGER clash_trig_skip BEFORE INSERT OR UPDATE OR DELETE ON clash_trig
    FOR EACH ROW EXECUTE FUNCTION clash_trig_skip();
SELECT batch_ops.batch_create('clash_trig',
    '[{"__batch_ops_ord": 1, "r": "a"}, {"__batch_ops_ord": 2, "r": "keep"}, {"__batch_ops_ord": 3, "r": "skip"}]');
SELECT batch_ops.batch_update('clash_trig',
    '[{"__batch_ops_ord": 1, "r": "skip"}, {"__batch_ops_ord": 2, "r": "b"}, {"__batch_ops_ord": 9, "r": "c"}]');
SELECT batch_ops.batch_delete('clash_trig', '[1, 2, 9]');
SELECT * FROM clash_trig ORDER BY 1;

-- Items that give no column at all: one row of defaults each.
CREATE TABLE defaults_only (__batch_ops_ord serial PRIMARY KEY, made text DEFAULT 'default');
SELECT batch_ops.batch_create('defaults_only', '[{}, {}, {}]');
SELECT batch_ops.batch_create('defaults_only', '[{}, {"__batch_ops_ord": 2}, {}]');
SELECT * FROM defaults_only ORDER BY 1;

SET client_min_messages = warning;
DROP SCHEMA bo_names CASCADE;
RESET client_min_messages;
