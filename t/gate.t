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

$t->write_file("html/$_/x", "content of $_\n")
    for qw(benefits tools azure gold grace open plain loud);

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

        location /loud/ {
            mpn_log_level error;
            mpn_require_benefit developer_tools azure_credits;
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

# mpn_log_level: the refusal line at the level an operator's error_log shows
$r = get('/loud/x', 'network');
is(header($r, 'X-Mpn'), 'upgrade/benefit', 'a benefit refusal under mpn_log_level error');

$t->stop_nginx;
my $log = $t->error_log;
like($log, qr/\[info\].*mpn: partner "lapsed" refused: renew\/lapsed/,
    'a refusal is logged at info with partner, decision and reason');
like($log, qr/\[error\].*bad record for partner "broken"/,
    'a bad record is logged at error');

# what was missing, on the one line per refusal
like($log, qr/\[info\].*mpn: partner "network" refused: upgrade\/tier, missing tier "action_pack", client: /,
    'a tier refusal names the tier');
like($log, qr/\[info\].*mpn: partner "lapsed" refused: renew\/lapsed, missing tier "action_pack" \("action_pack" lapsed\)/,
    'a lapsed refusal names the requirement and the lapsed grant');
like($log, qr/\[info\].*mpn: partner "cancelled" refused: upgrade\/cancelled, missing tier "action_pack" \("action_pack" cancelled\)/,
    'a cancelled refusal names the cancelled grant');
like($log, qr/\[info\].*mpn: partner "network" refused: upgrade\/benefit, missing benefit "azure_credits"/,
    'a benefit refusal names the first benefit missing');
like($log, qr/\[info\].*mpn: partner "active" refused: upgrade\/competency, missing competency "cloud_platform" at gold/,
    'a competency refusal names the area and level');
like($log, qr/\[info\].*mpn: partner "nobody" refused: upgrade\/not_member, no record/,
    'not_member says there is no record');
like($log, qr/\[info\].*mpn: partner "notmember" refused: upgrade\/not_member, not a network member/,
    'or that the partner is outside the network');
like($log, qr/\[info\].*mpn: partner "-" refused: signin\/bad_identity, an id of 65 bytes that is no partner id/,
    'a bad id is described by its size, never echoed');
unlike($log, qr/etc\/passwd/, 'the id itself is not logged');
like($log, qr/\[error\].*mpn: partner "network" refused: upgrade\/benefit, missing benefit "developer_tools".*request: "GET \/loud\/x /,
    'mpn_log_level error: the refusal line is at error, with the request');

# a bad record: the diagnosis is on the refusal line, and its own error
# line names the request too, in the same log
like($log, qr/\[info\].*mpn: partner "broken" refused: error\/bad_record, .*JSON.*request: "GET \/benefits\/x /,
    "the refusal carries the record's diagnosis");
like($log, qr/\[info\].*mpn: partner "otherid" refused: error\/bad_record, .*partner_id/,
    'a mismatched partner_id is named');
like($log, qr/\[error\].*bad record for partner "broken": .*request: "GET \/benefits\/x /,
    'the diagnosis line names the request');
like($log, qr/\[info\].*mpn: partner "hash" refused: error\/bad_record, the key is not a string/,
    'a key of the wrong type');
$t->check_error_log;

# the level is one of four, checked at nginx -t
$t->write_nginx_conf("mpn_redis %%REDIS%%;\nserver { listen 127.0.0.1:%%PORT%%; mpn_log_level debug; }");
my ($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'mpn_log_level debug: nginx -t fails');
like($out, qr/\[emerg\].*invalid value "debug"/, 'with nginx\'s own message');
for my $level (qw(info notice warn error)) {
    $t->write_nginx_conf("mpn_redis %%REDIS%%;\nmpn_log_level $level;\n"
        . "server { listen 127.0.0.1:%%PORT%%; location / { mpn_log_level $level; } }");
    ($rc, $out) = $t->nginx_test_conf;
    is($rc, 0, "mpn_log_level $level: valid at http and location level") or diag $out;
}

done_testing;
