# Rate limits apply to async jobs with the limit set per role (issue #8,
# item 6): ALTER ROLE ... SET and ALTER ROLE ... IN DATABASE ... SET, as a
# session of the role sees them.  The server-wide spelling, and cancel,
# shutdown and the shared bucket, are in test/t/040_ratelimit_jobs.pl.
#
# This needs the job worker to run a job with its submitter's role
# settings applied (a change to worker.c); until then the worker sees only
# the server-wide value (off) and these cases fail.
#
# Lower bound as in 040: a job of M items at N per second with a bucket of
# B tokens runs at least (M - B) / N seconds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('rl_role');
my $scratch = bo_scratch($node);
$node->safe_psql('postgres', q{
CREATE ROLE rl_role LOGIN;
CREATE ROLE rl_dbrole LOGIN;
GRANT pg_read_server_files TO rl_role, rl_dbrole;
CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
GRANT SELECT, INSERT ON t TO rl_role, rl_dbrole;
ALTER ROLE rl_role SET batch_ops.rate_limit = 20;
ALTER ROLE rl_role SET batch_ops.rate_limit_burst = 10;
ALTER ROLE rl_dbrole IN DATABASE postgres SET batch_ops.rate_limit = 20;
ALTER ROLE rl_dbrole IN DATABASE postgres SET batch_ops.rate_limit_burst = 10;
});

sub as_role
{
	my ($role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

sub items
{
	my ($first, $n) = @_;
	return '[' . join(',', map { qq({"id": $_, "v": "v$_"}) } $first .. $first + $n - 1) . ']';
}

sub job_result
{
	my ($id) = @_;
	bo_wait_job($node, $id, 'postgres', 120);
	return split /\|/, $node->safe_psql('postgres',
		"SELECT status, summary->>'created', extract(epoch FROM finished_at - started_at)
		   FROM batch_ops.job_queue WHERE id = $id");
}

my $tol = 0.1;

is($node->safe_psql('postgres', 'SHOW batch_ops.rate_limit'), '0', 'no server-wide limit');
for my $role ('rl_role', 'rl_dbrole')
{
	is(as_role($role, 'SHOW batch_ops.rate_limit'), '20', "$role: its sessions see its limit");
	my $base = $role eq 'rl_role' ? 1 : 100001;

	my $id = as_role($role, "SELECT batch_ops.submit_batch('create', 't', '"
		  . items($base, 50) . q{', '{"chunk_size": 20}')});
	my ($st, $created, $secs) = job_result($id);
	is($st,      'completed', "$role: its batch job completes");
	is($created, '50',        "$role: with every item");
	cmp_ok($secs, '>=', (50 - 10) / 20 - $tol,
		"$role: its batch job is paced by its own limit ($secs s)");

	open my $fh, '>', "$scratch/$role.csv" or die $!;
	print $fh "id,v\n";
	print $fh "$_,v$_\n" for $base + 1000 .. $base + 1049;
	close $fh;
	$id = as_role($role, "SELECT batch_ops.submit_import('t', '$scratch/$role.csv')");
	($st, $created, $secs) = job_result($id);
	is($st,      'completed', "$role: its import completes");
	is($created, '50',        "$role: with every row");
	cmp_ok($secs, '>=', (50 - 10) / 20 - $tol,
		"$role: its import is paced by its own limit ($secs s)");
}

$node->stop;
done_testing();
