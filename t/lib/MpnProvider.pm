package MpnProvider;

# The identity provider's key endpoint for the tests: t/lib/jwks_provider.py
# on a free loopback port, stopped with the MpnTest object that started it.
# Each path serves its own key set in its own mode (ok, 500, hang, garbage)
# and counts its fetches and the request headers it saw.

use strict;
use warnings;

use FindBin;
use JSON::PP;
use Time::HiRes qw(sleep);

sub start {
    my ($class, $t) = @_;

    my $portfile = $t->dir . '/provider.port';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $t->dir . '/provider.log';
        open STDERR, '>>', $t->dir . '/provider.log';
        exec 'python3', "$FindBin::Bin/lib/jwks_provider.py", $portfile;
        exit 127;
    }
    # MpnTest stops it by this pid at the end
    $t->{pids}{provider} = $pid;

    for (1 .. 200) {
        last if -s $portfile;
        sleep 0.05;
    }
    my $port = $t->read_file($portfile) or die 'the provider did not start';
    return bless { t => $t, port => $port }, $class;
}

sub port { $_[0]{port} }

# set(path, mode => ..., file => ..., delay => ...)
sub set {
    my ($self, $path, %o) = @_;
    my $q = join '&', "path=$path", map { "$_=$o{$_}" } sort keys %o;
    my $r = $self->{t}->http("GET /_set?$q HTTP/1.0\r\n\r\n", port => $self->{port});
    die "provider /_set failed: $r" unless $r =~ m{^HTTP/1\.\d 200};
}

# { path => { fetches => N, headers => [names] } }
sub stats {
    my ($self) = @_;
    my $r = $self->{t}->http("GET /_stats HTTP/1.0\r\n\r\n", port => $self->{port});
    my ($body) = $r =~ /\r\n\r\n(.*)\z/s;
    return decode_json($body);
}

sub fetches {
    my ($self, $path) = @_;
    return $self->stats->{$path}{fetches} // 0;
}

1;
