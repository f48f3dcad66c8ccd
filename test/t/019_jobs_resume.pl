# resume_job() after a transient failure (issue #13): an import from a URL
# of the test HTTP server fails part-way because its target is locked
# (the submitter's lock_timeout, ALTER ROLE ... SET, applies to the job);
# once the lock is gone, the submitter resumes it and the import completes
# from its last checkpoint (a Range request), with every row once and each
# bad row reported once.
#
#   - the failed job: status failed, the lock timeout as its error, the
#     chunks committed before kept (rows in the table = created), each of
#     their bad rows in job_errors();
#   - another role cannot resume it (42704, as for a job that does not
#     exist) and it stays failed;
#   - resumed: queued, no error, "resumed": 1; then completed with created
#     + failed = the file's rows, every good row once (the table's key
#     would turn a chunk written twice into conflicts: failed would count
#     them), job_errors() lists each bad line once, errors_total agrees;
#     the second fetch asked for the rest of the file only.
#
# The same for a submit_batch('create') job (a trigger slows each row so
# that the lock comes mid-way): its items are kept when it fails, and the
# resumed job applies each item once and reports each bad one once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('jobs_resume');
my $srv = bo_mock_server('jobs_resume');
sub q_ { my ($sql, $user) = @_; return bo_q($node, 'postgres', $sql, $user); }

# Hold a lock on TABLE, longer than the job's lock_timeout, until the job
# has ended; returns its status.
sub fail_on_lock
{
	my ($table, $id) = @_;
	my $bg = $node->background_psql('postgres');
	$bg->query_safe('BEGIN');
	$bg->query_safe("LOCK TABLE $table IN ACCESS EXCLUSIVE MODE");
	my $status = bo_wait_job($node, $id, 'postgres', 60);
	$bg->query_safe('COMMIT');
	$bg->quit;
	return $status;
}

my $rows = 2000;
# ids 7, 107, ... break the CHECK: 20 bad rows
my $bad = 20;
$node->safe_psql('postgres', q{
	CREATE ROLE importer LOGIN IN ROLE batch_ops_fetch;
	CREATE ROLE other LOGIN;
	ALTER ROLE importer SET lock_timeout = '200ms';
	CREATE TABLE t (id int PRIMARY KEY, name text, qty int, CHECK (id % 100 <> 7));
	GRANT SELECT, INSERT ON t TO importer;
});
my $url = "$srv->{base}/slow.csv?rows=$rows&piece=300&delay=0.1&case=resume";
my $job = q_(qq{SELECT batch_ops.submit_import('t', '$url', '{"chunk_size": 50}')}, 'importer');
like($job, qr/^\d+$/, 'the import is queued');
ok( bo_wait_sql($node, 'postgres',
		"SELECT (batch_ops.job($job)->'results'->>'created')::int >= 100", 60),
	'the import has committed a few chunks');

is(fail_on_lock('t', $job), 'failed', 'the job failed on the lock its next chunk waited for');

like(q_("SELECT batch_ops.job($job)->>'error'"), qr/lock timeout/, 'its error is the lock timeout');
my ($created, $failed, $errors) =
  split /\|/, q_("SELECT concat_ws('|', r->'created', r->'failed', r->'errors_total')"
	  . " FROM (SELECT batch_ops.job($job)->'results' r) s");
cmp_ok($created, '>=', 100, "chunks were committed before the failure ($created rows)");
cmp_ok($created + $failed, '<', $rows, 'the job did not finish');
is(q_('SELECT count(*) FROM t'), $created, 'the committed chunks are kept');
is(q_("SELECT count(*) FROM batch_ops.job_errors($job)"), $errors,
	'their bad rows are in job_errors()');

# another role cannot resume it
my $r = bo_sql($node, 'postgres', "SELECT batch_ops.resume_job($job)", 30, 'other');
is($r->{sqlstate}, '42704', 'another role cannot resume the job (42704)');
like($r->{err}, qr/job $job does not exist/, '... which does not exist for it');
is(q_("SELECT status FROM batch_ops.jobs WHERE job_id = $job"), 'failed', 'the job is still failed');

# the submitter resumes it
is( q_("SELECT concat_ws('|', r->>'status', coalesce(r->>'error', '-'), r->'resumed')"
		. " FROM batch_ops.resume_job($job) r", 'importer'),
	'queued|-|1', 'resume_job: queued again, no error, resumed once');
is(bo_wait_job($node, $job, 'postgres', 120), 'completed', 'the resumed job completes');
is( q_("SELECT concat_ws('|', r->'created', r->'failed', r->'errors_total')"
		. " FROM (SELECT batch_ops.job($job)->'results' r) s"),
	join('|', $rows - $bad, $bad, $bad), 'created and failed add up to the file, no conflict');
is(q_('SELECT count(*) || \'|\' || count(DISTINCT id) FROM t'),
	($rows - $bad) . '|' . ($rows - $bad), 'every good row once');
is(q_("SELECT count(*) FROM t WHERE name <> 'name-' || id OR qty <> id % 10"), '0',
	'rows are as in the file');
is( q_("SELECT count(*) || '|' || count(DISTINCT line) || '|' || min(error) || '|' || max(error)"
		. " FROM batch_ops.job_errors($job)"),
	"$bad|$bad|validation_error|validation_error", 'each bad row reported once');
is( q_("SELECT string_agg(line::text, ',' ORDER BY line) FROM batch_ops.job_errors($job)"),
	join(',', map { $_ * 100 + 7 + 1 } 0 .. $bad - 1), 'on the lines of the bad rows');
my @requests = grep { /case=resume/ } bo_mock_requests($srv);
like($requests[-1], qr/range=bytes=[1-9]\d*-/, 'the resumed fetch asked for the rest of the file');

# ------------------------------------------------------------ a batch job
my $items = 1000;
$node->safe_psql('postgres', q{
	CREATE TABLE b (id int PRIMARY KEY, name text NOT NULL);
	CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS
	  $$ BEGIN PERFORM pg_sleep(0.004); RETURN NEW; END $$;
	CREATE TRIGGER slow BEFORE INSERT ON b FOR EACH ROW EXECUTE FUNCTION slow_row();
	GRANT SELECT, INSERT ON b TO importer;
});
# items 1..1000; every 50th (50, 100, ...) has no name: 20 bad items
my $bjob = q_(qq{SELECT batch_ops.submit_batch('create', 'b',
	(SELECT jsonb_agg(CASE WHEN i % 50 = 0 THEN jsonb_build_object('id', i)
	                  ELSE jsonb_build_object('id', i, 'name', 'n' || i) END ORDER BY i)
	   FROM generate_series(1, $items) i), '{"chunk_size": 25}')}, 'importer');
ok( bo_wait_sql($node, 'postgres',
		"SELECT (batch_ops.job($bjob)->'results'->>'created')::int >= 100", 60),
	'batch: the job has committed a few chunks');
is(fail_on_lock('b', $bjob), 'failed', 'batch: the job failed on the lock');
my ($bcreated, $bfailed) =
  split /\|/, q_("SELECT concat_ws('|', r->'created', r->'failed')"
	  . " FROM (SELECT batch_ops.job($bjob)->'results' r) s");
cmp_ok($bcreated + $bfailed, '<', $items, "batch: the job did not finish ($bcreated created)");
is(q_('SELECT count(*) FROM b'), $bcreated, 'batch: the committed chunks are kept');
is(q_("SELECT count(*) FROM batch_ops.job_item WHERE job_id = $bjob"), $items,
	'batch: the failed job keeps its items');
is(q_("SELECT batch_ops.resume_job($bjob)->>'status'", 'importer'), 'queued', 'batch: resumed');
is(bo_wait_job($node, $bjob, 'postgres', 120), 'completed', 'batch: the resumed job completes');
is( q_("SELECT concat_ws('|', r->'created', r->'failed', r->'errors_total')"
		. " FROM (SELECT batch_ops.job($bjob)->'results' r) s"),
	join('|', $items - 20, 20, 20), 'batch: created and failed add up to the items, no conflict');
is(q_('SELECT count(*) || \'|\' || count(DISTINCT id) FROM b'),
	($items - 20) . '|' . ($items - 20), 'batch: every good item once');
is( q_("SELECT string_agg(index::text, ',' ORDER BY index) FROM batch_ops.job_errors($bjob)"),
	join(',', map { $_ * 50 - 1 } 1 .. 20), 'batch: each bad item reported once, by index');
is(q_("SELECT count(*) FROM batch_ops.job_item WHERE job_id = $bjob"), '0',
	'batch: the completed job has no items left');

done_testing();
