#!/usr/bin/env bash
#
# Crash safety of async jobs (DESIGN.md, "Async jobs"): "each chunk's rows
# and the job's checkpoint commit together, so a crash or restart resumes
# the job without losing or duplicating a row.  atomic: true runs the whole
# job as one transaction."
#
# On its own throwaway cluster (port $BATCH_OPS_JOBS_CRASH_PORT, 5481 by
# default; default test config, fsync on), for each way of crashing:
#
#   immediate   pg_ctl stop -m immediate
#   kill9       kill -9 of the postmaster; every process of that server
#               must exit within 3 s (a job worker must not go on writing
#               without its postmaster, nor keep the server from
#               restarting); whatever outlives that is killed -9 too, as
#               a machine crash would
#   worker9     kill -9 of the job worker only (the postmaster resets
#               every backend and restarts by itself; partial jobs only)
#
# it crashes the server while jobs are running, restarts it, waits for the
# jobs and asserts exactly:
#
#   1. a partial import (400000 CSV rows, chunk_size 5000, 27 bad rows: type
#      errors, CHECK violations, records with too many or too few fields,
#      a duplicate key) interrupted after some chunks committed: completed,
#      every good row exactly once with its values (EXCEPT ALL both ways,
#      count(DISTINCT id) = count(*)), created/failed/errors_total/rows_done
#      exact, job_errors() lists each bad line exactly once (line, error
#      name, raw text) -- a chunk applied twice would show up as conflict
#      errors for good lines or as missing/extra rows;
#   2. a submit_batch('create') of 200000 items, chunk_size 1000, 8 bad
#      items, interrupted at the same time: every item applied exactly
#      once.  Double application must be VISIBLE, so the target has no
#      unique constraint but a bigserial primary key: applying a chunk
#      twice inserts its items again with new ids (an update would not do:
#      setting a column to the same value twice leaves no trace), and the
#      check is count(*) = count(DISTINCT item_no) = number of good items
#      plus the multiset of (item_no, val) equal to the expected one;
#      job_errors() lists each bad index exactly once;
#   3. two atomic imports interrupted mid-way (uncommitted rows already
#      written, none visible): after the restart they start over; the clean
#      file ends completed with every row exactly once, the file with bad
#      rows ends failed with no row imported and each bad line reported
#      once;
#   4. the worker runs a new job after the restart;
#   5. a job that wait_job() reported completed is still completed (and was
#      not run again) after an immediate crash right after.
#
# The targets have an AFTER ... FOR EACH STATEMENT trigger that busy-waits
# (wall clock) a few tens of milliseconds, so that a job lasts several
# seconds and the crash reliably lands in the middle of it; it changes
# nothing else.  It does not pg_sleep(): a sleeping backend notices the
# death of its postmaster and exits, which would hide whether the job
# worker itself does; busy work is what a real import does.
#
# BATCH_OPS_JOBS_CRASH_MODES (default "immediate kill9 worker9") selects the
# crash modes.  ~2 minutes.  Exit 0 = pass; every failed check is printed.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/jobs_common.sh
source "$here/lib/jobs_common.sh"

port="${BATCH_OPS_JOBS_CRASH_PORT:-5481}"
modes="${BATCH_OPS_JOBS_CRASH_MODES:-immediate kill9 worker9}"
jt_start jobs_crash_resume "$port"
S="$BATCH_OPS_SCRATCH"

N=400000  # rows of import.csv (27 of them bad)
NA=300000 # rows of good.csv (all good)
NB=200000 # items of the batch job (8 of them bad)

# ---------------------------------------------------------------- fixtures
# import.csv: header id,name,qty; record i (line i + 1) is "i,n<i>,<i % 100>",
# with a quoted field holding a comma every 1000 rows, except the bad ones,
# which import_bad.tsv lists (line, i, expected error, raw record).
awk -v N="$N" -v csv="$S/import.csv" -v bad="$S/import_bad.tsv" 'BEGIN {
	print "id,name,qty" > csv
	for (i = 1; i <= N; i++) {
		m = i % 50000; err = ""
		if (m == 7)                      { rec = i ",n" i ",abc";      err = "validation_error" }
		else if (m == 20011)             { rec = i ",n" i ",-5";       err = "validation_error" }
		else if (m == 33333)             { rec = i ",n" i ",1,extra";  err = "validation_error" }
		else if (i == 123457 || i == 345679) { rec = i ",n" i;         err = "validation_error" }
		else if (i == 250001)            { rec = "1000,dup,1";         err = "conflict" }
		else if (i % 1000 == 500)        rec = i ",\"n" i ", q\"," (i % 100)
		else                             rec = i ",n" i "," (i % 100)
		print rec > csv
		if (err != "") print (i + 1) "\t" i "\t" err "\t" rec > bad
	}
}'
awk -v N="$NA" 'BEGIN { print "id,name,qty"; for (i = 1; i <= N; i++) print i ",n" i "," (i % 100) }' >"$S/good.csv"
chmod 644 "$S"/*.csv "$S"/*.tsv
NBAD="$(wc -l <"$S/import_bad.tsv")"
NGOOD=$((N - NBAD))
jt_log "fixtures: import.csv $N rows ($NBAD bad), good.csv $NA rows, batch of $NB items"

jt_sql >/dev/null <<SQL
-- busy-wait TG_ARGV[0] milliseconds of wall-clock time, without sleeping
CREATE FUNCTION spin() RETURNS trigger LANGUAGE plpgsql AS \$\$
DECLARE
	stop timestamptz := clock_timestamp() + make_interval(secs => TG_ARGV[0]::float8 / 1000);
BEGIN
	WHILE clock_timestamp() < stop LOOP
	END LOOP;
	RETURN NULL;
END \$\$;

CREATE TABLE import_bad (line bigint PRIMARY KEY, src int NOT NULL, error text NOT NULL, raw text NOT NULL);
\copy import_bad FROM '$S/import_bad.tsv'
CREATE TABLE expected_import AS
	SELECT i AS id, 'n' || i || CASE WHEN i % 1000 = 500 THEN ', q' ELSE '' END AS name, i % 100 AS qty
	  FROM generate_series(1, $N) AS i
	 WHERE i NOT IN (SELECT src FROM import_bad);

CREATE TABLE batch_bad (idx int PRIMARY KEY, error text NOT NULL);
INSERT INTO batch_bad
	SELECT k, 'validation_error' FROM generate_series(123, $NB - 1, 40000) AS k;  -- CHECK (val >= 0)
INSERT INTO batch_bad VALUES (150001, 'validation_error'),                      -- "val": "x"
                             (99999, 'invalid_item'),                           -- not an object
                             ($NB - 1, 'validation_error');                     -- unknown column
CREATE TABLE expected_batch AS
	SELECT k AS item_no, k % 7 AS val FROM generate_series(0, $NB - 1) AS k
	 WHERE k NOT IN (SELECT idx FROM batch_bad);
-- the items, built once
CREATE TABLE batch_items AS SELECT jsonb_agg(CASE
		WHEN k IN (SELECT idx FROM batch_bad WHERE idx % 40000 = 123) THEN jsonb_build_object('item_no', k, 'val', -1)
		WHEN k = 150001 THEN jsonb_build_object('item_no', k, 'val', 'x')
		WHEN k = 99999 THEN to_jsonb('not an object'::text)
		WHEN k = $NB - 1 THEN jsonb_build_object('item_no', k, 'nope', 1)
		ELSE jsonb_build_object('item_no', k, 'val', k % 7) END ORDER BY k) AS items
	  FROM generate_series(0, $NB - 1) AS k;
SQL
NBBAD="$(jt_sql -c "SELECT count(*) FROM batch_bad")"
NBGOOD=$((NB - NBBAD))

# ---------------------------------------------------------------- helpers
job_summary() { # JOB — wait for it (bounded), then its counters
	jt_q "SELECT concat_ws(' ', w->>'status', w->'progress', w->'rows_done',
	                 w->'results'->'created', w->'results'->'failed',
	                 w->'results'->'errors_total', jsonb_array_length(w->'results'->'errors'))
	        FROM batch_ops.wait_job($1, '90 s') AS w"
}

# What differs between two queries' multisets (at most 10 rows), '' if equal.
diff_sql() { # QUERY_GOT QUERY_WANT
	echo "SELECT coalesce(string_agg(d, '; '), '') FROM (
	        (SELECT 'unexpected ' || g::text AS d FROM (($1) EXCEPT ALL ($2)) AS g LIMIT 10)
	        UNION ALL
	        (SELECT 'missing ' || w::text FROM (($2) EXCEPT ALL ($1)) AS w LIMIT 10)) AS x"
}

check_import_errors() { # WHAT JOB
	jt_is "$1: job_errors() has $NBAD rows, one per bad line" \
		"$(jt_q "SELECT count(*) || ' ' || count(DISTINCT line) FROM batch_ops.job_errors($2)")" "$NBAD $NBAD"
	jt_is "$1: job_errors() = the bad lines, each once, with error name and raw record" \
		"$(jt_q "$(diff_sql "SELECT line, error, raw FROM batch_ops.job_errors($2)" \
			"SELECT line, error, raw FROM import_bad")")" ""
}

check_imported() { # WHAT TABLE
	jt_is "$1: $NGOOD rows, no duplicate id" \
		"$(jt_q "SELECT count(*) || ' ' || count(DISTINCT id) FROM $2")" "$NGOOD $NGOOD"
	jt_is "$1: every good row exactly once, with its values" \
		"$(jt_q "$(diff_sql "SELECT id, name, qty FROM $2" "SELECT id, name, qty FROM expected_import")")" ""
}

check_resumed() { # WHAT JOB
	jt_true "$1: (test validity) the crash interrupted the job, which was resumed (attempts >= 2)" \
		"SELECT attempts >= 2 FROM batch_ops.job_queue WHERE id = $2"
}

# Crash the server while jobs run.  MODE: immediate | kill9 | worker9.
crash() {
	local mode="$1" pm kids c alive i t0
	t0="$(date +%s%N)"
	case "$mode" in
	immediate)
		bo_cluster_stop "$JT_DIR" immediate >/dev/null
		;;
	kill9)
		pm="$(jt_postmaster_pid)"
		kids="$(ps -o pid= --ppid "$pm" | tr -d ' ' | tr '\n' ' ')"
		kill -9 "$pm"
		# A PostgreSQL process whose postmaster is gone must exit soon: it
		# may not go on writing (nor block the restart: "pre-existing shared
		# memory block is still in use").  Give them 3 s (a chunk here
		# takes at most a few hundred milliseconds).
		for ((i = 0; i < 30; i++)); do
			alive=""
			for c in $kids; do
				_bo_pid_alive "$c" && alive+=" $c"
			done
			[[ -z "$alive" ]] && break
			sleep 0.1
		done
		if [[ -z "$alive" ]]; then
			jt_ok "kill9: every process of the killed postmaster exited within 3 s"
		else
			local desc=()
			for c in $alive; do
				desc+=("pid $c: $(tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null)")
			done
			jt_fail "kill9: every process of the killed postmaster exited within 3 s" \
				"still running 3 s after the postmaster was killed:" "${desc[@]}"
			# what a machine crash would do to them
			for c in $alive; do kill -9 "$c" 2>/dev/null || true; done
			for c in $alive; do _bo_wait_pid_gone "$c" 10; done
		fi
		;;
	worker9)
		c="$(jt_q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'batch_ops job worker'
		             AND query LIKE 'batch_ops job $2 %'")"
		if [[ ! "$c" =~ ^[0-9]+$ ]]; then
			jt_fail "worker9: found the worker of job $2" "got: $c"
			return 1
		fi
		kill -9 "$c"
		;;
	esac
	jt_log "crashed ($mode) in $((($(date +%s%N) - t0) / 1000000)) ms"
}

# Bring the server back after crash MODE.
restart() {
	local mode="$1" t0
	t0="$(date +%s%N)"
	if [[ "$mode" == worker9 ]]; then
		# the postmaster restarts by itself after resetting shared memory
		sleep 1
		jt_wait "worker9: the server accepts connections again" 60 "SELECT true" || return 1
	else
		bo_cluster_restart "$JT_DIR" >/dev/null 2>&1 || {
			jt_fail "$mode: the server restarts"
			return 1
		}
	fi
	jt_log "server back after $((($(date +%s%N) - t0) / 1000000)) ms"
}

# Wait until JOB runs before submitting the second job of a cycle: two jobs
# queued before a worker claims the first one are run one after the other
# by that worker (a second worker is not started: see jobs_databases.sh),
# and the crash must hit both while they run.
start_second() { # WHAT JOB
	jt_wait "$1: job $2 running" 30 \
		"SELECT status = 'running' FROM batch_ops.jobs WHERE job_id = $2" || true
}

next_job_runs() { # WHAT
	local j
	j="$(jt_q "SELECT batch_ops.submit_batch('create', 'after_crash', '[{\"v\": 1}]')")"
	jt_is "$1: the workers run a new job after the restart" \
		"$(jt_q "SELECT batch_ops.wait_job($j, '60 s')->>'status'")" completed
}

# ---------------------------------------------------------------- partial jobs
partial_cycle() { # MODE
	local m="$1" ji jb
	jt_log "== $m: partial import + batch job, crash while both run"
	jt_sql >/dev/null <<SQL
CREATE TABLE imp_$m (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0));
CREATE TRIGGER slow AFTER INSERT ON imp_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(80);
CREATE TABLE bat_$m (id bigserial PRIMARY KEY, item_no int NOT NULL, val int NOT NULL CHECK (val >= 0));
CREATE TRIGGER slow AFTER INSERT ON bat_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(40);
SQL
	# The batch is submitted once the import runs, so that a worker of its
	# own starts for it (see start_second below).
	ji="$(jt_sql -c "SELECT batch_ops.submit_import('imp_$m', '$S/import.csv', '{\"chunk_size\": 5000}')")"
	start_second "$m" "$ji"
	jb="$(jt_sql -c "SELECT batch_ops.submit_batch('create', 'bat_$m', items, '{\"chunk_size\": 1000}') FROM batch_items")"
	# some chunks of both committed, neither finished
	jt_wait_ok "$m: both jobs running with committed chunks" 60 \
		"SELECT (SELECT status = 'running' AND rows_done >= 10000 FROM batch_ops.jobs WHERE job_id = $ji)
		    AND (SELECT status = 'running' AND rows_done >= 2000 FROM batch_ops.jobs WHERE job_id = $jb)
		    AND EXISTS (SELECT FROM imp_$m) AND EXISTS (SELECT FROM bat_$m)" || true
	jt_log "before the crash: $(jt_q "SELECT string_agg(kind || ' ' || status || ' rows_done=' || rows_done, ', ' ORDER BY job_id)
	                                   FROM batch_ops.jobs WHERE job_id IN ($ji, $jb)")"
	crash "$m" "$ji" || return 0
	restart "$m" || return 0

	jt_is "$m: import job completed with exact counters (status progress rows_done created failed errors_total #errors)" \
		"$(job_summary "$ji")" "completed 100 $N $NGOOD $NBAD $NBAD $NBAD"
	check_imported "$m: import" "imp_$m"
	check_import_errors "$m: import" "$ji"
	check_resumed "$m: import" "$ji"

	jt_is "$m: batch job completed with exact counters (status progress rows_done created failed errors_total #errors)" \
		"$(job_summary "$jb")" "completed 100 $NB $NBGOOD $NBBAD $NBBAD $NBBAD"
	jt_is "$m: batch: $NBGOOD rows, no item applied twice" \
		"$(jt_q "SELECT count(*) || ' ' || count(DISTINCT item_no) FROM bat_$m")" "$NBGOOD $NBGOOD"
	jt_is "$m: batch: every good item exactly once, with its values" \
		"$(jt_q "$(diff_sql "SELECT item_no, val FROM bat_$m" "SELECT item_no, val FROM expected_batch")")" ""
	jt_is "$m: batch: job_errors() = the bad indexes, each once, with error name" \
		"$(jt_q "$(diff_sql "SELECT index, error FROM batch_ops.job_errors($jb)" "SELECT idx, error FROM batch_bad")")" ""
	if [[ "$m" != worker9 ]]; then
		check_resumed "$m: batch" "$jb"
	fi
	next_job_runs "$m"
}

# ---------------------------------------------------------------- atomic imports
atomic_cycle() { # MODE
	local m="$1" jok jbad
	jt_log "== $m: two atomic imports, crash while both run"
	jt_sql >/dev/null <<SQL
CREATE TABLE aok_$m (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0));
CREATE TRIGGER slow AFTER INSERT ON aok_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
CREATE TABLE abad_$m (LIKE aok_$m INCLUDING ALL);
CREATE TRIGGER slow AFTER INSERT ON abad_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
SQL
	jok="$(jt_sql -c "SELECT batch_ops.submit_import('aok_$m', '$S/good.csv', '{\"atomic\": true, \"chunk_size\": 5000}')")"
	start_second "$m" "$jok"
	jbad="$(jt_sql -c "SELECT batch_ops.submit_import('abad_$m', '$S/import.csv', '{\"atomic\": true, \"chunk_size\": 5000}')")"
	# both running and well into the file: their (uncommitted) rows take room
	jt_wait_ok "$m: both atomic imports running, 1 MB of rows written" 60 \
		"SELECT (SELECT bool_and(status = 'running') FROM batch_ops.jobs WHERE job_id IN ($jok, $jbad))
		    AND pg_relation_size('aok_$m') > 1000000 AND pg_relation_size('abad_$m') > 1000000" || true
	jt_is "$m: atomic imports: no row visible before the end" \
		"$(jt_q "SELECT (SELECT count(*) FROM aok_$m) + (SELECT count(*) FROM abad_$m)")" 0
	crash "$m" "$jok" || return 0
	restart "$m" || return 0

	jt_is "$m: clean atomic import completed (status progress rows_done created failed errors_total #errors)" \
		"$(job_summary "$jok")" "completed 100 $NA $NA 0 0 0"
	jt_is "$m: clean atomic import: every row exactly once" \
		"$(jt_q "$(diff_sql "SELECT id, name, qty FROM aok_$m" \
			"SELECT i, 'n' || i, i % 100 FROM generate_series(1, $NA) AS i")")" ""
	check_resumed "$m: clean atomic import" "$jok"

	jt_is "$m: atomic import with bad rows failed, nothing imported (status created errors_total error)" \
		"$(jt_q "SELECT concat_ws(' | ', w->>'status', w->'results'->'created', w->'results'->'errors_total', w->>'error')
		           FROM batch_ops.wait_job($jbad, '90 s') AS w")" \
		"failed | 0 | $NBAD | $NBAD rows failed; nothing was imported (atomic)"
	jt_is "$m: atomic import with bad rows: table empty" "$(jt_q "SELECT count(*) FROM abad_$m")" 0
	check_import_errors "$m: atomic import with bad rows" "$jbad"
	check_resumed "$m: atomic import with bad rows" "$jbad"
	next_job_runs "$m"
}

# ---------------------------------------------------------------- finished stays finished
# Chunk commits need not wait for the WAL flush (a lost one only moves the
# job back to an earlier checkpoint), but a job reported finished must stay
# finished: crash right after wait_job() said completed.
finished_stays_finished() {
	local j
	jt_log "== a job reported completed survives an immediate crash right after"
	jt_sql -c "CREATE TABLE fin (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)" >/dev/null
	j="$(jt_sql -c "SELECT batch_ops.submit_import('fin', '$S/good.csv', '{\"chunk_size\": 1000}')")"
	jt_is "finished: the import completed" "$(jt_q "SELECT batch_ops.wait_job($j, '60 s')->>'status'")" completed
	bo_cluster_stop "$JT_DIR" immediate >/dev/null
	restart immediate || return 0
	jt_is "finished: after the crash the job is still completed, ran once, all rows there (status attempts rows_done count)" \
		"$(jt_q "SELECT concat_ws(' ', status, attempts, rows_done, (SELECT count(*) FROM fin))
		           FROM batch_ops.job_queue WHERE id = $j")" "completed 1 $NA $NA"
}

jt_sql -c "CREATE TABLE after_crash (id serial PRIMARY KEY, v int)" >/dev/null
for m in $modes; do
	partial_cycle "$m"
	if [[ "$m" != worker9 ]]; then
		atomic_cycle "$m"
	fi
done
finished_stays_finished

if grep -E 'PANIC|TRAP:|terminated by signal (6|11)|was terminated by exception' "$BATCH_OPS_CLUSTER_LOG" >/dev/null; then
	jt_fail "no assertion failure or segfault in the server log" \
		"$(grep -E 'PANIC|TRAP:|terminated by signal (6|11)|was terminated by exception' "$BATCH_OPS_CLUSTER_LOG" | head -n 5)"
else
	jt_ok "no assertion failure or segfault in the server log"
fi
jt_done
