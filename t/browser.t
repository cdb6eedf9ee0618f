#!/usr/bin/perl

# The demo portal of `make run` in a real browser: redis/demo/run.sh starts
# the same stack (redis-server, nginx with the module, the demo backend) on
# free loopback ports in a temporary directory, and t/browser/flow.py drives
# headless Debian chromium through it with selenium:
#   sign in as the lapsed partner, open Azure credits, land on the renew page
#   with the return URL intact, renew, land back on Azure credits and get it;
#   sign in as network-only, open developer tools, land on offers.
# Screenshots stay in the temporary directory; their paths are printed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MpnRedis;
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
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

sub stop_all {
    # run.sh stops redis, nginx and the backend by PID on SIGTERM
    for my $name (qw(browser stack)) {
        my $pid = delete $kids{$name} or next;
        kill 'TERM', $name eq 'browser' ? -$pid : $pid;
        my $t = time + 10;
        while (time < $t) { last if waitpid($pid, WNOHANG) == $pid; sleep 0.1 }
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
is("@left", '', 'SIGTERM to run.sh stops redis-server, nginx and the backend');
like(slurp("$dir/run.log"), qr/demo stopped/, 'run.sh says it stopped');

remove_tree("$dir/profile", $rundir) unless $ENV{MPN_KEEP};
diag("screenshots in $dir/shots");

done_testing();
