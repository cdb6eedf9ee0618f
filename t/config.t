#!/usr/bin/perl

# nginx -t: every configuration error of spec section 3 fails with an emerg
# line that names the directive and the bad value; good ones pass.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MpnTest;

my $t = MpnTest->new;

sub check {
    my ($http, $re, $name) = @_;
    $t->write_nginx_conf($http);
    my ($rc, $out) = $t->nginx_test_conf;
    if (defined $re) {
        isnt($rc, 0, "$name: nginx -t fails");
        like($out, $re, "$name: the emerg line names the directive and value");
    } else {
        is($rc, 0, "$name: nginx -t passes") or diag $out;
    }
}

my $srv = sub { "mpn_redis 127.0.0.1:6379;\nserver { listen 127.0.0.1:%%PORT%%; $_[0] }" };

check($srv->('mpn on; mpn_partner $http_x_partner; location /a { mpn_require_tier gold; '
    . 'mpn_require_benefit vsts ems; mpn_require_competency cloud_platform; '
    . 'mpn_signin_url /s?r=$mpn_return_url; mpn_upgrade_url /o; mpn_renew_url /r; '
    . 'mpn_grace 7d; mpn_remind 14d; mpn_fail open; }'), undef, 'a full configuration');
check("mpn_redis unix:/tmp/redis.sock db=2 connect_timeout=1s timeout=250ms;\n"
    . 'server { listen 127.0.0.1:%%PORT%%; mpn on; mpn_partner $http_x; }',
    undef, 'a unix socket with options');
check("mpn_redis localhost:6379;\nmpn_key_prefix app:p:;\n"
    . 'server { listen 127.0.0.1:%%PORT%%; mpn on; mpn_partner $http_x; }',
    undef, 'a host name resolved at configuration time');

check($srv->('mpn on; mpn_partner $http_x; mpn_require_tier platinum;'),
    qr/\[emerg\].*unknown tier "platinum" in "mpn_require_tier"/, 'unknown tier');
check($srv->('mpn on; mpn_partner $http_x; mpn_require_competency cloud_platform bronze;'),
    qr/\[emerg\].*unknown level "bronze" in "mpn_require_competency"/, 'unknown level');
check("mpn_redis 127.0.0.1;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*invalid address "127\.0\.0\.1" in "mpn_redis"/, 'address without a port');
check("mpn_redis 127.0.0.1:99999;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*invalid address "127\.0\.0\.1:99999" in "mpn_redis"/, 'port out of range');
check("mpn_redis unix:relative.sock;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*invalid address "unix:relative\.sock" in "mpn_redis"/, 'relative unix path');
check("mpn_redis 127.0.0.1:6379 timeout=soon;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*invalid parameter "timeout=soon" in "mpn_redis"/, 'malformed timeout');
check("mpn_redis 127.0.0.1:6379 db=x;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*invalid parameter "db=x" in "mpn_redis"/, 'malformed db');
check($srv->('mpn on;'),
    qr/\[emerg\].*"mpn" is on but neither "mpn_partner" nor "mpn_token" is set/,
    'mpn on without an identity source');
check('server { listen 127.0.0.1:%%PORT%%; mpn on; mpn_partner $http_x; }',
    qr/\[emerg\].*"mpn" is on but "mpn_redis" is not set/, 'mpn on without mpn_redis');
check($srv->('location /x { mpn_redis 127.0.0.1:1; }'),
    qr/\[emerg\].*"mpn_redis" directive is not allowed here/, 'mpn_redis outside http');
check($srv->('mpn_fail maybe;'),
    qr/\[emerg\].*invalid value "maybe"/, "mpn_fail value (nginx's own enum message)");
check($srv->('mpn_grace forever;'),
    qr/\[emerg\].*"mpn_grace" directive invalid value/, 'mpn_grace value');

# the cache, the channel and the status page
check("mpn_redis 127.0.0.1:6379;\nmpn_cache zone=p:10m ttl=1m negative_ttl=10s stale=5m;\n"
    . "mpn_invalidate_channel billing:changes;\n"
    . 'server { listen 127.0.0.1:%%PORT%%; location = /s { mpn_status; } }',
    undef, 'cache, channel and status');
check("mpn_redis 127.0.0.1:6379;\nmpn_cache zone=p:lots;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*invalid zone size "zone=p:lots" in "mpn_cache"/, 'malformed cache size');
check("mpn_redis 127.0.0.1:6379;\nmpn_cache zone=p;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*invalid zone "zone=p" in "mpn_cache"/, 'cache zone without a size');
check("mpn_redis 127.0.0.1:6379;\nmpn_cache zone=p:10m ttl=never;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*"ttl=never".*"mpn_cache"|"mpn_cache".*"ttl=never"/, 'malformed cache ttl');
check("mpn_cache zone=p:10m;\nserver { listen 127.0.0.1:%%PORT%%; }",
    qr/\[emerg\].*"mpn_cache" is set but "mpn_redis" is not/, 'cache without redis');

# checks made after the http block was read still name the directive's
# own line (and file), not the end of nginx.conf
sub line_of {
    my ($file, $re) = @_;
    my @lines = split /\n/, $t->read_file($file);
    for my $i (0 .. $#lines) {
        return $i + 1 if $lines[$i] =~ $re;
    }
    die "no line matches $re in $file";
}

sub check_at {
    my ($http, $re, $file, $line_re, $name) = @_;
    $t->write_nginx_conf($http);
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, "$name: nginx -t fails");
    my $line = line_of($file, $line_re);
    like($out, qr/\[emerg\].*$re in \S*\Q$file\E:$line\n/,
        "$name: the message names $file:$line") or diag $out;
}

check_at("mpn_redis 127.0.0.1:6379;\nserver {\n    listen 127.0.0.1:%%PORT%%;\n"
    . "    location /a {\n        mpn on;\n    }\n    location /b { }\n}\n",
    qr/"mpn" is on but neither "mpn_partner" nor "mpn_token" is set/,
    'nginx.conf', qr/^\s+mpn on;/, 'mpn on without an identity source');
check_at("server {\n    listen 127.0.0.1:%%PORT%%;\n    mpn_partner \$http_x;\n"
    . "    mpn on;\n    location /a { }\n}\n",
    qr/"mpn" is on but "mpn_redis" is not set/,
    'nginx.conf', qr/^\s+mpn on;/, 'mpn on without mpn_redis');
check_at("\nmpn_cache zone=p:1m;\n\nserver { listen 127.0.0.1:%%PORT%%; }\n",
    qr/"mpn_cache" is set but "mpn_redis" is not/,
    'nginx.conf', qr/^mpn_cache /, 'mpn_cache without mpn_redis');

# in an included file, that file and its line
$t->write_file('gated.conf', "# gated locations\nlocation /inc {\n    mpn on;\n}\n");
check_at("mpn_redis 127.0.0.1:6379;\nserver {\n    listen 127.0.0.1:%%PORT%%;\n"
    . "    include %%DIR%%/gated.conf;\n}\n",
    qr/"mpn" is on but neither "mpn_partner" nor "mpn_token" is set/,
    'gated.conf', qr/^\s+mpn on;/, 'mpn on in an included file');

done_testing;
