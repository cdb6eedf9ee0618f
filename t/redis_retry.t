#!/usr/bin/perl

# A lookup in flight on a lost connection is sent once more on the next
# connection while its timeout allows (spec section 11, "Failover"): a fake
# Redis closes its first connection on the first GET without answering, and
# answers on the next one.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use MpnTest;
use MpnRecords;
use MpnCache;

# connection 1 reads a GET and closes; every later one answers each GET
# with the record of an active partner
sub flaky_redis {
    my ($t) = @_;
    my $json = record('active', sub => { end_days => 200 });
    my $fake = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 64, ReuseAddr => 1) or die "listen: $!";
    my $port = $fake->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        my $n = 0;
        while (my $c = $fake->accept) {
            $n++;
            my $buf = '';
            while (sysread($c, $buf, 65536, length $buf)) {
                while ($buf =~ s/^\*2\r\n\$3\r\nGET\r\n\$\d+\r\n[^\r]*\r\n//) {
                    last if $n == 1;
                    syswrite($c, '$' . length($json) . "\r\n$json\r\n");
                }
                last if $n == 1;
            }
            close $c;
        }
        exit 0;
    }
    close $fake;
    return ($port, $pid);
}

subtest 'a GET lost with its connection is sent again on the next one' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    my ($port, $pid) = flaky_redis($t);
    $t->write_nginx_conf(cache_conf(addr => "127.0.0.1:$port",
        redis => 'marker=off timeout=2s'));
    $t->start_nginx;

    my @r = get_id($t, 'active');
    is("$r[0] $r[1]", '200 allow/ok',
        'the lookup whose connection was lost is answered on the next one');
    my $st = status_json($t);
    is($st->{redis}{retries}, 1, 'mpn_redis_retries_total counts it');
    is($st->{redis}{reconnects}, 1, 'one reconnect');

    $t->stop_nginx;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    like($t->error_log, qr/mpn: redis [^ ]+: connection lost: closed by the server/,
        'the loss is logged');
    $t->check_error_log;
};

subtest 'no second try once the timeout has run out' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    my ($port, $pid) = flaky_redis($t);
    # 30 ms: the first reconnect is 50 ms away
    $t->write_nginx_conf(cache_conf(addr => "127.0.0.1:$port",
        redis => 'marker=off timeout=30ms connect_timeout=10ms'));
    $t->start_nginx;
    sleep 1;
    my @r = get_id($t, 'active');
    is($r[0], 503, 'lost, and no time left: 503');
    is(status_json($t)->{redis}{retries}, 0, 'not sent again');
    $t->stop_nginx;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    $t->check_error_log;
};

done_testing;
