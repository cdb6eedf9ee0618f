#!/usr/bin/perl

# mpn_redis ... sentinel=MASTER (spec section 11): a primary, a replica and
# three Sentinels on loopback (MpnSentinel, down-after 1 s).  Under steady
# load (one client, twenty active partners in turn) a SENTINEL FAILOVER
# and a kill -9 of the primary cost some requests, with and without
# mpn_cache, and never a wrong decision: every answer for an active
# partner is a 200 or a 503, never a 302 or a 403.  read=replica reads the
# replica, the primary while the replica is stopped, and the replica while
# the primary is.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use MpnTest;
use MpnRecords;
use MpnCache;
use MpnSentinel;

my @IDS = map { sprintf('p%02d', $_) } 0 .. 19;

my $set = eval { MpnSentinel->start(replicas => 1, sentinels => 3) };
plan(skip_all => "no Sentinel set-up: $@") unless $set;

seed($set);

# the records and the dataset marker, on the primary, replicated
sub seed {
    my ($set) = @_;
    my $p = $set->primary;
    my $c = $p->client;
    $c->cmd('SET', "mpn:partner:$_", record($_, sub => { end_days => 200 }))
        for @IDS;
    $p->write_marker;
    $set->replicated;
}

# nginx with two workers on the Sentinels; %o: cache, redis (more
# mpn_redis parameters), addr and master (other Sentinels), t (restart it),
# down (expect no partner let in)
sub nginx {
    my (%o) = @_;
    my $t = $o{t} || MpnTest->new;
    setup_html($t);
    $t->stop_nginx if $o{t};
    $t->write_nginx_conf(cache_conf(addr => $o{addr} // $set->sentinel_addrs,
        redis => 'sentinel=' . ($o{master} // 'mymaster')
                 . ' connect_timeout=500ms timeout=500ms '
                 . ($o{redis} // ''),
        (defined $o{cache} ? (cache => $o{cache}) : ())),
        workers => 2);
    $t->start_nginx;
    return $t if $o{down};
    ok(poll(sub { (get_id($t, 'p00'))[1] eq 'allow/ok' }, 10),
        'an active partner is let in') or diag($t->error_log);
    return $t;
}

# one client in a loop, each answer written down: (time, id, status,
# decision, cache status)
sub load_start {
    my ($t) = @_;
    my $file = $t->dir . '/load' . ++$t->{loads} . '.txt';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(my $out, '>', $file) or POSIX::_exit(1);
        $out->autoflush(1);
        my $i = 0;
        until (-e "$file.stop") {
            my $id = $IDS[$i++ % @IDS];
            my @r = eval { get_id($t, $id) };
            printf $out "%.3f %s %d %s %s\n", time, $id, $r[0] // 0,
                $r[1] || '-', $r[2] || '-';
            sleep(0.005);
        }
        close $out;
        POSIX::_exit(0);        # no destructor: nginx is the parent's
    }
    return { pid => $pid, file => $file, t0 => time };
}

# { n, failed, wrong, window_ms (first failure to last), last_ok }
sub load_stop {
    my ($l) = @_;
    my $fh;
    open($fh, ">", "$l->{file}.stop") and close $fh;
    waitpid($l->{pid}, 0);
    open($fh, '<', $l->{file}) or die "$l->{file}: $!";
    my %s = (n => 0, failed => 0, wrong => 0, window_ms => 0);
    my ($first, $last, @tail);
    while (my $line = <$fh>) {
        my ($at, $id, $code, $dec) = split(' ', $line);
        $s{n}++;
        my $ok = $code == 200 && $dec eq 'allow/ok';
        $s{wrong}++ if $code == 302 || $code == 403
            || ($code == 200 && $dec ne 'allow/ok');
        unless ($ok) {
            $s{failed}++;
            $first //= $at;
            $last = $at;
        }
        push @tail, $ok;
        shift @tail if @tail > 20;
    }
    $s{window_ms} = defined $first ? int(($last - $first) * 1000) : 0;
    $s{last_ok} = @tail == 20 && !grep { !$_ } @tail;
    return \%s;
}

sub report {
    my ($what, $s) = @_;
    diag(sprintf('%s: %d of %d requests failed, window %d ms', $what,
                 $s->{failed}, $s->{n}, $s->{window_ms}));
    is($s->{wrong}, 0, "$what: never a wrong decision");
    ok($s->{last_ok}, "$what: the last 20 requests were let in");
}

sub failovers { status_json($_[0])->{redis}{failovers} // -1 }

sub gets_on {
    my ($node) = @_;
    my $info = $node->client->cmd('INFO', 'commandstats');
    return ($info =~ /cmdstat_get:calls=(\d+)/)[0] // 0;
}


subtest 'SENTINEL FAILOVER under load, no cache' => sub {
    my $t = nginx();
    my $old = $set->primary;

    my $l = load_start($t);
    sleep(1);
    my $new = $set->failover;
    ok($new && $new != $old, 'Sentinel promoted the replica');
    ok(poll(sub { (get_id($t, 'p01'))[1] eq 'allow/ok' }, 10),
        'served again');
    sleep(1);
    my $s = load_stop($l);
    report('failover, no cache', $s);
    my $redis = status_json($t)->{redis};
    diag("failover, no cache: lookups sent once more: $redis->{retries}, "
         . "reconnects: $redis->{reconnects}");

    like($t->error_log,
        qr/mpn: redis mymaster: failover: primary now at 127\.0\.0\.1:${\ $new->port }/,
        'the failover is logged with the new primary');
    is(failovers($t), 1, 'mpn_redis_failovers_total counts it once');
    my $g = gets_on($new);
    get_id($t, 'p02');
    cmp_ok(gets_on($new), '>', $g, 'lookups go to the new primary');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a lookup in flight on a lost connection is sent once more' => sub {
    my $t = nginx(redis => 'timeout=2s');
    my $retries = status_json($t)->{redis}{retries};

    # the primary is busy for 300 ms, then closes its clients (as Sentinel
    # does to the servers it reconfigures): the GET sent meanwhile is lost
    my $c = $set->primary->client;
    $c->send_raw(MpnRedis::Client::encode('EVAL',
        "local s = redis.call('TIME') repeat local n = redis.call('TIME') "
        . "until (n[1] - s[1]) * 1000000 + n[2] - s[2] > 300000 return 1",
        0)
        . MpnRedis::Client::encode('CLIENT', 'KILL', 'TYPE', 'normal',
                                   'SKIPME', 'yes'));
    sleep(0.1);
    my @r = get_id($t, 'p05');
    is_deeply([ $c->reply, ($c->reply > 0 ? 'killed' : 'none') ],
              [ 1, 'killed' ], 'the connections were closed');
    is("$r[0] $r[1]", '200 allow/ok', 'the lookup was answered all the same');
    is(status_json($t)->{redis}{retries}, $retries + 1,
        'on the next connection (mpn_redis_retries_total)');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'SENTINEL FAILOVER under load, with mpn_cache and stale' => sub {
    my $t = nginx(cache => 'zone=c:1m ttl=60s stale=5m');
    get_id($t, $_) for @IDS;        # every partner cached
    my $old = $set->primary;

    my $l = load_start($t);
    sleep(1);
    my $new = $set->failover;
    ok($new && $new != $old, 'Sentinel promoted the replica back');
    sleep(2);
    my $s = load_stop($l);
    report('failover, mpn_cache', $s);
    is($s->{failed}, 0, 'cached partners never noticed');
    like($t->error_log, qr/subscriber: lost channel/,
        'the subscription moved with the primary');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'read=replica: the replica, the primary while it is stopped' => sub {
    my $t = nginx(redis => 'read=replica');
    my $primary = $set->primary;
    my ($replica) = $set->replicas;

    ok(poll(sub { get_id($t, 'p03'); gets_on($replica) > 0 }, 5),
        'lookups reach the replica');
    my $pg = gets_on($primary);
    get_id($t, $_) for @IDS;
    is(gets_on($primary), $pg, 'and not the primary');

    my $req = status_json($t)->{redis}{requests};
    sleep(2.2);
    is(status_json($t)->{redis}{requests}, $req,
        'the PINGs that measure the replicas are no requests');

    my $l = load_start($t);
    sleep(0.5);
    $set->signal($replica, 'STOP');
    sleep(2);
    my $pg2 = gets_on($primary);
    sleep(0.5);
    cmp_ok(gets_on($primary), '>', $pg2,
        'the replica stopped: the primary answers');
    $set->signal($replica, 'CONT');
    my $rg = gets_on($replica);
    ok(poll(sub { gets_on($replica) > $rg }, 10),
        'the replica back: it answers again');
    my $s = load_stop($l);
    report('read=replica, replica stopped', $s);

    # the primary stopped: reads stay on the replica, then on what
    # Sentinel promotes
    $l = load_start($t);
    sleep(0.5);
    $set->signal($primary, 'STOP');
    sleep(4);
    $set->signal($primary, 'CONT');
    ok($set->wait_primary($replica, 20), 'Sentinel promoted the replica');
    sleep(1);
    $s = load_stop($l);
    report('read=replica, primary stopped', $s);

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a Sentinel ACL user; a server that is no primary is not used' => sub {
    my $primary = $set->primary;
    my ($replica) = $set->replicas;
    ok(MpnSentinel::wait_until(sub { $replica->client->cmd('ROLE')->[0] eq 'slave' }, 20),
        'the old primary was turned into a replica');

    # a Sentinel of its own, that nginx must log in to, and that names the
    # replica as the primary of "bogus"
    my $sen = MpnRedis->start(sentinel => 1, marker => 0, conf => [
        'user default off',
        'user mpn-sentinel on >sentinel-secret -@all +auth +ping'
            . ' +sentinel|get-master-addr-by-name +sentinel|replicas'
            . ' +subscribe &+switch-master',
        'sentinel monitor gate 127.0.0.1 ' . $primary->port . ' 1',
        'sentinel monitor bogus 127.0.0.1 ' . $replica->port . ' 1' ]);
    my $addr = '127.0.0.1:' . $sen->port;

    my $t = MpnTest->new;
    my $pw = $t->write_file('sentinel.pw', "sentinel-secret\n");
    my $wrong = $t->write_file('wrong.pw', "not-the-sentinel-secret\n");
    my $user = "sentinel_user=mpn-sentinel sentinel_password_file=";

    $t = nginx(t => $t, addr => $addr, master => 'gate', redis => "$user$pw");
    $t = nginx(t => $t, addr => $addr, master => 'gate', redis => "$user$wrong",
               down => 1);
    sleep(1);
    is((get_id($t, 'p00'))[0], 503, 'a wrong Sentinel password: 503');
    ok(poll(sub { $t->error_log =~ /mpn: redis \Q$addr\E: sentinel: AUTH failed: WRONGPASS/ }, 5),
        'the failed AUTH is logged, naming the Sentinel');
    unlike($t->error_log, qr/not-the-sentinel-secret/, 'but never the password');

    $t = nginx(t => $t, addr => $addr, master => 'bogus', redis => "$user$pw",
               down => 1);
    sleep(1);
    is((get_id($t, 'p00'))[0], 503, 'the server named is a replica: 503');
    my $rp = $replica->port;
    ok(poll(sub { $t->error_log =~ /mpn: redis bogus: 127\.0\.0\.1:$rp is no primary \(ROLE\), not used/ }, 5),
        'it was asked, and not used');

    $t->stop_nginx;
    $sen->stop;
    $t->check_error_log;
};

subtest 'kill -9 of the primary: recovery without a reload' => sub {
    # the old primary is a replica again before it can be promoted
    ok(MpnSentinel::wait_until(sub {
        my $r = ($set->sentinels)[0]->client->cmd('SENTINEL', 'REPLICAS',
                                                   'mymaster');
        return grep { my %h = @$_; $h{flags} eq 'slave'
                      && $h{'master-link-status'} eq 'ok' } @$r;
    }, 30), 'a replica is in sync');

    my $t = nginx();
    my $pid = $t->{pids}{nginx};
    my $old = $set->primary;

    my $l = load_start($t);
    sleep(1);
    $set->kill9($old);
    my ($new) = grep { $_ != $old && $_->{pid} } $set->nodes;
    ok($set->wait_primary($new, 30), 'Sentinel promoted the replica');
    ok(poll(sub { (get_id($t, 'p04'))[1] eq 'allow/ok' }, 10),
        'served again');
    sleep(1);
    my $s = load_stop($l);
    report('kill -9, no cache', $s);
    cmp_ok($s->{failed}, '>', 0, 'the loss was felt (the test measures it)');
    is($t->{pids}{nginx}, $pid, 'no reload, no restart');
    like($t->error_log, qr/failover: primary now at 127\.0\.0\.1:${\ $new->port }/,
        'the new primary is logged');
    like($t->error_log, qr/mpn: redis mymaster is unavailable, client:/,
        'a refused request names the master, not a Sentinel');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'no dataset marker: the line says how to write it through Sentinel' => sub {
    my $t = nginx();
    my $c = $set->primary->client;
    my $marker = $c->cmd('GET', 'mpn:meta');
    $c->cmd('DEL', 'mpn:meta');
    ok(poll(sub { (get_id($t, 'p06'))[0] == 503 }, 5), 'no marker: 503');
    my $s1 = ($set->sentinels)[0]->port;
    ok(poll(sub { $t->error_log =~ /no dataset marker "mpn:meta".*"mpnctl --sentinel mymaster --redis 127\.0\.0\.1:$s1 --db 0 init"/ }, 5),
        'the mpnctl line names the master and a Sentinel');
    $c->cmd('SET', 'mpn:meta', $marker);
    ok(poll(sub { (get_id($t, 'p06'))[1] eq 'allow/ok' }, 5), 'back');
    $t->stop_nginx;
    $t->check_error_log;
};

$set->stop;

done_testing;
