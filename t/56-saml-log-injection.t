#!/usr/bin/perl
# Found in review (pre-existing code, reached by every ACS):
# a response whose assertion is signed (as ADFS, Entra ID and Okta sign by
# default) but whose Response element is not carries an unsigned
# Destination.  The refusal logs it raw: "&#10;" in the attribute becomes
# a line break in error.log, and the client writes a line of its own, here
# a forged "[alert]".
use strict; use warnings;
use FindBin; use lib "$FindBin::Bin/lib";
use Test::More; use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);
use Identity::SAML qw(:all);
my $t = Identity::Test->new(name => 'saml-log-injection');
my $dir = $t->testdir;
my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $entity = "$base/_identity/saml/metadata";
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my $idp = $t->start_saml_idp(sps => [ { sp_entity_id => $entity, acs_url => "$base/_identity/saml/acs", slo_url => undef, sp_cert_pem => $sp_cert } ]);
$t->nginx_conf(identity_conf(redis => $rport, identity => 'corp', server => "identity_public_url $base;",
    providers => <<"P"));
    identity_provider corp { type saml; idp_metadata $idp->{metadata_file}; sp_certificate $sp_cert; sp_certificate_key $sp_key; allow_idp_initiated on; }
P
$t->start_nginx;
my $u = Identity::Test::UA->new;
my $got = $u->saml_idp_initiated($idp, sp_entity_id => $entity);
my $b = forge($got->{SAMLResponse}, idp => $idp, sign_assertion => 1, sign_response => 0);
my $bad = tamper($b, destination => "http://x/\n2026/12/04 18:00:00 [alert] 1#1: forged line");
my $r = $u->saml_post($got, SAMLResponse => $bad, cross_site => 1, finish => 0);
is($r->{status}, 403, 'wrong Destination: 403');
like($t->error_log, qr/Destination/, 'the refusal is logged');
unlike($t->error_log, qr/^2026\/12\/04 18:00:00 \[alert\] 1#1: forged line/m,
       'the client wrote no line of its own into error.log');
$t->done;
