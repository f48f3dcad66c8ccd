# The outbound policy (issue #10): batch_ops.outbound_networks and its
# open-socket check, the role batch_ops_outbound, the proxy and TLS
# settings -- through the test module's outbound_fetch(url, check_url),
# which GETs a URL in the backend with a libcurl handle set up by
# outbound_policy_apply() (check_url false skips the URL check, to reach
# the connect-time check), and through URL imports, which get the same
# connect-time check whenever outbound_networks is set.
#
# SSRF spellings: decimal (2130706433) and hex (0x7f.1) IPv4, IPv4-mapped
# IPv6 ([::ffff:127.0.0.1]), a name that resolves to a refused address
# (localhost with only 127.0.0.2/32 listed), userinfo, redirects (not
# followed), other schemes, and the postmaster's http_proxy (ignored).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $work = PostgreSQL::Test::Utils::tempdir('outbound');
my $tls = bo_tls_cert($work);
my $cert_ok = defined $tls;
my $srv = bo_mock_server('outbound', undef, undef, $tls);
my $P = $srv->{port};
my $B = $srv->{base};
# a second server that plays the proxy: it must see requests only when
# batch_ops.outbound_proxy names it
my $proxy = bo_mock_server('proxy');

# the postmaster starts with http_proxy/https_proxy/all_proxy pointing at
# the "proxy": libcurl would use them if the policy did not say no proxy
my $node;
{
	local $ENV{http_proxy} = $proxy->{base};
	local $ENV{HTTP_PROXY} = $proxy->{base};
	local $ENV{https_proxy} = $proxy->{base};
	local $ENV{all_proxy} = $proxy->{base};
	$node = bo_node('outbound');
}
sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }

my ($rc) = $node->psql('postgres',
	"CREATE FUNCTION outbound_fetch(text, bool) RETURNS text"
	  . " AS 'batch_ops', 'batch_ops_test_outbound_fetch' LANGUAGE C STRICT;"
	  . "CREATE FUNCTION outbound_sender(regrole) RETURNS bool"
	  . " AS 'batch_ops', 'batch_ops_test_outbound_sender' LANGUAGE C STRICT;");
plan skip_all => 'batch_ops was built without TEST_MODULES=1 (no probe)'
  if $rc != 0;

# fetch(NETWORKS, URL, [CHECK_URL]) under a session setting
sub fetch
{
	my ($networks, $url, $check, $extra) = @_;
	$check //= 'true';
	$extra //= '';
	return sq("SET batch_ops.outbound_networks = '$networks'; $extra"
		  . " SELECT outbound_fetch('$url', $check)");
}

# ------------------------------------------------------------ the default
like(fetch('', "$B/data.csv?rows=1"), qr/^refused: batch_ops.outbound_networks is empty/,
	'default: nothing is allowed (URL check)');
is(fetch('', "$B/data.csv?rows=1", 'false'), 'blocked 127.0.0.1',
	'default: nothing is allowed (connect)');
is(sq("SELECT outbound_fetch('$B/data.csv?rows=1', false)"), 'blocked 127.0.0.1',
	'default of the server: the same');

# -------------------------------------------------------------- allowed
is(fetch('127.0.0.1/32', "$B/data.csv?rows=1"), 'status 200', 'a listed address: sent');
is(fetch('127.0.0.0/8', "$B/data.csv?rows=1"), 'status 200', 'a listed loopback block: sent');
is(fetch('10.0.0.0/8, 127.0.0.1', "$B/data.csv?rows=1"), 'status 200', 'a list, bare address');
is(fetch('127.0.0.0/8', "http://localhost:$P/data.csv?rows=1"), 'status 200',
	'a name that resolves into a listed block: sent');

# ------------------------------------------------- refused, and SSRF forms
like(fetch('127.0.0.2/32', "$B/data.csv"), qr/^refused: host "127.0.0.1" is not in/,
	'an address outside the blocks: refused by the URL check');
is(fetch('127.0.0.2/32', "$B/data.csv", 'false'), 'blocked 127.0.0.1',
	'... and at connect');
for my $spelling ('2130706433', '0x7f.1', '0x7f000001', '127.1', '017700000001')
{
	like(fetch('127.0.0.2/32', "http://$spelling:$P/data.csv"),
		qr/^refused: host "127.0.0.1" is not in/,
		"$spelling is 127.0.0.1 to the URL check");
	is(fetch('127.0.0.2/32', "http://$spelling:$P/data.csv", 'false'),
		'blocked 127.0.0.1', "$spelling is 127.0.0.1 at connect");
}
like(fetch('127.0.0.2/32', "http://[::ffff:127.0.0.1]:$P/data.csv"),
	qr/^refused: host "::ffff:(127\.0\.0\.1|7f00:1)" is not in/, 'IPv4-mapped IPv6: refused by the URL check');
like(fetch('127.0.0.2/32', "http://[::ffff:127.0.0.1]:$P/data.csv", 'false'),
	qr/^blocked ::ffff:127\.0\.0\.1$/, '... and at connect');
is(fetch('127.0.0.1/32', "http://[::ffff:127.0.0.1]:$P/data.csv?rows=1", 'true'),
	'status 200', 'IPv4-mapped IPv6 of a listed address: judged as IPv4, sent');
like(fetch('127.0.0.2/32', "http://localhost:$P/data.csv"),
	qr/^blocked (127\.0\.0\.1|::1)$/,
	'a name (localhost) that resolves to a refused address: blocked at connect');
like(fetch('10.0.0.0/8', "http://[::1]:$P/data.csv", 'false'), qr/^blocked ::1$/,
	'::1 outside the blocks: blocked');

# loopback only when listed explicitly
like(fetch('0.0.0.0/0', "$B/data.csv"), qr/^refused: host "127.0.0.1"/,
	'0.0.0.0/0 does not list loopback (URL check)');
is(fetch('0.0.0.0/0', "$B/data.csv", 'false'), 'blocked 127.0.0.1',
	'... nor at connect');
like(fetch('localhost', "http://localhost:$P/data.csv", 'true'), qr/^blocked (127\.0\.0\.1|::1)$/,
	'a listed name that resolves to loopback: blocked (loopback needs a block)');
like(fetch('0.0.0.0/0', "http://0.0.0.0:$P/data.csv", 'false'), qr/^blocked 0\.0\.0\.0$/,
	'0.0.0.0 (which reaches this host) is not under 0.0.0.0/0 either');
like(fetch('0.0.0.0/0', 'http://169.254.169.254/latest/meta-data/', 'false'),
	qr/^blocked 169\.254\.169\.254$/, 'link-local (cloud metadata): blocked');

# nothing so far went through the proxy of the postmaster's environment
is(scalar(bo_mock_requests($proxy, 'GET')), 0,
	"the postmaster's http_proxy/https_proxy/all_proxy were not used");

# names and wildcards
like(fetch('*.example.com', "$B/data.csv"), qr/^refused: host "127.0.0.1"/,
	'names only: an address is refused');
like(fetch('*.example.com', "http://localhost:$P/data.csv"), qr/^refused: host "localhost"/,
	'names only: an unlisted name is refused');
# through the proxy (the socket is the proxy's), so no name is resolved
like(fetch('*.example.com', 'http://api.Example.COM./x?wild=1', 'true',
		"SET batch_ops.outbound_proxy = '$proxy->{base}';"),
	qr/^status \d+$/,
	'a name under a wildcard passes (compared lower case, without the trailing dot)');
ok(scalar(bo_mock_requests($proxy, 'wild=1')) >= 1, '... and was sent (to the proxy)');
like(fetch('*.example.com', 'http://example.com/x'), qr/^refused: host "example.com"/,
	'"*.example.com" does not list example.com itself');

# not http(s), userinfo, redirects
like(fetch('127.0.0.1/32', "http://user:pw\@127.0.0.1:$P/data.csv"),
	qr/^refused: a URL must not contain a user name or password/, 'userinfo: refused');
like(fetch('127.0.0.1/32', "http://\@127.0.0.1:$P/data.csv"),
	qr/^refused: a URL must not contain a user name or password/, 'empty userinfo: refused');
like(fetch('127.0.0.1/32', "ftp://127.0.0.1:$P/x"), qr/^refused: only http and https/,
	'ftp: refused by the URL check');
like(fetch('127.0.0.1/32', "ftp://127.0.0.1:$P/x", 'false'), qr/^error: .*(ftp|FTP|not supported|disabled)/i,
	'ftp: refused by libcurl too (CURLOPT_PROTOCOLS_STR)');
like(fetch('127.0.0.1/32', 'file:///etc/passwd', 'false'), qr/^error: /,
	'file: refused by libcurl');
like(fetch('127.0.0.1/32', 'gopher://127.0.0.1/', 'false'), qr/^error: /,
	'gopher: refused by libcurl');
is(fetch('127.0.0.1/32', "$B/redirect.csv?r=1"), 'status 302', 'a redirect is not followed');
is(scalar(bo_mock_requests($srv, 'from=redirect')), 0, '... its target was never requested');

# ----------------------------------------------------------------- proxy
is(fetch('127.0.0.1/32', "$B/data.csv?rows=1&via=proxy", 'true',
		"SET batch_ops.outbound_proxy = '$proxy->{base}';"),
	'status 200', 'batch_ops.outbound_proxy: sent through it');
ok(scalar(bo_mock_requests($proxy, 'via=proxy')) >= 1, '... the proxy got the request');

# ------------------------------------------------------------------ TLS
SKIP:
{
	skip 'openssl is not installed', 3 unless $cert_ok;
	my $T = $srv->{tls_base};
	like(fetch('127.0.0.1/32', "$T/data.csv?rows=1"), qr/^error: SSL certificate problem/,
		'TLS: a self-signed certificate is refused');
	is(fetch('127.0.0.1/32', "$T/data.csv?rows=1", 'true',
			"SET batch_ops.outbound_tls_insecure_hosts = 'localhost, 127.0.0.1';"),
		'status 200', 'TLS: ... unless outbound_tls_insecure_hosts lists the host');
	like(fetch('127.0.0.1/32', "$T/data.csv?rows=1", 'true',
			"SET batch_ops.outbound_tls_insecure_hosts = '127.0.0.2';"),
		qr/^error: SSL certificate problem/, 'TLS: another host listed: still verified');
}

# ------------------------------------------------------------- settings
sq('CREATE ROLE plain; CREATE ROLE sender; GRANT batch_ops_outbound TO sender');
for my $s ('outbound_networks', 'outbound_proxy', 'outbound_tls_insecure_hosts')
{
	my $r = bo_sql($node, 'postgres', "SET ROLE plain; SET batch_ops.$s = '0.0.0.0/0'");
	is($r->{sqlstate}, '42501', "batch_ops.$s: only superusers set it");
}
for my $bad ('10.0.0.0/33', 'http://x', '127.1', '*', '10.0.0.0/', 'a b/c', '::1/129',
	'0x7f.1', 'user@host')
{
	my $r = bo_sql($node, 'postgres', "SET batch_ops.outbound_networks = '$bad'");
	is($r->{sqlstate}, '22023', "outbound_networks '$bad' is rejected");
}
like(bo_sql($node, 'postgres', "SET batch_ops.outbound_networks = '10.0.0.0/8, bad/x'")->{err},
	qr/"bad\/x" is not a CIDR block, an IP address, a host name or a "\*\.suffix" wildcard/,
	'... saying which entry');
is(bo_sql($node, 'postgres',
		"SET batch_ops.outbound_networks = '10.1.2.3/8, 2001:db8::/32, [::1], a-b.example, *.lab.example'")->{err},
	'', 'good entries are accepted');

# ---------------------------------------------------------------- senders
is(sq("SELECT outbound_sender('sender')"), 't', 'a member of batch_ops_outbound may send');
is(sq("SELECT outbound_sender('postgres')"), 't', 'a superuser may send');
my $r = bo_sql($node, 'postgres', "SELECT outbound_sender('plain')");
is($r->{sqlstate}, '42501', 'anyone else: 42501');
like($r->{err}, qr/HINT:.*GRANT batch_ops_outbound TO plain/s, '... with a hint');

# ------------------------------------------------- the role, as batch_ops_fetch
is(sq(q{SELECT rolcanlogin FROM pg_roles WHERE rolname = 'batch_ops_outbound'}),
	'f', 'CREATE EXTENSION made batch_ops_outbound, NOLOGIN');
sq('CREATE DATABASE second');
$node->safe_psql('second', 'CREATE EXTENSION batch_ops');
is(sq(q{SELECT count(*) FROM pg_roles WHERE rolname = 'batch_ops_outbound'}),
	'1', 'a second database reuses it');
$node->safe_psql('second', 'DROP EXTENSION batch_ops');
sq('ALTER ROLE batch_ops_outbound LOGIN');
$r = bo_sql($node, 'second', 'CREATE EXTENSION batch_ops');
is($r->{sqlstate}, '42710', 'a batch_ops_outbound with LOGIN is not adopted');
like($r->{err}, qr/role "batch_ops_outbound" already exists with attributes/, '... and says so');
sq('ALTER ROLE batch_ops_outbound NOLOGIN');
$node->safe_psql('second', 'CREATE EXTENSION batch_ops');

# ------------------------------------------------------------- URL imports
sq('CREATE TABLE t (id int PRIMARY KEY, name text, qty int)');
sub import_result
{
	my ($url) = @_;
	my $job = sq("SELECT batch_ops.submit_import('t', '$url')");
	bo_wait_job($node, $job);
	return sq("SELECT status || '|' || coalesce(error, '-') FROM batch_ops.jobs WHERE job_id = $job");
}
is(import_result("http://localhost:$P/data.csv?rows=3&imp=1"), 'completed|-',
	'imports: outbound_networks unset, no connect-time check (as before)');
sq("ALTER SYSTEM SET batch_ops.outbound_networks = '127.0.0.2/32'");
sq('SELECT pg_reload_conf()');
sleep 1;
like(import_result("http://localhost:$P/data.csv?rows=3&imp=2"),
	qr/^failed\|could not fetch "[^"]+": address (127\.0\.0\.1|::1) is not allowed/,
	'imports: set, a name resolving outside it is refused at connect');
like(import_result("http://2130706433:$P/data.csv?rows=3&imp=3"),
	qr/^failed\|could not fetch "[^"]+": address 127\.0\.0\.1 is not allowed/,
	'imports: and a numeric spelling');
is(scalar(bo_mock_requests($srv, 'imp=2')) + scalar(bo_mock_requests($srv, 'imp=3')), 0,
	'imports: no request reached the server');
sq("ALTER SYSTEM SET batch_ops.outbound_networks = '127.0.0.0/8'");
sq('SELECT pg_reload_conf()');
sleep 1;
sq('TRUNCATE t');
is(import_result("http://localhost:$P/data.csv?rows=3&imp=4"), 'completed|-',
	'imports: a listed block lets it through');

bo_mock_stop($srv);
bo_mock_stop($proxy);
$node->stop;
done_testing();
