--
-- The engine's SQL does not depend on the caller's search_path.
--
-- batch_create, batch_update and batch_delete run statements they build
-- themselves (INSERT/UPDATE/DELETE over unnest() of the items' rows,
-- to_jsonb() of returned columns, key comparisons, the existing-key and
-- visible-key queries, the idempotency bookkeeping).  Every function,
-- operator and type in them is named with its schema, and keys are compared
-- with the key type's own equality operator, so a role that can CREATE in a
-- schema on the caller's search_path cannot get its code run by someone
-- else's batch -- a superuser's least of all.
--
-- Here an unprivileged role plants same-named functions, operators and
-- types in such schemas, each of which records who ran it; a superuser then
-- runs batches of every kind under several search_paths.  Nothing planted
-- may run, and every result must be right.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_bo_mallory;  -- left over from an interrupted run
RESET client_min_messages;
CREATE ROLE regress_bo_mallory;
CREATE SCHEMA bo_sec_app;       -- the tables
CREATE SCHEMA bo_sec_ext;       -- citext, installed by the superuser
CREATE SCHEMA bo_sec_evil;      -- mallory may CREATE here
CREATE EXTENSION citext SCHEMA bo_sec_ext;
GRANT USAGE ON SCHEMA bo_sec_app, bo_sec_ext TO regress_bo_mallory;
GRANT USAGE, CREATE ON SCHEMA bo_sec_evil TO regress_bo_mallory;
GRANT CREATE ON SCHEMA public TO regress_bo_mallory;
SET search_path = bo_sec_app, bo_sec_ext, pg_catalog;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- Key types beyond the built-in ones: a domain over integer, citext (whose
-- equality lives in bo_sec_ext) and a domain over citext.
CREATE DOMAIN order_no AS integer CHECK (VALUE > 0);
CREATE DOMAIN email AS bo_sec_ext.citext;

CREATE TABLE orders (
    id       integer PRIMARY KEY,
    customer text NOT NULL,
    placed   timestamptz,
    due      date,
    amount   bigint,
    ref      uuid UNIQUE,
    tags     text[],
    parent   integer REFERENCES orders (id)
);
CREATE TABLE lines (
    order_id bigint REFERENCES orders (id),
    sku      text,
    qty      integer CHECK (qty > 0),
    PRIMARY KEY (order_id, sku)
);
CREATE TABLE tokens (id uuid PRIMARY KEY, label text);
CREATE TABLE events (
    region text,
    id     bigint,
    at     timestamptz,
    PRIMARY KEY (region, id)
) PARTITION BY LIST (region);
CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
-- A BEFORE ROW trigger (which skips rows marked "skip") makes update and
-- delete ask which keys exist: the visible-key query.
CREATE TABLE tickets (no order_no PRIMARY KEY, state text);
CREATE FUNCTION tickets_skip() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.state = 'keep' THEN RETURN NULL; END IF;
        RETURN OLD;
    END IF;
    IF NEW.state = 'skip' THEN RETURN NULL; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tickets_skip BEFORE UPDATE OR DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_skip();
CREATE TABLE mailboxes (addr bo_sec_ext.citext PRIMARY KEY, owner text);
CREATE TABLE contacts (mail email PRIMARY KEY, name text);

-- Mallory's traps.  Each records the roles it ran as.
SET ROLE regress_bo_mallory;
SET search_path = bo_sec_evil;
CREATE TABLE bo_sec_evil.ran (what text, cur name, sess name, super boolean);
GRANT SELECT, INSERT ON bo_sec_evil.ran TO PUBLIC;
CREATE FUNCTION bo_sec_evil.note(what text) RETURNS boolean LANGUAGE sql AS $$
    INSERT INTO bo_sec_evil.ran
    SELECT what, current_user, session_user, r.rolsuper
      FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user;
    SELECT true $$;

-- unnest: the polymorphic signature (hides pg_catalog's when the schema
-- comes first) and exact matches for the tables' row arrays.
CREATE FUNCTION bo_sec_evil.unnest(a anyarray) RETURNS SETOF anyelement
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('unnest(anyarray)');
    RETURN QUERY SELECT * FROM pg_catalog.unnest(a);
END $$;
CREATE FUNCTION bo_sec_evil.unnest(a bo_sec_app.orders[]) RETURNS SETOF bo_sec_app.orders
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('unnest(orders[])');
    RETURN QUERY SELECT * FROM pg_catalog.unnest(a);
END $$;
CREATE FUNCTION public.unnest(a bo_sec_app.lines[]) RETURNS SETOF bo_sec_app.lines
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('public.unnest(lines[])');
    RETURN QUERY SELECT * FROM pg_catalog.unnest(a);
END $$;
CREATE FUNCTION public.unnest(a bo_sec_app.events[]) RETURNS SETOF bo_sec_app.events
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('public.unnest(events[])');
    RETURN QUERY SELECT * FROM pg_catalog.unnest(a);
END $$;

-- to_jsonb and friends, polymorphic and for the column types.
CREATE FUNCTION bo_sec_evil.to_jsonb(v anyelement) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('to_jsonb(anyelement)');
    RETURN pg_catalog.to_jsonb(v);
END $$;
CREATE FUNCTION bo_sec_evil.to_jsonb(v timestamptz) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('to_jsonb(timestamptz)');
    RETURN pg_catalog.to_jsonb(v);
END $$;
CREATE FUNCTION public.to_jsonb(v date) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('public.to_jsonb(date)');
    RETURN pg_catalog.to_jsonb(v);
END $$;
CREATE FUNCTION public.to_jsonb(v uuid) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('public.to_jsonb(uuid)');
    RETURN pg_catalog.to_jsonb(v);
END $$;
CREATE FUNCTION bo_sec_evil.to_jsonb(v text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('to_jsonb(text[])');
    RETURN pg_catalog.to_jsonb(v);
END $$;
CREATE FUNCTION bo_sec_evil.to_jsonb(v bo_sec_ext.citext) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('to_jsonb(citext)');
    RETURN pg_catalog.to_jsonb(v);
END $$;
CREATE FUNCTION bo_sec_evil.jsonb_array_elements(j jsonb) RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('jsonb_array_elements(jsonb)');
    RETURN QUERY SELECT * FROM pg_catalog.jsonb_array_elements(j);
END $$;

-- Equality: the built-in signatures (they hide pg_catalog's when the
-- schema comes first), exact matches for the domain key types, and
-- citext's (which hides bo_sec_ext's when the schema comes first).
CREATE FUNCTION bo_sec_evil.eq_int4(a integer, b integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('=(integer, integer)');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR bo_sec_evil.= (LEFTARG = integer, RIGHTARG = integer,
                               FUNCTION = bo_sec_evil.eq_int4);
CREATE FUNCTION bo_sec_evil.eq_int8(a bigint, b bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('=(bigint, bigint)');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR bo_sec_evil.= (LEFTARG = bigint, RIGHTARG = bigint,
                               FUNCTION = bo_sec_evil.eq_int8);
CREATE FUNCTION bo_sec_evil.eq_text(a text, b text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('=(text, text)');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR bo_sec_evil.= (LEFTARG = text, RIGHTARG = text,
                               FUNCTION = bo_sec_evil.eq_text);
CREATE FUNCTION bo_sec_evil.eq_uuid(a uuid, b uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('=(uuid, uuid)');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR bo_sec_evil.= (LEFTARG = uuid, RIGHTARG = uuid,
                               FUNCTION = bo_sec_evil.eq_uuid);
CREATE FUNCTION public.eq_order_no(a bo_sec_app.order_no, b bo_sec_app.order_no)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('public.=(order_no, order_no)');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR public.= (LEFTARG = bo_sec_app.order_no, RIGHTARG = bo_sec_app.order_no,
                          FUNCTION = public.eq_order_no);
CREATE FUNCTION bo_sec_evil.eq_order_no(a bo_sec_app.order_no, b bo_sec_app.order_no)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('=(order_no, order_no)');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR bo_sec_evil.= (LEFTARG = bo_sec_app.order_no, RIGHTARG = bo_sec_app.order_no,
                               FUNCTION = bo_sec_evil.eq_order_no);
CREATE FUNCTION bo_sec_evil.eq_citext(a bo_sec_ext.citext, b bo_sec_ext.citext)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('=(citext, citext)');
    RETURN a OPERATOR(bo_sec_ext.=) b;
END $$;
CREATE OPERATOR bo_sec_evil.= (LEFTARG = bo_sec_ext.citext, RIGHTARG = bo_sec_ext.citext,
                               FUNCTION = bo_sec_evil.eq_citext);
CREATE FUNCTION bo_sec_evil.eq_email(a bo_sec_app.email, b bo_sec_app.email)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bo_sec_evil.note('=(email, email)');
    RETURN a OPERATOR(bo_sec_ext.=) b;
END $$;
CREATE OPERATOR bo_sec_evil.= (LEFTARG = bo_sec_app.email, RIGHTARG = bo_sec_app.email,
                               FUNCTION = bo_sec_evil.eq_email);
CREATE OPERATOR public.= (LEFTARG = bo_sec_app.email, RIGHTARG = bo_sec_app.email,
                          FUNCTION = bo_sec_evil.eq_email);

-- Types named like the ones a cast would name.
CREATE DOMAIN bo_sec_evil.int8 AS pg_catalog.int8
    CHECK (bo_sec_evil.note('type int8') OR VALUE IS NULL);
CREATE DOMAIN bo_sec_evil.int4 AS pg_catalog.int4
    CHECK (bo_sec_evil.note('type int4') OR VALUE IS NULL);
CREATE DOMAIN bo_sec_evil.text AS pg_catalog.text
    CHECK (bo_sec_evil.note('type text') OR VALUE IS NULL);
CREATE DOMAIN bo_sec_evil.citext AS pg_catalog.text
    CHECK (bo_sec_evil.note('type citext') OR VALUE IS NULL);
CREATE DOMAIN bo_sec_evil.jsonb AS pg_catalog.jsonb
    CHECK (bo_sec_evil.note('type jsonb') OR VALUE IS NULL);
RESET ROLE;

-- Every kind of batch, clean and with failing items, so that the prechecks,
-- the retry after existing keys, bisection, the not-found and visible-key
-- queries and the idempotency bookkeeping all run.  Every name in this
-- function is schema-qualified: it runs under the search_path of the test.
SET search_path = pg_catalog;
CREATE FUNCTION bo_sec_app.scenario(tag pg_catalog.text)
RETURNS TABLE (step pg_catalog.text, response pg_catalog.jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    key pg_catalog.text := pg_catalog.concat('sec-', tag);
BEGIN
    TRUNCATE bo_sec_app.lines, bo_sec_app.orders, bo_sec_app.tokens,
             bo_sec_app.events, bo_sec_app.tickets, bo_sec_app.mailboxes,
             bo_sec_app.contacts, bo_sec_evil.ran;
    INSERT INTO bo_sec_app.tickets VALUES (1, 'open'), (2, 'keep'), (3, 'open');

    RETURN QUERY SELECT 'orders: create', batch_ops.batch_create('bo_sec_app.orders',
        '[{"id": 1, "customer": "ann", "placed": "2024-05-01 10:00+00", "due": "2024-05-09",
           "amount": 10, "ref": "00000000-0000-0000-0000-000000000001", "tags": ["a", "b"]},
          {"id": 2, "customer": "bob", "placed": "2024-05-02 11:00+00", "amount": 20,
           "ref": "00000000-0000-0000-0000-000000000002", "parent": 1},
          {"id": 3, "customer": "cy"}]');
    -- a key that exists (the statement fails, then existing keys are
    -- looked for), a duplicate inside the batch, a NOT NULL failure
    RETURN QUERY SELECT 'orders: create, failing items', batch_ops.batch_create('bo_sec_app.orders',
        '[{"id": 4, "customer": "dee", "ref": "00000000-0000-0000-0000-000000000004"},
          {"id": 1, "customer": "again"},
          {"id": 5, "customer": "eve", "ref": "00000000-0000-0000-0000-000000000002"},
          {"id": 6, "customer": null},
          {"id": 7, "customer": "fay", "parent": 4},
          {"id": 7, "customer": "twin"}]');
    -- a foreign key that only the statement checks: bisection
    RETURN QUERY SELECT 'lines: create, with a missing order', batch_ops.batch_create('bo_sec_app.lines',
        '[{"order_id": 1, "sku": "x", "qty": 1}, {"order_id": 1, "sku": "y", "qty": 2},
          {"order_id": 99, "sku": "x", "qty": 1}, {"order_id": 2, "sku": "x", "qty": 0},
          {"order_id": 2, "sku": "z", "qty": 5}]');
    RETURN QUERY SELECT 'orders: update', batch_ops.batch_update('bo_sec_app.orders',
        '[{"id": 1, "amount": 11, "placed": "2024-06-01 00:00+00"},
          {"id": 2, "parent": 99}, {"id": 42, "amount": 1},
          {"id": 3, "tags": ["c"], "due": "2024-07-01"}, {"id": 3, "amount": 33}]');
    RETURN QUERY SELECT 'orders: update, atomic', batch_ops.batch_update('bo_sec_app.orders',
        '[{"id": 1, "amount": 12}, {"id": 2, "parent": 98}]', true);
    RETURN QUERY SELECT 'lines: update by composite key', batch_ops.batch_update('bo_sec_app.lines',
        '[{"order_id": 1, "sku": "x", "qty": 10}, {"id": {"order_id": 1, "sku": "y"}, "qty": 20},
          {"order_id": 1, "sku": "nope", "qty": 1}, {"order_id": 2, "sku": "z", "qty": -1}]');
    RETURN QUERY SELECT 'lines: update, atomic', batch_ops.batch_update('bo_sec_app.lines',
        '[{"order_id": 1, "sku": "x", "qty": 100}, {"order_id": 2, "sku": "z", "qty": 50}]', true);
    -- an order that lines still reference cannot go: bisection
    RETURN QUERY SELECT 'orders: delete', batch_ops.batch_delete('bo_sec_app.orders',
        '[3, 1, 77, {"id": 7}]');
    RETURN QUERY SELECT 'lines: delete, atomic', batch_ops.batch_delete('bo_sec_app.lines',
        '[{"order_id": 1, "sku": "y"}, {"order_id": 2, "sku": "z"}]', true);

    RETURN QUERY SELECT 'tokens: create', batch_ops.batch_create('bo_sec_app.tokens',
        '[{"id": "10000000-0000-0000-0000-000000000001", "label": "one"},
          {"id": "10000000-0000-0000-0000-000000000002", "label": "two"},
          {"id": "10000000-0000-0000-0000-000000000001", "label": "dup"},
          {"id": "not-a-uuid", "label": "bad"}]');
    RETURN QUERY SELECT 'tokens: update', batch_ops.batch_update('bo_sec_app.tokens',
        '[{"id": "10000000-0000-0000-0000-000000000002", "label": "TWO"},
          {"id": "10000000-0000-0000-0000-000000000009", "label": "none"}]');
    RETURN QUERY SELECT 'tokens: delete', batch_ops.batch_delete('bo_sec_app.tokens',
        '["10000000-0000-0000-0000-000000000001", "10000000-0000-0000-0000-000000000009"]');

    -- partitioned: existing keys are found with a query
    RETURN QUERY SELECT 'events: create', batch_ops.batch_create('bo_sec_app.events',
        '[{"region": "eu", "id": 1, "at": "2024-01-01 00:00+00"}, {"region": "us", "id": 1},
          {"region": "eu", "id": 2}]');
    RETURN QUERY SELECT 'events: create, existing keys', batch_ops.batch_create('bo_sec_app.events',
        '[{"region": "eu", "id": 3}, {"region": "eu", "id": 1}, {"region": "us", "id": 1},
          {"region": "ap", "id": 1}]');
    RETURN QUERY SELECT 'events: create, existing keys again', batch_ops.batch_create('bo_sec_app.events',
        '[{"region": "us", "id": 2}, {"region": "eu", "id": 2}]');
    RETURN QUERY SELECT 'events: update', batch_ops.batch_update('bo_sec_app.events',
        '[{"region": "eu", "id": 1, "at": "2024-02-02 00:00+00"}, {"region": "us", "id": 9, "at": null}]');
    RETURN QUERY SELECT 'events: delete, atomic', batch_ops.batch_delete('bo_sec_app.events',
        '[{"region": "eu", "id": 3}, {"region": "us", "id": 1}]', true);

    -- domain key, BEFORE ROW trigger: the visible-key query
    RETURN QUERY SELECT 'tickets: update', batch_ops.batch_update('bo_sec_app.tickets',
        '[{"no": 1, "state": "done"}, {"no": 3, "state": "skip"}, {"no": 9, "state": "x"}]');
    RETURN QUERY SELECT 'tickets: delete', batch_ops.batch_delete('bo_sec_app.tickets',
        '[2, 3, 8]');

    -- citext keys compare as citext does
    RETURN QUERY SELECT 'mailboxes: create', batch_ops.batch_create('bo_sec_app.mailboxes',
        '[{"addr": "Ann@Example.com", "owner": "ann"}, {"addr": "bob@example.com", "owner": "bob"},
          {"addr": "ANN@example.COM", "owner": "dup"}]');
    RETURN QUERY SELECT 'mailboxes: create, existing key', batch_ops.batch_create('bo_sec_app.mailboxes',
        '[{"addr": "BOB@EXAMPLE.COM", "owner": "again"}, {"addr": "cy@example.com", "owner": "cy"}]');
    RETURN QUERY SELECT 'mailboxes: update', batch_ops.batch_update('bo_sec_app.mailboxes',
        '[{"addr": "ann@example.com", "owner": "Ann"}, {"addr": "nobody@example.com", "owner": "x"}]');
    RETURN QUERY SELECT 'mailboxes: delete', batch_ops.batch_delete('bo_sec_app.mailboxes',
        '["BOB@example.com"]');
    RETURN QUERY SELECT 'contacts: create', batch_ops.batch_create('bo_sec_app.contacts',
        '[{"mail": "Zed@Example.com", "name": "zed"}, {"mail": "amy@example.com", "name": "amy"}]');
    RETURN QUERY SELECT 'contacts: update', batch_ops.batch_update('bo_sec_app.contacts',
        '[{"mail": "ZED@example.com", "name": "Zed"}]');
    RETURN QUERY SELECT 'contacts: delete, atomic', batch_ops.batch_delete('bo_sec_app.contacts',
        '["AMY@EXAMPLE.COM", "zed@example.com"]', true);

    -- idempotency keys: the first call runs, the second replays
    RETURN QUERY SELECT 'tokens: create with a key', batch_ops.batch_create('bo_sec_app.tokens',
        '[{"id": "20000000-0000-0000-0000-000000000001", "label": "keyed"}]', false, key);
    RETURN QUERY SELECT 'tokens: create with the key again', batch_ops.batch_create('bo_sec_app.tokens',
        '[{"id": "20000000-0000-0000-0000-000000000001", "label": "keyed"}]', false, key);
    RETURN QUERY SELECT 'lines: update with a key, atomic', batch_ops.batch_update('bo_sec_app.lines',
        '[{"order_id": 1, "sku": "x", "qty": 7}]', true, pg_catalog.concat(key, '-u'));
    RETURN QUERY SELECT 'tokens: delete with a key', batch_ops.batch_delete('bo_sec_app.tokens',
        '["20000000-0000-0000-0000-000000000001"]', false, pg_catalog.concat(key, '-d'));
END $$;

-- What the tables hold after a scenario, and what ran that should not have.
CREATE FUNCTION bo_sec_app.outcome()
RETURNS TABLE (tbl pg_catalog.text, rows pg_catalog.jsonb)
LANGUAGE sql SET search_path = pg_catalog AS $$
    SELECT 'orders', jsonb_agg(o ORDER BY o.id) FROM bo_sec_app.orders o
    UNION ALL SELECT 'lines', jsonb_agg(l ORDER BY l.order_id, l.sku) FROM bo_sec_app.lines l
    UNION ALL SELECT 'tokens', jsonb_agg(t ORDER BY t.id) FROM bo_sec_app.tokens t
    UNION ALL SELECT 'events', jsonb_agg(e ORDER BY e.region, e.id) FROM bo_sec_app.events e
    UNION ALL SELECT 'tickets', jsonb_agg(t ORDER BY t.no) FROM bo_sec_app.tickets t
    UNION ALL SELECT 'mailboxes', jsonb_agg(m ORDER BY m.owner) FROM bo_sec_app.mailboxes m
    UNION ALL SELECT 'contacts', jsonb_agg(c ORDER BY c.name) FROM bo_sec_app.contacts c
    UNION ALL SELECT 'planted code that ran',
                     jsonb_agg(DISTINCT jsonb_build_object('what', r.what, 'as', r.cur, 'superuser', r.super))
                FROM bo_sec_evil.ran r
$$;

-- 1. The trap schema first, pg_catalog implicitly before it: exact-match
-- overloads (unnest(orders[]), to_jsonb(timestamptz), =(order_no, order_no))
-- would win over pg_catalog's polymorphic ones.
SET search_path = bo_sec_evil, bo_sec_app;
SELECT * FROM bo_sec_app.scenario('1');
SET search_path = pg_catalog;
SELECT * FROM bo_sec_app.outcome();

-- 2. The trap schema before pg_catalog: its same-signature objects would
-- hide pg_catalog's (unnest(anyarray), =(integer, integer), to_jsonb
-- (anyelement)) and citext's own equality.
SET search_path = bo_sec_evil, pg_catalog, bo_sec_ext, bo_sec_app;
SELECT * FROM bo_sec_app.scenario('2');
SET search_path = pg_catalog;
SELECT * FROM bo_sec_app.outcome();

-- 3. The usual path, with CREATE on public granted to mallory.
SET search_path = "$user", public;
SELECT * FROM bo_sec_app.scenario('3');
SET search_path = pg_catalog;
SELECT * FROM bo_sec_app.outcome();

-- 4. The application's schema first, then the traps, then pg_catalog.
SET search_path = bo_sec_app, bo_sec_ext, public, bo_sec_evil, pg_catalog;
SELECT * FROM bo_sec_app.scenario('4');
SET search_path = pg_catalog;
SELECT * FROM bo_sec_app.outcome();

-- The traps did work: called directly, they record who called them.
TRUNCATE bo_sec_evil.ran;
SET search_path = bo_sec_evil, pg_catalog;
SELECT count(*) FROM unnest(ARRAY[(1, 'a', NULL, NULL, NULL, NULL, NULL, NULL)::bo_sec_app.orders]);
SELECT 1 = 1 AS eq, to_jsonb(now()) IS NOT NULL AS jsonb;
SET search_path = pg_catalog;
SELECT what, cur, sess, super FROM bo_sec_evil.ran ORDER BY what;

-- A key type without an equality operator cannot name rows: a clear error.
-- (A composite type has btree's record_ops as its default operator class,
-- which lets it be a primary key, but no equality when a field type has
-- none.)
SET search_path = bo_sec_app, pg_catalog;
CREATE TYPE spot AS (p point);
CREATE TABLE spots (s spot PRIMARY KEY, note text);
SELECT batch_ops.batch_update('spots', '[{"s": "(\"(1,2)\")", "note": "b"}]');
SELECT batch_ops.batch_delete('spots', '["(\"(1,2)\")"]');

SET search_path = pg_catalog;
SET client_min_messages = warning;
DROP SCHEMA bo_sec_app, bo_sec_evil, bo_sec_ext CASCADE;
DROP OWNED BY regress_bo_mallory;
REVOKE CREATE ON SCHEMA public FROM regress_bo_mallory;
DROP ROLE regress_bo_mallory;
RESET client_min_messages;
