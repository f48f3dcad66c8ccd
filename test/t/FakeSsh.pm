# FakeSsh — start and drive test/ssh/fake_device.py from TAP tests.
#
#   my $fs = fakessh_start('name', '127.0.9.1-127.0.9.4', 19010,
#       {users => {admin => {password => 'pw'}}}, ['127.0.9.4']);
#   $fs->{port}, $fs->{known_hosts}   the port and the devices' known_hosts
#                                     (every address but the other-key ones)
#   fakessh_faults($fs, {'127.0.9.2' => {hang => JSON::PP::true}});
#   fakessh_counts($fs)->{'127.0.9.1'}{logins}
#   fakessh_stop($fs);
#
# The devices use /usr/bin/python3 (Debian's, which has asyncssh).  Their
# lifetime bounds them even if the test dies before stopping them.
package FakeSsh;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use BatchOpsTest;

our @EXPORT = qw(fakessh_start fakessh_stop fakessh_faults fakessh_counts ssh_skip_unless_built);

my $json = JSON::PP->new->canonical;

# fakessh_start(NAME, ADDRESSES, PORT, [CONFIG], [OTHER_KEY_ADDRESSES])
sub fakessh_start
{
	my ($name, $addresses, $port, $config, $other) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("fakessh_$name");
	my $script = dirname(__FILE__) . '/../ssh/fake_device.py';
	chmod 0755, $dir;
	open(my $fh, '>', "$dir/config.json") or die "$dir/config.json: $!";
	print $fh $json->encode($config // {});
	close($fh);
	my $h = IPC::Run::start(
		[
			'/usr/bin/python3', $script, '--addresses', $addresses,
			'--port', $port, '--dir', $dir, '--config', "$dir/config.json",
			'--ready', "$dir/ready", '--lifetime', 900,
			'--other-key', join(',', @{ $other // [] })
		],
		'>', "$dir/out", '2>&1');
	bo_wait_until(sub { -s "$dir/ready" }, 60)
	  or die "fake_device $name did not start: " . slurp_file("$dir/out");
	chmod 0644, "$dir/known_hosts";
	return {
		harness => $h,
		dir => $dir,
		port => $port,
		known_hosts => "$dir/known_hosts",
		known_hosts_text => slurp_file("$dir/known_hosts")
	};
}

# ssh_skip_unless_built(NODE) — skip the test file when batch_ops was built
# without libssh2 (the ssh driver answers 0A000).
sub ssh_skip_unless_built
{
	my ($node) = @_;
	my $err = bo_sql_error($node, q{SELECT batch_ops.run_outbound('{"driver": "ssh", "devices": [{"host": "127.0.0.1"}], "command": "x"}')});
	Test::More::plan(skip_all => 'batch_ops was built without libssh2') if $err =~ /^0A000/;
	return;
}

sub fakessh_stop
{
	my ($fs) = @_;
	$fs->{harness}->kill_kill if $fs->{harness};
	delete $fs->{harness};
	return;
}

# fakessh_faults(FS, FAULTS) — replace the faults (read at every command).
sub fakessh_faults
{
	my ($fs, $faults) = @_;
	open(my $fh, '>', "$fs->{dir}/faults.json.tmp") or die "faults: $!";
	print $fh $json->encode($faults);
	close($fh);
	rename("$fs->{dir}/faults.json.tmp", "$fs->{dir}/faults.json")
	  or die "faults: $!";
	return;
}

# fakessh_counts(FS) — what the devices counted, per address.
sub fakessh_counts
{
	my ($fs) = @_;
	return {} unless -s "$fs->{dir}/counts.json";
	return $json->decode(slurp_file("$fs->{dir}/counts.json"));
}

1;
