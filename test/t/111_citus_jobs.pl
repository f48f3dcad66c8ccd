# Issue #13: async batches (submit_batch) and CSV imports (submit_import)
# into Citus tables are correct: the rows are in the shards (never a
# "completed" job whose rows are nowhere), and jobs report what they
# report on local tables.  Same layout as 110_citus_batch.pl: schema c
# holds the Citus tables, schema l local twins with the same names; every
# job runs on both and must end the same, with the same errors (line,
# error, SQLSTATE, message, raw text) and the same rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;
use BatchOpsCitus;

my ($coord, $w1, $w2) = bo_citus_cluster('cjobs');
my $dir = bo_scratch($coord);

sub q_ { my ($sql) = @_; return bo_q($coord, 'postgres', $sql); }

my $ddl = <<'SQL';
CREATE TABLE S.ref (id int PRIMARY KEY);
CREATE TABLE S.orders (id bigint PRIMARY KEY, sku text NOT NULL,
	qty int CHECK (qty >= 0), ref_id int REFERENCES S.ref (id), note text DEFAULT 'n/a');
CREATE TABLE S.stock (tenant int, sku text, qty int NOT NULL, PRIMARY KEY (tenant, sku));
CREATE TABLE S.codes (code text PRIMARY KEY, ref_id int REFERENCES S.ref (id));
INSERT INTO S.ref SELECT generate_series(1, 5);
SQL
bo_citus_twins($coord, $ddl);
$coord->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SELECT create_reference_table('c.ref');
	SELECT create_distributed_table('c.orders', 'id');
	SELECT create_distributed_table('c.stock', 'tenant');
});
is(q_(q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'c.codes'::regclass}), '1',
	'c.codes is a Citus local table');

# run a job on both schemas; compare how it ended and its errors
sub job_both
{
	my ($submit, $name) = @_;
	my %out;
	for my $s ('c', 'l')
	{
		(my $sql = $submit) =~ s/\bS\./$s./g;
		my $id = $coord->safe_psql('postgres', $sql);
		my $status = bo_wait_job($coord, $id, 'postgres', 180);
		$out{$s} = q_("SELECT jsonb_build_object('status', j->'status', 'error', j->'error',
				'rows_done', j->'rows_done', 'results', j->'results' - 'errors')
			FROM batch_ops.job($id) j")
		  . "\n" . q_("SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY line, index), '[]') FROM batch_ops.job_errors($id) e");
		$out{"${s}_status"} = $status;
	}
	is($out{c}, $out{l}, "$name: same job result and errors as on a local table");
	return ($out{c_status}, $out{c});
}

# ---- submit_batch: create, update, delete, with errors
my ($st, $out) = job_both(q{SELECT batch_ops.submit_batch('create', 'S.orders',
	(SELECT jsonb_agg(CASE WHEN i % 97 = 0 THEN jsonb_build_object('id', i, 'sku', null)
	                       WHEN i % 1009 = 0 THEN jsonb_build_object('id', i, 'sku', 's', 'ref_id', 9)
	                       WHEN i % 83 = 0 THEN jsonb_build_object('id', i - 1, 'sku', 'dup')
	                       ELSE jsonb_build_object('id', i, 'sku', 's' || i, 'qty', i % 10, 'ref_id', 1 + i % 5) END ORDER BY i)
	   FROM generate_series(1, 3000) i), '{"chunk_size": 500}')}, 'submit_batch create');
is($st, 'completed', 'the create job completed');
like($out, qr/orders_ref_id_fkey/, 'its foreign key errors name the logical constraint');
bo_citus_same_rows($coord, 'orders', 'id');
job_both(q{SELECT batch_ops.submit_batch('update', 'S.orders',
	(SELECT jsonb_agg(jsonb_build_object('id', i * 3, 'qty', CASE WHEN i % 50 = 0 THEN -1 ELSE i END) ORDER BY i)
	   FROM generate_series(1, 1100) i))}, 'submit_batch update');
job_both(q{SELECT batch_ops.submit_batch('delete', 'S.orders', (SELECT jsonb_agg(i * 5) FROM generate_series(1, 700) i))},
	'submit_batch delete');
bo_citus_same_rows($coord, 'orders', 'id');
job_both(q{SELECT batch_ops.submit_batch('create', 'S.stock',
	(SELECT jsonb_agg(jsonb_build_object('tenant', i % 2, 'sku', 'k' || (i % 300), 'qty', i) ORDER BY i)
	   FROM generate_series(1, 1000) i), '{"atomic": true}')}, 'atomic submit_batch with duplicates');
is(q_('SELECT count(*) FROM c.stock'), '0', 'the atomic job left nothing');

# ---- imports: a clean file
my $n = 20000;
$coord->safe_psql('postgres', "COPY (SELECT i, 'sku ' || i, i % 100, 1 + i % 5, 'note, \"' || i || '\"'
	FROM generate_series(100001, 100000 + $n) i) TO '$dir/clean.csv' WITH (FORMAT csv, HEADER)");
$coord->safe_psql('postgres', 'TRUNCATE c.orders, l.orders');
($st) = job_both(qq{SELECT batch_ops.submit_import('S.orders', '$dir/clean.csv',
	'{"header": true, "columns": ["id", "sku", "qty", "ref_id", "note"], "chunk_size": 3000}')}, 'clean import');
is($st, 'completed', 'the clean import completed');
is(q_('SELECT count(*) FROM c.orders'), $n, 'count(*) of the distributed table is every row');
is( q_(q{SELECT sum(result::bigint) FROM run_command_on_shards('c.orders', 'SELECT count(*) FROM %s')}),
	$n, 'the rows are in the shards');
bo_citus_same_rows($coord, 'orders', 'id');

# ---- imports with bad rows: dups of rows on workers, FK, NOT NULL, CHECK, bad data, malformed
my @rec = ('id,sku,qty,ref_id');
for my $i (1 .. 3000)
{
	my $r = "$i,s$i," . ($i % 10) . "," . (1 + $i % 5);
	$r = "100005,dup of a row on a worker,1,1" if $i % 211 == 0;
	$r = "$i,fk,1,42" if $i % 1013 == 0;
	$r = "$i,,1,1" if $i % 227 == 0;
	$r = "$i,check,-1,1" if $i % 229 == 0;
	$r = "$i,bad,abc,1" if $i % 233 == 0;
	$r = "$i,extra,1,1,1" if $i % 239 == 0;
	$r = "$i,missing" if $i % 241 == 0;
	$r = ($i - 1) . ",dup in file,1,1" if $i % 251 == 0;
	push @rec, $r;
}
bo_write_file("$dir/dirty.csv", join("\n", @rec) . "\n");
($st, $out) = job_both(qq{SELECT batch_ops.submit_import('S.orders', '$dir/dirty.csv', '{"header": true, "chunk_size": 700}')},
	'import with bad rows');
is($st, 'completed', 'the import with bad rows completed');
like($out, qr/"error": "conflict"/, 'duplicates of rows on the workers are reported');
unlike($out, qr/_10\d{4}/, 'no shard name in the errors');
bo_citus_same_rows($coord, 'orders', 'id');

# atomic import with one bad row: nothing
bo_write_file("$dir/atomic.csv", "id,sku\n900001,a\n900002,b\n900001,c\n");
job_both(qq{SELECT batch_ops.submit_import('S.orders', '$dir/atomic.csv', '{"header": true, "atomic": true}')},
	'atomic import with a bad row');
is(q_('SELECT count(*) FROM c.orders WHERE id > 900000'), '0', 'the atomic import left nothing');

# a composite key distributed on one of its columns, and a Citus local table
bo_write_file("$dir/stock.csv", join("\n", map { ($_ % 9) . ",k$_," . ($_ % 41 == 0 ? '' : $_) } 1 .. 2000) . "\n1,k1,5\n");
job_both(qq{SELECT batch_ops.submit_import('S.stock', '$dir/stock.csv', '{"chunk_size": 600}')}, 'import, composite key');
bo_citus_same_rows($coord, 'stock', 'tenant, sku');
bo_write_file("$dir/codes.csv", join("\n", map { "c$_," . ($_ % 167 == 0 ? 77 : 1 + $_ % 5) } 1 .. 500) . "\nc1,1\n");
job_both(qq{SELECT batch_ops.submit_import('S.codes', '$dir/codes.csv')}, 'import into a Citus local table');
bo_citus_same_rows($coord, 'codes', 'code');

done_testing();
