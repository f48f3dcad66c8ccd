# A resumed URL import checks the server's answer to its Range request.
#
# Eleven imports of the same 400-row file run at once from a slow server
# (about 27 s each, a checkpoint every 20 rows); once each has committed at
# least 60 rows the cluster is restarted (fast), and each job resumes at
# its checkpoint with a Range request that the mock server answers in its
# own (mis)way.  The tables have no key, so a duplicated row shows.
#
#   right answers -- a proper 206; a 206 from byte 0 or from before the
#   requested byte (Content-Range saying so); a 206 with an unknown total
#   ("/*"); a 200 with the whole file -- are imported with every row
#   exactly once;
#
#   wrong ones fail the job with a message that says what was wrong, and
#   leave exactly the rows committed before the restart: a 206 from after
#   the requested byte, a 206 without Content-Range (sending from byte 0,
#   which duplicated thousands of rows before), a garbled Content-Range, a
#   206 that stops short of the end, a file that changed size (also a
#   416 saying that the file now ends at the checkpoint).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('resume', "batch_ops.max_workers = 12\n");
my $srv = bo_mock_server('resume');
my $B = $srv->{base};

my @cases = (
	[ 'ok206',   '' ],
	[ 'from0',   '&range=from0' ],
	[ 'earlier', '&range=earlier&by=37' ],
	[ 'star',    '&range=star' ],
	[ 'whole',   '&norange=1' ],
	[ 'later', '&range=later&by=10',
		qr/^the server sent the file from byte (\d+), after the requested byte (\d+)$/ ],
	[ 'nocr', '&range=nocr',
		qr/^the server answered 206 \(partial content\) without a Content-Range header$/ ],
	[ 'garbled', '&range=garbled',
		qr/^the server answered 206 \(partial content\) with an invalid Content-Range header "bytes junk"$/ ],
	[ 'short', '&range=short&by=10',
		qr/^the server sent bytes (\d+)-\d+ of \d+, not the rest of the file from byte (\d+)$/ ],
	[ 'grown', '&range=grown&by=5',
		qr/^the file changed size since the job started \(\d+ bytes, now \d+\)$/ ],
	[ 'ended', '&range=416',
		qr/^the file changed size since the job started \(\d+ bytes, now \d+\)$/ ]);

my %job;
my %url;
for my $c (@cases)
{
	my ($name, $mode) = @$c;
	$url{$name} = "$B/slow.csv?rows=400&piece=50&delay=0.2$mode&case=$name";
	$node->safe_psql('postgres', "CREATE TABLE t_$name (id int, name text, qty int)");
	$job{$name} = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('t_$name', '$url{$name}', '{\"chunk_size\": 20}')");
}
my $ids = join(',', values %job);
ok( bo_wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM batch_ops.job_queue WHERE id IN ($ids)"
				  . " AND status = 'running' AND rows_done >= 60") == scalar(@cases);
		},
		120),
	'all imports are running with at least 60 rows committed');
$node->restart('fast');

for my $c (@cases)
{
	my ($name, $mode, $want) = @$c;
	my $status = bo_wait_job($node, $job{$name}, 'postgres', 120);
	my ($error, $ckpt) = split(/\|/,
		$node->safe_psql('postgres',
			"SELECT coalesce(error, '-') || '|' || (checkpoint->>'offset') FROM batch_ops.job_queue WHERE id = $job{$name}"));
	my ($count, $distinct, $max) = split(/\|/,
		$node->safe_psql('postgres',
			"SELECT count(*) || '|' || count(DISTINCT id) || '|' || coalesce(max(id), 0) FROM t_$name"));
	my @ranges = bo_mock_requests($srv, "case=$name range=bytes=");
	is(scalar(@ranges), 1, "$name: one resumed request, with a Range header");
	my ($from) = ($ranges[0] // '') =~ /range=bytes=(\d+)-/;
	if (!defined $want)
	{
		is("$status|$error", 'completed|-', "$name: the job completes");
		is("$count|$distinct|$max", '400|400|400', "$name: every row exactly once");
		next;
	}
	is($status, 'failed', "$name: the job fails");
	my $prefix = "could not fetch \"$url{$name}\": ";
	ok(index($error, $prefix) == 0, "$name: it could not fetch the URL")
	  or diag("error: $error");
	like(substr($error, length($prefix)), $want, "$name: and says why");
	if ($name eq 'later' || $name eq 'short')
	{
		my ($m) = [ substr($error, length($prefix)) =~ $want ];
		is($m->[1], $from, "$name: the requested byte is the one of the Range header");
	}
	is("$count|$distinct", "$max|$max", "$name: no row twice, no gap");
	ok($max >= 60 && $max % 20 == 0 && $max < 400,
		"$name: only the chunks committed before the restart ($max rows)");
	is($ckpt, $from, "$name: the checkpoint did not move");
}

bo_mock_stop($srv);
$node->stop;
done_testing();
