-- test/bench/import_setup.sql — schema and CSV files for the import
-- benchmark (test/bench/import.sh).  psql variables:
--   nrows      data rows per file                        (1000000)
--   clean      server path of the clean file to write
--   dirty      server path of the file with 1 % bad rows
--   dirty_pgl  server path of the dirty file without the rows pgloader's
--              CSV reader cannot get past (see below)
--   dups       server path of a file whose bad rows (1 %) are all
--              duplicates, or '' for none
--   dirty10    server path of a file with 10 % bad rows, or '' for none
-- Everything lives in schema bo_bench_import; import.sh drops it at the end.
-- The files are written by the server (COPY TO), so the caller must be a
-- superuser or a member of pg_write_server_files.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

DROP SCHEMA IF EXISTS bo_bench_import CASCADE;
CREATE SCHEMA bo_bench_import;

-- The table under test: the same as bo_bench.t of the batch benchmark.
-- Autovacuum is off so that no autoanalyze lands inside a measured run.
CREATE TABLE bo_bench_import.t (
	id    bigint PRIMARY KEY,
	sku   text NOT NULL UNIQUE,
	qty   int NOT NULL CHECK (qty >= 0),
	price numeric(12,2),
	note  text
) WITH (autovacuum_enabled = false);

-- One row per measured run (see import.sh run_copy / run_job / run_pgloader).
CREATE TABLE bo_bench_import.results (
	run_no      serial PRIMARY KEY,
	rep         int NOT NULL,
	method      text NOT NULL,		-- copy | job | pgloader
	file        text NOT NULL,		-- clean | dirty | dirty_pgl
	secs        float8,				-- wall time seen by the client (job: submit -> wait_job returned)
	job_secs    float8,				-- job: finished_at - started_at
	cpu_secs    float8,				-- CPU of the loading process (COPY backend, job worker, pgloader client)
	wal_bytes   bigint,				-- WAL written during the run
	rows_loaded bigint,				-- count(*) of the table afterwards
	errors      bigint,				-- bad rows the method reported
	ok          boolean NOT NULL,	-- counts as expected
	completed   boolean NOT NULL,	-- the method got through the whole file
	pid         int,				-- job worker (or COPY backend)
	hwm_kb      bigint,				-- VmHWM of that process
	anon_kb     bigint,				-- highest RssAnon sampled (private memory)
	shmem_kb    bigint,				-- highest RssShmem sampled (shared buffers touched)
	samples     int,				-- RSS samples taken (job)
	heap_bytes  bigint,				-- size of the table afterwards (bloat from rolled-back writes)
	index_bytes bigint,				-- size of its indexes afterwards
	note        text
);

-- Rows of the files.  Row n (1..nrows) is at line n + 1 (line 1 is the
-- header).  A row is bad when n % 100 = 50 (1 % of the rows, never the
-- first 50, and row n - 1 is always good); the kind of a bad row is
-- (n / 100) % 6:
--   0 type error     qty "abc"                       22P02  validation_error
--   1 CHECK          qty -1                          23514  validation_error
--   2 NOT NULL       empty unquoted sku (NULL in CSV) 23502  validation_error
--   3 duplicate      the sku of row n - 1            23505  conflict
--   4 malformed      a sixth field (",extra")         22P04  extra data after last expected column
--   5 malformed      a quote inside the sku field that closes inside the
--                    qty field on the same line ('sku-..."x,350"y'): the
--                    delimiter between them is quoted, so the record has
--                    4 fields                         22P04  missing data for column "note"
-- With dups_only every bad row is of kind 3.  With every = 10 (the 10 %
-- file) a row is bad when n % 10 = 5, and its kind is (n / 10) % 6.
-- The note field is always quoted, as CSV exporters do.
CREATE FUNCTION bo_bench_import.lines(nrows int, dirty boolean,
									  dups_only boolean DEFAULT false,
									  every int DEFAULT 100)
RETURNS TABLE (n int, kind int, line text)
LANGUAGE sql STABLE
BEGIN ATOMIC
	SELECT 0, NULL::int, 'id,sku,qty,price,note'
	UNION ALL
	SELECT s.n, s.kind,
		   CASE WHEN s.kind IS NULL THEN
				  s.n || ',' || s.sku || ',' || s.qty || ',' || s.price || ',' || s.note
				WHEN s.kind = 0 THEN
				  s.n || ',' || s.sku || ',abc,' || s.price || ',' || s.note
				WHEN s.kind = 1 THEN
				  s.n || ',' || s.sku || ',-1,' || s.price || ',' || s.note
				WHEN s.kind = 2 THEN
				  s.n || ',,' || s.qty || ',' || s.price || ',' || s.note
				WHEN s.kind = 3 THEN
				  s.n || ',sku-' || lpad((s.n - 1)::text, 8, '0') || ',' || s.qty || ',' || s.price || ',' || s.note
				WHEN s.kind = 4 THEN
				  s.n || ',' || s.sku || ',' || s.qty || ',' || s.price || ',' || s.note || ',extra'
				ELSE
				  s.n || ',' || s.sku || '"x,' || s.qty || '"y,' || s.price || ',' || s.note
		   END
	  FROM (SELECT g.n,
				   CASE WHEN dirty AND g.n % every = every / 2 THEN
						  CASE WHEN dups_only THEN 3 ELSE (g.n / every) % 6 END
				   END AS kind,
				   'sku-' || lpad(g.n::text, 8, '0') AS sku,
				   g.n % 500 AS qty,
				   round((g.n % 100000) / 100.0, 2) AS price,
				   '"note ' || md5(g.n::text) || '"' AS note
			  FROM generate_series(1, nrows) AS g(n)) AS s;
END;

-- What the files hold, for the checks.
CREATE TABLE bo_bench_import.expect AS
SELECT count(*) FILTER (WHERE n % 100 <> 50) AS good,
	   count(*) FILTER (WHERE n % 100 = 50) AS bad,
	   count(*) FILTER (WHERE n % 100 = 50 AND (n / 100) % 6 = 3) AS bad_dup,
	   count(*) FILTER (WHERE n % 100 = 50 AND (n / 100) % 6 = 4) AS bad_extra,
	   count(*) FILTER (WHERE n % 100 = 50 AND (n / 100) % 6 = 5) AS bad_quote,
	   count(*) FILTER (WHERE n % 10 <> 5) AS good10,
	   count(*) FILTER (WHERE n % 10 = 5) AS bad10,
	   count(*) FILTER (WHERE n % 10 = 5 AND (n / 10) % 6 = 3) AS bad10_dup
  FROM generate_series(1, :nrows) AS g(n);

-- COPY keeps the order of the query's rows; the header comes first.
COPY (SELECT line FROM bo_bench_import.lines(:nrows, false) ORDER BY n) TO :'clean';
COPY (SELECT line FROM bo_bench_import.lines(:nrows, true) ORDER BY n) TO :'dirty';
-- pgloader (3.6) stops the whole load with "FATAL non whitespace after
-- quoted data" at the first kind-5 row; this copy of the dirty file has
-- every other bad row, so that its dirty-data handling can be timed.
COPY (SELECT line FROM bo_bench_import.lines(:nrows, true)
	   WHERE kind IS DISTINCT FROM 5 ORDER BY n) TO :'dirty_pgl';
-- Duplicates are the one kind of bad row that COPY finds only while it
-- inserts (when it flushes its buffered rows into the indexes).
SELECT :'dups' <> '' AS want_dups \gset
\if :want_dups
COPY (SELECT line FROM bo_bench_import.lines(:nrows, true, true) ORDER BY n) TO :'dups';
\endif
-- 10 % bad rows: the same six kinds, one row in ten.
SELECT :'dirty10' <> '' AS want_dirty10 \gset
\if :want_dirty10
COPY (SELECT line FROM bo_bench_import.lines(:nrows, true, false, 10) ORDER BY n) TO :'dirty10';
\endif
