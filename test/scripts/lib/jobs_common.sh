# shellcheck shell=bash
#
# Shared by the job-lifecycle tests test/scripts/jobs_*.sh (not a test
# itself: scripts/test.sh only runs test/scripts/*.sh).
#
#   source "$here/lib/jobs_common.sh"
#   jt_start NAME PORT        throwaway cluster in /tmp/batch_ops-NAME-PORT,
#                             default test config (batch_ops and pg_cron
#                             preloaded), CREATE EXTENSION batch_ops;
#                             stopped and removed on exit (trap)
#   jt_sql [psql args] SQL    one statement (or several), unaligned, tuples
#                             only, ON_ERROR_STOP, under a timeout
#   jt_is DESC GOT WANT       one check
#   jt_true DESC SQL          the query must return t
#   jt_wait DESC SECS SQL     poll (every 0.1 s, at most SECS) until SQL
#                             returns t; a FAIL on timeout, returns 1
#   jt_wait_ok DESC SECS SQL  the same, and an "ok" when it succeeds
#   jt_bg CMD...              run CMD in the background; killed (by pid)
#                             at exit
#   jt_done                   summary; exit 0 when every check passed
#
# Every wait is bounded; every psql runs under timeout(1), so that a test
# never hangs even if the server does.  Keep the cluster for a post-mortem
# with BATCH_OPS_KEEP_CLUSTER=1.

set -euo pipefail

JT_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "${BATCH_OPS_LIB:-$JT_LIB_DIR/../../../scripts/lib.sh}"

export BATCH_OPS_QUIET=1
JT_T0="$(date +%s)"
JT_FAILS=0
JT_CHECKS=0
JT_NAME=""
JT_BASE=""
JT_DIR=""
JT_STARTED=0
JT_BG_PIDS=()
# longest a single psql may take (wait_job calls use shorter timeouts)
JT_SQL_TIMEOUT="${JT_SQL_TIMEOUT:-150}"

jt_elapsed() { echo $(($(date +%s) - JT_T0)); }

jt_log() { printf '[%3ss] %s\n' "$(jt_elapsed)" "$*"; }

jt_ok() {
	JT_CHECKS=$((JT_CHECKS + 1))
	printf 'ok   - %s\n' "$1"
}

# jt_fail DESC [DETAIL...]
jt_fail() {
	JT_CHECKS=$((JT_CHECKS + 1))
	JT_FAILS=$((JT_FAILS + 1))
	printf 'FAIL - %s\n' "$1"
	shift
	local l
	for l in "$@"; do
		printf '         %s\n' "$l"
	done
}

jt_is() { # DESC GOT WANT
	if [[ "$2" == "$3" ]]; then
		jt_ok "$1"
	else
		jt_fail "$1" "got:  $(head -c 2000 <<<"$2")" "want: $3"
	fi
}

jt_sql() {
	timeout -k 5 "$JT_SQL_TIMEOUT" "$BO_PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# jt_q [psql args] SQL — jt_sql -c SQL, but never fails the script: prints
# the error instead (for values that are then checked).
jt_q() {
	local argv=("$@")
	local sql="${argv[-1]}" args=("${argv[@]:0:$#-1}")
	jt_sql "${args[@]}" -c "$sql" 2>&1 || true
}

jt_true() { # [psql args] DESC SQL
	local argv=("$@")
	local desc="${argv[-2]}" sql="${argv[-1]}" args=("${argv[@]:0:$#-2}")
	jt_is "$desc" "$(jt_q "${args[@]}" "$sql")" t
}

# jt_wait [psql args] DESC SECS SQL — returns 0 when SQL returned t in time.
jt_wait() {
	local argv=("$@")
	local desc="${argv[-3]}" secs="${argv[-2]}" sql="${argv[-1]}" args=("${argv[@]:0:$#-3}")
	local deadline got=""
	deadline=$(($(date +%s%N) / 1000000 + secs * 1000))
	while (($(date +%s%N) / 1000000 < deadline)); do
		got="$(jt_sql "${args[@]}" -c "$sql" 2>&1 || true)"
		[[ "$got" == t ]] && return 0
		sleep 0.1
	done
	jt_fail "$desc (not within ${secs}s)" "last answer: $(head -c 1000 <<<"$got")"
	return 1
}

# jt_wait_ok: jt_wait that also counts as a passed check when it succeeds.
jt_wait_ok() {
	jt_wait "$@" || return 1
	local argv=("$@")
	jt_ok "${argv[-3]}"
}

jt_bg() {
	"$@" &
	JT_BG_PIDS+=($!)
}

_jt_cleanup() {
	local rc=$? p
	trap - EXIT
	for p in "${JT_BG_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${JT_BG_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if ((rc != 0 || JT_FAILS > 0)) && [[ -n "${BATCH_OPS_CLUSTER_LOG:-}" && -r "${BATCH_OPS_CLUSTER_LOG:-}" ]]; then
		echo "---- server log of $JT_NAME: errors and job messages (last 40) ----"
		grep -E 'ERROR|FATAL|PANIC|TRAP|terminated|exited with|batch_ops' "$BATCH_OPS_CLUSTER_LOG" |
			grep -v 'STATEMENT:' | tail -n 40 | sed 's/^/    /'
		echo "---- end of server log ($BATCH_OPS_CLUSTER_LOG) ----"
	fi
	if ((JT_STARTED)); then
		bo_cluster_stop "$JT_DIR" fast >/dev/null 2>&1 ||
			bo_cluster_stop "$JT_DIR" immediate >/dev/null 2>&1 || true
	fi
	if [[ -n "$JT_BASE" && "${BATCH_OPS_KEEP_CLUSTER:-0}" != 1 ]]; then
		rm -rf "$JT_BASE"
	elif [[ -n "$JT_BASE" ]]; then
		echo "cluster kept in $JT_DIR (BATCH_OPS_KEEP_CLUSTER=1)"
	fi
	exit "$rc"
}

# jt_start NAME PORT
jt_start() {
	JT_NAME="$1"
	local port="$2"
	JT_BASE="/tmp/batch_ops-$JT_NAME-$port"
	JT_DIR="$JT_BASE/pgdata"
	trap _jt_cleanup EXIT
	trap 'echo "interrupted"; exit 130' INT TERM
	mkdir -p "$JT_BASE"
	chmod 755 "$JT_BASE"
	jt_log "starting a throwaway cluster in $JT_DIR on port $port"
	if ! BATCH_OPS_QUIET=1 bo_cluster_start "$JT_DIR" "$port"; then
		echo "FAIL - could not start the cluster on port $port"
		exit 1
	fi
	JT_STARTED=1
	jt_sql -c "CREATE EXTENSION batch_ops" >/dev/null
}

# The cluster's postmaster pid.
jt_postmaster_pid() {
	head -n 1 "$BATCH_OPS_CLUSTER_DIR/postmaster.pid" 2>/dev/null || true
}

jt_done() {
	local secs
	secs="$(jt_elapsed)"
	if ((JT_FAILS > 0)); then
		echo "$JT_NAME: $JT_FAILS of $JT_CHECKS checks FAILED (${secs}s)"
		exit 1
	fi
	echo "$JT_NAME: all $JT_CHECKS checks passed (${secs}s)"
	exit 0
}
