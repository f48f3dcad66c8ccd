-- test/bench/setup.sql — schema, deterministic batches and PL/pgSQL loops for
-- the batch_ops benchmark.  Run by test/bench/run.sh with the psql variables
--   nb        number of batches per (operation, error rate)      (100)
--   size      items per batch                                    (1000)
--   npreload  rows loaded before every run; dirty create items
--             collide with their skus                            (1000)
-- Everything lives in schema bo_bench; run.sh drops it at the end.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

DROP SCHEMA IF EXISTS bo_bench CASCADE;
CREATE SCHEMA bo_bench;

-- The table under test.  Autovacuum is off for it so that no autoanalyze
-- takes XIDs (or I/O) in the middle of a measured run; run.sh vacuums and
-- analyzes it itself, the same way before every method.
CREATE TABLE bo_bench.t (
	id    bigint PRIMARY KEY,
	sku   text NOT NULL UNIQUE,
	qty   int NOT NULL CHECK (qty >= 0),
	price numeric(12,2),
	note  text
) WITH (autovacuum_enabled = false);

-- Pre-generated batches: op in (create, update, delete), rate = percent of
-- bad items (0, 1, 10), nbad = how many items of the batch are bad.
CREATE TABLE bo_bench.batches (
	op       text NOT NULL,
	rate     int NOT NULL,
	batch_no int NOT NULL,
	items    jsonb NOT NULL,
	nbad     int NOT NULL,
	PRIMARY KEY (op, rate, batch_no)
) WITH (autovacuum_enabled = false);

-- One row per measured run.
CREATE TABLE bo_bench.results (
	run_no     serial PRIMARY KEY,
	op         text NOT NULL,
	method     text NOT NULL,
	rate       int NOT NULL,
	rep        int NOT NULL,
	nbatches   int NOT NULL,
	items      bigint NOT NULL,
	secs       float8 NOT NULL,
	xids       bigint NOT NULL,
	applied    bigint NOT NULL,		-- rows created / updated / deleted
	expected   bigint NOT NULL,		-- good items in the batches
	errors     bigint NOT NULL,		-- errors the method reported
	nbad       bigint NOT NULL		-- bad items in the batches
);

CREATE TABLE bo_bench.settings (name text PRIMARY KEY, value text);

-- Position of item i of batch b in a per-batch permutation of 0..size-1.
-- An item is bad at rate r when pos < size * r / 100, so every batch has
-- exactly that many bad items, spread over the batch, and the bad set at 1 %
-- is a subset of the one at 10 %.  7919 is prime, so i -> pos is a bijection
-- for any size that is not a multiple of it.  Item 0 of a batch is never bad
-- (pos(0) >= size / 2), so a "duplicate inside the batch" always has an
-- earlier good item to copy.
CREATE FUNCTION bo_bench.pos(b int, i int, size int) RETURNS int
LANGUAGE sql IMMUTABLE
RETURN ((i::bigint * 7919 + size / 2 + b % greatest(size / 4, 1)) % size)::int;

-- Create items: {id, sku, qty, price, note}.  Bad kinds (pos % 5), evenly:
--   0 wrong type      "qty": "abc"
--   1 NOT NULL        "sku": null
--   2 CHECK           "qty": -1
--   3 duplicate of an existing row: sku of a preloaded row
--   4 duplicate inside the batch: sku of the previous good item of the batch
INSERT INTO bo_bench.batches (op, rate, batch_no, items, nbad)
WITH g AS (
	SELECT r.rate, b, i, (b - 1) * :size + i + 1 AS n,
		   bo_bench.pos(b, i, :size) AS pos
	  FROM unnest(ARRAY[0, 1, 10]) AS r(rate),
		   generate_series(1, :nb) AS b,
		   generate_series(0, :size - 1) AS i
), k AS (
	SELECT g.*, pos < :size * rate / 100 AS bad, pos % 5 AS kind
	  FROM g
), w AS (
	SELECT k.*,
		   max(CASE WHEN NOT bad THEN i END)
			 OVER (PARTITION BY rate, b ORDER BY i
				   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_good
	  FROM k
)
SELECT 'create', rate, b,
	   jsonb_agg(
		 jsonb_build_object('id', n,
							'sku', 'sku-' || lpad(n::text, 8, '0'),
							'qty', n % 500,
							'price', round((n % 100000) / 100.0, 2),
							'note', 'note ' || md5(n::text))
		 || CASE WHEN NOT bad THEN '{}'::jsonb
				 WHEN kind = 0 THEN '{"qty": "abc"}'::jsonb
				 WHEN kind = 1 THEN '{"sku": null}'::jsonb
				 WHEN kind = 2 THEN '{"qty": -1}'::jsonb
				 WHEN kind = 3 THEN jsonb_build_object('sku',
						'pre-' || lpad((n % :npreload + 1)::text, 8, '0'))
				 ELSE jsonb_build_object('sku',
						'sku-' || lpad(((b - 1) * :size + prev_good + 1)::text, 8, '0'))
			END
		 ORDER BY i),
	   count(*) FILTER (WHERE bad)
  FROM w
 GROUP BY rate, b;

-- Update items: {id, qty, note} over the loaded rows.  Bad kinds (pos % 3):
--   0 wrong type      "qty": "abc"
--   1 CHECK           "qty": -1
--   2 missing row     an id that does not exist (not_found)
INSERT INTO bo_bench.batches (op, rate, batch_no, items, nbad)
SELECT 'update', rate, b,
	   jsonb_agg(
		 CASE WHEN NOT bad THEN
				jsonb_build_object('id', n, 'qty', (n * 7) % 500, 'note', 'upd ' || n)
			  WHEN pos % 3 = 0 THEN
				jsonb_build_object('id', n, 'qty', 'abc', 'note', 'upd ' || n)
			  WHEN pos % 3 = 1 THEN
				jsonb_build_object('id', n, 'qty', -1, 'note', 'upd ' || n)
			  ELSE
				jsonb_build_object('id', 10000000 + n, 'qty', 1, 'note', 'upd ' || n)
		 END ORDER BY i),
	   count(*) FILTER (WHERE bad)
  FROM (SELECT r.rate, b, i, (b - 1) * :size + i + 1 AS n,
			   bo_bench.pos(b, i, :size) AS pos,
			   bo_bench.pos(b, i, :size) < :size * r.rate / 100 AS bad
		  FROM unnest(ARRAY[0, 1, 10]) AS r(rate),
			   generate_series(1, :nb) AS b,
			   generate_series(0, :size - 1) AS i) s
 GROUP BY rate, b;

-- Delete ids: a plain array of ids; a bad one is an id that does not exist.
INSERT INTO bo_bench.batches (op, rate, batch_no, items, nbad)
SELECT 'delete', rate, b,
	   jsonb_agg(CASE WHEN bad THEN 10000000 + n ELSE n END ORDER BY i),
	   count(*) FILTER (WHERE bad)
  FROM (SELECT r.rate, b, i, (b - 1) * :size + i + 1 AS n,
			   bo_bench.pos(b, i, :size) < :size * r.rate / 100 AS bad
		  FROM unnest(ARRAY[0, 1, 10]) AS r(rate),
			   generate_series(1, :nb) AS b,
			   generate_series(0, :size - 1) AS i) s
 GROUP BY rate, b;

VACUUM ANALYZE bo_bench.batches;

-- Rows loaded before every run (ids far above the batch ids).
CREATE FUNCTION bo_bench.preload(npreload int) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
	INSERT INTO bo_bench.t (id, sku, qty, price, note)
	SELECT 20000000 + k, 'pre-' || lpad(k::text, 8, '0'), k % 100, 1.00, 'preload'
	  FROM generate_series(1, npreload) AS k;
END;

-- The PL/pgSQL comparison: one subtransaction (BEGIN ... EXCEPTION) per item,
-- errors recorded in a JSON array, as an application-side stored procedure
-- would do it.  It returns no row data (batch_ops does), which favours it.
CREATE FUNCTION bo_bench.loop_create(items jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	e		jsonb;
	idx		int := 0;
	created int := 0;
	errs	jsonb := '[]';
BEGIN
	FOR e IN SELECT value FROM jsonb_array_elements(items) LOOP
		BEGIN
			INSERT INTO bo_bench.t
			SELECT * FROM jsonb_populate_record(NULL::bo_bench.t, e);
			created := created + 1;
		EXCEPTION WHEN others THEN
			errs := errs || jsonb_build_object('index', idx, 'sqlstate', SQLSTATE,
											   'message', SQLERRM);
		END;
		idx := idx + 1;
	END LOOP;
	RETURN jsonb_build_object('created', created, 'errors', errs);
END
$$;

CREATE FUNCTION bo_bench.loop_update(items jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	e		jsonb;
	idx		int := 0;
	updated int := 0;
	errs	jsonb := '[]';
BEGIN
	FOR e IN SELECT value FROM jsonb_array_elements(items) LOOP
		BEGIN
			UPDATE bo_bench.t
			   SET qty = (e ->> 'qty')::int, note = e ->> 'note'
			 WHERE id = (e ->> 'id')::bigint;
			IF FOUND THEN
				updated := updated + 1;
			ELSE
				errs := errs || jsonb_build_object('index', idx, 'error', 'not_found');
			END IF;
		EXCEPTION WHEN others THEN
			errs := errs || jsonb_build_object('index', idx, 'sqlstate', SQLSTATE,
											   'message', SQLERRM);
		END;
		idx := idx + 1;
	END LOOP;
	RETURN jsonb_build_object('updated', updated, 'errors', errs);
END
$$;

-- Sanity: the generated bad counts are what the rates say.
DO $$
DECLARE
	bad record;
BEGIN
	SELECT op, rate, batch_no, nbad INTO bad
	  FROM bo_bench.batches b
	 WHERE nbad <> jsonb_array_length(items) * rate / 100
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'bench setup: batch % % % has % bad items',
			bad.op, bad.rate, bad.batch_no, bad.nbad;
	END IF;
END
$$;
