#!/usr/bin/perl
# type oauth presets: each of the eight providers' login, against a loopback
# mock answering with that provider's documented shapes (t/idp/oauth-mock.md).
# The preset's endpoints are pointed at the mock; everything else (scopes,
# PKCE, client authentication, headers, claim paths) is the preset's own.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'oauth-presets');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

$t->write_file('token.key', Identity::Test::random_token(48) . "\n");

# Microsoft with a pinned tenant (tenant directive): its endpoints, and
# its e-mails count (issue 12, B.10; t/24 has the common tenant)
my $tenant = 'c0ffee00-1234-4abc-8def-0123456789ab';

# preset => [authorization, token, user info, emails] paths at the mock
my %paths = (
    amazon    => ['/ap/oa', '/auth/o2/token', '/user/profile'],
    facebook  => ['/v19.0/dialog/oauth', '/v19.0/oauth/access_token',
                  '/me?fields=id,name,email'],
    github    => ['/login/oauth/authorize', '/login/oauth/access_token',
                  '/user', '/user/emails'],
    gitlab    => ['/oauth/authorize', '/oauth/token', '/api/v4/user'],
    google    => ['/o/oauth2/v2/auth', '/token', '/v1/userinfo'],
    linkedin  => ['/oauth/v2/authorization', '/oauth/v2/accessToken',
                  '/v2/userinfo'],
    microsoft => ["/$tenant/oauth2/v2.0/authorize",
                  "/$tenant/oauth2/v2.0/token", '/v1.0/me'],
    twitch    => ['/oauth2/authorize', '/oauth2/token', '/helix/users'],
);

# the scopes each preset asks for, and whether it sends PKCE
my %scopes = (
    amazon    => 'profile',
    facebook  => 'public_profile email',
    github    => 'read:user user:email',
    gitlab    => 'read_user',
    google    => 'openid email profile',
    linkedin  => 'openid profile email',
    microsoft => 'openid profile email offline_access User.Read',
    twitch    => 'user:read:email',
);
my %pkce = (linkedin => 0, twitch => 0);

my ($providers, $locations) = ('', '');
for my $p (sort keys %paths) {
    my ($a, $tk, $u, $e) = @{$paths{$p}};
    $providers .= <<"P";
    identity_provider $p {
        type oauth;
        preset $p;
        client_id test-client;
        client_secret test-secret;
        authorization_endpoint $m/$p$a;
        token_endpoint $m/$p$tk;
        userinfo_endpoint $m/$p$u;
@{[ $e ? "        emails_endpoint $m/$p$e;" : '' ]}
@{[ $p eq 'microsoft' ? "        tenant $tenant;" : '' ]}
    }
P
    $locations .= "        location /$p/ {\n" . protected($p) . "        }\n";
}

$t->nginx_conf(identity_conf(redis => $rport, providers => $providers,
    identity => 'github', locations => $locations,
    http => 'identity_token_key_file %%TESTDIR%%/token.key;'));
$t->start_nginx;

# provider-shaped users, and what the module must make of them:
# [user object, emails (github), id, email, name, username]
# Amazon and Facebook do not say an address is verified: no e-mail (B.10).
my %users = (
    amazon => [{ user_id => 'amzn1.account.ALICE', name => 'Alice Amazon',
                 email => 'alice@amazon.example' }, undef,
               'amzn1.account.ALICE', '', 'Alice Amazon', ''],
    facebook => [{ id => '10150000000000001', name => 'Alice Facebook',
                   email => 'alice@facebook.example' }, undef,
                 '10150000000000001', '', 'Alice Facebook', ''],
    github => [{ login => 'alice-gh', id => 9000001, node_id => 'MDQ6VXNlcjkwMDAwMDE=',
                 name => 'Alice GitHub', email => undef },
               [{ email => 'old@github.example', primary => JSON::PP::false(),
                  verified => JSON::PP::true(), visibility => undef },
                { email => 'alice@github.example', primary => JSON::PP::true(),
                  verified => JSON::PP::true(), visibility => 'private' }],
               '9000001', 'alice@github.example', 'Alice GitHub', 'alice-gh'],
    gitlab => [{ id => 4242, username => 'alice-gl', name => 'Alice GitLab',
                 email => 'alice@gitlab.example', state => 'active',
                 confirmed_at => '2020-01-02T03:04:05.000Z' }, undef,
               '4242', 'alice@gitlab.example', 'Alice GitLab', 'alice-gl'],
    google => [{ sub => '1101694844743862', name => 'Alice Google',
                 given_name => 'Alice', family_name => 'Google',
                 email => 'alice@google.example',
                 email_verified => JSON::PP::true(), locale => 'en' }, undef,
               '1101694844743862', 'alice@google.example', 'Alice Google', ''],
    linkedin => [{ sub => '782bbtaQ', name => 'Alice LinkedIn', given_name => 'Alice',
                   family_name => 'LinkedIn', email => 'alice@linkedin.example',
                   email_verified => JSON::PP::true(),
                   locale => { country => 'US', language => 'en' } }, undef,
                 '782bbtaQ', 'alice@linkedin.example', 'Alice LinkedIn', ''],
    microsoft => [{ id => '87d349ed-44d7-43e1-9a83-5f2406dee5bd',
                    displayName => 'Alice Microsoft', givenName => 'Alice',
                    surname => 'Microsoft', mail => undef,
                    userPrincipalName => 'alice@contoso.example', _tid => $tenant },
                  undef, "$tenant.87d349ed-44d7-43e1-9a83-5f2406dee5bd",
                  'alice@contoso.example',
                  'Alice Microsoft', 'alice@contoso.example'],
    twitch => [{ id => '141981764', login => 'alicetv', display_name => 'AliceTV',
                 email => 'alice@twitch.example', type => '', broadcaster_type => '' },
               undef, '141981764', 'alice@twitch.example', 'AliceTV', 'alicetv'],
);

my $token_key = $t->read_file('token.key');

for my $p (sort keys %paths) {
    my ($user, $emails, $id, $email, $name, $username) = @{$users{$p}};
    $mock->set_user($p, $user, $emails);
    $mock->requests($p, clear => 1);

    my $ua = Identity::Test::UA->new;
    my $r = $ua->get("$base/$p/page?q=1");
    is($r->{status}, 302, "$p: browser sent to log in");
    my $loc = $r->{h}{location} // '';
    like($loc, qr{^\Q$m/$p$paths{$p}[0]\E\?}, "$p: to the preset's authorization endpoint");
    like($loc, qr/[?&]scope=\Q@{[Identity::Test::UA::uri_escape($scopes{$p})]}\E(&|$)/,
         "$p: the preset's scopes");
    like($loc, qr/[?&]client_id=test-client(&|$)/, "$p: client_id");
    like($loc, qr/[?&]state=[A-Za-z0-9_-]{43}(&|$)/, "$p: state");
    unlike($loc, qr/[?&]nonce=/, "$p: no OpenID nonce");
    if ($pkce{$p} // 1) {
        like($loc, qr/[?&]code_challenge_method=S256(&|$)/, "$p: PKCE S256");
    } else {
        unlike($loc, qr/code_challenge/, "$p: no PKCE");
    }

    $r = $ua->follow($r);
    is($r->{status}, 200, "$p: logged in, upstream answers");
    is($r->{url}, "$base/$p/page?q=1", "$p: back at the page");
    my $saw = upstream_saw($r->{body});
    is($saw->{provider}, $p, "$p: \$identity_provider");
    is($saw->{user_id}, $id, "$p: provider user id from the preset's claim path");
    is($saw->{email}, $email, "$p: e-mail");
    is($saw->{name}, $name, "$p: name");
    is($saw->{username}, $username, "$p: username");
    like($saw->{session}, qr/^as_[0-9a-f]{32}$/, "$p: session id");

    # what the provider saw
    my @req = @{$mock->requests($p)};
    my ($tok) = grep { $_->{path} eq "/$p$paths{$p}[1]" } @req;
    ok($tok, "$p: token endpoint called") or next;
    is($tok->{method}, 'POST', "$p: token request is a POST");
    is($tok->{form}{grant_type}, 'authorization_code', "$p: authorization_code grant");
    is($tok->{form}{client_secret}, 'test-secret', "$p: secret in the form (presets)");
    is($tok->{headers}{accept}, 'application/json', "$p: token request asks for JSON");
    if ($pkce{$p} // 1) {
        like($tok->{form}{code_verifier} // '', qr/^[A-Za-z0-9_-]{43}$/, "$p: code_verifier sent");
    }
    my ($info) = grep { $_->{method} eq 'GET' && $_->{path} =~ m{^/$p\Q@{[ (split /\?/, $paths{$p}[2])[0] ]}\E$} } @req;
    ok($info, "$p: user info fetched") or next;
    like($info->{headers}{authorization} // '', qr/^Bearer \S+$/, "$p: with the access token");
    ok(length($info->{headers}{'user-agent'} // ''), "$p: with a User-Agent");
    if ($p eq 'twitch') {
        is($info->{headers}{'client-id'}, 'test-client', 'twitch: Client-Id header');
    }
    if ($p eq 'github') {
        ok((grep { $_->{path} eq '/github/user/emails' } @req),
           'github: private e-mail taken from /user/emails');
    }

    # the session: the tokens are kept encrypted, never in clear
    my $sess = $ua->cookie('identity_session');
    my %h = @{$t->redis('HGETALL', Identity::Test::session_key($sess))};
    is($h{provider}, $p, "$p: session record names the provider");
    like($h{at} // '', qr/^[A-Za-z0-9_-]{40,}$/, "$p: access token stored");
    my ($plain) = ($info->{headers}{authorization} // '') =~ /^Bearer (\S+)/;
    ok(defined $plain && index(join(' ', values %h), $plain) < 0,
       "$p: the access token is not in Redis in clear");
    my $uid = $h{uid};
    is($t->redis('HGET', "identity:user:$uid", 'email'), $email, "$p: identity's e-mail");
    is($t->redis('HGET', "identity:user:$uid", 'provider'), $p, "$p: identity's provider");
}

# GitHub without a verified primary address: no e-mail at all

$mock->set_user('github', { login => 'bob-gh', id => 9000002, name => 'Bob', email => undef },
    [{ email => 'bob@github.example', primary => JSON::PP::true(),
       verified => JSON::PP::false(), visibility => 'private' }]);
my $ua = Identity::Test::UA->new;
my $r = $ua->follow($ua->get("$base/github/x"));
is($r->{status}, 200, 'github, unverified address: logged in');
is(upstream_saw($r->{body})->{email}, '', 'github: an unverified address is not the e-mail');

# Google says the address is not verified: no e-mail

$mock->set_user('google', { sub => '2202', name => 'Carol', email => 'carol@google.example',
    email_verified => JSON::PP::false() });
$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/google/x"));
is($r->{status}, 200, 'google, unverified address: logged in');
is(upstream_saw($r->{body})->{email}, '', 'google: email_verified false voids the e-mail');
is(upstream_saw($r->{body})->{user_id}, '2202', 'google: the user is still known by sub');

# the provider says no at authorization: 403, no session

$mock->config('gitlab', deny => JSON::PP::true());
$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/gitlab/x"));
is($r->{status}, 403, 'gitlab denies at authorization: 403');
ok(!$ua->cookie('identity_session'), 'no session cookie');
$mock->config('gitlab', deny => JSON::PP::false());

# the user info endpoint fails: 403 for a refusal, 503 when it is down

$mock->config('amazon', userinfo_status => 401);
$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/amazon/x"));
is($r->{status}, 403, 'amazon user info refuses the token: 403');
$mock->config('amazon', userinfo_status => 500);
$r = $ua->follow($ua->get("$base/amazon/x"));
is($r->{status}, 503, 'amazon user info failing: 503');
$mock->config('amazon', userinfo_status => undef);
ok(!$ua->cookie('identity_session'), 'no session after failed logins');

# a code replayed at the callback is refused by the provider: 403

$ua = Identity::Test::UA->new;
my ($first, @rest) = $ua->follow($ua->get("$base/twitch/x"), stop => sub { $_[0] =~ m{/_identity/callback} });
my $cb = Identity::Test::UA::resolve_url($rest[-1]{url}, $rest[-1]{h}{location});
$r = $ua->get($cb);
is($r->{status}, 302, 'twitch: the callback logs in');
my $ua2 = Identity::Test::UA->new;
$ua2->set_cookie($_->{name}, $_->{value}) for grep { $_->{name} =~ /_state$/ } @{$ua->cookies};
$r = $ua2->get($cb);
is($r->{status}, 400, 'the same callback again: state already used, 400');

# configuration errors fail nginx -t

my $c = Identity::Test->new(name => 'oauth-presets-conf');

sub conf_fails {
    my ($conf, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $c->nginx_conf($conf);
    my ($rc, $out) = $c->nginx_test_conf;
    isnt($rc, 0, "nginx -t fails: $name");
    like($out, qr/\[emerg\][^\n]*$re/, "... saying $re");
}

sub oauth_provider {
    my ($lines) = @_;
    return identity_conf(redis => 6379, identity => 'x', providers => <<"P");
    identity_provider x {
        type oauth;
        client_id a;
        client_secret b;
        $lines
    }
P
}

$c->nginx_conf(oauth_provider('preset github;'));
my ($rc, $out) = $c->nginx_test_conf;
is($rc, 0, 'nginx -t accepts a preset') or diag($out);

conf_fails(oauth_provider('preset myspace;'), 'invalid value "myspace" in "preset"',
           'unknown preset');
conf_fails(oauth_provider('token_endpoint http://127.0.0.1:1/t;'),
           'needs a "preset" or "authorization_endpoint"', 'generic form without endpoints');
conf_fails(oauth_provider("preset github;\n userinfo_refresh_interval 5m;"),
           '"userinfo_refresh_interval" of identity provider "x" needs "identity_token_key_file"',
           'refresh interval without a token key');
conf_fails(identity_conf(redis => 6379, issuer => 'http://127.0.0.1:9/', provider => 'pkce on;'),
           'are for providers of type oauth', 'pkce on an OpenID Connect provider');
$c->write_file('short.key', "too short\n");
conf_fails(identity_conf(redis => 6379, issuer => 'http://127.0.0.1:9/',
                         http => 'identity_token_key_file %%TESTDIR%%/short.key;'),
           'must hold at least 32 bytes', 'a short token key');

$t->done;
