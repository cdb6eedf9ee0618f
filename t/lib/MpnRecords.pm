package MpnRecords;

# Partner records for the integration tests, built relative to now so a
# test means the same thing on any day.

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;
use POSIX qw(strftime);

our @EXPORT = qw(rfc3339 record seed_records);

use constant DAY => 86400;

sub rfc3339 { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($_[0])) }

my %AP_BENEFITS = (developer_tools => 1, windows_enterprise => 10,
    visual_studio_pro => 3, vsts => 1, office365_e3 => 10, ems => 5,
    dynamics_crm => 5, azure_credits => 100);

# record(ID, %o): network (default 1), status, sub => {status, end_days,
# auto_renew}, competency => {area, level, end_days}
sub record {
    my ($id, %o) = @_;
    my $now = time;
    my %r = (v => 1, partner_id => $id, name => "Partner $id",
        network => ($o{network} // 1) ? JSON::PP::true : JSON::PP::false,
        status => $o{status} || 'active', rev => 1,
        updated_at => rfc3339($now), subscriptions => {}, competencies => {});
    if (my $s = $o{sub}) {
        $r{subscriptions}{action_pack} = {
            status => $s->{status} || 'active',
            start => rfc3339($now + ($s->{end_days} - 365) * DAY),
            end => rfc3339($now + $s->{end_days} * DAY),
            auto_renew => ($s->{auto_renew} // 1) ? JSON::PP::true : JSON::PP::false,
            benefits => { %AP_BENEFITS },
        };
    }
    if (my $c = $o{competency}) {
        $r{competencies}{$c->{area}} = {
            level => $c->{level},
            (defined $c->{end_days} ? (end => rfc3339($now + $c->{end_days} * DAY)) : ()),
            benefits => { advisory_hours => 20 },
        };
    }
    return JSON::PP->new->canonical->encode(\%r);
}

# the demo cast used across tests: id => JSON
sub standard_records {
    return (
        active     => record('active', sub => { end_days => 200 }),
        expiring   => record('expiring', sub => { end_days => 10, auto_renew => 0 }),
        lapsed     => record('lapsed', sub => { status => 'expired', end_days => -10 }),
        ingrace    => record('ingrace', sub => { end_days => -3 }),
        cancelled  => record('cancelled', sub => { status => 'cancelled', end_days => 100 }),
        network    => record('network'),
        gold       => record('gold', competency => { area => 'cloud_platform', level => 'gold' }),
        goldold    => record('goldold', competency => { area => 'cloud_platform',
            level => 'gold', end_days => -30 }),
        suspended  => record('suspended', status => 'suspended', sub => { end_days => 200 }),
        notmember  => record('notmember', network => 0),
    );
}

# seed_records($t [, prefix]): SET every standard record
sub seed_records {
    my ($t, $prefix) = @_;
    $prefix //= 'mpn:partner:';
    my %r = standard_records();
    $t->redis('SET', "$prefix$_", $r{$_}) for keys %r;
    return \%r;
}

1;
