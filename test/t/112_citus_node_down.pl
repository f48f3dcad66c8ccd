# Issue #13: a worker node stopped in the middle of an import into a
# distributed table.  Jobs run on the coordinator; the chunk that was
# writing when the node went away fails, and with it the job: status
# "failed", its error naming the node (host:port), the chunks committed
# before kept (their rows and the job's counts agree once the node is
# back), nothing of the failed chunk written.  Once the node is back,
# resume_job() finishes it from its last checkpoint: every row once, no
# conflict (resubmitting would report the rows already there as
# conflicts).
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
# A chunk whose commit reached the coordinator but whose COMMIT PREPARED
# never reached the node ("failed to commit transaction on ...") is
# committed on the node by Citus's 2PC recovery, which its maintenance
# daemon runs every citus.recover_2pc_interval (1 min): run it now.
q_('SELECT recover_prepared_transactions()');
is(q_('SELECT count(*) FROM t'), $created, 'the committed chunks are kept, nothing of the failed one');
is(q_("SELECT count(*) FROM t WHERE id > (SELECT max(id) FROM t) - 1000 AND v <> 'v' || id"), '0',
	'rows are as in the file');

# resumed, the import finishes the work from its last checkpoint
is(q_("SELECT batch_ops.resume_job($job)->>'status'"), 'queued', 'resume_job queues the job again');
is(bo_wait_job($coord, $job, 'postgres', 300), 'completed', 'resumed, the import completes');
is( q_("SELECT concat_ws(' ', r->'created', r->'failed', r->'errors_total')"
		. " FROM (SELECT batch_ops.job($job)->'results' r) s"),
	"$n 0 0", 'every row of the file created once, no conflict');
is(q_("SELECT count(*) FROM batch_ops.job_errors($job)"), '0', 'no error at all');
is(q_('SELECT count(*) || \' \' || count(DISTINCT id) FROM t'), "$n $n", 'every row once');
is(q_("SELECT count(*) FROM t WHERE v <> 'v' || id"), '0', 'rows are as in the file');

done_testing();
