#!/usr/bin/perl

# mpn_token_cache: a token a worker verified before is found again (a hit),
# its exp is still checked at every use, a changed byte never hits, a token
# verified for one location's issuer is not taken for another's, a reload
# with other keys empties the cache, and "off" turns it off.  The counters
# in mpn_status tell hits from misses.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MpnTest;
use MpnRecords;
use MpnCache qw(status_json);

my $ROOT = $ENV{MPN_ROOT} || "$FindBin::Bin/..";
my $CTL = "$ROOT/build/mpnctl";
plan(skip_all => "$CTL not built") unless -x $CTL;

sub run { my $o = `$_[0]`; die "failed: $_[0]" if $?; chomp $o; $o }

my $t = MpnTest->new;
$t->start_redis;
seed_records($t);
$t->write_file("html/$_/p", "$_ page\n") for qw(t x y);

my $keys1 = $t->write_file('keys1.json', run("$CTL keygen --alg ES256 --kid k1"));
my $keys2 = $t->write_file('keys2.json', run("$CTL keygen --alg ES256 --kid k1"));
my $jwks = $t->dir . '/jwks.json';

sub use_keys { run("cp $_[0] $jwks") }

sub token {
    my ($keys, %claims) = @_;
    my $sub = delete $claims{sub} // 'active';
    $claims{exp} //= time + 600;
    my $args = join ' ', map { "--claim '$_=$claims{$_}'" } sort keys %claims;
    return run("$CTL token --jwks $keys --kid k1 --sub '$sub' $args");
}

sub conf {
    my ($cache) = @_;
    return <<"EOF";
    mpn_redis %%REDIS%%;
    $cache
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        mpn_token \$http_authorization;
        mpn_token_keys $jwks;
        add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;
        add_header X-Mpn-Partner \$mpn_partner_id always;
        location /t/ { mpn on; }
        location /x/ { mpn on; mpn_token_issuer https://x.example; }
        location /y/ { mpn on; mpn_token_issuer https://y.example; }
        location = /status { mpn_status; }
    }
EOF
}

sub get {
    my ($path, $tok) = @_;
    my $r = $t->http_get($path, Authorization => "Bearer $tok");
    return (status($r), header($r, 'X-Mpn') // '');
}

# (hits, misses) since the last call
my ($last_hits, $last_misses) = (0, 0);
sub counted {
    my $tc = status_json($t)->{token_cache};
    my @d = ($tc->{hits} - $last_hits, $tc->{misses} - $last_misses);
    ($last_hits, $last_misses) = ($tc->{hits}, $tc->{misses});
    return "@d";
}

use_keys($keys1);
$t->write_nginx_conf(conf(''));
$t->start_nginx;

subtest 'a token seen again is a hit' => sub {
    my $tok = token($keys1);
    is(counted(), '0 0', 'nothing counted yet');
    is_deeply([get('/t/p', $tok)], [200, 'allow/ok'], 'first use: served');
    is(counted(), '0 1', 'first use: a miss');
    is_deeply([get('/t/p', $tok)], [200, 'allow/ok'], 'second use: served');
    is_deeply([get('/t/p', $tok)], [200, 'allow/ok'], 'third use: served');
    is(counted(), '2 0', 'then hits');

    my $other = token($keys1, sub => 'gold');
    my $partner = sub {
        header($t->http_get('/t/p', Authorization => "Bearer $other"),
            'X-Mpn-Partner');
    };
    is($partner->(), 'gold', 'another partner: its own id');
    is($partner->(), 'gold', 'the same from the cache');
    is(counted(), '1 1', 'a miss, then a hit');

    my $r = $t->http_get('/status?format=prometheus');
    like($r, qr/^# TYPE mpn_token_cache_hits_total counter\nmpn_token_cache_hits_total 3$/m,
        'Prometheus: mpn_token_cache_hits_total');
    like($r, qr/^# TYPE mpn_token_cache_misses_total counter\nmpn_token_cache_misses_total 2$/m,
        'Prometheus: mpn_token_cache_misses_total');
};

subtest 'exp is checked at every use, also when cached' => sub {
    my $exp = time + 2;
    my $tok = token($keys1, exp => $exp);
    is(status(($t->http_get('/t/p', Authorization => "Bearer $tok"))), 200,
        'before exp: served');
    is((get('/t/p', $tok))[0], 200, 'before exp, from the cache: served');
    is(counted(), '1 1', 'a miss, then a hit');

    sleep 1 while time <= $exp;
    is_deeply([get('/t/p', $tok)], [401, 'signin/token_expired'],
        'past exp, though cached: token_expired');
    is(counted(), '1 0', 'that answer came from the cache entry');
    is_deeply([get('/t/p', $tok)], [401, 'signin/token_expired'],
        'again: token_expired');
    is(counted(), '0 1', 'the expired entry was dropped: verified again');
};

subtest 'a changed token never hits' => sub {
    my $tok = token($keys1);
    is((get('/t/p', $tok))[0], 200, 'the token: served');
    is(counted(), '0 1', 'cached');

    # the last character of the signature, and one in the middle of it
    for my $pos (length($tok) - 2, length($tok) - 20) {
        my $bad = $tok;
        substr($bad, $pos, 1) = substr($bad, $pos, 1) eq 'A' ? 'B' : 'A';
        is_deeply([get('/t/p', $bad)], [401, 'signin/bad_token'],
            "byte $pos changed: bad_token");
        is_deeply([get('/t/p', $bad)], [401, 'signin/bad_token'],
            "byte $pos changed, again: bad_token");
        is(counted(), '0 2', 'no hit, and the failure was not cached');
    }
    is((get('/t/p', $tok))[0], 200, 'the original still served');
    is(counted(), '1 0', 'from the cache');
};

subtest 'an entry answers only for the verifier that made it' => sub {
    my $tok = token($keys1, iss => 'https://x.example');
    is((get('/x/p', $tok))[0], 200, 'issuer x at /x/: served');
    is((get('/x/p', $tok))[0], 200, 'again, cached');
    is(counted(), '1 1', 'a miss, then a hit');
    is_deeply([get('/y/p', $tok)], [401, 'signin/bad_token'],
        'the same token at /y/ (issuer y): bad_token');
    is(counted(), '0 1', 'a miss at /y/');
};

subtest 'a reload with other keys empties the cache' => sub {
    my $tok = token($keys1);
    is((get('/t/p', $tok))[0], 200, 'key 1 token: served');
    is((get('/t/p', $tok))[0], 200, 'again');
    is(counted(), '1 1', 'cached');

    $t->reload_nginx;
    is((get('/t/p', $tok))[0], 200, 'reloaded, same keys: served');
    is(counted(), '0 1', 'a miss: the new worker starts empty');

    use_keys($keys2);
    $t->reload_nginx;
    is_deeply([get('/t/p', $tok)], [401, 'signin/bad_token'],
        'reloaded with key 2 only: the cached key 1 token is refused');
    is(counted(), '0 1', 'a miss');
    my $tok2 = token($keys2);
    is((get('/t/p', $tok2))[0], 200, 'a key 2 token: served');
    is((get('/t/p', $tok2))[0], 200, 'again');
    is(counted(), '1 1', 'cached');
};

subtest 'mpn_token_cache off' => sub {
    $t->write_nginx_conf(conf('mpn_token_cache off;'));
    $t->reload_nginx;
    counted();
    my $tok = token($keys2);
    is((get('/t/p', $tok))[0], 200, 'served') for 1 .. 3;
    is(counted(), '0 0', 'no lookups counted');

    $t->write_nginx_conf(conf('mpn_token_cache 4k;'));
    $t->reload_nginx;
    is((get('/t/p', $tok))[0], 200, 'with 4k: served') for 1 .. 2;
    is(counted(), '1 1', 'a miss, then a hit');
};

subtest 'nginx -t' => sub {
    my $u = MpnTest->new;
    for my $bad (['mpn_token_cache 1k;', qr/invalid size "1k" in "mpn_token_cache"/],
        ['mpn_token_cache lots;', qr/invalid size "lots"/],
        ['mpn_token_cache 1m; mpn_token_cache 1m;', qr/"mpn_token_cache" directive is duplicate/],
        ['server { mpn_token_cache 1m; }', qr/"mpn_token_cache" directive is not allowed here/])
    {
        $u->write_nginx_conf($bad->[0]);
        my ($rc, $out) = $u->nginx_test_conf;
        isnt($rc, 0, "refused: $bad->[0]");
        like($out, $bad->[1], 'with a message naming it');
    }
    $u->write_nginx_conf('mpn_token_cache 64m;');
    my ($rc, $out) = $u->nginx_test_conf;
    is($rc, 0, 'mpn_token_cache 64m: accepted') or diag $out;
};

$t->stop_nginx;
$t->check_error_log;

done_testing;
