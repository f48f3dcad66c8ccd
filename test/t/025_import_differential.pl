# Issue #14: the differential test.  An import job must store exactly the
# rows COPY accepts, with exactly COPY's values, and report exactly the
# records COPY rejects.
#
# For each file of the corpus (test/corpus/DiffCorpus.pm: PostgreSQL's COPY
# regression cases, pgloader-style quoting, line ends, "\.", byte-order
# marks, SJIS/BIG5/GBK/GB18030/JOHAB with ASCII-looking trail bytes, 1 MB
# fields, records across the 64 kB read buffers, every constraint and
# trigger kind, json/jsonb and a jsonb domain, role settings, seeded random
# fuzz with 0, 1, 10 and 50 % bad records), whose records the corpus knows:
#
# - the reference: COPY (same options) on each record alone, in file order,
#   each in its own transaction, into a fresh copy of the target table (as
#   the job's role, so with its settings): which records COPY accepts, with
#   which values, and which it rejects, with which SQLSTATE and message;
#   the records before count (a duplicate key), the others do not;
# - four import jobs, submitted together: partial and atomic, each on the
#   COPY path (no row-level security) and on the batch engine path (the
#   same table with a permissive row-level security policy, for a role
#   that is not its owner: the import then writes every row through the
#   engine);
# - partial: the rows stored equal the accepted records' rows (as text),
#   the job's errors are the rejected records -- line (the physical line on
#   which the record ends), SQLSTATE, error name, message;
# - atomic: all or nothing: completed with every row when COPY accepted
#   every record, else failed with no row and the same errors;
# - COPY of the whole file (as the job's role, rolled back) succeeds
#   exactly when every record alone does (skipped for the files that use a
#   documented departure).
#
# One cluster; all jobs are submitted at once and the reference COPY runs
# while they do.  About 2 minutes on a busy 2-core machine.
#
# Documented departures, encoded in the corpus: a line "\." is data (the
# reference COPY gets it quoted), mixed line ends are accepted, and a UTF-8
# byte-order mark is skipped (the reference records do not include it).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../corpus";
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BatchOpsTest;
use DiffCorpus;

my $t0 = time;
my $node = bo_node('diff', "batch_ops.max_workers = 3\n");
my $dir = bo_scratch($node);
my $db = 'u8';

$node->safe_psql('postgres', q{
CREATE DATABASE u8 TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
CREATE ROLE diff_eng LOGIN IN ROLE pg_read_server_files;
CREATE ROLE diff_loader LOGIN IN ROLE pg_read_server_files;
ALTER ROLE diff_loader SET datestyle = 'DMY';
ALTER ROLE diff_loader SET timezone = 'Asia/Tokyo';
ALTER ROLE diff_loader IN DATABASE u8 SET timezone = 'America/New_York';
});

sub sq
{
	my ($sql, $user) = @_;
	return $node->safe_psql($db, $sql,
		extra_params => defined $user ? [ '-U', $user ] : []);
}

sq(q{
CREATE EXTENSION batch_ops;
CREATE TABLE diff_parent (id int PRIMARY KEY);
INSERT INTO diff_parent SELECT generate_series(1, 10);
CREATE DOMAIN diff_jdom AS jsonb CHECK (VALUE ? 'k');
CREATE DOMAIN diff_posint AS int NOT NULL CHECK (VALUE > 0);
CREATE TYPE diff_pair AS (x int, y text);
CREATE TYPE diff_mood AS ENUM ('sad', 'ok', 'happy');

CREATE FUNCTION diff_before_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.a = 0 THEN RETURN NULL; END IF;
	IF NEW.b = 'raise' THEN RAISE EXCEPTION 'row % refused', NEW.a; END IF;
	IF NEW.b = 'state' THEN
		RAISE EXCEPTION 'row % refused by a check', NEW.a USING ERRCODE = 'check_violation';
	END IF;
	IF NEW.b = 'modify' THEN NEW.b := 'modified by the trigger'; END IF;
	RETURN NEW;
END $$;
CREATE FUNCTION diff_raise_t() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.t = 'raise' THEN RAISE EXCEPTION 'row % refused', NEW.k; END IF;
	RETURN NEW;
END $$;
CREATE FUNCTION diff_after_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.b = 'after' THEN RAISE EXCEPTION 'row % refused after', NEW.a; END IF;
	RETURN NULL;
END $$;
CREATE FUNCTION diff_before_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM 1;
	RETURN NULL;
END $$;
CREATE FUNCTION diff_after_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM nt WHERE b = 'stmt') THEN
		RAISE EXCEPTION 'statement refused';
	END IF;
	RETURN NULL;
END $$;

-- the reference: COPY on each record alone, in order, each in its own
-- transaction (so that the jobs' snapshots, meanwhile, do not meet an
-- overflowed subtransaction cache)
CREATE TABLE diff_ref (case_id int, recno int, ok bool, nrows bigint,
	sqlstate text, message text);
GRANT INSERT ON diff_ref TO PUBLIC;
CREATE FUNCTION diff_copy_one(tab text, file text, opts text, case_id int, i int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format('COPY %s FROM %L WITH (%s)', tab, file, opts);
	GET DIAGNOSTICS n = ROW_COUNT;
	INSERT INTO diff_ref VALUES (case_id, i, true, n, NULL, NULL);
EXCEPTION WHEN OTHERS THEN
	INSERT INTO diff_ref VALUES (case_id, i, false, 0, SQLSTATE, SQLERRM);
END $$;
CREATE PROCEDURE diff_copy_each(tab text, files text[], opts text, case_id int)
LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. coalesce(array_length(files, 1), 0) LOOP
		PERFORM diff_copy_one(tab, files[i], opts, case_id, i);
		COMMIT;
	END LOOP;
END $$;
-- COPY of the whole file (rolled back): its SQLSTATE, or '' when it succeeds
CREATE FUNCTION diff_copy_whole(tab text, file text, opts text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE format('COPY %s FROM %L WITH (%s)', tab, file, opts);
		RAISE EXCEPTION USING ERRCODE = 'ZZ999';
	EXCEPTION WHEN OTHERS THEN
		RETURN CASE WHEN SQLSTATE = 'ZZ999' THEN '' ELSE SQLSTATE END;
	END;
END $$;

-- characters whose encoding in ENC has the byte TRAIL after the first
-- (TRAIL 0: any multibyte character); VALID: only those that read back
-- (PostgreSQL's JOHAB takes only trail bytes 0xA1-0xFE)
CREATE FUNCTION diff_enc_chars(enc text, lo int, hi int, trail int, n int, valid bool)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	cp int;
	b bytea;
	ok bool;
	found int := 0;
BEGIN
	FOR cp IN lo .. hi LOOP
		BEGIN
			b := convert_to(chr(cp), enc);
		EXCEPTION WHEN OTHERS THEN
			CONTINUE;
		END;
		CONTINUE WHEN length(b) < 2;
		CONTINUE WHEN trail > 0 AND position(set_byte('\x00'::bytea, 0, trail) IN substr(b, 2)) = 0;
		BEGIN
			ok := convert_from(b, enc) = chr(cp);
		EXCEPTION WHEN OTHERS THEN
			ok := false;
		END;
		CONTINUE WHEN valid AND NOT ok;
		RETURN NEXT encode(b, 'hex') || ':' || encode(convert_to(chr(cp), 'UTF8'), 'hex');
		found := found + 1;
		EXIT WHEN found >= n;
	END LOOP;
END $$;
});

# the multibyte characters of the encoding cases
my %chars;
for my $enc (qw(SJIS BIG5 GBK GB18030 JOHAB))
{
	my ($lo, $hi) = $enc eq 'JOHAB' ? (0xAC00, 0xD7A3) : (0x4E00, 0x9FFF);
	# GB18030's four-byte characters (Latin-1 letters, emoji)
	if ($enc eq 'GB18030')
	{
		for my $r ([ 0xC0, 0xFF ], [ 0x1F600, 0x1F64F ])
		{
			for my $l (split /\n/, sq("SELECT diff_enc_chars('$enc', $r->[0], $r->[1], 0, 4, true)"))
			{
				my ($f, $u) = map { pack('H*', $_) } split /:/, $l;
				push @{ $chars{$enc}{4} }, [ $f, $u ] if length($f) == 4;
			}
		}
	}
	for my $trail (0x5C, 0x7C, 0)
	{
		my $valid = ($trail == 0 || $enc ne 'JOHAB') ? 'true' : 'false';
		for my $l (split /\n/, sq("SELECT diff_enc_chars('$enc', $lo, $hi, $trail, 4, $valid)"))
		{
			my ($f, $u) = map { pack('H*', $_) } split /:/, $l;
			push @{ $chars{$enc}{$trail} }, [ $f, $u ];
		}
	}
}

note(sprintf('server ready, characters found at %.1f s', time - $t0));
my $cases = DiffCorpus::cases(\%chars);
note(scalar(@$cases) . ' cases, corpus built in ' . sprintf('%.1f', time - $t0) . ' s');

sub lit { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }

# the options of COPY (WITH (...)) and of the import (JSON)
sub copy_opts
{
	my ($o, $whole) = @_;
	my @w = ('FORMAT csv');
	push @w, 'DELIMITER ' . lit($o->{delimiter}) if defined $o->{delimiter};
	push @w, 'QUOTE ' . lit($o->{quote}) if defined $o->{quote};
	push @w, 'ESCAPE ' . lit($o->{escape}) if defined $o->{escape};
	push @w, 'NULL ' . lit($o->{null}) if defined $o->{null};
	push @w, 'ENCODING ' . lit($o->{encoding}) if defined $o->{encoding};
	push @w, 'HEADER ' . ($o->{header} ? 'true' : 'false') if $whole;
	return join(', ', @w);
}

sub import_opts
{
	my ($o, $atomic, $extra) = @_;
	my %j = (header => $o->{header} ? JSON::PP::true : JSON::PP::false,
		atomic => $atomic ? JSON::PP::true : JSON::PP::false);
	for my $k (qw(delimiter quote escape null encoding))
	{
		$j{$k} = $o->{$k} if defined $o->{$k};
	}
	%j = (%j, %{ $extra // {} });
	return JSON::PP->new->canonical->encode(\%j);
}

sub put
{
	my ($path, $bytes) = @_;
	open(my $fh, '>:raw', $path) or die "$path: $!";
	print $fh $bytes;
	close($fh) or die "$path: $!";
	chmod 0644, $path;
	return $path;
}

# error names of the API, by SQLSTATE (README "Error names")
sub err_name
{
	my ($st) = @_;
	my %n = ('23505' => 'conflict', '23503' => 'reference_error',
		'23001' => 'reference_error', '23P01' => 'exclusion_violation',
		'42501' => 'permission_denied', 'P0001' => 'trigger_error');
	return $n{$st} // 'validation_error';
}

# ---------------------------------------------------------------------
# files, tables, reference COPY
# ---------------------------------------------------------------------
my (@setup, %ref_sql, %whole_sql, @record_files);
my @variants = (
	[ 'p', 0, 0, 'partial, COPY path' ],
	[ 'e', 0, 1, 'partial, engine path' ],
	[ 'a', 1, 0, 'atomic, COPY path' ],
	[ 'ae', 1, 1, 'atomic, engine path' ]);
for my $k (0 .. $#$cases)
{
	my $c = $cases->[$k];
	my $o = $c->{opts};
	my $d = $o->{delimiter} // ',';
	my $eol = $c->{eol} // "\n";
	my $bytes = $c->{prefix} // '';
	$bytes .= join($d, @{ $c->{cols} }) . $eol if $o->{header} && !$c->{noheader};
	my (@files, @lines);
	my $r = 0;
	for my $rec (@{ $c->{records} })
	{
		my ($b, $ref) = ref $rec ? @$rec : ($rec, $rec);
		(my $body = $b) =~ s/(?:\r\n|\r|\n)\z//;
		my $n = () = ($bytes . $body) =~ /\r\n|\r|\n/g;
		push @lines, $n + 1;
		$bytes .= $b;
		push @files, put("$dir/c${k}_r" . $r++, $ref);
	}
	push @record_files, @files;
	$c->{file} = put("$dir/c$k.csv", $bytes);
	$c->{lines} = \@lines;
	ok(length($bytes) >= $c->{min_bytes}, "$c->{name}: the file has more than $c->{min_bytes} bytes")
	  if $c->{min_bytes};
	if ($c->{check_byte})
	{
		my ($at, $want) = @{ $c->{check_byte} };
		is(substr($bytes, $at, 1), $want, "$c->{name}: the file has its byte at $at");
	}

	my $user = $c->{user};
	my @tables = ('ref', map { $_->[0] } @variants);
	push @tables, '0' if $c->{ddl} =~ /INSERT/;		# the rows before any import
	for my $t (@tables)
	{
		my $name = "c${k}_$t";
		push @setup, ($c->{ddl} =~ s/%T/$name/gr) . ';';
		my $rls = $t eq 'e' || $t eq 'ae';
		push @setup, "ALTER TABLE $name ENABLE ROW LEVEL SECURITY;",
		  "CREATE POLICY p ON $name USING (true) WITH CHECK (true);",
		  "GRANT ALL ON $name TO diff_eng;"
		  if $rls;
		push @setup, "GRANT ALL ON $name TO $user;" if defined $user;
	}
	my $copts = copy_opts($o, 0);
	# COPY's column list: the header's columns when the table has others
	my $target = $c->{copycols} ? "c${k}_ref (" . join(', ', @{ $c->{cols} }) . ')' : "c${k}_ref";
	push @{ $ref_sql{ $user // '' } },
	  "CALL diff_copy_each('$target', ARRAY[" . join(',', map { lit($_) } @files)
	  . "]::text[], \$o\$$copts\$o\$, $k);";
	push @{ $whole_sql{ $user // '' } }, "SELECT '$k|' || diff_copy_whole('$target', " . lit($c->{file})
	  . ", \$o\$" . copy_opts($o, 1) . "\$o\$);"
	  unless $c->{departs};
}
sq(join("\n", @setup));
note(sprintf('tables made at %.1f s', time - $t0));

# ---------------------------------------------------------------------
# the import jobs: all submitted; the reference COPY runs meanwhile, then
# the jobs are waited for
# ---------------------------------------------------------------------
my %submit;
for my $k (0 .. $#$cases)
{
	my $c = $cases->[$k];
	for my $v (@variants)
	{
		my ($t, $atomic, $engine) = @$v;
		my $user = $c->{user} // ($engine ? 'diff_eng' : '');
		push @{ $submit{$user} },
		  "SELECT '$k|$t|' || batch_ops.submit_import('c${k}_$t', "
		  . lit($c->{file}) . ', ' . lit(import_opts($c->{opts}, $atomic, $c->{import})) . ');';
	}
}
my %job;
for my $u (sort keys %submit)
{
	for my $l (split /\n/, sq(join("\n", @{ $submit{$u} }), $u eq '' ? undef : $u))
	{
		my ($k, $t, $id) = split /\|/, $l;
		$job{$k}{$t} = $id;
	}
}

# the reference, while the jobs run (other tables): COPY of the whole file
# first (rolled back), then of each record
my %whole;
for my $u (sort keys %ref_sql)
{
	my $as = $u eq '' ? undef : $u;
	%whole = (%whole, map { split /\|/, $_, 2 } split /\n/, sq(join("\n", @{ $whole_sql{$u} // [] }), $as))
	  if $whole_sql{$u};
	sq(join("\n", @{ $ref_sql{$u} }), $as);
}
unlink(@record_files) == @record_files or die "unlink: $!";
note(sprintf('reference COPY done at %.1f s', time - $t0));

ok(bo_wait_sql($node, $db,
		"SELECT count(*) = 0 FROM batch_ops.jobs WHERE status NOT IN ('completed', 'failed', 'cancelled')",
		240),
	'every import job has finished');
note(sprintf('jobs done at %.1f s', time - $t0));

# ---------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------
my (%ref, %status, %errs, %rows);
for my $l (split /\n/, sq(q{SELECT case_id, recno, ok, nrows, coalesce(sqlstate, ''),
	replace(coalesce(message, ''), E'\n', ' ') FROM diff_ref ORDER BY 1, 2}))
{
	my ($k, $i, $ok, $n, $st, $msg) = split /\|/, $l, 6;
	$ref{$k}[ $i - 1 ] = { ok => $ok eq 't', n => $n, st => $st, msg => $msg };
}
for my $l (split /\n/, sq(q{SELECT job_id, status FROM batch_ops.jobs}))
{
	my ($id, $st) = split /\|/, $l;
	$status{$id} = $st;
}
for my $l (split /\n/, sq(q{SELECT job_id, line, sqlstate, error,
	replace(coalesce(message, ''), E'\n', ' ') FROM batch_ops.job_error ORDER BY job_id, pos}))
{
	my ($id, $line, $st, $name, $msg) = split /\|/, $l, 5;
	push @{ $errs{$id}{key} }, "$line:$st:$name";
	push @{ $errs{$id}{msg} }, "$line:$msg";
}
{
	my @q;
	for my $k (0 .. $#$cases)
	{
		my $c = $cases->[$k];
		push @q, map { "SELECT '${k}_$_', md5(x::text), left(x::text, 60) FROM c${k}_$_ x" }
		  ('ref', map({ $_->[0] } @variants), $c->{ddl} =~ /INSERT/ ? ('0') : ());
	}
	for my $l (split /\n/, sq(join("\nUNION ALL ", @q)))
	{
		my ($t, $md5, $preview) = split /\|/, $l, 3;
		$preview //= '';
		push @{ $rows{$t} }, "$md5 $preview";
	}
}

# a table name in a message is the job's table, not the reference's; and
# COPY names the bytes of an invalid character from the bad byte on,
# whatever follows it: past the record's line end, the next record's when
# COPY reads several (the COPY path), nothing at the end of the file --
# compared up to the line end
sub norm
{
	my ($s) = @_;
	$s =~ s/\bc\d+_(?:ref|ae|p|e|a)(?![a-z0-9])/T/g;
	$s =~ s/^((?:\d+:)?invalid byte sequence for encoding "[^"]+": (?:0x(?!0a|0d)[0-9a-f]{2} ?)*).*/$1/;
	$s =~ s/ $//;
	return $s;
}

for my $k (0 .. $#$cases)
{
	my $c = $cases->[$k];
	my $name = $c->{name};
	my @recs = @{ $ref{$k} // [] };
	my (@want_key, @want_msg);
	for my $i (0 .. $#recs)
	{
		next if $recs[$i]{ok};
		my $line = $c->{lines}[$i];
		push @want_key, "$line:$recs[$i]{st}:" . err_name($recs[$i]{st});
		push @want_msg, "$line:" . norm($recs[$i]{msg});
	}
	my $want_rows = join("\n", sort @{ $rows{"${k}_ref"} // [] });
	my $all_ok = !@want_key;
	is(scalar(@recs), scalar(@{ $c->{records} }), "$name: COPY ran on every record");
	is($whole{$k}, $all_ok ? '' : $whole{$k} || 'an error',
		"$name: COPY of the whole file " . ($all_ok ? 'succeeds' : 'fails') . ' as its records alone imply')
	  unless $c->{departs};

	for my $v (@variants)
	{
		my ($t, $atomic, $engine, $what) = @$v;
		my $id = $job{$k}{$t};
		my $got_rows = join("\n", sort @{ $rows{"${k}_$t"} // [] });
		my $st = $status{$id} // '?';
		my @key = map { s/^(\d+):/$1:/r } @{ $errs{$id}{key} // [] };
		my @msg = map { norm($_) } @{ $errs{$id}{msg} // [] };
		if ($atomic && !$all_ok)
		{
			is($st, 'failed', "$name, $what: the job fails, as COPY of the file does");
			is($got_rows, join("\n", sort @{ $rows{"${k}_0"} // [] }),
				"$name, $what: no row is stored");
		}
		else
		{
			is($st, 'completed', "$name, $what: the job completes");
			is($got_rows, $want_rows, "$name, $what: the rows stored are COPY's");
		}
		is(join(', ', @key), join(', ', @want_key),
			"$name, $what: the errors (line:sqlstate:name) are the records COPY rejects");
		is(join(' | ', @msg), join(' | ', @want_msg),
			"$name, $what: the errors' messages are COPY's");
	}
}
note(sprintf('done at %.1f s', time - $t0));

done_testing();
