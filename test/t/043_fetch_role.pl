# The cluster role batch_ops_fetch (membership = URL imports) is made by
# the first CREATE EXTENSION and reused by the others; one that someone
# else made with more than NOLOGIN is not adopted: whoever made it could
# hand out URL imports.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('fetch_role');
sub sq { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); }

is(sq('postgres', q{SELECT rolcanlogin FROM pg_roles WHERE rolname = 'batch_ops_fetch'}),
	'f', 'CREATE EXTENSION made the role, NOLOGIN');
sq('postgres', 'CREATE DATABASE second');
sq('second', 'CREATE EXTENSION batch_ops');
is(sq('postgres', q{SELECT count(*) FROM pg_roles WHERE rolname = 'batch_ops_fetch'}),
	'1', 'a second database reuses it');

sq('second', 'DROP EXTENSION batch_ops');
for my $attr ('LOGIN', 'CREATEROLE', 'CREATEDB', 'BYPASSRLS', 'REPLICATION', 'SUPERUSER')
{
	sq('postgres', "ALTER ROLE batch_ops_fetch $attr");
	my $r = bo_sql($node, 'second', 'CREATE EXTENSION batch_ops');
	is($r->{sqlstate}, '42710', "a role batch_ops_fetch with $attr is not adopted (42710)");
	like($r->{err},
		qr/role "batch_ops_fetch" already exists with attributes batch_ops does not give it.*HINT:  Drop the role, or make it NOLOGIN/s,
		"... and the error says what to do ($attr)");
	my $no = $attr eq 'SUPERUSER' ? 'NOSUPERUSER' : "NO$attr";
	sq('postgres', "ALTER ROLE batch_ops_fetch $no");
}
sq('second', 'CREATE EXTENSION batch_ops');
is(sq('second', q{SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'}),
	'0.4.0', 'once NOLOGIN without other attributes, the role is adopted');

$node->stop;
done_testing();
