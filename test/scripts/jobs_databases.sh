#!/usr/bin/env bash
#
# Job workers across databases and roles, on their own throwaway cluster
# (port $BATCH_OPS_JOBS_DB_PORT, 5483 by default; default test config:
# batch_ops.max_workers = 2).  Asserts:
#
#   1. a job submitted in a second database (CREATE DATABASE second;
#      CREATE EXTENSION batch_ops there) runs with no configuration, at
#      once (not after batch_ops.poll_interval);
#   2. jobs in two databases run at the same time and both complete; two
#      jobs submitted together in one database run at the same time too
#      (max_workers = 2: "when more work is queued [the worker] wakes the
#      launcher so that a second worker can start", worker.c);
#   3. NOTIFY batch_ops_jobs is delivered to a listener of the job's
#      database, with '{"job_id": N, "status": "..."}', for completed,
#      failed and cancelled jobs, and not to listeners of other databases;
#   4. jobs run as the submitting role: DEFAULT current_user/session_user
#      are that role (batch and import), row-level security applies (a row
#      the policy rejects is permission_denied), a role that lost INSERT
#      before its job ran gets nothing written (every item
#      permission_denied, or the job failed with a permission error), a
#      trigger cannot SET SESSION AUTHORIZATION back to the worker's
#      superuser identity;
#   5. a role sees only its own jobs in batch_ops.jobs, and job(),
#      job_errors(), cancel_job() of another role's job say it does not
#      exist; a superuser sees every job.
#
# Every wait is bounded.  Exit 0 = pass; every failed check is printed.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/jobs_common.sh
source "$here/lib/jobs_common.sh"

port="${BATCH_OPS_JOBS_DB_PORT:-5483}"
jt_start jobs_databases "$port"
S="$BATCH_OPS_SCRATCH"

SPIN_SQL='
CREATE FUNCTION spin() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	stop timestamptz := clock_timestamp() + make_interval(secs => TG_ARGV[0]::float8 / 1000);
BEGIN
	WHILE clock_timestamp() < stop LOOP
	END LOOP;
	RETURN NULL;
END $$;
CREATE TABLE slow (id int PRIMARY KEY, v int);
CREATE TRIGGER slow AFTER INSERT ON slow FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
CREATE TABLE slow2 (LIKE slow INCLUDING ALL);
CREATE TRIGGER slow AFTER INSERT ON slow2 FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
CREATE TABLE quick (id serial PRIMARY KEY, v int);
'
# 30 chunks of 100 items, 150 ms each: a job of ~5 s
SLOW_ITEMS="(SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 3000) AS g)"

jt_sql -c "CREATE DATABASE second" >/dev/null
jt_sql -d second -c "CREATE EXTENSION batch_ops" >/dev/null
jt_sql <<<"$SPIN_SQL" >/dev/null
jt_sql -d second <<<"$SPIN_SQL" >/dev/null

# ---------------------------------------------------------------- 1
jt_log "== a job in a second database"
t0="$(date +%s%N)"
j="$(jt_sql -d second -c "SELECT batch_ops.submit_batch('create', 'quick', '[{\"v\": 1}, {\"v\": 2}]')")"
jt_is "second database: the job completes" \
	"$(jt_q -d second "SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($j, '50 s') AS w")" \
	"completed 2"
ms=$((($(date +%s%N) - t0) / 1000000))
if ((ms < 10000)); then
	jt_ok "second database: the job ran at once (${ms} ms), not at the next poll"
else
	jt_fail "second database: the job ran at once, not at the next poll" "took ${ms} ms"
fi
jt_is "second database: the rows are there" "$(jt_q -d second "SELECT count(*) FROM quick")" 2

# ---------------------------------------------------------------- 2
jt_log "== jobs in two databases at once"
j1="$(jt_sql -c "SELECT batch_ops.submit_batch('create', 'slow', $SLOW_ITEMS, '{\"chunk_size\": 100}')")"
j2="$(jt_sql -d second -c "SELECT batch_ops.submit_batch('create', 'slow', $SLOW_ITEMS, '{\"chunk_size\": 100}')")"
both_running() {
	[[ "$(jt_q "SELECT status FROM batch_ops.jobs WHERE job_id = $1")" == running &&
		"$(jt_q -d "$3" "SELECT status FROM batch_ops.jobs WHERE job_id = $2")" == running ]]
}
ok=0
for ((i = 0; i < 100; i++)); do
	if both_running "$j1" "$j2" second; then
		ok=1
		break
	fi
	sleep 0.1
done
if ((ok)); then
	jt_ok "two databases: both jobs run at the same time"
else
	jt_fail "two databases: both jobs run at the same time (within 10 s)" \
		"postgres: $(jt_q "SELECT status FROM batch_ops.jobs WHERE job_id = $j1"), second: $(jt_q -d second "SELECT status FROM batch_ops.jobs WHERE job_id = $j2")"
fi
jt_is "two databases: the job in postgres completes" \
	"$(jt_q "SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($j1, '50 s') AS w")" "completed 3000"
jt_is "two databases: the job in second completes" \
	"$(jt_q -d second "SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($j2, '50 s') AS w")" "completed 3000"

jt_log "== two jobs submitted together in one database"
jt_sql -c "TRUNCATE slow, slow2" >/dev/null
ids="$(jt_sql -c "BEGIN" -c "SELECT batch_ops.submit_batch('create', 'slow', $SLOW_ITEMS, '{\"chunk_size\": 100}')" \
	-c "SELECT batch_ops.submit_batch('create', 'slow2', $SLOW_ITEMS, '{\"chunk_size\": 100}')" -c "COMMIT")"
j1="$(sed -n 1p <<<"$ids")"
j2="$(sed -n 2p <<<"$ids")"
jt_wait_ok "one database: two jobs queued together run at the same time (max_workers = 2)" 4 \
	"SELECT count(*) = 2 FROM batch_ops.jobs WHERE job_id IN ($j1, $j2) AND status = 'running'" || true
jt_log "one database: $(jt_q "SELECT string_agg(job_id || ' ' || status, ', ' ORDER BY job_id) FROM batch_ops.jobs WHERE job_id IN ($j1, $j2)")"
jt_is "one database: both jobs complete" \
	"$(jt_q "SELECT string_agg(w->>'status', ' ') FROM (VALUES ($j1), ($j2)) AS v(j), batch_ops.wait_job(j, '50 s') AS w")" \
	"completed completed"

# ---------------------------------------------------------------- 3
jt_log "== NOTIFY batch_ops_jobs"
# A listener per database: LISTEN, then idle between short statements for
# ~6 s (psql prints the notifications it got after each statement).
listen_args=(-c "LISTEN batch_ops_jobs")
for ((i = 0; i < 30; i++)); do listen_args+=(-c "SELECT pg_sleep(0.2) AS listening"); done
jt_bg jt_sql -d postgres "${listen_args[@]}" >"$S/listen_postgres.out" 2>&1
lp1=$!
jt_bg jt_sql -d second "${listen_args[@]}" >"$S/listen_second.out" 2>&1
lp2=$!
jt_wait "both listeners are listening" 10 \
	"SELECT count(DISTINCT datname) = 2 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(0.2) AS listening%'" || true
jc="$(jt_sql -c "SELECT batch_ops.submit_batch('create', 'quick', '[{\"v\": 10}]')")"
jsec="$(jt_sql -d second -c "SELECT batch_ops.submit_batch('create', 'quick', '[{\"v\": 10}]')")"
# fails when a worker claims it: its target is gone
jt_sql -c "CREATE TABLE gone (id int PRIMARY KEY)" >/dev/null
jfail="$(jt_sql -c "BEGIN" -c "SELECT batch_ops.submit_batch('create', 'gone', '[{\"id\": 1}]')" -c "DROP TABLE gone" -c "COMMIT")"
# cancelled before it starts
jcan="$(jt_sql <<'SQL'
BEGIN;
SELECT batch_ops.submit_batch('create', 'quick', '[{"v": 11}]') AS j \gset
SELECT batch_ops.cancel_job(:j) \g /dev/null
COMMIT;
\echo :j
SQL
)"
for j in "$jc" "$jfail" "$jcan"; do
	jt_q "SELECT batch_ops.wait_job($j, '30 s')->>'status'" >/dev/null
done
jt_q -d second "SELECT batch_ops.wait_job($jsec, '30 s')->>'status'" >/dev/null
for p in "$lp1" "$lp2"; do
	wait "$p" 2>/dev/null || true
done
payloads() { # FILE: the payloads of the batch_ops_jobs notifications psql printed
	sed -n 's/^Asynchronous notification "batch_ops_jobs" with payload "\(.*\)" received from server process with PID [0-9]*\.$/\1/p' "$1" | sort
}
got_postgres="$(payloads "$S/listen_postgres.out")"
got_second="$(payloads "$S/listen_second.out")"
want_postgres="$(printf '%s\n' "{\"job_id\": $jc, \"status\": \"completed\"}" "{\"job_id\": $jfail, \"status\": \"failed\"}" \
	"{\"job_id\": $jcan, \"status\": \"cancelled\"}" | sort)"
jt_is "NOTIFY in postgres: one notification per finished job (completed, failed, cancelled), nothing from second" \
	"$got_postgres" "$want_postgres"
jt_is "NOTIFY in second: the job of second, nothing from postgres" \
	"$got_second" "{\"job_id\": $jsec, \"status\": \"completed\"}"

# ---------------------------------------------------------------- 4
jt_log "== jobs run as the submitting role"
awk 'BEGIN { print "id,v"; for (i = 1; i <= 1000; i++) print i "," i }' >"$S/owned.csv"
chmod 644 "$S/owned.csv"
jt_sql >/dev/null <<'SQL'
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT pg_read_server_files TO alice;
CREATE TABLE owned (id int PRIMARY KEY, v int,
                    who text NOT NULL DEFAULT current_user,
                    sess text NOT NULL DEFAULT session_user);
GRANT SELECT, INSERT ON owned TO alice, bob;
CREATE TABLE owned_import (LIKE owned INCLUDING ALL);
GRANT SELECT, INSERT ON owned_import TO alice;

CREATE TABLE rls (id int PRIMARY KEY, owner text NOT NULL);
ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON rls FOR INSERT WITH CHECK (owner = current_user);
CREATE POLICY see_all ON rls FOR SELECT USING (true);
GRANT SELECT, INSERT ON rls TO alice;

CREATE TABLE revoked (id int PRIMARY KEY);

-- a trigger that tries to become the worker's superuser identity again
CREATE TABLE escalate (id int PRIMARY KEY, who text, note text);
GRANT SELECT, INSERT ON escalate TO alice;
CREATE FUNCTION escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE 'SET SESSION AUTHORIZATION postgres';
		NEW.note := 'SET SESSION AUTHORIZATION succeeded';
	EXCEPTION WHEN OTHERS THEN
		NEW.note := SQLERRM;
	END;
	NEW.who := current_user || '/' || session_user;
	RETURN NEW;
END $$;
CREATE TRIGGER escalate BEFORE INSERT ON escalate FOR EACH ROW EXECUTE FUNCTION escalate();
SQL

ja="$(jt_sql -U alice -c "SELECT batch_ops.submit_batch('create', 'owned', '[{\"id\": 1, \"v\": 1}, {\"id\": 2, \"v\": 2}]')")"
jt_is "role: alice's batch job completed, submitted_by alice" \
	"$(jt_q -U alice "SELECT concat_ws(' ', w->>'status', w->'results'->'created', w->>'submitted_by') FROM batch_ops.wait_job($ja, '30 s') AS w")" \
	"completed 2 alice"
jt_is "role: alice's rows were written as alice (current_user, session_user)" \
	"$(jt_q "SELECT string_agg(DISTINCT who || '/' || sess, ',') FROM owned")" "alice/alice"
jai="$(jt_sql -U alice -c "SELECT batch_ops.submit_import('owned_import', '$S/owned.csv')")"
jt_is "role: alice's import completed" \
	"$(jt_q -U alice "SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($jai, '30 s') AS w")" \
	"completed 1000"
jt_is "role: alice's imported rows were written as alice" \
	"$(jt_q "SELECT string_agg(DISTINCT who || '/' || sess, ',') FROM owned_import")" "alice/alice"

jr="$(jt_sql -U alice -c "SELECT batch_ops.submit_batch('create', 'rls', '[{\"id\": 1, \"owner\": \"alice\"}, {\"id\": 2, \"owner\": \"bob\"}]')")"
jt_is "RLS: the row the policy rejects is permission_denied, the other is written (status created failed)" \
	"$(jt_q -U alice "SELECT concat_ws(' ', w->>'status', w->'results'->'created', w->'results'->'failed') FROM batch_ops.wait_job($jr, '30 s') AS w")" \
	"completed 1 1"
jt_is "RLS: job_errors() names the rejected item" \
	"$(jt_q -U alice "SELECT index || ' ' || error FROM batch_ops.job_errors($jr)")" "1 permission_denied"
jt_is "RLS: only alice's row is in the table" "$(jt_q "SELECT string_agg(id || ':' || owner, ',') FROM rls")" "1:alice"

# INSERT taken away between the submit and the run (same transaction)
jv="$(jt_sql -c "BEGIN" -c "GRANT INSERT ON revoked TO alice" -c "SET ROLE alice" \
	-c "SELECT batch_ops.submit_batch('create', 'revoked', '[{\"id\": 1}, {\"id\": 2}, {\"id\": 3}]')" \
	-c "RESET ROLE" -c "REVOKE INSERT ON revoked FROM alice" -c "COMMIT")"
st="$(jt_q "SELECT concat_ws(' | ', w->>'status', w->'results'->'created', w->'results'->'errors_total', w->>'error', w->>'submitted_by')
            FROM batch_ops.wait_job($jv, '30 s') AS w")"
errs="$(jt_q "SELECT coalesce(string_agg(DISTINCT error, ','), '') FROM batch_ops.job_errors($jv)")"
jt_log "job of a role without INSERT: $st; errors: $errs"
jt_is "no INSERT privilege: nothing written" "$(jt_q "SELECT count(*) FROM revoked")" 0
if [[ "$st" == "completed | 0 | 3 | | alice" || "$st" == "completed | 0 | 3 | alice" ]] && [[ "$errs" == permission_denied ]]; then
	jt_ok "no INSERT privilege: every item is permission_denied"
elif [[ "$st" == failed* && "$st" == *"permission denied"* ]]; then
	jt_ok "no INSERT privilege: the job failed with a permission error"
else
	jt_fail "no INSERT privilege: every item permission_denied, or the job failed with a permission error" \
		"got: $st; errors: $errs"
fi

je="$(jt_sql -U alice -c "SELECT batch_ops.submit_batch('create', 'escalate', '[{\"id\": 1}]')")"
jt_is "escalation: the job completed" "$(jt_q -U alice "SELECT batch_ops.wait_job($je, '30 s')->>'status'")" completed
jt_is "escalation: SET SESSION AUTHORIZATION in a trigger does not make the job superuser" \
	"$(jt_q "SELECT who FROM escalate WHERE id = 1")" "alice/alice"
jt_log "escalation attempt: $(jt_q "SELECT note FROM escalate WHERE id = 1")"

# ---------------------------------------------------------------- 5
jt_log "== who sees which jobs"
jb="$(jt_sql -U bob -c "SELECT batch_ops.submit_batch('create', 'owned', '[{\"id\": 100, \"v\": 1}]')")"
jt_q -U bob "SELECT batch_ops.wait_job($jb, '30 s')" >/dev/null
jt_is "bob sees only his job in batch_ops.jobs" \
	"$(jt_q -U bob "SELECT string_agg(job_id || ' ' || submitted_by, ',') FROM batch_ops.jobs")" "$jb bob"
jt_true -U alice "alice sees only her jobs in batch_ops.jobs" \
	"SELECT count(*) = 0 FROM (SELECT * FROM batch_ops.jobs WHERE submitted_by <> 'alice') AS x"
jt_true -U alice "alice sees her 5 jobs" "SELECT count(*) = 5 FROM batch_ops.jobs"
jt_true "the superuser sees every job, alice's and bob's" \
	"SELECT count(*) FILTER (WHERE submitted_by = 'alice') = 5 AND count(*) FILTER (WHERE submitted_by = 'bob') = 1 FROM batch_ops.jobs"
for f in "batch_ops.job($ja)" "batch_ops.wait_job($ja, '1 s')" "batch_ops.cancel_job($ja)" "* FROM batch_ops.job_errors($ja)"; do
	jt_is "bob: SELECT $f of alice's job: does not exist" \
		"$(jt_q -U bob "SELECT $f" | head -n 1)" "ERROR:  job $ja does not exist"
done
jt_is "alice's job was not cancelled by bob's attempt" "$(jt_q "SELECT status FROM batch_ops.jobs WHERE job_id = $ja")" completed
jt_done
