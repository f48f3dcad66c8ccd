# Outbound jobs: secrets, credentials, idempotency, the cluster-wide
# in-flight cap and the cap on workers running outbound jobs.  Asserts:
#
#   1. without a credential key file an inline password is refused for
#      submit_outbound (55000) and allowed for run_outbound, which sends it;
#   2. with a key file: the job's stored spec has no password, the device
#      receives it, and the sealed copy is deleted when the job ends;
#   3. a credential named in the spec is used (as the submitter); another
#      role's credential "does not exist" (42704) at submit; a credential
#      dropped after the submit fails its targets only (credential_error);
#   4. the same idempotency key returns the same job, once;
#   5. batch_ops.outbound_concurrency = 1: never two requests at once;
#   6. batch_ops.max_outbound_workers (max_workers 2 -> 1): a second
#      outbound job waits queued while the first runs, and a batch job
#      submitted after it runs meanwhile;
#   7. targets count as items for the role's rate limit: more than the
#      burst is 54000, and run_outbound and submit_outbound drain the
#      same bucket (BO429).
use strict;
use warnings;
use MIME::Base64;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use BatchOpsNginx;

my $node = bo_node('outbound_jobs',
	"batch_ops.outbound_networks = '127.0.0.0/8'\nbatch_ops.max_workers = 2\n");
my $ng = nginx_start($node->basedir . '/nginx');
my $P = $ng->{port};

sub spec
{
	my ($devices, $extra) = @_;
	$extra //= '';
	return qq({"driver": "http", "devices": [$devices],
	  "connection_args": {"scheme": "http", "port": $P$extra}});
}
my $auth_dev = qq({"host": "127.0.0.1", "request": {"path": "/auth"}});

# 1. no key file
like(bo_sql_error($node, "SELECT batch_ops.submit_outbound('"
		  . spec($auth_dev, ', "username": "netops", "password": "s3cret"') . "')"),
	qr/^55000/, 'inline password without key file: 55000 for a job');
is($node->safe_psql('postgres', "SELECT r->>'output' FROM jsonb_array_elements(batch_ops.run_outbound('"
		  . spec($auth_dev, ', "username": "netops", "password": "s3cret"') . "')->'results') r"),
	'Basic ' . encode_base64('netops:s3cret', '') . "\n",
	'run_outbound sends an inline password without a key file');

# 2. with a key file
bo_credential_key($node, 'outbound.key');

my $id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('"
	  . spec($auth_dev, ', "username": "netops", "password": "s3cret"') . "')");
unlike($node->safe_psql('postgres', "SELECT options::text FROM batch_ops.job_queue WHERE id = $id"),
	qr/s3cret/, 'the stored spec has no password');
is(bo_wait_job($node, $id), 'completed', 'job with an inline password completed');
is($node->safe_psql('postgres', "SELECT output #>> '{}' FROM batch_ops.outbound_results($id)"),
	'Basic ' . encode_base64('netops:s3cret', '') . "\n", 'the device received the password');
is($node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_secret WHERE job_id = $id"),
	'0', 'the sealed password is gone once the job ended');

# a device's own password, and one in a device's connection_args
$id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('"
	  . spec(qq({"host": "127.0.0.1", "username": "d1", "password": "pw-dev-1", "request": {"path": "/auth"}},
	            {"host": "127.0.0.2", "connection_args": {"username": "d2", "password": "pw-dev-2"}, "request": {"path": "/auth"}})) . "')");
unlike($node->safe_psql('postgres', "SELECT options::text FROM batch_ops.job_queue WHERE id = $id"),
	qr/pw-dev/, "the stored spec has no device's password");
is(bo_wait_job($node, $id), 'completed', 'job with device passwords completed');
is($node->safe_psql('postgres', "SELECT string_agg(output #>> '{}', '' ORDER BY index) FROM batch_ops.outbound_results($id)"),
	'Basic ' . encode_base64('d1:pw-dev-1', '') . "\n" . 'Basic ' . encode_base64('d2:pw-dev-2', '') . "\n",
	'each device received its own password');

# 3. credentials
$node->safe_psql('postgres', <<'SQL');
CREATE ROLE alice LOGIN IN ROLE batch_ops_outbound;
SELECT batch_ops.credential_set('dev', '{"username": "u2", "password": "p2"}');
SQL
$id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('"
	  . spec($auth_dev, ', "credential": "dev"') . "')");
is(bo_wait_job($node, $id), 'completed', 'job with a credential completed');
is($node->safe_psql('postgres', "SELECT output #>> '{}' FROM batch_ops.outbound_results($id)"),
	'Basic ' . encode_base64('u2:p2', '') . "\n", 'the credential was used');
like(bo_sql_error($node, "SELECT batch_ops.submit_outbound('"
		  . spec($auth_dev, ', "credential": "dev"') . "')", 'alice'),
	qr/^42704: credential "dev" does not exist/, "another role's credential does not exist");

# a credential that is gone when the worker runs fails its targets only
# (submitted and dropped in one transaction: the worker sees neither before)
($id) = grep { /^\d+$/ } split /\n/, $node->safe_psql('postgres', "BEGIN;
SELECT batch_ops.credential_set('tmp', '{\"username\": \"u3\", \"password\": \"p3\"}');
SELECT batch_ops.submit_outbound('"
	  . spec(qq({"host": "127.0.0.1", "credential": "tmp", "request": {"path": "/auth"}},
	            {"host": "127.0.0.2", "credential": "dev", "request": {"path": "/auth"}},
	            {"host": "127.0.0.3", "credential": "tmp", "request": {"path": "/auth"}})) . "');
SELECT batch_ops.credential_drop('tmp');
COMMIT;");
is(bo_wait_job($node, $id), 'completed', 'job with a credential dropped after the submit completed');
is($node->safe_psql('postgres', "SELECT string_agg(index || ':' || success || ':' || coalesce(error, '') || ':'
	  || coalesce(message, output #>> '{}'), E'\n' ORDER BY index) FROM batch_ops.outbound_results($id)"),
	"0:false:credential_error:credential \"tmp\" does not exist\n"
	  . '1:true::Basic ' . encode_base64('u2:p2', '') . "\n\n"
	  . "2:false:credential_error:credential \"tmp\" does not exist",
	'the dropped credential fails its targets (credential_error), the other target runs');

# 4. idempotency
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM batch_ops.job_queue');
my $id1 = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('" . spec($auth_dev) . "', 'k1')");
my $id2 = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('" . spec($auth_dev) . "', 'k1')");
is($id2, $id1, 'same key, same job');
is($node->safe_psql('postgres', 'SELECT count(*) FROM batch_ops.job_queue'), $before + 1, 'one job');
like(bo_sql_error($node, "SELECT batch_ops.submit_outbound('" . spec(qq({"host": "127.0.0.2", "request": {"path": "/ok"}})) . "', 'k1')"),
	qr/^BO422/, 'same key, another spec: BO422');
bo_wait_job($node, $id1);

# 5. outbound_concurrency = 1
$node->append_conf('postgresql.conf', "batch_ops.outbound_concurrency = 1\n");
$node->reload;
usleep(300_000);
open my $fh, '>', $ng->{log};
close $fh;
my $devs = join(', ', map { qq({"host": "127.0.0.$_", "request": {"path": "/slow"}}) } 1, 2, 3, 1);
is($node->safe_psql('postgres', "SELECT batch_ops.run_outbound('" . spec($devs) . "')->'summary'->>'successful'"),
	'4', 'outbound_concurrency 1: all succeeded');
is(nginx_max_overlap(nginx_requests($ng, qr{/slow})), 1, 'outbound_concurrency 1: one request at a time');
$node->append_conf('postgresql.conf', "batch_ops.outbound_concurrency = 256\n");
$node->reload;
usleep(300_000);

# 6. max_outbound_workers: 1 with max_workers 2
$node->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY)');
# pinned, three 2 s targets on one host: 6 s each
my $slow = join(', ', map { qq({"host": "127.0.0.1", "request": {"path": "/slow2"}}) } 1 .. 3);
my $pinned = qq({"driver": "http", "devices": [$slow], "connection_args": {"scheme": "http", "port": $P},
  "options": {"queue_strategy": "pinned"}});
my $a = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('$pinned')");
my $b = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('$pinned')");
ok(bo_wait_until(sub { $node->safe_psql('postgres', "SELECT status FROM batch_ops.jobs WHERE job_id = $a") eq 'running' }, 20),
	'first outbound job running');
my $c = $node->safe_psql('postgres', q(SELECT batch_ops.submit_batch('create', 't', '[{"id": 1}, {"id": 2}]')));
is(bo_wait_job($node, $c, 'postgres', 20), 'completed', 'a batch job runs beside the outbound job');
is($node->safe_psql('postgres', "SELECT status FROM batch_ops.jobs WHERE job_id = $b"), 'queued',
	'the second outbound job waits at the cap');
is(bo_wait_job($node, $b, 'postgres', 30), 'completed', 'and runs once the first has ended');
is($node->safe_psql('postgres', "SELECT (SELECT started_at FROM batch_ops.jobs WHERE job_id = $b) >= (SELECT finished_at FROM batch_ops.jobs WHERE job_id = $a)"),
	't', 'never two outbound jobs at once');

# 7. targets count as items for the role's rate limit (ratelimit.c): a
# burst of 3, refilled at one a second
my $rl = 'SET batch_ops.rate_limit = 1; SET batch_ops.rate_limit_burst = 3;';
my $two = join(', ', map { qq({"host": "127.0.0.$_", "request": {"path": "/ok"}}) } 1, 2);
like(bo_sql_error($node, "$rl SELECT batch_ops.run_outbound('"
		  . spec(join(', ', map { qq({"host": "127.0.0.$_", "request": {"path": "/ok"}}) } 1 .. 4)) . "')"),
	qr/^54000/, 'rate limit: 4 targets never fit a burst of 3 (54000)');
like(bo_sql_error($node, "$rl SELECT batch_ops.run_outbound('" . spec($two) . "');
	SELECT batch_ops.submit_outbound('" . spec($two) . "')"),
	qr/^BO429/, 'rate limit: 2 targets of run_outbound, then 2 of submit_outbound: BO429');
like(bo_sql_error($node, "$rl SELECT pg_sleep(3); SELECT batch_ops.submit_outbound('" . spec($two) . "');
	SELECT batch_ops.run_outbound('" . spec($two) . "')"),
	qr/^BO429/, 'rate limit: 2 targets of submit_outbound, then 2 of run_outbound: BO429');

nginx_stop($ng);
$node->stop;
done_testing();
