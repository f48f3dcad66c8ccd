#!/usr/bin/env bash
#
# batch_ops — the CI driver: run every test, print one summary.
#
#   sudo scripts/test.sh            (or as a normal user with sudo rights)
#
# Steps: install missing packages (scripts/lib.sh bo_ensure_deps), build and
# install the test build of the extension (make TEST_MODULES=1: the
# test-only job kind and SQL functions of test/kinds and test/modules
# linked in), then run the checks, carrying on after failures.  Each make
# target stands up its own throwaway clusters:
#
#   0. symbols    the library exports only its entry points
#      layers     no include or call cycle between the files of src/
#   1. regress    make installcheck, pg_regress part   (sql/, expected/)
#   2. isolation  make installcheck, isolation part    (test/isolation)
#   3. pgtap      make pgtap, pgTAP under pg_regress   (test/pgtap)
#   4. tap        make prove_installcheck, TAP tests   (test/t/*.pl), the
#                 Citus ones (11x_citus_*) on Citus built by scripts/citus.sh
#
# The make targets run as postgres (initdb refuses root, and the expected
# outputs name the bootstrap superuser "postgres"): started by anyone else,
# the script runs them as postgres (runuser, or sudo when not root) in a
# copy of the tree that postgres owns (.test-run/src).  The last line is
# "N passed, N failed"; the exit status is non-zero when anything failed.
#
# Knobs:
#   BATCH_OPS_PG_BINDIR       PostgreSQL 15 programs (/usr/lib/postgresql/15/bin)
#   BATCH_OPS_TEST_ONLY       space-separated suite names to run, e.g.
#                             "regress pgtap tap" ("prove" is
#                             accepted for pgtap)
#   BATCH_OPS_REGRESS         regress tests instead of the Makefile's REGRESS
#   BATCH_OPS_ISOLATION       isolation specs instead of ISOLATION
#   BATCH_OPS_TAP             TAP files (test/t/NNN_x.pl ...), PROVE_TESTS
#   BATCH_OPS_TAP_VERBOSE     1 = prove -v
#   BATCH_OPS_NO_BUILD        1 = do not build and install, use what is installed
#   BATCH_OPS_TEST_BUDGET     seconds for the whole run (4800)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

RUN_DIR="$ROOT/.test-run"
BUDGET="${BATCH_OPS_TEST_BUDGET:-4800}"
ONLY="${BATCH_OPS_TEST_ONLY:-}"
START_TIME="$(date +%s)"
PGC="$(bo_pg_config)"
export PG_CONFIG="$PGC"

declare -a R_NAME=() R_STATUS=() R_SECS=()
PASSED=0
FAILED=0
SKIPPED=0
CRASHES=""

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

summary() {
	hr "summary"
	local i
	for i in "${!R_NAME[@]}"; do
		printf '  %-5s %-40s %6ss\n' "$(tr '[:lower:]' '[:upper:]' <<<"${R_STATUS[$i]}")" "${R_NAME[$i]}" "${R_SECS[$i]}"
	done
	echo "  total time: $(($(date +%s) - START_TIME))s"
	if [[ -n "$CRASHES" ]]; then
		# the crash tests kill servers on purpose: for reading, not a verdict
		echo "  crash/PANIC lines in the make targets' server logs:"
		printf '%s' "$CRASHES" | head -n 40 | sed 's/^/    /'
	fi
	((SKIPPED > 0)) && echo "skipped: $SKIPPED"
	echo "$PASSED passed, $FAILED failed"
}

finish() {
	local rc=$?
	trap - EXIT INT TERM
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
elif ! bo_build_install TEST_MODULES=1; then
	record build fail $(($(date +%s) - t0))
	summary
	exit 1
fi

# ---------------------------------------------------------------- Citus
# The Citus TAP tests (test/t/11x_citus_*.pl) need citus.so in this
# server: built once per machine from the vendored source and cached
# (scripts/citus.sh, 3-4 minutes the first time).  A failed build is a
# failure, not a skip: those tests would fail anyway.
if wanted tap || wanted prove_installcheck; then
	hr "citus (scripts/citus.sh)"
	t0="$(date +%s)"
	# shellcheck source=scripts/citus.sh
	source "$ROOT/scripts/citus.sh"
	if bo_ensure_citus; then
		record citus pass $(($(date +%s) - t0))
	else
		record citus fail $(($(date +%s) - t0))
	fi
fi

# ---------------------------------------------------------------- 0. symbols
# The library exports its entry points only (hidden visibility).
if wanted symbols; then
	hr "symbols (test/tools/exported_symbols.sh)"
	run_step 60 "$ROOT/test/tools/exported_symbols.sh" "$ROOT/batch_ops.so"
	case "$STEP_RC" in
	0) record symbols pass "$STEP_SECS" ;;
	77) record symbols skip "$STEP_SECS" ;;
	*) record symbols fail "$STEP_SECS" ;;
	esac
fi

# No file of src/ calls back into a file that calls it (the layers of
# README "How it works").
if wanted layers; then
	hr "layers (test/tools/include_graph.py)"
	run_step 60 python3 "$ROOT/test/tools/include_graph.py" --src "$ROOT/src"
	if ((STEP_RC == 0)); then record layers pass "$STEP_SECS"; else record layers fail "$STEP_SECS"; fi
fi

# ---------------------------------------------------------------- where make runs
# The make targets write results, diffs and their clusters into the tree
# they run in, and run as postgres: initdb refuses root, and the expected
# outputs name the bootstrap superuser "postgres".  Started as postgres,
# they run in the tree itself; otherwise as postgres (runuser when root,
# sudo otherwise) in a copy of the tree that postgres owns, built objects
# included, so that make finds nothing to do.
WORK="$ROOT"
as_owner=()
if [[ "$(id -un)" != postgres ]]; then
	if bo_is_root; then
		as_owner=(runuser -u postgres --)
	else
		as_owner=(sudo -u postgres --)
	fi
	WORK="$RUN_DIR/src"
	mkdir -p "$RUN_DIR"
	chmod 755 "$RUN_DIR"
	if ! "${as_owner[@]}" test -x "$RUN_DIR"; then
		# a parent directory is closed to postgres
		WORK="$(mktemp -d /tmp/batch_ops-test.XXXXXX)/src"
		chmod 755 "$(dirname "$WORK")"
	fi
	if ! { bo_as_root rm -rf "$WORK" && mkdir -p "$WORK" &&
		tar -C "$ROOT" --exclude=./.git --exclude=./.test-run --exclude=./.demo \
			--exclude='./tmp_check*' --exclude=./results --exclude='./output_*' -cf - . |
		tar -C "$WORK" -xpf - && bo_as_root chown -R postgres: "$WORK"; }; then
		record setup fail 0 "copy of the tree for postgres"
		summary
		exit 1
	fi
	echo "make targets run as postgres in $WORK"
fi
# The make targets stand up their own clusters; nothing of the caller's
# connection settings may leak into them.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGPASSWORD PGOPTIONS 2>/dev/null || true

# run_make TIMEOUT TARGET VAR=VALUE... — make in $WORK as the cluster owner.
run_make() {
	local limit="$1"
	shift
	run_step "$limit" "${as_owner[@]}" env PATH="$BO_PG_BINDIR:$PATH" \
		make -C "$WORK" --no-print-directory PG_CONFIG="$PGC" "$@"
}

# Crash lines in the server logs of a step's clusters (they are wiped by
# the next run of the same target, so look now).
check_crashes() { # STEP LOG...
	local step="$1" f lines
	shift
	for f in "$@"; do
		[[ -r "$f" ]] || continue
		lines="$(grep -E 'terminated by signal|was terminated by exception|PANIC' "$f" 2>/dev/null | head -n 5 || true)"
		[[ -n "$lines" ]] && CRASHES+="$step: $f"$'\n'"$lines"$'\n'
	done
	return 0
}

# ---------------------------------------------------------------- 1. regress
if wanted regress; then
	hr "regress (make installcheck, pg_regress)"
	tests="${BATCH_OPS_REGRESS:-$(make_var REGRESS)}"
	if [[ -z "${tests// /}" ]]; then
		echo "no REGRESS tests in the Makefile"
		record regress skip 0
	else
		run_make "$(step_timeout 1800)" installcheck REGRESS="$tests" ISOLATION= TAP_TESTS=
		check_crashes regress "$WORK/tmp_check/log/postmaster.log"
		if ((STEP_RC == 0)); then
			record regress pass "$STEP_SECS"
		else
			show_file "$WORK/regression.diffs" 300
			[[ -s "$WORK/regression.diffs" ]] || show_file "$WORK/tmp_check/log/postmaster.log" 100
			record regress fail "$STEP_SECS"
		fi
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
		run_make "$(step_timeout 900)" installcheck REGRESS= ISOLATION="$tests" TAP_TESTS=
		check_crashes isolation "$WORK/tmp_check_iso/log/postmaster.log"
		if ((STEP_RC == 0)); then
			record isolation pass "$STEP_SECS"
		else
			show_file "$WORK/output_iso/regression.diffs" 300
			if [[ ! -s "$WORK/output_iso/regression.diffs" ]]; then
				# e.g. a spec without an expected file: show what it produced
				for f in "$WORK"/output_iso/results/*.out; do
					[[ -e "$f" ]] && show_file "$f" 60
				done
			fi
			record isolation fail "$STEP_SECS"
		fi
	fi
fi

# ---------------------------------------------------------------- 3. pgtap
if wanted pgtap || wanted prove; then
	hr "pgtap (make pgtap)"
	if [[ -z "$(make_var PGTAP_TESTS)" ]]; then
		echo "no pgTAP files in test/pgtap/sql"
		record pgtap skip 0
	else
		run_make "$(step_timeout 1200)" pgtap
		check_crashes pgtap "$WORK/tmp_check_pgtap/log/postmaster.log"
		if ((STEP_RC == 0)); then
			record pgtap pass "$STEP_SECS"
		else
			show_file "$WORK/output_pgtap/regression.diffs" 300
			record pgtap fail "$STEP_SECS"
		fi
	fi
fi

# ---------------------------------------------------------------- 4. tap
# Cluster-level TAP tests on PostgreSQL::Test::Cluster: each file starts
# its own clusters; logs in tmp_check/log.
if wanted tap || wanted prove_installcheck; then
	hr "tap (make prove_installcheck)"
	if [[ -z "$(find "$ROOT/test/t" -name '*.pl' -type f 2>/dev/null | head -n 1)" ]]; then
		echo "no TAP tests in test/t"
		record tap skip 0
	else
		run_make "$(step_timeout 2400)" prove_installcheck \
			PROVE_TESTS="${BATCH_OPS_TAP:-}" ${BATCH_OPS_TAP_VERBOSE:+PROVE_FLAGS=-v}
		check_crashes tap "$WORK"/tmp_check/log/*.log
		if ((STEP_RC == 0)); then
			record tap pass "$STEP_SECS"
		else
			for f in "$WORK"/tmp_check/log/regress_log_*; do
				# the files that failed say "not ok" or died
				grep -qE '^\[[^]]*\] not ok|Looks like|died|BAIL' "$f" 2>/dev/null && show_file "$f" 150
			done
			record tap fail "$STEP_SECS"
		fi
	fi
fi


summary
((FAILED == 0))
