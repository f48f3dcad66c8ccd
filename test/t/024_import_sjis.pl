# Issue #14 item 3: a client-only encoding (SJIS here; also BIG5, GBK,
# GB18030, JOHAB) whose trail bytes can be ASCII.  With escape '\', the
# trail byte 0x5C of 表 (0x95 0x5C) or ソ (0x83 0x5C) must not read as the
# escape: the records are split on whole characters, as COPY does, also
# when a character is split between two 64 kB read pieces.  The rows an
# import stores equal those COPY (ENCODING 'SJIS', same options) stores,
# and the bad record is reported on its own line.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('sjis', "shared_buffers = 16MB\n");
my $dir = bo_scratch($node);

$node->safe_psql('postgres', q{
CREATE DATABASE u8 TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
});
$node->safe_psql('u8', q{
CREATE EXTENSION batch_ops;
CREATE TABLE t (id int, a text, b text);
CREATE TABLE ref (id int, a text, b text);
});

sub sq { my ($sql) = @_; return $node->safe_psql('u8', $sql); }

sub put
{
	my ($name, $bytes) = @_;
	open(my $fh, '>:raw', "$dir/$name") or die;
	print $fh $bytes;
	close $fh;
	return "$dir/$name";
}

my $hyo = "\x95\x5c";	# 表
my $so = "\x83\x5c";	# ソ

# Records 1-6 (lines 1-7): the trail byte 0x5C at the end of a quoted
# field, before an escaped quote or an escaped escape, in unquoted fields
# and around a quoted line feed.
my @good = (
	qq{1,"$hyo",$so\n},
	qq{2,$so$hyo,"a\\"b$hyo"\n},
	qq{3,"$hyo\\\\$so",$hyo\n},
	qq{4,"$so""q",x$so\n},
	qq{5,"$so\n$hyo",end\n},
	qq{6,$hyo$hyo,"$so$so"\n});
my $bad = qq{x,$hyo,"$so"\n};	# line 8: not an integer
my @after = (qq{8,"$hyo",$so\n});

# Record 9: 表 split between the first two 64 kB read pieces (its lead
# byte the last of the first piece), inside a quoted field.
my $head = join('', @good) . $bad . join('', @after);
my $prefix = qq{9,"};
my $pad = 65535 - length($head) - length($prefix);
my $split = $prefix . ('a' x $pad) . qq{$hyo",$so\n};
die 'lead byte not at the piece end'
  unless substr($head . $split, 65535, 2) eq $hyo;
my @tail = (qq{10,$so,"$hyo"\n});

my $file = put('sjis.csv', $head . $split . join('', @tail));
my $ref_file = put('sjis_ref.csv', join('', @good, @after) . $split . join('', @tail));

sq(qq{COPY ref FROM '$ref_file' WITH (FORMAT csv, ESCAPE '\\', ENCODING 'SJIS')});

# the rows of TABLE, record 9's long field as its length and md5; with
# $all false without field b (skipped on the engine path)
sub rows
{
	my ($table, $all) = @_;
	return sq("SELECT string_agg(id || ':' || CASE WHEN length(a) > 20"
		  . " THEN length(a) || ' ' || md5(a) ELSE a END"
		  . ($all ? " || ':' || b" : '') . ", '|' ORDER BY id) FROM $table");
}
is(sq('SELECT count(*) FROM ref'), '9', 'COPY stores the nine good records');
like(rows('ref', 1), qr/^1:表:ソ\|2:ソ表:a"b表\|3:表\\ソ:表\|4:ソq:xソ\|5:ソ\n表:end\|6:表表:ソソ\|8:表:ソ\|9:\d+ [0-9a-f]{32}:ソ\|10:ソ:表$/,
	'COPY stores the characters whole');

for my $path (['COPY path', '{"encoding": "SJIS", "escape": "\\\\", "header": false}', 1],
	['engine path (a skipped field)',
		'{"encoding": "SJIS", "escape": "\\\\", "header": false, "columns": ["id", "a", null]}', 0])
{
	my ($what, $opts, $all) = @$path;
	sq('TRUNCATE t');
	my $id = sq("SELECT batch_ops.submit_import('t', '$file', '$opts')");
	is(bo_wait_job($node, $id, 'u8'), 'completed', "$what: the job completes");
	is(rows('t', $all), rows('ref', $all), "$what: the rows stored are COPY's");
	is(sq("SELECT string_agg(line || ':' || sqlstate, ',') FROM batch_ops.job_error WHERE job_id = $id"),
		'8:22P02', "$what: the bad record is the one error, on line 8");
}

done_testing();
