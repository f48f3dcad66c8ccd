#!/usr/bin/env bash
#
# batch_ops — benchmark of outbound batches (issue #10, "Speed").
#
#   test/bench/outbound.sh          (make bench runs it after run.sh)
#
# The devices are one nginx (Debian nginx + libnginx-mod-http-echo) that
# this script starts on loopback, as a non-root user, with a generated
# configuration and its pid, logs and temporary files in the scratch
# directory.  It listens on two free ports below the ephemeral range:
#
#   hosts    127.0.0.1 and 127.0.1.1 ... 127.0.1.20 on port P0: "20 hosts"
#   devices  1,000 addresses 127.0.2.1 ... 127.0.5.250 on ports P1 ... Pk
#            (k = devices / 1000): one socket, and so one device, per
#            address and port — "10,000 devices" are 10,000 sockets.
#
# Linux routes all of 127/8 to lo: no configuration is needed for these
# addresses, and nothing listens beyond loopback.  Locations:
#
#   /ok    a small JSON body          /kb    a JSON body of 1 kB
#   /slow  echo_sleep 0.5 s, then a small JSON body
#   /held  as /slow, and logged with its start and end (access log), from
#          which the most concurrent requests per host are computed
#
# Measurements (each engine figure is an async job: submit_outbound, then
# the job row's finished_at; driver http, scheme http):
#
#   keep-alive    20 hosts x 1,000 GET /ok, results committed, concurrency
#                 100 (5 per host), against curl --parallel --parallel-max
#                 100 over the same URLs (a config file of url lines), in
#                 turn, BENCH_OB_ROUNDS times; the median of the ratios.
#                 Targets: >= 20,000 requests/s and >= 0.7 x curl.
#   devices       one GET /ok to each of 10,000 devices (a new connection
#                 each), concurrency 100: >= 5,000 targets/s; curl over the
#                 same URLs for information.
#   latency       2,000 devices x GET /slow (0.5 s), concurrency 200:
#                 <= 1.2 x the ideal 2,000 x 0.5 / 200 = 5 s.
#   per-host      4 hosts x 20 GET /held, host_concurrency 4: the most
#                 concurrent requests nginx saw per host == 4 exactly.
#   fairness      two equal jobs (10 hosts x 2,000 GET /ok each) submitted
#                 together: the later finishes within 1.3 x the earlier.
#   XIDs          XIDs taken during the keep-alive job (txid_current before
#                 and after): <= 1 per 500 results.
#   memory        100,000 targets of GET /kb (1 kB output): the job
#                 worker's memory, its peak RssAnon (/proc/PID/status,
#                 sampled every 50 ms while the job runs) <= 64 MB.  Why
#                 RssAnon: it is the memory the worker itself allocates
#                 (palloc'd contexts, libcurl's malloc, its stack), private
#                 to it.  VmHWM, its peak RSS (reset when the job starts),
#                 also counts every page of shared memory the worker has
#                 touched (RssShmem): shared_buffers, which the server
#                 allocates once for all its processes and which any
#                 backend writing 100 MB of results fills the same way
#                 (about 126 MB of the 128 MB here), and the file pages of
#                 its libraries (RssFile, shared by every process).  Those
#                 are the server's, not the job's; VmHWM is reported for
#                 information, with RssShmem, and half-way the worker's
#                 largest memory contexts (pg_log_backend_memory_contexts
#                 into the server log), whose sum is about RssAnon.
#   first result  a 2,000-target job: from before the submit until
#                 outbound_results() shows a row: <= 250 ms.
#   cancel        a running job of slow targets: from cancel_job() until
#                 the job's status is cancelled: <= 1 s.
#
# Without the outbound engine (no batch_ops.submit_outbound) the baselines
# still run and every engine row says "n/a (no outbound engine)".
#
# Knobs: BENCH_OB_ONLY (comma list of ka, dev, slow, held, fair, first,
# cancel, mem: the measurements to run; all by default), BENCH_OB_ROUNDS
# (3), BENCH_OB_HOSTS (20), BENCH_OB_REQS (1000 per host), BENCH_OB_DEVICES
# (10000), BENCH_OB_SLOW (2000), BENCH_OB_MEM (100000), BENCH_OB_DEV_CURL
# (1; 0: no curl over the 10,000 devices, which takes curl minutes on a
# busy machine), BENCH_OB_NGINX_WORKERS (1), BENCH_OB_NGINX_PORT (the
# first port nginx may take; a random one from 21000 by default),
# BENCH_OB_PORT (5481, the throwaway cluster), BENCH_NO_BUILD, BATCH_OPS_BENCH_EXISTING=1 with
# PGHOST/PGPORT: use that server.  batch_ops.outbound_networks must allow
# 127.0.0.0/8: the script sets it with ALTER SYSTEM (and resets it at the
# end) when it does not.
# Exit status: 0 when the benchmark ran, whatever the figures.

set -euo pipefail

ROUNDS=${BENCH_OB_ROUNDS:-3}
HOSTS=${BENCH_OB_HOSTS:-20}
REQS=${BENCH_OB_REQS:-1000}
DEVICES=${BENCH_OB_DEVICES:-10000}
SLOW=${BENCH_OB_SLOW:-2000}
MEM=${BENCH_OB_MEM:-100000}
NGINX_WORKERS=${BENCH_OB_NGINX_WORKERS:-1}
ONLY=${BENCH_OB_ONLY:-ka,dev,slow,held,fair,first,cancel,mem}
NAME=outbound
PORT=${BENCH_OB_PORT:-5481}
# Three job workers: batch_ops.max_outbound_workers (max_workers - 1)
# lets two outbound jobs run at once (fairness) and still keeps one
# worker for imports.  With the default 2, the second job would wait.
# BENCH_OB_CONF replaces these postgresql.conf lines (empty: none).
BENCH_CONF=${BENCH_OB_CONF-batch_ops.max_workers = 3}
# shellcheck source=test/bench/bench_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_server.sh"

for o in ${ONLY//,/ }; do
	case $o in ka|dev|slow|held|fair|first|cancel|mem) ;; *) die "BENCH_OB_ONLY: unknown measurement '$o'";; esac
done
check_positive ROUNDS HOSTS REQS DEVICES SLOW MEM NGINX_WORKERS
((HOSTS <= 250)) || die "BENCH_OB_HOSTS: at most 250"
((DEVICES <= 20000)) || die "BENCH_OB_DEVICES: at most 20000 (one socket each)"
((SLOW <= DEVICES)) || die "BENCH_OB_SLOW: at most BENCH_OB_DEVICES"
((HOSTS >= 10)) || die "BENCH_OB_HOSTS: at least 10 (the fairness jobs take half each)"
MEM=$((MEM / HOSTS * HOSTS))	# whole rounds over the hosts

SLOW_S=0.5			# echo_sleep of /slow and /held
SLOW_C=200			# concurrency of the latency-bound job
KA_C=100			# concurrency of the keep-alive job and of curl
DEV_C=100			# concurrency of the 10,000-device job and of its curl
HELD_HOSTS=4 HELD_REQS=20 HELD_LIMIT=4

# the server first: standalone, this also installs missing packages (nginx)
bench_server_start

# ---------------------------------------------------------------- tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
[[ -x $NGINX ]] || die "nginx is missing (apt-get install nginx libnginx-mod-http-echo)"
[[ -f $ECHO_MODULE ]] || die "$ECHO_MODULE is missing (apt-get install libnginx-mod-http-echo)"
command -v curl >/dev/null || die "curl is missing"

now_ns() { date +%s%N; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# The user nginx runs as: never root.
if [[ $(id -u) == 0 ]]; then
	id postgres >/dev/null 2>&1 || die "running as root but there is no user postgres to run nginx as"
	as_nginx() { runuser -u postgres -- "$@"; }
	nginx_user=postgres
else
	as_nginx() { "$@"; }
	nginx_user=$(id -un)
fi

# ports_in_use: every local TCP port in use on any address (v4 and v6)
ports_in_use() {
	local h
	awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		while read -r h; do echo $((16#$h)); done | sort -un
}
# free_ports N: N ports below the ephemeral range that nothing uses
free_ports() {
	local n=$1 p found=0 used
	used=" $(ports_in_use | tr '\n' ' ') "
	for ((p = ${BENCH_OB_NGINX_PORT:-$((21000 + RANDOM % 4000))}; p < 32000 && found < n; p++)); do
		[[ $used == *" $p "* ]] && continue
		echo "$p"
		found=$((found + 1))
	done
	((found == n)) || die "no $n free ports"
}

# ---------------------------------------------------------------- nginx
NPORTS=$(((DEVICES + 999) / 1000))
read -r -a ports <<<"$(free_ports $((NPORTS + 1)) | tr '\n' ' ')"
P0=${ports[0]}
dev_ports=("${ports[@]:1}")
ngx=$work/nginx
mkdir -p "$ngx/tmp"
chmod 755 "$work"
[[ $(id -u) == 0 ]] && chown -R postgres: "$ngx"

# dev_addr I (0-based): the address of device I (its port: dev_ports[I / 1000])
dev_addr() { local a=$(($1 % 1000)); echo "127.0.$((2 + a / 250)).$((1 + a % 250))"; }

kb_body=$(printf '{"data":"%s"}' "$(head -c 1010 /dev/zero | tr '\0' x)")
{
	cat <<-EOF
	daemon on;
	master_process on;
	worker_processes $NGINX_WORKERS;
	worker_rlimit_nofile $(($(ulimit -Hn) > 30000 ? 30000 : $(ulimit -Hn)));
	pid $ngx/nginx.pid;
	error_log $ngx/error.log warn;
	load_module $ECHO_MODULE;
	events { worker_connections $((DEVICES + HOSTS + 4096)); }
	http {
	    access_log off;
	    log_format held '\$msec \$request_time \$server_addr';
	    keepalive_requests 1000000;
	    keepalive_timeout 60s;
	    client_body_temp_path $ngx/tmp/body;
	    proxy_temp_path $ngx/tmp/proxy;
	    fastcgi_temp_path $ngx/tmp/fastcgi;
	    uwsgi_temp_path $ngx/tmp/uwsgi;
	    scgi_temp_path $ngx/tmp/scgi;
	    default_type application/json;
	    server {
	        listen 127.0.0.1:$P0;
	EOF
	awk -v hosts="$HOSTS" -v devices="$DEVICES" -v p0="$P0" -v ports="${dev_ports[*]}" 'BEGIN {
		split(ports, p, " ")
		for (i = 0; i < hosts; i++) printf "        listen 127.0.1.%d:%d;\n", i + 1, p0
		for (i = 0; i < devices; i++) {
			a = i % 1000
			printf "        listen 127.0.%d.%d:%d;\n", 2 + int(a / 250), 1 + a % 250, p[int(i / 1000) + 1]
		}
	}'
	cat <<-EOF
	        location = /ok { return 200 '{"ok":true}'; }
	        location = /kb { return 200 '$kb_body'; }
	        location = /slow { echo_sleep $SLOW_S; echo '{"ok":true,"slept":$SLOW_S}'; }
	        location = /held { access_log $ngx/held.log held; echo_sleep $SLOW_S; echo '{"ok":true,"slept":$SLOW_S}'; }
	        location / { return 404 '{"error":"not found"}'; }
	    }
	}
	EOF
} >"$ngx/nginx.conf"
[[ $(id -u) == 0 ]] && chown -R postgres: "$ngx"

nginx_started=
stop_nginx() {
	[[ -n $nginx_started && -s $ngx/nginx.pid ]] || return 0
	local pid
	pid=$(cat "$ngx/nginx.pid")
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "bench-$NAME: nginx (pid $pid) did not stop" >&2
}

networks_changed=
outbound_cleanup() {
	local rc=$?
	set +e # a failing step here must not skip the rest
	stop_nginx
	if [[ -n $networks_changed ]]; then
		psql_ -c "ALTER SYSTEM RESET batch_ops.outbound_networks" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	fi
	(exit $rc)
	cleanup
}
trap outbound_cleanup EXIT

echo "bench-$NAME: nginx (as $nginx_user) on 127.0.0.1 + $HOSTS hosts :$P0, $DEVICES devices on 1000 addresses x ports ${dev_ports[*]}"
# the master opens every listening socket: raise its soft limit of files
# (runuser's PAM session resets it to 1024)
(cd "$ngx" && as_nginx bash -c 'ulimit -Sn "$(ulimit -Hn)" && exec "$@"' nginx \
	"$NGINX" -p "$ngx/" -c "$ngx/nginx.conf" -e "$ngx/error.log") ||
	{ cat "$ngx/error.log" >&2 2>/dev/null; die "nginx did not start"; }
nginx_started=1
for _ in $(seq 100); do
	curl -sf -o /dev/null "http://127.0.0.1:$P0/ok" && break
	sleep 0.1
done
curl -sf -o /dev/null "http://$(dev_addr $((DEVICES - 1))):${dev_ports[-1]}/ok" ||
	die "nginx does not answer on the last device"

# ---------------------------------------------------------------- curl baselines
# curl_run CONFIG N: seconds for curl --parallel over CONFIG's N URLs (all must answer 200)
curl_run() {
	local cfg=$1 n=$2 par=$3 t0 t1 ok
	t0=$(now_ns)
	ok=$(curl -sS --no-progress-meter --parallel --parallel-max "$par" -K "$cfg" -w '%{http_code}\n' | grep -c '^200$' || true)
	t1=$(now_ns)
	[[ $ok == "$n" ]] || die "curl: $ok of $n requests answered 200"
	div $((t1 - t0)) 1000000000 3
}

ka_cfg=$work/ka.curl dev_cfg=$work/dev.curl
NKA=$((HOSTS * REQS))
awk -v hosts="$HOSTS" -v reqs="$REQS" -v p0="$P0" 'BEGIN {
	for (r = 0; r < reqs; r++)
		for (h = 0; h < hosts; h++)
			printf "url = \"http://127.0.1.%d:%d/ok\"\noutput = \"/dev/null\"\n", h + 1, p0
}' >"$ka_cfg"
awk -v devices="$DEVICES" -v ports="${dev_ports[*]}" 'BEGIN {
	split(ports, p, " ")
	for (i = 0; i < devices; i++) {
		a = i % 1000
		printf "url = \"http://127.0.%d.%d:%d/ok\"\noutput = \"/dev/null\"\n", 2 + int(a / 250), 1 + a % 250, p[int(i / 1000) + 1]
	}
}' >"$dev_cfg"

# ---------------------------------------------------------------- server
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

psql_ >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
SQL

engine=$(psql_ -c "SELECT count(DISTINCT proname) = 3 FROM pg_catalog.pg_proc p
	JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	WHERE n.nspname = 'batch_ops' AND p.proname IN ('submit_outbound', 'run_outbound', 'outbound_results')")
[[ $engine == t ]] && engine=1 || engine=

NA="n/a (no outbound engine)"

if [[ -n $engine ]]; then
	nets=$(psql_ -c "SELECT coalesce(current_setting('batch_ops.outbound_networks', true), '<none>')")
	if [[ $nets == '<none>' ]]; then
		echo "bench-$NAME: batch_ops.outbound_networks does not exist (outbound policy not built in?)"
	elif [[ ",${nets// /}," != *",127.0.0.0/8,"* ]]; then
		networks_changed=1
		psql_ -c "ALTER SYSTEM SET batch_ops.outbound_networks = '127.0.0.0/8'" -c "SELECT pg_reload_conf()" >/dev/null
		sleep 1
	fi

	psql_ -v hosts="$HOSTS" -v reqs="$REQS" -v devices="$DEVICES" -v slow="$SLOW" -v mem="$MEM" \
		-v p0="$P0" -v ports="$(IFS=,; echo "${dev_ports[*]}")" \
		-v ka_c="$KA_C" -v dev_c="$DEV_C" -v slow_c="$SLOW_C" \
		-v held_hosts="$HELD_HOSTS" -v held_reqs="$HELD_REQS" -v held_limit="$HELD_LIMIT" \
		-f "$here/outbound_setup.sql" >/dev/null
fi

# job NAME [TIMEOUT]: run the stored spec NAME as a job; prints
# "secs|status|ok|total|xids|first error|job id|run secs" (secs: from before
# the submit to finished_at; run secs: started_at to finished_at)
job() {
	psql_ -v spec="$1" -v timeout="${2:-600}" <<-'SQL'
	SELECT pg_catalog.txid_current() AS x0 \gset
	SELECT extract(epoch FROM pg_catalog.clock_timestamp()) AS t0 \gset
	SELECT batch_ops.submit_outbound(spec) AS id FROM bo_outbound.spec WHERE name = :'spec' \gset
	SELECT bo_outbound.wait_end(:id, :timeout) AS st \gset
	SELECT pg_catalog.txid_current() AS x1 \gset
	SELECT round((extract(epoch FROM j.finished_at) - :t0)::numeric, 3), j.status, r.ok, r.total, :x1 - :x0 - 1, r.err, :id,
	       round((extract(epoch FROM j.finished_at - j.started_at))::numeric, 3)
	  FROM batch_ops.job_queue j,
	       LATERAL (SELECT count(*) FILTER (WHERE success) AS ok, count(*) AS total,
	                       min(error || ': ' || left(message, 120)) FILTER (WHERE NOT success) AS err
	                  FROM batch_ops.outbound_results(:id)) r
	 WHERE j.id = :id;
	SQL
}

# job_ok NAME N LINE: the job must have completed with N successful results
job_ok() {
	local name=$1 n=$2 secs st ok total
	IFS='|' read -r secs st ok total _ <<<"$3"
	if [[ $st != completed || $ok != "$n" || $total != "$n" ]]; then
		echo "bench-$NAME: job $name: status $st, $ok of $total results successful (want $n): $3" >&2
		return 1
	fi
}

# ---------------------------------------------------------------- measurements
# Each measurement adds its report rows (row ...) as it ends.
verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }
rows=()
row() { rows+=("$(printf '| %-52s | %-34s | %-18s | %-6s |' "$@")"); }
med() { printf '%s\n' "$@" | median; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# na LABEL...: rows for a measurement the engine is needed for
na() { local m; for m in "$@"; do row "$m" "$NA" "" "n/a"; done; }

m_ka() {
	local ka_rows=() ka_run=() ka_curl=() ka_ratio=() ka_xids=() broken='' round c line out secs xids
	local label="keep-alive $HOSTS hosts x $REQS, results committed"
	for ((round = 1; round <= ROUNDS; round++)); do
		c=$(curl_run "$ka_cfg" "$NKA" "$KA_C")
		ka_curl+=("$(div "$NKA" "$c" 0)")
		line="curl $c s (${ka_curl[-1]}/s)"
		if [[ -n $engine ]]; then
			out=$(job ka)
			if job_ok ka "$NKA" "$out"; then
				IFS='|' read -r secs _ _ _ xids _ _ run <<<"$out"
				ka_rows+=("$(div "$NKA" "$secs" 0)")
				ka_run+=("$(div "$NKA" "$run" 0)")
				ka_ratio+=("$(div "$c" "$secs" 3)")
				ka_xids+=("$xids")
				line+=", batch_ops $secs s (${ka_rows[-1]}/s, ${ka_ratio[-1]} x curl, $xids XIDs; ${ka_run[-1]}/s from the job's start)"
			else
				broken=1
				line+=", batch_ops: broken"
			fi
		fi
		echo "bench-$NAME: keep-alive round $round: $line"
	done
	row "curl --parallel-max $KA_C, same $NKA URLs" "$(med "${ka_curl[@]}") req/s" "baseline" "info"
	if [[ -z $engine ]]; then
		na "$label" "keep-alive vs curl --parallel" "XIDs per 500 results"
	elif [[ -n $broken ]]; then
		row "$label" "broken (see above)" ">= 20000 req/s" FAIL
	else
		local ka_med ratio_med xid_med xper
		ka_med=$(med "${ka_rows[@]}") ratio_med=$(med "${ka_ratio[@]}") xid_med=$(med "${ka_xids[@]}")
		xper=$(div "$((xid_med * 500))" "$NKA" 2)
		row "$label" "$ka_med req/s ($(med "${ka_run[@]}") from start)" ">= 20000 req/s" "$(verdict ge "$ka_med" 20000)"
		row "keep-alive vs curl --parallel (same round)" "$ratio_med x" ">= 0.7 x" "$(verdict ge "$ratio_med" 0.7)"
		row "XIDs per 500 results (keep-alive job)" "$xper ($xid_med for $NKA)" "<= 1" "$(verdict le "$xper" 1)"
	fi
}

m_dev() {
	local c dev_curl='' out secs rate label="one request to each of $DEVICES devices"
	if [[ ${BENCH_OB_DEV_CURL:-1} == 1 ]]; then
		c=$(curl_run "$dev_cfg" "$DEVICES" "$DEV_C")
		dev_curl=$(div "$DEVICES" "$c" 0)
		echo "bench-$NAME: $DEVICES devices: curl $c s ($dev_curl/s)"
		row "curl --parallel-max $DEV_C, same $DEVICES URLs" "$dev_curl req/s" "baseline" "info"
	fi
	[[ -n $engine ]] || { na "$label"; return; }
	out=$(job dev)
	if job_ok dev "$DEVICES" "$out"; then
		IFS='|' read -r secs _ _ _ _ _ _ run <<<"$out"
		rate=$(div "$DEVICES" "$secs" 0)
		echo "bench-$NAME: $DEVICES devices: batch_ops $secs s ($rate/s; $(div "$DEVICES" "$run" 0)/s from the job's start)"
		row "$label" "$rate/s${dev_curl:+ ($(div "$rate" "$dev_curl" 2) x curl)}" ">= 5000 targets/s" "$(verdict ge "$rate" 5000)"
	else
		row "$label" "broken (see above)" ">= 5000 targets/s" FAIL
	fi
}

m_slow() {
	local ideal out secs label="latency-bound $SLOW x $SLOW_S s, concurrency $SLOW_C"
	ideal=$(awk -v n="$SLOW" -v l="$SLOW_S" -v c="$SLOW_C" 'BEGIN { printf "%.2f", n * l / c }')
	row "latency-bound ideal: $SLOW x $SLOW_S s / $SLOW_C" "$ideal s" "baseline" "info"
	[[ -n $engine ]] || { na "$label"; return; }
	out=$(job slow)
	if job_ok slow "$SLOW" "$out"; then
		IFS='|' read -r secs _ <<<"$out"
		echo "bench-$NAME: latency-bound: $secs s (ideal $ideal s)"
		row "$label" "$secs s = $(div "$secs" "$ideal" 2) x ideal" "<= 1.2 x ideal" "$(verdict le "$(div "$secs" "$ideal" 3)" 1.2)"
	else
		row "$label" "broken (see above)" "<= 1.2 x ideal" FAIL
	fi
}

# per-host limit: the most concurrent requests per host, from nginx's log
m_held() {
	local out secs lo hi n label="per-host limit ($HELD_HOSTS hosts x $HELD_REQS, limit $HELD_LIMIT)"
	[[ -n $engine ]] || { na "$label"; return; }
	: >"$ngx/held.log"
	out=$(job held)
	if ! job_ok held "$((HELD_HOSTS * HELD_REQS))" "$out"; then
		row "$label" "broken (see above)" "== $HELD_LIMIT" FAIL
		return
	fi
	IFS='|' read -r secs _ <<<"$out"
	sleep 0.2
	# start = end - request_time; intervals shrunk by 2 ms at each end so
	# that the log's millisecond rounding makes no false overlap
	IFS='|' read -r lo hi n < <(
		awk '{ printf "%s %.3f 1\n%s %.3f -1\n", $3, $1 - $2 + 0.002, $3, $1 - 0.002 }' "$ngx/held.log" |
			sort -k1,1 -k2,2g -k3,3n |
			awk '$1 != h { h = $1; c = 0 } { c += $3; if (c > m[h]) m[h] = c }
				END { n = 0; for (k in m) { n++; if (n == 1 || m[k] < lo) lo = m[k]; if (m[k] > hi) hi = m[k] } print lo "|" hi "|" n }')
	echo "bench-$NAME: per-host: most concurrent per host $lo..$hi over $n hosts (limit $HELD_LIMIT), $secs s"
	row "$label" "max $lo..$hi per host, $secs s" "== $HELD_LIMIT" \
		"$(verdict test "$lo" == "$HELD_LIMIT" -a "$hi" == "$HELD_LIMIT" -a "$n" == "$HELD_HOSTS")"
}

# fairness: two equal jobs submitted together
m_fair() {
	local out st a b sa sb ratio label="two equal jobs together ($((HOSTS / 2)) x $((REQS * 2)) each)"
	[[ -n $engine ]] || { na "$label"; return; }
	out=$(psql_ <<-'SQL'
	SELECT extract(epoch FROM pg_catalog.clock_timestamp()) AS t0 \gset
	BEGIN;
	SELECT batch_ops.submit_outbound(spec) AS a FROM bo_outbound.spec WHERE name = 'fair_a' \gset
	SELECT batch_ops.submit_outbound(spec) AS b FROM bo_outbound.spec WHERE name = 'fair_b' \gset
	COMMIT;
	SELECT bo_outbound.wait_end(:a, 600) || bo_outbound.wait_end(:b, 600) AS st \gset
	SELECT :'st', round(max(extract(epoch FROM finished_at) - :t0) FILTER (WHERE id = :a)::numeric, 3),
	       round(max(extract(epoch FROM finished_at) - :t0) FILTER (WHERE id = :b)::numeric, 3),
	       round(max(extract(epoch FROM started_at) - :t0) FILTER (WHERE id = :a)::numeric, 3),
	       round(max(extract(epoch FROM started_at) - :t0) FILTER (WHERE id = :b)::numeric, 3)
	  FROM batch_ops.job_queue WHERE id IN (:a, :b);
	SQL
	)
	IFS='|' read -r st a b sa sb <<<"$out"
	echo "bench-$NAME: fairness: finished after $a s and $b s, started after $sa s and $sb s ($st)"
	if [[ $st == completedcompleted ]]; then
		ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a > b ? a / b : b / a) }')
		row "$label" "$a s / $b s = $ratio x" "<= 1.3 x" "$(verdict le "$ratio" 1.3)"
	else
		row "$label" "broken ($st)" "<= 1.3 x" FAIL
	fi
}

# first result visible, from before the submit (and from the job's start)
m_first() {
	local out ms st started label="first result visible (outbound_results)"
	[[ -n $engine ]] || { na "$label"; return; }
	out=$(psql_ <<-'SQL'
	SELECT extract(epoch FROM pg_catalog.clock_timestamp()) AS t0 \gset
	SELECT batch_ops.submit_outbound(spec) AS id FROM bo_outbound.spec WHERE name = 'first' \gset
	SELECT bo_outbound.first_result(:id, 30) AS t1 \gset
	SELECT bo_outbound.wait_end(:id, 600) AS st \gset
	SELECT round(((:t1 - :t0) * 1000)::numeric, 0), :'st',
	       round(((:t1 - extract(epoch FROM started_at)) * 1000)::numeric, 0)
	  FROM batch_ops.job_queue WHERE id = :id;
	SQL
	)
	IFS='|' read -r ms st started <<<"$out"
	echo "bench-$NAME: first result after $ms ms, $started ms after the job started ($st)"
	row "$label, from submit" "$ms ms ($started after the start)" "<= 250 ms" "$(verdict le "${ms:-99999}" 250)"
}

# cancel a running job: from cancel_job() to the status cancelled
m_cancel() {
	local out ms st c ndone label="cancel of a running job, to status cancelled"
	[[ -n $engine ]] || { na "$label"; return; }
	out=$(psql_ <<-'SQL'
	SELECT batch_ops.submit_outbound(spec) AS id FROM bo_outbound.spec WHERE name = 'cancel' \gset
	SELECT bo_outbound.first_result(:id, 30) IS NOT NULL AS running \gset
	SELECT extract(epoch FROM pg_catalog.clock_timestamp()) AS t0 \gset
	SELECT batch_ops.cancel_job(:id) AS c \gset
	SELECT bo_outbound.wait_end(:id, 60) AS st \gset
	SELECT round(((extract(epoch FROM pg_catalog.clock_timestamp()) - :t0) * 1000)::numeric, 0), :'st', :'c',
	       (SELECT count(*) FROM batch_ops.outbound_results(:id) WHERE success);
	SQL
	)
	IFS='|' read -r ms st c ndone <<<"$out"
	echo "bench-$NAME: cancel: $ms ms to status $st (cancel_job $c, $ndone targets done)"
	row "$label" "$ms ms ($st)" "<= 1000 ms" "$(verdict test "$st" == cancelled -a "${ms:-99999}" -le 1000)"
}

# sampler: the job worker's memory, from /proc/PID/status while the newest
# outbound job runs (its peak RSS reset when found); prints
# "VmHWM|max VmRSS|max RssAnon|max RssShmem|peak reset" in kB
sampler() {
	local pid st key val hwm=0 anon=0 rss=0 shm=0 reset=no
	while :; do
		pid='' st=''
		IFS='|' read -r pid st < <(psql_ -c "SELECT worker_pid, status FROM batch_ops.job_queue
			WHERE kind = 'outbound' ORDER BY id DESC LIMIT 1") || true
		[[ $st == running && -n $pid ]] && break
		[[ -e $work/mem.stop ]] && { echo "0|0|0|0|no worker found"; return; }
		sleep 0.02
	done
	echo 5 >"/proc/$pid/clear_refs" 2>/dev/null && reset=yes
	local tick=0 logged=
	while [[ ! -e $work/mem.stop && -r /proc/$pid/status ]]; do
		# half-way: the worker's memory contexts to the server log
		if [[ -z $logged ]] && ((++tick % 20 == 0)) &&
			[[ $(psql_ -c "SELECT progress >= 50 FROM batch_ops.job_queue
				WHERE kind = 'outbound' ORDER BY id DESC LIMIT 1") == t ]]; then
			psql_ -c "SELECT pg_catalog.pg_log_backend_memory_contexts($pid)" >/dev/null 2>&1 && logged=1
			echo "$pid" >"$work/mem.logged"
		fi
		while read -r key val _; do
			case $key in
			VmHWM:) ((val > hwm)) && hwm=$val ;;
			VmRSS:) ((val > rss)) && rss=$val ;;
			RssAnon:) ((val > anon)) && anon=$val ;;
			RssShmem:) ((val > shm)) && shm=$val ;;
			esac
		done <"/proc/$pid/status" 2>/dev/null || break
		sleep 0.05
	done
	echo "$hwm|$rss|$anon|$shm|$reset"
}

m_mem() {
	local out sp secs xids hwm rss anon shm reset label="worker private memory (peak RssAnon), $MEM x 1 kB"
	[[ -n $engine ]] || { na "$label"; return; }
	rm -f "$work/mem.stop"
	sampler >"$work/mem.out" &
	sp=$!
	out=$(job mem 1200)
	touch "$work/mem.stop"
	wait "$sp" || true
	hwm=0 rss=0 anon=0 shm=0 reset="sampler failed"
	IFS='|' read -r hwm rss anon shm reset <"$work/mem.out" || true
	if ! job_ok mem "$MEM" "$out"; then
		row "$label" "broken (see above)" "<= 64 MB" FAIL
		return
	fi
	IFS='|' read -r secs _ _ _ xids _ <<<"$out"
	echo "bench-$NAME: memory: $MEM x 1 kB in $secs s ($xids XIDs); worker VmHWM $((hwm / 1024)) MB," \
		"peak VmRSS $((rss / 1024)) MB, RssAnon $((anon / 1024)) MB, RssShmem $((shm / 1024)) MB (peak reset: $reset)"
	# no sample (no worker found, /proc unreadable) is no figure, not a pass
	row "$label" "$((anon / 1024)) MB" "<= 64 MB" "$(verdict test "$anon" -gt 0 -a "$anon" -le 65536)"
	row "  peak RSS with shared memory touched (VmHWM)" "$((hwm / 1024)) MB (peak reset: $reset)" "" info
	row "  of which shared (peak RssShmem)" "$((shm / 1024)) MB" "" info
	# the largest memory contexts half-way (from the server log, if we have it)
	local log=${BATCH_OPS_CLUSTER_LOG:-} lpid ctx
	if [[ -s $work/mem.logged && -r $log ]]; then
		lpid=$(cat "$work/mem.logged")
		sleep 0.5
		while IFS='|' read -r ctx val; do
			row "  half-way, memory context $ctx" "$((val / 1048576)) MB" "" info
		done < <(grep -F "[$lpid]" "$log" | grep -F 'level: ' |
			sed -n 's/.*level: \([0-9]*\); \([^:]*\): \([0-9]*\) total.*/\1|\2|\3/p' |
			awk -F'|' '$1 <= 3 && $3 >= 4194304 { print $2 "|" $3 }' | sort -t'|' -k2,2nr | head -3)
	fi
	row "  that job: time, XIDs per 500 results" "$secs s, $(div "$((xids * 500))" "$MEM" 2)" "" info
}

start=$(date +%s)
for m in ka dev slow held fair first cancel mem; do
	want "$m" && "m_$m"
done
elapsed=$(($(date +%s) - start))
if [[ -n $engine ]]; then
	settings=$(psql_ -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
		FROM pg_catalog.pg_settings
		WHERE name IN ('batch_ops.outbound_concurrency', 'batch_ops.max_outbound_workers',
		               'batch_ops.max_workers', 'shared_buffers', 'synchronous_commit')")
fi

# ---------------------------------------------------------------- report
report=$resdir/outbound.txt
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "no commit")
{
	echo "batch_ops outbound benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $mode_desc, source $rev"
	echo "machine: $(nproc) cores; load average before $load_start; took ${elapsed}s;" \
		"nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $NGINX_WORKERS worker(s); $(curl --version | head -1 | cut -d' ' -f1-2)"
	[[ -n $engine ]] && echo "settings: $settings"
	echo
	printf '| %-52s | %-34s | %-18s | %-6s |\n' "measurement" "figure" "target" "result"
	printf '|%s|%s|%s|%s|\n' "------------------------------------------------------" \
		"------------------------------------" "--------------------" "--------"
	printf '%s\n' "${rows[@]}"
	echo
	echo "batch_ops figures: async jobs (driver http, plain http), timed from before submit_outbound to the"
	echo "job row's finished_at (every result committed; \"from start\": from its started_at, without the"
	echo "worker's start); keep-alive: median of $ROUNDS round(s), curl then batch_ops in each, the ratio"
	echo "taken within a round."
} >"$report"
echo
cat "$report"
echo "bench-$NAME: report saved to test/bench/results/outbound.txt"
[[ -n $engine ]] && psql_ -c "SET client_min_messages = warning; DROP SCHEMA bo_outbound CASCADE" >/dev/null
exit 0
