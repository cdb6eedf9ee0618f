#!/usr/bin/perl

# mpn_cache (spec section 3, "Cache semantics"): MISS then HIT with the
# record unchanged, the decision still made per request, ttl and
# negative_ttl expiry, STALE answers while Redis is down or stopped and 503
# once past stale (and never with stale=0), a zone too small for the working
# set caching a partner new to it from its second miss and evicting in LRU
# order without failing a request, a few evictions at
# most for one record, and a reload that changes where the records come
# from emptying the zone.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use MpnTest;
use MpnRecords;
use MpnCache;
use JSON::PP;

my $LAPSED_ACTIVE = record('active', sub => { status => 'expired', end_days => -1 });

sub start {
    my (%o) = @_;
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(cache_conf(%o));
    $t->start_nginx;
    return $t;
}

subtest 'MISS, then HIT without asking Redis; the record is unchanged' => sub {
    my $t = start(cache => 'zone=c:1m ttl=60s');

    my ($code, $mpn, $cache, $r) = get_id($t, 'active');
    is($code, 200, 'first request served');
    is($cache, 'MISS', 'first request: MISS');
    my $expires = header($r, 'X-Mpn-Expires');

    # Redis now says lapsed, but nobody published: the cached record stands
    $t->redis('SET', 'mpn:partner:active',
        record('active', sub => { status => 'expired', end_days => -1 }));
    ($code, $mpn, $cache, $r) = get_id($t, 'active');
    is($cache, 'HIT', 'second request: HIT');
    is("$code $mpn", '200 allow/ok', 'served from the cached record');
    is(header($r, 'X-Mpn-Offer'), 'action_pack', '$mpn_offer from the cached record');
    is(header($r, 'X-Mpn-Expires'), $expires, '$mpn_expires as parsed the first time');

    ($code, $mpn, $cache) = get_id($t, 'lapsed');
    is("$code $mpn $cache", '403 renew/lapsed MISS', 'another partner: its own entry');
    ($code, $mpn, $cache) = get_id($t, 'lapsed');
    is("$code $mpn $cache", '403 renew/lapsed HIT', 'a refusal is cached too');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'the decision is made per request against now, even on a HIT' => sub {
    my $t = start(cache => 'zone=c:1m ttl=60s');
    $t->redis('SET', 'mpn:partner:ending',
        record('ending', sub => { end_days => 2.5 / 86400 }));

    my ($code, $mpn, $cache) = get_id($t, 'ending');
    is("$code $mpn $cache", '200 allow/ok MISS', 'current subscription: allowed');
    sleep 3;
    ($code, $mpn, $cache) = get_id($t, 'ending');
    is("$code $mpn $cache", '403 renew/lapsed HIT',
        'the same cached record, past its end: renew');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'ttl runs out: EXPIRED, refetched, then HIT again' => sub {
    my $t = start(cache => 'zone=c:1m ttl=1s');

    is(cache_of($t, 'active'), 'MISS', 'MISS');
    is(cache_of($t, 'active'), 'HIT', 'HIT within ttl');
    $t->redis('SET', 'mpn:partner:active',
        record('active', sub => { status => 'expired', end_days => -1 }));
    sleep 1.2;
    my ($code, $mpn, $cache) = get_id($t, 'active');
    is($cache, 'EXPIRED', 'after ttl: EXPIRED');
    is("$code $mpn", '403 renew/lapsed', 'the refetched record decides');
    is(cache_of($t, 'active'), 'HIT', 'stored again: HIT');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'negative_ttl: a partner without a record is cached for it' => sub {
    my $t = start(cache => 'zone=c:1m ttl=60s negative_ttl=1s');

    my ($code, $mpn, $cache) = get_id($t, 'newcomer');
    is("$code $mpn $cache", '403 upgrade/not_member MISS', 'no record: not_member');
    $t->redis('SET', 'mpn:partner:newcomer', record('newcomer', sub => { end_days => 100 }));
    ($code, $mpn, $cache) = get_id($t, 'newcomer');
    is("$code $mpn $cache", '403 upgrade/not_member HIT', 'within negative_ttl: HIT');
    sleep 1.2;
    ($code, $mpn, $cache) = get_id($t, 'newcomer');
    is("$code $mpn $cache", '200 allow/ok EXPIRED', 'after negative_ttl: refetched');
    is(cache_of($t, 'newcomer'), 'HIT', 'now a positive entry, ttl 60s: HIT');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'redis killed: STALE inside stale, 503 past it' => sub {
    my $t = start(cache => 'zone=c:1m ttl=1s stale=2s');

    my $t0 = time;
    is(cache_of($t, 'active'), 'MISS', 'warmed: MISS');
    is(cache_of($t, 'lapsed'), 'MISS', 'warmed a refusal: MISS');
    $t->stop_redis;

    # the subscriber went down with Redis: the entries count as expired
    my ($code, $mpn, $cache) = get_id($t, 'active');
    is("$code $mpn $cache", '200 allow/ok STALE',
        'redis gone (and the subscription with it): STALE, served');
    sleep 1.2 - (time - $t0);
    ($code, $mpn, $cache) = get_id($t, 'active');
    is("$code $mpn $cache", '200 allow/ok STALE', 'past ttl, inside stale: STALE, served');
    ($code, $mpn, $cache) = get_id($t, 'lapsed');
    is("$code $mpn $cache", '403 renew/lapsed STALE', 'a stale refusal still refuses');
    ($code, $mpn, $cache) = get_id($t, 'gold');
    is("$code $mpn $cache", '503 error/redis_unavailable MISS',
        'never cached: 503');

    sleep 3.3 - (time - $t0);
    ($code, $mpn, $cache) = get_id($t, 'active');
    is("$code $mpn $cache", '503 error/redis_unavailable EXPIRED',
        'past ttl + stale: 503');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'redis stopped: a request that times out answers STALE' => sub {
    my $t = start(cache => 'zone=c:1m ttl=1s stale=30s', redis => 'timeout=150ms');

    is(cache_of($t, 'active'), 'MISS', 'warmed: MISS');
    sleep 1.1;
    $t->signal_redis('STOP');
    my $t0 = time;
    my ($code, $mpn, $cache) = get_id($t, 'active');
    my $took = time - $t0;
    $t->signal_redis('CONT');
    is("$code $mpn $cache", '200 allow/ok STALE', 'timed out: STALE');
    cmp_ok($took, '>=', 0.1, sprintf('after waiting for the timeout (%.3fs)', $took));
    cmp_ok($took, '<', 1, 'no longer than about the timeout');

    ok(poll(sub { cache_of($t, 'active') =~ /^(EXPIRED|HIT)$/ }, 3),
        'redis back: refetched');
    is(cache_of($t, 'active'), 'HIT', 'and cached again');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a full zone: a partner new to it is cached from its second miss, the least recently used making room; never fails' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    my $n = 80;
    my @ids = map { sprintf 'p%03d', $_ } 1 .. $n;
    $t->redis('SET', "mpn:partner:$_", record($_, sub => { end_days => 100 }))
        for @ids, 'q1';
    $t->write_nginx_conf(cache_conf(cache => 'zone=tiny:32k ttl=60s'));
    $t->start_nginx;

    my $failed = 0;
    for my $id (@ids) {
        my ($code, $mpn, $cache) = get_id($t, $id);
        $failed++ unless $code == 200 && $cache eq 'MISS';
    }
    is($failed, 0, "$n partners, all served (MISS)");

    my $st = status_json($t);
    my $cap = $st->{cache}{entries};
    cmp_ok($cap, '<', $n, "the zone holds $cap of them");
    cmp_ok($cap, '>=', 4, 'and at least a few');
    is($st->{cache}{evictions}, 0,
        'those asked for once in a full zone pushed nothing out');
    is($st->{cache}{size_bytes}, 32768, 'size_bytes: the zone size');
    cmp_ok($st->{cache}{used_bytes}, '<=', 32768, 'used_bytes within it');

    # cached now: the first $cap, as they came
    my ($oldest, $next) = @ids[0, 1];
    is(cache_of($t, $ids[$cap - 1]), 'HIT', 'the last one cached: HIT');
    is(cache_of($t, $oldest), 'HIT', "the oldest ($oldest), touched: HIT");

    is(cache_of($t, 'q1'), 'MISS', 'a new partner: MISS');
    $st = status_json($t)->{cache};
    is("$st->{entries} $st->{evictions}", "$cap 0", 'not cached, nothing evicted');
    is(cache_of($t, 'q1'), 'MISS', 'asked for again: MISS, and cached');
    is(status_json($t)->{cache}{evictions}, 1, 'evicting one');
    is(cache_of($t, 'q1'), 'HIT', 'then HIT');
    is(cache_of($t, $oldest), 'HIT', 'the touched one survived');
    is(cache_of($t, $next), 'MISS', "the least recently used ($next) was evicted");
    is(cache_of($t, $next), 'MISS', 'asked for again: MISS, and cached again');
    is(cache_of($t, $next), 'HIT', 'then HIT');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'stale=0 (the default): never STALE, even inside ttl' => sub {
    my $t = start(cache => 'zone=c:1m ttl=60s');

    is(cache_of($t, 'active'), 'MISS', 'warmed: MISS');
    is(cache_of($t, 'active'), 'HIT', 'HIT');

    # the subscription goes down with Redis: the entry counts as expired,
    # and with stale=0 nothing expired may answer
    $t->stop_redis;
    my ($code, $mpn, $cache) = get_id($t, 'active');
    is("$code $mpn", '503 error/redis_unavailable',
        'redis gone: 503, not the record from before (it may predate a suspension)');
    isnt($cache, 'STALE', "\$mpn_cache_status is not STALE ($cache)");
    is(status_json($t)->{cache}{stale}, 0, 'mpn_cache_stale_total stays 0');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a record that needs many evictions is served, not cached' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    my @ids = map { sprintf 'n%03d', $_ } 1 .. 60;
    $t->redis('SET', "mpn:partner:$_", record($_, sub => { end_days => 100 })) for @ids;

    # about 40 KB parsed: more than the free room of a 64 KB zone full of
    # small entries, so making room would take most of them
    my $big = decode_json(record('big', sub => { end_days => 100 }));
    $big->{subscriptions}{action_pack}{benefits}{sprintf 'benefit_number_%04d', $_} = 1
        for 1 .. 1000;
    $t->redis('SET', 'mpn:partner:big', JSON::PP->new->canonical->encode($big));

    $t->write_nginx_conf(cache_conf(cache => 'zone=z:64k ttl=60s'));
    $t->start_nginx;

    is(cache_of($t, $_), 'MISS', "$_ asked for") for @ids;
    my $before = status_json($t)->{cache};
    my $k = $before->{entries};
    cmp_ok($k, '>=', 28, "the zone holds $k small entries, the first ones");

    # the first miss of a partner new to a full zone stores nothing; the
    # second one makes room
    my ($code, $mpn, $cache) = get_id($t, 'big');
    is("$code $mpn $cache", '200 allow/ok MISS', 'the big record is served');
    ($code, $mpn, $cache) = get_id($t, 'big');
    is("$code $mpn $cache", '200 allow/ok MISS', 'and again');
    my $after = status_json($t)->{cache};
    my $evicted = $after->{evictions} - $before->{evictions};
    cmp_ok($evicted, '>', 0, "it made room ($evicted evicted)");
    cmp_ok($evicted, '<=', 8, 'but evicted at most a few entries');
    is(cache_of($t, 'big'), 'MISS', 'and it was not cached');
    my $hits = grep { cache_of($t, $_) eq 'HIT' } @ids[$k - 20 .. $k - 1];
    is($hits, 20, 'the 20 most recent small entries are still cached');

    $t->stop_nginx;
    like($t->error_log, qr/record of partner "big" \(\d+ bytes\) not cached/,
        'the record left out is logged');
    $t->check_error_log;
};

subtest 'a reload that changes the source (prefix, db, server) empties the zone' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);

    # elsewhere, partner "active" has lapsed
    $t->redis('SET', 'other:active', $LAPSED_ACTIVE);
    my $c = $t->{redis}->client;
    $c->cmd('SELECT', 3);
    $c->cmd('SET', 'mpn:partner:active', $LAPSED_ACTIVE);
    $t->{redis}->write_marker(undef, 3);
    my $b = MpnRedis->start;
    $b->client->cmd('SET', 'mpn:partner:active', $LAPSED_ACTIVE);

    my $port_b = $b->port;
    my @confs = (
        [ 'the same source', cache_conf(cache => 'zone=c:1m ttl=60s'), 'HIT 200 allow/ok' ],
        [ 'mpn_key_prefix other:', cache_conf(cache => 'zone=c:1m ttl=60s',
            http => 'mpn_key_prefix other:;'), 'MISS 403 renew/lapsed' ],
        [ 'back to the first source', cache_conf(cache => 'zone=c:1m ttl=60s'),
            'MISS 200 allow/ok' ],
        [ 'db=3', cache_conf(cache => 'zone=c:1m ttl=60s', redis => 'db=3'),
            'MISS 403 renew/lapsed' ],
        [ 'another server', cache_conf(cache => 'zone=c:1m ttl=60s') =~
            s/%%REDIS%%/127.0.0.1:$port_b/r, 'MISS 403 renew/lapsed' ],
    );

    $t->write_nginx_conf($confs[0][1]);
    $t->start_nginx;
    is(cache_of($t, 'active'), 'MISS', 'cached from the first source');

    for my $case (@confs) {
        my ($what, $conf, $want) = @$case;
        my $old = header($t->http_get('/gated/x', 'X-Partner' => 'gold'), 'X-Pid');
        $t->write_nginx_conf($conf);
        $t->reload_nginx;
        ok(poll(sub { (header($t->http_get('/gated/x', 'X-Partner' => 'gold'),
                              'X-Pid') // $old) != $old }, 5), "reloaded: $what");
        my ($code, $mpn, $cache) = get_id($t, 'active');
        is("$cache $code $mpn", $want, "$what: $want");
        cache_of($t, 'active');
    }

    $t->stop_nginx;
    like($t->error_log, qr/mpn_cache zone "c": the records now come from 127\.0\.0\.1:\d+ db=0 prefix=other:, \d+ entries read elsewhere were dropped/,
        'the flush is logged with the new source');
    $b->stop;
    $t->check_error_log;
};

done_testing;
