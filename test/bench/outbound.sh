#!/usr/bin/env bash
#
# batch_ops — outbound throughput on kept connections (issue #10): an
# outbound job of N GET requests to nginx on loopback (a tiny JSON reply,
# keep-alive), against `curl --parallel` fetching the same N URLs with the
# same parallelism.  Both reuse connections; the job also stores one row
# per target (committed every 500 results).
#
#   job    submit_outbound of N targets spread over 3 loopback "devices",
#          options.concurrency C, host_concurrency C; the time is the job's
#          finished_at - started_at (the worker's start is not counted).
#   curl   curl --parallel --parallel-max C over the same URLs, output
#          discarded.
#
# Knobs: BENCH_OUTBOUND_N (5000), BENCH_OUTBOUND_C (32), BENCH_NO_BUILD.
# Info only: prints requests per second of both and their ratio.
# Exit status: 0 when the benchmark ran, whatever the figures.

set -euo pipefail

N=${BENCH_OUTBOUND_N:-5000}
C=${BENCH_OUTBOUND_C:-32}
NAME=outbound
PORT=5479

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNDIR=$root/.test-run/bench-$NAME
work=$(mktemp -d "${TMPDIR:-/tmp}/bo-bench-$NAME.XXXXXX")
chmod 755 "$work"
die() { echo "bench-$NAME: $*" >&2; exit 1; }
for v in N C; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done

# shellcheck source=/dev/null
source "$root/scripts/lib.sh"
bo_ensure_deps
[[ ${BENCH_NO_BUILD:-0} == 1 ]] || bo_build_install

# nginx on a free port, three loopback addresses
NGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
daemon on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  server {
    listen 127.0.0.1:$NGPORT; listen 127.0.0.2:$NGPORT; listen 127.0.0.3:$NGPORT;
    location / { default_type application/json; return 200 '{"ok": true}'; }
  }
}
CONF
nginx -e "$work/error.log" -c "$work/nginx.conf" -p "$work"

cleanup() {
	local rc=$?
	[[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	bo_cluster_stop "$RUNDIR" >/dev/null 2>&1 || true
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

cat >"$work/extra.conf" <<CONF
batch_ops.outbound_networks = '127.0.0.0/8'
batch_ops.outbound_concurrency = $((C * 2))
CONF
chmod 644 "$work/extra.conf"
bo_cluster_start "$RUNDIR" "$PORT" "$work/extra.conf"
psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
psql_ -c 'CREATE EXTENSION IF NOT EXISTS batch_ops'

spec=$(python3 - "$N" "$C" "$NGPORT" <<'PY'
import json, sys
n, c, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(json.dumps({"driver": "http",
  "devices": [{"host": "127.0.0.%d" % (i % 3 + 1)} for i in range(n)],
  "connection_args": {"scheme": "http", "port": port},
  "request": {"path": "/x?i={{index}}"},
  "options": {"concurrency": c, "host_concurrency": c}}))
PY
)
id=$(psql_ -v spec="$spec" <<'SQL'
SELECT batch_ops.submit_outbound(:'spec');
SQL
)
psql_ -c "SELECT batch_ops.wait_job($id, '10 min')" >/dev/null
job_s=$(psql_ -c "SELECT extract(epoch FROM finished_at - started_at) FROM batch_ops.job_queue WHERE id = $id")
ok=$(psql_ -c "SELECT batch_ops.job($id)->'results'->'summary'->>'successful'")
[[ $ok == "$N" ]] || die "job: $ok of $N succeeded"

for i in $(seq 0 $((N - 1))); do
	echo "url = \"http://127.0.0.$((i % 3 + 1)):$NGPORT/x?i=$i\""
	echo "output = /dev/null"
done >"$work/curl.cfg"
t0=$(date +%s.%N)
curl -s --no-progress-meter --parallel --parallel-max "$C" -K "$work/curl.cfg"
t1=$(date +%s.%N)
curl_s=$(echo "$t1 - $t0" | bc -l)

printf 'outbound: %d requests, concurrency %d\n' "$N" "$C"
printf '  job   %8.3f s  %8.0f req/s (results stored)\n' "$job_s" "$(echo "$N / $job_s" | bc -l)"
printf '  curl  %8.3f s  %8.0f req/s (--parallel)\n' "$curl_s" "$(echo "$N / $curl_s" | bc -l)"
printf '  job/curl time ratio %.2f\n' "$(echo "$job_s / $curl_s" | bc -l)"
