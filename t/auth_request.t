#!/usr/bin/perl

# The documented identity pattern: auth_request asks a sign-in service who
# the caller is, auth_request_set puts the answer in a variable, and
# mpn_partner reads it.  The gate must run after auth_request in the access
# phase, whatever order the modules were loaded in.

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
$t->write_file('html/benefits/x', "benefit page\n");

$t->write_nginx_conf(<<'EOF');
    mpn_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        add_header X-Mpn "$mpn_decision/$mpn_reason" always;

        location /benefits/ {
            auth_request /auth;
            auth_request_set $partner $upstream_http_x_partner_id;
            mpn on;
            mpn_partner $partner;
        }

        # the sign-in service: the session cookie names the partner, and
        # no cookie is no session
        location = /auth {
            internal;
            proxy_pass http://127.0.0.1:%%PORT%%/session;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        location = /session {
            if ($cookie_session = "") {
                return 401;
            }
            add_header X-Partner-Id $cookie_session;
            return 204;
        }
    }
EOF
$t->start_nginx;

my $r = $t->http_get('/benefits/x', Cookie => 'session=active');
is(status($r), 200, 'the partner named by the sign-in service is served');
is(header($r, 'X-Mpn'), 'allow/ok', 'the gate saw the partner id set by auth_request_set');

$r = $t->http_get('/benefits/x', Cookie => 'session=nobody');
is(header($r, 'X-Mpn'), 'upgrade/not_member', 'a partner without a record: upgrade/not_member');

$r = $t->http_get('/benefits/x');
is(status($r), 401, 'no session: auth_request refuses first, 401');

$t->stop_nginx;
$t->check_error_log;

done_testing;
