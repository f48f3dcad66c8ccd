# shellcheck shell=bash
#
# batch_ops — shared shell library for the set-up, demo, test and bench scripts.
#
#   source "$(dirname "$0")/lib.sh"     (or scripts/lib.sh from the repo root)
#
# Safe under `set -euo pipefail`: every function checks its own commands and
# returns non-zero on failure (it does not rely on errexit, which bash turns
# off inside a function called as `f || ...`).
#
# The tests themselves stand up their own clusters (make installcheck,
# pgtap and prove_installcheck; see the Makefile); the cluster functions
# here serve the demo and the benchmarks.
#
# Functions (stable names, used by scripts/*.sh and
# test/bench/run.sh):
#
#   bo_ensure_deps                  install missing Debian packages (apt-get)
#   bo_build_install                make && make install
#   bo_cluster_start DIR PORT [CONF] throwaway cluster in DIR, exports PG* env
#   bo_cluster_stop DIR [MODE]      pg_ctl stop (fast by default)
#   bo_cluster_restart DIR [MODE]   pg_ctl restart, keeps the data
#   bo_cluster_is_running [DIR]     true when the postmaster answers
#   bo_psql ARGS...                 psql -X -v ON_ERROR_STOP=1
#   bo_as_pg CMD...                 run CMD as the cluster owner
#
# Environment exported by bo_cluster_start:
#   PGHOST PGPORT PGUSER PGDATABASE   so psql and pg_regress just work
#   BATCH_OPS_CLUSTER_DIR             the data directory actually used
#   BATCH_OPS_CLUSTER_LOG             the server log file
#   BATCH_OPS_SCRATCH                 a directory the server (postgres) can
#                                     read and the caller can write: put
#                                     files for server-side COPY/imports here
#
# Knobs (environment):
#   BATCH_OPS_PG_BINDIR   default /usr/lib/postgresql/15/bin
#   BATCH_OPS_FSYNC       on (default) | off — durability of test clusters
#   BATCH_OPS_QUIET       1 = less chatter from bo_* functions

BO_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BO_ROOT="$(cd "$BO_LIB_DIR/.." && pwd)"
BO_PG_BINDIR="${BATCH_OPS_PG_BINDIR:-/usr/lib/postgresql/15/bin}"
export BATCH_OPS_ROOT="$BO_ROOT"
export BATCH_OPS_LIB="$BO_LIB_DIR/lib.sh"

# Prefer the PostgreSQL 15 client programs (scripts call `psql` by name;
# Debian's /usr/bin/psql wrapper would otherwise pick a version itself).
if [[ -d "$BO_PG_BINDIR" && ":$PATH:" != *":$BO_PG_BINDIR:"* ]]; then
	export PATH="$BO_PG_BINDIR:$PATH"
fi

BO_DEPS=(
	postgresql-15
	postgresql-server-dev-15
	libcurl4-openssl-dev
	postgresql-15-pgtap
	libipc-run-perl
	postgresql-15-cron
	make
	gcc
	# credentials: AES-256-GCM (libcrypto), issue #10
	libssl-dev
	# outbound engine tests: a real HTTP server on loopback, issue #10
	nginx
	libnginx-mod-http-echo
	# outbound drivers: test/fakedev/fakedev.py (its TLS certificate made
	# with the openssl command), the tests' and benchmarks' curl
	python3
	openssl
	curl
	# the ssh driver (issue #12): libssh2 to build it, asyncssh for the
	# fake devices (test/ssh), a real sshd for the interop test
	libssh2-1-dev
	python3-asyncssh
	openssh-server
	# Citus, built from source for its tests (scripts/citus.sh, issue #13):
	# Debian's PG15 headers assume zstd and lz4, libpq-be.h needs gssapi
	libzstd-dev
	liblz4-dev
	libkrb5-dev
)

bo_log() {
	[[ "${BATCH_OPS_QUIET:-0}" == 1 ]] && return 0
	printf '==> %s\n' "$*" >&2
}

bo_warn() {
	printf 'WARNING: %s\n' "$*" >&2
}

bo_die() {
	printf 'ERROR: %s\n' "$*" >&2
	return 1
}

bo_is_root() {
	[[ "$(id -u)" -eq 0 ]]
}

# Run a command as root: directly when root, else through sudo.
bo_as_root() {
	if bo_is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		bo_die "need root for: $* (and sudo is not installed)"
	fi
}

# The user that owns and runs throwaway clusters.
bo_pg_owner() {
	if bo_is_root; then
		echo postgres
	else
		id -un
	fi
}

# bo_as_pg CMD... — run CMD as the cluster owner (postgres when we are root,
# ourselves otherwise).  The environment (PGHOST etc.) is passed along.
bo_as_pg() {
	if bo_is_root; then
		# runuser keeps the environment except HOME/SHELL/USER/LOGNAME.
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# bo_ensure_deps — install whatever is missing (fresh Debian 12 with
# PostgreSQL 15).  Quick no-op when everything is present.
bo_ensure_deps() {
	local missing=() p status
	for p in "${BO_DEPS[@]}"; do
		status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
		[[ "$status" == installed ]] || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		bo_log "dependencies present"
		return 0
	fi
	bo_log "installing missing packages: ${missing[*]}"
	local log rc=0
	log="$(mktemp /tmp/batch_ops-apt.XXXXXX)" || return 1
	if ! bo_as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get -o DPkg::Lock::Timeout=300 update -q >"$log" 2>&1; then
		grep -Ei '^(E|W):|err' "$log" >&2 || tail -n 30 "$log" >&2
		bo_warn "apt-get update failed; trying the install anyway"
	fi
	if ! bo_as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" >>"$log" 2>&1; then
		rc=1
		tail -n 40 "$log" >&2
		bo_die "apt-get install failed (full log: $log)"
	else
		rm -f "$log"
	fi
	return "$rc"
}

bo_pg_config() {
	if [[ -x "$BO_PG_BINDIR/pg_config" ]]; then
		echo "$BO_PG_BINDIR/pg_config"
	else
		command -v pg_config || echo pg_config
	fi
}

# bo_build_install — build with PGXS and install (sudo for install when not
# root).  Runs in the repository root.
bo_build_install() { # [MAKE VARIABLE=VALUE...], e.g. TEST_MODULES=1
	local pgc jobs
	pgc="$(bo_pg_config)"
	jobs="$(nproc 2>/dev/null || echo 2)"
	bo_log "building batch_ops (PG_CONFIG=$pgc${*:+ $*})"
	make -C "$BO_ROOT" -j"$jobs" PG_CONFIG="$pgc" "$@" || {
		bo_die "make failed"
		return 1
	}
	bo_log "installing batch_ops"
	if bo_is_root; then
		make -C "$BO_ROOT" PG_CONFIG="$pgc" "$@" install >/dev/null || {
			bo_die "make install failed"
			return 1
		}
	else
		bo_as_root make -C "$BO_ROOT" PG_CONFIG="$pgc" "$@" install >/dev/null || {
			bo_die "make install failed"
			return 1
		}
	fi
}

# Refuse to wipe anything that does not look like one of our clusters.
_bo_safe_to_wipe() {
	local d="$1" depth
	depth="$(tr -cd / <<<"${d%/}" | wc -c)"
	# never / , a top-level directory, the repo itself or a home directory
	((depth >= 2)) || return 1
	[[ "$d" != "$BO_ROOT" && "$d" != "${HOME:-/nonexistent}" && "$d" != "$(dirname "$BO_ROOT")" ]] || return 1
	[[ -e "$d" ]] || return 0
	[[ -d "$d" && ! -L "$d" ]] || return 1
	[[ -f "$d/PG_VERSION" || -f "$d/.bo_redirect" ]] && return 0
	# empty, or only leftovers of a failed initdb
	[[ -z "$(find "$d" -mindepth 1 -maxdepth 1 ! -name log 2>/dev/null | head -n 1)" ]]
}

# The data directory actually used for DIR (follows a /tmp fallback).
_bo_resolve_dir() {
	local d="$1"
	if [[ -f "$d/.bo_redirect" ]]; then
		cat "$d/.bo_redirect"
	else
		echo "$d"
	fi
}

_bo_abspath() {
	local d="$1"
	[[ "$d" == /* ]] || d="$PWD/$d"
	# normalise without requiring existence
	local IFS=/ part out=()
	for part in $d; do
		case "$part" in
		"" | .) ;;
		..) ((${#out[@]})) && unset 'out[${#out[@]}-1]' ;;
		*) out+=("$part") ;;
		esac
	done
	printf '/%s\n' "${out[*]}"
}

# bo_cluster_is_running [DIR] — the postmaster of DIR (default
# $BATCH_OPS_CLUSTER_DIR; without either, the server at $PGHOST/$PGPORT)
# is alive and accepts connections.
bo_cluster_is_running() {
	local d="${1:-${BATCH_OPS_CLUSTER_DIR:-}}" port sock
	if [[ -z "$d" ]]; then
		"$BO_PG_BINDIR/pg_isready" -q -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -t 5
		return
	fi
	d="$(_bo_resolve_dir "$(_bo_abspath "$d")")"
	_bo_pid_alive "$(_bo_postmaster_pid "$d")" || return 1
	port="$(sed -n 4p "$d/postmaster.pid")"
	sock="$(sed -n 5p "$d/postmaster.pid")"
	[[ -n "$sock" ]] || sock=127.0.0.1
	"$BO_PG_BINDIR/pg_isready" -q -h "$sock" -p "${port:-${PGPORT:-5432}}" -t 5
}

# PID in DIR/postmaster.pid, or nothing.
_bo_postmaster_pid() {
	local p=""
	[[ -f "$1/postmaster.pid" ]] && p="$(head -n 1 "$1/postmaster.pid" 2>/dev/null || true)"
	[[ "$p" =~ ^[0-9]+$ ]] && echo "$p"
	return 0
}

# The process exists and is not a zombie.
_bo_pid_alive() {
	local st
	[[ -n "${1:-}" && -r "/proc/$1/stat" ]] || return 1
	st="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || echo gone)"
	[[ "$st" != Z && "$st" != X && "$st" != gone ]]
}

# Wait (up to SECS) until PID no longer exists, not even as a zombie.
_bo_wait_pid_gone() {
	local pid="${1:-}" secs="${2:-20}" i
	[[ -n "$pid" ]] || return 0
	for ((i = 0; i < secs * 5; i++)); do
		[[ -e "/proc/$pid" ]] || return 0
		sleep 0.2
	done
	return 0
}

# Stop whatever cluster lives in D (a data directory), quietly.
_bo_stop_if_running() {
	local d="$1" mode="${2:-fast}" pid
	pid="$(_bo_postmaster_pid "$d")"
	[[ -n "$pid" ]] || return 0
	if _bo_pid_alive "$pid"; then
		if ! (cd / && bo_as_pg "$BO_PG_BINDIR/pg_ctl" -D "$d" -m "$mode" -w -t 60 stop) >/dev/null 2>&1; then
			# pg_ctl could not do it: immediate shutdown, if it really is ours.
			if [[ "$(readlink -f "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f "$d")" ]]; then
				kill -QUIT "$pid" 2>/dev/null || true
			fi
		fi
	fi
	_bo_wait_pid_gone "$pid" 20
	return 0
}

# bo_cluster_start DIR PORT [EXTRA_CONF]
#   initdb a throwaway cluster in DIR (wiped first; a running server there is
#   stopped), trust auth on the socket and 127.0.0.1, socket in DIR, listen on
#   127.0.0.1:PORT, include test/regress.conf then EXTRA_CONF, start it.
bo_cluster_start() {
	local dir port extra owner socketdir fallback=""
	[[ $# -ge 2 ]] || {
		bo_die "usage: bo_cluster_start DIR PORT [EXTRA_CONF]"
		return 1
	}
	dir="$(_bo_abspath "$1")"
	port="$2"
	extra="${3:-}"
	[[ "$port" =~ ^[0-9]+$ ]] || {
		bo_die "bad port: $port"
		return 1
	}
	if [[ -n "$extra" && ! -r "$extra" ]]; then
		bo_die "extra conf file not readable: $extra"
		return 1
	fi
	[[ -x "$BO_PG_BINDIR/initdb" ]] || {
		bo_die "PostgreSQL 15 binaries not found in $BO_PG_BINDIR (run bo_ensure_deps)"
		return 1
	}
	owner="$(bo_pg_owner)"
	if bo_is_root && ! id postgres >/dev/null 2>&1; then
		bo_die "running as root but there is no 'postgres' user (is postgresql-15 installed?)"
		return 1
	fi

	# Stop an old cluster here (or at its /tmp fallback), then wipe.
	local old d
	old="$(_bo_resolve_dir "$dir")"
	_bo_stop_if_running "$old"
	[[ "$old" != "$dir" ]] && _bo_stop_if_running "$dir"
	for d in "$old" "$dir"; do
		if ! _bo_safe_to_wipe "$d"; then
			bo_die "refusing to wipe $d: not empty and not a PostgreSQL data directory"
			return 1
		fi
	done
	[[ "$old" != "$dir" ]] && rm -rf "$old"
	rm -rf "$dir"

	# Is DIR usable by the cluster owner?  (all parents traversable)
	mkdir -p "$dir" || return 1
	if bo_is_root; then
		chown postgres: "$dir" || return 1
	fi
	chmod 700 "$dir"
	if ! bo_as_pg test -w "$dir" -a -x "$dir" 2>/dev/null; then
		fallback="/tmp/batch_ops-$port/pgdata"
		bo_warn "$dir is not reachable by user '$owner' (a parent directory is not traversable);"
		bo_warn "using $fallback instead"
		_bo_stop_if_running "$fallback"
		rm -rf "$fallback"
		mkdir -p "$fallback" || return 1
		chmod 755 "$(dirname "$fallback")"
		bo_is_root && chown postgres: "$fallback"
		chmod 700 "$fallback"
		echo "$fallback" >"$dir/.bo_redirect"
	fi
	local data="${fallback:-$dir}"

	# Unix socket paths are limited to ~107 bytes.
	socketdir="$data"
	if ((${#socketdir} + 16 > 100)); then
		socketdir="/tmp/batch_ops-$port/socket"
		bo_warn "socket path under $data would be too long; socket directory is $socketdir"
		mkdir -p "$socketdir" && chmod 755 "$(dirname "$socketdir")" || return 1
		bo_is_root && chown postgres: "$socketdir"
	fi

	# A port taken by someone else is a clear error, not a silent mix-up.
	local rc=0
	"$BO_PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -t 3 >/dev/null 2>&1 || rc=$?
	if ((rc == 0 || rc == 1)); then
		bo_die "port $port on 127.0.0.1 is already in use by another server"
		return 1
	fi

	bo_log "initdb $data (owner $owner)"
	local initlog
	initlog="$(mktemp /tmp/batch_ops-initdb.XXXXXX)" || return 1
	if ! (cd / && bo_as_pg "$BO_PG_BINDIR/initdb" -D "$data" -U postgres \
		--auth=trust --encoding=UTF8 --locale=C --no-sync) >"$initlog" 2>&1; then
		cat "$initlog" >&2
		rm -f "$initlog"
		bo_die "initdb failed"
		return 1
	fi
	rm -f "$initlog"

	# Configuration: our own lines, then test/regress.conf, then the extra file.
	# The fragments are copied into the data directory so that the server
	# (running as postgres) can always read them, and restarts need nothing else.
	cp "$BO_ROOT/test/regress.conf" "$data/batch_ops_regress.conf" || return 1
	{
		echo ""
		echo "# --- added by scripts/lib.sh bo_cluster_start ---"
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$socketdir'"
		echo "include 'batch_ops_regress.conf'"
	} >>"$data/postgresql.conf"
	if [[ "${BATCH_OPS_FSYNC:-on}" == off ]]; then
		printf '%s\n' "fsync = off" "synchronous_commit = off" "full_page_writes = off" \
			>"$data/batch_ops_fsync.conf"
		echo "include 'batch_ops_fsync.conf'" >>"$data/postgresql.conf"
	fi
	if [[ -n "$extra" ]]; then
		cp "$extra" "$data/batch_ops_extra.conf" || return 1
		echo "include 'batch_ops_extra.conf'" >>"$data/postgresql.conf"
	fi
	mkdir -p "$data/log" || return 1
	if bo_is_root; then
		chown -R postgres: "$data" || return 1
	fi

	# Scratch directory: writable by us, readable by the server.
	local scratch
	scratch="$(dirname "$data")/scratch-$port"
	rm -rf "$scratch"
	mkdir -p "$scratch" && chmod 1777 "$scratch" || return 1

	export PGHOST="$socketdir" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
	export BATCH_OPS_CLUSTER_DIR="$data"
	export BATCH_OPS_CLUSTER_LOG="$data/log/postgresql.log"
	export BATCH_OPS_SCRATCH="$scratch"
	unset PGSERVICE PGPASSWORD PGSSLMODE PGOPTIONS PGCLUSTER 2>/dev/null || true

	bo_log "starting PostgreSQL on 127.0.0.1:$port, socket $socketdir (log $BATCH_OPS_CLUSTER_LOG)"
	if ! (cd / && bo_as_pg "$BO_PG_BINDIR/pg_ctl" -D "$data" -l "$BATCH_OPS_CLUSTER_LOG" \
		-w -t 120 start) >/dev/null; then
		echo "---- server log ($BATCH_OPS_CLUSTER_LOG) ----" >&2
		tail -n 40 "$BATCH_OPS_CLUSTER_LOG" >&2 || true
		bo_die "could not start the cluster in $data"
		return 1
	fi
	return 0
}

# bo_cluster_stop DIR [MODE] — MODE: smart | fast (default) | immediate.
bo_cluster_stop() {
	local dir mode data
	dir="$(_bo_abspath "${1:?usage: bo_cluster_stop DIR [MODE]}")"
	mode="${2:-fast}"
	data="$(_bo_resolve_dir "$dir")"
	local pid
	pid="$(_bo_postmaster_pid "$data")"
	[[ -n "$pid" ]] || return 0
	if ! _bo_pid_alive "$pid"; then
		_bo_wait_pid_gone "$pid" 20 # already dead (crash test): nothing to stop
		return 0
	fi
	bo_log "stopping the cluster in $data ($mode)"
	(cd / && bo_as_pg "$BO_PG_BINDIR/pg_ctl" -D "$data" -m "$mode" -w -t 120 stop) >/dev/null || {
		bo_die "pg_ctl stop failed for $data"
		return 1
	}
}

# bo_cluster_restart DIR [MODE] — restart with the same data (or start it
# again after a crash/stop).  MODE is the stop mode (fast by default).
bo_cluster_restart() {
	local dir mode data
	dir="$(_bo_abspath "${1:?usage: bo_cluster_restart DIR [MODE]}")"
	mode="${2:-fast}"
	data="$(_bo_resolve_dir "$dir")"
	[[ -f "$data/PG_VERSION" ]] || {
		bo_die "no cluster in $data"
		return 1
	}
	local pid
	pid="$(_bo_postmaster_pid "$data")"
	if [[ -n "$pid" ]] && _bo_pid_alive "$pid"; then
		(cd / && bo_as_pg "$BO_PG_BINDIR/pg_ctl" -D "$data" -m "$mode" -w -t 120 stop) >/dev/null ||
			return 1
	fi
	# A killed postmaster can stay a zombie for a moment, and the lock file
	# check would take it for a live server: wait until it is reaped.
	_bo_wait_pid_gone "$pid" 20
	# After a kill -9 the old children may need a moment to go away
	# ("pre-existing shared memory block is still in use"): retry.
	local _
	for _ in 1 2 3; do
		if (cd / && bo_as_pg "$BO_PG_BINDIR/pg_ctl" -D "$data" -l "$data/log/postgresql.log" \
			-w -t 120 start) >/dev/null; then
			return 0
		fi
		sleep 3
	done
	tail -n 40 "$data/log/postgresql.log" >&2 || true
	bo_die "could not start the cluster in $data"
	return 1
}

# bo_psql ARGS... — psql with the cluster env, stopping at the first error.
bo_psql() {
	"$BO_PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 "$@"
}
