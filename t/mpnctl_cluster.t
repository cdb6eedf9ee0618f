#!/usr/bin/perl

# mpnctl --cluster (spec section 11, the mpnctl bullet): on a Redis Cluster
# of three primaries and three replicas, `functions load` puts the library
# on every primary, `import` routes each record to its node (10,000 of
# them, pipelined per node; the marker written on its slot's node),
# `expiring` finds them on every primary, single-key commands follow ASK
# while a slot migrates, and the import rate across three primaries is
# reported next to one server's (never asserted: the machine is shared).
#
# MPN_CLUSTER_REPORT=FILE appends the rates to FILE.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use MpnRedis;
use MpnRecords;
use MpnCluster;

my $MPNCTL = $ENV{MPNCTL} || "$MpnRedis::ROOT/build/mpnctl";
plan(skip_all => "mpnctl not built: $MPNCTL") unless -x $MPNCTL;
plan(skip_all => 'redis-server not installed')
    unless MpnRedis::redis_server_path();

my $c = MpnCluster->start(library => 0, marker => 0);
my @primaries = $c->primaries;
my $seed = $primaries[0]->addr;
my $dir = tempdir('mpnctl-cluster-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub mpnctl {
    my (@args) = @_;
    my %o = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
    return MpnRedis::run([$MPNCTL, '--redis', $o{redis} // $seed,
                          ($o{plain} ? () : '--cluster'), @args], %o);
}

# --- the library: needed on every primary, loaded on every primary -------

my $res;
open(my $fh, '>', "$dir/one.jsonl") or die;
print $fh record('p0', sub => { end_days => 3 }), "\n";
close $fh;
$res = mpnctl('import', "$dir/one.jsonl");
is($res->{rc}, 1, 'import without the library: exit 1');
like($res->{err}, qr/library is not loaded in 127\.0\.0\.1:\d+.*--cluster functions load/,
     'names the node and how to load it');

$res = mpnctl('functions', 'load', "$MpnRedis::ROOT/redis/mpn.lua");
is($res->{rc}, 0, 'functions load: exit 0') or diag($res->{err});
my @loaded = $res->{out} =~ /^loaded library mpn from .* on (127\.0\.0\.1:\d+)$/mg;
is_deeply([sort @loaded], [sort map { $_->addr } @primaries],
          'functions load: on every primary');
for my $p (@primaries) {
    my $l = $c->cmd_on($p, 'FUNCTION', 'LIST', 'LIBRARYNAME', 'mpn');
    is(ref $l && $l->[0][1], 'mpn', 'library on ' . $p->addr);
}
$res = mpnctl('functions', 'unload');
is($res->{rc}, 2, 'functions: only load');

# --- import of 10,000 records -------------------------------------------

my $N = 10000;
my $now = time;
my %end_days;
open($fh, '>', "$dir/records.jsonl") or die;
for my $i (1 .. $N) {
    $end_days{"p$i"} = $i % 40 + 1;
    print $fh record("p$i", sub => { end_days => $end_days{"p$i"} }), "\n";
}
close $fh;

$res = mpnctl('import', "$dir/records.jsonl");
is($res->{rc}, 0, 'import --cluster: exit 0') or diag($res->{err});
like($res->{out}, qr/^imported $N of $N records, 0 bad lines, in [\d.]+ s \((\d+) records\/s\) across 3 primaries/m,
     'import --cluster: every record, across three primaries');
my ($cluster_rate) = $res->{out} =~ /\((\d+) records\/s\)/;

my $total = 0;
for my $p (@primaries) {
    my $n = $c->cmd_on($p, 'DBSIZE');
    ok($n > $N / 6, "records on primary " . $p->addr . " ($n)");
    $total += $n;
}
is($total, $N + 1, 'every record once, and the marker');
like($c->cmd('GET', 'mpn:meta'), qr/^\{"v":1/,
     'import wrote the marker, on its slot\'s node');

my $bad = 0;
for my $i (1, 77, 4242, $N) {
    my $g = mpnctl('get', "p$i");
    $bad++ unless $g->{rc} == 0 && $g->{out} =~ /"partner_id":"p$i"/;
}
is($bad, 0, 'get --cluster reads records from every node');

# --- expiring across every primary ---------------------------------------

$res = mpnctl('expiring', '--within', '10d', '--now', $now);
is($res->{rc}, 0, 'expiring --cluster: exit 0') or diag($res->{err});
my %listed = map { (split /\t/)[0] => 1 } split /\n/, $res->{out};
my @want = grep { $end_days{$_} < 10 } keys %end_days;
is(scalar keys %listed, scalar @want,
   'expiring --cluster: every subscription ending within 10 days, from '
   . 'every primary (' . scalar(@want) . ')');
is(scalar(grep { !$listed{$_} } @want), 0, 'none missing');

# --- a slot migrating: ASK is followed (get, renew, import) ---------------

{
    my $key = 'mpn:partner:p77';
    my $slot = MpnCluster::key_slot($key);
    my $from = $c->primary_of_slot($slot);
    my ($to) = grep { $_->port != $from->port } @primaries;
    my $m = $c->begin_migration($slot, $to);
    $c->migrate_keys($m);       # every key of the slot: ASK for all
    like($c->cmd_on($from, 'GET', $key)->msg, qr/^ASK /, 'the slot answers ASK');

    $res = mpnctl('get', 'p77');
    ok($res->{rc} == 0 && $res->{out} =~ /"partner_id":"p77"/,
       'get --cluster follows ASK') or diag($res->{err});
    $res = mpnctl('renew', 'p77', 'action_pack', '--now', $now);
    like($res->{out}, qr/^rev \d+$/, 'renew --cluster follows ASK')
        or diag($res->{err});

    open($fh, '>', "$dir/ask.jsonl") or die;
    print $fh record('p77', sub => { end_days => 300 }), "\n";
    close $fh;
    $res = mpnctl('import', "$dir/ask.jsonl");
    like($res->{out}, qr/imported 1 of 1 .* 1 sent again after a redirect/,
         'import --cluster sends a line again where ASK says')
        or diag($res->{out} . $res->{err});
    $c->finish_migration($m);
    my $day = substr(rfc3339($now + 300 * 86400), 0, 10);
    like(mpnctl('get', 'p77')->{out}, qr/"end":"$day/,
         'the record imported through ASK is the one read');
}

# --- usage: a partner's usage keys are on several primaries ---------------

{
    my $end = time() + 20 * 86400;
    my @keys = map { "mpn:usage:u1:$_" } qw(windows_enterprise:1767225600
        azure_credits:1764547200 azure_credits:1767225600 ems:1767225600
        visual_studio_pro:1767225600);
    my $n = 0;
    $c->cmd('FCALL', 'mpn_consume', 1, $_, 100, ++$n, $end) for @keys;
    my %on = map { $c->node_of($_)->port => 1 } @keys;
    ok(keys(%on) >= 2, 'the usage keys are on ' . keys(%on) . ' primaries');

    $res = mpnctl('usage', 'u1');
    is($res->{rc}, 0, 'usage --cluster: exit 0') or diag($res->{err});
    is(join(' ', map { /^(\S+)\t\S+\tused=(\d+)/ ? "$1=$2" : $_ }
                 split /\n/, $res->{out}),
       'azure_credits=2 azure_credits=3 ems=4 visual_studio_pro=5 '
       . 'windows_enterprise=1', 'every key, from every primary, sorted');

    $res = mpnctl('usage', 'u1', '--reset', 'azure_credits');
    is_deeply([$res->{rc}, $res->{out}],
              [0, "reset azure_credits of u1: 2 periods cleared\n"],
              'usage --cluster --reset: each key cleared on its node');
    is(join(',', map { $c->cmd('EXISTS', $_) } @keys), '1,0,0,1,1',
       'those two gone, the others kept');
}

# --- without --cluster, a cluster's MOVED is an error that says so -------

{
    my ($id) = grep { $c->node_of("mpn:partner:$_")->port != $primaries[0]->port }
        map { "p$_" } 1 .. 10;
    $res = mpnctl('get', $id, { plain => 1 });
    ok($res->{rc} == 1 && $res->{err} =~ /MOVED \d+ 127\.0\.0\.1:\d+/,
       'without --cluster: a key on another node is a MOVED error');
}

$res = mpnctl('get', 'p1', { redis => 'unix:/tmp/x.sock' });
like($res->{err}, qr/--cluster needs a host:port seed/, '--cluster refuses a unix seed');
$res = mpnctl('get', 'p1', '--db', '1');
like($res->{err}, qr/only database 0/, '--cluster refuses --db');

# --- the import rate: three primaries next to one server ------------------

{
    my $one = MpnRedis->start(marker => 0);
    $one->load_library;
    $res = mpnctl('import', "$dir/records.jsonl",
                  { plain => 1, redis => $one->addr });
    is($res->{rc}, 0, 'import into one server: exit 0');
    my ($one_rate) = $res->{out} =~ /\((\d+) records\/s\)/;
    my $line = sprintf('mpnctl import of %d records: %d records/s across '
                       . 'three primaries, %d records/s into one server',
                       $N, $cluster_rate, $one_rate);
    diag($line);
    if (my $f = $ENV{MPN_CLUSTER_REPORT}) {
        open(my $out, '>>', $f) or die "$f: $!";
        print $out "$line\n";
    }
    $one->stop;
}

done_testing();
