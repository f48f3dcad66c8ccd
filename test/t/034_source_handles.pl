# An import source leaves nothing open when it fails: its socket, its
# libcurl handles and its file descriptor belong to the memory context of
# the Source (src/source.c), and are released when that context is reset
# or deleted, with or without source_close().
#
# A job worker runs one job and exits, so this test opens the sources in
# one ordinary backend through a test-only function
# (test/modules/source_probe.c, in the test build) and makes them fail, over
# and over, at each point between the opening and the end of the
# download: an HTTP error status, a refused connection, a connection
# dropped in the body, a redirect, a 206 with a garbled or wrong
# Content-Range, a file larger than max_size (from Content-Length, and
# from the body of a chunked answer), a statement timeout while the server
# stalls.  Downloads and a server file that are read to their end without
# source_close() are in the mix too.  Each failure must be the expected
# one, and afterwards the backend must hold as many sockets and file
# descriptors as it did before (counted in /proc/PID/fd).  Before the
# reset callback, when only source_close() released them, these calls left
# 230 sockets behind (24 after the first round, 254 after the last).
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

plan skip_all => 'needs /proc/PID/fd' unless -d "/proc/$$/fd";

my $node = bo_node('handles', "batch_ops.fetch_max_size = '1kB'\n");
my $srv = bo_mock_server('handles');
my $B = $srv->{base};

# ---------------------------------------------------------------- the probe
# linked into the test build (make TEST_MODULES=1, as scripts/test.sh builds)
my ($rc) = $node->psql('postgres',
	"CREATE FUNCTION source_probe(text, bigint, bool) RETURNS bigint"
	  . " AS 'batch_ops', 'batch_ops_test_source_probe' LANGUAGE C STRICT");
plan skip_all => 'batch_ops was built without TEST_MODULES=1 (no source probe)'
  if $rc != 0;

my $scratch = bo_scratch($node);
my $file = "$scratch/rows.csv";
open(my $fh, '>', $file) or die "$file: $!";
print $fh "id,name,qty\n", map { "$_,name-$_,1\n" } 1 .. 100;
close($fh);
my $file_size = -s $file;

# ---------------------------------------------------------------- helpers
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_safe('\set VERBOSITY verbose');
my $pid = $bg->query_safe('SELECT pg_backend_pid()');

# (sockets, all descriptors) the backend holds now
sub fds
{
	my ($sockets, $all) = (0, 0);
	opendir(my $dh, "/proc/$pid/fd") or die "/proc/$pid/fd: $!";
	for my $fd (grep { /^\d+$/ } readdir($dh))
	{
		my $target = readlink("/proc/$pid/fd/$fd") // next;
		$all++;
		$sockets++ if $target =~ /^socket:/;
	}
	closedir($dh);
	return ($sockets, $all);
}

# "SQLSTATE: message" of the call's error, or "ok N" with the bytes read
sub probe
{
	my ($location, $offset, $close, $timeout) = @_;
	$bg->{stderr} = '';
	my $sql = "SELECT source_probe('$location', $offset, $close)";
	$sql = "SET statement_timeout = '$timeout'; $sql; RESET statement_timeout"
	  if defined $timeout;
	my ($res, $failed) = $bg->query($sql);
	return "ok $res" unless $failed;
	return $bg->{stderr} =~ /ERROR:\s+([0-9A-Z]{5}): ([^\n]*)/ ? "$1: $2" : $bg->{stderr};
}

my $small = "$B/data.csv?rows=20";
my $small_size = length("id,name,qty\n")
  + length(join('', map { "$_,name-$_," . ($_ % 10) . "\n" } 1 .. 20));

# [ name, location, offset, close, statement_timeout, expected ]
my @cases = (
	[ 'read to the end, closed', $small, 0, 'true', undef, qr/^ok $small_size$/ ],
	[ 'read to the end, not closed', $small, 0, 'false', undef, qr/^ok $small_size$/ ],
	[ 'a server file, not closed', $file, 0, 'false', undef, qr/^ok $file_size$/ ],
	[ 'HTTP 404', "$B/missing.csv", 0, 'false', undef,
		qr/^08006: could not fetch ".*": HTTP status 404$/ ],
	[ 'a refused connection', 'http://127.0.0.1:1/x.csv', 0, 'false', undef,
		qr/^08006: could not fetch "http:\/\/127\.0\.0\.1:1\/x\.csv": / ],
	[ 'a connection dropped in the body', "$B/drop.csv?rows=20&after=3", 0, 'false', undef,
		qr/^08006: could not fetch ".*drop\.csv.*": / ],
	[ 'a redirect (not followed)', "$B/redirect.csv", 0, 'false', undef,
		qr/^08006: could not fetch ".*": HTTP status 302$/ ],
	[ 'a garbled Content-Range', "$B/data.csv?rows=20&range=garbled", 10, 'false', undef,
		qr/^08P01: could not fetch ".*": the server answered 206 \(partial content\) with an invalid Content-Range header "bytes junk"$/ ],
	[ 'a Content-Range after the requested byte', "$B/data.csv?rows=20&range=later&by=5", 10, 'false', undef,
		qr/^08P01: could not fetch ".*": the server sent the file from byte 15, after the requested byte 10$/ ],
	[ 'max_size from Content-Length', "$B/data.csv?rows=500", 0, 'false', undef,
		qr/^54000: could not fetch ".*": the file has \d+ bytes, more than 1024 \(max_size\)$/ ],
	[ 'max_size in a chunked body', "$B/chunked.csv?rows=500&piece=100", 0, 'false', undef,
		qr/^54000: could not fetch ".*": the file is larger than 1024 bytes \(max_size\)$/ ],
	[ 'a statement timeout while the server stalls', "$B/stall.csv?rows=50&after=40&hold=5", 0, 'false', '300ms',
		qr/^57014: canceling statement due to statement timeout$/ ],
);

# ---------------------------------------------------------------- the test
# one round first: libcurl's global state and the backend's caches settle
for my $c (@cases)
{
	like(probe(@$c[ 1 .. 4 ]), $c->[5], "$c->[0]: as expected");
}
my ($sockets0, $all0) = fds();

my $rounds = 10;
my @wrong;
for my $round (1 .. $rounds)
{
	for my $c (@cases)
	{
		my $got = probe(@$c[ 1 .. 4 ]);
		push @wrong, "$c->[0]: $got" unless $got =~ $c->[5];
	}
}
is(join("\n", @wrong), '', "$rounds more rounds: every call ended as expected");

my ($sockets1, $all1) = fds();
is($sockets1, $sockets0,
	sprintf('no socket left behind by %d calls (%d before, %d after)',
		$rounds * @cases, $sockets0, $sockets1));
ok($all1 <= $all0 + 2,
	"no file descriptor left behind either ($all0 before, $all1 after)");

# and the session is still usable
$bg->{stderr} = '';
is($bg->query_safe('SELECT 1'), '1', 'the backend still works');

$bg->quit;
bo_mock_stop($srv);
$node->stop;
done_testing();
