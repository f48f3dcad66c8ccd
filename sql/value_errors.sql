--
-- A value its type refuses is its item's error, whatever the SQLSTATE.
--
-- Input functions do not all report bad text with a class 22 error: a
-- tsquery or jsonpath syntax error is 42601, an unknown relation for
-- regclass 42P01, an unknown type for regtype 42704, a function for
-- regproc 42883, and a domain's CHECK may call a function that raises any
-- code it likes.  Whatever the code, an error raised while converting an
-- item's own value fails that item only, as a validation_error with the
-- real SQLSTATE and message; the other items are written.  Errors that
-- are not about the value -- serialization failure, deadlock, cancel,
-- shutdown, out of memory, internal errors -- still end the whole call as
-- the ERROR they are, even when raised from a domain's CHECK.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_values;
SET search_path = bo_values, public;

-- A domain whose CHECK function raises a code of its own for odd numbers,
-- and one whose CHECK function raises the code the value names.
CREATE FUNCTION even_check(v integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF v % 2 <> 0 THEN
        RAISE EXCEPTION 'odd value %', v USING ERRCODE = 'BO001', HINT = 'Use an even number.';
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN even AS integer CHECK (even_check(VALUE));
CREATE FUNCTION raise_code(v text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF v LIKE 'raise %' THEN
        RAISE EXCEPTION 'raised %', substr(v, 7) USING ERRCODE = substr(v, 7);
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN checked AS text CHECK (raise_code(VALUE));
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');

CREATE TABLE docs (
    id     integer PRIMARY KEY,
    q      tsquery,
    path   jsonpath,
    rel    regclass,
    typ    regtype,
    fn     regproc,
    fnargs regprocedure,
    op     regoper,
    who    regrole,
    ns     regnamespace,
    cfg    regconfig,
    ev     even,
    chk    checked,
    net    cidr,
    host   inet,
    m      mood,
    qs     tsquery[],
    rels   regclass[],
    grid   integer[],
    moods  mood[],
    paths  jsonpath[]
);
CREATE TABLE notes (id integer PRIMARY KEY, body xml);

-- The errors of a response, one row each, and the items that were written.
CREATE FUNCTION errors_of(response jsonb)
RETURNS TABLE (index int, error text, sqlstate text, col text, message text)
LANGUAGE sql AS $$
    SELECT (e->>'index')::int, e->>'error', e->>'sqlstate', e->>'column', e->>'message'
      FROM jsonb_array_elements(response->'errors') e ORDER BY 1
$$;

-- Create: one bad value per item, of every kind, between good items.
SELECT * FROM errors_of(batch_ops.batch_create('docs', $j$[
    {"id": 1, "q": "cat & dog", "path": "$.a[*] ? (@ > 1)", "rel": "bo_values.docs",
     "typ": "integer[]", "fn": "pg_catalog.now", "fnargs": "pg_catalog.abs(integer)",
     "op": "pg_catalog.||/", "who": "pg_database_owner", "ns": "pg_catalog",
     "cfg": "pg_catalog.simple", "ev": 4, "chk": "fine", "net": "10.0.0.0/8",
     "host": "10.1.2.3", "m": "ok", "qs": ["a & b", "c"], "rels": ["bo_values.docs"],
     "grid": [[1, 2], [3, 4]], "moods": ["sad", "happy"], "paths": ["$.a", "$.b"]},
    {"id": 2, "q": "cat & & dog"},
    {"id": 3, "path": "$.a ? (@ >"},
    {"id": 4, "rel": "bo_values.no_such_table"},
    {"id": 5, "rel": "a.b.c.d"},
    {"id": 6, "typ": "no_such_type"},
    {"id": 7, "fn": "bo_values.no_such_function"},
    {"id": 8, "fn": "pg_catalog.abs"},
    {"id": 9, "fnargs": "pg_catalog.abs(no_such_type)"},
    {"id": 10, "op": "pg_catalog.+++"},
    {"id": 11, "who": "regress_bo_no_such_role"},
    {"id": 12, "ns": "no_such_schema"},
    {"id": 13, "cfg": "no_such_config"},
    {"id": 14, "ev": 3},
    {"id": 15, "chk": "raise 42P17"},
    {"id": 16, "chk": "raise P0004"},
    {"id": 17, "chk": "raise 0A000"},
    {"id": 18, "net": "10.1.2.3/8"},
    {"id": 19, "host": "10.1.2.300"},
    {"id": 20, "m": "meh"},
    {"id": 21, "qs": ["a & b", "c & | d"]},
    {"id": 22, "rels": ["bo_values.docs", "bo_values.nope"]},
    {"id": 23, "grid": [[1, 2], [3]]},
    {"id": 24, "grid": [[[[[[[1]]]]]]]},
    {"id": 25, "moods": [["sad"], ["meh"]]},
    {"id": 26, "paths": [["$.a"], ["$ ? ("]]},
    {"id": 27, "q": "ok", "rel": "pg_catalog.pg_class", "m": "happy"}
]$j$));
SELECT id, q, path, rel, typ, fn, fnargs, op, who, ns, cfg, ev, chk, net, host, m, qs, rels,
       grid, moods, paths
  FROM docs ORDER BY id;

-- Update, partial: the same kinds of values.
SELECT * FROM errors_of(batch_ops.batch_update('docs', $j$[
    {"id": 1, "q": "!"},
    {"id": 1, "path": "$$$"},
    {"id": 27, "typ": "pg_catalog.text", "rel": "bo_values.docs"},
    {"id": 1, "rel": "bo_values.gone"},
    {"id": 1, "ev": 7},
    {"id": 1, "chk": "raise 22P99"},
    {"id": 27, "rels": ["bo_values.missing"]},
    {"id": 1, "fn": "no_such_schema.f"},
    {"id": 1, "typ": "int["}
]$j$));
SELECT id, q, rel, typ, ev, chk, rels FROM docs ORDER BY id;

-- Atomic: every failing item is listed, nothing is applied.
SELECT r->'rolled_back' AS rolled_back, r->'data' AS data,
       (SELECT jsonb_agg(jsonb_build_array(e->'index', e->'error', e->'sqlstate'))
          FROM jsonb_array_elements(r->'errors') e) AS errors
  FROM batch_ops.batch_update('docs', $j$[
    {"id": 27, "m": "sad"},
    {"id": 1, "q": "a &"},
    {"id": 1, "who": "regress_bo_nobody"}
]$j$, true) r;
SELECT r->'rolled_back' AS rolled_back, r->'data' AS data,
       (SELECT jsonb_agg(jsonb_build_array(e->'index', e->'error', e->'sqlstate'))
          FROM jsonb_array_elements(r->'errors') e) AS errors
  FROM batch_ops.batch_create('docs', $j$[
    {"id": 30, "m": "sad"},
    {"id": 31, "typ": "no.such.type.at.all"}
]$j$, true) r;
SELECT id, m FROM docs ORDER BY id;

-- The key itself may be a value its type refuses.
CREATE TABLE by_name (rel regclass PRIMARY KEY, note text);
SELECT * FROM errors_of(batch_ops.batch_create('by_name',
    '[{"rel": "bo_values.docs", "note": "a"}, {"rel": "bo_values.nothing", "note": "b"}]'));
SELECT * FROM errors_of(batch_ops.batch_update('by_name',
    '[{"rel": "bo_values.docs", "note": "c"}, {"rel": "bo_values.nothing", "note": "d"}]'));
SELECT * FROM errors_of(batch_ops.batch_delete('by_name',
    '["bo_values.nothing", "bo_values.docs"]'));
SELECT count(*) FROM by_name;

-- xml: a malformed document is 2200N where the server has libxml; without
-- it every value fails with 0A000, which is the item's error too.
CREATE FUNCTION has_libxml() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM '<a/>'::xml;
    RETURN true;
EXCEPTION WHEN feature_not_supported THEN
    RETURN false;
END $$;
SELECT index, error, sqlstate = CASE WHEN has_libxml() THEN '2200N' ELSE '0A000' END AS expected_code, col
  FROM errors_of(batch_ops.batch_create('notes',
    '[{"id": 1, "body": "<a>1</a>"}, {"id": 2, "body": "<a>"}, {"id": 3, "body": "<b/>"}]'))
 WHERE index = 1;
SELECT count(*) = CASE WHEN has_libxml() THEN 2 ELSE 0 END AS good_items_stored FROM notes;

-- Errors that are not about the value end the call, even from a domain's
-- CHECK; the caller's transaction sees nothing of the batch.
SELECT batch_ops.batch_create('docs', '[{"id": 40}, {"id": 41, "chk": "raise 40001"}]');
SELECT batch_ops.batch_create('docs', '[{"id": 40}, {"id": 41, "chk": "raise 40P01"}]');
SELECT batch_ops.batch_create('docs', '[{"id": 40}, {"id": 41, "chk": "raise 57014"}]');
SELECT batch_ops.batch_create('docs', '[{"id": 40}, {"id": 41, "chk": "raise 57P01"}]');
SELECT batch_ops.batch_create('docs', '[{"id": 40}, {"id": 41, "chk": "raise 53200"}]');
SELECT batch_ops.batch_create('docs', '[{"id": 40}, {"id": 41, "chk": "raise 55P03"}]');
SELECT batch_ops.batch_create('docs', '[{"id": 40}, {"id": 41, "chk": "raise XX000"}]');
SELECT batch_ops.batch_update('docs', '[{"id": 1, "chk": "raise 40001"}]', true);
SELECT count(*) FROM docs WHERE id >= 40;

-- In a transaction with a savepoint, the caller can go on after such an error.
BEGIN;
SAVEPOINT s;
SELECT batch_ops.batch_create('docs', '[{"id": 42}, {"id": 43, "chk": "raise 40001"}]');
ROLLBACK TO SAVEPOINT s;
SELECT * FROM errors_of(batch_ops.batch_create('docs', '[{"id": 42}, {"id": 43, "q": "&"}]'));
COMMIT;
SELECT id FROM docs WHERE id >= 40 ORDER BY id;

SET client_min_messages = warning;
DROP SCHEMA bo_values CASCADE;
RESET client_min_messages;
