# BatchOpsNginx — a real HTTP server on loopback for the outbound tests:
# Debian's nginx with the echo module (libnginx-mod-http-echo), listening
# on 127.0.0.1, 127.0.0.2 and 127.0.0.3 at one port, so that a test has
# three "devices".  The access log has one line per request:
#   server_addr method uri start_msec request_time status
# (start_msec: when the request started, msec - request_time).
#
# Locations:
#   /ok        200 JSON {"ok": true, "uri": ...}
#   /slow      200 JSON after 0.5 s      /slow2  after 2 s
#   /busy      503 with Retry-After: 1
#   /big       200, 1 MB of text
#   /auth      200, the request's Authorization header as text
#   /post      200 JSON (any method)   /slowpost  after 2 s
package BatchOpsNginx;

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use Time::HiRes qw(usleep);

our @EXPORT = qw(nginx_start nginx_stop nginx_requests nginx_max_overlap
  nginx_mixed_spec);

# servers a test that died did not stop are stopped at exit
my @started;
END { nginx_stop($_) for @started; }

sub free_port
{
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
		Proto => 'tcp', Listen => 1) or die "no free port: $!";
	my $port = $s->sockport;
	close $s;
	return $port;
}

# nginx_start(DIR) — start nginx with its files in DIR; returns
# { port, log, pid_file, dir }.
sub nginx_start
{
	my ($dir) = @_;
	mkdir $dir unless -d $dir;
	my $port = free_port();
	my $conf = <<"CONF";
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
daemon on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  log_format t '\$server_addr \$request_method \$request_uri \$msec \$request_time \$status';
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$port; listen 127.0.0.2:$port; listen 127.0.0.3:$port;
    access_log $dir/access.log t;
    location /ok { default_type application/json; return 200 '{"ok": true, "uri": "\$request_uri"}'; }
    location /slow2 { default_type application/json; echo_sleep 2; echo '{"slow": 2}'; }
    location /slow { default_type application/json; echo_sleep 0.5; echo '{"slow": true}'; }
    location /busy { add_header Retry-After 1 always; return 503 'busy'; }
    location /big { default_type text/plain; echo_duplicate 1048576 'x'; }
    location /slowpost { default_type application/json; echo_read_request_body; echo_sleep 2; echo '{"method": "\$request_method"}'; }
    location /auth { default_type text/plain; echo "\$http_authorization"; }
    location /post { default_type application/json; echo_read_request_body; echo '{"method": "\$request_method"}'; }
  }
}
CONF
	open my $fh, '>', "$dir/nginx.conf" or die $!;
	print $fh $conf;
	close $fh;
	system('/usr/sbin/nginx', '-e', "$dir/error.log", '-c', "$dir/nginx.conf",
		'-p', $dir) == 0
	  or die "nginx did not start: " . `cat $dir/error.log`;
	for (1 .. 100)
	{
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
		last if $s;
		usleep(50_000);
	}
	my $n = { port => $port, log => "$dir/access.log", pid_file => "$dir/nginx.pid",
		dir => $dir };
	push @started, $n;
	return $n;
}


sub nginx_stop
{
	my ($n) = @_;
	if (open my $fh, '<', $n->{pid_file})
	{
		my $pid = <$fh>;
		chomp $pid;
		kill 'QUIT', $pid if $pid;
	}
}

# nginx_requests(N, [REGEX]) — the parsed log lines (matching REGEX):
# hash refs { addr, method, uri, start, end, status }.
sub nginx_requests
{
	my ($n, $re) = @_;
	my @r;
	open my $fh, '<', $n->{log} or return ();
	while (my $l = <$fh>)
	{
		next if defined $re && $l !~ $re;
		my ($addr, $method, $uri, $msec, $rt, $status) = split ' ', $l;
		push @r, { addr => $addr, method => $method, uri => $uri,
			start => $msec - $rt, end => $msec, status => $status };
	}
	return @r;
}

# nginx_max_overlap(REQUESTS) — the most requests in progress at once.
sub nginx_max_overlap
{
	my @ev;
	for my $r (@_)
	{
		push @ev, [ $r->{start}, 1 ], [ $r->{end}, -1 ];
	}
	my ($cur, $max) = (0, 0);
	for my $e (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev)
	{
		$cur += $e->[1];
		$max = $cur if $cur > $max;
	}
	return $max;
}


# The spec of the crash tests (091, 095): 12 targets alternating a read
# (GET /slow2 on 127.0.0.1) and a change (POST /slowpost on 127.0.0.2),
# two at a time per host, against the nginx on $port.
sub nginx_mixed_spec
{
	my ($port) = @_;
	my @devs;
	for my $i (0 .. 11)
	{
		push @devs, $i % 2 == 0
		  ? qq({"host": "127.0.0.1", "request": {"path": "/slow2?i=$i"}})
		  : qq({"host": "127.0.0.2", "request": {"method": "POST", "path": "/slowpost?i=$i", "body": {"i": $i}}});
	}
	return qq({"driver": "http", "devices": [) . join(', ', @devs)
	  . qq(], "connection_args": {"scheme": "http", "port": $port}, "options": {"concurrency": 4, "host_concurrency": 2}});
}

1;
