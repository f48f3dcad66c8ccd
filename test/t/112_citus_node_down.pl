# Issue #13: a worker node stopped in the middle of an import into a
# distributed table.  Jobs run on the coordinator; the chunk that was
# writing when the node went away fails, and with it the job: status
# "failed", its error naming the node (host:port), the chunks committed
# before kept (their rows and the job's counts agree once the node is
# back), nothing of the failed chunk written.  Submitting the same import
# again finishes it: the rows already there come back as conflicts, the
# others are written, and the table ends with every row once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;
use BatchOpsCitus;

my ($coord, $w1, $w2) = bo_citus_cluster('cdown');
my $dir = bo_scratch($coord);
sub q_ { my ($sql) = @_; return bo_q($coord, 'postgres', $sql); }

$coord->safe_psql('postgres', q{
	SET client_min_messages = warning;
	CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL);
	SELECT create_distributed_table('t', 'id');
});
my $n = 150000;
$coord->safe_psql('postgres',
	"COPY (SELECT i, 'v' || i FROM generate_series(1, $n) i) TO '$dir/big.csv' WITH (FORMAT csv)");

my $job = $coord->safe_psql('postgres',
	qq{SELECT batch_ops.submit_import('t', '$dir/big.csv', '{"header": false, "chunk_size": 1000}')});
ok( bo_wait_sql($coord, 'postgres',
		"SELECT (batch_ops.job($job)->'results'->>'created')::int >= 3000", 60),
	'the import has committed a few chunks');
$w2->stop('immediate');
my $status = bo_wait_job($coord, $job, 'postgres', 120);
is($status, 'failed', 'the job failed when a worker went away');
my $error = q_("SELECT batch_ops.job($job)->>'error'");
my $port = $w2->port;
like($error, qr/127\.0\.0\.1:$port/, "its error names the node: $error");
my $created = q_("SELECT batch_ops.job($job)->'results'->>'created'");
cmp_ok($created, '>=', 3000, 'the committed chunks are counted');
cmp_ok($created, '<', $n, 'the job did not finish');

$w2->start;
ok(bo_wait_sql($coord, 'postgres', 'SELECT count(*) >= 0 FROM t', 60), 'the node is back');
is(q_('SELECT count(*) FROM t'), $created, 'the committed chunks are kept, nothing of the failed one');
is(q_("SELECT count(*) FROM t WHERE id > (SELECT max(id) FROM t) - 1000 AND v <> 'v' || id"), '0',
	'rows are as in the file');

# the same import again finishes the work
my $again = $coord->safe_psql('postgres', qq{SELECT batch_ops.submit_import('t', '$dir/big.csv', '{"header": false, "chunk_size": 10000}')});
is(bo_wait_job($coord, $again, 'postgres', 300), 'completed', 'submitted again, the import completes');
is(q_("SELECT (batch_ops.job($again)->'results'->>'created')::int + $created"), $n,
	'it writes the rows that were missing');
is(q_("SELECT batch_ops.job($again)->'results'->>'failed'"), $created,
	'the rows already there are conflicts');
is(q_("SELECT DISTINCT error FROM batch_ops.job_errors($again)"), 'conflict', 'only conflicts');
is(q_('SELECT count(*) || \' \' || count(DISTINCT id) FROM t'), "$n $n", 'every row once');

done_testing();
