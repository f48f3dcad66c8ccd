--
-- Types: how JSON values become column values, and back.
--
-- A JSON string is read with the column type's input function (so "2024-01-31"
-- fills a date, "{1,2}" an integer array); a number by its text; true/false
-- fill booleans; null is SQL NULL.  json and jsonb columns take the JSON value
-- itself.  A JSON array fills an array column.  Domains apply their NOT NULL
-- and CHECK constraints.  A value the type rejects is a validation_error.
-- Returned rows are in to_jsonb() form.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_types;
SET search_path = bo_types, public;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET intervalstyle = 'postgres';

-- Numbers: integers of every size, exact numerics of any precision, and
-- floating point.  bigint and numeric values are exact (no float detour).
CREATE TABLE numbers (
    id      integer PRIMARY KEY,
    small   smallint,
    big     bigint,
    exact   numeric,
    money2  numeric(8,2),
    approx  double precision,
    real4   real
);
SELECT batch_ops.batch_create('numbers',
    '[{"id": 1, "small": -32768, "big": 9007199254740993, "exact": 12345678901234567890.123456789012345,
       "money2": 1.005, "approx": 0.1, "real4": 1.5},
      {"id": 2, "exact": 1e-20, "money2": "12.3", "approx": 1.5e30, "big": "-9223372036854775808"},
      {"id": 3, "exact": "NaN", "approx": "Infinity"},
      {"id": 4, "small": 1.5},
      {"id": 5, "big": 9223372036854775808},
      {"id": 6, "money2": 1000000},
      {"id": 7, "exact": true}]');
SELECT id, big, exact, money2, approx FROM numbers ORDER BY id;

-- Text types: a number or boolean given for a text column is stored as its
-- JSON text; char(n) pads, varchar(n) limits.
CREATE TABLE texts (id integer PRIMARY KEY, t text, c char(4), v varchar(3), u uuid, ci text COLLATE "C");
SELECT batch_ops.batch_create('texts',
    '[{"id": 1, "t": "héllo \"quoted\" \\ back", "c": "ab", "v": "abc", "u": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"},
      {"id": 2, "t": 42.50, "c": true},
      {"id": 3, "t": "", "v": "abcd"},
      {"id": 4, "u": "xyz"},
      {"id": 5, "t": {"an": "object"}},
      {"id": 6, "t": ["an", "array"]}]');

-- Booleans: JSON true/false, or any text boolean input accepts.
CREATE TABLE flags (id integer PRIMARY KEY, b boolean);
SELECT batch_ops.batch_create('flags',
    '[{"id": 1, "b": true}, {"id": 2, "b": false}, {"id": 3, "b": "yes"}, {"id": 4, "b": "off"},
      {"id": 5, "b": 1}, {"id": 6, "b": "maybe"}, {"id": 7, "b": null}]');

-- Dates and times come back in to_jsonb()'s ISO form.
CREATE TABLE times (id integer PRIMARY KEY, d date, ts timestamp, tstz timestamptz, i interval, t time);
SELECT batch_ops.batch_create('times',
    '[{"id": 1, "d": "2024-01-31", "ts": "2024-01-31 12:34:56.789", "tstz": "2024-01-31T12:00:00+02:00",
       "i": "1 day 2 hours", "t": "23:59:59"},
      {"id": 2, "d": "infinity", "tstz": "epoch"},
      {"id": 3, "d": "31/01/2024"},
      {"id": 4, "ts": 20240131}]');

-- Arrays: a JSON array, nested arrays for more dimensions, or an array
-- literal string; elements are checked like single values.
CREATE TABLE arrays (id integer PRIMARY KEY, ints integer[], words text[], grid integer[][], stamps date[]);
SELECT batch_ops.batch_create('arrays',
    '[{"id": 1, "ints": [1, 2, 3], "words": ["a", "b c", "d\"e", "f,g", "{h}", null], "grid": [[1, 2], [3, 4]]},
      {"id": 2, "ints": "{4,5}", "words": [], "stamps": ["2024-01-01", "2024-12-31"]},
      {"id": 3, "ints": [1, "two"]},
      {"id": 4, "grid": [[1, 2], [3]]},
      {"id": 5, "ints": 7},
      {"id": 6, "ints": [[1], [2]]}]');
SELECT id, ints, words, grid, stamps FROM arrays ORDER BY id;

-- json and jsonb columns take any JSON value as it is -- an object, an
-- array, a string, a number, true -- except null, which is SQL NULL.
CREATE TABLE docs (id integer PRIMARY KEY, body jsonb, raw json);
SELECT batch_ops.batch_create('docs',
    '[{"id": 1, "body": {"a": [1, {"b": null}]}, "raw": {"x": 1}},
      {"id": 2, "body": [1, "two"], "raw": [true]},
      {"id": 3, "body": "just a string", "raw": "s"},
      {"id": 4, "body": 3.14, "raw": 2},
      {"id": 5, "body": true, "raw": false},
      {"id": 6, "body": null, "raw": null}]');
SELECT id, body, jsonb_typeof(body) AS body_type, raw::text FROM docs ORDER BY id;
-- Updating a jsonb column replaces the whole value.
SELECT batch_ops.batch_update('docs', '[{"id": 1, "body": {"replaced": true}}]');

-- Domains: the base type's input, then the domain's NOT NULL and CHECK,
-- both for creates and for updates.
CREATE DOMAIN percent AS integer CHECK (VALUE BETWEEN 0 AND 100);
CREATE DOMAIN email AS text NOT NULL CHECK (VALUE LIKE '%@%');
CREATE DOMAIN tags AS text[] CHECK (cardinality(VALUE) <= 2);
CREATE TABLE profiles (id integer PRIMARY KEY, mail email, score percent DEFAULT 50, labels tags);
SELECT batch_ops.batch_create('profiles',
    '[{"id": 1, "mail": "a@example.com"},
      {"id": 2, "mail": "b@example.com", "score": 101},
      {"id": 3, "mail": "not an address"},
      {"id": 4, "mail": null},
      {"id": 5, "mail": "e@example.com", "labels": ["x", "y", "z"]},
      {"id": 6, "mail": "f@example.com", "score": "high"},
      {"id": 7, "mail": "g@example.com", "labels": ["x"]}]');
SELECT batch_ops.batch_update('profiles', '[{"id": 1, "score": 100}, {"id": 1, "score": -1}, {"id": 7, "mail": null}]');

-- Enums, ranges, network addresses, bytea and composite types use their
-- input functions; a composite can also be given as a JSON string literal.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE point2 AS (x integer, y integer);
CREATE TABLE misc (id integer PRIMARY KEY, m mood, r int4range, addr inet, bin bytea, pt point2);
SELECT batch_ops.batch_create('misc',
    '[{"id": 1, "m": "happy", "r": "[1,10)", "addr": "192.168.0.1/24", "bin": "\\xdeadbeef", "pt": "(1,2)"},
      {"id": 2, "m": "angry"},
      {"id": 3, "r": "[10,1)"},
      {"id": 4, "addr": "999.1.1.1"}]');

SET client_min_messages = warning;
DROP SCHEMA bo_types CASCADE;
RESET client_min_messages;
RESET search_path;
RESET timezone;
RESET datestyle;
RESET intervalstyle;
