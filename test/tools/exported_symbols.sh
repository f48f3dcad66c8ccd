#!/usr/bin/env bash
#
# exported_symbols.sh [batch_ops.so]
#
# The library is built with -fvisibility=hidden: it must export its entry
# points and nothing else, since PG15 loads modules RTLD_GLOBAL and any
# other exported name (batch_run, subxact_begin, source_open, ...) would
# land in the backend's global namespace.  The entry points are:
#   - _PG_init and Pg_magic_func (PG_MODULE_MAGIC);
#   - every C symbol an install or upgrade script names (AS
#     'MODULE_PATHNAME', 'sym': sql/batch_ops.sql and every released
#     sql/batch_ops--*.sql, whose databases still call their symbols), and
#     its info function pg_finfo_sym;
#   - every background worker entry point (bgw_function_name in src/*.c);
#   - in the test build (make TEST_MODULES=1) only, the SQL functions of
#     test/kinds/*.c and test/modules/*.c (allowed, not required).
# Exit status: 0 if the exports are exactly those, 1 if anything else is
# exported or an entry point is missing, 77 (skip) if nm or the library is
# not there.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SO="${1:-$ROOT/batch_ops.so}"

command -v nm >/dev/null || { echo "exported_symbols: nm not found" >&2; exit 77; }
[[ -f "$SO" ]] || { echo "exported_symbols: $SO not built" >&2; exit 77; }

expected="$(
	{
		echo _PG_init
		echo Pg_magic_func
		grep -ho "MODULE_PATHNAME'[[:space:]]*,[[:space:]]*'[A-Za-z0-9_]*'" "$ROOT"/sql/batch_ops.sql "$ROOT"/sql/batch_ops--*.sql |
			sed "s/.*,[[:space:]]*'\([A-Za-z0-9_]*\)'/\1/" |
			while read -r sym; do echo "$sym"; echo "pg_finfo_$sym"; done
		grep -ho 'bgw_function_name, BGW_MAXLEN, "[A-Za-z0-9_]*"' "$ROOT"/src/*.c |
			sed 's/.*"\([A-Za-z0-9_]*\)"/\1/'
	} | sort -u
)"

# the test build's own SQL functions: allowed, not required
optional="$(
	grep -ho 'PG_FUNCTION_INFO_V1([A-Za-z0-9_]*)' "$ROOT"/test/kinds/*.c "$ROOT"/test/modules/*.c 2>/dev/null |
		sed 's/.*(\(.*\))/\1/' |
		while read -r sym; do echo "$sym"; echo "pg_finfo_$sym"; done | sort -u
)"

# defined dynamic symbols, without the linker's own
exported="$(nm -D --defined-only "$SO" | awk '{print $NF}' |
	grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u)"

extra="$(comm -13 <(echo "$expected") <(echo "$exported") | comm -23 - <(echo "$optional"))"
missing="$(comm -23 <(echo "$expected") <(echo "$exported"))"

status=0
if [[ -n "$extra" ]]; then
	echo "exported_symbols: exported but not an entry point:"
	sed 's/^/  /' <<<"$extra"
	status=1
fi
if [[ -n "$missing" ]]; then
	echo "exported_symbols: entry point not exported (declare it PGDLLEXPORT):"
	sed 's/^/  /' <<<"$missing"
	status=1
fi
if [[ $status == 0 ]]; then
	echo "exported_symbols: ok, $(wc -l <<<"$exported") symbols, all entry points"
fi
exit $status
