#!/usr/bin/perl

# docs/example.conf, as shipped, works: each kind of partner lands where the
# documentation says.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MpnTest;
use MpnRecords;

my $ROOT = $ENV{MPN_ROOT} || "$FindBin::Bin/..";

my $t = MpnTest->new;
$t->start_redis;
seed_records($t);

$t->write_file("html/$_/index.html", "$_\n")
    for qw(benefits benefits/tools benefits/licenses benefits/azure benefits/cloud);

my $conf = $t->read_file("$ROOT/docs/example.conf");
my $redis = $t->redis_port;
my $dir = $t->dir;
ok($conf =~ s/127\.0\.0\.1:6379/127.0.0.1:$redis/, 'the example names a redis address');
ok($conf =~ s/listen 8080;/listen 127.0.0.1:%%PORT%%;/, 'the example listens on 8080');
ok($conf =~ s{root /var/www/partner;}{root $dir/html;}, 'the example has a document root');
$t->write_nginx_conf($conf);
$t->start_nginx;

sub get { $t->http_get($_[0], defined $_[1] ? ('X-Partner-Id' => $_[1]) : ()) }

my $r = get('/benefits/tools/');
like(header($r, 'Location'), qr{/signin\?return=%2Fbenefits%2Ftools%2F$}, 'stranger: sign-in');
is(status(get('/benefits/tools/', 'active')), 200, 'active Action Pack: developer tools');
$r = get('/benefits/azure/', 'active');
is(header($r, 'X-Azure-Credits'), '100', 'azure credits shown');
$r = get('/benefits/tools/', 'lapsed');
like(header($r, 'Location'), qr{/renew\?return=%2Fbenefits%2Ftools%2F$}, 'lapsed: renew');
$r = get('/benefits/tools/', 'ingrace');
is(header($r, 'X-Mpn-Decision'), 'allow/grace', 'three days past end with 7d grace: allowed in grace');
$r = get('/benefits/licenses/', 'network');
like(header($r, 'Location'), qr{/offers\?}, 'network-only: offers');
is(status(get('/benefits/', 'network')), 200, 'network-only: the benefits index');
is(status(get('/benefits/cloud/', 'gold')), 200, 'gold competency: cloud page');
is(status(get('/benefits/', 'suspended')), 403, 'suspended: 403');
$r = $t->http_get('/mpn-status');
like($r, qr/"decisions":\{"allow":\{"ok":\d+/, 'the status page answers from loopback');

$t->stop_nginx;
like($t->error_log, qr/\[error\].*mpn: partner "lapsed" refused: renew\/lapsed, missing tier "action_pack"/,
    'refusals are logged at error, as the example sets');
$t->check_error_log;

done_testing;
