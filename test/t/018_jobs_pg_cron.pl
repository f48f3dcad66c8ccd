# Scheduled jobs: the real pg_cron calling batch_ops, on a node that
# preloads pg_cron with cron.database_name = 'postgres' (and cron.host =
# the node's socket directory: the node listens on no TCP port).  Asserts:
#
#   1. a pg_cron job that calls batch_ops.submit_import() of a small file
#      (scheduled every 5 seconds when the installed pg_cron supports
#      second intervals -- 1.5 and later --, else every minute) submits an
#      import that completes, within a bounded time; its pg_cron run
#      succeeded;
#   2. a pg_cron job calling batch_ops.purge() runs without error;
#   3. after cron.unschedule() no new import is submitted (checked when
#      the schedule is in seconds; with a minute schedule that would cost
#      another minute).
#
# Skipped when pg_cron is not installed (postgresql-15-cron).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => 'pg_cron is not installed (postgresql-15-cron)'
  unless -f "$sharedir/extension/pg_cron.control";

my $node = bo_node('cron', <<'CONF');
shared_preload_libraries = 'batch_ops,pg_cron'
cron.database_name = 'postgres'
CONF
# pg_cron connects through libpq to cron.host: the node's socket directory
$node->append_conf('postgresql.conf', "cron.host = '" . $node->host . "'\n");
$node->restart;
my $S = bo_scratch($node);
bo_write_file("$S/cron.csv", "id,name\n" . join('', map { "$_,n$_\n" } 1 .. 100));

sub qv { return bo_q($node, 'postgres', $_[0]) }

is( qv("SELECT current_setting('shared_preload_libraries') ~ 'pg_cron' AND current_setting('cron.database_name') = 'postgres'"),
	't', 'pg_cron is preloaded, for database postgres');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$node->safe_psql('postgres', 'CREATE TABLE cron_target (id int PRIMARY KEY, name text NOT NULL)');
note('pg_cron ' . qv("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'"));

my $import_cmd = "SELECT batch_ops.submit_import('public.cron_target', '$S/cron.csv')";
# second intervals came with pg_cron 1.5; older versions reject them
my ($schedule, $deadline) = ('5 seconds', 40);
my $r = bo_sql($node, 'postgres',
	"SELECT cron.schedule('bo_import', '$schedule', \$cron\$$import_cmd\$cron\$)");
my $jid = $r->{out};
if ($r->{sqlstate} ne '')
{
	($schedule, $deadline) = ('* * * * *', 90);
	$jid = $node->safe_psql('postgres',
		"SELECT cron.schedule('bo_import', '$schedule', \$cron\$$import_cmd\$cron\$)");
}
my $pid = $node->safe_psql('postgres',
	"SELECT cron.schedule('bo_purge', '$schedule', 'SELECT batch_ops.purge()')");
note("scheduled import (cron job $jid) and purge (cron job $pid) at '$schedule'; waiting up to ${deadline}s");

my $mine = "FROM batch_ops.jobs WHERE target::regclass = 'cron_target'::regclass";

# 1. the first import submitted by pg_cron appears and completes
if (ok(bo_wait_sql($node, 'postgres', "SELECT EXISTS (SELECT $mine)", $deadline),
		'pg_cron submitted an import job'))
{
	my $first = qv("SELECT min(job_id) $mine");
	is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created', w->'results'->'failed', w->>'submitted_by')
		      FROM batch_ops.wait_job($first, '30 s') AS w"),
		'completed 100 0 postgres',
		'the import submitted by pg_cron completes (status created failed submitted_by)');
	is(qv('SELECT count(*) FROM cron_target'), '100', 'the imported rows are there');
}
ok( bo_wait_sql($node, 'postgres',
		"SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $jid AND status = 'succeeded')", 30),
	'pg_cron recorded a successful run of the import command');

# 2. purge()
if (ok( bo_wait_sql($node, 'postgres',
			"SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $pid AND status IN ('succeeded', 'failed'))",
			$deadline),
		'pg_cron ran batch_ops.purge()'))
{
	my $run = qv("SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details
	               WHERE jobid = $pid AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1");
	note("purge() run: $run");
	is((split /:/, $run)[0], 'succeeded', 'the purge() run succeeded');
}
is( qv("SELECT coalesce(string_agg(jobid || ': ' || return_message, '; '), '') FROM cron.job_run_details
	     WHERE jobid IN ($jid, $pid) AND status = 'failed'"),
	'', 'no pg_cron run failed');

# 3. unschedule
is(qv("SELECT cron.unschedule($jid) AND cron.unschedule($pid)"), 't', 'cron.unschedule() of both');
is(qv('SELECT count(*) FROM cron.job'), '0', 'no pg_cron job is left');
# a run that had already started may still submit: let it finish
ok( bo_wait_sql($node, 'postgres',
		"SELECT NOT EXISTS (SELECT FROM cron.job_run_details
		                     WHERE jobid IN ($jid, $pid) AND status IN ('starting', 'running', 'sending', 'connecting'))",
		30),
	'the runs started before cron.unschedule() have ended');
my $n = qv("SELECT count(*) $mine");
if ($schedule eq '5 seconds')
{
	# nothing may happen for longer than the schedule's period
	my $until = time + 8;
	usleep(100_000) while time < $until;
	is(qv("SELECT count(*) $mine"), $n, 'no import is submitted after cron.unschedule()');
}
else
{
	note('minute schedule: not waiting another minute to see that nothing runs after cron.unschedule()');
}
# every import pg_cron submitted finished (the later ones find the rows there: conflicts)
is( qv("SELECT count(*) FROM batch_ops.jobs AS j, batch_ops.wait_job(j.job_id, '20 s') AS w
	     WHERE j.target::regclass = 'cron_target'::regclass AND w->>'status' <> 'completed'"),
	'0', 'every import pg_cron submitted completed');
note("pg_cron submitted $n import job(s)");

$node->stop;
done_testing();
