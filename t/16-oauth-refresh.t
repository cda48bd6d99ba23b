#!/usr/bin/perl
# type oauth, generic form, against oidc-provider used as a plain OAuth 2.0
# server: every endpoint and claim path configured, the tokens kept
# encrypted with the session, the access token passed upstream, and
# continuous authorization: the user info is fetched again every
# userinfo_refresh_interval, with a refresh grant once the access token has
# expired; a provider that no longer knows the tokens ends the session, one
# that cannot be reached leaves it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'oauth-refresh');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my %idp = (redirect_uris => ["$base/_identity/callback"],
           ttl => { AccessToken => 2 });
my $issuer = $t->start_idp(%idp);

$t->write_file('token.key', Identity::Test::random_token(48) . "\n");

my $providers = <<"P";
    identity_provider generic {
        type oauth;
        authorization_endpoint $issuer/auth;
        token_endpoint $issuer/token;
        userinfo_endpoint $issuer/me;
        client_id test-client;
        client_secret test-secret;
        scopes openid email profile groups offline_access;
        authz_url_params prompt=consent;
        claim_map id=sub email=email name=name username=preferred_username
                  groups=groups email_verified=email_verified;
        userinfo_refresh_interval 3s;
        http_timeout 2s;
    }
P

my $loc = protected('generic');
$loc .= "            proxy_set_header X-Access-Token \$identity_access_token;\n";
$loc .= "            proxy_set_header X-Identity-Groups \$identity_groups;\n";

my $conf = identity_conf(redis => $rport, providers => $providers,
    identity => 'generic', http => 'identity_token_key_file %%TESTDIR%%/token.key;',
    locations => "location /api/ {\n$loc        }\n");
# the echo upstream also shows the token and the groups
$conf =~ s{(cookie=\$http_cookie\n)}{${1}token=\$http_x_access_token\ngroups=\$http_x_identity_groups\n};
$t->nginx_conf($conf);
$t->start_nginx;

sub userinfo_with {
    my ($token) = @_;
    return Identity::Test::UA->new(headers => { Accept => 'application/json' })
        ->get("$issuer/me", headers => { Authorization => "Bearer $token" });
}

# login: authorization code, tokens, user info by the configured paths

my $ua = Identity::Test::UA->new;
my $r = $ua->get("$base/api/x");
is($r->{status}, 302, 'browser sent to log in');
like($r->{h}{location}, qr{^\Q$issuer\E/auth\?}, 'to the configured authorization endpoint');
like($r->{h}{location}, qr/[?&]prompt=consent(&|$)/, 'authz_url_params added');
like($r->{h}{location}, qr/[?&]code_challenge_method=S256(&|$)/, 'PKCE by default');
unlike($r->{h}{location}, qr/[?&]nonce=/, 'no nonce: this is not OpenID Connect');

$ua = Identity::Test::UA->new;
$r = $ua->oidc_login("$base/api/x");
is($r->{status}, 200, 'logged in');
my $saw = upstream_saw($r->{body});
is($saw->{user_id}, 'alice', 'id from claim_map id=sub');
is($saw->{email}, 'alice@example.test', 'email');
is($saw->{name}, 'Alice Example', 'name');
is($saw->{username}, 'alice', 'username from preferred_username');
is($saw->{groups}, 'staff', '$identity_groups');
my $token1 = $saw->{token};
ok(length $token1, '$identity_access_token passed upstream');
is(userinfo_with($token1)->{status}, 200, 'the token upstream is the real access token');

my $skey = Identity::Test::session_key($ua->cookie('identity_session'));
my %h = @{$t->redis('HGETALL', $skey)};
ok(length($h{at} // '') && length($h{rt} // ''), 'access and refresh tokens kept');
ok(index($h{at}, $token1) < 0 && index(join(' ', values %h), $token1) < 0,
   'neither in clear');
like($h{at_exp}, qr/^\d+$/, 'the access token expiry kept');
my $checked = $h{checked};

# a copied ciphertext does not decrypt for another session

my $ua2 = Identity::Test::UA->new;
$r = $ua2->oidc_login("$base/api/y");
my $skey2 = Identity::Test::session_key($ua2->cookie('identity_session'));
$t->redis('HSET', $skey2, 'at', $h{at}, 'checked', time + 3600);
$r = $ua2->get("$base/api/y");
is($r->{status}, 200, 'session with a foreign ciphertext still admitted');
is(upstream_saw($r->{body})->{token}, '', '... but no access token upstream');
ok($t->log_like(qr/\[error\].*does not decrypt/), 'and an error logged');

# within the interval, nothing is checked (the interval is 3 s: a session's
# "checked" time has a resolution of one second, and a second login runs
# before this request)

my $before = $t->idp_stats;
$r = $ua->get("$base/api/x");
is($r->{status}, 200, 'within the interval: admitted');
is($t->idp_stats->{userinfo}, $before->{userinfo}, 'no user info call');

# after the interval, and past the access token's 2 s: refresh, then user info

sleep 3.3;
$r = $ua->get("$base/api/x");
is($r->{status}, 200, 'after the interval: admitted');
my $after = $t->idp_stats;
is($after->{token}, $before->{token} + 1, 'one refresh grant at the token endpoint');
is($after->{userinfo}, $before->{userinfo} + 1, 'one user info call');
my $token2 = upstream_saw($r->{body})->{token};
isnt($token2, $token1, 'the request that refreshed passes the new access token');
sleep 0.3;    # the session update is not waited for
%h = @{$t->redis('HGETALL', $skey)};
cmp_ok($h{checked}, '>', $checked, 'checked time moved on');
$r = $ua->get("$base/api/x");
my $token3 = upstream_saw($r->{body})->{token};
isnt($token3, $token1, 'the session now holds the refreshed access token');
is(userinfo_with($token3)->{status}, 200, 'which the provider accepts');
is(userinfo_with($token1)->{status}, 401, 'the old one has expired');

# two requests at once when a check is due: one check

sleep 3.3;
$before = $t->idp_stats;
my @p = map { $ua->start_request('GET', "$base/api/x") } 1 .. 4;
my @res = map { $_->finish } @p;
is(scalar(grep { $_->{status} == 200 } @res), 4, 'four concurrent requests admitted');
is($t->idp_stats->{userinfo} - $before->{userinfo}, 1, 'one of them checked the user info');

# the provider cannot be reached: the session stays

$t->stop_idp;
sleep 3.3;
$r = $ua->get("$base/api/x");
is($r->{status}, 200, 'provider down: session kept, request admitted');
ok($t->log_like(qr/\[error\].*not checked, kept until the next check/), 'error logged');
is($t->redis('EXISTS', $skey), 1, 'session still in Redis');

# the provider comes back without the grant (its state was lost): refused

$issuer = $t->start_idp(%idp);
sleep 3.3;
$r = $ua->get("$base/api/x");
is($r->{status}, 302, 'provider refuses the tokens: browser sent to log in again');
like($r->{h}{location}, qr{^\Q$issuer\E/auth\?}, '... at the provider');
is($t->redis('EXISTS', $skey), 0, 'the session is gone from Redis');
ok($t->log_like(qr/\[info\].*ended: the provider refuses its tokens/), 'logged at info');
my $api = Identity::Test::UA->new(headers => { Accept => 'application/json' });
$api->set_cookie('identity_session', $ua->cookie('identity_session'));
is($api->get("$base/api/x")->{status}, 401, 'the old cookie gets 401');

$t->done;
