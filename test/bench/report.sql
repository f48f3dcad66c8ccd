-- test/bench/report.sql — turn bo_bench.results into the report table.
-- psql variable: fmt = 'table' (aligned, for people) or 'markdown'.
--
-- Per (op, method, rate), medians over the repetitions of: wall time,
-- items/s = items submitted / wall time (bad items count as submitted), and
-- the per-repetition ratios against the clean SQL baseline of the same
-- operation and against the PL/pgSQL loop at the same error rate; spread =
-- (slowest - fastest) / median wall time; XIDs per batch.

\set ON_ERROR_STOP 1

CREATE TEMP VIEW report AS
WITH pr AS (
	-- per repetition: ratios against the baseline and the loop of the same
	-- repetition, which ran a few seconds before or after (this cancels
	-- most of the drift of a shared machine's speed)
	-- With run.sh's BENCH_BRACKET=1 a repetition has several baseline
	-- runs: a run is compared with the mean of the nearest baseline run
	-- before it and the nearest after it (either alone at the ends), so a
	-- linear drift cancels; a baseline run is its own reference (1.0).
	SELECT x.*,
		   CASE WHEN x.method = 'baseline' THEN 1.0::float8
		   ELSE (SELECT avg(b.secs) FROM (
				   (SELECT b1.secs FROM bo_bench.results b1
					 WHERE b1.op = x.op AND b1.method = 'baseline' AND b1.rate = 0
					   AND b1.rep = x.rep AND b1.run_no < x.run_no
					 ORDER BY b1.run_no DESC LIMIT 1)
				   UNION ALL
				   (SELECT b2.secs FROM bo_bench.results b2
					 WHERE b2.op = x.op AND b2.method = 'baseline' AND b2.rate = 0
					   AND b2.rep = x.rep AND b2.run_no > x.run_no
					 ORDER BY b2.run_no LIMIT 1)) b) / x.secs
		   END AS x_base,
		   (SELECT l.secs FROM bo_bench.results l
			 WHERE l.op = x.op AND l.method = 'loop' AND l.rate = x.rate
			   AND l.rep = x.rep) / x.secs AS x_loop
	  FROM bo_bench.results x
), r AS (
	SELECT op, method, rate,
		   count(*) AS reps,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS secs,
		   (max(secs) - min(secs)) / percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS spread,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY items / secs) AS ips,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY x_base) AS x_base,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY x_loop) AS x_loop,
		   max(xids)::float8 / max(nbatches) AS xpb,
		   bool_and(applied = expected AND errors = nbad) AS ok,
		   min(applied) AS applied, max(expected) AS expected,
		   min(errors) AS errors, max(nbad) AS nbad
	  FROM pr
	 GROUP BY op, method, rate
), t AS (
	SELECT r.*,
		   CASE WHEN method <> 'batch_ops' THEN NULL
				WHEN op = 'create' AND rate = 0 THEN 0.8
				WHEN op = 'create' AND rate = 1 THEN 0.5
				WHEN op = 'create' AND rate = 10 THEN 0.4
				WHEN rate = 0 THEN 0.8
		   END AS min_base,
		   method = 'batch_ops' AND op IN ('create', 'update') AS need_loop,
		   method = 'batch_ops' AND op = 'create' AS need_xid
	  FROM r
), f AS (
	SELECT t.*,
		   array_remove(ARRAY[
			 CASE WHEN min_base IS NOT NULL AND x_base < min_base THEN 'ratio' END,
			 CASE WHEN need_loop AND x_loop <= 1 THEN 'slower than loop' END,
			 CASE WHEN need_xid AND xpb >= 64 THEN 'XIDs' END], NULL) AS fails,
		   (min_base IS NOT NULL AND x_base IS NULL)
			 OR (need_loop AND x_loop IS NULL) AS missing
	  FROM t
)
SELECT CASE op WHEN 'create' THEN 1 WHEN 'update' THEN 2 ELSE 3 END AS op_ord,
	   CASE method WHEN 'baseline' THEN 0 WHEN 'batch_ops' THEN 1 ELSE 2 END AS m_ord,
	   op, rate,
	   CASE method
		 WHEN 'batch_ops' THEN 'batch_' || op
		 WHEN 'loop' THEN 'PL/pgSQL EXCEPTION loop'
		 WHEN 'baseline' THEN CASE op
			WHEN 'create' THEN 'INSERT ... jsonb_to_recordset'
			WHEN 'update' THEN 'UPDATE ... FROM jsonb_to_recordset'
			ELSE 'DELETE ... WHERE id IN (ids)' END
	   END AS method,
	   rate || ' %' AS bad,
	   round(ips)::bigint AS items_s,
	   to_char(secs, 'FM990.000') AS secs,
	   CASE WHEN reps > 1 THEN to_char(100 * spread, 'FM990') || ' %' END AS spread,
	   to_char(x_base, 'FM990.00') || 'x' AS x_base,
	   CASE WHEN method <> 'loop' THEN to_char(x_loop, 'FM990.00') || 'x' END AS x_loop,
	   to_char(xpb, 'FM999990.00') AS xids,
	   CASE WHEN method = 'baseline' THEN 'baseline'
			WHEN method = 'loop' THEN 'reference'
			ELSE concat_ws(', ',
				  CASE WHEN min_base IS NOT NULL
					   THEN '>= ' || to_char(min_base, 'FM0.0') || 'x base' END,
				  CASE WHEN need_loop THEN '> loop' END,
				  CASE WHEN need_xid THEN '< 64 XIDs' END)
	   END AS target,
	   CASE WHEN method <> 'batch_ops' THEN ''
			WHEN min_base IS NULL AND NOT need_loop AND NOT need_xid THEN 'info'
			WHEN cardinality(fails) > 0 THEN 'FAIL (' || array_to_string(fails, ', ') || ')'
			WHEN missing THEN 'n/a'
			ELSE 'PASS'
	   END AS result,
	   CASE WHEN ok THEN 'ok'
			ELSE format('applied %s/%s errors %s/%s', applied, expected, errors, nbad)
	   END AS "check",
	   reps
  FROM f;

\if :{?fmt}
\else
\set fmt table
\endif

SELECT :'fmt' = 'markdown' AS md \gset

\if :md
\pset format unaligned
\pset tuples_only on
SELECT '| operation | method | bad items | items/s | s/run | x baseline | x loop | XIDs/batch | target | result |'
UNION ALL
SELECT '|---|---|--:|--:|--:|--:|--:|--:|---|---|'
UNION ALL
SELECT line FROM (
	SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
				  op, method, bad, items_s, secs, coalesce(x_base, ''),
				  coalesce(x_loop, ''), xids, target,
				  CASE WHEN result LIKE 'PASS%' THEN '**PASS**'
					   WHEN result LIKE 'FAIL%' THEN '**' || result || '**'
					   ELSE result END) AS line,
		   op_ord, rate, m_ord
	  FROM report
	 ORDER BY op_ord, m_ord > 0, rate, m_ord) s;
\else
\pset footer off
SELECT op AS "operation", method, bad AS "bad", items_s AS "items/s",
	   secs AS "s/run", spread, x_base AS "x base", x_loop AS "x loop",
	   xids AS "XIDs/batch", target, result, "check"
  FROM report
 ORDER BY op_ord, m_ord > 0, rate, m_ord;
\endif
