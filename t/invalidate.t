#!/usr/bin/perl

# Invalidation (mpn_invalidate_channel): a partner id published on the
# channel drops its entry for every worker within a second; the
# subscription survives a worker's death; a lost subscription, when no
# other worker kept listening, turns every entry cached before the loss
# into an expired one, refetched on the next request but still usable as
# STALE (spec section 3, "Cache semantics"); one worker's loss while
# another listens is no gap; each message is counted once whichever
# workers are subscribed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use MpnTest;
use MpnRecords;
use MpnCache;

my $LAPSED = record('active', sub => { status => 'expired', end_days => -1 });

sub start {
    my ($workers, %o) = @_;
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(cache_conf(listen => 'reuseport', %o),
        workers => $workers);
    $t->start_nginx;
    ok(poll(sub { subscribers($t) == $workers }, 5),
        "all $workers workers subscribed");
    return $t;
}

sub subscribers {
    my ($t) = @_;
    my $r = $t->redis('PUBSUB', 'NUMSUB', 'mpn:invalidate');
    return ref $r ? $r->[1] : 0;
}

# workers that have taken their SUBSCRIBE confirmation (and marked any
# gap): Redis counts a subscriber a moment before its worker knows.  The
# gap is stamped with the worker's millisecond clock and a record read in
# that same millisecond counts as read before it, so once the count is
# reached the caller waits a few milliseconds before its next read.
sub listening {
    my ($t) = @_;
    my @n = $t->error_log =~ /subscriber: listening on/g;
    sleep 0.005;
    return scalar @n;
}

# ids of the subscriber connections Redis has
sub pubsub_ids {
    my ($t) = @_;
    my $list = $t->redis('CLIENT', 'LIST', 'TYPE', 'pubsub');
    return $list =~ /\bid=(\d+)/g;
}

sub worker_pids {
    my ($t, $n) = @_;
    my %pid;
    for (1 .. $n) {
        my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
        $pid{ header($r, 'X-Pid') }++;
    }
    return keys %pid;
}

# the crash tests kill a worker on purpose; nothing else may go wrong
sub check_log_but_kill {
    my ($t, $pid) = @_;
    my $log = $t->error_log;
    $log =~ s/^.*worker process $pid exited on signal 9.*\n//mg;
    unlike($log, qr/\[(alert|emerg)\]/, 'no alert or emerg in the error log');
    unlike($log, qr/exited on signal/, 'no other worker exited on a signal');
}

subtest 'two workers: a published write is seen on any worker within 1s' => sub {
    my $t = start(2, cache => 'zone=c:1m ttl=60s');

    is(cache_of($t, 'active'), 'MISS', 'warmed');
    my @pids = worker_pids($t, 30);
    is(scalar @pids, 2, 'requests reach both workers');

    $t->redis('SET', 'mpn:partner:active', $LAPSED);
    is(cache_of($t, 'active'), 'HIT', 'written, not yet published: still HIT');

    my $t0 = time;
    is($t->redis('PUBLISH', 'mpn:invalidate', 'active'), 2,
        'published to both workers\' subscribers');

    my %seen;
    my $ok = poll(sub {
        for (1 .. 10) {
            my ($code, $mpn, $cache, $r) = get_id($t, 'active');
            return 0 unless $mpn eq 'renew/lapsed';
            $seen{ header($r, 'X-Pid') }++;
        }
        return 1;
    }, 1);
    my $took = time - $t0;
    ok($ok, sprintf('every request sees the write within 1s (%.3fs)', $took));
    is(scalar keys %seen, 2, 'on both workers') or diag explain \%seen;

    ok(poll(sub { status_json($t)->{invalidations} == 1 }, 1),
        'mpn_invalidations_total counts the message once');

    is($t->redis('PUBLISH', 'mpn:invalidate', 'not an id!'), 2, 'a malformed message');
    is(cache_of($t, 'active'), 'HIT', '...is ignored');

    $t->stop_nginx;
    like($t->error_log, qr/ignored a message on "mpn:invalidate"/, 'and logged');
    $t->check_error_log;
};

subtest 'a worker dies: the other keeps listening, no entry is lost' => sub {
    my $t = start(2, cache => 'zone=c:1m ttl=60s');

    is(cache_of($t, 'active'), 'MISS', 'warmed');
    my ($victim) = worker_pids($t, 1);
    kill 'KILL', $victim;
    ok(poll(sub { subscribers($t) >= 1 }, 1), 'still a subscriber');
    ok(poll(sub { cache_of($t, 'active') eq 'HIT' }, 2),
        'entries kept: HIT (another worker listened all along)');

    $t->redis('SET', 'mpn:partner:active', $LAPSED);
    cmp_ok($t->redis('PUBLISH', 'mpn:invalidate', 'active'), '>=', 1, 'published');
    ok(poll(sub { (get_id($t, 'active'))[1] eq 'renew/lapsed' }, 1),
        'the write is seen within 1s');
    ok(poll(sub { subscribers($t) == 2 }, 5), 'the new worker subscribed too');

    $t->stop_nginx;
    check_log_but_kill($t, $victim);
};

subtest 'the only worker dies: entries cached before count as expired' => sub {
    my $t = start(1, cache => 'zone=c:1m ttl=60s');

    is(cache_of($t, 'active'), 'MISS', 'warmed');
    my ($victim) = worker_pids($t, 1);
    kill 'KILL', $victim;
    ok(poll(sub {
        my $r = eval { $t->http_get('/gated/x') } // '';
        (header($r, 'X-Pid') // $victim) != $victim && subscribers($t) == 1
            && listening($t) == 2;
    }, 5), 'a new worker took over and subscribed');
    is(cache_of($t, 'active'), 'EXPIRED',
        'nobody listened in between: refetched');
    is(cache_of($t, 'active'), 'HIT', 'then HIT');

    $t->stop_nginx;
    like($t->error_log, qr/a worker died while nobody else listened/, 'logged');
    check_log_but_kill($t, $victim);
};

subtest 'the subscription is lost: refetch on the next request, STALE still' => sub {
    my $t = start(2, cache => 'zone=c:1m ttl=60s stale=60s');

    is(cache_of($t, $_), 'MISS', "$_ warmed") for qw(active gold);
    is(cache_of($t, $_), 'HIT', "$_ cached") for qw(active gold);

    $t->redis('SET', 'mpn:partner:active', $LAPSED);
    is($t->redis('CLIENT', 'KILL', 'TYPE', 'pubsub'), 2,
        'both subscriber connections killed');
    ok(poll(sub { subscribers($t) == 2 && listening($t) == 4 }, 3),
        'both resubscribed');

    my ($code, $mpn, $cache) = get_id($t, 'active');
    is("$cache $mpn", 'EXPIRED renew/lapsed',
        'cached before the loss: refetched, the missed write is seen');
    is(cache_of($t, 'active'), 'HIT', 'cached after it: HIT');

    $t->stop_redis;
    ($code, $mpn, $cache) = get_id($t, 'gold');
    is("$code $cache", '200 STALE',
        'an entry from before the loss still answers STALE with Redis gone');

    $t->stop_nginx;
    like($t->error_log, qr/subscriber: lost channel "mpn:invalidate"/, 'the loss is logged');
    like($t->error_log, qr/subscriber: reconnected/, 'the reconnect too');
    $t->check_error_log;
};

subtest 'a custom channel' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(cache_conf(cache => 'zone=c:1m ttl=60s',
        http => 'mpn_invalidate_channel billing:changed;'));
    $t->start_nginx;
    ok(poll(sub { ($t->redis('PUBSUB', 'NUMSUB', 'billing:changed'))->[1] == 1 }, 5),
        'subscribed to billing:changed');
    is(cache_of($t, 'active'), 'MISS', 'warmed');
    $t->redis('PUBLISH', 'mpn:invalidate', 'active');
    is(cache_of($t, 'active'), 'HIT', 'the default channel is not listened to');
    $t->redis('PUBLISH', 'billing:changed', 'active');
    ok(poll(sub { cache_of($t, 'active') eq 'MISS' }, 1), 'billing:changed drops it');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'one worker loses its subscription, the other listens: no gap' => sub {
    my $t = start(2, cache => 'zone=c:1m ttl=60s');

    is(cache_of($t, 'active'), 'MISS', 'warmed');
    is(cache_of($t, 'active'), 'HIT', 'cached');
    my @ids = pubsub_ids($t);
    is(scalar @ids, 2, 'two subscriber connections');

    is($t->redis('CLIENT', 'KILL', 'ID', $ids[0]), 1, "one of them killed");
    ok(poll(sub { subscribers($t) == 2 && listening($t) == 3 }, 5),
        'and resubscribed');
    my @cache = map { cache_of($t, 'active') } 1 .. 10;
    is("@cache", join(' ', ('HIT') x 10),
        'the other worker applied every invalidation meanwhile: still HIT');

    $t->stop_nginx;
    like($t->error_log, qr/lost channel "mpn:invalidate", 1 other worker is still listening/,
        'the loss is logged, with the worker still listening');
    $t->check_error_log;
};

subtest 'mpn_invalidations_total: once per message, whichever worker listens' => sub {
    my $t = start(2, cache => 'zone=c:1m ttl=60s');
    my @ids = pubsub_ids($t);
    is(scalar @ids, 2, 'two subscriber connections');

    # each worker in turn is left without a subscription: one of the two
    # rounds leaves worker 0 out
    my $want = 0;
    for my $round (1, 2) {
        my $victim = $ids[$round - 1];    # the second is untouched in round 1
        is($t->redis('ACL', 'SETUSER', 'default', '-subscribe'), 'OK',
            "round $round: SUBSCRIBE refused from now on");
        is($t->redis('CLIENT', 'KILL', 'ID', $victim), 1,
            "round $round: one worker's subscription killed");
        # the worker has noticed the loss (and given up counting) only once
        # it logged it: Redis drops the subscriber a moment before
        ok(poll(sub { subscribers($t) == 1
                      && (() = $t->error_log =~ /lost channel "mpn:invalidate"/g) == $round }, 5),
            "round $round: one worker listens, the other knows it does not");
        for (1 .. 3) {
            is($t->redis('PUBLISH', 'mpn:invalidate', "p$round$_"), 1, "round $round: published");
        }
        $want += 3;
        ok(poll(sub { status_json($t)->{invalidations} == $want }, 3),
            "round $round: mpn_invalidations_total is $want")
            or diag 'got ' . status_json($t)->{invalidations};
        is($t->redis('ACL', 'SETUSER', 'default', '+subscribe'), 'OK', "round $round: allowed again");
        ok(poll(sub { subscribers($t) == 2 }, 5), "round $round: both listen again");
    }

    is($t->redis('PUBLISH', 'mpn:invalidate', 'active'), 2, 'both workers hear one more');
    $want++;
    ok(poll(sub { status_json($t)->{invalidations} == $want }, 3), 'counted once');
    sleep 0.3;
    is(status_json($t)->{invalidations}, $want, 'and only once');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a reload hands the subscription over: no moment without a listener' => sub {
    my $t = start(1, cache => 'zone=c:1m ttl=60s');

    is(cache_of($t, 'active'), 'MISS', 'warmed');
    is(cache_of($t, 'active'), 'HIT', 'cached');
    my ($old) = worker_pids($t, 1);

    # the new worker cannot subscribe for now: the old one must listen on
    is($t->redis('ACL', 'SETUSER', 'default', '-subscribe'), 'OK', 'SUBSCRIBE refused');
    kill 'HUP', $t->{pids}{nginx};
    ok(poll(sub { (header($t->http_get('/gated/x'), 'X-Pid') // $old) != $old }, 5),
        'reloaded: the new worker answers');
    $t->redis('SET', 'mpn:partner:active', $LAPSED);
    is($t->redis('PUBLISH', 'mpn:invalidate', 'active'), 1,
        'the old worker still listens after the reload');
    ok(poll(sub { (get_id($t, 'active'))[1] eq 'renew/lapsed' }, 1),
        'and dropped the entry for the new one');

    is($t->redis('ACL', 'SETUSER', 'default', '+subscribe'), 'OK', 'SUBSCRIBE allowed again');
    ok(poll(sub { subscribers($t) == 1 && !kill(0, $old) }, 5),
        'the new worker subscribed and the old one is gone');

    $t->stop_nginx;
    $t->check_error_log;
};

done_testing;
