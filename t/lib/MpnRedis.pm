package MpnRedis;

# A private redis-server for a test and a tiny RESP2 client, core Perl only.
#
#   my $srv = MpnRedis->start;             # redis-server on a free port,
#                                          # with the dataset marker
#   $srv->load_library;                    # FUNCTION LOAD REPLACE redis/mpn.lua
#   my $r = $srv->client;
#   $r->cmd('SET', 'k', 'v');              # 'OK'
#   my $e = $r->cmd('FCALL', 'x', 0);      # an MpnRedis::Error on error
#   is(MpnRedis::err_code($e), 'NOT_MEMBER');
#   $srv->stop;                            # also done when $srv goes away
#   my $res = MpnRedis::run(['cmd', ...]); # { rc, out, err }

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our $ROOT = $ENV{MPN_ROOT} || do {
    require File::Basename;
    require Cwd;
    Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../..');
};


sub redis_server_path {
    for my $dir (split(/:/, $ENV{PATH} || ''), '/usr/bin', '/usr/sbin') {
        return "$dir/redis-server" if -x "$dir/redis-server";
    }
    return undef;
}


sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or die "cannot find a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}


# the dataset marker the module wants to see before it reads a record
# (spec section 11), as `mpnctl init` writes it
our $MARKER = 'mpn:meta';

sub marker_json {
    require POSIX;
    return '{"v":1,"created_at":"'
        . POSIX::strftime('%Y-%m-%dT%H:%M:%SZ', gmtime) . '"}';
}


# Starts redis-server (daemonize no) in a temporary directory; dies unless
# it answers PING within 5 s.  Options: dir, port (to come back on the
# same port after a stop), conf (extra redis.conf lines), password (for
# requirepass), marker => 0 (do not write the dataset marker in db 0), tls
# (the TLS lines of MpnTls::redis_conf: a TLS port is opened beside the
# plain one, which the tests' own client keeps using), tls_port, bind (a
# loopback address other than 127.0.0.1, for a name that moves),
# replica_of => another MpnRedis (start as its replica; no marker is
# written: it comes from the primary), sentinel => 1 (see start_sentinel).
sub start {
    my ($class, %opt) = @_;

    my $bin = redis_server_path() or die "redis-server not found";
    my $dir = $opt{dir} || tempdir('mpn-redis-XXXXXX', TMPDIR => 1,
                                   CLEANUP => 1);
    my $port = $opt{port} || free_port();
    my $tls_port = $opt{tls} ? ($opt{tls_port} || free_port()) : undef;
    my $bind = $opt{bind} || '127.0.0.1';

    open(my $fh, '>', "$dir/redis.conf") or die "$dir/redis.conf: $!";
    print $fh join("\n",
        "bind $bind",
        "port $port",
        'save ""',
        'appendonly no',
        "dir $dir",
        'daemonize no',
        "logfile $dir/redis.log",
        "unixsocket $dir/redis.sock",
        'unixsocketperm 700',
        ($tls_port ? ("tls-port $tls_port", @{$opt{tls}}) : ()),
        ($opt{replica_of}
         ? ('replicaof ' . $opt{replica_of}->addr =~ s/:/ /r) : ()),
        @{$opt{conf} || []}), "\n";
    close $fh;

    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', '/dev/null');
        exec($bin, "$dir/redis.conf", $opt{sentinel} ? ('--sentinel') : ())
            or POSIX::_exit(127);
    }

    my $self = bless { pid => $pid, port => $port, tls_port => $tls_port,
                       bind => $bind, dir => $dir, owner => $$ }, $class;

    my $deadline = time() + 5;
    while (time() < $deadline) {
        my $c = eval { MpnRedis::Client->new($port, $bind) };
        my $pong = $c ? $c->cmd('PING') : undef;
        if (defined $pong && (ref $pong ? $pong->msg =~ /^NOAUTH/
                                        : $pong eq 'PONG'))
        {
            $self->write_marker($opt{password})
                if ($opt{marker} // 1) && !$opt{replica_of} && !$opt{sentinel};
            return $self;
        }
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "redis-server exited: " . $self->log_tail;
        }
        sleep(0.05);
    }

    $self->stop;
    die "redis-server did not answer on port $port";
}


# Starts redis-server --sentinel watching one primary, in a directory of
# its own (a Sentinel rewrites its config file).  Options: monitor (an
# MpnRedis, required), name (default mymaster), quorum (1), down_after (ms,
# 1000), conf, dir, port.
sub start_sentinel {
    my ($class, %opt) = @_;
    my $name = $opt{name} || 'mymaster';
    my $primary = $opt{monitor} or die "start_sentinel: monitor => primary";
    my $self = $class->start(%opt, sentinel => 1, conf => [
        "sentinel monitor $name " . ($primary->addr =~ s/:/ /r) . ' '
            . ($opt{quorum} || 1),
        "sentinel down-after-milliseconds $name " . ($opt{down_after} || 1000),
        "sentinel failover-timeout $name 10000",
        "sentinel parallel-syncs $name 1",
        @{$opt{conf} || []}]);
    $self->{sentinel} = $name;
    return $self;
}


sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub tls_port { $_[0]{tls_port} }
sub dir  { $_[0]{dir} }
sub addr { $_[0]{bind} . ':' . $_[0]{port} }
sub unix_socket { $_[0]{dir} . '/redis.sock' }

sub client { MpnRedis::Client->new($_[0]{port}, $_[0]{bind}) }


# SET the dataset marker (in db 0, or db $db)
sub write_marker {
    my ($self, $password, $db) = @_;
    my $c = $self->client;
    $c->cmd('AUTH', $password) if defined $password;
    $c->cmd('SELECT', $db) if $db;
    my $r = $c->cmd('SET', $MARKER, marker_json());
    die "SET $MARKER: $r->{msg}" if ref($r) eq 'MpnRedis::Error';
}


sub log_tail {
    my ($self) = @_;
    open(my $fh, '<', "$self->{dir}/redis.log") or return '';
    my @l = <$fh>;
    return join('', @l[($#l > 10 ? $#l - 10 : 0) .. $#l]);
}


# FUNCTION LOAD REPLACE with the library (redis/mpn.lua by default)
sub load_library {
    my ($self, $path) = @_;
    $path ||= "$ROOT/redis/mpn.lua";
    open(my $fh, '<', $path) or die "$path: $!";
    my $code = do { local $/; <$fh> };
    close $fh;
    my $r = $self->client->cmd('FUNCTION', 'LOAD', 'REPLACE', $code);
    die "FUNCTION LOAD: $r->{msg}" if ref($r) eq 'MpnRedis::Error';
    return $r;
}


sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    return if $self->{owner} != $$;     # a forked child must not stop it
    kill('TERM', $pid);
    my $deadline = time() + 5;
    while (time() < $deadline) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep(0.02);
    }
    kill('KILL', $pid);
    waitpid($pid, 0);
}


sub DESTROY { $_[0]->stop }


# Runs a command, stdin from a file (or /dev/null), stdout and stderr to
# files; returns { rc => exit code, out => stdout, err => stderr }.
sub run {
    my ($cmd, %opt) = @_;
    my $dir = tempdir('mpn-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open(STDIN, '<', $opt{stdin} // '/dev/null') or POSIX::_exit(126);
        open(STDOUT, '>', "$dir/out") or POSIX::_exit(126);
        open(STDERR, '>', "$dir/err") or POSIX::_exit(126);
        exec(@$cmd) or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my %res = (rc => $? >> 8, signal => $? & 127);
    for my $f (qw(out err)) {
        open(my $fh, '<', "$dir/$f") or die "$dir/$f: $!";
        binmode($fh);
        $res{$f} = do { local $/; <$fh> };
        close $fh;
    }
    return \%res;
}


# the code an error reply starts with ("NOT_MEMBER"), or undef
sub err_code {
    my ($r) = @_;
    return undef unless ref($r) eq 'MpnRedis::Error';
    return (split(/ /, $r->{msg}, 2))[0];
}


package MpnRedis::Error;

sub new { bless { msg => $_[1] }, $_[0] }
sub msg { $_[0]{msg} }


package MpnRedis::Client;

use IO::Select;
use IO::Socket::INET;

sub new {
    my ($class, $port, $host) = @_;
    $host ||= '127.0.0.1';
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "connect $host:$port: $!";
    $s->autoflush(1);
    binmode($s);
    return bless { s => $s, buf => '' }, $class;
}


sub encode {
    my (@args) = @_;
    my $out = '*' . scalar(@args) . "\r\n";
    for my $a (@args) {
        $a = '' unless defined $a;
        $out .= '$' . length($a) . "\r\n" . $a . "\r\n";
    }
    return $out;
}


sub send_raw {
    my ($self, $data) = @_;
    my $off = 0;
    while ($off < length($data)) {
        my $n = syswrite($self->{s}, $data, length($data) - $off, $off);
        die "write: $!" unless defined $n;
        $off += $n;
    }
}


# one command, one reply
sub cmd {
    my ($self, @args) = @_;
    $self->send_raw(encode(@args));
    return $self->reply;
}


# many commands ([cmd, args...], ...) sent at once; their replies in order
sub pipeline {
    my ($self, @cmds) = @_;
    $self->send_raw(join('', map { encode(@$_) } @cmds));
    return map { $self->reply } @cmds;
}


sub fill {
    my ($self, $timeout) = @_;
    if (defined $timeout) {
        my $sel = IO::Select->new($self->{s});
        return 0 unless $sel->can_read($timeout);
    }
    my $n = sysread($self->{s}, $self->{buf}, 65536, length($self->{buf}));
    die "read: $!" unless defined $n;
    die "connection closed" if $n == 0;
    return 1;
}


sub line {
    my ($self, $timeout) = @_;
    while ((my $i = index($self->{buf}, "\r\n")) < 0) {
        return undef unless $self->fill($timeout);
    }
    my $i = index($self->{buf}, "\r\n");
    my $l = substr($self->{buf}, 0, $i);
    substr($self->{buf}, 0, $i + 2, '');
    return $l;
}


# The next reply: a string, an integer, undef (nil), an array ref or an
# MpnRedis::Error.  With a timeout, returns () when nothing arrives in time.
sub reply {
    my ($self, $timeout) = @_;
    my $l = $self->line($timeout);
    return () unless defined $l;
    my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
    return $v if $t eq '+';
    return MpnRedis::Error->new($v) if $t eq '-';
    return $v + 0 if $t eq ':';
    if ($t eq '$') {
        return undef if $v < 0;
        while (length($self->{buf}) < $v + 2) {
            $self->fill;
        }
        my $s = substr($self->{buf}, 0, $v);
        substr($self->{buf}, 0, $v + 2, '');
        return $s;
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { scalar $self->reply } 1 .. $v ];
    }
    die "unexpected reply line: $l";
}

1;
