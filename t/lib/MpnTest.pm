package MpnTest;

# Integration test helpers in the spirit of nginx-tests' Test::Nginx: a
# private redis-server and Debian's real nginx (with the module loaded) on
# free loopback ports in a temporary directory, plain HTTP requests, and
# checks of the error log.  Core Perl only.

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Test::More;
use MpnRedis;

our @EXPORT = qw(free_port status header poll promtool_check);

sub free_port { MpnRedis::free_port() }

my $ROOT = $MpnRedis::ROOT;

sub new {
    my ($class, %opts) = @_;

    my $module = $ENV{MPN_MODULE} || "$ROOT/build/nginx/objs/ngx_http_mpn_module.so";
    plan(skip_all => "module not built: $module") unless -f $module;
    plan(skip_all => 'redis-server not installed') unless -x '/usr/bin/redis-server';

    my $self = bless {
        dir => tempdir('mpn-test-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MPN_KEEP}),
        module => $module,
        pids => {},
        %opts,
    }, $class;

    # the workers run as nobody: they must reach the served files
    chmod 0755, $self->{dir};
    mkdir "$self->{dir}/html";
    return $self;
}

sub dir { $_[0]{dir} }

# a file in the test directory (or at an absolute path), its directory
# made if need be
sub write_file {
    my ($self, $name, $content) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    make_path(dirname($path));
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh;
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '<', $path or return '';
    local $/;
    return <$fh>;
}

# --- redis ------------------------------------------------------------------

# a private redis-server in the test's directory, with the dataset marker
# unless marker => 0; a restart keeps the ports.  %o: password, marker,
# tls (MpnTls::redis_conf lines: %%REDIS_TLS%% is its TLS port), conf (more
# redis.conf lines)
sub start_redis {
    my ($self, %o) = @_;

    $self->{redis_password} = $o{password};
    $self->{redis} = MpnRedis->start(dir => $self->{dir},
        port => $self->{redis_port}, password => $o{password},
        marker => $o{marker} // 1,
        tls_port => $self->{redis_tls_port}, tls => $o{tls},
        conf => [ defined $o{password} ? "requirepass $o{password}" : (),
                  @{ $o{conf} || [] } ]);
    $self->{redis_port} = $self->{redis}->port;
    $self->{redis_tls_port} = $self->{redis}->tls_port;
    return $self->{redis_port};
}

sub redis_port { $_[0]{redis_port} }

sub stop_redis {
    my ($self) = @_;
    my $srv = delete $self->{redis} or return;
    kill 'CONT', $srv->{pid};
    $srv->stop;
}

sub signal_redis {
    my ($self, $sig) = @_;
    kill $sig, $self->{redis}{pid};
}

# one command on a fresh connection; an error reply is an MpnRedis::Error
sub redis {
    my ($self, @cmd) = @_;
    my $c = $self->{redis}->client;
    $c->cmd('AUTH', $self->{redis_password}) if defined $self->{redis_password};
    return $c->cmd(@cmd);
}

# --- nginx ------------------------------------------------------------------

# $http is the body of the http block; %o: workers, main (extra main-level
# lines), error_level
sub write_nginx_conf {
    my ($self, $http, %o) = @_;

    $self->{port} ||= free_port();
    my $dir = $self->{dir};
    my $workers = $o{workers} || 1;
    my $level = $o{error_level} || 'info';
    my $main = $o{main} || '';

    $http =~ s/%%PORT%%/$self->{port}/g;
    $http =~ s/%%REDIS%%/127.0.0.1:$self->{redis_port}/g if $self->{redis_port};
    $http =~ s/%%REDIS_TLS%%/127.0.0.1:$self->{redis_tls_port}/g
        if $self->{redis_tls_port};
    $http =~ s/%%DIR%%/$dir/g;

    $self->write_file('nginx.conf', <<"EOF");
load_module $self->{module};
worker_processes $workers;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log $level;
$main
events { worker_connections 4096; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    default_type text/plain;
$http
}
EOF
}

sub port { $_[0]{port} }

# nginx -t on the current configuration: (exit status, output)
sub nginx_test_conf {
    my ($self) = @_;
    local $ENV{LD_PRELOAD} = _preload();
    my $out = `/usr/sbin/nginx -t -p $self->{dir} -c $self->{dir}/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

# make asan: the sanitizer runtimes go first into the stock nginx
sub _preload {
    return join ' ', grep { $_ } $ENV{MPN_PRELOAD}, $ENV{LD_PRELOAD};
}

sub start_nginx {
    my ($self) = @_;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/nginx.stderr";
        open STDERR, '>>', "$self->{dir}/nginx.stderr";
        # new(preload => LIB, env => {...}): a fault injector for nginx
        $ENV{LD_PRELOAD} = join ' ', grep { $_ } _preload(), $self->{preload};
        @ENV{ keys %{ $self->{env} || {} } } = values %{ $self->{env} || {} };
        exec '/usr/sbin/nginx', '-p', $self->{dir}, '-c', "$self->{dir}/nginx.conf";
        exit 127;
    }
    $self->{pids}{nginx} = $pid;

    for (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{port}, Proto => 'tcp');
        if ($s) {
            close $s;
            return $pid;
        }
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pids}{nginx};
            die "nginx exited at start:\n" . $self->read_file('nginx.stderr')
                . $self->read_file('error.log');
        }
        sleep 0.05;
    }
    die "nginx did not start on port $self->{port}";
}

sub reload_nginx {
    my ($self) = @_;
    kill 'HUP', $self->{pids}{nginx};
    sleep 1;
}

sub stop_nginx {
    my ($self) = @_;
    $self->stop_pid('nginx', 'QUIT');
}

sub stop_pid {
    my ($self, $name, $sig) = @_;
    my $pid = delete $self->{pids}{$name} or return;
    kill 'CONT', $pid;
    kill $sig, $pid;
    for (1 .. 100) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub DESTROY {
    my ($self) = @_;
    $self->stop_pid($_, 'TERM') for keys %{ $self->{pids} };
    $self->stop_redis;
}

# --- HTTP ---------------------------------------------------------------

# a raw HTTP/1.0 exchange; returns the whole response as text
sub http {
    my ($self, $request, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $o{port} || $self->{port}, Proto => 'tcp')
        or die "connect: $!";
    print $s $request;
    my $sel = IO::Select->new($s);
    my $reply = '';
    my $deadline = time + ($o{timeout} || 10);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, $reply, 65536, length $reply);
        last unless $n;
    }
    close $s;
    return $reply;
}

sub http_get {
    my ($self, $uri, %h) = @_;
    my $headers = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    return $self->http("GET $uri HTTP/1.0\r\nHost: localhost\r\n$headers\r\n");
}

# the status code of a raw response
sub status { ($_[0] =~ m{^HTTP/1\.\d (\d+)})[0] // 0 }

# a header of a raw response, or undef
sub header { my ($r, $h) = @_; ($r =~ /^\Q$h\E: ([^\r\n]*)/mi)[0] }

# poll(sub { ... }, SECONDS): true once the check holds, false at the end
sub poll {
    my ($what, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        return 1 if $what->();
        sleep 0.05;
    }
    return 0;
}

# Prometheus's own linter on the exposition text: (exit status, output);
# an empty list when promtool (Debian package prometheus) is not installed
sub promtool_check {
    my ($text) = @_;
    my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
    return unless $promtool;
    my $file = File::Temp->new;
    print $file $text;
    close $file;
    my $out = `$promtool check metrics < $file 2>&1`;
    return ($? >> 8, $out);
}

# --- faults -------------------------------------------------------------

# 1,000 clients send /gated/x to a stopped redis and leave while their
# lookups are outstanding; once redis continues, the late replies must find
# nothing to wake: $served->() holds again, no descriptor leaked, the worker
# is the same, and each abandoned request was logged as 499.
sub abandoned_lookups {
    my ($self, $served) = @_;

    my ($worker) = `pgrep -P $self->{pids}{nginx}` =~ /(\d+)/;
    my $fds_before = () = glob("/proc/$worker/fd/*");

    $self->signal_redis('STOP');
    my @c;
    for my $i (1 .. 1000) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{port}, Proto => 'tcp') or last;
        print $s "GET /gated/x HTTP/1.1\r\nHost: x\r\nX-Partner: p$i\r\n\r\n";
        push @c, $s;
    }
    is(scalar @c, 1000, '1000 requests outstanding on a stopped redis');
    sleep 0.5;
    close $_ for @c;
    sleep 0.5;
    $self->signal_redis('CONT');

    ok(poll($served, 5), 'the late replies are dropped and the gate serves again');
    ok(poll(sub { my $n = () = glob("/proc/$worker/fd/*"); $n <= $fds_before }, 5),
        'no file descriptor leaked');
    my ($worker_after) = `pgrep -P $self->{pids}{nginx}` =~ /(\d+)/;
    is($worker_after, $worker, 'the worker did not restart');
    my $aborted = () = $self->read_file('access.log')
        =~ m{"GET /gated/x HTTP/1.1" 499 }g;
    is($aborted, 1000, 'every abandoned request ended as 499 while it waited');
}

# A fake server that answers whatever it is sent with bytes that are not
# RESP; with tls => [cert, key] it speaks TLS first.  Returns (port, pid);
# the caller kills the pid.
sub garbage_server {
    my ($self, %o) = @_;
    require IO::Socket::SSL if $o{tls};
    my $fake = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 64, ReuseAddr => 1) or die "listen: $!";
    my $port = $fake->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        while (my $c = $fake->accept) {
            if ($o{tls}) {
                IO::Socket::SSL->start_SSL($c, SSL_server => 1,
                    SSL_cert_file => $o{tls}[0], SSL_key_file => $o{tls}[1])
                    or next;
            }
            my $buf;
            sysread($c, $buf, 4096);
            syswrite($c, "%this is not RESP\r\n\x00\xff\r\n");
            $o{tls} ? $c->close(SSL_no_shutdown => 1) : close $c;
        }
        exit 0;
    }
    close $fake;
    return ($port, $pid);
}

# --- checks -------------------------------------------------------------

sub error_log { $_[0]->read_file('error.log') }

# every integration test ends with this: no alert, no emerg, no crashed worker
sub check_error_log {
    my ($self) = @_;
    my $log = $self->error_log;
    unlike($log, qr/\[(alert|emerg)\]/, 'no alert or emerg in the error log');
    unlike($log, qr/exited on signal/, 'no worker exited on a signal');
    unlike($log, qr/worker process \d+ exited with code [1-9]/, 'no worker failed');
}

1;
