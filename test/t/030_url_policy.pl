# URL prefixes (batch_ops.fetch_url_prefixes) are compared as parsed URLs,
# against real servers: a "good" mock server on 127.0.0.1 and an "evil" one
# on 127.0.0.2 with the same port, both serving /secret.csv (rows 9001-9003)
# and paths decoded and normalised as nginx does.  An attack has worked if
# the evil server logs a request, a "secret" row is imported, or the good
# server is asked for a path outside the prefix.
#
#   1. the issue's example: a prefix without a path and
#      "http://127.0.0.1:P@127.0.0.2:P/secret.csv", and other userinfo
#      spellings: refused at submit (22023), nothing fetched;
#   2. other spellings of 127.0.0.1 (decimal, hex, octal, short, upper-case
#      scheme, trailing dot) are that host, and are fetched from it; a
#      spelling of 127.0.0.2 is refused;
#   3. a prefix with a path, given per role: percent-encoded "..", "/" and
#      "\", and a name that merely starts like the prefix, are refused;
#      the secret is never fetched;
#   4. the worker applies the role's own list when the job runs (ALTER ROLE
#      ... IN DATABASE before ALTER ROLE before the server's setting): a job
#      allowed by the role's list runs although the server-wide list would
#      not allow it, and a list changed between submit and run stops it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('url_policy');
my $good = bo_mock_server('good');
my $P = $good->{port};
my $evil = bo_mock_server('evil', "$P", '127.0.0.2');
my $G = $good->{base};

$node->safe_psql('postgres', qq{
CREATE ROLE loader LOGIN;
GRANT batch_ops_fetch TO loader;
CREATE TABLE t (id int, name text, qty int);
GRANT INSERT, SELECT ON t TO loader;
ALTER SYSTEM SET batch_ops.fetch_url_prefixes = '$G';
SELECT pg_reload_conf();
});
bo_wait_until(sub {
	$node->safe_psql('postgres', 'SHOW batch_ops.fetch_url_prefixes') eq $G });

# Submit as loader; wait for the job if one was made.  Returns the error
# ("SQLSTATE: message") or "job STATUS: error".
sub attempt
{
	my ($url, $user) = @_;
	$user //= 'loader';
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT batch_ops.submit_import('t', '$url', '{\"chunk_size\": 2}')",
		extra_params => [ '-U', $user ]);
	return "$1: $2" if $err =~ /ERROR:\s+([0-9A-Z]{5}): ([^\n]*)/;
	my $status = bo_wait_job($node, $out, 'postgres', 30);
	my $error = $node->safe_psql('postgres',
		"SELECT coalesce(error, '-') FROM batch_ops.job_queue WHERE id = $out");
	return "job $status: $error";
}

sub secret_rows
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id > 9000');
}

# ---------------------------------------------------------------- 1.
my $user_msg = '22023: URL must not contain a user name or password';
for my $url (
	"http://127.0.0.1:$P\@127.0.0.2:$P/secret.csv",
	"http://127.0.0.1:$P:x\@127.0.0.2:$P/secret.csv",
	"http://127.0.0.1\@127.0.0.2:$P/secret.csv",
	"http://127.0.0.1:$P\\\@127.0.0.2:$P/secret.csv",
	"http://\@127.0.0.2:$P/secret.csv",
	"HTTP://127.0.0.1:$P\@127.0.0.2:$P/secret.csv",
	"http://loader:pw\@127.0.0.1:$P/data.csv?rows=2&userinfo=1")
{
	is(attempt($url), $user_msg, "userinfo refused: $url");
}
is(scalar(bo_mock_requests($evil)), 0, 'userinfo: the evil server was never asked');
is(scalar(bo_mock_requests($good, 'userinfo=1')), 0,
	'userinfo: not even a URL of the allowed host is fetched with credentials');
is(secret_rows(), '0', 'userinfo: no secret row');

# ---------------------------------------------------------------- 2.
my $n = 0;
for my $host ('2130706433', '0x7f.1', '0177.0.0.1', '127.1', '0x7F000001')
{
	$n++;
	is(attempt("http://$host:$P/data.csv?rows=2&spelling=$n"), 'job completed: -',
		"$host is 127.0.0.1: allowed and imported");
	is(scalar(bo_mock_requests($good, "spelling=$n ")), 1, "$host: fetched from 127.0.0.1");
}
is(attempt("HTTP://127.0.0.1:$P/data.csv?rows=2&spelling=upper"), 'job completed: -',
	'upper-case scheme: allowed');
# the same host name with a trailing dot: allowed (libcurl then cannot
# resolve the numeric name, so nothing is fetched from anywhere)
like(attempt("http://127.0.0.1.:$P/data.csv?rows=2&spelling=dot"), qr/^job (completed|failed): /,
	'trailing dot: the same host, allowed');
for my $host ('2130706434', '0x7f.2', '127.2', '127.0.0.2')
{
	is(attempt("http://$host:$P/secret.csv"),
		"42501: URL \"http://$host:$P/secret.csv\" is not allowed",
		"$host is 127.0.0.2: refused");
}
my $other = $P == 18629 ? 18628 : $P + 1;
is(attempt("http://127.0.0.1:$other/data.csv"),
	"42501: URL \"http://127.0.0.1:$other/data.csv\" is not allowed",
	'another port: refused');
is(scalar(bo_mock_requests($evil)), 0, 'spellings: the evil server was never asked');

# ---------------------------------------------------------------- 3.
# a per-role list, with a path and without a trailing slash
$node->safe_psql('postgres',
	"ALTER ROLE loader SET batch_ops.fetch_url_prefixes = '$G/allowed'");
is($node->safe_psql('postgres', 'SHOW batch_ops.fetch_url_prefixes',
		extra_params => [ '-U', 'loader' ]),
	"$G/allowed", 'the role has its own list');
my $ambiguous = 'has an ambiguous path';
for my $path (
	'/allowed/%2e%2e/secret.csv', '/allowed/%2E%2E/secret.csv',
	'/allowed/.%2e/secret.csv',   '/allowed/..%2fsecret.csv',
	'/allowed%2f..%2fsecret.csv', '/allowed/..%5csecret.csv',
	'/allowed/..\\secret.csv',    '/allowed/..;/secret.csv')
{
	like(attempt("$G$path"), qr/^22023: URL ".*" $ambiguous$/, "refused: $path");
}
for my $path ('/allowed.secret.csv', '/allowedx/data.csv', '/secret.csv',
	'/allowed/../secret.csv', '//allowed/../secret.csv', '/x/..%2f../secret.csv')
{
	like(attempt("$G$path"), qr/^(42501: URL ".*" is not allowed|22023: URL ".*" $ambiguous)$/,
		"refused: $path");
}
is(attempt("$G/allowed/data.csv?rows=3&under=1"), 'job completed: -',
	'a URL under the prefix is imported');
is(attempt("$G/allowed//./data.csv?rows=3&under=2"), 'job completed: -',
	'"//" and "." under the prefix: imported');
is(scalar(bo_mock_requests($good, 'secret')), 0, 'the good server was never asked for the secret');
is(scalar(grep { !m{^GET /allowed} && /under=/ } bo_mock_requests($good)), 0,
	'every request under /allowed');
is(secret_rows(), '0', 'no secret row');

# ---------------------------------------------------------------- 4.
# The server-wide list allows only /global; the role's lists decide.
$node->safe_psql('postgres', qq{
ALTER SYSTEM SET batch_ops.fetch_url_prefixes = '$G/global';
SELECT pg_reload_conf();
ALTER ROLE loader SET batch_ops.fetch_url_prefixes = '$G/other';
ALTER ROLE loader IN DATABASE postgres SET batch_ops.fetch_url_prefixes = '$G/allowed';
});
bo_wait_until(sub {
	$node->safe_psql('postgres', 'SHOW batch_ops.fetch_url_prefixes') eq "$G/global" });
is(attempt("$G/allowed/data.csv?rows=3&role=1"), 'job completed: -',
	'the worker applies the role-in-database list (not the server-wide one)');
is(attempt("$G/other/data.csv?rows=3&role=2"),
	"42501: URL \"$G/other/data.csv?rows=3&role=2\" is not allowed",
	'the role-in-database list comes before the role-wide one');

# changed after submit: the job is refused when it runs
my $job = $node->safe_psql('postgres', qq{
BEGIN;
SET LOCAL batch_ops.fetch_url_prefixes = '$G/allowed';
SET LOCAL ROLE loader;
SELECT batch_ops.submit_import('t', '$G/allowed/data.csv?rows=3&role=3');
RESET ROLE;
ALTER ROLE loader IN DATABASE postgres SET batch_ops.fetch_url_prefixes = '$G/elsewhere';
COMMIT;
});
is(bo_wait_job($node, $job), 'failed', 'a list changed between submit and run: the job fails');
is($node->safe_psql('postgres', "SELECT error FROM batch_ops.job_queue WHERE id = $job"),
	"URL \"$G/allowed/data.csv?rows=3&role=3\" is not allowed", '... as not allowed');
is(scalar(bo_mock_requests($good, 'role=3')), 0, '... and nothing was fetched');

# the role-in-database setting removed: the role-wide list applies
$node->safe_psql('postgres',
	'ALTER ROLE loader IN DATABASE postgres RESET batch_ops.fetch_url_prefixes');
# (the mock server has nothing under /other: allowed, then 404)
is(attempt("$G/other/data.csv?rows=3&role=4"),
	"job failed: could not fetch \"$G/other/data.csv?rows=3&role=4\": HTTP status 404",
	'without a role-in-database list, the role-wide list applies');
is(scalar(bo_mock_requests($good, 'GET /other/data.csv?rows=3&role=4 ')), 1, '... and it was fetched');
is(scalar(bo_mock_requests($evil)), 0, 'the evil server was never asked');

bo_mock_stop($good);
bo_mock_stop($evil);
$node->stop;
done_testing();
