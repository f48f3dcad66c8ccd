# ALTER EXTENSION batch_ops UPDATE from every earlier version.
#
# In one cluster, database "fresh" installs the current version and
# database "old" installs 0.1.0, makes state under it (a finished CRUD job
# with item errors, a finished import of a server file with row errors, an
# idempotency key), records what the job API says about it, and updates.
# Then: the version is the default one; both databases have the same
# extension objects (pg_dump --binary-upgrade lists the extension's members
# with their definitions, ACLs and comments; compared as sets of TOC
# entries); the recorded answers are unchanged; the stored key still
# replays; new jobs of both kinds run.  Also: the built install script and
# every upgrade script are installed, and every version has an update path
# to the default one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('upgrade');
my $dir = bo_scratch($node);

sub sq { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); }

# ---------------------------------------------------------------- installed files
my $default = sq('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'batch_ops'");
is($default, '0.2.0', 'the default version is 0.2.0');
my $extdir = $node->config_data('--sharedir') . '/extension';
ok(-f "$extdir/batch_ops--$default.sql",
	"the built install script batch_ops--$default.sql is installed");
ok(-f "$extdir/batch_ops--0.1.0.sql", 'the 0.1.0 install script is installed');
ok(-f "$extdir/batch_ops--0.1.0--0.2.0.sql",
	'the 0.1.0 -> 0.2.0 upgrade script is installed');
is( sq( 'postgres', qq{
SELECT string_agg(v.version, ',' ORDER BY v.version)
  FROM pg_available_extension_versions v
 WHERE v.name = 'batch_ops' AND v.version <> '$default'
   AND NOT EXISTS (SELECT FROM pg_extension_update_paths('batch_ops') p
                    WHERE p.source = v.version AND p.target = '$default'
                      AND p.path IS NOT NULL)}),
	'',
	'every earlier version has an update path to the default one');

# ---------------------------------------------------------------- two databases
sq('postgres', 'CREATE DATABASE fresh');
sq('postgres', 'CREATE DATABASE old');
sq('fresh', 'CREATE EXTENSION batch_ops');
sq('old', "CREATE EXTENSION batch_ops VERSION '0.1.0'");
is(sq('old', "SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'"),
	'0.1.0', 'database "old" has 0.1.0');

# State made under 0.1.0.
sq('old', 'CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
my $batch_job = sq('old', q{
SELECT batch_ops.submit_batch('create', 'items',
    '[{"id": 1, "name": "a"}, {"id": 2}, {"id": 3, "name": "c"}, {"id": 1, "name": "dup"}]')});
my $csv = "$dir/old.csv";
open(my $fh, '>', $csv) or die "$csv: $!";
print $fh "id,name\n10,x\nnot a number,y\n11,z\n12,\n";
close($fh);
my $import_job = sq('old',
	qq{SELECT batch_ops.submit_import('items', '$csv', '{"header": true, "null": ""}')});

sub wait_status
{
	my ($db, $id) = @_;
	return sq($db, "SELECT batch_ops.wait_job($id, '60 s')->>'status'");
}
is(wait_status('old', $batch_job), 'completed', 'the 0.1.0 batch job completed');
is(wait_status('old', $import_job), 'completed', 'the 0.1.0 import job completed');

my $key_call = q{SELECT batch_ops.batch_create('items',
    '[{"id": 20, "name": "keyed"}, {"id": 21}]', false, 'upgrade-key')};
my $key_answer = sq('old', $key_call);
like($key_answer, qr/"name": "keyed"/, 'the keyed call under 0.1.0 created a row');

# What the job API says about the state, as text.
sub answers
{
	my ($db) = @_;
	my %a;
	for my $id ($batch_job, $import_job)
	{
		$a{"job($id)"} = sq($db, "SELECT batch_ops.job($id)");
		$a{"job_errors($id)"} =
		  sq($db, "SELECT jsonb_agg(e) FROM batch_ops.job_errors($id) e");
	}
	$a{jobs} = sq($db,
		'SELECT jsonb_agg(j ORDER BY job_id) FROM batch_ops.jobs j');
	return \%a;
}
my $before = answers('old');
like($before->{"job($batch_job)"}, qr/"failed": 2/,
	'the batch job has item errors to carry over');
like($before->{"job_errors($import_job)"}, qr/not a number/,
	'the import job has row errors to carry over');
my $rows_before = sq('old', 'SELECT count(*) FROM items');

# ---------------------------------------------------------------- the update
sq('old', 'ALTER EXTENSION batch_ops UPDATE');
is(sq('old', "SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'"),
	$default, "ALTER EXTENSION batch_ops UPDATE leads to $default");

# The extension's objects: pg_dump --binary-upgrade dumps the members of
# an extension (with ALTER EXTENSION ... ADD for each), which a plain dump
# leaves out.  What it adds for pg_upgrade's sake differs between two
# databases by nature and is removed: OIDs, relfrozenxid, sequence states,
# the random key of psql's \restrict,
# the placeholders of dropped columns and the "missing values" of columns
# added with a default.  The order of a table's columns is not compared
# (an upgrade adds columns at the end); everything else is, as a set of
# TOC entries.
sub extension_schema
{
	my ($db) = @_;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(
		[
			$node->installed_command('pg_dump'), '--schema-only',
			'--binary-upgrade', '--no-owner', '-d', $node->connstr($db)
		],
		'>', \$stdout, '2>', \$stderr);
	die "pg_dump $db: $stderr" unless $ok;
	my @entries;
	for my $entry (split /\n(?=--\n-- Name: )/, $stdout)
	{
		next unless $entry =~ /batch_ops/;
		next if $entry =~ /^-- Name: .*; Type: SEQUENCE SET;/m;
		$entry =~ s/^-- (?!Name: ).*\n//mg;
		$entry =~ s/^\\(?:un)?restrict .*$//mg;    # a random key per dump
		$entry =~ s/^.*binary_upgrade_set_(?:next_\w+|record_init_privs|missing_value)\(.*\n//mg;
		$entry =~ s/^UPDATE pg_catalog\.pg_class\nSET relfrozenxid.*\nWHERE oid = .*\n//mg;
		$entry =~ s/^UPDATE pg_catalog\.pg_attribute\n(?:.*\n)*?.*;\n//mg;
		$entry =~ s/^.*pg\.dropped\..*\n//mg;
		$entry =~ s{^(CREATE (?:UNLOGGED )?TABLE [^\n]* \(\n)(.*?)(\n\))}
		  {$1 . join("\n", sort map { s/,$//r } split(/\n/, $2)) . $3}mse;
		$entry =~ s/\n{2,}/\n/g;
		$entry =~ s/^\s+|\s+$//g;
		push @entries, $entry;
	}
	return [ sort @entries ];
}
my $fresh_schema = extension_schema('fresh');
my $old_schema = extension_schema('old');
cmp_ok(scalar(@$fresh_schema), '>', 20,
	'the dump of the fresh database lists the extension objects');
is_deeply($old_schema, $fresh_schema,
	'an updated database has the same extension objects as a fresh install')
  or diag(join("\n", 'only after the update:',
		grep { my $e = $_; !grep { $_ eq $e } @$fresh_schema } @$old_schema),
	join("\n", 'only in a fresh install:',
		grep { my $e = $_; !grep { $_ eq $e } @$old_schema } @$fresh_schema));

# ---------------------------------------------------------------- state survives
my $after = answers('old');
for my $k (sort keys %$before)
{
	is($after->{$k}, $before->{$k}, "$k answers as it did before the update");
}
is(sq('old', $key_call), $key_answer,
	'the idempotency key stored under 0.1.0 replays its response');
is(sq('old', 'SELECT count(*) FROM items'), $rows_before,
	'and the replay wrote nothing');

# ---------------------------------------------------------------- new jobs
my $new_batch = sq('old', q{
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 30, "name": "new"}, {"id": 31}]')});
is(wait_status('old', $new_batch), 'completed', 'a new batch job runs after the update');
like(sq('old', "SELECT batch_ops.job($new_batch)"), qr/"created": 1/,
	'and creates its row');
is(sq('old', "SELECT count(*) FROM batch_ops.job_errors($new_batch)"), '1',
	'and records its item error');
my $csv2 = "$dir/new.csv";
open($fh, '>', $csv2) or die "$csv2: $!";
print $fh "id,name\n40,p\n41,q\nx,r\n";
close($fh);
my $new_import = sq('old',
	qq{SELECT batch_ops.submit_import('items', '$csv2', '{"header": true}')});
is(wait_status('old', $new_import), 'completed',
	'a new import job runs after the update');
is(sq('old', 'SELECT count(*) FROM items WHERE id IN (40, 41)'), '2',
	'and imports its rows');
is(sq('old', "SELECT count(*) FROM batch_ops.job_errors($new_import)"), '1',
	'and records its row error');
is( sq( 'old',
		q{SELECT count(*) FROM batch_ops.jobs WHERE status = 'completed'}),
	'4', 'the jobs view lists the old and the new jobs');

$node->stop;
done_testing();
