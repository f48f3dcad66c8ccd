# Outbound jobs of the ssh driver: cancel and a worker's kill -9, as for
# HTTP.  Asserts:
#
#   1. cancel_job of a job whose devices hang ends it within a second, its
#      unfinished targets cancelled;
#   2. a worker killed (kill -9) mid-job: the job resumes and completes
#      with exactly one result per target; reads in flight run again and
#      succeed; config targets are never sent twice (the fake devices
#      count every line they receive): those in flight at the crash are
#      interrupted, those not started then are sent after it and succeed,
#      each line received at most once.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use FakeSsh;

my $PORT = 19012;
my $fs = fakessh_start('jobs', '127.0.9.31-127.0.9.54', $PORT,
	{ users => { admin => { password => 'pw1', enable_password => 'en' } } });
my $node = bo_node('ssh_jobs', <<"CONF");
batch_ops.outbound_networks = '127.0.9.0/24'
batch_ops.ssh_known_hosts_file = '$fs->{known_hosts}'
restart_after_crash = on
CONF
bo_credential_key($node, 'k.key');
ssh_skip_unless_built($node);
$node->safe_psql('postgres',
	q{SELECT batch_ops.credential_set('sw', '{"username": "admin", "password": "pw1", "enable_password": "en"}')});
my $json = JSON::PP->new->canonical;

sub submit
{
	my ($spec) = @_;
	my $s = $json->encode($spec) =~ s/'/''/gr;
	return $node->safe_psql('postgres', "SELECT batch_ops.submit_outbound('$s')");
}

# 1. cancel
fakessh_faults($fs, { map { ("127.0.9.$_" => { hang => JSON::PP::true }) } 31 .. 40 });
my $id = submit({ driver => 'ssh', devices => [ map { { host => "127.0.9.$_" } } 31 .. 40 ],
	connection_args => { credential => 'sw', port => $PORT, timeout => 60 },
	command => ['show clock'] });
ok(bo_wait_until(sub {
	my $c = fakessh_counts($fs);
	(grep { ($c->{"127.0.9.$_"}{commands} // 0) >= 1 } 31 .. 40) == 10 }, 20),
	'cancel: every device is hanging on a command');
my $t0 = time;
is($node->safe_psql('postgres', "SELECT batch_ops.cancel_job($id)"), 't', 'cancel_job: true');
is(bo_wait_job($node, $id, 'postgres', 10), 'cancelled', 'cancel: job cancelled');
my $took = time - $t0;
cmp_ok($took, '<', 1.0, "cancel: within a second (${took}s)");
is($node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_results($id) WHERE error = 'cancelled'"),
	'10', 'cancel: every unfinished target cancelled');
fakessh_faults($fs, {});

# 2. kill -9 of the worker: 12 reads and 12 configs on 24 devices, slow
fakessh_faults($fs, { '*' => { delay_ms => 1500 } });
my @devices;
for my $i (0 .. 23)
{
	my $host = '127.0.9.' . (31 + $i);
	push @devices, $i % 2 == 0
	  ? { host => $host, command => ['show clock'] }
	  : { host => $host, config => ["vlan $i"] };
}
$id = submit({ driver => 'ssh', devices => \@devices,
	connection_args => { credential => 'sw', port => $PORT, timeout => 30 },
	options => { concurrency => 8 } });
ok(bo_wait_until(sub {
	$node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_result WHERE job_id = $id AND finished_at IS NULL") >= 2 }, 20),
	'kill -9: changes in flight are marked started');
usleep(500_000);
my $pid = bo_job_internal($node, 'postgres', $id, 'worker_pid');
ok($pid > 0, "kill -9: worker pid $pid");
kill 'KILL', $pid;
usleep(500_000);
$node->poll_query_until('postgres', 'SELECT 1', '1');
fakessh_faults($fs, {});
is(bo_wait_job($node, $id, 'postgres', 90), 'completed', 'kill -9: the job resumed and completed');
is($node->safe_psql('postgres', "SELECT count(*), count(DISTINCT index) FROM batch_ops.outbound_results($id)"),
	'24|24', 'kill -9: one result per target');
is($node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 0 AND success"),
	'12', 'kill -9: every read succeeded');
my $interrupted = $node->safe_psql('postgres',
	"SELECT count(*) FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND error = 'interrupted'");
cmp_ok($interrupted, '>=', 1, "kill -9: configs in flight at the crash are interrupted ($interrupted)");
my %ok = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
	"SELECT index FROM batch_ops.outbound_results($id) WHERE index % 2 = 1 AND success");
is(scalar(keys %ok) + $interrupted, 12, 'kill -9: every other config succeeded');
cmp_ok(scalar(keys %ok), '>=', 1, 'kill -9: configs not started at the crash were sent after it');
my $counts = fakessh_counts($fs);
my (@twice, @missing);
for my $i (grep { $_ % 2 == 1 } 0 .. 23)
{
	my $n = grep { $_ eq "vlan $i" } @{ $counts->{ '127.0.9.' . (31 + $i) }{config_log} // [] };
	push @twice, $i if $n > 1;
	push @missing, $i if $ok{$i} && $n != 1;
}
is("@twice", '', 'kill -9: no config line was received twice');
is("@missing", '', 'kill -9: each successful config was received once');

fakessh_stop($fs);
$node->stop;
done_testing();
