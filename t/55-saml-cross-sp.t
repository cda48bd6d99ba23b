#!/usr/bin/perl
# Found in review: two servers of one nginx (one Redis) use the
# same SAML provider under different identity_public_url, so they are two
# SPs with two entity ids at the IdP.  Here the IdP knows only the first.
# A response verified for the first SP must not make a session at the
# second: neither through the second's finish step with the first's key,
# nor through the second's ACS with a pending login the first started
# (whose stored ACS URL and entity id are the first's).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'saml-cross-sp');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $base2 = 'http://127.0.0.1:' . $t->port('nginx2');
my $entity = "$base/_identity/saml/metadata";

my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');

# the IdP knows SP 1 only: nobody may sign in to SP 2
my $idp = $t->start_saml_idp(sps => [ {
    sp_entity_id => $entity,
    acs_url => "$base/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
} ]);

my $corp = protected('corp');

$t->nginx_conf(identity_conf(
    redis => $rport,
    identity => 'corp',
    server => "identity_public_url $base;",
    providers => <<"P",
    identity_provider corp {
        type saml;
        idp_metadata $idp->{metadata_file};
        sp_certificate $sp_cert;
        sp_certificate_key $sp_key;
        allow_idp_initiated on;
    }
P
    http => <<"H"));
    server {
        listen 127.0.0.1:%%PORT_nginx2%%;
        identity_public_url $base2;
        location / {
$corp
        }
    }
H
$t->start_nginx;

sub session_cookie {
    my ($r) = @_;
    return grep { /^identity_session=[^;]/ } @{$r->{cookies_set} || []};
}

# SP 2 itself cannot be signed in to
my $got = Identity::Test::UA->new->saml_response("$base2/", user => 'alice');
ok(!$got, 'the IdP does not sign in to SP 2');

# 1. the key of SP 1's ACS, opened at SP 2's finish step

my $u = Identity::Test::UA->new;
$got = $u->saml_idp_initiated($idp, sp_entity_id => $entity, relay_state => '/x');
ok($got, 'unsolicited response for SP 1');
my $r = $u->saml_post($got, cross_site => 1, finish => 0);
is($r->{status}, 303, 'SP 1 ACS: 303');
my ($key) = ($r->{h}{location} // '') =~ /k=([A-Za-z0-9_-]+)/;
ok($key, 'the finish key');

my $v = Identity::Test::UA->new;
my $fin = $v->get("$base2/_identity/saml/finish?k=$key");
isnt($fin->{status}, 302, "SP 1's finish key at SP 2: not a login");
ok(!session_cookie($fin), "SP 1's finish key at SP 2: no session cookie");
$r = $v->get("$base2/x", headers => { Accept => 'application/json' });
isnt($r->{status}, 200, '... and SP 2 admits nobody');

# 2. a login SP 1 started, its response posted to SP 2's ACS

$u = Identity::Test::UA->new;
$got = $u->saml_response("$base/y", user => 'alice');
ok($got, 'solicited response for SP 1');
$r = $u->saml_post($got, action => "$base2/_identity/saml/acs", cross_site => 1);
ok(!session_cookie($r), "SP 1's response at SP 2's ACS: no session cookie");
$r = $u->get("$base2/y", headers => { Accept => 'application/json' });
isnt($r->{status}, 200, '... and SP 2 admits nobody');

$t->done;
