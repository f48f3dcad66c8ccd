# Issue #8 item 3: a job must not see session state left by an earlier job.
#
# Job workers used to run job after job in one session.  Alice's job (a
# trigger on her table) leaves state behind: a TEMP table audit_log (PUBLIC
# may write it) with a trigger of hers, a prepared statement, a
# session-level advisory lock, session settings (a custom one, work_mem,
# search_path).  (LISTEN cannot run in a background worker: core refuses
# it, so it is only observed.)  A superuser's job then inserts into audit_log
# unqualified (as its trigger always did, meaning public.audit_log): it
# lands in Alice's temp table and her trigger runs as superuser, which
# makes Alice superuser.  Bob's job after it writes into her table too,
# runs her trigger as Bob, and sees her prepared statement and holds her
# lock.
#
# Required: a job sees what a fresh session of its role would see (the
# fix: one process per job, and job code run as a security-restricted
# operation, which may refuse Alice's CREATE TEMP/PREPARE: either
# outcome is accepted for Alice).  Asserted on Bob's and the superuser's
# jobs, which run right after Alice's in the same database
# (batch_ops.max_workers = 1, submitted in one transaction): Bob's insert
# goes to public.audit_log, Alice's trigger never runs as anyone but
# Alice, Alice never becomes superuser, Bob's job sees no prepared
# statement, lock, setting or LISTEN of hers, the same function resolves
# its unqualified table under each job's own role, a setting the
# superuser's job changes (session_replication_role) does not reach
# Bob's job, and once Alice's job is over another session can take her
# advisory lock.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $GATE = 777;
my $LOCK = 4242;
my $node = bo_node('session_state', "batch_ops.max_workers = 1\n");
my $super = $node->safe_psql('postgres', 'SELECT current_user');

$node->safe_psql('postgres', <<"SQL");
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
-- what the planted code and the observers record; PUBLIC may write it
CREATE TABLE public.evidence (tag text, sess text, cur text, su bool,
	btype text, detail jsonb, at timestamptz DEFAULT clock_timestamp());
GRANT SELECT, INSERT ON public.evidence TO PUBLIC;
CREATE FUNCTION public.record(tag text, detail jsonb DEFAULT NULL)
RETURNS void LANGUAGE sql AS \$\$
	INSERT INTO public.evidence (tag, sess, cur, su, btype, detail)
	SELECT tag, session_user, current_user,
		(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
		(SELECT backend_type FROM pg_catalog.pg_stat_activity
		 WHERE pid = pg_catalog.pg_backend_pid()),
		detail
\$\$;
-- the audit table everyone's triggers mean
CREATE TABLE public.audit_log (who text, what text);
GRANT SELECT, INSERT ON public.audit_log TO PUBLIC;
-- one function for every role: "notes" is found on the caller's
-- search_path ("\$user", public), so under each job's own role
CREATE FUNCTION public.note_it(who text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO notes (who) VALUES (who);
END \$\$;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA bob AUTHORIZATION bob;

-- the superuser's job: its trigger writes to audit_log (public's) and
-- changes settings for the rest of its session
CREATE TABLE public.sup_t (id int PRIMARY KEY);
CREATE FUNCTION public.sup_trg() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO audit_log (who, what) VALUES (current_user, 'superuser job');
	PERFORM set_config('session_replication_role', 'replica', false);
	PERFORM set_config('superapp.x', 'super', false);
	PERFORM public.record('super_job');
	RETURN NEW;
END \$\$;
CREATE TRIGGER sup_trg BEFORE INSERT ON public.sup_t
	FOR EACH ROW EXECUTE FUNCTION public.sup_trg();

SET SESSION AUTHORIZATION alice;
CREATE TABLE alice.notes (who text);
-- the trigger Alice hangs on her temp audit_log: runs as whoever inserts
CREATE FUNCTION alice.spy() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM public.record('alice_spy_ran', to_jsonb(NEW));
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE alice SUPERUSER';
	END IF;
	RETURN NEW;
END \$\$;
-- Alice's job leaves one kind of session state per row
CREATE FUNCTION alice.leave_state() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	CASE NEW.kind
	WHEN 'temp' THEN
		CREATE TEMP TABLE IF NOT EXISTS audit_log (who text, what text);
		GRANT ALL ON pg_temp.audit_log TO PUBLIC;
		CREATE OR REPLACE TRIGGER spy BEFORE INSERT ON pg_temp.audit_log
			FOR EACH ROW EXECUTE FUNCTION alice.spy();
	WHEN 'prepare' THEN
		IF NOT EXISTS (SELECT FROM pg_prepared_statements WHERE name = 'alice_stmt') THEN
			EXECUTE 'PREPARE alice_stmt AS SELECT 42';
		END IF;
	WHEN 'lock' THEN
		PERFORM pg_advisory_lock($LOCK);
	WHEN 'guc' THEN
		PERFORM set_config('myapp.x', 'alice', false);
		PERFORM set_config('work_mem', '1234kB', false);
		PERFORM set_config('search_path', 'alice, public', false);
	WHEN 'listen' THEN
		EXECUTE 'LISTEN alice_chan';
	WHEN 'note' THEN
		PERFORM public.note_it('alice');
	END CASE;
	PERFORM public.record('alice_left_' || NEW.kind);
	RETURN NEW;
END \$\$;
CREATE TABLE alice.t (id int PRIMARY KEY, kind text NOT NULL);
CREATE TRIGGER leave_state BEFORE INSERT ON alice.t
	FOR EACH ROW EXECUTE FUNCTION alice.leave_state();
GRANT USAGE ON SCHEMA alice TO PUBLIC;
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION bob;
CREATE TABLE bob.notes (who text);
-- Bob's job: waits at the gate, writes its audit row, records what its
-- session looks like
CREATE FUNCTION bob.observe() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM pg_advisory_xact_lock_shared($GATE);
	INSERT INTO audit_log (who, what) VALUES (current_user, 'bob job');
	PERFORM public.note_it('bob');
	PERFORM public.record('bob_observed', jsonb_build_object(
		'audit_log_schema', (SELECT n.nspname::text FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.oid = to_regclass('audit_log')),
		'temp_relations', (SELECT count(*) FROM pg_class
			WHERE relnamespace = pg_my_temp_schema()),
		'prepared', (SELECT coalesce(jsonb_agg(name ORDER BY name), '[]')
			FROM pg_prepared_statements),
		'own_advisory_lock', (SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND pid = pg_backend_pid()
			AND objid = $LOCK),
		'myapp_x', coalesce(current_setting('myapp.x', true), ''),
		'superapp_x', coalesce(current_setting('superapp.x', true), ''),
		'work_mem', current_setting('work_mem'),
		'search_path', current_setting('search_path'),
		'listening', (SELECT coalesce(jsonb_agg(c ORDER BY c), '[]')
			FROM pg_listening_channels() c),
		'session_replication_role', current_setting('session_replication_role')));
	RETURN NEW;
END \$\$;
CREATE TABLE bob.t (id int PRIMARY KEY);
CREATE TRIGGER observe BEFORE INSERT ON bob.t
	FOR EACH ROW EXECUTE FUNCTION bob.observe();
RESET SESSION AUTHORIZATION;
SQL

# (LISTEN cannot run in a background worker at all: core refuses it, so it
# is not among the state Alice's jobs leave; Bob's job still records
# pg_listening_channels().)
my @kinds = qw(temp prepare lock guc note);

# --- sanity: the planted code works in an ordinary session ---------------
# Alice's trigger leaves every kind of state in a session of hers, and what
# she leaves is what Bob's session would then see; a fresh session of Bob's
# gives the baseline of what his job must see.
my $items = join(', ', map { "(" . (100 + $_) . ", '$kinds[$_]')" } 0 .. $#kinds);
my $r = bo_sql($node, 'postgres', "INSERT INTO alice.t VALUES $items", 30, 'alice');
is($r->{sqlstate}, '', "sanity: Alice's trigger runs in a session of hers")
  or diag($r->{err});
is( $node->safe_psql('postgres',
		"SELECT string_agg(tag, ',' ORDER BY tag) FROM evidence"
		  . " WHERE btype = 'client backend' AND cur = 'alice'"
		  . " AND tag LIKE 'alice_left_%'"),
	join(',', map { "alice_left_$_" } sort @kinds),
	'sanity: in an ordinary session it leaves every kind of state');
$r = bo_sql($node, 'postgres', <<"SQL", 30, 'alice');
INSERT INTO alice.t VALUES (200, 'temp');
INSERT INTO audit_log VALUES ('alice', 'sanity');
SELECT count(*) FROM evidence WHERE tag = 'alice_spy_ran' AND cur = 'alice';
SQL
is($r->{out}, '1',
	"sanity: an unqualified insert into audit_log after her temp table runs her trigger"
) or diag($r->{err});
$r = bo_sql($node, 'postgres', 'INSERT INTO bob.t VALUES (1000)', 30, 'bob');
is($r->{sqlstate}, '', "sanity: Bob's trigger runs in a fresh session of his")
  or diag($r->{err});
my $fresh = decode_json(
	$node->safe_psql('postgres',
		"SELECT detail FROM evidence WHERE tag = 'bob_observed'"
		  . " AND btype = 'client backend'"));
is($fresh->{audit_log_schema}, 'public',
	"sanity: a fresh session of Bob's writes to public.audit_log");
$node->safe_psql('postgres', <<'SQL');
TRUNCATE evidence, audit_log, alice.notes, bob.notes;
DELETE FROM alice.t;
DELETE FROM bob.t;
SQL

# --- the jobs: Alice, then the superuser, then Bob, back to back ----------
my $gate = bo_gate_hold($node, 'postgres', $GATE);
# one job per kind of state: a kind refused (the job failing as a whole)
# does not keep the others from being left behind
my $submit = "BEGIN;\nSET ROLE alice;\n";
for my $k (0 .. $#kinds)
{
	$submit .=
	    "SELECT batch_ops.submit_batch('create', 'alice.t', "
	  . "'[{\"id\": " . ($k + 1) . ", \"kind\": \"$kinds[$k]\"}]') AS alice_$k \\gset\n";
}
$submit .= <<'SQL';
RESET ROLE;
SELECT batch_ops.submit_batch('create', 'public.sup_t', '[{"id": 1}]') AS sup \gset
SET ROLE bob;
SELECT batch_ops.submit_batch('create', 'bob.t', '[{"id": 1}]') AS bob \gset
COMMIT;
SQL
$submit .= 'SELECT ' . join(', ', map { ":alice_$_" } 0 .. $#kinds) . ", :sup, :bob;\n";
my @ids = split /\|/, $node->safe_psql('postgres', $submit);
my ($sup_job, $bob_job) = splice(@ids, -2);
my @alice_jobs = @ids;
my $alice_job = $alice_jobs[-1];
my $all_jobs = join(', ', @alice_jobs, $sup_job, $bob_job);

my %alice_status;
for my $j (0 .. $#kinds)
{
	$alice_status{ $kinds[$j] } = bo_wait_job($node, $alice_jobs[$j]);
	like($alice_status{ $kinds[$j] }, qr/^(completed|failed)$/,
		"Alice's '$kinds[$j]' job $alice_jobs[$j] ran ($alice_status{$kinds[$j]})");
}
is(bo_wait_job($node, $sup_job), 'completed', "the superuser's job completed");
ok(bo_gate_wait_blocked($node, 'postgres', $GATE, 20),
	"Bob's job is running (held at the gate)");
diag("Alice's jobs refused: "
	  . $node->safe_psql('postgres',
		"SELECT string_agg(j.id || ' ' || coalesce(j.error, e.message), '; ')"
		  . " FROM batch_ops.job_queue j"
		  . " LEFT JOIN batch_ops.job_error e ON e.job_id = j.id"
		  . " WHERE j.id IN (" . join(', ', @alice_jobs) . ")"
		  . " AND (j.error IS NOT NULL OR e.job_id IS NOT NULL)"));
diag("state Alice's job left: "
	  . $node->safe_psql('postgres',
		"SELECT string_agg(tag, ',' ORDER BY tag) FROM evidence"
		  . " WHERE tag LIKE 'alice_left_%'"));
is( $node->safe_psql('postgres',
		"SELECT bool_and(a.finished_at <= s.started_at AND s.finished_at <= b.started_at)"
		  . " FROM batch_ops.job_queue a, batch_ops.job_queue s, batch_ops.job_queue b"
		  . " WHERE a.id IN (" . join(', ', @alice_jobs) . ")"
		  . " AND s.id = $sup_job AND b.id = $bob_job"),
	't',
	'the jobs ran one after another: Alice, the superuser, Bob');
diag('worker pids (Alice, superuser, Bob): '
	  . $node->safe_psql('postgres',
		"SELECT string_agg(worker_pid::text, ', ' ORDER BY id)"
		  . " FROM batch_ops.job_queue WHERE id IN ($all_jobs)"));

# Alice's job is over: her session-level advisory lock must be gone with it
my $got_lock = bo_wait_until(
	sub {
		$node->safe_psql('postgres', "SELECT pg_try_advisory_lock($LOCK)") eq 't';
	},
	10);
ok($got_lock,
	"another session can take Alice's advisory lock once her job is over");

bo_gate_release($gate);
is(bo_wait_job($node, $bob_job), 'completed', "Bob's job completed");

# --- what the later jobs saw ----------------------------------------------
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'"),
	'f', 'Alice is not superuser');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM evidence WHERE tag = 'alice_spy_ran'"),
	'0',
	"Alice's audit_log trigger never ran in a later job");
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM evidence WHERE tag = 'alice_spy_ran' AND su"),
	'0',
	"Alice's trigger never ran as a superuser");
is( $node->safe_psql('postgres',
		"SELECT string_agg(who || ':' || what, ',' ORDER BY what) FROM public.audit_log"),
	"bob:bob job,$super:superuser job",
	"the superuser's and Bob's audit rows went into public.audit_log");

# (evidence was emptied after the sanity checks: every row is a job's)
my $seen_json = $node->safe_psql('postgres',
	"SELECT detail FROM evidence WHERE tag = 'bob_observed'"
	  . " ORDER BY at DESC LIMIT 1");
diag("Bob's job saw: $seen_json");
ok($seen_json ne '', "Bob's job trigger ran and recorded what it saw");
my $seen = $seen_json ne '' ? decode_json($seen_json) : {};
is($seen->{audit_log_schema}, 'public',
	"Bob's job resolves audit_log to public.audit_log, not Alice's temp table");
is($seen->{temp_relations}, 0, "Bob's job has no temp relations");
is_deeply($seen->{prepared}, [], "Bob's job sees no prepared statement");
is($seen->{own_advisory_lock}, 0, "Bob's job does not hold Alice's advisory lock");
is($seen->{myapp_x}, $fresh->{myapp_x},
	"Bob's job does not see Alice's custom setting");
is($seen->{superapp_x}, $fresh->{superapp_x},
	"Bob's job does not see the superuser job's custom setting");
is($seen->{work_mem}, $fresh->{work_mem}, "Bob's job has the default work_mem");
unlike($seen->{search_path} // '', qr/alice/,
	"Bob's job does not have Alice's search_path");
is_deeply($seen->{listening}, [], "Bob's job listens to no channel");
is($seen->{session_replication_role}, 'origin',
	"the superuser job's session_replication_role did not reach Bob's job");
is($node->safe_psql('postgres', "SELECT string_agg(who, ',') FROM bob.notes"),
	'bob', "Bob's job resolved the shared function's table under Bob");
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM alice.notes WHERE who <> 'alice'"),
	'0', "nothing of Bob's went into Alice's table");

$node->stop;
done_testing();
