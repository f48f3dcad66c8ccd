# Action batch callbacks (issue #11): a finished batch's answer is POSTed
# through the outbound engine to its callback URL, signed with the
# credential's hmac_secret.  Asserts:
#
#   1. a synchronous batch POSTs its answer once, signed (the signature
#      verifies: HMAC-SHA256 of "<t>.<body>" under the hmac_secret);
#   2. so does an asynchronous one (sent from the job worker), a draft
#      confirmed by update_action_batch, and a failed batch (its answer
#      says failed);
#   3. a synchronous batch whose transaction rolls back sends nothing
#      (and queues no outbound job);
#   4. a receiver answering 503 gets 1 + 3 requests (retries 3), and the
#      callback's job fails; one that recovers after two 503 gets 3;
#   5. a host not in batch_ops.outbound_networks: 42501 at registration,
#      and the receiver there gets no request;
#   6. a role without batch_ops_outbound cannot register a callback
#      (42501); a credential without hmac_secret is 22023;
#   7. driver "callback" is internal: submit_outbound refuses it.
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_hex);
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $json = JSON::PP->new->canonical;

# receiver($name, $host): test/http/callback_receiver.py on a free port
sub receiver
{
	my ($name, $host) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("cb_$name");
	my %r = (log => "$dir/log", dir => $dir);
	open(my $fh, '>', $r{log}) or die $!;
	close($fh);
	$r{harness} = IPC::Run::start(
		[
			'python3', dirname(__FILE__) . '/../http/callback_receiver.py',
			'--host', $host, '--log', $r{log}, '--ready', "$dir/ready",
			'--lifetime', 300
		],
		'>', "$dir/out", '2>&1');
	bo_wait_until(sub { -s "$dir/ready" }, 10)
	  or die "receiver $name did not start: " . slurp_file("$dir/out");
	$r{base} = "http://$host:" . slurp_file("$dir/ready");
	return \%r;
}

# the requests a receiver got on paths that start with $prefix
sub requests
{
	my ($r, $prefix) = @_;
	return grep { index($_->{path}, $prefix) == 0 }
	  map { $json->decode($_) } split(/\n/, slurp_file($r->{log}));
}

my $rcv = receiver('main', '127.0.0.1');
my $far = receiver('far', '127.0.0.2');
my $node = bo_node('ab_callback', <<'CONF');
batch_ops.outbound_networks = '127.0.0.1/32'
CONF
END { local $?; $_->{harness}->kill_kill for grep { $_ && $_->{harness} } ($rcv, $far); }

open my $kf, '>', $node->data_dir . '/k.key' or die $!;
print $kf join('', map { chr(int(rand(256))) } 1 .. 32);
close $kf;
chmod 0600, $node->data_dir . '/k.key';
$node->append_conf('postgresql.conf', "batch_ops.credential_key_file = 'k.key'\n");
$node->restart;

my $secret = 's3cret-' . int(rand(1e9));
$node->safe_psql('postgres', <<SQL);
CREATE ROLE ab LOGIN;
CREATE ROLE nob LOGIN;
GRANT batch_ops_outbound TO ab;
CREATE SCHEMA s AUTHORIZATION ab;
CREATE TABLE s.items (id int PRIMARY KEY, v text);
ALTER TABLE s.items OWNER TO ab;
GRANT ALL ON s.items TO nob;
SET ROLE ab;
SELECT batch_ops.register_resource('/items/{id}', 's.items');
SELECT batch_ops.credential_set('hook', '{"hmac_secret": "$secret"}');
SELECT batch_ops.credential_set('nohmac', '{"token": "x"}');
SQL

sub cb
{
	my ($path, $base) = @_;
	return "'{\"url\": \"" . ($base // $rcv->{base}) . "$path\", \"credential\": \"hook\"}'";
}

sub create_sql
{
	my ($id, $sync, $callback) = @_;
	return "SELECT batch_ops.create_action_batch('[{\"resource\": \"/items/$id\", "
	  . "\"operation\": \"create\", \"body\": {\"v\": \"x\"}}]', true, $sync, $callback)";
}

# checks one received callback: method, signature, body = the answer
sub check_signed
{
	my ($req, $what) = @_;
	is($req->{method}, 'POST', "$what: POST");
	my ($t, $v1) = ($req->{signature} // '') =~ /^t=(\d+),v1=([0-9a-f]{64})$/;
	ok(defined $t && abs(time - $t) < 120, "$what: signature header t=<unix time>,v1=<hex>");
	is($v1, hmac_sha256_hex("$t.$req->{body}", $secret), "$what: the signature verifies");
	isnt($v1, hmac_sha256_hex("$t.$req->{body}x", $secret), "$what: and not for another body");
	return $json->decode($req->{body});
}

sub outbound_jobs
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM batch_ops.jobs WHERE kind = 'outbound'");
}

# 1. synchronous
my $answer = $json->decode(bo_sql($node, 'postgres',
	"\\pset tuples_only on\n\\pset format unaligned\n" . create_sql(1, 'true', cb('/ok/sync')), 60, 'ab')->{out});
ok(bo_wait_until(sub { requests($rcv, '/ok/sync') >= 1 }), 'sync: the callback arrives');
my @got = requests($rcv, '/ok/sync');
my $body = check_signed($got[0], 'sync');
is($body->{id}, $answer->{id}, 'sync: the body is the batch answer (id)');
is($body->{state}, 'completed', 'sync: the body is the batch answer (state)');
is_deeply($body->{status}, $answer->{status}, 'sync: the body is the batch answer (status)');

# 2. asynchronous
my $async = $json->decode(bo_sql($node, 'postgres',
	"\\pset tuples_only on\n\\pset format unaligned\n" . create_sql(2, 'false', cb('/ok/async')), 60, 'ab')->{out});
ok(bo_wait_until(sub { requests($rcv, '/ok/async') >= 1 }, 60), 'async: the callback arrives');
@got = requests($rcv, '/ok/async');
$body = check_signed($got[0], 'async');
is($body->{id}, $async->{id}, 'async: the body is the batch answer (id)');
is($body->{state}, 'completed', 'async: the batch had completed');
is($body->{submitted_by}, 'ab', 'async: submitted by its owner');
is($node->safe_psql('postgres', 'SELECT count(*) FROM s.items'), '2', 'both batches ran');

# 2b. a draft confirmed later (update_action_batch), and a failed batch
my $draft = $json->decode(bo_sql($node, 'postgres',
	"\\pset tuples_only on\n\\pset format unaligned\n"
	  . "SELECT batch_ops.create_action_batch('[{\"resource\": \"/items/10\", "
	  . "\"operation\": \"create\", \"body\": {\"v\": \"d\"}}]', false, true, " . cb('/ok/draft') . ")",
	60, 'ab')->{out});
is($draft->{state}, 'draft', 'draft: created');
$node->safe_psql('postgres', "SELECT batch_ops.update_action_batch($draft->{id}, confirmed => true)",
	extra_params => [ '-U', 'ab' ]);
$node->safe_psql('postgres', create_sql(1, 'true', cb('/ok/failed')), extra_params => [ '-U', 'ab' ]);
ok(bo_wait_until(sub { requests($rcv, '/ok/draft') >= 1 && requests($rcv, '/ok/failed') >= 1 }),
	'draft and failed batch: the callbacks arrive');
$body = check_signed((requests($rcv, '/ok/draft'))[0], 'draft');
is_deeply([ $body->{id}, $body->{state} ], [ $draft->{id}, 'completed' ], 'draft: its answer, completed');
$body = check_signed((requests($rcv, '/ok/failed'))[0], 'failed batch');
is($body->{state}, 'failed', 'failed batch: its answer says failed');
ok(scalar @{ $body->{status}{errors} } >= 1, 'failed batch: with its errors');

# 3. rollback
my $before = outbound_jobs();
my $r = bo_sql($node, 'postgres',
	"BEGIN;\n" . create_sql(3, 'true', cb('/ok/rollback')) . ";\nROLLBACK;", 60, 'ab');
is($r->{sqlstate}, '', 'rollback: the batch ran');
is(outbound_jobs(), $before, 'rollback: no outbound job stays');
# a later committed callback arrives; by then the rolled-back one would have
$node->safe_psql('postgres', create_sql(4, 'true', cb('/ok/after')), extra_params => [ '-U', 'ab' ]);
ok(bo_wait_until(sub { requests($rcv, '/ok/after') >= 1 }), 'rollback: a later callback arrives');
sleep 1;
is(scalar(requests($rcv, '/ok/rollback')), 0, 'rollback: nothing was sent');
is(scalar(requests($rcv, '/ok/sync')), 1, 'sync: sent once');
is(scalar(requests($rcv, '/ok/async')), 1, 'async: sent once');

# 4. retries
$node->safe_psql('postgres', create_sql(5, 'true', cb('/always503/a')), extra_params => [ '-U', 'ab' ]);
$node->safe_psql('postgres', create_sql(6, 'true', cb('/fail/2/b')), extra_params => [ '-U', 'ab' ]);
ok( bo_wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM batch_ops.jobs WHERE kind = 'outbound'"
				  . " AND status IN ('completed', 'failed')") == outbound_jobs();
		},
		90),
	'retries: the callbacks\' jobs end');
is(scalar(requests($rcv, '/always503/a')), 4, 'retries: 503 forever: 1 + 3 requests');
is(scalar(requests($rcv, '/fail/2/b')), 3, 'retries: two 503 then 200: 3 requests');
my @fail = requests($rcv, '/always503/a');
is($fail[0]{signature}, $fail[3]{signature}, 'retries: the same signed request');
is( $node->safe_psql('postgres',
		"SELECT string_agg(status || ':' || failed, ',' ORDER BY job_id) FROM batch_ops.jobs"
		  . " WHERE kind = 'outbound' AND job_id > (SELECT max(job_id) - 2 FROM batch_ops.jobs WHERE kind = 'outbound')"),
	'completed:1,completed:0', 'retries: the 503 callback\'s target failed, the other\'s succeeded');

# 5. a host not in outbound_networks
$r = bo_sql($node, 'postgres', create_sql(7, 'true', cb('/ok/far', $far->{base})), 60, 'ab');
is($r->{sqlstate}, '42501', 'refused host: 42501 at registration');
like($r->{err}, qr/callback url host "127.0.0.2" is not allowed/, 'refused host: the message names it');
sleep 1;
is(scalar(requests($far, '/')), 0, 'refused host: no traffic');

# 6. privileges and credentials
$r = bo_sql($node, 'postgres', create_sql(8, 'true', cb('/ok/nob')), 60, 'nob');
is($r->{sqlstate}, '42501', 'a role without batch_ops_outbound cannot register a callback');
$r = bo_sql($node, 'postgres',
	create_sql(9, 'true', "'{\"url\": \"$rcv->{base}/ok/x\", \"credential\": \"nohmac\"}'"), 60, 'ab');
is($r->{sqlstate}, '22023', 'a credential without hmac_secret: 22023');
like($r->{err}, qr/credential "nohmac" has no hmac_secret/, 'the message names it');
is($node->safe_psql('postgres', 'SELECT count(*) FROM s.items WHERE id BETWEEN 7 AND 9'), '0',
	'refused callbacks: their batches did not run');

# 7. the driver is internal
$r = bo_sql($node, 'postgres',
	"SELECT batch_ops.submit_outbound('{\"driver\": \"callback\", \"devices\": [{\"host\": \"127.0.0.1\"}]}')",
	60, 'ab');
is($r->{sqlstate}, '22023', 'submit_outbound: driver callback is not for users');
is(scalar(requests($rcv, '/ok/nob')), 0, 'no request for the refused ones');

done_testing();
