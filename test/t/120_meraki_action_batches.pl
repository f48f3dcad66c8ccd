# meraki, options.mode "action_batch": actions packed into the
# organization's own action batches (src/meraki_pack.c), against the fake
# Dashboard API of test/fakedev (its counters: batches created, actions in
# them, the most batches running at once).  Asserts:
#
#   1. 250 actions of a job -> 3 remote batches (100, 100, 50), every
#      action in exactly one of them; one result per action, in order:
#      each action's created_resource is the resource Meraki created for
#      it (its name in the fake's store), its position in its batch;
#   2. 12 batches of 10: never more than 5 running at once (and 5 are),
#      no sixth batch refused;
#   3. a failing batch: its members all fail with the batch's error
#      (device_error, Meraki's message), none of its actions is applied
#      (atomic); the other batches complete; synchronous batches (20)
#      need no poll;
#   4. options.batch_size and options.synchronous are checked at submit
#      (22023 naming the key);
#   5. kill -9 of the worker while 5 batches run: after the crash restart
#      the members of those 5 batches are 'interrupted', the other actions
#      are packed anew and sent (Meraki refuses them as a sixth batch
#      while the interrupted ones still run: retried, nothing was created);
#      no action is sent twice (the fake saw each action once, 10 batches
#      for 100 actions);
#   6. cancel_job while 2 batches run: their actions are interrupted, the
#      others cancelled, nothing sent after.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;
use FakeDev;

my $ADDR = '127.0.11.1';
my $fd = fakedev_start('meraki_batches', $ADDR, { api_keys => ['k'] });
my $node = bo_node('meraki_batches', <<'CONF');
batch_ops.outbound_networks = '127.0.0.0/8'
restart_after_crash = on
CONF
my $H = $fd->{http};
my $json = JSON::PP->new->canonical;

bo_credential_key($node, 'k.key');
$node->safe_psql('postgres',
	q{SELECT batch_ops.credential_set('mk', '{"api_key": "k"}')});

# A spec of n creates (names "<prefix><i>"), more options, a changed action.
sub spec
{
	my (%o) = @_;
	my @actions = map {
		{ resource => '/organizations/o1/networks', operation => 'create',
		  body => { name => "$o{prefix}$_" } }
	} 0 .. $o{n} - 1;
	$actions[$_] = $o{override}{$_} for keys %{ $o{override} // {} };
	return $json->encode({
		driver => 'meraki',
		actions => \@actions,
		connection_args => { base_url => "http://$ADDR:$H/api/v1", credential => 'mk' },
		options => { organization_id => 'o1', mode => 'action_batch',
			poll_interval_ms => 1000, %{ $o{options} // {} } } });
}

sub stats { return fakedev_control($fd, 'GET', "/stats/$ADDR") }

# name -> created id, of the fake's store
sub store_names
{
	my $st = fakedev_control($fd, 'GET', "/state/$ADDR");
	my %byname;
	for my $k (keys %{ $st->{meraki} })
	{
		my $r = $st->{meraki}{$k};
		$byname{ $r->{name} } = $r->{id} if ref $r eq 'HASH' && defined $r->{name};
	}
	return \%byname;
}

sub results
{
	my ($id) = @_;
	my $rows = $node->safe_psql('postgres',
		"SELECT json_agg(json_build_object('index', index, 'success', success,"
		  . " 'error', error, 'message', message, 'output', output) ORDER BY index)"
		  . " FROM batch_ops.outbound_results($id)");
	return $json->decode($rows);
}

# 1. 250 actions -> 3 batches, one result per action, in order
my $id = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_outbound('" . spec(n => 250, prefix => 'a') . "')");
is(bo_wait_job($node, $id, 'postgres', 60), 'completed', '250 actions: the job completed');
my $st = stats();
is($st->{action_batches}, 3, '250 actions: 3 action batches');
is($st->{batch_actions}, 250, '250 actions: each action in one batch');
my $res = results($id);
is(scalar(@$res), 250, '250 actions: 250 results');
is((grep { $_->{success} } @$res), 250, '250 actions: every action succeeded');
my $names = store_names();
my @bad = grep {
	my $r = $res->[$_];
	!($r->{index} == $_
		&& $r->{output}{position} == $_ % 100
		&& defined $names->{"a$_"}
		&& ($r->{output}{created_resource}{id} // '') eq $names->{"a$_"})
} 0 .. 249;
is(scalar(@bad), 0, '250 actions: each result is its own action\'s (created resource, position)')
  or diag explain [ @$res[ @bad[ 0 .. 2 ] ] ];
my %batch_of;
$batch_of{ $_->{output}{action_batch_id} }++ for @$res;
is_deeply([ sort { $a <=> $b } values %batch_of ], [ 50, 100, 100 ],
	'250 actions: members per batch 100, 100, 50');

# 2. never more than 5 batches running: 5 by default, a larger
# host_concurrency capped at 5
for my $case ([ 'capped', { host_concurrency => 50 } ], [ 'default', {} ])
{
	my ($what, $extra) = @$case;
	fakedev_control($fd, 'POST', '/reset');
	fakedev_control($fd, 'POST', '/config', { batch_delay_ms => 1000 });
	$id = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_outbound('"
		  . spec(n => 120, prefix => "c$what", options => { batch_size => 10, %$extra })
		  . "')");
	is(bo_wait_job($node, $id, 'postgres', 90), 'completed', "12 batches ($what): the job completed");
	$st = stats();
	is($st->{action_batches}, 12, "12 batches ($what) created");
	is($st->{max_running_batches}, 5, "$what: at most 5 batches running at once (and 5 were)")
	  or diag explain [ map { sprintf('%.3f %s %s', $_->{time}, $_->{method}, $_->{path}) }
		  @{ fakedev_control($fd, 'GET', '/log') } ];
	is($st->{statuses}{400} // 0, 0, "$what: no sixth batch refused");
	is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE success) FROM batch_ops.outbound_results($id)"),
		'120', "12 batches ($what): every action succeeded");
}

# 3. a failing batch, synchronous batches
fakedev_control($fd, 'POST', '/reset');
fakedev_control($fd, 'POST', '/config', { batch_delay_ms => 100 });
my $long = 'x' x 70;
my $r = $json->decode($node->safe_psql('postgres',
	"SELECT batch_ops.run_outbound('"
	  . spec(n => 30, prefix => 'f', options => { batch_size => 10 },
		override => { 15 => { resource => '/organizations/o1/networks',
				operation => 'create', body => { name => $long } } })
	  . "')"));
is_deeply($r->{summary}, { total => 30, successful => 20, failed => 10 },
	'failing batch: its 10 actions failed, the other 20 succeeded');
is(join(',', map { $_->{error} // 'ok' } @{ $r->{results} }[ 9 .. 20 ]),
	'ok,' . join(',', ('device_error') x 10) . ',ok',
	'failing batch: every member of the batch (10..19) is device_error');
is($r->{results}[12]{message}, "'name' must be at most 64 characters",
	"failing batch: a member's message is Meraki's error");
ok(defined $r->{results}[12]{output}{action_batch_id}, 'failing batch: the member names its batch');
$names = store_names();
is((grep { defined $names->{"f$_"} } 10 .. 19), 0, 'failing batch: none of its actions was applied');
is((grep { defined $names->{"f$_"} } 0 .. 9, 20 .. 29), 20, 'the other batches were applied');

fakedev_control($fd, 'POST', '/reset');
$r = $json->decode($node->safe_psql('postgres',
	"SELECT batch_ops.run_outbound('"
	  . spec(n => 30, prefix => 's', options => { synchronous => JSON::PP::true })
	  . "')"));
is($r->{summary}{successful}, 30, 'synchronous: 30 actions succeeded');
$st = stats();
is($st->{action_batches}, 2, 'synchronous: 2 batches (20 + 10)');
is($st->{requests}, 2, 'synchronous: no poll');

# 4. checks at submit
like(bo_sql_error($node, "SELECT batch_ops.run_outbound('"
		  . spec(n => 3, prefix => 'e', options => { batch_size => 101 }) . "')"),
	qr/^22023: invalid outbound spec key "options.batch_size"/, 'batch_size over 100: 22023');
like(bo_sql_error($node, "SELECT batch_ops.run_outbound('"
		  . spec(n => 3, prefix => 'e',
			options => { batch_size => 21, synchronous => JSON::PP::true }) . "')"),
	qr/^22023: invalid outbound spec key "options.batch_size"/,
	'batch_size over 20 in a synchronous batch: 22023');
like(bo_sql_error($node, "SELECT batch_ops.run_outbound('"
		  . spec(n => 3, prefix => 'e', options => { synchronous => 'yes' }) . "')"),
	qr/^22023: invalid outbound spec key "options.synchronous"/, 'synchronous not a boolean: 22023');

# 5. kill -9 of the worker while 5 batches run
fakedev_control($fd, 'POST', '/reset');
fakedev_control($fd, 'POST', '/config', { batch_delay_ms => 4000 });
$id = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_outbound('"
	  . spec(n => 100, prefix => 'k', options => { batch_size => 10, host_concurrency => 5, retries => 10 }) . "')");
ok(bo_wait_until(sub { stats()->{action_batches} >= 5 }, 30), 'crash: 5 batches sent');
my $pid = bo_job_internal($node, 'postgres', $id, 'worker_pid');
ok($pid > 0, "crash: worker pid $pid");
my $offset = -s $node->logfile;
kill 'KILL', $pid;
ok(bo_wait_crash_restart($node, $offset), 'crash: the server restarted');
is(bo_wait_job($node, $id, 'postgres', 90), 'completed', 'crash: the job resumed and completed');
$res = results($id);
is(scalar(@$res), 100, 'crash: one result per action');
is(join(',', map { $_->{index} } grep { ($_->{error} // '') eq 'interrupted' } @$res),
	join(',', 0 .. 49), 'crash: the members of the 5 batches sent are interrupted');
is((grep { $_->{success} } @$res), 50, 'crash: the other 50 were packed anew and succeeded')
  or diag explain $res->[50];
# the 5 interrupted batches finish on the fake's side anyway
ok(bo_wait_until(sub { stats()->{running_batches} == 0 }, 30), 'crash: every batch finished');
$st = stats();
is($st->{action_batches}, 10, 'crash: 10 batches in all');
is($st->{batch_actions}, 100, 'crash: no action sent twice');
$names = store_names();
is((grep { defined $names->{"k$_"} } 0 .. 99), 100, 'crash: each action applied once');

# 6. cancel while batches run: their members are interrupted (sent), the
#    actions not yet in a batch cancelled
fakedev_control($fd, 'POST', '/reset');
$id = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_outbound('"
	  . spec(n => 60, prefix => 'x', options => { batch_size => 10, host_concurrency => 2 }) . "')");
ok(bo_wait_until(sub { stats()->{action_batches} >= 2 }, 30), 'cancel: 2 batches sent');
is($node->safe_psql('postgres', "SELECT batch_ops.cancel_job($id)"), 't', 'cancel: cancel_job');
is(bo_wait_job($node, $id, 'postgres', 30), 'cancelled', 'cancel: the job is cancelled');
is($node->safe_psql('postgres',
	"SELECT string_agg(DISTINCT coalesce(error, 'ok') || ':' || (index / 10), ','"
	  . " ORDER BY coalesce(error, 'ok') || ':' || (index / 10))"
	  . " FROM batch_ops.outbound_results($id)"),
	join(',', 'cancelled:2', 'cancelled:3', 'cancelled:4', 'cancelled:5', 'interrupted:0', 'interrupted:1'),
	'cancel: the 2 batches sent interrupted, the 4 others cancelled');
is(stats()->{batch_actions}, 20, 'cancel: nothing sent after the cancel');

fakedev_stop($fd);
$node->stop;
done_testing();
