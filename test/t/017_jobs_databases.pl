# Job workers across databases and roles (batch_ops.max_workers = 2, the
# default).  Asserts:
#
#   1. a job submitted in a second database (CREATE DATABASE second;
#      CREATE EXTENSION batch_ops there) runs with no configuration, at
#      once (not after batch_ops.poll_interval);
#   2. jobs in two databases run at the same time and both complete; two
#      jobs submitted together in one database run at the same time too
#      (max_workers = 2: "when more work is queued [the worker] wakes the
#      launcher so that a second worker can start", worker.c);
#   3. NOTIFY batch_ops_jobs is delivered to a listener of the job's
#      database, with '{"job_id": N, "status": "..."}', for completed,
#      failed and cancelled jobs, and not to listeners of other databases;
#   4. jobs run as the submitting role: DEFAULT current_user/session_user
#      are that role (batch and import), row-level security applies (a row
#      the policy rejects is permission_denied), a role that lost INSERT
#      before its job ran gets nothing written (every item
#      permission_denied, or the job failed with a permission error), a
#      trigger cannot SET SESSION AUTHORIZATION back to the worker's
#      superuser identity;
#   5. a role sees only its own jobs in batch_ops.jobs, and job(),
#      job_errors(), cancel_job() of another role's job say it does not
#      exist; a superuser sees every job.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BatchOpsTest;

my $node = bo_node('databases');
my $S = bo_scratch($node);

sub qv
{
	my ($sql, %o) = @_;
	return bo_q($node, $o{db} // 'postgres', $sql, $o{user});
}

my $slow_sql = <<'SQL';
CREATE TABLE slow (id int PRIMARY KEY, v int);
CREATE TRIGGER slow AFTER INSERT ON slow FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
CREATE TABLE slow2 (LIKE slow INCLUDING ALL);
CREATE TRIGGER slow AFTER INSERT ON slow2 FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
CREATE TABLE quick (id serial PRIMARY KEY, v int);
SQL
# 30 chunks of 100 items, 150 ms each: a job of ~5 s
my $slow_items =
  "(SELECT jsonb_agg(jsonb_build_object('id', g, 'v', g) ORDER BY g) FROM generate_series(1, 3000) AS g)";

$node->safe_psql('postgres', 'CREATE DATABASE second');
$node->safe_psql('second', 'CREATE EXTENSION batch_ops');
for my $db ('postgres', 'second')
{
	bo_create_spin($node, $db);
	$node->safe_psql($db, $slow_sql);
}

# ---------------------------------------------------------------- 1
note('== a job in a second database');
my $t0 = time;
my $j = $node->safe_psql('second',
	q{SELECT batch_ops.submit_batch('create', 'quick', '[{"v": 1}, {"v": 2}]')});
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($j, '50 s') AS w",
		db => 'second'),
	'completed 2', 'second database: the job completes');
my $ms = int((time - $t0) * 1000);
cmp_ok($ms, '<', 10000, "second database: the job ran at once ($ms ms), not at the next poll");
is(qv('SELECT count(*) FROM quick', db => 'second'), '2', 'second database: the rows are there');

# ---------------------------------------------------------------- 2
note('== jobs in two databases at once');
my $j1 = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_batch('create', 'slow', $slow_items, '{\"chunk_size\": 100}')");
my $j2 = $node->safe_psql('second',
	"SELECT batch_ops.submit_batch('create', 'slow', $slow_items, '{\"chunk_size\": 100}')");
ok( bo_wait_until(
		sub {
			qv("SELECT status FROM batch_ops.jobs WHERE job_id = $j1") eq 'running'
			  && qv("SELECT status FROM batch_ops.jobs WHERE job_id = $j2", db => 'second') eq
			  'running';
		},
		10),
	'two databases: both jobs run at the same time (within 10 s)');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($j1, '50 s') AS w"),
	'completed 3000', 'two databases: the job in postgres completes');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($j2, '50 s') AS w",
		db => 'second'),
	'completed 3000', 'two databases: the job in second completes');

note('== two jobs submitted together in one database');
$node->safe_psql('postgres', 'TRUNCATE slow, slow2');
($j1, $j2) = split /\n/, $node->safe_psql('postgres', <<SQL);
BEGIN;
SELECT batch_ops.submit_batch('create', 'slow', $slow_items, '{"chunk_size": 100}');
SELECT batch_ops.submit_batch('create', 'slow2', $slow_items, '{"chunk_size": 100}');
COMMIT;
SQL
ok( bo_wait_sql($node, 'postgres',
		"SELECT count(*) = 2 FROM batch_ops.jobs WHERE job_id IN ($j1, $j2) AND status = 'running'", 4),
	'one database: two jobs queued together run at the same time (max_workers = 2)');
is( qv("SELECT string_agg(w->>'status', ' ') FROM (VALUES ($j1), ($j2)) AS v(j), batch_ops.wait_job(j, '50 s') AS w"),
	'completed completed', 'one database: both jobs complete');

# ---------------------------------------------------------------- 3
note('== NOTIFY batch_ops_jobs');
my %listener;
for my $db ('postgres', 'second')
{
	$listener{$db} = $node->background_psql($db);
	$listener{$db}->query_safe('LISTEN batch_ops_jobs');
}
my $jc = $node->safe_psql('postgres',
	q{SELECT batch_ops.submit_batch('create', 'quick', '[{"v": 10}]')});
my $jsec = $node->safe_psql('second',
	q{SELECT batch_ops.submit_batch('create', 'quick', '[{"v": 10}]')});
# fails when a worker claims it: its target is gone
$node->safe_psql('postgres', 'CREATE TABLE gone (id int PRIMARY KEY)');
my $jfail = $node->safe_psql('postgres', <<'SQL');
BEGIN;
SELECT batch_ops.submit_batch('create', 'gone', '[{"id": 1}]');
DROP TABLE gone;
COMMIT;
SQL
# cancelled before it starts
my $jcan = $node->safe_psql('postgres', <<'SQL');
BEGIN;
SELECT batch_ops.submit_batch('create', 'quick', '[{"v": 11}]') AS j \gset
SELECT batch_ops.cancel_job(:j) \g /dev/null
COMMIT;
\echo :j
SQL
for my $jj ($jc, $jfail, $jcan)
{
	qv("SELECT batch_ops.wait_job($jj, '30 s')->>'status'");
}
qv("SELECT batch_ops.wait_job($jsec, '30 s')->>'status'", db => 'second');

my %want = (
	postgres => join("\n", sort
		  "{\"job_id\": $jc, \"status\": \"completed\"}",
		  "{\"job_id\": $jfail, \"status\": \"failed\"}",
		  "{\"job_id\": $jcan, \"status\": \"cancelled\"}"),
	second => "{\"job_id\": $jsec, \"status\": \"completed\"}");
# The jobs have finished, so every notification has been sent; collect
# until the expected ones are in (bounded), then once more, so that an
# extra one (e.g. from the other database) would show.
my %got;
for my $db ('postgres', 'second')
{
	my @payloads;
	my $collect = sub {
		my ($out) = $listener{$db}->query('SELECT 1');
		push @payloads, $1 while $out =~
		  /^Asynchronous notification "batch_ops_jobs" with payload "(.*)" received from server process with PID \d+\.$/mg;
		return join("\n", sort @payloads) eq $want{$db};
	};
	bo_wait_until($collect, 20);
	$collect->();
	$got{$db} = join("\n", sort @payloads);
	$listener{$db}->quit;
}
is($got{postgres}, $want{postgres},
	'NOTIFY in postgres: one notification per finished job (completed, failed, cancelled), nothing from second');
is($got{second}, $want{second}, 'NOTIFY in second: the job of second, nothing from postgres');

# ---------------------------------------------------------------- 4
note('== jobs run as the submitting role');
bo_write_file("$S/owned.csv", "id,v\n" . join('', map { "$_,$_\n" } 1 .. 1000));
$node->safe_psql('postgres', <<'SQL');
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT pg_read_server_files TO alice;
CREATE TABLE owned (id int PRIMARY KEY, v int,
                    who text NOT NULL DEFAULT current_user,
                    sess text NOT NULL DEFAULT session_user);
GRANT SELECT, INSERT ON owned TO alice, bob;
CREATE TABLE owned_import (LIKE owned INCLUDING ALL);
GRANT SELECT, INSERT ON owned_import TO alice;

CREATE TABLE rls (id int PRIMARY KEY, owner text NOT NULL);
ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON rls FOR INSERT WITH CHECK (owner = current_user);
CREATE POLICY see_all ON rls FOR SELECT USING (true);
GRANT SELECT, INSERT ON rls TO alice;

CREATE TABLE revoked (id int PRIMARY KEY);

-- a trigger that tries to become the worker's superuser identity again
CREATE TABLE escalate (id int PRIMARY KEY, who text, note text);
GRANT SELECT, INSERT ON escalate TO alice;
CREATE FUNCTION escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE 'SET SESSION AUTHORIZATION postgres';
		NEW.note := 'SET SESSION AUTHORIZATION succeeded';
	EXCEPTION WHEN OTHERS THEN
		NEW.note := SQLERRM;
	END;
	NEW.who := current_user || '/' || session_user;
	RETURN NEW;
END $$;
CREATE TRIGGER escalate BEFORE INSERT ON escalate FOR EACH ROW EXECUTE FUNCTION escalate();
SQL

my $ja = qv(q{SELECT batch_ops.submit_batch('create', 'owned', '[{"id": 1, "v": 1}, {"id": 2, "v": 2}]')},
	user => 'alice');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created', w->>'submitted_by') FROM batch_ops.wait_job($ja, '30 s') AS w",
		user => 'alice'),
	'completed 2 alice', "role: alice's batch job completed, submitted_by alice");
is(qv("SELECT string_agg(DISTINCT who || '/' || sess, ',') FROM owned"),
	'alice/alice', "role: alice's rows were written as alice (current_user, session_user)");
my $jai = qv("SELECT batch_ops.submit_import('owned_import', '$S/owned.csv')", user => 'alice');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created') FROM batch_ops.wait_job($jai, '30 s') AS w",
		user => 'alice'),
	'completed 1000', "role: alice's import completed");
is(qv("SELECT string_agg(DISTINCT who || '/' || sess, ',') FROM owned_import"),
	'alice/alice', "role: alice's imported rows were written as alice");

my $jr = qv(q{SELECT batch_ops.submit_batch('create', 'rls', '[{"id": 1, "owner": "alice"}, {"id": 2, "owner": "bob"}]')},
	user => 'alice');
is( qv("SELECT concat_ws(' ', w->>'status', w->'results'->'created', w->'results'->'failed') FROM batch_ops.wait_job($jr, '30 s') AS w",
		user => 'alice'),
	'completed 1 1', 'RLS: the row the policy rejects is permission_denied, the other is written (status created failed)');
is(qv("SELECT index || ' ' || error FROM batch_ops.job_errors($jr)", user => 'alice'),
	'1 permission_denied', 'RLS: job_errors() names the rejected item');
is(qv("SELECT string_agg(id || ':' || owner, ',') FROM rls"), '1:alice', "RLS: only alice's row is in the table");

# INSERT taken away between the submit and the run (same transaction)
my $jv = $node->safe_psql('postgres', <<'SQL');
BEGIN;
GRANT INSERT ON revoked TO alice;
SET ROLE alice;
SELECT batch_ops.submit_batch('create', 'revoked', '[{"id": 1}, {"id": 2}, {"id": 3}]');
RESET ROLE;
REVOKE INSERT ON revoked FROM alice;
COMMIT;
SQL
my $st = qv("SELECT concat_ws(' | ', w->>'status', w->'results'->'created', w->'results'->'errors_total', w->>'error', w->>'submitted_by')
               FROM batch_ops.wait_job($jv, '30 s') AS w");
my $errs = qv("SELECT coalesce(string_agg(DISTINCT error, ','), '') FROM batch_ops.job_errors($jv)");
note("job of a role without INSERT: $st; errors: $errs");
is(qv('SELECT count(*) FROM revoked'), '0', 'no INSERT privilege: nothing written');
ok( (($st eq 'completed | 0 | 3 | alice' || $st eq 'completed | 0 | 3 |  | alice')
		  && $errs eq 'permission_denied')
	  || ($st =~ /^failed/ && $st =~ /permission denied/),
	'no INSERT privilege: every item permission_denied, or the job failed with a permission error')
  or diag("got: $st; errors: $errs");

my $je = qv(q{SELECT batch_ops.submit_batch('create', 'escalate', '[{"id": 1}]')}, user => 'alice');
is(qv("SELECT batch_ops.wait_job($je, '30 s')->>'status'", user => 'alice'),
	'completed', 'escalation: the job completed');
is(qv('SELECT who FROM escalate WHERE id = 1'),
	'alice/alice', 'escalation: SET SESSION AUTHORIZATION in a trigger does not make the job superuser');
note('escalation attempt: ' . qv('SELECT note FROM escalate WHERE id = 1'));

# ---------------------------------------------------------------- 5
note('== who sees which jobs');
my $jb = qv(q{SELECT batch_ops.submit_batch('create', 'owned', '[{"id": 100, "v": 1}]')}, user => 'bob');
qv("SELECT batch_ops.wait_job($jb, '30 s')", user => 'bob');
is(qv("SELECT string_agg(job_id || ' ' || submitted_by, ',') FROM batch_ops.jobs", user => 'bob'),
	"$jb bob", 'bob sees only his job in batch_ops.jobs');
is(qv("SELECT count(*) = 0 FROM (SELECT * FROM batch_ops.jobs WHERE submitted_by <> 'alice') AS x",
		user => 'alice'),
	't', 'alice sees only her jobs in batch_ops.jobs');
is(qv('SELECT count(*) = 5 FROM batch_ops.jobs', user => 'alice'), 't', 'alice sees her 5 jobs');
is( qv("SELECT count(*) FILTER (WHERE submitted_by = 'alice') = 5 AND count(*) FILTER (WHERE submitted_by = 'bob') = 1 FROM batch_ops.jobs"),
	't', "the superuser sees every job, alice's and bob's");
for my $f ("batch_ops.job($ja)", "batch_ops.wait_job($ja, '1 s')",
	"batch_ops.cancel_job($ja)", "* FROM batch_ops.job_errors($ja)")
{
	is(bo_sql_error($node, "SELECT $f", 'bob'),
		"42704: job $ja does not exist", "bob: SELECT $f of alice's job: does not exist");
}
is(qv("SELECT status FROM batch_ops.jobs WHERE job_id = $ja"),
	'completed', "alice's job was not cancelled by bob's attempt");

$node->stop;
done_testing();
