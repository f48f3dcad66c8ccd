#!/usr/bin/env bash
#
# batch_ops — run every test on a throwaway cluster.
#
#   sudo scripts/test.sh            (or as a normal user with sudo rights)
#
# Steps: install missing packages, build and install the extension, start a
# throwaway PostgreSQL 15 cluster in .test-run/pgdata (port 5498, or
# $BATCH_OPS_TEST_PORT) with batch_ops preloaded, then run, carrying on
# after failures:
#
#   1. regress    make installcheck, pg_regress part   (sql/, expected/)
#   2. isolation  make installcheck, isolation part    (test/isolation)
#   3. prove      make prove, pgTAP via pg_prove       (test/pgtap/*.sql)
#   4. tap        cluster-level TAP tests, prove test/t/*.pl (each starts
#                 its own clusters; BATCH_OPS_TAP = files to run)
#   5. every executable test/scripts/*.sh, one suite each
#      (exit 0 = pass, 77 = skip, anything else = fail).  Each script gets
#      PGHOST PGPORT PGUSER PGDATABASE, BATCH_OPS_CLUSTER_DIR,
#      BATCH_OPS_CLUSTER_LOG, BATCH_OPS_SCRATCH, BATCH_OPS_ROOT and
#      BATCH_OPS_LIB (source it for bo_psql, bo_as_pg, bo_cluster_restart...).
#
# The cluster is stopped at the end.  The last line is "N passed, N failed";
# the exit status is non-zero when anything failed.
#
# Knobs: BATCH_OPS_TEST_PORT (5498), BATCH_OPS_TEST_BUDGET (seconds for the
# whole run, 4800), BATCH_OPS_SCRIPT_TIMEOUT (per script, 900),
# BATCH_OPS_TEST_ONLY (space-separated suite names to run, e.g.
# "regress prove crash.sh"), BATCH_OPS_REGRESS / BATCH_OPS_ISOLATION (test
# lists instead of the Makefile's REGRESS / ISOLATION), BATCH_OPS_FSYNC (on),
# BATCH_OPS_NO_BUILD (1 = do not build and install, use what is installed).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

PORT="${BATCH_OPS_TEST_PORT:-5498}"
RUN_DIR="$ROOT/.test-run"
# one cluster directory per port, so that runs on different ports can coexist
if [[ "$PORT" == 5498 ]]; then CLUSTER="$RUN_DIR/pgdata"; else CLUSTER="$RUN_DIR/pgdata-$PORT"; fi
BUDGET="${BATCH_OPS_TEST_BUDGET:-4800}"
SCRIPT_TIMEOUT="${BATCH_OPS_SCRIPT_TIMEOUT:-900}"
ONLY="${BATCH_OPS_TEST_ONLY:-}"
START_TIME="$(date +%s)"
PGC="$(bo_pg_config)"
export PG_CONFIG="$PGC"

declare -a R_NAME=() R_STATUS=() R_SECS=()
PASSED=0
FAILED=0
SKIPPED=0
CLUSTER_STARTED=0

hr() { printf '\n======== %s ========\n' "$*"; }

record() { # NAME pass|fail|skip SECS [note]
	R_NAME+=("$1${4:+ ($4)}")
	R_STATUS+=("$2")
	R_SECS+=("$3")
	case "$2" in
	pass) PASSED=$((PASSED + 1)) ;;
	fail) FAILED=$((FAILED + 1)) ;;
	skip) SKIPPED=$((SKIPPED + 1)) ;;
	esac
	printf -- '---- %s: %s (%ss)\n' "$1" "$(tr '[:lower:]' '[:upper:]' <<<"$2")" "$3"
}

wanted() { # NAME — honour BATCH_OPS_TEST_ONLY
	[[ -z "$ONLY" ]] && return 0
	local w
	for w in $ONLY; do [[ "$w" == "$1" ]] && return 0; done
	return 1
}

remaining() { echo $((BUDGET - ($(date +%s) - START_TIME))); }

# step timeout: min(wanted, what is left of the budget)
step_timeout() {
	local want="$1" left
	left="$(remaining)"
	((left < want)) && want="$left"
	((want < 5)) && want=5
	echo "$want"
}

# Run "$@" under a timeout; sets STEP_RC and STEP_SECS, never fails.
run_step() {
	local limit="$1"
	shift
	local t0
	t0="$(date +%s)"
	STEP_RC=0
	timeout --kill-after=30 "$limit" "$@" </dev/null || STEP_RC=$?
	STEP_SECS=$(($(date +%s) - t0))
	if ((STEP_RC == 124 || STEP_RC == 137)); then
		echo "!!!! timed out after ${limit}s: $*"
	fi
}

# A Makefile variable's value (REGRESS, ISOLATION...).
make_var() {
	# shellcheck disable=SC2016  # $(VAR) is for make
	printf '_bo_print_var:\n\t@echo $(%s)\n' "$1" |
		make -s --no-print-directory -C "$ROOT" -f Makefile -f - _bo_print_var PG_CONFIG="$PGC" 2>/dev/null || true
}

show_file() { # FILE [LINES]
	local f="$1" n="${2:-300}"
	[[ -s "$f" ]] || return 0
	echo "---- $f (first $n lines of $(wc -l <"$f")) ----"
	head -n "$n" "$f"
	echo "---- end of $f ----"
}

# Make sure the cluster is up after a step (a crash test may have left it
# down); restart it, or as a last resort re-create it.
ensure_cluster() {
	bo_cluster_is_running "$CLUSTER" && return 0
	echo "!!!! the cluster is not running after the last step; restarting it"
	if bo_cluster_restart "$CLUSTER"; then
		return 0
	fi
	echo "!!!! restart failed; re-creating the cluster"
	bo_cluster_start "$CLUSTER" "$PORT"
}

stop_cluster() {
	if ((CLUSTER_STARTED)); then
		CLUSTER_STARTED=0
		bo_cluster_stop "$CLUSTER" fast 2>&1 || bo_cluster_stop "$CLUSTER" immediate 2>&1 || true
	fi
}

summary() {
	stop_cluster
	hr "summary"
	local i
	for i in "${!R_NAME[@]}"; do
		printf '  %-5s %-40s %6ss\n' "$(tr '[:lower:]' '[:upper:]' <<<"${R_STATUS[$i]}")" "${R_NAME[$i]}" "${R_SECS[$i]}"
	done
	echo "  total time: $(($(date +%s) - START_TIME))s"
	if [[ -n "${BATCH_OPS_CLUSTER_LOG:-}" && -r "${BATCH_OPS_CLUSTER_LOG:-}" ]]; then
		echo "  server log: $BATCH_OPS_CLUSTER_LOG"
		local crashes
		crashes="$(grep -cE 'terminated by signal|was terminated by exception|PANIC' "$BATCH_OPS_CLUSTER_LOG" 2>/dev/null || true)"
		if [[ "${crashes:-0}" != 0 ]]; then
			echo "  server log has $crashes crash/PANIC line(s):"
			grep -E 'terminated by signal|was terminated by exception|PANIC' "$BATCH_OPS_CLUSTER_LOG" | head -n 20 | sed 's/^/    /'
		fi
		if ((FAILED > 0)); then
			echo "---- last 80 lines of the server log ----"
			tail -n 80 "$BATCH_OPS_CLUSTER_LOG" | sed 's/^/    /'
		fi
	fi
	((SKIPPED > 0)) && echo "skipped: $SKIPPED"
	echo "$PASSED passed, $FAILED failed"
}

finish() {
	local rc=$?
	trap - EXIT INT TERM
	stop_cluster
	exit "$rc"
}
trap finish EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- set-up
hr "dependencies"
if ! bo_ensure_deps; then
	record deps fail 0
	summary
	exit 1
fi

hr "build and install"
t0="$(date +%s)"
if [[ "${BATCH_OPS_NO_BUILD:-0}" == 1 ]]; then
	echo "BATCH_OPS_NO_BUILD=1: using the installed batch_ops"
elif ! bo_build_install; then
	record build fail $(($(date +%s) - t0))
	summary
	exit 1
fi

hr "cluster"
mkdir -p "$RUN_DIR"
if ! bo_cluster_start "$CLUSTER" "$PORT"; then
	record cluster fail 0
	summary
	exit 1
fi
CLUSTER_STARTED=1
bo_psql -Atc "select 'server ' || current_setting('server_version') || ', preload: ' || current_setting('shared_preload_libraries') || ', run by ' || (select pg_catalog.pg_get_userbyid(datdba) from pg_database where datname = 'postgres')" || true
echo "server process owner: $(ps -o user= -p "$(head -n 1 "$BATCH_OPS_CLUSTER_DIR/postmaster.pid")" 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- 1. regress
if wanted regress; then
	hr "regress (make installcheck, pg_regress)"
	tests="${BATCH_OPS_REGRESS:-$(make_var REGRESS)}"
	if [[ -z "${tests// /}" ]]; then
		echo "no REGRESS tests in the Makefile"
		record regress skip 0
	else
		rm -rf "$ROOT/results" "$ROOT/regression.diffs" "$ROOT/regression.out"
		run_step "$(step_timeout 1800)" make -C "$ROOT" installcheck PG_CONFIG="$PGC" REGRESS="$tests" ISOLATION= TAP_TESTS=
		if ((STEP_RC == 0)); then
			record regress pass "$STEP_SECS"
		else
			show_file "$ROOT/regression.diffs" 300
			[[ -s "$ROOT/regression.diffs" ]] || show_file "$ROOT/regression.out" 100
			record regress fail "$STEP_SECS"
		fi
		ensure_cluster || true
	fi
fi

# ---------------------------------------------------------------- 2. isolation
if wanted isolation; then
	hr "isolation (make installcheck, pg_isolation_regress)"
	tests="${BATCH_OPS_ISOLATION:-$(make_var ISOLATION)}"
	if [[ -z "${tests// /}" ]]; then
		echo "no ISOLATION specs in the Makefile"
		record isolation skip 0
	else
		rm -rf "$ROOT/output_iso"
		run_step "$(step_timeout 900)" make -C "$ROOT" installcheck PG_CONFIG="$PGC" REGRESS= ISOLATION="$tests" TAP_TESTS=
		if ((STEP_RC == 0)); then
			record isolation pass "$STEP_SECS"
		else
			show_file "$ROOT/output_iso/regression.diffs" 300
			if [[ ! -s "$ROOT/output_iso/regression.diffs" ]]; then
				# e.g. a spec without an expected file: show what it produced
				for f in "$ROOT"/output_iso/results/*.out; do
					[[ -e "$f" ]] && show_file "$f" 60
				done
			fi
			record isolation fail "$STEP_SECS"
		fi
		ensure_cluster || true
	fi
fi

# ---------------------------------------------------------------- 3. prove
if wanted prove; then
	hr "prove (make prove, pgTAP)"
	if [[ -z "$(find "$ROOT/test/pgtap" -name '*.sql' -type f 2>/dev/null | head -n 1)" ]]; then
		echo "no pgTAP files in test/pgtap"
		record prove skip 0
	else
		run_step "$(step_timeout 1200)" make -C "$ROOT" prove PG_CONFIG="$PGC"
		if ((STEP_RC == 0)); then
			record prove pass "$STEP_SECS"
		else
			record prove fail "$STEP_SECS"
		fi
		ensure_cluster || true
	fi
fi

# ---------------------------------------------------------------- 4. tap
# Cluster-level TAP tests (test/t/*.pl) on PostgreSQL::Test::Cluster: each
# file starts its own throwaway clusters.  They run as the cluster owner
# from a copy of test/ that it can read and write.
if wanted tap; then
	hr "tap (prove, test/t/*.pl)"
	tapdir="$RUN_DIR/tap"
	rm -rf "$tapdir"
	mkdir -p "$tapdir"
	cp -r "$ROOT/test" "$tapdir/test"
	[[ "$(bo_pg_owner)" == "$(id -un)" ]] || chown -R "$(bo_pg_owner)" "$tapdir"
	chmod 755 "$RUN_DIR"
	pgxs_perl="$(dirname "$("$PGC" --pgxs)")/../../src/test/perl"
	taps="${BATCH_OPS_TAP:-$(cd "$tapdir" && ls test/t/*.pl 2>/dev/null | tr '\n' ' ')}"
	if [[ -z "${taps// /}" ]]; then
		echo "no TAP tests in test/t"
		record tap skip 0
	else
		as_pg=()
		bo_is_root && as_pg=(runuser -u "$(bo_pg_owner)" --)
		run_step "$(step_timeout 2400)" "${as_pg[@]}" env -C "$tapdir" \
			PATH="$BO_PG_BINDIR:$PATH" TESTDIR="$tapdir" BATCH_OPS_ROOT="$tapdir" \
			PG_REGRESS="$pgxs_perl/../regress/pg_regress" prove -I "$pgxs_perl" -I "$tapdir/test/t" \
			${BATCH_OPS_TAP_VERBOSE:+-v} $taps
		if ((STEP_RC == 0)); then
			record tap pass "$STEP_SECS"
		else
			for f in "$tapdir"/tmp_check/log/regress_log_*; do
				[[ -e "$f" ]] && show_file "$f" 150
			done
			record tap fail "$STEP_SECS"
		fi
	fi
fi

# ---------------------------------------------------------------- 5. scripts
shopt -s nullglob
for script in "$ROOT"/test/scripts/*.sh; do
	name="$(basename "$script")"
	wanted "$name" || continue
	if [[ ! -x "$script" ]]; then
		echo "note: $name is not executable; not run (chmod +x it if it is a test)"
		continue
	fi
	hr "script $name"
	left="$(remaining)"
	if ((left < 30)); then
		echo "!!!! time budget (${BUDGET}s) used up; not running $name"
		record "$name" fail 0 "not run: time budget"
		continue
	fi
	run_step "$(step_timeout "$SCRIPT_TIMEOUT")" env BATCH_OPS_SCRIPT_NAME="$name" "$script"
	case "$STEP_RC" in
	0) record "$name" pass "$STEP_SECS" ;;
	77) record "$name" skip "$STEP_SECS" ;;
	*) record "$name" fail "$STEP_SECS" "exit $STEP_RC" ;;
	esac
	ensure_cluster || echo "!!!! could not bring the cluster back"
done
shopt -u nullglob

summary
((FAILED == 0))
