#!/usr/bin/perl
# GET {admin}/metrics (issue 17, part 2) read back after the flows t/96
# does not make: a back-channel logout from the IdP, sessions ended at a
# user info refresh (rules that no longer admit the user, tokens the
# provider refuses), requests refused by identity_require_group and
# identity_require_claim, and the token and user info calls of an OAuth
# login (the OAuth mock's GitHub), each counter read before and after
# through prometheus_client's parser.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(identity_conf protected location_block);
use Identity::Metrics qw(have_parser metric);

plan skip_all => 'needs python3-prometheus-client' unless have_parser();

my $t = Identity::Test->new(name => 'metrics-flows');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $endpoint = "$base/_identity/backchannel_logout";
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    post_logout_redirect_uris => ["$base/public/bye"],
    backchannel_logout_uri => $endpoint,
    backchannel_logout_session_required => JSON::PP::true,
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice', groups => ['staff'] },
    ]);
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");
$t->write_file('token.key', Identity::Test::random_token(48) . "\n");

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

$t->nginx_conf(identity_conf(redis => $rport, providers => $providers,
    identity => 'test', admin => 1,
    http => 'identity_token_key_file %%TESTDIR%%/token.key;',
    locations => [
        location_block('/admins-only/', 'identity_require_group admins;',
                       protected('test')),
        location_block('/bob-only/',
                       'identity_require_claim preferred_username bob;',
                       protected('test')),
        location_block('/gh/', 'identity_allow_email_domain acme.example;',
                       protected('github')),
    ]));
$t->start_nginx;

sub values_now { metric($t, $base, $token) }

my $v0 = values_now();
ok(%$v0, 'the first scrape parses');
for my $k (qw(identity_revocations_total{source=backchannel}
              identity_revocations_total{source=refresh}
              identity_denials_total{reason=group}
              identity_denials_total{reason=claim}
              identity_denials_total{reason=email})) {
    is($v0->{$k}, 0, "$k starts at 0");
}

# ------------------------------------------------------------ rule denials

my $alice = Identity::Test::UA->new;
is($alice->oidc_login("$base/x", user => 'alice')->{status}, 200, 'alice logged in');
is($alice->get("$base/admins-only/a")->{status}, 403,
   'identity_require_group admins: alice (staff) refused');
is($alice->get("$base/admins-only/b")->{status}, 403, 'twice');
is($alice->get("$base/bob-only/a")->{status}, 403,
   'identity_require_claim preferred_username bob: alice refused');

my $v = values_now();
is($v->{'identity_denials_total{reason=group}'}, 2, 'two denials by a group rule');
is($v->{'identity_denials_total{reason=claim}'}, 1, 'one denial by a claim rule');
is($v->{'identity_denials_total{reason=email}'}, 0, 'none by an e-mail rule');

# ------------------------------------------------------------ back-channel

# two sessions of one IdP session (the second by single sign-on), ended by
# one logout at the IdP, which posts one logout token
my $ua = Identity::Test::UA->new;
is($ua->oidc_login("$base/bc1", user => 'alice')->{status}, 200, 'a session');
my $k1 = Identity::Test::session_key($ua->cookie('identity_session', '127.0.0.1'));
$ua->delete_cookie('identity_session');
is($ua->oidc_login("$base/bc2", user => 'alice')->{status}, 200,
   'a second session of the same IdP session');
my $k2 = Identity::Test::session_key($ua->cookie('identity_session', '127.0.0.1'));
isnt($k2, $k1, 'two sessions');

my $r = $ua->get("$issuer/session/end?client_id=test-client&post_logout_redirect_uri="
                 . Identity::Test::UA::uri_escape("$base/public/bye"));
$r = $ua->submit_form($r, { logout => 'yes' });
$ua->follow($r);
my $end = time + 10;
sleep 0.05 while ($t->redis('EXISTS', $k1) || $t->redis('EXISTS', $k2)) && time < $end;
is($t->redis('EXISTS', $k1) + $t->redis('EXISTS', $k2), 0,
   'the IdP\'s back-channel logout ended both sessions');

$v = values_now();
is($v->{'identity_revocations_total{source=backchannel}'}, 2,
   'identity_revocations_total{source="backchannel"} 2: each session ended');
is($v->{'identity_revocations_total{source=refresh}'}, 0, 'none at a refresh yet');

# ------------------------------------------------------------ an OAuth login

my $gh = { login => 'dave', id => 7001, name => 'Dave', email => 'dave@acme.example' };
sub gh_emails {
    return [{ email => $gh->{email}, primary => JSON::PP::true(),
              verified => JSON::PP::true(), visibility => 'private' }];
}
$mock->set_user('github', $gh, gh_emails());

my $before = values_now();
my $dave = Identity::Test::UA->new;
$r = $dave->follow($dave->get("$base/gh/x"));
is($r->{status}, 200, 'an OAuth (GitHub) login');
my $skey = Identity::Test::session_key($dave->cookie('identity_session'));
$v = values_now();
my $tok = 'identity_idp_request_duration_seconds_count{call=token,provider=github}';
my $ui = 'identity_idp_request_duration_seconds_count{call=userinfo,provider=github}';
is($before->{$tok}, 0, 'no GitHub token call before');
is($v->{$tok}, 1, 'one token call timed, under provider="github"');
is($v->{'identity_idp_request_duration_seconds_bucket{call=token,le=+Inf,provider=github}'},
   1, 'in the +Inf bucket too');
is($before->{$ui}, 0, 'no GitHub user info call before');
# GitHub's user and its e-mails: two calls of the user info kind
is($v->{$ui}, 2, 'the user and e-mail calls timed as call="userinfo"');
is($v->{'identity_logins_total{outcome=success,provider=github}'}, 1,
   'the login counted under provider="github"');

# ------------------------------------------------------------ refusals

# the provider refuses (error=access_denied with this browser's state):
# counted under the provider its pending login names
$mock->config('github', deny => JSON::PP::true());
$before = values_now();
my $carol = Identity::Test::UA->new;
$r = $carol->follow($carol->get("$base/gh/denied"));
is($r->{status}, 403, 'GitHub refuses the login: 403');
like($r->{url}, qr{/_identity/callback\?.*error=access_denied}, 'error=access_denied');
like($r->{body}, qr{id="retry" href="/gh/denied"}, 'the retry link is the pending login\'s path');
$mock->config('github', deny => JSON::PP::false());
# the same error without a state this browser holds: no pending login
$r = Identity::Test::UA->new->get("$base/_identity/callback?error=access_denied&state="
                                 . Identity::Test::random_token());
is($r->{status}, 403, 'an error with a state of no pending login: 403');
$v = values_now();
is($v->{'identity_logins_total{outcome=denied,provider=github}'}, 1,
   'the refusal counted under provider="github"');
is($v->{'identity_logins_total{outcome=denied,provider=}'}, 1,
   'the unbound one under provider=""');
is($v->{'identity_logins_total{outcome=denied,provider=test}'}, 0, 'none under "test"');

# ------------------------------------------------------------ refresh

# the interval is 2 s: the user's address changes, the rules no longer
# admit the user at the next check, the session ends
$gh->{email} = 'dave@elsewhere.example';
$mock->set_user('github', $gh, gh_emails());
sleep 2.2;
$r = $dave->get("$base/gh/x");
is($r->{status}, 403, 'after the refresh: the e-mail rule refuses');
is($t->redis('EXISTS', $skey), 0, 'the session ended');
$v = values_now();
is($v->{'identity_revocations_total{source=refresh}'}, 1,
   'identity_revocations_total{source="refresh"} 1');
is($v->{'identity_denials_total{reason=email}'}, 1, 'and one denial by the e-mail rule');

# the provider refuses the tokens: ended too
$gh->{email} = 'dave@acme.example';
$mock->set_user('github', $gh, gh_emails());
$dave = Identity::Test::UA->new;
$r = $dave->follow($dave->get("$base/gh/x"));
is($r->{status}, 200, 'dave logged in again');
$skey = Identity::Test::session_key($dave->cookie('identity_session'));
$mock->revoke('github');
sleep 2.2;
$r = $dave->get("$base/gh/x");
is($r->{status}, 302, 'tokens revoked at the provider: back to login');
is($t->redis('EXISTS', $skey), 0, 'the session ended');
$v = values_now();
is($v->{'identity_revocations_total{source=refresh}'}, 2,
   'identity_revocations_total{source="refresh"} 2');
is($v->{'identity_revocations_total{source=backchannel}'}, 2, 'back-channel unchanged');
is($v->{'identity_revocations_total{source=logout}'}, 0, 'no logout');
is($v->{'identity_revocations_total{source=api}'}, 0, 'no API revocation');

$t->done;
