# CSV imports from http:// and https:// URLs (batch_ops.submit_import),
# against a real local HTTP(S) server: test/http/mock_server.py on free
# ports the kernel picks, bound to 127.0.0.1, with a self-signed
# certificate made here with openssl.
#
# What is checked, with exact values:
#   1. a file with Content-Length: every row imported once, progress 100;
#      a file with good and bad rows: exactly the good rows, every bad one
#      (type error, CHECK, NOT NULL, duplicate key, malformed record)
#      reported by job_errors() with its line number as COPY counts it
#      (header = line 1; physical lines, so a quoted line end counts),
#      cross-checked against a real COPY of the same bytes;
#   2. progress: a slow server shows progress strictly between 0 and 100
#      while the job runs, never going back, and 100 at the end; a chunked
#      response (no Content-Length) imports every row;
#   3. 404 and a redirect: the job fails naming the HTTP status; the
#      redirect is not followed;
#   4. a connection dropped mid-body: the job fails (the implementation
#      does not retry or resume on its own) and the chunks committed
#      before the drop stay, each row once;
#   5. cancel_job() on a running slow import: 'cancelled' within a few
#      seconds, the committed chunks stay, nothing is duplicated;
#   6. https with a self-signed certificate: fails with the TLS
#      verification error (TLS is verified by default), nothing fetched;
#   7. privileges: a role outside batch_ops_fetch gets ERROR 42501 from
#      submit_import for a URL; after GRANT batch_ops_fetch it works; the
#      grant is checked again when the job runs; batch_ops.fetch_url_prefixes
#      (superuser-set) refuses URLs outside its prefixes, and the role
#      cannot change it, nor escape the prefix with "../";
#   8. resume after a server restart: a job interrupted mid-transfer
#      continues at its checkpoint with a Range request (206) and imports
#      every row exactly once; and the same against a server without Range
#      support (200: the importer must skip the bytes it already has).
#
# Runs in a database (import_http_test) and as a role (import_http_user)
# of its own.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

plan skip_all => 'python3 is not installed'
  unless system('sh', '-c', 'command -v python3 >/dev/null') == 0;

# the server's libcurl must not go through a proxy
delete @ENV{qw(http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY)};

my $DB = 'import_http_test';
my $ROLE = 'import_http_user';
my $HTTP_DIR = dirname(abs_path(__FILE__)) . '/../http';
my $work = PostgreSQL::Test::Utils::tempdir('import_http');

# ------------------------------------------------------------- the server
my $tls = bo_tls_cert($work);
my $cert_ok = defined $tls;
note('openssl is not installed: the https check is skipped') unless $cert_ok;
my $srv = bo_mock_server('import_http', undef, undef, $tls);
my $BASE = $srv->{base};
my $TLS_BASE = $srv->{tls_base} // 'https://127.0.0.1:0';
note("mock server: $BASE" . ($cert_ok ? " and $TLS_BASE" : ''));

# ------------------------------------------------------------- set-up
my $node = bo_node('import_http');
$node->safe_psql('postgres', "CREATE DATABASE $DB");
$node->safe_psql($DB, <<SQL);
SET client_min_messages = warning;
CREATE EXTENSION batch_ops;
CREATE ROLE $ROLE LOGIN;

-- the table of the mixed file (mock_server.py MIXED)
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL,
                    qty int NOT NULL CHECK (qty >= 0));
-- one table per import of generated rows (id, name-id, id % 10)
CREATE TABLE rows_template (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
CREATE TABLE t_data (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_multiline (LIKE items INCLUDING ALL);
CREATE TABLE t_copy (LIKE items INCLUDING ALL);
CREATE TABLE t_slow (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_chunked (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_404 (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_redirect (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_drop (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_cancel (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_tls (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_priv (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_resume (LIKE rows_template INCLUDING ALL);
CREATE TABLE t_resume200 (LIKE rows_template INCLUDING ALL);
GRANT INSERT, SELECT ON t_priv TO $ROLE;

-- Progress values seen while the job runs (each change once), polled
-- every 20 ms for at most secs seconds: "status|{0,4,9,...}".
CREATE FUNCTION seen_progress(job bigint, secs float8) RETURNS text
LANGUAGE plpgsql AS \$\$
DECLARE
  j jsonb;
  seen int[] := '{}';
  p int;
  t0 timestamptz := clock_timestamp();
BEGIN
  LOOP
    j := batch_ops.job(job);
    p := (j->>'progress')::int;
    IF cardinality(seen) = 0 OR seen[cardinality(seen)] <> p THEN
      seen := seen || p;
    END IF;
    EXIT WHEN j->>'status' NOT IN ('queued', 'running')
           OR clock_timestamp() - t0 > secs * interval '1 s';
    PERFORM pg_sleep(0.02);
  END LOOP;
  RETURN concat_ws('|', j->>'status', seen::text);
END
\$\$;

-- Wait (at most secs seconds) until the job has done n rows or finished.
CREATE FUNCTION wait_rows(job bigint, n int, secs float8) RETURNS jsonb
LANGUAGE plpgsql AS \$\$
DECLARE
  j jsonb;
  t0 timestamptz := clock_timestamp();
BEGIN
  LOOP
    j := batch_ops.job(job);
    EXIT WHEN (j->>'rows_done')::int >= n
           OR j->>'status' NOT IN ('queued', 'running')
           OR clock_timestamp() - t0 > secs * interval '1 s';
    PERFORM pg_sleep(0.02);
  END LOOP;
  RETURN j;
END
\$\$;
SQL

# ------------------------------------------------------------- helpers
# One statement (or several: every output line) as the superuser, in our
# database; unaligned, fields separated by |.  An error comes out as its
# text, so that it shows in the failed check.
sub sql { return bo_q($node, $DB, $_[0]) }

# The same as ROLE (a real login, so that per-role settings apply).
sub sql_as { return bo_q($node, $DB, $_[1], $_[0]) }

# "SQLSTATE: message" of the error that SQL raises as ROLE ('' if none).
sub sql_error_as { return bo_sql_error($node, $_[1], $_[0], $DB) }

# status|progress|rows_done|created|failed|error once the job has finished
# (or after SECS seconds).
sub job_result
{
	my ($job, $secs) = @_;
	$secs //= 30;
	return sql("SELECT concat_ws('|', w->>'status', w->'progress', w->'rows_done',
	                   w->'results'->'created', w->'results'->'failed',
	                   coalesce(w->>'error', '-'))
	              FROM batch_ops.wait_job($job, '$secs s') AS w");
}

# count|distinct ids|min id|max id|md5 of the rows, to compare with
# rows_once(N): every row of 1..N exactly once, as sent.
sub table_rows
{
	my ($table) = @_;
	return sql("SELECT concat_ws('|', count(*), count(DISTINCT id), coalesce(min(id), 0),
	                   coalesce(max(id), 0),
	                   md5(coalesce(string_agg(concat_ws(',', id, name, qty), E'\\n' ORDER BY id), '')))
	              FROM $table");
}

# test/http/expect.py's output: values computed from the bytes the mock
# server sends (expect_raw: as it is, e.g. a fetched file)
sub expect_raw
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'python3', "$HTTP_DIR/expect.py", @_ ], '<', \undef, '>', \$out, '2>', \$err);
	diag("expect.py @_: $err") if $err ne '';
	return $out;
}

sub expect
{
	my $out = expect_raw(@_);
	chomp $out;
	return $out;
}

sub rows_once
{
	my ($n) = @_;
	return "$n|$n|" . ($n > 0 ? 1 : 0) . "|$n|" . expect('md5', $n);
}

# requests the mock server logged that contain a fixed string
sub logged { return scalar(bo_mock_requests($srv, $_[0])) }

sub submit
{
	my ($table, $url, $opts) = @_;
	$opts //= '{}';
	return sql("SELECT batch_ops.submit_import('$table', '$url', '$opts')");
}

# ------------------------------------------------------------- 1. plain file
note('1. a file with Content-Length; good and bad rows');
my $job = submit('t_data', "$BASE/data.csv?rows=1000", '{"chunk_size": 100}');
is(job_result($job), 'completed|100|1000|1000|0|-', 'data.csv: the job completes, 1000 rows, progress 100');
is(table_rows('t_data'), rows_once(1000), 'data.csv: every row once, as sent');
is(logged('GET /data.csv?rows=1000 range=-'), 1, 'data.csv: one request, no Range');

$job = submit('items', "$BASE/mixed.csv", '{"chunk_size": 4}');
is(job_result($job), 'completed|100|13|5|8|-',
	'mixed.csv: completes with 5 rows created and 8 failed (13 records)');
is( sql("SELECT id, replace(name, E'\\n', '\\n'), qty FROM items ORDER BY id"),
	'1|alpha|5
6|multi\nline|2
7|eta|3
9|the "quoted" one|0
10|iota|1', 'mixed.csv: exactly the good rows');
# job_errors(): every bad row in file order, line numbers as COPY counts
# them.  The first four come before any quoted line end.
my $errors_sql = "SELECT concat_ws('|', e.line, coalesce(e.index::text, '-'), e.error, e.message,
                                   replace(e.raw, E'\\n', '\\n'))
                    FROM batch_ops.job_errors($job) WITH ORDINALITY AS e(line, index, error, message, raw, n)";
is( sql("$errors_sql WHERE n <= 4 ORDER BY n"),
	'3|-|validation_error|invalid input syntax for type integer: "abc"|2,beta,abc
4|-|validation_error|new row for relation "items" violates check constraint "items_qty_check"|3,gamma,-1
5|-|validation_error|missing data for column "qty"|4,delta
6|-|validation_error|extra data after last expected column|5,epsilon,7,extra',
	'mixed.csv: type error, CHECK, missing and extra field, at lines 3-6');
# After the record spanning lines 7-8, COPY's line numbers are physical
# lines (COPY counts a line end inside quotes, and reports an error in a
# record that spans lines at its last line): NOT NULL at 10, the duplicate
# at 11, the two-line CHECK failure at 14, the unterminated field at 16.
is( sql("$errors_sql WHERE n > 4 ORDER BY n"),
	'10|-|validation_error|null value in column "name" of relation "items" violates not-null constraint|8,,4
11|-|conflict|duplicate key value violates unique constraint "items_pkey"|1,dup,1
14|-|validation_error|new row for relation "items" violates check constraint "items_qty_check"|12,"two\nlines",-5
16|-|validation_error|unterminated CSV quoted field|11,"open,1',
	'mixed.csv: errors after quoted line ends, at COPY\'s line numbers 10, 11, 14, 16');
is( sql("SELECT concat_ws('|', w->'results'->'errors_total', jsonb_array_length(w->'results'->'errors'),
	            (SELECT string_agg(e->>'sqlstate', ',') FROM jsonb_array_elements(w->'results'->'errors') e))
	       FROM batch_ops.job($job) w"),
	'8|8|22P02,23514,22P04,22P04,23502,23505,23514,22P04',
	'mixed.csv: job() lists the same errors, with their SQLSTATEs');
is( sql("SELECT string_agg(e->>'line', ',') FROM jsonb_array_elements(batch_ops.job($job)->'results'->'errors') e"),
	sql("SELECT string_agg(line::text, ',') FROM batch_ops.job_errors($job)"),
	'mixed.csv: job() and job_errors() agree on the line numbers');

# The same bytes through COPY: its line number for the bad row after a
# quoted line end is the one the job must report.
bo_write_file("$work/multiline.csv", expect_raw('fetch', "$BASE/multiline.csv"));
my $copy = bo_sql($node, $DB, "COPY t_copy FROM '$work/multiline.csv' (FORMAT csv, HEADER)");
my ($copy_line) = $copy->{err} =~ /CONTEXT:\s+COPY t_copy, line (\d+)/;
is($copy_line, '4', 'multiline.csv: COPY reports the bad row at line 4') or diag($copy->{err});
$job = submit('t_multiline', "$BASE/multiline.csv");
job_result($job);
is( sql("SELECT concat_ws('|', line, message) FROM batch_ops.job_errors($job)"),
	($copy_line // 4) . '|invalid input syntax for type integer: "bad"',
	"multiline.csv: the job reports it at COPY's line number");

# ------------------------------------------------------------- 2. progress
note('2. progress (slow server; chunked response)');
# 200 rows (2.7 kB) sent 50 bytes every 50 ms: about 3 s; a chunk commits
# (and progress moves) every 10 rows.
$job = submit('t_slow', "$BASE/slow.csv?rows=200&piece=50&delay=0.05", '{"chunk_size": 10}');
my $seen = sql("SELECT seen_progress($job, 30)");
note("progress seen: $seen");
my ($status, $values) = split /\|/, $seen, 2;
$values //= '{}';
is($status, 'completed', 'slow.csv: completed');
is(sql("SELECT EXISTS (SELECT FROM unnest('$values'::int[]) p WHERE p > 0 AND p < 100)"),
	't', 'slow.csv: progress seen strictly between 0 and 100 while running');
is( sql("SELECT concat_ws('|', '$values'::int[] = (SELECT array_agg(p ORDER BY p) FROM unnest('$values'::int[]) p),
	                   ('$values'::int[])[cardinality('$values'::int[])])"),
	't|100', 'slow.csv: progress never goes back, and is 100 at the end');
is(job_result($job), 'completed|100|200|200|0|-', 'slow.csv: final job');
is(table_rows('t_slow'), rows_once(200), 'slow.csv: every row once');

# Chunked transfer encoding, no Content-Length: the size is unknown, so
# progress stays 0 until the job completes (then 100).
$job = submit('t_chunked', "$BASE/chunked.csv?rows=500&piece=100&delay=0.02", '{"chunk_size": 50}');
is(sql("SELECT seen_progress($job, 30)"), 'completed|{0,100}',
	'chunked.csv: progress 0 while running (size unknown), then 100');
is(job_result($job), 'completed|100|500|500|0|-', 'chunked.csv: the job completes');
is(table_rows('t_chunked'), rows_once(500), 'chunked.csv: every row once');

# ------------------------------------------------------------- 3. HTTP errors
note('3. HTTP errors');
$job = submit('t_404', "$BASE/missing.csv");
is(job_result($job), "failed|0|0|0|0|could not fetch \"$BASE/missing.csv\": HTTP status 404",
	'404: the job fails naming the HTTP status');
is(sql('SELECT count(*) FROM t_404'), '0', '404: no rows');

$job = submit('t_redirect', "$BASE/redirect.csv");
is(job_result($job), "failed|0|0|0|0|could not fetch \"$BASE/redirect.csv\": HTTP status 302",
	'302: the job fails naming the HTTP status');
is(logged('from=redirect'), 0, '302: the redirect is not followed');

# ------------------------------------------------------------- 4. dropped
note('4. connection dropped mid-body');
# 100 rows announced by Content-Length; the server sends the header, 45
# rows and half of row 46, then closes.  chunk_size 10: rows 1-40 are in
# committed chunks, 41-45 in the chunk being read when the transfer
# fails.  The implementation does not retry or resume a failed transfer
# by itself: the job fails, and the committed chunks stay.
$job = submit('t_drop', "$BASE/drop.csv?rows=100&after=45", '{"chunk_size": 10}');
my $remaining = expect('drop-remaining', 100, 45);
my @r = split /\|/, job_result($job), -1;
is( join('|', $r[0], @r[2 .. $#r]),
	"failed|40|40|0|could not fetch \"$BASE/drop.csv?rows=100&after=45\": transfer closed with $remaining bytes remaining to read",
	"drop.csv: the job fails with libcurl's error, after 40 rows");
is(table_rows('t_drop'), rows_once(40), 'drop.csv: the 4 committed chunks stay, each row once');
is(logged('GET /drop.csv?rows=100&after=45 '), 1, 'drop.csv: fetched once (no retry)');

# ------------------------------------------------------------- 5. cancel
note('5. cancel_job on a running slow import');
# 2000 rows at ~1 kB/s would take ~30 s; cancel once 30 rows are in.
$job = submit('t_cancel', "$BASE/slow.csv?rows=2000&piece=50&delay=0.05", '{"chunk_size": 10}');
is( sql(<<SQL),
SELECT concat_ws('|', w->>'status', (w->>'rows_done')::int >= 30) FROM wait_rows($job, 30, 20) w;
SELECT clock_timestamp() AS t0 \\gset
SELECT batch_ops.cancel_job($job);
SELECT concat_ws('|', w->>'status', coalesce(w->>'error', '-'),
                 clock_timestamp() - :'t0'::timestamptz < interval '5 s')
  FROM batch_ops.wait_job($job, '10 s') w;
SELECT batch_ops.cancel_job($job);
SQL
	"running|t\nt\ncancelled|-|t\nf",
	"cancel: running with >= 30 rows done; cancel_job true; 'cancelled' within 5 s; then cancel_job false");
my $final = sql("SELECT concat_ws('|', w->'rows_done', w->'results'->'created', w->'results'->'failed') FROM batch_ops.job($job) w");
my ($n) = split /\|/, $final;
$n = 0 unless defined $n && $n =~ /^\d+$/;
is($final, "$n|$n|0", 'cancel: created = rows_done, no failures');
is(sql("SELECT concat_ws('|', $n BETWEEN 30 AND 1990, $n % 10 = 0)"),
	't|t', 'cancel: stopped early, at a chunk boundary');
is(table_rows('t_cancel'), rows_once($n), 'cancel: the committed chunks stay, each row once');

# ------------------------------------------------------------- 6. https
note('6. https with a self-signed certificate');
SKIP:
{
	skip 'openssl is not installed', 3 unless $cert_ok;
	$job = submit('t_tls', "$TLS_BASE/data.csv?rows=10&tls=job");
	# OpenSSL 3 says "self-signed certificate", 1.1 "self signed certificate"
	(my $result = job_result($job)) =~ s/self signed/self-signed/;
	is( $result,
		"failed|0|0|0|0|could not fetch \"$TLS_BASE/data.csv?rows=10&tls=job\": SSL certificate problem: self-signed certificate",
		'https: the job fails with the TLS verification error');
	is(logged('tls=job') . '|' . sql('SELECT count(*) FROM t_tls'), '0|0', 'https: nothing fetched, no rows');
	# the server itself is fine: with its certificate as CA, it answers
	is( (split /\n/, expect('fetch', "$TLS_BASE/data.csv?rows=1&tls=sanity", "$work/cert.pem"))[0],
		'id,name,qty', 'https: the mock server answers a client that trusts its certificate');
}

# ------------------------------------------------------------- 7. privileges
note('7. privileges: batch_ops_fetch and batch_ops.fetch_url_prefixes');
is( sql("SELECT concat_ws('|', rolsuper, pg_has_role('$ROLE', 'batch_ops_fetch', 'USAGE')) FROM pg_roles WHERE rolname = '$ROLE'"),
	'f|f', 'role: not a superuser, not a member of batch_ops_fetch');
is( sql_error_as($ROLE, "SELECT batch_ops.submit_import('t_priv', '$BASE/data.csv?rows=5&priv=1');"),
	'42501: permission denied to import from a URL',
	'non-member: submit_import from a URL is refused (42501)');
is(sql_as($ROLE, 'SELECT count(*) FROM batch_ops.jobs'), '0', 'non-member: nothing was queued');

sql("GRANT batch_ops_fetch TO $ROLE");
$job = sql_as($ROLE, "SELECT batch_ops.submit_import('t_priv', '$BASE/data.csv?rows=5&priv=2')");
is(job_result($job), 'completed|100|5|5|0|-', 'member: the import works');
is( sql_as($ROLE, "SELECT concat_ws('|', batch_ops.job($job)->>'submitted_by', count(*), min(status)) FROM batch_ops.jobs"),
	"$ROLE|1|completed", 'member: the job ran as the role, which sees it in batch_ops.jobs');
is(table_rows('t_priv'), rows_once(5), 'member: the rows');

# The grant is checked again when the job runs: revoked between submit
# and commit, the job fails.
sql('TRUNCATE t_priv');
$job = sql(<<SQL);
BEGIN;
SET ROLE $ROLE;
SELECT batch_ops.submit_import('t_priv', '$BASE/data.csv?rows=5&priv=3');
RESET ROLE;
REVOKE batch_ops_fetch FROM $ROLE;
COMMIT;
SQL
is(job_result($job), 'failed|0|0|0|0|permission denied to import from a URL',
	'revoked before the job ran: the job fails');
is(logged('priv=3') . '|' . sql('SELECT count(*) FROM t_priv'), '0|0', 'revoked before the job ran: nothing fetched');

# batch_ops.fetch_url_prefixes, set by a superuser for the role.
sql("GRANT batch_ops_fetch TO $ROLE");
sql("ALTER ROLE $ROLE IN DATABASE $DB SET batch_ops.fetch_url_prefixes = '$BASE/allowed/'");
is(sql_as($ROLE, 'SHOW batch_ops.fetch_url_prefixes'), "$BASE/allowed/", "prefixes: the role's setting");
is( sql_error_as($ROLE, "SET batch_ops.fetch_url_prefixes = '';"),
	'42501: permission denied to set parameter "batch_ops.fetch_url_prefixes"',
	'prefixes: the role cannot change it (42501)');
is( sql_error_as($ROLE, "SELECT batch_ops.submit_import('t_priv', '$BASE/data.csv?rows=5&priv=4');"),
	"42501: URL \"$BASE/data.csv?rows=5&priv=4\" is not allowed",
	'prefixes: a URL outside the prefix is refused (42501)');
my $other_port = $srv->{port} == 65535 ? 65534 : $srv->{port} + 1;
is( sql_error_as($ROLE,
		"SELECT batch_ops.submit_import('t_priv', 'http://127.0.0.1:$other_port/allowed/data.csv');"),
	"42501: URL \"http://127.0.0.1:$other_port/allowed/data.csv\" is not allowed",
	'prefixes: a URL of another port is refused (42501)');
$job = sql_as($ROLE, "SELECT batch_ops.submit_import('t_priv', '$BASE/allowed/data.csv?rows=5&priv=5')");
is(job_result($job), 'completed|100|5|5|0|-', 'prefixes: a URL under the prefix works');
is(table_rows('t_priv'), rows_once(5), 'prefixes: its rows');
# "../" must not lead out of the prefix: either submit_import refuses the
# URL, or what is requested stays under the prefix once dot segments are
# resolved (libcurl resolves them before sending the request; a server
# resolves them if they are sent as they are).
my $escape_url = "$BASE/allowed/../data.csv?rows=5&priv=6";
my $esc = bo_sql($node, $DB,
	"SELECT batch_ops.submit_import('t_priv', '$escape_url') AS job \\gset\nSELECT batch_ops.wait_job(:job, '30 s');",
	60, $ROLE);
note("submit_import('$escape_url'): " . ($esc->{sqlstate} ne '' ? $esc->{err} : $esc->{out}));
is( join("\n", grep { !m{^GET /allowed/} || m{/\.\.?(/|\?)} } bo_mock_requests($srv, 'priv=6')),
	'', 'prefixes: "../" does not fetch outside the prefix');

# ------------------------------------------------------------- 8. resume
note('8. resume after a restart (Range)');
# 400 rows (5.8 kB) at ~1 kB/s: ~6 s.  Once 60 rows are committed, the
# cluster is restarted (fast shutdown); the job is resumed from its
# checkpoint by the launcher at start-up.
sub resume_test
{
	my ($table, $query, $label) = @_;
	my $job = submit($table, "$BASE/slow.csv?$query", '{"chunk_size": 20}');
	is( sql("SELECT concat_ws('|', w->>'status', (w->>'rows_done')::int >= 60) FROM wait_rows($job, 60, 20) w"),
		'running|t', "$label: running with >= 60 rows done before the restart");
	$node->restart;
	is(job_result($job, 60), 'completed|100|400|400|0|-', "$label: the job completes after the restart, every row");
	is(table_rows($table), rows_once(400), "$label: every row exactly once");
	my @ranges = map { /range=bytes=(\d+)-/ ? $1 : () }
	  bo_mock_requests($srv, "GET /slow.csv?$query range=bytes=");
	is(scalar(@ranges), 1, "$label: one resumed request, with a Range header");
	my $before = expect('rows-before', 400, $ranges[0] // 0);
	$before = -1 unless $before =~ /^-?\d+$/;
	is(sql("SELECT $before >= 60 AND $before % 20 = 0"),
		't', "$label: the Range starts at a committed chunk boundary after >= 60 rows");
	return;
}
resume_test('t_resume', 'rows=400&piece=50&delay=0.05', 'resume (206)');
# A server without Range support answers 200 with the whole file: the
# importer has to skip the bytes before its checkpoint (source.c says it
# does).
resume_test('t_resume200', 'rows=400&piece=50&delay=0.05&norange=1', 'resume (server ignores Range)');

bo_mock_stop($srv);
$node->stop;
done_testing();
