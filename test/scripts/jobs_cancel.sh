#!/usr/bin/env bash
#
# Cancelling jobs, and jobs that fail as a whole, on their own throwaway
# cluster (port $BATCH_OPS_JOBS_CANCEL_PORT, 5482 by default; default test
# config).  Asserts:
#
#   1. cancel_job() of a running import (400000 rows, chunk_size 5000, a
#      target whose statement trigger busy-waits, so that the job lasts
#      ~10 s) returns true and the job is 'cancelled' within 2 s; the
#      chunks committed before stay, exactly once (the table holds a prefix
#      of the file, ids 1..count(*), and count(*) = the job's "created"),
#      the cancel is not reported as row errors; a second cancel_job()
#      returns false;
#   2. the same for a running atomic import (nothing stays) and a running
#      submit_batch job;
#   3. the worker goes on: a job submitted with the cancelled one (queued
#      behind it) completes;
#   4. a job whose target is dropped while it runs fails as a whole (status
#      'failed', a sane error message), keeping its committed chunks; a job
#      whose trigger raises an error that is not a row's fault (40001) fails
#      with that error instead of reporting the row;  the worker survives
#      both and runs the next job;
#   5. an atomic job's finished_at is when it finished (not when it
#      started);
#   6. no job worker crashed or exited with an error (server log).
#
# Exit 0 = pass; every failed check is printed.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/jobs_common.sh
source "$here/lib/jobs_common.sh"

port="${BATCH_OPS_JOBS_CANCEL_PORT:-5482}"
jt_start jobs_cancel "$port"
S="$BATCH_OPS_SCRATCH"

N=400000
awk -v N="$N" 'BEGIN { print "id,name,qty"; for (i = 1; i <= N; i++) print i ",n" i "," (i % 100) }' >"$S/good.csv"
chmod 644 "$S/good.csv"

jt_sql >/dev/null <<'SQL'
-- busy-wait TG_ARGV[0] milliseconds of wall-clock time, without sleeping
CREATE FUNCTION spin() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	stop timestamptz := clock_timestamp() + make_interval(secs => TG_ARGV[0]::float8 / 1000);
BEGIN
	WHILE clock_timestamp() < stop LOOP
	END LOOP;
	RETURN NULL;
END $$;
CREATE TABLE imp (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0));
CREATE TRIGGER slow AFTER INSERT ON imp FOR EACH STATEMENT EXECUTE FUNCTION spin(120);
CREATE TABLE bat (id int PRIMARY KEY, v int NOT NULL);
CREATE TRIGGER slow AFTER INSERT ON bat FOR EACH STATEMENT EXECUTE FUNCTION spin(100);
CREATE TABLE after_cancel (id serial PRIMARY KEY, v int);
SQL

# cancel JOB, then measure how long until it is no longer running
cancel_and_time() { # JOB -> prints "<cancel_job result> <ms until finished>"
	local r t0 st i
	t0="$(date +%s%N)"
	r="$(jt_q "SELECT batch_ops.cancel_job($1)")"
	for ((i = 0; i < 200; i++)); do
		st="$(jt_q "SELECT status FROM batch_ops.jobs WHERE job_id = $1")"
		[[ "$st" != running && "$st" != queued ]] && break
		sleep 0.05
	done
	echo "$r $((($(date +%s%N) - t0) / 1000000))"
}

# ---------------------------------------------------------------- 1 + 3: import
jt_log "== cancel a running import"
ids="$(jt_sql -c "BEGIN" -c "SELECT batch_ops.submit_import('imp', '$S/good.csv', '{\"chunk_size\": 5000}')" \
	-c "SELECT batch_ops.submit_batch('create', 'after_cancel', '[{\"v\": 1}]')" -c "COMMIT")"
ji="$(sed -n 1p <<<"$ids")"
jnext="$(sed -n 2p <<<"$ids")"
jt_wait "import running with committed chunks" 60 \
	"SELECT status = 'running' AND rows_done >= 10000 FROM batch_ops.jobs WHERE job_id = $ji" || true
read -r res ms <<<"$(cancel_and_time "$ji")"
jt_log "cancel_job returned $res; the job stopped after $ms ms"
jt_is "cancel_job() of a running import returns true" "$res" t
if ((ms <= 2000)); then
	jt_ok "the import is no longer running within 2 s of cancel_job() (${ms} ms)"
else
	jt_fail "the import is no longer running within 2 s of cancel_job()" "took ${ms} ms"
fi
jt_is "cancelled import: status, and no row error for the cancel (status errors_total #errors)" \
	"$(jt_q "SELECT concat_ws(' ', w->>'status', w->'results'->'errors_total', jsonb_array_length(w->'results'->'errors'))
	           FROM batch_ops.wait_job($ji, '30 s') AS w")" "cancelled 0 0"
jt_true "cancelled import: committed chunks stay (0 < rows < $N)" \
	"SELECT count(*) > 0 AND count(*) < $N FROM imp"
jt_true "cancelled import: the rows are a prefix of the file, each once (ids 1..count(*))" \
	"SELECT count(*) = count(DISTINCT id) AND max(id) = count(*) AND min(id) = 1 FROM imp"
jt_true "cancelled import: count(*) = the job's created counter = rows_done" \
	"SELECT (SELECT count(*) FROM imp) = created AND created = rows_done FROM batch_ops.jobs WHERE job_id = $ji"
jt_is "cancel_job() of a cancelled job returns false" "$(jt_q "SELECT batch_ops.cancel_job($ji)")" f
jt_is "the job queued with the cancelled import completes" \
	"$(jt_q "SELECT batch_ops.wait_job($jnext, '30 s')->>'status'")" completed
jt_log "the cancelled import and the next job ran in worker(s) $(jt_q "SELECT string_agg(DISTINCT worker_pid::text, ', ')
                                                                        FROM batch_ops.job_queue WHERE id IN ($ji, $jnext)")"

jt_log "== cancel a running atomic import"
jt_sql >/dev/null <<'SQL'
CREATE TABLE imp_atomic (LIKE imp INCLUDING ALL);
CREATE TRIGGER slow AFTER INSERT ON imp_atomic FOR EACH STATEMENT EXECUTE FUNCTION spin(120);
SQL
jia="$(jt_sql -c "SELECT batch_ops.submit_import('imp_atomic', '$S/good.csv', '{\"chunk_size\": 5000, \"atomic\": true}')")"
jt_wait "atomic import running, 1 MB of rows written" 60 \
	"SELECT status = 'running' AND pg_relation_size('imp_atomic') > 1000000 FROM batch_ops.jobs WHERE job_id = $jia" || true
read -r res ms <<<"$(cancel_and_time "$jia")"
jt_is "cancel_job() of a running atomic import returns true" "$res" t
if ((ms <= 2000)); then
	jt_ok "the atomic import is no longer running within 2 s of cancel_job() (${ms} ms)"
else
	jt_fail "the atomic import is no longer running within 2 s of cancel_job()" "took ${ms} ms"
fi
jt_is "cancelled atomic import: status cancelled, nothing imported (status created count)" \
	"$(jt_q "SELECT concat_ws(' ', w->>'status', w->'results'->'created', (SELECT count(*) FROM imp_atomic))
	           FROM batch_ops.wait_job($jia, '30 s') AS w")" "cancelled 0 0"

# ---------------------------------------------------------------- 2: batch
jt_log "== cancel a running batch job"
jb="$(jt_sql -c "SELECT batch_ops.submit_batch('create', 'bat',
                   (SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 100000) AS g),
                   '{\"chunk_size\": 1000}')")"
jt_wait "batch job running with committed chunks" 60 \
	"SELECT status = 'running' AND rows_done >= 2000 FROM batch_ops.jobs WHERE job_id = $jb" || true
read -r res ms <<<"$(cancel_and_time "$jb")"
jt_is "cancel_job() of a running batch job returns true" "$res" t
if ((ms <= 2000)); then
	jt_ok "the batch job is no longer running within 2 s of cancel_job() (${ms} ms)"
else
	jt_fail "the batch job is no longer running within 2 s of cancel_job()" "took ${ms} ms"
fi
jt_is "cancelled batch: status, no row error for the cancel (status errors_total)" \
	"$(jt_q "SELECT concat_ws(' ', w->>'status', w->'results'->'errors_total') FROM batch_ops.wait_job($jb, '30 s') AS w")" \
	"cancelled 0"
jt_true "cancelled batch: committed chunks stay, whole chunks of 1000, each item once" \
	"SELECT count(*) > 0 AND count(*) < 100000 AND count(*) % 1000 = 0 AND count(*) = count(DISTINCT id)
	        AND max(id) = count(*) FROM bat"
jt_true "cancelled batch: count(*) = the job's created counter" \
	"SELECT (SELECT count(*) FROM bat) = created FROM batch_ops.jobs WHERE job_id = $jb"

# ---------------------------------------------------------------- 4: failing jobs
jt_log "== a job whose target is dropped while it runs"
jt_sql >/dev/null <<SQL
CREATE TABLE doomed (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
CREATE TRIGGER slow AFTER INSERT ON doomed FOR EACH STATEMENT EXECUTE FUNCTION spin(120);
SQL
jd="$(jt_sql -c "SELECT batch_ops.submit_import('doomed', '$S/good.csv', '{\"chunk_size\": 5000}')")"
jt_wait "import into doomed running with committed chunks" 60 \
	"SELECT status = 'running' AND rows_done >= 10000 FROM batch_ops.jobs WHERE job_id = $jd" || true
# the DROP waits for the chunk in progress, then the next chunk finds no table
jt_sql -c "SET lock_timeout = '20s'" -c "DROP TABLE doomed" >/dev/null || jt_fail "DROP TABLE doomed while the import runs"
st="$(jt_q "SELECT concat_ws(' | ', w->>'status', w->>'error') FROM batch_ops.wait_job($jd, '30 s') AS w")"
jt_log "job on a dropped table: $st"
jt_is "job on a table dropped meanwhile: failed" "${st%% |*}" failed
if [[ "$st" =~ (no longer exists|does not exist) ]]; then
	jt_ok "job on a table dropped meanwhile: the error says the table is gone"
else
	jt_fail "job on a table dropped meanwhile: the error says the table is gone" "got: $st"
fi
jt_true "job on a table dropped meanwhile: its committed chunks are counted (created > 0)" \
	"SELECT created > 0 FROM batch_ops.jobs WHERE job_id = $jd"

jt_log "== a job whose trigger raises a serialization failure"
jt_sql >/dev/null <<'SQL'
CREATE TABLE serfail (id int PRIMARY KEY, v int NOT NULL);
CREATE FUNCTION serfail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 1500 THEN
		RAISE EXCEPTION 'simulated serialization failure' USING ERRCODE = 'serialization_failure';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER serfail BEFORE INSERT ON serfail FOR EACH ROW EXECUTE FUNCTION serfail();
SQL
jf="$(jt_sql -c "SELECT batch_ops.submit_batch('create', 'serfail',
                   (SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 3000) AS g),
                   '{\"chunk_size\": 1000}')")"
jt_is "a 40001 raised for one item fails the job with that error (status error created #errors)" \
	"$(jt_q "SELECT concat_ws(' | ', w->>'status', w->>'error', w->'results'->'created', w->'results'->'errors_total')
	           FROM batch_ops.wait_job($jf, '30 s') AS w")" \
	"failed | simulated serialization failure | 1000 | 0"
jt_is "the chunk before the failing one stays, the failing chunk is rolled back" \
	"$(jt_q "SELECT count(*) || ' ' || max(id) FROM serfail")" "1000 1000"

# wait_job() refuses a job submitted in its own transaction: submit first
jn="$(jt_sql -c "SELECT batch_ops.submit_batch('create', 'after_cancel', '[{\"v\": 3}]')")"
jt_is "the workers run a new job after the failures" \
	"$(jt_q "SELECT batch_ops.wait_job($jn, '30 s')->>'status'")" completed

# ---------------------------------------------------------------- 5: finished_at
jt_log "== finished_at of an atomic job"
jt_sql >/dev/null <<'SQL'
CREATE TABLE atom (id int PRIMARY KEY, v int NOT NULL);
CREATE TRIGGER slow AFTER INSERT ON atom FOR EACH STATEMENT EXECUTE FUNCTION spin(300);
SQL
ja="$(jt_sql -c "SELECT batch_ops.submit_batch('create', 'atom',
                   (SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 5000) AS g),
                   '{\"chunk_size\": 1000, \"atomic\": true}')")"
jt_is "atomic job completed" "$(jt_q "SELECT batch_ops.wait_job($ja, '30 s')->>'status'")" completed
jt_true "atomic job: finished_at - started_at covers its run (5 chunks x 300 ms >= 1 s)" \
	"SELECT finished_at - started_at >= interval '1 s' FROM batch_ops.jobs WHERE job_id = $ja"
jt_log "atomic job: started_at/finished_at $(jt_q "SELECT started_at || ' / ' || finished_at FROM batch_ops.jobs WHERE job_id = $ja")"

# ---------------------------------------------------------------- 6: server log
bad="$(grep -E 'batch_ops job worker.*(terminated by signal|exited with exit code [^0])|PANIC|TRAP:' "$BATCH_OPS_CLUSTER_LOG" || true)"
if [[ -z "$bad" ]]; then
	jt_ok "no job worker crashed or exited with an error"
else
	jt_fail "no job worker crashed or exited with an error" "$(head -n 5 <<<"$bad")"
fi
jt_done
