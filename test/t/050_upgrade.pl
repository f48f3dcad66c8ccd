# ALTER EXTENSION batch_ops UPDATE from every earlier version.
#
# In one cluster, database "fresh" installs the current version, and for
# each earlier version (0.1.0, 0.2.0 and 0.3.0 today) a database of its own
# installs that version and gets the jobs its library would have left
# behind: no older library is at hand, so the test writes the job rows as
# that library wrote them (old_jobs_state says which): finished jobs with errors, an
# import and a batch interrupted after their first chunk, a queued
# import.  It also stores an idempotency key with batch_create (the batch
# functions work with the new library under the old objects).  Before the
# update the job API refuses (55000, with the versions and the hint) and
# the job workers leave the database, the jobs untouched.  After it: the
# version is the default one; both databases have the same extension
# objects (pg_dump --binary-upgrade lists the extension's members with
# their definitions, ACLs and comments; compared as sets of TOC entries);
# job(), job_errors() and the jobs view answer for the finished jobs with
# the values of the old rows (literals); the waiting jobs run from their
# checkpoints, each row once; the key replays; new jobs of both kinds run.
# Also: the built install script and every upgrade script are installed,
# and every version has an update path to the default one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

# The launcher looks into every database each second, so that workers
# come while the jobs wait for the update (and say so in the log) and the
# waiting jobs start soon after it.  The old finished jobs carry fixed
# dates: a worker's purge must not take them (job_ttl: 60 years).
my $node = bo_node('upgrade', <<'CONF');
batch_ops.poll_interval = 1
batch_ops.job_ttl = 1892160000
log_min_messages = log
CONF
my $dir = bo_scratch($node);

sub sq { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); }

# ---------------------------------------------------------------- installed files
my $default = sq('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'batch_ops'");
is($default, '0.4.0', 'the default version is 0.4.0');
my $extdir = $node->config_data('--sharedir') . '/extension';
ok(-f "$extdir/batch_ops--$default.sql",
	"the built install script batch_ops--$default.sql is installed");
# the scripts kept in the tree (DATA): released versions and upgrades
my @scripts = grep { $_ ne "batch_ops--$default.sql" }
  map { s{^sql/}{}r } glob('sql/batch_ops--*.sql');
for my $up ('0.1.0--0.2.0', '0.2.0--0.3.0', '0.3.0--0.4.0')
{
	ok(grep({ $_ eq "batch_ops--$up.sql" } @scripts), "the tree has the $up upgrade script");
}
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
		# the OIDs of the configuration tables differ between the two
		# databases: compare how many there are
		$entry =~ s{(binary_upgrade_create_empty_extension\([^)]*?)'\{([0-9,]*)\}'}
		  {$1 . "'{" . scalar(split(/,/, $2)) . " config tables}'"}e;
		$entry =~ s{^(CREATE (?:UNLOGGED )?TABLE [^\n]* \(\n)(.*?)(\n\))}
		  {$1 . join("\n", sort map { s/,$//r } split(/\n/, $2)) . $3}mse;
		$entry =~ s/\n{2,}/\n/g;
		$entry =~ s/(?:\n--)+\s*\z//;    # the end of the dump, after the last entry
		$entry =~ s/^\s+|\s+$//g;
		push @entries, $entry;
	}
	return [ sort @entries ];
}

# the role that submitted the old jobs: a name of its own in the answers
sq('postgres', 'CREATE ROLE old_user LOGIN; GRANT pg_read_server_files TO old_user');

# ---------------------------------------------------------------- fresh install
sq('postgres', 'CREATE DATABASE fresh');
sq('fresh', 'CREATE EXTENSION batch_ops');
my $fresh_schema = extension_schema('fresh');
cmp_ok(scalar(@$fresh_schema), '>', 20,
	'the dump of the fresh database lists the extension objects');

# ---------------------------------------------------------------- the old state
# No library of an earlier version is at hand, so the state its library
# would have left is written into the job tables as that library wrote
# them, as superuser, under the earlier version's objects.  One function
# per earlier version (its job tables' layout); it returns the checks to
# run after the update.
my %old_state = map { my $v = $_; ($v => sub { old_jobs_state($_[0], $v) }) } ('0.1.0', '0.2.0', '0.3.0');

# The 0.1.0 library (d118959: src/jobs.c, src/worker.c, src/batch_job.c,
# src/csv_import.c) kept a job's counters in created/updated/deleted/
# failed, its totals in bytes_total (imports, once the file's size was
# known) and items_total (batches, at submit), its checkpoint in
# ckpt_offset/ckpt_line/columns (imports: the next unread byte, the lines
# read before it, the column of each field) or ckpt_index (batches: the
# next item); an error row has pos = line (imports) or index (batches);
# a batch's job_item rows stay until it finishes.  The 0.2.0 library
# (8b65d58^) kept the same state in checkpoint (imports: offset, line,
# columns; batches: index) and summary (the counters, bytes_total or
# items_total); its job_error and job_item rows are 0.1.0's.  The 0.3.0
# library (1023458) left its jobs as 0.2.0's did: same job tables.  Jobs 1-5,
# the same in both layouts:
#   1 a batch that completed with two item errors
#   2 an import that completed with a row error
#   3 an import interrupted after its first chunk of 3 rows (one bad):
#     the 3 rows are in the table, the checkpoint after them
#   4 a batch interrupted after its first chunk of 2 items (one bad)
#   5 an import still queued
sub old_jobs_state
{
	my ($db, $from) = @_;
	my $done_csv = "id,name\n10,x\nnot a number,y\n11,z\n";
	my $resume_head = "id,name\n20,a\n21,b\nbad,c\n";
	my $resume_csv = $resume_head . "23,d\nnope,e\n25,f\n";
	my $queued_csv = "id,name\n30,q\n31,w\n";
	my $done_path = write_file("$dir/$db-done.csv", $done_csv);
	my $resume_path = write_file("$dir/$db-resume.csv", $resume_csv);
	my $queued_path = write_file("$dir/$db-queued.csv", $queued_csv);
	my ($done_len, $head_len, $resume_len) =
	  (length($done_csv), length($resume_head), length($resume_csv));
	my $resume_progress = int(100 * $head_len / $resume_len);

	# the job rows in the layout of the version's job table
	my $job_rows = $from eq '0.1.0' ? qq{
INSERT INTO batch_ops.job_queue
  (id, role, kind, operation, target, source, options, atomic, status,
   progress, bytes_total, items_total, rows_done, created, updated, deleted,
   failed, errors_total, ckpt_offset, ckpt_line, ckpt_index, columns,
   attempts, worker_pid, error, submitted_at, started_at, finished_at)
VALUES
  (1, 'old_user'::regrole, 'batch', 'create', 'items'::regclass, NULL, '{}', false,
   'completed', 100, NULL, 4, 4, 2, 0, 0, 2, 2, 0, 0, 4, NULL,
   1, 4001, NULL, '2026-01-05 10:00:00+00', '2026-01-05 10:00:01+00', '2026-01-05 10:00:02+00'),
  (2, 'old_user'::regrole, 'import', 'create', 'imported'::regclass, '$done_path',
   '{"header": true}', false,
   'completed', 100, $done_len, NULL, 3, 2, 0, 0, 1, 1, $done_len, 4, 0, '["id", "name"]',
   1, 4002, NULL, '2026-01-05 11:00:00+00', '2026-01-05 11:00:01+00', '2026-01-05 11:00:03+00'),
  (3, 'old_user'::regrole, 'import', 'create', 'imported'::regclass, '$resume_path',
   '{"header": true, "chunk_size": 3}', false,
   'running', $resume_progress, $resume_len, NULL, 3, 2, 0, 0, 1, 1, $head_len, 4, 0,
   '["id", "name"]',
   1, 4003, NULL, '2026-01-05 12:00:00+00', '2026-01-05 12:00:01+00', NULL),
  (4, 'old_user'::regrole, 'batch', 'create', 'items'::regclass, NULL, '{"chunk_size": 2}', false,
   'running', 40, NULL, 5, 2, 1, 0, 0, 1, 1, 0, 0, 2, NULL,
   1, 4004, NULL, '2026-01-05 13:00:00+00', '2026-01-05 13:00:01+00', NULL),
  (5, 'old_user'::regrole, 'import', 'create', 'imported'::regclass, '$queued_path', '{}', false,
   'queued', 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL,
   0, NULL, NULL, '2026-01-05 14:00:00+00', NULL, NULL);
} : qq{
INSERT INTO batch_ops.job_queue
  (id, role, kind, operation, target, source, options, atomic, status,
   progress, rows_done, errors_total, checkpoint, summary,
   attempts, worker_pid, error, submitted_at, started_at, finished_at)
VALUES
  (1, 'old_user'::regrole, 'batch', 'create', 'items'::regclass, NULL, '{}', false,
   'completed', 100, 4, 2, '{"index": 4}',
   '{"created": 2, "updated": 0, "deleted": 0, "failed": 2, "items_total": 4}',
   1, 4001, NULL, '2026-01-05 10:00:00+00', '2026-01-05 10:00:01+00', '2026-01-05 10:00:02+00'),
  (2, 'old_user'::regrole, 'import', 'create', 'imported'::regclass, '$done_path',
   '{"header": true}', false,
   'completed', 100, 3, 1, '{"offset": $done_len, "line": 4, "columns": ["id", "name"]}',
   '{"created": 2, "updated": 0, "deleted": 0, "failed": 1, "bytes_total": $done_len}',
   1, 4002, NULL, '2026-01-05 11:00:00+00', '2026-01-05 11:00:01+00', '2026-01-05 11:00:03+00'),
  (3, 'old_user'::regrole, 'import', 'create', 'imported'::regclass, '$resume_path',
   '{"header": true, "chunk_size": 3}', false,
   'running', $resume_progress, 3, 1, '{"offset": $head_len, "line": 4, "columns": ["id", "name"]}',
   '{"created": 2, "updated": 0, "deleted": 0, "failed": 1, "bytes_total": $resume_len}',
   1, 4003, NULL, '2026-01-05 12:00:00+00', '2026-01-05 12:00:01+00', NULL),
  (4, 'old_user'::regrole, 'batch', 'create', 'items'::regclass, NULL, '{"chunk_size": 2}', false,
   'running', 40, 2, 1, '{"index": 2}',
   '{"created": 1, "updated": 0, "deleted": 0, "failed": 1, "items_total": 5}',
   1, 4004, NULL, '2026-01-05 13:00:00+00', '2026-01-05 13:00:01+00', NULL),
  (5, 'old_user'::regrole, 'import', 'create', 'imported'::regclass, '$queued_path', '{}', false,
   'queued', 0, 0, 0, '{}', '{}',
   0, NULL, NULL, '2026-01-05 14:00:00+00', NULL, NULL);
};

	sq($db, qq{
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
-- no key: a row imported twice shows as two rows
CREATE TABLE imported (id int, name text);
GRANT SELECT, INSERT ON items, imported TO old_user;

-- what the jobs had written before the update
INSERT INTO items VALUES (1, 'a'), (3, 'c'), (40, 'p');
INSERT INTO imported VALUES (10, 'x'), (11, 'z'), (20, 'a'), (21, 'b');

$job_rows
SELECT setval('batch_ops.job_queue_id_seq', 5);

INSERT INTO batch_ops.job_item (job_id, idx, item) VALUES
  (4, 0, '{"id": 40, "name": "p"}'), (4, 1, '{"id": 41}'),
  (4, 2, '{"id": 42, "name": "r"}'), (4, 3, '{"id": 40, "name": "again"}'),
  (4, 4, '{"id": 44, "name": "t"}');

INSERT INTO batch_ops.job_error
  (job_id, pos, line, index, error, message, sqlstate, detail, raw)
VALUES
  (1, 1, NULL, 1, 'validation_error',
   'null value in column "name" of relation "items" violates not-null constraint',
   '23502', NULL, '{"id": 2}'),
  (1, 3, NULL, 3, 'conflict', 'duplicate key value violates unique constraint "items_pkey"',
   '23505', 'Key (id)=(1) already exists.', '{"id": 1, "name": "dup"}'),
  (2, 3, 3, NULL, 'validation_error', 'invalid input syntax for type integer: "not a number"',
   '22P02', NULL, 'not a number,y'),
  (3, 4, 4, NULL, 'validation_error', 'invalid input syntax for type integer: "bad"',
   '22P02', NULL, 'bad,c'),
  (4, 1, NULL, 1, 'validation_error',
   'null value in column "name" of relation "items" violates not-null constraint',
   '23502', NULL, '{"id": 41}');
});

	# What job(), job_errors() and the jobs view must say after the update:
	# the rows' values, as the API shapes them (README "Async jobs").
	my $null_name = q{"null value in column \"name\" of relation \"items\" violates not-null constraint"};
	my $err1 = qq{[{"index": 1, "error": "validation_error", "message": $null_name,
	  "sqlstate": "23502", "raw": "{\\"id\\": 2}"},
	 {"index": 3, "error": "conflict",
	  "message": "duplicate key value violates unique constraint \\"items_pkey\\"",
	  "sqlstate": "23505", "detail": "Key (id)=(1) already exists.",
	  "raw": "{\\"id\\": 1, \\"name\\": \\"dup\\"}"}]};
	my $err2 = q{[{"line": 3, "error": "validation_error",
	  "message": "invalid input syntax for type integer: \"not a number\"",
	  "sqlstate": "22P02", "raw": "not a number,y"}]};
	my %expect;
	$expect{'job(1)'} = qq{{"job_id": 1, "kind": "batch", "operation": "create",
	 "target": "public.items", "source": null, "status": "completed", "progress": 100,
	 "rows_done": 4, "atomic": false, "error": null, "submitted_by": "old_user",
	 "submitted_at": "2026-01-05T10:00:00+00:00", "started_at": "2026-01-05T10:00:01+00:00",
	 "finished_at": "2026-01-05T10:00:02+00:00",
	 "results": {"created": 2, "updated": 0, "deleted": 0, "failed": 2,
	             "errors_total": 2, "errors": $err1}}};
	$expect{'job(2)'} = qq{{"job_id": 2, "kind": "import", "operation": "create",
	 "target": "public.imported", "source": "$done_path", "status": "completed", "progress": 100,
	 "rows_done": 3, "atomic": false, "error": null, "submitted_by": "old_user",
	 "submitted_at": "2026-01-05T11:00:00+00:00", "started_at": "2026-01-05T11:00:01+00:00",
	 "finished_at": "2026-01-05T11:00:03+00:00",
	 "results": {"created": 2, "updated": 0, "deleted": 0, "failed": 1,
	             "errors_total": 1, "errors": $err2}}};
	# job_errors() has the columns line, index, error, message, raw
	$expect{'job_errors(1)'} = qq{[
	 {"line": null, "index": 1, "error": "validation_error", "message": $null_name,
	  "raw": "{\\"id\\": 2}"},
	 {"line": null, "index": 3, "error": "conflict",
	  "message": "duplicate key value violates unique constraint \\"items_pkey\\"",
	  "raw": "{\\"id\\": 1, \\"name\\": \\"dup\\"}"}]};
	$expect{'job_errors(2)'} = q{[{"line": 3, "index": null, "error": "validation_error",
	  "message": "invalid input syntax for type integer: \"not a number\"",
	  "raw": "not a number,y"}]};
	$expect{'jobs view, jobs 1 and 2'} = qq{[
	 {"job_id": 1, "kind": "batch", "operation": "create", "target": "public.items",
	  "source": null, "status": "completed", "progress": 100, "rows_done": 4,
	  "created": 2, "updated": 0, "deleted": 0, "failed": 2, "errors_total": 2,
	  "error": null, "submitted_by": "old_user", "options": {},
	  "submitted_at": "2026-01-05T10:00:00+00:00", "started_at": "2026-01-05T10:00:01+00:00",
	  "finished_at": "2026-01-05T10:00:02+00:00"},
	 {"job_id": 2, "kind": "import", "operation": "create", "target": "public.imported",
	  "source": "$done_path", "status": "completed", "progress": 100, "rows_done": 3,
	  "created": 2, "updated": 0, "deleted": 0, "failed": 1, "errors_total": 1,
	  "error": null, "submitted_by": "old_user", "options": {"header": true},
	  "submitted_at": "2026-01-05T11:00:00+00:00", "started_at": "2026-01-05T11:00:01+00:00",
	  "finished_at": "2026-01-05T11:00:03+00:00"}]};

	# The queued and interrupted jobs, once run by the new library.
	my %finish;
	# job 3 resumes at byte $head_len, line 4, with the column map: the
	# last 3 rows only, the bad one on line 6
	$finish{3} = {
		results => '{"created": 4, "updated": 0, "deleted": 0, "failed": 2, "errors_total": 2}',
		rows_done => 6,
		started_at => '2026-01-05T12:00:01+00:00',
		errors => q{4|validation_error|invalid input syntax for type integer: "bad"|bad,c
6|validation_error|invalid input syntax for type integer: "nope"|nope,e},
		rows => ['imported', 'id BETWEEN 20 AND 29', '20|a,21|b,23|d,25|f'],
	};
	# job 4 resumes at item 2 of 5: item 3 conflicts with item 0's row
	$finish{4} = {
		results => '{"created": 3, "updated": 0, "deleted": 0, "failed": 2, "errors_total": 2}',
		rows_done => 5,
		started_at => '2026-01-05T13:00:01+00:00',
		errors => q{1|validation_error|null value in column "name" of relation "items" violates not-null constraint|{"id": 41}
3|conflict|duplicate key value violates unique constraint "items_pkey"|{"id": 40, "name": "again"}},
		rows => ['items', 'id BETWEEN 40 AND 49', '40|p,42|r,44|t'],
	};
	# job 5 starts from its empty checkpoint: header, then 2 rows
	$finish{5} = {
		results => '{"created": 2, "updated": 0, "deleted": 0, "failed": 0, "errors_total": 0}',
		rows_done => 2,
		started_at => undef,
		errors => '',
		rows => ['imported', 'id BETWEEN 30 AND 39', '30|q,31|w'],
	};
	return { expect => \%expect, finish => \%finish, finished => [ 1, 2 ] };
}

# The answers of the job API for the finished old jobs, as jsonb text.
sub answers
{
	my ($db) = @_;
	my %a;
	for my $id (1, 2)
	{
		$a{"job($id)"} = bo_q($node, $db, "SELECT batch_ops.job($id)");
		$a{"job_errors($id)"} = bo_q($node, $db,
			"SELECT jsonb_agg(to_jsonb(e)) FROM batch_ops.job_errors($id) e");
	}
	$a{'jobs view, jobs 1 and 2'} = bo_q($node, $db,
		'SELECT jsonb_agg(to_jsonb(j) ORDER BY job_id) FROM batch_ops.jobs j WHERE job_id IN (1, 2)');
	return \%a;
}

# The status and counters of jobs straight from the table (the API
# refuses before the update).
sub raw_state
{
	my ($db) = @_;
	return sq($db,
		'SELECT string_agg(id || $$:$$ || status || $$/$$ || rows_done, $$ $$ ORDER BY id) FROM batch_ops.job_queue');
}

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
	ok($old_state{$from}, "$from: the test knows how that version's library left its jobs")
	  or return;
	my $log_offset = -s $node->logfile;

	my $state = $old_state{$from}->($db);

	# Under the old objects, the batch functions work: a stored key.
	my $key_call = q{SELECT batch_ops.batch_create('items',
    '[{"id": 60, "name": "keyed"}, {"id": 61}]', false, 'upgrade-key')};
	my $key_answer = sq($db, $key_call);
	like($key_answer, qr/"name": "keyed"/, "$from: the keyed call created a row");

	# The job API refuses until the update, saying what to run.
	for my $call (
		'SELECT batch_ops.job(1)',
		'SELECT * FROM batch_ops.job_errors(1)',
		'SELECT * FROM batch_ops.jobs',
		q{SELECT batch_ops.wait_job(3, '1 s')},
		'SELECT batch_ops.cancel_job(5)',
		q{SELECT batch_ops.submit_batch('create', 'items', '[{"id": 70, "name": "n"}]')},
		"SELECT batch_ops.submit_import('imported', '$dir/$db-queued.csv')")
	{
		my $r = bo_sql($node, $db, $call);
		is($r->{sqlstate}, '55000', "$from: before the update, $call is refused (55000)");
		like(
			$r->{err},
			qr/batch_ops's SQL objects in this database are at version $from, its library at version $default\n.*HINT:  Run ALTER EXTENSION batch_ops UPDATE\./s,
			"$from: ... saying the versions and what to run");
	}

	# The workers leave the database (batch_ops.poll_interval = 1 sends
	# one every second): the jobs wait, untouched.
	my $before = raw_state($db);
	is($before, '1:completed/4 2:completed/3 3:running/3 4:running/2 5:queued/0',
		"$from: the old jobs as the old library left them");
	ok( bo_wait_until(
			sub {
				scalar(bo_log_lines($node,
						qr/batch_ops jobs in database "$db" wait: its SQL objects are at version \Q$from\E, the library at version \Q$default\E/,
						$log_offset)) >= 2;
			},
			30),
		"$from: job workers came to the database and left, twice (LOG)");
	is(raw_state($db), $before, "$from: the queued and interrupted jobs did not run");
	is(sq($db, 'SELECT count(*) FROM imported'), '4', "$from: nor imported anything");

	# The update.  Its commit wakes the launcher for the database: with the
	# poll now far away, the waiting jobs finishing within wait_status's
	# 60 s shows it.
	sq('postgres', 'ALTER SYSTEM SET batch_ops.poll_interval = 600');
	sq('postgres', 'SELECT pg_reload_conf()');
	sleep(2);    # the launcher reads the new setting before its next wait
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

	# The finished jobs answer with their rows' values.
	my $after = answers($db);
	for my $k (sort keys %{ $state->{expect} })
	{
		my $want = $state->{expect}{$k} =~ s/'/''/gr;
		is($after->{$k}, sq($db, "SELECT '$want'::jsonb"),
			"$from: $k answers with the old rows' values");
	}

	# The waiting jobs run from their checkpoints.
	for my $id (sort keys %{ $state->{finish} })
	{
		my $f = $state->{finish}{$id};
		is(wait_status($db, $id), 'completed', "$from: old job $id completed after the update");
		is( sq($db, qq{SELECT concat_ws(' ', j->'progress', j->'rows_done', (j->'results') - 'errors')
  FROM batch_ops.job($id) j}),
			sq($db, "SELECT concat_ws(' ', 100, $f->{rows_done}, '$f->{results}'::jsonb)"),
			"$from: old job $id: progress, rows done, counters (the old ones carried on)");
		is(sq($db, "SELECT batch_ops.job($id)->>'started_at'"), $f->{started_at},
			"$from: old job $id: started when the old library started it")
		  if defined $f->{started_at};
		is( sq($db,
				"SELECT coalesce(line::text, index::text) || '|' || error || '|' || message || '|' || raw FROM batch_ops.job_errors($id)"),
			$f->{errors},
			"$from: old job $id: its errors, old and new, by line or index");
		my ($table, $where, $rows) = @{ $f->{rows} };
		is( sq($db,
				"SELECT string_agg(id || '|' || name, ',' ORDER BY id, name) FROM $table WHERE $where"),
			$rows, "$from: old job $id: every row of it once");
	}

	# The stored key replays.
	my $items_before = sq($db, 'SELECT count(*) FROM items');
	is(sq($db, $key_call), $key_answer,
		"$from: the stored idempotency key replays its response");
	is(sq($db, 'SELECT count(*) FROM items'), $items_before,
		"$from: and the replay wrote nothing");

	# New jobs run.
	my $new_batch = sq($db, q{
SELECT batch_ops.submit_batch('create', 'items', '[{"id": 80, "name": "new"}, {"id": 81}]')});
	cmp_ok($new_batch, '>', 5, "$from: a new job gets an id after the old ones");
	is(wait_status($db, $new_batch), 'completed',
		"$from: a new batch job runs after the update");
	like(sq($db, "SELECT batch_ops.job($new_batch)"), qr/"created": 1/,
		"$from: and creates its row");
	is(sq($db, "SELECT count(*) FROM batch_ops.job_errors($new_batch)"), '1',
		"$from: and records its item error");
	my $csv2 = write_file("$dir/$db-new.csv", "id,name\n90,p\n91,q\nx,r\n");
	my $new_import = sq($db,
		qq{SELECT batch_ops.submit_import('imported', '$csv2', '{"header": true}')});
	is(wait_status($db, $new_import), 'completed',
		"$from: a new import job runs after the update");
	is(sq($db, 'SELECT count(*) FROM imported WHERE id IN (90, 91)'), '2',
		"$from: and imports its rows");
	is(sq($db, "SELECT count(*) FROM batch_ops.job_errors($new_import)"), '1',
		"$from: and records its row error");
	is(sq($db, q{SELECT string_agg(job_id::text, ',' ORDER BY job_id) FROM batch_ops.jobs WHERE status = 'completed'}),
		"1,2,3,4,5,$new_batch,$new_import",
		"$from: the jobs view lists the old and the new jobs");
	sq('postgres', 'ALTER SYSTEM RESET batch_ops.poll_interval');
	sq('postgres', 'SELECT pg_reload_conf()');
	return;
}

my @earlier = split /\n/, sq('postgres', qq{
SELECT version FROM pg_available_extension_versions
 WHERE name = 'batch_ops' AND version <> '$default' ORDER BY version});
ok(grep({ $_ eq '0.1.0' } @earlier), 'the versions to update from include 0.1.0');
ok(grep({ $_ eq '0.2.0' } @earlier), 'the versions to update from include 0.2.0');
ok(grep({ $_ eq '0.3.0' } @earlier), 'the versions to update from include 0.3.0');
upgrade_from($_) for @earlier;

# The cluster role is the one of a fresh install (the updates leave it).
is(sq('postgres', q{
SELECT rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = 'batch_ops_fetch'}),
	'f|f|t', 'the role batch_ops_fetch exists, NOLOGIN');

$node->stop;
done_testing();
