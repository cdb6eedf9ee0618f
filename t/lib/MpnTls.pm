package MpnTls;

# Test certificates made with the openssl CLI in a directory of the test:
# two CAs (the right one and a stranger), a server certificate for
# localhost / redis.test / 127.0.0.1 and a client certificate, both signed
# by the right CA.  Core Perl only.
#
#   my $pki = MpnTls->new($dir);
#   $pki->ca;  $pki->other_ca;                    # CA certificate paths
#   $pki->server_cert;  $pki->server_key;
#   $pki->client_cert;  $pki->client_key;
#   MpnRedis->start(tls => $pki->redis_conf(auth_clients => 'no'));

use strict;
use warnings;


sub _run {
    my (@cmd) = @_;
    my $out = `@cmd 2>&1`;
    die "@cmd: $out" if $?;
}


sub _key {
    my ($path) = @_;
    _run('openssl', 'genpkey', '-algorithm', 'EC',
         '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', $path);
}


sub _ca {
    my ($dir, $name) = @_;
    _key("$dir/$name.key");
    _run('openssl', 'req', '-x509', '-new', '-key', "$dir/$name.key",
         '-days', '2', '-subj', "/CN=$name", '-out', "$dir/$name.crt",
         '-addext', 'basicConstraints=critical,CA:TRUE',
         '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}


sub _leaf {
    my ($dir, $name, $ext) = @_;
    _key("$dir/$name.key");
    _run('openssl', 'req', '-new', '-key', "$dir/$name.key",
         '-subj', "/CN=$name", '-out', "$dir/$name.csr");
    open(my $fh, '>', "$dir/$name.ext") or die "$dir/$name.ext: $!";
    print $fh "$ext\n";
    close $fh;
    _run('openssl', 'x509', '-req', '-in', "$dir/$name.csr",
         '-CA', "$dir/test-ca.crt", '-CAkey', "$dir/test-ca.key",
         '-CAcreateserial', '-days', '2', '-extfile', "$dir/$name.ext",
         '-out', "$dir/$name.crt");
}


sub new {
    my ($class, $dir) = @_;
    $dir .= '/pki';
    mkdir $dir;
    _ca($dir, 'test-ca');
    _ca($dir, 'other-ca');
    _leaf($dir, 'server', 'subjectAltName=DNS:localhost,DNS:redis.test,'
                        . "IP:127.0.0.1\nextendedKeyUsage=serverAuth");
    _leaf($dir, 'client', 'extendedKeyUsage=clientAuth');
    # the workers (nobody) read the client key
    chmod 0755, $dir;
    chmod 0644, glob("$dir/*");
    return bless { dir => $dir }, $class;
}


sub dir         { $_[0]{dir} }
sub ca          { "$_[0]{dir}/test-ca.crt" }
sub other_ca    { "$_[0]{dir}/other-ca.crt" }
sub server_cert { "$_[0]{dir}/server.crt" }
sub server_key  { "$_[0]{dir}/server.key" }
sub client_cert { "$_[0]{dir}/client.crt" }
sub client_key  { "$_[0]{dir}/client.key" }


# redis.conf lines for a TLS port beside the plain one the tests use;
# auth_clients: no (default), yes or optional
sub redis_conf {
    my ($self, %o) = @_;
    return [
        "tls-cert-file " . $self->server_cert,
        "tls-key-file " . $self->server_key,
        "tls-ca-cert-file " . $self->ca,
        "tls-auth-clients " . ($o{auth_clients} || 'no'),
    ];
}

1;
