#!/usr/bin/perl
# identity_idp_request_duration_seconds{call="saml"} (issue 17, part 2):
# what a SAML provider asks its IdP over the back channel is its metadata
# at idp_metadata_url, fetched again when older than metadata_ttl by the
# login's first thread task.  The file configured here is stale (the
# IdP's old certificate), so the login succeeds only through that fetch;
# the call is read back through GET {admin}/metrics and prometheus_client.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);
use Identity::SAML qw(:all);
use Identity::Metrics qw(have_parser metric);

plan skip_all => 'needs python3-prometheus-client' unless have_parser();

my $t = Identity::Test->new(name => 'metrics-saml');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my ($old_key, $old_cert) = make_keypair("$dir/old", cn => 'old-idp-key');

my $idp = $t->start_saml_idp(sps => [{
    sp_entity_id => "$base/_identity/saml/metadata",
    acs_url => "$base/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
}]);

# the stale file: the IdP's metadata with a certificate it does not sign with
open my $fh, '<', $old_cert or die "$old_cert: $!";
my $old = do { local $/; <$fh> };
close $fh;
$old =~ s/-----[^-]+-----//g;
$old =~ s/\s+//g;
my $stale = $t->read_file($idp->{metadata_file});
ok($stale =~ s{(<ds:X509Certificate>)\s*[^<]+(</ds:X509Certificate>)}{$1$old$2}g,
   'stale metadata made');
$t->write_file('stale-metadata.xml', $stale);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

$t->nginx_conf(identity_conf(
    redis => $rport, identity => 'corp', admin => 1,
    server => "identity_public_url $base;",
    providers => <<"EOF"));
    identity_provider corp {
        type saml;
        idp_metadata %%TESTDIR%%/stale-metadata.xml;
        idp_metadata_url $idp->{metadata_url};
        sp_certificate $sp_cert;
        sp_certificate_key $sp_key;
    }
EOF
$t->start_nginx;

my $saml = 'identity_idp_request_duration_seconds_count{call=saml,provider=corp}';

my $v = metric($t, $base, $token);
is($v->{$saml}, 0, 'no metadata fetched before a login');
is($v->{'identity_logins_total{outcome=success,provider=corp}'}, 0, 'no login yet');

my $ua = Identity::Test::UA->new;
my $r = $ua->saml_login("$base/x", user => 'alice', password => 'alice-password');
is($r->{status}, 200, 'a SAML login, through the refreshed metadata');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'upstream sees alice');

$v = metric($t, $base, $token);
is($v->{$saml}, 1, 'the metadata fetch timed once, as call="saml"');
is($v->{'identity_idp_request_duration_seconds_bucket{call=saml,le=+Inf,provider=corp}'},
   1, 'in the +Inf bucket too');
cmp_ok($v->{'identity_idp_request_duration_seconds_sum{call=saml,provider=corp}'} // -1,
       '>', 0, 'its time summed');
is($v->{'identity_idp_request_duration_seconds_count{call=token,provider=corp}'}, 0,
   'no token call for a SAML provider');
is($v->{'identity_logins_total{outcome=success,provider=corp}'}, 1,
   'the login counted under provider="corp"');

# within metadata_ttl, a second login fetches nothing
$ua = Identity::Test::UA->new;
$r = $ua->saml_login("$base/y", user => 'alice', password => 'alice-password');
is($r->{status}, 200, 'a second SAML login');
$v = metric($t, $base, $token);
is($v->{$saml}, 1, 'no second fetch within metadata_ttl');
is($v->{'identity_logins_total{outcome=success,provider=corp}'}, 2, 'two logins');

$t->done;
