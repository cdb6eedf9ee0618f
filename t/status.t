#!/usr/bin/perl

# mpn_status (spec section 8): the JSON document parses and counts every
# gated request exactly once, summed over the workers; the Prometheus text
# passes a strict parser of the exposition format written here; Redis and
# cache counters move as they should; a reload keeps the zone and the
# counters; the counters exist without mpn_cache too.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use MpnTest;
use MpnRecords;
use MpnCache;

sub body { ($_[0] =~ /\r\n\r\n(.*)\z/s)[0] }

sub decisions_total {
    my ($st) = @_;
    my $n = 0;
    for my $d (values %{ $st->{decisions} }) {
        $n += $_ for values %$d;
    }
    return $n;
}

# A strict reader of the Prometheus text format (0.0.4): returns
# { family => { type, help, samples => { "name{labels}" => value } } }
# or dies naming the first offending line.
sub parse_prometheus {
    my ($text) = @_;
    my $name_re = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
    my $label_re = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
    my $value_re = qr/[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN/;
    my (%fam, %series, $current);

    die "does not end with a newline\n" unless $text =~ /\n\z/;
    my $n = 0;
    for my $line (split /\n/, $text) {
        $n++;
        die "line $n: empty line\n" if $line eq '';
        if ($line =~ /^# HELP ($name_re) (.+)$/) {
            die "line $n: second HELP for $1\n" if $fam{$1}{help};
            $fam{$1}{help} = $2;
            next;
        }
        if ($line =~ /^# TYPE ($name_re) (counter|gauge|histogram|summary|untyped)$/) {
            die "line $n: second TYPE for $1\n" if $fam{$1}{type};
            die "line $n: TYPE after samples of $1\n" if $fam{$1}{samples};
            $fam{$1}{type} = $2;
            $current = $1;
            next;
        }
        die "line $n: bad comment: $line\n" if $line =~ /^#/;

        $line =~ /^($name_re)(?:\{(.*)\})? ($value_re)$/
            or die "line $n: not a sample: $line\n";
        my ($name, $labels, $value) = ($1, $2 // '', $3);
        my %l;
        my $rest = $labels;
        while (length $rest) {
            $rest =~ s/^($label_re)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)//
                or die "line $n: bad labels: {$labels}\n";
            die "line $n: duplicate label $1\n" if exists $l{$1};
            $l{$1} = $2;
        }
        my $family = $name;
        if (!($fam{$family} && $fam{$family}{type})) {
            ($family = $name) =~ s/_(bucket|sum|count)$//;
        }
        die "line $n: sample $name without a TYPE\n"
            unless $fam{$family} && $fam{$family}{type};
        die "line $n: $name outside its family block\n"
            unless defined $current && $family eq $current;
        my $type = $fam{$family}{type};
        die "line $n: counter $name does not end in _total\n"
            if $type eq 'counter' && $name !~ /_total$/;
        if ($type eq 'histogram') {
            die "line $n: bad histogram sample $name\n"
                unless $name =~ /^\Q$family\E_(bucket|sum|count)$/;
            die "line $n: bucket without le\n" if $1 eq 'bucket' && !exists $l{le};
        }
        die "line $n: negative $type\n" if $type =~ /counter|histogram/ && $value < 0;
        my $key = $name . '{' . join(',', map { "$_=\"$l{$_}\"" } sort keys %l) . '}';
        die "line $n: duplicate series $key\n" if $series{$key}++;
        $fam{$family}{samples}{$key} = $value;
    }

    for my $f (keys %fam) {
        die "$f: HELP without TYPE\n" unless $fam{$f}{type};
        next unless $fam{$f}{type} eq 'histogram';
        my $s = $fam{$f}{samples};
        my @b = sort { $a->[0] <=> $b->[0] }
            map { /le="([^"]+)"/; [$1 eq '+Inf' ? 9**9**9 : $1, $s->{$_}] }
            grep { /_bucket\{/ } keys %$s;
        die "$f: no +Inf bucket\n" unless @b && $b[-1][0] == 9**9**9;
        for my $i (1 .. $#b) {
            die "$f: buckets not cumulative\n" if $b[$i][1] < $b[$i - 1][1];
        }
        die "$f: +Inf bucket != _count\n" unless $b[-1][1] == $s->{"${f}_count{}"};
        die "$f: no _sum\n" unless defined $s->{"${f}_sum{}"};
    }
    return \%fam;
}

subtest 'the strict parser rejects what it should' => sub {
    my $good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n";
    ok(eval { parse_prometheus($good) }, 'a good document passes') or diag $@;
    for my $bad ("a_total 1\n",
                 "# TYPE a counter\na 1\n",
                 "# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n",
                 "# TYPE a_total counter\na_total one\n",
                 "# TYPE a_total counter\na_total 1",
                 "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n") {
        ok(!eval { parse_prometheus($bad) }, 'rejected: ' . (split /\n/, $bad)[-1]);
    }
};

subtest 'JSON and Prometheus, two workers, counted once each' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(cache_conf(cache => 'zone=c:1m ttl=60s',
        listen => 'reuseport'), workers => 2);
    $t->start_nginx;

    my $r = $t->http_get('/status');
    is(status($r), 200, 'status: 200');
    like($r, qr{^Content-Type: application/json}mi, 'JSON by default');
    my $st0 = decode_json(body($r));
    is(decisions_total($st0), 0, 'no decision yet');
    is($st0->{decisions}{allow}{ok}, 0, 'possible outcomes shown with 0');

    my %want = (active => 'allow/ok', lapsed => 'renew/lapsed',
        network => 'upgrade/tier', suspended => 'deny/suspended',
        nobody => 'upgrade/not_member', 'bad id!' => 'signin/bad_identity');
    my (%got, %pid);
    my $n = 0;
    for my $round (1 .. 5) {
        for my $id (sort keys %want) {
            my $r = $t->http_get('/gated/x', 'X-Partner' => $id);
            $got{ header($r, 'X-Mpn') }++;
            $pid{ header($r, 'X-Pid') }++;
            $n++;
        }
    }
    $t->http_get('/gated/x');
    $n++;
    is(scalar keys %pid, 2, 'both workers answered');

    my $st = status_json($t);
    is(decisions_total($st), $n, "$n gated requests, $n decisions counted");
    for my $id (sort keys %want) {
        my ($d, $reason) = split m{/}, $want{$id};
        is($st->{decisions}{$d}{$reason}, 5, "$d/$reason: 5");
    }
    is($st->{decisions}{signin}{no_identity}, 1, 'signin/no_identity: 1');
    is($st->{cache}{misses}, 5, 'cache misses: one per partner with an id');
    is($st->{cache}{hits}, 20, 'cache hits: the other rounds');
    is($st->{cache}{entries}, 5, 'entries: 5 (a missing record too)');
    cmp_ok($st->{cache}{used_bytes}, '>', 0, 'used_bytes > 0');
    is($st->{cache}{size_bytes}, 1048576, 'size_bytes: 1m');
    is($st->{aborted}, 0, 'no client left before its decision');
    is($st->{redis}{requests}, 5, 'redis requests: one GET per miss');
    is($st->{redis}{latency_seconds}{count}, 5, 'latency observed per reply');
    is($st->{redis}{latency_seconds}{buckets}{'+Inf'}, 5, '+Inf bucket = count');
    is($st->{redis}{errors} + $st->{redis}{timeouts} + $st->{redis}{reconnects}, 0,
        'no error, timeout or reconnect');

    $r = $t->http_get('/status?format=prometheus');
    is(status($r), 200, 'prometheus: 200');
    like($r, qr{^Content-Type: text/plain; version=0\.0\.4}mi, 'text format 0.0.4');
    my $p = eval { parse_prometheus(body($r)) };
    ok($p, 'passes the strict parser') or diag $@;
    my %types = (mpn_decisions_total => 'counter', mpn_cache_hits_total => 'counter',
        mpn_cache_misses_total => 'counter', mpn_cache_expired_total => 'counter',
        mpn_cache_stale_total => 'counter', mpn_cache_evictions_total => 'counter',
        mpn_cache_entries => 'gauge', mpn_cache_used_bytes => 'gauge',
        mpn_cache_size_bytes => 'gauge', mpn_redis_requests_total => 'counter',
        mpn_redis_errors_total => 'counter', mpn_redis_timeouts_total => 'counter',
        mpn_redis_reconnects_total => 'counter', mpn_redis_retries_total => 'counter',
        mpn_redis_failovers_total => 'counter', mpn_redis_redirects_total => 'counter',
        mpn_redis_latency_seconds => 'histogram', mpn_invalidations_total => 'counter',
        mpn_token_cache_hits_total => 'counter', mpn_token_cache_misses_total => 'counter',
        mpn_aborted_total => 'counter',
        mpn_redis_ready => 'gauge',
        mpn_token_keys_fetches_total => 'counter', mpn_token_keys => 'gauge');
    is_deeply({ map { $_ => $p->{$_}{type} } keys %$p }, \%types,
        'exactly the metrics of section 8, with their types');
    ok((grep { $p->{$_}{help} } keys %$p) == keys %types, 'each with a HELP');
    is($p->{mpn_decisions_total}{samples}{'mpn_decisions_total{decision="renew",reason="lapsed"}'},
        5, 'a decision series in Prometheus');
    is($p->{mpn_cache_hits_total}{samples}{'mpn_cache_hits_total{}'}, 20,
        'the same numbers as the JSON');

    SKIP: {
        my ($rc, $out) = promtool_check(body($r));
        skip 'promtool not installed (Debian package prometheus)', 2
            unless defined $rc;
        is($rc, 0, 'promtool check metrics passes');
        is($out, '', 'promtool has no complaint') or diag $out;
    }

    is(status($t->http_get('/status?format=xml')), 400, 'an unknown format: 400');

    # a reload keeps the zone (HITs) and the counters
    $t->reload_nginx;
    ok(poll(sub { my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
                  !$pid{ header($r, 'X-Pid') } }, 5), 'new workers answer');
    is(cache_of($t, 'lapsed'), 'HIT', 'after reload: the cached entries are kept');
    my $st2 = status_json($t);
    cmp_ok(decisions_total($st2), '>=', $n + 2, 'after reload: the counters go on');
    is($st2->{decisions}{renew}{lapsed}, 6, 'renew/lapsed: 5 before, 1 after');
    is($st2->{redis}{requests}, 5, 'and no new GET was needed');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'without mpn_cache: redis counters, timeouts, errors, reconnects' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(cache_conf(redis => 'timeout=100ms'));
    $t->start_nginx;

    is(cache_of($t, 'active'), 'BYPASS', 'no cache: BYPASS');
    is(cache_of($t, 'active'), 'BYPASS', 'every time');
    my $st = status_json($t);
    is($st->{redis}{requests}, 2, 'a GET per request');
    is($st->{cache}{hits} + $st->{cache}{misses} + $st->{cache}{entries}, 0,
        'cache counters stay at 0');
    is($st->{cache}{size_bytes}, 0, 'no zone: size_bytes 0');

    $t->signal_redis('STOP');
    is((get_id($t, 'active'))[0], 503, 'redis stopped: 503');
    $t->signal_redis('CONT');
    ok(poll(sub { (get_id($t, 'active'))[0] == 200 }, 3), 'back');
    $st = status_json($t);
    is($st->{redis}{timeouts}, 1, 'the timeout is counted');
    cmp_ok($st->{redis}{errors}, '>=', 1, 'the stalled GET dropped: an error');
    is($st->{redis}{reconnects}, 1, 'the reconnect is counted');
    cmp_ok($st->{decisions}{error}{redis_unavailable}, '>=', 1,
        'error/redis_unavailable counted');
    is(decisions_total($st), 3 + $st->{decisions}{error}{redis_unavailable},
        'one decision per gated request');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a client that leaves before the decision is aborted, not decided' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(cache_conf(redis => 'timeout=5s'));
    $t->start_nginx;

    is((get_id($t, 'active'))[0], 200, 'a first request is decided');
    $t->signal_redis('STOP');

    # the GET waits on a stopped server; the client gives up first
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
        or die "connect: $!";
    print $s "GET /gated/x HTTP/1.0\r\nHost: localhost\r\nX-Partner: lapsed\r\n\r\n";
    sleep 0.5;
    close $s;

    ok(poll(sub { status_json($t)->{aborted} == 1 }, 5), 'mpn_aborted_total: 1');
    my $st = status_json($t);
    is(decisions_total($st), 1, 'and only the first request is a decision');
    my $p = parse_prometheus(body($t->http_get('/status?format=prometheus')));
    is($p->{mpn_aborted_total}{samples}{'mpn_aborted_total{}'}, 1, 'in Prometheus too');

    $t->signal_redis('CONT');
    ok(poll(sub { (get_id($t, 'lapsed'))[0] == 403 }, 5), 'redis back: decided again');
    is(status_json($t)->{aborted}, 1, 'a decided request is not aborted');

    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'mpn_status without any other mpn directive' => sub {
    my $t = MpnTest->new;
    $t->write_nginx_conf(<<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /status { mpn_status; }
    }
EOF
    $t->start_nginx;
    my $r = $t->http_get('/status');
    is(status($r), 200, 'the status location answers');
    my $st = decode_json(body($r));
    is(decisions_total($st), 0, 'all zero');
    ok(eval { parse_prometheus(body($t->http_get('/status?format=prometheus'))) },
        'prometheus parses') or diag $@;
    $t->stop_nginx;
    $t->check_error_log;
};

done_testing;
