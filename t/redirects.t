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

my $t = MpnTest->new;
$t->start_redis;
seed_records($t);
mkdir $t->dir . "/html/$_" for qw(benefits tools);
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

        location = /status {
            mpn_status;
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

$t->stop_nginx;
my @refusals = $t->error_log =~ /refused: upgrade\/tier/g;
is(scalar @refusals, 1, 'one info line for the one refusal');
$t->check_error_log;

done_testing;
