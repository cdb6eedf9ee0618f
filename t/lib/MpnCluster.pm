package MpnCluster;

# A private Redis Cluster for a test: primaries and replicas on free
# loopback ports (each an MpnRedis server with cluster-enabled), made a
# cluster with `redis-cli --cluster create`, the mpn library loaded on every
# primary and the dataset marker written; a client that follows MOVED and
# ASK; and the two things that move slots while nginx reads them: a reshard
# of one slot and a failover.  Core Perl only.
#
#   my $c = MpnCluster->start;                 # 3 primaries, 3 replicas
#   $c->write_records(\%json_by_id);           # SET mpn:partner:<id>
#   $c->cmd('GET', $key);                      # on the key's node
#   my $node = $c->node_of($key);              # an MpnRedis
#   my $m = $c->begin_migration($slot, $to);   # MIGRATING/IMPORTING
#   $c->migrate_keys($m, 1);                   # the ASK window
#   $c->finish_migration($m);                  # SETSLOT NODE everywhere
#   $c->failover($replica);                    # CLUSTER FAILOVER
#   $c->kill_node($primary); $c->wait_primary_for($slot, $old); # kill -9
#   $c->stop;                                  # every node, by PID

use strict;
use warnings;

use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Scalar::Util ();
use Time::HiRes qw(sleep time);
use MpnRedis;

use constant SLOTS => 16384;


# Options: primaries (3), replicas (1 per primary), node_timeout (ms,
# cluster-node-timeout: how long a killed primary goes unnoticed), conf
# (extra redis.conf lines for every node), tls (an MpnTls: every node also
# listens with TLS, the nodes speak TLS among themselves, and CLUSTER SLOTS
# asked over TLS names the TLS ports; this harness keeps the plain ones).
sub start {
    my ($class, %opt) = @_;

    my $np = $opt{primaries} || 3;
    my $nr = $opt{replicas} // 1;
    my $self = bless { nodes => [], owner => $$ }, $class;

    for (1 .. $np * (1 + $nr)) {
        my $dir = tempdir('mpn-cluster-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        my $tls = $opt{tls};
        push @{ $self->{nodes} }, MpnRedis->start(dir => $dir, marker => 0,
            ($tls ? (tls => $tls->redis_conf(auth_clients => 'optional'))
                  : ()),
            conf => [
                # the bus and replication over TLS, with a client certificate
                ($tls ? ('tls-cluster yes', 'tls-replication yes',
                         'tls-client-cert-file ' . $tls->client_cert,
                         'tls-client-key-file ' . $tls->client_key) : ()),
                'cluster-enabled yes',
                'cluster-config-file nodes.conf',
                'cluster-port ' . MpnRedis::free_port(),
                'cluster-node-timeout ' . ($opt{node_timeout} || 2000),
                # a replica of a killed primary may take over at once
                'cluster-replica-validity-factor 0',
                'cluster-allow-replica-migration no',
                @{ $opt{conf} || [] },
            ]);
    }

    my $res = MpnRedis::run(['redis-cli',
        ($opt{tls} ? ('--tls', '--cacert', $opt{tls}->ca) : ()),
        '--cluster', 'create',
        (map { '127.0.0.1:' . ($opt{tls} ? $_->tls_port : $_->port) }
             @{ $self->{nodes} }),
        '--cluster-replicas', $nr, '--cluster-yes']);
    die "redis-cli --cluster create: $res->{out}$res->{err}"
        if $res->{rc} != 0;

    $self->wait_ok(30) or die "cluster not ok: " . $self->cmd_on(
        $self->{nodes}[0], 'CLUSTER', 'INFO');

    # library => 0: no redis/mpn.lua; marker => 0: no dataset marker
    if ($opt{library} // 1) {
        $_->load_library for $self->primaries;
    }

    if ($opt{marker} // 1) {
        my $r = $self->cmd('SET', $MpnRedis::MARKER, MpnRedis::marker_json());
        die "SET marker: $r->{msg}" if ref($r) eq 'MpnRedis::Error';
    }

    # a write on every primary gives every replica an offset (see below)
    my $keys = $self->ids_per_primary(1, 'mpn-cluster-harness-', '');
    for my $port (keys %$keys) {
        my $n = $self->node_by_port($port);
        $self->cmd_on($n, $_, $keys->{$port}[0], ($_ eq 'SET' ? 1 : ()))
            for qw(SET DEL);
    }
    $self->wait_replicas_listed($nr, 30)
        or die "replicas missing from CLUSTER SLOTS";

    return $self;
}


sub nodes { @{ $_[0]{nodes} } }

# the nodes still running
sub live { grep { $_->{pid} } @{ $_[0]{nodes} } }


# one command on a fresh connection to a node
sub cmd_on {
    my ($self, $node, @cmd) = @_;
    return $node->client->cmd(@cmd);
}


# a field of a node's INFO section (or of CLUSTER INFO), or undef
sub info_field {
    my ($self, $node, $field, @cmd) = @_;
    my $r = eval { $self->cmd_on($node, @cmd ? @cmd : ('INFO')) };
    return undef if !defined $r || ref $r;
    return ($r =~ /^\Q$field\E:([^\r\n]*)/m)[0];
}


# cluster_state:ok on every live node, each knowing every live node, and
# each replica's link to its primary up
sub wait_ok {
    my ($self, $secs) = @_;
    my $want = scalar $self->live;
    my $end = time + ($secs || 30);
    while (time < $end) {
        my $ok = 1;
        for my $n ($self->live) {
            my $state = $self->info_field($n, 'cluster_state', 'CLUSTER',
                                          'INFO') // '';
            my $role = $self->info_field($n, 'role') // '';
            my $link = $role eq 'slave'
                ? $self->info_field($n, 'master_link_status') // '' : 'up';
            if ($state ne 'ok' || $link ne 'up'
                || $self->known_live_nodes($n) < $want)
            {
                $ok = 0;
                last;
            }
        }
        return 1 if $ok;
        sleep(0.1);
    }
    return 0;
}


# Redis 7 lists a replica in CLUSTER SLOTS only once it has replicated
# something (a non-zero offset, learnt by gossip): until every live node
# lists $n replicas for every range, a client sees none
sub wait_replicas_listed {
    my ($self, $n, $secs) = @_;
    my $end = time + ($secs || 30);
    NODE: while (time < $end) {
        for my $node ($self->live) {
            my $r = eval { $self->cmd_on($node, 'CLUSTER', 'SLOTS') };
            if (!defined $r || ref($r) ne 'ARRAY'
                || grep { @$_ - 3 < $n } @$r)
            {
                sleep(0.1);
                next NODE;
            }
        }
        return 1;
    }
    return 0;
}


# how many nodes a node sees connected and not failing
sub known_live_nodes {
    my ($self, $node) = @_;
    my $r = eval { $self->cmd_on($node, 'CLUSTER', 'NODES') };
    return 0 if !defined $r || ref $r;
    return scalar grep { / connected/ && !/\bfail\??\b|handshake|noaddr/ }
        split /\n/, $r;
}


# CLUSTER SLOTS from a live node: [ [start, end, port, replica ports...] ]
sub slots {
    my ($self) = @_;
    for my $n ($self->live) {
        my $r = eval { $self->cmd_on($n, 'CLUSTER', 'SLOTS') };
        next if !defined $r || ref($r) ne 'ARRAY';
        return [ map { [ $_->[0], $_->[1],
                         map { $_->[1] } @$_[2 .. $#$_] ] } @$r ];
    }
    die "no node answers CLUSTER SLOTS";
}


sub node_by_port {
    my ($self, $port) = @_;
    my ($n) = grep { $_->port == $port } @{ $self->{nodes} };
    return $n;
}


# the primary serving a slot, as the live nodes' CLUSTER SLOTS says
sub primary_of_slot {
    my ($self, $slot) = @_;
    for my $range (@{ $self->slots }) {
        return $self->node_by_port($range->[2])
            if $slot >= $range->[0] && $slot <= $range->[1];
    }
    return undef;
}


sub replicas_of_slot {
    my ($self, $slot) = @_;
    for my $range (@{ $self->slots }) {
        return map { $self->node_by_port($_) } @$range[3 .. $#$range]
            if $slot >= $range->[0] && $slot <= $range->[1];
    }
    return ();
}


sub primaries {
    my ($self) = @_;
    my %seen;
    return grep { !$seen{ $_->port }++ }
        map { $self->node_by_port($_->[2]) } @{ $self->slots };
}


sub replicas {
    my ($self) = @_;
    my %p = map { $_->port => 1 } $self->primaries;
    return grep { !$p{ $_->port } } $self->live;
}


sub node_of { $_[0]->primary_of_slot(key_slot($_[1])) }


# CRC16/XMODEM of the key, or of its first non-empty {hash tag}
sub key_slot {
    my ($key) = @_;
    if ($key =~ /^[^{]*\{([^}]+)\}/) {
        $key = $1;
    }
    my $crc = 0;
    for my $c (unpack('C*', $key)) {
        $crc ^= $c << 8;
        for (1 .. 8) {
            $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) & 0xffff
                                 : ($crc << 1) & 0xffff;
        }
    }
    return $crc & (SLOTS - 1);
}


# a key command on any live node, following MOVED and ASK as a client must
sub cmd {
    my ($self, @cmd) = @_;
    my ($node) = $self->live;
    my $asking = 0;
    for (1 .. 5) {
        my $c = $node->client;
        $c->cmd('ASKING') if $asking;
        my $r = $c->cmd(@cmd);
        return $r unless ref($r) eq 'MpnRedis::Error'
            && $r->msg =~ /^(MOVED|ASK) \d+ [^ ]*:(\d+)$/;
        $asking = $1 eq 'ASK';
        $node = $self->node_by_port($2) or return $r;
    }
    die "@cmd: redirected five times";
}


# SET every record (id => JSON), pipelined per primary
sub write_records {
    my ($self, $records, $prefix) = @_;
    $prefix //= 'mpn:partner:';
    my %by;
    for my $id (sort keys %$records) {
        my $key = "$prefix$id";
        push @{ $by{ $self->node_of($key)->port } },
            [ 'SET', $key, $records->{$id} ];
    }
    for my $port (keys %by) {
        for my $r ($self->node_by_port($port)->client->pipeline(
                       @{ $by{$port} }))
        {
            die "SET: $r->{msg}" if ref($r) eq 'MpnRedis::Error';
        }
    }
    return scalar keys %by;
}


# partner ids, n of them for each primary, that hash to that primary:
# { port => [ids] }
sub ids_per_primary {
    my ($self, $n, $stem, $prefix) = @_;
    $prefix //= 'mpn:partner:';
    my %want = map { $_->port => [] } $self->primaries;
    for (my $i = 0; grep({ @$_ < $n } values %want); $i++) {
        my $id = "$stem$i";
        my $ids = $want{ $self->node_of("$prefix$id")->port };
        push @$ids, $id if @$ids < $n;
    }
    return \%want;
}


# --- resharding one slot -------------------------------------------------

# Marks a slot IMPORTING on $to and MIGRATING on its owner; from here on
# the owner answers ASK for the keys it no longer holds.
sub begin_migration {
    my ($self, $slot, $to) = @_;
    my $from = $self->primary_of_slot($slot);
    die "slot $slot is already on " . $to->addr if $from->port == $to->port;
    my %m = (slot => $slot, from => $from, to => $to,
             from_id => $self->cmd_on($from, 'CLUSTER', 'MYID'),
             to_id => $self->cmd_on($to, 'CLUSTER', 'MYID'));
    for ([ $to, 'IMPORTING', $m{from_id} ], [ $from, 'MIGRATING', $m{to_id} ])
    {
        my $r = $self->cmd_on($_->[0], 'CLUSTER', 'SETSLOT', $slot,
                              $_->[1], $_->[2]);
        die "SETSLOT $_->[1]: $r->{msg}" if ref $r;
    }
    return \%m;
}


# MIGRATE up to $n keys of the slot (all with $n undef); the number moved
sub migrate_keys {
    my ($self, $m, $n) = @_;
    my $moved = 0;
    while (!defined $n || $moved < $n) {
        my $batch = defined $n ? $n - $moved : 100;
        my $keys = $self->cmd_on($m->{from}, 'CLUSTER', 'GETKEYSINSLOT',
                                 $m->{slot}, $batch);
        last unless ref($keys) eq 'ARRAY' && @$keys;
        my $r = $self->cmd_on($m->{from}, 'MIGRATE', '127.0.0.1',
            $m->{to}->port, '', 0, 5000, 'KEYS', @$keys);
        die "MIGRATE: $r->{msg}" if ref $r;
        $moved += @$keys;
    }
    return $moved;
}


# moves what is left and gives the slot to $to on every node
sub finish_migration {
    my ($self, $m) = @_;
    $self->migrate_keys($m);
    for my $n ($m->{to}, $m->{from},
               grep { ($self->info_field($_, 'role') // '') eq 'master' }
                   $self->live)
    {
        my $r = $self->cmd_on($n, 'CLUSTER', 'SETSLOT', $m->{slot}, 'NODE',
                              $m->{to_id});
        die "SETSLOT NODE: $r->{msg}" if ref $r;
    }
}


sub reshard_slot {
    my ($self, $slot, $to) = @_;
    my $m = $self->begin_migration($slot, $to);
    $self->finish_migration($m);
}


# --- failover ------------------------------------------------------------

# CLUSTER FAILOVER on a replica; returns once it serves its slots as a
# primary and every live node agrees
sub failover {
    my ($self, $replica, $secs) = @_;
    my $r = $self->cmd_on($replica, 'CLUSTER', 'FAILOVER');
    die "CLUSTER FAILOVER: $r->{msg}" if ref $r;
    my $end = time + ($secs || 20);
    while (time < $end) {
        return 1 if grep({ $_->port == $replica->port } $self->primaries)
            && $self->wait_ok(0.5);
        sleep(0.05);
    }
    die "replica " . $replica->addr . " did not take over";
}


# kill -9: the node is gone with no goodbye
sub kill_node {
    my ($self, $node) = @_;
    my $pid = delete $node->{pid} or return;
    kill('CONT', $pid);
    kill('KILL', $pid);
    waitpid($pid, 0);
}


# waits until a node other than $old serves $slot (a replica elected)
sub wait_primary_for {
    my ($self, $slot, $old, $secs) = @_;
    my $end = time + ($secs || 30);
    while (time < $end) {
        my $p = eval { $self->primary_of_slot($slot) };
        return $p if $p && $p->port != $old->port && $p->{pid};
        sleep(0.05);
    }
    die "no new primary for slot $slot";
}


sub stop {
    my ($self) = @_;
    return if $self->{owner} != $$;
    for my $n (@{ $self->{nodes} }) {
        next unless Scalar::Util::blessed($n);  # global destruction
        kill('CONT', $n->{pid}) if $n->{pid};
        $n->stop;
    }
}


sub DESTROY { $_[0]->stop }

1;
