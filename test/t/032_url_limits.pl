# The limits of a URL download: "timeout", "low_speed_limit" /
# "low_speed_time" and "max_size" (job options), with their defaults and
# caps in batch_ops.fetch_timeout, batch_ops.fetch_low_speed_limit,
# batch_ops.fetch_low_speed_time and batch_ops.fetch_max_size.
#
#   1. a stalled server: the job fails after its timeout, naming it;
#   2. a 2 bytes/s server, and one that never answers: the job fails after
#      low_speed_time, naming both low-speed options; a slow server that
#      stays above the limit is imported;
#   3. max_size: a file whose Content-Length is larger fails before any row
#      is imported; a chunked one fails once it passes the size;
#   4. the settings: the server-wide defaults apply to a job without
#      options, the caps refuse larger options at submit (22023, with the
#      option, its range and the setting).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BatchOpsTest;

my $node = bo_node('limits');
my $srv = bo_mock_server('limits');
my $B = $srv->{base};
$node->safe_psql('postgres', 'CREATE TABLE t (id int, name text, qty int)');

# Run an import to its end: "status|error|rows|seconds".
sub run_job
{
	my ($url, $opts) = @_;
	$opts //= '{}';
	$node->safe_psql('postgres', 'TRUNCATE t');
	my $t0 = time;
	my $id = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('t', '$url', '$opts')");
	my $status = bo_wait_job($node, $id, 'postgres', 60);
	my $secs = time - $t0;
	my $res = $node->safe_psql('postgres',
		"SELECT concat_ws('|', status, coalesce(error, '-'), (SELECT count(*) FROM t))"
		  . " FROM batch_ops.job_queue WHERE id = $id");
	return ($res, $secs);
}

sub reload
{
	my ($sql, $name, $want) = @_;
	$node->safe_psql('postgres', "$sql; SELECT pg_reload_conf()");
	bo_wait_until(sub { $node->safe_psql('postgres', "SHOW $name") eq $want })
	  or die "$name is not $want";
}

# ---------------------------------------------------------------- 1.
my $url = "$B/stall.csv?rows=50&after=40&hold=60&t=1";
my ($res, $secs) = run_job($url, '{"timeout": 2, "low_speed_limit": 0, "chunk_size": 1}');
is($res, "failed|could not fetch \"$url\": timed out after 2 s (timeout)|2",
	'a stalled server: the job fails with its timeout (the 2 rows before the stall stay)');
ok($secs >= 1.9 && $secs < 6, sprintf('... after about 2 s (%.2f s)', $secs));

# the timeout is wall-clock: a steady 1 kB/s stream is above any
# low-speed limit here, but the 400-row file takes about 6 s
$url = "$B/slow.csv?rows=400&piece=50&delay=0.05&t=2";
($res, $secs) = run_job($url, '{"timeout": 2, "low_speed_limit": 10, "chunk_size": 20}');
like($res, qr/^failed\|could not fetch "\Q$url\E": timed out after 2 s \(timeout\)\|\d+$/,
	'a steady but long download: the job fails with its timeout');
ok($secs < 6, sprintf('... after about 2 s (%.2f s)', $secs));

# ---------------------------------------------------------------- 2.
$url = "$B/slow.csv?rows=100&piece=2&delay=1&t=3";
($res, $secs) = run_job($url, '{"low_speed_limit": 100, "low_speed_time": 2}');
is($res,
	"failed|could not fetch \"$url\": slower than 100 bytes/s for 2 s (low_speed_limit, low_speed_time)|0",
	'a 2 bytes/s server: the job fails naming the low-speed limit');
ok($secs >= 1.9 && $secs < 6, sprintf('... after about 2 s (%.2f s)', $secs));

$url = "$B/stall.csv?rows=50&headers=0&hold=60&t=4";
($res, $secs) = run_job($url, '{"low_speed_limit": 1, "low_speed_time": 2}');
is($res,
	"failed|could not fetch \"$url\": slower than 1 bytes/s for 2 s (low_speed_limit, low_speed_time)|0",
	'a server that never answers: the low-speed limit ends the job');
ok($secs < 6, sprintf('... after about 2 s (%.2f s)', $secs));

$url = "$B/slow.csv?rows=200&piece=50&delay=0.05&t=5";
($res, $secs) = run_job($url, '{"low_speed_limit": 200, "low_speed_time": 1, "chunk_size": 10}');
is($res, 'completed|-|200', 'a 1 kB/s server above a 200 bytes/s limit: imported');

# ---------------------------------------------------------------- 3.
$url = "$B/data.csv?rows=1000&t=6";
my $size = length("id,name,qty\n") + length(join('', map { "$_,name-$_," . ($_ % 10) . "\n" } 1 .. 1000));
($res) = run_job($url, '{"max_size": 5000}');
is($res, "failed|could not fetch \"$url\": the file has $size bytes, more than 5000 (max_size)|0",
	'max_size below the Content-Length: fails before any row');
is(scalar(bo_mock_requests($srv, 't=6')), 1, '... after one request');

$url = "$B/chunked.csv?rows=1000&piece=100&t=7";
($res) = run_job($url, '{"max_size": 5000, "chunk_size": 50}');
like($res, qr/^failed\|could not fetch "\Q$url\E": the file is larger than 5000 bytes \(max_size\)\|(\d+)$/,
	'max_size, no Content-Length: fails once past the size');
my ($rows) = $res =~ /\|(\d+)$/;
ok(defined $rows && $rows < 400, "... having imported at most the rows within 5000 bytes ($rows)");

($res) = run_job("$B/data.csv?rows=1000&t=8", qq({"max_size": $size}));
is($res, 'completed|-|1000', 'max_size equal to the file size: imported');

# ---------------------------------------------------------------- 4.
reload("ALTER SYSTEM SET batch_ops.fetch_low_speed_limit = 100; ALTER SYSTEM SET batch_ops.fetch_low_speed_time = '2s'",
	'batch_ops.fetch_low_speed_time', '2s');
$url = "$B/slow.csv?rows=100&piece=2&delay=1&t=9";
($res, $secs) = run_job($url);
is($res,
	"failed|could not fetch \"$url\": slower than 100 bytes/s for 2 s (low_speed_limit, low_speed_time)|0",
	'the server-wide low-speed defaults apply to a job without options');
ok($secs < 6, sprintf('... after about 2 s (%.2f s)', $secs));

reload("ALTER SYSTEM SET batch_ops.fetch_low_speed_limit = 0; ALTER SYSTEM SET batch_ops.fetch_timeout = '2s'",
	'batch_ops.fetch_timeout', '2s');
$url = "$B/stall.csv?rows=50&after=40&hold=60&t=10";
($res, $secs) = run_job($url);
is($res, "failed|could not fetch \"$url\": timed out after 2 s (timeout)|0",
	'batch_ops.fetch_timeout is the default timeout');
is( bo_sql_error($node, "SELECT batch_ops.submit_import('t', '$B/data.csv', '{\"timeout\": 3}')"),
	'22023: option "timeout" must be an integer between 1 and 2',
	'... and its cap: a larger option is refused at submit');
my ($r, $o, $e) = $node->psql('postgres', "SELECT batch_ops.submit_import('t', '$B/data.csv', '{\"timeout\": 3}')");
like($e, qr/DETAIL:  The maximum is set by batch_ops.fetch_timeout\./, '... naming the setting');

reload("ALTER SYSTEM SET batch_ops.fetch_timeout = '1h'; ALTER SYSTEM SET batch_ops.fetch_max_size = '4kB'",
	'batch_ops.fetch_max_size', '4kB');
is( bo_sql_error($node, "SELECT batch_ops.submit_import('t', '$B/data.csv', '{\"max_size\": 4097}')"),
	'22023: option "max_size" must be an integer between 1 and 4096',
	'batch_ops.fetch_max_size caps the option max_size');
$url = "$B/data.csv?rows=1000&t=11";
($res) = run_job($url);
is($res, "failed|could not fetch \"$url\": the file has $size bytes, more than 4096 (max_size)|0",
	'batch_ops.fetch_max_size is the default max_size');
($res) = run_job("$B/data.csv?rows=100&t=12", '{"max_size": 4096}');
is($res, 'completed|-|100', 'a file under the limits is imported');

# ordinary roles cannot change the settings
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
for my $name ('fetch_timeout', 'fetch_low_speed_limit', 'fetch_low_speed_time', 'fetch_max_size')
{
	like(bo_sql_error($node, "SET batch_ops.$name = 0", 'plain'),
		qr/^55P02: parameter "batch_ops.$name" cannot be changed now$/,
		"batch_ops.$name is server-wide (sighup)");
}

bo_mock_stop($srv);
$node->stop;
done_testing();
