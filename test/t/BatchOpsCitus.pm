# BatchOpsCitus — a three-node Citus cluster on loopback for the Citus TAP
# tests (test/t/11x_citus_*.pl, issue #13).
#
# A coordinator and two workers, each a PostgreSQL::Test::Cluster node with
# shared_preload_libraries = 'citus,batch_ops' (Citus must come first),
# listening on 127.0.0.1 with trust for loopback TCP (Citus connects to the
# nodes, the coordinator to itself too, over TCP).  citus.so comes from
# scripts/citus.sh (bo_ensure_citus), which scripts/test.sh runs before the
# TAP suite; without it these tests fail, they are not skipped.
#
# citus.max_cached_conns_per_worker is raised from its default of 1: with 1,
# each multi-shard statement reconnects to the workers (about 3 s against
# 0.1 s for a 1,000-row insert into 32 shards here).
package BatchOpsCitus;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(bo_citus_cluster bo_citus_conf bo_citus_twins bo_citus_same_rows);

# The configuration every node gets (after BatchOpsTest's defaults).
sub bo_citus_conf
{
	return <<'CONF';
shared_preload_libraries = 'citus,batch_ops'
listen_addresses = '127.0.0.1'
max_worker_processes = 32
max_connections = 100
lc_messages = 'C'
timezone = 'UTC'
log_min_messages = warning
fsync = off
citus.max_cached_conns_per_worker = 8
citus.shard_count = 8
max_prepared_transactions = 100
citus.node_connection_timeout = 5000
CONF
}

sub citus_node
{
	my ($name, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', bo_citus_conf());
	$node->append_conf('postgresql.conf', $extra) if defined $extra;
	$node->append_conf('pg_hba.conf', "host all all 127.0.0.1/32 trust\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	return $node;
}

# bo_citus_cluster(NAME, [EXTRA_CONF]) — (coordinator, worker1, worker2),
# started, the workers added, batch_ops created on the coordinator (Citus
# propagates it to the workers).
sub bo_citus_cluster
{
	my ($name, $extra) = @_;
	my $coord = citus_node("${name}_coord", $extra);
	my @workers = map { citus_node("${name}_w$_", $extra) } (1, 2);
	$coord->safe_psql('postgres',
		"SELECT citus_set_coordinator_host('127.0.0.1', " . $coord->port . ")");
	$coord->safe_psql('postgres',
		"SELECT citus_add_node('127.0.0.1', " . $_->port . ")")
	  for @workers;
	$coord->safe_psql('postgres', 'CREATE EXTENSION batch_ops');
	return ($coord, @workers);
}

# bo_citus_twins(COORD, DDL) — run DDL (tables written S.name) in two new
# schemas: c, whose tables the test then hands to Citus, and l, their local
# twins with the same names (so the same messages).
sub bo_citus_twins
{
	my ($coord, $ddl) = @_;
	for my $s ('c', 'l')
	{
		(my $d = $ddl) =~ s/\bS\./$s./g;
		$coord->safe_psql('postgres', "CREATE SCHEMA $s; $d");
	}
	return;
}

# bo_citus_same_rows(COORD, TABLE, ORDER) — test that c.TABLE holds the
# rows of l.TABLE (a digest of them in ORDER, and their count).
sub bo_citus_same_rows
{
	my ($coord, $table, $order) = @_;
	my $digest = "SELECT md5(coalesce(jsonb_agg(t ORDER BY $order)::text, '')) || ' ' || count(*) FROM";
	is($coord->safe_psql('postgres', "$digest c.$table t"),
		$coord->safe_psql('postgres', "$digest l.$table t"),
		"$table: same rows as the local table");
	return;
}

1;
