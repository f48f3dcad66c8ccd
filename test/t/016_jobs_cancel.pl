# Cancelling jobs, and jobs that fail as a whole.  Asserts:
#
#   1. cancel_job() of a running import (400000 rows, chunk_size 5000, a
#      target whose statement trigger busy-waits, so that the job lasts
#      ~10 s) returns true and the job is 'cancelled' within 2 s; the
#      chunks committed before stay, exactly once (the table holds a prefix
#      of the file, ids 1..count(*), and count(*) = the job's "created"),
#      the cancel is not reported as row errors; a second cancel_job()
#      returns false;
#   2. the same for a running atomic import (nothing stays) and a running
#      submit_batch job;
#   3. the worker goes on: a job submitted with the cancelled one (queued
#      behind it) completes;
#   4. a job whose target is dropped while it runs fails as a whole (status
#      'failed', a sane error message), keeping its committed chunks; a job
#      whose trigger raises an error that is not a row's fault (40001) fails
#      with that error instead of reporting the row;  the worker survives
#      both and runs the next job;
#   5. an atomic job's finished_at is when it finished (not when it
#      started);
#   6. no job worker crashed or exited with an error (server log).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;

my $node = bo_node('cancel');
my $S = bo_scratch($node);

my $N = 400000;
bo_write_file("$S/good.csv",
	"id,name,qty\n" . join('', map { "$_,n$_," . ($_ % 100) . "\n" } 1 .. $N));

bo_create_spin($node, 'postgres');
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE imp (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0));
CREATE TRIGGER slow AFTER INSERT ON imp FOR EACH STATEMENT EXECUTE FUNCTION spin(120);
CREATE TABLE bat (id int PRIMARY KEY, v int NOT NULL);
CREATE TRIGGER slow AFTER INSERT ON bat FOR EACH STATEMENT EXECUTE FUNCTION spin(100);
CREATE TABLE after_cancel (id serial PRIMARY KEY, v int);
SQL

sub qv { return bo_q($node, 'postgres', $_[0]) }

# cancel JOB, then measure how long until it is no longer running:
# (cancel_job()'s result, milliseconds until the job's status was final).
# One session for the cancel and the polls, so that what is measured is
# the job, not psql's start-up (seconds on a loaded machine).
my $poller = $node->background_psql('postgres');
sub cancel_and_time
{
	my ($job) = @_;
	my $t0 = time;
	my $r = $poller->query_safe("SELECT batch_ops.cancel_job($job)");
	bo_wait_until(
		sub {
			my $st = $poller->query_safe("SELECT status FROM batch_ops.jobs WHERE job_id = $job");
			return $st ne 'running' && $st ne 'queued';
		},
		10);
	return ($r, int((time - $t0) * 1000));
}

# ---------------------------------------------------------------- 1 + 3: import
note('== cancel a running import');
my ($ji, $jnext) = split /\n/, $node->safe_psql('postgres', <<SQL);
BEGIN;
SELECT batch_ops.submit_import('imp', '$S/good.csv', '{"chunk_size": 5000}');
SELECT batch_ops.submit_batch('create', 'after_cancel', '[{"v": 1}]');
COMMIT;
SQL
ok( bo_wait_sql($node, 'postgres',
		"SELECT status = 'running' AND rows_done >= 10000 FROM batch_ops.jobs WHERE job_id = $ji", 60),
	'import running with committed chunks');
my ($res, $ms) = cancel_and_time($ji);
note("cancel_job returned $res; the job stopped after $ms ms");
is($res, 't', 'cancel_job() of a running import returns true');
cmp_ok($ms, '<=', 2000, 'the import is no longer running within 2 s of cancel_job()');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'errors_total', jsonb_array_length(w->'results'->'errors'))
	      FROM batch_ops.wait_job($ji, '30 s') AS w"),
	'cancelled 0 0',
	'cancelled import: status, and no row error for the cancel (status errors_total #errors)');
is(qv("SELECT count(*) > 0 AND count(*) < $N FROM imp"),
	't', "cancelled import: committed chunks stay (0 < rows < $N)");
is(qv('SELECT count(*) = count(DISTINCT id) AND max(id) = count(*) AND min(id) = 1 FROM imp'),
	't', 'cancelled import: the rows are a prefix of the file, each once (ids 1..count(*))');
is( qv("SELECT (SELECT count(*) FROM imp) = created AND created = rows_done FROM batch_ops.jobs WHERE job_id = $ji"),
	't', "cancelled import: count(*) = the job's created counter = rows_done");
is(qv("SELECT batch_ops.cancel_job($ji)"), 'f', 'cancel_job() of a cancelled job returns false');
is(qv("SELECT batch_ops.wait_job($jnext, '30 s')->>'status'"),
	'completed', 'the job queued with the cancelled import completes');

note('== cancel a running atomic import');
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE imp_atomic (LIKE imp INCLUDING ALL);
CREATE TRIGGER slow AFTER INSERT ON imp_atomic FOR EACH STATEMENT EXECUTE FUNCTION spin(120);
SQL
my $jia = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_import('imp_atomic', '$S/good.csv', '{\"chunk_size\": 5000, \"atomic\": true}')");
ok( bo_wait_sql($node, 'postgres',
		"SELECT status = 'running' AND pg_relation_size('imp_atomic') > 1000000 FROM batch_ops.jobs WHERE job_id = $jia",
		60),
	'atomic import running, 1 MB of rows written');
($res, $ms) = cancel_and_time($jia);
is($res, 't', 'cancel_job() of a running atomic import returns true');
cmp_ok($ms, '<=', 2000, 'the atomic import is no longer running within 2 s of cancel_job()');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created', (SELECT count(*) FROM imp_atomic))
	      FROM batch_ops.wait_job($jia, '30 s') AS w"),
	'cancelled 0 0', 'cancelled atomic import: status cancelled, nothing imported (status created count)');

# ---------------------------------------------------------------- 2: batch
note('== cancel a running batch job');
my $jb = $node->safe_psql('postgres', q{SELECT batch_ops.submit_batch('create', 'bat',
	(SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 100000) AS g),
	'{"chunk_size": 1000}')});
ok( bo_wait_sql($node, 'postgres',
		"SELECT status = 'running' AND rows_done >= 2000 FROM batch_ops.jobs WHERE job_id = $jb", 60),
	'batch job running with committed chunks');
($res, $ms) = cancel_and_time($jb);
is($res, 't', 'cancel_job() of a running batch job returns true');
cmp_ok($ms, '<=', 2000, 'the batch job is no longer running within 2 s of cancel_job()');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'errors_total') FROM batch_ops.wait_job($jb, '30 s') AS w"),
	'cancelled 0', 'cancelled batch: status, no row error for the cancel (status errors_total)');
is( qv('SELECT count(*) > 0 AND count(*) < 100000 AND count(*) % 1000 = 0 AND count(*) = count(DISTINCT id)
	           AND max(id) = count(*) FROM bat'),
	't', 'cancelled batch: committed chunks stay, whole chunks of 1000, each item once');
is(qv("SELECT (SELECT count(*) FROM bat) = created FROM batch_ops.jobs WHERE job_id = $jb"),
	't', "cancelled batch: count(*) = the job's created counter");

# ---------------------------------------------------------------- 4: failing jobs
note('== a job whose target is dropped while it runs');
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE doomed (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
CREATE TRIGGER slow AFTER INSERT ON doomed FOR EACH STATEMENT EXECUTE FUNCTION spin(120);
SQL
my $jd = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_import('doomed', '$S/good.csv', '{\"chunk_size\": 5000}')");
ok( bo_wait_sql($node, 'postgres',
		"SELECT status = 'running' AND rows_done >= 10000 FROM batch_ops.jobs WHERE job_id = $jd", 60),
	'import into doomed running with committed chunks');
# the DROP waits for the chunk in progress, then the next chunk finds no table
my $r = bo_sql($node, 'postgres', "SET lock_timeout = '20s';\nDROP TABLE doomed;");
is($r->{sqlstate}, '', 'DROP TABLE doomed while the import runs') or diag($r->{err});
my $st = qv("SELECT concat_ws(' | ', w->>'status', w->>'error') FROM batch_ops.wait_job($jd, '30 s') AS w");
note("job on a dropped table: $st");
is((split / \|/, $st)[0], 'failed', 'job on a table dropped meanwhile: failed');
like($st, qr/no longer exists|does not exist/,
	'job on a table dropped meanwhile: the error says the table is gone');
is(qv("SELECT created > 0 FROM batch_ops.jobs WHERE job_id = $jd"),
	't', 'job on a table dropped meanwhile: its committed chunks are counted (created > 0)');

note('== a job whose trigger raises a serialization failure');
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE serfail (id int PRIMARY KEY, v int NOT NULL);
CREATE FUNCTION serfail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 1500 THEN
		RAISE EXCEPTION 'simulated serialization failure' USING ERRCODE = 'serialization_failure';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER serfail BEFORE INSERT ON serfail FOR EACH ROW EXECUTE FUNCTION serfail();
SQL
my $jf = $node->safe_psql('postgres', q{SELECT batch_ops.submit_batch('create', 'serfail',
	(SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 3000) AS g),
	'{"chunk_size": 1000}')});
is( qv("SELECT concat_ws(' | ', w->>'status', w->>'error', w->'results'->'created', w->'results'->'errors_total')
	      FROM batch_ops.wait_job($jf, '30 s') AS w"),
	'failed | simulated serialization failure | 1000 | 0',
	'a 40001 raised for one item fails the job with that error (status error created #errors)');
is(qv("SELECT count(*) || ' ' || max(id) FROM serfail"),
	'1000 1000', 'the chunk before the failing one stays, the failing chunk is rolled back');

# wait_job() refuses a job submitted in its own transaction: submit first
my $jn = $node->safe_psql('postgres',
	q{SELECT batch_ops.submit_batch('create', 'after_cancel', '[{"v": 3}]')});
is(qv("SELECT batch_ops.wait_job($jn, '30 s')->>'status'"),
	'completed', 'the workers run a new job after the failures');

# ---------------------------------------------------------------- 5: finished_at
note('== finished_at of an atomic job');
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE atom (id int PRIMARY KEY, v int NOT NULL);
CREATE TRIGGER slow AFTER INSERT ON atom FOR EACH STATEMENT EXECUTE FUNCTION spin(300);
SQL
my $ja = $node->safe_psql('postgres', q{SELECT batch_ops.submit_batch('create', 'atom',
	(SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 5000) AS g),
	'{"chunk_size": 1000, "atomic": true}')});
is(qv("SELECT batch_ops.wait_job($ja, '30 s')->>'status'"), 'completed', 'atomic job completed');
is(qv("SELECT finished_at - started_at >= interval '1 s' FROM batch_ops.jobs WHERE job_id = $ja"),
	't', 'atomic job: finished_at - started_at covers its run (5 chunks x 300 ms >= 1 s)');

$poller->quit;

# ---------------------------------------------------------------- 6: server log
is( join("\n",
		bo_log_lines($node,
			qr/batch_ops job worker.*(terminated by signal|exited with exit code [^0])|PANIC|TRAP:/)),
	'', 'no job worker crashed or exited with an error');

$node->stop;
done_testing();
