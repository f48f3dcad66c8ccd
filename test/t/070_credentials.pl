# Credentials (issue #10): the key file (not configured, missing, readable
# by others, the wrong size), a stored secret that appears nowhere in the
# data directory, the WAL or the server log, and that still decrypts after
# a restart; who may use a credential (credential_fetch, through the test
# module's credential_probe, which returns MD5s of the fields, never the
# values); a ciphertext moved to another row or opened under another key
# does not decrypt.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);
use File::Find;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BatchOpsTest;

# PostgreSQL::Test::Cluster logs every statement; a statement that holds a
# secret as a literal would put it in the log whatever batch_ops does, so
# statements are not logged here (README: pass secrets as parameters)
my $node = bo_node('cred', "log_statement = none\n");
sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }

# ------------------------------------------------------------ no key file
my $r = bo_sql($node, 'postgres',
	q{SELECT batch_ops.credential_set('c', '{"password": "x"}')});
is($r->{sqlstate}, '55000', 'no key file configured: 55000');
like($r->{err}, qr/no credential key file is configured/, '... saying so');
like($r->{err}, qr{HINT:.*head -c 32 /dev/urandom > .*chmod 600}s,
	'... with a hint on how to create one');

# --------------------------------------------------- a key file, outside
my $keydir = $node->basedir . '/keys';
mkdir $keydir or die "$keydir: $!";
my $key = "$keydir/batch_ops.key";
$node->append_conf('postgresql.conf', "batch_ops.credential_key_file = '$key'\n");
$node->restart;

sub write_key
{
	my ($bytes, $mode) = @_;
	open(my $fh, '>', $key) or die "$key: $!";
	binmode $fh;
	print $fh $bytes;
	close $fh;
	chmod $mode, $key;
}

sub set_fails_with
{
	my ($re, $name) = @_;
	my $r = bo_sql($node, 'postgres',
		q{SELECT batch_ops.credential_set('c', '{"password": "x"}')});
	is($r->{sqlstate}, '55000', "$name: 55000");
	like($r->{err}, $re, "$name: the message says why");
}

set_fails_with(qr/could not open credential key file .*No such file/s, 'missing key file');
write_key('k' x 32, 0644);
set_fails_with(qr/has group or world access.*Its mode is 0644.*chmod 600/s, 'mode 0644');
write_key('k' x 32, 0640);
set_fails_with(qr/has group or world access/, 'mode 0640');
write_key('k' x 31, 0600);
set_fails_with(qr/must hold exactly 32 bytes.*It holds 31 bytes/s, '31 bytes');
write_key('k' x 33, 0600);
set_fails_with(qr/must hold exactly 32 bytes.*It holds 33 bytes/s, '33 bytes');
unlink $key;
mkdir $key;
set_fails_with(qr/is not a regular file/, 'a directory');
rmdir $key;

my $keybytes = join('', map { chr(int(rand(256))) } 1 .. 32);
write_key($keybytes, 0600);

# ------------------------------------------------------------- the probe
my ($rc) = $node->psql('postgres',
	"CREATE FUNCTION credential_probe(text, regrole) RETURNS text"
	  . " AS 'batch_ops', 'batch_ops_test_credential_probe' LANGUAGE C STRICT;"
	  . "CREATE FUNCTION seal_probe(text) RETURNS text"
	  . " AS 'batch_ops', 'batch_ops_test_seal_probe' LANGUAGE C STRICT;");
plan skip_all => 'batch_ops was built without TEST_MODULES=1 (no probe)'
  if $rc != 0;

# ------------------------------------------------- a secret stored, then
# looked for everywhere: a marker no other byte sequence will match
my $marker = 'pw-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 24);
my $api_key = 'ak-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 24);
sq(q{CREATE ROLE alice; CREATE ROLE bob; CREATE ROLE carol;
	 CREATE ROLE team; GRANT team TO carol;});
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT batch_ops.credential_set('core', "
	  . "jsonb_build_object('username', 'netops', 'password', '$marker'))");
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT batch_ops.credential_set('meraki', "
	  . "jsonb_build_object('api_key', '$api_key'), '{\"header\": \"X-Key\"}')");
is(sq(q{SELECT fields FROM batch_ops.credentials WHERE name = 'core'}),
	'{password,username}', 'the view lists the fields (in jsonb key order)');

my $md5 = md5_hex($marker);
my $md5_user = md5_hex('netops');
is(sq(q{SELECT credential_probe('core', 'alice')}),
	"username=$md5_user password=$md5", 'the owner gets the secret back');
is(sq(q{SELECT credential_probe('meraki', 'alice')}),
	'api_key=' . md5_hex($api_key) . ' header:X-Key',
	'... and the api_key header');

# the stored bytes
is(sq(q{SELECT count(*) FROM batch_ops.credential
		 WHERE position(convert_to('} . $marker . q{', 'UTF8') in sealed) > 0}),
	'0', 'the sealed value does not hold the password');
is(sq(q{SELECT length(sealed) FROM batch_ops.credential WHERE name = 'meraki'}),
	1 + 4 + length($api_key) + 1 + 12 + 16,
	'sealed: version, nonce, one field, tag');

sq('CHECKPOINT');
sq('SELECT pg_switch_wal()');
sq('CHECKPOINT');

# grep the data directory (WAL included), the key directory and the log
sub files_holding
{
	my ($needle, @dirs) = @_;
	my @hits;
	find(
		{
			no_chdir => 1,
			wanted => sub {
				return unless -f $_;
				open(my $fh, '<', $_) or return;
				binmode $fh;
				local $/;
				my $data = <$fh>;
				push @hits, $_ if defined $data && index($data, $needle) >= 0;
			}
		},
		@dirs);
	return @hits;
}
my @hits = files_holding($marker, $node->data_dir, $keydir, $node->logfile);
is_deeply(\@hits, [], 'the password is in no file of the data directory, WAL or log');
@hits = files_holding($api_key, $node->data_dir, $node->logfile);
is_deeply(\@hits, [], 'nor is the api key');
my @wal = files_holding('netops', $node->data_dir . '/pg_wal');
is_deeply(\@wal, [], 'nor the user name, in the WAL');

# ------------------------------------------------------- after a restart
$node->restart;
is(sq(q{SELECT credential_probe('core', 'alice')}),
	"username=$md5_user password=$md5", 'after a restart the secret still decrypts');

# --------------------------------------------------------- who may use it
sub probe_err
{
	my ($name, $role) = @_;
	return bo_sql($node, 'postgres', "SELECT credential_probe('$name', '$role')");
}
$r = probe_err('core', 'bob');
is($r->{sqlstate}, '42704', 'another role: 42704');
my $missing = probe_err('no-such', 'bob');
(my $a = $r->{err}) =~ s/"core"/"X"/;
(my $b = $missing->{err}) =~ s/"no-such"/"X"/;
$a =~ s/LOCATION:.*//s;
$b =~ s/LOCATION:.*//s;
is($a, $b, '... exactly as for a missing credential');

sq(q{SET ROLE alice; SELECT batch_ops.credential_grant('core', 'bob')});
is(sq(q{SELECT credential_probe('core', 'bob')}),
	"username=$md5_user password=$md5", 'a grantee may use it');
is(sq(q{SELECT credential_probe('alice.core', 'bob')}),
	"username=$md5_user password=$md5", '... also as owner.name');
is(probe_err('core', 'carol')->{sqlstate}, '42704', 'not carol');
sq(q{SET ROLE alice; SELECT batch_ops.credential_grant('core', 'team')});
like(sq(q{SELECT credential_probe('core', 'carol')}), qr/password=$md5/,
	'a member of a grantee role may use it');
is(sq(q{SELECT credential_probe('core', 'postgres')}),
	"username=$md5_user password=$md5", 'a superuser may use it');

# bob's own "core" comes first; a second usable one makes the name ambiguous
$node->safe_psql('postgres',
	q{SET ROLE bob; SELECT batch_ops.credential_set('core', '{"token": "bob-token"}')});
is(sq(q{SELECT credential_probe('core', 'bob')}),
	'token=' . md5_hex('bob-token'), "a role's own credential first");
$node->safe_psql('postgres',
	q{SET ROLE bob; SELECT batch_ops.credential_grant('core', 'carol')});
$r = probe_err('core', 'carol');
is($r->{sqlstate}, '42P08', 'two usable credentials of one name: ambiguous');
like($r->{err}, qr/HINT:.*owner\.name/s, '... the hint says how to name one');
like(sq(q{SELECT credential_probe('bob.core', 'carol')}), qr/^token=/,
	'... owner.name picks one');

# a role name with a "." (credential names have none: split at the last)
sq(q{CREATE ROLE "first.last"});
$node->safe_psql('postgres',
	q{SET ROLE "first.last"; SELECT batch_ops.credential_set('core', '{"token": "fl"}');
	  SELECT batch_ops.credential_grant('core', 'bob')});
is(sq(q{SELECT credential_probe('first.last.core', 'bob')}), 'token=' . md5_hex('fl'),
	'owner.name with a "." in the owner');

sq(q{SET ROLE alice; SELECT batch_ops.credential_revoke('core', 'bob')});
is(probe_err('alice.core', 'bob')->{sqlstate}, '42704', 'revoked: gone again');

# ------------------------------------ a ciphertext moved to another row
sq(q{UPDATE batch_ops.credential SET sealed =
		(SELECT sealed FROM batch_ops.credential WHERE name = 'core'
		  AND owner = 'alice'::regrole)
	  WHERE name = 'core' AND owner = 'bob'::regrole});
$r = probe_err('bob.core', 'postgres');
is($r->{sqlstate}, 'XX001', 'a ciphertext moved to another row does not open');
like($r->{err}, qr/could not decrypt credential "bob.core"/, '... and says so');
unlike($r->{err}, qr/$marker/, '... without the secret');

# ----------------------------------------------------------- inline seal
is(sq(q{SELECT seal_probe('inline-secret')}),
	'md5=' . md5_hex('inline-secret') . ' len=13 overhead=29 visible=no',
	'credential_seal/unseal: a round trip, sealed bytes hide the plaintext');

# --------------------------------------------------------- another key
write_key(join('', map { chr(int(rand(256))) } 1 .. 32), 0600);
$r = probe_err('alice.core', 'postgres');
is($r->{sqlstate}, 'XX001', 'under another key nothing decrypts');
like($r->{err}, qr/not the one it was stored with/, '... and the detail says why');
write_key($keybytes, 0600);
like(sq(q{SELECT credential_probe('alice.core', 'postgres')}), qr/password=$md5/,
	'the right key again: it decrypts');

# ------------------------------------------ and nothing went to the log
@hits = files_holding($marker, $node->logfile);
is_deeply(\@hits, [], 'the server log never saw the password');

$node->stop;
done_testing();
