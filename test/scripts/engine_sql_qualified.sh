#!/usr/bin/env bash
#
# Every statement the batch engine generates names its functions, operators
# and types with their schema, so that nothing in it is found through the
# caller's search_path (issue #8, item 2).
#
# Runs the engine's pg_regress files in a scratch database of the test
# cluster with auto_explain logging every nested statement, collects the
# statements the engine ran (those over pg_catalog.unnest($1), and the
# idempotency bookkeeping) from the server log and checks each with
# test/tools/sql_qualified.py: no function call but pg_catalog.f(...), no
# operator outside OPERATOR(schema.op), no :: cast, no CAST to an
# unqualified type.  The checker is first run on statements written the old
# way, which it must reject.  Exit 0 = pass, 77 = skip.

set -euo pipefail

NAME=engine_sql_qualified
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=/dev/null
source "${BATCH_OPS_LIB:-$root/scripts/lib.sh}"

PY="$(command -v python3 || true)"
if [[ -z "$PY" ]]; then
	echo "$NAME: SKIP: python3 is not installed"
	exit 77
fi
log="${BATCH_OPS_CLUSTER_LOG:?BATCH_OPS_CLUSTER_LOG is not set}"
checker="$root/test/tools/sql_qualified.py"
db=batch_ops_sql_qualified
out="$(mktemp /tmp/batch_ops-sqlq.XXXXXX)"
trap 'rm -f "$out"; bo_psql -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

# the checker must reject the old forms
if printf '%s\n' \
	'UPDATE s.t AS t SET v = r.v FROM unnest($1) WITH ORDINALITY AS r(id, v, o) WHERE t.id = r.id RETURNING r.o, to_jsonb(t.v)' \
	'SELECT CAST(x AS int8) FROM s.t WHERE a OPERATOR(=) b' |
	"$PY" "$checker" >"$out"; then
	echo "$NAME: the checker accepted unqualified names:" >&2
	cat "$out" >&2
	exit 1
fi

bo_psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
start=$(($(wc -c <"$log") + 1))
for t in create update delete atomic errors limits types triggers privileges \
	partitioned idempotency security_engine value_errors internal_names; do
	PGOPTIONS="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 -c auto_explain.log_nested_statements=on -c log_min_messages=log" \
		"$BO_PG_BINDIR/psql" -X -q -d "$db" -f "$root/sql/$t.sql" >/dev/null 2>&1 || true
done

tail -c +"$start" "$log" | grep -o 'Query Text: .*' | sed 's/^Query Text: //' |
	grep -E 'pg_catalog\.unnest\(\$1\)|unnest\(\$1\)|idempotency_keys.*\$1' | sort -u >"$out"
n=$(wc -l <"$out")
if ((n < 100)); then
	echo "$NAME: only $n engine statements found in the server log; is auto_explain installed?" >&2
	exit 1
fi
if "$PY" "$checker" <"$out"; then
	echo "$NAME: ok"
	exit 0
fi
exit 1
