#!/usr/bin/perl
# A SAML login's RelayState (and its state cookie) brought to the OAuth 2.0
# callback: refused with 400 and a line that says why, no session, and the
# pending login is used up.  Found by the review of issue 13's redesign
# (before it, the OIDC code ran with the SAML provider).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf provider_block);
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'saml-at-oauth-callback');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $n = $t->port('nginx');
my $base = "http://127.0.0.1:$n";
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my $idp = $t->start_saml_idp(sps => [{
    sp_entity_id => "$base/_identity/saml/metadata",
    acs_url => "$base/_identity/saml/acs", slo_url => undef, sp_cert_pem => $sp_cert }]);

$t->nginx_conf(identity_conf(
    redis => $rport, identity => 'corp', server => "identity_public_url $base;",
    providers => provider_block('corp', type => 'saml', idp_metadata => $idp->{metadata_file},
        sp_certificate => $sp_cert, sp_certificate_key => $sp_key)));
$t->start_nginx;

my $ua = Identity::Test::UA->new;
my $c = $ua->saml_response("$base/app", user => 'alice');
my $state = $ua->cookie('identity_session_state', '127.0.0.1');
ok($state, 'SAML login started: state cookie = RelayState');
is($t->redis('EXISTS', 'identity:login:' . sha256_hex($state)), 1, 'pending SAML login');

my $mark = length $t->error_log;
my $r = $ua->get("$base/_identity/callback?state=$state&code=abc");
is($r->{status}, 400, 'OAuth callback refuses a SAML pending login');
ok(!grep({ /^identity_session=[^;]/ } @{$r->{cookies_set}}), 'no session cookie');
is(scalar @{$t->redis('KEYS', 'identity:session:*')}, 0, 'no session');
like(substr($t->error_log, $mark),
     qr/\[info\].*identity: login of provider "corp" is not an OAuth 2\.0 one/,
     'the refusal is logged at info, naming the provider');
is($t->redis('EXISTS', 'identity:login:' . sha256_hex($state)), 0, 'pending SAML login consumed');

$t->done;
