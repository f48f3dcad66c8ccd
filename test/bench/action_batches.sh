#!/usr/bin/env bash
#
# batch_ops — action batches (issue #11).  make bench runs it after jobs.sh.
#
#   sync20      a synchronous, confirmed action batch of 20 updates
#               (create_action_batch) against the same 20 updates as one
#               batch_update call.  Target: <= 1.3 x.
#   ungrouped   the same 20 updates, but alternating between two tables, so
#               that no two consecutive actions share a table and each runs
#               as its own engine call: what grouping consecutive actions of
#               one shape into one set-based call saves (info).
#   async100    an asynchronous batch of 100 create actions, from submit to
#               completed: in one client session, the time from before the
#               call that confirms it (its commit starts the job) until
#               wait_action_batch() returns, and the server's (created_at to
#               finished_at).  Target: <= 500 ms.
#
# sync20 and ungrouped: BENCH_AB_CALLS calls of each per round, interleaved
# in one psql session and each timed by the client (\timing), so that the
# three see the same load; synchronous_commit off (so the figures are the
# work, not the WAL flush, which would make every ratio look close to 1).
# Each figure is the median of BENCH_AB_ROUNDS rounds; the ratios are the
# median of each round's.
#
# Knobs: BENCH_AB_CALLS (200), BENCH_AB_ROUNDS (5), BENCH_AB_ASYNC (10 batches),
# BENCH_NO_BUILD, BATCH_OPS_BENCH_EXISTING=1 with PGHOST/PGPORT: use that server.
# Exit status: 0 when the benchmark ran, whatever the figures.

set -euo pipefail

CALLS=${BENCH_AB_CALLS:-200}
ROUNDS=${BENCH_AB_ROUNDS:-5}
ASYNC=${BENCH_AB_ASYNC:-10}
NAME=action_batches
PORT=5479
# shellcheck source=test/bench/bench_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_server.sh"

check_positive CALLS ROUNDS ASYNC

bench_server_start

psql_ >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
DROP SCHEMA IF EXISTS bo_ab_bench CASCADE;
CREATE SCHEMA bo_ab_bench;
CREATE TABLE bo_ab_bench.devices (serial text PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);
CREATE TABLE bo_ab_bench.others (serial text PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);
INSERT INTO bo_ab_bench.devices SELECT 'Q' || g, 'd' || g, 0 FROM generate_series(1, 10000) g;
INSERT INTO bo_ab_bench.others SELECT 'Q' || g, 'd' || g, 0 FROM generate_series(1, 10000) g;
CREATE TABLE bo_ab_bench.orders (id bigserial PRIMARY KEY, qty integer NOT NULL);
VACUUM ANALYZE bo_ab_bench.devices, bo_ab_bench.others;
SQL

med() { printf '%s\n' "$@" | median; }
range() { printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | paste -sd '-'; }

# The JSON of call c: 20 updates of rows 20c+1 .. 20c+20 (as actions on
# table $1, or alternating devices/others when $1 is "alt"), or as items.
actions_json() {
	local c=$1 table=$2 k t sep=
	printf '['
	for ((k = 1; k <= 20; k++)); do
		t=$table
		[[ $table == alt ]] && { ((k % 2)) && t=bo_ab_bench.devices || t=bo_ab_bench.others; }
		printf '%s{"resource": "/%s/Q%d", "operation": "update", "body": {"name": "n%d", "qty": %d}}' \
			"$sep" "$t" $(((c % 500) * 20 + k)) "$c" "$c"
		sep=', '
	done
	printf ']'
}
items_json() {
	local c=$1 k sep=
	printf '['
	for ((k = 1; k <= 20; k++)); do
		printf '%s{"serial": "Q%d", "name": "n%d", "qty": %d}' "$sep" $(((c % 500) * 20 + k)) "$c" "$c"
		sep=', '
	done
	printf ']'
}

# One file per round: the three kinds of call interleaved (action batch,
# batch_update, ungrouped, action batch, ...), each timed by psql's
# \timing, so that all three see the same load on a shared machine.
for ((c = 1; c <= CALLS; c++)); do
	echo "SELECT batch_ops.create_action_batch('$(actions_json $c bo_ab_bench.devices)', true, true) IS NOT NULL;"
	echo "SELECT batch_ops.batch_update('bo_ab_bench.devices', '$(items_json $c)') IS NOT NULL;"
	echo "SELECT batch_ops.create_action_batch('$(actions_json $c alt)', true, true) IS NOT NULL;"
done >"$work/round.sql"

# run the round's file; print the total ms of each of the three kinds
run_round() {
	PGOPTIONS='-c synchronous_commit=off' psql -X -q -At -v ON_ERROR_STOP=1 \
		-c '\timing on' -f "$work/round.sql" |
		awk '/^Time: / { t[n++ % 3] += $2 } END { if (n != 3 * '"$CALLS"') exit 1; printf "%.3f %.3f %.3f\n", t[0], t[1], t[2] }'
}

# check once that the batches complete (and warm the caches)
ok=$(psql_ -c "SELECT batch_ops.create_action_batch('$(actions_json 1 bo_ab_bench.devices)', true, true) #>> '{status,completed}'")
[[ $ok == true ]] || die "a synchronous batch did not complete: $ok"
ok=$(psql_ -c "SELECT batch_ops.create_action_batch('$(actions_json 1 alt)', true, true) #>> '{status,completed}'")
[[ $ok == true ]] || die "an ungrouped batch did not complete: $ok"

act_rows=() upd_rows=() alt_rows=() ratio_rows=() speed_rows=()
for ((round = 1; round <= ROUNDS; round++)); do
	read -r a u g < <(run_round) || true
	[[ -n ${g:-} ]] || die "round $round: a call failed"
	act_rows+=("$(div "$a" "$CALLS" 3)") upd_rows+=("$(div "$u" "$CALLS" 3)") alt_rows+=("$(div "$g" "$CALLS" 3)")
	ratio_rows+=("$(div "$a" "$u" 3)") speed_rows+=("$(div "$g" "$a" 3)")
	echo "bench-action_batches: round $round: action batch ${act_rows[-1]} ms, batch_update ${upd_rows[-1]} ms, ungrouped ${alt_rows[-1]} ms per call of 20 (ratio ${ratio_rows[-1]})"
	unset a u g
done

# async100: submit, then wait, in one session: the client's time from
# before the call that confirms the batch until wait_action_batch()
# returns, and the server's (created_at to finished_at)
async_client=() async_server=()
for ((i = 1; i <= ASYNC; i++)); do
	out=$(psql_ -F '|' <<'SQL'
SELECT pg_catalog.clock_timestamp() AS t0 \gset
SELECT batch_ops.create_action_batch(
	(SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('resource', '/bo_ab_bench.orders',
	   'operation', 'create', 'body', pg_catalog.jsonb_build_object('qty', g)))
	   FROM pg_catalog.generate_series(1, 100) g), confirmed => true) ->> 'id' AS id \gset
SELECT w #>> '{status,completed}', jsonb_array_length(w #> '{status,createdResources}'),
	round(extract(epoch FROM pg_catalog.clock_timestamp() - :'t0'::timestamptz) * 1000, 1),
	round(extract(epoch FROM (w ->> 'finished_at')::timestamptz - (w ->> 'created_at')::timestamptz) * 1000, 1)
  FROM batch_ops.wait_action_batch(:id, '60 s') w;
SQL
)
	IFS='|' read -r completed created client_ms server_ms <<<"$out"
	[[ $completed == true && $created == 100 ]] || die "async batch: completed=$completed created=$created"
	async_client+=("$client_ms") async_server+=("$server_ms")
	echo "bench-action_batches: async batch of 100: ${client_ms} ms (client), ${server_ms} ms (server)"
done

act=$(med "${act_rows[@]}") upd=$(med "${upd_rows[@]}") alt=$(med "${alt_rows[@]}")
# ratios within a round (the same load), then their median
ratio=$(med "${ratio_rows[@]}") speedup=$(med "${speed_rows[@]}")
ac=$(med "${async_client[@]}") as=$(med "${async_server[@]}")
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "PASS" : "FAIL" }'; }

report=$resdir/action_batches.txt
{
	echo "batch_ops action batches — $(date -u +%Y-%m-%dT%H:%MZ), $mode_desc"
	echo
	printf '| %-58s | %12s | %-14s |\n' "measurement" "result" "target"
	printf '|%s|%s|%s|\n' "------------------------------------------------------------" "--------------" "----------------"
	printf '| %-58s | %9s ms | %-14s |\n' "sync action batch of 20 updates, per call" "$act" ""
	printf '| %-58s | %9s ms | %-14s |\n' "batch_update of the same 20 items, per call" "$upd" ""
	printf '| %-58s | %10s x | %-14s |\n' "ratio action batch / batch_update" "$ratio" "<= 1.3 $(verdict "$ratio" 1.3)"
	printf '| %-58s | %9s ms | %-14s |\n' "the 20 updates alternating two tables (20 engine calls)" "$alt" "info"
	printf '| %-58s | %10s x | %-14s |\n' "grouping speed-up (ungrouped / grouped)" "$speedup" "info"
	printf '| %-58s | %9s ms | %-14s |\n' "async batch of 100 creates, submit to completed (client)" "$ac" "<= 500 $(verdict "$ac" 500)"
	printf '| %-58s | %9s ms | %-14s |\n' "the same, created_at to finished_at (server)" "$as" "info"
	echo
	echo "sync: median of $ROUNDS round(s) of $CALLS calls of each, interleaved, synchronous_commit off; ratios: median of" \
		"each round's; range: ratio $(range "${ratio_rows[@]}"), action batch $(range "${act_rows[@]}") ms," \
		"batch_update $(range "${upd_rows[@]}") ms, ungrouped $(range "${alt_rows[@]}") ms"
	echo "async: median of $ASYNC batches; client range $(range "${async_client[@]}") ms, server range $(range "${async_server[@]}") ms"
} >"$report"
cat "$report"
psql_ -c "SET client_min_messages = warning; DROP SCHEMA bo_ab_bench CASCADE;
	DELETE FROM batch_ops.action_batch WHERE role = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
	  AND actions::text LIKE '%bo_ab_bench%'" >/dev/null
