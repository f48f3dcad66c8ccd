# A third kind of job, "sleep" (test/kinds/kind_sleep.c), plugged in with
# its own file and one line of src/job_kind.c: it runs through the same
# runtime as imports and batches -- progress, counters, per-item errors,
# cancel, and resume from its checkpoint after a worker is killed.
#
# The kind is compiled only by "make TEST_MODULES=1"; with a library built
# without it, only the unknown-kind check runs.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('toy_kind',
	"batch_ops.max_workers = 2\nbatch_ops.poll_interval = 1\nrestart_after_crash = on\n");

# A row of a kind this build does not have fails with a clear message.
my $unknown = $node->safe_psql('postgres',
	"INSERT INTO batch_ops.job_queue (role, kind) VALUES ('postgres'::regrole, 'no_such_kind') RETURNING id");
is(bo_wait_job($node, $unknown, 'postgres', 30), 'failed', 'a job of an unknown kind fails');
like(
	$node->safe_psql('postgres', "SELECT error FROM batch_ops.job_queue WHERE id = $unknown"),
	qr/unknown job kind "no_such_kind"/,
	'and says which kind is unknown');

my $bound = $node->psql('postgres',
	"CREATE FUNCTION submit_sleep(jsonb) RETURNS bigint"
	  . " AS '\$libdir/batch_ops', 'batch_ops_submit_sleep' LANGUAGE C");
if ($bound != 0)
{
	note('batch_ops was built without TEST_MODULES=1: the sleep kind is not there');
	done_testing();
	exit 0;
}

sub job { return decode_json($node->safe_psql('postgres', "SELECT batch_ops.job($_[0])")); }

# 1. a job to its end: counters, errors by index, progress
my $id = $node->safe_psql('postgres',
	q{SELECT submit_sleep('{"items": 12, "sleep_ms": 10, "fail_every": 5}')});
is(bo_wait_job($node, $id), 'completed', 'a sleep job completes');
my $j = job($id);
is($j->{kind}, 'sleep', 'job() names the kind');
ok(!defined $j->{target} && !defined $j->{operation}, 'it has no target and no operation');
is($j->{progress}, 100, 'progress 100');
is($j->{rows_done}, 12, 'every item done');
is_deeply(
	[ @{ $j->{results} }{qw(created failed errors_total)} ],
	[ 9, 3, 3 ], 'counters from the kind: 9 created, 3 failed');
is(join(',', map { $_->{index} } @{ $j->{results}{errors} }), '0,5,10',
	'per-item errors by index');
is($node->safe_psql('postgres', "SELECT string_agg(message, '; ') FROM batch_ops.job_errors($id)"),
	'item 0 failed on purpose; item 5 failed on purpose; item 10 failed on purpose',
	'job_errors() lists them');
is($node->safe_psql('postgres', "SELECT summary->>'slept_items' FROM batch_ops.job_queue WHERE id = $id"),
	'12', "the kind's own number is in the summary");

# 2. cancel
my $long = $node->safe_psql('postgres',
	q{SELECT submit_sleep('{"items": 100000, "sleep_ms": 20}')});
ok( bo_wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT (checkpoint->>'index')::int >= 3 FROM batch_ops.job_queue WHERE id = $long") eq 't';
		},
		30),
	'the long job makes progress');
is($node->safe_psql('postgres', "SELECT batch_ops.cancel_job($long)"), 't', 'cancel_job() accepts');
is(bo_wait_job($node, $long), 'cancelled', 'the sleep job is cancelled');
ok( $node->safe_psql('postgres',
		"SELECT (checkpoint->>'index')::int < 100000 FROM batch_ops.job_queue WHERE id = $long") eq 't',
	'it stopped before its end');

# 3. kill -9 the worker: the job resumes at its checkpoint, no item twice
my $crash = $node->safe_psql('postgres',
	q{SELECT submit_sleep('{"items": 40, "sleep_ms": 100, "chunk_size": 2, "fail_every": 7}')});
ok( bo_wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT (checkpoint->>'index')::int >= 6 FROM batch_ops.job_queue WHERE id = $crash") eq 't';
		},
		60),
	'the job to crash has committed some chunks');
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM batch_ops.job_queue WHERE id = $crash");
ok(kill('KILL', $pid), "kill -9 the job worker ($pid)");
ok( bo_wait_until(
		sub {
			my $r = bo_sql($node, 'postgres',
				"SELECT status FROM batch_ops.job_queue WHERE id = $crash", 10);
			$r->{sqlstate} eq '' && $r->{out} eq 'completed';
		},
		120),
	'after the crash the job completes');
$j = job($crash);
is($j->{rows_done}, 40, 'every item done once');
is_deeply(
	[ @{ $j->{results} }{qw(created failed errors_total)} ],
	[ 34, 6, 6 ], 'counters after the resume: 34 created, 6 failed');
is($node->safe_psql('postgres', "SELECT count(*) FROM batch_ops.job_errors($crash)"),
	'6', 'each failed item once in job_errors()');
ok($node->safe_psql('postgres', "SELECT attempts >= 2 FROM batch_ops.job_queue WHERE id = $crash") eq 't',
	'the job was claimed again after the crash');

done_testing();
