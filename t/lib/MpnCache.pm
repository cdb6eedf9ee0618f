package MpnCache;

# Helpers shared by the cache, invalidation and status tests: a gated
# server with mpn_cache, a request for one partner, the status document.

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;

use MpnTest qw(status header);

our @EXPORT = qw(cache_conf setup_html status_json get_id cache_of);

# cache_conf(cache => 'zone=c:1m ttl=..', redis => 'extra mpn_redis args',
#            http => 'extra http lines', listen => 'reuseport',
#            addr => 'mpn_redis address' (default %%REDIS%%))
sub cache_conf {
    my (%o) = @_;
    my $addr = $o{addr} // '%%REDIS%%';
    my $cache = defined $o{cache} ? "mpn_cache $o{cache};" : '';
    my $redis = $o{redis} // '';
    my $http = $o{http} // '';
    my $listen = $o{listen} // '';
    return <<"EOF";
    mpn_redis $addr $redis;
    $cache
    $http
    server {
        listen 127.0.0.1:%%PORT%% $listen;
        root %%DIR%%/html;
        mpn_partner \$http_x_partner;
        add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;
        add_header X-Mpn-Cache \$mpn_cache_status always;
        add_header X-Mpn-Offer \$mpn_offer always;
        add_header X-Mpn-Expires \$mpn_expires always;
        add_header X-Pid \$pid always;
        location /gated/ { mpn on; mpn_require_tier action_pack; }
        location = /status { mpn_status; }
    }
EOF
}

sub setup_html {
    my ($t) = @_;
    $t->write_file('html/gated/x', "gated\n");
}

# a gated request for partner $id: (code, X-Mpn, X-Mpn-Cache, response)
sub get_id {
    my ($t, $id) = @_;
    my $r = $t->http_get('/gated/x', 'X-Partner' => $id);
    return (status($r), header($r, 'X-Mpn') // '', header($r, 'X-Mpn-Cache') // '', $r);
}

sub cache_of { (get_id(@_))[2] }

sub status_json {
    my ($t) = @_;
    my $r = $t->http_get('/status');
    my ($body) = $r =~ /\r\n\r\n(.*)\z/s;
    return decode_json($body);
}

1;
