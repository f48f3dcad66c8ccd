# An outbound job whose POSTMASTER is killed (kill -9) mid-job, then the
# node started again (issue #10, "Tests").  Unlike 091 (the worker killed,
# a crash restart by the postmaster) the whole server goes: the worker
# sees the postmaster's death in its wait loop and exits, the next start
# runs crash recovery and the launcher resumes the job.  Asserts:
#
#   1. the job resumes after the restart and completes, with exactly one
#      result per target;
#   2. every read-only target finishes exactly once and succeeds (those
#      in flight at the crash run again); a read whose result was
#      committed before the crash is not sent again;
#   3. changes (POST) are never sent twice: each is in nginx's log at most
#      once; those in flight at the crash are 'interrupted', the others
#      succeed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use BatchOpsNginx;

my $node = bo_node('outbound_pm_crash', "batch_ops.outbound_networks = '127.0.0.0/8'\n");
my $ng = nginx_start($node->basedir . '/nginx');
my $P = $ng->{port};

# 12 targets alternating read (GET /slow2) and change (POST /slowpost)
my $spec = nginx_mixed_spec($P);

my $id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('$spec')");
# the first wave has finished and the second is in flight
ok(bo_wait_until(sub {
	$node->safe_psql('postgres', "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL AND index % 2 = 0) >= 1"
		. " AND count(*) FILTER (WHERE finished_at IS NULL AND index % 2 = 1) >= 1"
		. " FROM batch_ops.outbound_result WHERE job_id = $id") eq 't' }, 30),
	'some results committed, changes in flight marked started');
my @done_reads = split /\n/, $node->safe_psql('postgres',
	"SELECT index FROM batch_ops.outbound_result WHERE job_id = $id"
	  . " AND finished_at IS NOT NULL AND index % 2 = 0 ORDER BY index");
# results commit with synchronous_commit off: a commit flushed here (an
# XID, synchronous_commit on) makes those read above durable
$node->safe_psql('postgres', 'SELECT txid_current()');
my $wpid = $node->safe_psql('postgres', "SELECT worker_pid FROM batch_ops.job_queue WHERE id = $id");
ok($wpid > 0, "worker pid $wpid");

$node->kill9;
# the worker notices the postmaster's death and exits (it must not keep
# the old shared memory, or the start below would refuse)
ok(bo_wait_until(sub { !kill(0, $wpid) }, 20), 'the worker exited after the postmaster died');
my $started = 0;
for (1 .. 20)
{
	last if ($started = $node->start(fail_ok => 1));
	sleep 1;
}
ok($started, 'the node started again after kill -9 of the postmaster');
is(bo_wait_job($node, $id, 'postgres', 60), 'completed', 'the job resumed and completed');

is($node->safe_psql('postgres', "SELECT count(*), count(DISTINCT index) FROM batch_ops.outbound_results($id)"),
	'12|12', 'exactly one result per target');
is($node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 0 AND success"),
	'6', 'every read succeeded (in flight ones ran again)');
my $interrupted = $node->safe_psql('postgres',
	"SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND error = 'interrupted'");
cmp_ok($interrupted, '>=', 1, "changes in flight at the crash are interrupted ($interrupted)");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND (success OR error = 'interrupted')"),
	'6', 'every other change was sent after the restart and succeeded');

# give nginx time to log the requests the crash cut short
usleep(2_500_000);
my (%posts, %gets);
$posts{ $_->{uri} }++ for nginx_requests($ng, qr{POST /slowpost});
$gets{ $_->{uri} }++ for nginx_requests($ng, qr{GET /slow2});
my @twice = grep { $posts{$_} > 1 } keys %posts;
is(scalar(@twice), 0, 'no change was sent twice') or diag explain \%posts;
my $ok_changes = $node->safe_psql('postgres',
	"SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND success");
cmp_ok(scalar(keys %posts), '>=', $ok_changes, 'each successful change was sent');
my $index_base = $node->safe_psql('postgres', "SELECT min(index) FROM batch_ops.outbound_results($id)");
my @resent = grep { my $i = $_ - $index_base; ($gets{"/slow2?i=$i"} // 0) != 1 } @done_reads;
ok(@done_reads >= 1, 'some reads had finished before the crash (' . scalar(@done_reads) . ')');
is(scalar(@resent), 0, 'a read finished before the crash was not sent again') or diag explain \%gets;
is(scalar(keys %gets), 6, 'every read was sent');

nginx_stop($ng);
$node->stop;
done_testing();
