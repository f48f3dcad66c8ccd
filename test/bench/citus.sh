#!/usr/bin/env bash
# test/bench/citus.sh — batch_ops on a 3-node Citus cluster (issue #13):
# the three ratios of the issue, each against a baseline measured in the
# same run.  Run by `make bench` after the other benchmarks (run.sh);
# see test/bench/README.md, "Citus benchmark".
#
#   1. batch_create, 1,000-item batches into a 32-shard table, against
#      INSERT ... SELECT FROM jsonb_to_recordset of the same items into the
#      same table (target: speed >= 0.8 x the baseline's);
#   2. a clean 100,000-row CSV import job against Citus's own COPY FROM
#      (the same file, server side) into the same table (target: time
#      <= 1.5 x COPY's);
#   3. 2,000 items that all duplicate rows on the workers, against the same
#      batch on a local table (target: time <= 2 x), each in a session in
#      its steady state (time_dups).
#
# Server: always a throwaway cluster of its own -- a coordinator and two
# workers under .test-run/bench-citus on 127.0.0.1, ports BENCH_CITUS_PORT
# (5485) to +2 (scripts/lib.sh bo_cluster_start), Citus built or taken
# from its cache by scripts/citus.sh, stopped at the end.  Never builds
# batch_ops: what is installed is what is measured.
#
# Environment (all optional):
#   BENCH_CITUS_PORT=5485      first of three ports
#   BENCH_CITUS_BATCHES=20     1,000-item batches per run of ratio 1
#   BENCH_CITUS_ROWS=100000    rows of the import file
#   BENCH_CITUS_REPEAT=3       runs per measurement; medians
#   BENCH_CITUS_CACHED_CONNS=40  citus.max_cached_conns_per_worker
#
# Exit status: 0 when the benchmark ran, whatever the figures (the report
# says PASS/FAIL); non-zero when the benchmark itself broke.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
PORT=${BENCH_CITUS_PORT:-5485}
NB=${BENCH_CITUS_BATCHES:-20}
NROWS=${BENCH_CITUS_ROWS:-100000}
REPEAT=${BENCH_CITUS_REPEAT:-3}
CONNS=${BENCH_CITUS_CACHED_CONNS:-40}
RUNDIR=$root/.test-run/bench-citus

die() { echo "bench-citus: $*" >&2; exit 1; }
for v in PORT NB NROWS REPEAT CONNS; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done

# shellcheck source=/dev/null
source "$root/scripts/lib.sh"
# shellcheck source=/dev/null
source "$root/scripts/citus.sh"

started=()
cleanup() {
	local rc=$? d
	for d in "${started[@]}"; do
		bo_cluster_stop "$d" >/dev/null 2>&1 || echo "bench-citus: could not stop $d" >&2
	done
	exit $rc
}
trap cleanup EXIT

bo_ensure_citus || die "Citus is not available"

conf=$(mktemp /tmp/bo-bench-citus.XXXXXX.conf)
cat >"$conf" <<CONF
shared_preload_libraries = 'citus,batch_ops'
citus.max_cached_conns_per_worker = $CONNS
citus.shard_count = 32
max_prepared_transactions = 200
batch_ops.max_create_items = 2000
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
chmod 644 "$conf"
declare -A sock
for i in 0 1 2; do
	started+=("$RUNDIR/n$i")
	BATCH_OPS_QUIET=1 bo_cluster_start "$RUNDIR/n$i" $((PORT + i)) "$conf"
	sock[$i]=$PGHOST
	psql -X -q -h "${sock[$i]}" -p $((PORT + i)) -U postgres -d postgres \
		-c "CREATE EXTENSION citus" >/dev/null
done
rm -f "$conf"
scratch=$BATCH_OPS_SCRATCH
export PGHOST=${sock[0]} PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
psql_ -c "SELECT citus_set_coordinator_host('127.0.0.1', $PORT)" >/dev/null
psql_ -c "SELECT citus_add_node('127.0.0.1', $((PORT + 1)))" >/dev/null
psql_ -c "SELECT citus_add_node('127.0.0.1', $((PORT + 2)))" >/dev/null
psql_ -c "CREATE EXTENSION batch_ops" >/dev/null

load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
psql_ -v nb="$NB" <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE SCHEMA bo_citus;
CREATE TABLE bo_citus.dist (id bigint PRIMARY KEY, sku text NOT NULL, qty int, price numeric, note text);
SELECT create_distributed_table('bo_citus.dist', 'id');
CREATE TABLE bo_citus.loc (LIKE bo_citus.dist INCLUDING ALL);
-- the batches of ratio 1, and the 2,000 duplicates of ratio 3
CREATE TABLE bo_citus.batches (n int, items jsonb);
INSERT INTO bo_citus.batches
SELECT b, jsonb_agg(jsonb_build_object('id', b * 1000 + i, 'sku', 'sku-' || (b * 1000 + i),
                    'qty', i % 100, 'price', (i % 1000) / 10.0, 'note', 'n' || i) ORDER BY i)
  FROM generate_series(0, :nb - 1) b, generate_series(1, 1000) i GROUP BY b;
CREATE TABLE bo_citus.dups AS
SELECT jsonb_agg(jsonb_build_object('id', 1000000 + i, 'sku', 'dup-' || i, 'qty', 1) ORDER BY i) AS items
  FROM generate_series(1, 2000) i;
SQL

now_s() { date +%s.%N; }
# time_sql SQL: seconds the statements took (one psql session)
time_sql() {
	local t0 t1
	t0=$(now_s)
	psql_ -c "$1" >/dev/null
	t1=$(now_s)
	calc "$t1 - $t0"
}
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

# ---- 1. batch_create vs INSERT ... SELECT FROM jsonb_to_recordset
# each batch its own statement, as a client would send them
run_create_statements() {
	local kind=$1 t0 t1 n
	psql_ -c "TRUNCATE bo_citus.dist" >/dev/null
	{
		for ((n = 0; n < NB; n++)); do
			if [[ $kind == batch_ops ]]; then
				echo "SELECT batch_ops.batch_create('bo_citus.dist', items) IS NULL FROM bo_citus.batches WHERE n = $n;"
			else
				echo "INSERT INTO bo_citus.dist SELECT x.* FROM bo_citus.batches b, jsonb_to_recordset(b.items) AS x(id bigint, sku text, qty int, price numeric, note text) WHERE b.n = $n;"
			fi
		done
	} >"$scratch/create_$kind.sql"
	t0=$(now_s)
	psql_ -f "$scratch/create_$kind.sql" >/dev/null
	t1=$(now_s)
	[[ $(psql_ -c "SELECT count(*) FROM bo_citus.dist") == $((NB * 1000)) ]] ||
		die "$kind did not insert every row"
	calc "$t1 - $t0"
}
c_bo=() c_base=()
for ((r = 0; r < REPEAT; r++)); do
	c_base+=("$(run_create_statements baseline)")
	c_bo+=("$(run_create_statements batch_ops)")
done
c_bo_m=$(printf '%s\n' "${c_bo[@]}" | median)
c_base_m=$(printf '%s\n' "${c_base[@]}" | median)

# ---- 2. import job vs COPY FROM
csv=$scratch/citus_import.csv
psql_ -c "COPY (SELECT i AS id, 'sku-' || i AS sku, i % 100 AS qty, (i % 1000) / 10.0 AS price, 'note ' || i AS note
               FROM generate_series(1, $NROWS) i) TO '$csv' WITH (FORMAT csv, HEADER)"
i_job=() i_copy=()
for ((r = 0; r < REPEAT; r++)); do
	psql_ -c "TRUNCATE bo_citus.dist" >/dev/null
	i_copy+=("$(time_sql "COPY bo_citus.dist FROM '$csv' WITH (FORMAT csv, HEADER)")")
	psql_ -c "TRUNCATE bo_citus.dist" >/dev/null
	t0=$(now_s)
	job=$(psql_ -c "SELECT batch_ops.submit_import('bo_citus.dist', '$csv', '{\"header\": true}')")
	status=$(psql_ -c "SELECT batch_ops.wait_job($job, '30 min')->>'status'")
	t1=$(now_s)
	[[ $status == completed ]] || die "import job $job ended $status"
	[[ $(psql_ -c "SELECT count(*) FROM bo_citus.dist") == "$NROWS" ]] ||
		die "import job $job: the table does not hold $NROWS rows"
	i_job+=("$(calc "$t1 - $t0")")
done
i_job_m=$(printf '%s\n' "${i_job[@]}" | median)
i_copy_m=$(printf '%s\n' "${i_copy[@]}" | median)

# ---- 3. 2,000 duplicates of rows on the workers vs on a local table
psql_ -c "TRUNCATE bo_citus.dist; TRUNCATE bo_citus.loc;
          INSERT INTO bo_citus.dist SELECT x.* FROM bo_citus.dups d, jsonb_to_recordset(d.items) AS x(id bigint, sku text, qty int, price numeric, note text);
          INSERT INTO bo_citus.loc SELECT x.* FROM bo_citus.dups d, jsonb_to_recordset(d.items) AS x(id bigint, sku text, qty int, price numeric, note text)" \
	-c "VACUUM ANALYZE bo_citus.loc" >/dev/null
for t in dist loc; do
	n=$(psql_ -c "SELECT jsonb_array_length(batch_ops.batch_create('bo_citus.$t', items)->'errors') FROM bo_citus.dups")
	[[ $n == 2000 ]] || die "duplicates on $t: $n errors, not 2000"
done
# time_dups TABLE: seconds of each of five calls of the batch in a session
# in its steady state, its connections to the workers open (that is a
# cost of the session, see README "Citus"): three identical calls first,
# untimed, on either table.  One is not enough: Citus's executor opens
# connections to the workers a few at a time (slow start), so the first
# multi-shard statements of a session pay for them -- here 0.7 s, then
# 0.2 s, then 0.1 s, then the steady 0.05 s -- and a statement in a
# transaction block opens fewer.  The calls write nothing: every item is
# a duplicate (checked above, and below).
time_dups() {
	local i
	{
		for i in 1 2 3; do
			echo "SELECT batch_ops.batch_create('bo_citus.$1', items) IS NULL AS r FROM bo_citus.dups \\gset"
		done
		echo '\timing on'
		for i in 1 2 3 4 5; do
			echo "SELECT batch_ops.batch_create('bo_citus.$1', items) IS NULL AS r FROM bo_citus.dups \\gset"
		done
	} | psql_ | awk '/^Time:/ { printf "%.6f\n", $2 / 1000 }'
}
d_dist=() d_loc=()
for ((r = 0; r < REPEAT; r++)); do
	mapfile -t -O "${#d_loc[@]}" d_loc < <(time_dups loc)
	mapfile -t -O "${#d_dist[@]}" d_dist < <(time_dups dist)
done
[[ ${#d_dist[@]} -eq $((REPEAT * 5)) && ${#d_loc[@]} -eq $((REPEAT * 5)) ]] ||
	die "duplicates: could not read the calls' timings"
[[ $(psql_ -c "SELECT count(*) FROM bo_citus.dist") == 2000 ]] ||
	die "the batches of duplicates wrote rows into the distributed table"
d_dist_m=$(printf '%s\n' "${d_dist[@]}" | median)
d_loc_m=$(printf '%s\n' "${d_loc[@]}" | median)

# ---- report
r1=$(calc "$c_base_m / $c_bo_m")
r2=$(calc "$i_job_m / $i_copy_m")
r3=$(calc "$d_dist_m / $d_loc_m")
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }
mkdir -p "$here/results"
{
	echo "Citus benchmark ($(date -u +%FT%TZ)), 3 nodes on loopback, 32 shards, citus.max_cached_conns_per_worker = $CONNS"
	echo "load at start: $load_start; medians of $REPEAT runs"
	printf '1. batch_create %d x 1000 items: %.3f s; INSERT..SELECT FROM jsonb_to_recordset: %.3f s; speed ratio %.2f (target >= 0.8) %s\n' \
		"$NB" "$c_bo_m" "$c_base_m" "$r1" "$(verdict "$r1 >= 0.8")"
	printf '2. import job %d rows: %.3f s; COPY FROM: %.3f s; time ratio %.2f (target <= 1.5) %s\n' \
		"$NROWS" "$i_job_m" "$i_copy_m" "$r2" "$(verdict "$r2 <= 1.5")"
	printf '3. 2000 duplicates, distributed: %.3f s; local table: %.3f s (medians of %d); time ratio %.2f (target <= 2) %s\n' \
		"$d_dist_m" "$d_loc_m" "${#d_dist[@]}" "$r3" "$(verdict "$r3 <= 2")"
} | tee "$here/results/citus-latest.txt"
