#!/usr/bin/env bash
#
# batch_ops — what a job costs beyond its work (issue #8: one process per
# job).  make bench runs it after run.sh.
#
#   sequential  submit a 1-item submit_batch job, wait_job() for it; repeat.
#               The time per job is the latency a caller sees: the commit
#               wakes the launcher, which starts a worker, which connects,
#               claims, runs, commits and exits.
#   burst       submit N 1-item jobs in one transaction, wait for the last:
#               the time per job with the workers busy (batch_ops.max_workers
#               of them, one process per job).
#   sync        the same 1-item batch_create, synchronously: the work itself.
#
# Info only (no target): the figures say what a job's own process costs.
#
# Each figure is the median of BENCH_JOBS_ROUNDS rounds of the three.
#
# Knobs: BENCH_JOBS_SEQ (30), BENCH_JOBS_BURST (200), BENCH_JOBS_ROUNDS (3),
# BENCH_NO_BUILD,
# BATCH_OPS_BENCH_EXISTING=1 with PGHOST/PGPORT: use that server.
# Exit status: 0 when the benchmark ran, whatever the figures.

set -euo pipefail

SEQ=${BENCH_JOBS_SEQ:-30}
BURST=${BENCH_JOBS_BURST:-200}
ROUNDS=${BENCH_JOBS_ROUNDS:-3}
NAME=jobs
PORT=5477
# shellcheck source=test/bench/bench_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_server.sh"

check_positive SEQ BURST ROUNDS

bench_server_start

psql_ >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
DROP SCHEMA IF EXISTS bo_jobs CASCADE;
CREATE SCHEMA bo_jobs;
CREATE TABLE bo_jobs.t (id bigint PRIMARY KEY, v text);
SQL

# One session per loop (psql -f of a generated script), so that the time
# per job is the job's, not that of starting two psql processes per job,
# which on a busy machine is both large and erratic.
seq_sql=$work/seq.sql sync_sql=$work/sync.sql
seq_rows=() burst_rows=() sync_rows=()
for ((round = 1; round <= ROUNDS; round++)); do
	base=$((round * 10000000))
	# sequential: submit, wait, repeat
	for ((i = 1; i <= SEQ; i++)); do
		echo "SELECT batch_ops.submit_batch('create', 'bo_jobs.t', '[{\"id\": $((base + i))}]') AS id \\gset"
		echo "SELECT batch_ops.wait_job(:id, '60 s') ->> 'status';"
	done >"$seq_sql"
	t0=$(now_ms)
	out=$(psql_ -f "$seq_sql")
	seq_ms=$(($(now_ms) - t0))
	[[ $(grep -c '^completed$' <<<"$out") == "$SEQ" ]] || die "sequential: not every job completed: $(sort <<<"$out" | uniq -c | tr '\n' ' ')"

	# burst: N jobs in one transaction, wait for the last
	t0=$(now_ms)
	last=$(psql_ -c "SELECT max(batch_ops.submit_batch('create', 'bo_jobs.t',
		pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('id', $((base + 1000000)) + g))))
		FROM pg_catalog.generate_series(1, $BURST) g")
	psql_ -c "SELECT batch_ops.wait_job(id, '600 s') FROM batch_ops.job_queue WHERE id <= $last AND kind = 'batch' ORDER BY id" >/dev/null
	burst_ms=$(($(now_ms) - t0))
	done_n=$(psql_ -c "SELECT count(*) FROM bo_jobs.t WHERE id > $((base + 1000000)) AND id <= $((base + 1000000 + BURST))")
	[[ $done_n == "$BURST" ]] || die "burst: $done_n of $BURST rows"

	# sync: the work itself
	for ((i = 1; i <= SEQ; i++)); do
		echo "SELECT batch_ops.batch_create('bo_jobs.t', '[{\"id\": $((base + 2000000 + i))}]');"
	done >"$sync_sql"
	t0=$(now_ms)
	psql_ -f "$sync_sql" >/dev/null
	sync_ms=$(($(now_ms) - t0))

	seq_rows+=("$(div $seq_ms $SEQ)") burst_rows+=("$(div $burst_ms $BURST)") sync_rows+=("$(div $sync_ms $SEQ)")
	echo "bench-jobs: round $round: sequential ${seq_rows[-1]} ms/job, burst ${burst_rows[-1]} ms/job, sync ${sync_rows[-1]} ms/call"
done

med() { printf '%s\n' "$@" | median; }
range() { printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | paste -sd '-'; }

report=$resdir/jobs.txt
{
	echo "batch_ops job overhead — $(date -u +%Y-%m-%dT%H:%MZ), $mode_desc"
	echo
	printf '| %-40s | %10s |\n' "measurement" "ms per job"
	printf '|%s|%s|\n' "------------------------------------------" "------------"
	printf '| %-40s | %10.1f |\n' "sequential submit + wait_job ($SEQ)" "$(med "${seq_rows[@]}")"
	printf '| %-40s | %10.1f |\n' "burst of $BURST jobs, until the last" "$(med "${burst_rows[@]}")"
	printf '| %-40s | %10.1f |\n' "synchronous batch_create ($SEQ calls)" "$(med "${sync_rows[@]}")"
	echo
	echo "median of $ROUNDS round(s), each the three in turn, one psql session per loop; range (ms):" \
		"sequential $(range "${seq_rows[@]}"), burst $(range "${burst_rows[@]}"), sync $(range "${sync_rows[@]}")"
} >"$report"
cat "$report"
psql_ -c "SET client_min_messages = warning; DROP SCHEMA bo_jobs CASCADE" >/dev/null
