#!/usr/bin/env bash
# test/bench/run.sh — batch_ops benchmark: batch_create / batch_update /
# batch_delete against plain-SQL baselines and a PL/pgSQL EXCEPTION loop, at
# 0 %, 1 % and 10 % bad items.  Run by `make bench`; see test/bench/README.md.
#
# Server: with BATCH_OPS_BENCH_EXISTING=1 and PGHOST/PGPORT set, the server
# those name (it needs shared_preload_libraries = 'batch_ops', batch_ops
# installed and a superuser, since the item limits are superuser GUCs).
# Otherwise: build and install the extension and start a throwaway cluster
# under .test-run/bench on port 5497 (scripts/lib.sh), stopped at the end.
#
# Environment (all optional):
#   BENCH_ONLY=create,update,delete   operations to run (comma list)
#   BENCH_METHODS=batch_ops,baseline,loop   methods to run (comma list)
#   BENCH_BATCHES=100 BENCH_BATCH_SIZE=1000 BENCH_PRELOAD=1000
#   BENCH_REPEAT=5          runs per method; the report takes the median
#   BENCH_BRACKET=1         baseline before every error rate and at the end
#                           (0 = once per operation and repetition, as before)
#   BENCH_SYNCHRONOUS_COMMIT=on   synchronous_commit for every method alike
#   BENCH_KEEP=1            keep schema bo_bench afterwards
#   BENCH_PORT=5497         port of the throwaway cluster
#   BENCH_NO_BUILD=1        throwaway cluster: use the installed batch_ops
#                           instead of running make && make install
#
# Exit status: 0 when the benchmark ran, whatever the targets say (the
# report says PASS/FAIL); non-zero when the benchmark itself broke.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

NB=${BENCH_BATCHES:-100}
SIZE=${BENCH_BATCH_SIZE:-1000}
NPRE=${BENCH_PRELOAD:-1000}
REPEAT=${BENCH_REPEAT:-5}
ONLY=${BENCH_ONLY:-create,update,delete}
METHODS=${BENCH_METHODS:-batch_ops,baseline,loop}
SYNC=${BENCH_SYNCHRONOUS_COMMIT:-on}
BRACKET=${BENCH_BRACKET:-1}
PORT=${BENCH_PORT:-5497}
RUNDIR=$root/.test-run/bench

resdir=$here/results
mkdir -p "$resdir"
work=$(mktemp -d "${TMPDIR:-/tmp}/bo-bench.XXXXXX")
chmod 755 "$work"

die() { echo "bench: $*" >&2; exit 1; }

for v in NB SIZE NPRE REPEAT; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done
[[ $SIZE -ge 20 ]] || die "BENCH_BATCH_SIZE must be at least 20"
case $BRACKET in 0|1) ;; *) die "BENCH_BRACKET must be 0 or 1";; esac
case $SYNC in on|off|local|remote_write|remote_apply) ;; *) die "bad BENCH_SYNCHRONOUS_COMMIT";; esac
for o in ${ONLY//,/ }; do
	case $o in create|update|delete) ;; *) die "BENCH_ONLY: unknown operation '$o'";; esac
done
for m in ${METHODS//,/ }; do
	case $m in batch_ops|baseline|loop) ;; *) die "BENCH_METHODS: unknown method '$m'";; esac
done
want_op() { [[ ",$ONLY," == *",$1,"* ]]; }
want_method() { [[ ",$METHODS," == *",$1,"* ]]; }

cluster_started=
cleanup() {
	local rc=$?
	if [[ -n $cluster_started ]]; then
		bo_cluster_stop "$RUNDIR" >/dev/null 2>&1 || echo "bench: could not stop the cluster in $RUNDIR" >&2
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

# ---------------------------------------------------------------- server
if [[ ${BATCH_OPS_BENCH_EXISTING:-0} == 1 && -n ${PGHOST:-} && -n ${PGPORT:-} ]]; then
	mode="existing server (PGHOST=$PGHOST PGPORT=$PGPORT)"
else
	[[ -f $root/scripts/lib.sh ]] || die "scripts/lib.sh is missing"
	# shellcheck source=/dev/null
	source "$root/scripts/lib.sh"
	bo_ensure_deps
	if want_method batch_ops && [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
		bo_build_install
	fi
	cluster_started=1 # stop it on exit even if the start fails half-way
	BATCH_OPS_FSYNC=on bo_cluster_start "$RUNDIR" "$PORT"
	mode="throwaway cluster (.test-run/bench, port $PORT)"
fi

psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------- setup
# Other work on the machine skews the timings: note the load before we start.
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
echo "bench: generating $((3 * NB)) batches of $SIZE items per operation ..."
psql_ -v nb="$NB" -v size="$SIZE" -v npreload="$NPRE" -f "$here/setup.sql" >/dev/null

[[ $(psql_ -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == t ]] ||
	die "the bench needs a superuser (batch_ops.max_*_items are superuser GUCs)"

ext_version=none
if want_method batch_ops; then
	psql_ -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS batch_ops" >/dev/null
	ext_version=$(psql_ -c "SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'")
fi

# ---------------------------------------------------------------- one run
# prepare_sql OP: the untimed statements that set the table up.
prepare_sql() {
	cat <<-EOF
	TRUNCATE bo_bench.t;
	SELECT bo_bench.preload($NPRE);
	EOF
	if [[ $1 != create ]]; then
		cat <<-EOF
		INSERT INTO bo_bench.t
		SELECT x.* FROM bo_bench.batches b,
			   jsonb_to_recordset(b.items) AS x(id bigint, sku text, qty int, price numeric, note text)
		 WHERE b.op = 'create' AND b.rate = 0;
		EOF
	fi
	cat <<-EOF
	VACUUM ANALYZE bo_bench.t;
	CHECKPOINT;
	EOF
}

# stmt OP METHOD RATE N: the statement that applies batch N, one per
# transaction (psql autocommit), as an application would send it.  Methods
# that report errors print how many they reported.
stmt() {
	local op=$1 method=$2 rate=$3 n=$4
	local from="FROM bo_bench.batches b WHERE b.op = '$op' AND b.rate = $rate AND b.batch_no = $n"
	case $method/$op in
	batch_ops/*)
		echo "SELECT coalesce(jsonb_array_length(batch_ops.batch_$op('bo_bench.t', b.items) -> 'errors'), 0) $from;" ;;
	loop/*)
		echo "SELECT jsonb_array_length(bo_bench.loop_$op(b.items) -> 'errors') $from;" ;;
	baseline/create)
		echo "INSERT INTO bo_bench.t SELECT x.* FROM bo_bench.batches b, jsonb_to_recordset(b.items) AS x(id bigint, sku text, qty int, price numeric, note text) WHERE b.op = 'create' AND b.rate = $rate AND b.batch_no = $n;" ;;
	baseline/update)
		echo "UPDATE bo_bench.t AS t SET qty = x.qty, note = x.note FROM bo_bench.batches b, jsonb_to_recordset(b.items) AS x(id bigint, qty int, note text) WHERE b.op = 'update' AND b.rate = $rate AND b.batch_no = $n AND t.id = x.id;" ;;
	baseline/delete)
		echo "DELETE FROM bo_bench.t WHERE id IN (SELECT (jsonb_array_elements_text(b.items))::bigint $from);" ;;
	esac
}

# applied_sql OP: how many rows the run created / updated / deleted.
applied_sql() {
	case $1 in
	create) echo "SELECT count(*) - $NPRE FROM bo_bench.t" ;;
	update) echo "SELECT count(*) FROM bo_bench.t WHERE note LIKE 'upd %'" ;;
	delete) echo "SELECT $((NPRE + NB * SIZE)) - count(*) FROM bo_bench.t" ;;
	esac
}

run_one() {
	local op=$1 method=$2 rate=$3 rep=$4
	local script=$work/$op-$method-$rate.sql out=$work/out

	prepare_sql "$op" | psql_ >/dev/null

	{
		echo "SET synchronous_commit = $SYNC;"
		if [[ $method == batch_ops ]]; then
			echo "SET batch_ops.max_create_items = $SIZE;"
			echo "SET batch_ops.max_update_items = $SIZE;"
			echo "SET batch_ops.max_delete_items = $SIZE;"
		fi
		# txid_current() takes an XID of its own: x1 - x0 - 1 XIDs were
		# taken by the batches in between (autovacuum is off for the table).
		echo "SELECT txid_current() AS x0, extract(epoch FROM clock_timestamp()) AS t0 \\gset"
		for ((n = 1; n <= NB; n++)); do
			stmt "$op" "$method" "$rate" "$n"
		done
		echo "SELECT txid_current() AS x1, extract(epoch FROM clock_timestamp()) AS t1 \\gset"
		echo "SELECT 'RESULT', :t1 - :t0, :x1 - :x0 - 1;"
	} >"$script"

	psql_ -f "$script" >"$out"

	local secs xids errors applied expected nbad
	IFS='|' read -r _ secs xids < <(grep '^RESULT|' "$out")
	errors=$(awk '!/^RESULT\|/ { s += $1 } END { print s + 0 }' "$out")
	applied=$(psql_ -c "$(applied_sql "$op")")
	read -r expected nbad < <(psql_ -F ' ' -c "SELECT sum(jsonb_array_length(items) - nbad), sum(nbad) FROM bo_bench.batches WHERE op = '$op' AND rate = $rate")

	psql_ -c "INSERT INTO bo_bench.results (op, method, rate, rep, nbatches, items, secs, xids, applied, expected, errors, nbad)
			  VALUES ('$op', '$method', $rate, $rep, $NB, $((NB * SIZE)), $secs, $xids, $applied, $expected, $errors, $nbad)"

	printf '  %-7s %-9s %3s %%  rep %d  %8.3f s  %9.0f items/s  %8.2f XIDs/batch  applied %s/%s  errors %s/%s\n' \
		"$op" "$method" "$rate" "$rep" "$secs" "$(awk -v i=$((NB * SIZE)) -v s="$secs" 'BEGIN { print i / s }')" \
		"$(awk -v x="$xids" -v n="$NB" 'BEGIN { print x / n }')" "$applied" "$expected" "$errors" "$nbad"
}

# The runs of one operation, each method next to the ones it is compared
# with; with BENCH_REPEAT > 1 the whole sequence repeats (round robin).
# With BENCH_BRACKET=1 (the default) the baseline runs before every error
# rate and once more at the end (B A0 L0 B A1 L1 B A10 L10 B): every run is
# then bracketed by a baseline run at most two runs away on either side, and
# report.sql compares it with the mean of those two, which cancels a linear
# drift of the machine's speed instead of comparing with a baseline that ran
# half a minute earlier.
plan() {
	local op=$1
	if [[ $BRACKET != 1 ]]; then
		want_method baseline && echo "$op baseline 0"
	fi
	for rate in 0 1 10; do
		if [[ $BRACKET == 1 ]] && want_method baseline; then echo "$op baseline 0"; fi
		want_method batch_ops && echo "$op batch_ops $rate"
		if [[ $op != delete ]] && want_method loop; then echo "$op loop $rate"; fi
	done
	if [[ $BRACKET == 1 ]] && want_method baseline; then echo "$op baseline 0"; fi
	return 0
}

# Warm the caches with the batches (read every one once).
psql_ -c "SELECT count(*) FROM bo_bench.batches WHERE length(items::text) > 0" >/dev/null

start=$(date +%s)
for ((rep = 1; rep <= REPEAT; rep++)); do
	for op in create update delete; do
		want_op "$op" || continue
		while read -r o m r; do
			run_one "$o" "$m" "$r" "$rep"
		done < <(plan "$op")
	done
done
elapsed=$(($(date +%s) - start))

# ---------------------------------------------------------------- report
server_version=$(psql_ -c "SHOW server_version")
read -r sb fsync wal <<<"$(psql_ -F ' ' -c "SELECT current_setting('shared_buffers'), current_setting('fsync'), current_setting('wal_level')")"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n $(git -C "$root" status --porcelain 2>/dev/null | grep -v '^??' | head -1) ]]; then rev="$rev (modified)"; fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)

report=$work/report.txt
{
	echo "batch_ops benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "server: PostgreSQL $server_version, $mode; batch_ops $ext_version; source $rev"
	echo "machine: $(nproc) cores, $cpu; load average before the bench $load_start"
	echo "settings: synchronous_commit=$SYNC (all methods), fsync=$fsync, shared_buffers=$sb, wal_level=$wal; autovacuum off for the bench table"
	echo "workload: $NB batches x $SIZE items per run, one statement (transaction) per batch from psql;"
	echo "          fresh table + $NPRE preloaded rows before each run (update/delete: + $((NB * SIZE)) loaded rows), VACUUM ANALYZE + CHECKPOINT before each run"
	echo "          $REPEAT repetition(s) of the whole sequence, round robin$([[ $BRACKET == 1 ]] && echo '; baseline before each error rate and at the end, each run vs the mean of the baseline runs around it'); benchmark took ${elapsed}s"
	echo "items/s = items submitted / wall time (bad items count), median over the repetitions; spread = (slowest - fastest) / median;"
	echo "x base = throughput vs the clean SQL baseline of the same operation, x loop = vs the PL/pgSQL EXCEPTION loop at the"
	echo "same error rate (medians of the ratios within each repetition); XIDs/batch = XIDs consumed per batch (txid_current)"
	echo "bad kinds: create = wrong type, NOT NULL, CHECK, duplicate of existing row, duplicate inside the batch (evenly);"
	echo "           update = wrong type, CHECK, missing row; delete = missing id"
	echo
	psql -X -q -v ON_ERROR_STOP=1 -v fmt=table -f "$here/report.sql"
	echo
	echo "Markdown:"
	echo
	psql -X -q -v ON_ERROR_STOP=1 -v fmt=markdown -f "$here/report.sql"
} >"$report"

cp "$report" "$resdir/latest.txt"
echo
cat "$report"
echo
echo "bench: report saved to test/bench/results/latest.txt"

if [[ ${BENCH_KEEP:-0} != 1 ]]; then
	psql_ -c "SET client_min_messages = warning; DROP SCHEMA bo_bench CASCADE" >/dev/null
fi

# ---------------------------------------------------------------- import benchmark
# CSV import jobs vs COPY and pgloader (test/bench/import.sh), on this server.
if [[ ${BENCH_IMPORT:-1} == 1 ]]; then
	BATCH_OPS_BENCH_EXISTING=1 "$here/import.sh"
fi

# ---------------------------------------------------------------- idempotency / rate limits
# Keys, replays and the rate-limit check (test/bench/idempotency.sh), on this server.
if [[ ${BENCH_IDEMPOTENCY:-1} == 1 ]]; then
	BATCH_OPS_BENCH_EXISTING=1 "$here/idempotency.sh"
fi

# ---------------------------------------------------------------- job overhead
# What a job costs beyond its work: one process per job (test/bench/jobs.sh).
if [[ ${BENCH_JOBS:-1} == 1 ]]; then
	BATCH_OPS_BENCH_EXISTING=1 "$here/jobs.sh"
fi

# ---------------------------------------------------------------- outbound batches
# HTTP to loopback nginx devices vs curl --parallel (test/bench/outbound.sh), on this server.
if [[ ${BENCH_OUTBOUND:-1} == 1 ]]; then
	BATCH_OPS_BENCH_EXISTING=1 "$here/outbound.sh"
fi

# ---------------------------------------------------------------- ssh driver
# CLI devices over SSH: 100 fake devices, 200 ms per command, concurrency
# 50 against the ideal, and a command on a kept (pinned) session against
# the first (test/bench/ssh.sh).
if [[ ${BENCH_SSH:-1} == 1 ]]; then
	BATCH_OPS_BENCH_EXISTING=1 "$here/ssh.sh"
fi

# ---------------------------------------------------------------- action batches
# Synchronous action batches vs batch_update, grouping, and an asynchronous
# batch of 100 from submit to completed (test/bench/action_batches.sh).
if [[ ${BENCH_ACTION_BATCHES:-1} == 1 ]]; then
	BATCH_OPS_BENCH_EXISTING=1 "$here/action_batches.sh"
fi

# ---------------------------------------------------------------- Citus
# batch_ops on a 3-node Citus cluster of its own (test/bench/citus.sh): the
# ratios of issue #13.  BENCH_CITUS=0 leaves it out.
if [[ ${BENCH_CITUS:-1} == 1 ]]; then
	"$here/citus.sh"
fi
