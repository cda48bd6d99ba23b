#!/usr/bin/perl
# idp_metadata_url: the IdP's metadata is fetched again (off the event loop)
# when older than metadata_ttl.  The file configured here is stale: it holds
# the IdP's old signing certificate, so only a refreshed copy lets the login
# through; metadata of another IdP, or none at all, keeps the previous one.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'saml-refresh');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my %port = map { $_ => $t->port($_) } qw(nginx nginx2 nginx3);
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my ($old_key, $old_cert) = make_keypair("$dir/old", cn => 'old-idp-key');

my @sps = map { {
    sp_entity_id => "http://127.0.0.1:$port{$_}/_identity/saml/metadata",
    acs_url => "http://127.0.0.1:$port{$_}/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
} } qw(nginx nginx2 nginx3);

my $idp = $t->start_saml_idp(sps => \@sps);

# the stale file: the IdP's metadata with its previous certificate

sub pem_body {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    my $pem = <$fh>;
    $pem =~ s/-----[^-]+-----//g;
    $pem =~ s/\s+//g;
    return $pem;
}

my $md = $t->read_file($idp->{metadata_file});
my $stale = $md;
my $old = pem_body($old_cert);
my $n = $stale =~ s{(<ds:X509Certificate>)\s*[^<]+(</ds:X509Certificate>)}{$1$old$2}g;
ok($n >= 1, 'stale metadata made');
$t->write_file('stale-metadata.xml', $stale);

# metadata of another IdP at some URL nginx serves

(my $other = $md) =~ s/entityID="[^"]+"/entityID="http:\/\/other.invalid\/idp"/;
$t->write_file('other-metadata.xml', $other);

sub provider {
    my ($name, $extra) = @_;
    return <<"EOF";
    identity_provider $name {
        type saml;
        idp_metadata %%TESTDIR%%/stale-metadata.xml;
        sp_certificate $sp_cert;
        sp_certificate_key $sp_key;
        $extra
    }
EOF
}

my $fresh = protected('fresh');
my $stale_only = protected('stale');
my $wrong = protected('wrong');

$t->nginx_conf(identity_conf(
    redis => $rport,
    identity => 'fresh',
    server => "identity_public_url http://127.0.0.1:$port{nginx};",
    providers => provider('fresh', "idp_metadata_url $idp->{metadata_url};")
        . provider('stale', '')
        . provider('wrong', 'idp_metadata_url '
                   . "http://127.0.0.1:%%PORT_files%%/other-metadata.xml;"),
    http => <<"EOF"));
    server {
        listen 127.0.0.1:%%PORT_nginx2%%;
        identity_public_url http://127.0.0.1:$port{nginx2};
        location / {
$stale_only
        }
    }

    server {
        listen 127.0.0.1:%%PORT_nginx3%%;
        identity_public_url http://127.0.0.1:$port{nginx3};
        location / {
$wrong
        }
    }

    server {
        listen 127.0.0.1:%%PORT_files%%;
        root %%TESTDIR%%;
    }
EOF
$t->start_nginx;

# refreshed from the URL: the login goes through

my $ua = Identity::Test::UA->new;
my $r = $ua->saml_login("http://127.0.0.1:$port{nginx}/x", user => 'alice',
                        password => 'alice-password');
is($r->{status}, 200, 'with idp_metadata_url: login works');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'upstream sees alice');
$t->log_like(qr/\[info\].*IdP metadata refreshed from "\Q$idp->{metadata_url}\E"/,
             'refresh logged');

# the stale file alone: the IdP's signature does not verify

my $ua2 = Identity::Test::UA->new;
$r = $ua2->saml_login("http://127.0.0.1:$port{nginx2}/x", user => 'alice',
                      password => 'alice-password');
is($r->{status}, 403, 'stale metadata only: refused');
ok(!(grep { /^identity_session=[^;]/ } map { @{$_->{cookies_set} // []} } @{$ua2->{trace}}),
   'and no session');

# metadata of another IdP at the URL is not adopted

my $ua3 = Identity::Test::UA->new;
$r = $ua3->saml_login("http://127.0.0.1:$port{nginx3}/x", user => 'alice',
                      password => 'alice-password');
is($r->{status}, 403, 'another IdP\'s metadata: kept the stale one, refused');
$t->log_like(qr/\[error\].*IdP metadata not refreshed, the previous is kept: .*is not metadata of/,
             'and said why at error level');

$t->done;
