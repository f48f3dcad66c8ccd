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
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(bo_node bo_wait_job bo_wait_until bo_scratch);

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

1;
