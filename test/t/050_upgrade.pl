# ALTER EXTENSION batch_ops UPDATE from every earlier version.
#
# In one cluster, database "fresh" installs the current version, and for
# each earlier version (0.1.0 today) a database of its own installs that
# version, makes state under it (a finished CRUD job
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
# the scripts kept in the tree (DATA): released versions and upgrades
my @scripts = grep { $_ ne "batch_ops--$default.sql" }
  map { s{^sql/}{}r } glob('sql/batch_ops--*.sql');
ok(grep({ $_ eq 'batch_ops--0.1.0--0.2.0.sql' } @scripts),
	'the tree has the 0.1.0 -> 0.2.0 upgrade script');
ok(-f "$extdir/$_", "$_ is installed") for @scripts;
is( sq( 'postgres', qq{
SELECT string_agg(v.version, ',' ORDER BY v.version)
  FROM pg_available_extension_versions v
 WHERE v.name = 'batch_ops' AND v.version <> '$default'
   AND NOT EXISTS (SELECT FROM pg_extension_update_paths('batch_ops') p
                    WHERE p.source = v.version AND p.target = '$default'
                      AND p.path IS NOT NULL)}),
	'',
	'every earlier version has an update path to the default one');

# ---------------------------------------------------------------- helpers
sub wait_status
{
	my ($db, $id) = @_;
	return sq($db, "SELECT batch_ops.wait_job($id, '60 s')->>'status'");
}

# What the job API says about jobs IDS, as text.
sub answers
{
	my ($db, @ids) = @_;
	my %a;
	for my $id (@ids)
	{
		$a{"job($id)"} = sq($db, "SELECT batch_ops.job($id)");
		$a{"job_errors($id)"} =
		  sq($db, "SELECT jsonb_agg(e) FROM batch_ops.job_errors($id) e");
	}
	$a{jobs} = sq($db,
		'SELECT jsonb_agg(j ORDER BY job_id) FROM batch_ops.jobs j');
	return \%a;
}

sub write_file
{
	my ($path, $text) = @_;
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh $text;
	close($fh);
	return $path;
}

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

# ---------------------------------------------------------------- fresh install
sq('postgres', 'CREATE DATABASE fresh');
sq('fresh', 'CREATE EXTENSION batch_ops');
my $fresh_schema = extension_schema('fresh');
cmp_ok(scalar(@$fresh_schema), '>', 20,
	'the dump of the fresh database lists the extension objects');

# ---------------------------------------------------------------- each earlier version
# upgrade_from(VERSION): install VERSION in a database of its own, make
# state, update, compare.
sub upgrade_from
{
	my ($from) = @_;
	my $db = 'v' . ($from =~ tr/./_/r);
	sq('postgres', "CREATE DATABASE $db");
	sq($db, "CREATE EXTENSION batch_ops VERSION '$from'");
	is(sq($db, "SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'"),
		$from, "$from: installed");

	# State made under the old version.
	sq($db, 'CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
	my $batch_job = sq($db, q{
SELECT batch_ops.submit_batch('create', 'items',
    '[{"id": 1, "name": "a"}, {"id": 2}, {"id": 3, "name": "c"}, {"id": 1, "name": "dup"}]')});
	my $csv = write_file("$dir/$db-old.csv",
		"id,name\n10,x\nnot a number,y\n11,z\n12,\n");
	my $import_job = sq($db,
		qq{SELECT batch_ops.submit_import('items', '$csv', '{"header": true, "null": ""}')});
	is(wait_status($db, $batch_job), 'completed', "$from: the batch job completed");
	is(wait_status($db, $import_job), 'completed', "$from: the import job completed");

	my $key_call = q{SELECT batch_ops.batch_create('items',
    '[{"id": 20, "name": "keyed"}, {"id": 21}]', false, 'upgrade-key')};
	my $key_answer = sq($db, $key_call);
	like($key_answer, qr/"name": "keyed"/, "$from: the keyed call created a row");

	my $before = answers($db, $batch_job, $import_job);
	like($before->{"job($batch_job)"}, qr/"failed": 2/,
		"$from: the batch job has item errors to carry over");
	like($before->{"job_errors($import_job)"}, qr/not a number/,
		"$from: the import job has row errors to carry over");
	my $rows_before = sq($db, 'SELECT count(*) FROM items');

	# The update.
	sq($db, 'ALTER EXTENSION batch_ops UPDATE');
	is(sq($db, "SELECT extversion FROM pg_extension WHERE extname = 'batch_ops'"),
		$default, "$from: ALTER EXTENSION batch_ops UPDATE leads to $default");

	my $schema = extension_schema($db);
	is_deeply($schema, $fresh_schema,
		"$from: the updated database has the same extension objects as a fresh install")
	  or diag(join("\n", 'only after the update:',
			grep { my $e = $_; !grep { $_ eq $e } @$fresh_schema } @$schema),
		join("\n", 'only in a fresh install:',
			grep { my $e = $_; !grep { $_ eq $e } @$schema } @$fresh_schema));

	# State survives.
	my $after = answers($db, $batch_job, $import_job);
	for my $k (sort keys %$before)
	{
		is($after->{$k}, $before->{$k},
			"$from: $k answers as it did before the update");
	}
	is(sq($db, $key_call), $key_answer,
		"$from: the stored idempotency key replays its response");
	is(sq($db, 'SELECT count(*) FROM items'), $rows_before,
		"$from: and the replay wrote nothing");

	# New jobs run.
	my $new_batch = sq($db, q{
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 30, "name": "new"}, {"id": 31}]')});
	is(wait_status($db, $new_batch), 'completed',
		"$from: a new batch job runs after the update");
	like(sq($db, "SELECT batch_ops.job($new_batch)"), qr/"created": 1/,
		"$from: and creates its row");
	is(sq($db, "SELECT count(*) FROM batch_ops.job_errors($new_batch)"), '1',
		"$from: and records its item error");
	my $csv2 = write_file("$dir/$db-new.csv", "id,name\n40,p\n41,q\nx,r\n");
	my $new_import = sq($db,
		qq{SELECT batch_ops.submit_import('items', '$csv2', '{"header": true}')});
	is(wait_status($db, $new_import), 'completed',
		"$from: a new import job runs after the update");
	is(sq($db, 'SELECT count(*) FROM items WHERE id IN (40, 41)'), '2',
		"$from: and imports its rows");
	is(sq($db, "SELECT count(*) FROM batch_ops.job_errors($new_import)"), '1',
		"$from: and records its row error");
	is(sq($db, q{SELECT count(*) FROM batch_ops.jobs WHERE status = 'completed'}),
		'4', "$from: the jobs view lists the old and the new jobs");
	return;
}

my @earlier = split /\n/, sq('postgres', qq{
SELECT version FROM pg_available_extension_versions
 WHERE name = 'batch_ops' AND version <> '$default' ORDER BY version});
ok(grep({ $_ eq '0.1.0' } @earlier), 'the versions to update from include 0.1.0');
upgrade_from($_) for @earlier;

# The cluster role is the one of a fresh install (the updates leave it).
is(sq('postgres', q{
SELECT rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = 'batch_ops_fetch'}),
	'f|f|t', 'the role batch_ops_fetch exists, NOLOGIN');

$node->stop;
done_testing();
