#!/usr/bin/perl

# The Debian packages as an operator meets them (issue 13): make deb, then
# apt-get install ./*.deb into this machine's nginx; the system
# configuration loads the module through modules-enabled, a gated server in
# conf.d answers against a test Redis, mpnctl, its man page and the
# packaged Functions library work; removal disables the module and leaves
# nginx working; purge leaves nothing of either package.
#
# It changes the system (packages, /etc/nginx), so it runs only as root on
# a disposable machine such as CI, and puts back what it touched: the
# conf.d file goes, the packages are purged, the system nginx it started is
# stopped, also when a check fails half-way.  Kept out of t/*.t so the
# integration suites (run twice, in parallel) do not run it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";
use Fcntl qw(:flock);
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);
use MpnRecords;
use MpnRedis;
use MpnTest;

my $ROOT = $MpnRedis::ROOT;
my @PKGS = qw(libnginx-mod-http-mpn mpn-tools);
my $CONFD = '/etc/nginx/conf.d/mpn-package-test.conf';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-mpn.conf';
my $AVAILABLE = '/usr/share/nginx/modules-available/mod-http-mpn.conf';
my $SO = '/usr/lib/nginx/modules/ngx_http_mpn_module.so';
my $PIDFILE = '/run/nginx.pid';

plan(skip_all => 'package test: needs root, it installs into the system '
    . 'nginx (run it on a disposable machine such as CI)') if $> != 0;
plan(skip_all => 'package test: no system nginx (/usr/sbin/nginx, '
    . '/etc/nginx/nginx.conf)')
    unless -x '/usr/sbin/nginx' && -f '/etc/nginx/nginx.conf';

# one package test at a time on a machine: checkouts side by side share the
# system nginx and dpkg
open(my $lock, '>', '/run/lock/mpn-package-test.lock') or die "lock: $!";
flock($lock, LOCK_EX) or die "flock: $!";

for my $p (@PKGS) {
    plan(skip_all => "package test: $p is installed already; this test "
        . 'would purge it') if installed($p);
}
plan(skip_all => 'package test: the system nginx is running; this test '
    . 'starts and stops it itself') if running_pid();
plan(skip_all => "package test: $CONFD exists; it is this test's own "
    . 'file, left by someone else?') if -e $CONFD;

# --- helpers ---------------------------------------------------------------

sub installed {
    my $s = `dpkg-query -W -f='\${Status}' $_[0] 2>/dev/null`;
    return $s =~ /ok installed/;
}

# the master pid of the system nginx, if it runs
sub running_pid {
    open(my $fh, '<', $PIDFILE) or return;
    my $pid = <$fh> // '';
    close $fh;
    chomp $pid;
    return ($pid =~ /^\d+$/ && kill(0, $pid)) ? $pid : undef;
}

sub run { MpnRedis::run([@_]) }

# apt-get waits for the dpkg lock rather than fail when another job holds it
sub apt {
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    return run('apt-get', '-y', '-q', '-o', 'DPkg::Lock::Timeout=300', @_);
}

sub nginx_t { run('/usr/sbin/nginx', '-t') }

my ($started_pid, $wrote_confd, $tried_install);

# nginx -t creates an empty pid file when there is none
my $had_pidfile = -e $PIDFILE;

sub stop_system_nginx {
    my $pid = $started_pid or return;
    kill 'QUIT', $pid;
    for (1 .. 200) {
        last unless kill 0, $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid if kill 0, $pid;
    undef $started_pid;
}

sub put_back {
    stop_system_nginx();
    unlink $CONFD if $wrote_confd;
    undef $wrote_confd;
    if ($tried_install && grep { installed($_) } @PKGS) {
        apt('purge', @PKGS);
    }
    undef $tried_install;
    unlink $PIDFILE if !$had_pidfile && -z $PIDFILE;
}

END { put_back() }
$SIG{INT} = $SIG{TERM} = sub { put_back(); exit 1 };

# --- build ------------------------------------------------------------------

my $res = run('make', '-C', $ROOT, '--no-print-directory', 'deb');
is($res->{rc}, 0, 'make deb builds the packages, lintian without errors')
    or BAIL_OUT("make deb:\n$res->{out}$res->{err}");
my $DEB = "$ROOT/build/deb";
my @debs = map { glob("$DEB/${_}_*.deb") } @PKGS;
is(scalar @debs, 2, 'build/deb/ holds both packages') or BAIL_OUT('no .debs');

# --- install: what an operator types (README) --------------------------------

$tried_install = 1;
$res = do {
    require Cwd;
    my $cwd = Cwd::getcwd();
    chdir $DEB or die "$DEB: $!";
    my $r = apt('install', map { './' . (split m{/}, $_)[-1] } @debs);
    chdir $cwd;
    $r;
};
is($res->{rc}, 0, 'apt-get install ./*.deb') or diag($res->{out}, $res->{err});
ok(installed($_), "$_ is installed") for @PKGS;

ok(-f $SO, "the module is in /usr/lib/nginx/modules");
is(readlink($ENABLED), $AVAILABLE,
    'enabled on install: modules-enabled links to modules-available');
like(run('cat', $AVAILABLE)->{out},
    qr{^load_module modules/ngx_http_mpn_module\.so;$}m,
    'the modules-available file loads the module');

# --- the system configuration with a gated server in conf.d ------------------

my $t = do {
    local $ENV{MPN_MODULE} = $SO;
    MpnTest->new(port => free_port());
};
$t->start_redis;       # with the dataset marker (mpn:meta) the module wants

my $lib = $t->{redis}->load_library('/usr/share/mpn/mpn.lua');
is($lib, 'mpn', 'FUNCTION LOAD of /usr/share/mpn/mpn.lua');

# records go in through the installed mpnctl and the packaged library
my @R = ('--redis', '127.0.0.1:' . $t->redis_port);
$res = run('mpnctl', '--help');
ok($res->{rc} == 0 && $res->{out} =~ /^usage: mpnctl/,
    'mpnctl --help from PATH');
for my $id (qw(active network)) {
    my %o = $id eq 'active' ? (sub => { end_days => 200 }) : ();
    my $f = $t->write_file("$id.json", record($id, %o));
    $res = run('mpnctl', @R, 'put', $f);
    like($res->{out}, qr/^rev \d+$/, "mpnctl put $id through the library")
        or diag($res->{err});
}

$res = run('man', '-P', 'cat', 'mpnctl');
ok($res->{rc} == 0 && $res->{out} =~ /^\s+mpnctl\s+-\s+read\s+and\s+write/m,
    'man mpnctl shows the page') or diag($res->{err}, $res->{out});
like($res->{out}, qr/--password-file/, 'the man page has the options');

mkdir $t->dir . '/html/tools';
$t->write_file('html/tools/index.html', "developer tools\n");
chmod 0755, $t->dir . '/html', $t->dir . '/html/tools';

my ($port, $rport, $dir) = ($t->port, $t->redis_port, $t->dir);
$wrote_confd = 1;
$t->write_file($CONFD, <<"EOF");
# written by t/package/install.t, removed when it ends
mpn_redis 127.0.0.1:$rport;

server {
    listen 127.0.0.1:$port;
    root $dir/html;

    mpn on;
    mpn_partner \$http_x_partner;
    add_header X-Mpn "\$mpn_decision/\$mpn_reason" always;

    location /tools/ {
        mpn_require_tier action_pack;
        mpn_upgrade_url /offers;
    }
}
EOF

$res = nginx_t();
is($res->{rc}, 0, 'nginx -t: the system configuration with the gated server')
    or diag($res->{err});
$res = run('/usr/sbin/nginx', '-T');
like($res->{out},
    qr{^# configuration file \Q$ENABLED\E:\nload_module modules/ngx_http_mpn_module\.so;}m,
    'nginx -T: the module is loaded through modules-enabled');

SKIP: {
    my $busy = !IO::Socket::INET->new(Listen => 1, LocalPort => 80,
        LocalAddr => '0.0.0.0', Proto => 'tcp', ReuseAddr => 1);
    skip('port 80 is taken: the default site cannot start', 6) if $busy;

    $res = run('/usr/sbin/nginx');
    is($res->{rc}, 0, 'the system nginx starts') or diag($res->{err});
    ok(poll(sub { $started_pid = running_pid() }, 10), 'its master runs');
    ok(poll(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") }, 10),
        'the conf.d server listens');

    my $r = $t->http_get('/tools/', 'X-Partner' => 'active');
    ok(status($r) == 200 && $r =~ /developer tools/,
        'an Action Pack partner gets the file') or diag($r);
    $r = $t->http_get('/tools/', 'X-Partner' => 'network');
    ok(status($r) == 302 && header($r, 'X-Mpn') eq 'upgrade/tier'
        && header($r, 'Location') =~ m{/offers$},
        'a network-only partner is sent to the offers') or diag($r);
    $r = $t->http_get('/tools/');
    is(header($r, 'X-Mpn'), 'signin/no_identity', 'no partner id: refused');

    stop_system_nginx();
}

# --- removal: disabled, nginx left working ---------------------------------

unlink $CONFD;
undef $wrote_confd;

$res = apt('remove', 'libnginx-mod-http-mpn');
is($res->{rc}, 0, 'apt-get remove libnginx-mod-http-mpn')
    or diag($res->{out}, $res->{err});
ok(!-e $ENABLED && !-l $ENABLED, 'removal disables the module');
ok(!-e $SO, 'removal takes the .so away');
$res = nginx_t();
is($res->{rc}, 0, 'nginx -t passes after the removal') or diag($res->{err});

# --- purge: nothing left ----------------------------------------------------

my @files;
for my $deb (@debs) {
    $res = run('dpkg', '-c', $deb);
    push @files, map { m{ \./(\S.*?)/?$} ? "/$1" : () } split /\n/, $res->{out};
}

$res = apt('purge', @PKGS);
is($res->{rc}, 0, 'apt-get purge of both packages') or diag($res->{err});
ok(!installed($_), "$_ is gone") for @PKGS;
undef $tried_install;

# shared directories (/usr/bin, ...) stay; everything of the packages goes
my @left = grep { -e $_ && !-d $_ } @files;
push @left, grep { -e $_ } ('/usr/share/mpn', '/usr/share/doc/mpn-tools',
    '/usr/share/doc/libnginx-mod-http-mpn');
push @left, grep { -e $_ || -l $_ } ($ENABLED, "$ENABLED.removed");
is_deeply(\@left, [], 'nothing of the packages is left')
    or diag(join "\n", @left);
ok(@files > 10, 'the list of packaged files was read');

$res = nginx_t();
is($res->{rc}, 0, 'the system nginx -t passes after the purge')
    or diag($res->{err});
ok(!running_pid(), 'the system nginx is not left running');

done_testing;
