# Sourced by the benchmark scripts of test/bench that run on a server of
# their own (idempotency.sh, jobs.sh, action_batches.sh, outbound.sh):
# before sourcing, set NAME (for messages and directories) and PORT (and
# BENCH_CONF: postgresql.conf lines for the throwaway cluster, if any);
# this sets here, root, resdir, work, die, psql_, mode_desc and the
# helpers check_positive, now_ms, div and median, and starts a throwaway
# cluster in .test-run/bench-NAME unless BATCH_OPS_BENCH_EXISTING=1 with
# PGHOST and PGPORT names a server to use.  The cluster and the scratch
# directory go at exit.
# shellcheck shell=bash

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNDIR=$root/.test-run/bench-$NAME
resdir=$here/results
mkdir -p "$resdir"
work=$(mktemp -d "${TMPDIR:-/tmp}/bo-bench-$NAME.XXXXXX")

die() { echo "bench-$NAME: $*" >&2; exit 1; }

cluster_started=
cleanup() {
	local rc=$?
	if [[ -n $cluster_started ]]; then
		bo_cluster_stop "$RUNDIR" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

# the server to measure on: as given, or a throwaway cluster
bench_server_start() {
	if [[ ${BATCH_OPS_BENCH_EXISTING:-0} == 1 && -n ${PGHOST:-} && -n ${PGPORT:-} ]]; then
		mode_desc="existing server (PGHOST=$PGHOST PGPORT=$PGPORT)"
	else
		# shellcheck source=/dev/null
		source "$root/scripts/lib.sh"
		bo_ensure_deps
		[[ ${BENCH_NO_BUILD:-0} == 1 ]] || bo_build_install
		cluster_started=1
		if [[ -n ${BENCH_CONF:-} ]]; then
			# settings of this benchmark's cluster (postgresql.conf lines)
			printf '%s\n' "$BENCH_CONF" >"$work/bench.conf"
			chmod a+r "$work" "$work/bench.conf"
			BATCH_OPS_FSYNC=on bo_cluster_start "$RUNDIR" "$PORT" "$work/bench.conf"
		else
			BATCH_OPS_FSYNC=on bo_cluster_start "$RUNDIR" "$PORT"
		fi
		mode_desc="throwaway cluster (.test-run/bench-$NAME, port $PORT)"
	fi
}

psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# die unless each variable named holds a positive integer
check_positive() {
	local v
	for v in "$@"; do
		[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
	done
}

# for the reports: the time in ms; a / b with 1 decimal (or $3 decimals),
# nan when b is 0; the median of the numbers on stdin, one a line
now_ms() { date +%s%3N; }
div() { awk -v a="$1" -v b="$2" -v d="${3:-1}" 'BEGIN { if (b == 0) print "nan"; else printf "%.*f", d, a / b }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
