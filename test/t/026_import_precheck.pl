# Issue #14, speed: the COPY path's precheck (copy_path.c) sends records
# that look bad to COPY alone, so that they do not drag good records into
# a rollback.  It must change nothing but the grouping: every record is
# stored or reported exactly as COPY does it on that record alone, in file
# order.  The file mixes what the precheck flags rightly (a duplicate of
# the previous key, NULL in a NOT NULL column, a bad integer, too many or
# too few fields), what it flags wrongly (a key whose first record failed,
# an integer with leading zeros), and what it cannot see (a key written
# quoted once and bare once, a CHECK, an out-of-range int2 field ...).
# Each import is compared, row for row and error for error, with COPY run
# on each record alone; with chunk_size 7 the precheck is switched on and
# off from run to run.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('precheck');
my $dir = bo_scratch($node);

my $ddl = q{(id bigint PRIMARY KEY, sku text NOT NULL UNIQUE,
	qty int NOT NULL CHECK (qty >= 0), small int2, note text)};
# the reference table has the same name (and so the same messages), in a
# database of its own
$node->safe_psql('postgres', "CREATE TABLE t $ddl; CREATE DATABASE ref");
$node->safe_psql('ref', "CREATE TABLE t $ddl");

my @records = (
	'1,a1,abc,1,x',            # type error: the precheck starts here
	'2,a2,5,1,x',
	'3,a2,6,1,x',              # duplicate of the previous sku
	'4,a4,-1,1,x',             # CHECK
	'5,a4,7,1,x',              # same sku as a failed record: stored
	'6,,8,1,x',                # NULL in NOT NULL
	'7,a7,"9",1,x',            # quoted integer
	'8,a8, +10 ,1,x',          # blanks and a sign
	'9,a9,0000000011,1,x',     # ten digits, in range
	'10,a10,12345678901,1,x',  # out of range for int4
	'11,a11,1,99999,x',        # out of range for int2
	'12,a12,1,1,x,extra',      # extra field
	'13,a13,1,1',              # missing field
	'14,"a2",1,1,x',           # duplicate written quoted
	'15,a15,1,1,x',
	'15,a16,1,1,x',            # duplicate id
	'16,a"b,c"d,1,1,x',        # quoted delimiter inside a field
	qq{17,a17,1,1,"two\nlines"},
	'18,a18,1,1,"x""y"',
	'19,a17,1,1,x',            # duplicate after a multi-line record
	',a20,1,1,x',              # NULL primary key
	'21,a21,1,,x',             # NULL int2: fine
	'22,a22,1,1,""',           # empty quoted note: not NULL
	'23,a23,1x,1,x',           # bad integer
	'24,a24,-0,1,x');
for my $i (25 .. 120)
{
	my $sku = $i % 17 == 0 ? 'a' . ($i - 1) : "a$i";    # some duplicates
	my $qty = $i % 23 == 0 ? '-5' : $i;                 # some CHECKs
	push @records, "$i,$sku,$qty,$i,note $i";
}
my $file = "$dir/precheck.csv";
bo_write_file($file, join('', map { "$_\n" } 'id,sku,qty,small,note', @records));

# The reference: COPY on each record alone, in file order.
# "line|sqlstate|message" of each failure (line as the job counts it).
my @expect;
my $line = 1;
my $n = 0;
for my $rec (@records)
{
	$line += 1 + ($rec =~ tr/\n//);
	my $one = "$dir/one.csv";
	bo_write_file($one, "id,sku,qty,small,note\n$rec\n");
	my ($ret, $out, $err) = $node->psql('ref',
		"\\set VERBOSITY verbose\nCOPY t FROM '$one' (FORMAT csv, HEADER)");
	next if $ret == 0;
	my ($state, $msg) = $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+([^\n]*)/
	  or die "unexpected psql error: $err";
	push @expect, "$line|$state|$msg";
	$n++;
}
my $expect_errors = join("\n", @expect);
my $expect_rows = $node->safe_psql('ref', 'SELECT t::text FROM t ORDER BY id');
ok($n >= 15 && $n < @records - 50, "the reference rejects $n of " . scalar(@records) . ' records');

for my $opts ('{}', '{"chunk_size": 7}')
{
	$node->safe_psql('postgres', 'TRUNCATE t');
	my $id = $node->safe_psql('postgres',
		"SELECT batch_ops.submit_import('t', '$file', '$opts')");
	is(bo_wait_job($node, $id), 'completed', "$opts: job completed");
	is($node->safe_psql('postgres', 'SELECT t::text FROM t ORDER BY id'),
		$expect_rows, "$opts: the rows COPY stores record by record");
	is( $node->safe_psql(
			'postgres',
			"SELECT string_agg(line || '|' || sqlstate || '|' || message, E'\\n' ORDER BY line)
			   FROM batch_ops.job_error WHERE job_id = $id"),
		$expect_errors,
		"$opts: the errors COPY raises record by record");
}

done_testing();
