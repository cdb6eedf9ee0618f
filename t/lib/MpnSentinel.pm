package MpnSentinel;

# A private Sentinel set-up for a test: a primary, N replicas and N
# Sentinels (redis-server --sentinel) on free loopback ports, with short
# timeouts so a failover takes a second or two, not a minute.
#
#   my $set = MpnSentinel->start(replicas => 1, sentinels => 3);
#   $set->sentinel_addrs;          # "127.0.0.1:p1 127.0.0.1:p2 ..."
#   $set->primary->client->cmd('SET', ...);   # the MpnRedis of the primary
#   $set->replicated;              # WAIT: the replicas have every write
#   my $old = $set->primary;
#   $set->failover;                # SENTINEL FAILOVER; returns the new one
#   $set->kill9($old);             # SIGKILL, reaped
#   $set->wait_primary($node, 10); # every Sentinel names $node
#
# Every node is an MpnRedis: stop, signal (STOP/CONT), port.

use strict;
use warnings;

use Time::HiRes qw(sleep time);
use MpnRedis;

our $MASTER = 'mymaster';


# %o: replicas (1), sentinels (3), down_after (ms, 1000),
# failover_timeout (ms, 3000), primary_conf (more redis.conf lines)
sub start {
    my ($class, %o) = @_;

    my $nrep = $o{replicas} // 1;
    my $nsen = $o{sentinels} // 3;
    my $self = bless { nodes => [], sentinels => [] }, $class;

    my $primary = MpnRedis->start(conf => $o{primary_conf} || []);
    push @{ $self->{nodes} }, $primary;

    for (1 .. $nrep) {
        push @{ $self->{nodes} }, MpnRedis->start(marker => 0,
            conf => [ 'replicaof 127.0.0.1 ' . $primary->port ]);
    }

    # the replicas are known to the primary before a Sentinel asks it
    wait_until(sub {
        my $info = $primary->client->cmd('INFO', 'replication');
        my ($n) = $info =~ /connected_slaves:(\d+)/;
        return 0 unless ($n // 0) == $nrep;
        return scalar(() = $info =~ /state=online/g) == $nrep;
    }, 10) or die "the replicas did not come online";

    my $down = $o{down_after} // 1000;
    my $fot = $o{failover_timeout} // 3000;

    for (1 .. $nsen) {
        push @{ $self->{sentinels} }, MpnRedis->start(sentinel => 1,
            marker => 0, conf => [
                'sentinel monitor ' . $MASTER . ' 127.0.0.1 '
                    . $primary->port . ' ' . (int($nsen / 2) + 1),
                "sentinel down-after-milliseconds $MASTER $down",
                "sentinel failover-timeout $MASTER $fot",
                "sentinel parallel-syncs $MASTER 1",
            ]);
    }

    # each Sentinel knows the replicas and the other Sentinels
    wait_until(sub {
        for my $s (@{ $self->{sentinels} }) {
            my $c = $s->client;
            my $reps = $c->cmd('SENTINEL', 'REPLICAS', $MASTER);
            my $sens = $c->cmd('SENTINEL', 'SENTINELS', $MASTER);
            return 0 unless ref($reps) eq 'ARRAY' && @$reps == $nrep
                && ref($sens) eq 'ARRAY' && @$sens == $nsen - 1;
        }
        return 1;
    }, 20) or die "the Sentinels did not find each other";

    return $self;
}


sub wait_until {
    my ($what, $secs) = @_;
    my $end = time() + $secs;
    while (time() < $end) {
        my $ok = eval { $what->() };
        return 1 if $ok;
        sleep(0.05);
    }
    return 0;
}


sub sentinels { @{ $_[0]{sentinels} } }
sub nodes { @{ $_[0]{nodes} } }

sub sentinel_addrs {
    my ($self) = @_;
    return join(' ', map { '127.0.0.1:' . $_->port } $self->sentinels);
}


# the node a Sentinel that answers names as the primary
sub primary {
    my ($self) = @_;
    for my $s ($self->sentinels) {
        next unless $s->{pid};
        my $r = eval {
            $s->client->cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', $MASTER)
        };
        next unless ref($r) eq 'ARRAY';
        my ($node) = grep { $_->port == $r->[1] } $self->nodes;
        return $node if $node;
    }
    return undef;
}


sub replicas {
    my ($self) = @_;
    my $p = $self->primary;
    return grep { $_ != $p && $_->{pid} } $self->nodes;
}


# every write of the primary is on its replicas
sub replicated {
    my ($self) = @_;
    my $n = () = $self->replicas;
    my $r = $self->primary->client->cmd('WAIT', $n, 5000);
    die "WAIT: $r replicas of $n" unless !ref($r) && $r == $n;
}


# every Sentinel (that runs) names $node as the primary, within $secs
sub wait_primary {
    my ($self, $node, $secs) = @_;
    return wait_until(sub {
        for my $s ($self->sentinels) {
            next unless $s->{pid};
            my $r = $s->client->cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME',
                                    $MASTER);
            return 0 unless ref($r) eq 'ARRAY' && $r->[1] == $node->port;
        }
        return 1;
    }, $secs);
}


# SENTINEL FAILOVER on the first Sentinel; the node promoted once every
# Sentinel names it (undef if none did within 20 s)
sub failover {
    my ($self) = @_;
    my $old = $self->primary;
    my $r = ($self->sentinels)[0]->client->cmd('SENTINEL', 'FAILOVER',
                                               $MASTER);
    die "SENTINEL FAILOVER: $r->{msg}" if ref($r) eq 'MpnRedis::Error';
    my $new;
    wait_until(sub {
        my $p = $self->primary;
        return 0 unless $p && $p != $old;
        $new = $p;
        return 1;
    }, 20) or return undef;
    return $self->wait_primary($new, 20) ? $new : undef;
}


sub kill9 {
    my ($self, $node) = @_;
    my $pid = delete $node->{pid} or return;
    kill('KILL', $pid);
    waitpid($pid, 0);
}


sub signal {
    my ($self, $node, $sig) = @_;
    kill($sig, $node->{pid}) if $node->{pid};
}


sub stop {
    my ($self) = @_;
    for my $n ($self->sentinels, $self->nodes) {
        kill('CONT', $n->{pid}) if $n->{pid};
        $n->stop;
    }
}


sub DESTROY { local $@; eval { $_[0]->stop } }

1;
