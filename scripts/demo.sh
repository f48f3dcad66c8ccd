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
# shows batch_create (partial and atomic), batch_update, batch_delete, an
# idempotency key, an async CSV import job and a stored credential.
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

step "Idempotency key: the same call twice runs once; the second answer is the stored one"
run_sql "SELECT batch_ops.batch_create('orders', '[{\"sku\": \"K-1\", \"qty\": 1}]', idempotency_key => 'demo-1');"
run_sql "SELECT batch_ops.batch_create('orders', '[{\"sku\": \"K-1\", \"qty\": 1}]', idempotency_key => 'demo-1');"
run_sql "SELECT format('K-1 rows: %s', count(*)) FROM orders WHERE sku = 'K-1';"

step "Async CSV import in a background worker: 10,000 rows from a server file, 3 of them bad"
csv="$BATCH_OPS_SCRATCH/demo-orders.csv"
{
	echo "sku,qty,note"
	for ((i = 1; i <= 10000; i++)); do
		case $i in
		2500) echo "IMP-$i,many,not a number" ;;
		5000) echo "IMP-$i,-3,fails the CHECK" ;;
		7500) echo "IMP-1,1,duplicate of line 2" ;;
		*) echo "IMP-$i,$((i % 9 + 1)),imported" ;;
		esac
	done
} >"$csv"
chmod 644 "$csv"
job=$(bo_psql -At -c "SELECT batch_ops.submit_import('orders', '$csv', '{\"header\": true}')")
echo "   > SELECT batch_ops.submit_import('orders', '$csv', '{\"header\": true}');  -- job $job"
run_sql "SELECT jsonb_pretty(batch_ops.wait_job($job, '60 s') - 'submitted_at' - 'started_at' - 'finished_at');"
run_sql "SELECT line, error, message FROM batch_ops.job_errors($job);"

step "Action batches (the Meraki model): a draft, reviewed, then confirmed and run synchronously, all or nothing"
ab=$(bo_psql -At -c "SELECT batch_ops.create_action_batch('[
  {\"resource\": \"/orders\", \"operation\": \"create\", \"body\": {\"sku\": \"AB-1\", \"qty\": 1}},
  {\"resource\": \"/orders/1\", \"operation\": \"update\", \"body\": {\"note\": \"from an action batch\"}}]') ->> 'id'")
echo "   > SELECT batch_ops.create_action_batch('[{\"resource\": \"/orders\", \"operation\": \"create\", ...}, {\"resource\": \"/orders/1\", \"operation\": \"update\", ...}]');  -- draft $ab"
run_sql "SELECT jsonb_pretty(batch_ops.update_action_batch($ab, confirmed => true, synchronous => true) -> 'status');"
run_sql "SELECT id, sku, note FROM orders WHERE sku = 'AB-1' OR id = 1 ORDER BY id;"

step "Credentials: a key file, then a secret stored encrypted; the view shows field names, never values"
# test/regress.conf (included by bo_cluster_start) names the key file
# batch_ops_credential.key in the data directory; a real server keeps it
# outside (base backups would carry it) and names it by absolute path.
keyfile="$BATCH_OPS_CLUSTER_DIR/batch_ops_credential.key"
echo "   \$ head -c 32 /dev/urandom > $keyfile; chmod 600 $keyfile"
bo_as_pg sh -c 'umask 077 && head -c 32 /dev/urandom > "$1" && chmod 600 "$1"' sh "$keyfile"
run_sql "SELECT batch_ops.credential_set('core-ro', '{\"username\": \"netops\", \"password\": \"demo-only-password\"}');"
run_sql "SELECT batch_ops.credential_set('meraki', '{\"api_key\": \"demo-only-key\"}', '{\"header\": \"X-Cisco-Meraki-API-Key\"}');"
bo_psql -P pager=off -c 'SELECT name, owner, fields, grantees FROM batch_ops.credentials ORDER BY name'
run_sql "SELECT count(*) AS rows_holding_the_password FROM batch_ops.credential WHERE position(convert_to('demo-only-password', 'UTF8') in sealed) > 0;"

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
