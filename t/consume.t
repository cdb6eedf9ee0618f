#!/usr/bin/perl

# mpn_consume (spec section 12): an allowed request takes units of a
# benefit from the partner's allowance in Redis (FCALL mpn_consume), and
# past the allowance becomes upgrade/quota.  Two nginx instances on one
# Redis never hand out more than the allowance; an idempotency value
# consumes once; Redis down or stopped follows mpn_fail; a client that
# leaves mid-consumption leaves nothing behind; a consumption still
# waiting for its connection to open when its request gives up is never
# sent; a renewal starts a new allowance; a bad amount is 400.  On a Redis
# Cluster (three primaries, three replicas) the consumption goes to the
# primary of the usage key's slot, follows ASK and MOVED, is never sent
# twice, and a stopped primary is mpn_fail's.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use MpnTest;
use MpnRedis;
use MpnRecords;
use MpnCluster;
use MpnDns;

use constant DAY => 86400;

sub body { ($_[0] =~ /\r\n\r\n(.*)\z/s)[0] }

# the gate of the License keys and Azure credits pages
sub consume_conf {
    my (%o) = @_;
    my $redis = $o{redis} // '%%REDIS%%';
    my $http = $o{http} // '';
    my $extra = $o{extra} // '';
    return <<"EOF";
    mpn_redis $redis;
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        mpn_partner \$http_x_partner;
        add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;
        add_header X-Quota "\$mpn_quota_used/\$mpn_quota_left/\$mpn_quota_reset" always;
        location /keys/ {
            mpn on;
            mpn_consume windows_enterprise idempotency=\$http_idempotency_key;
            $extra
        }
        location /offers/ {
            mpn on;
            mpn_consume windows_enterprise;
            mpn_upgrade_url /offers.html?from=\$mpn_return_url;
        }
        location /credits/ {
            mpn on;
            mpn_consume azure_credits amount=100 per=month;
        }
        location /n/ {
            mpn on;
            mpn_consume windows_enterprise amount=\$arg_n;
        }
        location /open/ {
            mpn on;
            mpn_fail open;
            mpn_consume windows_enterprise;
        }
        location /idx/ {
            mpn on;
            mpn_consume windows_enterprise;
            index index.html;
        }
        location = /status { mpn_status; }
    }
EOF
}

sub setup {
    my ($t) = @_;
    $t->write_file("html/$_/x", "$_\n") for qw(keys offers credits n open idx);
    $t->write_file('html/idx/index.html', "index\n");
    $t->write_file('html/offers.html', "offers\n");
}

sub get { my ($t, $uri, $id, %h) = @_; $t->http_get($uri, 'X-Partner' => $id, %h) }

# $n requests for /keys/x as partner $id, spread over the gates given:
# every connection is opened and every request sent before any reply is
# read.  ({status => count}, {usage seen by an allowed one => count})
sub concurrent {
    my ($n, $id, @gates) = @_;
    my @c;
    for my $i (0 .. $n - 1) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $gates[$i % @gates]->port, Proto => 'tcp')
            or die "connect: $!";
        push @c, $s;
    }
    print $_ "GET /keys/x HTTP/1.0\r\nX-Partner: $id\r\n\r\n" for @c;
    my (%n, %used);
    for my $s (@c) {
        local $/;
        my $r = <$s>;
        $n{status($r)}++;
        $used{(header($r, 'X-Quota') // '') =~ m{^(\d+)/} ? $1 : '-'}++ if status($r) == 200;
    }
    return (\%n, \%used);
}

sub status_json { decode_json(body($_[0]->http_get('/status'))) }

# the record's Action Pack term: (start, end) in Unix seconds
sub term_of {
    my ($json) = @_;
    my $ap = decode_json($json)->{subscriptions}{action_pack};
    my ($s, $e) = map { parse_time($_) } @{$ap}{qw(start end)};
    return ($e - 365 * DAY == $s ? $s : undef, $e);
}

sub parse_time {
    my ($y, $mo, $d, $h, $mi, $s) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/
        or die "bad time $_[0]";
    require Time::Local;
    return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y);
}

# the term of a subscription is the year ending at its end
sub year_before {
    my ($t) = @_;
    my @g = gmtime($t);
    require Time::Local;
    return Time::Local::timegm(@g[0 .. 4], $g[5] + 1900 - 1);
}

sub usage_key {
    my ($id, $benefit, $start) = @_;
    return "mpn:usage:$id:$benefit:$start";
}

# Redis with the library and the records, then nginx with consume_conf(%o);
# $o{before}->($t) runs in between, and a sub given as redis or http makes
# that text from $t
sub start_gate {
    my (%o) = @_;
    my $t = MpnTest->new;
    setup($t);
    $t->start_redis;
    $t->{redis}->load_library;
    $t->{records} = seed_records($t);
    $o{before}->($t) if $o{before};
    ref $o{$_} eq 'CODE' and $o{$_} = $o{$_}->($t) for qw(redis http);
    $t->write_nginx_conf(consume_conf(%o), workers => $o{workers} || 1);
    $t->start_nginx;
    return $t;
}

subtest 'ten keys, then upgrade/quota; the usage key, its expiry, the variables' => sub {
    my $t = start_gate();
        my (undef, $end) = term_of($t->{records}{active});
    my $start = year_before($end);
    my $reset = rfc3339($end);

    for my $i (1 .. 10) {
        my $r = get($t, '/keys/x', 'active');
        is(status($r), 200, "key $i: 200") or diag $r;
        is(header($r, 'X-Quota'), "$i/" . (10 - $i) . "/$reset",
            "key $i: used $i, left " . (10 - $i) . ", reset at the term's end");
    }

    my $r = get($t, '/keys/x', 'active');
    is(status($r), 403, 'the eleventh: 403');
    is(header($r, 'X-Mpn'), 'upgrade/quota', 'upgrade/quota');
    is(header($r, 'X-Quota'), "10/0/$reset", 'the quota variables are set on the refusal');
    is(header($r, 'Cache-Control'), 'no-store', 'no-store');

    $r = get($t, '/offers/x', 'active');
    is(status($r), 302, 'with mpn_upgrade_url: a redirect');
    like(header($r, 'Location'), qr{/offers\.html\?from=%2Foffers%2Fx$}, 'to the offers page');

    $r = get($t, '/keys/x', 'active', Accept => 'application/json');
    is(status($r), 403, 'an API caller: 403');
    is(header($r, 'Content-Type'), 'application/json', 'JSON');
    is_deeply(decode_json(body($r)), { decision => 'upgrade', reason => 'quota' },
        'decision and reason');
    $r = get($t, '/offers/x', 'active', Accept => 'application/json');
    is(decode_json(body($r))->{location}, '/offers.html?from=%2Foffers%2Fx',
        'the offers page as location');

    my $key = usage_key('active', 'windows_enterprise', $start);
    is($t->redis('HGET', $key, 'used'), 10, "usage 10 in $key");
    my $exp = $t->redis('EXPIRETIME', $key);
    is($exp, $end + DAY, 'the key expires a day after the term');

    # another partner has an allowance of its own; a partner without the
    # benefit is refused before anything is consumed
    is(status(get($t, '/keys/x', 'expiring')), 200, 'another partner: its own allowance');
    $r = get($t, '/keys/x', 'network');
    is(header($r, 'X-Mpn'), 'upgrade/benefit', 'no benefit: upgrade/benefit (implied require)');
    is(header($r, 'X-Quota'), '//', 'and no quota variables');
    is(scalar @{ $t->redis('KEYS', 'mpn:usage:network:*') }, 0, 'nothing written for it');

    my $st = status_json($t);
    is_deeply($st->{consumptions}, {
        windows_enterprise => { ok => 11, quota => 4, repeat => 0, error => 0 },
        azure_credits => { ok => 0, quota => 0, repeat => 0, error => 0 } },
        'mpn_consumptions_total in JSON');
    is($st->{decisions}{upgrade}{quota}, 4, 'upgrade/quota counted as decisions');
    is($st->{redis}{errors}, 0, 'a QUOTA refusal is an answer, not a Redis error');
    is($st->{decisions}{deny}{bad_amount}, 0, 'deny/bad_amount shown with 0');

    my $prom = body($t->http_get('/status?format=prometheus'));
    like($prom, qr/^mpn_consumptions_total\{benefit="windows_enterprise",result="ok"\} 11$/m,
        'in Prometheus text');
    like($prom, qr/^mpn_consumptions_total\{benefit="azure_credits",result="error"\} 0$/m,
        'every result of every benefit, zeros included');
    like($prom, qr/^mpn_decisions_total\{decision="upgrade",reason="quota"\} 4$/m,
        'the decision');
    my ($rc, $out) = promtool_check($prom);
    SKIP: {
        skip 'promtool not installed', 1 unless defined $rc;
        is($rc, 0, 'promtool check metrics: clean') or diag $out;
    }

    $t->stop_nginx;
    like($t->error_log, qr/partner "active" refused: upgrade\/quota, benefit "windows_enterprise": 10 of 10 used/,
        'the refusal line says what was used up');
    $t->check_error_log;
};

subtest 'an internal redirect (index) consumes once' => sub {
    my $t = start_gate();
    my $r = get($t, '/idx/', 'active');
    is(status($r), 200, 'the index page');
    like(header($r, 'X-Quota'), qr{^1/9/}, 'one unit for one request');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'per=month: the calendar month, amount=100' => sub {
    my $t = start_gate();
    my @g = gmtime(time);
    require Time::Local;
    my $start = Time::Local::timegm(0, 0, 0, 1, $g[4], $g[5] + 1900);
    my $next = $g[4] == 11 ? Time::Local::timegm(0, 0, 0, 1, 0, $g[5] + 1901)
                           : Time::Local::timegm(0, 0, 0, 1, $g[4] + 1, $g[5] + 1900);

    my $r = get($t, '/credits/x', 'active');
    is(status($r), 200, "this month's credit");
    is(header($r, 'X-Quota'), '100/0/' . rfc3339($next), 'all 100 used, reset next month');
    $r = get($t, '/credits/x', 'active');
    is(header($r, 'X-Mpn'), 'upgrade/quota', 'a second activation this month: quota');
    is($t->redis('HGET', usage_key('active', 'azure_credits', $start), 'used'), 100,
        'the key is named after the first second of the month');
    is($t->redis('EXPIRETIME', usage_key('active', 'azure_credits', $start)), $next + DAY,
        'and expires a day after it');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a reload keeps the counts of the benefits it keeps' => sub {
    my $t = start_gate();
    is(status(get($t, '/keys/x', 'active')), 200, 'a key');
    is(status(get($t, '/credits/x', 'active')), 200, 'a credit');
    # /keys/ now consumes ems, named first, and azure_credits is gone:
    # windows_enterprise (named later now) must find its slot by name
    (my $conf = consume_conf()) =~ s/windows_enterprise idempotency/ems idempotency/;
    $conf =~ s/azure_credits amount=100 per=month/windows_enterprise/;
    $t->write_nginx_conf($conf);
    $t->reload_nginx;
    ok(poll(sub { exists status_json($t)->{consumptions}{ems} }, 5), 'the new configuration serves');
    is_deeply(status_json($t)->{consumptions}, {
        windows_enterprise => { ok => 1, quota => 0, repeat => 0, error => 0 },
        ems => { ok => 0, quota => 0, repeat => 0, error => 0 } },
        'windows_enterprise kept its count, azure_credits is gone, ems starts at 0');
    is(status(get($t, '/keys/x', 'active')), 200, 'an ems unit');
    is(status_json($t)->{consumptions}{ems}{ok}, 1, 'counted for ems');
    is(status_json($t)->{consumptions}{windows_enterprise}{ok}, 1, 'not for windows_enterprise');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'the same idempotency value twice: one unit, both allowed' => sub {
    my $t = start_gate();
    my $r1 = get($t, '/keys/x', 'active', 'Idempotency-Key' => 'order-17');
    my $r2 = get($t, '/keys/x', 'active', 'Idempotency-Key' => 'order-17');
    is(status($r1), 200, 'first: 200');
    is(status($r2), 200, 'the retry: 200');
    like(header($r1, 'X-Quota'), qr{^1/9/}, 'first: used 1');
    like(header($r2, 'X-Quota'), qr{^1/9/}, 'retry: still 1');
    my $r3 = get($t, '/keys/x', 'active', 'Idempotency-Key' => 'order-18');
    like(header($r3, 'X-Quota'), qr{^2/8/}, 'another value: a second unit');
    my $r4 = get($t, '/keys/x', 'active', 'Idempotency-Key' => '');
    like(header($r4, 'X-Quota'), qr{^3/7/}, 'an empty value is no token: a unit');
    my $long = 'k' x 300;
    get($t, '/keys/x', 'active', 'Idempotency-Key' => $long) for 1 .. 2;
        my (undef, $end) = term_of($t->{records}{active});
    my $key = usage_key('active', 'windows_enterprise', year_before($end));
    is($t->redis('HGET', $key, 'used'), 4, 'a 300-byte value twice: one unit');
    my %h = @{ $t->redis('HGETALL', $key) };
    ok(exists $h{'idem:order-17'}, 'the value recorded in the usage hash');
    ok((grep { /^idem:sha256:[0-9a-f]{64}$/ } keys %h) == 1, 'the long one as its SHA-256');
    is(status_json($t)->{consumptions}{windows_enterprise}{repeat}, 2, 'two repeats counted');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'bad amounts: 400 deny/bad_amount, nothing consumed; nginx -t' => sub {
    my $t = start_gate();
    for my $n ('0', 'abc', '1000001', '-1', '1.5', '', '2%20') {
        my $r = get($t, "/n/x?n=$n", 'active');
        is(status($r), 400, "amount \"$n\": 400");
        is(header($r, 'X-Mpn'), 'deny/bad_amount', 'deny/bad_amount');
    }
    my $r = get($t, '/n/x?n=3', 'active');
    is(status($r), 200, 'amount 3: 200');
    like(header($r, 'X-Quota'), qr{^3/7/}, 'three units');
    $r = get($t, '/n/x?n=8', 'active');
    is(header($r, 'X-Mpn'), 'upgrade/quota', '8 more than the 7 left: quota');
    like(header($r, 'X-Quota'), qr{^3/7/}, 'nothing taken');
    $r = get($t, '/n/x?n=abc', 'network');
    is(header($r, 'X-Mpn'), 'upgrade/benefit', 'a partner without the benefit: refused for it first');
    $t->stop_nginx;
    like($t->error_log, qr/refused: deny\/bad_amount, the amount of "windows_enterprise" to consume is no whole number from 1 to 1000000 \(3 bytes\)/,
        'the refusal line names the benefit and the size of the value');
    $t->check_error_log;

    for my $bad (['mpn_consume windows_enterprise amount=0;', qr/invalid "amount=0" in "mpn_consume": a whole number from 1 to 1000000/],
                 ['mpn_consume windows_enterprise amount=1000001;', qr/invalid "amount=1000001"/],
                 ['mpn_consume windows_enterprise per=week;', qr/invalid "per=week" in "mpn_consume", it must be "per=term" or "per=month"/],
                 ['mpn_consume windows_enterprise fast=1;', qr/invalid parameter "fast=1" in "mpn_consume"/],
                 ['mpn_consume windows_enterprise idempotency=;', qr/empty "idempotency=" in "mpn_consume"/],
                 ['mpn_consume "a:b";', qr/invalid benefit "a:b" in "mpn_consume"/],
                 ['mpn_consume ems; mpn_consume ems;', qr/"mpn_consume" directive is duplicate/])
    {
        my $c = MpnTest->new;
        $c->write_nginx_conf(<<"EOF");
    mpn_redis 127.0.0.1:1;
    server { listen 127.0.0.1:%%PORT%%; mpn_partner \$http_x_partner;
        location / { mpn on; $bad->[0] } }
EOF
        my ($rc, $out) = $c->nginx_test_conf;
        isnt($rc, 0, "nginx -t refuses: $bad->[0]");
        like($out, $bad->[1], 'naming the directive') or diag $out;
    }
};

subtest '200 concurrent requests, two nginx instances, one Redis, an allowance of 10' => sub {
    my $t1 = start_gate(workers => 2);
    my $t2 = MpnTest->new;
    setup($t2);
    $t2->{redis_port} = $t1->redis_port;
    $t2->write_nginx_conf(consume_conf(), workers => 2);
    $t2->start_nginx;

    my ($n, $used) = concurrent(200, 'active', $t1, $t2);
    my %n = %$n;
    my %used = %$used;
    is($n{200}, 10, 'exactly 10 allowed');
    is($n{403}, 190, '190 refused');
    is_deeply([sort { $a <=> $b } keys %used], [1 .. 10], 'each allowed one saw its own usage, 1 to 10');
        my (undef, $end) = term_of($t1->{records}{active});
    is($t1->redis('HGET', usage_key('active', 'windows_enterprise', year_before($end)), 'used'),
        10, 'usage 10 in Redis');
    my ($s1, $s2) = map { status_json($_) } $t1, $t2;
    my ($q1, $q2) = map { $_->{decisions}{upgrade}{quota} } $s1, $s2;
    is($q1 + $q2, 190, "190 upgrade/quota over both instances ($q1 + $q2)");
    my %c;
    for my $st ($s1, $s2) {
        $c{$_} += $st->{consumptions}{windows_enterprise}{$_} for qw(ok quota);
    }
    is_deeply(\%c, { ok => 10, quota => 190 },
        'mpn_consumptions_total summed over the workers of both: 10 ok, 190 quota');
    $t2->stop_nginx;
    $t1->stop_nginx;
    $t1->check_error_log;
    $t2->check_error_log;
};

subtest 'a renewal mid-term starts a new allowance (per=term), not per=month' => sub {
    my $t = start_gate();
    is(status(get($t, '/keys/x', 'active')), 200, 'a key') for 1 .. 10;
    is(header(get($t, '/keys/x', 'active'), 'X-Mpn'), 'upgrade/quota', 'the term is used up');
    is(status(get($t, '/credits/x', 'active')), 200, "this month's credit");

    my $r = $t->redis('FCALL', 'mpn_renew', 1, 'mpn:partner:active', 'action_pack', int(time));
    ok(!ref $r, "mpn_renew: rev $r");
    my (undef, $end) = term_of($t->redis('GET', 'mpn:partner:active'));

    $r = get($t, '/keys/x', 'active');
    is(status($r), 200, 'after the renewal: a key again');
    is(header($r, 'X-Quota'), '1/9/' . rfc3339($end), 'a new allowance, to the new end');
    ok($t->redis('EXISTS', usage_key('active', 'windows_enterprise', year_before($end))),
        'in the new term\'s key');
    is(header(get($t, '/credits/x', 'active'), 'X-Mpn'), 'upgrade/quota',
        'per=month: the renewal changes nothing this month');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'Redis gone: closed 503, open allows and logs; usage never from the cache' => sub {
    my $t = start_gate(http => 'mpn_cache zone=c:1m ttl=1h stale=1h;',
                       redis => '%%REDIS%% timeout=300ms');
    is(status(get($t, '/keys/x', 'active')), 200, 'a key with Redis up (the record is cached)');

    $t->stop_redis;
    my $r = get($t, '/keys/x', 'active');
    is(status($r), 503, 'Redis down, record cached: mpn_fail closed gives 503');
    is(header($r, 'X-Mpn'), 'error/redis_unavailable', 'error/redis_unavailable');
    like(header($r, 'X-Quota'), qr{^//\d{4}-}, 'reset known, usage not');
    $r = get($t, '/open/x', 'active');
    is(status($r), 200, 'mpn_fail open: allowed');
    is(header($r, 'X-Mpn'), 'allow/fail_open', 'allow/fail_open');
    my $st = status_json($t);
    is($st->{consumptions}{windows_enterprise}{error}, 2, 'two consumptions in error');
    is($st->{cache}{stale}, 2, 'the record came from the cache (STALE) both times');

    $t->start_redis;
    $t->{redis}->load_library;
    seed_records($t);
    ok(poll(sub { status(get($t, '/keys/x', 'active')) == 200 }, 5), 'Redis back: keys again');

    # stopped: the consumption waits its timeout (300 ms), then mpn_fail
    $t->signal_redis('STOP');
    my $t0 = time;
    $r = get($t, '/keys/x', 'active');
    my $took = time - $t0;
    is(status($r), 503, 'Redis stopped: 503');
    cmp_ok($took, '>=', 0.25, sprintf('after the timeout (%.2fs)', $took));
    $r = get($t, '/open/x', 'active');
    is(header($r, 'X-Mpn'), 'allow/fail_open', 'open: allowed');
    $t->signal_redis('CONT');
    ok(poll(sub { status(get($t, '/keys/x', 'active')) == 200 }, 5), 'Redis continues: keys again');

    $t->stop_nginx;
    like($t->error_log, qr/mpn: partner "active" allowed without consuming "windows_enterprise": redis unavailable \(mpn_fail open\)/,
        'open: the log line names the partner and the benefit');
    like($t->error_log, qr/partner "active" refused: error\/redis_unavailable, consuming "windows_enterprise"/,
        'closed: the refusal line says it was the consumption');
    $t->check_error_log;
};

subtest 'clients leaving while their consumption is in flight (Redis stopped)' => sub {
    my $t = start_gate(http => 'mpn_cache zone=c:1m ttl=1h;',
                       redis => '%%REDIS%% timeout=5s');
    is(status(get($t, '/keys/x', 'active')), 200, 'the record cached, one unit taken');

    my ($worker) = `pgrep -P $t->{pids}{nginx}` =~ /(\d+)/;
    my $fds_before = () = glob("/proc/$worker/fd/*");

    $t->signal_redis('STOP');
    my @c;
    for my $i (1 .. 5) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port,
            Proto => 'tcp') or die;
        print $s "GET /keys/x HTTP/1.1\r\nHost: x\r\nX-Partner: active\r\n\r\n";
        push @c, $s;
    }
    sleep 1;    # generous: each request reaches its consumption
    close $_ for @c;
    ok(poll(sub { status_json($t)->{aborted} == 5 }, 5),
        'the five are counted as aborted, not as decisions');
    $t->signal_redis('CONT');

    ok(poll(sub { status_json($t)->{consumptions}{windows_enterprise}{ok} == 6 }, 5),
        'the late answers are counted: Redis took the units');
        my (undef, $end) = term_of($t->{records}{active});
    is($t->redis('HGET', usage_key('active', 'windows_enterprise', year_before($end)), 'used'),
        6, 'usage 6: one served, five taken for clients that left');
    my $r = get($t, '/keys/x', 'active');
    like(header($r, 'X-Quota'), qr{^7/3/}, 'the next request goes on from there');
    ok(poll(sub { my $n = () = glob("/proc/$worker/fd/*"); $n <= $fds_before }, 5),
        'no file descriptor leaked');
    my ($worker_after) = `pgrep -P $t->{pids}{nginx}` =~ /(\d+)/;
    is($worker_after, $worker, 'the worker did not restart');
    my $aborted = () = $t->read_file('access.log') =~ m{"GET /keys/x HTTP/1.1" 499 }g;
    is($aborted, 5, 'each ended as 499 while it waited');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'the ACL lines of docs/deployment.md: the gate may consume, and only with the second' => sub {
    my $doc = MpnTest->new->read_file("$MpnRedis::ROOT/docs/deployment.md");
    my @lines = map { s/^ACL SETUSER default /ACL SETUSER mpn-gate /r }
        $doc =~ /^\s*(ACL SETUSER default .*)$/mg;
    is(scalar @lines, 2, 'two lines: the gate, and consuming');
    my $password = 'acl-consume-5e2a';
    s/>PASSWORD/>$password/ for @lines;

    for my $case ([1, 503, 'error/redis_unavailable'], [2, 200, 'allow/ok']) {
        my ($n, $code, $decision) = @$case;
        my $t = start_gate(redis => '%%REDIS%% user=mpn-gate password_file=%%DIR%%/pw',
            before => sub {
                my ($t) = @_;
                is($t->redis(split / /, $_), 'OK', 'ACL SETUSER applied')
                    for @lines[0 .. $n - 1];
                $t->write_file('pw', "$password\n");
            });
        my $r;
        poll(sub { $r = get($t, '/keys/x', 'active'); status($r) == $code }, 3);
        is(status($r), $code, "with $n line(s): $code");
        is(header($r, 'X-Mpn'), $decision, $decision);
        cmp_ok(status_json($t)->{redis}{errors}, '>=', 1,
               'NOPERM is a Redis error') if $n == 1;
        $t->stop_nginx;
        like($t->error_log, qr/consuming "windows_enterprise": unexpected reply from redis \(type 6\): NOPERM/,
            'the refusal is logged') if $n == 1;
        unlike($t->error_log, qr/\Q$password\E/, 'the password is never logged');
        $t->check_error_log;
    }
};

# FCALLs run by that Redis: "calls/rejected_calls/failed_calls"
sub fcall_stats {
    my ($info) = @_;
    my ($s) = ($info // '') =~ /^cmdstat_fcall:([^\r\n]*)/m;
    return join('/', map { (($s // '') =~ /\b$_=(\d+)/)[0] // 0 }
                         qw(calls rejected_calls failed_calls));
}

# The connection is lost (CLIENT KILL) and opened again while its name is
# being resolved (the DNS stub holds the answer 2.5 s), so a consumption
# asked for meanwhile waits in the worker, unsent.  Given up (its timeout:
# 1 s + connect_timeout 4 s) or abandoned by its client before the
# connection is ready, it must never be sent once it is.
subtest 'a consumption not sent yet when its request gives up is never sent' => sub {
    plan(skip_all => 'python3 not installed')
        unless -x '/usr/bin/python3' || `which python3` =~ /\S/;
    my $dns;
    my $t = start_gate(
        before => sub { $dns = MpnDns->start($_[0]->dir, localhost => '127.0.0.1') },
        http => sub { 'mpn_cache zone=c:1m ttl=1h; resolver 127.0.0.1:'
                      . $dns->port . ' ipv6=off;' },
        redis => sub { 'localhost:' . $_[0]->redis_port
                       . ' timeout=1s connect_timeout=4s' });
    is(used_left(get($t, '/keys/x', 'active')), '200 1/9',
       'a unit taken, the record cached');
    my (undef, $end) = term_of($t->{records}{active});
    my $key = usage_key('active', 'windows_enterprise', year_before($end));
    my $fcalls = fcall_stats($t->redis('INFO', 'commandstats'));

    # the connection lost and being opened again: the name resolving
    my $reopen = sub {
        sleep(1.1);         # past the second nginx's resolver keeps an answer
        $dns->delay(2.5);
        my $q = $dns->queries;
        cmp_ok($t->redis('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'),
               '>=', 1, 'the gate\'s connection closed by Redis');
        ok(poll(sub { $dns->queries > $q }, 5), 'the gate resolves the name again');
    };
    my $ready = sub {
        $dns->delay(0);
        ok(poll(sub { status_json($t)->{redis}{ready} }, 10), 'ready again');
    };

    # given up: Redis stopped as well, so the set-up (EXISTS marker) that
    # follows the resolution is answered only after both requests had
    # theirs
    $reopen->();
    $t->signal_redis('STOP');
    my @c = map {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $t->port, Proto => 'tcp') or die "connect: $!";
        print $s "GET $_ HTTP/1.0\r\nX-Partner: active\r\n\r\n";
        $s } '/keys/x', '/open/x';
    my @r = map { local $/; my $s = $_; scalar <$s> } @c;
    $t->signal_redis('CONT');
    is(status($r[0]) . ' ' . header($r[0], 'X-Mpn'), '503 error/redis_unavailable',
       'mpn_fail closed: 503 at the timeout');
    is(status($r[1]) . ' ' . header($r[1], 'X-Mpn'), '200 allow/fail_open',
       'mpn_fail open: allowed');
    $ready->();
    is(used_left(get($t, '/keys/x', 'active')), '200 2/8',
       'the next request takes unit 2: neither given-up consumption was sent');
    is(fcall_stats($t->redis('INFO', 'commandstats')),
       ($fcalls =~ s{^(\d+)}{$1 + 1}er), 'Redis ran one FCALL since, that one');
    my $st = status_json($t);
    is($st->{consumptions}{windows_enterprise}{error}, 2,
       'the two given up count as errors');
    cmp_ok($st->{redis}{timeouts}, '>=', 2, 'and as Redis timeouts');

    # abandoned: the client leaves while its consumption waits
    $reopen->();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port, Proto => 'tcp') or die "connect: $!";
    print $s "GET /keys/x HTTP/1.1\r\nHost: x\r\nX-Partner: active\r\n\r\n";
    sleep(1);       # generous: the request reaches its consumption
    close $s;
    ok(poll(sub { status_json($t)->{aborted} == 1 }, 5),
       'the client that left is counted as aborted');
    $ready->();
    is(used_left(get($t, '/keys/x', 'active')), '200 3/7',
       'the next request takes unit 3: the abandoned consumption was not sent');
    is($t->redis('HGET', $key, 'used'), 3, 'usage 3 in Redis');
    is(status_json($t)->{consumptions}{windows_enterprise}{error}, 3,
       'the abandoned one counts as an error, nothing taken');
    my $aborted = () = $t->read_file('access.log') =~ m{"GET /keys/x HTTP/1.1" 499 }g;
    is($aborted, 1, 'it ended as 499 while it waited');

    $t->stop_nginx;
    $t->check_error_log;
};

# --- Redis Cluster ---------------------------------------------------------

SKIP: {
skip 'redis-server not installed', 1 unless MpnRedis::redis_server_path();

# a node is failed after 6 s unanswered: a primary stopped here for a
# second or two stays the primary
my $c = MpnCluster->start(node_timeout => 6000);
my $seed = ($c->primaries)[0]->addr;

# A partner of its own for each subtest: a record with ten
# windows_enterprise, whose usage key is on another primary than the record
# (the consumption is routed by the usage key, not by the partner).
# (id, usage key); with $apart, not on the dataset marker's primary either
sub cluster_partner {
    my ($stem, $apart) = @_;
    for my $i (0 .. 999) {
        my $id = "$stem$i";
        my $json = record($id, sub => { end_days => 200 });
        my (undef, $end) = term_of($json);
        my $key = usage_key($id, 'windows_enterprise', year_before($end));
        my $port = $c->node_of($key)->port;
        next if $port == $c->node_of("mpn:partner:$id")->port
                || ($apart && $port == $c->node_of('mpn:meta')->port);
        $c->write_records({ $id => $json });
        return ($id, $key);
    }
    die "no partner id for $stem";
}

sub cluster_gate {
    my (%o) = @_;
    my $t = MpnTest->new;
    setup($t);
    $o{before}->($t) if $o{before};
    $t->write_nginx_conf(consume_conf(
        redis => "$seed cluster $o{redis}", http => $o{http}),
        workers => $o{workers} || 2);
    $t->start_nginx;
    # ready: a run of lookups (no record, nothing consumed) answered
    # not_member, long enough to have met every worker
    my $run = 0;
    ok(poll(sub {
            $run = (header(get($t, '/keys/x', 'nobody'), 'X-Mpn') // '')
                   eq 'upgrade/not_member' ? $run + 1 : 0;
            $run >= 8 }, 15), 'the gate has the slot map');
    return $t;
}

# "status used/left" of an answer
sub used_left {
    my ($r) = @_;
    return status($r) . ' '
        . ((header($r, 'X-Quota') // '') =~ m{^(\d*/\d*)/} ? $1 : '-');
}

# HGET used on that node, a replica too (READONLY)
sub used_on {
    my ($node, $key) = @_;
    return ($node->client->pipeline(['READONLY'],
                                    ['HGET', $key, 'used']))[1];
}

sub fcalls {
    my ($node) = @_;
    my $s = $c->info_field($node, 'cmdstat_fcall', 'INFO', 'commandstats')
        // '';
    return join('/', map { ($s =~ /\b$_=(\d+)/)[0] // 0 }
                         qw(calls rejected_calls failed_calls));
}

subtest 'Cluster: ten keys, then quota; the usage key on its slot\'s primary' => sub {
    my ($id, $key) = cluster_partner('ten');
    my $t = cluster_gate(redis => 'timeout=2s');

    for my $i (1 .. 10) {
        is(used_left(get($t, '/keys/x', $id)), "200 $i/" . (10 - $i),
           "key $i: 200, used $i");
    }
    my $r = get($t, '/keys/x', $id);
    is(status($r), 403, 'the eleventh: 403');
    is(header($r, 'X-Mpn'), 'upgrade/quota', 'upgrade/quota');
    like(header($r, 'X-Quota'), qr{^10/0/}, '10 used, none left');

    my $slot = MpnCluster::key_slot($key);
    my $node = $c->primary_of_slot($slot);
    is($c->cmd_on($node, 'CLUSTER', 'KEYSLOT', $key), $slot,
       "the usage key's slot ($slot) as Redis computes it");
    is(used_on($node, $key), 10,
       'usage 10 on the primary of that slot (' . $node->addr . '), read '
       . 'there without a redirect');
    isnt($node->port, $c->node_of("mpn:partner:$id")->port,
         'another primary than the record\'s');
    is_deeply(status_json($t)->{consumptions}{windows_enterprise},
              { ok => 10, quota => 1, repeat => 0, error => 0 },
              'mpn_consumptions_total: 10 ok, 1 quota');
    is(status_json($t)->{redis}{errors}, 0,
       'the QUOTA refusal is an answer, not a Redis error');
    $t->stop_nginx;
    unlike($t->error_log, qr/not routed/, 'no refusal');
    $t->check_error_log;
};

subtest 'Cluster: 50 concurrent requests from two nginx, an allowance of 10' => sub {
    my ($id, $key) = cluster_partner('many');
    my $t1 = cluster_gate(redis => 'timeout=5s');
    my $t2 = cluster_gate(redis => 'timeout=5s');
    my ($n, $used) = concurrent(50, $id, $t1, $t2);
    is($n->{200}, 10, 'exactly 10 allowed');
    is($n->{403}, 40, '40 refused');
    is_deeply([sort { $a <=> $b } keys %$used], [1 .. 10],
              'each allowed one saw its own usage, 1 to 10');
    is(used_on($c->node_of($key), $key), 10, 'usage 10 in the cluster');
    my %sum;
    for my $st (map { status_json($_) } $t1, $t2) {
        $sum{$_} += $st->{consumptions}{windows_enterprise}{$_}
            for qw(ok quota error);
    }
    is_deeply(\%sum, { ok => 10, quota => 40, error => 0 },
              'counted over both: 10 ok, 40 quota');
    $_->stop_nginx, $_->check_error_log for $t2, $t1;
};

subtest 'Cluster: the usage key\'s slot migrated: ASK, then MOVED, followed' => sub {
    my ($id, $key) = cluster_partner('moving');
    my $t = cluster_gate(redis => 'timeout=2s');
    like(header(get($t, '/keys/x', $id), 'X-Quota'), qr{^$_/}, "unit $_")
        for 1 .. 3;
    my $slot = MpnCluster::key_slot($key);
    my $from = $c->primary_of_slot($slot);
    my ($to) = grep { $_->port != $from->port } $c->primaries;
    my $before = status_json($t)->{redis}{redirects};

    # the key moved, the slot still being migrated: the old primary
    # answers ASK, the command did not run there
    my $m = $c->begin_migration($slot, $to);
    $c->migrate_keys($m);
    like($c->cmd_on($from, 'HGET', $key, 'used')->msg, qr/^ASK $slot /,
         'the old primary answers ASK for it');
    is(used_left(get($t, '/keys/x', $id)), '200 4/6',
       'during the migration: unit 4, taken on the new primary');
    is(status_json($t)->{redis}{redirects}{ask}, $before->{ask} + 1,
       'one ASK followed');

    # the slot given to the other primary: the gate's map says the old
    # one, which answers MOVED
    $c->finish_migration($m);
    is(used_left(get($t, '/keys/x', $id)), '200 5/5',
       'after the migration: unit 5');
    cmp_ok(status_json($t)->{redis}{redirects}{moved}, '>', $before->{moved},
           'MOVED followed');
    is($c->primary_of_slot($slot)->port, $to->port, 'the slot is on '
       . $to->addr);
    is(used_on($to, $key), 5, 'usage 5 there: nothing lost, nothing twice');
    like(header(get($t, '/keys/x', $id), 'X-Quota'), qr{^6/4/},
         'and on from there');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'Cluster: the usage key\'s primary stopped, or its connection lost' => sub {
    my ($id, $key) = cluster_partner('stopped');
    my $t = cluster_gate(redis => 'timeout=500ms', workers => 1);
    my $node = $c->node_of($key);
    is(status(get($t, '/keys/x', $id)), 200, 'a unit, the connection open');
    my $worker = (`pgrep -P $t->{pids}{nginx}` =~ /(\d+)/)[0];

    # a client that leaves while its consumption waits on the stopped
    # node, then one that waits for its answer: mpn_fail, after the timeout
    kill('STOP', $node->{pid});
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port, Proto => 'tcp') or die "connect: $!";
    print $s "GET /keys/x HTTP/1.0\r\nX-Partner: $id\r\n\r\n";
    sleep(0.2);
    close $s;
    my $t0 = time;
    my $r = get($t, '/keys/x', $id);
    my $took = time - $t0;
    my $r2 = get($t, '/open/x', $id);
    kill('CONT', $node->{pid});
    is(status($r) . ' ' . header($r, 'X-Mpn'), '503 error/redis_unavailable',
       'mpn_fail closed: 503');
    cmp_ok($took, '>=', 0.45, sprintf('it waited for the node, its timeout '
                                      . '(%.2f s)', $took));
    cmp_ok($took, '<', 5, 'and no longer');
    is(header($r2, 'X-Mpn'), 'allow/fail_open', 'mpn_fail open: allowed');

    # each consumption written once: the node runs what it had read when it
    # continues (the client's and the 503's at least), none twice
    my $used;
    poll(sub { ($used = used_on($node, $key) // 0) >= 3 }, 5);
    sleep(0.5);
    $used = used_on($node, $key);
    ok($used >= 3 && $used <= 4, "usage $used: the two sent before the "
       . 'timeout taken (1 + 2), the fail-open one at most once');
    my $st = status_json($t);
    is($st->{consumptions}{windows_enterprise}{error}, 3,
       'three consumptions in error: Redis never answered nginx');
    is($st->{aborted}, 1, 'the client that left is counted as aborted');
    is((`pgrep -P $t->{pids}{nginx}` =~ /(\d+)/)[0], $worker,
       'the worker did not restart');

    $t->stop_nginx;
    $t->check_error_log;

    # stopped again, a consumption waiting on it, and its replica takes
    # over meanwhile (CLUSTER FAILOVER FORCE): the connection given up at
    # the timeout, the consumption is not sent again to the new primary
    # (the old one may have run it)
    my $t2 = cluster_gate(redis => 'timeout=3s', workers => 1);
    is(status(get($t2, '/keys/x', $id)), 200, 'a unit through a second gate');
    my $slot = MpnCluster::key_slot($key);
    my ($replica) = $c->replicas_of_slot($slot);
    ok(poll(sub { (used_on($replica, $key) // 0) == $used + 1 }, 5),
       'replicated');
    my $st2 = status_json($t2)->{consumptions}{windows_enterprise};
    kill('STOP', $node->{pid});
    $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t2->port, Proto => 'tcp') or die "connect: $!";
    print $s "GET /keys/x HTTP/1.0\r\nX-Partner: $id\r\n\r\n";
    sleep(0.2);
    is($c->cmd_on($replica, 'CLUSTER', 'FAILOVER', 'FORCE'), 'OK',
       'CLUSTER FAILOVER FORCE on ' . $replica->addr);
    ok(poll(sub { ($c->info_field($replica, 'role') // '') eq 'master' },
            10), 'the replica is the primary');
    $r = do { local $/; <$s> };
    is(status($r) . ' ' . header($r, 'X-Mpn'), '503 error/redis_unavailable',
       'the waiting consumption: 503 at its timeout');
    sleep(1);       # what a retry would take: the map, the new primary
    is(used_on($replica, $key), $used + 1,
       'nothing taken on the new primary: not sent twice');
    my $now2 = status_json($t2)->{consumptions}{windows_enterprise};
    is_deeply([ $now2->{ok} - $st2->{ok}, $now2->{error} - $st2->{error} ],
              [ 0, 1 ], 'counted as an error, not as taken');
    kill('CONT', $node->{pid});
    ok($c->wait_ok(30), 'the old primary back, as a replica');
    like(header(get($t2, '/keys/x', $id), 'X-Quota'),
         qr{^${\ ($used + 2)}/}, 'the next unit on the new primary');
    $t2->stop_nginx;
    $t2->check_error_log;
};

subtest 'Cluster: read=replica, consumptions still on the primary' => sub {
    my ($id, $key) = cluster_partner('replica');
    my $t = cluster_gate(redis => 'read=replica timeout=2s');
    sleep(1.5);                 # READONLY taken, round trips measured
    my $slot = MpnCluster::key_slot($key);
    my $primary = $c->primary_of_slot($slot);
    my @replicas = $c->replicas_of_slot($slot);
    ok(@replicas >= 1, 'the slot has a replica');
    my %before = map { $_->port => fcalls($_) } $c->live;
    my $moved = status_json($t)->{redis}{redirects}{moved};
    is(status(get($t, '/keys/x', $id)), 200, "unit $_") for 1 .. 5;
    is(used_on($primary, $key), 5, 'usage 5 on the primary');
    is((split m{/}, fcalls($primary))[0] - (split m{/}, $before{ $primary->port })[0],
       5, 'five FCALLs run on the primary');
    is(fcalls($_), $before{ $_->port }, 'none reached replica ' . $_->addr)
        for @replicas;
    is(status_json($t)->{redis}{redirects}{moved}, $moved,
       'no MOVED: sent to the primary in the first place');
    $t->stop_nginx;
    $t->check_error_log;
};

# The gate's connection to the usage key's primary lost and opened again,
# its AUTH unanswered (the node paused, then stopped): a consumption asked
# for meanwhile waits in the worker, unsent, while the request waits only
# its timeout (the cluster is ready).  Given up at the timeout or abandoned
# by its client, it must never be sent once the node answers.
subtest 'Cluster: a consumption not sent yet when its request gives up is never sent' => sub {
    my ($id, $key) = cluster_partner('unsent', 1);
    my $node = $c->node_of($key);
    my $pw = 'unsent-7c41';
    for my $n ($c->live) {
        is($c->cmd_on($n, 'ACL', 'SETUSER', 'mpn-gate', 'on', ">$pw",
                      '~*', '&*', '+@all'), 'OK', 'ACL user on ' . $n->addr);
    }
    my $t = cluster_gate(redis => 'user=mpn-gate password_file=%%DIR%%/pw '
                                  . 'timeout=1s connect_timeout=3s',
                         http => 'mpn_cache zone=c:1m ttl=1h;', workers => 1,
                         before => sub { $_[0]->write_file('pw', "$pw\n") });
    is(used_left(get($t, '/keys/x', $id)), '200 1/9',
       'a unit taken, the record cached');
    my $fcalls = fcalls($node);

    # paused long enough to be stopped before the new connection's AUTH
    my @r = $node->client->pipeline(['CLIENT', 'KILL', 'USER', 'mpn-gate'],
                                    ['CLIENT', 'PAUSE', 1000, 'ALL']);
    ok($r[0] >= 1 && $r[1] eq 'OK', 'the gate\'s connection to '
       . $node->addr . ' closed (and its subscriber\'s, if there), the '
       . 'node paused');
    kill('STOP', $node->{pid});
    sleep(0.3);     # the connection opened again, AUTH sent
    my @s = map {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $t->port, Proto => 'tcp') or die "connect: $!";
        print $s "GET /keys/x HTTP/1.0\r\nX-Partner: $id\r\n\r\n";
        $s } 1 .. 2;
    sleep(0.5);
    close $s[1];
    my $r = do { local $/; my $s = $s[0]; <$s> };
    kill('CONT', $node->{pid});
    is(status($r) . ' ' . header($r, 'X-Mpn'), '503 error/redis_unavailable',
       'the one that waited: 503 at its timeout');
    my $next;
    ok(poll(sub { $next = get($t, '/keys/x', $id); status($next) == 200 }, 10),
       'the node answers again');
    is(used_left($next), '200 2/8',
       'the next request takes unit 2: neither waiting consumption was sent');
    is(used_on($node, $key), 2, 'usage 2 on the node');
    is(fcalls($node), ($fcalls =~ s{^(\d+)}{$1 + 1}er),
       'the node ran one FCALL since, that one');
    my $st = status_json($t);
    is($st->{aborted}, 1, 'the client that left is counted as aborted');
    is($st->{consumptions}{windows_enterprise}{error}, 2,
       'both count as errors, nothing taken');

    $t->stop_nginx;
    $t->check_error_log;
    $c->cmd_on($_, 'ACL', 'DELUSER', 'mpn-gate') for $c->live;
};

$c->stop;
}

done_testing;
