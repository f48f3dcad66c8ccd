#!/usr/bin/env bash
#
# batch_ops — demo.
#
#   sudo scripts/demo.sh          build, install, start a demo cluster, run the demo
#   sudo scripts/demo.sh stop     stop the demo cluster
#
# Installs what is missing, builds and installs the extension, starts a
# throwaway PostgreSQL 15 cluster in .demo/pgdata (port 5499, or
# $BATCH_OPS_DEMO_PORT) with batch_ops preloaded, creates a small table and
# shows batch_create (partial and atomic), batch_update and batch_delete.
# The cluster keeps running afterwards so you can try things yourself;
# running the demo again starts from scratch.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

PORT="${BATCH_OPS_DEMO_PORT:-5499}"
CLUSTER="$ROOT/.demo/pgdata"

if [[ "${1:-}" == stop ]]; then
	bo_cluster_stop "$CLUSTER"
	echo "demo cluster stopped"
	exit 0
fi

bo_ensure_deps
bo_build_install
mkdir -p "$ROOT/.demo"
bo_cluster_start "$CLUSTER" "$PORT"

if [[ -t 1 ]]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
step() { printf '\n%s-- %s%s\n' "$B" "$*" "$N"; }
# Echo a statement, then run it and print its single value as is (so the
# jsonb_pretty output stays readable).
run_sql() {
	printf '%s\n' "$1" | sed 's/^/   > /'
	bo_psql -At -c "$1"
}
table() { bo_psql -P pager=off -c 'TABLE orders ORDER BY id'; }

step "CREATE EXTENSION batch_ops and a demo table"
bo_psql -q <<'SQL'
CREATE EXTENSION batch_ops CASCADE;
CREATE TABLE orders (
    id   int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku  text NOT NULL UNIQUE,
    qty  int  NOT NULL CHECK (qty > 0),
    note text
);
SQL
bo_psql -P pager=off -c '\d orders'

step "Partial batch_create: 4 items, the third has qty = 0 (validation_error); the other three are created"
run_sql "SELECT jsonb_pretty(batch_ops.batch_create('orders', '[
    {\"sku\": \"A-100\", \"qty\": 2, \"note\": \"first\"},
    {\"sku\": \"B-200\", \"qty\": 5},
    {\"sku\": \"C-300\", \"qty\": 0, \"note\": \"fails the CHECK\"},
    {\"sku\": \"D-400\", \"qty\": 1, \"note\": null}
]'));"
table

step "Atomic batch_create: sku A-100 already exists (conflict) and qty = -1 (validation_error): nothing is applied, every failure is listed"
run_sql "SELECT format('rows before: %s', count(*)) FROM orders;"
run_sql "SELECT jsonb_pretty(batch_ops.batch_create('orders', '[
    {\"sku\": \"E-500\", \"qty\": 3},
    {\"sku\": \"A-100\", \"qty\": 1},
    {\"sku\": \"F-600\", \"qty\": -1}
]', atomic => true));"
run_sql "SELECT format('rows after: %s (unchanged; E-500 rows: %s)', count(*), count(*) FILTER (WHERE sku = 'E-500')) FROM orders;"

step "batch_update: set qty of A-100, add a note to B-200, and a key that does not exist (not_found)"
run_sql "SELECT jsonb_pretty(batch_ops.batch_update('orders', jsonb_build_array(
    jsonb_build_object('id', (SELECT id FROM orders WHERE sku = 'A-100'), 'qty', 10),
    jsonb_build_object('id', (SELECT id FROM orders WHERE sku = 'B-200'), 'note', 'gift wrap'),
    jsonb_build_object('id', 999, 'qty', 1))));"
table

step "batch_delete: delete B-200 and D-400 by key, plus a key that does not exist (not_found)"
run_sql "SELECT jsonb_pretty(batch_ops.batch_delete('orders',
    (SELECT jsonb_agg(id ORDER BY id) FROM orders WHERE sku IN ('B-200', 'D-400')) || '[999]'));"
table

data="$BATCH_OPS_CLUSTER_DIR"
cat <<EOF

-- The demo cluster is still running (data in $data, log in $BATCH_OPS_CLUSTER_LOG).

Connect with:
    psql -h 127.0.0.1 -p $PORT -U postgres postgres
  or, as root, through the socket:
    psql -h $PGHOST -p $PORT -U postgres postgres

Stop it with:
    sudo $ROOT/scripts/demo.sh stop
  or:
    sudo runuser -u $(bo_pg_owner) -- $BO_PG_BINDIR/pg_ctl -D $data stop
EOF
