#!/usr/bin/perl

# Redis Cluster (spec section 11, "Cluster", "read=replica", "Failover"):
# three primaries and three replicas on loopback, partners spread over
# every primary, nginx given one seed.  First the cluster the tests stand
# on (the harness's key slots are Redis's own; a reshard and a failover
# move what they say), then the module: every decision right wherever the
# record lives, invalidation from every primary, a slot resharded under
# load through its ASK window, CLUSTER FAILOVER and kill -9 of a primary
# under load (failed requests and the error window are reported; a wrong
# decision never happens), read=replica, and the fault list.
#
# MPN_CLUSTER_REPORT=FILE appends the measured windows to FILE.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use MpnTest;
use MpnRedis;
use MpnRecords;
use MpnCache;
use MpnCluster;
use MpnTls;

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

# partners on every primary: three active, one lapsed, one not a member
my $active = $c->ids_per_primary(3, 'a');
my $lapsed = $c->ids_per_primary(1, 'l');
my $strangers = $c->ids_per_primary(1, 'n');
my @active = sort map { @$_ } values %$active;
my %records = (
    (map { $_ => record($_, sub => { end_days => 100 }) } @active),
    (map { $_ => record($_, sub => { status => 'expired', end_days => -10 }) }
         map { @$_ } values %$lapsed),
    (map { $_ => record($_, network => 0) } map { @$_ } values %$strangers),
);
is($c->write_records(\%records), 3, 'records written on three primaries');

my %want = (
    (map { $_ => '200 allow/ok' } @active),
    (map { $_ => '403 renew/lapsed' } map { @$_ } values %$lapsed),
    (map { $_ => '403 upgrade/not_member' } map { @$_ } values %$strangers),
    nobody => '403 upgrade/not_member',
);

sub nginx_for {
    my (%o) = @_;
    my $t = MpnTest->new;
    setup_html($t);
    $t->write_nginx_conf(cache_conf(addr => $o{addr}, cache => $o{cache},
                                    redis => $o{redis}),
                         workers => 2);
    $t->start_nginx;
    return $t;
}

sub decisions_right {
    my ($t, $what) = @_;
    my @wrong;
    for my $id (sort keys %want) {
        my ($code, $mpn) = get_id($t, $id);
        push @wrong, "$id: $code $mpn (want $want{$id})"
            if "$code $mpn" ne $want{$id};
    }
    is("@wrong", '', "$what: every partner's decision right");
}

# every worker ready: a run of successes long enough to have met each
sub ready {
    my ($t) = @_;
    my $run = 0;
    return poll(sub {
        $run = (get_id($t, $active[$run % @active]))[0] == 200 ? $run + 1 : 0;
        $run >= 12 }, 15);
}

sub metric {
    my ($t, $name) = @_;
    my $r = $t->http_get('/status?format=prometheus');
    return ($r =~ /^\Q$name\E (\d+)$/m)[0] // -1;
}


# --- the harness: reshard and failover do what they say ------------------

{
    my $key = "mpn:partner:$active->{$primaries[0]->port}[0]";
    my $slot = MpnCluster::key_slot($key);
    my $m = $c->begin_migration($slot, $primaries[1]);
    is($c->cmd_on($primaries[0], 'GET', $key), $records{ substr($key, 12) },
       'harness: a key not yet migrated is served where it was');
    is($c->migrate_keys($m, 1), 1, 'harness: one key migrated');
    like($c->cmd_on($primaries[0], 'GET', $key)->msg,
         qr/^ASK $slot 127\.0\.0\.1:${\ $primaries[1]->port}$/,
         'harness: the migrated key answers ASK');
    is($c->cmd('GET', $key), $records{ substr($key, 12) },
       'harness: read with ASKING on the target');
    $c->finish_migration($m);
    like($c->cmd_on($primaries[0], 'GET', $key)->msg, qr/^MOVED $slot /,
         'harness: after the reshard, MOVED');
    is($c->primary_of_slot($slot)->port, $primaries[1]->port,
       'harness: the slot is on its new primary');
    # and back, so every primary keeps its partners
    $c->reshard_slot($slot, $primaries[0]);
}


# --- configuration ------------------------------------------------------

{
    my $t = MpnTest->new;
    my $seed = $primaries[0]->addr;
    for (["$seed cluster db=1", qr/"db=" in "mpn_redis" cannot go with "cluster"/],
         ["$seed 127.0.0.1:1", qr/several addresses in "mpn_redis" need "sentinel=" \(they are Sentinels\) or "cluster"/],
         ["$seed read=replica", qr/"read=replica" in "mpn_redis" needs "sentinel=" or "cluster"/],
         ["$seed cluster read=nearest", qr/invalid parameter "read=nearest"/],
         ["$seed cluster 127.0.0.1", qr/invalid address "127\.0\.0\.1"/])
    {
        $t->write_nginx_conf(cache_conf(addr => $_->[0]));
        my ($rc, $out) = $t->nginx_test_conf;
        ok($rc != 0 && $out =~ $_->[1], "nginx -t refuses: mpn_redis $_->[0]")
            or diag($out);
    }
    $t->write_nginx_conf(cache_conf(
        addr => "$seed 127.0.0.1:${\ $primaries[1]->port} cluster "
              . 'read=replica marker=off'));
    my ($rc, $out) = $t->nginx_test_conf;
    is($rc, 0, 'nginx -t takes seeds, cluster, read=replica') or diag($out);
}


# --- every decision, from one seed ---------------------------------------

my $t = nginx_for(addr => $primaries[2]->addr . ' cluster',
                  redis => 'timeout=500ms connect_timeout=500ms');
ok(ready($t), 'nginx ready from one seed');
my $errors = metric($t, 'mpn_redis_errors_total');
decisions_right($t, 'from one seed');
is(metric($t, 'mpn_redis_errors_total'), $errors, 'no Redis error');


# --- an ACL user with only what the module needs, on every node --------

{
    my $acl = 'on >gate-pw resetkeys ~mpn:partner:* ~mpn:meta resetchannels '
        . '&mpn:invalidate -@all +auth +ping +get +exists +subscribe +role '
        . '+cluster|slots +asking +readonly';
    for my $n ($c->live) {
        my $r = $c->cmd_on($n, 'ACL', 'SETUSER', 'mpn-gate', split / /, $acl);
        die "ACL SETUSER: $r->{msg}" if ref $r;
        $r = $c->cmd_on($n, 'ACL', 'SETUSER', 'blind', 'on', '>blind-pw',
                        'resetkeys', '~other:*', '+@all');
        die "ACL SETUSER: $r->{msg}" if ref $r;
    }
    my $ta = MpnTest->new;
    setup_html($ta);
    my $pw = $ta->write_file('redis.pw', "gate-pw\n");
    $ta->write_nginx_conf(cache_conf(
        addr => $primaries[1]->addr . ' cluster read=replica',
        cache => 'zone=c:1m',
        redis => "user=mpn-gate password_file=$pw"), workers => 2);
    $ta->start_nginx;
    ok(ready($ta), 'ACL user: ready');
    decisions_right($ta, 'as the ACL user of docs/cluster.md, read=replica');
    unlike($ta->error_log, qr/NOPERM/, 'ACL user: nothing refused');

    # a user who may not read the keys: unready, said so, never a stranger
    $pw = $ta->write_file('redis.pw', "blind-pw\n");
    $ta->write_nginx_conf(cache_conf(
        addr => $primaries[1]->addr . ' cluster',
        redis => "user=blind password_file=$pw"), workers => 1);
    $ta->reload_nginx;
    ok(poll(sub { $ta->error_log =~ /dataset marker "mpn:meta" is unreadable/ },
            5), 'a user who may not read the marker: a clear log line');
    my ($code, $mpn) = get_id($ta, $active[0]);
    is("$code $mpn", '503 error/redis_unavailable',
       'a user who may not read the keys: 503, not a refusal');
    unlike($ta->error_log, qr/gate-pw|blind-pw/, 'no password in the log');
    $ta->stop_nginx;
    $ta->check_error_log;
}


# --- TLS: every node over TLS, the map's TLS ports ------------------------

{
    my $tt = MpnTest->new;
    my $pki = MpnTls->new($tt->dir);
    my $ct = MpnCluster->start(tls => $pki);
    $ct->write_records(\%records);
    setup_html($tt);
    my $tls_seed = '127.0.0.1:' . ($ct->primaries)[2]->tls_port;
    $tt->write_nginx_conf(cache_conf(addr => "$tls_seed cluster",
        cache => 'zone=c:1m',
        redis => 'tls tls_ca=' . $pki->ca . ' connect_timeout=2s timeout=1s'),
        workers => 2);
    $tt->start_nginx;
    ok(ready($tt), 'TLS: ready from a TLS seed');
    decisions_right($tt, 'every node over TLS');
    my $plain = 0;
    for my $n ($ct->live) {
        my $r = $ct->cmd_on($n, 'CLIENT', 'LIST');
        # the module's connections are on the TLS port: none on the plain
        $plain += () = $r =~ /laddr=127\.0\.0\.1:${\ $n->port } .*cmd=(?:get|exists|cluster|subscribe)/g;
    }
    is($plain, 0, 'TLS: no lookup on a plain port');
    $tt->stop_nginx;
    $tt->check_error_log;
    $ct->stop;
}


# --- the dataset marker, read on its slot's node --------------------------

{
    my $marker = $c->cmd('GET', 'mpn:meta');
    $c->cmd('DEL', 'mpn:meta');
    ok(poll(sub { (get_id($t, $active[0]))[1] eq 'error/redis_unavailable' },
            5), 'marker gone: lookups fail');
    like($t->error_log, qr/dataset marker "mpn:meta" is missing/,
         'marker gone: the log says so');
    my ($code, $mpn) = get_id($t, 'nobody');
    is("$code $mpn", '503 error/redis_unavailable',
       'marker gone: a stranger is not sent to the sales page');
    $c->cmd('SET', 'mpn:meta', $marker);
    ok(ready($t), 'marker back: served again');

    # every primary flushed under live connections: a GET answered nil
    # before the next marker check must not make a partner a stranger
    $c->cmd_on($_, 'FLUSHALL') for $c->primaries;
    my %seen;
    my $end = time + 1.5;
    while (time < $end) {
        my ($code, $mpn) = get_id($t, $active[int(rand(@active))]);
        $seen{"$code $mpn"}++;
    }
    is(join(',', grep { $_ ne '503 error/redis_unavailable' } keys %seen),
       '', 'cluster flushed: 503 only, never not_member ('
           . join(', ', map { "$_: $seen{$_}" } sort keys %seen) . ')');
    $c->write_records(\%records);
    $c->cmd('SET', 'mpn:meta', $marker);
    ok(ready($t), 'records and marker back: served again');
}


# --- load: a child asks for the active partners until told to stop -----

sub start_load {
    my ($t) = @_;
    my $file = $t->dir . '/load.' . time;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(my $out, '>', $file) or POSIX::_exit(1);
        $out->autoflush(1);
        # a stop file, not a signal: a signal would cut a request short
        for (my $i = 0; !-e "$file.stop"; $i++) {
            my $id = $active[$i % @active];
            my $t0 = time;
            my ($code, $mpn) = eval { get_id($t, $id) };
            printf $out "%.4f %.4f %s %s %s\n", $t0, time,
                $code || 0, $mpn || '-', $id;
        }
        close $out;
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file };
}

# stops the load; { total, failed, wrong, window_ms, first, last, lines }
sub stop_load {
    my ($load) = @_;
    open(my $stop, '>', "$load->{file}.stop") or die "$load->{file}: $!";
    close $stop;
    waitpid($load->{pid}, 0);
    open(my $fh, '<', $load->{file}) or die "$load->{file}: $!";
    my %r = (total => 0, failed => 0, wrong => 0, window_ms => 0);
    my @fail;
    while (<$fh>) {
        my ($t0, $t1, $code, $mpn, $id) = split;
        die "bad load line: $_" unless defined $id;
        $r{total}++;
        next if $code == 200 && $mpn eq 'allow/ok';
        if ($code == 503 && $mpn eq 'error/redis_unavailable') {
            push @fail, [$t0, $t1];
            next;
        }
        $r{wrong}++;
        diag("wrong decision for active partner $id: $code $mpn");
    }
    $r{failed} = @fail;
    if (@fail) {
        $r{first} = $fail[0][0];
        $r{last} = $fail[-1][1];
        $r{window_ms} = int(($r{last} - $r{first}) * 1000);
    }
    return \%r;
}

sub report {
    my ($what, $r) = @_;
    my $line = sprintf("%s: %d requests, %d failed, window %d ms, %d wrong",
                       $what, $r->{total}, $r->{failed}, $r->{window_ms},
                       $r->{wrong});
    diag($line);
    if (my $f = $ENV{MPN_CLUSTER_REPORT}) {
        open(my $fh, '>>', $f) or die "$f: $!";
        print $fh "$line\n";
    }
}


# --- invalidation from every primary, seen through the cache -------------

my $tc = nginx_for(addr => $primaries[0]->addr . ' cluster',
                   cache => 'zone=c:1m ttl=60s');
ok(ready($tc), 'nginx with mpn_cache ready');
ok(poll(sub {
        my $n = 0;
        for my $node ($c->live) {
            my $r = $c->cmd_on($node, 'PUBSUB', 'NUMSUB', 'mpn:invalidate');
            $n += $r->[1] if ref $r;
        }
        $n == 2 }, 10), 'both workers subscribed');
sleep(0.5);

sub invalidation_from_every_primary {
    my ($what, $status) = @_;
    for my $port (sort keys %$active) {
        my $id = $active->{$port}[1];
        get_id($tc, $id) for 1 .. 4;      # cached in both workers
        my $r = $c->cmd('FCALL', 'mpn_put', 1, "mpn:partner:$id",
                        record($id, sub => { status => $status,
                                             end_days => -10 }));
        ok(!ref $r, "mpn_put on the primary of $id");
        my $t0 = time;
        my $seen = poll(sub {
            my @d = map { (get_id($tc, $id))[1] } 1 .. 4;
            !grep { $_ ne 'renew/lapsed' } @d }, 1);
        ok($seen, sprintf("%s: invalidation of %s (primary %d) seen by "
                          . "every worker within a second (%.0f ms)", $what,
                          $id, $port, (time - $t0) * 1000));
        $c->cmd('FCALL', 'mpn_put', 1, "mpn:partner:$id", $records{$id});
        poll(sub { (get_id($tc, $id))[0] == 200 }, 2);
    }
}

invalidation_from_every_primary('subscribed to one node', 'expired');


# --- a slot resharded under steady load, through its ASK window ----------

{
    my $id = $active->{$primaries[0]->port}[0];
    my $slot = MpnCluster::key_slot("mpn:partner:$id");
    my $load = start_load($t);
    sleep(0.5);
    my $m = $c->begin_migration($slot, $primaries[1]);
    sleep(0.3);
    $c->migrate_keys($m, 1);
    sleep(1);                   # the ASK window: the key is on the target
    $c->finish_migration($m);
    sleep(1);
    my $r = stop_load($load);
    report('reshard of one slot', $r);
    ok($r->{total} > 100, "load ran ($r->{total} requests)");
    is($r->{wrong}, 0, 'reshard: no wrong decision');
    is($r->{failed}, 0, 'reshard: no failed request');
    ok(metric($t, 'mpn_redis_redirects_total{kind="ask"}') > 0,
       'ASK redirects followed and counted');
    ok(metric($t, 'mpn_redis_redirects_total{kind="moved"}') > 0,
       'MOVED redirects followed and counted');
    decisions_right($t, 'after the reshard');
}


# --- CLUSTER FAILOVER under load ------------------------------------------

{
    my $id = $active->{$primaries[2]->port}[0];
    my $slot = MpnCluster::key_slot("mpn:partner:$id");
    my ($replica) = $c->replicas_of_slot($slot);
    my $load = start_load($t);
    sleep(0.5);
    $c->failover($replica);
    sleep(1.5);
    my $r = stop_load($load);
    report('CLUSTER FAILOVER', $r);
    is($r->{wrong}, 0, 'CLUSTER FAILOVER: no wrong decision');
    decisions_right($t, 'after CLUSTER FAILOVER');
}


# --- kill -9 of a primary under load; the subscribers' node goes too ----

{
    my $victim = $primaries[0];
    my $slot = (grep { $_->[2] == $victim->port } @{ $c->slots })[0][0];
    my $load = start_load($t);
    sleep(0.5);
    my $killed = time;
    $c->kill_node($victim);
    my $next = $c->wait_primary_for($slot, $victim);
    my $named = time;
    sleep(2);
    my $r = stop_load($load);
    report(sprintf('kill -9 of a primary (replica elected after %d ms)',
                   ($named - $killed) * 1000), $r);
    is($r->{wrong}, 0, 'kill -9: no wrong decision');
    ok(!$r->{failed} || $r->{last} < $named + 1,
       'kill -9: no failure later than a second after the map names the '
       . 'new primary');
    ok($c->wait_ok(20), 'cluster ok again');
    decisions_right($t, 'after kill -9');
    ok(metric($t, 'mpn_redis_failovers_total') >= 1, 'failovers counted');

    # the subscribers listened on the killed seed: they move
    ok(poll(sub {
            my $n = 0;
            for my $node ($c->live) {
                my $x = $c->cmd_on($node, 'PUBSUB', 'NUMSUB',
                                   'mpn:invalidate');
                $n += $x->[1] if ref $x;
            }
            $n == 2 }, 10), 'both workers subscribed again elsewhere');
    sleep(0.5);
    %$active = ();
    push @{ $active->{ $c->node_of("mpn:partner:$_")->port } }, $_
        for @active;
    invalidation_from_every_primary('after the subscribed node died',
                                    'expired');
}


# --- read=replica ---------------------------------------------------------

{
    my $tr = nginx_for(addr => ($c->primaries)[0]->addr
                             . ' cluster read=replica');
    ok(ready($tr), 'read=replica ready');
    sleep(1.5);                 # READONLY taken, round trips measured
    my %before = map { $_->port => get_calls($_) } $c->live;
    decisions_right($tr, 'read=replica');
    my ($on_replicas, $on_primaries) = (0, 0);
    my %p = map { $_->port => 1 } $c->primaries;
    for my $n ($c->live) {
        my $d = get_calls($n) - $before{ $n->port };
        $p{ $n->port } ? ($on_primaries += $d) : ($on_replicas += $d);
    }
    ok($on_replicas > 0, "read=replica: GETs on replicas ($on_replicas)");

    # a replica that stops answering: its primary serves
    my ($replica) = grep { !$p{ $_->port } } $c->live;
    kill('STOP', $replica->{pid});
    my @served;
    for (1 .. 3) {
        push @served, map { (get_id($tr, $_))[0] } @active;
    }
    kill('CONT', $replica->{pid});
    ok(poll(sub { (get_id($tr, $active[0]))[0] == 200 }, 5),
       'read=replica: served again');
    my @late = map { (get_id($tr, $_))[0] } @active;
    is("@late", join(' ', (200) x @active),
       'read=replica: every active partner served with a replica stopped '
       . 'and back');
    ok(!grep({ $_ != 200 && $_ != 503 } @served),
       'read=replica: never a wrong decision while a replica is stopped');
    $tr->check_error_log;
}

sub get_calls {
    my ($node) = @_;
    my $s = $c->info_field($node, 'cmdstat_get', 'INFO', 'commandstats')
        // '';
    return ($s =~ /calls=(\d+)/)[0] // 0;
}


# --- faults -------------------------------------------------------------

# a seed that answers garbage, then a good one
{
    my $garbage = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1',
                                        LocalPort => 0, ReuseAddr => 1)
        or die "listen: $!";
    my $gport = $garbage->sockport;
    my $gpid = fork() // die;
    if ($gpid == 0) {
        while (my $s = $garbage->accept) {
            syswrite($s, "this is not RESP\r\n" x 3);
            sleep(0.2);
            close $s;
        }
        POSIX::_exit(0);
    }
    close $garbage;

    my $tg = nginx_for(addr => "127.0.0.1:$gport " . ($c->primaries)[1]->addr
                             . ' cluster');
    ok(ready($tg), 'a seed answering garbage: the next seed gives the map');
    decisions_right($tg, 'past a garbage seed');
    like($tg->error_log, qr/127\.0\.0\.1:$gport/,
         'the garbage seed is named in the error log');
    $tg->stop_nginx;
    $tg->check_error_log;
    kill('TERM', $gpid);
    waitpid($gpid, 0);
}

# a stopped primary: its partners fail fast (503), the others are served,
# and everything comes back when it does
{
    my $victim = ($c->primaries)[1];
    my %on = map { $_ => 1 } grep {
        $c->node_of("mpn:partner:$_")->port == $victim->port } @active;
    kill('STOP', $victim->{pid});
    my (@bad, @other);
    for my $id (@active) {
        my ($code, $mpn) = get_id($t, $id);
        if ($on{$id}) {
            push @bad, "$code $mpn";
        } else {
            push @other, "$code $mpn";
        }
    }
    kill('CONT', $victim->{pid});
    ok(!grep({ $_ ne '503 error/redis_unavailable' && $_ ne '200 allow/ok' }
             @bad), "stopped primary: its partners 503, never refused (@bad)");
    ok(!grep({ $_ ne '200 allow/ok' } @other),
       'stopped primary: partners on the other primaries served');
    ok(poll(sub {
            !grep { (get_id($t, $_))[0] != 200 } @active }, 10),
       'stopped primary back: every partner served');
}

$tc->stop_nginx;
$tc->check_error_log;
$t->stop_nginx;
$t->check_error_log;

done_testing();
