package MpnDns;

# A DNS stub for tests (dns_stub.py beside this file): answers A records
# for 127.0.0.1 from a file the test rewrites to move a name.
#
#   my $dns = MpnDns->start($dir, 'redis.test' => '127.0.0.1');
#   "resolver 127.0.0.1:" . $dns->port . " ipv6=off;"
#   $dns->set('redis.test' => '127.0.0.2');
#   $dns->delay(2.5);                    # answers held 2.5 s (0: at once)
#   $dns->queries;                       # how many have come so far
#   $dns->stop;                          # also when $dns goes away

use strict;
use warnings;

use File::Basename qw(dirname);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);


sub start {
    my ($class, $dir, %names) = @_;
    my $self = bless { zone => "$dir/dns.zone", port_file => "$dir/dns.port",
                       owner => $$ }, $class;
    $self->set(%names);
    unlink $self->{port_file};

    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        exec(-x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3', dirname(__FILE__) . '/dns_stub.py', $self->{zone},
             $self->{port_file}) or POSIX::_exit(127);
    }
    $self->{pid} = $pid;

    my $deadline = time() + 5;
    while (time() < $deadline) {
        if (open(my $fh, '<', $self->{port_file})) {
            $self->{port} = <$fh>;
            return $self;
        }
        die "dns_stub.py exited" if waitpid($pid, WNOHANG) == $pid;
        sleep(0.05);
    }
    $self->stop;
    die "dns_stub.py did not start";
}


sub port { $_[0]{port} }


sub delay {
    my ($self, $secs) = @_;
    open(my $fh, '>', "$self->{zone}.delay") or die "$self->{zone}: $!";
    print $fh "$secs\n";
    close $fh;
}


sub queries {
    my ($self) = @_;
    open(my $fh, '<', "$self->{zone}.queries") or return 0;
    my @l = <$fh>;
    return scalar @l;
}


# the whole zone: name => address, ...
sub set {
    my ($self, %names) = @_;
    open(my $fh, '>', "$self->{zone}.tmp") or die "$self->{zone}: $!";
    print $fh "$_ $names{$_}\n" for sort keys %names;
    close $fh;
    rename("$self->{zone}.tmp", $self->{zone}) or die "rename: $!";
}


sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    return if $self->{owner} != $$;
    kill('TERM', $pid);
    waitpid($pid, 0);
}


sub DESTROY { $_[0]->stop }

1;
