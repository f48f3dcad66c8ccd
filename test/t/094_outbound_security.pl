# Outbound security end to end, through run_outbound / submit_outbound
# (issue #10, "Tests"; 071 covers the same policy through the test probe
# and URL imports).  Against test/fakedev, whose per-device counters count
# TCP connections, not only requests.  Asserts:
#
#   1. default settings (outbound_networks empty): nothing leaves, the
#      device sees no connection;
#   2. outbound_networks = 127.0.0.2/31: every SSRF spelling of 127.0.0.1
#      (decimal, hex, short, IPv4-mapped IPv6, "localhost", userinfo in a
#      host or a base_url) is refused at submit (42501, "is not
#      allowed") or, for a name, not_allowed at connect,
#      and no connection reaches 127.0.0.1; a 302 from an allowed device
#      to a refused address is not followed;
#   3. the postmaster's http_proxy / https_proxy / all_proxy (set when the
#      node starts) are ignored: the "proxy" never sees a request;
#   4. passwords (inline in the spec, and a credential's) reach the device
#      but not the data directory, pg_wal or the server log (with
#      log_statement = all: the test reads them server-side from a file)
#      after the job ends and a CHECKPOINT; nor job(), the jobs view,
#      job_errors, outbound_results, or NOTIFY payloads;
#   5. another role cannot use, see or learn of a credential, job or
#      result: 42704 everywhere, in the same words as for a missing one.
use strict;
use warnings;
use File::Find;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use BatchOpsTest;
use FakeDev;

my $json = JSON::PP->new->canonical;
my $work = PostgreSQL::Test::Utils::tempdir('outbound_security');
my $PW1 = 'Inl1ne-pw-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 12);
my $PW2 = 'Cr3d-pw-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 12);
for ([ 'pw1', $PW1 ], [ 'pw2', $PW2 ])
{
	open my $fh, '>', "$work/$_->[0]" or die $!;
	print $fh $_->[1];
	close $fh;
}

my $fd = fakedev_start('security', '127.0.0.1-127.0.0.3',
	{ users => { netops => $PW1, admin => $PW2 } });
my $H = $fd->{http};
my $proxy = bo_mock_server('sec_proxy');

# a device on 127.0.0.2 (allowed) that redirects to 127.0.0.1 (refused)
my $redir = IO::Socket::INET->new(LocalAddr => '127.0.0.2', LocalPort => 0,
	Proto => 'tcp', Listen => 16, ReuseAddr => 1) or die "redirector: $!";
my $R = $redir->sockport;
my $redir_pid = fork();
die "fork: $!" unless defined $redir_pid;
if ($redir_pid == 0)
{
	alarm 300;
	open my $log, '>>', "$work/redirector.log" or die $!;
	while (my $c = $redir->accept)
	{
		my $line = <$c>;
		while (my $h = <$c>) { last if $h =~ /^\r?\n$/; }
		syswrite $log, $line // "?\n";
		print $c "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:$H/redirected\r\n"
		  . "Content-Length: 0\r\nConnection: close\r\n\r\n";
		close $c;
	}
	exit 0;
}
close $redir;

# the node always starts with proxies in its environment
sub with_proxy_env
{
	my ($code) = @_;
	local $ENV{http_proxy} = $proxy->{base};
	local $ENV{HTTP_PROXY} = $proxy->{base};
	local $ENV{https_proxy} = $proxy->{base};
	local $ENV{HTTPS_PROXY} = $proxy->{base};
	local $ENV{all_proxy} = $proxy->{base};
	local $ENV{ALL_PROXY} = $proxy->{base};
	return $code->();
}
my $node = with_proxy_env(sub { bo_node('outbound_security', "batch_ops.max_workers = 2\n") });
open my $kf, '>', $node->data_dir . '/sec.key' or die $!;
print $kf join('', map { chr(int(rand(256))) } 1 .. 32);
close $kf;
chmod 0600, $node->data_dir . '/sec.key';
$node->append_conf('postgresql.conf', "batch_ops.credential_key_file = 'sec.key'\n");
with_proxy_env(sub { $node->restart });

sub conns
{
	my ($addr) = @_;
	return fakedev_control($fd, 'GET', "/stats/$addr")->{connections} // 0;
}

sub http_spec
{
	my ($host, %o) = @_;
	return {
		driver => 'http',
		devices => [ { host => $host, request => { path => $o{path} // '/x' } } ],
		connection_args => { scheme => 'http', port => $o{port} // $H, timeout => 5 },
		options => { retries => 0 } };
}

# run_outbound(SPEC) as the superuser: { sqlstate, err, r (the answer) }
sub run
{
	my ($spec, $user) = @_;
	my $q = bo_sql($node, 'postgres',
		"SELECT batch_ops.run_outbound('" . $json->encode($spec) . "')", 60, $user);
	$q->{r} = eval { $json->decode($q->{out}) } if $q->{sqlstate} eq '';
	return $q;
}

sub refused
{
	my ($q) = @_;
	return $q->{sqlstate} if $q->{sqlstate} ne '';
	return $q->{r}{results}[0]{error} // 'ok';
}

# ------------------------------------------------------------ 1. defaults
fakedev_control($fd, 'POST', '/reset');
my $q = run(http_spec('127.0.0.1'));
like(refused($q), qr/^(not_allowed|42501)$/, 'default settings: run_outbound refused (' . refused($q) . ')')
  or diag explain $q;
$q = bo_sql($node, 'postgres',
	"SELECT batch_ops.submit_outbound('" . $json->encode(http_spec('127.0.0.1')) . "')");
if ($q->{sqlstate} eq '')
{
	(my $id = $q->{out}) =~ s/\s+//g;
	bo_wait_job($node, $id);
	is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT error, ',') FROM batch_ops.outbound_results($id)"),
		'not_allowed', 'default settings: submit_outbound: the target is not_allowed');
}
else
{
	pass("default settings: submit_outbound refused ($q->{sqlstate})");
}
is(conns('127.0.0.1'), 0, 'default settings: the device saw no connection');

# ---------------------------------------------------------- 2. SSRF spellings
$node->safe_psql('postgres', "ALTER SYSTEM SET batch_ops.outbound_networks = '127.0.0.2/31'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
sleep 1;
fakedev_control($fd, 'POST', '/reset');
ok(run(http_spec('127.0.0.2'))->{r}{results}[0]{success}, 'an allowed address is reached');
is(conns('127.0.0.2'), 1, '... over one connection (the counter counts)');
for my $host ('127.0.0.1', '2130706433', '0x7f.1', '0x7f000001', '127.1', '017700000001',
	'::ffff:127.0.0.1', '[::ffff:127.0.0.1]', 'localhost', 'user@127.0.0.1',
	'127.0.0.2@127.0.0.1', 'u:p@127.0.0.1')
{
	$q = run(http_spec($host));
	like(refused($q), qr/^(not_allowed|42501)$/, "host \"$host\": refused (" . refused($q) . ')')
	  or diag explain $q;
	like($q->{err}, qr/is not allowed/, "host \"$host\": ... as not allowed") if $q->{sqlstate} ne '';
}
$q = run({
	driver => 'meraki',
	actions => [ { resource => '/organizations/o1/networks', operation => 'create', body => { name => 'n' } } ],
	connection_args => { base_url => "http://u:p\@127.0.0.1:$H/api/v1" },
	options => { organization_id => 'o1', retries => 0 } });
like(refused($q), qr/^(not_allowed|42501)$/, 'userinfo in a base_url: refused (' . refused($q) . ')')
  or diag explain $q;
$q = run({
	driver => 'meraki',
	actions => [ { resource => '/organizations/o1/networks', operation => 'create', body => { name => 'n' } } ],
	connection_args => { base_url => "http://2130706433:$H/api/v1" },
	options => { organization_id => 'o1', retries => 0 } });
like(refused($q), qr/^(not_allowed|42501)$/, 'decimal address in a base_url: refused (' . refused($q) . ')')
  or diag explain $q;

# a redirect from an allowed device to a refused one
$q = run(http_spec('127.0.0.2', port => $R, path => '/r'));
is($q->{r}{results}[0]{success} ? 'followed' : ($q->{r}{results}[0]{error} // $q->{sqlstate}),
	'http_error', 'a 302 is answered as such (http_error), not followed') or diag explain $q;
ok(-s "$work/redirector.log", '... the redirecting device was asked');
is(conns('127.0.0.1'), 0, 'no connection reached 127.0.0.1 under any spelling, nor by the redirect');

# userinfo in front of an allowed address: still no user name in a URL
my $before = conns('127.0.0.2');
for my $host ('user@127.0.0.2', 'u:p@127.0.0.2', '127.0.0.1@127.0.0.2')
{
	$q = run(http_spec($host));
	isnt(refused($q), 'ok', "host \"$host\": not sent (" . refused($q) . ')') or diag explain $q;
}
is(conns('127.0.0.2') - $before, 0, '... and 127.0.0.2 saw no connection for them');

# ----------------------------------------------------------- 4. passwords
$node->safe_psql('postgres', <<'SQL');
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT batch_ops_outbound TO alice, bob;
GRANT pg_read_server_files TO alice;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_file(text) TO alice;
SQL
sub as
{
	my ($user, $sql) = @_;
	my $q = bo_sql($node, 'postgres', $sql, 60, $user);
	die "as $user: $q->{err}" if $q->{sqlstate} ne '';
	(my $out = $q->{out}) =~ s/\s+$//;
	return $out;
}
as('alice', "SELECT batch_ops.credential_set('alice_c', replace('{\"username\": \"admin\", \"password\": \"\@PW\@\"}',"
	  . " '\@PW\@', pg_read_file('$work/pw2'))::jsonb)");

my @listeners = map { my $s = $node->background_psql('postgres', extra_params => [ '-U', $_ ]);
	$s->query_safe('LISTEN batch_ops_jobs'); $s } ('alice', 'bob');

# device 1: inline password; 2: the credential; 3: the credential, 401
fakedev_control($fd, 'POST', '/reset');
fakedev_control($fd, 'PUT', '/faults/127.0.0.3', { status => 401 });
my $spec = $json->encode({
	driver => 'eapi',
	devices => [
		{ host => '127.0.0.2', connection_args => { username => 'netops', password => '@PW@' } },
		{ host => '127.0.0.2', connection_args => { credential => 'alice_c' } },
		{ host => '127.0.0.3', connection_args => { credential => 'alice_c' } } ],
	connection_args => { scheme => 'http', port => $H, timeout => 5 },
	command => ['show version'],
	options => { retries => 0 } });
my $inline = "replace('$spec', '\@PW\@', pg_read_file('$work/pw1'))::jsonb";
my $id = as('alice', "SELECT batch_ops.submit_outbound($inline)");
is(bo_wait_job($node, $id), 'completed', 'the job with passwords completed');
is(as('alice', "SELECT string_agg(coalesce(error, 'ok'), ',' ORDER BY index) FROM batch_ops.outbound_results($id)"),
	'ok,ok,auth_error', 'the inline password and the credential reached the device');
my $sync = as('alice', "SELECT batch_ops.run_outbound($inline)");
like($sync, qr/"successful": 2/, 'run_outbound with the same passwords: two answered');

my @secrets = ($PW1, $PW2, encode_base64("netops:$PW1", ''), encode_base64("admin:$PW2", ''));
sub leaks
{
	my ($text) = @_;
	return join(',', grep { index($text, $_) >= 0 } @secrets);
}
my $shown = join("\n",
	as('alice', "SELECT batch_ops.job($id)"),
	as('alice', "SELECT batch_ops.wait_job($id)"),
	as('alice', "SELECT row_to_json(j) FROM batch_ops.jobs j"),
	as('alice', "SELECT json_agg(e) FROM batch_ops.job_errors($id) e"),
	as('alice', "SELECT json_agg(r) FROM batch_ops.outbound_results($id) r"),
	as('alice', "SELECT json_agg(c) FROM batch_ops.credentials c"),
	$node->safe_psql('postgres', "SELECT json_agg(q) FROM batch_ops.job_queue q"),
	$sync);
like($shown, qr/alice_c/, 'what alice is shown names the credential');
is(leaks($shown), '', 'job(), wait_job(), jobs, job_errors, outbound_results, credentials, job_queue: no password');

my @payloads;
for my $s (@listeners)
{
	bo_wait_until(sub {
		my ($out) = $s->query('SELECT 1');
		my @p = $out =~ /^Asynchronous notification "batch_ops_jobs" with payload "(.*)" received/mg;
		push @payloads, @p;
		return grep { /"job_id": $id\b.*completed/ } @p; }, 10);
	$s->quit;
}
ok((grep { /"job_id": $id\b/ } @payloads), 'NOTIFY payloads about the job were received');
is(leaks(join("\n", @payloads)), '', 'NOTIFY payloads: no password');

# grep the data directory (pg_wal included) and the server log
$node->safe_psql('postgres', 'CHECKPOINT');
my %found;
my $files = 0;
find({ no_chdir => 1, wanted => sub {
	return unless -f $_;
	open my $fh, '<:raw', $_ or return;
	local $/;
	my $data = <$fh>;
	close $fh;
	$files++;
	for my $s (@secrets) { $found{$File::Find::name} = 1 if index($data, $s) >= 0; }
} }, $node->data_dir, $node->logfile);
cmp_ok($files, '>', 100, "grep read the data directory ($files files)");
ok(-d $node->data_dir . '/pg_wal', '... which holds pg_wal');
like(slurp_file($node->logfile), qr/pg_read_file/, '... and the server log (log_statement = all)');
is(join(',', sort keys %found), '', 'no password in the data directory, pg_wal or the server log');

# -------------------------------------------------------- 5. another role
sub err_as
{
	my ($user, $sql) = @_;
	return bo_sql_error($node, $sql, $user);
}
my $missing = 999999;
for my $f ('job', 'wait_job', 'cancel_job')
{
	my $e = err_as('bob', "SELECT batch_ops.$f($id)");
	my $m = err_as('bob', "SELECT batch_ops.$f($missing)");
	like($e, qr/^42704: /, "bob: $f(alice's job) is 42704");
	(my $e2 = $e) =~ s/\b$id\b/N/g;
	(my $m2 = $m) =~ s/\b$missing\b/N/g;
	is($e2, $m2, "bob: $f(alice's job) says what it says for a missing job");
}
for my $f ('job_errors', 'outbound_results')
{
	my $e = err_as('bob', "SELECT * FROM batch_ops.$f($id)");
	my $m = err_as('bob', "SELECT * FROM batch_ops.$f($missing)");
	like($e, qr/^42704: /, "bob: $f(alice's job) is 42704");
	(my $e2 = $e) =~ s/\b$id\b/N/g;
	(my $m2 = $m) =~ s/\b$missing\b/N/g;
	is($e2, $m2, "bob: $f(alice's job) says what it says for a missing job");
}
is(as('bob', "SELECT count(*) FROM batch_ops.jobs WHERE job_id = $id"), '0', 'bob: the jobs view does not list it');
is(as('bob', "SELECT count(*) FROM batch_ops.credentials"), '0', 'bob: the credentials view lists nothing');
like(err_as('bob', 'SELECT * FROM batch_ops.outbound_result'), qr/^42501: /, 'bob: the result table is not readable');
for my $sql ("SELECT batch_ops.credential_drop('%s')", "SELECT batch_ops.credential_grant('%s', 'bob')",
	"SELECT batch_ops.credential_revoke('%s', 'bob')",
	"SELECT batch_ops.credential_set('%s', '{\"username\": \"x\", \"password\": \"y\"}')",
	"SELECT batch_ops.run_outbound('" . $json->encode({ driver => 'eapi', devices => [ { host => '127.0.0.2' } ],
			connection_args => { scheme => 'http', port => $H, credential => '%s' }, command => ['show version'] }) . "')",
	"SELECT batch_ops.submit_outbound('" . $json->encode({ driver => 'eapi', devices => [ { host => '127.0.0.2' } ],
			connection_args => { scheme => 'http', port => $H, credential => '%s' }, command => ['show version'] }) . "')")
{
	my $e = err_as('bob', sprintf($sql, 'alice_c'));
	my $m = err_as('bob', sprintf($sql, 'nosuch_c'));
	my ($what) = $sql =~ /batch_ops\.(\w+)/;
	if ($what eq 'credential_set')
	{
		# bob may make his own credential of that name: not alice's
		is($e, '', 'bob: credential_set of the same name makes his own');
		is(as('alice', "SELECT count(*) FROM batch_ops.credentials WHERE name = 'alice_c' AND owner = 'alice'"),
			'1', "... and alice's is untouched");
		as('bob', "SELECT batch_ops.credential_drop('alice_c'); SELECT batch_ops.credential_drop('nosuch_c')");
		next;
	}
	like($e, qr/^42704: /, "bob: $what with alice's credential is 42704");
	(my $e2 = $e) =~ s/alice_c/N/g;
	(my $m2 = $m) =~ s/nosuch_c/N/g;
	is($e2, $m2, "bob: $what says what it says for a missing credential");
}
is(fakedev_control($fd, 'GET', '/stats/127.0.0.2')->{requests}, 4,
	"bob's attempts sent nothing (the 4 requests are alice's)");
is(as('alice', "SELECT count(*) FROM batch_ops.outbound_results($id)"), '3', "alice's results are still hers");

# ------------------------------------------------------------- 3. proxies
is(scalar(bo_mock_requests($proxy)), 0, "the postmaster's http_proxy/https_proxy/all_proxy were never used");

kill 'KILL', $redir_pid;
waitpid($redir_pid, 0);
fakedev_stop($fd);
bo_mock_stop($proxy);
$node->stop;
done_testing();
