#!/usr/bin/env bash
#
# Rate limits need batch_ops in shared_preload_libraries (the token buckets
# are in shared memory).  On a server without the preload:
#   - the batch functions and idempotency keys work (rate_limit = 0, the
#     default, needs nothing);
#   - a non-zero batch_ops.rate_limit is a clear error, never silently
#     ignored, and so is rate_limit_status().
#
# Starts its own throwaway cluster (port $BATCH_OPS_NOPRELOAD_PORT, 5486 by
# default) since the shared test cluster has the preload.  Exit 0 = pass.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "${BATCH_OPS_LIB:-$here/../../scripts/lib.sh}"

port="${BATCH_OPS_NOPRELOAD_PORT:-5486}"
dir="/tmp/batch_ops-nopreload-$port"
conf="$(mktemp /tmp/batch_ops-nopreload-conf.XXXXXX)"
out="$(mktemp /tmp/batch_ops-nopreload-out.XXXXXX)"
started=0

cleanup() {
	local rc=$?
	if ((started)); then
		bo_cluster_stop "$dir" fast >/dev/null 2>&1 || bo_cluster_stop "$dir" immediate >/dev/null 2>&1 || true
	fi
	rm -rf "$dir" "$conf" "$out"
	exit "$rc"
}
trap cleanup EXIT

chmod 644 "$conf"
echo "shared_preload_libraries = ''" >"$conf"
BATCH_OPS_QUIET=1 bo_cluster_start "$dir" "$port" "$conf" >/dev/null
started=1

"$BO_PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=0 -v VERBOSITY=default >"$out" 2>&1 <<'SQL'
\set SHOW_CONTEXT never
SHOW shared_preload_libraries;
CREATE EXTENSION batch_ops;
CREATE TABLE t (id serial PRIMARY KEY, v int);
-- no limit: everything works without the preload
SELECT batch_ops.batch_create('t', '[{"v": 1}]');
SELECT batch_ops.batch_create('t', '[{"v": 2}]', idempotency_key => 'k');
SELECT batch_ops.batch_create('t', '[{"v": 2}]', idempotency_key => 'k');
SELECT count(*) FROM t;
-- a limit cannot be enforced: an error, and nothing is written
SET batch_ops.rate_limit = 10;
SELECT batch_ops.batch_create('t', '[{"v": 3}]');
\echo :SQLSTATE
SELECT * FROM batch_ops.rate_limit_status();
\echo :SQLSTATE
SELECT count(*) FROM t;
RESET batch_ops.rate_limit;
SELECT batch_ops.batch_create('t', '[{"v": 4}]');
SQL

expected='
{"data": [{"v": 1, "id": 1}], "errors": []}
{"data": [{"v": 2, "id": 2}], "errors": []}
{"data": [{"v": 2, "id": 2}], "errors": []}
2
ERROR:  batch_ops must be loaded via shared_preload_libraries to enforce rate limits
HINT:  Add batch_ops to shared_preload_libraries and restart the server, or set batch_ops.rate_limit to 0.
55000
ERROR:  batch_ops must be loaded via shared_preload_libraries to enforce rate limits
HINT:  Add batch_ops to shared_preload_libraries and restart the server, or set batch_ops.rate_limit to 0.
55000
2
{"data": [{"v": 4, "id": 3}], "errors": []}'

if [[ "$(cat "$out")" == "${expected#$'\n'}" || "$(cat "$out")" == "$expected" ]]; then
	echo "ratelimit_nopreload: ok"
	exit 0
fi
echo "ratelimit_nopreload: unexpected output" >&2
diff <(echo "$expected") "$out" >&2 || true
exit 1
