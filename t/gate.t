#!/usr/bin/perl

# Every outcome of the decision (spec section 6) over real HTTP, against a
# real redis-server and Debian's nginx with the module loaded.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MpnTest;
use MpnRecords;

my $t = MpnTest->new;
$t->start_redis;
seed_records($t);
$t->redis('SET', 'mpn:partner:broken', '{"v":1, not json');
$t->redis('SET', 'mpn:partner:otherid', record('someoneelse'));
$t->redis('HSET', 'mpn:partner:hash', 'v', '1');

for my $d (qw(benefits tools azure gold grace open plain)) {
    mkdir $t->dir . "/html/$d";
    $t->write_file("html/$d/x", "content of $d\n");
}

$t->write_nginx_conf(<<'EOF');
    mpn_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;

        mpn on;
        mpn_partner $http_x_partner;
        add_header X-Mpn "$mpn_decision/$mpn_reason" always;
        add_header X-Mpn-Partner $mpn_partner_id always;
        add_header X-Mpn-Tier $mpn_tier always;
        add_header X-Mpn-Offer $mpn_offer always;
        add_header X-Mpn-Expires $mpn_expires always;
        add_header X-Mpn-Days $mpn_days_left always;
        add_header X-Mpn-Auto-Renew $mpn_auto_renew always;
        add_header X-Mpn-Remind $mpn_remind always;
        add_header X-Mpn-Cache $mpn_cache_status always;
        add_header X-Mpn-Azure $mpn_benefit_azure_credits always;

        location / {
            mpn_signin_url /signin?return=$mpn_return_url;
        }

        location /benefits/ {
        }

        location /tools/ {
            mpn_signin_url /signin?return=$mpn_return_url;
            mpn_require_tier action_pack;
            mpn_renew_url /renew?return=$mpn_return_url;
            mpn_upgrade_url /offers?return=$mpn_return_url;
        }

        location /azure/ {
            mpn_require_benefit azure_credits developer_tools;
        }

        location /gold/ {
            mpn_require_competency cloud_platform gold;
        }

        location /grace/ {
            mpn_require_tier action_pack;
            mpn_grace 7d;
        }

        location /plain/ {
            mpn off;
        }
    }
EOF
$t->start_nginx;

sub get {
    my ($uri, $partner, %h) = @_;
    $h{'X-Partner'} = $partner if defined $partner;
    return $t->http_get($uri, %h);
}

# identity
my $r = get('/tools/x');
is(status($r), 302, 'no partner id: signin redirect');
like(header($r, 'Location'), qr{/signin\?return=%2Ftools%2Fx$}, 'signin target carries the return URL');
is(header($r, 'X-Mpn'), 'signin/no_identity', 'no partner id: signin/no_identity');
is(header($r, 'Cache-Control'), 'no-store', 'a refusal is never cached');

$r = get('/tools/x', '../etc/passwd');
is(header($r, 'X-Mpn'), 'signin/bad_identity', 'id outside the pattern: signin/bad_identity');
$r = get('/tools/x', 'a' x 65);
is(header($r, 'X-Mpn'), 'signin/bad_identity', 'a 65-character id is refused');
is(header($r, 'X-Mpn-Partner'), undef, 'no $mpn_partner_id for a bad id');
is(header($r, 'X-Mpn-Cache'), 'BYPASS', '$mpn_cache_status is BYPASS when identity failed');

# allow
$r = get('/tools/x', 'active');
is(status($r), 200, 'active subscriber gets the page');
like($r, qr/content of tools/, 'the file is served');
is(header($r, 'X-Mpn'), 'allow/ok', 'allow/ok');
is(header($r, 'X-Mpn-Partner'), 'active', '$mpn_partner_id');
is(header($r, 'X-Mpn-Tier'), 'action_pack', '$mpn_tier');
is(header($r, 'X-Mpn-Offer'), 'action_pack', '$mpn_offer');
like(header($r, 'X-Mpn-Expires'), qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, '$mpn_expires is RFC 3339');
like(header($r, 'X-Mpn-Days'), qr/^(199|200)$/, '$mpn_days_left counts down to the end');
is(header($r, 'X-Mpn-Auto-Renew'), 'on', '$mpn_auto_renew');
is(header($r, 'X-Mpn-Remind'), undef, 'no reminder for an auto-renewing subscription');
is(header($r, 'X-Mpn-Cache'), 'BYPASS', '$mpn_cache_status without a cache');
is(header($r, 'X-Mpn-Azure'), '100', '$mpn_benefit_azure_credits');
is(header($r, 'Cache-Control'), undef, 'an allowed page is not marked no-store');

$r = get('/benefits/x', 'expiring');
is(header($r, 'X-Mpn'), 'allow/ok', 'network requirement met by any member');
is(header($r, 'X-Mpn-Remind'), '1', 'auto-renew off and ending within 30d: $mpn_remind');
is(header($r, 'X-Mpn-Auto-Renew'), 'off', 'auto-renew off shown');

$r = get('/benefits/x', 'network');
is(status($r), 200, 'network-only member reaches a network page');

# renew, upgrade
$r = get('/tools/x?a=1&b=2', 'lapsed');
is(status($r), 302, 'lapsed subscriber is redirected');
like(header($r, 'Location'), qr{/renew\?return=%2Ftools%2Fx%3Fa%3D1%26b%3D2$},
    'lapsed: to the renew page with path and query encoded');
is(header($r, 'X-Mpn'), 'renew/lapsed', 'renew/lapsed');
is(header($r, 'X-Mpn-Offer'), 'action_pack', 'lapsed offer named');
like(header($r, 'X-Mpn-Days'), qr/^-1[01]$/, '$mpn_days_left is negative after the end');

$r = get('/tools/x', 'ingrace');
is(header($r, 'X-Mpn'), 'renew/lapsed', 'past end without grace: lapsed');
$r = get('/grace/x', 'ingrace');
is(status($r), 200, 'within mpn_grace: served');
is(header($r, 'X-Mpn'), 'allow/grace', 'allow/grace');
is(header($r, 'X-Mpn-Remind'), '1', 'in grace: $mpn_remind');

$r = get('/tools/x', 'network');
like(header($r, 'Location'), qr{/offers\?return=%2Ftools%2Fx$}, 'network-only: to offers');
is(header($r, 'X-Mpn'), 'upgrade/tier', 'upgrade/tier');

$r = get('/tools/x', 'cancelled');
is(header($r, 'X-Mpn'), 'upgrade/cancelled', 'cancelled subscription: upgrade/cancelled');
is(status($r), 302, 'cancelled: redirected to offers');

$r = get('/azure/x', 'network');
is(status($r), 403, 'benefit missing, no upgrade URL: 403');
is(header($r, 'X-Mpn'), 'upgrade/benefit', 'upgrade/benefit');
$r = get('/azure/x', 'active');
is(status($r), 200, 'both benefits held: served');
$r = get('/azure/x', 'lapsed');
is(header($r, 'X-Mpn'), 'renew/lapsed', 'benefit only on a lapsed grant: renew/lapsed');
is(status($r), 403, 'renew without a renew URL: 403');

$r = get('/gold/x', 'gold');
is(header($r, 'X-Mpn'), 'allow/ok', 'gold competency meets gold');
is(header($r, 'X-Mpn-Tier'), 'gold', 'effective tier gold');
$r = get('/gold/x', 'active');
is(header($r, 'X-Mpn'), 'upgrade/competency', 'no competency: upgrade/competency');
$r = get('/gold/x', 'goldold');
is(header($r, 'X-Mpn'), 'renew/lapsed', 'a lapsed competency: renew/lapsed');
is(header($r, 'X-Mpn-Offer'), 'cloud_platform', 'lapsed competency area in $mpn_offer');

# not_member, deny, errors
$r = get('/benefits/x', 'nobody');
is(status($r), 403, 'no record: 403');
is(header($r, 'X-Mpn'), 'upgrade/not_member', 'no record: upgrade/not_member');
$r = get('/benefits/x', 'notmember');
is(header($r, 'X-Mpn'), 'upgrade/not_member', 'network false: upgrade/not_member');
$r = get('/tools/x', 'suspended');
is(status($r), 403, 'suspended: 403 even with a renew URL');
is(header($r, 'X-Mpn'), 'deny/suspended', 'deny/suspended');
$r = get('/benefits/x', 'broken');
is(status($r), 500, 'corrupt record: 500');
is(header($r, 'X-Mpn'), 'error/bad_record', 'error/bad_record');
is(header($r, 'Cache-Control'), 'no-store', 'errors are not cached');
$r = get('/benefits/x', 'otherid');
is(header($r, 'X-Mpn'), 'error/bad_record', 'partner_id mismatch: bad_record');
$r = get('/benefits/x', 'hash');
is(header($r, 'X-Mpn'), 'error/bad_record', 'a key of the wrong type: bad_record');

# API callers
$r = get('/tools/x', 'lapsed', Accept => 'application/json');
is(status($r), 403, 'JSON caller: renew is a 403, never a redirect');
is(header($r, 'Location'), undef, 'JSON caller: no Location');
like(header($r, 'Content-Type'), qr{^application/json}, 'JSON caller: JSON content type');
like($r, qr/\r\n\r\n\{"decision":"renew","reason":"lapsed","location":"\/renew\?return=%2Ftools%2Fx"\}$/,
    'JSON body with decision, reason and location');
is(header($r, 'Cache-Control'), 'no-store', 'JSON refusal is no-store');
$r = get('/tools/x', undef, Accept => 'application/json');
is(status($r), 401, 'JSON caller without identity: 401');
$r = get('/benefits/x', 'suspended', Accept => 'application/json');
like($r, qr/\{"decision":"deny","reason":"suspended"\}$/, 'JSON deny has no location');
$r = get('/tools/x', 'lapsed', Accept => 'application/json, text/html');
is(status($r), 302, 'a browser that also accepts JSON is redirected');

$r = get('/benefits/x');
is(status($r), 401, 'no identity and no signin URL: 401');

# the gate is off where it is turned off
$r = get('/plain/x');
is(status($r), 200, 'mpn off: no gate');

# hostile URIs never make a Location for another host or split a header
for my $uri ('//evil.example/x', '/\\evil.example/x', '/%2F%2Fevil.example/x',
    '/%5Cevil.example', '/%09/evil.example', '/x%0d%0aSet-Cookie:%20a=b')
{
    $r = $t->http("GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n");
    my $loc = header($r, 'Location') // '';
    like($loc, qr{/signin\?return=%2F[^%]}, "$uri: return URL starts with a single encoded slash")
        or diag $r;
    unlike($loc, qr{return=%2F(%2F|%5C|%09)}i, "$uri: no second slash survives");
    unlike($r, qr/^Set-Cookie/mi, "$uri: no header split");
}

$t->stop_nginx;
like($t->error_log, qr/\[info\].*mpn: partner "lapsed" refused: renew\/lapsed/,
    'a refusal is logged at info with partner, decision and reason');
like($t->error_log, qr/\[error\].*bad record for partner "broken"/,
    'a bad record is logged at error');
$t->check_error_log;

done_testing;
