# Crash safety of async jobs (DESIGN.md, "Async jobs"): "each chunk's rows
# and the job's checkpoint commit together, so a crash or restart resumes
# the job without losing or duplicating a row.  atomic: true runs the whole
# job as one transaction."
#
# For each way of crashing:
#
#   immediate   $node->stop('immediate')
#   kill9       kill -9 of the postmaster; every process of that server
#               must exit within 3 s (a job worker must not go on writing
#               without its postmaster, nor keep the server from
#               restarting); whatever outlives that is killed -9 too, as
#               a machine crash would
#   worker9     kill -9 of the job worker only (the postmaster resets
#               every backend and restarts by itself; partial jobs only)
#
# it crashes the server while jobs are running, restarts it, waits for the
# jobs and asserts exactly:
#
#   1. a partial import (400000 CSV rows, chunk_size 5000, 27 bad rows: type
#      errors, CHECK violations, records with too many or too few fields,
#      a duplicate key) interrupted after some chunks committed: completed,
#      every good row exactly once with its values (EXCEPT ALL both ways,
#      count(DISTINCT id) = count(*)), created/failed/errors_total/rows_done
#      exact, job_errors() lists each bad line exactly once (line, error
#      name, raw text) -- a chunk applied twice would show up as conflict
#      errors for good lines or as missing/extra rows;
#   2. a submit_batch('create') of 200000 items, chunk_size 1000, 8 bad
#      items, interrupted at the same time: every item applied exactly
#      once.  Double application must be VISIBLE, so the target has no
#      unique constraint but a bigserial primary key: applying a chunk
#      twice inserts its items again with new ids, and the check is
#      count(*) = count(DISTINCT item_no) = number of good items plus the
#      multiset of (item_no, val) equal to the expected one; job_errors()
#      lists each bad index exactly once;
#   3. two atomic imports interrupted mid-way (uncommitted rows already
#      written, none visible): after the restart they start over; the clean
#      file ends completed with every row exactly once, the file with bad
#      rows ends failed with no row imported and each bad line reported
#      once;
#   4. the worker runs a new job after the restart;
#   5. a job that wait_job() reported completed is still completed (and was
#      not run again) after an immediate crash right after;
#   6. no assertion failure or segfault in the server log.
#
# The targets have an AFTER ... FOR EACH STATEMENT trigger that busy-waits
# (spin(), BatchOpsTest.pm) a few tens of milliseconds, so that a job lasts
# several seconds and the crash reliably lands in the middle of it; it
# changes nothing else.
#
# "The job was resumed" (attempts >= 2) is the one fact the public API does
# not show; it is read through bo_job_internal.  BATCH_OPS_JOBS_CRASH_MODES
# (default "immediate kill9 worker9") selects the crash modes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BatchOpsTest;

my @modes = split ' ', ($ENV{BATCH_OPS_JOBS_CRASH_MODES} // 'immediate kill9 worker9');

# fsync stays on, as in a real crash test (bo_node turns it off); the
# postmaster restarts by itself after a backend crashed (worker9), as by
# default (PostgreSQL::Test::Cluster turns that off)
my $node = bo_node('crash', "fsync = on\nrestart_after_crash = on\n");
my $S = bo_scratch($node);

my $N = 400000;     # rows of import.csv (27 of them bad)
my $NA = 300000;    # rows of good.csv (all good)
my $NB = 200000;    # items of the batch job (8 of them bad)

# ---------------------------------------------------------------- fixtures
# import.csv: header id,name,qty; record i (line i + 1) is "i,n<i>,<i % 100>",
# with a quoted field holding a comma every 1000 rows, except the bad ones,
# which import_bad.tsv lists (line, i, expected error, raw record).
{
	my ($csv, $bad) = ("id,name,qty\n", '');
	for my $i (1 .. $N)
	{
		my $m = $i % 50000;
		my ($rec, $err) = (undef, '');
		if ($m == 7) { ($rec, $err) = ("$i,n$i,abc", 'validation_error') }
		elsif ($m == 20011) { ($rec, $err) = ("$i,n$i,-5", 'validation_error') }
		elsif ($m == 33333) { ($rec, $err) = ("$i,n$i,1,extra", 'validation_error') }
		elsif ($i == 123457 || $i == 345679) { ($rec, $err) = ("$i,n$i", 'validation_error') }
		elsif ($i == 250001) { ($rec, $err) = ('1000,dup,1', 'conflict') }
		elsif ($i % 1000 == 500) { $rec = "$i,\"n$i, q\"," . ($i % 100) }
		else { $rec = "$i,n$i," . ($i % 100) }
		$csv .= "$rec\n";
		$bad .= ($i + 1) . "\t$i\t$err\t$rec\n" if $err ne '';
	}
	bo_write_file("$S/import.csv", $csv);
	bo_write_file("$S/import_bad.tsv", $bad);
	bo_write_file("$S/good.csv",
		"id,name,qty\n" . join('', map { "$_,n$_," . ($_ % 100) . "\n" } 1 .. $NA));
}

bo_create_spin($node, 'postgres');
$node->safe_psql('postgres', <<SQL);
CREATE TABLE import_bad (line bigint PRIMARY KEY, src int NOT NULL, error text NOT NULL, raw text NOT NULL);
COPY import_bad FROM '$S/import_bad.tsv';
CREATE TABLE expected_import AS
	SELECT i AS id, 'n' || i || CASE WHEN i % 1000 = 500 THEN ', q' ELSE '' END AS name, i % 100 AS qty
	  FROM generate_series(1, $N) AS i
	 WHERE i NOT IN (SELECT src FROM import_bad);

CREATE TABLE batch_bad (idx int PRIMARY KEY, error text NOT NULL);
INSERT INTO batch_bad
	SELECT k, 'validation_error' FROM generate_series(123, $NB - 1, 40000) AS k;  -- CHECK (val >= 0)
INSERT INTO batch_bad VALUES (150001, 'validation_error'),                      -- "val": "x"
                             (99999, 'invalid_item'),                           -- not an object
                             ($NB - 1, 'validation_error');                     -- unknown column
CREATE TABLE expected_batch AS
	SELECT k AS item_no, k % 7 AS val FROM generate_series(0, $NB - 1) AS k
	 WHERE k NOT IN (SELECT idx FROM batch_bad);
-- the items, built once
CREATE TABLE batch_items AS SELECT jsonb_agg(CASE
		WHEN k IN (SELECT idx FROM batch_bad WHERE idx % 40000 = 123) THEN jsonb_build_object('item_no', k, 'val', -1)
		WHEN k = 150001 THEN jsonb_build_object('item_no', k, 'val', 'x')
		WHEN k = 99999 THEN to_jsonb('not an object'::text)
		WHEN k = $NB - 1 THEN jsonb_build_object('item_no', k, 'nope', 1)
		ELSE jsonb_build_object('item_no', k, 'val', k % 7) END ORDER BY k) AS items
	  FROM generate_series(0, $NB - 1) AS k;
CREATE TABLE after_crash (id serial PRIMARY KEY, v int);
SQL
my $NBAD = $node->safe_psql('postgres', 'SELECT count(*) FROM import_bad');
my $NGOOD = $N - $NBAD;
my $NBBAD = $node->safe_psql('postgres', 'SELECT count(*) FROM batch_bad');
my $NBGOOD = $NB - $NBBAD;
is("$NBAD $NBBAD", '27 8', 'fixtures: 27 bad CSV records, 8 bad batch items');
note("fixtures: import.csv $N rows ($NBAD bad), good.csv $NA rows, batch of $NB items");

# ---------------------------------------------------------------- helpers
sub qv { return bo_q($node, 'postgres', $_[0]) }

# wait for JOB (bounded), then its counters
sub job_summary
{
	my ($job) = @_;
	return qv("SELECT concat_ws(' ', w->>'status', w->'progress', w->'rows_done',
	                 w->'results'->'created', w->'results'->'failed',
	                 w->'results'->'errors_total', jsonb_array_length(w->'results'->'errors'))
	            FROM batch_ops.wait_job($job, '90 s') AS w");
}

sub check_import_errors
{
	my ($what, $job) = @_;
	is(qv("SELECT count(*) || ' ' || count(DISTINCT line) FROM batch_ops.job_errors($job)"),
		"$NBAD $NBAD", "$what: job_errors() has $NBAD rows, one per bad line");
	is( qv(bo_diff_sql("SELECT line, error, raw FROM batch_ops.job_errors($job)",
				"SELECT line, error, raw FROM import_bad")),
		'', "$what: job_errors() = the bad lines, each once, with error name and raw record");
}

sub check_imported
{
	my ($what, $table) = @_;
	is(qv("SELECT count(*) || ' ' || count(DISTINCT id) FROM $table"),
		"$NGOOD $NGOOD", "$what: $NGOOD rows, no duplicate id");
	is( qv(bo_diff_sql("SELECT id, name, qty FROM $table",
				"SELECT id, name, qty FROM expected_import")),
		'', "$what: every good row exactly once, with its values");
}

sub check_resumed
{
	my ($what, $job) = @_;
	my $attempts = bo_job_internal($node, 'postgres', $job, 'attempts');
	ok($attempts =~ /^\d+$/ && $attempts >= 2,
		"$what: (test validity) the crash interrupted the job, which was resumed (attempts >= 2)")
	  or diag("attempts: $attempts");
}

# Crash the server while jobs JOBS run.  MODE: immediate | kill9 |
# worker9 (the worker of the first job).  Returns false if it could not.
my $log_offset = 0;
sub crash
{
	my ($mode, @jobs) = @_;
	my $job = $jobs[0];
	my $ids = join(', ', @jobs);
	# one query, so that the crash follows at once: the jobs' state and
	# the pid of the worker running the first one
	my ($state, $pid) = split /\|/, qv(
		"SELECT (SELECT string_agg(kind || ' ' || status || ' rows_done=' || rows_done, ', ' ORDER BY job_id)
		           FROM batch_ops.jobs WHERE job_id IN ($ids))
		        || '|' || coalesce((SELECT pid::text FROM pg_stat_activity
		                             WHERE backend_type = 'batch_ops job worker'
		                               AND query LIKE 'batch_ops job $job %'), '')"), -1;
	note("before the crash: $state");
	my $t0 = time;
	$log_offset = -s $node->logfile;
	if ($mode eq 'immediate')
	{
		$node->stop('immediate');
	}
	elsif ($mode eq 'kill9')
	{
		my @alive = bo_kill9_and_check($node, 3);
		is(join("\n", @alive), '',
			'kill9: every process of the killed postmaster exited within 3 s');
	}
	elsif ($mode eq 'worker9')
	{
		if (!defined $pid || $pid !~ /^\d+$/)
		{
			fail("worker9: found the worker of job $job");
			diag('got: ' . ($pid // '') . " (jobs: $state)");
			return 0;
		}
		kill 9, $pid;
	}
	note(sprintf('crashed (%s) in %d ms', $mode, (time - $t0) * 1000));
	return 1;
}

# Bring the server back after crash MODE.
sub restart
{
	my ($mode) = @_;
	my $t0 = time;
	if ($mode eq 'worker9')
	{
		# the postmaster resets and restarts by itself
		ok(bo_wait_crash_restart($node, $log_offset, 60),
			'worker9: the server resets and accepts connections again')
		  or return 0;
	}
	else
	{
		$node->start(fail_ok => 1) or do { fail("$mode: the server restarts"); return 0; };
	}
	note(sprintf('server back after %d ms', (time - $t0) * 1000));
	return 1;
}

# Wait until JOB runs before submitting the second job of a cycle: two jobs
# queued before a worker claims the first one are run one after the other
# by that worker, and the crash must hit both while they run.
sub start_second
{
	my ($what, $job) = @_;
	ok(bo_wait_sql($node, 'postgres',
			"SELECT status = 'running' FROM batch_ops.jobs WHERE job_id = $job", 30),
		"$what: job $job running");
}

sub next_job_runs
{
	my ($what) = @_;
	my $j = qv(q{SELECT batch_ops.submit_batch('create', 'after_crash', '[{"v": 1}]')});
	is(qv("SELECT batch_ops.wait_job($j, '60 s')->>'status'"),
		'completed', "$what: the workers run a new job after the restart");
}

# ---------------------------------------------------------------- partial jobs
sub partial_cycle
{
	my ($m) = @_;
	note("== $m: partial import + batch job, crash while both run");
	$node->safe_psql('postgres', <<SQL);
CREATE TABLE imp_$m (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0));
CREATE TRIGGER slow AFTER INSERT ON imp_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(80);
CREATE TABLE bat_$m (id bigserial PRIMARY KEY, item_no int NOT NULL, val int NOT NULL CHECK (val >= 0));
CREATE TRIGGER slow AFTER INSERT ON bat_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(40);
SQL
	# The batch (whose submit_batch() takes seconds: 200000 items) goes
	# first; the import is submitted once the batch runs, so that a worker
	# of its own starts for it (see start_second) and it is still early in
	# its file when the batch has committed chunks too.
	my $jb = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_batch('create', 'bat_$m', items, '{\"chunk_size\": 1000}') FROM batch_items");
	start_second($m, $jb);
	my $ji = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('imp_$m', '$S/import.csv', '{\"chunk_size\": 5000}')");
	# some chunks of both committed, neither finished
	ok( bo_wait_sql(
			$node, 'postgres',
			"SELECT (SELECT status = 'running' AND rows_done >= 10000 FROM batch_ops.jobs WHERE job_id = $ji)
			    AND (SELECT status = 'running' AND rows_done >= 2000 FROM batch_ops.jobs WHERE job_id = $jb)
			    AND EXISTS (SELECT FROM imp_$m) AND EXISTS (SELECT FROM bat_$m)",
			60),
		"$m: both jobs running with committed chunks");
	crash($m, $ji, $jb) or return;
	restart($m) or return;

	is(job_summary($ji), "completed 100 $N $NGOOD $NBAD $NBAD $NBAD",
		"$m: import job completed with exact counters (status progress rows_done created failed errors_total #errors)");
	check_imported("$m: import", "imp_$m");
	check_import_errors("$m: import", $ji);
	check_resumed("$m: import", $ji);

	is(job_summary($jb), "completed 100 $NB $NBGOOD $NBBAD $NBBAD $NBBAD",
		"$m: batch job completed with exact counters (status progress rows_done created failed errors_total #errors)");
	is(qv("SELECT count(*) || ' ' || count(DISTINCT item_no) FROM bat_$m"),
		"$NBGOOD $NBGOOD", "$m: batch: $NBGOOD rows, no item applied twice");
	is( qv(bo_diff_sql("SELECT item_no, val FROM bat_$m", 'SELECT item_no, val FROM expected_batch')),
		'', "$m: batch: every good item exactly once, with its values");
	is( qv(bo_diff_sql("SELECT index, error FROM batch_ops.job_errors($jb)",
				'SELECT idx, error FROM batch_bad')),
		'', "$m: batch: job_errors() = the bad indexes, each once, with error name");
	check_resumed("$m: batch", $jb) if $m ne 'worker9';
	next_job_runs($m);
	return;
}

# ---------------------------------------------------------------- atomic imports
sub atomic_cycle
{
	my ($m) = @_;
	note("== $m: two atomic imports, crash while both run");
	$node->safe_psql('postgres', <<SQL);
CREATE TABLE aok_$m (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0));
CREATE TRIGGER slow AFTER INSERT ON aok_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
CREATE TABLE abad_$m (LIKE aok_$m INCLUDING ALL);
CREATE TRIGGER slow AFTER INSERT ON abad_$m FOR EACH STATEMENT EXECUTE FUNCTION spin(150);
SQL
	my $jok = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('aok_$m', '$S/good.csv', '{\"atomic\": true, \"chunk_size\": 5000}')");
	start_second($m, $jok);
	my $jbad = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('abad_$m', '$S/import.csv', '{\"atomic\": true, \"chunk_size\": 5000}')");
	# both running and well into the file: their (uncommitted) rows take room
	ok( bo_wait_sql(
			$node, 'postgres',
			"SELECT (SELECT bool_and(status = 'running') FROM batch_ops.jobs WHERE job_id IN ($jok, $jbad))
			    AND pg_relation_size('aok_$m') > 1000000 AND pg_relation_size('abad_$m') > 1000000",
			60),
		"$m: both atomic imports running, 1 MB of rows written");
	is(qv("SELECT (SELECT count(*) FROM aok_$m) + (SELECT count(*) FROM abad_$m)"),
		'0', "$m: atomic imports: no row visible before the end");
	crash($m, $jok, $jbad) or return;
	restart($m) or return;

	is(job_summary($jok), "completed 100 $NA $NA 0 0 0",
		"$m: clean atomic import completed (status progress rows_done created failed errors_total #errors)");
	is( qv(bo_diff_sql("SELECT id, name, qty FROM aok_$m",
				"SELECT i, 'n' || i, i % 100 FROM generate_series(1, $NA) AS i")),
		'', "$m: clean atomic import: every row exactly once");
	check_resumed("$m: clean atomic import", $jok);

	is( qv("SELECT concat_ws(' | ', w->>'status', w->'results'->'created', w->'results'->'errors_total', w->>'error')
	         FROM batch_ops.wait_job($jbad, '90 s') AS w"),
		"failed | 0 | $NBAD | $NBAD rows failed; nothing was imported (atomic)",
		"$m: atomic import with bad rows failed, nothing imported (status created errors_total error)");
	is(qv("SELECT count(*) FROM abad_$m"), '0', "$m: atomic import with bad rows: table empty");
	check_import_errors("$m: atomic import with bad rows", $jbad);
	check_resumed("$m: atomic import with bad rows", $jbad);
	next_job_runs($m);
	return;
}

# ---------------------------------------------------------------- finished stays finished
# Chunk commits need not wait for the WAL flush (a lost one only moves the
# job back to an earlier checkpoint), but a job reported finished must stay
# finished: crash right after wait_job() said completed.
sub finished_stays_finished
{
	note('== a job reported completed survives an immediate crash right after');
	$node->safe_psql('postgres',
		'CREATE TABLE fin (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)');
	my $j = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('fin', '$S/good.csv', '{\"chunk_size\": 1000}')");
	is(qv("SELECT batch_ops.wait_job($j, '60 s')->>'status'"), 'completed',
		'finished: the import completed');
	$node->stop('immediate');
	restart('immediate') or return;
	is( qv("SELECT concat_ws(' ', status, rows_done, (SELECT count(*) FROM fin))
	         FROM batch_ops.jobs WHERE job_id = $j")
		  . ' attempts=' . bo_job_internal($node, 'postgres', $j, 'attempts'),
		"completed $NA $NA attempts=1",
		'finished: after the crash the job is still completed, all rows there, ran once (status rows_done count attempts)');
	return;
}

for my $m (@modes)
{
	partial_cycle($m);
	atomic_cycle($m) if $m ne 'worker9';
}
finished_stays_finished();

is( join("\n",
		bo_log_lines($node, qr/PANIC|TRAP:|terminated by signal (6|11)|was terminated by exception/)),
	'', 'no assertion failure or segfault in the server log');

$node->stop;
done_testing();
