#!/usr/bin/perl

# make module NGINX_SRC=...: the module configured --with-compat on another
# nginx source tree loads into an nginx of the same version built
# --with-compat by someone else.  Debian's configure tree stands in for
# nginx.org's source here (same version as /usr/sbin/nginx, but configured
# with nothing of Debian's flags), so the test needs no download.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use MpnRedis;
use MpnTest;

my $ROOT = $MpnRedis::ROOT;
my $SRC = '/usr/share/nginx/src';

plan(skip_all => "no nginx source tree at $SRC (nginx-dev)")
    unless -x "$SRC/configure";

my $res = MpnRedis::run(['make', '-C', $ROOT, '--no-print-directory',
    'module', "NGINX_SRC=$SRC"]);
is($res->{rc}, 0, 'make module NGINX_SRC=/usr/share/nginx/src')
    or diag($res->{out}, $res->{err});

my $so = "$ROOT/build/compat-src/objs/ngx_http_mpn_module.so";
ok(-f $so, 'the .so is under build/compat-src/');
my $t = do { local $ENV{MPN_MODULE} = $so; MpnTest->new };
like($t->read_file("$ROOT/build/compat-src/objs/ngx_auto_config.h"),
    qr/^#define NGX_COMPAT\s+1$/m, 'configured --with-compat');
unlike($t->read_file("$ROOT/build/compat-src/objs/ngx_auto_config.h"),
    qr/NGX_THREADS|NGX_DEBUG\b/,
    'and without Debian\'s --with-threads and --with-debug');

$t->write_nginx_conf(<<'EOF');
    mpn_redis 127.0.0.1:1;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            mpn on;
            mpn_partner $http_x_partner;
        }
    }
EOF
my ($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'the system nginx loads it and takes the mpn directives')
    or diag($out);

done_testing;
