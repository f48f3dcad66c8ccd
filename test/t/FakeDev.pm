# FakeDev — start and drive test/fakedev/fakedev.py from TAP tests.
#
#   my $fd = fakedev_start('name', '127.0.1.1-127.0.1.4', {users => {...}});
#   $fd->{http}, $fd->{https}, $fd->{ca}      ports and the CA's PEM file
#   fakedev_control($fd, 'PUT', '/faults/127.0.1.2', {status => 503});
#   fakedev_send($request)   send a request as a driver built it
#                            (batch_ops_test_driver_request's answer)
#   fakedev_stop($fd);
#
# The server's lifetime bounds it even if the test dies before stopping it.
package FakeDev;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use BatchOpsTest;

our @EXPORT = qw(fakedev_start fakedev_stop fakedev_control fakedev_send);

my $json = JSON::PP->new->canonical;

# fakedev_start(NAME, ADDRESSES, [CONFIG]) — a running fake device server.
sub fakedev_start
{
	my ($name, $addresses, $config) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("fakedev_$name");
	my $script = dirname(__FILE__) . '/../fakedev/fakedev.py';
	my @conf;
	if ($config)
	{
		open(my $fh, '>', "$dir/config.json") or die "$dir/config.json: $!";
		print $fh $json->encode($config);
		close($fh);
		@conf = ('--config', "$dir/config.json");
	}
	my $h = IPC::Run::start(
		[
			'python3', $script, '--addresses', $addresses,
			'--port-file', "$dir/ports.json", '--dir', $dir,
			'--lifetime', 600, @conf
		],
		'>', "$dir/out", '2>&1');
	bo_wait_until(sub { -s "$dir/ports.json" }, 30)
	  or die "fakedev $name did not start: " . slurp_file("$dir/out");
	my $fd = $json->decode(slurp_file("$dir/ports.json"));
	$fd->{harness} = $h;
	$fd->{dir} = $dir;
	return $fd;
}

sub fakedev_stop
{
	my ($fd) = @_;
	$fd->{harness}->kill_kill if $fd->{harness};
	delete $fd->{harness};
	return;
}

# fakedev_control(FD, METHOD, PATH, [BODY]) — the control endpoint's answer.
sub fakedev_control
{
	my ($fd, $method, $path, $body) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->request($method,
		"http://127.0.0.1:$fd->{control}$path",
		{ defined $body ? (content => $json->encode($body)) : () });
	die "fakedev control $method $path: $r->{status} $r->{content}"
	  unless $r->{success};
	return $json->decode($r->{content});
}

# fakedev_send(REQUEST) — {status, body, content_type, retry_after_ms}.
sub fakedev_send
{
	my ($req) = @_;
	my %headers;
	for my $line (@{ $req->{headers} })
	{
		my ($k, $v) = split(/: /, $line, 2);
		$headers{$k} = $v;
	}
	my $r = HTTP::Tiny->new(timeout => 10, max_redirect => 0)->request(
		$req->{method},
		$req->{url},
		{
			headers => \%headers,
			defined $req->{body} ? (content => $req->{body}) : ()
		});
	my $ra = $r->{headers}{'retry-after'};
	return {
		status => $r->{status},
		body => $r->{content} // '',
		content_type => $r->{headers}{'content-type'},
		retry_after_ms => defined $ra ? $ra * 1000 : undef
	};
}

1;
