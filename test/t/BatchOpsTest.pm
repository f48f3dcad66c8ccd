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
  bo_gate_wait_blocked bo_job_status);

# bo_node(NAME, EXTRA_CONF) — a started cluster with batch_ops preloaded and
# the extension created in "postgres".  EXTRA_CONF is appended to
# postgresql.conf (after the defaults, so it can override them).
sub bo_node
{
	my ($name, $extra) = @_;
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
	$node->safe_psql('postgres', 'CREATE EXTENSION batch_ops');
	return $node;
}

# bo_wait_job(NODE, JOB_ID, [DB], [TIMEOUT_S]) — wait until the job has
# finished; returns its status.
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
			"SELECT status FROM batch_ops.job_queue WHERE id = $id");
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

# bo_mock_server(NAME, PORTS, [HOST]) — start test/http/mock_server.py on
# the first free port of PORTS ("a-b"), bound to HOST (a loopback address,
# 127.0.0.1 by default); returns { port, host, base => "http://HOST:PORT",
# log => its request log, harness }.  It exits by itself after 300 s.
sub bo_mock_server
{
	my ($name, $ports, $host) = @_;
	$host //= '127.0.0.1';
	my $dir = PostgreSQL::Test::Utils::tempdir("mock_$name");
	my $script = dirname(__FILE__) . '/../http/mock_server.py';
	my %srv = (host => $host, log => "$dir/requests.log");
	open(my $fh, '>', $srv{log}) or die "$srv{log}: $!";
	close($fh);
	$srv{harness} = IPC::Run::start(
		[
			'python3', $script, '--host', $host, '--ports', $ports,
			'--ready', "$dir/ready", '--log', $srv{log}, '--lifetime', '300'
		],
		'>', "$dir/out", '2>&1');
	bo_wait_until(sub { -s "$dir/ready" }, 10)
	  or die "mock server $name did not start: " . slurp_file("$dir/out");
	($srv{port}) = split(' ', slurp_file("$dir/ready"));
	$srv{base} = "http://$host:$srv{port}";
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

1;
