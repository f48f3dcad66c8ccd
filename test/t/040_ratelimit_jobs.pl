# Rate limits apply to async jobs (issue #8, item 6): a role's submit_batch
# and submit_import jobs take tokens from the role's bucket as they run,
# waiting for them (never refused for being larger than the burst), before
# each chunk's transaction.  The limit is set server-wide here (ALTER SYSTEM
# + reload); the per-role spelling is test/t/041_ratelimit_jobs_role.pl.
#
# Each timed case asserts a lower bound that holds whatever the machine's
# speed: in T seconds a bucket of B tokens refilled at N per second gives
# at most B + N*T tokens, so a job of M items runs at least (M - B) / N
# seconds (from started_at, before its first take, to finished_at).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BatchOpsTest;

my $node = bo_node('rl_jobs');
my $scratch = bo_scratch($node);
$node->safe_psql('postgres', q{
CREATE ROLE rl_user LOGIN;
GRANT pg_read_server_files TO rl_user;
CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
GRANT SELECT, INSERT, DELETE ON t TO rl_user;
-- a synchronous batch of n items, its outcome as text
CREATE FUNCTION try_batch(first int, n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM batch_ops.batch_create('t',
        (SELECT jsonb_agg(jsonb_build_object('id', g, 'v', 'i' || g))
           FROM generate_series(first, first + n - 1) g));
    RETURN 'passed';
EXCEPTION WHEN SQLSTATE 'BO429' THEN
    RETURN 'refused';
END $$;
GRANT EXECUTE ON FUNCTION try_batch(int, int) TO rl_user;
});

# Run SQL as the limited role, in a session of its own.
sub as_user
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql,
		extra_params => [ '-U', 'rl_user' ]);
}

# Set (or, with undef, reset) the server-wide limit and wait until a new
# session sees it.
sub set_limit
{
	my ($rate, $burst) = @_;
	my $r = defined $rate ? "SET batch_ops.rate_limit = $rate" : 'RESET batch_ops.rate_limit';
	my $b = defined $burst ? "SET batch_ops.rate_limit_burst = $burst" : 'RESET batch_ops.rate_limit_burst';
	$node->safe_psql('postgres', "ALTER SYSTEM $r");
	$node->safe_psql('postgres', "ALTER SYSTEM $b");
	$node->reload;
	my $want = $rate // 0;
	ok( bo_wait_until(
			sub {
				$node->safe_psql('postgres', 'SHOW batch_ops.rate_limit') eq $want;
			}),
		"rate limit $want in force");
}

# A JSON array of items id = first .. first + n - 1.
sub items
{
	my ($first, $n) = @_;
	return '[' . join(',', map { qq({"id": $_, "v": "v$_"}) } $first .. $first + $n - 1) . ']';
}

# status, created, errors_total and run time (s) of a finished job
sub job_result
{
	my ($id) = @_;
	my $st = bo_wait_job($node, $id, 'postgres', 120);
	my ($status, $created, $errors, $secs) = split /\|/, $node->safe_psql('postgres',
		"SELECT status, summary->>'created', errors_total,
		        extract(epoch FROM finished_at - started_at)
		   FROM batch_ops.job_queue WHERE id = $id");
	return ($st, $created, $errors, $secs);
}

# The job worker is asleep in the rate limit's wait.
sub worker_waits
{
	return bo_wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity
				  WHERE backend_type = 'batch_ops job worker' AND wait_event = 'Extension'"
			) eq '1';
		},
		15);
}

my $tol = 0.1;	# clock granularity between started_at and finished_at

# ---------------------------------------------------------------------
# The submit itself takes no tokens: the job takes them as it runs.
# ---------------------------------------------------------------------
set_limit(20, 10);
is( as_user(
		"BEGIN;
		 SELECT batch_ops.submit_batch('create', 't', '" . items(100000, 50) . "') \\g /dev/null
		 SELECT tokens FROM batch_ops.rate_limit_status();
		 ROLLBACK;"),
	'10',
	'submit_batch takes no tokens at submit (no double count)');

# ---------------------------------------------------------------------
# Partial batch job, several chunks, M = 70 > burst 10, at 20/s
# ---------------------------------------------------------------------
my $id = as_user("SELECT batch_ops.submit_batch('create', 't', '"
	  . items(1, 70) . q{', '{"chunk_size": 25}')});
my ($st, $created, $errors, $secs) = job_result($id);
is($st, 'completed', 'a batch job larger than the burst waits and completes, never refused');
is($created, '70', 'every item of the batch job was written');
cmp_ok($secs, '>=', (70 - 10) / 20 - $tol,
	"the batch job took at least (M - burst) / rate seconds ($secs s)");
cmp_ok($secs, '<', (70 - 10) / 20 + 15, 'and not much longer');

# ---------------------------------------------------------------------
# Atomic batch job: all its tokens before its one transaction
# ---------------------------------------------------------------------
$id = as_user("SELECT batch_ops.submit_batch('create', 't', '"
	  . items(101, 50) . q{', '{"atomic": true, "chunk_size": 20}')});
($st, $created, $errors, $secs) = job_result($id);
is($st, 'completed', 'an atomic batch job completes');
is($created, '50', 'every item of the atomic job was written');
cmp_ok($secs, '>=', (50 - 10) / 20 - $tol,
	"the atomic batch job took at least (M - burst) / rate seconds ($secs s)");

# ---------------------------------------------------------------------
# Import: every data record counts, the rows that fail too
# (40 good records, 10 bad: (50 - 10) / 20 = 2 s; 1.5 s if bad ones were free)
# ---------------------------------------------------------------------
{
	open my $fh, '>', "$scratch/mixed.csv" or die $!;
	print $fh "id,v\n";
	for my $i (1001 .. 1050)
	{
		if ($i % 10 == 3)    { print $fh "x$i,bad\n"; }    # not an integer
		elsif ($i % 10 == 7) { print $fh "$i\n"; }          # a field missing
		else                 { print $fh "$i,v$i\n"; }
	}
	close $fh;
}
$id = as_user("SELECT batch_ops.submit_import('t', '$scratch/mixed.csv')");
($st, $created, $errors, $secs) = job_result($id);
is($st, 'completed', 'an import larger than the burst waits and completes');
is($created, '40', 'its good rows were imported');
is($errors, '10', 'its bad rows are row errors');
cmp_ok($secs, '>=', (50 - 10) / 20 - $tol,
	"the import took at least (records - burst) / rate seconds, failed records counted ($secs s)");

# the same file, atomic (waits inside its one transaction), good rows only
{
	open my $fh, '>', "$scratch/good.csv" or die $!;
	print $fh "id,v\n";
	print $fh "$_,v$_\n" for 2001 .. 2040;
	close $fh;
}
$id = as_user(
	qq{SELECT batch_ops.submit_import('t', '$scratch/good.csv', '{"atomic": true}')});
($st, $created, $errors, $secs) = job_result($id);
is($st, 'completed', 'an atomic import completes');
is($created, '40', 'every row of the atomic import was imported');
cmp_ok($secs, '>=', (40 - 10) / 20 - $tol,
	"the atomic import took at least (M - burst) / rate seconds ($secs s)");

# ---------------------------------------------------------------------
# A rate above the burst: the wait must not let refilled tokens overflow
# (300 items at 100/s, burst 5: about 3 s; 60 s if it slept a second)
# ---------------------------------------------------------------------
set_limit(100, 5);
$id = as_user("SELECT batch_ops.submit_batch('create', 't', '" . items(3001, 300) . "')");
($st, $created, $errors, $secs) = job_result($id);
is($st,      'completed', 'a job with rate > burst completes');
is($created, '300',       'with every item');
cmp_ok($secs, '>=', (300 - 5) / 100 - $tol, "no faster than the rate ($secs s)");
cmp_ok($secs, '<',  (300 - 5) / 100 + 10,   'and near the rate, not the burst per second');

# ---------------------------------------------------------------------
# Rate 0 (off): a job is not slowed down
# ---------------------------------------------------------------------
set_limit(undef, undef);
$id = as_user("SELECT batch_ops.submit_batch('create', 't', '" . items(10001, 2000) . "')");
($st, $created, $errors, $secs) = job_result($id);
is($st,      'completed', 'without a limit the job completes');
is($created, '2000',      'with every item');
cmp_ok($secs, '<', 20, "without a limit it is not paced ($secs s; 100 s at 20/s)");

# ---------------------------------------------------------------------
# The bucket is shared with the role's own calls; a cancel while waiting
# acts at once and gives the tokens back
# ---------------------------------------------------------------------
set_limit(4, 40);
# let the bucket refill first, so that the job has tokens to give back
my $before;
ok( bo_wait_until(
		sub {
			$before = as_user('SELECT tokens FROM batch_ops.rate_limit_status()');
			$before >= 20;
		},
		20),
	'the bucket has refilled');
$id = as_user("SELECT batch_ops.submit_batch('create', 't', '" . items(20001, 400) . "')");
ok(worker_waits(), 'the job waits for tokens');
is( $node->safe_psql('postgres',
		"SELECT xact_start IS NULL AND backend_xmin IS NULL AND backend_xid IS NULL
		   FROM pg_stat_activity WHERE backend_type = 'batch_ops job worker'"),
	't',
	'it waits outside any transaction: no snapshot holds back the xmin horizon');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		  WHERE a.backend_type = 'batch_ops job worker' AND l.locktype <> 'advisory'"),
	'0',
	'and holds no lock but its job lock');
cmp_ok(as_user('SELECT tokens FROM batch_ops.rate_limit_status()'),
	'<', 10, 'rate_limit_status() shows the bucket the waiting job drains');
is(as_user('SELECT try_batch(30001, 10)'),
	'refused', "the role's synchronous call is refused meanwhile (shared bucket)");
is(as_user('SELECT count(*) FROM t WHERE id >= 20001 AND id < 20401'),
	'0', 'the job has written nothing before it has all its tokens');
my $t0 = time;
as_user("SELECT batch_ops.cancel_job($id)");
ok( bo_wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT status FROM batch_ops.job_queue WHERE id = $id") eq 'cancelled';
		},
		10),
	'cancel_job() stops a job waiting for tokens');
my $dt = time - $t0;
cmp_ok($dt, '<', 2, sprintf('within a second or so (%.2f s)', $dt));
cmp_ok(as_user('SELECT tokens FROM batch_ops.rate_limit_status()'),
	'>=', $before - 1, "the tokens it had taken went back to the bucket (it held $before before)");
is(as_user('SELECT count(*) FROM t WHERE id >= 20001 AND id < 20401'),
	'0', 'the cancelled job wrote nothing');

# ---------------------------------------------------------------------
# A reload that lifts the limit frees a waiting job
# ---------------------------------------------------------------------
$id = as_user("SELECT batch_ops.submit_batch('create', 't', '" . items(40001, 400) . "')");
ok(worker_waits(), 'a second job waits for tokens');
set_limit(undef, undef);
is(bo_wait_job($node, $id, 'postgres', 10), 'completed',
	'lifting the limit (reload) lets the waiting job finish');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id >= 40001 AND id < 40401'),
	'400', 'with every item');

# ---------------------------------------------------------------------
# Fast shutdown while a job waits for tokens; the job resumes after it
# ---------------------------------------------------------------------
set_limit(4, 40);
$id = as_user("SELECT batch_ops.submit_batch('create', 't', '" . items(50001, 400) . "')");
ok(worker_waits(), 'a third job waits for tokens');
$t0 = time;
$node->stop('fast');
$dt = time - $t0;
cmp_ok($dt, '<', 3, sprintf('pg_ctl stop -m fast does not wait for it (%.2f s)', $dt));
# the limit off from the next start (postgresql.auto.conf is read last)
$node->append_conf('postgresql.auto.conf', "batch_ops.rate_limit = 0\n");
$node->start;
is(bo_wait_job($node, $id, 'postgres', 60), 'completed',
	'after the restart the job resumes and completes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id >= 50001 AND id < 50401'),
	'400', 'with every item');

$node->stop;
done_testing();
