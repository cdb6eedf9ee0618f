#!/usr/bin/perl

# Signed partner tokens over real nginx: Bearer and cookie, every algorithm,
# kid selection, iss and aud, nbf, expiry and leeway, a 1 MB header, JWKS
# errors at nginx -t, reload picking up a new JWKS, and no token in the log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MpnTest;
use MpnRecords;

my $ROOT = $ENV{MPN_ROOT} || "$FindBin::Bin/..";
# keys and tokens come from the operator CLI, so its tokens are proven to
# pass the module's verifier
my $CTL = "$ROOT/build/mpnctl";
plan(skip_all => "$CTL not built") unless -x $CTL;

my $t = MpnTest->new;
$t->start_redis;
seed_records($t);
$t->write_file("html/$_/x", "$_ page\n") for qw(t c iss leeway claim);

sub run { my $o = `$_[0]`; die "failed: $_[0]" if $?; chomp $o; $o }

sub keygen { decode_json(run("$CTL keygen --alg $_[0] --kid $_[1]"))->{keys}[0] }

my %keys;
for (['HS256', 'hs'], ['HS384', 'hs384'], ['HS512', 'hs512'], ['RS256', 'rs'],
    ['RS384', 'rs384'], ['RS512', 'rs512'], ['PS256', 'ps'], ['ES256', 'es'],
    ['ES384', 'es384'], ['EdDSA', 'ed'])
{
    $keys{ $_->[1] } = { alg => $_->[0], jwk => keygen(@$_) };
}
my $jwks_path = $t->write_file('jwks.json',
    encode_json({ keys => [ map { $keys{$_}{jwk} } sort keys %keys ] }));

my @tokens;    # every token made, to check none reaches the log

sub token { token_from($jwks_path, @_) }

sub token_from {
    my ($path, $kid, %claims) = @_;
    my $sub = delete $claims{sub} // 'active';
    $claims{exp} //= time + 600;
    my $args = join ' ', map {
        my $v = ref $claims{$_} ? encode_json($claims{$_}) : $claims{$_};
        "--claim '$_=$v'";
    } sort keys %claims;
    # --any-sub: some of these subjects are ids the gate must refuse
    my $tok = run("$CTL token --jwks $path --kid $kid --sub '$sub' --any-sub "
                  . $args);
    push @tokens, $tok;
    return $tok;
}

$t->write_nginx_conf(<<"EOF");
    mpn_redis %%REDIS%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        mpn on;
        mpn_token \$http_authorization;
        mpn_token_keys $jwks_path;
        large_client_header_buffers 4 16k;
        add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;
        add_header X-Mpn-Partner \$mpn_partner_id always;

        location /t/ { }
        location /c/ { mpn_token \$cookie_mpn; }
        location /iss/ {
            mpn_token_issuer https://login.example;
            mpn_token_audience benefits-portal;
        }
        location /leeway/ { mpn_token_leeway 60s; }
        location /claim/ { mpn_token_claim partner; }
    }
EOF
$t->start_nginx;

sub bearer { $t->http_get($_[0], Authorization => "Bearer $_[1]") }

# every algorithm, chosen by kid
for my $kid (sort keys %keys) {
    my $r = bearer('/t/x', token($kid));
    is(status($r), 200, "$keys{$kid}{alg} token (kid $kid): served");
}

my $tok = token('rs');
my $r = bearer('/t/x', $tok);
is(header($r, 'X-Mpn-Partner'), 'active', 'partner id from the sub claim');
is(header($r, 'X-Mpn'), 'allow/ok', 'allow/ok');
$r = $t->http_get('/t/x', Authorization => "bEaReR    $tok");
is(status($r), 200, 'scheme matched case-insensitively, several spaces');
$r = $t->http_get('/c/x', Cookie => "mpn=$tok");
is(status($r), 200, 'token from a cookie');
$r = $t->http_get('/c/x', Authorization => "Bearer $tok");
is(header($r, 'X-Mpn'), 'signin/no_token', 'cookie location ignores the header: no_token');

$r = $t->http_get('/t/x');
is(status($r), 401, 'no token: 401');
is(header($r, 'X-Mpn'), 'signin/no_token', 'signin/no_token');
like(header($r, 'WWW-Authenticate'), qr/^Bearer/, '401 names the Bearer scheme');

my $stranger = $t->write_file('stranger.json', run("$CTL keygen --alg HS256 --kid stranger"));
$r = bearer('/t/x', token_from($stranger, 'stranger'));
is(header($r, 'X-Mpn'), 'signin/bad_token', 'kid naming no key: bad_token');

(my $tampered = $tok) =~ s/\.([A-Za-z0-9_-]+)\./'.' . token_payload('gold') . '.'/e;
$r = bearer('/t/x', $tampered);
is(header($r, 'X-Mpn'), 'signin/bad_token', 'payload swapped under a valid signature: bad_token');

sub token_payload {
    my $p = encode_base64url(JSON::PP->new->canonical->encode({ sub => $_[0], exp => time + 600 }));
    return $p;
}
sub encode_base64url {
    require MIME::Base64;
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

my $none = encode_base64url('{"alg":"none"}') . '.' . token_payload('active') . '.';
$r = bearer('/t/x', $none);
is(header($r, 'X-Mpn'), 'signin/bad_token', 'alg none: bad_token');

# iss and aud
$r = bearer('/iss/x', token('hs', iss => 'https://login.example', aud => 'benefits-portal'));
is(status($r), 200, 'matching iss and aud (string)');
$r = bearer('/iss/x', token('hs', iss => 'https://login.example', aud => ['other', 'benefits-portal']));
is(status($r), 200, 'aud as an array containing the audience');
$r = bearer('/iss/x', token('hs', iss => 'https://evil.example', aud => 'benefits-portal'));
is(header($r, 'X-Mpn'), 'signin/bad_token', 'wrong iss: bad_token');
$r = bearer('/iss/x', token('hs', iss => 'https://login.example', aud => 'other'));
is(header($r, 'X-Mpn'), 'signin/bad_token', 'wrong aud: bad_token');
$r = bearer('/iss/x', token('hs'));
is(header($r, 'X-Mpn'), 'signin/bad_token', 'missing iss and aud when required: bad_token');

# time
$r = bearer('/t/x', token('es', nbf => time + 300));
is(header($r, 'X-Mpn'), 'signin/bad_token', 'nbf in the future: bad_token');
my $expired = token('es', exp => time - 30);
$r = bearer('/t/x', $expired);
is(header($r, 'X-Mpn'), 'signin/token_expired', 'expired 30s ago: token_expired');
$r = bearer('/leeway/x', $expired);
is(status($r), 200, 'expired 30s ago with 60s leeway: served');
$r = bearer('/leeway/x', token('es', exp => time - 120));
is(header($r, 'X-Mpn'), 'signin/token_expired', 'expired beyond the leeway: token_expired');
$r = bearer('/t/x', token('es', exp => '"1900000000"'));
is(header($r, 'X-Mpn'), 'signin/bad_token', 'exp as a string: bad_token');

# the partner claim
$r = bearer('/claim/x', token('ed', partner => 'gold', sub => 'someone'));
is(header($r, 'X-Mpn-Partner'), 'gold', 'mpn_token_claim picks the partner claim');
# a token that verifies but names no partner id: the identity is bad, not
# the token (made here: mpnctl refuses to sign such a subject)
my $bad_sub = hs256_token($keys{hs}{jwk}, { sub => '../../etc/passwd', exp => time + 600 });
$r = bearer('/t/x', $bad_sub);
is(header($r, 'X-Mpn'), 'signin/bad_identity', 'a verified claim outside the id pattern: bad_identity');
$r = bearer('/t/x', hs256_token($keys{hs}{jwk}, { sub => 12345, exp => time + 600 }));
is(header($r, 'X-Mpn'), 'signin/bad_token', 'a claim that is no string: bad_token');
$r = bearer('/t/x', hs256_token($keys{hs}{jwk}, { sub => 'a b', exp => time - 10 }));
is(header($r, 'X-Mpn'), 'signin/token_expired', 'expired with a bad claim: still token_expired');

sub hs256_token {
    my ($jwk, $claims) = @_;
    require Digest::SHA;
    my $input = encode_base64url(encode_json({ alg => 'HS256', kid => $jwk->{kid} })) . '.'
        . encode_base64url(JSON::PP->new->canonical->encode($claims));
    (my $k = $jwk->{k}) =~ tr{-_}{+/};
    my $sig = encode_base64url(Digest::SHA::hmac_sha256($input, MIME::Base64::decode_base64($k)));
    push @tokens, "$input.$sig";
    return "$input.$sig";
}

# a credential that is no JWS at all (a password pasted into the header)
$r = bearer('/t/x', 'supersecretpassword');
is(header($r, 'X-Mpn'), 'signin/bad_token', 'a non-JWS secret: bad_token');
push @tokens, 'supersecretpassword';

# a lapsed partner with a good token is still sent to renew
$r = bearer('/t/x', token('hs', sub => 'suspended'));
is(header($r, 'X-Mpn'), 'deny/suspended', 'token identity feeds the decision');

# a 1 MB Authorization header: 4xx, never 500, and nginx keeps serving
$r = $t->http("GET /t/x HTTP/1.0\r\nAuthorization: Bearer " . ('A' x (1024 * 1024)) . "\r\n\r\n");
like(status($r), qr/^4\d\d$/, '1 MB Authorization header: 4xx (' . status($r) . ')');
$r = $t->http_get('/t/x', Authorization => 'Bearer ' . ('A' x 8000) . '.' . ('B' x 1000) . '.C');
is(header($r, 'X-Mpn'), 'signin/bad_token', 'a 9 KB token is refused');
is(status(bearer('/t/x', $tok)), 200, 'nginx still serves afterwards');

# reload picks up a changed JWKS
$t->write_file('jwks.json', run("$CTL keygen --alg HS256 --kid rotated"));
my $rotated = token('rotated');
$t->reload_nginx;
is(status(bearer('/t/x', $rotated)), 200, 'after reload: a token from the new key is accepted');
is(header(bearer('/t/x', $tok), 'X-Mpn'), 'signin/bad_token', 'after reload: the removed key no longer verifies');

$t->stop_nginx;

my $log = $t->error_log;
like($log, qr/\[info\].*mpn: partner "-" refused: signin\/bad_token, token sha256:[0-9a-f]{8} kid "stranger": unknown kid/,
    'a rejection is logged with its kid, a short hash and why');
like($log, qr/refused: signin\/bad_identity, token sha256:[0-9a-f]{8} kid "hs": partner claim is not a partner id/,
    'bad_identity from a token names the token the same way');
my ($h1) = $log =~ /refused: signin\/bad_token, token sha256:([0-9a-f]{8}): not three segments/;
ok($h1, 'a secret that is no JWS: no kid, a hash');
is(scalar(() = $log =~ /token sha256:$h1\b/g), 1, 'the hash names that one token') if $h1;
my @leaked = grep { index($log, $_) >= 0 } @tokens;
is(scalar @leaked, 0, 'no full token appears in the error log');
my @prefixes = grep { index($log, substr($_, 0, 8)) >= 0 }
    map { s/^Bearer\s+//ri } grep { length >= 8 } @tokens;
is(scalar @prefixes, 0, 'not even the first 8 characters of one') or diag "@prefixes";
unlike($log, qr/supersec/, 'nothing of a rejected secret');
unlike($log, qr/rejected: /, 'no second line per rejection: the refusal line says it all');
unlike($log, qr/"k":"/, 'no key material in the log');
$t->check_error_log;

# nginx -t failures
my $base = "mpn_redis 127.0.0.1:6379;\nserver { listen 127.0.0.1:%%PORT%%; BODY }";
my $dir = $t->dir;
$t->write_file('bad1.json', 'not json');
$t->write_file('bad2.json', encode_json({ keys => [ $keys{hs}{jwk}, { kty => 'RSA', n => '!!', e => 'AQAB' } ] }));
$t->write_file('bad3.json', '{"nokeys":[]}');
my @cases = (
    [ 'mpn on; mpn_token $http_authorization;',
      qr/"mpn_token" is set but neither "mpn_token_keys" nor "mpn_token_keys_request" is/, 'mpn_token without keys' ],
    [ "mpn on; mpn_token \$http_authorization; mpn_partner \$http_x; mpn_token_keys $jwks_path;",
      qr/"mpn_partner" and "mpn_token" cannot both be set in one scope/, 'both identity sources in one scope' ],
    [ "mpn_token_keys $dir/nope.json;",
      qr/cannot open JWKS file ".*nope\.json" in "mpn_token_keys"/, 'missing JWKS file' ],
    [ "mpn_token_keys $dir/bad1.json;",
      qr/invalid JWKS file ".*bad1\.json" in "mpn_token_keys"/, 'JWKS not JSON' ],
    [ "mpn_token_keys $dir/bad2.json;",
      qr/invalid JWKS file ".*bad2\.json" in "mpn_token_keys": key 1/, 'malformed key named by index' ],
    [ "mpn_token_keys $dir/bad3.json;",
      qr/invalid JWKS file ".*bad3\.json"/, 'no keys array' ],
);
for my $c (@cases) {
    $t->write_nginx_conf($base =~ s/BODY/$c->[0]/r);
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, "$c->[2]: nginx -t fails");
    like($out, qr/\[emerg\].*$c->[1]/, "$c->[2]: the message says why") or diag $out;
}
my $both = "location /a { mpn on; mpn_token \$http_authorization; mpn_token_keys $jwks_path; } "
    . "location /b { mpn on; mpn_partner \$http_x; }";
$t->write_nginx_conf($base =~ s/BODY/$both/r);
my ($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'token and partner in different scopes: fine') or diag $out;

# the token source once at server level, a key set per location (section 3)
my $pub_a = $t->write_file('pub_a.json', encode_json({ keys => [ $keys{hs}{jwk} ] }));
my $per_location = "mpn_token \$http_authorization;\n"
    . "location /a { mpn on; mpn_token_keys $pub_a; }\n"
    . "location /b { mpn on; mpn_token_keys $pub_a; }\n"
    . "location /open { }";
$t->write_nginx_conf($base =~ s/BODY/$per_location/r);
($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'mpn_token at server level, mpn_token_keys per location: valid') or diag $out;
unlike($out, qr/private members/, 'an oct key set is not warned about');

# only where the gate is on without keys, and named at that "mpn" line
$t->write_nginx_conf($base =~ s/BODY/$per_location\nlocation \/c {\n    mpn on;\n}/r);
($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'a gated location without keys: nginx -t fails');
my ($line) = grep { $t->read_file('nginx.conf') =~ /^(?:.*\n){$_}    mpn on;\n}/ } 0 .. 100;
like($out, qr/\[emerg\].*"mpn_token" is set but neither "mpn_token_keys" nor "mpn_token_keys_request" is in \S+nginx\.conf:(\d+)/,
    'the message says why') or diag $out;
my ($at) = $out =~ /nginx\.conf:(\d+)/;
is($at, $line + 1, 'and points at the line of that "mpn on"') or diag $out;

# a key set holding private members (the signer's file) is warned about
my $signer = $t->write_file('signer.json', encode_json({ keys => [ $keys{rs}{jwk}, $keys{hs}{jwk} ] }));
$t->write_nginx_conf($base =~ s/BODY/mpn on; mpn_token \$http_authorization; mpn_token_keys $signer;/r);
($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'a key set with private members still loads');
like($out, qr/\[warn\].*mpn_token_keys: key \d+ \(kid "rs"\) holds private members: give nginx only the public half/,
    'but nginx -t warns about it, naming the key');

done_testing;
