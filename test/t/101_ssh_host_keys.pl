# Host keys of the ssh driver.  Asserts:
#
#   1. a device whose key is in batch_ops.ssh_known_hosts_file connects;
#      one whose key is not there is refused, host_key_error naming its
#      fingerprint, and nothing is sent to it;
#   2. batch_ops.ssh_accept_new_host_keys (superuser only) accepts the
#      unknown key, for run_outbound (SET) and for jobs (the server's
#      setting);
#   3. a credential's known_hosts field is checked too (without any file);
#      a key contradicting a listed one is refused even when new keys are
#      accepted.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;
use FakeSsh;

my $PORT = 19011;
my $fs = fakessh_start('hostkeys', '127.0.9.21-127.0.9.23', $PORT,
	{ users => { admin => { password => 'pw1' } } }, ['127.0.9.23']);
my $node = bo_node('ssh_host_keys', <<"CONF");
batch_ops.outbound_networks = '127.0.9.0/24'
batch_ops.ssh_known_hosts_file = '$fs->{known_hosts}'
CONF
my $json = JSON::PP->new->canonical;
ssh_skip_unless_built($node);
bo_credential_key($node, 'k.key');

sub spec
{
	my (@hosts) = @_;
	my $s = $json->encode({ driver => 'ssh', devices => [ map { { host => $_ } } @hosts ],
		connection_args => { username => 'admin', password => 'pw1', port => $PORT },
		command => ['show clock'], options => { retries => 0 } });
	return $s =~ s/'/''/gr;
}

sub run
{
	my ($sql_prefix, @hosts) = @_;
	return $json->decode($node->safe_psql('postgres',
		"$sql_prefix SELECT batch_ops.run_outbound('" . spec(@hosts) . "')"));
}

# 1. known and unknown
my $r = run('', '127.0.9.21', '127.0.9.23');
ok($r->{results}[0]{success}, 'a known host key: connected');
is($r->{results}[1]{error}, 'host_key_error', 'an unknown host key: host_key_error');
like($r->{results}[1]{message},
	qr/^the host key of 127\.0\.9\.23 port $PORT \(SHA256:[A-Za-z0-9+\/]{43}\) is not in known_hosts$/,
	'host_key_error: the fingerprint in the message');
is(fakessh_counts($fs)->{'127.0.9.23'}{logins} // 0, 0, 'an unknown host: no login, nothing sent');

# 2. accepting new keys
$r = run('SET batch_ops.ssh_accept_new_host_keys = on;', '127.0.9.23');
ok($r->{results}[0]{success}, 'accept new host keys: the unknown key accepted (SET)');
$node->safe_psql('postgres', 'CREATE ROLE netops LOGIN; GRANT batch_ops_outbound TO netops');
like(bo_sql_error($node, 'SET batch_ops.ssh_accept_new_host_keys = on', 'netops'),
	qr/^42501: permission denied to set parameter/, 'accept new host keys: superusers only');
$node->append_conf('postgresql.conf', "batch_ops.ssh_accept_new_host_keys = on\n");
$node->reload;
my $id = $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('" . spec('127.0.9.23') . "')");
is(bo_wait_job($node, $id), 'completed', 'accept new host keys: job completed');
is($node->safe_psql('postgres', "SELECT success FROM batch_ops.outbound_results($id)"), 't',
	'accept new host keys: the job connected (the server setting)');

# 3. known_hosts in a credential, no file
$node->append_conf('postgresql.conf', "batch_ops.ssh_known_hosts_file = ''\nbatch_ops.ssh_accept_new_host_keys = off\n");
$node->reload;
my $known = $fs->{known_hosts_text};
my ($line21) = grep { /^\[127\.0\.9\.21\]/ } split /\n/, $known;
(my $wrong = $line21) =~ s/^\[127\.0\.9\.21\]/[127.0.9.23]/;
my $cred = sub {
	my ($name, $kh) = @_;
	my $s = $json->encode({ username => 'admin', password => 'pw1', known_hosts => $kh });
	$s =~ s/'/''/g;
	$node->safe_psql('postgres', "SELECT batch_ops.credential_set('$name', '$s')");
};
$cred->('kh', "# the lab\n$line21\n");
$cred->('wrong', "$wrong\n");
my $cspec = sub {
	my ($c, @hosts) = @_;
	my $s = $json->encode({ driver => 'ssh', devices => [ map { { host => $_ } } @hosts ],
		connection_args => { credential => $c, port => $PORT }, command => ['show clock'] });
	return $s =~ s/'/''/gr;
};
$r = $json->decode($node->safe_psql('postgres',
	"SELECT batch_ops.run_outbound('" . $cspec->('kh', '127.0.9.21', '127.0.9.22') . "')"));
ok($r->{results}[0]{success}, 'credential known_hosts: the listed host connects');
is($r->{results}[1]{error}, 'host_key_error', 'credential known_hosts: an unlisted host is refused');
$r = $json->decode($node->safe_psql('postgres',
	"SET batch_ops.ssh_accept_new_host_keys = on; SELECT batch_ops.run_outbound('"
	  . $cspec->('wrong', '127.0.9.23') . "')"));
is($r->{results}[0]{error}, 'host_key_error', 'a contradicting key is refused even when new keys are accepted');
like($r->{results}[0]{message}, qr/does not match known_hosts$/, 'a contradicting key: the message says so');

fakessh_stop($fs);
$node->stop;
done_testing();
