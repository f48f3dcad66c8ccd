# Sources that block or never end, and how fast a worker reading a source
# stops when told to.
#
#   1. server files that are not regular files -- a FIFO, a directory,
#      character devices (/dev/zero, /dev/urandom, /dev/null), a Unix
#      socket, and symbolic links to them -- are refused at submit (42809);
#      a symbolic link to a regular file is imported;
#   2. a regular file replaced by a FIFO between submit and the job's
#      start: the job fails at once ("not a regular file") instead of
#      blocking its worker in open(2) for good;
#   3. a job reading a stalled server (headers and a few bytes, then
#      nothing; or not even the headers) or a 1 byte/s trickle: cancel_job()
#      and pg_cancel_backend() make it 'cancelled' in under a second;
#      pg_terminate_backend() ends the worker in under a second, and a new
#      worker resumes the job at once (not at the launcher's next poll);
#   4. pg_ctl stop -m fast completes in a few seconds while a job reads a
#      stalled server, and after the restart the resumed job can still be
#      cancelled.
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use POSIX qw(mkfifo);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;

# the launcher's poll (60 s) is far away: resuming a job whose worker
# was terminated must not wait for it
my $node = bo_node('blocking');
my $dir = bo_scratch($node);
my $srv = bo_mock_server('blocking');
my $B = $srv->{base};

$node->safe_psql('postgres', q{
CREATE TABLE t (id int, name text, qty int);
-- seconds until the job has the status (polled every 10 ms), or -1
CREATE FUNCTION wait_status(job bigint, want text, t0 timestamptz, secs float8)
RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
  LOOP
    IF (SELECT status FROM batch_ops.job_queue WHERE id = job) = want THEN
      RETURN extract(epoch FROM clock_timestamp() - t0);
    END IF;
    IF clock_timestamp() - t0 > secs * interval '1 s' THEN
      RETURN -1;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
});

# ---------------------------------------------------------------- 1.
mkfifo("$dir/fifo.csv", 0666) or die "mkfifo: $!";
mkdir("$dir/dir.csv");
my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => "$dir/sock.csv", Listen => 1)
  or die "socket: $!";
open(my $fh, '>', "$dir/regular.csv") or die;
print $fh "id,name,qty\n1,a,1\n2,b,2\n";
close($fh);
symlink("$dir/fifo.csv",    "$dir/link-fifo.csv")    or die;
symlink('/dev/zero',        "$dir/link-zero.csv")    or die;
symlink("$dir/dir.csv",     "$dir/link-dir.csv")     or die;
symlink("$dir/sock.csv",    "$dir/link-sock.csv")    or die;
symlink("$dir/regular.csv", "$dir/link-regular.csv") or die;
symlink("$dir/link-fifo.csv", "$dir/link-link-fifo.csv") or die;

# (each submit is rolled back: code that accepted these sources would
# otherwise leave workers blocked or reading forever)
for my $case (
	[ "$dir/fifo.csv",           'a FIFO (named pipe)' ],
	[ "$dir/link-fifo.csv",      'a FIFO (named pipe)' ],
	[ "$dir/link-link-fifo.csv", 'a FIFO (named pipe)' ],
	[ "$dir/dir.csv",            'a directory' ],
	[ "$dir/link-dir.csv",       'a directory' ],
	[ '/dev/zero',               'a character device' ],
	[ '/dev/urandom',            'a character device' ],
	[ '/dev/null',               'a character device' ],
	[ "$dir/link-zero.csv",      'a character device' ],
	[ "$dir/sock.csv",           'a socket' ],
	[ "$dir/link-sock.csv",      'a socket' ])
{
	my ($path, $what) = @$case;
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nBEGIN;\nSELECT batch_ops.submit_import('t', '$path');\nROLLBACK;");
	like($err, qr/ERROR:  42809: "\Q$path\E" is not a regular file\nDETAIL:  It is \Q$what\E\./,
		"submit refuses $path ($what)");
}
my $job = $node->safe_psql('postgres',
	"SELECT batch_ops.submit_import('t', '$dir/link-regular.csv')");
is(bo_wait_job($node, $job), 'completed', 'a symbolic link to a regular file is imported');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '2', '... its rows');

# ---------------------------------------------------------------- 2.
# Submit a regular file, swap in a FIFO before the submit commits: the
# worker finds the FIFO when it opens the file.
open($fh, '>', "$dir/swap.csv") or die;
print $fh "id,name,qty\n1,a,1\n";
close($fh);
my ($ret, $out, $err) = $node->psql('postgres', qq{
BEGIN;
SELECT batch_ops.submit_import('t', '$dir/swap.csv');
\\! rm -f $dir/swap.csv && mkfifo $dir/swap.csv
COMMIT;
});
$job = $out;
ok(-p "$dir/swap.csv", 'the file was replaced by a FIFO before the job started');
my $t0 = time;
my $status = bo_wait_job($node, $job, 'postgres', 10);
my $secs = time - $t0;
is($status, 'failed', 'swapped to a FIFO: the job fails instead of blocking');
like($node->safe_psql('postgres', "SELECT error FROM batch_ops.job_queue WHERE id = $job"),
	qr/^"\Q$dir\E\/swap.csv" is not a regular file$/, '... because it is not a regular file');
ok($secs < 5, sprintf('... within 5 s (%.2f s)', $secs));
if ($status ne 'failed')
{
	if (sysopen(my $w, "$dir/swap.csv", POSIX::O_WRONLY() | POSIX::O_NONBLOCK())) { close($w); }
}

# ---------------------------------------------------------------- 3.
# Start a job on URL and wait until the server has the request and the
# job is running: then it sits in a wait for the server.
sub stalled_job
{
	my ($url, $tag) = @_;
	my $id = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('t', '$url', '{\"chunk_size\": 1}')");
	ok( bo_wait_until(
			sub {
				scalar(bo_mock_requests($srv, "tag=$tag"))
				  && $node->safe_psql('postgres',
					"SELECT status FROM batch_ops.job_queue WHERE id = $id") eq 'running';
			},
			20),
		"$tag: the job is running and the server has its request");
	usleep(300_000);    # well inside the wait
	return $id;
}

sub worker_pid
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE query LIKE 'batch_ops job $id %'");
}

# cancel with SQL, then measure in the same session how long until the
# job is 'cancelled' (the cancel takes effect when its transaction commits)
sub cancel_secs
{
	my ($id, $how) = @_;
	my $sql =
	  $how eq 'cancel_job'
	  ? "SELECT batch_ops.cancel_job($id)"
	  : "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'batch_ops job $id %'";
	return $node->safe_psql('postgres', qq{
SELECT clock_timestamp() AS t0 \\gset
$sql \\g /dev/null
SELECT round(wait_status($id, 'cancelled', :'t0', 10)::numeric, 3);
});
}

my @stalls = (
	[ "$B/stall.csv?rows=50&after=20&hold=120&tag=s1", 's1', 'stalled after 20 bytes', 'cancel_job' ],
	[ "$B/stall.csv?rows=50&headers=0&hold=120&tag=s2", 's2', 'stalled before the headers', 'cancel_job' ],
	[ "$B/slow.csv?rows=100&piece=1&delay=1&tag=s3", 's3', 'a 1 byte/s trickle', 'cancel_job' ],
	[ "$B/stall.csv?rows=50&after=20&hold=120&tag=s4", 's4', 'stalled after 20 bytes', 'pg_cancel_backend' ],
	[ "$B/stall.csv?rows=50&headers=0&hold=120&tag=s5", 's5', 'stalled before the headers', 'pg_cancel_backend' ]);
for my $s (@stalls)
{
	my ($url, $tag, $what, $how) = @$s;
	my $id = stalled_job($url, $tag);
	my $took = cancel_secs($id, $how);
	ok($took >= 0 && $took < 1.0, "$what: $how takes effect in under 1 s ($took s)");
}

# pg_terminate_backend: the worker exits (the job is resumed later)
$job = stalled_job("$B/stall.csv?rows=50&after=20&hold=120&tag=s6", 's6');
my $pid = worker_pid($job);
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(bo_wait_until(sub { !kill(0, $pid) }, 10), 'pg_terminate_backend: the worker exits');
$secs = time - $t0;
ok($secs < 1.0, sprintf('... in under 1 s (%.2f s)', $secs));
# the job is resumed by a new worker, which stalls too: cancel it
ok( bo_wait_until(sub { scalar(bo_mock_requests($srv, 'tag=s6')) >= 2 }, 5),
	'... and the job is resumed by a new worker within 5 s');
$node->safe_psql('postgres', "SELECT batch_ops.cancel_job($job)");
is(bo_wait_job($node, $job, 'postgres', 10), 'cancelled', '... which can be cancelled');

# ---------------------------------------------------------------- 4.
$job = stalled_job("$B/stall.csv?rows=50&after=20&hold=120&tag=s7", 's7');
$t0 = time;
my $stopped = system('pg_ctl', '-D', $node->data_dir, '-m', 'fast', '-t', '30', '-w', 'stop') == 0;
$secs = time - $t0;
ok($stopped, 'pg_ctl stop -m fast succeeds while a job reads a stalled server');
ok($secs < 5, sprintf('... in under 5 s (%.2f s)', $secs));
$node->_update_pid(0) if $stopped;
$node->start;
ok( bo_wait_until(sub { scalar(bo_mock_requests($srv, 'tag=s7')) >= 2 }, 30),
	'after the restart the job is resumed (and stalls again)');
$node->safe_psql('postgres', "SELECT batch_ops.cancel_job($job)");
is(bo_wait_job($node, $job, 'postgres', 10), 'cancelled', '... and is cancelled at once');

bo_mock_stop($srv);
$node->stop('immediate');
done_testing();
