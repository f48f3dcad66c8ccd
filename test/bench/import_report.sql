-- test/bench/import_report.sql — the tables of the import benchmark, from
-- bo_bench_import.results (written by test/bench/import.sh).
--
-- seconds = median wall time over the repetitions; ratio = median of the
-- ratios taken within each repetition (method and baseline ran a minute
-- apart at most, so a slow phase of a shared machine hits both sides):
--   import job rows    job time / clean COPY time (started->finished, and
--                      submit->wait_job returned)
--   pgloader rows      job (submit->wait_job) / pgloader on the same kind
--                      of file: below 1 = the job is faster
-- CPU ratio = CPU time of the job worker / CPU time of the COPY backend
-- (same repetition, median): less sensitive than wall time to other load on
-- the machine, which the worker and the backend both wait for.
-- psql variables: max_job_clean, max_job_dirty, max_pgl_clean,
-- max_pgl_dirty, max_job_dups, max_job_dirty10 (the targets), repeat
-- (repetitions asked for), copies (clean COPYs per repetition).

\set ON_ERROR_STOP 1

CREATE TEMP VIEW runs AS
SELECT r.*,
	   -- the clean COPY of the same repetition: the mean of the nearest one
	   -- before the run and the nearest one after it (import.sh runs it
	   -- again after the jobs unless BENCH_IMPORT_BRACKET=0), and the jobs
	   cc.copy_clean,
	   cc.copy_cpu,
	   (SELECT j.secs FROM bo_bench_import.results j
		 WHERE j.method = 'job' AND j.file = 'clean' AND j.rep = r.rep) AS job_clean,
	   (SELECT j.secs FROM bo_bench_import.results j
		 WHERE j.method = 'job' AND j.file = 'dirty' AND j.rep = r.rep) AS job_dirty
  FROM bo_bench_import.results r
  LEFT JOIN LATERAL (
	SELECT avg(c.secs) AS copy_clean, avg(c.cpu_secs) AS copy_cpu
	  FROM ((SELECT c1.secs, c1.cpu_secs FROM bo_bench_import.results c1
			  WHERE c1.method = 'copy' AND c1.file = 'clean' AND c1.rep = r.rep
				AND c1.run_no < r.run_no
			  ORDER BY c1.run_no DESC LIMIT 1)
			UNION ALL
			(SELECT c2.secs, c2.cpu_secs FROM bo_bench_import.results c2
			  WHERE c2.method = 'copy' AND c2.file = 'clean' AND c2.rep = r.rep
				AND c2.run_no > r.run_no
			  ORDER BY c2.run_no LIMIT 1)) c) cc ON true;

CREATE TEMP VIEW measure AS
-- ord, measurement, value per repetition, ratio per repetition, what the
-- ratio is, target (ratio <= target), and the run's checks
SELECT 1 AS ord, 'COPY FROM file, clean' AS measurement, secs AS v, 1.0::float8 AS ratio,
	   'baseline' AS vs, NULL::float8 AS target, 1.0::float8 AS cpu_ratio, r.*
  FROM runs r WHERE method = 'copy' AND file = 'clean'
UNION ALL
SELECT 2, 'import job, clean: started -> finished', job_secs, job_secs / copy_clean,
	   'job / COPY clean', :max_job_clean, cpu_secs / copy_cpu, r.*
  FROM runs r WHERE method = 'job' AND file = 'clean'
UNION ALL
SELECT 3, 'import job, clean: submit -> wait_job', secs, secs / copy_clean,
	   'job / COPY clean', :max_job_clean, NULL, r.*
  FROM runs r WHERE method = 'job' AND file = 'clean'
UNION ALL
SELECT 4, 'COPY FROM file, 1 % bad rows', secs, NULL, 'cannot', NULL, NULL, r.*
  FROM runs r WHERE method = 'copy' AND file = 'dirty'
UNION ALL
SELECT 5, 'import job, 1 % bad: started -> finished', job_secs, job_secs / copy_clean,
	   'job / COPY clean', :max_job_dirty, cpu_secs / copy_cpu, r.*
  FROM runs r WHERE method = 'job' AND file = 'dirty'
UNION ALL
SELECT 6, 'import job, 1 % bad: submit -> wait_job', secs, secs / copy_clean,
	   'job / COPY clean', :max_job_dirty, NULL, r.*
  FROM runs r WHERE method = 'job' AND file = 'dirty'
UNION ALL
SELECT 7, 'import job, 1 % bad, all duplicates: started -> finished', job_secs, job_secs / copy_clean,
	   'job / COPY clean', :max_job_dups, cpu_secs / copy_cpu, r.*
  FROM runs r WHERE method = 'job' AND file = 'dups'
UNION ALL
SELECT 8, 'import job, 10 % bad: started -> finished', job_secs, job_secs / copy_clean,
	   'job / COPY clean', :max_job_dirty10, cpu_secs / copy_cpu, r.*
  FROM runs r WHERE method = 'job' AND file = 'dirty10'
UNION ALL
SELECT 9, 'pgloader, clean', secs, job_clean / secs,
	   'job / pgloader', :max_pgl_clean, NULL, r.*
  FROM runs r WHERE method = 'pgloader' AND file = 'clean'
UNION ALL
SELECT 10, 'pgloader, 1 % bad (same file)', secs,
	   CASE WHEN completed THEN job_dirty / secs END,
	   'job / pgloader', :max_pgl_dirty, NULL, r.*
  FROM runs r WHERE method = 'pgloader' AND file = 'dirty'
UNION ALL
SELECT 11, 'pgloader, 1 % bad minus the mid-quote rows', secs,
	   CASE WHEN completed THEN job_dirty / secs END,
	   'job (full dirty file) / pgloader', :max_pgl_dirty, NULL, r.*
  FROM runs r WHERE method = 'pgloader' AND file = 'dirty_pgl';

CREATE TEMP VIEW report AS
SELECT ord, measurement, vs, target,
	   count(*) AS reps,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS secs,
	   (max(v) - min(v)) / nullif(percentile_cont(0.5) WITHIN GROUP (ORDER BY v), 0) AS spread,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY ratio) AS ratio,
	   count(ratio) AS nratio,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_ratio) AS cpu_ratio,
	   bool_and(completed) AS completed,
	   bool_and(ok) AS ok,
	   min(rows_loaded) AS rows_min, max(rows_loaded) AS rows_max,
	   min(errors) AS err_min, max(errors) AS err_max,
	   string_agg(DISTINCT note, '; ') AS notes
  FROM measure
 GROUP BY ord, measurement, vs, target;

\pset footer off
\pset null ''
SELECT measurement,
	   to_char(secs, 'FM9990.00') AS "seconds",
	   CASE WHEN reps > 1 THEN to_char(100 * spread, 'FM990') || ' %' END AS spread,
	   CASE WHEN ord = 1 THEN 'baseline'
			WHEN nratio > 0 THEN to_char(ratio, 'FM990.00') || 'x ' || vs
			ELSE 'n/a' END AS ratio,
	   CASE WHEN ord = 1 THEN 'baseline'
			ELSE to_char(cpu_ratio, 'FM990.00') || 'x' END AS "CPU ratio",
	   CASE WHEN target IS NOT NULL THEN '<= ' || to_char(target, 'FM990.00') || 'x'
			WHEN ord = 4 THEN 'cannot skip bad rows' END AS target,
	   CASE WHEN ord = 1 THEN ''
			WHEN ord = 4 OR secs IS NULL THEN 'n/a'
			WHEN NOT completed THEN 'n/a (aborted)'
			WHEN nratio = 0 OR target IS NULL THEN 'n/a'
			WHEN ratio <= target THEN 'PASS'
			ELSE 'FAIL' END AS result,
	   concat_ws(', ',
		 CASE WHEN ord = 4 OR secs IS NULL THEN NULL
			  WHEN ok THEN 'ok'
			  ELSE 'WRONG COUNTS' END,
		 CASE WHEN rows_min = rows_max THEN rows_min || ' rows'
			  ELSE rows_min || '-' || rows_max || ' rows' END,
		 CASE WHEN err_max IS NULL THEN NULL
			  WHEN err_min = err_max THEN err_min || ' errors'
			  ELSE err_min || '-' || err_max || ' errors' END,
		 CASE WHEN reps <> :repeat * CASE WHEN ord = 1 THEN :copies ELSE 1 END
			  THEN reps || ' run(s)' END,
		 notes) AS "check / notes"
  FROM report
 ORDER BY ord;

\echo
\echo 'Peak memory, CPU, WAL and table size per run (job: the job worker; COPY: its backend; pgloader: the pgloader process, CPU only)'
SELECT rep, method, file,
	   pid,
	   CASE WHEN hwm_kb IS NOT NULL THEN to_char(hwm_kb / 1024.0, 'FM99990.0') END AS "VmHWM MB",
	   CASE WHEN anon_kb IS NOT NULL THEN to_char(anon_kb / 1024.0, 'FM99990.0') END AS "peak RssAnon MB",
	   CASE WHEN shmem_kb IS NOT NULL THEN to_char(shmem_kb / 1024.0, 'FM99990.0') END AS "RssShmem MB",
	   samples,
	   to_char(cpu_secs, 'FM9990.00') AS "CPU s",
	   to_char(coalesce(job_secs, secs), 'FM9990.00') AS "wall s",
	   to_char(cpu_secs / nullif(coalesce(job_secs, secs), 0), 'FM990.00') AS "CPU/wall",
	   to_char(wal_bytes / 1048576.0, 'FM99990') AS "WAL MB",
	   to_char(heap_bytes / 1048576.0, 'FM99990') AS "table MB",
	   to_char(index_bytes / 1048576.0, 'FM99990') AS "indexes MB"
  FROM bo_bench_import.results
 WHERE (method <> 'copy' OR file = 'clean') AND secs IS NOT NULL
 ORDER BY CASE method WHEN 'copy' THEN 0 WHEN 'job' THEN 1 ELSE 2 END,
		  CASE file WHEN 'clean' THEN 0 WHEN 'dirty' THEN 1 WHEN 'dups' THEN 2 WHEN 'dirty10' THEN 3 ELSE 4 END, rep;
