--
-- Rate limits that count items: a token bucket per role in shared memory.
--
-- batch_ops.rate_limit items per second (0 = off) refill a bucket of
-- batch_ops.rate_limit_burst tokens (0 = as many as rate_limit).  A batch of
-- n items takes n tokens; without enough, it fails with SQLSTATE BO429 and
-- says how long to wait.  The settings are superuser-only, so ALTER ROLE ...
-- SET gives a role its own limit.  Two sessions of one role sharing a bucket:
-- test/isolation/specs/ratelimit_shared.spec.
--
-- The buckets refill at 1 token per second here, and every check allows
-- for tens of seconds of refill, so the results do not depend on speed.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
RESET client_min_messages;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
SELECT current_user AS admin \gset
CREATE SCHEMA bo_rl;
SET search_path = bo_rl, public;

CREATE TABLE items (id serial PRIMARY KEY, sku text NOT NULL UNIQUE);
CREATE ROLE bo_rl_user LOGIN;
CREATE ROLE bo_rl_other;
GRANT USAGE ON SCHEMA bo_rl TO bo_rl_user, bo_rl_other;
GRANT SELECT, INSERT ON items TO bo_rl_user, bo_rl_other;
GRANT USAGE ON SEQUENCE items_id_seq TO bo_rl_user, bo_rl_other;

-- A batch of n new items.
CREATE FUNCTION batch(prefix text, n int) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', prefix || g) ORDER BY g), '[]')
      FROM generate_series(1, n) g
$$;

-- Run a statement and report its error as data: the numbers that depend on
-- the clock are replaced by N in the detail, and the wait it asks for is
-- returned apart.
CREATE FUNCTION try(stmt text,
                    OUT code text, OUT message text, OUT detail text,
                    OUT hint text, OUT wait numeric)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    code := '00000';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    wait := substring(detail FROM 'Retry after ([0-9.]+) seconds')::numeric;
    detail := regexp_replace(detail, '[0-9]+\.[0-9]+', 'N', 'g');
END $$;
GRANT EXECUTE ON FUNCTION try(text), batch(text, int) TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Off by default
-- ---------------------------------------------------------------------------
SHOW batch_ops.rate_limit;
SHOW batch_ops.rate_limit_burst;
-- rate_limit_status() shows the caller's bucket; no limit, no tokens
SELECT role = current_user AS me, tokens, rate, burst FROM batch_ops.rate_limit_status();
-- and a role cannot change its own limit
SET ROLE bo_rl_user;
SET batch_ops.rate_limit = 0;
SET batch_ops.rate_limit_burst = 0;
RESET ROLE;

-- ---------------------------------------------------------------------------
-- A role's own limit, set by an administrator
-- ---------------------------------------------------------------------------
ALTER ROLE bo_rl_user SET batch_ops.rate_limit = 1;
ALTER ROLE bo_rl_user SET batch_ops.rate_limit_burst = 1000;
ALTER ROLE bo_rl_user SET batch_ops.max_create_items = 2000;
\c - bo_rl_user
SET search_path = bo_rl, public;
SHOW batch_ops.rate_limit;
SHOW batch_ops.rate_limit_burst;
-- a new bucket is full
SELECT * FROM batch_ops.rate_limit_status();

-- 600 items take 600 tokens
SELECT jsonb_array_length(batch_ops.batch_create('items', batch('a', 600))->'data') AS created;
SELECT role, tokens BETWEEN 400 AND 440 AS about_400, rate, burst FROM batch_ops.rate_limit_status();

-- 500 more do not pass: BO429, with the wait in the detail (100 s, less the
-- refill since), and nothing is written or taken
SELECT code, message, detail, hint
  FROM try($$SELECT batch_ops.batch_create('items', batch('b', 500))$$);
SELECT wait BETWEEN 60 AND 100 AS waits_about_100s
  FROM try($$SELECT batch_ops.batch_create('items', batch('b', 500))$$);
SELECT count(*) AS b_rows FROM items WHERE sku LIKE 'b%';
SELECT tokens BETWEEN 400 AND 440 AS still_about_400 FROM batch_ops.rate_limit_status();

-- a batch larger than the bucket could never pass: 54000, and the message says so
SELECT code, message, detail, hint
  FROM try($$SELECT batch_ops.batch_create('items', batch('c', 1001))$$);

-- an empty batch takes nothing and always passes
SELECT batch_ops.batch_create('items', '[]');

-- The same as a plain error, as a client sees it:
\set VERBOSITY terse
SELECT batch_ops.batch_create('items', batch('b', 500));
\echo :SQLSTATE
\set VERBOSITY default

-- ---------------------------------------------------------------------------
-- Idempotency keys: a replay takes no tokens; a refused call keeps no key
-- ---------------------------------------------------------------------------
SELECT jsonb_array_length(batch_ops.batch_create('items', batch('k', 100),
    idempotency_key => 'rl-key-1')->'data') AS created;
SELECT tokens AS before FROM batch_ops.rate_limit_status() \gset
SELECT jsonb_array_length(batch_ops.batch_create('items', batch('k', 100),
    idempotency_key => 'rl-key-1')->'data') AS replayed;
SELECT tokens >= :before AS no_tokens_taken, tokens BETWEEN 300 AND 340 AS about_300
  FROM batch_ops.rate_limit_status();
SELECT code FROM try($$SELECT batch_ops.batch_create('items', batch('m', 400),
    idempotency_key => 'rl-key-2')$$);

-- A role sees its own bucket only.
SELECT count(*) AS rows, min(role) AS role FROM batch_ops.rate_limit_status();

-- ---------------------------------------------------------------------------
-- Back as the administrator
-- ---------------------------------------------------------------------------
\c - :admin
SET search_path = bo_rl, public;
-- the refused call left no key behind; the first one is there
SELECT key FROM batch_ops.idempotency_keys
 WHERE role = 'bo_rl_user'::regrole ORDER BY key;

-- A superuser sees every role's bucket, with the settings it was last used
-- with; the administrator's own row comes too (no limit here).
SELECT role, tokens BETWEEN 300 AND 340 AS about_300, rate, burst
  FROM batch_ops.rate_limit_status() WHERE role = 'bo_rl_user';
SELECT tokens IS NULL AS unlimited, rate FROM batch_ops.rate_limit_status()
 WHERE role = current_user;

-- Every role has its own bucket, new and full.  burst = 0 (the default)
-- means one second's worth.
SET batch_ops.rate_limit = 10;
SET ROLE bo_rl_other;
SELECT * FROM batch_ops.rate_limit_status();
SELECT code, message FROM try($$SELECT batch_ops.batch_create('items', batch('o', 11))$$);
RESET ROLE;
SET batch_ops.rate_limit = 1;
SET batch_ops.rate_limit_burst = 10;
SET ROLE bo_rl_other;
SELECT jsonb_array_length(batch_ops.batch_create('items', batch('o', 10))->'data') AS created;
SELECT code, message, detail FROM try($$SELECT batch_ops.batch_create('items', batch('p', 5))$$);
RESET ROLE;
-- bo_rl_user's bucket is untouched by that
SELECT role, tokens BETWEEN 300 AND 340 AS about_300
  FROM batch_ops.rate_limit_status() WHERE role = 'bo_rl_user';
RESET batch_ops.rate_limit;
RESET batch_ops.rate_limit_burst;

-- ---------------------------------------------------------------------------
-- Clean up
-- ---------------------------------------------------------------------------
DELETE FROM batch_ops.idempotency_keys WHERE key LIKE 'rl-key-%';
SET client_min_messages = warning;
DROP SCHEMA bo_rl CASCADE;
DROP OWNED BY bo_rl_user, bo_rl_other;
DROP ROLE bo_rl_user, bo_rl_other;
