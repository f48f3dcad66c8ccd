# The TAP harness itself: a preloaded cluster runs a batch and a job.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('main');
$node->safe_psql('postgres',
	'CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)');
is( $node->safe_psql('postgres',
		q{SELECT batch_ops.batch_create('t', '[{"id": 1, "v": "a"}, {"id": 2}]') #>> '{errors,0,error}'}
	),
	'validation_error',
	'batch_create reports a NOT NULL item');
my $id = $node->safe_psql('postgres',
	q{SELECT batch_ops.submit_batch('create', 't', '[{"id": 3, "v": "c"}]')});
is(bo_wait_job($node, $id), 'completed', 'a job runs in a background worker');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '2', 'rows written');
$node->stop;
done_testing();
