#!/usr/bin/perl

# The demo portal of `make run` in a real browser: redis/demo/run.sh starts
# the same stack (redis-server, nginx with the module, the demo backend) on
# free loopback ports in a temporary directory, and t/browser/flow.py drives
# headless Debian chromium through it with selenium:
#   sign in as the lapsed partner, open Azure credits, land on the renew page
#   with the return URL intact, renew, land back on Azure credits and get it;
#   sign in as network-only, open developer tools, land on offers;
# and what issue 9 asked of the demo: the header (company, readable date,
# Sign out), REV on renew (the back button and a stale second click never
# renew twice), no-store pages, the cancelled and the gold partner's pages;
# and issue 14's: License keys hands out one key per click and shows "3 of
# 10 used this term", the eleventh click lands on Offers saying the
# allowance is used up, Azure credits activates this month's credit once.
# Then `make run` itself on a terminal (script(1)): it starts from the seed
# again, with the dataset marker, prints no build noise, and Ctrl-C ends it
# with exit 0.
# Screenshots stay in the temporary directory; their paths are printed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MpnRedis;
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX qw(WNOHANG setpgid);
use Time::HiRes qw(sleep time);
use Test::More;

my $ROOT = $MpnRedis::ROOT;
my $PY = '/usr/bin/python3';
my $module = $ENV{MPN_MODULE} || "$ROOT/build/nginx/objs/ngx_http_mpn_module.so";

plan(skip_all => 'chromium is not installed') unless -x '/usr/bin/chromium';
plan(skip_all => "module not built: $module") unless -f $module;

# chromium is there: anything else missing is a failure, not a skip
sub give_up { fail($_[0]); done_testing(); exit 1 }
for my $need ('/usr/bin/chromedriver', $PY, '/usr/bin/redis-server',
              '/usr/sbin/nginx', "$ROOT/build/mpnctl") {
    give_up("$need is missing (make deps tools)") unless -e $need;
}
give_up("$PY has no selenium (apt-get install python3-selenium)")
    if system($PY, '-c', 'import selenium') != 0;

# screenshots stay; the run directory and the browser profile are removed
my $dir = tempdir('mpn-browser-XXXXXX', TMPDIR => 1);
chmod 0755, $dir;
mkdir "$dir/$_" for qw(shots profile);
my $rundir = "$dir/run";

# --- the stack, as `make run` starts it -------------------------------------
my %kids;    # name => pid, each the leader of its own process group
my $stack = fork // die "fork: $!";
if ($stack == 0) {
    setpgid(0, 0);
    $SIG{INT} = "DEFAULT";      # Ctrl-C as on a terminal, even when this
                               # test was started with SIGINT ignored
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', "$dir/run.log";
    open STDERR, '>&', \*STDOUT;
    $ENV{MPN_RUNDIR} = $rundir;
    $ENV{MPN_MODULE} = $module;
    $ENV{$_} = MpnRedis::free_port() for qw(MPN_PORT MPN_REDIS_PORT MPN_BACKEND_PORT);
    exec "$ROOT/redis/demo/run.sh";
    exit 127;
}
$kids{stack} = $stack;

sub slurp { open my $fh, '<', $_[0] or return ''; local $/; <$fh> }

my %status;  # name => wait status of a stopped kid
sub stop_all {
    # run.sh stops redis, nginx and the backend by PID on SIGINT (Ctrl-C)
    local $?;       # waitpid sets it; in END it would be the exit status
    for my $name (qw(browser stack make)) {
        my $pid = delete $kids{$name} or next;
        kill $name eq 'stack' ? ('INT', $pid) : ('TERM', -$pid);
        my $t = time + 10;
        while (time < $t) {
            if (waitpid($pid, WNOHANG) == $pid) { $status{$name} = $?; last }
            sleep 0.1;
        }
        if (kill 0, $pid) { kill 'KILL', -$pid, $pid; waitpid($pid, 0) }
        kill 'KILL', -$pid if $name eq 'browser';   # a stray chromium
    }
}
END { stop_all() if %kids }
$SIG{INT} = $SIG{TERM} = sub { stop_all(); exit 1 };

my %ready;
for (1 .. 300) {
    if (-f "$rundir/ready") {
        %ready = map { /^(\w+)=(.*)$/ ? ($1, $2) : () } split /\n/, slurp("$rundir/ready");
        last;
    }
    if (waitpid($stack, WNOHANG) == $stack) {
        delete $kids{stack};
        give_up("redis/demo/run.sh exited at start:\n" . slurp("$dir/run.log"));
    }
    sleep 0.1;
}
give_up("the demo did not start:\n" . slurp("$dir/run.log")) unless $ready{URL};
my @pids = map { (split ' ')[1] } split /\n/, slurp("$rundir/pids");
is(scalar @pids, 3, 'run.sh started redis-server, nginx and the backend');
diag("demo at $ready{URL}");

# --- plain HTTP: no-store everywhere, REV required ----------------------------
my $http = HTTP::Tiny->new(max_redirect => 0, timeout => 10);

# exactly one Cache-Control header, no-store
sub no_store {
    my ($res, $what) = @_;
    my $cc = $res->{headers}{'cache-control'} // '';
    is(ref $cc ? "@$cc" : $cc, 'no-store', "Cache-Control: no-store on $what");
}

# signs a demo partner in; returns the answer and the cookie header
sub sign_in_http {
    my ($url, $pid) = @_;
    my $res = $http->post_form("${url}app/signin", { partner => $pid });
    my ($tok) = ($res->{headers}{'set-cookie'} // '') =~ /^mpn=([^;]+)/;
    return ($res, { Cookie => 'mpn=' . ($tok // '') });
}

{
    my $U = $ready{URL};
    my ($res, $jar) = sign_in_http($U, '4410003');
    is($res->{status}, 303, 'sign-in answers 303');
    no_store($res, 'the sign-in redirect');
    no_store($http->get("${U}signin"), 'the sign-in page');
    $res = $http->get("${U}benefits/", { headers => $jar });
    is($res->{status}, 200, 'the benefits page of a signed-in partner');
    no_store($res, 'a gated page');
    like($res->{content}, qr{<b id="company">Northwind Traders</b>},
         'its header names the company');
    unlike($res->{content}, qr/\d{4}-\d\d-\d\dT\d\d:/,
           'and no date on it is in RFC 3339 form');
    $res = $http->get("${U}renew", { headers => $jar });
    my ($rev) = $res->{content} =~ /name="rev" value="(\d+)"/;
    ok(defined $rev, 'the renew form carries the record\'s rev');
    no_store($res, 'the renew page');
    $res = $http->request('POST', "${U}app/renew?return=%2Fbenefits%2F",
                          { headers => { %$jar, 'Content-Type' =>
                                'application/x-www-form-urlencoded' },
                            content => '' });
    is($res->{status}, 400, 'a renewal without a rev is refused (400)');
    $res = $http->get("${U}renew", { headers => $jar });
    my ($rev2) = $res->{content} =~ /name="rev" value="(\d+)"/;
    is($rev2, $rev, 'and changed nothing');
    $res = $http->get("${U}benefits/azure/",
                      { headers => (sign_in_http($U, '4410002'))[1] });
    is($res->{status}, 302, 'the lapsed partner is sent to renew');
    no_store($res, 'the module\'s redirect');
}

# --- the browser ------------------------------------------------------------
my $browser = open(my $out, '-|') // die "fork: $!";
if ($browser == 0) {
    setpgid(0, 0);
    open STDERR, '>', "$dir/browser.log";
    exec $PY, "$ROOT/t/browser/flow.py", $ready{URL}, "$dir/shots", "$dir/profile";
    exit 127;
}
$kids{browser} = $browser;
my $steps = 0;
my @shots;
while (my $line = <$out>) {
    chomp $line;
    if ($line =~ /^ok (.*)/) { pass($1); $steps++ }
    elsif ($line =~ /^not ok (.*)/) { fail($1); $steps++ }
    elsif ($line =~ /^shot (.*)/) { push @shots, $1 }
    else { diag($line) }
}
close $out;
my $rc = $? >> 8;
delete $kids{browser};
kill 'KILL', -$browser;    # nothing of the browser outlives the test
ok($steps >= 10 && $rc == 0, "the browser flow ran every step (exit $rc)")
    or diag(slurp("$dir/browser.log"));
diag("screenshot: $_") for @shots;

# --- stop, and check that nothing is left -----------------------------------
my $log = slurp("$rundir/error.log");
unlike($log, qr/\[(alert|emerg)\]/, 'no alert or emerg in the nginx error log');
unlike($log, qr/exited on signal/, 'no nginx worker exited on a signal');

stop_all();
my @left = grep { kill 0, $_ } @pids;
is("@left", '', 'SIGINT to run.sh stops redis-server, nginx and the backend');
is($status{stack}, 0, 'and run.sh exits 0 on SIGINT (Ctrl-C)');
like(slurp("$dir/run.log"), qr/demo stopped/, 'run.sh says it stopped');

# --- make run on a terminal, a second time ------------------------------------
SKIP: {
    skip 'script(1) is not installed', 9 unless -x '/usr/bin/script';
    my %env = (MPN_RUNDIR => $rundir, MPN_MODULE => $module,
               map { $_ => MpnRedis::free_port() }
               qw(MPN_PORT MPN_REDIS_PORT MPN_BACKEND_PORT));
    pipe(my $keys_r, my $keys_w) or die "pipe: $!";
    my $make = fork // die "fork: $!";
    if ($make == 0) {
        setpgid(0, 0);
        $SIG{INT} = "DEFAULT";
        close $keys_w;
        open STDIN, '<&', $keys_r;
        open STDOUT, '>', "$dir/make-run.log";
        open STDERR, '>&', \*STDOUT;
        delete @ENV{qw(MAKEFLAGS MAKELEVEL MFLAGS MAKEOVERRIDES)};
        @ENV{keys %env} = values %env;
        chdir $ROOT or exit 126;
        exec '/usr/bin/script', '-qec', 'make --no-print-directory run',
             '/dev/null';
        exit 127;
    }
    close $keys_r;
    $kids{make} = $make;
    my %r2;
    for (1 .. 600) {
        if (-f "$rundir/ready") {
            %r2 = map { /^(\w+)=(.*)$/ ? ($1, $2) : () }
                  split /\n/, slurp("$rundir/ready");
            last;
        }
        last if waitpid($make, WNOHANG) == $make;
        sleep 0.1;
    }
    # make run installs what is missing first; another apt-get on this
    # shared machine holding the dpkg lock is not this test's failure
    if (!$r2{URL} && slurp("$dir/make-run.log") =~ /Could not get lock \/var\/lib\/dpkg/) {
        diag(slurp("$dir/make-run.log"));
        skip 'make run could not install a package: dpkg is locked by '
             . 'another apt-get', 9;
    }
    ok($r2{URL}, 'make run starts the demo')
        or diag(slurp("$dir/make-run.log"));
    my @pids2 = map { (split ' ')[1] } split /\n/, slurp("$rundir/pids");
    my $answered = eval {
        my $redis = MpnRedis::Client->new($r2{REDIS_PORT});
        like($redis->cmd('GET', 'mpn:meta') // '', qr/^\{"v":1,"created_at":"/,
             'it wrote the dataset marker (mpnctl init)');
        like($redis->cmd('GET', 'mpn:partner:4410002') // '',
             qr/"rev":1[,}]/, 'it starts from the seed: the partner renewed '
             . 'in the first run is at rev 1 again');
        my $res = $http->get("$r2{URL}benefits/azure/",
                             { headers => (sign_in_http($r2{URL}, '4410002'))[1] });
        like($res->{headers}{location} // '', qr{/renew\?return=},
             'and that partner is lapsed again');
        1;
    };
    ok($answered, 'the second run answered') or diag($@);
    # the banner comes after the ready file
    for (1 .. 100) {
        last if slurp("$dir/make-run.log") =~ /Press Ctrl-C to stop/;
        sleep 0.1;
    }
    my ($before) = slurp("$dir/make-run.log") =~ /^(.*?)Partner Network demo portal/s;
    like($before // 'no banner', qr/^\s*$/,
         'make run prints nothing before its banner (no build noise)');

    local $SIG{PIPE} = 'IGNORE';        # make may have ended already
    syswrite($keys_w, "\x03");          # Ctrl-C on the terminal
    my $t = time + 15;
    my $st;
    while (time < $t) {
        if (waitpid($make, WNOHANG) == $make) { $st = $?; last }
        sleep 0.1;
    }
    delete $kids{make} if defined $st;
    is($st, 0, 'Ctrl-C ends make run with exit 0')
        or diag(slurp("$dir/make-run.log"));
    like(slurp("$dir/make-run.log"), qr/demo stopped/, 'having stopped the demo');
    my @left2 = grep { kill 0, $_ } @pids2;
    is("@left2", '', 'and nothing it started is left');
    close $keys_w;
    stop_all();
}

remove_tree("$dir/profile", $rundir) unless $ENV{MPN_KEEP};
diag("screenshots in $dir/shots");

done_testing();
