# Interop: the ssh driver against Debian's real OpenSSH server, started
# by the test as the user it runs as (a non-root sshd accepts only key
# logins of its own user) on a loopback address.  Asserts:
#
#   1. device_type linux, public key authentication from a credential, the
#      host key checked against the credential's known_hosts: each command
#      on its exec channel, outputs exactly as printed;
#   2. a command's exit status: device_error with its stderr;
#   3. pinned (the default): the targets for the host share one session
#      (sshd logs one accepted key for them);
#   4. config lines run as commands (a change): the file they create exists.
use strict;
use warnings;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;
use FakeSsh;

my $sshd = '/usr/sbin/sshd';
plan skip_all => 'openssh-server is not installed' unless -x $sshd;

my $PORT = 19013;
my $ADDR = '127.0.10.1';
my $w = PostgreSQL::Test::Utils::tempdir('sshd');
for my $k ('hk', 'id')
{
	system('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', "$w/$k") == 0
	  or BAIL_OUT('ssh-keygen failed');
}
system('cp', "$w/id.pub", "$w/authorized_keys") == 0 or BAIL_OUT('cp failed');
open(my $fh, '>', "$w/sshd_config") or die $!;
print $fh <<"CONF";
Port $PORT
ListenAddress $ADDR
HostKey $w/hk
PidFile $w/sshd.pid
AuthorizedKeysFile $w/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
LogLevel VERBOSE
CONF
close($fh);
my $h = IPC::Run::start([ $sshd, '-D', '-e', '-f', "$w/sshd_config" ], '>', "$w/log", '2>&1');
bo_wait_until(sub { slurp_file("$w/log") =~ /Server listening/ }, 20)
  or BAIL_OUT('sshd did not start: ' . slurp_file("$w/log"));

my $node = bo_node('ssh_openssh', "batch_ops.outbound_networks = '127.0.10.0/24'\n");
ssh_skip_unless_built($node);
bo_credential_key($node, 'k.key');
my $json = JSON::PP->new->canonical;
my $user = getpwuid($<);
my $hostkey = slurp_file("$w/hk.pub");
$hostkey =~ s/\s+\S*$//;    # no comment
my $cred = $json->encode({ username => $user, private_key => slurp_file("$w/id"),
	known_hosts => "[$ADDR]:$PORT $hostkey\n" });
$node->safe_psql('postgres', "SELECT batch_ops.credential_set('lab', '" . ($cred =~ s/'/''/gr) . "')");

sub run
{
	my ($spec) = @_;
	my $s = $json->encode($spec) =~ s/'/''/gr;
	return $json->decode($node->safe_psql('postgres', "SELECT batch_ops.run_outbound('$s')"));
}

my $r = run({
	driver => 'ssh',
	devices => [
		{ host => $ADDR, command => [ 'echo hello world', 'printf "a\\tb\\n\\nc"' ] },
		{ host => $ADDR, command => [ 'uname -s', 'ls /nonexistent-dir', 'echo never' ] },
		{ host => $ADDR, config => [ "touch $w/made-by-config", "echo done > $w/second" ] },
	],
	connection_args => { device_type => 'linux', credential => 'lab', port => $PORT },
	options => { retries => 0 } });
ok($r->{results}[0]{success}, 'openssh: public key login, commands ran') or diag explain $r;
is_deeply($r->{results}[0]{output}, [ "hello world\n", "a\tb\n\nc" ], 'openssh: outputs exactly as printed');
is($r->{results}[1]{error}, 'device_error', 'openssh: a failing command is device_error');
like($r->{results}[1]{message}, qr{^command 2 "ls /nonexistent-dir" exited with status 2: ls: cannot access '/nonexistent-dir'},
	'openssh: the message has the status and stderr');
is_deeply($r->{results}[1]{output}, [ "Linux\n", '' ], 'openssh: outputs up to the failing command');
ok($r->{results}[2]{success}, 'openssh: config lines ran');
ok(-e "$w/made-by-config" && slurp_file("$w/second") eq "done\n", 'openssh: the config lines took effect');
my @accepted = (slurp_file("$w/log") =~ /Accepted publickey/g);
is(scalar(@accepted), 1, 'openssh: pinned, one session for the three targets');

$h->kill_kill;
$node->stop;
done_testing();
