# Issue #8 item 1: the launcher and the job workers must not depend on a
# database's settings or objects.
#
# A job worker connects as the bootstrap superuser, so InitPostgres applies
# the database's ALTER DATABASE ... SET settings to it.  A database owner,
# or any role with CREATEDB in a database of its own (the launcher visits
# every database, with or without batch_ops), sets search_path so that a
# schema of theirs comes before pg_catalog, plants same-named operators
# (=(name,name), =(text,text), =(oid,oid), =(bigint,bigint), ...) and
# functions (now(), clock_timestamp(), pg_backend_pid(), lower(),
# unnest(anyarray), to_jsonb(), a count(*) aggregate...) whose code makes
# them superuser when it runs as a superuser, and waits for the next poll.
#
# Required, in every case: the attacker never becomes superuser, no
# planted object ever runs as a superuser (each records session_user,
# current_user and rolsuper into a table PUBLIC may write), and jobs still
# run: they complete, or with hostile settings (read-only transactions, a
# 1 ms statement_timeout) at least end, failed, instead of being stuck.
#
# Cases:
#   A  database owned by "mallory" (not superuser, no CREATEDB) with
#      batch_ops installed; jobs by mallory and by a superuser (create,
#      update, import).  search_path spelled: evil, pg_catalog /
#      "$user", pg_catalog, public with a schema named like the bootstrap
#      superuser / public, pg_catalog with the objects in public.
#   B  databases created by "creator" (only CREATEDB) without batch_ops:
#      evil, pg_catalog / "$user", pg_catalog / "EviL",pg_catalog / public,
#      pg_catalog; the launcher's poll (batch_ops.poll_interval = 1) must
#      visit them.
#   C  databases owned by mallory with batch_ops and evil, pg_catalog, plus
#      default_transaction_read_only = on / statement_timeout = 1ms /
#      default_transaction_isolation = serializable / search_path = ''.
# ALTER ROLE mallory SET search_path (her own sessions and jobs only) is
# set too: what it does to her own jobs is her business, not an escalation.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

my $node = bo_node('worker_search_path', <<'CONF');
batch_ops.max_workers = 4
batch_ops.poll_interval = 1
# nothing but the batch_ops workers connects to the test's databases
autovacuum = off
CONF
my $boot = $node->safe_psql('postgres', 'SELECT rolname FROM pg_authid WHERE oid = 10');

$node->safe_psql('postgres', <<'SQL');
CREATE ROLE mallory LOGIN;
CREATE ROLE creator LOGIN CREATEDB;
SQL

# The planted kit, in schema $s (already quoted), for attacker $who.
sub kit
{
	my ($s, $who) = @_;
	my $sql = <<"SQL";
CREATE FUNCTION $s.spy(tag text) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS \$f\$
DECLARE
	su boolean;
BEGIN
	SELECT r.rolsuper INTO su FROM pg_catalog.pg_roles r
	WHERE r.rolname OPERATOR(pg_catalog.=) current_user;
	-- in the server log too: survives a read-only or aborted transaction
	RAISE WARNING 'BO_SPY tag=% session_user=% current_user=% su=%',
		tag, session_user, current_user, su;
	BEGIN
		INSERT INTO public.evidence (tag, sess, cur, su, pid)
		VALUES (tag, session_user, current_user, su, pg_catalog.pg_backend_pid());
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	IF su THEN
		BEGIN
			EXECUTE 'ALTER ROLE $who SUPERUSER';
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
	END IF;
END \$f\$;
SQL
	my %ops = (
		'name' => 'nameeq',
		'text' => 'texteq',
		'oid' => 'oideq',
		'bigint' => 'int8eq',
		'integer' => 'int4eq');
	for my $t (sort keys %ops)
	{
		$sql .= <<"SQL";
CREATE FUNCTION $s.eq_$t(a $t, b $t) RETURNS boolean LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM $s.spy('=($t,$t)');
	RETURN pg_catalog.$ops{$t}(a, b);
END \$f\$;
CREATE OPERATOR $s.= (LEFTARG = $t, RIGHTARG = $t, FUNCTION = $s.eq_$t);
SQL
	}
	$sql .= <<"SQL";
CREATE FUNCTION $s.lt_tstz(a timestamptz, b timestamptz) RETURNS boolean
LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM $s.spy('<(timestamptz,timestamptz)');
	RETURN pg_catalog.timestamptz_lt(a, b);
END \$f\$;
CREATE OPERATOR $s.< (LEFTARG = timestamptz, RIGHTARG = timestamptz,
	FUNCTION = $s.lt_tstz);
CREATE FUNCTION $s.now() RETURNS timestamptz LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM $s.spy('now()'); RETURN pg_catalog.now(); END \$f\$;
CREATE FUNCTION $s.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM $s.spy('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END \$f\$;
CREATE FUNCTION $s.pg_backend_pid() RETURNS integer LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM $s.spy('pg_backend_pid()'); RETURN pg_catalog.pg_backend_pid(); END \$f\$;
CREATE FUNCTION $s.lower(t text) RETURNS text LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM $s.spy('lower(text)'); RETURN pg_catalog.lower(t); END \$f\$;
CREATE FUNCTION $s.floor(n numeric) RETURNS numeric LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM $s.spy('floor(numeric)'); RETURN pg_catalog.floor(n); END \$f\$;
CREATE FUNCTION $s.unnest(a anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM $s.spy('unnest(anyarray)');
	RETURN QUERY SELECT * FROM pg_catalog.unnest(a);
END \$f\$;
CREATE FUNCTION $s.to_jsonb(v anyelement) RETURNS jsonb LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM $s.spy('to_jsonb(anyelement)'); RETURN pg_catalog.to_jsonb(v); END \$f\$;
CREATE FUNCTION $s.jsonb_build_object(k text, v anyelement) RETURNS jsonb
LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM $s.spy('jsonb_build_object(text,anyelement)');
	RETURN pg_catalog.jsonb_build_object(k, v);
END \$f\$;
CREATE FUNCTION $s.count_step(n bigint) RETURNS bigint LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM $s.spy('count(*)'); RETURN n OPERATOR(pg_catalog.+) 1; END \$f\$;
CREATE AGGREGATE $s.count(*) (SFUNC = $s.count_step, STYPE = bigint, INITCOND = '0');
SQL
	return $sql;
}

# The test's own sessions override the hostile database settings at
# connection time (PGOPTIONS outranks ALTER DATABASE ... SET).
my $OPTS = '-c statement_timeout=0 -c default_transaction_read_only=off'
  . ' -c default_transaction_isolation=read\\ committed';

# run SQL in DB as the bootstrap superuser, with a pinned search_path
sub su_sql
{
	my ($db, $sql) = @_;
	local $ENV{PGOPTIONS} = "$OPTS -c search_path=pg_catalog,pg_temp";
	return $node->safe_psql($db, $sql);
}

sub as_role
{
	my ($db, $who, $sql) = @_;
	local $ENV{PGOPTIONS} = $OPTS;
	my $r = bo_sql($node, $db, $sql, 60, $who);
	die "as $who in $db: $r->{err}" if $r->{sqlstate} ne '';
	return $r->{out};
}

# A database for the attack: owner, batch_ops or not, the schema the kit
# goes to (quoted), the search_path setting, other settings, and the
# search_path a session of the worker would have ($user = bootstrap user).
my @dbs = (
	{ name => 'a_evil', owner => 'mallory', ext => 1, schema => 'evil',
	  path => 'evil, pg_catalog' },
	{ name => 'a_user', owner => 'mallory', ext => 1, schema => qq{"$boot"},
	  path => '"$user", pg_catalog, public' },
	{ name => 'a_public', owner => 'mallory', ext => 1, schema => 'public',
	  path => 'public, pg_catalog' },
	{ name => 'b_evil', owner => 'creator', ext => 0, schema => 'evil',
	  path => 'evil, pg_catalog' },
	{ name => 'b_user', owner => 'creator', ext => 0, schema => qq{"$boot"},
	  path => '"$user", pg_catalog' },
	{ name => 'b_mixed', owner => 'creator', ext => 0, schema => '"EviL"',
	  path => '"EviL",pg_catalog' },
	{ name => 'b_public', owner => 'creator', ext => 0, schema => 'public',
	  path => 'public, pg_catalog' },
	{ name => 'c_readonly', owner => 'mallory', ext => 1, schema => 'evil',
	  path => 'evil, pg_catalog', set => ['default_transaction_read_only = on'] },
	{ name => 'c_timeout', owner => 'mallory', ext => 1, schema => 'evil',
	  path => 'evil, pg_catalog', set => ["statement_timeout = '1ms'"] },
	{ name => 'c_serializable', owner => 'mallory', ext => 1, schema => 'evil',
	  path => 'evil, pg_catalog',
	  set => ["default_transaction_isolation = 'serializable'"] },
	{ name => 'c_empty_path', owner => 'mallory', ext => 1, schema => 'evil',
	  path => "''" },);

my $scratch = bo_scratch($node);
open(my $fh, '>', "$scratch/sup.csv") or die;
print $fh "id,v\n" . join('', map { "$_,file$_\n" } 100 .. 120);
close $fh;
chmod 0644, "$scratch/sup.csv";

# --- set up and plant ----------------------------------------------------
for my $d (@dbs)
{
	my $db = $d->{name};
	if ($d->{owner} eq 'creator')
	{
		# creator makes its own database: nobody else is involved
		as_role('postgres', 'creator', "CREATE DATABASE $db");
	}
	else
	{
		$node->safe_psql('postgres', "CREATE DATABASE $db OWNER mallory");
	}
	su_sql($db, <<'SQL');
CREATE TABLE public.evidence (tag text, sess text, cur text, su boolean,
	pid int, at timestamptz DEFAULT pg_catalog.clock_timestamp());
GRANT SELECT, INSERT ON public.evidence TO PUBLIC;
SQL
	if ($d->{ext})
	{
		su_sql($db, <<'SQL');
CREATE EXTENSION batch_ops;
CREATE TABLE public.sup_t (id int PRIMARY KEY, v text);
INSERT INTO public.sup_t SELECT g, 'old' FROM pg_catalog.generate_series(1, 5) g;
SQL
	}
	# the attacker, in its database
	my $who = $d->{owner};
	my $create_schema =
	  $d->{schema} eq 'public' ? '' : "CREATE SCHEMA $d->{schema};\n";
	as_role($db, $who,
		$create_schema . kit($d->{schema}, $who)
		  . "CREATE TABLE public.${who}_t (id int PRIMARY KEY, v text);\n");
}

# Sanity, before any worker can see the settings: the planted operator is
# what the worker's kind of query resolves to under the search_path the
# database will give ("$user" being the bootstrap superuser for a worker).
for my $d (@dbs)
{
	next if $d->{path} eq "''";
	my $db = $d->{name};
	my $path = $d->{path};
	$path =~ s/"\$user"/"$boot"/;
	as_role($db, $d->{owner},
		"SET search_path = $path;\n"
		  . "SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'batch_ops';");
	cmp_ok(
		su_sql($db,
			"SELECT count(*) FROM public.evidence WHERE tag = '=(name,name)'"
			  . " AND cur = '$d->{owner}' AND NOT su"),
		'>', 0,
		"sanity $db: under search_path $d->{path} the worker's query runs the planted =(name,name)"
	);
}

# Now the attackers set their databases' settings.
for my $d (@dbs)
{
	my ($db, $who) = ($d->{name}, $d->{owner});
	as_role($db, $who, "ALTER DATABASE $db SET search_path = $d->{path}");
	as_role($db, $who, "ALTER DATABASE $db SET $_") for @{ $d->{set} || [] };
}
as_role('a_evil', 'mallory', 'ALTER ROLE mallory SET search_path = evil, pg_catalog');

# --- jobs in the batch_ops databases -------------------------------------
my %jobs;    # db => [[id, what]]
for my $d (grep { $_->{ext} } @dbs)
{
	my $db = $d->{name};
	my $who = $d->{owner};
	my $id = as_role($db, $who,
		"SELECT batch_ops.submit_batch('create', 'public.${who}_t',"
		  . " '[{\"id\": 1, \"v\": \"a\"}, {\"id\": 2, \"v\": \"b\"}]')");
	push @{ $jobs{$db} }, [ $id, "$who\'s create" ];
	$id = su_sql($db,
		"SELECT batch_ops.submit_batch('create', 'public.sup_t',"
		  . " '[{\"id\": 10, \"v\": \"a\"}, {\"id\": 11, \"v\": \"b\"}]')");
	push @{ $jobs{$db} }, [ $id, "superuser's create" ];
	$id = su_sql($db,
		"SELECT batch_ops.submit_batch('update', 'public.sup_t',"
		  . " '[{\"id\": 1, \"v\": \"new\"}, {\"id\": 2, \"v\": \"new\"}]')");
	push @{ $jobs{$db} }, [ $id, "superuser's update" ];
	$id = su_sql($db,
		"SELECT batch_ops.submit_import('public.sup_t', '$scratch/sup.csv')");
	push @{ $jobs{$db} }, [ $id, "superuser's import" ];
}

# --- the launcher's poll visits the databases without batch_ops -----------
# Only batch_ops workers connect to these databases now (autovacuum is off),
# so a rise of the database's committed transactions after every other
# session has left is a worker's visit.  Wait for two, so that the second
# started after the planting for certain.
sub xact_commit
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'");
}
for my $d (grep { !$_->{ext} } @dbs)
{
	my $db = $d->{name};
	my $visits = 0;
	if (bo_wait_until(
			sub {
				$node->safe_psql('postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'") == 0;
			},
			15))
	{
		my $last = xact_commit($db);
		bo_wait_until(
			sub {
				my $now = xact_commit($db);
				$visits++ if $now > $last;
				$last = $now;
				return $visits >= 2;
			},
			15);
	}
	ok($visits >= 2, "$db: the launcher's poll visited the database (twice)");
}

# --- outcomes --------------------------------------------------------------
# every job, in every database, reaches a final status (one deadline)
my %status;
bo_wait_until(
	sub {
		my $pending = 0;
		for my $db (keys %jobs)
		{
			for my $j (@{ $jobs{$db} })
			{
				my $st = su_sql($db,
					"SELECT status FROM batch_ops.job_queue WHERE id = $j->[0]");
				$status{$db}{ $j->[0] } = $st;
				$pending++ unless $st =~ /^(completed|failed|cancelled)$/;
			}
		}
		return $pending == 0;
	},
	25);
for my $d (grep { $_->{ext} } @dbs)
{
	my $db = $d->{name};
	for my $j (@{ $jobs{$db} })
	{
		my ($id, $what) = @$j;
		my $st = $status{$db}{$id} // '';
		if ($d->{set})
		{
			like($st, qr/^(completed|failed)$/,
				"$db: $what job $id ends despite @{$d->{set}} ($st)");
		}
		else
		{
			is($st, 'completed', "$db: $what job $id completed");
		}
	}
	next if $d->{set};
	is(su_sql($db, "SELECT count(*) FROM public.mallory_t"),
		'2', "$db: mallory's rows were written");
	is( su_sql($db,
			"SELECT count(*) FILTER (WHERE id IN (10, 11)) || ','"
			  . " || count(*) FILTER (WHERE v = 'new') || ','"
			  . " || count(*) FILTER (WHERE v LIKE 'file%') FROM public.sup_t"),
		'2,2,21',
		"$db: the superuser's create, update and import were applied");
}

for my $who ('mallory', 'creator')
{
	is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$who'"),
		'f', "$who is not superuser");
}
for my $d (@dbs)
{
	my $db = $d->{name};
	my $ran = su_sql($db,
		"SELECT coalesce(string_agg(DISTINCT tag || ' as ' || cur, ', '), '')"
		  . " FROM public.evidence WHERE su OR cur <> '$d->{owner}'");
	is($ran, '', "$db: no planted object ran as a superuser (or as anyone but its owner)");
}

# the log sees what a read-only or rolled-back transaction could not record
my @su_lines = grep { /WARNING:  BO_SPY .* su=t/ } split /\n/, slurp_file($node->logfile);
is(scalar(@su_lines), 0, 'the server log shows no planted object running as a superuser')
  or diag(join("\n", @su_lines[ 0 .. ($#su_lines < 4 ? $#su_lines : 4) ]));

# leave nothing running
for my $d (grep { $_->{ext} } @dbs)
{
	su_sql($d->{name},
		"SELECT batch_ops.cancel_job(id) FROM batch_ops.job_queue"
		  . " WHERE status IN ('queued', 'running')");
}
$node->stop('immediate');
done_testing();
