#!/usr/bin/perl
# Authorization rules: identity_allow_email, identity_allow_email_domain,
# identity_require_group and identity_require_claim, exact and by pattern,
# each with a user it admits and one it refuses; the 403 page; the identity
# still recorded; and the rules checked again at every user info refresh
# (OAuth, against the provider mock).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'authz-rules');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice <Example>', username => 'alice', groups => ['staff'] },
        { id => 'bob', password => 'bob-password', email => 'bob@other.test',
          name => 'Bob Other', username => 'bob', groups => ['dev', 'ops'] },
        { id => 'eve', password => 'eve-password', name => 'Eve',
          username => '<b>eve</b>', groups => [] },
        { id => 'mallory', password => 'mallory-password', email => 'alice@example.test',
          email_verified => JSON::PP::false(), name => 'Mallory', username => 'mallory',
          groups => [] },
    ]);
my $mock = $t->start_oauth_mock;
$t->write_file('token.key', Identity::Test::random_token(48) . "\n");

# location => [rules, alice admitted?, bob admitted?]
my %rules = (
    'email'       => ['identity_allow_email alice@example.test;', 1, 0],
    'email-re'    => ['identity_allow_email ~^bob@;', 0, 1],
    'email-case'  => ['identity_allow_email ALICE@Example.TEST;', 1, 0],
    'email-two'   => ['identity_allow_email carol@example.test bob@other.test;', 0, 1],
    'domain'      => ['identity_allow_email_domain example.test;', 1, 0],
    'domain-re'   => ['identity_allow_email_domain ~*^OTHER\.;', 0, 1],
    'email-or-domain' => ['identity_allow_email bob@other.test; identity_allow_email_domain example.test;', 1, 1],
    'group'       => ['identity_require_group staff;', 1, 0],
    'group-re'    => ['identity_require_group ~^op;', 0, 1],
    'group-any'   => ['identity_require_group admins dev;', 0, 1],
    'claim'       => ['identity_require_claim preferred_username alice;', 1, 0],
    'claim-re'    => ['identity_require_claim preferred_username ~^b;', 0, 1],
    'claim-array' => ['identity_require_claim groups dev;', 0, 1],
    'claim-two'   => ['identity_require_claim name ~^Alice ~^Bob;', 1, 1],
    'claim-none'  => ['identity_require_claim department sales;', 0, 0],
    'all'         => ['identity_allow_email_domain example.test other.test; identity_require_group staff ops; identity_require_claim name ~Other;', 0, 1],
);

my $locations = '';
for my $l (sort keys %rules) {
    $locations .= "        location /$l/ {\n            $rules{$l}[0]\n" . protected('test') . "        }\n";
}

my $m = $mock->{base};
my $providers = <<"P";
    identity_provider test {
        type oidc;
        issuer $issuer;
        client_id test-client;
        client_secret test-secret;
        scopes openid email profile groups;
    }
    identity_provider github {
        type oauth;
        preset github;
        client_id test-client;
        client_secret test-secret;
        authorization_endpoint $m/github/login/oauth/authorize;
        token_endpoint $m/github/login/oauth/access_token;
        userinfo_endpoint $m/github/user;
        emails_endpoint $m/github/user/emails;
        userinfo_refresh_interval 2s;
    }
P
$locations .= "        location /gh/ {\n            identity_allow_email_domain acme.example;\n"
    . protected('github') . "        }\n";

$t->nginx_conf(identity_conf(redis => $rport, providers => $providers, identity => 'test',
    locations => $locations, http => 'identity_token_key_file %%TESTDIR%%/token.key;'));
$t->start_nginx;

my %ua;
for my $who (qw(alice bob)) {
    $ua{$who} = Identity::Test::UA->new;
    my $r = $ua{$who}->oidc_login("$base/", user => $who);
    is($r->{status}, 200, "$who logged in");
}

for my $l (sort keys %rules) {
    my (undef, $alice, $bob) = @{$rules{$l}};
    for my $who (qw(alice bob)) {
        my $want = $who eq 'alice' ? $alice : $bob;
        my $r = $ua{$who}->get("$base/$l/page");
        if ($want) {
            is($r->{status}, 200, "$l: $who admitted");
            is(upstream_saw($r->{body})->{username}, $who, "$l: upstream sees $who");
        } else {
            is($r->{status}, 403, "$l: $who refused");
            unlike($r->{body}, qr/^uri=/m, "$l: the upstream never saw $who\'s request");
        }
    }
}

# the 403 page says who the browser is and how to log out

my $r = $ua{alice}->get("$base/group-re/page?x=1");
is($r->{status}, 403, 'denied: 403');
like($r->{h}{'content-type'}, qr{^text/html}, 'an HTML page');
like($r->{body}, qr{signed in as <strong id="who">alice\@example\.test</strong>}, 'names the account');
like($r->{body}, qr{with <span id="provider">test</span>}, 'and the provider');
like($r->{body}, qr{href="/_identity/logout\?redirect_path=/group-re/page"}, 'links to logout, back here');
is($r->{h}{'cache-control'}, 'no-store', 'not cached');
my $api = Identity::Test::UA->new(headers => { Accept => 'application/json' });
$api->set_cookie('identity_session', $ua{alice}->cookie('identity_session'));
$r = $api->get("$base/group/page");
is($r->{status}, 200, 'API client admitted where the rules allow');
$r = $api->get("$base/group-re/page");
is($r->{status}, 403, 'API client refused: bare 403');
unlike($r->{body}, qr/signed in as/, '... without the page');
$r = $ua{alice}->request('POST', "$base/group-re/page", body => 'a=1');
is($r->{status}, 403, 'a POST with a body refused too');

# what the provider says is escaped on the page

my $eve = Identity::Test::UA->new;
$r = $eve->oidc_login("$base/group/x", user => 'eve');
is($r->{status}, 403, 'eve (no e-mail, a username with markup) refused');
like($r->{body}, qr{<strong id="who">&lt;b&gt;eve&lt;/b&gt;</strong>}, 'her username shown, escaped');
unlike($r->{body}, qr{<b>eve}, 'no markup from the provider on the page');

# an address the IdP has not verified does not count: no e-mail at all

my $mal = Identity::Test::UA->new;
$r = $mal->oidc_login("$base/email/x", user => 'mallory');
is($r->{status}, 403, 'an unverified alice@example.test is refused where alice is allowed');
like($r->{body}, qr{<strong id="who">mallory</strong>}, '... known by username, not by that address');

# the identity is recorded all the same: ngrok records every user

my $bob_sid = $ua{bob}->cookie('identity_session');
my $uid = $t->redis('HGET', Identity::Test::session_key($bob_sid), 'uid');
is($t->redis('HGET', "identity:user:$uid", 'email'), 'bob@other.test', 'refused user still has an identity record');

# the logout link ends the session

$r = $ua{alice}->get("$base/_identity/logout?redirect_path=%2Fgroup-re%2Fpage");
is($r->{status}, 302, 'logout from the 403 page');
like($r->{h}{location}, qr{^(\Q$base\E)?/group-re/page$}, 'back to the page');
$r = $ua{alice}->get("$base/group-re/page");
is($r->{status}, 302, 'which now asks to log in');

# rules are checked again at every user info refresh (OAuth)

# GitHub's address is its verified primary one in /user/emails (B.10)
my $gh = { login => 'dave', id => 7001, name => 'Dave', email => 'dave@acme.example' };
sub gh_emails {
    return [{ email => $gh->{email}, primary => JSON::PP::true(),
              verified => JSON::PP::true(), visibility => 'private' }];
}
$mock->set_user('github', $gh, gh_emails());
my $dave = Identity::Test::UA->new;
$r = $dave->follow($dave->get("$base/gh/x"));
is($r->{status}, 200, 'github user of acme.example admitted');
my $skey = Identity::Test::session_key($dave->cookie('identity_session'));

# the interval is 2 s, not 1: a session's "checked" time has a resolution
# of one second, so with 1 s a request right after the login could already
# be one interval late
$gh->{email} = 'dave@elsewhere.example';   # the user changed their address
$mock->set_user('github', $gh, gh_emails());
$r = $dave->get("$base/gh/x");
is($r->{status}, 200, 'within the interval: still admitted on the known address');
sleep 2.2;
$r = $dave->get("$base/gh/x");
is($r->{status}, 403, 'after the refresh: the rules no longer match, 403');
like($r->{body}, qr/dave\@elsewhere\.example/, 'the page shows the new address');
is($t->redis('EXISTS', $skey), 0, 'and the session ended');
ok($t->log_like(qr/ended: the rules no longer admit its user/), 'logged');

my $u = $t->redis('GET', 'identity:sub:github:7001');
is($t->redis('HGET', "identity:user:$u", 'email'), 'dave@elsewhere.example',
   'the identity shows the new address');

# its audit events (docs/events.md), sent without waiting: the last may
# follow the answer
sub audit {
    my ($want) = @_;
    for (1 .. 100) {
        my @ev = map { JSON::PP::decode_json({ @{$_->[1]} }->{doc}) }
                 @{$t->redis('XRANGE', 'identity:audit', '-', '+') || []};
        my @hit = grep { $want->($_) } @ev;
        return scalar @hit if @hit;
        sleep 0.05;
    }
    return 0;
}
ok(audit(sub { $_[0]{event}{action} eq 'session_revoked' && $_[0]{event}{reason} eq 'refresh'
               && $_[0]{identity}{provider} eq 'github' && $_[0]{user}{id} eq $u }),
   'audit: the session revoked at the refresh, its user named');
ok(audit(sub { $_[0]{event}{action} eq 'login' && ($_[0]{event}{outcome} // '') eq 'success'
               && $_[0]{identity}{provider} eq 'github' && $_[0]{user}{id} eq $u }),
   'audit: the OAuth login');

# a refresh grant that fails ends the session (GitHub expiring tokens)

$mock->config('github', expiring_tokens => JSON::PP::true(), expires_in => 1);
$gh->{email} = 'dave@acme.example';
$mock->set_user('github', $gh, gh_emails());
$dave = Identity::Test::UA->new;
$r = $dave->follow($dave->get("$base/gh/x"));
is($r->{status}, 200, 'logged in again with an expiring token');
$skey = Identity::Test::session_key($dave->cookie('identity_session'));
sleep 2.5;
$mock->requests('github', clear => 1);
$r = $dave->get("$base/gh/x");
is($r->{status}, 200, 'expired access token: refreshed, admitted');
ok((grep { ($_->{form}{grant_type} // '') eq 'refresh_token' } @{$mock->requests('github')}),
   'a refresh_token grant was made');
$mock->revoke('github');
sleep 2.5;
$r = $dave->get("$base/gh/x");
is($r->{status}, 302, 'revoked at the provider: the refresh fails, back to login');
is($t->redis('EXISTS', $skey), 0, 'the session is gone');

$t->done;
