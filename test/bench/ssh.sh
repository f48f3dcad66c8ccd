#!/usr/bin/env bash
#
# batch_ops — benchmark of the ssh driver (issue #12, "Tests and speed").
#
#   test/bench/ssh.sh          (make bench runs it after outbound.sh)
#
# The devices are test/ssh/fake_device.py (Debian's python3-asyncssh), one
# process serving BENCH_SSH_DEVICES addresses 127.0.10.1 ... on one port,
# started by this script as a non-root user.  Each command but the
# session setup (paging off) takes BENCH_SSH_CMD_MS (200 ms) on the device.
#
# Measurements (run_outbound, which runs the jobs' engine in the calling
# session, timed by the client; driver ssh, pinned, the default):
#
#   throughput  BENCH_SSH_DEVICES (100) devices x BENCH_SSH_PER (10)
#               targets of one command each, concurrency 50: against the
#               ideal targets x 200 ms / 50.  Target: <= 1.3 x.  Every
#               session (one per device) is opened, authenticated and
#               kept inside the measured time.
#   reuse       BENCH_SSH_REUSE (20) devices x 2 targets, pinned: the
#               second target's execution_time (a command on the kept
#               session) over the first's (connect, key exchange, host key
#               check, login, paging off, then the command); the median.
#               The devices take BENCH_SSH_LOGIN_MS (1000 ms) to accept a
#               login, standing in for real network gear (NetPulse
#               measured 2-5 s to connect and 0.5-0.9 s per command on a
#               kept session).  Target: <= 0.3 x.  For information, the
#               same with no login delay (this machine's own cost of
#               connect + authentication over loopback).
#
# Knobs: BENCH_SSH_PROCS (4 fake device processes), BENCH_SSH_DEVICES (100), BENCH_SSH_PER (10), BENCH_SSH_C (50),
# BENCH_SSH_CMD_MS (200), BENCH_SSH_REUSE (20), BENCH_SSH_LOGIN_MS (1000),
# BENCH_SSH_DEV_PORT (19122), BENCH_SSH_PORT (19150, the throwaway
# cluster), BENCH_NO_BUILD, BATCH_OPS_BENCH_EXISTING=1 with PGHOST/PGPORT:
# use that server.  batch_ops.outbound_networks (127.0.10.0/24) and
# batch_ops.ssh_known_hosts_file (the devices' keys) are set for the run
# with ALTER SYSTEM, and reset at the end.
# Exit status: 0 when the benchmark ran, whatever the figures.

set -euo pipefail

DEVICES=${BENCH_SSH_DEVICES:-100}
PER=${BENCH_SSH_PER:-10}
CONC=${BENCH_SSH_C:-50}
CMD_MS=${BENCH_SSH_CMD_MS:-200}
REUSE=${BENCH_SSH_REUSE:-20}
LOGIN_MS=${BENCH_SSH_LOGIN_MS:-1000}
DEV_PORT=${BENCH_SSH_DEV_PORT:-19122}
NAME=ssh
PORT=${BENCH_SSH_PORT:-19150}
BENCH_CONF="batch_ops.outbound_networks = '127.0.10.0/24'"
# shellcheck source=test/bench/bench_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_server.sh"

check_positive DEVICES PER CONC CMD_MS REUSE DEV_PORT
((DEVICES <= 250)) || die "BENCH_SSH_DEVICES: at most 250"
((REUSE <= DEVICES)) || die "BENCH_SSH_REUSE: at most BENCH_SSH_DEVICES"

bench_server_start

report=$resdir/ssh.txt
psql_ >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
SQL
probe=$(psql_ -c "SELECT batch_ops.run_outbound('{\"driver\": \"ssh\", \"devices\": [{\"host\": \"127.0.10.1\"}], \"command\": \"x\"}')" 2>&1 || true)
if [[ $probe == *'not supported by this build'* || $probe == *'does not exist'* ]]; then
	echo "n/a (no ssh driver in this build)" | tee "$report"
	exit 0
fi
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import asyncssh' 2>/dev/null ||
	die "python3-asyncssh is missing (apt-get install python3-asyncssh)"

# ---------------------------------------------------------------- devices
# BENCH_SSH_PROCS processes (4), each serving a share of the addresses: a
# device's login (key exchange in Python) costs the fake device far more
# than it costs the engine, and one process would serialize them.
PROCS=${BENCH_SSH_PROCS:-4}
check_positive PROCS
dev=$work/devices
mkdir -p "$dev"
chmod 755 "$work" "$dev"
printf '{"users": {"admin": {"password": "pw"}}}\n' >"$dev/config.json"
as_user=()
if [[ $(id -u) == 0 ]]; then
	chown -R postgres: "$dev"
	as_user=(runuser -u postgres --)
fi
dev_pids=()
per=$(((DEVICES + PROCS - 1) / PROCS))
for ((p = 0; p < PROCS && p * per < DEVICES; p++)); do
	d=$dev/p$p
	"${as_user[@]}" mkdir -p "$d"
	first=$((p * per + 1))
	last=$(((p + 1) * per < DEVICES ? (p + 1) * per : DEVICES))
	"${as_user[@]}" /usr/bin/python3 "$root/test/ssh/fake_device.py" \
		--addresses "127.0.10.$first-127.0.10.$last" --port "$DEV_PORT" --dir "$d" \
		--config "$dev/config.json" --ready "$d/ready" --lifetime 1800 \
		>"$d.out" 2>&1 &
	dev_pids+=($!)
done
stop_devices() { kill "${dev_pids[@]}" 2>/dev/null || true; }
trap 'stop_devices; cleanup' EXIT
for d in "$dev"/p*/; do
	for _ in $(seq 1 300); do
		[[ -s $d/ready ]] && break
		sleep 0.1
	done
	[[ -s $d/ready ]] || die "the fake devices did not start: $(cat "${d%/}.out")"
done
cat "$dev"/p*/known_hosts >"$dev/known_hosts"
chmod 644 "$dev/known_hosts"
faults() {
	local d
	for d in "$dev"/p*/; do
		printf '%s\n' "$1" >"$d/faults.json.tmp" && mv "$d/faults.json.tmp" "$d/faults.json"
	done
}
logins() {
	/usr/bin/python3 -c 'import json, sys
print(sum(v.get("logins", 0) for f in sys.argv[1:] for v in json.load(open(f)).values()))' "$dev"/p*/counts.json
}

# the devices' keys and addresses, for the run (reset at the end)
psql_ -c "ALTER SYSTEM SET batch_ops.ssh_known_hosts_file = '$dev/known_hosts'" \
	-c "ALTER SYSTEM SET batch_ops.outbound_networks = '127.0.10.0/24'" -c "SELECT pg_reload_conf()" >/dev/null
reset_conf() {
	psql_ -c "ALTER SYSTEM RESET batch_ops.ssh_known_hosts_file" \
		-c "ALTER SYSTEM RESET batch_ops.outbound_networks" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
trap 'reset_conf; stop_devices; cleanup' EXIT
sleep 0.2

# spec DEVICES PER [EXTRA_OPTIONS]: PER targets of "show clock" per device, device by device
spec() {
	local n=$1 per=$2 i k sep=''
	printf '{"driver": "ssh", "connection_args": {"username": "admin", "password": "pw", "port": %d, "timeout": 60}, "command": ["show clock"], "options": {"concurrency": %d%s}, "devices": [' \
		"$DEV_PORT" "$CONC" "${3:-}"
	for ((i = 1; i <= n; i++)); do
		for ((k = 0; k < per; k++)); do
			printf '%s{"host": "127.0.10.%d"}' "$sep" "$i"
			sep=', '
		done
	done
	printf ']}'
}

# run_sync SPEC SQL: run_outbound of SPEC (the engine of jobs, in this
# session: the inline password needs no credential key file; the
# superuser lifts batch_ops.max_sync_targets), its answer in the temporary
# table r (a jsonb, and ms, the server's time for the call), then SQL's
# answer.
run_sync() {
	psql_ <<-EOF
	SET batch_ops.max_sync_targets = 10000;
	CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
	CREATE TEMP TABLE r AS SELECT batch_ops.run_outbound(\$\$$1\$\$) AS a;
	ALTER TABLE r ADD COLUMN ms float8;
	UPDATE r SET ms = extract(epoch FROM clock_timestamp() - (SELECT t FROM t0)) * 1000;
	$2
	EOF
}

# ---------------------------------------------------------------- throughput
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
faults "{\"*\": {\"delay_ms\": $CMD_MS}}"
targets=$((DEVICES * PER))
# also: the slot-time bound (the targets' execution times / concurrency:
# what the engine could reach with these devices), and the mean of the
# devices' first targets (connect, login, then the command) and of the others
read -r elapsed ok slots first_ms rest_ms <<<"$(run_sync "$(spec "$DEVICES" "$PER")" "
	SELECT round(ms), a->'summary'->>'successful',
	       round(sum((x->>'execution_time')::numeric) * 1000 / $CONC),
	       round(avg((x->>'execution_time')::numeric * 1000) FILTER (WHERE (i - 1) % $PER = 0)),
	       round(avg((x->>'execution_time')::numeric * 1000) FILTER (WHERE (i - 1) % $PER <> 0))
	  FROM r, jsonb_array_elements(a->'results') WITH ORDINALITY e(x, i) GROUP BY ms, a;" | tr '|' ' ')"
ideal=$((targets * CMD_MS / CONC))
tp_ratio=$(div "$elapsed" "$ideal" 2)
logins=$(logins)

# ---------------------------------------------------------------- reuse
# the median over the devices of the second target's execution_time over
# the first's (each device: a fresh session per run)
reuse_ratio() {
	faults "{\"*\": {\"delay_ms\": $CMD_MS, \"auth_delay_ms\": $1}}"
	run_sync "$(spec "$REUSE" 2)" "
	  SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ratio)::numeric, 2)
	  FROM (SELECT (r2->>'execution_time')::float8 / (r1->>'execution_time')::float8 AS ratio
	          FROM r, jsonb_array_elements(a->'results') WITH ORDINALITY x(r1, i),
	               jsonb_array_elements(a->'results') WITH ORDINALITY y(r2, j)
	         WHERE j = i + 1 AND i % 2 = 1 AND (r1->>'success')::bool AND (r2->>'success')::bool) z;"
}
first_second() {
	faults "{\"*\": {\"delay_ms\": $CMD_MS, \"auth_delay_ms\": $1}}"
	run_sync "$(spec 1 2)" "
	  SELECT string_agg(round((x->>'execution_time')::numeric * 1000)::text, ' / ' ORDER BY i)
	  FROM r, jsonb_array_elements(a->'results') WITH ORDINALITY e(x, i);"
}
reuse=$(reuse_ratio "$LOGIN_MS")
reuse_fs=$(first_second "$LOGIN_MS")
reuse0=$(reuse_ratio 0)
reuse0_fs=$(first_second 0)

verdict() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "nan" && a + 0 <= b + 0) ? "PASS" : "FAIL" }'; }
{
	echo "ssh driver ($mode_desc), $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "fake devices: test/ssh/fake_device.py, $DEVICES addresses in $PROCS processes, $CMD_MS ms per command"
	echo "load average before: $load_start"
	echo
	printf '| %-66s | %14s | %-14s |\n' "measurement" "result" "target"
	printf '|%s|%s|%s|\n' "--------------------------------------------------------------------" "----------------" "----------------"
	printf '| %-66s | %11s ms | %-14s |\n' "$DEVICES devices x $PER targets, concurrency $CONC (ok: $ok/$targets, $logins logins)" "$elapsed" ""
	printf '| %-66s | %11s ms | %-14s |\n' "ideal: $targets x $CMD_MS ms / $CONC" "$ideal" ""
	printf '| %-66s | %12s x | %-14s |\n' "ratio to the ideal" "$tp_ratio" "<= 1.3 $(verdict "$tp_ratio" 1.3)"
	printf '| %-66s | %11s ms | %-14s |\n' "  a device's first target (connect, login, command), mean" "$first_ms" "info"
	printf '| %-66s | %11s ms | %-14s |\n' "  its other targets (a command on the kept session), mean" "$rest_ms" "info"
	printf '| %-66s | %12s x | %-14s |\n' "  elapsed / (sum of execution times / $CONC): scheduling" "$(div "$elapsed" "$slots" 2)" "info"
	printf '| %-66s | %12s x | %-14s |\n' "pinned: 2nd command / 1st, device login $LOGIN_MS ms (median of $REUSE)" "$reuse" "<= 0.3 $(verdict "$reuse" 0.3)"
	printf '| %-66s | %11s ms | %-14s |\n' "  one device: 1st / 2nd execution_time" "$reuse_fs" "info"
	printf '| %-66s | %12s x | %-14s |\n' "pinned: 2nd command / 1st, no login delay (loopback cost only)" "$reuse0" "info"
	printf '| %-66s | %11s ms | %-14s |\n' "  one device: 1st / 2nd execution_time" "$reuse0_fs" "info"
} >"$report"
cat "$report"
