# Issue #8 items 7, 9 (COPY side), 18 and 19: what the bytes of a CSV file
# can do to an import.
#
#   7  job_error.raw is stored in the database encoding, with bytes that
#      are not valid (or have no equivalent) escaped as \xNN, so job(),
#      job_errors() and the jobs view work for any client encoding;
#   9  a field whose type input function fails with a SQLSTATE outside
#      class 22 (tsquery/jsonpath syntax 42601, regclass 42P01, regtype
#      42704) is that row's validation_error, not the job's failure;
#  18  a UTF-8 byte-order mark at the start of a file is skipped;
#  19  a record longer than max_record_bytes is a row error (54000) and
#      the worker does not hold it in memory.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Encode ();
use BatchOpsTest;

my $node = bo_node('input', "shared_buffers = 16MB\n");
my $dir = bo_scratch($node);

$node->safe_psql('postgres', q{
CREATE DATABASE u8 TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
CREATE DATABASE l1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C';
});
for my $db ('u8', 'l1')
{
	$node->safe_psql($db, 'CREATE EXTENSION batch_ops');
}

sub put
{
	my ($name, $bytes) = @_;
	open(my $fh, '>:raw', "$dir/$name") or die;
	print $fh $bytes;
	close $fh;
	return "$dir/$name";
}

sub sq { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); }

# Submit an import in DB, wait for it; returns (job id, status).
sub import_job
{
	my ($db, $table, $file, $opts) = @_;
	$opts //= '{}';
	my $id = sq($db, "SELECT batch_ops.submit_import('$table', '$file', '$opts')");
	return ($id, bo_wait_job($node, $id, $db));
}

# "line:raw" of every error, in line order
sub raws
{
	my ($db, $id) = @_;
	return sq($db,
		"SELECT string_agg(line || ':' || raw, '|' ORDER BY line) FROM batch_ops.job_errors($id)");
}

# Run SQL with client_encoding UTF8: it works and sends valid UTF-8 only.
# (COPY TO STDOUT passes the bytes as they come; psql's own output would
# show invalid ones as \x escapes.)
sub utf8_client_ok
{
	my ($db, $sql, $what) = @_;
	my $copy = join(' ', map { "COPY ($_) TO STDOUT;" } grep { /\S/ } split(/;/, $sql));
	my ($ret, $out, $err) = $node->psql($db, "SET client_encoding = 'UTF8'; $copy");
	my $valid = eval { Encode::decode('UTF-8', $out, Encode::FB_CROAK); 1 };
	ok($ret == 0 && $valid, $what) or diag("psql: $ret $err");
}

# ---------------------------------------------------------------- 7. encodings
sq('u8', 'CREATE TABLE t (id int, v text); CREATE TABLE n (id int, n int)');
sq('l1', 'CREATE TABLE n (id int, n int)');

# a UTF-8 file with invalid sequences: a bad byte, a multibyte sequence cut
# short at the end of a record, and one cut short at the end of the file
my $bad_utf8 = put('bad_utf8.csv',
	"id,v\n1,ok\n2,\xff\xfe\n3,a\xe2\x82\n4,\xc3\xa9\n5,\xc3");
my $want_bad = '3:2,\xff\xfe|4:3,a\xe2\x82|6:5,\xc3';
for my $path (['COPY path', '{}'], ['engine path', '{"columns": {"id": "id", "v": null}}'])
{
	my ($what, $opts) = @$path;
	my ($id, $st) = import_job('u8', 't', $bad_utf8, $opts);
	is($st, 'completed', "$what, invalid UTF-8: the job completes");
	is(raws('u8', $id), $want_bad, "$what: invalid bytes are stored escaped as \\xNN");
	# readable by a LATIN1 client and by a UTF-8 one
	my $all = "SELECT batch_ops.job($id)::text; SELECT * FROM batch_ops.job_errors($id);"
	  . " SELECT * FROM batch_ops.jobs WHERE job_id = $id;";
	my ($ret, $out, $err) = $node->psql('u8', "SET client_encoding = 'LATIN1'; $all");
	is($ret, 0, "$what: a LATIN1 client reads job(), job_errors() and the view")
	  or diag($err);
	utf8_client_ok('u8', $all, "$what: a UTF-8 client gets valid UTF-8 from all three");
}
is( sq('u8', q{SELECT jsonb_path_query_first(batch_ops.job(max(id)), '$.results.errors[0].raw')
                 FROM batch_ops.job_queue}),
	'"2,\\\\xff\\\\xfe"', 'job() shows the escaped bytes');

# a LATIN1 file, said so with the encoding option: the raw text of a bad
# row is converted (e acute stays e acute, not an invalid byte)
my $latin1 = put('latin1.csv', "id,n\n1,1\n2,caf\xe9\n");
for my $path (['COPY path', '{"encoding": "LATIN1"}'],
	['engine path', '{"encoding": "LATIN1", "columns": {"id": "id", "n": "n"}, "header": true}'])
{
	my ($what, $opts) = @$path;
	my ($id, $st) = import_job('u8', 'n', $latin1, $opts);
	is($st, 'completed', "$what, LATIN1 file: the job completes");
	is( sq('u8', "SELECT raw = E'2,caf\\u00e9' FROM batch_ops.job_errors($id)"),
		't', "$what: the raw text of the bad row is converted to UTF-8");
	my ($ret, $out, $err) = $node->psql('u8',
		"SET client_encoding = 'LATIN1'; SELECT batch_ops.job($id)::text; SELECT * FROM batch_ops.job_errors($id)");
	is($ret, 0, "$what: a LATIN1 client reads it") or diag($err);
}

# a UTF-8 file into a LATIN1 database: a character LATIN1 lacks is escaped,
# one it has is converted
my $euro = put('euro.csv', "id,n\n1,x\xe2\x82\xac\n2,\xc3\xa9\n3,3\n");
for my $path (['COPY path', '{"encoding": "UTF8"}'],
	['engine path', '{"encoding": "UTF8", "columns": {"id": "id", "n": "n"}}'])
{
	my ($what, $opts) = @$path;
	my ($id, $st) = import_job('l1', 'n', $euro, $opts);
	is($st, 'completed', "$what, UTF-8 file into a LATIN1 database: the job completes");
	is( sq('l1',
			"SELECT string_agg((raw = CASE line WHEN 2 THEN E'1,x\\\\xe2\\\\x82\\\\xac' ELSE E'2,\\u00e9' END)::text, ',' ORDER BY line)"
			  . " FROM batch_ops.job_errors($id)"),
		'true,true', "$what: the euro sign is escaped, e acute converted");
	utf8_client_ok('l1', "SELECT batch_ops.job($id)::text; SELECT * FROM batch_ops.job_errors($id)",
		"$what: a UTF-8 client reads it");
}

# ---------------------------------------------------------------- 18. BOM
sq('u8', 'CREATE TABLE bom (id int, v text)');
my ($id, $st) = import_job('u8', 'bom', put('bom_header.csv', "\xef\xbb\xbfid,v\n1,a\n"));
is($st, 'completed', 'BOM before the header: the job completes (the first header name is "id")');
($id, $st) = import_job('u8', 'bom', put('bom_noheader.csv', "\xef\xbb\xbf2,b\n"),
	'{"header": false}');
is($st . ' ' . sq('u8', "SELECT count(*) FROM batch_ops.job_errors($id)"),
	'completed 0', 'BOM before the first record (no header): no row error');
($id, $st) = import_job('u8', 'bom', put('bom_declared.csv', "\xef\xbb\xbfid,v\n3,c\n"),
	'{"encoding": "UTF8", "chunk_size": 1}');
is($st, 'completed', 'BOM, encoding given as UTF8: skipped');
is(sq('u8', 'SELECT string_agg(id || v, \',\' ORDER BY id) FROM bom'), '1a,2b,3c',
	'every row imported with its first field intact');
# in a LATIN1 file the same bytes are characters, not a BOM
($id, $st) = import_job('u8', 'bom', put('bom_latin1.csv', "\xef\xbb\xbf4,d\n"),
	'{"header": false, "encoding": "LATIN1"}');
is( sq('u8', "SELECT raw = E'\\u00ef\\u00bb\\u00bf4,d' FROM batch_ops.job_errors($id)"),
	't', 'LATIN1 file: the bytes are not skipped (a bad integer)');

# ---------------------------------------------------------------- 9. any SQLSTATE of a field
sq('u8',
	'CREATE TABLE typed (id int, q tsquery, p jsonpath, r regclass, y regtype)');
my $typed = put('typed.csv',
	    "id,q,p,r,y\n"
	  . "1,a & b,\$.x,pg_class,int4\n"
	  . "2,a &,\$.x,pg_class,int4\n"
	  . "3,a,\$\$\$,pg_class,int4\n"
	  . "4,a,\$.x,no_such_table,int4\n"
	  . "5,a,\$.x,pg_class,no_such_type\n"
	  . "6,b,\$.y,pg_type,text\n");
my $want_typed = '3:validation_error:42601|4:validation_error:42601|5:validation_error:42P01|6:validation_error:42704';
($id, $st) = import_job('u8', 'typed', $typed);
is($st, 'completed', 'COPY path, input errors outside class 22: the job completes');
is( sq('u8',
		"SELECT string_agg(line || ':' || error || ':' || sqlstate, '|' ORDER BY line)"
		  . " FROM batch_ops.job_error WHERE job_id = $id"),
	$want_typed, 'each bad field is its row validation_error, with its real SQLSTATE');
is(sq('u8', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM typed'), '1,6',
	'the good rows are imported');
like(sq('u8', "SELECT message FROM batch_ops.job_error WHERE job_id = $id AND line = 5"),
	qr/relation "no_such_table" does not exist/, 'with the input function\'s message');

# The engine path (a skipped field) relies on the batch engine's item
# conversion, fixed by the engine's part of issue #8.
{
	local $TODO = 'engine item conversion (item_convert.c) is fixed on the engine branch';
	sq('u8', 'TRUNCATE typed');
	($id, $st) = import_job('u8', 'typed',
		put('typed_skip.csv', join("\n", map { "$_,x" } split(/\n/, $typed)) . "\n"),
		'{"columns": {"x": null}}');
	is($st, 'completed', 'engine path, input errors outside class 22: the job completes');
}

# ---------------------------------------------------------------- 19. record size
sq('u8', 'CREATE TABLE big (id int, v text)');
my $long = 'x' x 20000;
my $rec = put('records.csv',
	    "id,v\n1,a\n2,$long\n3,\"multi\n$long\nline\"\n4,d\n5,\"$long");
for my $path (['COPY path', '{"max_record_bytes": 10240}'],
	['engine path', '{"max_record_bytes": 10240, "columns": {"id": "id", "v": "v"}}'])
{
	my ($what, $opts) = @$path;
	sq('u8', 'TRUNCATE big');
	($id, $st) = import_job('u8', 'big', $rec, $opts);
	is($st, 'completed', "$what, records over max_record_bytes: the job completes");
	is( sq('u8',
			"SELECT string_agg(line || ':' || error || ':' || sqlstate || ':' || (octet_length(raw) <= 1024)::text"
			  . " || ':' || left(raw, 4), '|' ORDER BY line) FROM batch_ops.job_error WHERE job_id = $id"),
		'3:validation_error:54000:true:2,xx|6:validation_error:54000:true:3,"m|8:validation_error:54000:true:5,"x',
		"$what: each is a 54000 row error with its first 1 kB, at its line");
	like(sq('u8', "SELECT message FROM batch_ops.job_error WHERE job_id = $id AND line = 3"),
		qr/^record of 20002 bytes is longer than max_record_bytes \(10240\)$/,
		"$what: the message gives the size and the limit");
	is(sq('u8', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM big'), '1,4',
		"$what: the records around them are imported");
}

# A record over 1 MB but under the limit goes to the engine in a chunk of
# its own (its buffers given back first): the rows around it keep their
# order and lines, with or without a conversion from the file's encoding.
my $two_mb = put('two_mb.csv', "id,v\n1,a\n2," . ('z' x (2 * 1024 * 1024)) . "\n3,c\nx,d\n5,\xe9\n");
for my $opts ('{"columns": {"id": "id", "v": "v"}}',
	'{"columns": {"id": "id", "v": "v"}, "encoding": "LATIN1"}')
{
	sq('u8', 'TRUNCATE big');
	($id, $st) = import_job('u8', 'big', $two_mb, $opts);
	is( sq('u8', "SELECT string_agg(id || ':' || length(v), ',' ORDER BY id) FROM big")
		  . ' ' . sq('u8', "SELECT string_agg(line::text, ',') FROM batch_ops.job_error WHERE job_id = $id"),
		$opts =~ /LATIN1/ ? '1:1,2:2097152,3:1,5:1 5' : '1:1,2:2097152,3:1 5,6',
		"a 2 MB record through the engine, $opts");
}

# A 64 MB record with the default limit (16 MB): a row error, and the worker
# does not hold it.  The job stops at a gate (a trigger on the next row)
# so that its peak memory (VmHWM) can be read while it runs.
sq('u8', q{
CREATE TABLE gate (open boolean NOT NULL);
INSERT INTO gate VALUES (false);
CREATE FUNCTION wait_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 2 THEN
    WHILE NOT (SELECT g.open FROM public.gate g) LOOP
      PERFORM pg_sleep(0.02);
    END LOOP;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER gate BEFORE INSERT ON big FOR EACH ROW EXECUTE FUNCTION wait_gate();
TRUNCATE big;
});
my $huge = put('huge.csv', "id,v\n1," . ('y' x (64 * 1024 * 1024)) . "\n2,b\n");
$id = sq('u8', "SELECT batch_ops.submit_import('big', '$huge')");
my $pid;
ok( bo_wait_until(
		sub {
			$pid = sq('u8', q{SELECT pid FROM pg_stat_activity
			                   WHERE backend_type = 'batch_ops job worker' AND wait_event = 'PgSleep'});
			return $pid ne '';
		}, 60),
	'the job passed the 64 MB record');
my $hwm = 0;
if ($pid && open(my $fh, '<', "/proc/$pid/status"))
{
	while (<$fh>) { $hwm = $1 if /^VmHWM:\s+(\d+) kB/; }
	close $fh;
}
note("job worker VmHWM after a 64 MB record: $hwm kB");
cmp_ok($hwm, '<', 64 * 1024, 'the worker never held the 64 MB record (peak memory below its size)');
sq('u8', 'UPDATE gate SET open = true');
is(bo_wait_job($node, $id, 'u8'), 'completed', 'the job completes');
is( sq('u8', "SELECT line || ':' || sqlstate FROM batch_ops.job_error WHERE job_id = $id"),
	'2:54000', 'the record is a row error');
is(sq('u8', 'SELECT string_agg(id::text, \',\') FROM big'), '2', 'the next row is imported');

# ------------------------------------------- issue 14 item 1: json and jsonb
# A CSV field is text: on the COPY path and on the engine's (forced by a
# skipped field, by row-level security, and for a run with a trigger
# RAISE) the input function of json, jsonb and a jsonb domain reads it, so
# the same values are stored and the same records fail, with COPY's
# message and SQLSTATE.
sq('u8', q{
CREATE DOMAIN has_a AS jsonb CHECK (VALUE ? 'a');
CREATE TABLE js (id int, j json, jb jsonb, d has_a, x text);
CREATE TABLE js_copy (LIKE js);
});
my $json_rows = "1,\"{\"\"a\"\": 1}\",\"{\"\"a\"\": 1}\",\"{\"\"a\"\": 1}\",x\n"
  . "2,\"[1, 2]\",\"\"\"s\"\"\",\"{\"\"a\"\": [2]}\",x\n"
  . "3,{bad,{},{\"\"a\"\":3},x\n"
  . "4,{},{bad,\"{\"\"a\"\": 4}\",x\n"
  . "5,{},{},\"{\"\"b\"\": 5}\",x\n"
  . "6,,,,x\n"
  . "7,42,[],\"{\"\"a\"\": 7}\",x\n";
my $json_file = put('json.csv', "id,j,jb,d,x\n$json_rows");
# what COPY stores, each record alone
for my $rec (split /\n/, $json_rows)
{
	my $one = put('json_one.csv', "$rec\n");
	$node->psql('u8', "COPY js_copy FROM '$one' (FORMAT csv)");
}
my $stored = sub {
	my ($t) = @_;
	return sq('u8',
		"SELECT string_agg(concat_ws('|', id, j::text, jb::text, d::text), E'\\n' ORDER BY id) FROM $t");
};
is( $stored->('js_copy'),
	qq(1|{"a": 1}|{"a": 1}|{"a": 1}\n2|[1, 2]|"s"|{"a": [2]}\n6\n7|42|[]|{"a": 7}),
	'COPY, each record alone: json keeps its text, jsonb is the value, invalid JSON and the domain CHECK fail');
my $copy_rows = $stored->('js_copy');
sq('u8', q{
CREATE ROLE js_loader LOGIN;
GRANT pg_read_server_files TO js_loader;
GRANT SELECT, INSERT ON js TO js_loader;
CREATE FUNCTION js_raise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.x = 'raise' THEN RAISE EXCEPTION 'no raise rows'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER js_raise BEFORE INSERT ON js FOR EACH ROW EXECUTE FUNCTION js_raise();
CREATE POLICY js_all ON js USING (true) WITH CHECK (id > 0);
});
my $json_errors = sub {
	my ($id) = @_;
	return sq('u8',
		"SELECT string_agg(line || ':' || error || ':' || sqlstate || ':' || message, E'\\n' ORDER BY line)"
		  . " FROM batch_ops.job_error WHERE job_id = $id");
};
my $expected_errors = "4:validation_error:22P02:invalid input syntax for type json\n"
  . "5:validation_error:22P02:invalid input syntax for type json\n"
  . "6:validation_error:23514:value for domain has_a violates check constraint \"has_a_check\"";
for my $path (
	[ 'COPY path', $json_file, '{}', '' ],
	[ 'engine path (a skipped field)', $json_file, '{"columns": {"x": null}}', '' ],
	[ 'engine path (row-level security)', $json_file, '{}', 'rls' ],
	[ 'a run with a trigger RAISE', put('json_raise.csv', "id,j,jb,d,x\n$json_rows" . "8,{},{},{},raise\n"), '{}', '' ])
{
	my ($what, $file, $opts, $rls) = @$path;
	sq('u8', 'TRUNCATE js; ALTER TABLE js ' . ($rls ? 'ENABLE' : 'DISABLE') . ' ROW LEVEL SECURITY');
	my $id;
	if ($rls)
	{
		$id = $node->safe_psql('u8',
			"SELECT batch_ops.submit_import('js', '$file', '$opts')", extra_params => [ '-U', 'js_loader' ]);
	}
	else
	{
		$id = sq('u8', "SELECT batch_ops.submit_import('js', '$file', '$opts')");
	}
	is(bo_wait_job($node, $id, 'u8'), 'completed', "$what: the job completes");
	is($stored->('js'), $copy_rows, "$what: the rows and values COPY stores");
	my $errs = $json_errors->($id);
	$errs =~ s/\n9:[^\n]*$// if $file =~ /raise/;
	is($errs, $expected_errors, "$what: COPY's errors, SQLSTATEs and messages");
}
sq('u8', 'ALTER TABLE js DISABLE ROW LEVEL SECURITY');

# ------------------------------------- issue 14 item 5: nothing after a header
# An empty file with a header expected, and a file with only its header:
# zero rows, as COPY loads them.
for my $file ([ 'an empty file', put('empty.csv', '') ], [ 'only a header', put('header_only.csv', "id,v\n") ])
{
	my ($what, $path) = @$file;
	for my $opts ('{"header": true}', '{"header": true, "columns": {"v": null}}')
	{
		sq('u8', 'TRUNCATE t');
		my ($id, $st) = import_job('u8', 't', $path, $opts);
		is($st, 'completed', "$what, $opts: the job completes");
		is( sq('u8', "SELECT (SELECT count(*) FROM t) || ',' || (batch_ops.job($id)->'results'->>'created')"),
			'0,0', "$what, $opts: zero rows");
	}
}

$node->stop;
done_testing();
