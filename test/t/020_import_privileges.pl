# Issue #8 item 4: privileges and row-level security are checked again for
# every chunk (every COPY run and every engine statement) while a job
# runs, not only at submit.  Each job is stopped inside its first chunk by
# a BEFORE trigger that waits for a gate; the test then revokes a
# privilege or turns row-level security on, opens the gate, and checks
# what the job wrote afterwards.
#
#   - a privilege gone (table INSERT, column INSERT, a group role's
#     membership): the import fails with 42501 and writes nothing more,
#     on the COPY path, on the engine path and in an atomic job;
#   - row-level security that now applies (ENABLE, FORCE for the owner,
#     a role that lost BYPASSRLS, no policy at all): the rest of the
#     import goes through the batch engine, which applies the policies
#     row by row (rejected rows are permission_denied);
#   - submit_batch jobs go through the engine as the role: after a
#     REVOKE their items are permission_denied, under new policies the
#     policies apply (verification: nothing is bypassed).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('privs');
my $dir = bo_scratch($node);

# 1000 rows, ids 1..1000; the gate trigger waits on id 1 (first chunk)
my $nrows = 1000;
open(my $fh, '>', "$dir/rows.csv") or die;
print $fh "id,v\n";
print $fh "$_,v$_\n" for 1 .. $nrows;
close $fh;
# the same with a third field the import skips (engine path)
open($fh, '>', "$dir/rows3.csv") or die;
print $fh "id,v,skip\n";
print $fh "$_,v$_,s\n" for 1 .. $nrows;
close $fh;

$node->safe_psql('postgres', q{
CREATE ROLE alice;
CREATE ROLE bob BYPASSRLS;
CREATE ROLE writers;
GRANT pg_read_server_files TO alice, bob;
CREATE TABLE gate (open boolean NOT NULL);
INSERT INTO gate VALUES (false);
GRANT SELECT ON gate TO PUBLIC;
CREATE FUNCTION wait_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 1 THEN
    WHILE NOT (SELECT g.open FROM public.gate g) LOOP
      PERFORM pg_sleep(0.02);
    END LOOP;
  END IF;
  RETURN NEW;
END $$;
});

# A table t_NAME (id, v) with the gate trigger, owned by OWNER (default
# the superuser).
sub make_table
{
	my ($name, $owner) = @_;
	$node->safe_psql('postgres', qq{
CREATE TABLE $name (id int PRIMARY KEY, v text);
CREATE TRIGGER gate BEFORE INSERT ON $name FOR EACH ROW EXECUTE FUNCTION wait_gate();
});
	$node->safe_psql('postgres', "ALTER TABLE $name OWNER TO $owner")
	  if defined $owner;
	return $name;
}

sub sq { return $node->safe_psql('postgres', $_[0]); }

# Submit as ROLE, wait for the job at the gate, run DURING, open the gate;
# returns (job id, final status).  DDL (ALTER TABLE) waits for the lock the
# running chunk holds: it is sent from a second session, and the gate is
# opened once it waits; the next chunk then queues behind it.
sub gated_job
{
	my ($role, $submit, $during) = @_;
	sq('UPDATE gate SET open = false');
	my $id = sq("SET ROLE $role; $submit");
	ok( bo_wait_until(
			sub {
				sq(q{SELECT count(*) FROM pg_stat_activity
				     WHERE backend_type = 'batch_ops job worker' AND wait_event = 'PgSleep'})
				  eq '1';
			}),
		"job $id reached the gate");
	if ($during =~ /^ALTER TABLE/)
	{
		my $bg = $node->background_psql('postgres', on_error_stop => 1);
		$bg->query_until(qr/sent/, "\\echo sent\n$during;\n");
		ok( bo_wait_until(
				sub {
					sq(q{SELECT count(*) FROM pg_stat_activity
					     WHERE query LIKE 'ALTER TABLE%' AND wait_event_type = 'Lock'})
					  eq '1';
				}),
			"the ALTER TABLE waits for the running chunk");
		sq('UPDATE gate SET open = true');
		$bg->quit;
	}
	else
	{
		sq($during);
		sq('UPDATE gate SET open = true');
	}
	return ($id, bo_wait_job($node, $id));
}

sub job_error { return sq("SELECT error FROM batch_ops.job_queue WHERE id = $_[0]"); }

sub import_sql
{
	my ($table, $file, $opts) = @_;
	$opts //= '{"chunk_size": 100}';
	return "SELECT batch_ops.submit_import('$table', '$dir/$file', '$opts')";
}

# ---------------------------------------------------------------- privileges
# 1. table INSERT revoked, COPY path
my $t = make_table('t_revoke');
sq("GRANT INSERT ON $t TO alice");
my ($id, $st) = gated_job('alice', import_sql($t, 'rows.csv'),
	"REVOKE INSERT ON $t FROM alice");
is($st, 'failed', 'COPY path, INSERT revoked: the job fails');
like(job_error($id), qr/permission denied for table t_revoke: role "alice" no longer has INSERT privilege/,
	'with a message naming the table, the role and the privilege');
is(sq("SELECT count(*) FROM $t"), '100', 'only the chunk running at the REVOKE was written');

# 2. column INSERT revoked (the role had column privileges only)
$t = make_table('t_column');
sq("GRANT INSERT (id, v) ON $t TO alice");
($id, $st) = gated_job('alice', import_sql($t, 'rows.csv'),
	"REVOKE INSERT (v) ON $t FROM alice");
is($st, 'failed', 'column INSERT revoked: the job fails');
like(job_error($id), qr/no longer has INSERT privilege on column "v"/, 'naming the column');
is(sq("SELECT count(*) FROM $t"), '100', 'nothing written after the REVOKE');

# 3. the privilege came from a group role whose membership is revoked
$t = make_table('t_group');
sq("GRANT INSERT ON $t TO writers; GRANT writers TO alice");
($id, $st) = gated_job('alice', import_sql($t, 'rows.csv'), "REVOKE writers FROM alice");
is($st, 'failed', 'membership of the group with INSERT revoked: the job fails');
is(sq("SELECT count(*) FROM $t"), '100', 'nothing written after the REVOKE');

# 4. the engine path (a CSV field skipped): fails too, rather than making
#    every later row a permission_denied error
$t = make_table('t_engine');
sq("GRANT INSERT ON $t TO alice");
($id, $st) = gated_job('alice',
	import_sql($t, 'rows3.csv', '{"chunk_size": 100, "columns": {"skip": null}}'),
	"REVOKE INSERT ON $t FROM alice");
is($st, 'failed', 'engine path, INSERT revoked: the job fails');
like(job_error($id), qr/no longer has INSERT privilege/, 'with the permission error');
# (the engine's own statements in the chunk running at the REVOKE check
# the privilege as they start: those rows are written or refused)
is(sq("SELECT count(*) FROM $t WHERE id > 100"), '0', 'nothing written after the chunk running at the REVOKE');
is(sq("SELECT count(*) FROM batch_ops.job_error WHERE job_id = $id AND line > 101"), '0',
	'and no row error was piled up for the rows after it');

# 5. atomic: the whole job fails and leaves nothing
$t = make_table('t_atomic');
sq("GRANT INSERT ON $t TO alice");
($id, $st) = gated_job('alice', import_sql($t, 'rows.csv', '{"chunk_size": 100, "atomic": true}'),
	"REVOKE INSERT ON $t FROM alice");
is($st, 'failed', 'atomic import, INSERT revoked: the job fails');
is(sq("SELECT count(*) FROM $t"), '0', 'and writes nothing');

# ---------------------------------------------------------------- row-level security
# The policy admits even ids only.  Rows of the first chunk (1..100) were
# written before RLS applied; of the 900 after, 450 pass and 450 are
# permission_denied.
sub check_rls
{
	my ($what, $t, $id, $st) = @_;
	is($st, 'completed', "$what: the job completes");
	is(sq("SELECT count(*) FROM $t"), '550', "$what: rows after it were checked by the policy");
	is(sq("SELECT count(*) FROM $t WHERE id > 100 AND id % 2 = 1"), '0',
		"$what: no row the policy rejects was written");
	is( sq("SELECT string_agg(DISTINCT error || ' ' || sqlstate, ',') || ' ' || count(*)
	         FROM batch_ops.job_error WHERE job_id = $id"),
		'permission_denied 42501 450', "$what: the rejected rows are permission_denied");
}

# 6. ENABLE ROW LEVEL SECURITY (with a policy) while the import runs
$t = make_table('t_rls');
sq("GRANT SELECT, INSERT ON $t TO alice;
   CREATE POLICY even ON $t TO PUBLIC USING (true) WITH CHECK (id % 2 = 0)");
($id, $st) = gated_job('alice', import_sql($t, 'rows.csv'),
	"ALTER TABLE $t ENABLE ROW LEVEL SECURITY");
check_rls('ENABLE ROW LEVEL SECURITY', $t, $id, $st);

# 7. FORCE ROW LEVEL SECURITY, the submitter owns the table
$t = make_table('t_force', 'alice');
sq("ALTER TABLE $t ENABLE ROW LEVEL SECURITY;
   CREATE POLICY even ON $t TO PUBLIC USING (true) WITH CHECK (id % 2 = 0)");
($id, $st) = gated_job('alice', import_sql($t, 'rows.csv'),
	"ALTER TABLE $t FORCE ROW LEVEL SECURITY");
check_rls('FORCE ROW LEVEL SECURITY for the owner', $t, $id, $st);

# 8. the submitter loses BYPASSRLS
$t = make_table('t_bypass');
sq("GRANT SELECT, INSERT ON $t TO bob; ALTER TABLE $t ENABLE ROW LEVEL SECURITY;
   CREATE POLICY even ON $t TO PUBLIC USING (true) WITH CHECK (id % 2 = 0)");
($id, $st) = gated_job('bob', import_sql($t, 'rows.csv'), "ALTER ROLE bob NOBYPASSRLS");
check_rls('BYPASSRLS taken away', $t, $id, $st);

# 9. RLS enabled with no policy at all: every later row is refused
$t = make_table('t_nopolicy');
sq("GRANT SELECT, INSERT ON $t TO alice");
($id, $st) = gated_job('alice', import_sql($t, 'rows.csv'),
	"ALTER TABLE $t ENABLE ROW LEVEL SECURITY");
is($st, 'completed', 'RLS without a policy: the job completes');
is(sq("SELECT count(*) FROM $t"), '100', 'and writes no row after RLS was enabled');
is(sq("SELECT count(*) FROM batch_ops.job_error WHERE job_id = $id AND error = 'permission_denied'"),
	'900', 'every later row is permission_denied');

# ---------------------------------------------------------------- submit_batch
# The batch engine runs as the role: nothing is bypassed (verification).
my $items = '[' . join(',', map { qq({"id": $_, "v": "v$_"}) } 1 .. 300) . ']';
$t = make_table('b_revoke');
sq("GRANT INSERT ON $t TO alice");
($id, $st) = gated_job('alice',
	"SELECT batch_ops.submit_batch('create', '$t', '$items', '{\"chunk_size\": 100}')",
	"REVOKE INSERT ON $t FROM alice");
is(sq("SELECT count(*) FROM $t WHERE id > 100"), '0',
	'submit_batch, INSERT revoked: nothing written after the chunk running at the REVOKE');
is( sq("SELECT count(*) FROM batch_ops.job_error
         WHERE job_id = $id AND index >= 100 AND error = 'permission_denied'"),
	'200', 'the later items are permission_denied');

# an atomic batch is one transaction: the REVOKE must still be seen
$t = make_table('b_atomic');
sq("GRANT INSERT ON $t TO alice");
($id, $st) = gated_job('alice',
	"SELECT batch_ops.submit_batch('create', '$t', '$items', '{\"chunk_size\": 100, \"atomic\": true}')",
	"REVOKE INSERT ON $t FROM alice");
is($st, 'failed', 'atomic submit_batch, INSERT revoked: the later items fail, so the job fails');
is(sq("SELECT count(*) FROM $t"), '0', 'and nothing is written');
is( sq("SELECT count(*) FROM batch_ops.job_error
         WHERE job_id = $id AND index >= 100 AND error = 'permission_denied'"),
	'200', 'the items after the REVOKE are permission_denied');

$t = make_table('b_rls');
sq("GRANT SELECT, INSERT ON $t TO alice;
   CREATE POLICY even ON $t TO PUBLIC USING (true) WITH CHECK (id % 2 = 0)");
($id, $st) = gated_job('alice',
	"SELECT batch_ops.submit_batch('create', '$t', '$items', '{\"chunk_size\": 100}')",
	"ALTER TABLE $t ENABLE ROW LEVEL SECURITY");
is(sq("SELECT count(*) FROM $t"), '200', 'submit_batch, RLS enabled: the policy applies to later items');
is(sq("SELECT count(*) FROM $t WHERE id > 100 AND id % 2 = 1"), '0', 'no rejected item was written');

$node->stop;
done_testing();
