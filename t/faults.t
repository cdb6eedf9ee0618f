#!/usr/bin/perl

# Redis faults: down at start, killed and restarted, stopped (SIGSTOP),
# answering garbage, wrong password, clients leaving mid-lookup, fail open.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use MpnTest;
use MpnRecords;

sub gate_conf {
    my ($redis, $extra) = @_;
    $extra //= '';
    return <<"EOF";
    mpn_redis $redis;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        mpn_partner \$http_x_partner;
        add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;
        location /gated/ { mpn on; $extra }
        location /open/ { mpn on; mpn_fail open; }
        location /plain/ { }
    }
EOF
}

sub setup {
    my ($t) = @_;
    $t->write_file("html/$_/x", "$_\n") for qw(gated open plain);
}

subtest 'redis down at start: 503 within about connect_timeout' => sub {
    my $t = MpnTest->new;
    setup($t);
    my $dead = free_port();
    $t->write_nginx_conf(gate_conf("127.0.0.1:$dead connect_timeout=200ms timeout=100ms"));
    $t->start_nginx;
    my $t0 = time;
    my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
    my $took = time - $t0;
    is(status($r), 503, 'gated request: 503');
    is(header($r, 'X-Mpn'), 'error/redis_unavailable', 'error/redis_unavailable');
    is(header($r, 'Cache-Control'), 'no-store', '503 is no-store');
    cmp_ok($took, '<', 1.5, sprintf('answered in %.3fs, bounded by the timeouts', $took));
    $r = $t->http_get('/open/x', 'X-Partner' => 'active');
    is(status($r), 200, 'mpn_fail open: served');
    is(header($r, 'X-Mpn'), 'allow/fail_open', 'allow/fail_open');
    $t->stop_nginx;
    like($t->error_log, qr/\[error\].*mpn: redis 127\.0\.0\.1:\d+: connect failed/,
        'the outage is logged at error');
    my $n = () = $t->error_log =~ /connect failed/g;
    cmp_ok($n, '<=', 10, "connect failures are rate-limited in the log ($n lines)");
    $t->check_error_log;
};

subtest 'redis killed under traffic, then restarted: recovers without reload' => sub {
    my $t = MpnTest->new;
    setup($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(gate_conf('%%REDIS%%'));
    $t->start_nginx;
    is(status($t->http_get('/gated/x', 'X-Partner' => 'active')), 200, 'served while redis is up');

    $t->stop_redis;
    my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
    is(status($r), 503, 'redis gone: 503');

    $t->start_redis;
    seed_records($t);
    ok(poll(sub { status($t->http_get('/gated/x', 'X-Partner' => 'active')) == 200 }, 5),
        'redis back: served again, with no reload');
    $t->stop_nginx;
    like($t->error_log, qr/mpn: redis [^ ]+: reconnected/, 'the reconnect is logged');
    $t->check_error_log;
};

subtest 'redis stopped: 503 within timeout, ungated locations keep answering' => sub {
    my $t = MpnTest->new;
    setup($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(gate_conf('%%REDIS%% timeout=1500ms'));
    $t->start_nginx;
    is(status($t->http_get('/gated/x', 'X-Partner' => 'active')), 200, 'served before the stop');

    my $p = $t->redis_port;
    my $ss = `ss -tno state established '( dport = :$p )'`;
    like($ss, qr/keepalive/, 'the redis connection uses TCP keepalive, so a vanished peer is noticed');

    $t->signal_redis('STOP');

    # a gated request waits on the stopped server...
    my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
        or die;
    my $t0 = time;
    print $slow "GET /gated/x HTTP/1.0\r\nX-Partner: active\r\n\r\n";
    sleep 0.2;

    # ...while the same worker answers an ungated one at once
    my $t1 = time;
    my $r = $t->http_get('/plain/x');
    my $plain = time - $t1;
    is(status($r), 200, 'ungated location answers while redis is stopped');
    cmp_ok($plain, '<', 1.0, sprintf('ungated answer took %.3fs: the worker is not blocked', $plain));

    local $/;
    my $slow_reply = <$slow>;
    my $took = time - $t0;
    is(status($slow_reply), 503, 'gated request: 503');
    cmp_ok($took, '>=', 1.3, sprintf('the gated request waited its timeout (%.2fs)', $took));
    cmp_ok($took, '<', 3.0, 'and no longer');

    $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
    is(status($r), 503, 'still stopped: 503 again');

    $t->signal_redis('CONT');
    ok(poll(sub { status($t->http_get('/gated/x', 'X-Partner' => 'active')) == 200 }, 5),
        'redis continues: served again');
    $t->stop_nginx;
    like($t->error_log, qr/mpn: redis [^ ]+: no reply within 1500 ms/, 'the timeout is logged');
    $t->check_error_log;
};

subtest 'redis answers garbage: 503, logged, no crash' => sub {
    my $t = MpnTest->new;
    setup($t);
    my ($port, $pid) = $t->garbage_server;
    $t->write_nginx_conf(gate_conf("127.0.0.1:$port"));
    $t->start_nginx;
    for (1 .. 3) {
        my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
        is(status($r), 503, "garbage reply $_: 503");
    }
    is(status($t->http_get('/plain/x')), 200, 'nginx still serves');
    $t->stop_nginx;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    like($t->error_log, qr/mpn: redis [^ ]+: connection lost: Protocol error/i,
        'the protocol error is logged');
    $t->check_error_log;
};

subtest 'a slow redis that still answers keeps its connection' => sub {
    my $t = MpnTest->new;
    setup($t);

    # answers every GET with the partner's record, one reply each 100 ms,
    # the dataset marker check at once, and counts the connections it
    # accepts
    my $fake = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 64, ReuseAddr => 1) or die;
    my $port = $fake->sockport;
    my $accepted = $t->dir . '/accepted';
    my $pid = fork // die;
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        my $n = 0;
        while (my $c = $fake->accept) {
            $n++;
            open my $fh, '>', $accepted; print $fh $n; close $fh;
            my $buf = '';
            while (sysread($c, $buf, 65536, length $buf)) {
                while ($buf =~ s/^\*2\r\n\$(3\r\nGET|6\r\nEXISTS)\r\n\$\d+\r\n([^\r]*)\r\n//) {
                    my ($cmd, $key) = ($1, $2);
                    if ($cmd =~ /EXISTS/) {
                        syswrite($c, ":1\r\n") or last;
                        next;
                    }
                    sleep 0.1;
                    my $rec = record($key =~ s/^mpn:partner://r);
                    syswrite($c, '$' . length($rec) . "\r\n$rec\r\n") or last;
                }
            }
        }
        exit 0;
    }
    close $fake;

    $t->write_nginx_conf(gate_conf("127.0.0.1:$port timeout=400ms"));
    $t->start_nginx;

    # eight partners at once: one GET each, pipelined on one connection
    my @c = map {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port) or die;
        print $s "GET /gated/x HTTP/1.0\r\nX-Partner: slow$_\r\n\r\n";
        $s;
    } 1 .. 8;
    my @status = map { local $/; my $r = <$_>; status($r) } @c;
    is($status[0], 200, 'the first GET is answered after 100 ms: its record, 200');
    cmp_ok(scalar(grep { $_ == 503 } @status), '>=', 2,
        'GETs queued further behind run out of time: 503');
    sleep 0.5;
    is($t->read_file('accepted'), '1',
        'the connection was kept: the server was slow, not stalled');

    $t->stop_nginx;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    $t->check_error_log;
};

subtest 'wrong password and unreadable password_file' => sub {
    my $t = MpnTest->new;
    setup($t);
    $t->start_redis(password => 's3cret-right');
    $t->write_file('pw-wrong', "wrong-password-xyz\n");
    $t->write_file('pw-right', "s3cret-right\nsecond line ignored\n");
    seed_records($t);
    my $dir = $t->dir;

    $t->write_nginx_conf(gate_conf("%%REDIS%% password_file=$dir/pw-wrong"));
    $t->start_nginx;
    my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
    is(status($r), 503, 'wrong password: 503');
    $t->stop_nginx;
    like($t->error_log, qr/AUTH failed: (WRONGPASS|ERR invalid password)/, 'AUTH failure is logged');
    unlike($t->error_log, qr/wrong-password-xyz/, 'the password is never logged');
    $t->check_error_log;

    $t->write_nginx_conf(gate_conf("%%REDIS%% password_file=$dir/pw-right"));
    $t->start_nginx;
    is(status($t->http_get('/gated/x', 'X-Partner' => 'active')), 200,
        'right password (first line of the file): served');
    $t->stop_nginx;
    unlike($t->error_log, qr/s3cret-right/, 'the right password is never logged either');

    $t->write_nginx_conf(gate_conf("%%REDIS%% password_file=$dir/missing"));
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, 'missing password_file: nginx -t fails');
    like($out, qr/\[emerg\].*password_file ".*missing".*mpn_redis/, 'the message names the file and directive');

    # root reads a file whatever its mode; a directory cannot be read by anyone
    mkdir "$dir/pw-dir";
    $t->write_nginx_conf(gate_conf("%%REDIS%% password_file=$dir/pw-dir"));
    ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, 'unreadable password_file: nginx -t fails');
    like($out, qr/\[emerg\].*cannot read password_file/, 'the message says it cannot be read');
};

subtest '1,000 clients leave while their lookups are outstanding' => sub {
    my $t = MpnTest->new;
    setup($t);
    $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(gate_conf('%%REDIS%% timeout=10s'));
    $t->start_nginx;
    is(status($t->http_get('/gated/x', 'X-Partner' => 'active')), 200, 'served before');

    $t->abandoned_lookups(sub {
        status($t->http_get('/gated/x', 'X-Partner' => 'active')) == 200 });
    is(status($t->http_get('/plain/x')), 200, 'the worker still serves');
    $t->stop_nginx;
    $t->check_error_log;
};

done_testing;
