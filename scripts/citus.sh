# shellcheck shell=bash
#
# batch_ops — build and install Citus (issue #13) for the Citus test suite
# (test/t/11x_citus_*.pl) and the Citus benchmark (test/bench/citus.sh).
#
#   source scripts/lib.sh; source scripts/citus.sh; bo_ensure_citus
#
# Citus is not a Debian package here: its release source is vendored in
# ../shared/vendor/citus (or $BATCH_OPS_CITUS_VENDOR).  The build is done
# once per machine, outside the checkout, and cached:
#   1. citus.so of the right version already in $(pg_config --pkglibdir): done;
#   2. a built tree in the cache: `make install` only (seconds);
#   3. else extract, patch where the server needs it, configure, make, install
#      (3-4 minutes on 2 cores).
# Cache: /var/cache/batch_ops/citus-<version>-pg15 as root, else
# ${XDG_CACHE_HOME:-~/.cache}/batch_ops/...  Build output goes to a log file
# there; a one-line summary is printed.  Returns non-zero when Citus cannot
# be built or installed (the Citus suite then fails, it is not skipped).

BO_CITUS_VERSION="13.2.2"

# The vendored source directory.
bo_citus_vendor() {
	local v="${BATCH_OPS_CITUS_VENDOR:-}"
	if [[ -z "$v" ]]; then
		v="$BO_ROOT/../shared/vendor/citus"
		[[ -d "$v" ]] || v="/work/shared/vendor/citus"
	fi
	(cd "$v" 2>/dev/null && pwd)
}

bo_citus_cache_dir() {
	local base
	if bo_is_root; then
		base=/var/cache/batch_ops
	else
		base="${XDG_CACHE_HOME:-$HOME/.cache}/batch_ops"
	fi
	# one tree per server build (a PG copy elsewhere has its own paths)
	local key
	key="$(bo_pg_config | md5sum | cut -c1-8)"
	echo "$base/citus-$BO_CITUS_VERSION-pg15-$key"
}

# true when citus.so of our version is installed in the server's pkglibdir
bo_citus_installed() {
	local pgc lib share
	pgc="$(bo_pg_config)"
	lib="$("$pgc" --pkglibdir)/citus.so"
	share="$("$pgc" --sharedir)/extension/citus.control"
	[[ -f "$lib" && -f "$share" ]] || return 1
	# no pipe: under pipefail an early grep -q would fail it with SIGPIPE
	grep -q "default_version = '${BO_CITUS_VERSION%.*}" "$share" 2>/dev/null &&
		grep -aq "Citus $BO_CITUS_VERSION" "$lib" 2>/dev/null
}

bo_ensure_citus() {
	if bo_citus_installed; then
		bo_log "citus $BO_CITUS_VERSION already installed"
		return 0
	fi
	local pgc cache src log vendor t0
	pgc="$(bo_pg_config)"
	cache="$(bo_citus_cache_dir)"
	src="$cache/citus-$BO_CITUS_VERSION"
	log="$cache/build.log"
	t0=$SECONDS
	mkdir -p "$cache" || return 1
	if [[ ! -f "$src/.bo_built" ]]; then
		vendor="$(bo_citus_vendor)" || {
			bo_die "citus: vendored source not found (set BATCH_OPS_CITUS_VENDOR)"
			return 1
		}
		rm -rf "$src"
		: >"$log"
		{
			tar -xzf "$vendor/citus-$BO_CITUS_VERSION.tar.gz" -C "$cache" &&
				cd "$src" &&
				{
					# 15.20+ exports have_createdb_privilege(); the patch uses it
					if grep -q have_createdb_privilege "$("$pgc" --includedir-server)/commands/dbcommands.h"; then
						patch -p1 <"$vendor/pg15.20-have_createdb_privilege.patch"
					fi
				} &&
				PG_CONFIG="$pgc" ./configure --without-libcurl PG_CONFIG="$pgc" &&
				make -j"$(nproc 2>/dev/null || echo 2)" &&
				touch "$src/.bo_built"
		} >>"$log" 2>&1
		if [[ ! -f "$src/.bo_built" ]]; then
			tail -n 30 "$log" >&2
			bo_die "citus $BO_CITUS_VERSION: build FAILED (log $log)"
			return 1
		fi
	fi
	if ! (cd "$src" && bo_as_root make install) >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		bo_die "citus $BO_CITUS_VERSION: make install FAILED (log $log)"
		return 1
	fi
	printf '==> citus %s built/installed into %s in %ss (log %s)\n' \
		"$BO_CITUS_VERSION" "$("$pgc" --pkglibdir)" "$((SECONDS - t0))" "$log" >&2
}
