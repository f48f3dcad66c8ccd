# The outbound engine with the drivers against test/fakedev (fake eAPI and
# Meraki devices on loopback).  Asserts:
#
#   1. eapi with a credential: every device answers, output per command;
#   2. pinned: one device's five targets over one kept connection, one
#      request at a time;
#   3. fifo: a device never sees more than host_concurrency requests at
#      once (and sees that many);
#   4. faults become error names: hang -> timeout, 401 -> auth_error, a
#      bad command -> device_error, HTTPS with an untrusted certificate ->
#      tls_error, an unknown name -> dns_error, a dropped connection ->
#      connect_error;
#   5. meraki: 25 actions of one organization stay under its 10/s limit
#      (rate_key token bucket): none rate_limited, and it takes >= 1.4 s;
#   6. meraki action_batch: at most 5 batches running; a sixth refused is
#      retried;
#   7. a job whose request uses {{device.<key>}} sends each device's value
#      (the worker keeps device objects only then), one without runs too.
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use FakeDev;

my $fd = fakedev_start('engine', '127.0.1.1-127.0.1.6',
	{ users => { admin => 'pw' }, api_keys => ['k'] });
my $node = bo_node('outbound_fakedev', <<'CONF');
batch_ops.outbound_networks = '127.0.0.0/8, *.invalid'
CONF
my $H = $fd->{http};
my $json = JSON::PP->new->canonical;

sub run
{
	my ($spec) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT batch_ops.run_outbound('" . $json->encode($spec) . "')");
	return $json->decode($out);
}

sub eapi_spec
{
	my ($hosts, %opt) = @_;
	return {
		driver => 'eapi',
		devices => [ map { { host => $_ } } @$hosts ],
		connection_args => { scheme => 'http', port => $H, credential => 'fd', timeout => 5,
			%{ $opt{conn} // {} } },
		command => ['show version'],
		options => { retries => 0, %{ $opt{options} // {} } } };
}


# credentials need a key file
bo_credential_key($node, 'k.key');
$node->safe_psql('postgres', <<'SQL');
SELECT batch_ops.credential_set('fd', '{"username": "admin", "password": "pw"}');
SELECT batch_ops.credential_set('mk', '{"api_key": "k"}');
SQL

# 1. eapi
my $r = run(eapi_spec([ map { "127.0.1.$_" } 1 .. 4 ]));
is_deeply($r->{summary}, { total => 4, successful => 4, failed => 0 }, 'eapi: four devices answered');
ok(ref $r->{results}[0]{output} eq 'ARRAY', 'eapi: output per command');

# 2. pinned
fakedev_control($fd, 'POST', '/reset');
$r = run(eapi_spec([ ('127.0.1.5') x 5 ], options => { queue_strategy => 'pinned' }));
is($r->{summary}{successful}, 5, 'pinned: five targets');
my $st = fakedev_control($fd, 'GET', '/stats/127.0.1.5');
is($st->{connections}, 1, 'pinned: one connection, kept');
is($st->{max_concurrent_requests}, 1, 'pinned: one request at a time');

# 3. fifo host_concurrency 3 with slow answers
fakedev_control($fd, 'POST', '/reset');
fakedev_control($fd, 'PUT', '/faults/127.0.1.6', { slow_ms => 300 });
$r = run(eapi_spec([ ('127.0.1.6') x 9 ], options => { host_concurrency => 3 }));
is($r->{summary}{successful}, 9, 'fifo: nine targets');
$st = fakedev_control($fd, 'GET', '/stats/127.0.1.6');
is($st->{max_concurrent_requests}, 3, 'fifo: exactly host_concurrency at once');
fakedev_control($fd, 'DELETE', '/faults/127.0.1.6');

# 4. faults
fakedev_control($fd, 'POST', '/reset');
fakedev_control($fd, 'PUT', '/faults/127.0.1.1', { hang => JSON::PP::true, hang_s => 30 });
fakedev_control($fd, 'PUT', '/faults/127.0.1.2', { status => 401 });
fakedev_control($fd, 'PUT', '/faults/127.0.1.3', { drop => JSON::PP::true });
my $spec = eapi_spec([ '127.0.1.1', '127.0.1.2', '127.0.1.3' ], conn => { timeout => 1 });
push @{ $spec->{devices} }, { host => '127.0.1.4', command => ['bogus command'] };
push @{ $spec->{devices} }, { host => '127.0.1.5', scheme => 'https', port => $fd->{https} };
push @{ $spec->{devices} }, { host => 'nosuch.invalid' };
$r = run($spec);
is(join(',', map { $_->{error} // 'ok' } @{ $r->{results} }),
	'timeout,auth_error,connect_error,device_error,tls_error,dns_error',
	'faults: timeout, auth_error, connect_error, device_error, tls_error, dns_error')
  or diag explain $r;
fakedev_control($fd, 'DELETE', "/faults/127.0.1.$_") for 1 .. 3;

# 5. meraki under its rate limit
fakedev_control($fd, 'POST', '/reset');
my $t0 = time;
$r = run({
	driver => 'meraki',
	actions => [ map { { resource => "/organizations/o1/networks", operation => 'create',
				body => { name => "n$_" } } } 1 .. 25 ],
	connection_args => { base_url => "http://127.0.1.1:$H/api/v1", credential => 'mk' },
	options => { organization_id => 'o1', concurrency => 50 } });
my $took = time - $t0;
is($r->{summary}{successful}, 25, 'meraki: 25 actions created') or diag explain $r->{results}[-1];
is((grep { ($_->{error} // '') eq 'rate_limited' } @{ $r->{results} }), 0, 'meraki: none rate limited');
cmp_ok($took, '>=', 1.4, "meraki: paced at 10/s (${took}s)");

# 6. meraki action_batch mode: at most 5 batches running per organization
#    (batch_size 1: one batch per action; packing is test/t/120)
fakedev_control($fd, 'POST', '/reset');
my $mb = sub {
	my (%opt) = @_;
	return run({
		driver => 'meraki',
		actions => [ map { { resource => "/organizations/o1/networks", operation => 'create',
					body => { name => "b$_" } } } 1 .. $opt{n} ],
		connection_args => { base_url => "http://127.0.1.1:$H/api/v1", credential => 'mk' },
		options => { organization_id => 'o1', mode => 'action_batch', concurrency => 50,
			batch_size => 1, %{ $opt{options} // {} } } });
};
fakedev_control($fd, 'POST', '/config', { batch_delay_ms => 1500 });
$r = $mb->(n => 12, options => { host_concurrency => 50, retries => 0 });
is($r->{summary}{successful}, 12, 'meraki action_batch: 12 batches completed')
  or diag explain $r->{results};
is(scalar @{ $r->{results} }, 12, 'meraki action_batch: one result per action');
my $mst = fakedev_control($fd, 'GET', '/stats/127.0.1.1');
is($mst->{statuses}{400} // 0, 0, 'meraki action_batch: no sixth batch refused (host_concurrency capped at 5)')
  or diag explain $mst->{statuses};

# a sixth running batch is refused with nothing created: retried, a change too
fakedev_control($fd, 'POST', '/reset');
my $http = HTTP::Tiny->new;
for my $i (1 .. 5)
{
	my $res = $http->post("http://127.0.1.1:$H/api/v1/organizations/o1/actionBatches", {
		headers => { 'X-Cisco-Meraki-API-Key' => 'k', 'Content-Type' => 'application/json' },
		content => $json->encode({ confirmed => JSON::PP::true, synchronous => JSON::PP::false,
			actions => [ { resource => '/organizations/o1/networks', operation => 'create',
				body => { name => "pre$i" } } ] }) });
	die "pre-batch $i: $res->{status} $res->{content}" unless $res->{status} == 201;
}
$r = $mb->(n => 1, options => { retries => 10 });
is($r->{summary}{successful}, 1, 'meraki action_batch: refused sixth batch retried and completed')
  or diag explain $r->{results};
$mst = fakedev_control($fd, 'GET', '/stats/127.0.1.1');
cmp_ok($mst->{statuses}{400} // 0, '>=', 1, 'meraki action_batch: the sixth batch was refused first')
  or diag explain $mst->{statuses};
fakedev_control($fd, 'POST', '/config', { batch_delay_ms => 200 });

# 7. a job's worker keeps a device object only when a template uses one
#    ({{device.<key>}}): with one, the job's requests carry each device's
#    value; without, the job runs as well
for my $tmpl ('/x/{{device.name}}/{{host}}', '/x/plain/{{host}}')
{
	my $spec = $json->encode({
		driver => 'http',
		devices => [ map { { host => "127.0.1.$_", name => "sw$_" } } 1 .. 3 ],
		connection_args => { scheme => 'http', port => $H },
		request => { method => 'GET', path => $tmpl } });
	my $id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('$spec')");
	is(bo_wait_job($node, $id, 'postgres', 60), 'completed', "job with path $tmpl completed");
	my @want = map { $tmpl =~ /device/ ? "/x/sw$_/127.0.1.$_" : "/x/plain/127.0.1.$_" } 1 .. 3;
	is($node->safe_psql('postgres',
		"SELECT string_agg(output->>'path', ',' ORDER BY index) FROM batch_ops.outbound_results($id)"),
		join(',', @want),
		"job with path $tmpl: each device's own values");
}

fakedev_stop($fd);
$node->stop;
done_testing();
