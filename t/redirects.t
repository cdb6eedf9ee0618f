#!/usr/bin/perl

# Internal redirects (index, error_page) take a request through more than
# one location: the gate keeps the identity and the record, decides for
# each gated location, counts the request once, and its variables are
# still there for an error page.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MpnTest;
use MpnRecords;

my $ROOT = $ENV{MPN_ROOT} || "$FindBin::Bin/..";

my $t = MpnTest->new;
$t->start_redis;
seed_records($t);
mkdir $t->dir . "/html/$_" for qw(benefits tools api api2 exp gold other);
$t->write_file('html/other/denied.html', "other denied page\n");
$t->write_file('html/login.html', "please sign in\n");
$t->write_file('html/page.shtml', "page:"
    . '<!--# include virtual="/benefits/index.html" -->'
    . '<!--# include virtual="/tools/index.html" -->' . "end\n");
$t->write_file('html/api2/e401.html', "api2 error page\n");
# a key set for the token locations: no token is ever sent, so any will do
$t->write_file('jwks.json', '{"keys":[{"kty":"oct","kid":"k",'
    . '"k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}');
$t->write_file('html/benefits/index.html', "benefits index\n");
$t->write_file('html/tools/index.html', "tools index\n");
$t->write_file('html/denied.html',
    "denied: <!--# echo var=\"mpn_decision\" -->/<!--# echo var=\"mpn_reason\" -->"
    . " for <!--# echo var=\"mpn_partner_id\" -->\n");

$t->write_nginx_conf(<<'EOF');
    mpn_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        mpn_partner $http_x_partner;
        add_header X-Mpn "$mpn_decision/$mpn_reason" always;

        location /benefits/ {
            mpn on;
        }

        location /tools/ {
            mpn on;
            mpn_require_tier action_pack;
            error_page 403 /denied.html;
        }

        location = /denied.html {
            ssi on;
        }

        # an error page in a location that names the partner otherwise:
        # the gate starts over there, the request is still counted once
        location /gold/ {
            mpn on;
            mpn_require_tier gold;
            error_page 403 /other/denied.html;
        }

        location /other/ {
            mpn on;
            mpn_partner $http_x_other;
        }

        # an ungated page that includes gated ones
        location = /page.shtml {
            ssi on;
            ssi_types *;
            mpn off;
        }

        location = /status {
            mpn_status;
        }

        # a 401 goes to a sign-in page that another access check lets in
        location /api/ {
            mpn on;
            mpn_token $http_authorization;
            mpn_token_keys %%DIR%%/jwks.json;
            error_page 401 = /login.html;
        }

        location = /login.html {
            satisfy any;
            allow 127.0.0.1;
            deny all;
        }

        # a 401 whose error page is gated too: refused twice, one set of
        # headers
        location /api2/ {
            mpn on;
            mpn_token $http_authorization;
            mpn_token_keys %%DIR%%/jwks.json;
            error_page 401 /api2/e401.html;
        }

        # expires must not make a refusal's redirect cacheable
        location /exp/ {
            mpn on;
            mpn_signin_url /signin;
            expires 1h;
        }
    }
EOF
$t->start_nginx;

sub counters {
    my $r = $t->http_get('/status');
    $r =~ s/^.*?\r\n\r\n//s;
    return decode_json($r);
}

my $r = $t->http_get('/benefits/', 'X-Partner' => 'active');
is(status($r), 200, 'a directory URL is served through its index file');
like($r, qr/benefits index/, 'the index file is the answer');
my $s = counters();
is($s->{decisions}{allow}{ok}, 1, 'the request is counted once, not once per location pass');
is($s->{redis}{requests}, 1, 'and costs one GET: the record is kept across the redirect');

$r = $t->http_get('/tools/', 'X-Partner' => 'network');
is(status($r), 403, 'network-only partner on an Action Pack page: 403');
like($r, qr{denied: upgrade/tier for network}, 'the error page shows the decision through SSI');
$s = counters();
is($s->{decisions}{upgrade}{tier}, 1, 'the refusal is counted once');

$r = $t->http_get('/tools/', 'X-Partner' => 'active');
is(status($r), 200, 'an Action Pack partner gets the tools index');

my $before = counters();
$r = $t->http_get('/gold/x', 'X-Partner' => 'network', 'X-Other' => 'active');
is(status($r), 403, 'refused, then an error page gated by another identity');
like($r, qr/other denied page/, 'which lets the other partner see it');
my $after = counters();
my $sum = sub { my $n = 0; $n += $_ for map { values %$_ } values %{ $_[0]{decisions} }; $n };
is($sum->($after) - $sum->($before), 1, 'starting over does not count the request twice');

# nginx runs no access handler for a subrequest (SSI include, auth_request):
# an include of a gated location is not gated; the page that includes is
$r = $t->http_get('/page.shtml', 'X-Partner' => 'network');
is(status($r), 200, 'an ungated page with SSI includes of gated locations');
like($r, qr/page:benefits index\ntools index\nend/,
    'includes them whatever the partner: gate the including page');

# refusal headers go through nginx's own fields
$r = $t->http_get('/api/x');
is(status($r), 200, 'a 401 sent to a sign-in page through error_page =');
like($r, qr/please sign in/, 'the sign-in page');
is(header($r, 'WWW-Authenticate'), undef,
    '"satisfy any" let it in: no stale WWW-Authenticate on the 200');

$r = $t->http_get('/api2/x');
is(status($r), 401, 'a 401 whose error page is gated as well: 401');
my @www = $r =~ /^WWW-Authenticate: /mgi;
is(scalar @www, 1, 'one WWW-Authenticate, not one per gated location');
my @cc = $r =~ /^Cache-Control: /mgi;
is(scalar @cc, 1, 'one Cache-Control') or diag $r;
is(header($r, 'Cache-Control'), 'no-store', 'and it is no-store');

$r = $t->http_get('/exp/x');
is(status($r), 302, 'a signin redirect under "expires 1h"');
ok((grep { $_ eq 'no-store' } $r =~ /^Cache-Control: ([^\r\n]*)/mgi),
    'keeps its Cache-Control: no-store') or diag $r;
my @loc = $r =~ /^Location: /mgi;
is(scalar @loc, 1, 'one Location');

$s = counters();
is($s->{decisions}{signin}{no_token}, 2, 'each token refusal counted once');

$t->stop_nginx;
my @refusals = $t->error_log =~ /refused: upgrade\/tier, missing tier "action_pack"/g;
is(scalar @refusals, 1, 'one info line for the one refusal');
$t->check_error_log;

# A failure inside nginx (out of memory) decides the request: an error page
# in a location with the same identity answers at once instead of waiting
# forever, and the request is counted once.
SKIP: {
    my $shim = "$ROOT/build/failalloc.so";
    skip "$shim not built (make integration builds it)", 7 unless -f $shim;
    skip 'the sanitizers\' malloc comes before the shim', 7 if $ENV{MPN_PRELOAD};

    # only the copy of this partner header is that long
    my $size = 70001;
    my $t2 = MpnTest->new(preload => $shim, env => { MPN_FAIL_MALLOC_SIZE => $size });
    $t2->start_redis;
    seed_records($t2);
    $t2->write_file('html/x', "x\n");
    $t2->write_file('html/oops.html', "oops\n");
    $t2->write_nginx_conf(<<'EOF');
    mpn_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        large_client_header_buffers 4 128k;
        mpn on;
        mpn_partner $http_x_partner;
        add_header X-Mpn "$mpn_decision/$mpn_reason" always;
        error_page 500 /oops.html;

        location / { }

        location = /status {
            mpn off;
            mpn_status;
        }
    }
EOF
    $t2->start_nginx;

    my $r = $t2->http("GET /x HTTP/1.0\r\nX-Partner: " . ('a' x $size) . "\r\n\r\n",
        timeout => 10);
    is(status($r), 500, 'the partner id cannot be copied: 500, not a hung request');
    is(header($r, 'X-Mpn'), 'error/redis_unavailable', 'decided as an error');
    my $st = decode_json(($t2->http_get('/status') =~ /\r\n\r\n(.*)\z/s)[0]);
    my $n = 0;
    $n += $_ for map { values %$_ } values %{ $st->{decisions} };
    is($n, 1, 'counted once in mpn_decisions_total');
    is($st->{decisions}{error}{redis_unavailable}, 1, 'as error/redis_unavailable');
    is(status($t2->http_get('/x', 'X-Partner' => 'active')), 200, 'the next request is served');

    $t2->stop_nginx;
    my $log = $t2->error_log;
    like($log, qr/\[emerg\].*malloc\($size\) failed/, 'the injected failure happened');
    my @other = grep { /\[(alert|emerg)\]/ && !/malloc\($size\) failed/ } split /\n/, $log;
    is(scalar @other, 0, 'and nothing else went wrong') or diag "@other";
}

done_testing;
