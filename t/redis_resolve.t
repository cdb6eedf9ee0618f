#!/usr/bin/perl

# A name that moves (spec section 11): with a resolver in the http block,
# mpn_redis's host name is resolved again at every reconnect, so a managed
# endpoint that fails over to another address is followed without a
# reload.  A DNS stub (MpnDns) answers from a file the test rewrites; two
# redis-servers listen on the same port of two loopback addresses
# (127.0.0.1 and 127.0.0.2), each with its own record for "active".

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MpnTest;
use MpnRecords;
use MpnCache;
use MpnDns;
use Time::HiRes qw(sleep);

my $LAPSED = record('active', sub => { status => 'expired', end_days => -1 });

plan(skip_all => 'python3 not installed')
    unless -x '/usr/bin/python3' || `which python3` =~ /\S/;

subtest 'the address changes between reconnects' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    my $port = $t->start_redis;
    seed_records($t);

    # the same port on another loopback address: the new primary
    my $other = MpnRedis->start(bind => '127.0.0.2', port => $port);
    $other->client->cmd('SET', 'mpn:partner:active', $LAPSED);

    my $dns = MpnDns->start($t->dir, localhost => '127.0.0.1');
    my $dport = $dns->port;

    $t->write_nginx_conf(cache_conf(addr => "localhost:$port",
        http => "resolver 127.0.0.1:$dport ipv6=off;"));
    $t->start_nginx;

    is((get_id($t, 'active'))[1], 'allow/ok', 'served by the first address');

    # fail over: the name moves, the old server goes
    $dns->set(localhost => '127.0.0.2');
    sleep 1.1;      # past the second nginx's resolver keeps an answer
    $t->stop_redis;

    ok(poll(sub { (get_id($t, 'active'))[1] eq 'renew/lapsed' }, 5),
        'after the loss, the new address (its own record) serves, no reload');
    like($t->error_log,
        qr/mpn: redis localhost:$port: now at 127\.0\.0\.2:$port \(was 127\.0\.0\.1:$port\)/,
        'the move is logged');

    # the resolver stops answering: the last address known is used
    $dns->set();
    sleep 1.1;
    $other->stop;
    is((get_id($t, 'active'))[0], 503, 'the new server stopped: 503');
    $other = MpnRedis->start(bind => '127.0.0.2', port => $port);
    $other->client->cmd('SET', 'mpn:partner:active', $LAPSED);
    ok(poll(sub { (get_id($t, 'active'))[1] eq 'renew/lapsed' }, 5),
        'back at the last address known while the name does not resolve');
    like($t->error_log,
        qr/\[error\].*mpn: redis localhost:$port: "localhost" could not be resolved .*trying the last address known/,
        'the failed resolution is logged');

    $t->stop_nginx;
    $other->stop;
    $t->check_error_log;
};

subtest 'no resolver: the configuration-time address stays' => sub {
    my $t = MpnTest->new;
    setup_html($t);
    my $port = $t->start_redis;
    seed_records($t);
    $t->write_nginx_conf(cache_conf(addr => "localhost:$port"));
    $t->start_nginx;
    is((get_id($t, 'active'))[1], 'allow/ok', 'served');
    $t->stop_redis;
    is((get_id($t, 'active'))[0], 503, 'stopped: 503');
    $t->start_redis;
    seed_records($t);
    ok(poll(sub { (get_id($t, 'active'))[1] eq 'allow/ok' }, 5), 'back');
    $t->stop_nginx;
    unlike($t->error_log, qr/now at|could not be resolved/, 'nothing was resolved again');
    $t->check_error_log;
};

done_testing;
