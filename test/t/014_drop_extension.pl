# Issue #8 item 15: dropping batch_ops while one of the database's jobs runs.
#
# DROP EXTENSION batch_ops used to wait for the job tables' locks held by
# the running job, which then waited for the drop's locks when it wrote
# its checkpoint: "deadlock detected", and either the drop or the job was
# killed.  Now the drop fails at once with SQLSTATE 55006
# (object_in_use), naming the running job(s) in its message or detail,
# with a hint (cancel them or wait); the job goes on and completes; once
# it has finished the same drop succeeds; the log never shows a deadlock.
# Spelled as DROP EXTENSION, DROP EXTENSION ... CASCADE, DROP EXTENSION IF
# EXISTS, DROP SCHEMA batch_ops CASCADE and a drop inside a transaction
# block.  A job running in another database does not prevent the drop.
#
# The job is held at a gate (its trigger waits for an advisory lock the
# test holds), so it is running for as long as the test needs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $GATE = 778;
my $node = bo_node('drop_ext', <<'CONF');
batch_ops.max_workers = 3
deadlock_timeout = '200ms'
CONF

# the test's tables live outside the extension's schema and survive it
sub setup_db
{
	my ($db) = @_;
	$node->safe_psql($db, <<"SQL");
CREATE TABLE slow (id int PRIMARY KEY);
CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM pg_advisory_xact_lock_shared($GATE);
	RETURN NEW;
END \$\$;
CREATE TRIGGER gate BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION gate();
SQL
}
setup_db('postgres');

sub extension_count
{
	my ($db) = @_;
	return $node->safe_psql($db,
		"SELECT count(*) FROM pg_extension WHERE extname = 'batch_ops'");
}

# A job of DB that is running, held at the gate: (job id, gate session).
sub running_job
{
	my ($db, $first_id) = @_;
	# job ids that cannot be mistaken for another number of a message
	$node->safe_psql($db,
		"SELECT setval('batch_ops.job_queue_id_seq', 7000 + $first_id * 10)");
	my $gate = bo_gate_hold($node, $db, $GATE);
	my $id = $node->safe_psql($db,
		"SELECT batch_ops.submit_batch('create', 'slow',"
		  . " '[{\"id\": $first_id}, {\"id\": "
		  . ($first_id + 1) . "}]')");
	ok(bo_gate_wait_blocked($node, $db, $GATE),
		"$db: job $id is running (held at the gate)");
	return ($id, $gate);
}

my @drops = (
	[ 'DROP EXTENSION batch_ops', 'DROP EXTENSION' ],
	[ 'DROP EXTENSION batch_ops CASCADE', 'DROP EXTENSION CASCADE' ],
	[ 'DROP EXTENSION IF EXISTS batch_ops', 'DROP EXTENSION IF EXISTS' ],
	[ 'DROP SCHEMA batch_ops CASCADE', 'DROP SCHEMA CASCADE' ],
	[
		'BEGIN; DROP EXTENSION batch_ops RESTRICT; COMMIT;',
		'DROP EXTENSION in a transaction block'
	],);

my $first = 1;
for my $d (@drops)
{
	my ($sql, $name) = @$d;
	$node->safe_psql('postgres', 'CREATE EXTENSION IF NOT EXISTS batch_ops');
	my ($id, $gate) = running_job('postgres', $first);
	my $log_offset = -s $node->logfile;

	# the drop: at once, or (before the fix) it waits for the job's locks
	my $drop = bo_psql_start($node, 'postgres',
		"SET lock_timeout = '20s'; $sql", 'bo_dropper');
	bo_wait_until(
		sub {
			$drop->{run}->pump_nb;
			return 1 unless $drop->{run}->pumpable;
			# still running: waiting for a lock?
			return $node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity"
				  . " WHERE application_name = 'bo_dropper'"
				  . " AND wait_event_type = 'Lock'") > 0;
		},
		10);
	my $dropped_at_once = !$drop->{run}->pumpable;
	ok($dropped_at_once, "$name: answers at once while job $id runs");

	# let the job go on
	bo_gate_release($gate);
	my $status = '';
	bo_wait_until(
		sub {
			$status = bo_job_status($node, 'postgres', $id);
			return $status =~ /^(completed|failed|cancelled)$/
			  || extension_count('postgres') == 0;
		},
		30);
	my $r = bo_psql_finish($drop);
	is($r->{sqlstate}, '55006',
		"$name: fails with SQLSTATE 55006 (object_in_use) while a job runs")
	  or diag($r->{err});
	ok($r->{sqlstate} eq '55006' && $r->{err} =~ /(ERROR|DETAIL):.*\b$id\b/,
		"$name: the message or detail names the running job $id");
	ok($r->{sqlstate} eq '55006' && $r->{err} =~ /HINT:\s+\S/,
		"$name: with a hint (cancel the job or wait)");
	is(extension_count('postgres'), '1', "$name: the extension is still there");
	is($status, 'completed', "$name: the running job completed");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM slow WHERE id IN ($first, "
			  . ($first + 1) . ")"),
		'2',
		"$name: the job wrote its rows");
	my $log = slurp_file($node->logfile, $log_offset);
	ok($log !~ /deadlock detected/, "$name: no deadlock in the server log");

	# once no job runs, the same drop succeeds
	$r = bo_sql($node, 'postgres', $sql);
	is($r->{sqlstate}, '', "$name: succeeds once the job has finished")
	  or diag($r->{err});
	is(extension_count('postgres'), '0', "$name: the extension is gone");
	$first += 2;
}

# A job running in another database does not hold up this database's drop.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION batch_ops');
setup_db('other');
$node->safe_psql('postgres', 'CREATE EXTENSION IF NOT EXISTS batch_ops');
my ($oid, $ogate) = running_job('other', 100);
my $r = bo_sql($node, 'postgres',
	"SET lock_timeout = '20s'; DROP EXTENSION batch_ops", 30);
is($r->{sqlstate}, '', 'a job running in another database does not prevent the drop')
  or diag($r->{err});
bo_gate_release($ogate);
my $ostatus = '';
bo_wait_until(
	sub {
		$ostatus = bo_job_status($node, 'other', $oid);
		$ostatus =~ /^(completed|failed|cancelled)$/;
	},
	30);
is($ostatus, 'completed', "the other database's job completed");

# leave nothing running
for my $db ('postgres', 'other')
{
	bo_sql($node, $db,
		"SELECT batch_ops.cancel_job(id) FROM batch_ops.job_queue"
		  . " WHERE status IN ('queued', 'running')");
}
$node->stop('immediate');
done_testing();
