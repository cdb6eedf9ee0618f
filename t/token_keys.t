#!/usr/bin/perl

# Key sets fetched from the identity provider (mpn_token_keys_request) over
# real nginx with two workers and a stdlib HTTP server as the provider: one
# fetch for many waiting requests, rotation by an unknown kid at most once
# per 30 s, a provider that fails, hangs or serves garbage, cache expiry,
# reload, file and fetched keys together, no client credentials sent to the
# provider, the token attack list against fetched keys, the metrics.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(hmac_sha256);
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use MpnTest;
use MpnRecords;
use MpnProvider;

my $ROOT = $ENV{MPN_ROOT} || "$FindBin::Bin/..";
my $CTL = "$ROOT/build/mpnctl";
plan(skip_all => "$CTL not built") unless -x $CTL;
plan(skip_all => 'python3 not installed') unless -x '/usr/bin/python3';

my $t = MpnTest->new;
$t->start_redis;
seed_records($t);
$t->write_file("html/$_/x", "$_ page\n") for qw(t both cache down open);
my $p = MpnProvider->start($t);
my $PP = $p->port;

sub run { my $o = `$_[0]`; die "failed: $_[0]" if $?; chomp $o; $o }

# a private JWKS file per key (to sign with) and public sets to serve
my %priv;
sub keygen {
    my ($alg, $kid) = @_;
    $priv{$kid} = $t->write_file("priv-$kid.json",
        run("$CTL keygen --alg $alg --kid $kid"));
    my $jwk = decode_json($t->read_file($priv{$kid}))->{keys}[0];
    delete @$jwk{qw(d p q dp dq qi k)} unless $jwk->{kty} eq 'oct';
    return $jwk;
}
sub jwks { encode_json({ keys => [@_] }) }

my $k1 = keygen('RS256', 'k1');
my $k2 = keygen('RS256', 'k2');
my $e1 = keygen('ES256', 'e1');
my $f1 = keygen('ES256', 'file1');
keygen('RS256', 'stranger');
my $set1 = $t->write_file('set1.json', jwks($k1, $e1));
my $set2 = $t->write_file('set2.json', jwks($k1, $e1, $k2));
my $file = $t->write_file('file.json', jwks($f1));
# Entra ID's sets carry certificate chains (x5c): pad up to 64 KB
my @pads;
push @pads, { %$k2, kid => 'pad' . @pads, x5c => ['A' x 2000] }
    while length(jwks($k1, @pads)) < 65536 - 2600;
my $big = $t->write_file('big.json', jwks($k1, @pads));
my $too_big = $t->write_file('too-big.json', jwks($k1, @pads, @pads[0, 1]));
cmp_ok(-s $big, '<=', 65536, 'a key set of ' . (-s $big) . ' bytes');
cmp_ok(-s $too_big, '>', 65536, 'and one of ' . (-s $too_big));

my @tokens;
sub token {
    my ($kid, %o) = @_;
    my $signer = delete $o{with} // $kid;
    my $sub = $o{sub} // 'active';
    my $tok = run("$CTL token --jwks $priv{$signer} --kid $kid --sub $sub");
    push @tokens, $tok;
    return $tok;
}

# the provider's paths: keys1 (the main set), keys2 (short cache),
# keys3 (never any keys), keys4 (64 KB)
$p->set('/keys1', mode => 'ok', file => $set1, delay => 1);
$p->set('/keys2', mode => 'ok', file => $set1);
$p->set('/keys3', mode => '500');
$p->set('/keys4', mode => 'ok', file => $big);
$p->set('/keys5', mode => 'ok', file => $too_big);
$p->set('/keys6', mode => 'ok', file => $set1, delay => 1.8);

# the provider's paths, each behind an internal location; no
# proxy_pass_request_headers off: the module itself sends none of the
# client's headers
my $keylocs = join '', map { <<"EOF" } 1 .. 6;
        location = /_keys$_ {
            internal;
            proxy_connect_timeout 2s;
            proxy_read_timeout 2s;
            subrequest_output_buffer_size 80k;
            proxy_pass http://127.0.0.1:$PP/keys$_;
        }
EOF

$t->write_nginx_conf(<<"EOF", workers => 2);
    mpn_redis %%REDIS%%;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        root %%DIR%%/html;
        mpn on;
        mpn_token \$http_authorization;
        mpn_token_keys_request /_keys1;
        add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;
        add_header X-Pid \$pid always;

        location /t/ { }
        location /both/ { mpn_token_keys $file; }
        location /cache/ {
            mpn_token_keys_request /_keys2;
            mpn_token_keys_cache 2s;
        }
        location /down/ { mpn_token_keys_request /_keys3; }
        location /open/ { mpn_token_keys_request /_keys3; mpn_fail open; }
        location /big/ { mpn_token_keys_request /_keys4; alias %%DIR%%/html/t/; }
        location /too-big/ { mpn_token_keys_request /_keys5; alias %%DIR%%/html/t/; }
        location /leave/ { mpn_token_keys_request /_keys6; alias %%DIR%%/html/t/; }

$keylocs        location = /status { mpn off; mpn_status; }
    }
EOF
$t->start_nginx;

sub bearer {
    my ($uri, $tok) = @_;
    return $t->http_get($uri, Authorization => "Bearer $tok",
        Cookie => 'session=client-secret');
}
sub decision { header($_[0], 'X-Mpn') // '' }

sub get_req {
    my ($uri, $tok) = @_;
    return "GET $uri HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer $tok\r\n"
        . "Cookie: session=client-secret\r\n\r\n";
}

# a request sent on a connection of its own; its whole answer read later
sub send_req {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port, Proto => 'tcp') or die "connect: $!";
    print $s get_req(@_);
    return $s;
}
sub answer {
    my ($s) = @_;
    my ($sel, $r, $end) = (IO::Select->new($s), '', time + 30);
    while (time < $end) {
        last unless $sel->can_read($end - time);
        last unless sysread($s, $r, 65536, length $r);
    }
    close $s;
    return $r;
}

# requests ([uri, token] pairs) all sent at once, then every answer
sub concurrent {
    my @socks = map { send_req(@$_) } @_;
    return map { answer($_) } @socks;
}

sub metric {
    my ($name) = @_;
    my $r = $t->http_get('/status?format=prometheus');
    return ($r =~ /^\Q$name\E (\d+)$/m)[0];
}

# --- first use: one fetch, however many requests wait, in both workers ---

my $tok1 = token('k1');
my @r = concurrent(map { ['/t/x', $tok1] } 1 .. 24);
is(scalar(grep { status($_) == 200 } @r), 24,
    '24 concurrent requests before any key set: all served');
is($p->fetches('/keys1'), 1, 'the provider saw one fetch for all of them');
my %pids = map { header($_, 'X-Pid') => 1 } @r;
is(scalar keys %pids, 2, 'the requests were served by both workers');

is(metric('mpn_token_keys_fetches_total{result="ok"}'), 1,
    'mpn_token_keys_fetches_total{result="ok"} 1');

# --- requests that leave while they wait ------------------------------------

# the first request starts the fetch and leaves; a waiter leaves too; the
# others are served after a fetch of their own
# (all inside the provider's 1.8 s, itself inside the 2 s proxy timeout)
my $owner = send_req('/leave/x', $tok1);
sleep 0.2;
my $waiter = send_req('/leave/x', $tok1);
my @stay = map { send_req('/leave/x', $tok1) } 1 .. 8;
sleep 0.2;
close $waiter;
sleep 0.2;
close $owner;
my @answers = map { answer($_) } @stay;
is(scalar(grep { status($_) == 200 } @answers), 8,
    'the fetch\'s own request left: the 8 that stayed are served') or diag(join ' ', map { status($_) . ':' . decision($_) } @answers);
is($p->fetches('/keys6'), 2, '... after a second fetch');

# --- a 64 KB set, and nothing of the client's at the provider -----------

$r[0] = bearer('/big/x', $tok1);
is(status($r[0]), 200, 'a ' . (-s $big) . ' byte key set (x5c chains) is used');
$r[0] = bearer('/too-big/x', $tok1);
is(decision($r[0]), 'error/keys_unavailable',
    'a key set over 64 KB is refused (no keys: keys_unavailable)');

my $seen = $p->stats;
my @sent = map { @{ $seen->{$_}{headers} } } keys %$seen;
ok(!grep({ $_ eq 'authorization' } @sent), 'the provider saw no Authorization');
ok(!grep({ $_ eq 'cookie' } @sent), 'the provider saw no Cookie');

# --- rotation --------------------------------------------------------------

$p->set('/keys1', file => $set2, delay => 0);
my $tok2 = token('k2');
$r[0] = bearer('/t/x', $tok2);
is(status($r[0]), 200, 'rotation: a token with the new kid is accepted');
my $rotation_fetches = $p->fetches('/keys1');
is($rotation_fetches, 2, 'after one early fetch');
my $early_at = time;
is(status(bearer('/t/x', $tok1)), 200, 'the old key still works');

# a flood of unknown kids right after: no fetch at all inside the 30 s
my @flood = map { token('stranger', with => 'stranger') } 1 .. 3;
@r = concurrent(map { ['/t/x', $flood[$_ % 3]] } 1 .. 40);
is(scalar(grep { decision($_) eq 'signin/bad_token' } @r), 40,
    'a flood of 40 unknown-kid tokens: bad_token');
my $flood_fetches = $p->fetches('/keys1');
is($flood_fetches, 2, 'no fetch for them within 30 s of the last early one');

# --- the token attack list against fetched keys --------------------------

sub b64url {
    my $s = encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}
my $claims = b64url(encode_json({ sub => 'active', exp => time + 600 }));
sub hs256 {
    my ($header, $secret) = @_;
    my $input = b64url(encode_json($header)) . ".$claims";
    return "$input." . b64url(hmac_sha256($input, $secret));
}
sub b64url_decode {
    my $s = $_[0] =~ tr{-_}{+/}r;
    return MIME::Base64::decode_base64($s . '=' x ((4 - length($s) % 4) % 4));
}

# HS256 keyed with the RSA key's public modulus (the classic confusion)
my $confused = hs256({ alg => 'HS256', kid => 'k1' }, b64url_decode($k1->{n}));
is(decision(bearer('/t/x', $confused)), 'signin/bad_token',
    'HS256 under the kid of a fetched RSA key: bad_token');
$priv{e1rs} = $t->write_file('priv-e1rs.json',
    run("$CTL keygen --alg RS256 --kid e1"));
my $rs_as_ec = token('e1', with => 'e1rs');
is(decision(bearer('/t/x', $rs_as_ec)), 'signin/bad_token',
    'RS256 under the kid of a fetched EC key: bad_token');

my $secret = 'x' x 32;
my $jwk_hdr = hs256({ alg => 'HS256', kid => 'k1',
    jwk => { kty => 'oct', k => b64url($secret) } }, $secret);
is(decision(bearer('/t/x', $jwk_hdr)), 'signin/bad_token',
    'a key sent in the header (jwk) is not used: bad_token');
my $jku_hdr = hs256({ alg => 'HS256', kid => 'evil',
    jku => "http://127.0.0.1:$PP/attacker" }, $secret);
is(decision(bearer('/t/x', $jku_hdr)), 'signin/bad_token',
    'a key set named in the header (jku) is not used: bad_token');
is($p->fetches('/attacker'), 0, 'the jku address was never fetched');
my $none = b64url('{"alg":"none","kid":"k1"}') . ".$claims.";
is(decision(bearer('/t/x', $none)), 'signin/bad_token', 'alg none: bad_token');

# --- a file key set and a fetched one together -----------------------------

is(status(bearer('/both/x', token('file1'))), 200,
    'file and fetched sets in one scope: the file key verifies');
is(status(bearer('/both/x', $tok2)), 200, '... and so does a fetched key');
is(decision(bearer('/t/x', token('file1'))), 'signin/bad_token',
    'the file key is not used where only the fetched set is');

# --- cache expiry ------------------------------------------------------------

is(status(bearer('/cache/x', $tok1)), 200, 'a key set with a 2 s cache');
is(status(bearer('/cache/x', $tok1)), 200, '... used again');
is($p->fetches('/keys2'), 1, '... fetched once');
sleep 2.5;
is(status(bearer('/cache/x', $tok1)), 200,
    'after 2 s: served with the keys it has');
ok(poll(sub { $p->fetches('/keys2') == 2 }, 10), '... and fetched again');

# --- a provider that fails: the old keys keep working ----------------------

for my $mode (qw(500 garbage hang)) {
    $p->set('/keys2', mode => $mode);
    sleep 5.5;    # past the 2 s cache and the 5 s pause after a failure
    my $before = $p->fetches('/keys2');
    is(status(bearer('/cache/x', $tok1)), 200,
        "provider $mode after expiry: the old keys still work");
    ok(poll(sub { $p->fetches('/keys2') > $before }, 10),
        "... while it is asked again");
    sleep 2.5 if $mode eq 'hang';
    is(status(bearer('/cache/x', $tok1)), 200, '... and still afterwards');
}
$p->set('/keys2', mode => 'ok');
ok(poll(sub { metric('mpn_token_keys_fetches_total{result="invalid"}') >= 1 }, 5),
    'garbage is counted as invalid');
ok(metric('mpn_token_keys_fetches_total{result="error"}') >= 2,
    '500 and hang are counted as errors');

# --- never any keys: 503 keys_unavailable, or fail open ---------------------

$r[0] = bearer('/down/x', $tok1);
is(status($r[0]), 503, 'provider down, no keys ever: 503');
is(decision($r[0]), 'error/keys_unavailable', 'error/keys_unavailable');
$r[0] = bearer('/open/x', $tok1);
is(decision($r[0]), 'allow/fail_open', 'with mpn_fail open: allow/fail_open');
$r[0] = $t->http_get('/down/x');
is(decision($r[0]), 'signin/no_token', 'no token: no_token, no fetch needed');

$p->set('/keys3', mode => 'hang');
sleep 5.5;    # past the retry pause after the failure
$r[0] = bearer('/down/x', $tok1);
is(decision($r[0]), 'error/keys_unavailable',
    'provider hanging, no keys ever: keys_unavailable within the proxy timeouts');
$p->set('/keys3', mode => 'ok', file => $set1);
sleep 5.5;
is(status(bearer('/down/x', $tok1)), 200, 'the provider back: served');

like($t->http_get('/status?format=prometheus'),
    qr/^mpn_decisions_total\{decision="error",reason="keys_unavailable"\} [1-9]/m,
    'keys_unavailable in mpn_decisions_total');

# --- a key the provider drops stops verifying, remembered tokens too -----

my $only_k2 = $t->write_file('only-k2.json', jwks($k2));
is(status(bearer('/cache/x', $tok1)), 200, 'a k1 token, verified (and remembered)');
$p->set('/keys2', mode => 'ok', file => $only_k2);
sleep 2.5;
my $n = $p->fetches('/keys2');
bearer('/cache/x', $tok1);
ok(poll(sub { $p->fetches('/keys2') > $n }, 10), 'k1 dropped by the provider: fetched');
ok(poll(sub { decision(bearer('/cache/x', $tok1)) eq 'signin/bad_token' }, 10),
    '... and the k1 token is refused');
@r = concurrent(map { ['/cache/x', $tok1] } 1 .. 10);
is(scalar(grep { decision($_) eq 'signin/bad_token' } @r), 10, '... by both workers');
is(status(bearer('/cache/x', $tok2)), 200, 'the remaining key verifies');

# --- reload keeps the fetched keys ------------------------------------------

my $before = $p->fetches('/keys1');
$t->reload_nginx;
@r = concurrent(map { ['/t/x', $_ % 2 ? $tok1 : $tok2] } 1 .. 10);
is(scalar(grep { status($_) == 200 } @r), 10, 'after a reload: the fetched keys are used');
is($p->fetches('/keys1'), $before, '... without fetching them again');
is(metric('mpn_token_keys'), 3 + 1 + 2 + (1 + @pads) + 2,
    'mpn_token_keys counts the keys of every fetched set');

# --- the next early fetch, 30 s after the last --------------------------------

my $wait = $early_at + 31 - time;
sleep $wait if $wait > 0;
@r = concurrent(map { ['/t/x', $flood[$_ % 3]] } 1 .. 40);
is(scalar(grep { decision($_) eq 'signin/bad_token' } @r), 40,
    '30 s later, another flood of unknown kids: bad_token');
my $flood2_fetches = $p->fetches('/keys1') - $flood_fetches;
is($flood2_fetches, 1, '... after one early fetch');
@r = concurrent(map { ['/t/x', $flood[$_ % 3]] } 1 .. 20);
is($p->fetches('/keys1') - $flood_fetches, 1, '... and no other');

diag("provider fetches of /keys1: first use 1, rotation $rotation_fetches "
    . "(after the early fetch), flood within 30 s " . ($flood_fetches - $rotation_fetches)
    . ", flood 30 s later $flood2_fetches");

$t->stop_nginx;

my $log = $t->error_log;
like($log, qr/mpn: invalid key set "\/_keys2": not JSON/, 'garbage is logged as such');
like($log, qr/mpn: .*error\/keys_unavailable.*no key set from "\/_keys3" yet/,
    'the refusal line names the key set');
like($log, qr/mpn: fetching key set "\/_keys2" failed: status 500/, 'a 500 is logged');
like($log, qr/mpn: fetch of key set "\/_keys6" abandoned with its request/,
    'a fetch given up with its request is logged');
like($log, qr/mpn: invalid key set "\/_keys5": \d+ bytes, over the 65536 byte limit/,
    'a set over 64 KB is logged');
my @leaked = grep { index($log, $_) >= 0 } @tokens;
is(scalar @leaked, 0, 'no token appears in the error log');
$t->check_error_log;

# --- nginx -t ---------------------------------------------------------------

my $base = "mpn_redis 127.0.0.1:6379;\nserver { listen 127.0.0.1:%%PORT%%; BODY }";
for my $c (
    [ 'mpn on; mpn_token $http_authorization; mpn_token_keys_request /_k;',
      undef, 'mpn_token with only a key request' ],
    [ 'mpn on; mpn_token $http_authorization;',
      qr/neither "mpn_token_keys" nor "mpn_token_keys_request"/,
      'mpn_token with no key source' ],
    [ 'mpn_token_keys_request keys;',
      qr/invalid URI "keys" in "mpn_token_keys_request"/, 'a URI without /' ],
    [ 'mpn_token_keys_cache 0;',
      qr/invalid value "0" in "mpn_token_keys_cache"/, 'a cache time of 0' ],
    [ 'mpn_token_keys_request /a; mpn_token_keys_request /b;',
      qr/"mpn_token_keys_request" directive is duplicate/, 'twice in one scope' ],
)
{
    $t->write_nginx_conf($base =~ s/BODY/$c->[0]/r);
    my ($rc, $out) = $t->nginx_test_conf;
    if (!defined $c->[1]) {
        is($rc, 0, "$c->[2]: nginx -t passes") or diag $out;
        next;
    }
    isnt($rc, 0, "$c->[2]: nginx -t fails");
    like($out, qr/\[emerg\].*$c->[1]/, "$c->[2]: the message says why") or diag $out;
}

done_testing;
