# Issue #8 item 12: NOTIFY batch_ops_jobs and what other roles learn.
#
# Decision: the channel stays batch_ops_jobs (design contract), and every
# role connected to the database can LISTEN to it (documented).  So the
# payload carries the job id and its status and nothing else: no role,
# table, source, error text.  A role that receives another role's
# notification can read nothing more of that job: job(), wait_job(),
# cancel_job() and job_errors() answer 42704 ("does not exist"), the view
# batch_ops.jobs does not list it, the job tables are closed to it.
#
# Alice's jobs end in every final state (completed, failed at the source,
# failed atomic batch with row errors, cancelled); Bob listens.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('notify', "batch_ops.max_workers = 2\n");
my $secret_path = '/nonexistent/alice-secret-dir/alice_secret_source.csv';
$node->safe_psql('postgres', <<'SQL');
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT pg_read_server_files TO alice;
CREATE TABLE alice_private_orders (id int PRIMARY KEY,
	qty int NOT NULL CHECK (qty > 0));
ALTER TABLE alice_private_orders OWNER TO alice;
SQL

# Bob listens before Alice's jobs run.
my $bob = $node->background_psql('postgres', extra_params => [ '-U', 'bob' ]);
$bob->query_safe('LISTEN batch_ops_jobs');

sub as_alice
{
	my ($sql) = @_;
	my $r = bo_sql($node, 'postgres', $sql, 60, 'alice');
	die "as alice: $r->{err}" if $r->{sqlstate} ne '';
	return $r->{out};
}

my %expect;    # job id => final status
my $ok_id = as_alice(
	q{SELECT batch_ops.submit_batch('create', 'alice_private_orders',
	  '[{"id": 1, "qty": 1}, {"id": 2, "qty": 2}]')});
$expect{$ok_id} = 'completed';
my $src_id = as_alice(
	"SELECT batch_ops.submit_import('alice_private_orders', '$secret_path')");
$expect{$src_id} = 'failed';
my $atomic_id = as_alice(
	q{SELECT batch_ops.submit_batch('create', 'alice_private_orders',
	  '[{"id": 10, "qty": 1}, {"id": 11, "qty": -7}]', '{"atomic": true}')});
$expect{$atomic_id} = 'failed';
my $cancel_id = as_alice(<<'SQL');
BEGIN;
SELECT batch_ops.submit_batch('create', 'alice_private_orders', '[{"id": 20, "qty": 1}]') AS id \gset
SELECT batch_ops.cancel_job(:id);
COMMIT;
SELECT :id;
SQL
$cancel_id = (split /\n/, $cancel_id)[-1];
$expect{$cancel_id} = 'cancelled';

for my $id (sort keys %expect)
{
	is(bo_wait_job($node, $id), $expect{$id}, "Alice's job $id is $expect{$id}");
}
# Alice sees her own jobs: what Bob is refused below is really there
like(as_alice("SELECT batch_ops.job($src_id)"),
	qr/alice_secret_source/, "Alice's job() shows her job's source");
is(as_alice("SELECT count(*) FROM batch_ops.job_errors($atomic_id)"),
	'1', "Alice's job_errors() lists her atomic job's row error");

# What Bob received.
my %got;       # job id => [payloads]
my @payloads;
bo_wait_until(
	sub {
		my ($out) = $bob->query('SELECT 1');
		for my $line (split /\n/, $out)
		{
			next
			  unless $line =~
			  /^Asynchronous notification "batch_ops_jobs" with payload "(.*)" received from server process with PID \d+\.$/;
			push @payloads, $1;
			my $p = eval { decode_json($1) };
			push @{ $got{ $p->{job_id} } }, $p
			  if ref $p eq 'HASH' && defined $p->{job_id};
		}
		return !grep {
			my $id = $_;
			!grep { ($_->{status} // '') eq $expect{$id} } @{ $got{$id} || [] }
		} keys %expect;
	},
	20);
$bob->quit;

for my $id (sort keys %expect)
{
	ok( (grep { ($_->{status} // '') eq $expect{$id} } @{ $got{$id} || [] }),
		"Bob, listening, was told that job $id is $expect{$id}");
}
ok(@payloads > 0, 'Bob received notifications');
for my $raw (@payloads)
{
	my $p = eval { decode_json($raw) };
	is(ref $p, 'HASH', "payload is a JSON object: $raw");
	is( join(',', sort keys %{ $p || {} }),
		'job_id,status', "payload has exactly job_id and status: $raw");
	unlike($raw, qr/alice|orders|secret|nonexistent|qty|atomic|fail.*row/i,
		"payload names no role, table, source or error: $raw");
}

# Bob cannot read anything more of Alice's jobs.
for my $id (sort keys %expect)
{
	for my $call ("batch_ops.job($id)", "batch_ops.wait_job($id, '0')",
		"batch_ops.wait_job($id, '1 second')", "batch_ops.cancel_job($id)",
		"* FROM batch_ops.job_errors($id)")
	{
		my $r = bo_sql($node, 'postgres', "SELECT $call", 30, 'bob');
		is($r->{sqlstate}, '42704', "Bob: SELECT $call says the job does not exist");
		unlike($r->{out} . $r->{err}, qr/alice|orders|secret/i,
			"Bob: SELECT $call shows nothing of it");
	}
	my $r = bo_sql($node, 'postgres',
		"SELECT count(*) FROM batch_ops.jobs WHERE job_id = $id", 30, 'bob');
	is($r->{out}, '0', "Bob: the view batch_ops.jobs does not list job $id");
}
for my $t ('job_queue', 'job_error', 'job_item')
{
	my $r = bo_sql($node, 'postgres', "SELECT count(*) FROM batch_ops.$t",
		30, 'bob');
	is($r->{sqlstate}, '42501', "Bob cannot read batch_ops.$t");
}
is(bo_job_status($node, 'postgres', $ok_id), 'completed',
	"Bob's cancel_job() left Alice's job alone");

$node->stop;
done_testing();
