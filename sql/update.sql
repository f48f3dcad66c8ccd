--
-- batch_update: change rows found by their primary key.
--
-- Every item carries the primary key; only the columns the item gives are
-- changed.  The answer is {"data": [...], "errors": [...]} with each row as
-- it is after the update, in item order, null where the item failed.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_update;
SET search_path = bo_update, public;

CREATE TABLE products (
    id      integer PRIMARY KEY,
    name    text NOT NULL,
    price   numeric(10,2) CHECK (price >= 0),
    stock   integer NOT NULL DEFAULT 0,
    note    text,
    sku     text UNIQUE
);
INSERT INTO products VALUES
    (1, 'bolt', 0.10, 100, 'steel', 'B-1'),
    (2, 'nut', 0.05, 200, NULL, 'N-1'),
    (3, 'washer', 0.02, 300, 'zinc', 'W-1'),
    (4, 'gear', 2.50, 10, NULL, 'G-1');

-- Only the columns given change: item 0 sets the price, item 1 the stock
-- and the note; every other column keeps its value.
SELECT batch_ops.batch_update('products',
    '[{"id": 1, "price": 0.12}, {"id": 2, "stock": 150, "note": "hex"}]');
SELECT * FROM products ORDER BY id;

-- An explicit JSON null sets the column to NULL.
SELECT batch_ops.batch_update('products', '[{"id": 3, "note": null}]');

-- A key that matches no row is "not_found"; the other items still apply.
SELECT batch_ops.batch_update('products',
    '[{"id": 4, "stock": 11}, {"id": 99, "stock": 1}]');

-- An item without the key, or with a null key, is an "invalid_item"; so is
-- an item that gives nothing but the key.
SELECT batch_ops.batch_update('products',
    '[{"stock": 5}, {"id": null, "stock": 5}, {"id": 4}]');

-- Constraint violations fail only their item: a CHECK, a NOT NULL and a
-- unique constraint (the sku of another row) -- validation_error, conflict.
SELECT batch_ops.batch_update('products',
    '[{"id": 1, "price": -1}, {"id": 2, "name": null}, {"id": 3, "sku": "B-1"}, {"id": 4, "note": "ok"}]');
SELECT id, name, price, sku, note FROM products ORDER BY id;

-- Two items with the same key apply in item order: the later one wins, and
-- each item's data shows the row as its own update left it.
SELECT batch_ops.batch_update('products',
    '[{"id": 4, "stock": 20, "note": "first"}, {"id": 4, "stock": 30}]');
SELECT id, stock, note FROM products WHERE id = 4;

-- A unique value can move between rows within one batch when the items
-- come in an order that works: free it first, then take it.
SELECT batch_ops.batch_update('products',
    '[{"id": 1, "sku": "B-old"}, {"id": 2, "sku": "B-1"}]');

-- Unknown columns and values of the wrong type are validation errors.
SELECT batch_ops.batch_update('products',
    '[{"id": 1, "colour": "red"}, {"id": 2, "stock": "many"}, {"id": "x", "stock": 1}]');

-- Elements that are not JSON objects are invalid items.
SELECT batch_ops.batch_update('products', '[1, "two", [3], null, {"id": 3, "stock": 301}]');

-- An empty array is a valid batch.
SELECT batch_ops.batch_update('products', '[]');

--
-- Keys not named "id".  An item gives the key column itself, or "id" as an
-- alias for it; giving both with different values would change the key,
-- which batch_update refuses (invalid_item).
--
CREATE TABLE accounts (code text PRIMARY KEY, owner text, balance numeric NOT NULL DEFAULT 0);
INSERT INTO accounts VALUES ('A1', 'ann', 10), ('B2', 'ben', 20), ('C3', 'cy', 30);
SELECT batch_ops.batch_update('accounts',
    '[{"code": "A1", "balance": 11},
      {"id": "B2", "balance": 21},
      {"id": "C3", "code": "C3", "balance": 31},
      {"id": "C3", "code": "Z9", "balance": 99},
      {"id": "nope", "balance": 1}]');
SELECT * FROM accounts ORDER BY code;

-- When the table has a column called "id" that is not its key, "id" is
-- that column, not an alias: the key must be given by its own name.
CREATE TABLE tagged (tag text PRIMARY KEY, id integer, label text);
INSERT INTO tagged VALUES ('t1', 1, 'one');
SELECT batch_ops.batch_update('tagged', '[{"tag": "t1", "id": 10}, {"id": 1, "label": "x"}]');

--
-- Composite keys: every key column is needed, given directly or as an
-- "id" object of the key columns.
--
CREATE TABLE stock_levels (
    warehouse text,
    item      integer,
    qty       integer NOT NULL,
    PRIMARY KEY (warehouse, item)
);
INSERT INTO stock_levels VALUES ('north', 1, 5), ('north', 2, 6), ('south', 1, 7);
SELECT batch_ops.batch_update('stock_levels',
    '[{"warehouse": "north", "item": 1, "qty": 50},
      {"id": {"warehouse": "north", "item": 2}, "qty": 60},
      {"warehouse": "south", "qty": 70},
      {"id": {"warehouse": "south"}, "qty": 70},
      {"id": "south", "qty": 70},
      {"id": {"warehouse": "south", "item": 1}, "item": 9, "qty": 70},
      {"warehouse": "east", "item": 1, "qty": 1}]');
SELECT * FROM stock_levels ORDER BY warehouse, item;

-- Generated columns cannot be set; identity keys can be used to find rows.
CREATE TABLE rects (
    id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    w      integer NOT NULL,
    h      integer NOT NULL,
    area   integer GENERATED ALWAYS AS (w * h) STORED
);
INSERT INTO rects (w, h) VALUES (1, 1), (2, 2);
SELECT batch_ops.batch_update('rects', '[{"id": 1, "w": 3}, {"id": 2, "area": 100}]');

-- The batch runs in the caller's transaction.
BEGIN;
SELECT batch_ops.batch_update('products', '[{"id": 1, "stock": 0}]') -> 'errors' AS errors;
ROLLBACK;
SELECT id, stock FROM products WHERE id = 1;

SET client_min_messages = warning;
DROP SCHEMA bo_update CASCADE;
RESET client_min_messages;
RESET search_path;
