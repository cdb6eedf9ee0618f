#!/usr/bin/perl

# mpn_cache (spec section 3, "Cache semantics"): MISS then HIT with the
# record unchanged, the decision still made per request, ttl and
# negative_ttl expiry, STALE answers while Redis is down or stopped and 503
# once past stale, and a zone too small for the working set evicting in
# LRU order without failing a request.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use MpnTest;
use MpnRecords;
use MpnCache;

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

subtest 'a zone too small evicts the least recently used, never fails' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    my $n = 80;
    my @ids = map { sprintf 'p%03d', $_ } 1 .. $n + 1;
    $t->redis('SET', "mpn:partner:$_", record($_, sub => { end_days => 100 })) for @ids;
    $t->write_nginx_conf(cache_conf(cache => 'zone=tiny:32k ttl=60s'));
    $t->start_nginx;

    my $failed = 0;
    for my $id (@ids[0 .. $n - 1]) {
        my ($code, $mpn, $cache) = get_id($t, $id);
        $failed++ unless $code == 200 && $cache eq 'MISS';
    }
    is($failed, 0, "$n partners, all served (MISS)");

    my $st = status_json($t);
    my $cap = $st->{cache}{entries};
    cmp_ok($cap, '<', $n, "the zone holds $cap of them");
    cmp_ok($cap, '>=', 3, 'and at least a few');
    is($st->{cache}{evictions}, $n - $cap, 'one eviction per entry beyond that');
    is($st->{cache}{size_bytes}, 32768, 'size_bytes: the zone size');
    cmp_ok($st->{cache}{used_bytes}, '<=', 32768, 'used_bytes within it');

    # cached now: the last $cap, oldest first
    my ($oldest, $next) = ($ids[$n - $cap], $ids[$n - $cap + 1]);
    is(cache_of($t, $ids[$n - 1]), 'HIT', 'the most recent one: HIT');
    is(cache_of($t, $oldest), 'HIT', "the oldest ($oldest), touched: HIT");
    is(cache_of($t, $ids[$n]), 'MISS', 'a new partner: MISS, evicting one');
    is(cache_of($t, $oldest), 'HIT', 'the touched one survived');
    is(cache_of($t, $next), 'MISS', "the least recently used ($next) was evicted");

    $t->stop_nginx;
    $t->check_error_log;
};

done_testing;
