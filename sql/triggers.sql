--
-- Tables with triggers.
--
-- Triggers fire as for INSERT/UPDATE/DELETE statements.  The rows returned
-- are the rows as stored, after BEFORE triggers changed them; a BEFORE ROW
-- trigger that returns NULL skips its row, which leaves a null data slot and
-- no error.  RAISE EXCEPTION in a trigger (P0001) fails only that item, as a
-- "trigger_error".  Everything a failed item's triggers did is undone.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_triggers;
SET search_path = bo_triggers, public;

CREATE TABLE articles (
    id       integer PRIMARY KEY,
    title    text NOT NULL,
    slug     text UNIQUE,
    words    integer,
    version  integer NOT NULL DEFAULT 1
);
CREATE TABLE audit (seq serial PRIMARY KEY, op text, article integer, detail text);

-- BEFORE INSERT OR UPDATE: derive the slug from the title, bump the version
-- on update, and refuse forbidden titles.
CREATE FUNCTION articles_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.title = 'forbidden' THEN
        RAISE EXCEPTION 'title "%" is not allowed', NEW.title
            USING DETAIL = 'Pick another title.', HINT = 'Anything else will do.';
    END IF;
    NEW.slug := lower(replace(NEW.title, ' ', '-'));
    IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER articles_before BEFORE INSERT OR UPDATE ON articles
    FOR EACH ROW EXECUTE FUNCTION articles_before();

-- AFTER INSERT OR UPDATE OR DELETE: write an audit row.
CREATE FUNCTION articles_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit (op, article, detail)
    VALUES (TG_OP, CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
            CASE WHEN TG_OP = 'DELETE' THEN OLD.title ELSE NEW.title END);
    RETURN NULL;
END $$;
CREATE TRIGGER articles_after AFTER INSERT OR UPDATE OR DELETE ON articles
    FOR EACH ROW EXECUTE FUNCTION articles_after();

-- The returned rows show what the BEFORE trigger stored: the slug it made
-- (even over a slug the item gave).
SELECT batch_ops.batch_create('articles',
    '[{"id": 1, "title": "Hello World", "words": 120},
      {"id": 2, "title": "Second Post", "slug": "ignored", "words": 5}]');

-- RAISE EXCEPTION in the trigger fails only its item, as a trigger_error
-- with the trigger's message, detail and SQLSTATE P0001.  The AFTER
-- trigger's audit row for the failed item is undone with it.
SELECT batch_ops.batch_create('articles',
    '[{"id": 4, "title": "forbidden", "words": 1}, {"id": 5, "title": "Fine", "words": 2}]');
SELECT op, article, detail FROM audit ORDER BY seq;

-- A conflict found after the trigger changed the row: "hello world" is
-- another title, but the trigger makes the same slug as article 1's.
SELECT batch_ops.batch_create('articles',
    '[{"id": 6, "title": "hello world", "words": 3}, {"id": 7, "title": "Another", "words": 4}]');

-- Updates: the trigger runs too, and the returned row shows its changes
-- (the version it bumped, the slug it derived).
SELECT batch_ops.batch_update('articles',
    '[{"id": 1, "title": "Hello Again"}, {"id": 2, "words": 6}, {"id": 5, "title": "forbidden"}]');

-- Deletes fire the AFTER trigger.
SELECT batch_ops.batch_delete('articles', '[5]');
SELECT op, article, detail FROM audit ORDER BY seq;

-- In atomic mode a trigger_error undoes the whole batch, audit rows included.
TRUNCATE audit;
SELECT batch_ops.batch_create('articles',
    '[{"id": 8, "title": "Eight", "words": 8}, {"id": 9, "title": "forbidden", "words": 9}]', atomic => true);
SELECT count(*) AS audit_rows FROM audit;
SELECT id, title FROM articles ORDER BY id;

-- An AFTER trigger that raises fails its item just the same.
CREATE TABLE ledger (id integer PRIMARY KEY, amount numeric NOT NULL);
CREATE FUNCTION ledger_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.amount > 1000 THEN
        RAISE EXCEPTION 'amount % needs approval', NEW.amount;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_after AFTER INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_after();
SELECT batch_ops.batch_create('ledger', '[{"id": 1, "amount": 10}, {"id": 2, "amount": 5000}, {"id": 3, "amount": 20}]');
SELECT * FROM ledger ORDER BY id;

-- NOT NULL and CHECK constraints apply to the row the BEFORE trigger
-- returns, as for INSERT and UPDATE statements: the trigger here fills the
-- NOT NULL column code and clamps a negative quantity, so every item works
-- -- one leaves code out, one gives it as null, one gives qty -5.
CREATE TABLE parts (
    id    integer PRIMARY KEY,
    name  text NOT NULL,
    code  text NOT NULL,
    qty   integer NOT NULL CHECK (qty >= 0)
);
CREATE FUNCTION parts_fixup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.code := upper(NEW.name);
    NEW.qty := greatest(coalesce(NEW.qty, 0), 0);
    RETURN NEW;
END $$;
CREATE TRIGGER parts_fixup BEFORE INSERT OR UPDATE ON parts
    FOR EACH ROW EXECUTE FUNCTION parts_fixup();
SELECT batch_ops.batch_create('parts',
    '[{"id": 1, "name": "cog", "qty": 3},
      {"id": 2, "name": "pin", "code": null, "qty": 1},
      {"id": 3, "name": "nut", "qty": -5},
      {"id": 4, "name": "bolt"}]');
SELECT batch_ops.batch_update('parts', '[{"id": 1, "qty": -1}, {"id": 2, "code": null}]');
SELECT * FROM parts ORDER BY id;

--
-- A BEFORE ROW trigger that returns NULL skips the row: the item's data slot
-- is null, there is no error entry, and a skipped delete is not counted.
--
CREATE TABLE settings (id integer PRIMARY KEY, value text, locked boolean NOT NULL DEFAULT false);
INSERT INTO settings VALUES (1, 'a', true), (2, 'b', false), (3, 'c', true), (4, 'd', false);
CREATE FUNCTION settings_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.value = 'skip me' THEN RETURN NULL; END IF;
        RETURN NEW;
    END IF;
    IF OLD.locked THEN
        RETURN NULL;            -- silently keep locked rows as they are
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER settings_guard BEFORE INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION settings_guard();

SELECT batch_ops.batch_create('settings',
    '[{"id": 5, "value": "e"}, {"id": 6, "value": "skip me"}, {"id": 7, "value": "g"}]');
SELECT batch_ops.batch_update('settings',
    '[{"id": 1, "value": "A"}, {"id": 2, "value": "B"}, {"id": 99, "value": "missing"}]');
SELECT batch_ops.batch_delete('settings', '[3, 4, 99]');
SELECT * FROM settings ORDER BY id;

-- A skipped row is not a failure, so atomic mode does not roll back for it.
SELECT batch_ops.batch_update('settings', '[{"id": 1, "value": "AA"}, {"id": 2, "value": "BB"}]', atomic => true);

-- Triggers on a partition of a partitioned table are honoured as well: see
-- partitioned.sql.

-- Deferred constraint triggers run at COMMIT, after the batch has answered:
-- their failures are the COMMIT's ERROR, not item errors.
CREATE TABLE parents (id integer PRIMARY KEY);
CREATE TABLE children (id integer PRIMARY KEY,
                       parent integer REFERENCES parents DEFERRABLE INITIALLY DEFERRED);
BEGIN;
SELECT batch_ops.batch_create('children', '[{"id": 1, "parent": 42}]');
COMMIT;
SELECT count(*) AS children FROM children;

-- A DO INSTEAD rule that inserts only some of the rows: the rows returned
-- cannot be matched to the items, which is the statement's error, not an
-- item's (0A000), and nothing is written.
CREATE TABLE ruled (id integer PRIMARY KEY, v integer);
CREATE TABLE ruled_log (id integer, v integer);
CREATE RULE ruled_insert AS ON INSERT TO ruled DO INSTEAD
    INSERT INTO ruled_log SELECT new.id, new.v WHERE new.v > 0 RETURNING ruled_log.*;
SELECT batch_ops.batch_create('ruled', '[{"id": 1, "v": 1}, {"id": 2, "v": -1}]');
SELECT count(*) AS logged FROM ruled_log;

SET client_min_messages = warning;
DROP SCHEMA bo_triggers CASCADE;
RESET client_min_messages;
RESET search_path;
