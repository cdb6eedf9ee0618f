#!/usr/bin/perl

# Redis Cluster (spec section 11, "Cluster"): three primaries and three
# replicas on loopback, partners spread over every primary.  This part
# checks the cluster the other tests stand on: the harness's key slots are
# Redis's own, records land on every primary, and a reshard and a failover
# move what they say they move.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MpnRedis;
use MpnRecords;
use MpnCluster;

plan(skip_all => 'redis-server not installed')
    unless MpnRedis::redis_server_path();

my $c = MpnCluster->start;
my @primaries = $c->primaries;
is(scalar @primaries, 3, 'three primaries');
is(scalar $c->replicas, 3, 'three replicas');

for my $key (qw(foo mpn:partner:active {user1000}.following foo{}{bar}
                foo{{bar}}zap mpn:meta))
{
    is(MpnCluster::key_slot($key),
       $c->cmd_on($primaries[0], 'CLUSTER', 'KEYSLOT', $key),
       "slot of $key as Redis computes it");
}

like($c->cmd('GET', 'mpn:meta'), qr/^\{"v":1/, 'the dataset marker');
is($c->cmd_on($_, 'FUNCTION', 'LIST', 'LIBRARYNAME', 'mpn')->[0][1], 'mpn',
   'mpn library on ' . $_->addr) for @primaries;

my $ids = $c->ids_per_primary(2, 'p');
my %records = map { $_ => record($_, sub => { end_days => 100 }) }
    map { @$_ } values %$ids;
is($c->write_records(\%records), 3, 'records written on three primaries');
for my $p (@primaries) {
    is($c->cmd_on($p, 'DBSIZE') >= 2, 1, 'records on ' . $p->addr);
}

# one slot moved key by key: ASK while it migrates, then MOVED
my $key = "mpn:partner:$ids->{$primaries[0]->port}[0]";
my $slot = MpnCluster::key_slot($key);
my $m = $c->begin_migration($slot, $primaries[1]);
is($c->cmd_on($primaries[0], 'GET', $key), $records{ substr($key, 12) },
   'a key not yet migrated is served where it was');
is($c->migrate_keys($m, 1), 1, 'one key migrated');
like($c->cmd_on($primaries[0], 'GET', $key)->msg,
     qr/^ASK $slot 127\.0\.0\.1:${\ $primaries[1]->port}$/,
     'the migrated key: ASK');
is($c->cmd('GET', $key), $records{ substr($key, 12) },
   'read with ASKING on the target');
$c->finish_migration($m);
like($c->cmd_on($primaries[0], 'GET', $key)->msg, qr/^MOVED $slot /,
     'after the reshard: MOVED');
is($c->primary_of_slot($slot)->port, $primaries[1]->port,
   'the slot is on its new primary');

# a replica taking over by CLUSTER FAILOVER, then one by kill -9
my ($replica) = $c->replicas_of_slot($slot);
$c->failover($replica);
is($c->primary_of_slot($slot)->port, $replica->port, 'CLUSTER FAILOVER');
is($c->cmd('GET', $key), $records{ substr($key, 12) },
   'the record on the new primary');

$c->kill_node($replica);
my $next = $c->wait_primary_for($slot, $replica);
isnt($next->port, $replica->port, 'kill -9: a replica elected');
ok($c->wait_ok(20), 'cluster ok again');
is($c->cmd('GET', $key), $records{ substr($key, 12) },
   'the record after kill -9');

done_testing();
