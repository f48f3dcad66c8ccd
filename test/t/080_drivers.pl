# Outbound drivers (src/driver_*.c) without the HTTP engine: each driver's
# spec check, the exact request it builds, and its verdict on the replies
# of test/fakedev/fakedev.py -- real replies, captured by sending the
# driver's own request to the fake device (HTTP::Tiny), then handed to the
# driver's parse function.  The functions come from test/modules/
# driver_probe.c (the test build).  The fake server's faults and counters
# are checked here too, since the engine's tests rely on them.
use strict;
use warnings;
use File::Basename qw(dirname);
use lib dirname(__FILE__);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BatchOpsTest;
use FakeDev;

my $json = JSON::PP->new->canonical;
my $node = bo_node('drivers');

my ($rc) = $node->psql('postgres', <<'SQL');
CREATE FUNCTION driver_check(text, jsonb) RETURNS boolean
  AS 'batch_ops', 'batch_ops_test_driver_check' LANGUAGE C STRICT;
CREATE FUNCTION driver_request(text, jsonb) RETURNS jsonb
  AS 'batch_ops', 'batch_ops_test_driver_request' LANGUAGE C STRICT;
CREATE FUNCTION driver_parse(text, jsonb, int, text, text, int) RETURNS jsonb
  AS 'batch_ops', 'batch_ops_test_driver_parse' LANGUAGE C;
SQL
plan skip_all => 'batch_ops was built without TEST_MODULES=1 (no driver probe)'
  if $rc != 0;

my $fd = fakedev_start('drivers', '127.0.1.1-127.0.1.6');
my $P = $fd->{http};

# ---------------------------------------------------------------- helpers

sub q_json
{
	my ($v) = @_;
	my $s = ref $v ? $json->encode($v) : $v;
	die "dollar quote in $s" if $s =~ /\$j\$/;
	return "\$j\$$s\$j\$";
}

sub request
{
	my ($driver, $target) = @_;
	return $json->decode(
		$node->safe_psql('postgres',
			"SELECT driver_request('$driver', " . q_json($target) . ")"));
}

sub parse
{
	my $out = parse_next(@_);
	delete $out->{next};
	delete $out->{next_delay_ms};
	return $out;
}

# the whole outcome, with next and next_delay_ms
sub parse_next
{
	my ($driver, $target, $resp) = @_;
	my $ct = defined $resp->{content_type} ? q_json($resp->{content_type}) : 'NULL';
	my $ra = $resp->{retry_after_ms} // 'NULL';
	my $out = $json->decode(
		$node->safe_psql('postgres',
			    "SELECT driver_parse('$driver', "
			  . q_json($target) . ", $resp->{status}, "
			  . q_json($resp->{body}) . ", $ct, $ra)"));
	return $out;
}

# build, send to the fake device, parse: (outcome, reply)
sub roundtrip
{
	my ($driver, $target) = @_;
	my $resp = fakedev_send(request($driver, $target));
	return (parse($driver, $target, $resp), $resp);
}

sub target
{
	my ($host, %t) = @_;
	return { hostname => $host, scheme => 'http', port => $P, %t };
}

sub outcome
{
	my ($success, $output, $error, $message, $retryable) = @_;
	return {
		success => $success ? JSON::PP::true : JSON::PP::false,
		output => $output,
		error => $error,
		message => $message,
		retryable => $retryable ? JSON::PP::true : JSON::PP::false
	};
}

sub fault
{
	my ($host, $fault) = @_;
	fakedev_control($fd, 'PUT', "/faults/$host", $fault);
	return;
}

my $T = JSON::PP::true;

# ---------------------------------------------------------------- spec checks
my @bad = (
	[ 'eapi', { devices => [ { host => 'a' } ] }, 'devices[0].command' ],
	[ 'eapi', { command => ['show clock'], config => ['x'] }, 'config' ],
	[
		'eapi',
		{ command => ['show clock'], devices => [ { host => 'a', config => [] } ] },
		'devices[0].config'
	],
	[ 'eapi', { command => [ 'ok', 3 ] }, 'command[1]' ],
	[ 'nxapi', { command => ['show clock ;reload'] }, 'command[0]' ],
	[ 'restconf', { request => { method => 'GET' } }, 'request.path' ],
	[ 'restconf', { request => { path => 'no-slash' } }, 'request.path' ],
	[
		'restconf',
		{ request => { path => '/a:b' }, devices => [ { host => 'a', request => { method => 'DELETE' } } ] },
		'devices[0].request.path'
	],
	[ 'http', { devices => [ { host => 'a' } ] }, 'devices[0].request' ],
	[ 'http', { request => { method => 'FETCH' } }, 'request.method' ],
	[ 'http', { request => { headers => { 'Content-Length' => '3' } } },
		'request.headers.Content-Length' ],
	[ 'http', { request => { headers => { 'X-A' => "a\r\nX-B: b" } } },
		'request.headers.X-A' ],
	[
		'http',
		{
			request => { headers => { 'X-Name' => '{{device.name}}' } },
			devices => [ { host => 'a', name => "x\nEvil: 1" } ]
		},
		'devices[0].name'
	],
	[ 'meraki', { options => { organization_id => '1' } }, 'actions' ],
	[
		'meraki',
		{ actions => [ { resource => '/devices/Q2', operation => 'update' } ] },
		'options.organization_id'
	],
	[
		'meraki',
		{
			actions => [ { resource => '/devices/Q2', operation => 'patch' } ],
			options => { organization_id => '1' }
		},
		'actions[0].operation'
	],
	[
		'meraki',
		{
			actions => [ { resource => 'devices', operation => 'update' } ],
			options => { organization_id => '1' }
		},
		'actions[0].resource'
	],);
for my $b (@bad)
{
	my ($driver, $spec, $key) = @$b;
	is( bo_sql_error($node, "SELECT driver_check('$driver', " . q_json($spec) . ")"),
		"22023: invalid outbound spec key \"$key\"",
		"$driver spec check names $key");
}
my @good = (
	[ 'eapi', { command => ['show version'], devices => [ { host => 'a' }, { host => 'b', config => ['x'] } ] } ],
	[ 'nxapi', { config => ['hostname a'] } ],
	[ 'restconf', { request => { path => '/ietf-system:system' } } ],
	[ 'http', { devices => [ { host => 'a', request => { path => '/x' } } ] } ],
	[
		'meraki',
		{
			actions => [ { resource => '/devices/Q2', operation => 'update', body => { name => 'x' } } ],
			options => { organization_id => '1', mode => 'requests' }
		}
	],);
for my $g (@good)
{
	my ($driver, $spec) = @$g;
	is(bo_sql_error($node, "SELECT driver_check('$driver', " . q_json($spec) . ")"),
		'', "$driver spec accepted: " . $json->encode($spec));
}
is( bo_sql_error(
		$node,
		"SELECT driver_check('meraki', "
		  . q_json(
			{
				actions => [ { resource => '/x', operation => 'update' } ],
				options => { organization_id => '1', mode => 'action_batch', poll_interval_ms => 2.5 }
			})
		  . ")"),
	'22023: invalid outbound spec key "options.poll_interval_ms"',
	'meraki spec check names options.poll_interval_ms');
is(bo_sql_error($node, "SELECT driver_request('telnet', '{}')"),
	'0A000: driver "telnet" is not supported', 'telnet is no driver here');
# ssh: no HTTP request, only whether the target is a change (test/t/100_ssh_driver.pl)
is($node->safe_psql('postgres',
		qq{SELECT driver_request('netmiko', '{"config": ["hostname x"]}')->>'is_change'}),
	'true', 'ssh (as netmiko): a config target is a change');
is(bo_sql_error($node, "SELECT driver_parse('ssh', '{}', 200, '', NULL, -1)"),
	'0A000: driver "ssh" parses no HTTP reply', 'ssh parses no HTTP reply');

# ---------------------------------------------------------------- http
my $secret = { username => 'admin', password => 'pw' };
my $basic = 'Authorization: Basic YWRtaW46cHc=';
my $ht = target(
	'127.0.1.1',
	index => 3,
	device => { host => '127.0.1.1', name => 'sw 1/a?', vlan => 10 },
	request => {
		method => 'POST',
		path => '/api/{{device.name}}/{{index}}',
		headers => { 'X-Where' => '{{host}}:{{port}}' },
		body => { n => '{{device.name}}', v => '{{device.vlan}}', l => [ 1, '{{index}}' ] }
	},
	secret => $secret);
is_deeply(
	request('http', $ht),
	{
		method => 'POST',
		url => "http://127.0.1.1:$P/api/sw%201/a%3F/3",
		headers => [ "X-Where: 127.0.1.1:$P", $basic, 'Content-Type: application/json' ],
		body => '{"l": [1, "3"], "n": "sw 1/a?", "v": "10"}',
		is_change => $T,
		rate_key => undef,
		rate_per_sec => 0
	},
	'http: the request, substituted');
my ($o, $r) = roundtrip('http', $ht);
is_deeply(
	[ $o->{success}, $o->{output}{path}, $o->{output}{body}, $o->{output}{headers}{'X-Where'} ],
	[ $T, '/api/sw%201/a%3F/3', '{"l": [1, "3"], "n": "sw 1/a?", "v": "10"}', "127.0.1.1:$P" ],
	'http: the echo comes back as JSON output');
is_deeply(
	(roundtrip('http', target('127.0.1.1', request => { path => '/text' })))[0],
	outcome(1, 'plain text from 127.0.1.1'),
	'http: a text reply is a JSON string');
is_deeply(
	(roundtrip('http', target('127.0.1.1', request => { path => '/status/404' })))[0],
	outcome(0, undef, 'http_error', 'HTTP 404: {"status": 404}'),
	'http: 404 is http_error');
is_deeply(
	(roundtrip('http', target('127.0.1.1', request => { path => '/status/503' })))[0],
	outcome(0, undef, 'http_error', 'HTTP 503: {"status": 503}', 1),
	'http: 503 is a retryable http_error');
fault('127.0.1.1', { status => 401, times => 1 });
is_deeply(
	(roundtrip('http', target('127.0.1.1', request => {})))[0],
	outcome(0, undef, 'auth_error', 'HTTP 401: {"errors": ["fault 401"]}'),
	'http: 401 is auth_error');
fault('127.0.1.1', { status => 429, retry_after => 2, times => 1 });
($o, $r) = roundtrip('http', target('127.0.1.1', request => {}));
is($r->{retry_after_ms}, 2000, 'fakedev: 429 carries Retry-After');
is_deeply($o, outcome(0, undef, 'rate_limited', 'HTTP 429: {"errors": ["fault 429"]}', 1),
	'http: 429 is a retryable rate_limited');
fault('127.0.1.1', { malformed => $T, times => 1 });
is_deeply(
	(roundtrip('http', target('127.0.1.1', request => {})))[0],
	outcome(1, '{"jsonrpc": "2.0", "result": [{"truncated": '),
	'http: malformed JSON is text output');
is_deeply(
	request('http', target('127.0.1.1', request => { method => 'DELETE', body => 'raw {{host}}' },
		secret => { token => 't0k' })),
	{
		method => 'DELETE',
		url => "http://127.0.1.1:$P/",
		headers => ['Authorization: Bearer t0k'],
		body => 'raw 127.0.1.1',
		is_change => $T,
		rate_key => undef,
		rate_per_sec => 0
	},
	'http: a string body is sent as text; a token is a Bearer');

# ---------------------------------------------------------------- eapi
my $et = target('127.0.1.2', index => 1, command => [ 'show version', 'show hostname' ],
	secret => $secret);
is_deeply(
	request('eapi', $et),
	{
		method => 'POST',
		url => "http://127.0.1.2:$P/command-api",
		headers => [ 'Content-Type: application/json', 'Accept: application/json', $basic ],
		body => '{"jsonrpc": "2.0", "method": "runCmds", "params": {"version": 1, '
		  . '"cmds": ["show version", "show hostname"], "format": "json"}, "id": "batch_ops-1"}',
		is_change => JSON::PP::false,
		rate_key => undef,
		rate_per_sec => 0
	},
	'eapi: the request of a read');
is_deeply(
	(roundtrip('eapi', $et))[0],
	outcome(
		1,
		[
			{
				modelName => 'DCS-7050TX-64',
				version => '4.30.1F',
				serialNumber => 'FAKEdev-127-0-1-2',
				hostname => 'dev-127-0-1-2',
				architecture => 'x86_64'
			},
			{ hostname => 'dev-127-0-1-2', fqdn => 'dev-127-0-1-2.lab' }
		]),
	'eapi: output is the result array');
my $ec = target('127.0.1.2', index => 2, config => [ 'hostname leaf9', 'ntp server 10.0.0.1' ],
	secret => { %$secret, enable_password => 'en4ble' });
is(request('eapi', $ec)->{body},
	'{"jsonrpc": "2.0", "method": "runCmds", "params": {"version": 1, "cmds": '
	  . '[{"cmd": "enable", "input": "en4ble"}, "configure", "hostname leaf9", '
	  . '"ntp server 10.0.0.1", "end"], "format": "json"}, "id": "batch_ops-2"}',
	'eapi: a change is wrapped in enable (with its password), configure, end');
ok(request('eapi', $ec)->{is_change}, 'eapi: config is a change');
is_deeply((roundtrip('eapi', $ec))[0], outcome(1, [ {}, {} ]),
	'eapi: output of a change has one entry per config line');
is(fakedev_control($fd, 'GET', '/state/127.0.1.2')->{hostname},
	'leaf9', 'fakedev: the eAPI config was applied');
is_deeply(
	(roundtrip('eapi', target('127.0.1.2', command => [ 'show clock', 'show versio' ])))[0],
	outcome(
		0,
		[ { utcTime => 1764676800, timezone => 'UTC' },
		  { errors => ["Invalid input (at token 1: 'versio')"] } ],
		'device_error',
		"CLI command 2 of 2 'show versio' failed: invalid command: "
		  . "Invalid input (at token 1: 'versio') (eAPI 1002)"),
	'eapi: a bad command is device_error with its errors');
fakedev_control($fd, 'POST', '/config', { enable_password => 'right' });
is_deeply(
	(roundtrip('eapi', target('127.0.1.2', config => ['hostname x'],
		secret => { enable_password => 'wrong' })))[0],
	outcome(0, [], 'device_error',
		"CLI command 1 of 4 '{\"cmd\": \"enable\", \"input\": \"*****\"}' failed: "
		  . "invalid command: Bad secret (eAPI 1002)"),
	'eapi: the enable password is masked in the message');
fakedev_control($fd, 'POST', '/config', { enable_password => undef, users => { admin => 'pw' } });
is_deeply(
	(roundtrip('eapi', target('127.0.1.2', command => ['show clock'])))[0],
	outcome(0, undef, 'auth_error', 'HTTP 401: Unable to authenticate'),
	'eapi: no credentials, auth_error');
is((roundtrip('eapi', target('127.0.1.2', command => ['show clock'], secret => $secret)))[0]{success},
	$T, 'eapi: the Basic credentials are accepted');
fakedev_control($fd, 'POST', '/config', { users => {} });
fault('127.0.1.2', { malformed => $T, times => 1 });
is_deeply(
	(roundtrip('eapi', $et))[0],
	outcome(0, undef, 'protocol_error', 'the reply is not a JSON-RPC object'),
	'eapi: malformed JSON is protocol_error');
fault('127.0.1.2', { status => 503, times => 1 });
is((roundtrip('eapi', $et))[0]{retryable}, $T, 'eapi: 503 is retryable');

# ---------------------------------------------------------------- nxapi
my $nt = target('127.0.1.3', command => [ 'show clock', 'show hostname' ], secret => $secret);
is_deeply(
	request('nxapi', $nt),
	{
		method => 'POST',
		url => "http://127.0.1.3:$P/ins",
		headers => [ 'Content-Type: application/json', 'Accept: application/json', $basic ],
		body => '{"ins_api": {"version": "1.0", "type": "cli_show", "chunk": "0", "sid": "1", '
		  . '"input": "show clock ;show hostname", "output_format": "json"}}',
		is_change => JSON::PP::false,
		rate_key => undef,
		rate_per_sec => 0
	},
	'nxapi: the request of a read');
is_deeply(
	(roundtrip('nxapi', $nt))[0],
	outcome(1, [ { simple_time => '12:00:00.000 UTC Tue Dec 02 2026' },
		{ hostname => 'dev-127-0-1-3' } ]),
	'nxapi: output is one body per command');
is_deeply(
	(roundtrip('nxapi', target('127.0.1.3', command => ['show version'])))[0],
	outcome(1, [ { host_name => 'dev-127-0-1-3', nxos_ver_str => '10.3(1)',
		chassis_id => 'Nexus9000 C9300v Chassis' } ]),
	'nxapi: one command (output is an object in the reply) is an array too');
is_deeply(
	(roundtrip('nxapi', target('127.0.1.3', command => [ 'show clock', 'show versio' ])))[0],
	outcome(0, [ { simple_time => '12:00:00.000 UTC Tue Dec 02 2026' }, undef ],
		'device_error',
		"Input CLI command error: % Invalid command at '^' marker. (NX-API code 400)"),
	'nxapi: a bad command is device_error with msg and clierror');
my $nc = target('127.0.1.3', config => [ 'hostname spine1', 'feature bgp' ]);
like(request('nxapi', $nc)->{body}, qr/"type": "cli_conf".*"input": "hostname spine1 ;feature bgp"/,
	'nxapi: a change is cli_conf');
is_deeply((roundtrip('nxapi', $nc))[0], outcome(1, [ {}, {} ]), 'nxapi: config applied');
is(fakedev_control($fd, 'GET', '/state/127.0.1.3')->{hostname}, 'spine1',
	'fakedev: the NX-API config was applied');
is_deeply(
	(roundtrip('nxapi', target('127.0.1.3', config => [ 'feature ospf', 'bogus line' ])))[0],
	outcome(0, [ {}, undef ], 'device_error',
		'Input CLI command error: % Invalid command (NX-API code 400)'),
	'nxapi: a bad config line is device_error');
fault('127.0.1.3', { status => 401, times => 1 });
is((roundtrip('nxapi', $nt))[0]{error}, 'auth_error', 'nxapi: 401 is auth_error');

# ---------------------------------------------------------------- restconf
my $rpath = '/ietf-interfaces:interfaces/interface={{device.ifname}}';
my $rt = target('127.0.1.4', device => { ifname => 'Gi1/0' },
	request => { method => 'PUT', path => $rpath,
		body => { 'ietf-interfaces:interface' => { name => '{{device.ifname}}', description => 'on {{host}}' } } },
	secret => $secret);
is_deeply(
	request('restconf', $rt),
	{
		method => 'PUT',
		url => "http://127.0.1.4:$P/restconf/data/ietf-interfaces:interfaces/interface=Gi1%2F0",
		headers => [ 'Accept: application/yang-data+json', $basic,
			'Content-Type: application/yang-data+json' ],
		body => '{"ietf-interfaces:interface": {"name": "Gi1/0", "description": "on 127.0.1.4"}}',
		is_change => $T,
		rate_key => undef,
		rate_per_sec => 0
	},
	'restconf: the request (list key percent-encoded)');
($o, $r) = roundtrip('restconf', $rt);
is($r->{status}, 201, 'fakedev: RESTCONF PUT of a new resource is 201');
is_deeply($o, outcome(1, undef), 'restconf: 201 without a body, output null');
($o, $r) = roundtrip('restconf', $rt);
is($r->{status}, 204, 'fakedev: RESTCONF PUT again is 204');
is_deeply($o, outcome(1, undef), 'restconf: 204, output null');
is_deeply(
	(roundtrip('restconf', target('127.0.1.4', device => { ifname => 'Gi1/0' },
		request => { path => $rpath })))[0],
	outcome(1, { 'ietf-interfaces:interface' => { name => 'Gi1/0', description => 'on 127.0.1.4' } }),
	'restconf: GET, output is the JSON');
is_deeply(
	(roundtrip('restconf', target('127.0.1.4', request => { path => '/nope:x' })))[0],
	outcome(0, { 'ietf-restconf:errors' => { error => [ { 'error-type' => 'application',
		'error-tag' => 'invalid-value', 'error-message' => 'uri keypath not found' } ] } },
		'device_error', 'invalid-value: uri keypath not found'),
	'restconf: 404 with errors is device_error (error-tag: error-message)');
my $rpost = target('127.0.1.4', request => { method => 'POST', path => '/ietf-system:system',
	body => { hostname => 'r1' } });
is_deeply((roundtrip('restconf', $rpost))[0], outcome(1, undef), 'restconf: POST creates');
is_deeply(
	(roundtrip('restconf', $rpost))[0]{message},
	'data-exists: object already exists: /ietf-system:system/hostname',
	'restconf: POST again is 409 data-exists, a device_error');
is_deeply(
	(roundtrip('restconf', target('127.0.1.4', request => { method => 'PATCH',
		path => '/ietf-system:system', body => 'x=1', headers => { 'Content-Type' => 'text/plain' } })))[0]{message},
	'invalid-value: Content-Type must be application/yang-data+json',
	'restconf: 415 with errors is device_error');
fakedev_control($fd, 'POST', '/config', { users => { admin => 'pw' } });
is_deeply(
	(roundtrip('restconf', target('127.0.1.4', request => { path => '/ietf-system:system' })))[0],
	outcome(0, undef, 'auth_error', 'HTTP 401: Unable to authenticate'),
	'restconf: 401 follows the common mapping');
fakedev_control($fd, 'POST', '/config', { users => {} });
fault('127.0.1.4', { malformed => $T, times => 1 });
is_deeply(
	(roundtrip('restconf', target('127.0.1.4', request => { path => '/ietf-system:system' })))[0],
	outcome(0, undef, 'protocol_error', 'the reply is not JSON'),
	'restconf: malformed JSON is protocol_error');

# ---------------------------------------------------------------- meraki
my $base = "http://127.0.1.5:$P/api/v1";
sub mt
{
	my ($action, %t) = @_;
	return {
		action => $action,
		options => { organization_id => '515' },
		connection_args => { base_url => $base },
		secret => { api_key => 'k3y' },
		%t
	};
}
my $mu = mt({ resource => '/devices/Q2XX-1', operation => 'update', body => { name => 'sw1' } });
is_deeply(
	request('meraki', $mu),
	{
		method => 'PUT',
		url => "$base/devices/Q2XX-1",
		headers => [ 'Accept: application/json', 'X-Cisco-Meraki-API-Key: k3y',
			'Content-Type: application/json' ],
		body => '{"name": "sw1"}',
		is_change => $T,
		rate_key => 'meraki:515',
		rate_per_sec => 10
	},
	'meraki: the request of an update');
is_deeply(
	request('meraki', { action => { resource => '/devices/Q2XX-1', operation => 'destroy' },
		options => { organization_id => 77 }, secret => { token => 't' } }),
	{
		method => 'DELETE',
		url => 'https://api.meraki.com/api/v1/devices/Q2XX-1',
		headers => [ 'Accept: application/json', 'Authorization: Bearer t' ],
		body => undef,
		is_change => $T,
		rate_key => 'meraki:77',
		rate_per_sec => 10
	},
	'meraki: destroy, the default base URL, a token as Bearer');
is_deeply((roundtrip('meraki', $mu))[0], outcome(1, { name => 'sw1' }), 'meraki: update, 200');
($o) = roundtrip('meraki', mt({ resource => '/networks/N1/devices', operation => 'create',
	body => { name => 'ap1' } }));
ok($o->{success} && $o->{output}{name} eq 'ap1' && $o->{output}{id} =~ /^\d+$/,
	'meraki: create, 201 with the new id');
is_deeply(
	(roundtrip('meraki', mt({ resource => '/devices/none', operation => 'destroy' })))[0],
	outcome(0, undef, 'device_error', 'Resource not found: /devices/none'),
	'meraki: 404 with errors is device_error');
is_deeply(
	(roundtrip('meraki', mt({ resource => '/devices/Q2XX-1', operation => 'update',
		body => { name => 'n' x 65 } })))[0],
	outcome(0, undef, 'device_error', "'name' must be at most 64 characters"),
	'meraki: 400 with errors is device_error');
fakedev_control($fd, 'POST', '/config', { api_keys => ['right'] });
is_deeply(
	(roundtrip('meraki', $mu))[0],
	outcome(0, undef, 'auth_error', 'HTTP 401: {"errors": ["Invalid API key"]}'),
	'meraki: a wrong key is auth_error');
fakedev_control($fd, 'POST', '/config', { api_keys => [] });

# the Dashboard's rate: burst 10, then 10/s per organization
my $org = mt({ resource => '/organizations/900/networks', operation => 'update', body => {} });
my $oreq = request('meraki', $org);
my @st = map { fakedev_send($oreq) } 1 .. 20;
my @limited = grep { $_->{status} == 429 } @st;
ok(@limited >= 5, 'fakedev: over 10 requests/s per organization gets 429 (' . scalar(@limited) . ' of 20)');
is($limited[0]{retry_after_ms}, 1000, 'fakedev: its 429 says Retry-After: 1');
is_deeply(parse('meraki', $org, $limited[0]),
	outcome(0, undef, 'rate_limited',
		'HTTP 429: {"errors": ["API rate limit exceeded for organization"]}', 1),
	'meraki: 429 is a retryable rate_limited');

# action batches: POST, then the polls the driver asks for
my $bt = mt({ resource => '/networks/N2/devices', operation => 'create', body => { name => 'b1' } },
	options => { organization_id => '515', mode => 'action_batch', poll_interval_ms => 100 });
my $breq = request('meraki', $bt);
is_deeply(
	[ @$breq{qw(method url body is_change rate_key)} ],
	[ 'POST', "$base/organizations/515/actionBatches",
	  '{"confirmed": true, "synchronous": false, "actions": [{"body": {"name": "b1"}, '
	  . '"resource": "/networks/N2/devices", "operation": "create"}]}', $T, 'meraki:515' ],
	'meraki action_batch: the request creates a batch of the action');
sub run_batch
{
	my ($target) = @_;
	my $req = request('meraki', $target);
	my ($out, $polls) = (undef, 0);
	while (1)
	{
		$out = parse_next('meraki', $target, fakedev_send($req));
		last unless $out->{next};
		$polls++;
		last if $polls > 50;
		Time::HiRes::sleep($out->{next_delay_ms} / 1000);
		$req = $out->{next};
	}
	return ($out, $polls);
}
my ($bo, $polls) = run_batch($bt);
ok($polls >= 1, "meraki action_batch: polled ($polls)");
is_deeply(
	[ $bo->{success}, $bo->{error}, $bo->{output}{status}{completed},
	  scalar @{ $bo->{output}{status}{createdResources} } ],
	[ $T, undef, $T, 1 ],
	'meraki action_batch: completed, with the created resource');
($bo) = run_batch(mt({ resource => '/devices/gone', operation => 'destroy' },
	options => { organization_id => '515', mode => 'action_batch', poll_interval_ms => 100 }));
is_deeply([ $bo->{success}, $bo->{error}, $bo->{message}, $bo->{output}{status}{failed} ],
	[ JSON::PP::false, 'device_error', 'Resource not found: /devices/gone', $T ],
	'meraki action_batch: a failed batch is device_error with its errors');
fakedev_control($fd, 'POST', '/config', { batch_delay_ms => 3000 });
my $b6 = mt({ resource => '/devices/Q2XX-1', operation => 'update', body => { name => 'x' } },
	options => { organization_id => '516', mode => 'action_batch' });
my $b6req = request('meraki', $b6);
fakedev_send($b6req) for 1 .. 5;
is_deeply(
	parse('meraki', $b6, fakedev_send($b6req)),
	outcome(0, undef, 'rate_limited', 'Too many concurrently executing batches. '
		  . 'Maximum is 5 confirmed but not yet executed batches.', 1),
	'meraki action_batch: a sixth running batch is a retryable rate_limited');
fakedev_control($fd, 'POST', '/config', { batch_delay_ms => 200 });

# ---------------------------------------------------------------- fakedev itself
fakedev_control($fd, 'POST', '/reset');
my $dev = '127.0.1.6';
fault($dev, { slow_ms => 300, times => 1 });
my $t0 = time;
fakedev_send({ method => 'GET', url => "http://$dev:$P/x", headers => [] });
ok(time - $t0 >= 0.3, 'fakedev: slow_ms delays the reply');
fault($dev, { drop => $T, times => 1 });
system('curl', '-s', '-o', '/dev/null', "http://$dev:$P/x");
is($? >> 8, 52, 'fakedev: drop closes the connection without a reply');
fault($dev, { hang => $T, hang_s => 5, times => 1 });
$t0 = time;
system('curl', '-s', '-o', '/dev/null', '--max-time', '1', "http://$dev:$P/x");
is($? >> 8, 28, 'fakedev: hang never answers (curl times out)');
fault($dev, { huge_bytes => 3_000_000, times => 1 });
is(length(fakedev_send({ method => 'GET', url => "http://$dev:$P/x", headers => [] })->{body}),
	3_000_002, 'fakedev: huge_bytes sends a body that big');
system('curl', '-s', '-o', '/dev/null', '--cacert', $fd->{ca}, "https://$dev:$fd->{https}/x");
is($? >> 8, 0, 'fakedev: TLS with the CA of its port file verifies');
fault($dev, { bad_tls => $T });
system('curl', '-s', '-o', '/dev/null', '--cacert', $fd->{ca}, "https://$dev:$fd->{https}/x");
is($? >> 8, 60, 'fakedev: bad_tls presents a self-signed certificate');
fakedev_control($fd, 'DELETE', "/faults/$dev");

# concurrency counters: 6 requests of 3 s at once (time to start them all)
# (on another device: the hung request above may still be open)
my @h = map {
	IPC::Run::start([ 'curl', '-s', '-o', '/dev/null', "http://127.0.1.1:$P/delay/3000" ])
} 1 .. 6;
$_->finish for @h;
my $s = fakedev_control($fd, 'GET', "/stats/127.0.1.1");
is($s->{max_concurrent_requests}, 6, 'fakedev: most concurrent requests counted');
is($s->{max_concurrent_connections}, 6, 'fakedev: most concurrent connections counted');
is($s->{requests}, 6, 'fakedev: requests counted');
is(fakedev_control($fd, 'GET', "/stats/$dev")->{tls_errors}, 1,
	'fakedev: the failed handshake is counted');

fakedev_stop($fd);
done_testing();
