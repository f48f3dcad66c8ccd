# Outbound batches against a real HTTP server on loopback (nginx, three
# addresses = three devices; test/t/BatchOpsNginx.pm).  Asserts:
#
#   1. no traffic with the default settings: with outbound_networks ''
#      run_outbound and submit_outbound are refused (42501) and nginx sees
#      no request;
#   2. spec errors: an unknown key is 22023 naming it, so is an unknown
#      ssh device_type (ssh is 0A000 in a build without libssh2), more
#      than max_sync_targets for run_outbound is 54000;
#   3. fifo: never more than host_concurrency requests at once per host
#      (and exactly that many, so the check can fail);
#   4. pinned: one host's targets are sent one at a time, in input order;
#   5. ttl: targets not started when it runs out are 'expired';
#   6. retries: a 503 with Retry-After: 1 is sent retries + 1 times, at
#      least a second apart; a POST (a change) is not re-sent after a
#      response without retry_unsafe;
#   7. response_too_large, connect_error;
#   8. cancel_job of a running outbound job ends it within a second, its
#      unfinished targets 'cancelled';
#   9. run_outbound in a transaction that rolls back returns its results
#      and leaves no job row;
#   9b. a query cancel stops run_outbound at once;
#  10. another role cannot see a job's results ('does not exist', 42704).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use BatchOpsNginx;

my $node = bo_node('outbound', "batch_ops.max_workers = 3\n");
my $ng = nginx_start($node->basedir . '/nginx');
my $P = $ng->{port};

sub spec
{
	my ($devices, $extra) = @_;
	$extra //= '';
	return qq({"driver": "http", "devices": [$devices],
	  "connection_args": {"scheme": "http", "port": $P, "timeout": 10}$extra});
}

sub devs
{
	my ($n, $path, @hosts) = @_;
	@hosts = ('127.0.0.1') unless @hosts;
	return join(', ',
		map { qq({"host": "$hosts[$_ % @hosts]", "request": {"path": "$path?i=$_"}}) }
		  0 .. $n - 1);
}

# 1. no traffic by default
like(bo_sql_error($node, "SELECT batch_ops.run_outbound('" . spec(devs(1, '/ok')) . "')"),
	qr/^42501/, 'run_outbound refused with outbound_networks unset');
like(bo_sql_error($node, "SELECT batch_ops.submit_outbound('" . spec(devs(1, '/ok')) . "')"),
	qr/^42501/, 'submit_outbound refused with outbound_networks unset');
is(scalar(nginx_requests($ng)), 0, 'no request reached the server');

$node->append_conf('postgresql.conf', "batch_ops.outbound_networks = '127.0.0.0/8'\n");
$node->reload;
usleep(300_000);

# 2. spec errors
like(bo_sql_error($node, "SELECT batch_ops.run_outbound('" . spec(devs(1, '/ok'), ', "optionz": {}') . "')"),
	qr/^22023: unknown key "optionz"/, 'unknown key: 22023 naming it');
like(bo_sql_error($node, "SELECT batch_ops.run_outbound('" . spec(devs(1, '/ok'), ', "options": {"ttl": "x"}') . "')"),
	qr/^22023: .*"options\.ttl"/, 'bad option: 22023 naming it');
like(bo_sql_error($node, q(SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "127.0.0.1", "device_type": "ios"}], "command": ["show clock"]}'))),
	qr/^(22023: .*"devices\[0\]\.device_type"|0A000)/, 'ssh: an unknown device_type is 22023 naming it');
like(bo_sql_error($node, "SELECT batch_ops.run_outbound('" . spec(devs(51, '/ok')) . "')"),
	qr/^54000/, 'over max_sync_targets: 54000');

# 3. fifo, host_concurrency 2: 6 slow targets on each of two hosts
truncate_log();
my $t0 = time;
my $r = $node->safe_psql('postgres', "SELECT batch_ops.run_outbound('"
	  . spec(devs(12, '/slow', '127.0.0.1', '127.0.0.2'), ', "options": {"host_concurrency": 2}')
	  . "')->'summary'");
my $elapsed = time - $t0;
is($r, '{"total": 12, "failed": 0, "successful": 12}', 'fifo: every target succeeded');
my @reqs = nginx_requests($ng);
is(scalar(@reqs), 12, 'fifo: 12 requests');
for my $h ('127.0.0.1', '127.0.0.2')
{
	is(nginx_max_overlap(grep { $_->{addr} eq $h } @reqs), 2,
		"fifo: at most (and exactly) 2 at once on $h");
}
cmp_ok($elapsed, '<', 2.5, "fifo: hosts in parallel (${elapsed}s for 3 rounds of 0.5 s)");

# 4. pinned: one host, five targets, in order, one at a time
truncate_log();
$r = $node->safe_psql('postgres', "SELECT batch_ops.run_outbound('"
	  . spec(devs(5, '/slow', '127.0.0.3') . ', ' . devs(3, '/ok', '127.0.0.1'),
		', "options": {"queue_strategy": "pinned", "host_concurrency": 4}')
	  . "')->'summary'->>'successful'");
is($r, '8', 'pinned: every target succeeded');
@reqs = grep { $_->{addr} eq '127.0.0.3' } nginx_requests($ng);
is(join(',', map { $_->{uri} =~ /i=(\d+)/; $1 } sort { $a->{start} <=> $b->{start} } @reqs),
	'0,1,2,3,4', 'pinned: in input order');
is(nginx_max_overlap(@reqs), 1, 'pinned: one at a time');

# 5. ttl 1 s, concurrency 1, four 0.5 s targets: the last ones expire
$r = $node->safe_psql('postgres', "SELECT string_agg(coalesce(x->>'error', 'ok'), ',' ORDER BY (x->>'index')::int) FROM jsonb_array_elements(batch_ops.run_outbound('"
	  . spec(devs(4, '/slow', '127.0.0.1', '127.0.0.2'), ', "options": {"ttl": 1, "concurrency": 1}')
	  . "')->'results') x");
like($r, qr/^ok,ok,(ok,)?expired/, "ttl: late targets expired ($r)");

# 6. retries and Retry-After; a change is not re-sent after a response
truncate_log();
$t0 = time;
$r = $node->safe_psql('postgres', "SELECT x->>'error', x->>'status_code', x->>'attempts' FROM jsonb_array_elements(batch_ops.run_outbound('"
	  . spec(qq({"host": "127.0.0.1", "request": {"path": "/busy"}}), ', "options": {"retries": 2}')
	  . "')->'results') x");
$elapsed = time - $t0;
is($r, 'http_error|503|3', 'retries: 503 three times');
cmp_ok($elapsed, '>=', 2.0, "retries: Retry-After honoured (${elapsed}s)");
is(scalar(nginx_requests($ng, qr{/busy})), 3, 'retries: three requests sent');
truncate_log();
$r = $node->safe_psql('postgres', "SELECT x->>'attempts' FROM jsonb_array_elements(batch_ops.run_outbound('"
	  . spec(qq({"host": "127.0.0.1", "request": {"path": "/busy", "method": "POST", "body": {"a": 1}}}), ', "options": {"retries": 2}')
	  . "')->'results') x");
is($r, '1', 'a change is not re-sent after a response');
is(scalar(nginx_requests($ng, qr{/busy})), 1, 'one POST sent');
truncate_log();
$r = $node->safe_psql('postgres', "SELECT x->>'attempts' FROM jsonb_array_elements(batch_ops.run_outbound('"
	  . spec(qq({"host": "127.0.0.1", "request": {"path": "/busy", "method": "POST", "body": {"a": 1}}}), ', "options": {"retries": 1, "retry_unsafe": true}')
	  . "')->'results') x");
is($r, '2', 'retry_unsafe: the change is re-sent');

# 7. response_too_large, connect_error
$r = $node->safe_psql('postgres', "SELECT string_agg(x->>'error', ',' ORDER BY (x->>'index')::int) FROM jsonb_array_elements(batch_ops.run_outbound('"
	  . qq({"driver": "http", "devices": [{"host": "127.0.0.1", "port": $P, "request": {"path": "/big"}}, {"host": "127.0.0.1", "port": 1, "request": {"path": "/"}}],
	       "connection_args": {"scheme": "http"}, "options": {"max_output_bytes": 1000, "retries": 0}})
	  . "')->'results') x");
is($r, 'response_too_large,connect_error', 'response_too_large, connect_error');

# 8. cancel within a second
my $id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('"
	  . spec(devs(10, '/slow2', '127.0.0.1'), ', "options": {"concurrency": 2}') . "')");
ok(bo_wait_until(sub { $node->safe_psql('postgres', "SELECT status FROM batch_ops.jobs WHERE job_id = $id") eq 'running' }, 20),
	'cancel: the job is running');
usleep(500_000);
$t0 = time;
is($node->safe_psql('postgres', "SELECT batch_ops.cancel_job($id)"), 't', 'cancel_job: true');
is(bo_wait_job($node, $id, 'postgres', 10), 'cancelled', 'cancel: job cancelled');
my $took = time - $t0;
cmp_ok($took, '<', 1.0, "cancel: within a second (${took}s)");
is($node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_results($id) WHERE error IN ('cancelled', 'interrupted')"),
	'10', 'cancel: every unfinished target cancelled');

# async job answer
$id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('"
	  . spec(devs(3, '/ok', '127.0.0.1', '127.0.0.2')) . "')");
is(bo_wait_job($node, $id), 'completed', 'job completed');
is($node->safe_psql('postgres', "SELECT batch_ops.job($id)->'results'->'summary'"),
	'{"total": 3, "failed": 0, "successful": 3}', 'job(): summary');
is($node->safe_psql('postgres', "SELECT jsonb_array_length(batch_ops.job($id)->'results'->'results')"),
	'3', 'job(): results');

# 9. run_outbound in a transaction that rolls back
my $jobs_before = $node->safe_psql('postgres', 'SELECT count(*) FROM batch_ops.job_queue');
my $out = $node->safe_psql('postgres', "BEGIN; SELECT batch_ops.run_outbound('"
	  . spec(devs(2, '/ok')) . "')->'summary'->>'successful'; ROLLBACK;");
is($out, '2', 'run_outbound in a rolled back transaction returns results');
is($node->safe_psql('postgres', 'SELECT count(*) FROM batch_ops.job_queue'), $jobs_before,
	'and leaves no job row');

# 9b. a cancel of run_outbound (pg_cancel_backend) works at once
my $h = bo_psql_start($node, 'postgres', "SELECT batch_ops.run_outbound('"
	  . spec(devs(4, '/slow2', '127.0.0.1'), ', "options": {"concurrency": 1}') . "')", 'ob_sync');
ok(bo_wait_until(sub { $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ob_sync' AND state = 'active'") eq '1' }, 20),
	'run_outbound is running');
usleep(300_000);
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'ob_sync'");
bo_psql_finish($h);
$took = time - $t0;
is($h->{sqlstate}, '57014', 'run_outbound: cancelled (57014)');
cmp_ok($took, '<', 1.0, "run_outbound: cancel took effect at once (${took}s)");

# 10. another role's results
$node->safe_psql('postgres', <<'SQL');
CREATE ROLE alice LOGIN IN ROLE batch_ops_outbound;
CREATE ROLE bob LOGIN IN ROLE batch_ops_outbound;
SQL
my $res = bo_sql($node, 'postgres', "SELECT batch_ops.submit_outbound('" . spec(devs(1, '/ok')) . "')", 30, 'alice');
my ($aid) = $res->{out} =~ /(\d+)/;
ok($aid, 'alice submitted a job');
is(bo_wait_job($node, $aid), 'completed', "alice's job completed");
is(bo_sql($node, 'postgres', "SELECT count(*) FROM batch_ops.outbound_results($aid)", 30, 'alice')->{out},
	'1', 'alice sees her results');
like(bo_sql_error($node, "SELECT * FROM batch_ops.outbound_results($aid)", 'bob'),
	qr/^42704: job \d+ does not exist/, 'bob: does not exist');
like(bo_sql_error($node, "SELECT * FROM batch_ops.outbound_results($aid)", 'alice') , qr/^$/, 'alice: no error');
$res = bo_sql($node, 'postgres', "SELECT count(*) FROM batch_ops.outbound_result", 30, 'bob');
is($res->{sqlstate}, '42501', 'PUBLIC cannot read the result table');

nginx_stop($ng);
$node->stop;
done_testing();

sub truncate_log
{
	open my $fh, '>', $ng->{log};
	close $fh;
}
