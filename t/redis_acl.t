#!/usr/bin/perl

# Redis 6 ACL users (spec section 11): user= sends AUTH user password; a
# user given the ACL line of docs/deployment.md (read from there)
# serves lookups and the subscription; a user who may not read the records,
# a wrong password and a user who may not SELECT get a clear log line,
# never the password, and no answer from Redis is used as a record.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MpnTest;
use MpnRecords;
use MpnCache;

my $PASSWORD = 'acl-pass-6d1f0c';

# the documented line, for a user of its own name, with this test's password
sub documented_acl {
    my $doc = MpnTest->new->read_file("$MpnRedis::ROOT/docs/deployment.md");
    my ($line) = $doc =~ /^\s*(ACL SETUSER default .*)$/m
        or die 'no "ACL SETUSER default" line in docs/deployment.md';
    $line =~ s/^ACL SETUSER default /ACL SETUSER mpn-gate /;
    $line =~ s/>PASSWORD/>$PASSWORD/ or die 'the documented line has no >PASSWORD';
    return split / /, $line;
}

sub start {
    my (%o) = @_;
    my $t = MpnTest->new;
    setup_html($t);
    $t->start_redis;
    seed_records($t);
    my $r = $t->redis(@{$o{acl}});
    is($r, 'OK', "ACL SETUSER: $o{what}") or diag(ref $r ? $r->msg : $r);
    $t->write_file('pw', ($o{password} // $PASSWORD) . "\n");
    my $dir = $t->dir;
    $t->write_nginx_conf(cache_conf(cache => $o{cache},
        redis => "user=$o{user} password_file=$dir/pw $o{params}"));
    $t->start_nginx;
    return $t;
}

sub no_password_logged {
    my ($t) = @_;
    unlike($t->error_log . $t->read_file('nginx.stderr'), qr/\Q$PASSWORD\E/,
        'the password is never logged');
}

subtest 'the documented user: lookups and the subscription' => sub {
    my $t = start(acl => [documented_acl()], what => 'the documented line',
        user => 'mpn-gate', params => '', cache => 'zone=c:1m ttl=60s');
    ok(poll(sub { (get_id($t, 'active'))[0] == 200 }, 3), 'active partner: 200');
    ok(poll(sub { $t->error_log =~ /subscriber: listening on/ }, 3),
        'the subscriber is allowed its channel');
    $t->redis('SET', 'mpn:partner:active',
        record('active', sub => { status => 'expired', end_days => -1 }));
    is($t->redis('PUBLISH', 'mpn:invalidate', 'active'), 1, 'published');
    ok(poll(sub { (get_id($t, 'active'))[1] eq 'renew/lapsed' }, 1),
        'the invalidation reached the cache');
    $t->stop_nginx;
    no_password_logged($t);
    $t->check_error_log;
};

subtest 'a user who may not read the records' => sub {
    my $t = start(acl => [qw(ACL SETUSER nokeys on), ">$PASSWORD",
                          qw(resetkeys ~other:* ~mpn:meta -@all +get +exists +ping)],
        what => 'no key pattern for the records', user => 'nokeys', params => '');
    my @r = get_id($t, 'active');
    is($r[0], 503, 'refused by Redis: 503, never a stranger');
    is($r[1], 'error/redis_unavailable', 'redis_unavailable');
    $t->stop_nginx;
    like($t->error_log, qr/\[error\].*mpn: redis error for partner "active": NOPERM/,
        'the log says Redis refused the read');
    no_password_logged($t);
    $t->check_error_log;
};

subtest 'the wrong password for an ACL user' => sub {
    my $t = start(acl => [documented_acl()], what => 'the documented line',
        user => 'mpn-gate', password => 'not-the-password-9e1', params => '');
    is((get_id($t, 'active'))[0], 503, 'AUTH refused: 503');
    ok(poll(sub { $t->error_log =~ /mpn: redis [^ ]+: AUTH failed: WRONGPASS/ }, 3),
        'AUTH failure is logged');
    $t->stop_nginx;
    unlike($t->error_log, qr/not-the-password-9e1/, 'the wrong password is not logged');
    $t->check_error_log;
};

subtest 'a user who may not SELECT: the connection stays unready' => sub {
    my $t = start(acl => [qw(ACL SETUSER noselect on), ">$PASSWORD",
                          qw(resetkeys ~* -@all +get +exists +ping)],
        what => 'no SELECT', user => 'noselect', params => 'db=1');
    is((get_id($t, 'active'))[0], 503, 'SELECT refused: 503, nothing read from db 0');
    ok(poll(sub { $t->error_log =~ /mpn: redis [^ ]+: SELECT 1 failed: NOPERM/ }, 3),
        'SELECT failure is logged');
    $t->stop_nginx;
    unlike($t->error_log, qr/partner "active" refused: (allow|renew|upgrade)/,
        'no record was read from the wrong database');
    no_password_logged($t);
    $t->check_error_log;
};

done_testing;
