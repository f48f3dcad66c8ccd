#!/usr/bin/env bash
#
# batch_ops — benchmark of idempotency keys and rate limits (issue #3).
#
#   test/bench/idempotency.sh          (make bench runs it after run.sh)
#
# The same 100-item batch_create calls, one statement (transaction) each as
# an application sends them, in four ways:
#
#   nokey      batch_create(t, items)                       the baseline
#   key        ... idempotency_key => a fresh key per call  target: <= 1.15 x nokey
#   replay     the same calls with the same keys again      target: >= 5 x faster than key
#   ratelimit  nokey with batch_ops.rate_limit on (high     target: <= 1.02 x nokey
#              enough never to refuse)
#   floor      a plain SELECT of the same stored responses  info: what any statement
#              (with the items read, as the replay does)     that answers them costs
#
# Each round runs the four in that order on a truncated table (replay right
# after key, on its rows); the report takes the median over the rounds of
# each ratio within a round, so drift of the machine cancels out.
#
# Knobs: BENCH_IDEM_CALLS (calls per run, 500), BENCH_IDEM_ROUNDS (7),
# BENCH_IDEM_ITEMS (items per call, 100), BENCH_NO_BUILD (1 = do not build),
# BATCH_OPS_BENCH_EXISTING=1 with PGHOST/PGPORT: use that server.
# Exit status: 0 when the benchmark ran, whatever the figures.

set -euo pipefail

CALLS=${BENCH_IDEM_CALLS:-500}
ROUNDS=${BENCH_IDEM_ROUNDS:-7}
ITEMS=${BENCH_IDEM_ITEMS:-100}
NAME=idem
PORT=5478
# shellcheck source=test/bench/bench_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_server.sh"

check_positive CALLS ROUNDS ITEMS

bench_server_start

psql_ >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
DROP SCHEMA IF EXISTS bo_idem CASCADE;
CREATE SCHEMA bo_idem;
CREATE TABLE bo_idem.t (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE,
                        qty int NOT NULL CHECK (qty >= 0), price numeric(12,2), note text)
    WITH (autovacuum_enabled = off);
CREATE TABLE bo_idem.batches (n int PRIMARY KEY, items jsonb NOT NULL);
INSERT INTO bo_idem.batches
SELECT n, (SELECT jsonb_agg(jsonb_build_object('id', n * $ITEMS + i, 'sku', 'sku-' || (n * $ITEMS + i),
                                              'qty', i % 50, 'price', i % 1000 + 0.25, 'note', 'note ' || i)
                            ORDER BY i)
           FROM generate_series(1, $ITEMS) AS i)
FROM generate_series(1, $CALLS) AS n;
SQL

# script METHOD ROUND: CALLS statements, timed inside the session.
script() {
	local method=$1 round=$2 n call
	echo "SET synchronous_commit = on;"
	[[ $method == ratelimit ]] && echo "SET batch_ops.rate_limit = 1000000000;"
	echo "SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset"
	for ((n = 1; n <= CALLS; n++)); do
		case $method in
		nokey | ratelimit) call="batch_ops.batch_create('bo_idem.t', items)" ;;
		key | replay) call="batch_ops.batch_create('bo_idem.t', items, idempotency_key => 'bench-$round-$n')" ;;
		floor) call="(SELECT response FROM batch_ops.idempotency_keys WHERE key = 'bench-$round-$n' AND jsonb_typeof(items) = 'array')" ;;
		esac
		echo "SELECT length($call::text) FROM bo_idem.batches WHERE n = $n;"
	done
	echo "SELECT 'RESULT', extract(epoch FROM clock_timestamp()) - :t0;"
}

# loop_script METHOD ROUND: the same calls from one PL/pgSQL loop, in one
# statement: the server-side cost of the calls, without the round trip,
# parse and plan that every statement pays.
loop_script() {
	local method=$1 round=$2 call
	echo "SET synchronous_commit = on;"
	[[ $method == ratelimit ]] && echo "SET batch_ops.rate_limit = 1000000000;"
	case $method in
	nokey | ratelimit) call="batch_ops.batch_create('bo_idem.t', b.items)" ;;
	key | replay) call="batch_ops.batch_create('bo_idem.t', b.items, idempotency_key => 'loop-$round-' || b.n)" ;;
	floor) call="(SELECT response FROM batch_ops.idempotency_keys WHERE key = 'loop-$round-' || b.n AND jsonb_typeof(b.items) = 'array')" ;;
	esac
	echo "SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset"
	echo "DO \$\$ DECLARE b record; BEGIN FOR b IN SELECT n, items FROM bo_idem.batches ORDER BY n LOOP PERFORM length(($call)::text); END LOOP; END \$\$;"
	echo "SELECT 'RESULT', extract(epoch FROM clock_timestamp()) - :t0;"
}

reset_sql="TRUNCATE bo_idem.t; DELETE FROM batch_ops.idempotency_keys; CHECKPOINT;"
declare -A secs
for mode in stmt loop; do
	for ((round = 1; round <= ROUNDS; round++)); do
		for method in nokey ratelimit key replay floor; do
			[[ $method == replay || $method == floor ]] || psql_ -c "$reset_sql" >/dev/null
			if [[ $mode == stmt ]]; then script "$method" "$round"; else loop_script "$method" "$round"; fi >"$work/run.sql"
			secs[$mode$method,$round]=$(psql_ -f "$work/run.sql" | awk -F'|' '/^RESULT\|/ { print $2 }')
		done
		rows=$(psql_ -c "SELECT count(*) FROM bo_idem.t")
		[[ $rows == $((CALLS * ITEMS)) ]] || die "$mode round $round: $rows rows after the replay, expected $((CALLS * ITEMS))"
		printf '  %s round %d: nokey %.3f s  ratelimit %.3f s  key %.3f s  replay %.3f s  floor %.3f s\n' "$mode" "$round" \
			"${secs[${mode}nokey,$round]}" "${secs[${mode}ratelimit,$round]}" "${secs[${mode}key,$round]}" \
			"${secs[${mode}replay,$round]}" "${secs[${mode}floor,$round]}"
	done
done

# median of one ratio over the rounds
median_ratio() {
	local num=$1 den=$2 r
	for ((r = 1; r <= ROUNDS; r++)); do
		awk -v a="${secs[$num,$r]}" -v b="${secs[$den,$r]}" 'BEGIN { printf "%.6f\n", a / b }'
	done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
median_secs() {
	local m=$1 r
	for ((r = 1; r <= ROUNDS; r++)); do echo "${secs[$m,$r]}"; done |
		sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<=") ? v <= t : v >= t; print ok ? "PASS" : "FAIL" }'; }

# table MODE TITLE
table() {
	local m=$1 key_ratio replay_speedup rl_ratio floor_ratio
	key_ratio=$(median_ratio "${m}key" "${m}nokey")
	replay_speedup=$(median_ratio "${m}key" "${m}replay")
	rl_ratio=$(median_ratio "${m}ratelimit" "${m}nokey")
	floor_ratio=$(median_ratio "${m}replay" "${m}floor")
	echo "$2"
	echo
	printf '| %-38s | %9s | %-24s | %-8s | %s |\n' measurement "s/run" "ratio (median of rounds)" target result
	printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..40})" "-----------:" "--------------------------" "----------" "-------"
	printf '| %-38s | %9.3f | %-24s | %-8s | %s |\n' "batch_create, no key (baseline)" "$(median_secs "${m}nokey")" "1.00x" "" ""
	printf '| %-38s | %9.3f | %-24s | %-8s | %s |\n' "batch_create, fresh key" "$(median_secs "${m}key")" \
		"$(printf '%.3fx nokey' "$key_ratio")" "<= 1.15x" "$(verdict "$key_ratio" '<=' 1.15)"
	printf '| %-38s | %9.3f | %-24s | %-8s | %s |\n' "replay of the same calls" "$(median_secs "${m}replay")" \
		"$(printf '%.1fx faster than key' "$replay_speedup")" ">= 5x" "$(verdict "$replay_speedup" '>=' 5)"
	printf '| %-38s | %9.3f | %-24s | %-8s | %s |\n' "floor: SELECT of the stored response" "$(median_secs "${m}floor")" \
		"$(printf 'replay = %.2fx floor' "$floor_ratio")" "info" ""
	printf '| %-38s | %9.3f | %-24s | %-8s | %s |\n' "batch_create, rate limit on" "$(median_secs "${m}ratelimit")" \
		"$(printf '%.3fx nokey' "$rl_ratio")" "<= 1.02x" "$(verdict "$rl_ratio" '<=' 1.02)"
	echo
}

report=$work/report.txt
{
	echo "batch_ops idempotency / rate-limit benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "server: $mode_desc; $CALLS calls of $ITEMS items per run, $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	table stmt "As an application calls: one statement (transaction) per call from psql"
	table loop "Server side: the same calls from one PL/pgSQL loop (no round trip, parse or plan per call; one transaction)"
} >"$report"
cp "$report" "$resdir/idempotency.txt"
echo
cat "$report"
echo
echo "bench-idem: report saved to test/bench/results/idempotency.txt"
psql_ -c "SET client_min_messages = warning; DROP SCHEMA bo_idem CASCADE; DELETE FROM batch_ops.idempotency_keys" >/dev/null
