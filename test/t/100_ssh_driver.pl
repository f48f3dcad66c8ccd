# The ssh driver (alias netmiko) against test/ssh/fake_device.py: CLI
# devices over SSH on loopback addresses.  Asserts:
#
#   1. NetPulse's request, unchanged but for where the device is: the exact
#      output of "show version" (prompt and echo stripped);
#   2. per device type: cisco_ios, arista_eos (enable), cisco_nxos (no
#      enable), juniper_junos (its prompt and paging command), linux (exec
#      channels, exit status);
#   3. paging: a device that keeps paging on (--More--) gives the whole
#      output, the markers and their erasing removed;
#   4. config: enable with the credential's enable_password, configuration
#      mode, the lines in order; a line the device refuses is device_error
#      naming the line, and the lines after it are not sent;
#   5. authentication: password, keyboard-interactive, public key; a wrong
#      password is auth_error;
#   6. faults: invalid command -> device_error, hang -> timeout,
#      disconnect mid output -> connect_error; retries: a refused
#      connection is retried, a change too, a change that timed out once
#      logged in is not;
#   7. the enable password appears in no output, job(), result or server
#      log line, even when the device prints it back (masked);
#   8. pinned (the ssh default): one host's targets in input order on one
#      kept session (one login);
#   9. policy: a name resolving outside outbound_networks is not_allowed at
#      connect (no connection made), an unknown name dns_error.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;
use FakeSsh;

my $PORT = 19010;
my $keydir = PostgreSQL::Test::Utils::tempdir('sshkey');
system('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', "$keydir/id") == 0
  or BAIL_OUT('ssh-keygen failed');
my $pub = slurp_file("$keydir/id.pub");
chomp $pub;

my $fs = fakessh_start(
	'driver', '127.0.9.1-127.0.9.12', $PORT,
	{
		users => {
			admin => { password => 'pw1', enable_password => 'En4ble-S3cret' },
			kbd => { password => 'pw2', methods => ['keyboard-interactive'] },
			keyuser => { authorized_keys => [$pub], methods => ['publickey'] },
		},
		styles => { '127.0.9.5' => 'nxos', '127.0.9.6' => 'junos' }
	});
my $node = bo_node('ssh_driver', <<"CONF");
batch_ops.outbound_networks = '127.0.9.0/24, *.invalid'
batch_ops.ssh_known_hosts_file = '$fs->{known_hosts}'
log_min_messages = debug1
log_statement = 'none'
CONF
my $json = JSON::PP->new->canonical;
ssh_skip_unless_built($node);

sub run
{
	my ($spec) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT batch_ops.run_outbound(" . bo_q_literal($json->encode($spec)) . ")");
	return $json->decode($out);
}

sub bo_q_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

bo_credential_key($node, 'k.key');
my $key = slurp_file("$keydir/id");
$node->safe_psql('postgres', "SELECT batch_ops.credential_set('sw', "
	  . bo_q_literal($json->encode({ username => 'admin', password => 'pw1',
			enable_password => 'En4ble-S3cret' })) . ")");
$node->safe_psql('postgres', "SELECT batch_ops.credential_set('key', "
	  . bo_q_literal($json->encode({ username => 'keyuser', private_key => $key })) . ")");

my $version = "Cisco IOS Software, Fake Software (FAKE-UNIVERSALK9-M), Version 15.2(4)E10\n"
  . "sw1 uptime is 1 day, 2 hours, 3 minutes\n"
  . "System image file is \"flash:fake.bin\"\n";

# 1. NetPulse's request
my $r = run({
	driver => 'netmiko',
	connection_args => { device_type => 'cisco_ios', host => '127.0.9.1',
		username => 'admin', password => 'pw1', port => $PORT },
	command => 'show version' });
is_deeply($r->{results}[0]{output}, [$version], 'netmiko request: the exact output of show version')
  or diag explain $r;
is($r->{results}[0]{hostname}, '127.0.9.1', 'netmiko request: one target, the host of connection_args');

# 2. device types
$r = run({
	driver => 'ssh',
	devices => [
		{ host => '127.0.9.2', device_type => 'cisco_ios' },
		{ host => '127.0.9.3', device_type => 'arista_eos', command => ['show run'] },
		{ host => '127.0.9.5', device_type => 'cisco_nxos', command => ['show clock'] },
		{ host => '127.0.9.6', device_type => 'juniper_junos' },
		{ host => '127.0.9.7', device_type => 'linux', command => [ 'echo hello world', 'hostname' ] },
		{ host => '127.0.9.7', device_type => 'linux', command => [ 'hostname', 'false', 'echo never' ] },
	],
	connection_args => { credential => 'sw', port => $PORT },
	command => ['show version'] });
is_deeply($r->{results}[0]{output}, [ $version =~ s/sw1/sw2/r ], 'cisco_ios: output');
is_deeply($r->{results}[1]{output}, ["hostname sw3\n"], 'arista_eos: enable, then show run');
is_deeply($r->{results}[2]{output}, ["12:00:00.000 UTC Wed Dec 2 2026\n"], 'cisco_nxos: output');
is_deeply($r->{results}[3]{output}, ["Hostname: sw6\nModel: fake-mx\nJunos: 21.4R3\n\n"],
	'juniper_junos: output up to its prompt') or diag explain $r->{results}[3];
is_deeply($r->{results}[4]{output}, [ "hello world\n", "sw7\n" ], 'linux: exec channel per command');
is($r->{results}[5]{error}, 'device_error', 'linux: a non-zero exit status is device_error');
is($r->{results}[5]{message}, 'command 2 "false" exited with status 1: false: failed',
	'linux: the message names the command, its status and stderr');
is_deeply($r->{results}[5]{output}, [ "sw7\n", '' ], 'linux: outputs up to the failing command');

# 3. paging kept on by the device
fakessh_faults($fs, { '127.0.9.8' => { no_paging_off => JSON::PP::true } });
$r = run({ driver => 'ssh', devices => [ { host => '127.0.9.8' } ],
	connection_args => { credential => 'sw', port => $PORT }, command => ['show long'] });
is($r->{results}[0]{output}[0],
	join('', map { sprintf("line %02d of the long output\n", $_) } 1 .. 60),
	'paging: --More-- answered, markers and erasing removed') or diag explain $r;
fakessh_faults($fs, {});

# 4. config
my $before = fakessh_counts($fs);
$r = run({
	driver => 'ssh',
	devices => [
		{ host => '127.0.9.9' },
		{ host => '127.0.9.10', config => [ 'interface Gi1/0/2', 'bogus line', 'description never' ] },
		{ host => '127.0.9.6', device_type => 'juniper_junos',
			config => [ 'set system host-name r6', 'wrong stuff' ] },
	],
	connection_args => { credential => 'sw', port => $PORT },
	config => [ 'interface Gi1/0/1', 'description uplink' ] });
ok($r->{results}[0]{success}, 'config: applied') or diag explain $r->{results}[0];
is_deeply($r->{results}[0]{output}, [ '', '' ], 'config: one (empty) output per line');
my $counts = fakessh_counts($fs);
is_deeply($counts->{'127.0.9.9'}{config_log}, [ 'interface Gi1/0/1', 'description uplink' ],
	'config: the device received the lines in order');
is($r->{results}[1]{error}, 'device_error', 'config: a refused line is device_error');
is($r->{results}[1]{message}, q{config line 2 "bogus line": % Invalid input detected at '^' marker.},
	'config: the message names the line and the device complaint');
is_deeply($counts->{'127.0.9.10'}{config_log}, ['interface Gi1/0/2'],
	'config: the lines after a refused one are not sent');
is($r->{results}[2]{error}, 'device_error', 'junos config: syntax error is device_error');
like($r->{results}[2]{message}, qr/^config line 2 "wrong stuff": syntax error/, 'junos config: message');

# 5. authentication
$r = run({
	driver => 'ssh',
	devices => [
		{ host => '127.0.9.11', username => 'kbd', password => 'pw2' },
		{ host => '127.0.9.11', credential => 'key' },
		{ host => '127.0.9.12', username => 'admin', password => 'wrong' },
	],
	connection_args => { port => $PORT },
	command => ['show clock'],
	options => { queue_strategy => 'fifo' } });
ok($r->{results}[0]{success}, 'keyboard-interactive authentication') or diag explain $r->{results}[0];
ok($r->{results}[1]{success}, 'public key authentication') or diag explain $r->{results}[1];
is($r->{results}[2]{error}, 'auth_error', 'a wrong password is auth_error');

# 6. faults
fakessh_faults($fs, {
	'127.0.9.2' => { hang => JSON::PP::true },
	'127.0.9.3' => { disconnect_mid_output => JSON::PP::true } });
$r = run({
	driver => 'ssh',
	devices => [
		{ host => '127.0.9.1', command => ['show versio'] },
		{ host => '127.0.9.2' }, { host => '127.0.9.3', command => ['show long'] } ],
	connection_args => { credential => 'sw', port => $PORT, timeout => 1 },
	command => ['show clock'], options => { retries => 0 } });
is(join(',', map { $_->{error} // 'ok' } @{ $r->{results} }),
	'device_error,timeout,connect_error', 'faults: device_error, timeout, connect_error')
  or diag explain $r;
is($r->{results}[0]{message}, q{command 1 "show versio": % Invalid input detected at '^' marker.},
	'invalid command: the message');

# retries: a change is sent again only when nothing can have reached the
# device (a refused connection), never after a timeout once logged in
fakessh_faults($fs, {
	'127.0.9.2' => { hang_match => 'vlan' },
	'127.0.9.3' => { hang_match => 'show' } });
$r = run({
	driver => 'ssh',
	devices => [
		{ host => '127.0.9.13', config => ['vlan 1'] },
		{ host => '127.0.9.2', config => ['vlan 2'] },
		{ host => '127.0.9.3', command => ['show clock'] } ],
	connection_args => { credential => 'sw', port => $PORT, timeout => 1 },
	options => { retries => 1, queue_strategy => 'fifo' } });
is(join(',', map { ($_->{error} // 'ok') . '/' . $_->{attempts} } @{ $r->{results} }),
	'connect_error/2,timeout/1,timeout/2',
	'retries: a refused connection retried (a change too), a change timing out once connected is not, a read is')
  or diag explain $r;
fakessh_faults($fs, {});

# 7. the enable password: masked where the device prints it back
$r = run({ driver => 'ssh', devices => [ { host => '127.0.9.4' } ],
	connection_args => { credential => 'sw', port => $PORT },
	config => [ 'interface Gi1/0/9', 'description En4ble-S3cret' ] });
ok($r->{results}[0]{success}, 'enable password: config sent');
$r = run({ driver => 'ssh', devices => [ { host => '127.0.9.4' } ],
	connection_args => { credential => 'sw', port => $PORT }, command => ['show run'] });
like($r->{results}[0]{output}[0], qr/description \*{13}/, 'enable password: masked in outputs')
  or diag explain $r;
my $id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound("
	  . bo_q_literal($json->encode({ driver => 'ssh', devices => [ { host => '127.0.9.4' } ],
			connection_args => { credential => 'sw', port => $PORT }, command => ['show run'] })) . ")");
is(bo_wait_job($node, $id), 'completed', 'enable password: job completed');
unlike($node->safe_psql('postgres', "SELECT batch_ops.job($id)::text || "
	  . "(SELECT string_agg(coalesce(output::text, '') || coalesce(message, ''), '') FROM batch_ops.outbound_results($id))"),
	qr/En4ble-S3cret/, 'enable password: not in job() nor the results');
unlike(slurp_file($node->logfile), qr/En4ble-S3cret/, 'enable password: not in the server log');

# 8. pinned, the default for ssh: one session, input order
$before = fakessh_counts($fs)->{'127.0.9.12'} // { logins => 0, connections => 0 };
$r = run({ driver => 'ssh',
	devices => [ map { { host => '127.0.9.12', config => ["vlan $_"] } } 1 .. 5 ],
	connection_args => { credential => 'sw', port => $PORT } });
is($r->{summary}{successful}, 5, 'pinned: five targets');
$counts = fakessh_counts($fs)->{'127.0.9.12'};
is($counts->{logins} - $before->{logins}, 1, 'pinned: one login for the five');
is($counts->{connections} - $before->{connections}, 1, 'pinned: one connection');
is_deeply([ @{ $counts->{config_log} }[-5 .. -1] ], [ map { "vlan $_" } 1 .. 5 ],
	'pinned: in input order');

# 9. policy and names
$before = fakessh_counts($fs);
$r = run({ driver => 'ssh', devices => [ { host => 'localhost' }, { host => 'nosuch.invalid' } ],
	connection_args => { credential => 'sw', port => $PORT }, command => ['show clock'] });
is($r->{results}[0]{error}, 'not_allowed', 'policy: a name resolving outside outbound_networks');
is($r->{results}[0]{message}, 'address 127.0.0.1 is not allowed by batch_ops.outbound_networks',
	'policy: the refused address') or diag explain $r;
is($r->{results}[1]{error}, 'dns_error', 'an unknown name is dns_error');
my $err = bo_sql_error($node, "SELECT batch_ops.run_outbound('{\"driver\": \"ssh\", "
	  . "\"devices\": [{\"host\": \"127.0.10.1\"}], \"command\": [\"show clock\"]}')");
like($err, qr/outbound target 0 \(127\.0\.10\.1\) is not allowed/, 'policy: an address outside is refused at submit');

fakessh_stop($fs);
$node->stop;
done_testing();
