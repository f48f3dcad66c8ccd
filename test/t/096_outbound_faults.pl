# Outbound fault handling end to end against test/fakedev (issue #10,
# "Tests").  Asserts:
#
#   1. 429 with Retry-After: retried after at least Retry-After, and it
#      succeeds once the device stops refusing; a device that keeps
#      answering 429 ends as rate_limited after retries + 1 attempts;
#   2. 503 is retried, then http_error after retries + 1 attempts;
#      500 (not transient) is http_error after one attempt;
#   3. malformed JSON (eapi) is protocol_error;
#   4. a body over max_output_bytes is response_too_large;
#   5. a session that LISTENs on batch_ops_jobs is told of an outbound
#      job's end (job_id, status completed).
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use FakeDev;

my $fd = fakedev_start('faults', '127.0.3.1-127.0.3.6');
my $node = bo_node('outbound_faults', "batch_ops.outbound_networks = '127.0.3.0/24'\n");
my $H = $fd->{http};
my $json = JSON::PP->new->canonical;

sub run
{
	my ($spec) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT batch_ops.run_outbound('" . $json->encode($spec) . "')");
	return $json->decode($out);
}

sub http_spec
{
	my ($host, %opt) = @_;
	return {
		driver => 'http',
		devices => [ { host => $host, request => { path => $opt{path} // '/x' } } ],
		connection_args => { scheme => 'http', port => $H, timeout => 5 },
		options => { retries => 2, %{ $opt{options} // {} } } };
}

sub requests
{
	my ($addr) = @_;
	return fakedev_control($fd, 'GET', "/stats/$addr")->{requests} // 0;
}

# 1. 429 with Retry-After: 1 s, twice, then the device answers
fakedev_control($fd, 'PUT', '/faults/127.0.3.1',
	{ status => 429, retry_after => 1, times => 2 });
my $t0 = time;
my $r = run(http_spec('127.0.3.1'));
my $took = time - $t0;
ok($r->{results}[0]{success}, '429 twice then 200: the target succeeds') or diag explain $r;
is(requests('127.0.3.1'), 3, '429: three attempts (two retries)');
cmp_ok($took, '>=', 1.9, "429: Retry-After honoured between attempts (${took}s)");
cmp_ok($took, '<', 10, '429: not much longer than Retry-After');

# 429 all the time: rate_limited once retries run out
fakedev_control($fd, 'PUT', '/faults/127.0.3.2', { status => 429, retry_after => 0 });
$r = run(http_spec('127.0.3.2', options => { retries => 3 }));
is($r->{results}[0]{error}, 'rate_limited', '429 throughout: rate_limited') or diag explain $r;
is($r->{results}[0]{success} ? 1 : 0, 0, '429 throughout: not a success');
is(requests('127.0.3.2'), 4, '429 throughout: retries + 1 attempts');

# 2. 503 is transient: retried, then http_error
fakedev_control($fd, 'PUT', '/faults/127.0.3.3', { status => 503 });
$r = run(http_spec('127.0.3.3', options => { retries => 2 }));
is($r->{results}[0]{error}, 'http_error', '503 throughout: http_error') or diag explain $r;
is(requests('127.0.3.3'), 3, '503: retried (retries + 1 attempts)');

# 500 is not transient: one attempt
$r = run(http_spec('127.0.3.4', path => '/status/500', options => { retries => 2 }));
is($r->{results}[0]{error}, 'http_error', '500: http_error');
is(requests('127.0.3.4'), 1, '500: not retried');

# 3. malformed JSON from an eAPI device
fakedev_control($fd, 'PUT', '/faults/127.0.3.5', { malformed => JSON::PP::true });
$r = run({
	driver => 'eapi',
	devices => [ { host => '127.0.3.5' } ],
	connection_args => { scheme => 'http', port => $H, username => 'u', password => 'p' },
	command => ['show version'],
	options => { retries => 2 } });
is($r->{results}[0]{error}, 'protocol_error', 'malformed JSON: protocol_error') or diag explain $r;
is(requests('127.0.3.5'), 1, 'malformed JSON: not retried');

# 4. a body larger than max_output_bytes (4 MB against 1 MB)
fakedev_control($fd, 'PUT', '/faults/127.0.3.6', { huge_bytes => 4 * 1024 * 1024 });
$r = run(http_spec('127.0.3.6', options => { max_output_bytes => 1024 * 1024 }));
is($r->{results}[0]{error}, 'response_too_large', 'huge body: response_too_large') or diag explain $r;
ok(!defined $r->{results}[0]{output}, 'huge body: no output kept');
# and the default limit (1 MB) holds too
$r = run(http_spec('127.0.3.6'));
is($r->{results}[0]{error}, 'response_too_large', 'huge body, default max_output_bytes: response_too_large');
fakedev_control($fd, 'DELETE', '/faults/127.0.3.6');

# 5. NOTIFY batch_ops_jobs at an outbound job's end
my $l = $node->background_psql('postgres');
$l->query_safe('LISTEN batch_ops_jobs');
my $id = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_outbound('" . $json->encode(http_spec('127.0.3.4', path => '/ok')) . "')");
is(bo_wait_job($node, $id), 'completed', 'the outbound job completed');
my @got;
bo_wait_until(
	sub {
		my ($out) = $l->query('SELECT 1');
		for my $line (split /\n/, $out)
		{
			next
			  unless $line =~ /^Asynchronous notification "batch_ops_jobs" with payload "(.*)" received/;
			my $p = eval { decode_json($1) };
			push @got, $p if ref $p eq 'HASH';
		}
		return grep { ($_->{job_id} // 0) == $id && ($_->{status} // '') eq 'completed' } @got;
	},
	20);
$l->quit;
ok((grep { ($_->{job_id} // 0) == $id && ($_->{status} // '') eq 'completed' } @got),
	"LISTEN batch_ops_jobs: told that outbound job $id completed")
  or diag explain \@got;

fakedev_stop($fd);
$node->stop;
done_testing();
