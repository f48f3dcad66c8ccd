# DiffCorpus — the corpus of the differential import test
# (test/t/025_import_differential.pl, issue #14).
#
# Every file of the corpus is built from a list of records, so that the
# test knows each record's bytes and the physical line it ends on, and can
# run COPY on each record alone.  A case is a hash:
#
#   name     what it tests
#   ddl      the target table's DDL, %T for its name (run once per copy of
#            the table: the reference table and one per import job)
#   cols     the column names, for the header line
#   opts     { delimiter, quote, escape, null, header, encoding }: the
#            options of COPY and of the import alike (absent = default)
#   eol      the header's line end (default "\n")
#   prefix   bytes before everything (a byte-order mark)
#   records  each record's bytes, its line end included (the last one may
#            have none); or [ BYTES, REF ]: REF is what COPY is given for
#            that record instead, where the import departs on purpose from
#            PostgreSQL 15's COPY (a line "\." is data)
#   departs  why COPY of the whole file would not behave as the records
#            alone do (mixed line ends, "\.", a byte-order mark): the test
#            then skips its whole-file COPY check
#   user     the role that submits the jobs and runs the reference COPY
#            (default: the superuser for the COPY path)
#   import   more import options (chunk_size), which COPY does not have
#   min_bytes  the file is at least that long (it crosses read pieces)
#
# Everything random comes from one seeded generator (srand in cases()), so
# the corpus is the same at every run.  The multibyte cases need characters
# whose trail byte is "\" or "|" in SJIS, BIG5, GBK, GB18030 and JOHAB:
# the test finds them with the server's own conversions and passes them in
# (ENC -> TRAIL -> [ [ FILE_BYTES, UTF8_TEXT ], ... ]).
package DiffCorpus;

use strict;
use warnings;

my $PIECE = 65536;				# source.c's read buffer

# the CSV text of one field: VALUE (undef = NULL) with options O, quoted
# when it must be, or when FORCE says so
sub field
{
	my ($v, $o, $force) = @_;
	my $null = $o->{null} // '';
	return $null unless defined $v;
	my $q = $o->{quote} // '"';
	my $e = $o->{escape} // $q;
	my $d = $o->{delimiter} // ',';
	my $must = $v eq $null
	  || index($v, $d) >= 0
	  || index($v, $q) >= 0
	  || ($e ne $q && index($v, $e) >= 0)
	  || $v =~ /[\r\n]/
	  || $v eq '\.';
	return $v unless $must || $force;
	my $s = $v;
	if ($e eq $q)
	{
		$s =~ s/\Q$q\E/$q$q/g;
	}
	else
	{
		$s =~ s/(\Q$e\E|\Q$q\E)/$e$1/g;
	}
	return "$q$s$q";
}

sub rec
{
	my ($o, $eol, @vals) = @_;
	return join($o->{delimiter} // ',', map { field($_, $o) } @vals) . $eol;
}

# ---------------------------------------------------------------------
# PostgreSQL's COPY regression cases (copy.sql, copy2.sql), as records
# ---------------------------------------------------------------------
sub pg_regress_cases
{
	my @c;
	push @c, {
		name => 'copy2 testnl: two line feeds inside a quoted field',
		ddl => 'CREATE TABLE %T (a int, b text, c int)',
		cols => [qw(a b c)], opts => { header => 0 },
		records => [ qq{1,"a field with two LFs\n\ninside",2\n} ] };
	push @c, {
		name => 'copy2 testeoc: \. inside fields is data',
		ddl => 'CREATE TABLE %T (a text)',
		cols => ['a'], opts => { header => 0 },
		records => [ "a\\.\n", "\\.b\n", "c\\.d\n", qq{"\\."\n} ] };
	push @c, {
		name => 'copy2 x: extra and missing data, NOT NULL',
		ddl => q{CREATE TABLE %T (a int, b int, c text NOT NULL DEFAULT 'stuff', d text, e text)},
		cols => [qw(a b c d e)], opts => { header => 0 },
		records => [
			"10000,21,31,41,51\n",
			"2002,232,40,50,60,70,80\n",	# extra data after last expected column
			"2001,231,\\N,\\N\n",			# missing data for column "e"
			"9999,,\\x,\\\\x,\\\\\\x\n",
			"1,1,,test_1,\n",				# c NULL: NOT NULL
			"2,2,\"\",test_2,\n",			# c empty string
			"3,3,stuff,test_3\n",			# missing data
			"4,x,stuff,test_4,e\n",			# bad integer
			"4000000000,4,stuff,test_5,e\n",	# out of range
			"\n",							# an empty line
			"x,1\n",						# a bad value, then missing data
			"5,y\n",
			"6,6,,\n",						# NOT NULL, then missing data
			"x,1,2,3,4,5\n",				# extra data before a bad value
			",,s,,\n" ] };
	my %y = (delimiter => ',', header => 0);
	push @c, {
		name => 'copy2 y: CSV output read back',
		ddl => 'CREATE TABLE %T (col1 text, col2 text)',
		cols => [qw(col1 col2)], opts => {%y},
		records => [ qq{"Jackson, Sam",\\h\n}, qq{"It is ""perfect"".",\t\n}, qq{"",\n} ] };
	push @c, {
		name => q{copy2 y: QUOTE '''' DELIMITER '|'},
		ddl => 'CREATE TABLE %T (col1 text, col2 text)',
		cols => [qw(col1 col2)], opts => { quote => "'", delimiter => '|', header => 0 },
		records => [ "Jackson, Sam|\\h\n", qq{It is "perfect".|\t\n}, "''|\n" ] };
	push @c, {
		name => q{copy2 y: ESCAPE E'\\\\' (FORCE_QUOTE output)},
		ddl => 'CREATE TABLE %T (col1 text, col2 text)',
		cols => [qw(col1 col2)], opts => { escape => '\\', header => 0 },
		records => [ qq{"Jackson, Sam","\\\\h"\n}, qq{"It is \\"perfect\\".","\t"\n}, qq{"",\n} ] };
	push @c, {
		name => q{copy2 testnull: NULL AS E'\\\\0'},
		ddl => 'CREATE TABLE %T (a int, b text)',
		cols => [qw(a b)], opts => { null => '\\0', header => 0 },
		records => [ "1,\\\\0\n", "\\0,\\0\n", qq{2,"\\0"\n}, "\\0,x\n" ] };
	push @c, {
		name => 'copy2 forcetest-like: empty quoted vs unquoted empty (NULL)',
		ddl => 'CREATE TABLE %T (a int NOT NULL, b text NOT NULL, c text)',
		cols => [qw(a b c)], opts => { header => 0 },
		records => [ qq{1,"",""\n}, qq{2,,x\n}, qq{3,b,\n} ] };
	# copy.sql: copytest, written by COPY TO (csv) and read back
	my $esc = "a\\r\\\r\\\n\\nb";
	for my $v ([ 'csv', {} ], [ q{csv quote '''' escape E'\\\\'}, { quote => "'", escape => '\\' } ])
	{
		my $o = { %{ $v->[1] }, header => 0 };
		push @c, {
			name => "copy.sql copytest: $v->[0]",
			ddl => 'CREATE TABLE %T (style text, test text, filler int)',
			cols => [qw(style test filler)], opts => $o,
			records => [
				rec($o, "\n", 'DOS', "abc\r\ndef", 1),
				rec($o, "\n", 'Unix', "abc\ndef", 2),
				rec($o, "\n", 'Mac', "abc\rdef", 3),
				rec($o, "\n", "esc\\ape", $esc, 4) ] };
	}
	push @c, {
		name => 'copy.sql copytest3: header',
		ddl => 'CREATE TABLE %T (c1 int, "col with , comma" text, "col with "" quote" int)',
		cols => [ 'c1', qq{"col with , comma"}, qq{"col with "" quote"} ],
		opts => { header => 1 },
		records => [ "1,a,1\n", "2,b,2\n" ] };
	push @c, {
		name => 'copy.sql parted_copytest: no partition for the row',
		ddl => 'CREATE TABLE %T (a int, b int, c text) PARTITION BY LIST (b);'
		  . ' CREATE TABLE %T_1 PARTITION OF %T FOR VALUES IN (1);'
		  . ' CREATE TABLE %T_2 PARTITION OF %T FOR VALUES IN (2)',
		cols => [qw(a b c)], opts => { header => 0 },
		records => [ map({ "$_,1,One\n" } 1 .. 5), "6,3,Three\n",
			map({ "$_,2,Two\n" } 7 .. 9), "10,x,Bad\n", "11,,Null\n" ] };
	return @c;
}

# ---------------------------------------------------------------------
# pgloader-style tricky quoting
# ---------------------------------------------------------------------
sub quoting_cases
{
	my @c;
	my $ddl = 'CREATE TABLE %T (id int, a text, b text)';
	push @c, {
		name => 'tricky quoting (quote = escape)',
		ddl => $ddl, cols => [qw(id a b)], opts => { header => 0 },
		records => [
			qq{1,"a ""quoted"" word",x\n},
			qq{2,"","",\n},					# extra field
			qq{3,"",""\n},
			qq{4,,\n},
			qq{5,ab"c,d"e,f\n},				# a quote in mid-field opens quoting
			qq{6,"a"b,c\n},					# text after the closing quote
			qq{7, "a" , b \n},				# spaces are data
			qq{8,"a,b","c\nd"\n},
			qq{9,"""",""""""\n},
			qq{10,"\\",\\\n},
			qq{11,a""b,c\n},
			qq{12,"x"""y,z\n},
			qq{13,"a""\n""",b\n},
			qq{14,",",","\n},
			qq{"15",a,b\n},
			qq{16,a,b\n},
			qq{17,a,"b\n18,a,b\n} ] };			# unterminated: runs to the end
	push @c, {
		name => 'tricky quoting (escape backslash, NULL "NULL")',
		ddl => $ddl, cols => [qw(id a b)],
		opts => { header => 0, escape => '\\', null => 'NULL' },
		records => [
			qq{1,"a \\"quoted\\" word",NULL\n},
			qq{2,"NULL",NULL\n},
			qq{3,"\\\\",\\\\\n},
			qq{4,"\\a\\b",c\\"d"\n},
			qq{5,"a""b",c\n},					# "" ends then reopens
			qq{6,"a\\\\""",b\n},
			qq{7,"end\\\\",NULL\n},
			qq{NULL,x,y\n},
			qq{9,x,y\n},
			qq{8,"a\\",b\n} ] };				# the quote is escaped: unterminated
	push @c, {
		name => q{tricky quoting (quote ', delimiter ;)},
		ddl => $ddl, cols => [qw(id a b)],
		opts => { header => 1, quote => "'", delimiter => ';' },
		records => [
			qq{1;'it''s';"dq"\n},
			qq{2;'a;b';c,d\n},
			qq{3;'';\n},
			qq{4;'x'y'';z\n},
			qq{5;a;b;c\n},
			qq{6;'line\r\nbreak';x\n} ] };
	push @c, {
		name => 'tricky quoting (tab delimiter, NULL \N)',
		ddl => $ddl, cols => [qw(id a b)],
		opts => { header => 0, delimiter => "\t", null => '\\N' },
		records => [
			"1\ta b\t\\N\n",
			"2\t\"\\N\"\t\n",
			"3\t\"tab\there\"\tx\n",
			"4\t\ty\n",
			"5\tonly two\n",
			"x\t1\t2\n" ] };
	return @c;
}

# ---------------------------------------------------------------------
# line ends, "\.", byte-order marks
# ---------------------------------------------------------------------
sub line_end_cases
{
	my @c;
	my $ddl = 'CREATE TABLE %T (id int, v text, w text)';
	for my $e ([ 'LF', "\n" ], [ 'CRLF', "\r\n" ], [ 'CR', "\r" ])
	{
		my ($n, $eol) = @$e;
		for my $hdr (0, 1)
		{
			push @c, {
				name => "line ends $n" . ($hdr ? ', header' : ''),
				ddl => $ddl, cols => [qw(id v w)], opts => { header => $hdr },
				eol => $eol,
				records => [
					"1,a,b$eol",
					qq{2,"q\nr",s$eol},
					qq{3,"q\r\nr",s$eol},
					qq{4,"q\rr",s$eol},
					"bad,x,y$eol",
					qq{5,"x\n\n\r\r\n",y$eol},
					"6,no line end at the end" ] };
		}
	}
	push @c, {
		name => 'mixed line ends (accepted: each record ends at its own)',
		ddl => $ddl, cols => [qw(id v w)], opts => { header => 1 }, eol => "\r\n",
		departs => 'mixed line ends',
		records => [ "1,a,b\n", "2,c,d\r\n", "3,e,f\r", "bad,g,h\n",
			qq{5,"i\r\nj\rk\nl",m\r}, "6,n,o\r\n" ] };
	push @c, {
		name => 'a line \. is data (PostgreSQL 18), not the end of the data',
		ddl => 'CREATE TABLE %T (v text)', cols => ['v'], opts => { header => 0 },
		departs => '\. line',
		records => [ "a\n", [ "\\.\n", qq{"\\."\n} ], "b\n", [ "\\.\r\n", qq{"\\."\r\n} ],
			"c\\.\n", "\\.c\n", [ "\\.", qq{"\\."} ] ] };
	push @c, {
		name => 'a line \. in a three-column table is a bad record',
		ddl => $ddl, cols => [qw(id v w)], opts => { header => 0 },
		departs => '\. line',
		records => [ "1,a,b\n", [ "\\.\n", qq{"\\."\n} ], "2,c,d\n" ] };
	for my $hdr (0, 1)
	{
		push @c, {
			name => 'UTF-8 byte-order mark' . ($hdr ? ', header' : ''),
			ddl => $ddl, cols => [qw(id v w)], opts => { header => $hdr },
			prefix => "\xEF\xBB\xBF", departs => 'BOM',
			records => [ "1,\xC3\xA9t\xC3\xA9,b\n", "x,\xEF\xBB\xBF,c\n", "3,d,e\n" ] };
	}
	push @c, {
		name => 'UTF-8: invalid bytes, a BOM inside a field',
		ddl => $ddl, cols => [qw(id v w)], opts => { header => 0, encoding => 'UTF8' },
		records => [ "1,\xEF\xBB\xBFa,b\n", "2,\xFF,b\n", "3,\xC3,b\n",
			qq{4,"\xE2\x82\n\xAC",b\n}, "5,\xE2\x82\xAC,\xF0\x9F\x98\x80\n",
			"6,b,\xC3\n", "7,b,\xF0\x9F\n", "8,\0,x\n", "9,b,\xC3" ] };
	push @c, {
		name => 'LATIN1',
		ddl => $ddl, cols => [qw(id v w)], opts => { header => 0, encoding => 'LATIN1' },
		records => [ "1,caf\xE9,\xFF\n", qq{2,"\xE9""\xE8",x\n}, "x,\xE9,y\n" ] };
	push @c, {
		name => 'an empty file with a header',
		ddl => $ddl, cols => [qw(id v w)], opts => { header => 1 }, noheader => 1,
		records => [] };
	push @c, {
		name => 'a file of only a header',
		ddl => $ddl, cols => [qw(id v w)], opts => { header => 1 },
		records => [] };
	return @c;
}

# ---------------------------------------------------------------------
# client-only multibyte encodings with ASCII-looking trail bytes
# ---------------------------------------------------------------------
sub encoding_cases
{
	my ($chars) = @_;
	my @c;
	for my $enc (qw(SJIS BIG5 GBK GB18030 JOHAB))
	{
		my @b = map { $_->[0] } @{ $chars->{$enc}{0x5C} };
		my @p = map { $_->[0] } @{ $chars->{$enc}{0x7C} };
		die "no characters for $enc" unless @b >= 3 && @p >= 2;
		# $x, $y: trail byte 0x5C (in PostgreSQL's JOHAB, invalid characters:
		# it takes only trail bytes 0xA1-0xFE, so COPY rejects those records
		# and so must the import); $z, $w: valid characters
		my ($x, $y) = @b;
		my ($z, $w) = map { $_->[0] } @{ $chars->{$enc}{0} };
		push @c, {
			name => "$enc, escape \\, trail bytes 0x5C",
			ddl => 'CREATE TABLE %T (id int, a text, b text)',
			cols => [qw(id a b)], opts => { header => 1, escape => '\\', encoding => $enc },
			records => [
				qq{1,"$x",$y\n},
				qq{2,$y$x,"a\\"b$x"\n},
				qq{3,"$x\\\\$y",$x\n},
				qq{4,"$y""q",x$y\n},
				qq{5,"$y\n$x",end\r\n},
				qq{6,$x$z,"$z$z"\n},
				qq{x,$x,"$y"\n},
				qq{7,"$x\\"",$z\n},
				qq{9,$w,c\n},
				qq{8,a,"$x\n} ] };			# unterminated after a trail byte
		my ($p, $q) = @p;
		push @c, {
			name => "$enc, delimiter |, trail bytes 0x7C",
			ddl => 'CREATE TABLE %T (id int, a text, b text)',
			cols => [qw(id a b)],
			opts => { header => 0, delimiter => '|', escape => '\\', encoding => $enc },
			records => [ "1|$p|$q\n", qq{2|"$p|$q"|$p$x\n}, "3|$p$q$p\n",
				"4|\x81|x\n", "5|$q|$x\n", "6|$z|$w\n" ] };
	}
	return @c;
}

# ---------------------------------------------------------------------
# 1 MB fields, records across the 64 kB read buffers
# ---------------------------------------------------------------------

# good records of exactly LEN bytes in all, ending with EOL
sub filler
{
	my ($len, $eol) = @_;
	my @out;
	my $n0 = 0;
	while ($len > 0)
	{
		my $n = $len >= 1000 + 12 ? 1000 : $len;
		die 'filler too short' if $n < 8 + length($eol);
		my $id = 100000 + $n0++;
		push @out, "$id," . ('f' x ($n - length($id) - 2 - length($eol))) . ",$eol";
		$len -= $n;
	}
	return @out;
}

sub boundary_cases
{
	my @c;
	my $ddl = 'CREATE TABLE %T (id int, v text, w text)';
	my $mb = 1024 * 1024;
	push @c, {
		name => '1 MB fields',
		ddl => $ddl, cols => [qw(id v w)], opts => { header => 0 },
		records => [
			qq{1,"} . ('ab""c,d' x ($mb / 7)) . qq{\nend",x\n},
			"2," . ('u' x $mb) . ",y\n",
			"bad," . ('v' x $mb) . ",z\n",
			qq{3,"} . ("line\r\n" x ($mb / 6)) . qq{",w\r\n},
			"4,small,last\n" ] };
	# a feature of a record placed on the last byte of a read piece
	my @feat = (
		[ 'an escaped quote "" split', { }, qq{2,"ab""cd",w\n}, 5 ],
		[ 'an opening quote at the end', { }, qq{2,"ab,cd",w\n}, 2 ],
		[ 'a delimiter at the end', { }, qq{2,ab,cd\n}, 4 ],
		[ 'a record CRLF split', { }, qq{2,ab,cd\r\n}, 7 ],
		[ 'a quoted CRLF split', { }, qq{2,"a\r\nb",c\r\n}, 4 ],
		[ 'a quoted lone CR at the end', { }, qq{2,"a\rb",c\n}, 4 ],
		[ 'a backslash escape split', { escape => '\\' }, qq{2,"a\\"b",c\n}, 4 ],
		[ 'a bad record across the pieces', { }, qq{bad,abcdef,w\n}, 6 ],
		[ 'a closing quote then the delimiter', { }, qq{2,"abc",w\n}, 6 ]);
	for my $f (@feat)
	{
		my ($what, $o, $rec, $at) = @$f;
		my $eol = $rec =~ /\r\n$/ ? "\r\n" : "\n";
		my @fill = filler($PIECE - 1 - $at, $eol);
		push @c, {
			name => "read pieces: $what",
			ddl => $ddl, cols => [qw(id v w)], opts => { header => 0, %$o },
			records => [ @fill, $rec, "3,after,x$eol", "bad2,after,y$eol" ],
			check_byte => [ $PIECE - 1, substr($rec, $at, 1) ] };
	}
	return @c;
}

# ---------------------------------------------------------------------
# constraints, triggers, json, role settings
# ---------------------------------------------------------------------
sub constraint_cases
{
	my @c;
	push @c, {
		name => 'NOT NULL, CHECK, UNIQUE, PRIMARY KEY, FOREIGN KEY, EXCLUDE',
		ddl => 'CREATE TABLE %T (id int PRIMARY KEY, u text UNIQUE, n text NOT NULL,'
		  . ' k int CHECK (k > 0), p int REFERENCES diff_parent,'
		  . ' r int4range, EXCLUDE USING gist (r WITH &&));'
		  . q{ INSERT INTO %T VALUES (1000, 'taken', 'n', 1, 1, '[1000,1001)')},
		cols => [qw(id u n k p r)], opts => { header => 1 },
		records => [
			"1,a,n,1,1,\"[1,2)\"\n",
			"2,b,n,2,2,\"[2,3)\"\n",
			"1,c,n,3,1,\"[3,4)\"\n",			# PK duplicate within the file
			"1000,d,n,4,1,\"[4,5)\"\n",		# PK duplicate of an existing row
			"3,a,n,5,1,\"[5,6)\"\n",			# UNIQUE duplicate within the file
			"4,taken,n,6,1,\"[6,7)\"\n",		# UNIQUE duplicate of an existing row
			"5,e,,7,1,\"[7,8)\"\n",			# NOT NULL
			"6,f,n,0,1,\"[8,9)\"\n",			# CHECK
			"7,g,n,8,99,\"[9,10)\"\n",		# FOREIGN KEY
			"8,h,n,9,2,\"[1,3)\"\n",			# EXCLUDE within the file
			"9,i,n,10,2,\"[1000,1002)\"\n",	# EXCLUDE with an existing row
			"10,j,n,11,,\n",
			"11,k,n,12,3,\"[20,30)\"\n" ] };
	push @c, {
		name => 'a generated column and a default, not in the file',
		ddl => q{CREATE TABLE %T (a int CHECK (a < 100), b text,}
		  . q{ g int GENERATED ALWAYS AS (a * 2) STORED, d text DEFAULT 'dflt')},
		cols => [qw(a b)], copycols => 1, opts => { header => 1 },
		records => [ "1,x\n", "200,y\n", "x,z\n", "3,\n", "4,w,extra\n", "5\n" ] };
	push @c, {
		name => 'types: arrays, composite, enum, bytea, numeric, a NOT NULL domain',
		ddl => 'CREATE TABLE %T (id diff_posint, arr int[], p diff_pair, m diff_mood,'
		  . ' by bytea, n numeric(5,2), t tsvector)',
		cols => [qw(id arr p m by n t)], opts => { header => 0 },
		records => [
			qq{1,"{1,2,3}","(1,abc)",ok,\\x00ff,1.005,'a b':1\n},
			qq{2,"{{1,2},{3,4}}","(,)",sad,\\\\x,-999.99,\n},
			qq{3,"{1,x}","(1,abc)",ok,,1,a\n},			# array element
			qq{4,{},"(x,abc)",ok,,1,a\n},				# composite field
			qq{5,{},,meh,,1,a\n},						# enum
			qq{6,{},,,\\xzz,1,a\n},						# bytea
			qq{7,{},,,,1000,a\n},						# numeric overflow
			qq{,{},,,,1,a\n},							# domain NOT NULL
			qq{0,{},,,,1,a\n},							# domain CHECK
			qq{8,"{""a b"",NULL}",,,,1,"'unclosed"\n},	# tsvector
			qq{9,"{1,NULL}","(""q,r"",""s"")",happy,abc,0.5,"x:1A y:2B"\n} ] };
	push @c, {
		name => 'seventy columns (the reader\'s field arrays grow)',
		ddl => 'CREATE TABLE %T (' . join(', ', map { "c$_ int" } 1 .. 70) . ')',
		cols => [ map { "c$_" } 1 .. 70 ], opts => { header => 1 },
		records => [ join(',', 1 .. 70) . "\n", join(',', 1 .. 71) . "\n",
			join(',', 1 .. 69) . "\n", join(',', 1 .. 64, 'x', 66 .. 70) . "\n",
			join(',', map { qq{"$_"} } 1 .. 70) . "\n" ] };
	push @c, {
		name => 'deferrable UNIQUE, checked at the end of the statement',
		ddl => 'CREATE TABLE %T (id int UNIQUE DEFERRABLE INITIALLY IMMEDIATE, v text)',
		cols => [qw(id v)], opts => { header => 0 },
		records => [ "1,a\n", "2,b\n", "1,c\n", "3,d\n", "2,e\n", "4,f\n" ] };
	push @c, {
		name => 'triggers: BEFORE ROW RAISE/NULL/modify, AFTER ROW RAISE, statement',
		ddl => 'CREATE TABLE %T (a int, b text);'
		  . ' CREATE TRIGGER t1 BEFORE INSERT ON %T FOR EACH ROW EXECUTE FUNCTION diff_before_row();'
		  . ' CREATE TRIGGER t2 AFTER INSERT ON %T FOR EACH ROW EXECUTE FUNCTION diff_after_row();'
		  . ' CREATE TRIGGER t3 BEFORE INSERT ON %T FOR EACH STATEMENT EXECUTE FUNCTION diff_before_stmt();'
		  . ' CREATE TRIGGER t4 AFTER INSERT ON %T REFERENCING NEW TABLE AS nt'
		  . ' FOR EACH STATEMENT EXECUTE FUNCTION diff_after_stmt()',
		cols => [qw(a b)], opts => { header => 0 },
		records => [
			"1,plain\n",
			"2,modify\n",			# BEFORE ROW changes b
			"3,raise\n",			# BEFORE ROW RAISE
			"0,skipped\n",			# BEFORE ROW returns NULL
			"4,after\n",			# AFTER ROW RAISE
			"5,stmt\n",				# AFTER STATEMENT RAISE (transition table)
			"6,state\n",			# BEFORE ROW RAISE with a SQLSTATE of class 23
			"x,bad\n",
			"7,plain\n" ] };
	push @c, {
		name => 'json, jsonb and a jsonb domain with CHECK',
		ddl => 'CREATE TABLE %T (id int, j diff_jdom, js json, jb jsonb)',
		cols => [qw(id j js jb)], opts => { header => 1 },
		records => [
			qq~1,"{""k"": 1}","{""a"": 1, ""a"": 2}","{""a"": 1, ""a"": 2}"\n~,
			qq~2,"{""x"": 1}",{},[]\n~,			# domain CHECK
			qq~3,"{""k"": 2}",{bad,1\n~,			# extra field
			qq~4,"{""k"": 2}","{bad","1"\n~,		# invalid json
			qq~5,,"""s""",1.0e2\n~,
			qq~6,"{""k"": ""\\u0000""}",null,true\n~,	# jsonb: \u0000
			qq~7,"{""k"": [1, {""z"": null}]}","  [1,2]  ","  {""b"":1}  "\n~,
			qq~8,"[""k""]",1,2\n~ ] };
	push @c, {
		name => 'json and a jsonb domain, the COPY run given to the engine by a foreign key error',
		ddl => 'CREATE TABLE %T (id int REFERENCES diff_parent, j diff_jdom, js json, jb jsonb)',
		cols => [qw(id j js jb)], opts => { header => 0 },
		records => [
			qq~1,"{""k"": 1}","{""a"": 1, ""a"": 2}","{""a"": 1, ""a"": 2}"\n~,
			qq~2,"{""x"": 1}",{},[]\n~,
			qq~3,"{""k"": 2}","{bad","1"\n~,
			qq~99,"{""k"": 3}",{},{}\n~,		# foreign key
			qq~4,"{""k"": [1, {""z"": null}]}","  [1,2]  ","  {""b"":1}  "\n~,
			qq~5,"""k""",1,2\n~ ] };
	push @c, {
		name => 'role settings: datestyle DMY, timezone (role and role in database)',
		ddl => 'CREATE TABLE %T (id int REFERENCES diff_parent, d date, ts timestamp, tz timestamptz, t text)',
		cols => [qw(id d ts tz t)], opts => { header => 0 }, user => 'diff_loader',
		records => [
			"99,02/03/2024,02/03/2024 10:00,02/03/2024 10:00,fk\n",	# the run goes to the engine
			"1,01/02/2024,01/02/2024 10:00,01/02/2024 10:00,a\n",
			"2,13/01/2024,13/01/2024 00:30,2024-01-13 00:30,b\n",
			"3,01/13/2024,2024-01-01,2024-01-01,c\n",
			"4,2024-03-04,2024-03-04 05:06,2024-03-04 05:06+02,d\n",
			"5,3 Feb 2024,2024-02-03 04:05,epoch,e\n" ] };
	return @c;
}

# ---------------------------------------------------------------------
# seeded random fuzz
# ---------------------------------------------------------------------
my @alpha = ('a' .. 'z', 'A' .. 'Z', '0' .. '9', ' ', ',', ';', '|', '"', "'",
	'\\', "\n", "\r", "\t", '.', 'é', '€');

sub rnd_text
{
	my $n = int(rand(12));
	$n = int(rand(3000)) if rand() < 0.01;
	return join('', map { $alpha[ int(rand(@alpha)) ] } 1 .. $n);
}

# one fuzz record: good, or (with probability RATE) bad in some way
sub fuzz_record
{
	my ($o, $eol, $id, $rate, $last) = @_;
	my @v = ($id, rnd_text(), int(rand(1000)),
		sprintf('2024-%02d-%02d', 1 + int(rand(12)), 1 + int(rand(28))),
		rand() < 0.5 ? '{"n": ' . int(rand(100)) . '}' : undef);
	$v[1] = undef if rand() < 0.05;
	$v[0] = int(rand($id)) + 1 if rand() < 0.02 && $rate > 0;	# duplicate id
	my $bad = rand() < $rate;
	my $how = $bad ? int(rand($last ? 10 : 9)) : -1;
	$v[0] = 'x' . $id if $how == 0;
	$v[2] = -1 if $how == 1;						# CHECK
	$v[3] = '2024-02-30' if $how == 2;
	$v[4] = '{"n": ' if $how == 3;
	$v[0] = undef if $how == 4;						# NOT NULL
	$v[2] = '99999999999' if $how == 5;
	my @f = map { field($_, $o, rand() < 0.2) } @v;
	push @f, 'extra' if $how == 6;
	pop @f if $how == 7;
	my $r = join($o->{delimiter} // ',', @f);
	$r =~ s/\d/\xFF/ if $how == 8 && $r =~ /\d/;	# invalid UTF-8
	$r .= ($o->{delimiter} // ',') . ($o->{quote} // '"') . 'open'
	  if $how == 9;								# unterminated (last record)
	return $r . $eol;
}

# a field of CHARS (each a character's bytes in the file's encoding):
# quoted, its quotes and escapes escaped, character by character, so that
# a trail byte 0x5C is never taken for the escape
sub field_chars
{
	my ($chars, $o, $force) = @_;
	my $q = $o->{quote} // '"';
	my $e = $o->{escape} // $q;
	my $d = $o->{delimiter} // ',';
	my $v = join('', @$chars);
	return $o->{null} // '' if !@$chars && rand() < 0.3;
	my $must = !@$chars || $force
	  || grep { $_ eq $q || $_ eq $e || $_ eq $d || /[\r\n]/ } @$chars;
	return $v unless $must;
	return $q . join('', map { ($_ eq $q || $_ eq $e) ? "$e$_" : $_ } @$chars) . $q;
}

# seeded fuzz in a multibyte encoding: fields of ASCII and of the
# encoding's characters (those whose trail byte is "\" too), escape "\",
# records long enough that some cross the 64 kB read pieces
sub encoding_fuzz_cases
{
	my ($chars) = @_;
	my @c;
	for my $enc (qw(SJIS BIG5 GBK GB18030 JOHAB))
	{
		my @mb = map { $_->[0] } @{ $chars->{$enc}{0} }, @{ $chars->{$enc}{4} // [] };
		# JOHAB: its characters with a trail byte 0x5C are invalid for
		# PostgreSQL, so rarely
		my @bs = map { $_->[0] } @{ $chars->{$enc}{0x5C} };
		my @ascii = ('a', 'b', ' ', ',', '"', '\\', "\n", "\r\n", '.', '0');
		my $o = { header => 1, escape => '\\', encoding => $enc };
		my $eol = $enc eq 'GBK' ? "\r\n" : "\n";
		my @recs;
		for my $id (1 .. 1000)
		{
			my @f = ($id);
			for (1 .. 2)
			{
				my @ch;
				for (1 .. int(rand(40)))
				{
					my $x = rand();
					push @ch, $x < 0.35 ? $mb[ int(rand(@mb)) ]
					  : $x < ($enc eq 'JOHAB' ? 0.352 : 0.6) ? $bs[ int(rand(@bs)) ]
					  : $ascii[ int(rand(@ascii)) ];
				}
				push @f, field_chars(\@ch, $o, rand() < 0.3);
			}
			$f[0] = "x$id" if rand() < 0.02;
			pop @f if rand() < 0.01;
			push @recs, join(',', @f) . $eol;
		}
		push @c, {
			name => "fuzz: $enc, escape \\, 1000 records",
			ddl => 'CREATE TABLE %T (id int, a text, b text)',
			cols => [qw(id a b)], opts => $o, eol => $eol, min_bytes => $PIECE + 1,
			records => \@recs };
	}
	return @c;
}

# seeded fuzz against every constraint and a trigger: duplicates (within
# the file and with the table), foreign keys, exclusion, NOT NULL, CHECK,
# BEFORE ROW RAISE; small chunks on some files
sub constraint_fuzz_cases
{
	my @c;
	for my $rate (0.01, 0.1, 0.5)
	{
		my @recs;
		for my $id (1 .. 500)
		{
			my ($k, $u, $n, $p, $lo, $t) = ($id, $id, 'n', 1 + int(rand(10)), 10 * $id, 'ok');
			if (rand() < $rate)
			{
				my $how = int(rand(8));
				$k = 1 + int(rand($id)) if $how == 0;		# PK duplicate
				$k = 5000 if $how == 1;					# PK: an existing row
				$u = 1 + int(rand($id)) if $how == 2;		# UNIQUE duplicate
				$n = '' if $how == 3;						# NOT NULL
				$p = 11 + int(rand(5)) if $how == 4;		# FOREIGN KEY
				$lo = 10 * int(rand($id)) + 5 if $how == 5;	# EXCLUDE
				$t = 'raise' if $how == 6;					# BEFORE ROW RAISE
				$t = 'x' x 11 if $how == 7;					# CHECK
			}
			push @recs, qq{$k,$u,$n,$p,"[$lo,} . ($lo + 10) . qq{)",$t\n};
		}
		push @c, {
			name => 'fuzz: constraints and a trigger, ' . ($rate * 100) . '% bad',
			ddl => 'CREATE TABLE %T (k int PRIMARY KEY, u int UNIQUE, n text NOT NULL,'
			  . ' p int REFERENCES diff_parent, r int4range, t text CHECK (length(t) < 10),'
			  . ' EXCLUDE USING gist (r WITH &&));'
			  . q{ INSERT INTO %T VALUES (5000, 5000, 'n', 1, '[-10,-5)', 'ok');}
			  . ' CREATE TRIGGER t1 BEFORE INSERT ON %T FOR EACH ROW EXECUTE FUNCTION diff_raise_t()',
			cols => [qw(k u n p r t)], opts => { header => 0, null => '' },
			import => { chunk_size => $rate == 0.1 ? 50 : 10000 },
			records => \@recs };
	}
	return @c;
}

sub fuzz_cases
{
	my @c;
	my @optsets = (
		{},
		{ delimiter => ';', null => 'NULL' },
		{ quote => "'", escape => '\\' },
		{ delimiter => "\t", escape => '\\', null => '\\N' },
		{ delimiter => '|', quote => "'", null => '' });
	my @eols = ("\n", "\r\n", "\r");
	my $k = 0;
	for my $rate (0, 0.01, 0.1, 0.5)
	{
		for my $size (150, ($rate == 0.01 || $rate == 0.1) ? 2000 : 600)
		{
			my $o = { %{ $optsets[ $k % @optsets ] }, header => $k % 2 };
			my $eol = $eols[ $k % @eols ];
			$k++;
			my @recs = map { fuzz_record($o, $eol, $_, $rate, $_ == $size) } 1 .. $size;
			push @c, {
				import => { chunk_size => $k % 3 == 0 ? 100 : 10000 },
				name => "fuzz: ${size} records, " . ($rate * 100) . '% bad, options ' . join(' ', map { "$_=" . ($o->{$_} =~ s/\t/TAB/r =~ s/\\/BS/r) } sort keys %$o),
				ddl => 'CREATE TABLE %T (id int NOT NULL UNIQUE, a text, b int CHECK (b >= 0), d date, j jsonb)',
				cols => [qw(id a b d j)], opts => $o, eol => $eol,
				min_bytes => $size >= 2000 ? $PIECE + 1 : 0,
				records => \@recs };
		}
	}
	return @c;
}

sub cases
{
	my ($chars) = @_;
	srand(14);
	return [ pg_regress_cases(), quoting_cases(), line_end_cases(),
		encoding_cases($chars), boundary_cases(), constraint_cases(),
		fuzz_cases(), encoding_fuzz_cases($chars), constraint_fuzz_cases() ];
}

1;
