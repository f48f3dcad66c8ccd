#!/usr/bin/env bash
# test/bench/import.sh — benchmark of batch_ops CSV import jobs against
# COPY ... FROM 'file' and pgloader, on a clean 1,000,000-row file and on
# the same file with 1 % bad rows.  Run by `make bench` after run.sh (which
# calls it with BATCH_OPS_BENCH_EXISTING=1 on its own cluster); see
# test/bench/README.md, "Import benchmark".
#
# Server: with BATCH_OPS_BENCH_EXISTING=1 and PGPORT set, the server that
# PGHOST/PGPORT/PGUSER name (local: the files are read by the server, and
# the job worker's memory is read from /proc; shared_preload_libraries
# must include batch_ops, and the user must be a superuser).  Otherwise
# a throwaway cluster under .test-run/bench-import on port 5476
# (scripts/lib.sh), stopped at the end.  Never builds: what is installed
# is what is measured.
#
# Environment (all optional):
#   BENCH_IMPORT_ROWS=1000000       data rows per file
#   BENCH_IMPORT_REPEAT=3           runs of every measurement (medians)
#   BENCH_IMPORT_PGLOADER=1         0 = leave pgloader out
#   BENCH_IMPORT_DUPS=1             0 = leave out the job on a file whose
#                                   bad rows (1 %) are all duplicates
#   BENCH_IMPORT_DIRTY10=1          0 = leave out the job on a file with
#                                   10 % bad rows
#   BENCH_IMPORT_PGLOADER_DIRTY_REPEAT=1   runs of pgloader on the dirty
#                                   file without the rows it cannot parse
#                                   (about 2 minutes per run)
#   BENCH_IMPORT_PGLOADER_TIMEOUT=600   seconds before a pgloader run is killed
#   BENCH_IMPORT_BRACKET=1          the clean COPY runs again after the clean
#                                   and dirty jobs; their ratios use the mean
#                                   of both COPYs (0 = one COPY per repetition)
#   BENCH_IMPORT_DIR=...            directory for the CSV files (existing
#                                   server; default $BATCH_OPS_SCRATCH or a
#                                   new directory under /tmp)
#   BENCH_KEEP=1                    keep schema bo_bench_import, the jobs
#                                   and the files
#
# Exit status: 0 when the benchmark ran, whatever the figures (the report
# says PASS/FAIL); non-zero when the benchmark itself broke.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

NROWS=${BENCH_IMPORT_ROWS:-1000000}
REPEAT=${BENCH_IMPORT_REPEAT:-3}
WANT_PGL=${BENCH_IMPORT_PGLOADER:-1}
WANT_DUPS=${BENCH_IMPORT_DUPS:-1}
WANT_DIRTY10=${BENCH_IMPORT_DIRTY10:-1}
PGL_DIRTY_REPEAT=${BENCH_IMPORT_PGLOADER_DIRTY_REPEAT:-1}
PGL_TIMEOUT=${BENCH_IMPORT_PGLOADER_TIMEOUT:-600}
BRACKET=${BENCH_IMPORT_BRACKET:-1}
KEEP=${BENCH_KEEP:-0}
PORT=5476
RUNDIR=$root/.test-run/bench-import
JOB_TIMEOUT='30 minutes'
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

# Targets (ratio <= target).  The job ones are the project's; the pgloader
# ones read "several times faster on clean data" as >= 3x and "by far on
# dirty data" as >= 10x.
MAX_JOB_CLEAN=1.05
MAX_JOB_DIRTY=1.50
MAX_JOB_DUPS=1.50
MAX_JOB_DIRTY10=3.00
MAX_PGL_CLEAN=0.33
MAX_PGL_DIRTY=0.10

resdir=$here/results
mkdir -p "$resdir"
work=$(mktemp -d "${TMPDIR:-/tmp}/bo-bench-import.XXXXXX")
chmod 755 "$work"

die() { echo "bench-import: $*" >&2; exit 1; }
say() { echo "bench-import: $*"; }

for v in NROWS REPEAT PGL_DIRTY_REPEAT PGL_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
[[ $NROWS -ge 1000 ]] || die "BENCH_IMPORT_ROWS must be at least 1000"
[[ $REPEAT -ge 1 ]] || die "BENCH_IMPORT_REPEAT must be at least 1"
[[ $BRACKET == 0 || $BRACKET == 1 ]] || die "BENCH_IMPORT_BRACKET must be 0 or 1"

cluster_started=
files_dir=
own_files_dir=
cleanup() {
	local rc=$?
	if [[ -n ${sampler_pid:-} ]]; then kill "$sampler_pid" 2>/dev/null || true; fi
	if [[ -n $cluster_started ]]; then
		bo_cluster_stop "$RUNDIR" >/dev/null 2>&1 || echo "bench-import: could not stop the cluster in $RUNDIR" >&2
	elif [[ $KEEP != 1 && -n ${schema_made:-} ]]; then
		psql -X -q -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bo_bench_import CASCADE" >/dev/null 2>&1 || true
	fi
	if [[ $KEEP != 1 && -n $files_dir ]]; then
		rm -f "$files_dir"/bo-import-{clean,dirty,dirty-pgl,dups,dirty10}.csv
		if [[ -n $own_files_dir ]]; then rmdir "$files_dir" 2>/dev/null || true; fi
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

# ---------------------------------------------------------------- server
if [[ ${BATCH_OPS_BENCH_EXISTING:-0} == 1 && -n ${PGPORT:-} ]]; then
	mode="existing server (PGHOST=${PGHOST:-} PGPORT=$PGPORT)"
	if [[ -d /usr/lib/postgresql/15/bin && ":$PATH:" != *":/usr/lib/postgresql/15/bin:"* ]]; then
		export PATH="/usr/lib/postgresql/15/bin:$PATH"
	fi
else
	[[ -f $root/scripts/lib.sh ]] || die "scripts/lib.sh is missing"
	# shellcheck source=/dev/null
	source "$root/scripts/lib.sh"
	bo_ensure_deps
	cluster_started=1 # stop it on exit even if the start fails half-way
	BATCH_OPS_FSYNC=on bo_cluster_start "$RUNDIR" "$PORT"
	mode="throwaway cluster (.test-run/bench-import, port $PORT)"
fi

psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

[[ $(psql_ -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == t ]] ||
	die "the import bench needs a superuser (server-side COPY TO/FROM files)"
[[ $(psql_ -c "SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' AND setting ~ '(^|[ ,])batch_ops($|[ ,])'") == 1 ]] ||
	die "the server does not preload batch_ops (shared_preload_libraries): import jobs cannot run"
psql_ -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS batch_ops" >/dev/null
ext_version=$(psql_ -c "SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'")

# The server's processes, to read the job worker's memory in /proc.
postmaster_pid=$(psql_ -c "SELECT (string_to_array(pg_read_file('/proc/self/stat'), ' '))[4]" 2>/dev/null || true)
if [[ ! $postmaster_pid =~ ^[0-9]+$ || ! -r /proc/$postmaster_pid/status ]]; then
	postmaster_pid=
	say "the server's processes are not visible here: no memory figures"
fi

# Files: written and read by the server, read by pgloader (here).
if [[ -n ${BENCH_IMPORT_DIR:-} ]]; then
	files_dir=$BENCH_IMPORT_DIR
	mkdir -p "$files_dir"
elif [[ -n ${BATCH_OPS_SCRATCH:-} && -d ${BATCH_OPS_SCRATCH:-} ]]; then
	files_dir=$BATCH_OPS_SCRATCH
else
	files_dir=$(mktemp -d /tmp/bo-bench-import-files.XXXXXX)
	own_files_dir=1
	chmod 1777 "$files_dir"
fi
f_clean=$files_dir/bo-import-clean.csv
f_dirty=$files_dir/bo-import-dirty.csv
f_dirty_pgl=$files_dir/bo-import-dirty-pgl.csv
f_dups=
[[ $WANT_DUPS == 1 ]] && f_dups=$files_dir/bo-import-dups.csv
f_dirty10=
[[ $WANT_DIRTY10 == 1 ]] && f_dirty10=$files_dir/bo-import-dirty10.csv

# ---------------------------------------------------------------- pgloader
pgloader_status=
if [[ $WANT_PGL != 1 ]]; then
	pgloader_status="pgloader: left out (BENCH_IMPORT_PGLOADER=0)"
elif ! command -v pgloader >/dev/null 2>&1; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		say "installing pgloader (apt-get) ..."
		apt_log=$work/apt.log
		if ! env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
			--no-install-recommends pgloader >"$apt_log" 2>&1; then
			env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >>"$apt_log" 2>&1 || true
			env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
				--no-install-recommends pgloader >>"$apt_log" 2>&1 || tail -n 5 "$apt_log" >&2
		fi
	fi
	command -v pgloader >/dev/null 2>&1 || pgloader_status="pgloader: not available"
fi
if [[ -z $pgloader_status ]]; then
	pgl_version=$(pgloader --version 2>/dev/null | head -1 || true)
	db=${PGDATABASE:-$(psql_ -c "SELECT current_database()")}
	if [[ ${PGHOST:-} == /* ]]; then
		pgl_uri="postgresql://${PGUSER:-postgres}@unix:$PGHOST:$PGPORT/$db"
	else
		pgl_uri="postgresql://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/$db"
	fi
else
	say "$pgloader_status"
fi

# ---------------------------------------------------------------- setup
# The library measured is the one the server loaded when it started
# (shared_preload_libraries): say when that was, and whether the installed
# file is newer (then the server runs an older build than the one installed).
so_file=$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/batch_ops.so
so_epoch=$(stat -c %Y "$so_file" 2>/dev/null || echo 0)
pm_epoch=$(psql_ -c "SELECT extract(epoch FROM pg_postmaster_start_time())::bigint")
utc() { date -u -d "@$1" '+%Y-%m-%d %H:%M:%S UTC'; }
if [[ $so_epoch -eq 0 ]]; then
	so_info="server started $(utc "$pm_epoch")"
elif [[ $so_epoch -le $pm_epoch ]]; then
	so_info="batch_ops.so of $(utc "$so_epoch"), loaded at server start $(utc "$pm_epoch")"
else
	so_info="server started $(utc "$pm_epoch") with an OLDER batch_ops.so than the one installed at $(utc "$so_epoch") (restart it to measure that)"
fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
bench_start=$(date +%s)
say "writing the CSV files ($NROWS rows each) to $files_dir ..."
schema_made=1
psql_ -v nrows="$NROWS" -v clean="$f_clean" -v dirty="$f_dirty" -v dirty_pgl="$f_dirty_pgl" -v dups="$f_dups" -v dirty10="$f_dirty10" \
	-f "$here/import_setup.sql" >/dev/null
read -r n_good n_bad n_dup n_extra n_quote n_good10 n_bad10 n_dup10 < <(psql_ -F ' ' -c "SELECT good, bad, bad_dup, bad_extra, bad_quote, good10, bad10, bad10_dup FROM bo_bench_import.expect")
# the server wrote them: make sure we (pgloader) can read them, and warm the cache
for f in "$f_clean" "$f_dirty" "$f_dirty_pgl" $f_dups $f_dirty10; do
	[[ -r $f ]] || die "cannot read $f (written by the server)"
	cat "$f" >/dev/null
done

# prepare: the same state before every timed run.  The jobs of earlier
# runs are deleted (with their errors) so that every job starts with the
# same job tables.
prepare() {
	psql_ >/dev/null <<-EOF
	SET client_min_messages = warning;
	TRUNCATE bo_bench_import.t;
	VACUUM bo_bench_import.t;
	VACUUM batch_ops.job_queue, batch_ops.job_error;
	CHECKPOINT;
	EOF
}

# record COLUMN=VALUE...: one row of bo_bench_import.results.
record() {
	local cols=() vals=() kv
	for kv in "$@"; do
		cols+=("${kv%%=*}")
		vals+=("${kv#*=}")
	done
	local IFS=,
	psql_ -c "INSERT INTO bo_bench_import.results (${cols[*]}) VALUES (${vals[*]})" >/dev/null
}
# sizes: "table-bytes index-bytes" of the table under test.
sizes() {
	psql_ -F ' ' -c "SELECT pg_relation_size('bo_bench_import.t'), pg_indexes_size('bo_bench_import.t')"
}
q() { # SQL literal
	local s=${1//\'/\'\'}
	printf "'%s'" "$s"
}

# ---------------------------------------------------------------- COPY
run_copy() {
	local file=$1 rep=$2 path out=$work/copy.out err=$work/copy.err
	case $file in clean) path=$f_clean ;; dirty) path=$f_dirty ;; esac
	prepare
	local rc=0
	psql -X -q -At -v ON_ERROR_STOP=1 -v file="$path" -v hz="$clk_tck" >"$out" 2>"$err" <<-'EOF' || rc=$?
	SELECT extract(epoch FROM clock_timestamp()) AS t0, pg_current_wal_lsn() AS l0 \gset
	COPY bo_bench_import.t FROM :'file' (FORMAT csv, HEADER);
	SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
	SELECT 'RESULT', :t1 - :t0, pg_current_wal_lsn() - :'l0'::pg_lsn,
		   pg_backend_pid(),
		   (s[14]::bigint + s[15]::bigint) / :hz.0,
		   substring(st FROM 'VmHWM:\s*(\d+)'), substring(st FROM 'RssAnon:\s*(\d+)'),
		   substring(st FROM 'RssShmem:\s*(\d+)')
	  FROM string_to_array(pg_read_file('/proc/self/stat'), ' ') AS s,
		   pg_read_file('/proc/self/status') AS st;
	EOF
	local rows heap idx
	rows=$(psql_ -c "SELECT count(*) FROM bo_bench_import.t")
	read -r heap idx < <(sizes)
	if [[ $rc -eq 0 ]]; then
		local secs wal pid cpu hwm anon shm
		IFS='|' read -r _ secs wal pid cpu hwm anon shm < <(grep '^RESULT|' "$out")
		local ok=false
		[[ $rows -eq $((n_good + n_bad)) ]] && ok=true
		record rep="$rep" method="'copy'" file="'$file'" secs="$secs" cpu_secs="$cpu" wal_bytes="$wal" \
			rows_loaded="$rows" ok="$ok" completed=true pid="$pid" hwm_kb="${hwm:-NULL}" \
			anon_kb="${anon:-NULL}" shmem_kb="${shm:-NULL}" heap_bytes="$heap" index_bytes="$idx"
		printf '  rep %d  %-9s %-9s %8.2f s   rows %s\n' "$rep" COPY "$file" "$secs" "$rows"
	elif [[ $file == dirty ]]; then
		# expected: COPY stops at the first bad row and loads nothing
		local msg ctx
		msg=$(grep -m1 'ERROR:' "$err" | sed 's/^.*ERROR: *//' || true)
		ctx=$(grep -m1 'CONTEXT:' "$err" | sed 's/^.*CONTEXT: *//; s/, column .*//' || true)
		record rep="$rep" method="'copy'" file="'$file'" rows_loaded="$rows" ok=true completed=false \
			note="$(q "aborts at the first bad row, loads nothing: ${ctx:-?}: ${msg:-?}")"
		printf '  rep %d  %-9s %-9s aborted: %s: %s (rows %s)\n' "$rep" COPY "$file" "${ctx:-?}" "${msg:-?}" "$rows"
	else
		cat "$err" >&2
		die "COPY of the clean file failed"
	fi
}

# ---------------------------------------------------------------- job
# The job worker's memory: every 0.1 s, each child of the postmaster that
# is a batch_ops job worker: "pid VmHWM VmRSS RssAnon RssShmem cputicks".
sample_pid() {
	local p=$1 k v _r hwm='' rss='' anon='' shm='' st
	while read -r k v _r; do
		case $k in
		VmHWM:) hwm=$v ;;
		VmRSS:) rss=$v ;;
		RssAnon:) anon=$v ;;
		RssShmem:) shm=$v ;;
		esac
	done 2>/dev/null <"/proc/$p/status" || return 0
	read -r st 2>/dev/null <"/proc/$p/stat" || return 0
	st=${st##*) }
	# shellcheck disable=SC2086
	set -- $st
	[[ -n $hwm ]] && echo "$p $hwm ${rss:-0} ${anon:-0} ${shm:-0} $((${12} + ${13}))"
	return 0
}
rss_sampler() {
	set +e
	local out=$1 stop=$2 p
	while [[ ! -e $stop ]]; do
		for p in $(pgrep -P "$postmaster_pid" -f 'batch_ops job worker' 2>/dev/null); do
			sample_pid "$p"
		done >>"$out"
		sleep 0.1
	done
}

sampler_pid=
run_job() {
	local file=$1 rep=$2 path out=$work/job.out samples=$work/rss.txt stop=$work/rss.stop
	case $file in clean) path=$f_clean ;; dirty) path=$f_dirty ;; dups) path=$f_dups ;; dirty10) path=$f_dirty10 ;; esac
	# the bad rows: id % every = every / 2, at line id + 1
	local every=100
	[[ $file == dirty10 ]] && every=10
	prepare
	rm -f "$samples" "$stop"
	: >"$samples"
	if [[ -n $postmaster_pid ]]; then
		rss_sampler "$samples" "$stop" &
		sampler_pid=$!
	fi
	psql -X -q -At -v ON_ERROR_STOP=1 -v file="$path" -v timeout="$JOB_TIMEOUT" >"$out" <<-'EOF'
	SELECT extract(epoch FROM clock_timestamp()) AS t0, pg_current_wal_lsn() AS l0 \gset
	SELECT batch_ops.submit_import('bo_bench_import.t', :'file', '{"format": "csv", "header": true}') AS id \gset
	SELECT batch_ops.wait_job(:id, :'timeout') ->> 'status' AS status \gset
	SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
	SELECT 'RESULT', :id, :'status', :t1 - :t0, pg_current_wal_lsn() - :'l0'::pg_lsn;
	EOF
	local id status secs wal
	IFS='|' read -r _ id status secs wal < <(grep '^RESULT|' "$out")
	# the worker may still be there: one more sample "at the end"
	local wpid
	wpid=$(psql_ -c "SELECT worker_pid FROM batch_ops.job_queue WHERE id = $id")
	if [[ -n $sampler_pid ]]; then
		[[ -n $wpid && -r /proc/$wpid/status ]] && sample_pid "$wpid" >>"$samples"
		touch "$stop"
		wait "$sampler_pid" 2>/dev/null || true
		sampler_pid=
	fi
	[[ $status == completed ]] || {
		psql_ -c "SELECT batch_ops.job($id)" >&2 || true
		die "import job $id ($file) ended with status '$status'"
	}

	local job_secs created failed errors_total rows bad_ids err_lines err_conflict
	IFS='|' read -r job_secs created failed errors_total < <(psql_ -c "
		SELECT extract(epoch FROM finished_at - started_at), created, failed, errors_total
		  FROM batch_ops.jobs WHERE job_id = $id")
	IFS='|' read -r rows bad_ids < <(psql_ -c "
		SELECT count(*), count(*) FILTER (WHERE id % $every = $every / 2) FROM bo_bench_import.t")
	IFS='|' read -r err_lines err_conflict < <(psql_ -c "
		SELECT count(DISTINCT line) FILTER (WHERE (line - 1) % $every = $every / 2),
			   count(*) FILTER (WHERE error = 'conflict')
		  FROM batch_ops.job_errors($id)")

	local expect_rows expect_bad expect_dup ok=true problems=() heap idx
	case $file in
	clean) expect_rows=$((n_good + n_bad)) expect_bad=0 expect_dup=0 ;;
	dirty) expect_rows=$n_good expect_bad=$n_bad expect_dup=$n_dup ;;
	dups) expect_rows=$n_good expect_bad=$n_bad expect_dup=$n_bad ;;
	dirty10) expect_rows=$n_good10 expect_bad=$n_bad10 expect_dup=$n_dup10 ;;
	esac
	read -r heap idx < <(sizes)
	[[ $rows -eq $expect_rows ]] || problems+=("count(*) $rows, expected $expect_rows")
	[[ $created -eq $expect_rows ]] || problems+=("created $created, expected $expect_rows")
	[[ $errors_total -eq $expect_bad ]] || problems+=("errors_total $errors_total, expected $expect_bad")
	[[ $failed -eq $expect_bad ]] || problems+=("failed $failed, expected $expect_bad")
	[[ $file == clean || $bad_ids -eq 0 ]] || problems+=("$bad_ids bad rows were loaded")
	[[ $err_lines -eq $expect_bad ]] || problems+=("$err_lines distinct errors on the bad lines, expected $expect_bad")
	[[ $err_conflict -eq $expect_dup ]] || problems+=("$err_conflict conflict errors, expected $expect_dup")
	local note=NULL
	if ((${#problems[@]})); then
		ok=false
		note=$(q "job $id: $(printf '%s; ' "${problems[@]}" | sed 's/; $//')")
		echo "bench-import: WRONG RESULT of import job $id ($file): ${problems[*]}" >&2
	fi

	# memory: the samples of the worker that ran the job
	local hwm=NULL anon=NULL shm=NULL cpu=NULL nsamp=0
	if [[ -n $wpid && -s $samples ]]; then
		read -r nsamp hwm anon shm cpu < <(awk -v p="$wpid" -v hz="$clk_tck" '
			$1 == p { n++; if ($2 > h) h = $2; if ($4 > a) a = $4; if ($5 > s) s = $5; if ($6 > c) c = $6 }
			END { if (n) printf "%d %d %d %d %.2f\n", n, h, a, s, c / hz; else print "0 NULL NULL NULL NULL" }' "$samples")
	fi
	record rep="$rep" method="'job'" file="'$file'" secs="$secs" job_secs="$job_secs" cpu_secs="$cpu" \
		wal_bytes="$wal" rows_loaded="$rows" errors="$errors_total" ok="$ok" completed=true \
		pid="${wpid:-NULL}" hwm_kb="$hwm" anon_kb="$anon" shmem_kb="$shm" samples="$nsamp" note="$note" \
		heap_bytes="$heap" index_bytes="$idx"
	printf '  rep %d  %-9s %-9s %8.2f s  (started->finished %.2f s)  rows %s  errors %s  worker %s VmHWM %s MB\n' \
		"$rep" job "$file" "$secs" "$job_secs" "$rows" "$errors_total" "${wpid:-?}" \
		"$(awk -v k="$hwm" 'BEGIN { if (k == "NULL") print "?"; else printf "%.1f", k / 1024 }')"

	if [[ $KEEP != 1 ]]; then
		psql_ -c "DELETE FROM batch_ops.job_queue WHERE id = $id" >/dev/null
	fi
}

# ---------------------------------------------------------------- pgloader
run_pgloader() {
	local file=$1 rep=$2 path
	case $file in clean) path=$f_clean ;; dirty) path=$f_dirty ;; dirty_pgl) path=$f_dirty_pgl ;; esac
	if [[ -n $pgloader_status ]]; then
		record rep="$rep" method="'pgloader'" file="'$file'" ok=false completed=false note="$(q "$pgloader_status")"
		return 0
	fi
	local cmd=$work/pgloader-$file.load log=$work/pgloader.log tfile=$work/pgloader.time
	local rdir=$work/pgloader-root
	rm -rf "$rdir"
	# null if blanks: an empty field is NULL, as in COPY's CSV format
	cat >"$cmd" <<-EOF
	LOAD CSV
	     FROM '$path'
	          HAVING FIELDS (id, sku [null if blanks], qty [null if blanks],
	                         price [null if blanks], note [null if blanks])
	     INTO $pgl_uri
	          TARGET TABLE bo_bench_import.t
	          TARGET COLUMNS (id, sku, qty, price, note)
	     WITH skip header = 1,
	          fields optionally enclosed by '"',
	          fields escaped by double-quote,
	          fields terminated by ',',
	          on error resume next;
	EOF
	prepare
	local l0 rc=0
	l0=$(psql_ -c "SELECT pg_current_wal_lsn()")
	(
		TIMEFORMAT='%R %U %S'
		time timeout "$PGL_TIMEOUT" pgloader --root-dir "$rdir" --logfile "$rdir/pgloader.log" "$cmd" >"$log" 2>&1
	) 2>"$tfile" || rc=$?
	local secs usr sys wal rows bad_ids heap idx
	read -r secs usr sys <"$tfile"
	read -r heap idx < <(sizes)
	wal=$(psql_ -c "SELECT pg_current_wal_lsn() - '$l0'::pg_lsn")
	IFS='|' read -r rows bad_ids < <(psql_ -c "
		SELECT count(*), count(*) FILTER (WHERE id % 100 = 50) FROM bo_bench_import.t")
	# its own summary: "Total import time  <errors or ✓>  <rows>  <bytes> MB  <time>"
	local perrors prows fatal completed=true
	read -r perrors prows < <(awk '/Total import time/ { e = $4; if (e !~ /^[0-9]+$/) e = 0; print e, $5; exit }' "$log") || true
	fatal=$(grep -m1 -E ' (FATAL|KABOOM)' "$log" | sed -E 's/^[^ ]+ (FATAL|KABOOM) //; s/ #<.*$//' || true)
	local notes=()
	if [[ $rc -eq 124 ]]; then
		completed=false
		notes+=("killed after ${PGL_TIMEOUT}s")
	elif [[ $rc -ne 0 ]]; then
		completed=false
		notes+=("exit status $rc")
	fi
	if [[ -n $fatal ]]; then
		completed=false
		notes+=("stopped: FATAL \"$fatal\" (exit status $rc)")
	fi
	[[ -n $prows ]] || perrors=
	# what the file holds
	local expect_rows expect_bad
	case $file in
	clean) expect_rows=$((n_good + n_bad)) expect_bad=0 ;;
	dirty) expect_rows=$n_good expect_bad=$n_bad ;;
	dirty_pgl) expect_rows=$n_good expect_bad=$((n_bad - n_quote)) ;;
	esac
	local ok=true
	[[ $file == clean ]] && bad_ids=0
	if [[ $rows -ne $expect_rows || $bad_ids -ne 0 ]]; then
		ok=false
		notes+=("loaded $((rows - bad_ids)) of $expect_rows good rows + $bad_ids bad ones")
	fi
	if [[ $file != clean && $bad_ids -gt 0 && $completed == true ]]; then
		notes+=("rows with an extra field are loaded without it, not rejected")
	fi
	if [[ -n $perrors && $perrors -ne $expect_bad ]]; then
		ok=false
		local in_file
		in_file=$(($(wc -l <"$path") - 1))
		notes+=("it left out $((in_file - rows)) of the $in_file rows; its summary counts $perrors errors ($expect_bad bad rows in the file)")
	fi
	local note=NULL
	if ((${#notes[@]})); then
		note=$(q "$(printf '%s; ' "${notes[@]}" | sed 's/; $//')")
	fi
	record rep="$rep" method="'pgloader'" file="'$file'" secs="$secs" \
		cpu_secs="$(awk -v u="$usr" -v s="$sys" 'BEGIN { print u + s }')" wal_bytes="$wal" \
		rows_loaded="$rows" errors="${perrors:-NULL}" ok="$ok" completed="$completed" note="$note" \
		heap_bytes="$heap" index_bytes="$idx"
	printf '  rep %d  %-9s %-9s %8.2f s   rows %s  errors (its count) %s%s\n' "$rep" pgloader "$file" "$secs" \
		"$rows" "${perrors:-?}" "${fatal:+  FATAL: $fatal}"
}

# ---------------------------------------------------------------- runs
say "$REPEAT repetition(s): COPY clean, COPY dirty (fails), job clean, job dirty,$([[ $BRACKET == 1 ]] && echo ' COPY clean,')$([[ $WANT_DUPS == 1 ]] && echo ' job dups,')$([[ $WANT_DIRTY10 == 1 ]] && echo ' job dirty10,')$([[ $BRACKET == 1 && $WANT_DUPS$WANT_DIRTY10 != 00 ]] && echo ' COPY clean,') pgloader clean, pgloader dirty"
for ((rep = 1; rep <= REPEAT; rep++)); do
	run_copy clean "$rep"
	run_copy dirty "$rep"
	run_job clean "$rep"
	run_job dirty "$rep"
	# the clean COPY again: each job's ratio is taken against the mean of
	# the clean COPYs before and after it (import_report.sql), so a
	# machine that slows down or speeds up over the minute between them
	# moves both sides of the ratio alike
	if [[ $BRACKET == 1 ]]; then
		run_copy clean "$rep"
	fi
	if [[ $WANT_DUPS == 1 ]]; then
		run_job dups "$rep"
	fi
	if [[ $WANT_DIRTY10 == 1 ]]; then
		run_job dirty10 "$rep"
	fi
	# and once more after them, so that they too sit between two COPYs
	if [[ $BRACKET == 1 && $WANT_DUPS$WANT_DIRTY10 != 00 ]]; then
		run_copy clean "$rep"
	fi
	run_pgloader clean "$rep"
	run_pgloader dirty "$rep"
	if ((rep <= PGL_DIRTY_REPEAT)); then
		run_pgloader dirty_pgl "$rep"
	fi
done
elapsed=$(($(date +%s) - bench_start))
# clean COPYs per repetition
copies=1
[[ $BRACKET == 1 ]] && copies=2
[[ $BRACKET == 1 && $WANT_DUPS$WANT_DIRTY10 != 00 ]] && copies=3

# ---------------------------------------------------------------- report
server_version=$(psql_ -c "SHOW server_version")
read -r sb fsync sync wal_level mwal <<<"$(psql_ -F ' ' -c "SELECT current_setting('shared_buffers'), current_setting('fsync'), current_setting('synchronous_commit'), current_setting('wal_level'), current_setting('max_wal_size')")"
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n $(git -C "$root" status --porcelain 2>/dev/null | grep -v '^??' | head -1) ]]; then rev="$rev (modified)"; fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
size_mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MB", b / 1048576 }'; }

report=$work/import.txt
{
	echo "batch_ops CSV import benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "server: PostgreSQL $server_version, $mode; batch_ops $ext_version; source $rev"
	echo "library: $so_info"
	echo "machine: $(nproc) cores, $cpu; load average before the bench $load_start; benchmark took ${elapsed}s"
	echo "settings: fsync=$fsync, synchronous_commit=$sync, shared_buffers=$sb, wal_level=$wal_level, max_wal_size=$mwal"
	echo "table: (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE, qty int NOT NULL CHECK (qty >= 0), price numeric(12,2), note text)"
	echo "files: $NROWS rows + header, note field quoted; clean $(size_mb "$f_clean"); 1 % bad $(size_mb "$f_dirty"): $n_bad bad rows"
	echo "       (type error, CHECK, NOT NULL, duplicate sku of the previous row ($n_dup), a sixth field ($n_extra),"
	echo "       a quote inside the sku field closing in the qty field ($n_quote): about $((n_bad / 6)) of each kind)"
	[[ -n $f_dups ]] && echo "       all duplicates: the same $n_bad bad rows, each the sku of the previous row"
	[[ -n $f_dirty10 ]] && echo "       10 % bad: $n_bad10 bad rows (n % 10 = 5), the same six kinds in turn ($n_dup10 duplicates)"
	echo "runs: TRUNCATE + VACUUM + CHECKPOINT before each; $REPEAT repetition(s) in the order COPY, job,$([[ $BRACKET == 1 ]] && echo ' COPY clean again (jobs vs the mean of the COPYs around them),') pgloader;"
	echo "      job = batch_ops.submit_import(..., '{\"format\": \"csv\", \"header\": true}') then wait_job from the same session"
	echo "      pgloader $([[ -z $pgloader_status ]] && echo "${pgl_version:-?}: LOAD CSV ... WITH on error resume next (default batch rows 25000), over $pgl_uri" || echo "$pgloader_status")"
	echo "seconds = median wall time; ratio = median of the ratios within each repetition; spread = (max - min) / median"
	echo
	psql -X -q -v ON_ERROR_STOP=1 -v max_job_clean="$MAX_JOB_CLEAN" -v max_job_dirty="$MAX_JOB_DIRTY" \
		-v max_job_dups="$MAX_JOB_DUPS" -v max_job_dirty10="$MAX_JOB_DIRTY10" \
		-v max_pgl_clean="$MAX_PGL_CLEAN" -v max_pgl_dirty="$MAX_PGL_DIRTY" -v repeat="$REPEAT" -v copies="$copies" -f "$here/import_report.sql"
	echo "VmHWM = peak resident set of the process, shared memory included (RssShmem: the shared_buffers pages it touched);"
	echo "peak RssAnon = highest private memory seen (job: sampled every 0.1 s; COPY: at the end). CPU s: job worker from"
	echo "/proc/<pid>/stat (last sample, up to 0.1 s short), COPY backend at the end; pgloader = the client process"
	echo "(user + sys; its server backends not counted)."
} >"$report"

cp "$report" "$resdir/import.txt"
echo
cat "$report"
echo
say "report saved to test/bench/results/import.txt"
