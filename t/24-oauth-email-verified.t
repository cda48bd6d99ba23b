#!/usr/bin/perl
# OAuth: an e-mail counts only when its source vouches for it (issue 12,
# B.10), preset by preset, against the provider mock (t/idp/oauth-mock.md):
# a verified user's address reaches the upstream and meets
# identity_allow_email_domain; an unverified one is empty and the rule
# refuses.  Microsoft: the common tenant (nOAuth) never gives an e-mail, a
# pinned tenant does, a user of another tenant is refused, and the key is
# tid.oid.  Generic OAuth: only with claim_map email_verified=PATH.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'oauth-email-verified');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

my $tenant = 'c0ffee00-1234-4abc-8def-0123456789ab';
my $other = '0badc0de-9999-4abc-8def-0123456789ab';
my $T = JSON::PP::true();
my $F = JSON::PP::false();

# provider name => [mock provider, authorization, token, user info, extra]
my %providers = (
    amazon    => ['amazon', '/ap/oa', '/auth/o2/token', '/user/profile', 'preset amazon;'],
    facebook  => ['facebook', '/v19.0/dialog/oauth', '/v19.0/oauth/access_token',
                  '/me?fields=id,name,email', 'preset facebook;'],
    github    => ['github', '/login/oauth/authorize', '/login/oauth/access_token',
                  '/user', "preset github;\n        emails_endpoint $m/github/user/emails;"],
    gitlab    => ['gitlab', '/oauth/authorize', '/oauth/token', '/api/v4/user', 'preset gitlab;'],
    google    => ['google', '/o/oauth2/v2/auth', '/token', '/v1/userinfo', 'preset google;'],
    linkedin  => ['linkedin', '/oauth/v2/authorization', '/oauth/v2/accessToken',
                  '/v2/userinfo', 'preset linkedin;'],
    mscommon  => ['microsoft', '/common/oauth2/v2.0/authorize',
                  '/common/oauth2/v2.0/token', '/v1.0/me', 'preset microsoft;'],
    mstenant  => ['microsoft', "/$tenant/oauth2/v2.0/authorize",
                  "/$tenant/oauth2/v2.0/token", '/v1.0/me',
                  "preset microsoft;\n        tenant " . uc($tenant) . ';'],
    twitch    => ['twitch', '/oauth2/authorize', '/oauth2/token', '/helix/users', 'preset twitch;'],

    # generic OAuth against Google's shapes: with and without the opt-in
    generic   => ['google', '/o/oauth2/v2/auth', '/token', '/v1/userinfo',
                  "scopes openid email profile;\n"
                  . "        claim_map id=sub email=email name=name email_verified=email_verified;"],
    'generic-nov' => ['google', '/o/oauth2/v2/auth', '/token', '/v1/userinfo',
                  "scopes openid email profile;\n"
                  . "        claim_map id=sub email=email name=name;"],
);

my ($conf, $locations) = ('', '');
for my $p (sort keys %providers) {
    my ($mp, $a, $tk, $u, $extra) = @{$providers{$p}};
    $conf .= <<"P";
    identity_provider $p {
        type oauth;
        client_id test-client;
        client_secret test-secret;
        authorization_endpoint $m/$mp$a;
        token_endpoint $m/$mp$tk;
        userinfo_endpoint $m/$mp$u;
        $extra
    }
P
    $locations .= "        location /$p/ {\n" . protected($p) . "        }\n";
    $locations .= "        location /rule/$p/ {\n"
        . "            identity_allow_email_domain example.test;\n"
        . protected($p) . "        }\n";
}

# a pinned tenant without endpoint overrides: that tenant's endpoints
$conf .= <<"P";
    identity_provider msdefault {
        type oauth;
        preset microsoft;
        tenant $tenant;
        client_id test-client;
        client_secret test-secret;
    }
P
$locations .= "        location /msdefault/ {\n" . protected('msdefault') . "        }\n";

$t->nginx_conf(identity_conf(redis => $rport, providers => $conf,
    identity => 'google', locations => $locations));
$t->start_nginx;

sub visit {
    my ($p, $path) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->follow($ua->get("$base$path$p/x"));
    return ($r, upstream_saw($r->{body}));
}

# $p, the mock user, GitHub's emails, the e-mail expected (undef: none)
sub case {
    my ($name, $p, $user, $emails, $email) = @_;
    $mock->set_user($providers{$p}[0], $user, $emails);
    my ($r, $saw) = visit($p, '/');
    is($r->{status}, 200, "$name: logged in");
    is($saw->{email}, $email // '', $email ? "$name: the e-mail" : "$name: no e-mail");
    ($r) = visit($p, '/rule/');
    is($r->{status}, $email ? 200 : 403,
       $email ? "$name: identity_allow_email_domain admits"
              : "$name: identity_allow_email_domain refuses");
    return $saw;
}

# amazon and facebook say nothing of verification: never an e-mail

case('amazon', 'amazon', { user_id => 'amzn1.account.A1', name => 'A',
     email => 'a@example.test' }, undef, undef);
case('facebook', 'facebook', { id => '101', name => 'F', email => 'f@example.test' },
     undef, undef);

# github: the verified primary address, never /user's public one

case('github verified primary', 'github',
     { login => 'gh1', id => 1, name => 'G', email => undef },
     [{ email => 'g@example.test', primary => $T, verified => $T }], 'g@example.test');
case('github unverified primary, public address in /user', 'github',
     { login => 'gh2', id => 2, name => 'G2', email => 'g2@example.test' },
     [{ email => 'g2@example.test', primary => $T, verified => $F }], undef);
case('github verified address that is not the primary', 'github',
     { login => 'gh3', id => 3, name => 'G3', email => 'g3@example.test' },
     [{ email => 'g3@example.test', primary => $F, verified => $T },
      { email => 'g3@other.test', primary => $T, verified => $F }], undef);

# gitlab: confirmed_at

case('gitlab confirmed', 'gitlab', { id => 11, username => 'gl', name => 'GL',
     email => 'gl@example.test', confirmed_at => '2020-01-01T00:00:00.000Z' },
     undef, 'gl@example.test');
case('gitlab unconfirmed', 'gitlab', { id => 12, username => 'gl2', name => 'GL2',
     email => 'gl2@example.test', confirmed_at => undef }, undef, undef);

# google, linkedin: email_verified

for my $p (qw(google linkedin)) {
    case("$p verified", $p, { sub => "${p}1", name => 'X', email => "${p}1\@example.test",
         email_verified => $T }, undef, "${p}1\@example.test");
    case("$p email_verified false", $p, { sub => "${p}2", name => 'X',
         email => "${p}2\@example.test", email_verified => $F }, undef, undef);
    case("$p without email_verified", $p, { sub => "${p}3", name => 'X',
         email => "${p}3\@example.test" }, undef, undef);
}

# twitch documents its e-mail as the verified address

case('twitch', 'twitch', { id => '77', login => 'tw', display_name => 'TW',
     email => 'tw@example.test' }, undef, 'tw@example.test');

# microsoft: the common tenant is the nOAuth hole; a pinned tenant is not

my $ms = { id => '11111111-2222-4333-8444-555555555555', displayName => 'M',
           mail => 'm@example.test', userPrincipalName => 'm@example.test',
           _tid => $tenant };
my $saw = case('microsoft, common tenant', 'mscommon', $ms, undef, undef);
is($saw->{user_id}, "$tenant.$ms->{id}", 'microsoft, common tenant: the key is tid.oid');
$saw = case('microsoft, pinned tenant', 'mstenant', $ms, undef, 'm@example.test');
is($saw->{user_id}, "$tenant.$ms->{id}", 'microsoft, pinned tenant: the key is tid.oid');

my $mallory = { %$ms, _tid => $other, id => '99999999-2222-4333-8444-555555555555' };
$mock->set_user('microsoft', $mallory);
my ($r) = visit('mstenant', '/');
is($r->{status}, 403, 'microsoft, a user of another tenant: refused');
$t->log_like(qr/\[info\].*user of tenant "\Q$other\E", not of the pinned tenant/,
             '... logged at info');
$saw = case('microsoft, common tenant, another tenant', 'mscommon', $mallory, undef, undef);
is($saw->{user_id}, "$other.$mallory->{id}", '... known by its own tid.oid');

$r = Identity::Test::UA->new->get("$base/msdefault/x");
like($r->{h}{location} // '',
     qr{^https://login\.microsoftonline\.com/\Q$tenant\E/oauth2/v2\.0/authorize\?},
     'a pinned tenant: that tenant\'s authorization endpoint');

# generic OAuth: only with claim_map email_verified

case('generic, email_verified mapped, true', 'generic', { sub => 'g1', name => 'X',
     email => 'gen1@example.test', email_verified => $T }, undef, 'gen1@example.test');
case('generic, email_verified mapped, false', 'generic', { sub => 'g2', name => 'X',
     email => 'gen2@example.test', email_verified => $F }, undef, undef);
case('generic, email_verified not mapped', 'generic-nov', { sub => 'g3', name => 'X',
     email => 'gen3@example.test', email_verified => $T }, undef, undef);

$t->log_like(qr/\[info\].*provider "amazon" does not vouch for the user's e-mail/,
             'an e-mail not vouched for is logged at info');

# configuration errors

my $c = Identity::Test->new(name => 'oauth-email-verified-conf');

sub conf_fails {
    my ($lines, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $c->nginx_conf(identity_conf(redis => 6379, identity => 'x', providers => <<"P"));
    identity_provider x {
        client_id a;
        client_secret b;
        $lines
    }
P
    my ($rc, $out) = $c->nginx_test_conf;
    isnt($rc, 0, "nginx -t fails: $name");
    like($out, qr/\[emerg\][^\n]*\Q$re\E/, "... saying $re");
}

conf_fails("type oauth;\n preset microsoft;\n tenant common;",
           'invalid value "common" in "tenant"', 'tenant common');
conf_fails("type oauth;\n preset google;\n tenant $tenant;",
           '"tenant" is for providers of preset microsoft', 'tenant with google');
conf_fails("type oauth;\n preset github;\n claim_map email_verified=x;",
           'cannot be used with preset "github"', 'claim_map email_verified with github');
conf_fails("type oidc;\n issuer http://127.0.0.1:9/;\n tenant $tenant;",
           'are for providers of type oauth', 'tenant with OpenID Connect');
conf_fails("type oidc;\n issuer http://127.0.0.1:9/;\n userinfo sometimes;",
           'invalid value "sometimes"', 'userinfo sometimes');

$c->stop_all;
$t->done;
