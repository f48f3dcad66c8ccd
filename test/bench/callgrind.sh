#!/usr/bin/env bash
# test/bench/callgrind.sh — instruction counts (valgrind --tool=callgrind)
# of batch_create / batch_update / batch_delete, of idempotency keys and of
# an import job, each against its plain-SQL baseline measured in the same
# run.  Unlike wall time, an instruction count does not depend on what else
# the machine is doing, so this is the regression figure to compare two
# builds with on a shared machine (separate runs agree within 0.1 %).  `make
# bench-callgrind`; see test/bench/README.md, section "Instruction counts".
#
# What it does:
#   1. starts a throwaway cluster with the given PostgreSQL (initdb, as
#      postgres when run as root; shared_preload_libraries = 'batch_ops',
#      jit off) and fills it through psql: setup.sql's batches (as run.sh),
#      100-item batches for the idempotency calls, the import files;
#   2. stops it and measures each run in a single-user backend
#      (postgres --single) started under callgrind, collecting only inside
#      query execution, planning and commit (--toggle-collect on PortalRun,
#      pg_plan_queries, pg_analyze_and_rewrite_fixedparams and
#      CommitTransactionCommand: core functions, so the figure does not
#      depend on how the extension names its own).  Each run is prepared
#      by a single-user backend without valgrind (TRUNCATE, preload,
#      VACUUM ANALYZE, CHECKPOINT, as run.sh does) and checked afterwards
#      (rows applied and errors reported = the good and bad item counts);
#   3. import (a job runs in a background worker, which cannot run in
#      single-user mode): the whole postmaster runs under callgrind and
#      every process writes its own profile; the COPY backend's and the job
#      worker's totals are taken, minus those of the same run on an empty
#      file (start-up, connection, job bookkeeping), divided by the rows.
#
# Usage: test/bench/callgrind.sh [--bindir DIR]
# Environment (all optional):
#   BENCH_PG_BINDIR=DIR         PostgreSQL bin directory to use (default:
#                               `pg_config --bindir` of the pg_config on PATH);
#                               batch_ops must be installed there
#   BENCH_CG_ONLY=create,update,delete,idempotency,import   parts to run
#   BENCH_CG_LOOP=0             1 = also the PL/pgSQL loops (slow)
#   BENCH_CG_BATCHES=10         batches per run (items per run = batches x size)
#   BENCH_CG_BATCH_SIZE=1000
#   BENCH_CG_IDEM_CALLS=100     idempotency: calls per run ...
#   BENCH_CG_IDEM_ITEMS=100     ... of this many items
#   BENCH_CG_IMPORT_ROWS=20000  rows of the import files
#   BENCH_CG_PORT=5479          port of the throwaway cluster
#   BENCH_CG_DIR=.test-run/bench-callgrind-PORT   cluster directory
#   BENCH_CG_OUT=test/bench/results/callgrind.txt where the report goes
#   BENCH_CG_KEEP=1             keep the callgrind profiles (in the cluster
#                               directory, callgrind/) for callgrind_annotate
#
# Exit status: 0 when every run was measured and its check passed.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "bench-callgrind: $*" >&2; exit 1; }
say() { echo "bench-callgrind: $*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--bindir) [[ $# -ge 2 ]] || die "--bindir needs a directory"; BENCH_PG_BINDIR=$2; shift 2 ;;
	--bindir=*) BENCH_PG_BINDIR=${1#--bindir=}; shift ;;
	-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

if [[ -z ${BENCH_PG_BINDIR:-} ]]; then
	command -v pg_config >/dev/null || die "no pg_config on PATH: set BENCH_PG_BINDIR"
	BENCH_PG_BINDIR=$(pg_config --bindir)
fi
BINDIR=$(cd "$BENCH_PG_BINDIR" 2>/dev/null && pwd) || die "no directory $BENCH_PG_BINDIR"
[[ -x $BINDIR/postgres && -x $BINDIR/pg_config ]] || die "$BINDIR has no postgres / pg_config"
PKGLIB=$("$BINDIR/pg_config" --pkglibdir)
[[ -f $PKGLIB/batch_ops.so ]] || die "batch_ops is not installed in $PKGLIB (make install PG_CONFIG=$BINDIR/pg_config)"
command -v valgrind >/dev/null || die "valgrind is not installed (Debian: apt-get install valgrind)"

ONLY=${BENCH_CG_ONLY:-create,update,delete,idempotency,import}
LOOP=${BENCH_CG_LOOP:-0}
NB=${BENCH_CG_BATCHES:-10}
SIZE=${BENCH_CG_BATCH_SIZE:-1000}
NPRE=1000
ICALLS=${BENCH_CG_IDEM_CALLS:-100}
IITEMS=${BENCH_CG_IDEM_ITEMS:-100}
IROWS=${BENCH_CG_IMPORT_ROWS:-20000}
PORT=${BENCH_CG_PORT:-5479}
RUNDIR=${BENCH_CG_DIR:-$root/.test-run/bench-callgrind-$PORT}
OUT=${BENCH_CG_OUT:-$here/results/callgrind.txt}
for v in NB SIZE ICALLS IITEMS IROWS PORT; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done
[[ $SIZE -ge 20 ]] || die "BENCH_CG_BATCH_SIZE must be at least 20"
for o in ${ONLY//,/ }; do
	case $o in create | update | delete | idempotency | import) ;; *) die "BENCH_CG_ONLY: unknown part '$o'" ;; esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

export BATCH_OPS_PG_BINDIR=$BINDIR BATCH_OPS_QUIET=1
# shellcheck source=/dev/null
source "$root/scripts/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/bo-bench-cg.XXXXXX")
chmod 777 "$work" # the backends (user postgres) write their profiles here
cluster_started=
vg_pid=
cleanup() {
	local rc=$?
	if [[ -n $cluster_started ]]; then
		bo_cluster_stop "$RUNDIR" >/dev/null 2>&1 || true
	fi
	[[ -z $vg_pid ]] || wait "$vg_pid" 2>/dev/null || true
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------- cluster and data
conf=$work/callgrind.conf
cat >"$conf" <<-EOF
	shared_preload_libraries = 'batch_ops'
	jit = off
	autovacuum = off
	max_parallel_workers_per_gather = 0
EOF
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
start=$(date +%s)
say "cluster in $RUNDIR (port $PORT), PostgreSQL $BINDIR"
cluster_started=1
BATCH_OPS_FSYNC=on bo_cluster_start "$RUNDIR" "$PORT" "$conf"
DATA=$BATCH_OPS_CLUSTER_DIR
SCRATCH=$BATCH_OPS_SCRATCH

psql_ -v nb="$NB" -v size="$SIZE" -v npreload="$NPRE" -f "$here/setup.sql" >/dev/null
psql_ >/dev/null <<-SQL
	SET client_min_messages = warning;
	CREATE EXTENSION batch_ops;
	CREATE SCHEMA bo_cg;
	-- idempotency: the calls of test/bench/idempotency.sh, fewer of them
	CREATE TABLE bo_cg.t (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE,
	                      qty int NOT NULL CHECK (qty >= 0), price numeric(12,2), note text)
	    WITH (autovacuum_enabled = off);
	CREATE TABLE bo_cg.batches (n int PRIMARY KEY, items jsonb NOT NULL);
	INSERT INTO bo_cg.batches
	SELECT n, (SELECT jsonb_agg(jsonb_build_object('id', n * $IITEMS + i, 'sku', 'sku-' || (n * $IITEMS + i),
	                                              'qty', i % 50, 'price', i % 1000 + 0.25, 'note', 'note ' || i)
	                            ORDER BY i)
	           FROM generate_series(1, $IITEMS) AS i)
	FROM generate_series(1, $ICALLS) AS n;
	VACUUM ANALYZE bo_cg.batches;
SQL
ext_version=$(psql_ -c "SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'")
server_version=$(psql_ -c "SHOW server_version")
if want import; then
	psql_ -v nrows="$IROWS" -v clean="$SCRATCH/cg_clean.csv" -v dirty="$SCRATCH/cg_dirty.csv" \
		-v dirty_pgl="$SCRATCH/cg_dirty_pgl.csv" -v dups="$SCRATCH/cg_dups.csv" \
		-v dirty10="$SCRATCH/cg_dirty10.csv" -f "$here/import_setup.sql" >/dev/null
	psql_ -c "COPY (SELECT 'id,sku,qty,price,note') TO '$SCRATCH/cg_empty.csv'" >/dev/null
fi
psql_ -c "CHECKPOINT" >/dev/null
bo_cluster_stop "$RUNDIR" >/dev/null
cluster_started=

# ---------------------------------------------------------------- single-user runs
# single FILE: run FILE's statements (one per line) in a single-user backend.
single() {
	(cd / && bo_as_pg "$BINDIR/postgres" --single -D "$DATA" -c jit=off postgres) <"$1"
}

# measure NAME FILE: FILE under callgrind; prints the collected instructions.
measure() {
	local name=$1 file=$2 ir
	(cd / && bo_as_pg valgrind --tool=callgrind --collect-atstart=no \
		--toggle-collect=PortalRun --toggle-collect=pg_plan_queries \
		--toggle-collect=pg_analyze_and_rewrite_fixedparams \
		--toggle-collect=CommitTransactionCommand \
		--callgrind-out-file="$work/cg.$name" \
		"$BINDIR/postgres" --single -D "$DATA" -c jit=off postgres) \
		<"$file" >"$work/out.$name" 2>"$work/err.$name" ||
		{ tail -n 20 "$work/err.$name" >&2; die "$name: the backend failed"; }
	if grep -q 'ERROR:' "$work/out.$name" "$work/err.$name"; then
		grep -m 3 'ERROR:' "$work/out.$name" "$work/err.$name" >&2
		die "$name: a statement failed"
	fi
	ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$work/cg.$name")
	[[ $ir =~ ^[0-9]+$ ]] || die "$name: no instruction count in the callgrind profile"
	echo "$ir"
}

# value FILE COLUMN: sum of the values of COLUMN printed by a single-user backend.
value() {
	awk -v c="$2" '$2 == c && $3 == "=" { v = $4; gsub(/"/, "", v); s += v } END { print s + 0 }' "$1"
}

# query SQL COLUMN: one value from a single-user backend (no valgrind).
query() {
	echo "$1" >"$work/q.sql"
	single "$work/q.sql" >"$work/q.out" 2>"$work/q.err" || { cat "$work/q.err" >&2; die "query failed: $1"; }
	value "$work/q.out" "$2"
}

prepare_sql() {
	echo "TRUNCATE bo_bench.t;"
	echo "SELECT bo_bench.preload($NPRE);"
	[[ $1 == create ]] ||
		echo "INSERT INTO bo_bench.t SELECT x.* FROM bo_bench.batches b, jsonb_to_recordset(b.items) AS x(id bigint, sku text, qty int, price numeric, note text) WHERE b.op = 'create' AND b.rate = 0;"
	echo "VACUUM ANALYZE bo_bench.t;"
	echo "CHECKPOINT;"
}

# the statements of run.sh, one per batch (run.sh's stmt(), errors as nerr)
stmt() {
	local op=$1 method=$2 rate=$3 n=$4
	local from="FROM bo_bench.batches b WHERE b.op = '$op' AND b.rate = $rate AND b.batch_no = $n"
	case $method/$op in
	batch_ops/*)
		echo "SELECT coalesce(jsonb_array_length(batch_ops.batch_$op('bo_bench.t', b.items) -> 'errors'), 0) AS nerr $from;" ;;
	loop/*)
		echo "SELECT jsonb_array_length(bo_bench.loop_$op(b.items) -> 'errors') AS nerr $from;" ;;
	baseline/create)
		echo "INSERT INTO bo_bench.t SELECT x.* FROM bo_bench.batches b, jsonb_to_recordset(b.items) AS x(id bigint, sku text, qty int, price numeric, note text) WHERE b.op = 'create' AND b.rate = $rate AND b.batch_no = $n;" ;;
	baseline/update)
		echo "UPDATE bo_bench.t AS t SET qty = x.qty, note = x.note FROM bo_bench.batches b, jsonb_to_recordset(b.items) AS x(id bigint, qty int, note text) WHERE b.op = 'update' AND b.rate = $rate AND b.batch_no = $n AND t.id = x.id;" ;;
	baseline/delete)
		echo "DELETE FROM bo_bench.t WHERE id IN (SELECT (jsonb_array_elements_text(b.items))::bigint $from);" ;;
	esac
}

applied_sql() {
	case $1 in
	create) echo "SELECT count(*) - $NPRE AS applied FROM bo_bench.t;" ;;
	update) echo "SELECT count(*) AS applied FROM bo_bench.t WHERE note LIKE 'upd %';" ;;
	delete) echo "SELECT $((NPRE + NB * SIZE)) - count(*) AS applied FROM bo_bench.t;" ;;
	esac
}

results=$work/results.txt # part|op|method|rate|items|instructions|check
: >"$results"

run_batch() {
	local op=$1 method=$2 rate=$3 name=$1-$2-$3 ir n applied errors expected nbad check=ok
	prepare_sql "$op" >"$work/prep.sql"
	single "$work/prep.sql" >/dev/null 2>"$work/prep.err" || { cat "$work/prep.err" >&2; die "$name: preparation failed"; }
	{
		echo "SET batch_ops.max_create_items = $SIZE;"
		echo "SET batch_ops.max_update_items = $SIZE;"
		echo "SET batch_ops.max_delete_items = $SIZE;"
		for ((n = 1; n <= NB; n++)); do stmt "$op" "$method" "$rate" "$n"; done
	} >"$work/run.sql"
	ir=$(measure "$name" "$work/run.sql")
	errors=$(value "$work/out.$name" nerr)
	applied=$(query "$(applied_sql "$op")" applied)
	expected=$(query "SELECT sum(jsonb_array_length(items) - nbad) AS good FROM bo_bench.batches WHERE op = '$op' AND rate = $rate;" good)
	nbad=$(query "SELECT sum(nbad) AS bad FROM bo_bench.batches WHERE op = '$op' AND rate = $rate;" bad)
	[[ $applied == "$expected" ]] || check="applied $applied/$expected"
	[[ $method == baseline || $errors == "$nbad" ]] || check="$check errors $errors/$nbad"
	echo "batch|$op|$method|$rate|$((NB * SIZE))|$ir|$check" >>"$results"
	printf '  %-7s %-9s %3s %%  %14s instructions  %8.1f per item  applied %s/%s  errors %s/%s\n' \
		"$op" "$method" "$rate" "$ir" "$(awk -v i="$ir" -v n=$((NB * SIZE)) 'BEGIN { print i / n }')" \
		"$applied" "$expected" "$errors" "$nbad" >&2
	[[ $check == ok ]] || say "$name: WRONG RESULT ($check)"
}

for op in create update delete; do
	want "$op" || continue
	run_batch "$op" baseline 0
	for rate in 0 1 10; do
		run_batch "$op" batch_ops "$rate"
		if [[ $op != delete && $LOOP == 1 ]]; then run_batch "$op" loop "$rate"; fi
	done
done

# ---------------------------------------------------------------- idempotency
# nokey, ratelimit (rate_limit on, never refusing), key (a fresh key per
# call), then replay (the same keys again, on the state key left).
run_idem() {
	local method=$1 name=idem-$1 ir n call rows check=ok
	if [[ $method != replay ]]; then
		printf '%s\n' "TRUNCATE bo_cg.t;" "DELETE FROM batch_ops.idempotency_keys;" "VACUUM ANALYZE bo_cg.t;" \
			"VACUUM ANALYZE batch_ops.idempotency_keys;" "CHECKPOINT;" >"$work/prep.sql"
		single "$work/prep.sql" >/dev/null 2>"$work/prep.err" || { cat "$work/prep.err" >&2; die "$name: preparation failed"; }
	fi
	{
		[[ $method == ratelimit ]] && echo "SET batch_ops.rate_limit = 1000000000;"
		for ((n = 1; n <= ICALLS; n++)); do
			case $method in
			nokey | ratelimit) call="batch_ops.batch_create('bo_cg.t', items)" ;;
			key | replay) call="batch_ops.batch_create('bo_cg.t', items, idempotency_key => 'cg-$n')" ;;
			esac
			echo "SELECT length($call::text) AS len FROM bo_cg.batches WHERE n = $n;"
		done
	} >"$work/run.sql"
	ir=$(measure "$name" "$work/run.sql")
	rows=$(query "SELECT count(*) AS nrows FROM bo_cg.t;" nrows)
	[[ $rows == $((ICALLS * IITEMS)) ]] || check="rows $rows/$((ICALLS * IITEMS))"
	echo "idem|create|$method|0|$((ICALLS * IITEMS))|$ir|$check" >>"$results"
	printf '  idempotency %-9s %14s instructions  %8.1f per item  rows %s\n' "$method" "$ir" \
		"$(awk -v i="$ir" -v n=$((ICALLS * IITEMS)) 'BEGIN { print i / n }')" "$rows" >&2
	[[ $check == ok ]] || say "$name: WRONG RESULT ($check)"
}

if want idempotency; then
	have_keys=$(query "SELECT count(*) AS n FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace WHERE s.nspname = 'batch_ops' AND p.proname = 'batch_create' AND 'idempotency_key' = ANY (p.proargnames);" n)
	if [[ $have_keys == 0 ]]; then
		say "this batch_ops has no idempotency keys: idempotency left out"
	else
		for method in nokey ratelimit key replay; do run_idem "$method"; done
	fi
fi

# ---------------------------------------------------------------- import
# The postmaster under callgrind (every child has its own profile,
# $work/cg.imp.PID, written when it exits); collection on everywhere.  One
# psql session per run, so that its backend exits (and writes its profile)
# right after the run.
import_ok=
if want import; then
	say "import: postmaster under callgrind (a few minutes)"
	(cd / && bo_as_pg valgrind --tool=callgrind --callgrind-out-file="$work/cg.imp.%p" \
		"$BINDIR/postgres" -D "$DATA" -c jit=off -c max_parallel_maintenance_workers=0) \
		>"$work/imp.log" 2>&1 &
	vg_pid=$!
	cluster_started=1
	ok=
	for ((i = 0; i < 600; i++)); do
		if pg_isready -q -h "$PGHOST" -p "$PORT" -t 2; then ok=1; break; fi
		kill -0 "$vg_pid" 2>/dev/null || break
		sleep 1
	done
	[[ -n $ok ]] || { tail -n 20 "$work/imp.log" >&2; die "import: the server under valgrind did not start"; }

	# imp_run METHOD FILE: prints "pid rows errors"
	imp_run() {
		local method=$1 file=$2 pid rows errs
		psql_ -c "TRUNCATE bo_bench_import.t" -c "DELETE FROM batch_ops.job_queue" -c "VACUUM ANALYZE bo_bench_import.t" \
			-c "VACUUM batch_ops.job_queue, batch_ops.job_error" -c "CHECKPOINT" >/dev/null
		if [[ $method == copy ]]; then
			psql_ -c "SELECT pg_backend_pid(), 0" \
				-c "COPY bo_bench_import.t FROM '$SCRATCH/cg_$file.csv' (FORMAT csv, HEADER)" >"$work/imp.out" ||
				die "import: COPY of $file failed"
		else
			psql_ >"$work/imp.out" <<-SQL || die "import: the job on $file failed"
				SELECT batch_ops.submit_import('bo_bench_import.t', '$SCRATCH/cg_$file.csv', '{"format": "csv", "header": true}') AS id \gset
				SELECT (batch_ops.wait_job(:id, '30 min') ->> 'status') = 'completed' AS done \gset
				\if :done
				\else
				  \echo job :id did not complete
				  SELECT 1/0;
				\endif
				SELECT worker_pid, errors_total FROM batch_ops.job_queue WHERE id = :id;
			SQL
		fi
		IFS='|' read -r pid errs < <(head -n 1 "$work/imp.out")
		[[ $pid =~ ^[0-9]+$ ]] || die "import: $method $file: no process id"
		rows=$(psql_ -c "SELECT count(*) FROM bo_bench_import.t")
		echo "$pid $rows $errs"
	}
	# profile_total PID: instructions of that process, once it has exited
	profile_total() {
		local f=$work/cg.imp.$1 i
		for ((i = 0; i < 600; i++)); do
			# the profile is complete once its "totals:" line is written
			if [[ -f $f ]] && grep -q '^totals:' "$f"; then break; fi
			sleep 1
		done
		awk '/^totals:/ { print $2; exit }' "$f"
	}
	good=$(psql_ -c "SELECT good FROM bo_bench_import.expect")
	bad=$(psql_ -c "SELECT bad FROM bo_bench_import.expect")
	good10=$(psql_ -c "SELECT good10 FROM bo_bench_import.expect")
	bad10=$(psql_ -c "SELECT bad10 FROM bo_bench_import.expect")
	for r in "copy empty 0 0" "copy clean $((good + bad)) 0" "job empty 0 0" "job clean $((good + bad)) 0" "job dirty $good $bad" \
		"job dups $good $bad" "job dirty10 $good10 $bad10"; do
		read -r method file want_rows want_errs <<<"$r"
		imp_run "$method" "$file" >"$work/imp.res"
		read -r pid rows errs <"$work/imp.res"
		ir=$(profile_total "$pid")
		[[ $ir =~ ^[0-9]+$ ]] || die "import $method $file: no profile for process $pid"
		check=ok
		[[ $rows == "$want_rows" && $errs == "$want_errs" ]] || check="rows $rows/$want_rows errors $errs/$want_errs"
		echo "import|$file|$method|0|$IROWS|$ir|$check" >>"$results"
		printf '  import %-4s %-5s %14s instructions (whole process %s)  rows %s  errors %s\n' \
			"$method" "$file" "$ir" "$pid" "$rows" "$errs" >&2
		[[ $check == ok ]] || say "import $method $file: WRONG RESULT ($check)"
	done
	bo_cluster_stop "$RUNDIR" >/dev/null || die "import: could not stop the server"
	wait "$vg_pid" 2>/dev/null || true
	vg_pid=
	cluster_started=
	import_ok=1
fi
[[ ${BENCH_CG_KEEP:-0} == 1 ]] && { mkdir -p "$RUNDIR/callgrind"; cp "$work"/cg.* "$RUNDIR/callgrind/" 2>/dev/null || true; }
elapsed=$(($(date +%s) - start))

# ---------------------------------------------------------------- report
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "no commit")
sofile_sum=$(md5sum "$PKGLIB/batch_ops.so" | cut -c1-12)
report=$work/report.txt
awk -F'|' -v loop="$LOOP" '
function fmt(x) { return sprintf("%.1f", x / 1000) }
{ key = $1 "|" $2 "|" $3 "|" $4; ir[key] = $6; items[key] = $5; chk[key] = $7; order[++n] = key }
END {
	printf "| %-7s | %-13s | %4s | %14s | %12s | %7s | %7s | %-5s |\n", "op", "method", "bad", "instructions", "k instr/item", "x base", "x loop", "check"
	printf "|---------|---------------|-----:|---------------:|-------------:|--------:|--------:|-------|\n"
	for (i = 1; i <= n; i++) {
		split(order[i], k, "|")
		if (k[1] != "batch") continue
		per = ir[order[i]] / items[order[i]]
		b = "batch|" k[2] "|baseline|0"
		xb = (b in ir) ? sprintf("%.2f", (ir[b] / items[b]) / per) : ""
		l = "batch|" k[2] "|loop|" k[4]
		xl = (k[3] != "loop" && (l in ir)) ? sprintf("%.2f", (ir[l] / items[l]) / per) : ""
		m = (k[3] == "baseline") ? "baseline SQL" : (k[3] == "loop") ? "PL/pgSQL loop" : "batch_" k[2]
		printf "| %-7s | %-13s | %3s%% | %14s | %12s | %7s | %7s | %-5s |\n", k[2], m, k[4], ir[order[i]], fmt(per), xb, xl, chk[order[i]]
	}
	if ("idem|create|nokey|0" in ir) {
		print ""
		printf "| %-26s | %12s | %-38s | %-5s |\n", "idempotency (batch_create)", "k instr/item", "ratio", "check"
		printf "|----------------------------|-------------:|----------------------------------------|-------|\n"
		nk = ir["idem|create|nokey|0"] / items["idem|create|nokey|0"]
		split("nokey ratelimit key replay", ms, " ")
		for (j = 1; j <= 4; j++) {
			key = "idem|create|" ms[j] "|0"
			if (!(key in ir)) continue
			per = ir[key] / items[key]
			if (ms[j] == "nokey") r = "baseline"
			else if (ms[j] == "ratelimit") r = sprintf("%.3f x no key (wall target <= 1.02)", per / nk)
			else if (ms[j] == "key") { r = sprintf("%.3f x no key (wall target <= 1.15)", per / nk); kp = per }
			else r = sprintf("%.1f x faster than key (wall target >= 5)", kp / per)
			printf "| %-26s | %12s | %-38s | %-5s |\n", ms[j], fmt(per), r, chk[key]
		}
	}
	if ("import|empty|copy|0" in ir) {
		print ""
		printf "| %-24s | %15s | %12s | %-40s | %-5s |\n", "import (whole process)", "M instructions", "k instr/row", "ratio", "check"
		printf "|--------------------------|----------------:|-------------:|------------------------------------------|-------|\n"
		split("copy|empty copy|clean job|empty job|clean job|dirty job|dups job|dirty10", rs, " ")
		for (j = 1; j <= 7; j++) {
			split(rs[j], p, "|"); key = "import|" p[2] "|" p[1] "|0"
			if (!(key in ir)) continue
			e = "import|empty|" p[1] "|0"
			net = (p[2] == "empty") ? "" : sprintf("%.2f", (ir[key] - ir[e]) / items[key] / 1000)
			if (p[2] == "clean") c[p[1]] = (ir[key] - ir[e]) / items[key]
			r = ""
			if (p[1] == "copy" && p[2] == "clean") r = "baseline"
			if (p[1] == "job" && p[2] != "empty" && ("copy" in c)) r = sprintf("%.2f x COPY clean (wall target <= %s)", (ir[key] - ir[e]) / items[key] / c["copy"], p[2] == "clean" ? "1.05" : p[2] == "dirty10" ? "3" : "1.5")
			if (p[2] == "empty") r = "start-up, subtracted"
			printf "| %-24s | %15.1f | %12s | %-40s | %-5s |\n", p[1] " " p[2], ir[key] / 1e6, net, r, chk[key]
		}
	}
}' "$results" >"$work/tables.txt"

{
	echo "batch_ops instruction counts (callgrind) — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "server: PostgreSQL $server_version from $BINDIR; batch_ops $ext_version (batch_ops.so md5 $sofile_sum); harness $rev"
	echo "load average at the start $load_start (instruction counts do not depend on it); took ${elapsed}s"
	echo "batches: $NB x $SIZE items per run, one statement per batch, in a single-user backend under callgrind,"
	echo "  counting only PortalRun, pg_plan_queries, pg_analyze_and_rewrite_fixedparams, CommitTransactionCommand;"
	echo "  x base = baseline instructions / method instructions (same sense as the wall-time x base: < 1 = costlier)"
	want idempotency && echo "idempotency: $ICALLS calls of $IITEMS items, same counting; ratios are instruction ratios"
	[[ -n $import_ok ]] && echo "import: $IROWS-row files, postmaster under callgrind, whole-process totals of the COPY backend / job worker; k instr/row = (run - same run on an empty file) / rows"
	echo
	cat "$work/tables.txt"
} >"$report"
mkdir -p "$(dirname "$OUT")"
cp "$report" "$OUT"
echo
cat "$report"
echo
echo "bench-callgrind: report saved to $OUT"
if grep -q '^[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^o]' "$results"; then
	die "some runs gave a wrong result (column check)"
fi
