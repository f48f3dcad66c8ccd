# Issue #13: every batch function on Citus tables gives the answer it
# gives on a local table.  A 3-node Citus cluster on loopback
# (BatchOpsCitus.pm); schema c holds the Citus tables -- hash-distributed
# on the key, hash-distributed on one column of a composite key, a
# reference table, and a "Citus local" table (a plain table with a foreign
# key to a reference table, which Citus adds to its metadata by itself) --
# and schema l the same tables as plain local tables, with the same names
# (so the same messages).  Each call runs on both, and the JSON answers
# must be equal byte for byte: data[] in item order, per-item errors with
# the logical table's constraint names (never a shard's), atomic
# rollbacks, idempotent replays, rate limits.  Then the tables' contents
# must be equal.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;
use BatchOpsCitus;

my ($coord, $w1, $w2) = bo_citus_cluster('cbatch');

sub q_ { my ($sql) = @_; return bo_q($coord, 'postgres', $sql); }

my $ddl = <<'SQL';
CREATE TABLE S.ref (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE S.orders (id bigint PRIMARY KEY, sku text NOT NULL,
	qty int CHECK (qty >= 0), ref_id int REFERENCES S.ref (id),
	note text DEFAULT 'n/a', tags text[], doc jsonb);
CREATE TABLE S.stock (tenant int, sku text, qty int NOT NULL CHECK (qty < 1000),
	label text, PRIMARY KEY (tenant, sku));
CREATE TABLE S.codes (code text PRIMARY KEY, ref_id int NOT NULL REFERENCES S.ref (id), val numeric(8,2));
CREATE TABLE S.kinds (id int PRIMARY KEY, name text UNIQUE, n int CHECK (n > 0));
INSERT INTO S.ref SELECT i, 'r' || i FROM generate_series(1, 5) i;
SQL
bo_citus_twins($coord, $ddl);
$coord->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SELECT create_reference_table('c.ref');
	SELECT create_reference_table('c.kinds');
	SELECT create_distributed_table('c.orders', 'id');
	SELECT create_distributed_table('c.stock', 'tenant');
});
is( q_(q{SELECT string_agg(logicalrelid::text || ':' || partmethod::text || ':' || repmodel::text, ' ' ORDER BY logicalrelid::text)
	FROM pg_dist_partition WHERE logicalrelid::text LIKE 'c.%'}),
	'c.codes:n:s c.kinds:n:t c.orders:h:s c.ref:n:t c.stock:h:s',
	'hash-distributed, reference and Citus local tables');
is(q_(q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'l.%'}),
	'0', 'the twins in schema l are local tables');

# run SQL (with S for the schema) on both schemas; the answers must be equal
my $n = 0;
sub both
{
	my ($sql, $name) = @_;
	(my $c = $sql) =~ s/\bS\./c./g;
	(my $l = $sql) =~ s/\bS\./l./g;
	my $got = q_($c);
	my $want = q_($l);
	$n++;
	is($got, $want, "$name: same answer as on a local table");
	return $got;
}

# ---- batch_create, clean, data[] in item order (rows come back by shard)
my $items = q_(q{SELECT jsonb_agg(jsonb_build_object('id', 1000 - i, 'sku', 's' || i,
	'qty', i % 7, 'ref_id', 1 + i % 5, 'tags', jsonb_build_array('a', i::text)) ORDER BY i)
	FROM generate_series(1, 100) i});
my $r = both("SELECT batch_ops.batch_create('S.orders', '$items')", 'create 100 items');
like($r, qr/^\{"data": \[\{"id": 999, /, 'data[0] is the first item');
unlike($r, qr/"errors": \[\{/, 'no errors');
both(q{SELECT batch_ops.batch_create('S.orders', '[{"id": 1, "sku": "x", "note": null}, {"id": 2, "sku": "x"}, {"id": 3, "sku": "x", "doc": {"a": [1, 2]}}]')},
	'create: identical values but the key, defaults, json');

# ---- batch_create, every error kind of the local suites
my $bad = q{[
	{"id": 999, "sku": "dup of a row on a worker"},
	{"id": 10, "sku": "ok"},
	{"id": 10, "sku": "dup inside the batch"},
	{"id": 11, "sku": "fk", "ref_id": 42},
	{"id": 12, "sku": null},
	{"id": 13},
	{"id": 14, "sku": "check", "qty": -1},
	{"id": 15, "sku": "bad", "qty": "abc"},
	{"id": 16, "sku": "unknown", "nope": 1},
	{"id": 17, "sku": "ok too", "ref_id": 5},
	"not an object",
	{"id": 18, "sku": "fk2", "ref_id": 6},
	{"id": 998, "sku": "dup 2"}]};
$r = both("SELECT batch_ops.batch_create('S.orders', '$bad')", 'create with every error kind');
like($r, qr/"constraint": "orders_ref_id_fkey"/, 'foreign key error names the logical constraint');
like($r, qr/"constraint": "orders_pkey"/, 'conflict names the logical constraint');
unlike($r, qr/_10\d{4}/, 'no shard name anywhere');

# atomic: one bad item rolls everything back
both(q{SELECT batch_ops.batch_create('S.orders', '[{"id": 20, "sku": "a"}, {"id": 21, "sku": "b", "ref_id": 99}]', true)},
	'atomic create with a foreign key error');
both(q{SELECT batch_ops.batch_create('S.orders', '[{"id": 22, "sku": "a"}, {"id": 23, "sku": "b", "ref_id": 2}]', true)},
	'atomic create, clean');
both(q{SELECT count(*) FROM S.orders WHERE id BETWEEN 20 AND 23}, 'atomic rollback left nothing');

# idempotency keys: a replay answers the same and writes nothing
both(q{SELECT batch_ops.batch_create('S.orders', '[{"id": 30, "sku": "k"}, {"id": 999, "sku": "dup"}]', false, 'key-S.x')},
	'create with an idempotency key');
both(q{DELETE FROM S.orders WHERE id = 30; SELECT batch_ops.batch_create('S.orders', '[{"id": 30, "sku": "k"}, {"id": 999, "sku": "dup"}]', false, 'key-S.x')},
	'replay of the idempotency key');
both(q{SELECT count(*) FROM S.orders WHERE id = 30}, 'the replay wrote nothing');

# ---- items whose keys are all there already (a batch sent twice): the
# engine guesses it from the first and last keys and settles them with a
# look for existing keys, writing nothing; with the last key new it
# writes, and ON CONFLICT DO NOTHING skips the rest
my $again = q_(q{SELECT jsonb_agg(jsonb_build_object('id', 1000 - i, 'sku', 'again' || i) ORDER BY i)
	FROM generate_series(1, 60) i});
$r = both("SELECT batch_ops.batch_create('S.orders', '$again')", 'create: every key there already');
is(scalar(() = $r =~ /"error": "conflict"/g), 60, 'sixty conflicts');
my $remote = sub {
	my ($sql) = @_;
	my ($stdout, $stderr);
	$coord->psql('postgres', "SET citus.log_remote_commands = on; SET citus.log_local_commands = on; SET client_min_messages = log; $sql",
		stdout => \$stdout, stderr => \$stderr, on_error_die => 1);
	return $stderr;
};
my $log = $remote->("SELECT batch_ops.batch_create('c.orders', '$again')");
unlike($log, qr/issuing INSERT/, 'every key there: no INSERT reaches a worker');
like($log, qr/issuing SELECT FROM c\.orders_\d+ t WHERE \(id OPERATOR\(pg_catalog\.=\) '999'::bigint\) LIMIT 1/,
	'the first key is asked of its shard alone');
(my $mixed = $again) =~ s/\]$/, {"id": 5000, "sku": "new"}]/;
$r = both("SELECT batch_ops.batch_create('S.orders', '$mixed')", 'create: every key there but the last');
like($r, qr/^\{"data": \[null, .*\{"id": 5000, /, 'the new key is written');
$log = $remote->(q{SELECT batch_ops.batch_create('c.orders', '[{"id": 999, "sku": "d"}, {"id": 998, "sku": "d"}]', false, NULL)});
unlike($log, qr/issuing INSERT/, 'two keys there: no INSERT either');

# foreign-key violations among many items: the items whose values name no
# row are looked for in the referenced table and written alone, not found
# by bisecting distributed statements; the errors are the statements' own
my $fkitems = q_(q{SELECT jsonb_agg(jsonb_build_object('id', 2000 + i, 'sku', 'fk' || i,
	'ref_id', CASE WHEN i IN (10, 70) THEN 40 + i ELSE 1 + i % 5 END) ORDER BY i)
	FROM generate_series(1, 100) i});
$r = both("SELECT batch_ops.batch_create('S.orders', '$fkitems')", 'create: two foreign-key violations among 100 items');
is(scalar(() = $r =~ /"error": "[a-z_]+", "index": (9|69),/g), 2, 'items 9 and 69 failed');
my $fkupdate = q{SELECT batch_ops.batch_update('S.orders', '[{"id": 2001, "ref_id": 99}, {"id": 2002, "qty": 1}, {"id": 2003, "ref_id": 2}]')};
(my $fkupdate_l = $fkupdate) =~ s/S\./l./;
(my $fkupdate_c = $fkupdate) =~ s/S\./c./;
my $fklog = $remote->($fkupdate_c);
q_($fkupdate_l);
like($fklog, qr/(issuing|executing the command locally:) SELECT r\.\S+ FROM \(?c\.ref_\d+ p JOIN /,
	'the referenced table is asked which values name no row');

# ---- batch_update and batch_delete
both(q{SELECT batch_ops.batch_update('S.orders', '[{"id": 999, "qty": 5}, {"id": 12345, "qty": 1},
	{"id": 998, "ref_id": 77}, {"id": 997, "qty": -3}, {"id": 996, "qty": "x"}, {"id": 995},
	{"id": {"id": 994}, "note": "by id"}, {"id": 999, "qty": 6}, {"id": 993, "sku": null}]')},
	'update with every error kind, a key twice');
both(q{SELECT batch_ops.batch_update('S.orders', '[{"id": 990, "qty": 1}, {"id": 991, "ref_id": 99}]', true)},
	'atomic update rolled back');
both(q{SELECT batch_ops.batch_delete('S.orders', '[980, 12345, 981, 980, {"id": 982}, null]')},
	'delete, not found, twice');
bo_citus_same_rows($coord, 'orders', 'id');

# ---- composite key, distributed on one of its columns
my $stock = q_(q{SELECT jsonb_agg(jsonb_build_object('tenant', i % 4, 'sku', 'k' || i, 'qty', i) ORDER BY i DESC)
	FROM generate_series(1, 60) i});
both("SELECT batch_ops.batch_create('S.stock', '$stock')", 'composite key: create');
both(q{SELECT batch_ops.batch_create('S.stock', '[{"tenant": 1, "sku": "k1", "qty": 5}, {"tenant": 2, "sku": "k2", "qty": 5}, {"tenant": 3, "sku": "k3", "qty": 5}]')},
	'composite key: every key there already');
both(q{SELECT batch_ops.batch_create('S.stock', '[{"tenant": 1, "sku": "k1", "qty": 1}, {"tenant": 1, "sku": "new", "qty": 1000},
	{"tenant": 2, "sku": "new", "qty": 3}, {"tenant": 2, "sku": "new", "qty": 4}, {"tenant": 3, "qty": 1}]')},
	'composite key: create errors');
both(q{SELECT batch_ops.batch_update('S.stock', '[{"tenant": 1, "sku": "k5", "label": "x"}, {"id": {"tenant": 2, "sku": "k6"}, "qty": 7},
	{"tenant": 9, "sku": "none", "qty": 1}, {"tenant": 0, "sku": "k4", "qty": 5000}]')},
	'composite key: update');
both(q{SELECT batch_ops.batch_delete('S.stock', '[{"tenant": 1, "sku": "k9"}, {"tenant": 1, "sku": "zz"}, {"id": {"tenant": 0, "sku": "k8"}}]')},
	'composite key: delete');
bo_citus_same_rows($coord, 'stock', 'tenant, sku');

# ---- Citus local table (foreign key to a reference table)
both(q{SELECT batch_ops.batch_create('S.codes', '[{"code": "a", "ref_id": 1, "val": 1.5}, {"code": "b", "ref_id": 9},
	{"code": "a", "ref_id": 2}, {"code": "c", "ref_id": null}, {"code": "d", "ref_id": 3, "val": "1e9"}, {"code": "e", "ref_id": 4}]')},
	'Citus local table: create');
both(q{SELECT batch_ops.batch_create('S.codes', '[{"code": "a", "ref_id": 1}, {"code": "f", "ref_id": 5}]')},
	'Citus local table: existing key');
both(q{SELECT batch_ops.batch_update('S.codes', '[{"code": "e", "ref_id": 8}, {"code": "f", "val": 2}]')},
	'Citus local table: update');
both(q{SELECT batch_ops.batch_delete('S.codes', '["e", "zz"]')}, 'Citus local table: delete');
bo_citus_same_rows($coord, 'codes', 'code');

# ---- reference table with a second unique constraint
both(q{SELECT batch_ops.batch_create('S.kinds', '[{"id": 1, "name": "a", "n": 1}, {"id": 2, "name": "b", "n": 0},
	{"id": 3, "name": "a", "n": 2}, {"id": 4, "name": "d", "n": 4}]')},
	'reference table: create');
both(q{SELECT batch_ops.batch_create('S.kinds', '[{"id": 1, "name": "z", "n": 1}, {"id": 5, "name": "d", "n": 1}, {"id": 6, "name": "f", "n": 1}]')},
	'reference table: a conflict on each unique constraint');
both(q{SELECT batch_ops.batch_create('S.kinds', '[{"id": 1, "name": "a2", "n": 1}, {"id": 9, "name": "a", "n": 1}, {"id": 4, "name": "d", "n": 1}]')},
	'reference table: every key there already, on one or the other constraint');
both(q{SELECT batch_ops.batch_update('S.kinds', '[{"id": 4, "name": "a"}, {"id": 6, "n": 9}]')},
	'reference table: update with a unique violation');
both(q{SELECT batch_ops.batch_delete('S.kinds', '[6, 7]')}, 'reference table: delete');
bo_citus_same_rows($coord, 'kinds', 'id');

# ---- the foreign key from the other side: deleting a referenced row
both(q{SELECT batch_ops.batch_delete('S.ref', '[1, 5]')}, 'reference table: delete of a referenced row');
bo_citus_same_rows($coord, 'ref', 'id');

# ---- rate limits count items on Citus tables too
$coord->safe_psql('postgres', q{CREATE ROLE limited LOGIN;
	GRANT USAGE ON SCHEMA batch_ops, c TO limited; GRANT ALL ON ALL TABLES IN SCHEMA c TO limited;
	ALTER ROLE limited SET batch_ops.rate_limit = 1; ALTER ROLE limited SET batch_ops.rate_limit_burst = 3;});
$r = bo_sql($coord, 'postgres', q{SELECT batch_ops.batch_create('c.orders', '[{"id": 40, "sku": "r"}, {"id": 41, "sku": "r"}]');
	SELECT batch_ops.batch_create('c.orders', '[{"id": 42, "sku": "r"}, {"id": 43, "sku": "r"}]');}, 60, 'limited');
is($r->{sqlstate}, 'BO429', 'rate limit on a distributed table');
is(q_(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM c.orders WHERE id BETWEEN 40 AND 43}), '40,41',
	'the first batch was written, the second refused');

# ---- the shells on the coordinator stay empty: rows are in the shards
is( q_(q{SELECT sum(result::int) FROM run_command_on_shards('c.orders', 'SELECT count(*) FROM %s')}),
	q_(q{SELECT count(*) FROM c.orders}), 'the rows are in the shards');

done_testing();
