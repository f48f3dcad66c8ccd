# A cancel_job() rolled back to a savepoint does not cancel the job
# (job_shmem.c: cancels are remembered per subtransaction), while one
# that commits does.  The job is a submit_batch whose trigger sleeps, so
# that it is running while the cancels are sent.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('cancel_savepoint', "batch_ops.max_workers = 2\n");
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE slow (id int PRIMARY KEY);
CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END$$;
CREATE TRIGGER slow_row BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION slow_row();
SQL

# a job of n items, one per chunk, about 50 ms each
sub slow_job
{
	my ($n) = @_;
	return $node->safe_psql('postgres',
		"SELECT batch_ops.submit_batch('create', 'slow',"
		  . " (SELECT jsonb_agg(jsonb_build_object('id', g)) FROM generate_series(1, $n) g),"
		  . " '{\"chunk_size\": 1}')");
}

sub running_with_progress
{
	my ($id) = @_;
	return bo_wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT status = 'running' AND rows_done >= 2 FROM batch_ops.job_queue WHERE id = $id"
			) eq 't';
		},
		30);
}

my $kept = slow_job(60);
ok(running_with_progress($kept), 'the job is running');
is( $node->safe_psql('postgres',
		"BEGIN; SAVEPOINT s; SELECT batch_ops.cancel_job($kept); ROLLBACK TO s; COMMIT;"),
	't', 'cancel_job() answered true inside the savepoint');
is(bo_wait_job($node, $kept, 'postgres', 60), 'completed',
	'a cancel rolled back to a savepoint does not cancel the job');
is($node->safe_psql('postgres', "SELECT count(*) FROM slow"), '60', 'every item was written');

# the same with a released savepoint: the cancel stands
my $gone = slow_job(200);
ok(running_with_progress($gone), 'the second job is running');
$node->safe_psql('postgres',
	"BEGIN; SAVEPOINT s; SELECT batch_ops.cancel_job($gone); RELEASE s; COMMIT;");
is(bo_wait_job($node, $gone, 'postgres', 60), 'cancelled',
	'a cancel in a released savepoint cancels the job at commit');

done_testing();
