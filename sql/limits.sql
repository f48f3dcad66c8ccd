--
-- Size limits.
--
-- batch_ops.max_create_items (100), batch_ops.max_update_items (100) and
-- batch_ops.max_delete_items (1000) cap the number of items of one call.  A
-- larger batch is refused with SQLSTATE 54000 (program_limit_exceeded) and a
-- hint naming the async path, and nothing of it is applied.  The settings
-- are superuser-only (PGC_SUSET), so an administrator can set them per role
-- with ALTER ROLE ... SET and the role cannot raise its own limit.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_limits;
SET search_path = bo_limits, public;

-- The defaults, and how the settings are defined.
SHOW batch_ops.max_create_items;
SHOW batch_ops.max_update_items;
SHOW batch_ops.max_delete_items;
SELECT name, setting, context, vartype, min_val
FROM pg_settings WHERE name IN ('batch_ops.max_create_items', 'batch_ops.max_update_items',
                                'batch_ops.max_delete_items')
ORDER BY name;

CREATE TABLE items (id integer PRIMARY KEY, n integer);

-- Exactly at the limit: accepted.
SELECT jsonb_array_length(batch_ops.batch_create('items',
         (SELECT jsonb_agg(jsonb_build_object('id', i, 'n', 0)) FROM generate_series(1, 100) i)) -> 'data')
       AS created;
SELECT jsonb_array_length(batch_ops.batch_update('items',
         (SELECT jsonb_agg(jsonb_build_object('id', i, 'n', 1)) FROM generate_series(1, 100) i)) -> 'data')
       AS updated;

-- One over: an ERROR with SQLSTATE 54000 and a hint; nothing is applied.
SELECT batch_ops.batch_create('items',
         (SELECT jsonb_agg(jsonb_build_object('id', i)) FROM generate_series(101, 201) i));
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_update('items',
         (SELECT jsonb_agg(jsonb_build_object('id', i, 'n', 2)) FROM generate_series(1, 101) i));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows, sum(n) AS sum_n FROM items;

-- Deletes have their own, larger limit: 1001 ids are refused, 1000 accepted
-- (here most of them are not found).
SELECT batch_ops.batch_delete('items', (SELECT jsonb_agg(i) FROM generate_series(1, 1001) i));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM items;
SELECT (r ->> 'deleted') AS deleted, jsonb_array_length(r -> 'errors') AS not_found
FROM batch_ops.batch_delete('items', (SELECT jsonb_agg(i) FROM generate_series(1, 1000) i)) r;

-- The limit counts every element, even those that are not valid items, and
-- holds in atomic mode too.
SELECT batch_ops.batch_create('items', (SELECT jsonb_agg(i) FROM generate_series(1, 101) i), atomic => true);
\echo :LAST_ERROR_SQLSTATE

-- A superuser can change the limits for the session ...
SET batch_ops.max_create_items = 2;
SELECT batch_ops.batch_create('items', '[{"id": 1}, {"id": 2}]');
SELECT batch_ops.batch_create('items', '[{"id": 3}, {"id": 4}, {"id": 5}]');
\echo :LAST_ERROR_SQLSTATE
-- ... an empty batch is never over the limit, even a limit of 0 ...
SET batch_ops.max_delete_items = 0;
SELECT batch_ops.batch_delete('items', '[]');
SELECT batch_ops.batch_delete('items', '[1]');
RESET batch_ops.max_delete_items;
RESET batch_ops.max_create_items;
-- ... and values outside the range are refused.
SET batch_ops.max_update_items = -1;

-- An ordinary role cannot change them ...
CREATE ROLE regress_bo_limits_user LOGIN;
GRANT USAGE ON SCHEMA bo_limits TO regress_bo_limits_user;
GRANT SELECT, INSERT ON items TO regress_bo_limits_user;
SET ROLE regress_bo_limits_user;
SET batch_ops.max_create_items = 1000;
RESET ROLE;

-- ... but an administrator can give it its own limit, which applies to the
-- role's new sessions.
SELECT current_user AS admin_user \gset
ALTER ROLE regress_bo_limits_user SET batch_ops.max_create_items = 3;
\c - regress_bo_limits_user
SET search_path = bo_limits, public;
\set SHOW_CONTEXT never
\pset format unaligned
\pset footer off
SHOW batch_ops.max_create_items;
SELECT batch_ops.batch_create('items', '[{"id": 11}, {"id": 12}, {"id": 13}, {"id": 14}]');
\echo :LAST_ERROR_SQLSTATE
SELECT batch_ops.batch_create('items', '[{"id": 11}, {"id": 12}, {"id": 13}]') -> 'errors' AS errors;
\c - :admin_user
\set SHOW_CONTEXT never
\pset format unaligned
\pset footer off
SELECT id FROM bo_limits.items ORDER BY id;

SET client_min_messages = warning;
DROP SCHEMA bo_limits CASCADE;
DROP ROLE regress_bo_limits_user;
RESET client_min_messages;
