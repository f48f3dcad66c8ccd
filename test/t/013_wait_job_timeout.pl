# Issue #8 item 14: wait_job() with a timeout beyond the timestamp range.
#
# wait_job(j, '1000000 years') used to fail with "timestamp out of range"
# (the deadline now() + timeout overflowed).  A timeout that large must be
# clamped: the call waits and returns the job's answer when it finishes.
# A negative (or zero) timeout, however large, returns at once with the
# current answer; NULL waits without a timeout.
#
# The job is held at a gate (its trigger waits for an advisory lock the
# test holds), so "still waiting while the job runs" and "returned at once
# with status running" are facts, not timings.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $GATE = 777;
my $node = bo_node('wait_job', "batch_ops.max_workers = 2\n");
$node->safe_psql('postgres', <<"SQL");
CREATE TABLE quick (id int PRIMARY KEY);
CREATE TABLE gated (id int PRIMARY KEY);
CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM pg_advisory_xact_lock_shared($GATE);
	RETURN NEW;
END \$\$;
CREATE TRIGGER gate BEFORE INSERT ON gated FOR EACH ROW EXECUTE FUNCTION gate();
SQL

# Timeouts past the end of the timestamp range, in several spellings
# (interval's own maximum is about 178000000 years).
my @huge = ('1000000 years', '178000000 years', 'P1000000Y',
	'300000 years', '365000000 days', '2562047788 hours');
# Negative ones, some of which also overflow (now() - 1000000 years).
my @negative = ('-1 second', '-1000000 years', '-178000000 years',
	'-365000000 days', '0');

# 1. A finished job: any timeout gives its answer at once.
my $done = $node->safe_psql('postgres',
	q{SELECT batch_ops.submit_batch('create', 'quick', '[{"id": 1}]')});
is(bo_wait_job($node, $done), 'completed', 'the quick job completed');
for my $t (@huge, @negative)
{
	my $r = bo_sql($node, 'postgres',
		"SELECT batch_ops.wait_job($done, '$t') ->> 'status'", 30);
	is($r->{sqlstate}, '', "wait_job(finished job, '$t') does not fail")
	  or diag($r->{err});
	is($r->{out}, 'completed',
		"wait_job(finished job, '$t') returns the job's answer");
}

# 2. A running job held at the gate.
my $gate = bo_gate_hold($node, 'postgres', $GATE);
my $id = $node->safe_psql('postgres',
	q{SELECT batch_ops.submit_batch('create', 'gated', '[{"id": 1}, {"id": 2}]')});
ok(bo_gate_wait_blocked($node, 'postgres', $GATE),
	'the gated job is running and waits at the gate');

# negative or zero: at once, with the current answer
for my $t (@negative)
{
	my $r = bo_sql($node, 'postgres',
		"SELECT batch_ops.wait_job($id, '$t') ->> 'status'", 30);
	ok(!$r->{timed_out}, "wait_job(running job, '$t') returns at once");
	is($r->{sqlstate}, '', "wait_job(running job, '$t') does not fail")
	  or diag($r->{err});
	is($r->{out}, 'running',
		"wait_job(running job, '$t') answers with the current status");
}

# huge or NULL: they wait for the job
my %waiter;
my $n = 0;
for my $t (@huge, 'NULL')
{
	my $arg = $t eq 'NULL' ? 'NULL' : "'$t'";
	$n++;
	$waiter{$t} = {
		app => "bo_waiter_$n",
		h => bo_psql_start(
			$node, 'postgres',
			"SELECT batch_ops.wait_job($id, $arg) ->> 'status'",
			"bo_waiter_$n")
	};
}
my $apps = join(', ', map { "'$waiter{$_}{app}'" } keys %waiter);
my $all_waiting = bo_wait_until(
	sub {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
			  . " AND application_name IN ($apps)"
			  . " AND query LIKE '%wait_job%'") == scalar(keys %waiter);
	},
	10);
my %waiting = map { ($_, 1) } split /\n/,
  $node->safe_psql('postgres',
	"SELECT application_name FROM pg_stat_activity WHERE state = 'active'"
	  . " AND application_name IN ($apps) AND query LIKE '%wait_job%'");
for my $t (sort keys %waiter)
{
	ok($waiting{ $waiter{$t}{app} },
		"wait_job(running job, $t) is still waiting while the job runs");
}
is(bo_job_status($node, 'postgres', $id), 'running',
	'the job was still running while they waited');

bo_gate_release($gate);
is(bo_wait_job($node, $id), 'completed', 'the gated job completed');
for my $t (sort keys %waiter)
{
	my $r = bo_psql_finish($waiter{$t}{h});
	is($r->{sqlstate}, '', "wait_job(job, $t) did not fail")
	  or diag($r->{err});
	is($r->{out}, "completed\n",
		"wait_job(job, $t) returned the finished job's answer");
}

$node->stop;
done_testing();
