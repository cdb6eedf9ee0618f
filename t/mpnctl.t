#!/usr/bin/perl

# mpnctl against a real redis-server: every subcommand's --help, the record
# commands and their error codes, the address forms, import (10,000 lines,
# 3 bad), expiring, and tokens checked by the module's own verifier.

use strict;
use warnings;

use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);
use Time::Local qw(timegm);

use lib 't/lib';
use MpnRedis;
use MpnTls;

plan(skip_all => 'redis-server not installed')
    unless MpnRedis::redis_server_path();

my $M = "$MpnRedis::ROOT/build/mpnctl";
die "$M is missing: run make tools first\n" unless -x $M;

my $srv = MpnRedis->start;
$srv->load_library;
my $r = $srv->client;
my $json = JSON::PP->new->canonical;
my $tmp = tempdir('mpnctl-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @R = ('--redis', $srv->addr);

sub mpnctl { MpnRedis::run([$M, @_]) }
sub mpnctl_in { my $in = shift; MpnRedis::run([$M, @_], stdin => $in) }

sub write_file {
    my ($name, @lines) = @_;
    open(my $fh, '>', "$tmp/$name") or die "$tmp/$name: $!";
    print $fh @lines;
    close $fh;
    return "$tmp/$name";
}

sub ts {
    my ($y, $mo, $d, $h, $mi, $se) =
        $_[0] =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/ or die;
    return timegm($se, $mi, $h, $d, $mo - 1, $y);
}

sub record {
    my ($id, %over) = @_;
    return { v => 1, partner_id => $id, network => JSON::PP::true,
             status => 'active', %over };
}

# -------------------------------------------------------------------------
# --help

my $res = mpnctl('--help');
is($res->{rc}, 0, 'mpnctl --help exits 0');
like($res->{out}, qr/^usage: mpnctl/, 'mpnctl --help prints the usage');
for my $cmd (qw(get put import init subscribe renew auto-renew cancel
                expiring usage token verify keygen pubkeys))
{
    $res = mpnctl($cmd, '--help');
    ok($res->{rc} == 0 && $res->{out} =~ /^usage: mpnctl \[options\] \Q$cmd\E/,
       "$cmd --help");
}
$res = mpnctl('frobnicate');
ok($res->{rc} == 2 && $res->{err} =~ /unknown command/,
   'an unknown command exits 2');
$res = mpnctl(@R, 'renew', 'p1');
ok($res->{rc} == 2 && $res->{err} =~ /wrong number of arguments/,
   'a missing argument exits 2');
$res = mpnctl(@R, 'get', 'p1', '--within', '3d');
ok($res->{rc} == 2 && $res->{err} =~ /get does not take --within/,
   'an option a command does not take exits 2');

# -------------------------------------------------------------------------
# put, get and the write commands; errors carry the code

my $f = write_file('p1.json', $json->encode(record('p1')));
$res = mpnctl(@R, 'put', $f);
is_deeply([$res->{rc}, $res->{out}], [0, "rev 1\n"], 'put FILE: rev 1');
$res = mpnctl_in($f, @R, 'put');
is($res->{out}, "rev 2\n", 'put from stdin: rev 2');
$res = mpnctl(@R, 'get', 'p1');
is($res->{rc}, 0, 'get exits 0');
is($json->decode($res->{out})->{partner_id}, 'p1', 'get prints the record');
is($res->{err}, '', "the module's parser accepts it (no warning)");

$res = mpnctl(@R, 'get', 'nobody');
ok($res->{rc} == 1 && $res->{err} =~ /NO_SUCH_PARTNER/,
   'get of a missing record: NO_SUCH_PARTNER, exit 1');
$res = mpnctl(@R, 'get', 'bad id!');
ok($res->{rc} == 1 && $res->{err} =~ /BAD_ARGUMENT/,
   'a malformed id: BAD_ARGUMENT, exit 1');
$f = write_file('bad.json', $json->encode(record('p1', v => 2)));
$res = mpnctl(@R, 'put', $f);
ok($res->{rc} == 1 && $res->{err} =~ /^mpnctl: put: BAD_RECORD wrong "v"/,
   'put of a bad record: BAD_RECORD from Redis, exit 1');

my $now = '2026-03-10T12:00:00Z';
$res = mpnctl(@R, 'subscribe', 'p1', 'action_pack', '--now', $now);
is_deeply([$res->{rc}, $res->{out}], [0, "rev 3\n"], 'subscribe');
my $ap = $json->decode($r->cmd('GET', 'mpn:partner:p1'))
         ->{subscriptions}{action_pack};
is($ap->{end}, '2027-03-10T12:00:00Z', 'subscribe --now RFC 3339');
$res = mpnctl(@R, 'subscribe', 'p1', 'action_pack', '--now', $now);
ok($res->{rc} == 1 && $res->{err} =~ /ALREADY_ACTIVE/,
   'subscribe while current: ALREADY_ACTIVE, exit 1');
$res = mpnctl(@R, 'subscribe', 'p1', 'extra', '--now', ts($now),
              '--benefits', '{"azure_credits":300}');
ok($res->{rc} == 0, 'subscribe --now UNIX --benefits JSON');
$res = mpnctl(@R, 'auto-renew', 'p1', 'action_pack', 'off');
is($res->{rc}, 0, 'auto-renew off');
$res = mpnctl(@R, 'auto-renew', 'p1', 'action_pack', 'on');
ok($res->{rc} == 1 && $res->{err} =~ /RENEW_REQUIRED/,
   'auto-renew on after off: RENEW_REQUIRED, exit 1');
$res = mpnctl(@R, 'renew', 'p1', 'action_pack', '--now', $now);
is($res->{rc}, 0, 'renew');
$res = mpnctl(@R, 'auto-renew', 'p1', 'action_pack', 'on');
is($res->{rc}, 0, 'auto-renew on after renew');
$res = mpnctl(@R, 'renew', 'p1', 'nothing', '--now', $now);
ok($res->{rc} == 1 && $res->{err} =~ /NO_SUCH_OFFER/,
   'renew of an offer not held: NO_SUCH_OFFER, exit 1');
$res = mpnctl(@R, 'cancel', 'p1', 'extra');
is($res->{rc}, 0, 'cancel');
$f = write_file('net.json', $json->encode(record('n1',
                                                  network => JSON::PP::false)));
mpnctl(@R, 'put', $f);
$res = mpnctl(@R, 'subscribe', 'n1', 'action_pack');
ok($res->{rc} == 1 && $res->{err} =~ /NOT_MEMBER/,
   'subscribe a non-member: NOT_MEMBER, exit 1');
is($json->decode($r->cmd('GET', 'mpn:partner:p1'))->{rev}, 8,
   'each successful command was one write');

# --channel is passed to the library
my $sub = $srv->client;
$sub->cmd('SUBSCRIBE', 'other:chan');
mpnctl(@R, '--channel', 'other:chan', 'cancel', 'p1', 'extra');
my $m = $sub->reply(5);
is_deeply($m, ['message', 'other:chan', 'p1'], '--channel names the channel');

# -------------------------------------------------------------------------
# --rev: the library's REV option (a page acts at most once)

{
    my $rev = $json->decode($r->cmd('GET', 'mpn:partner:p1'))->{rev};
    $res = mpnctl(@R, 'renew', 'p1', 'action_pack', '--rev', $rev,
                  '--now', $now);
    is_deeply([$res->{rc}, $res->{out}], [0, 'rev ' . ($rev + 1) . "\n"],
              'renew --rev N at the stored rev');
    $res = mpnctl(@R, 'renew', 'p1', 'action_pack', '--rev', $rev,
                  '--now', $now);
    ok($res->{rc} == 1 && $res->{err} =~ /CONFLICT/,
       'the same renew --rev N again: CONFLICT, exit 1');
    $res = mpnctl(@R, 'renew', 'p1', 'action_pack', '--rev', 'x');
    ok($res->{rc} == 2 && $res->{err} =~ /BAD_ARGUMENT --rev/,
       '--rev not a number: exit 2');
    $res = mpnctl(@R, 'get', 'p1', '--rev', 1);
    is($res->{rc}, 2, 'get does not take --rev');
}

# -------------------------------------------------------------------------
# init and the dataset marker; import writes it when missing

{
    $r->cmd('SELECT', 9);
    $res = mpnctl(@R, '--db', 9, 'init', '--now', '2026-03-01T00:00:00Z');
    is_deeply([$res->{rc}, $res->{out}], [0, "marker mpn:meta written\n"],
              'init writes the marker');
    is_deeply($json->decode($r->cmd('GET', 'mpn:meta') // 'null'),
              { v => 1, created_at => '2026-03-01T00:00:00Z' },
              'the marker is {"v":1,"created_at":RFC 3339}');
    $res = mpnctl(@R, '--db', 9, 'init');
    ok($res->{rc} == 0 && $res->{out} =~ /already present/,
       'init again leaves it as it was');
    like($r->cmd('GET', 'mpn:meta'), qr/2026-03-01T00:00:00Z/,
         'the first marker is kept');
    $res = mpnctl(@R, '--db', 9, 'init', '--marker', 'site:marker');
    ok($res->{rc} == 0 && defined $r->cmd('GET', 'site:marker'),
       'init --marker KEY');
    is(mpnctl(@R, 'init', '--marker', '')->{rc}, 2, 'an empty --marker: 2');

    my $in = write_file('mk.jsonl', $json->encode(record('mk1')) . "\n");
    $r->cmd('SELECT', 10);
    $res = mpnctl(@R, '--db', 10, 'import', $in);
    is($res->{rc}, 0, 'import into an empty database');
    like($res->{out}, qr/^marker mpn:meta written\nimported 1 of 1/,
         'import says it wrote the marker, and the summary stays last');
    ok(defined $r->cmd('GET', 'mpn:meta'), 'import wrote the missing marker');
    $res = mpnctl(@R, '--db', 10, 'import', $in, '--marker', 'other:meta');
    ok($res->{rc} == 0 && defined $r->cmd('GET', 'other:meta'),
       'import --marker KEY');
    my $before = $r->cmd('GET', 'mpn:meta');
    $res = mpnctl(@R, '--db', 10, 'import', $in);
    unlike($res->{out}, qr/marker/, 'an existing marker is not mentioned');
    is($r->cmd('GET', 'mpn:meta'), $before, 'nor rewritten');

    # import without the library: one line, nothing written
    $r->cmd('SELECT', 11);
    $r->cmd('FUNCTION', 'DELETE', 'mpn');
    $res = mpnctl(@R, '--db', 11, 'import', $in);
    is($res->{rc}, 1, 'import without the library exits 1');
    is($res->{out}, '', 'and prints nothing on stdout');
    my @l = split /\n/, $res->{err};
    is(scalar(@l), 1, 'it says so in one line');
    like($l[0] // '', qr/^mpnctl: import: the mpn Functions library is not loaded.*FUNCTION LOAD/,
         'which names the library and how to load it');
    is($r->cmd('DBSIZE'), 0, 'no marker without the library');
    $res = mpnctl(@R, 'renew', 'p1', 'action_pack');
    ok($res->{rc} == 1 && $res->{err} =~ /library is not loaded/,
       'a write command says the same');
    $srv->load_library;
    $r->cmd('SELECT', 0);
}

# -------------------------------------------------------------------------
# address forms

$res = mpnctl('--redis', 'unix:' . $srv->unix_socket, 'get', 'p1');
is($res->{rc}, 0, '--redis unix:/path');
$f = write_file('db.json', $json->encode(record('d1')));
$res = mpnctl('--redis', $srv->addr . ' db=3', 'put', $f);
is($res->{rc}, 0, '--redis "host:port db=3"');
$r->cmd('SELECT', 3);
ok(defined $r->cmd('GET', 'mpn:partner:d1'), 'the record went to db 3');
$r->cmd('SELECT', 0);
$res = mpnctl('--redis', '[::1', 'get', 'p1');
ok($res->{rc} == 2 && $res->{err} =~ /BAD_ARGUMENT invalid Redis address/,
   'a malformed address: BAD_ARGUMENT, exit 2');
$res = mpnctl('--redis', '127.0.0.1:1', 'get', 'p1');
ok($res->{rc} == 1 && $res->{err} =~ /cannot connect/,
   'no Redis: exit 1 with the reason');
{
    local $ENV{MPN_REDIS} = $srv->addr;
    is(mpnctl('get', 'p1')->{rc}, 0, '$MPN_REDIS is the default address');
}

# -------------------------------------------------------------------------
# import: 10,000 lines, 3 bad

my %badline = (17 => 'not json {', 5000 => 'V2', 9999 => 'NOID');
my @lines;
for my $n (1 .. 10000) {
    my $rec = record("imp$n", name => "Importer $n",
                     subscriptions => { action_pack => {
                         status => 'active', end => '2027-01-15T00:00:00Z',
                         auto_renew => JSON::PP::true,
                         benefits => { ems => 5 } } });
    my $b = $badline{$n} // '';
    $rec->{v} = 2 if $b eq 'V2';
    delete $rec->{partner_id} if $b eq 'NOID';
    push @lines, ($b eq 'not json {' ? $b : $json->encode($rec)) . "\n";
}
$f = write_file('import.jsonl', @lines);
$res = mpnctl(@R, '--db', 5, 'import', $f);
is($res->{rc}, 1, 'import with bad lines exits 1');
my @err = split /\n/, $res->{err};
is(scalar(@err), 3, 'one report per bad line, nothing else on stderr');
like($err[0] // '', qr/^mpnctl: line 17: BAD_RECORD not JSON/,
     'line 17 named: not JSON');
like($err[1] // '', qr/^mpnctl: line 5000: BAD_RECORD wrong "v"/,
     'line 5000 named: refused by the library');
like($err[2] // '', qr/^mpnctl: line 9999: BAD_RECORD partner_id/,
     'line 9999 named: no partner_id');
like((split /\n/, $res->{out})[-1] // '',
     qr/^imported 9997 of 10000 records, 3 bad lines, in [\d.]+ s/,
     'the last line is the summary with the exact count');
unlike($res->{out} . $res->{err}, qr/[\r\e]/,
       'no progress output when stderr is not a terminal');
$r->cmd('SELECT', 5);
is($r->cmd('DBSIZE'), 9998, '9,997 records stored, and the marker');
like($r->cmd('GET', 'mpn:partner:imp10000'), qr/"rev":1[,}]/,
     'the last line was imported');
$r->cmd('SELECT', 0);

$f = write_file('two.jsonl', $json->encode(record('i1')) . "\n\n",
                $json->encode(record('i2')) . "\r\n");
$res = mpnctl_in($f, @R, 'import');
ok($res->{rc} == 0 && $res->{out} =~ /^imported 2 of 2 records, 0 bad lines/m,
   'import from stdin: blank lines skipped, CRLF accepted, exit 0');

SKIP: {
    skip 'script(1) not installed', 2 unless -x '/usr/bin/script';
    my $cmd = join(' ', map { "'$_'" } $M, @R, 'import', $f);
    my $out = `/usr/bin/script -qec "$cmd" /dev/null 2>&1`;
    like($out, qr/\r\e\[K/, 'on a terminal: a progress line is drawn');
    like($out, qr/imported 2 of 2 records/,
         'and the summary still comes last');
}

# -------------------------------------------------------------------------
# expiring

{
    my $t0 = '2026-03-01T00:00:00Z';
    my @seed = (
        ['a', { ap => ['active', '2026-03-10T00:00:00Z', 1] }],
        ['b', { ap => ['active', '2026-03-30T23:59:59Z', 0] }],
        ['c', { ap => ['active', '2026-03-31T00:00:00Z', 1] }],   # edge: out
        ['d', { ap => ['expired', '2026-03-05T00:00:00Z', 0] }],
        ['e', { ap => ['cancelled', '2026-03-05T00:00:00Z', 0] }],
        ['f', { ap => ['active', '2026-02-28T00:00:00Z', 1] }],   # ended
        ['g', { ap => ['active', '2027-01-01T00:00:00Z', 1],
                cloud => ['active', '2026-03-01T00:00:00Z', 0] }],
    );
    my @cmds;
    for my $s (@seed) {
        my ($id, $subs) = @$s;
        my %subs = map { $_ => { status => $subs->{$_}[0],
                                 end => $subs->{$_}[1],
                                 auto_renew => $subs->{$_}[2]
                                     ? JSON::PP::true : JSON::PP::false } }
                   keys %$subs;
        push @cmds, ['SET', "mpn:partner:$id",
                     $json->encode(record($id, subscriptions => \%subs))];
    }
    push @cmds, ['SET', 'mpn:partner:h', $json->encode(record('h',
                 competencies => { cp => { level => 'gold',
                                           end => '2026-03-05T00:00:00Z' } }))];
    for my $n (1 .. 3000) {
        push @cmds, ['SET', "mpn:partner:fill$n",
                     $json->encode(record("fill$n", subscriptions => {
                         ap => { status => 'active',
                                 end => '2026-09-01T00:00:00Z' } }))];
    }
    push @cmds, ['SET', 'mpn:partner:junk', 'not json'];
    push @cmds, ['SET', 'other:a', 'x'];
    $r->cmd('SELECT', 6);
    $r->pipeline(@cmds);
    $r->cmd('CONFIG', 'RESETSTAT');

    $res = mpnctl(@R, '--db', 6, 'expiring', '--within', '30d',
                  '--now', $t0);
    is($res->{rc}, 0, 'expiring exits 0');
    is($res->{out},
       "g\tcloud\t2026-03-01T00:00:00Z\t0\tauto-renew=off\n"
       . "a\tap\t2026-03-10T00:00:00Z\t9\tauto-renew=on\n"
       . "b\tap\t2026-03-30T23:59:59Z\t29\tauto-renew=off\n",
       'expiring lists exactly the seeded partners, soonest first, '
       . 'marked auto-renewing or not');
    like($res->{err}, qr/1 unreadable record skipped/,
         'an unreadable record is counted, not fatal');
    my $stats = $r->cmd('INFO', 'commandstats');
    like($stats, qr/cmdstat_scan:calls=\d+/, 'expiring uses SCAN');
    unlike($stats, qr/cmdstat_keys:/, 'and never KEYS');

    $res = mpnctl(@R, '--db', 6, 'expiring', '--within', '10d', '--json',
                  '--now', ts($t0));
    is_deeply([map { $json->decode($_) } split /\n/, $res->{out}],
              [{ partner_id => 'g', offer => 'cloud',
                 end => '2026-03-01T00:00:00Z', days_left => 0,
                 auto_renew => JSON::PP::false },
               { partner_id => 'a', offer => 'ap',
                 end => '2026-03-10T00:00:00Z', days_left => 9,
                 auto_renew => JSON::PP::true }],
              'expiring --within 10d --json');
    $r->cmd('SELECT', 0);
}

# -------------------------------------------------------------------------
# tokens: signed by mpnctl, checked by the module's verifier

for my $alg (qw(HS256 RS256 ES256 EdDSA)) {
    my $k = mpnctl('keygen', '--alg', $alg, '--kid', "k-$alg");
    my $jwks = write_file("$alg.json", $k->{out});
    my $tok = mpnctl('token', '--jwks', $jwks, '--sub', '4412345',
                     '--exp', '1h', '--claim', 'tier=gold');
    is($tok->{rc}, 0, "token --alg from a $alg key");
    chomp(my $t = $tok->{out});
    my ($h) = split /\./, $t;
    $h =~ tr/-_/+\//;
    require MIME::Base64;
    like(MIME::Base64::decode_base64($h), qr/"alg":"\Q$alg\E"/,
         "the header names $alg");
    $res = mpnctl('verify', '--jwks', $jwks, $t);
    is_deeply([$res->{rc}, $res->{out}], [0, "4412345\n"],
              "the module's verifier accepts the $alg token");
}
{
    my $jwks = "$tmp/ES256.json";
    my $t = mpnctl('token', '--jwks', $jwks, '--sub', 'p1', '--now',
                   '2020-01-01T00:00:00Z', '--exp', '1h')->{out};
    chomp $t;
    $res = mpnctl('verify', '--jwks', $jwks, $t);
    ok($res->{rc} == 1 && $res->{err} =~ /token_expired/,
       'an expired token is token_expired');
    $res = mpnctl('verify', '--jwks', $jwks, '--now', '2020-01-01T00:30:00Z',
                  $t);
    is($res->{rc}, 0, 'and valid at a time inside its life');
    $res = mpnctl('token', '--jwks', "$tmp/nonexistent.json", '--sub', 'x');
    is($res->{rc}, 1, 'token with an unreadable JWKS exits 1');
    $res = mpnctl('token', '--jwks', $jwks);
    is($res->{rc}, 2, 'token without --sub exits 2');
}

# -------------------------------------------------------------------------
# token refuses a subject that is not a partner id; pubkeys

{
    my $jwks = "$tmp/ES256.json";
    for my $bad ('not an id', 'x' x 65, '', 'a/b') {
        $res = mpnctl('token', '--jwks', $jwks, '--sub', $bad);
        ok($res->{rc} == 2 && $res->{err} =~ /not a partner id/
           && $res->{out} eq '', "token --sub '$bad' is refused");
    }
    $res = mpnctl('token', '--jwks', $jwks, '--sub', 'p1', '--claim',
                  'sub=a b');
    ok($res->{rc} == 2 && $res->{err} =~ /not a partner id/,
       'a sub claim from --claim is checked too');
    $res = mpnctl('token', '--jwks', $jwks, '--claim', 'sub=5');
    ok($res->{rc} == 2 && $res->{err} =~ /not a string/,
       'a sub that is not a string is refused');
    $res = mpnctl('token', '--jwks', $jwks, '--claim', 'partner=p1');
    is($res->{rc}, 0, 'a token with the id in another claim has no sub');
    $res = mpnctl('token', '--jwks', $jwks, '--sub', '../x', '--any-sub');
    is($res->{rc}, 0, '--any-sub signs any subject (tokens the gate refuses)');

    # a set with one key of each kind
    my @keys;
    for my $alg (qw(RS256 ES256 EdDSA HS256)) {
        push @keys, @{$json->decode(mpnctl('keygen', '--alg', $alg, '--kid',
                                           "k-$alg")->{out})->{keys}};
    }
    my $set = write_file('mixed.json', $json->encode({ keys => \@keys }));
    $res = mpnctl('pubkeys', $set);
    is($res->{rc}, 0, 'pubkeys exits 0');
    my $pub = $json->decode($res->{out});
    is_deeply([map { $_->{kid} } @{$pub->{keys}}], [qw(k-RS256 k-ES256 k-EdDSA)],
              'every asymmetric key is kept, in order; the oct key is left out');
    my @priv = grep { my $k = $_; grep { exists $k->{$_} }
                      qw(d p q dp dq qi k) } @{$pub->{keys}};
    is(scalar(@priv), 0, 'no private member is left');
    is_deeply([sort keys %{$pub->{keys}[0]}], [sort grep { !/^(d|p|q|dp|dq|qi)$/ }
                                                keys %{$keys[0]}],
              'the RSA key keeps every public member (n, e, kid, alg, ...)');
    like($res->{err}, qr/key 3 \(kid "k-HS256"\) is oct.*no public half/,
         'the note on stderr names the oct key');
    my $pubf = write_file('pub.json', $res->{out});
    my $tok = mpnctl('token', '--jwks', $set, '--kid', 'k-ES256', '--sub', 'p1');
    chomp(my $t = $tok->{out});
    is(mpnctl('verify', '--jwks', $pubf, $t)->{out}, "p1\n",
       'the public set verifies a token the private one signed');
    $res = mpnctl('token', '--jwks', $pubf, '--kid', 'k-ES256', '--sub', 'p1');
    isnt($res->{rc}, 0, 'and cannot sign one');
    $res = mpnctl_in($set, 'pubkeys', '-');
    is($res->{rc}, 0, 'pubkeys - reads stdin');
    my $oct = write_file('oct.json', $json->encode({ keys => [$keys[3]] }));
    $res = mpnctl('pubkeys', $oct);
    ok($res->{rc} == 1 && $res->{out} eq '' && $res->{err} =~ /no public key/,
       'a set of only oct keys: nothing printed, exit 1');
    $res = mpnctl('pubkeys', write_file('notjwks.json', '[1]'));
    ok($res->{rc} == 1 && $res->{err} =~ /not a JWKS/, 'not a JWKS: exit 1');
    is(mpnctl('pubkeys')->{rc}, 2, 'pubkeys without FILE: exit 2');
}

# -------------------------------------------------------------------------
# usage ID [--reset BENEFIT] (spec section 12)

{
    my $end = time() + 20 * 86400;
    my $c = $srv->client;
    $c->cmd('FCALL', 'mpn_consume', 1, 'mpn:usage:u1:windows_enterprise:1767225600',
            10, 3, $end, 'IDEM', 'k1');
    $c->cmd('FCALL', 'mpn_consume', 1, 'mpn:usage:u1:windows_enterprise:1767225600',
            10, 2, $end, 'IDEM', 'k2');
    $c->cmd('FCALL', 'mpn_consume', 1, 'mpn:usage:u1:azure_credits:1764547200',
            100, 40, $end);
    $c->cmd('FCALL', 'mpn_consume', 1, 'mpn:usage:u1:azure_credits:1767225600',
            100, 5, $end);
    $c->cmd('FCALL', 'mpn_consume', 1, 'mpn:usage:u10:azure_credits:1767225600',
            100, 7, $end);          # another partner whose id starts alike
    $c->cmd('FCALL', 'mpn_consume', 1, 'site:use:u1:ems:1767225600', 5, 1, $end);
    my ($y, $m, $d, $H, $M, $S) = (gmtime($end + 86400))[5, 4, 3, 2, 1, 0];
    my $exp = sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $y + 1900, $m + 1, $d,
                      $H, $M, $S);

    $res = mpnctl(@R, 'usage', 'u1');
    is($res->{rc}, 0, 'usage ID exits 0');
    is($res->{out},
       "azure_credits\t2025-12-01T00:00:00Z\tused=40\ttokens=0\texpires=$exp\n"
       . "azure_credits\t2026-01-01T00:00:00Z\tused=5\ttokens=0\texpires=$exp\n"
       . "windows_enterprise\t2026-01-01T00:00:00Z\tused=5\ttokens=2\texpires=$exp\n",
       'every usage key of the partner (and only its own), every period, '
       . 'sorted; tokens counted');
    $res = mpnctl(@R, 'usage', 'u1', '--json');
    is_deeply($json->decode((split /\n/, $res->{out})[2] // 'null'),
              { benefit => 'windows_enterprise',
                period_start => '2026-01-01T00:00:00Z', used => 5,
                tokens => 2, expires => $exp }, 'usage --json');
    $res = mpnctl(@R, 'usage', 'u1', '--usage-prefix', 'site:use:');
    like($res->{out}, qr/^ems\t2026-01-01T00:00:00Z\tused=1\t/,
         '--usage-prefix');
    $res = mpnctl(@R, 'usage', 'nobody');
    ok($res->{rc} == 0 && $res->{out} eq '' && $res->{err} =~ /no usage/,
       'a partner without usage: nothing listed, a note on stderr');

    $res = mpnctl(@R, 'usage', 'u1', '--reset', 'azure_credits');
    is_deeply([$res->{rc}, $res->{out}],
              [0, "reset azure_credits of u1: 2 periods cleared\n"],
              'usage --reset BENEFIT clears that benefit, every period');
    is($c->cmd('EXISTS', 'mpn:usage:u1:azure_credits:1764547200',
               'mpn:usage:u1:azure_credits:1767225600'), 0, 'both keys gone');
    ok($c->cmd('EXISTS', 'mpn:usage:u10:azure_credits:1767225600')
       && $c->cmd('EXISTS', 'mpn:usage:u1:windows_enterprise:1767225600'),
       'another benefit and another partner untouched');
    $res = mpnctl(@R, 'usage', 'u1', '--reset', 'azure_credits');
    ok($res->{rc} == 1 && $res->{err} =~ /no usage of azure_credits/,
       'resetting what is not there: exit 1');
    $res = mpnctl(@R, 'usage', 'bad id');
    is($res->{rc}, 1, 'a malformed id: exit 1');
    is(mpnctl(@R, 'get', 'u1', '--reset', 'x')->{rc}, 2,
       'get does not take --reset');
}

# -------------------------------------------------------------------------
# issue 10: the same reach as the module (spec section 11): URLs, TLS,
# ACL users, Sentinel

# URL forms
$res = mpnctl('--redis', 'redis://127.0.0.1:' . $srv->port, 'get', 'p1');
is($res->{rc}, 0, '--redis redis://host:port');
$res = mpnctl('--redis', 'redis://localhost:' . $srv->port . '/3', 'get', 'd1');
is($res->{rc}, 0, '--redis redis://name:port/3: a host name, database 3');
$res = mpnctl('--redis', 'redis://ops:s3cr3t-on-cli@127.0.0.1:' . $srv->port,
              'get', 'p1');
ok($res->{rc} == 2 && $res->{err} =~ /a password never goes on the command line/,
   'user:password@ in the URL is refused (exit 2)');
unlike($res->{err}, qr/s3cr3t-on-cli/, 'and the refusal does not echo it');
$res = mpnctl('--redis', 'redis://127.0.0.1:' . $srv->port, '--tls-ca',
              '/nonexistent', 'get', 'p1');
ok($res->{rc} == 2 && $res->{err} =~ /need a rediss:/,
   '--tls-* without rediss:// is a usage error');
$res = mpnctl('--redis', $srv->addr, '--redis', $srv->addr, 'get', 'p1');
ok($res->{rc} == 1 && $res->{err} =~ /several --redis addresses are Sentinels/,
   'several addresses without --sentinel: refused');
$res = mpnctl('--redis', 'redis://127.0.0.1:99999', 'get', 'p1');
ok($res->{rc} == 2 && $res->{err} =~ /invalid Redis URL/, 'a bad URL: exit 2');

# TLS: a real redis-server with tls-port, certificates from the openssl CLI
my $pki = MpnTls->new($tmp);
{
    my $tls = MpnRedis->start(tls => $pki->redis_conf);
    $tls->load_library;
    my $url = 'rediss://127.0.0.1:' . $tls->tls_port;
    my @T = ('--redis', $url, '--tls-ca', $pki->ca);
    $f = write_file('tls1.json', $json->encode(record('tls1')));
    $res = mpnctl(@T, 'put', $f);
    is_deeply([$res->{rc}, $res->{out}], [0, "rev 1\n"],
              'put over TLS, the server verified against --tls-ca');
    is($tls->client->cmd('GET', 'mpn:partner:tls1') =~ /"rev":1/ ? 1 : 0, 1,
       'the record is in the TLS server');
    $res = mpnctl(@T, 'get', 'tls1');
    is($res->{rc}, 0, 'get over TLS');
    my @lines = map { $json->encode(record("tl$_")) . "\n" } 1 .. 2000;
    $res = mpnctl(@T, 'import', write_file('tls.jsonl', @lines));
    ok($res->{rc} == 0 && $res->{out} =~ /imported 2000 of 2000 records/,
       'import over TLS: 2,000 pipelined records');
    $res = mpnctl(@T, 'init');
    ok($res->{rc} == 0 && $res->{out} =~ /already present/,
       'init over TLS (import wrote the marker)');
    $res = mpnctl('--redis', 'rediss://localhost:' . $tls->tls_port,
                  '--tls-ca', $pki->ca, 'get', 'tls1');
    is($res->{rc}, 0, 'a DNS name checked against the certificate');
    $res = mpnctl('--redis', $url, '--tls-ca', $pki->other_ca,
                  'get', 'tls1');
    ok($res->{rc} == 1 && $res->{err} =~ /certificate was refused/,
       'the wrong CA: refused, exit 1') or diag($res->{err});
    $res = mpnctl('--redis', $url, 'get', 'tls1');
    ok($res->{rc} == 1 && $res->{err} =~ /certificate was refused/,
       'no --tls-ca: the system store does not know the test CA');
    $res = mpnctl(@T, '--tls-name', 'wrong.example', 'get', 'tls1');
    ok($res->{rc} == 1 && $res->{err} =~ /expected wrong\.example/,
       'a wrong --tls-name: refused, and named') or diag($res->{err});
    $res = mpnctl(@T, '--tls-name', 'localhost', 'get', 'tls1');
    is($res->{rc}, 0, '--tls-name localhost matches the certificate');
    $res = mpnctl('--redis', 'redis://127.0.0.1:' . $tls->tls_port,
                  'get', 'tls1');
    is($res->{rc}, 1, 'plain text to the TLS port fails, exit 1');
    $tls->stop;

    # a server that requires client certificates
    my $mtls = MpnRedis->start(tls => $pki->redis_conf(auth_clients => 'yes'));
    $url = 'rediss://127.0.0.1:' . $mtls->tls_port;
    $res = mpnctl('--redis', $url, '--tls-ca', $pki->ca, 'init');
    is($res->{rc}, 1, 'client certificates required, none given: exit 1');
    $res = mpnctl('--redis', $url, '--tls-ca', $pki->ca, '--tls-cert',
                  $pki->client_cert, '--tls-key', $pki->client_key,
                  'init', '--marker', 'mtls:meta');
    ok($res->{rc} == 0 && $res->{out} =~ /marker mtls:meta written/,
       'with --tls-cert and --tls-key: in');
    $res = mpnctl('--redis', $url, '--tls-ca', $pki->ca, '--tls-cert',
                  $pki->client_cert, 'init');
    ok($res->{rc} == 2 && $res->{err} =~ /go together/,
       '--tls-cert without --tls-key: exit 2');
    $mtls->stop;
}

# ACL users: one that may use the records, one that may not read keys
{
    $r->cmd('ACL', 'SETUSER', 'ops', 'on', '>ops-secret-1', '~mpn:*',
            '&mpn:*', '+@all');
    $r->cmd('ACL', 'SETUSER', 'nokeys', 'on', '>nokeys-secret-2', '+@all');
    my $pw = write_file('ops.pw', "ops-secret-1\n");
    my $url = 'redis://ops@127.0.0.1:' . $srv->port;
    $res = mpnctl('--redis', $url, '--password-file', $pw, 'get', 'p1');
    is($res->{rc}, 0, 'an ACL user: redis://USER@host:port --password-file');
    $res = mpnctl('--redis', $url, '--password-file', $pw, 'renew', 'p1',
                  'action_pack');
    is($res->{rc}, 0, 'which may write through the library');
    $res = mpnctl('--redis', "$url/5", '--password-file', $pw, 'get',
                  'imp1');
    is($res->{rc}, 0, 'AUTH then SELECT from the URL');
    my $bad = write_file('bad.pw', "not-the-password\n");
    $res = mpnctl('--redis', $url, '--password-file', $bad, 'get', 'p1');
    ok($res->{rc} == 1 && $res->{err} =~ /AUTH at 127\.0\.0\.1:\d+ as user ops: WRONGPASS/,
       'a wrong password: WRONGPASS, naming the server and the user');
    unlike($res->{err}, qr/not-the-password/, 'never the password');
    $pw = write_file('nokeys.pw', "nokeys-secret-2\n");
    $res = mpnctl('--redis', 'redis://nokeys@127.0.0.1:' . $srv->port,
                  '--password-file', $pw, 'get', 'p1');
    ok($res->{rc} == 1 && $res->{err} =~ /NOPERM/,
       'a user who may not read the keys: NOPERM, exit 1');
    unlike($res->{err}, qr/nokeys-secret-2/, 'and no password in it');
    $r->cmd('ACL', 'DELUSER', 'ops', 'nokeys');
}

# Sentinel: a primary, its replica, a Sentinel; the primary moves
{
    my $primary = MpnRedis->start;
    $primary->load_library;
    my $replica = MpnRedis->start(replica_of => $primary);
    my $sentinel = MpnRedis->start_sentinel(monitor => $primary,
                                            name => 'mpnprimary');
    my $dead = MpnRedis::free_port();
    my @S = ('--redis', "redis://127.0.0.1:$dead", '--redis',
             'redis://127.0.0.1:' . $sentinel->port, '--sentinel',
             'mpnprimary');
    $f = write_file('sen.json', $json->encode(record('sen1')));
    $res = mpnctl(@S, 'put', $f);
    is($res->{rc}, 0, 'put through Sentinel, the first Sentinel down');
    like($res->{err}, qr/Sentinel 127\.0\.0\.1:$dead: /,
         'the Sentinel that did not answer is named');
    ok(defined $primary->client->cmd('GET', 'mpn:partner:sen1'),
       'the write went to the primary');
    $res = mpnctl(@S[2 .. 3], '--sentinel', 'nosuch', 'get', 'sen1');
    ok($res->{rc} == 1 && $res->{err} =~ /does not know a primary named "nosuch"/,
       'an unknown primary name: exit 1');

    # SENTINEL FAILOVER once the replica is in sync and the Sentinel knows it
    my $s = $sentinel->client;
    for (1 .. 300) {
        last if $replica->client->cmd('INFO', 'replication')
                =~ /master_link_status:up/;
        sleep 0.1;
    }
    my $ok = 0;
    for (1 .. 300) {
        my $rep = $s->cmd('SENTINEL', 'FAILOVER', 'mpnprimary');
        if (!ref($rep) && $rep eq 'OK') { $ok = 1; last }
        sleep 0.1;
    }
    ok($ok, 'SENTINEL FAILOVER accepted');
    my $moved = 0;
    for (1 .. 300) {
        my $a = $s->cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mpnprimary');
        # the promotion ends with CLIENT KILL TYPE normal: a ROLE asked
        # at that moment sees its connection closed, and is asked again
        my $role = eval { $replica->client->cmd('ROLE') };
        if (ref $a eq 'ARRAY' && $a->[1] == $replica->port
            && ref $role eq 'ARRAY' && $role->[0] eq 'master')
        {
            $moved = 1;
            last;
        }
        sleep 0.1;
    }
    ok($moved, "the Sentinel names the replica as the primary")
        or diag($sentinel->log_tail, "\n", $replica->log_tail);
    $res = mpnctl(@S, 'renew', 'sen1', 'x', '--now', $now);
    ok($res->{rc} == 1 && $res->{err} =~ /NO_SUCH_OFFER/,
       'a write after the failover reaches the library');
    $res = mpnctl(@S, 'subscribe', 'sen1', 'action_pack', '--now', $now);
    is($res->{rc}, 0, 'and a write through the Sentinel succeeds');
    like($replica->client->cmd('GET', 'mpn:partner:sen1') // '',
         qr/"action_pack"/, 'on the new primary');

    # a Sentinel that names a server which is a replica (its view is
    # stale): ROLE says so, and nothing is written there
    my $stale = MpnRedis->start_sentinel(monitor => $replica, name => 'stale');
    $replica->client->cmd('REPLICAOF', '127.0.0.1', $primary->port);
    $res = mpnctl('--redis', 'redis://127.0.0.1:' . $stale->port,
                  '--sentinel', 'stale', 'init', '--marker', 'stale:meta');
    ok($res->{rc} == 1 && $res->{err} =~ /is not a primary/,
       'a primary named by a Sentinel that reports itself a replica is not used')
        or diag($res->{err});
    $stale->stop;
    $sentinel->stop;
    $replica->stop;
    $primary->stop;
}

# -------------------------------------------------------------------------
# --password-file (last: it turns on requirepass)

$r->cmd('CONFIG', 'SET', 'requirepass', 's3cret');
$res = mpnctl(@R, 'get', 'p1');
ok($res->{rc} == 1 && $res->{err} =~ /NOAUTH/,
   'without the password: NOAUTH, exit 1');
my $pw = write_file('pw', "s3cret\n");
$res = mpnctl(@R, '--password-file', $pw, 'get', 'p1');
is($res->{rc}, 0, '--password-file authenticates');
$res = mpnctl('--redis', $srv->addr . " password_file=$pw", 'get', 'p1');
is($res->{rc}, 0, 'password_file=PATH in the address');

$srv->stop;
done_testing();
