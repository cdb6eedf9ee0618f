#!/usr/bin/perl

# mpn_redis over TLS (spec section 11): a verified server, the wrong CA, a
# wrong tls_name, client certificates, tls_verify=off, the subscriber, and
# the faults of faults.t again over TLS (stopped, killed, garbage, 1,000
# clients leaving).  Certificates come from the openssl CLI (MpnTls).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use MpnTest;
use MpnRecords;
use MpnCache;
use MpnTls;

plan(skip_all => 'openssl CLI not installed') unless -x '/usr/bin/openssl';

my $LAPSED = record('active', sub => { status => 'expired', end_days => -1 });

# a gated server whose mpn_redis is the TLS port with these parameters;
# handshakes under ASan on a shared machine get a generous connect_timeout
sub start {
    my (%o) = @_;
    my $t = MpnTest->new;
    my $pki = MpnTls->new($t->dir);
    setup_html($t);
    $t->start_redis(tls => $pki->redis_conf(auth_clients => $o{auth_clients}));
    seed_records($t);
    my $params = $o{params}->($pki);
    $t->write_nginx_conf(cache_conf(addr => '%%REDIS_TLS%%',
        redis => "tls connect_timeout=3s $params", cache => $o{cache}));
    $t->start_nginx;
    return ($t, $pki);
}

sub served {
    my ($t) = @_;
    return poll(sub { (get_id($t, 'active'))[0] == 200 }, 3);
}

subtest 'verified server: served over TLS, the name is the address' => sub {
    my ($t, $pki) = start(params => sub { 'tls_ca=' . $_[0]->ca });
    ok(served($t), 'active partner: 200 through a verified TLS connection');
    is((get_id($t, 'lapsed'))[1], 'renew/lapsed', 'records are read');
    my $p = $t->{redis_tls_port};
    like(`ss -tno state established '( dport = :$p )'`, qr/keepalive/,
        'the TLS connection uses TCP keepalive');
    $t->stop_nginx;
    unlike($t->error_log, qr/TLS|SSL/, 'no TLS complaint');
    $t->check_error_log;
};

subtest 'tls_name checked against the certificate' => sub {
    my ($t) = start(params => sub { 'tls_name=redis.test tls_ca=' . $_[0]->ca });
    ok(served($t), 'tls_name=redis.test (a name in the certificate): 200');
    $t->stop_nginx;
    $t->check_error_log;

    ($t) = start(params => sub { 'tls_name=wrong.example tls_ca=' . $_[0]->ca });
    is((get_id($t, 'active'))[0], 503, 'a name not in the certificate: 503');
    is((get_id($t, 'active'))[1], 'error/redis_unavailable', 'redis_unavailable');
    ok(poll(sub { $t->error_log =~
            /\[error\].*mpn: redis [^ ]+: TLS certificate does not match "wrong\.example"/ }, 5),
        'the log names the name that did not match');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'the wrong CA: refused, logged' => sub {
    my ($t) = start(params => sub { 'tls_ca=' . $_[0]->other_ca });
    is((get_id($t, 'active'))[0], 503, 'a server signed by another CA: 503');
    ok(poll(sub { $t->error_log =~
            /\[error\].*mpn: redis [^ ]+: TLS certificate verify error: \(\d+:/ }, 5),
        'the verify error is logged');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'the system trust store by default: a private CA is refused' => sub {
    my ($t) = start(params => sub { '' });
    is((get_id($t, 'active'))[0], 503, 'no tls_ca, a private CA: 503');
    $t->stop_nginx;
    ok(poll(sub { $t->error_log =~ /TLS certificate verify error/ }, 5), 'logged');
    $t->check_error_log;
};

subtest 'tls_verify=off: warned at startup, served' => sub {
    my ($t) = start(params => sub { 'tls_verify=off tls_ca=' . $_[0]->other_ca });
    my ($rc, $out) = $t->nginx_test_conf;
    is($rc, 0, 'nginx -t passes');
    like($out, qr/\[warn\].*tls_verify=off.*development only/, 'nginx -t warns');
    ok(served($t), 'served without checking the certificate');
    $t->stop_nginx;
    like($t->read_file('nginx.stderr') . $t->error_log, qr/\[warn\].*tls_verify=off/,
        'the start is warned about too');
    $t->check_error_log;
};

subtest 'a server that requires client certificates' => sub {
    my ($t) = start(auth_clients => 'yes', params => sub { 'tls_ca=' . $_[0]->ca });
    is((get_id($t, 'active'))[0], 503, 'no client certificate: 503');
    ok(poll(sub { $t->error_log =~
            /mpn: redis [^ ]+: (TLS handshake failed|connection lost)/ }, 5),
        'the refusal is logged');
    $t->stop_nginx;
    $t->check_error_log;

    ($t) = start(auth_clients => 'yes', params => sub {
        my $p = shift;
        join ' ', 'tls_ca=' . $p->ca, 'tls_cert=' . $p->client_cert,
            'tls_key=' . $p->client_key;
    });
    ok(served($t), 'with tls_cert and tls_key: 200');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'the subscriber over TLS' => sub {
    my ($t) = start(cache => 'zone=c:1m ttl=60s',
        params => sub { 'tls_ca=' . $_[0]->ca });
    ok(poll(sub { $t->error_log =~ /subscriber: listening on/ }, 3),
        'the subscriber listens over TLS');
    is(cache_of($t, 'active'), 'MISS', 'warmed');
    is(cache_of($t, 'active'), 'HIT', 'cached');
    $t->redis('SET', 'mpn:partner:active', $LAPSED);
    is($t->redis('PUBLISH', 'mpn:invalidate', 'active'), 1, 'published to one subscriber');
    ok(poll(sub { (get_id($t, 'active'))[1] eq 'renew/lapsed' }, 1),
        'the entry was dropped: the new record is read');
    $t->stop_nginx;
    $t->check_error_log;
};

subtest 'nginx -t: tls parameters that do not fit' => sub {
    my $t = MpnTest->new;
    my $pki = MpnTls->new($t->dir);
    my $ca = $pki->ca;
    my %bad = (
        "127.0.0.1:6379 tls_ca=$ca" => qr/need "tls"/,
        '127.0.0.1:6379 tls tls_cert=' . $pki->client_cert => qr/go together/,
        'unix:/tmp/x.sock tls' => qr/needs a host:port/,
        '127.0.0.1:6379 tls tls_ca=/nonexistent/ca.pem' => qr/nonexistent/,
        '127.0.0.1:6379 tls_verify=maybe tls' => qr/invalid parameter "tls_verify=maybe"/,
        '127.0.0.1:6379 user=app' => qr/needs "password_file="/,
    );
    for my $args (sort keys %bad) {
        $t->write_nginx_conf("mpn_redis $args;\n");
        my ($rc, $out) = $t->nginx_test_conf;
        isnt($rc, 0, "nginx -t fails: $args");
        like($out, $bad{$args}, 'with a message that says why');
    }
};

# --- the fault list over TLS ------------------------------------------

subtest 'TLS redis stopped, then continued; killed, then restarted' => sub {
    my ($t, $pki) = start(params => sub { 'tls_ca=' . $_[0]->ca . ' timeout=1500ms' });
    ok(served($t), 'served');
    $t->signal_redis('STOP');
    my $t0 = time;
    my $r = $t->http_get('/gated/x', 'X-Partner' => 'active');
    my $took = time - $t0;
    is(status($r), 503, 'stopped: 503');
    cmp_ok($took, '>=', 1.3, sprintf('after its timeout (%.2fs)', $took));
    cmp_ok($took, '<', 4, 'and no longer');
    $t->signal_redis('CONT');
    ok(served($t), 'continued: served again');

    $t->stop_redis;
    is((get_id($t, 'active'))[0], 503, 'killed: 503');
    $t->start_redis(tls => $pki->redis_conf);
    seed_records($t);
    ok(served($t), 'restarted: served again over a new TLS connection, no reload');
    $t->stop_nginx;
    like($t->error_log, qr/mpn: redis [^ ]+: reconnected/, 'the reconnect is logged');
    $t->check_error_log;
};

subtest 'a TLS server that answers garbage: 503, logged, no crash' => sub {
    my $t = MpnTest->new;
    my $pki = MpnTls->new($t->dir);
    setup_html($t);
    my ($port, $pid) = $t->garbage_server(
        tls => [$pki->server_cert, $pki->server_key]);
    my $ca = $pki->ca;
    $t->write_nginx_conf(cache_conf(addr => "127.0.0.1:$port",
        redis => "tls tls_ca=$ca connect_timeout=3s timeout=2s"));
    $t->start_nginx;
    for (1 .. 3) {
        is((get_id($t, 'active'))[0], 503, "garbage reply $_: 503");
    }
    $t->stop_nginx;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    like($t->error_log, qr/mpn: redis [^ ]+: connection lost: Protocol error/i,
        'the protocol error is logged');
    $t->check_error_log;
};

subtest '1,000 clients leave while their TLS lookups are outstanding' => sub {
    my ($t) = start(params => sub { 'tls_ca=' . $_[0]->ca . ' timeout=10s' });
    ok(served($t), 'served before');

    $t->abandoned_lookups(sub { served($t) });
    $t->stop_nginx;
    $t->check_error_log;
};

done_testing;
