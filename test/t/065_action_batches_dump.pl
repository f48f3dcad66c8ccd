# Action batches: path templates are configuration that pg_dump keeps.
#
# batch_ops.action_resource is registered with pg_extension_config_dump
# and names its tables and roles by regclass and regrole, so a dump and
# restore into a new database (where the tables get new OIDs) brings the
# templates back pointing at the restored tables, and a batch through them
# works there.  Batches themselves, like jobs, are not dumped.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('ab_dump');
$node->safe_psql('postgres', <<'SQL');
CREATE ROLE ab_owner;
CREATE SCHEMA net AUTHORIZATION ab_owner;
CREATE TABLE net.devices (serial text PRIMARY KEY, network_id text NOT NULL, name text);
ALTER TABLE net.devices OWNER TO ab_owner;
INSERT INTO net.devices VALUES ('Q1', 'N_1', 'ap');
SET ROLE ab_owner;
SELECT batch_ops.register_resource('/networks/{network_id}/devices/{serial}', 'net.devices');
SELECT batch_ops.create_action_batch('[{"resource": "/networks/N_1/devices/Q1",
  "operation": "update", "body": {"name": "lobby"}}]', true, true);
SQL

my $dump = $node->basedir . '/ab.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump of a database with templates and batches');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
# a table created first, so that the restored one gets another OID
$node->safe_psql('restored', 'CREATE TABLE filler (id int)');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('restored'), $dump ],
	'pg_restore into a new database');

is( $node->safe_psql('restored',
		'SELECT path, target, registered_by FROM batch_ops.resources ORDER BY path'),
	'/networks/{network_id}/devices/{serial}|net.devices|ab_owner',
	'the template is back, with its table and role by name');
isnt(
	$node->safe_psql('restored', q{SELECT 'net.devices'::regclass::oid}),
	$node->safe_psql('postgres', q{SELECT 'net.devices'::regclass::oid}),
	'the restored table has another OID');
is($node->safe_psql('restored', 'SELECT count(*) FROM batch_ops.action_batch'),
	'0', 'batches are not dumped');
is( $node->safe_psql(
		'restored', q{SELECT batch_ops.create_action_batch('[{"resource": "/networks/N_1/devices/Q1",
  "operation": "update", "body": {"name": "hall"}}]', true, true) #>> '{status,completed}'}),
	'true',
	'a batch through the restored template runs');
is($node->safe_psql('restored', q{SELECT name FROM net.devices WHERE serial = 'Q1'}),
	'hall', 'on the restored table');

$node->stop;
done_testing();
