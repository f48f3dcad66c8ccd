# Every statement the batch engine generates names its functions, operators
# and types with their schema, so that nothing in it is found through the
# caller's search_path (issue #8, item 2).
#
# Runs the engine's pg_regress files (sql/*.sql of the source tree) in a
# scratch database with auto_explain logging every nested statement,
# collects the statements the engine ran (those over pg_catalog.unnest($1),
# and the idempotency bookkeeping) from the server log and checks each with
# test/tools/sql_qualified.py: no function call but pg_catalog.f(...), no
# operator outside OPERATOR(schema.op), no :: cast, no CAST to an
# unqualified type.  The checker is first run on statements written the old
# way, which it must reject.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $here = dirname(abs_path(__FILE__));
my $checker = "$here/../tools/sql_qualified.py";
# The pg_regress files: the source tree's sql/.  scripts/test.sh runs the
# TAP files from a copy of test/ in .test-run/tap of the source tree;
# BATCH_OPS_SRC names the source tree explicitly.
my ($sqldir) = grep { defined && -r "$_/create.sql" }
  (defined $ENV{BATCH_OPS_SRC} ? "$ENV{BATCH_OPS_SRC}/sql" : undef),
  "$here/../../sql", "$here/../../../../sql";
plan skip_all => 'python3 is not installed'
  unless system('sh', '-c', 'command -v python3 >/dev/null') == 0;
BAIL_OUT("the pg_regress files (sql/create.sql) were not found from $here; set BATCH_OPS_SRC")
  unless defined $sqldir;

sub check_sql
{
	my ($input) = @_;
	my $out = '';
	my $ok = IPC::Run::run([ 'python3', $checker ], '<', \$input, '>&', \$out);
	return ($ok, $out);
}

# the checker must reject the old forms
my ($ok, $out) = check_sql(
	'UPDATE s.t AS t SET v = r.v FROM unnest($1) WITH ORDINALITY AS r(id, v, o) WHERE t.id = r.id RETURNING r.o, to_jsonb(t.v)'
	  . "\n" . 'SELECT CAST(x AS int8) FROM s.t WHERE a OPERATOR(=) b' . "\n");
ok(!$ok, 'the checker rejects unqualified names') or diag($out);

my $node = bo_node('sqlq');
my $db = 'batch_ops_sql_qualified';
$node->safe_psql('postgres', "CREATE DATABASE $db");
my $offset = -s $node->logfile;
for my $t (qw(create update delete atomic errors limits types triggers privileges
	partitioned idempotency security_engine value_errors internal_names))
{
	# failures do not matter here: only the statements the engine ran
	IPC::Run::run(
		[ $node->installed_command('psql'), '-X', '-q', '-d', $node->connstr($db), '-f', "$sqldir/$t.sql" ],
		'<', \undef, '>', '/dev/null', '2>', '/dev/null',
		init => sub {
			$ENV{PGOPTIONS} = '-c session_preload_libraries=auto_explain'
			  . ' -c auto_explain.log_min_duration=0 -c auto_explain.log_nested_statements=on'
			  . ' -c log_min_messages=log';
		});
}

my %seen;
my @stmts = sort grep { !$seen{$_}++ }
  grep { /pg_catalog\.unnest\(\$1\)|unnest\(\$1\)|idempotency_keys.*\$1/ }
  map { /Query Text: (.*)/ ? $1 : () }
  split(/\n/, slurp_file($node->logfile, $offset));
cmp_ok(scalar(@stmts), '>=', 100,
	'at least 100 engine statements found in the server log (auto_explain works)');
($ok, $out) = check_sql(join('', map { "$_\n" } @stmts));
ok($ok, 'every statement the engine ran is schema-qualified') or diag($out);

$node->stop;
done_testing();
