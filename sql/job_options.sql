--
-- Options of submit_import and submit_batch, and their targets, are checked
-- at submit time (issue #8 items 16 and 17): a wrong JSON type, a value out
-- of range, a fraction, a huge number, a string that looks like a number,
-- an empty or duplicated column list and an unknown name are each refused
-- with 22023 and a message that names the option and what it accepts.
-- Submits that pass are rolled back: no job runs.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
\set VERBOSITY default
CREATE SCHEMA bo_jobopt;
SET search_path = bo_jobopt, public;
CREATE TABLE items (id integer PRIMARY KEY, name text);

-- Integers: type, fraction, range, huge, strings
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": 1e30}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": -1e30}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": 10.5}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": 0}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": -5}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": 1000001}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": "100"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": "NaN"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": null}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"chunk_size": [100]}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"max_errors": -1}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"max_errors": 1e100}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"max_errors": 0.5}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"max_errors": "Infinity"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"max_record_bytes": 100}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"max_record_bytes": 1073741824}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"max_record_bytes": true}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"chunk_size": 1e30}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"chunk_size": 2.5}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"chunk_size": 100001}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"chunk_size": "10"}');
-- Booleans
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"header": "true"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"atomic": 1}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"atomic": null}');
-- Characters, strings, format, encoding
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"delimiter": ""}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"delimiter": ";;"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"quote": 1}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"escape": "\n"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"delimiter": "\u00e9"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"null": 0}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"null": "a\nb"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"null": "a,b"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"delimiter": "\"", "quote": "\""}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"format": "text"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"format": null}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"encoding": "klingon"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"encoding": 8}');
-- columns: type, elements, empty, duplicates
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": [1, 2]}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": "id"}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": []}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": [null, null]}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": ["id", ""]}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": ["id", "id"]}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": {"a": "id", "b": "id"}}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": {"a": ["id"]}}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"columns": {"a": "id"}, "header": false}');
-- unknown names list the valid ones; options must be an object
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"Chunk_Size": 10}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '{"": 10}');
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"max_errors": 10}');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', 'null');
SELECT batch_ops.submit_import('items', '/tmp/x.csv', '"chunk_size"');

-- Valid spellings pass (rolled back)
BEGIN;
SELECT batch_ops.submit_import('items', '/tmp/x.csv',
    '{"format": "CSV", "header": false, "delimiter": ";", "quote": "''", "escape": "\\",
      "null": "NULL", "encoding": "latin-1", "columns": ["id", null, "name"], "atomic": true,
      "chunk_size": 1e3, "max_errors": null, "max_record_bytes": 134217728}') > 0 AS ok;
SELECT batch_ops.submit_import('items', '/tmp/x.csv',
    '{"columns": {"ID": "id", "skip": null}, "chunk_size": 1000000, "max_errors": 0,
      "max_record_bytes": 1024}') > 0 AS ok;
SELECT batch_ops.submit_batch('create', 'items', '[]', '{"chunk_size": 100000, "atomic": false}') > 0 AS ok;
ROLLBACK;

-- TEMP tables cannot be job targets: a worker's session cannot see them
CREATE TEMP TABLE tmp_items (id integer PRIMARY KEY);
SELECT batch_ops.submit_import('tmp_items', '/tmp/x.csv');
SELECT batch_ops.submit_batch('create', 'tmp_items', '[{"id": 1}]');
SELECT batch_ops.submit_batch('delete', 'pg_temp.tmp_items', '[1]');
CREATE TEMP TABLE tmp_parted (id integer) PARTITION BY RANGE (id);
SELECT batch_ops.submit_batch('create', 'tmp_parted', '[{"id": 1}]');
-- an unlogged table is fine
CREATE UNLOGGED TABLE unlogged_items (id integer PRIMARY KEY);
BEGIN;
SELECT batch_ops.submit_batch('create', 'unlogged_items', '[{"id": 1}]') > 0 AS ok;
ROLLBACK;

DROP SCHEMA bo_jobopt CASCADE;
