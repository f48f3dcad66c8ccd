# An outbound job whose worker is killed (kill -9) mid-job.  Asserts:
#
#   1. the job resumes after the crash restart and completes, with exactly
#      one result per target;
#   2. read-only targets in flight at the crash run again and succeed;
#   3. changes (POST) are never sent twice: each is in the server's log at
#      most once; those in flight at the crash are 'interrupted', the ones
#      not yet started at the crash are sent after it and succeed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use BatchOpsNginx;

my $node = bo_node('outbound_crash', "batch_ops.outbound_networks = '127.0.0.0/8'\nrestart_after_crash = on\n");
my $ng = nginx_start($node->basedir . '/nginx');
my $P = $ng->{port};

# 12 targets alternating read (GET /slow2) and change (POST /slowpost)
my $spec = nginx_mixed_spec($P);

my $id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('$spec')");
ok(bo_wait_until(sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_result WHERE job_id = $id AND finished_at IS NULL") >= 2 }, 20),
	'changes in flight are marked started');
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM batch_ops.job_queue WHERE id = $id");
ok($pid > 0, "worker pid $pid");
kill 'KILL', $pid;

# wait for the crash restart
usleep(500_000);
$node->poll_query_until('postgres', 'SELECT 1', '1');
is(bo_wait_job($node, $id, 'postgres', 60), 'completed', 'the job resumed and completed');

is($node->safe_psql('postgres', "SELECT count(*), count(DISTINCT index) FROM batch_ops.outbound_results($id)"),
	'12|12', 'one result per target');
is($node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 0 AND success"),
	'6', 'every read succeeded (in flight ones ran again)');
my $interrupted = $node->safe_psql('postgres',
	"SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND error = 'interrupted'");
cmp_ok($interrupted, '>=', 1, "changes in flight at the crash are interrupted ($interrupted)");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND (success OR error = 'interrupted')"),
	'6', 'every other change was sent after the crash and succeeded');

# give nginx time to log the requests the crash cut short
usleep(2_500_000);
my %posts;
$posts{ $_->{uri} }++ for nginx_requests($ng, qr{POST /slowpost});
my @twice = grep { $posts{$_} > 1 } keys %posts;
is(scalar(@twice), 0, 'no change was sent twice') or diag explain \%posts;
my $sent = scalar(keys %posts);
my $ok_changes = $node->safe_psql('postgres',
	"SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND success");
cmp_ok($sent, '>=', $ok_changes, "each successful change was sent once ($sent sent)");

nginx_stop($ng);
$node->stop;
done_testing();
