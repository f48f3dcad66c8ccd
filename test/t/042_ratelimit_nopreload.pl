# Rate limits need batch_ops in shared_preload_libraries (the token buckets
# are in shared memory).  On a server without the preload:
#   - the batch functions and idempotency keys work (rate_limit = 0, the
#     default, needs nothing);
#   - a non-zero batch_ops.rate_limit is a clear error (55000, with a hint),
#     never silently ignored, and so is rate_limit_status(); nothing is
#     written.
# The whole psql session's output (stdout and stderr, in order) is
# compared with the expected one.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('nopreload', "shared_preload_libraries = ''\n",
	{ create_extension => 0 });

my $script = <<'SQL';
\set SHOW_CONTEXT never
SHOW shared_preload_libraries;
CREATE EXTENSION batch_ops;
CREATE TABLE t (id serial PRIMARY KEY, v int);
-- no limit: everything works without the preload
SELECT batch_ops.batch_create('t', '[{"v": 1}]');
SELECT batch_ops.batch_create('t', '[{"v": 2}]', idempotency_key => 'k');
SELECT batch_ops.batch_create('t', '[{"v": 2}]', idempotency_key => 'k');
SELECT count(*) FROM t;
-- a limit cannot be enforced: an error, and nothing is written
SET batch_ops.rate_limit = 10;
SELECT batch_ops.batch_create('t', '[{"v": 3}]');
\echo :SQLSTATE
SELECT * FROM batch_ops.rate_limit_status();
\echo :SQLSTATE
SELECT count(*) FROM t;
RESET batch_ops.rate_limit;
SELECT batch_ops.batch_create('t', '[{"v": 4}]');
SQL

my $expected = <<'OUT';

{"data": [{"v": 1, "id": 1}], "errors": []}
{"data": [{"v": 2, "id": 2}], "errors": []}
{"data": [{"v": 2, "id": 2}], "errors": []}
2
ERROR:  batch_ops must be loaded via shared_preload_libraries to enforce rate limits
HINT:  Add batch_ops to shared_preload_libraries and restart the server, or set batch_ops.rate_limit to 0.
55000
ERROR:  batch_ops must be loaded via shared_preload_libraries to enforce rate limits
HINT:  Add batch_ops to shared_preload_libraries and restart the server, or set batch_ops.rate_limit to 0.
55000
2
{"data": [{"v": 4, "id": 3}], "errors": []}
OUT

my $out = '';
IPC::Run::run(
	[
		$node->installed_command('psql'), '-X', '-q', '-A', '-t',
		'-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=default',
		'-d', $node->connstr('postgres')
	],
	'<', \$script, '>&', \$out,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
is($out, $expected,
	'no preload: batch functions and idempotency keys work; a rate limit is an error (55000), nothing written');

$node->stop;
done_testing();
