#!/usr/bin/perl

# The mpn Functions library (redis/mpn.lua) against a real redis-server:
# every rule and error code, calendar years, the auto-renew lock, rev and
# the one PUBLISH per write, and 1,000 concurrent renewals.

use strict;
use warnings;

use JSON::PP;
use POSIX qw(_exit);
use Test::More;
use Time::Local qw(timegm);

use lib 't/lib';
use MpnRedis;

plan(skip_all => 'redis-server not installed')
    unless MpnRedis::redis_server_path();

my $srv = MpnRedis->start;
is($srv->load_library, 'mpn', 'FUNCTION LOAD REPLACE loads library mpn');

my $r = $srv->client;
my $json = JSON::PP->new->canonical;
my $P = 'mpn:partner:';

# a subscriber on the default channel and one on a custom channel
my $sub = $srv->client;
is_deeply($sub->cmd('SUBSCRIBE', 'mpn:invalidate'),
          ['subscribe', 'mpn:invalidate', 1], 'subscribed to mpn:invalidate');
my $sub2 = $srv->client;
$sub2->cmd('SUBSCRIBE', 'billing:inv');

# messages received since the last call: a PING is answered after every
# message published before it
sub published {
    my ($s) = @_;
    $s->send_raw(MpnRedis::Client::encode('PING'));
    my @got;
    while (1) {
        my $m = $s->reply(5);
        die 'no PONG from the subscriber' unless defined $m;
        last if ref($m) eq 'ARRAY' && $m->[0] eq 'pong';
        push @got, $m->[2] if ref($m) eq 'ARRAY' && $m->[0] eq 'message';
    }
    return \@got;
}

sub ts {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $se) =
        $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/ or die $s;
    return timegm($se, $mi, $h, $d, $mo - 1, $y);
}

sub record {
    my ($id, %over) = @_;
    return { v => 1, partner_id => $id, name => "Partner $id",
             network => JSON::PP::true, status => 'active', %over };
}

sub put {
    my ($id, $rec, @extra) = @_;
    my $text = ref($rec) ? $json->encode($rec) : $rec;
    return $r->cmd('FCALL', 'mpn_put', 1, "$P$id", $text, @extra);
}

sub fcall {
    my ($fn, $id, @args) = @_;
    return $r->cmd('FCALL', "mpn_$fn", 1, "$P$id", @args);
}

# runs $n children at once, each given its own client; returns what each
# returned (a number from 0 to 254; 255 when it died)
sub concurrently {
    my ($n, $code) = @_;
    my @pids;
    for (1 .. $n) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my $v = eval { $code->($srv->client) };
            _exit(defined $v ? $v : 255);
        }
        push @pids, $pid;
    }
    return map { waitpid($_, 0); $? >> 8 } @pids;
}

sub raw { $r->cmd('GET', "$P$_[0]") }
sub get { my $v = raw($_[0]); defined $v ? $json->decode($v) : undef }
sub code { MpnRedis::err_code($_[0]) // "not an error: " . ($_[0] // 'nil') }

published($sub);

# -------------------------------------------------------------------------
# flags: writes are not no-writes

{
    my $list = $r->cmd('FUNCTION', 'LIST', 'LIBRARYNAME', 'mpn');
    my %lib = @{$list->[0]};
    my %flags = map { my %f = @$_; ($f{name} => $f{flags}) }
                @{$lib{functions}};
    is_deeply([sort keys %flags],
              [qw(mpn_cancel mpn_consume mpn_put mpn_renew
                  mpn_set_auto_renew mpn_subscribe)],
              'the library registers the six functions');
    ok(!grep({ grep { $_ eq 'no-writes' } @$_ } values %flags),
       'no function is flagged no-writes');
    my $e = $r->cmd('FCALL_RO', 'mpn_put', 1, "${P}ro",
                    $json->encode(record('ro')));
    ok(ref($e) eq 'MpnRedis::Error' && !defined raw('ro'),
       'FCALL_RO refuses mpn_put (a write on a read-only path)');
}

# -------------------------------------------------------------------------
# mpn_put: store, rev, updated_at, publish

is(put('p1', record('p1', rev => 41)), 1, 'put a new record: rev 1');
my $p1 = get('p1');
is($p1->{rev}, 1, 'rev in the input is ignored: the library owns rev');
like($p1->{updated_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'updated_at is RFC 3339 UTC');
ok(abs(ts($p1->{updated_at}) - time()) < 10,
   'updated_at comes from the server clock');
is(put('p1', record('p1')), 2, 'put again: rev 2');
is_deeply(published($sub), ['p1', 'p1'], 'one PUBLISH of the id per put');

like(raw('p1'), qr/"rev":2[,}]/, 'rev is written as an integer (no ".0")');

# unknown fields kept, objects stay objects, integers stay integers
put('p2', record('p2', extra => { list => [1, 2, 3], empty => {} },
                 subscriptions => {},
                 competencies => { cloud_platform => {
                     level => 'gold', benefits => { advisory_hours => 20 } } }));
my $p2raw = raw('p2');
like($p2raw, qr/"subscriptions":\{\}/, 'an empty object stays {}');
like($p2raw, qr/"list":\[1,2,3\]/, 'an unknown array is kept');
like($p2raw, qr/"advisory_hours":20[,}]/, 'benefit counts stay integers');
unlike($p2raw, qr/\d\.0[,}\]]/, 'no integer is written as a float');

# a float-looking integer in the input is written back as an integer
put('p3', '{"v":1.0,"partner_id":"p3","network":true,"status":"active",'
        . '"competencies":{"a":{"level":"silver","benefits":{"x":10.0}}}}');
like(raw('p3'), qr/"x":10[,}]/, '10.0 is stored as 10');
like(raw('p3'), qr/"v":1[,}]/, 'v 1.0 is stored as 1');

# the module's parser reads what the library writes
SKIP: {
    my $mpnctl = "$MpnRedis::ROOT/build/mpnctl";
    skip 'build/mpnctl not built', 3 unless -x $mpnctl;
    for my $id (qw(p1 p2 p3)) {
        my $err = `$mpnctl --redis ${\ $srv->addr} get $id 2>&1 >/dev/null`;
        is($err, '', "the module's record parser accepts stored $id");
    }
}

published($sub);

# -------------------------------------------------------------------------
# BAD_RECORD: each refused, stored value unchanged, nothing published

my $before = raw('p1');
my %bad = (
    'not JSON'                    => '{"v":1,',
    'not an object'               => '[1,2]',
    'v missing'                   => { partner_id => 'p1',
                                       network => JSON::PP::true },
    'v 2'                         => record('p1', v => 2),
    'partner_id mismatch'         => record('p9'),
    'partner_id bad characters'   => record('p 1'),
    'network not boolean'         => record('p1', network => 'yes'),
    'status unknown'              => record('p1', status => 'paused'),
    'rev negative'                => record('p1', rev => -1),
    'subscriptions an array'      => record('p1', subscriptions => [1]),
    'subscription status'         => record('p1', subscriptions => {
        ap => { status => 'on', end => '2027-01-15T00:00:00Z' } }),
    'subscription end missing'    => record('p1', subscriptions => {
        ap => { status => 'active' } }),
    'end not a date'              => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-01-15' } }),
    'end not UTC'                 => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-01-15T00:00:00+02:00' } }),
    'end 30 February'             => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-02-30T00:00:00Z' } }),
    'start not a date'            => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-01-15T00:00:00Z',
                start => 'yesterday' } }),
    'auto_renew not boolean'      => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-01-15T00:00:00Z',
                auto_renew => 1 } }),
    'benefit not integer'         => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-01-15T00:00:00Z',
                benefits => { ems => 1.5 } } }),
    'benefit negative'            => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-01-15T00:00:00Z',
                benefits => { ems => -1 } } }),
    'benefits an array'           => record('p1', subscriptions => {
        ap => { status => 'active', end => '2027-01-15T00:00:00Z',
                benefits => [1] } }),
    'competency level'            => record('p1', competencies => {
        cp => { level => 'platinum' } }),
    'competency end'              => record('p1', competencies => {
        cp => { level => 'gold', end => 'never' } }),
    'grant name too long'         => record('p1', competencies => {
        ('x' x 65) => { level => 'gold' } }),
    'too large'                   => record('p1', pad => 'x' x 70000),
);
for my $what (sort keys %bad) {
    is(code(put('p1', $bad{$what})), 'BAD_RECORD', "BAD_RECORD: $what");
}
is(raw('p1'), $before, 'a refused record leaves the stored value unchanged');
is_deeply(published($sub), [], 'a refused write publishes nothing');

# -------------------------------------------------------------------------
# BAD_ARGUMENT, NO_SUCH_PARTNER, NO_SUCH_OFFER

my $now = ts('2026-03-10T12:00:00Z');
is(code($r->cmd('FCALL', 'mpn_put', 0, $json->encode(record('p1')))),
   'BAD_ARGUMENT', 'BAD_ARGUMENT: no key');
is(code(put('p1', $json->encode(record('p1')), 'extra')), 'BAD_ARGUMENT',
   'BAD_ARGUMENT: too many arguments to mpn_put');
is(code(fcall('subscribe', 'p1', 'action_pack')), 'BAD_ARGUMENT',
   'BAD_ARGUMENT: subscribe without now');
is(code(fcall('subscribe', 'p1', 'action_pack', 'tomorrow')),
   'BAD_ARGUMENT', 'BAD_ARGUMENT: now not a number');
is(code(fcall('subscribe', 'p1', 'action_pack', '-5')), 'BAD_ARGUMENT',
   'BAD_ARGUMENT: negative now');
is(code(fcall('subscribe', 'p1', 'action pack', $now)), 'BAD_ARGUMENT',
   'BAD_ARGUMENT: offer with a space');
is(code(fcall('subscribe', 'p1', 'action_pack', $now, '[1]')),
   'BAD_ARGUMENT', 'BAD_ARGUMENT: benefits_json not an object');
is(code(fcall('subscribe', 'p1', 'action_pack', $now, '{"ems":"five"}')),
   'BAD_ARGUMENT', 'BAD_ARGUMENT: benefits_json with a non-integer');
is(code(fcall('set_auto_renew', 'p1', 'action_pack', 'maybe')),
   'BAD_ARGUMENT', 'BAD_ARGUMENT: auto-renew neither on nor off');
is(code(put('p1', $json->encode(record('p1')), 'CHANNEL', '')),
   'BAD_ARGUMENT', 'BAD_ARGUMENT: empty channel');
is(raw('p1'), $before, 'malformed arguments write nothing');

for my $fn (['subscribe', 'action_pack', $now], ['renew', 'ap', $now],
            ['set_auto_renew', 'ap', 'off'], ['cancel', 'ap'])
{
    is(code(fcall($fn->[0], 'nobody', @$fn[1 .. $#$fn])), 'NO_SUCH_PARTNER',
       "NO_SUCH_PARTNER: $fn->[0] of a missing record");
}
ok(!defined raw('nobody'), 'no record is created for a missing partner');

for my $fn (['renew', $now], ['set_auto_renew', 'on'], ['cancel']) {
    is(code(fcall($fn->[0], 'p1', 'action_pack', @$fn[1 .. $#$fn])),
       'NO_SUCH_OFFER', "NO_SUCH_OFFER: $fn->[0] of a subscription "
       . "the partner does not have");
}
is(code(fcall('subscribe', 'p1', 'mystery', $now)), 'NO_SUCH_OFFER',
   'NO_SUCH_OFFER: subscribe to an offer with no default benefits');
is(raw('p1'), $before, 'refused calls write nothing');
is_deeply(published($sub), [], 'refused calls publish nothing');

# a stored value the library cannot read is BAD_RECORD, and put repairs it
$r->cmd('SET', "${P}junk", '{"v":1,"partner_id":"junk"');
is(code(fcall('cancel', 'junk', 'action_pack')), 'BAD_RECORD',
   'BAD_RECORD: a write on top of an unreadable stored value');
is($r->cmd('GET', "${P}junk"), '{"v":1,"partner_id":"junk"',
   'the unreadable value is left as it was');
is(put('junk', record('junk')), 1, 'mpn_put replaces an unreadable value');

# -------------------------------------------------------------------------
# mpn_subscribe

put('net', record('net', network => JSON::PP::false));
is(code(fcall('subscribe', 'net', 'action_pack', $now)), 'NOT_MEMBER',
   'NOT_MEMBER: subscribe without network membership');
put('nonet', { v => 1, partner_id => 'nonet' });
is(code(fcall('subscribe', 'nonet', 'action_pack', $now)), 'NOT_MEMBER',
   'NOT_MEMBER: a record without "network" is not a member');
published($sub);

put('s1', record('s1'));
my $rev = get('s1')->{rev};
my $leap = ts('2024-02-29T13:45:10Z');
is(fcall('subscribe', 's1', 'action_pack', $leap), $rev + 1,
   'subscribe returns the new rev');
my $ap = get('s1')->{subscriptions}{action_pack};
is($ap->{start}, '2024-02-29T13:45:10Z', 'subscribe starts at now');
is($ap->{end}, '2025-02-28T13:45:10Z',
   'leap day: subscribed 2024-02-29 ends 2025-02-28, same time of day');
is($ap->{status}, 'active', 'a new subscription is active');
ok($ap->{auto_renew} && JSON::PP::is_bool($ap->{auto_renew}),
   'a new subscription auto-renews');
is_deeply($ap->{benefits},
          { developer_tools => 1, windows_enterprise => 10,
            visual_studio_pro => 3, vsts => 1, office365_e3 => 10, ems => 5,
            dynamics_crm => 5, azure_credits => 100 },
          'action_pack gets the Action Pack benefits by default');
is(get('s1')->{updated_at}, '2024-02-29T13:45:10Z',
   'updated_at comes from now when the function takes one');

is(code(fcall('subscribe', 's1', 'action_pack', $leap + 86400)),
   'ALREADY_ACTIVE', 'ALREADY_ACTIVE: subscribe while the offer is current');
like(fcall('subscribe', 's1', 'action_pack', $leap + 86400)->msg,
     qr/renew/, 'the ALREADY_ACTIVE text says to renew instead');
is(fcall('subscribe', 's1', 'cloud_plus', $leap + 86400,
         '{"azure_credits":500}'), $rev + 2,
   'subscribing to another offer while action_pack is current is allowed');
is_deeply(get('s1')->{subscriptions}{cloud_plus}{benefits},
          { azure_credits => 500 }, 'benefits_json gives the benefits');
is(get('s1')->{subscriptions}{action_pack}{end}, '2025-02-28T13:45:10Z',
   'the other subscription is untouched');

# once it has ended, subscribing again starts a new year
is(fcall('subscribe', 's1', 'action_pack', ts('2025-03-01T00:00:00Z')),
   $rev + 3, 'subscribe after the end of the offer is allowed');
is(get('s1')->{subscriptions}{action_pack}{end}, '2026-03-01T00:00:00Z',
   'the new subscription runs a year from now');

# a cancelled subscription can be subscribed to again
fcall('cancel', 's1', 'action_pack');
is(get('s1')->{subscriptions}{action_pack}{status}, 'cancelled',
   'mpn_cancel sets status cancelled');
ok(!get('s1')->{subscriptions}{action_pack}{auto_renew},
   'a cancelled subscription does not auto-renew');
ok(!ref(fcall('subscribe', 's1', 'action_pack', ts('2025-06-01T00:00:00Z'))),
   'subscribe after a cancellation is allowed');
is(get('s1')->{subscriptions}{action_pack}{status}, 'active',
   'and makes it active');

# -------------------------------------------------------------------------
# calendar years

for my $case (['2026-01-15T00:00:00Z', '2027-01-15T00:00:00Z'],
              ['2025-12-31T23:59:59Z', '2026-12-31T23:59:59Z'],
              ['2023-02-28T08:00:00Z', '2024-02-28T08:00:00Z'],
              ['2028-02-29T00:00:00Z', '2029-02-28T00:00:00Z'],
              ['2099-03-01T00:00:00Z', '2100-03-01T00:00:00Z'],
              ['1970-01-01T00:00:00Z', '1971-01-01T00:00:00Z'])
{
    put('cal', record('cal'));
    fcall('subscribe', 'cal', 'action_pack', ts($case->[0]));
    is(get('cal')->{subscriptions}{action_pack}{end}, $case->[1],
       "one year after $case->[0] is $case->[1]");
}

# -------------------------------------------------------------------------
# mpn_renew: from max(end, now)

sub with_ap {
    my ($id, %ap) = @_;
    put($id, record($id, subscriptions => { action_pack => {
        status => 'active', start => '2025-01-15T00:00:00Z',
        end => '2026-01-15T00:00:00Z', auto_renew => JSON::PP::true,
        benefits => { ems => 5 }, %ap } }));
}

with_ap('r1');
fcall('renew', 'r1', 'action_pack', ts('2025-12-01T00:00:00Z'));
is(get('r1')->{subscriptions}{action_pack}{end}, '2027-01-15T00:00:00Z',
   'renew before end: end + 1 year (no days lost)');
is(get('r1')->{updated_at}, '2025-12-01T00:00:00Z',
   'renew sets updated_at from now');

with_ap('r2', status => 'expired', auto_renew => JSON::PP::false);
fcall('renew', 'r2', 'action_pack', ts('2026-05-20T10:30:00Z'));
$ap = get('r2')->{subscriptions}{action_pack};
is($ap->{end}, '2027-05-20T10:30:00Z',
   'renew after end: now + 1 year');
is($ap->{status}, 'active', 'renew makes an expired subscription active');
ok($ap->{auto_renew}, 'renew turns auto-renew on');
is($ap->{start}, '2025-01-15T00:00:00Z', 'renew keeps start');
is_deeply($ap->{benefits}, { ems => 5 }, 'renew keeps the benefits');

with_ap('r3', end => '2024-02-29T00:00:00Z');
fcall('renew', 'r3', 'action_pack', ts('2024-01-01T00:00:00Z'));
is(get('r3')->{subscriptions}{action_pack}{end}, '2025-02-28T00:00:00Z',
   'renew of an end on 29 Feb: 28 Feb next year');

with_ap('late');
is(code(fcall('renew', 'late', 'action_pack', ts('9999-06-01T00:00:00Z'))),
   'BAD_ARGUMENT', 'BAD_ARGUMENT: renewing into the year 10000');

with_ap('r4', end => '2026-01-15T00:00:00Z');
fcall('renew', 'r4', 'action_pack', ts('2026-01-15T00:00:00Z'));
is(get('r4')->{subscriptions}{action_pack}{end}, '2027-01-15T00:00:00Z',
   'renew exactly at end');

# -------------------------------------------------------------------------
# the auto-renew lock

with_ap('lock');
published($sub);
my $lrev = get('lock')->{rev};
is(fcall('set_auto_renew', 'lock', 'action_pack', 'off'), $lrev + 1,
   'auto-renew off is allowed');
$ap = get('lock')->{subscriptions}{action_pack};
ok(JSON::PP::is_bool($ap->{auto_renew}) && !$ap->{auto_renew},
   'auto_renew is false (which is the lock)');
is(fcall('set_auto_renew', 'lock', 'action_pack', 'off'), $lrev + 2,
   'off again is allowed');
my $locked = raw('lock');
is(code(fcall('set_auto_renew', 'lock', 'action_pack', 'on')),
   'RENEW_REQUIRED', 'RENEW_REQUIRED: on refused once turned off');
is(raw('lock'), $locked, 'the refused call changes nothing');
fcall('renew', 'lock', 'action_pack', ts('2025-12-01T00:00:00Z'));
$ap = get('lock')->{subscriptions}{action_pack};
ok($ap->{auto_renew}, 'renew turns auto-renew on');
is(fcall('set_auto_renew', 'lock', 'action_pack', 'off'), $lrev + 4,
   'after renewal: off allowed');
with_ap('lock2');
is(fcall('set_auto_renew', 'lock2', 'action_pack', 'on'),
   get('lock2')->{rev}, 'on is allowed while never turned off');
fcall('renew', 'lock', 'action_pack', ts('2025-12-01T00:00:00Z'));
is(fcall('set_auto_renew', 'lock', 'action_pack', 'on'), $lrev + 6,
   'after renewal: on allowed');
is(get('lock')->{rev}, $lrev + 6, 'rev went up by one per write');
is_deeply(published($sub), [('lock') x 4, 'lock2', 'lock2', 'lock', 'lock'],
          'exactly one PUBLISH per write, none for the refused one');

# -------------------------------------------------------------------------
# the channel argument

is(put('ch', record('ch'), 'CHANNEL', 'billing:inv'), 1,
   'put with CHANNEL billing:inv');
with_ap('ch');
is(fcall('renew', 'ch', 'action_pack', $now, 'channel', 'billing:inv'), 3,
   'renew with a trailing channel argument');
is_deeply(published($sub2), ['ch', 'ch'],
          'the named channel gets the writes that name it');
is_deeply(published($sub), ['ch'],
          'the default channel only gets the one without CHANNEL');

# -------------------------------------------------------------------------
# issue 9: the lifecycle rules of section 9, exactly

# the record's partner_id is the key's id exactly, and that id is published
is(code($r->cmd('FCALL', 'mpn_put', 1, "${P}12345",
                $json->encode(record('2345')))), 'BAD_RECORD',
   'BAD_RECORD: partner_id 2345 under key mpn:partner:12345 (a suffix)');
is(code($r->cmd('FCALL', 'mpn_put', 1, "${P}x12345",
                $json->encode(record('12345')))), 'BAD_RECORD',
   'BAD_RECORD: partner_id 12345 under key mpn:partner:x12345');
is($r->cmd('FCALL', 'mpn_put', 1, 'tenant7/12345',
           $json->encode(record('12345'))), 1,
   'the key id stops at the first non-id character (tenant7/12345)');
is_deeply(published($sub), ['12345'], 'the id published is the key\'s');
{
    my $long = 'a' x 70;
    is($r->cmd('FCALL', 'mpn_put', 1, "$P$long",
               $json->encode(record('a' x 64))), 1,
       'a key ending in 70 id characters: the id is the last 64');
    is(code($r->cmd('FCALL', 'mpn_put', 1, 'mpn:partner:',
                    $json->encode(record('x')))), 'BAD_ARGUMENT',
       'BAD_ARGUMENT: a key that ends in no id');
    published($sub);
}

# auto-renew, once off for any reason, comes back only through a renewal
with_ap('ar1');
fcall('cancel', 'ar1', 'action_pack');
is(code(fcall('set_auto_renew', 'ar1', 'action_pack', 'on')),
   'RENEW_REQUIRED', 'RENEW_REQUIRED: on after mpn_cancel');
with_ap('ar2', auto_renew => JSON::PP::false);
my $ar2 = raw('ar2');
is(code(fcall('set_auto_renew', 'ar2', 'action_pack', 'on')),
   'RENEW_REQUIRED', 'RENEW_REQUIRED: on for a record written with it false');
is(raw('ar2'), $ar2, 'the refused call writes nothing');
is(code(put('ar2', record('ar2', subscriptions => { action_pack => {
        status => 'active', end => '2026-01-15T00:00:00Z',
        auto_renew => JSON::PP::true } }))),
   'RENEW_REQUIRED', 'RENEW_REQUIRED: mpn_put turning it on with the same end');
ok(!ref(put('ar2', record('ar2', subscriptions => { action_pack => {
        status => 'active', end => '2027-01-15T00:00:00Z',
        auto_renew => JSON::PP::true } }))),
   'mpn_put turning it on with a later end (a renewal) is allowed');
with_ap('ar3', auto_renew => JSON::PP::false);
fcall('renew', 'ar3', 'action_pack', $now);
is(fcall('set_auto_renew', 'ar3', 'action_pack', 'off'), get('ar3')->{rev},
   'after a renewal, off again');
is(code(fcall('set_auto_renew', 'ar3', 'action_pack', 'on')),
   'RENEW_REQUIRED', 'and on refused again until the next renewal');

# a suspended partner can neither subscribe nor renew
put('susp', record('susp', status => 'suspended', subscriptions => {
    action_pack => { status => 'expired', end => '2026-01-15T00:00:00Z',
                     auto_renew => JSON::PP::false } }));
published($sub);
my $susp = raw('susp');
is(code(fcall('renew', 'susp', 'action_pack', $now)), 'SUSPENDED',
   'SUSPENDED: renew of a suspended partner');
is(code(fcall('subscribe', 'susp', 'action_pack', $now)), 'SUSPENDED',
   'SUSPENDED: subscribe of a suspended partner');
is(code(fcall('subscribe', 'susp', 'other', $now, '{"ems":1}')), 'SUSPENDED',
   'SUSPENDED: subscribe to another offer');
is(raw('susp'), $susp, 'a suspended partner\'s record is unchanged');
is_deeply(published($sub), [], 'and nothing is published');
ok(!ref(fcall('cancel', 'susp', 'action_pack')),
   'cancel of a suspended partner is still allowed');

# REV n: CONFLICT unless the stored rev is n, on every function
with_ap('rv');
my $rv = get('rv')->{rev};
published($sub);
is(fcall('renew', 'rv', 'action_pack', $now, 'REV', $rv), $rv + 1,
   'renew with REV = the stored rev');
my $rvraw = raw('rv');
is(code(fcall('renew', 'rv', 'action_pack', $now, 'REV', $rv)), 'CONFLICT',
   'CONFLICT: the same renew again (a double click, the back button)');
is(raw('rv'), $rvraw, 'the second renew added no year');
like(eval { fcall('renew', 'rv', 'action_pack', $now, 'REV', $rv)->msg } // '',
     qr/rev \Q${\($rv + 1)}\E/, 'the CONFLICT text names the stored rev');
for my $fn (['subscribe', 'extra', $now, '{"ems":1}'],
            ['set_auto_renew', 'action_pack', 'off'],
            ['cancel', 'action_pack'])
{
    is(code(fcall($fn->[0], 'rv', @$fn[1 .. $#$fn], 'REV', $rv)), 'CONFLICT',
       "CONFLICT: $fn->[0] with a stale REV");
}
is(code(put('rv', record('rv'), 'REV', $rv)), 'CONFLICT',
   'CONFLICT: put with a stale REV');
is(raw('rv'), $rvraw, 'no stale call wrote');
is_deeply(published($sub), ['rv'], 'only the first renew published');
is(fcall('subscribe', 'rv', 'extra', $now, '{"ems":1}', 'REV', $rv + 1),
   $rv + 2, 'subscribe with benefits_json and REV');
is(fcall('cancel', 'rv', 'extra', 'rev', $rv + 2, 'CHANNEL', 'billing:inv'),
   $rv + 3, 'REV and CHANNEL together, in either order, any case');
is(fcall('set_auto_renew', 'rv', 'action_pack', 'off', 'CHANNEL',
         'billing:inv', 'REV', $rv + 3), $rv + 4, 'CHANNEL then REV');
is_deeply(published($sub2), ['rv', 'rv'], 'both went to the named channel');
is(put('newrec', record('newrec'), 'REV', 0), 1,
   'put REV 0 of a missing record creates it');
is(code(put('newrec', record('newrec'), 'REV', 0)), 'CONFLICT',
   'and a second put REV 0 is a CONFLICT');
is(code(fcall('cancel', 'rv', 'extra', 'REV', 'x')), 'BAD_ARGUMENT',
   'BAD_ARGUMENT: REV not a number');
is(code(fcall('cancel', 'rv', 'extra', 'REV', 1, 'REV', 1)), 'BAD_ARGUMENT',
   'BAD_ARGUMENT: REV twice');
is(code(fcall('cancel', 'rv', 'extra', 'FOO', 1)), 'BAD_ARGUMENT',
   'BAD_ARGUMENT: an unknown option');
is(code(fcall('renew', 'nobody', 'action_pack', $now, 'REV', 3)),
   'NO_SUCH_PARTNER', 'NO_SUCH_PARTNER comes before CONFLICT');
published($sub);
published($sub2);

# an offer named "channel" (or "rev") is an offer, not an option
put('ch2', record('ch2', subscriptions => { channel => {
    status => 'active', end => '2026-01-15T00:00:00Z',
    auto_renew => JSON::PP::true } }));
is(fcall('set_auto_renew', 'ch2', 'channel', 'off'), 2,
   'set_auto_renew of an offer named channel');
is(fcall('renew', 'ch2', 'channel', $now), 3, 'renew of an offer named channel');
is(fcall('cancel', 'ch2', 'channel'), 4, 'cancel of an offer named channel');
is(fcall('subscribe', 'ch2', 'rev', $now, '{"ems":1}'), 5,
   'subscribe to an offer named rev');
is(get('ch2')->{subscriptions}{channel}{status}, 'cancelled',
   'the offer named channel was the one written');
is_deeply(published($sub), [('ch2') x 5],
          'on the default channel, not one named "off"');

# an unknown field holding [] stays an array; [] where an object is read
# is BAD_RECORD
put('arr', record('arr', tags => [], nested => { list => [ ], obj => {} },
                  text => '[]'));
my $arr = raw('arr') // '';
like($arr, qr/"tags":\[\]/, 'an unknown empty array stays []');
like($arr, qr/"list":\[\]/, 'a nested empty array stays []');
like($arr, qr/"obj":\{\}/, 'an empty object stays {}');
like($arr, qr/"text":"\[\]"/, 'a string "[]" stays a string');
fcall('subscribe', 'arr', 'action_pack', $now);
like(raw('arr') // '', qr/"tags":\[\]/, 'and survives a later write');
is(code(put('arr', '{"v":1,"partner_id":"arr","subscriptions":[]}')),
   'BAD_RECORD', 'BAD_RECORD: subscriptions []');
is(code(put('arr', '{"v":1,"partner_id":"arr","subscriptions":{"ap":'
        . '{"status":"active","end":"2027-01-15T00:00:00Z","benefits":[]}}}')),
   'BAD_RECORD', 'BAD_RECORD: benefits []');
is(code(put('arr', '{"v":1,"partner_id":"arr","competencies":[ ]}')),
   'BAD_RECORD', 'BAD_RECORD: competencies [ ]');
published($sub);

# -------------------------------------------------------------------------
# mpn_consume (spec section 12): metered benefits

sub consume { $r->cmd('FCALL', 'mpn_consume', 1, @_) }

{
    published($sub);
    my $U = 'mpn:usage:c1:windows_enterprise:1767225600';
    my $end = time() + 30 * 86400;
    is_deeply(consume($U, 10, 3, $end), [3, 'ok'], 'consume 3 of 10: [3, ok]');
    is_deeply(consume($U, 10, 7, $end), [10, 'ok'],
              'consume up to the allowance exactly');
    my $e = consume($U, 10, 1, $end);
    is(code($e), 'QUOTA', 'QUOTA past the allowance');
    like(ref $e ? $e->msg : '', qr/used 10 of 10/, 'which says how much');
    is($r->cmd('HGET', $U, 'used'), 10, 'a refused consumption takes nothing');
    is($r->cmd('EXPIRETIME', $U), $end + 86400,
       'the usage key expires a day after the period ends');
    is_deeply(published($sub), [], 'consuming publishes nothing');

    my $V = 'mpn:usage:c1:licence:1767225600';
    is_deeply(consume($V, 3, 1, $end, 'IDEM', 'req-1'), [1, 'ok'],
              'IDEM req-1: taken');
    is_deeply(consume($V, 3, 1, $end, 'IDEM', 'req-1'), [1, 'repeat'],
              'IDEM req-1 again: repeat, nothing taken');
    ok($r->cmd('HEXISTS', $V, 'idem:req-1'), 'the hash holds idem:req-1');
    is_deeply(consume($V, 3, 1, $end, 'idem', 'req-2'), [2, 'ok'],
              'another token is taken (idem in any case)');
    is_deeply(consume($V, 3, 1, $end, 'IDEM', ''), [3, 'ok'],
              'an empty token is no token');
    is_deeply(consume($V, 3, 1, $end, 'IDEM', 'req-2'), [3, 'repeat'],
              'a recorded token at the allowance is still a repeat, not QUOTA');
    is(code(consume($V, 3, 1, $end, 'IDEM', 'req-3')), 'QUOTA',
       'a new token past the allowance: QUOTA');
    ok(!$r->cmd('HEXISTS', $V, 'idem:req-3'),
       'and the refused token is not recorded');
    is_deeply([sort @{$r->cmd('HKEYS', $V)}],
              [qw(idem:req-1 idem:req-2 used)],
              'the hash holds used and one idem: field per token');

    my $W = 'mpn:usage:c1:x:0';
    for my $bad ([10, 0, $end], [10, 1000001, $end], [10, '1.5', $end],
                 [-1, 1, $end], [10, 1, 'soon'], [10, 1, time() - 2 * 86400],
                 [10, 1, $end, 'TOKEN', 'a'], [10, 1], [10, 1, $end, 'IDEM'],
                 [10, 1, $end, 'IDEM', 'x' x 257])
    {
        is(code(consume($W, @$bad)), 'BAD_ARGUMENT',
           "BAD_ARGUMENT: consume @$bad[0 .. ($#$bad > 3 ? 3 : $#$bad)]");
    }
    is_deeply(consume($W, 1000000, 1000000, $end), [1000000, 'ok'],
              'an amount of 1,000,000 is allowed');
    is($r->cmd('EXISTS', 'mpn:usage:c1:x:1'), 0, 'no key made by a refusal');
    $r->cmd('SET', 'mpn:usage:str', 'x');
    my $wt = consume('mpn:usage:str', 1, 1, $end);
    like(ref $wt ? $wt->msg : '', qr/^WRONGTYPE/,
         'a key that is not a hash: WRONGTYPE passes through');
    is(code($r->cmd('FCALL', 'mpn_consume', 0, 1, 1, $end)), 'BAD_ARGUMENT',
       'BAD_ARGUMENT: no key');
    is_deeply(published($sub), [], 'still nothing published');

    # 4 clients x 250 pipelined consumptions of 1 against 500 allowed
    my $Z = 'mpn:usage:busy:azure_credits:1767225600';
    my $taken = 0;
    $taken += $_ for concurrently(4, sub {
        my @rep = $_[0]->pipeline(map {
            ['FCALL', 'mpn_consume', 1, $Z, 500, 1, $end]
        } 1 .. 250);
        my $ok = grep { ref $_ eq 'ARRAY' && $_->[1] eq 'ok' } @rep;
        my $q = grep { (MpnRedis::err_code($_) // '') eq 'QUOTA' } @rep;
        return $ok + $q == 250 ? $ok : 255;
    });
    is($taken, 500, '1,000 concurrent consumptions against 500: exactly 500 taken');
    is($r->cmd('HGET', $Z, 'used'), 500, 'and used is 500');
}

# -------------------------------------------------------------------------
# 1,000 concurrent renewals: 4 clients x 250 pipelined

with_ap('busy', end => '2026-06-15T09:00:00Z');
published($sub);
my $start_rev = get('busy')->{rev};
my $failed = grep { $_ != 0 } concurrently(4, sub {
    my @rep = $_[0]->pipeline(map {
        ['FCALL', 'mpn_renew', 1, "${P}busy", 'action_pack', $now]
    } 1 .. 250);
    return (250 == grep { defined $_ && !ref($_) && /^\d+$/ } @rep) ? 0 : 1;
});
is($failed, 0, '4 clients x 250 pipelined renewals all succeed');
is(get('busy')->{rev}, $start_rev + 1000, 'rev is up by exactly 1,000');
is(get('busy')->{subscriptions}{action_pack}{end}, '3026-06-15T09:00:00Z',
   '1,000 renewals add exactly 1,000 years');
is(scalar(@{published($sub)}), 1000, '1,000 writes, 1,000 PUBLISHes');

$srv->stop;
done_testing();
