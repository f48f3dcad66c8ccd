# Issue #14 item 4 and its line-number rule: an import error's line is the
# physical line of the file on which the bad record ends -- every LF, CRLF
# and lone CR counts, inside quoted fields or not, a header's too -- on the
# COPY path and on the engine path alike.  A CRLF that the 64 kB read
# buffer cuts in two is one line end, a lone CR at the buffer's end is one.
# Two documented departures from PostgreSQL 15's COPY: a line "\." is data
# (as in PostgreSQL 18), and a file may mix line-end styles.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('lines');
my $dir = bo_scratch($node);

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }

sq('CREATE TABLE t (id int, v text, w text)');

# the bytes that start the first read buffer (source.c reads 64 kB pieces)
my $piece = 65536;

# good records of exactly $len bytes in all, each ending with "\n"
sub filler
{
	my ($len) = @_;
	my $out = '';
	while ($len > 0)
	{
		my $n = $len >= 1000 + 8 ? 1000 : $len;
		die "filler too short" if $n < 5;
		$out .= '9,' . ('a' x ($n - 4)) . ",\n";
		$len -= $n;
	}
	return $out;
}

# A file of PREFIX, a bad record, then one good record.  Returns the file's
# bytes and the line the bad record is on, counted here by the rule itself
# (every \r\n, \r and \n of PREFIX is a line end) and checked against WANT
# when given.
sub case_file
{
	my ($prefix, $want) = @_;
	my $n = () = $prefix =~ /\r\n|\r|\n/g;
	die "case expects line $want, the rule gives " . ($n + 1)
	  if defined $want && $want != $n + 1;
	return ($prefix . "bad,x,y\n" . "7,last,z\n", $n + 1);
}

my $bnd = $piece - 1;			# index of the last byte of the first piece
my @cases = (
	[ 'records end with LF', "1,a,b\n2,c,d\n", 3 ],
	[ 'records end with CRLF', "1,a,b\r\n2,c,d\r\n", 3 ],
	[ 'records end with a lone CR', "1,a,b\r2,c,d\r", 3 ],
	[ 'a quoted LF', qq{1,"a\nb",c\n2,"x\n\ny",z\n}, 6 ],
	[ 'a quoted CRLF', qq{1,"a\r\nb",c\r\n2,"x\r\n\r\ny",z\r\n}, 6 ],
	[ 'a quoted lone CR', qq{1,"a\rb",c\n2,"x\r\ry",z\n}, 6 ],
	[ 'a headerless first record spanning lines', qq{1,"a\nb\r\nc\rd",e\n}, 5 ],
	[ 'mixed line ends', "1,a,b\n2,c,d\r\n3,e,f\r4,g,h\n5,\"i\r\nj\rk\nl\",m\r", 9 ],
	# a quoted CR that is the last byte of the first piece, then not an LF
	[ 'a quoted CR at byte 65535', filler($bnd - 4) . qq{2,"q\rr",w\n3,c,d\n} ],
	# a quoted CRLF whose CR ends the first piece and whose LF starts the next
	[ 'a quoted CRLF across bytes 65535/65536', filler($bnd - 4) . qq{2,"q\r\nr",w\n3,c,d\n} ],
	# a record's CRLF cut in two by the read buffer
	[ 'a record-ending CRLF across bytes 65535/65536', filler($bnd - 4) . "2,q,\r\n3,c,d\r\n" ],
	# a record's lone CR at the end of the first piece
	[ 'a record-ending CR at byte 65535', filler($bnd - 4) . "2,q,\r3,c,d\r" ],
);

# the boundary cases have their CR where they mean to
for my $c (@cases[ 8 .. 11 ])
{
	is(substr($c->[1], $bnd, 1), "\r", "$c->[0]: the file has a CR at byte $bnd");
}

my @paths = (
	[ 'COPY path', '{"header": false}', '{"header": true}' ],
	[ 'engine path', '{"header": false, "columns": ["id", "v", null]}',
	  '{"header": true, "columns": {"id": "id", "v": "v", "w": null}}' ]);

# run IMPORT of FILE with OPTS; returns the errors' lines from job_errors()
# and from job(), and the number of rows stored
sub run_import
{
	my ($file, $opts) = @_;
	sq('TRUNCATE t');
	my $id = sq("SELECT batch_ops.submit_import('t', '$file', '$opts')");
	my $st = bo_wait_job($node, $id);
	return (
		$st,
		sq("SELECT string_agg(line::text, ',' ORDER BY line) FROM batch_ops.job_errors($id)"),
		sq("SELECT string_agg(e->>'line', ',') FROM jsonb_array_elements(batch_ops.job($id)->'results'->'errors') e"),
		sq('SELECT count(*) FROM t'));
}

my $k = 0;
for my $c (@cases)
{
	my ($what, $prefix, $want) = @$c;
	my ($bytes, $line) = case_file($prefix, $want);
	my $file = "$dir/case" . $k++ . '.csv';
	bo_write_file($file, $bytes);
	my $nrec = 0;
	for my $path (@paths)
	{
		my ($pname, $opts) = @$path;
		my ($st, $lines, $joblines, $rows) = run_import($file, $opts);
		is("$st $lines $joblines", "completed $line $line",
			"$pname, $what: the bad record is on line $line");
		$nrec = $rows if $pname eq 'COPY path';
		is($rows, $nrec, "$pname, $what: the same rows are stored as on the COPY path");
	}
}

# a header is line 1, and its line end counts as any other
{
	my ($bytes, $line) = case_file(qq{id,v,w\r\n1,"a\rb",c\r\n2,"d\ne",f\r}, 6);
	my $file = "$dir/header.csv";
	bo_write_file($file, $bytes);
	for my $path (@paths)
	{
		my ($pname, undef, $opts) = @$path;
		my ($st, $lines, $joblines, $rows) = run_import($file, $opts);
		is("$st $lines $joblines $rows", "completed $line $line 3",
			"$pname, a header and quoted line ends: the bad record is on line $line");
	}
}

# a line "\." is data (PostgreSQL 18), not the end of the data as in
# PostgreSQL 15's COPY: here it is a bad record (not an integer), and the
# records after it are read
{
	my $file = "$dir/endmarker.csv";
	bo_write_file($file, "1,a,b\r\n\\.\r\n2,c,d\r\nbad,x,y\r\n3,e,f\r\n");
	for my $path (@paths)
	{
		my ($pname, $opts) = @$path;
		my ($st, $lines, $joblines, $rows) = run_import($file, $opts);
		is("$st $lines $joblines $rows", "completed 2,4 2,4 3",
			"$pname: a line \\. is data, and the records after it are read");
	}
}

done_testing();
