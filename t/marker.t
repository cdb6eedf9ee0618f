#!/usr/bin/perl

# The dataset marker and the setup of a Redis connection (spec section 11):
# a Redis that lost its data, or the wrong database, must never turn
# partners into strangers.  Lookups are served only once AUTH and SELECT
# succeeded and the marker key exists in the database selected, checked
# again every second; meanwhile every lookup is error/redis_unavailable
# (503, STALE from the cache, or mpn_fail open), one error line says why
# and how to fix it, and the mpn_redis_ready gauge is 0.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use JSON::PP;
use IO::Socket::INET;
use MpnTest;
use MpnRecords;

sub conf {
    my ($redis, %o) = @_;
    my $cache = $o{cache} ? "mpn_cache $o{cache};" : '';
    return <<"EOF";
    mpn_redis $redis;
    $cache
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        mpn_partner \$http_x_partner;
        add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;
        add_header X-Mpn-Cache \$mpn_cache_status always;
        location /gated/ { mpn on; }
        location /open/ { mpn on; mpn_fail open; }
        location = /status { mpn_status; }
    }
EOF
}

sub start {
    my ($redis, %o) = @_;
    my $t = MpnTest->new;
    $t->write_file("html/$_/x", "$_\n") for qw(gated open);
    $t->start_redis(marker => $o{marker} // 1);
    seed_records($t) unless $o{no_records};
    $t->write_nginx_conf(conf($redis, %o));
    return $t;
}

# "code decision/reason" of a gated request for partner $id
sub gate {
    my ($t, $id, $where) = @_;
    my $r = $t->http_get("/${\($where // 'gated')}/x", 'X-Partner' => $id);
    return status($r) . ' ' . (header($r, 'X-Mpn') // '');
}

sub ready {
    my ($t) = @_;
    my ($body) = $t->http_get('/status') =~ /\r\n\r\n(.*)\z/s;
    return decode_json($body)->{redis}{ready};
}

sub log_lines {
    my ($t, $re) = @_;
    my @l = grep { /$re/ } split /\n/, $t->error_log;
    return @l;
}

# A request sent while the connection is being set up: Redis is stopped
# while nginx connects (the kernel still accepts), so the worker's AUTH,
# SELECT and whatever it sends behind them wait in the socket; Redis then
# runs them in order.  Returns "code decision/reason".
sub during_setup {
    my ($t, $id) = @_;
    $t->signal_redis('STOP');
    $t->start_nginx;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
        or die "connect: $!";
    print $s "GET /gated/x HTTP/1.0\r\nX-Partner: $id\r\n\r\n";
    sleep 0.5;
    $t->signal_redis('CONT');
    local $/;
    my $r = <$s> // '';
    return status($r) . ' ' . (header($r, 'X-Mpn') // '');
}

subtest 'no marker: every lookup fails, one line says why, served once written' => sub {
    my $t = start('%%REDIS%%', marker => 0);
    $t->start_nginx;

    is(gate($t, 'active'), '503 error/redis_unavailable',
        'a paying partner: 503, not a decision from an unproven dataset');
    is(gate($t, 'notmember'), '503 error/redis_unavailable',
        'a partner without a record: 503, not upgrade/not_member');
    is(gate($t, 'nobody'), '503 error/redis_unavailable',
        'an id Redis has never heard of: 503 too');
    is(gate($t, 'active', 'open'), '200 allow/fail_open', 'mpn_fail open: allowed');
    is(ready($t), 0, 'mpn_redis_ready is 0');

    # several checks (one a second) and requests go by
    my $t0 = time;
    while (time - $t0 < 2.5) {
        gate($t, 'active');
        sleep 0.25;
    }
    my @lines = log_lines($t, qr/dataset marker/);
    is(scalar @lines, 1, 'one error line for the whole outage so far')
        or diag explain \@lines;
    my $port = $t->redis_port;
    like($lines[0] // '', qr/\[error\].*mpn: redis 127\.0\.0\.1:$port database 0: no dataset marker "mpn:meta"/,
        'it names the server, the database and the key');
    like($lines[0] // '', qr/write the marker with "mpnctl --redis 127\.0\.0\.1:$port --db 0 init"/,
        'and says how to write the marker');

    $t->redis('SET', 'mpn:meta', MpnRedis::marker_json());
    ok(poll(sub { gate($t, 'active') eq '200 allow/ok' }, 5),
        'the marker is written: served within the next check');
    is(gate($t, 'notmember'), '403 upgrade/not_member', 'and a stranger is a stranger again');
    is(ready($t), 1, 'mpn_redis_ready is 1');

    # the data is lost (a restart without persistence): the marker goes too
    $t->redis('FLUSHALL');
    ok(poll(sub { gate($t, 'active') eq '503 error/redis_unavailable' }, 5),
        'the dataset is gone: 503 again within the next check');
    is(ready($t), 0, 'mpn_redis_ready is 0 again');

    $t->stop_nginx;
    is(scalar(log_lines($t, qr/no dataset marker/)), 2, 'one line per outage');
    like($t->error_log, qr/\[notice\].*dataset marker "mpn:meta" found, lookups are served again/,
        'the recovery is logged');
    $t->check_error_log;
};

subtest 'data flushed under a live connection never reads as not_member' => sub {
    my $t = start('%%REDIS%%');
    $t->start_nginx;
    is(gate($t, 'active'), '200 allow/ok', 'served');
    is(gate($t, 'notmember'), '403 upgrade/not_member', 'a stranger is a stranger');

    # no reconnect, no new check yet: only the next check would notice
    is($t->redis('FLUSHALL'), 'OK', 'the data is flushed');
    my %seen;
    my $t0 = time;
    while (time - $t0 < 1.5) {
        $seen{ gate($t, 'active') }++;
        $seen{ gate($t, 'notmember') }++;
    }
    is_deeply([ keys %seen ], [ '503 error/redis_unavailable' ],
        'every answer is 503, from the first request on: a "no record" is used only once the marker is seen after it')
        or diag explain \%seen;

    $t->{redis}->write_marker;
    ok(poll(sub { gate($t, 'notmember') eq '403 upgrade/not_member' }, 5),
        'the marker back (and no records): missing records are missing again');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'marker=off, and marker=KEY' => sub {
    my $t = start('%%REDIS%% marker=off', marker => 0);
    $t->start_nginx;
    is(gate($t, 'active'), '200 allow/ok', 'marker=off: served without a marker');
    is(ready($t), 1, 'mpn_redis_ready is 1');
    $t->stop_nginx;

    $t->redis('SET', 'mpn:meta', MpnRedis::marker_json());
    $t->write_nginx_conf(conf('%%REDIS%% marker=billing:loaded'));
    $t->start_nginx;
    is(gate($t, 'active'), '503 error/redis_unavailable',
        'marker=billing:loaded: mpn:meta is not enough');
    $t->redis('SET', 'billing:loaded', '1');
    ok(poll(sub { gate($t, 'active') eq '200 allow/ok' }, 5),
        'served once billing:loaded exists');
    $t->stop_nginx;
    like($t->error_log, qr/no dataset marker "billing:loaded".*"mpnctl --redis \S+ --db 0 init --marker billing:loaded"/,
        'the line names that key, in the command too');

    $t->write_nginx_conf(conf('%%REDIS%% marker='));
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, 'an empty marker= fails nginx -t');
    like($out, qr/invalid parameter "marker=" in "mpn_redis"/, 'with a message naming it');
    $t->check_error_log;
};

subtest 'the marker must be in the database selected' => sub {
    my $t = start('%%REDIS%% db=2', no_records => 1);
    my $c = $t->{redis}->client;
    $c->cmd('SELECT', 2);
    my %recs = MpnRecords::standard_records();
    $c->cmd('SET', "mpn:partner:$_", $recs{$_}) for keys %recs;
    $t->start_nginx;

    is(gate($t, 'active'), '503 error/redis_unavailable',
        'records in db 2, the marker only in db 0: 503');
    $t->stop_nginx;
    like($t->error_log, qr/database 2: no dataset marker "mpn:meta"/,
        'the line names database 2');

    $t->{redis}->write_marker(undef, 2);
    $t->start_nginx;
    ok(poll(sub { gate($t, 'active') eq '200 allow/ok' }, 5),
        'the marker written in db 2: served');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'a failed SELECT reads nothing, from any database' => sub {
    # db 0 holds the records and the marker: a GET that ran after the failed
    # SELECT would find them there and allow
    my $t = start('%%REDIS%% db=99 timeout=3s');
    $t->redis('CONFIG', 'RESETSTAT');
    is(during_setup($t, 'active'), '503 error/redis_unavailable',
        'db=99 (out of range), a lookup queued behind the SELECT: 503');
    is(gate($t, 'notmember'), '503 error/redis_unavailable', 'and later ones');
    is(ready($t), 0, 'mpn_redis_ready is 0');
    my $stats = $t->redis('INFO', 'commandstats');
    unlike($stats, qr/cmdstat_(get|exists):/, 'no GET and no EXISTS ever ran');
    $t->stop_nginx;
    like($t->error_log, qr/\[error\].*SELECT 99 failed: ERR DB index is out of range/,
        'the failed SELECT is logged');
    $t->check_error_log;

    # an ACL user without SELECT
    $t->write_nginx_conf(conf('%%REDIS%% db=1 timeout=3s'));
    my $c = $t->{redis}->client;
    $c->cmd('SELECT', 1);
    my %recs = MpnRecords::standard_records();
    $c->cmd('SET', "mpn:partner:$_", $recs{$_}) for keys %recs;
    $t->{redis}->write_marker(undef, 1);
    is($t->redis('ACL', 'SETUSER', 'default', '-select'), 'OK', 'SELECT taken away');
    $t->redis('CONFIG', 'RESETSTAT');
    is(during_setup($t, 'active'), '503 error/redis_unavailable',
        'SELECT refused (NOPERM), a lookup queued behind it: 503');
    $stats = $t->redis('INFO', 'commandstats');
    unlike($stats, qr/cmdstat_(get|exists):/, 'nothing read from db 0 either');
    is($t->redis('ACL', 'SETUSER', 'default', '+select'), 'OK', 'SELECT given back');
    ok(poll(sub { gate($t, 'active') eq '200 allow/ok' }, 5),
        'the next connection is set up: served');
    $t->stop_nginx;
    like($t->error_log, qr/SELECT 1 failed: NOPERM/, 'the NOPERM is logged');
    $t->check_error_log;
};

subtest 'a failed AUTH: nothing is sent behind it' => sub {
    my $t = MpnTest->new;
    $t->write_file('html/gated/x', "gated\n");
    $t->start_redis(password => 'right-secret');
    seed_records($t);
    $t->write_file('pw', "wrong-secret\n");
    my $dir = $t->dir;
    $t->write_nginx_conf(conf("%%REDIS%% password_file=$dir/pw timeout=3s"));
    $t->redis('CONFIG', 'RESETSTAT');
    is(during_setup($t, 'active'), '503 error/redis_unavailable',
        'wrong password, a lookup queued behind AUTH: 503');
    my $stats = $t->redis('INFO', 'commandstats');
    unlike($stats, qr/cmdstat_(get|exists):/, 'no GET or EXISTS reached Redis, not even refused');
    $t->stop_nginx;
    like($t->error_log, qr/AUTH failed: (WRONGPASS|ERR invalid password).*nothing is read until it succeeds/,
        'the failed AUTH is logged');
    unlike($t->error_log, qr/wrong-secret/, 'without the password');
    $t->check_error_log;
};

subtest 'an error reply to the marker check leaves the connection unready' => sub {
    my $t = start('%%REDIS%%');
    is($t->redis('ACL', 'SETUSER', 'default', '-exists'), 'OK', 'EXISTS taken away');
    $t->start_nginx;
    is(gate($t, 'active'), '503 error/redis_unavailable', 'EXISTS refused (NOPERM): 503');
    is($t->redis('ACL', 'SETUSER', 'default', '+exists'), 'OK', 'EXISTS given back');
    ok(poll(sub { gate($t, 'active') eq '200 allow/ok' }, 5),
        'served after the next check');
    $t->stop_nginx;
    like($t->error_log,
        qr/\[error\].*database 0: the dataset marker check \(EXISTS "mpn:meta"\) failed: NOPERM/,
        'the refused check is logged');
    $t->check_error_log;
};

subtest 'with mpn_cache: STALE while the marker is missing' => sub {
    my $t = start('%%REDIS%%', cache => 'zone=c:1m ttl=1s stale=60s');
    $t->start_nginx;
    is(gate($t, 'active'), '200 allow/ok', 'active cached');
    $t->redis('DEL', 'mpn:meta');
    my $n = 0;
    ok(poll(sub { gate($t, 'new' . $n++) eq '503 error/redis_unavailable' }, 5),
        'the marker is gone: an uncached partner gets 503');
    sleep 1.1;
    my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
    is(status($r) . ' ' . header($r, 'X-Mpn') . ' ' . header($r, 'X-Mpn-Cache'),
        '200 allow/ok STALE', 'a cached partner past ttl: STALE');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'the ACL of docs/deployment.md is enough' => sub {
    my $t = start('%%REDIS%%', cache => 'zone=c:1m ttl=60s');
    my $dir = $t->dir;
    $t->write_file('pw', "gate-secret\n");
    $t->write_nginx_conf(conf("%%REDIS%% password_file=$dir/pw",
        cache => 'zone=c:1m ttl=60s'));

    # an administrator keeps every right; the gate's user gets the line
    my $admin = $t->{redis}->client;
    is($admin->cmd('ACL', 'SETUSER', 'admin', 'on', '>admin-secret', '~*', '&*', '+@all'),
        'OK', 'an admin user');
    is($admin->cmd('AUTH', 'admin', 'admin-secret'), 'OK', 'the test works as admin');
    my ($line) = $t->read_file("$MpnRedis::ROOT/docs/deployment.md") =~ /^\s*(ACL SETUSER default .*)$/m;
    ok($line, 'the ACL line of docs/deployment.md') or return;
    $line =~ s/>PASSWORD/>gate-secret/;
    is($admin->cmd(split ' ', $line), 'OK', 'applied to the default user');

    $t->start_nginx;
    is(gate($t, 'active'), '200 allow/ok', 'lookups are served');
    is(gate($t, 'notmember'), '403 upgrade/not_member', 'and a missing record is missing');
    ok(poll(sub { my $r = $admin->cmd('PUBSUB', 'NUMSUB', 'mpn:invalidate'); $r->[1] == 1 }, 5),
        'the worker subscribed');
    $admin->cmd('SET', 'mpn:partner:active',
        record('active', status => 'suspended', sub => { end_days => 100 }));
    $admin->cmd('PUBLISH', 'mpn:invalidate', 'active');
    ok(poll(sub { gate($t, 'active') eq '403 deny/suspended' }, 2), 'and hears invalidations');
    $t->stop_nginx;
    unlike($t->error_log, qr/NOPERM|failed/, 'no command was refused');
    $t->check_error_log;
};

done_testing;
