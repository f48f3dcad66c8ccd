# BatchOpsTest — helpers shared by the cluster-level TAP tests (test/t/*.pl).
#
# Every test file starts its own throwaway cluster with PostgreSQL's own
# PostgreSQL::Test::Cluster (shipped with PGXS), preloads batch_ops and
# creates the extension in the database "postgres".  scripts/test.sh runs
# the files with prove as the cluster owner (postgres when started as root),
# with the PostgreSQL 15 programs first in PATH.
package BatchOpsTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(bo_node bo_wait_job bo_wait_until bo_scratch
  bo_mock_server bo_mock_stop bo_mock_requests bo_sql_error
  bo_sql bo_psql_start bo_psql_finish bo_gate_hold bo_gate_release
  bo_gate_wait_blocked bo_job_status bo_q bo_wait_sql bo_diff_sql
  bo_create_spin bo_write_file bo_job_internal bo_kill9_and_check
  bo_wait_crash_restart bo_log_lines bo_tls_cert bo_credential_key);

# bo_node(NAME, EXTRA_CONF, [OPTS]) — a started cluster with batch_ops
# preloaded and the extension created in "postgres".  EXTRA_CONF is
# appended to postgresql.conf (after the defaults, so it can override
# them).  OPTS: { create_extension => 0 } leaves the extension out.
sub bo_node
{
	my ($name, $extra, $opts) = @_;
	$opts //= {};
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', <<'CONF');
shared_preload_libraries = 'batch_ops'
max_worker_processes = 32
lc_messages = 'C'
timezone = 'UTC'
log_min_messages = warning
fsync = off
synchronous_commit = on
CONF
	$node->append_conf('postgresql.conf', $extra) if defined $extra;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION batch_ops')
	  if $opts->{create_extension} // 1;
	return $node;
}

# bo_wait_job(NODE, JOB_ID, [DB], [TIMEOUT_S]) — wait until the job has
# finished; returns its status (read from the view batch_ops.jobs, which
# lists every job to the superuser the tests connect as).
sub bo_wait_job
{
	my ($node, $id, $db, $timeout) = @_;
	$db //= 'postgres';
	$timeout //= 60;
	my $status = '';
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		$status = $node->safe_psql($db,
			"SELECT status FROM batch_ops.jobs WHERE job_id = $id");
		return $status
		  if $status =~ /^(completed|failed|cancelled)$/;
		usleep(50_000);
	}
	return $status;
}

# bo_wait_until(CODE, [TIMEOUT_S]) — poll CODE until it returns true.
sub bo_wait_until
{
	my ($code, $timeout) = @_;
	$timeout //= 30;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		return 1 if $code->();
		usleep(50_000);
	}
	return 0;
}

# bo_scratch(NODE) — a directory the server can read, for server-side files.
sub bo_scratch
{
	my ($node) = @_;
	my $dir = $node->basedir . '/scratch';
	mkdir $dir unless -d $dir;
	return $dir;
}

# bo_mock_server(NAME, [PORTS], [HOST], [TLS]) — start
# test/http/mock_server.py on the first free port of PORTS ("a-b", or one
# port), or on a free port the kernel picks when PORTS is undef or "0"
# (what new tests should do: several test runs share this machine), bound
# to HOST (a loopback address, 127.0.0.1 by default); returns { port, host,
# base => "http://HOST:PORT", log => its request log, harness }.  TLS, a
# hash ref { cert, key } of PEM files, also serves HTTPS on a second port:
# tls_port, tls_base.  It exits by itself after 300 s (TLS->{lifetime}).
sub bo_mock_server
{
	my ($name, $ports, $host, $tls) = @_;
	$ports //= '0';
	$host //= '127.0.0.1';
	my @tls = $tls ? ('--cert', $tls->{cert}, '--key', $tls->{key}) : ();
	my $lifetime = ($tls && $tls->{lifetime}) ? $tls->{lifetime} : 300;
	my $dir = PostgreSQL::Test::Utils::tempdir("mock_$name");
	my $script = dirname(__FILE__) . '/../http/mock_server.py';
	my %srv = (host => $host, log => "$dir/requests.log");
	open(my $fh, '>', $srv{log}) or die "$srv{log}: $!";
	close($fh);
	$srv{harness} = IPC::Run::start(
		[
			'python3', $script, '--host', $host, '--ports', $ports,
			'--ready', "$dir/ready", '--log', $srv{log},
			'--lifetime', $lifetime, @tls
		],
		'>', "$dir/out", '2>&1');
	bo_wait_until(sub { -s "$dir/ready" }, 10)
	  or die "mock server $name did not start: " . slurp_file("$dir/out");
	($srv{port}, $srv{tls_port}) = split(' ', slurp_file("$dir/ready"));
	$srv{base} = "http://$host:$srv{port}";
	$srv{tls_base} = "https://$host:$srv{tls_port}" if $srv{tls_port};
	return \%srv;
}

# bo_mock_stop(SERVER) — stop a server of bo_mock_server.
sub bo_mock_stop
{
	my ($srv) = @_;
	$srv->{harness}->kill_kill if $srv->{harness};
	delete $srv->{harness};
	return;
}

# bo_mock_requests(SERVER, [SUBSTRING]) — the request log lines (that
# contain SUBSTRING), one "METHOD PATH range=..." per request.
sub bo_mock_requests
{
	my ($srv, $substr) = @_;
	my @lines = split(/\n/, slurp_file($srv->{log}));
	return grep { !defined $substr || index($_, $substr) >= 0 } @lines;
}

# bo_sql_error(NODE, SQL, [USER], [DB]) — "SQLSTATE: message" of the first
# error SQL raises (run as USER), or "" if it raises none.
sub bo_sql_error
{
	my ($node, $sql, $user, $db) = @_;
	my @extra = defined $user ? ('-U', $user) : ();
	my ($ret, $out, $err) = $node->psql(
		$db // 'postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => \@extra);
	return $err =~ /^(?:psql:[^\n]*?)?ERROR:\s+([0-9A-Z]{5}): ([^\n]*)/m ? "$1: $2" : '';
}

# bo_sql(NODE, DB, SQL, [TIMEOUT_S], [USER]) — run SQL (psql, stop at the
# first error, VERBOSITY verbose), connected as USER (default: the
# bootstrap superuser), without dying; returns a hash ref: out, err,
# sqlstate (of the first ERROR, '' when none), timed_out.  For asserting
# an outcome by SQLSTATE rather than by an error text.
sub bo_sql
{
	my ($node, $db, $sql, $timeout, $user) = @_;
	my ($out, $err, $timed_out) = ('', '', 0);
	$node->psql(
		$db, "\\set VERBOSITY verbose\n$sql",
		stdout => \$out,
		stderr => \$err,
		timeout => $timeout // 60,
		timed_out => \$timed_out,
		extra_params => defined $user ? [ '-U', $user ] : []);
	my $state = $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
	return { out => $out, err => $err, sqlstate => $state,
		timed_out => $timed_out };
}

# bo_psql_start(NODE, DB, SQL, [APPNAME]) — start psql -c SQL in the
# background (VERBOSITY verbose; SQL is sent as one query string, so
# several statements run in one transaction) and return a handle for
# bo_psql_finish.  APPNAME sets application_name, so that the session can
# be found in pg_stat_activity.
sub bo_psql_start
{
	my ($node, $db, $sql, $appname) = @_;
	my $h = { out => '', err => '' };
	my $connstr = $node->connstr($db);
	$connstr .= " application_name=$appname" if defined $appname;
	$h->{run} = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq',
			'-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
			'-d', $connstr, '-c', $sql
		],
		'<', \undef, '>', \$h->{out}, '2>', \$h->{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return $h;
}

# bo_psql_finish(HANDLE) — wait for a bo_psql_start psql to end; returns
# the same hash ref as bo_sql.
sub bo_psql_finish
{
	my ($h) = @_;
	eval { $h->{run}->finish; };
	$h->{timed_out} = $@ ? 1 : 0;
	$h->{run}->kill_kill if $@;
	$h->{sqlstate} = $h->{err} =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
	return $h;
}

# bo_gate_hold(NODE, DB, KEY) — a background session that holds the
# session-level advisory lock KEY.  A trigger that runs
# pg_advisory_xact_lock_shared(KEY) waits at the gate until
# bo_gate_release; bo_gate_wait_blocked waits until someone does.
sub bo_gate_hold
{
	my ($node, $db, $key) = @_;
	my $bg = $node->background_psql($db);
	$bg->query_safe("SELECT pg_catalog.pg_advisory_lock($key)");
	return $bg;
}

sub bo_gate_release
{
	my ($bg) = @_;
	$bg->quit;
}

sub bo_gate_wait_blocked
{
	my ($node, $db, $key, $timeout) = @_;
	return bo_wait_until(
		sub {
			$node->safe_psql($db,
				"SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks"
				  . " WHERE locktype OPERATOR(pg_catalog.=) 'advisory'"
				  . " AND objid OPERATOR(pg_catalog.=) $key AND NOT granted")
			  > 0;
		},
		$timeout);
}

# bo_job_status(NODE, DB, JOB_ID) — the job's status as its table says
# ('' when it cannot be read, e.g. the extension is gone), read with a
# pinned search_path so that objects planted in the database are not
# picked up by the test's own superuser session.
sub bo_job_status
{
	my ($node, $db, $id) = @_;
	my $r = bo_sql($node, $db,
		"SET search_path = pg_catalog, pg_temp;\n"
		  . "SELECT status FROM batch_ops.job_queue"
		  . " WHERE id OPERATOR(pg_catalog.=) ${id}::pg_catalog.int8");
	return $r->{sqlstate} eq '' ? $r->{out} : '';
}

# bo_q(NODE, DB, SQL, [USER]) — the output of SQL (unaligned, tuples only;
# several statements: every output line), or, when it raises an error, the
# error text (psql's stderr) — for a value that is then compared, so that a
# failing query shows in the failed check instead of ending the test.
sub bo_q
{
	my ($node, $db, $sql, $user) = @_;
	my $r = bo_sql($node, $db, $sql, 180, $user);
	return $r->{err} if $r->{sqlstate} ne '' || $r->{timed_out};
	return $r->{out};
}

# bo_wait_sql(NODE, DB, SQL, [TIMEOUT_S], [USER]) — poll SQL (every 50 ms)
# until it returns "t"; true if it did in time.  Errors count as "not yet"
# (a server still in recovery after a crash answers with errors).
sub bo_wait_sql
{
	my ($node, $db, $sql, $timeout, $user) = @_;
	my $last = '';
	my $ok = bo_wait_until(
		sub {
			my $r = bo_sql($node, $db, $sql, 30, $user);
			$last = $r->{sqlstate} eq '' ? $r->{out} : $r->{err};
			return $last eq 't';
		},
		$timeout // 30);
	diag("last answer to [$sql]: $last") unless $ok;
	return $ok;
}

# bo_diff_sql(QUERY_GOT, QUERY_WANT) — a query that returns what differs
# between the two queries' multisets (at most 10 rows each way), or ''
# when they are equal: "unexpected (…)" rows of GOT, "missing (…)" rows of
# WANT.  EXCEPT ALL both ways, so a duplicated row shows.
sub bo_diff_sql
{
	my ($got, $want) = @_;
	return "SELECT coalesce(string_agg(d, '; '), '') FROM (
	        (SELECT 'unexpected ' || g::text AS d FROM (($got) EXCEPT ALL ($want)) AS g LIMIT 10)
	        UNION ALL
	        (SELECT 'missing ' || w::text FROM (($want) EXCEPT ALL ($got)) AS w LIMIT 10)) AS x";
}

# bo_create_spin(NODE, DB) — the trigger function spin(MS): busy-waits MS
# milliseconds of wall-clock time (TG_ARGV[0]), without sleeping, so that
# a job lasts long enough for a test to act while it runs.  Busy work, not
# pg_sleep(): a sleeping backend notices the death of its postmaster and
# exits, which would hide whether the job worker itself does.
sub bo_create_spin
{
	my ($node, $db) = @_;
	$node->safe_psql($db, <<'SQL');
CREATE FUNCTION spin() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	stop timestamptz := clock_timestamp() + make_interval(secs => TG_ARGV[0]::float8 / 1000);
BEGIN
	WHILE clock_timestamp() < stop LOOP
	END LOOP;
	RETURN NULL;
END $$;
SQL
	return;
}

# bo_write_file(PATH, TEXT) — write a file the server may read (mode 644).
sub bo_write_file
{
	my ($path, $text) = @_;
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh $text;
	close($fh) or die "$path: $!";
	chmod 0644, $path;
	return;
}

# bo_job_internal(NODE, DB, JOB_ID, COLUMN) — a column of the job's row in
# batch_ops.job_queue that the public API (job(), jobs, job_errors()) does
# not show: "attempts" (how many times a worker claimed the job) and
# "worker_pid".  The ONLY place where the cluster tests read the job table
# itself: if its layout changes, this is what to adapt.
sub bo_job_internal
{
	my ($node, $db, $id, $column) = @_;
	die "bo_job_internal: unknown column $column"
	  unless $column =~ /^(attempts|worker_pid)$/;
	return bo_q($node, $db,
		"SELECT $column FROM batch_ops.job_queue WHERE id = $id");
}

# bo_kill9_and_check(NODE, [GRACE_S]) — kill -9 the postmaster, as a
# crash would, and wait up to GRACE_S (3) seconds for every process it had
# started to exit: one whose postmaster is gone may not go on writing nor
# keep the server from restarting.  Returns the descriptions of those
# still alive after GRACE_S (then killed -9, as a machine crash would).
# The node is down afterwards; $node->start brings it back.
sub bo_kill9_and_check
{
	my ($node, $grace) = @_;
	$grace //= 3;
	my $pm = $node->{_pid};
	die 'bo_kill9_and_check: the node is not running' unless $pm;
	my @kids = grep { /^\d+$/ } map { s/\s+//gr } `ps -o pid= --ppid $pm`;
	$node->kill9;
	my @alive;
	my $deadline = time + $grace;
	do
	{
		@alive = grep { kill(0, $_) && !_zombie($_) } @kids;
		usleep(50_000) if @alive;
	} while (@alive && time < $deadline);
	my @desc = map { "pid $_: " . (_cmdline($_)) } @alive;
	kill 9, @alive if @alive;
	bo_wait_until(sub { !grep { kill(0, $_) && !_zombie($_) } @alive }, 10);
	# The new postmaster refuses to start while the old one's pid exists
	# (even as a zombie not yet reaped): wait until it is gone.
	bo_wait_until(sub { !kill(0, $pm) }, 30);
	return @desc;
}

sub _zombie
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return 1;
	my $stat = <$fh>;
	close($fh);
	return ($stat // '') =~ /^\d+ \(.*\) Z/ ? 1 : 0;
}

sub _cmdline
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/cmdline") or return '?';
	local $/;
	my $c = <$fh> // '';
	close($fh);
	$c =~ s/\0/ /g;
	return $c;
}

# bo_wait_crash_restart(NODE, LOG_OFFSET, [TIMEOUT_S]) — after a backend
# was killed -9: wait until the postmaster has reset (its log says
# "reinitializing" after LOG_OFFSET) and accepts connections again.
sub bo_wait_crash_restart
{
	my ($node, $offset, $timeout) = @_;
	$timeout //= 60;
	my $reset = bo_wait_until(
		sub {
			slurp_file($node->logfile, $offset) =~
			  /all server processes terminated; reinitializing/;
		},
		$timeout);
	return 0 unless $reset;
	return bo_wait_sql($node, 'postgres', 'SELECT true', $timeout);
}

# bo_log_lines(NODE, REGEX, [OFFSET]) — the lines of the node's server log
# (from byte OFFSET) that match REGEX.
sub bo_log_lines
{
	my ($node, $re, $offset) = @_;
	return grep { /$re/ } split(/\n/, slurp_file($node->logfile, $offset // 0));
}

# bo_tls_cert(DIR) — a self-signed certificate for 127.0.0.1 (an IP
# subjectAltName, valid a day), made by openssl as DIR/cert.pem and
# DIR/key.pem; returns { cert, key, lifetime => 600 }, the TLS argument of
# bo_mock_server, or undef when openssl is not installed (BAIL_OUT when it
# fails).
sub bo_tls_cert
{
	my ($dir) = @_;
	my $log = '';

	return undef
	  unless system('sh', '-c', 'command -v openssl >/dev/null') == 0;
	IPC::Run::run(
		[
			'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
			'-keyout', "$dir/key.pem", '-out', "$dir/cert.pem",
			'-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
		],
		'<', \undef, '>&', \$log)
	  or BAIL_OUT("openssl could not make a certificate: $log");
	return { cert => "$dir/cert.pem", key => "$dir/key.pem", lifetime => 600 };
}

# bo_credential_key(NODE, FILE) — a random 32-byte credential key in FILE
# of NODE's data directory (mode 0600), named by
# batch_ops.credential_key_file; restarts NODE so that it is read.
sub bo_credential_key
{
	my ($node, $file) = @_;
	my $path = $node->data_dir . "/$file";

	open my $kf, '>', $path or die "$path: $!";
	print $kf join('', map { chr(int(rand(256))) } 1 .. 32);
	close $kf;
	chmod 0600, $path;
	$node->append_conf('postgresql.conf', "batch_ops.credential_key_file = '$file'\n");
	$node->restart;
	return;
}

1;
