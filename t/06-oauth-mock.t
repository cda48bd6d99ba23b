#!/usr/bin/perl
# Self-test of t/idp/oauth-mock.mjs and t/lib/Identity/OAuthMock.pm: the
# authorize -> token -> user flow of the eight OAuth 2.0 provider mocks over
# plain HTTP, refresh, revocation, expiry and each provider's own rules (no
# identity module needed).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256);
use HTTP::Tiny;
use JSON::PP qw(decode_json);
use MIME::Base64 qw(encode_base64);
use Test::More;
use Identity::Test;
use Identity::OAuthMock qw(start_oauth_mock);

my $t = Identity::Test->new(name => 'oauth-mock');
my $mock = $t->start_oauth_mock;
like($mock->{base}, qr{^http://127\.0\.0\.1:\d+\z}, 'base');
ok($mock->{pid} > 0 && kill(0, $mock->{pid}), 'pid is running');

my $cb = 'http://127.0.0.1:' . $t->port('nginx') . '/_identity/callback';
my $http = HTTP::Tiny->new(max_redirect => 0, timeout => 10);

my %P = (
    amazon => { authz => '/ap/oa', token => '/auth/o2/token', user => '/user/profile',
        scope => 'profile postal_code', type => 'bearer', refresh => 'echo', auth => 'body',
        id => [user_id => 'amzn1.account.AEXAMPLE7QZKJ2LWRJ3XT5VNAB4Q'], email => [email => 'amazon.user@example.com'] },
    facebook => { authz => '/v19.0/dialog/oauth', token => '/v19.0/oauth/access_token',
        user => '/me?fields=id,name,email', scope => 'email,public_profile', type => 'bearer', refresh => 'none',
        auth => 'body', id => [id => '10158234567890123'], email => [email => 'facebook.user@example.com'] },
    github => { authz => '/login/oauth/authorize', token => '/login/oauth/access_token', user => '/user',
        scope => 'read:user user:email', type => 'bearer', refresh => 'rotate', auth => 'body',
        config => { expiring_tokens => JSON::PP::true }, accept_json => 1,
        id => [id => 583231], email => [email => undef], number_id => 1 },
    gitlab => { authz => '/oauth/authorize', token => '/oauth/token', user => '/api/v4/user',
        scope => 'read_user openid', type => 'bearer', refresh => 'rotate', auth => 'basic',
        id => [id => 1234567], email => [email => 'gitlab.user@example.com'], number_id => 1 },
    google => { authz => '/o/oauth2/v2/auth', token => '/token', user => '/v1/userinfo',
        scope => 'openid email profile', extra => { access_type => 'offline' }, type => 'Bearer',
        refresh => 'none-on-refresh', auth => 'basic',
        id => [sub => '110169484474386276334'], email => [email => 'google.user@example.com'] },
    linkedin => { authz => '/oauth/v2/authorization', token => '/oauth/v2/accessToken', user => '/v2/userinfo',
        scope => 'openid profile email', type => 'Bearer', refresh => 'echo', auth => 'body',
        config => { refresh => JSON::PP::true },
        id => [sub => '782bbtaQ'], email => [email => 'linkedin.user@example.com'] },
    microsoft => { authz => '/common/oauth2/v2.0/authorize', token => '/common/oauth2/v2.0/token',
        user => '/v1.0/me', scope => 'openid email profile offline_access User.Read', type => 'Bearer',
        refresh => 'rotate', auth => 'basic',
        id => [id => '87d349ed-44d7-43e1-9a83-5f2406dee5bd'], email => [mail => 'AdeleV@contoso.example'] },
    twitch => { authz => '/oauth2/authorize', token => '/oauth2/token', user => '/helix/users',
        scope => 'user:read:email', type => 'bearer', refresh => 'echo', auth => 'body',
        headers => { 'client-id' => 'test-client' }, unwrap => sub { $_[0]{data}[0] },
        id => [id => '141981764'], email => [email => 'twitch.user@example.com'] },
);

sub form_post {
    my ($url, $form, %h) = @_;
    return $http->request('POST', $url, { headers => {
        'content-type' => 'application/x-www-form-urlencoded', %h }, content => $http->www_form_urlencode($form) });
}

sub basic {
    my ($id, $secret) = @_;
    my $esc = sub { my $s = Identity::Test::UA::uri_escape($_[0]); $s =~ s/%20/+/g; $s };
    return 'Basic ' . encode_base64($esc->($id) . ':' . $esc->($secret), '');
}

sub query_of {
    my ($url) = @_;
    my ($q) = $url =~ /\?([^#]*)/ or return {};
    return { map { my ($k, $v) = split /=/, $_, 2;
        (Identity::Test::UA::uri_unescape($k), Identity::Test::UA::uri_unescape($v // '')) } split /&/, $q };
}

# authorize -> (query of the redirect, location, verifier)
sub authorize {
    my ($name, %o) = @_;
    my $p = $P{$name};
    my ($verifier, $challenge) = Identity::Test::pkce_pair();
    my %q = (response_type => 'code', client_id => $o{client_id} // 'test-client', redirect_uri => $o{redirect_uri} // $cb,
        state => "st-$name", scope => $o{scope} // $p->{scope}, code_challenge => $challenge,
        code_challenge_method => 'S256', prompt => 'login', %{$p->{extra} // {}});
    my $r = $http->get($mock->url($name, $p->{authz}) . '?' . $http->www_form_urlencode(\%q));
    return ($r, query_of($r->{headers}{location} // ''), $verifier);
}

# token request with the provider's documented client authentication
sub token {
    my ($name, $form, %o) = @_;
    my $p = $P{$name};
    my %h = $p->{accept_json} ? (accept => 'application/json') : ();
    my %f = %$form;
    if (($o{auth} // $p->{auth}) eq 'basic') {
        $h{authorization} = basic($o{client_id} // 'test-client', $o{secret} // 'test-secret');
    } else {
        @f{qw(client_id client_secret)} = ($o{client_id} // 'test-client', $o{secret} // 'test-secret');
    }
    my $r = form_post($mock->url($name, $p->{token}), \%f, %h);
    my $j = eval { decode_json($r->{content}) };
    return ($r, $j);
}

sub userinfo {
    my ($name, $token, %h) = @_;
    my $p = $P{$name};
    return $http->get($mock->url($name, $p->{user}),
        { headers => { authorization => "Bearer $token", %{$p->{headers} // {}}, %h } });
}

sub login {
    my ($name) = @_;
    my ($r, $q, $verifier) = authorize($name);
    return token($name, { grant_type => 'authorization_code', code => $q->{code}, redirect_uri => $cb,
        code_verifier => $verifier });
}

# ------------------------------------------------------------ every provider

my %tok;
for my $name (sort keys %P) {
    my $p = $P{$name};
    $mock->config($name, %{$p->{config}}) if $p->{config};

    my ($r, $q, $verifier) = authorize($name);
    is($r->{status}, 302, "$name: authorize redirects");
    like($r->{headers}{location}, qr{^\Q$cb\E\?}, "$name: to the redirect_uri");
    ok(length($q->{code} // '') >= 20, "$name: with a code");
    is($q->{state}, "st-$name", "$name: state echoed");

    my $reqs = $mock->requests($name);
    is($reqs->[-1]{query}{code_challenge}, Identity::Test::b64url(sha256($verifier)), "$name: PKCE challenge recorded");
    is($reqs->[-1]{query}{prompt}, 'login', "$name: extra parameter recorded");

    my %form = (grant_type => 'authorization_code', code => $q->{code}, redirect_uri => $cb);
    my ($tr, $j) = token($name, \%form);
    ok($tr->{status} != 200 || $j->{error} || !$j->{access_token}, "$name: code without code_verifier refused");
    ($r, $q, $verifier) = authorize($name);
    %form = (grant_type => 'authorization_code', code => $q->{code}, redirect_uri => $cb, code_verifier => $verifier);
    ($tr, $j) = token($name, \%form);
    is($tr->{status}, 200, "$name: token 200") or diag($tr->{content});
    ok(length($j->{access_token} // '') >= 20, "$name: access_token");
    is($j->{token_type}, $p->{type}, "$name: token_type $p->{type}");
    is($j->{expires_in}, 3600, "$name: expires_in");
    is(!!$j->{refresh_token}, $p->{refresh} ne 'none', "$name: refresh_token " . ($p->{refresh} eq 'none' ? 'absent' : 'present'));
    is($mock->requests($name)->[-1]{form}{code_verifier}, $verifier, "$name: code_verifier recorded");
    $tok{$name} = $j;

    my ($again) = token($name, \%form);
    my $aj = eval { decode_json($again->{content}) } // {};
    ok($again->{status} != 200 || $aj->{error}, "$name: code is one use");
    ok(!$aj->{access_token}, "$name: no token the second time");

    my $u = userinfo($name, $j->{access_token});
    is($u->{status}, 200, "$name: user 200") or diag($u->{content});
    my $obj = decode_json($u->{content});
    $obj = $p->{unwrap}->($obj) if $p->{unwrap};
    is($obj->{$p->{id}[0]}, $p->{id}[1], "$name: $p->{id}[0]");
    is($obj->{$p->{email}[0]}, $p->{email}[1], "$name: $p->{email}[0]");
    my $num = qq{"$p->{id}[0]":$p->{id}[1]};
    like($u->{content}, qr/\Q$num\E[,}]/, "$name: id is a JSON number") if $p->{number_id};

    my $bad = userinfo($name, 'not-a-token');
    is($bad->{status}, $name eq 'facebook' ? 400 : 401, "$name: unknown token refused");
}

# ------------------------------------------------------------ provider shapes

my $ghr = form_post($mock->url('github', '/login/oauth/access_token'), { code => 'nope',
    client_id => 'test-client', client_secret => 'test-secret' });
is($ghr->{status}, 200, 'github: token errors are 200');
like($ghr->{headers}{'content-type'}, qr{^application/x-www-form-urlencoded}, 'github: form-encoded without Accept');
like($ghr->{content}, qr/^error=bad_verification_code&/, 'github: bad_verification_code');
$mock->config('github', expiring_tokens => JSON::PP::false);
{
    my ($r, $q) = authorize('github');
    my $tr = form_post($mock->url('github', '/login/oauth/access_token'), { code => $q->{code},
        client_id => 'test-client', client_secret => 'test-secret', code_verifier => 'x' x 43 });
    like($tr->{content}, qr/^error=bad_verification_code/, 'github: wrong code_verifier refused');
    my ($r2, $q2, $v2) = authorize('github');
    $tr = form_post($mock->url('github', '/login/oauth/access_token'), { code => $q2->{code},
        client_id => 'test-client', client_secret => 'test-secret', code_verifier => $v2 });
    like($tr->{content}, qr/^access_token=gho_\w+&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer\z/,
        'github: access_token=...&scope=...&token_type=bearer, no expiry') or diag($tr->{content});
    my ($at) = $tr->{content} =~ /access_token=([^&]+)/;
    my $raw = Identity::Test::http_raw($mock->{port}, "GET /github/user HTTP/1.0\r\nAuthorization: token $at\r\n\r\n");
    like($raw, qr{^HTTP/1\.1 403 }, 'github: no User-Agent is 403');
    like($raw, qr/User-Agent header/, 'github: and says why');
    $raw = Identity::Test::http_raw($mock->{port}, "GET /github/user HTTP/1.0\r\nUser-Agent: t\r\nAuthorization: token $at\r\n\r\n");
    like($raw, qr{^HTTP/1\.1 200 }, 'github: "token" scheme with a User-Agent is 200');
    like($raw, qr/\r\nx-oauth-scopes: read:user, user:email\r\n/i, 'github: X-OAuth-Scopes');
    my $em = $http->get($mock->url('github', '/user/emails'), { headers => { authorization => "Bearer $at" } });
    is($em->{status}, 200, 'github: /user/emails');
    my ($primary) = grep { $_->{primary} } @{decode_json($em->{content})};
    is_deeply($primary, { email => 'octocat@example.com', primary => JSON::PP::true, verified => JSON::PP::true,
        visibility => 'private' }, 'github: verified primary email');
    my ($r3, $q3, $v3) = authorize('github', scope => 'read:user');
    my (undef, $j3) = token('github', { code => $q3->{code}, code_verifier => $v3 });
    is($http->get($mock->url('github', '/user/emails'), { headers => { authorization => "Bearer $j3->{access_token}" } })->{status},
        404, 'github: /user/emails needs user:email');
    $mock->set_user('github', { login => 'hubot', id => 1, name => 'Hubot', email => 'hubot@example.com' },
        [{ email => 'hubot@example.com', primary => JSON::PP::true, verified => JSON::PP::false, visibility => 'public' }]);
    my ($r4, $q4, $v4) = authorize('github');
    my (undef, $j4) = token('github', { code => $q4->{code}, code_verifier => $v4 });
    is(decode_json(userinfo('github', $j4->{access_token})->{content})->{login}, 'hubot', 'github: /__test/user');
    is(decode_json(userinfo('github', $at)->{content})->{login}, 'octocat', 'github: older token keeps its user');
}

{
    my $tw = $tok{twitch}{access_token};
    my $r = $http->get($mock->url('twitch', '/helix/users'), { headers => { authorization => "Bearer $tw" } });
    is($r->{status}, 401, 'twitch: no Client-Id is 401');
    is_deeply(decode_json($r->{content}), { error => 'Unauthorized', status => 401,
        message => 'Client ID and OAuth token do not match' }, 'twitch: error body');
    is(userinfo('twitch', $tw, 'client-id' => 'other')->{status}, 401, 'twitch: wrong Client-Id is 401');
    is_deeply($tok{twitch}{scope}, ['user:read:email'], 'twitch: scope is an array');
    my ($ar, $q, $v) = authorize('twitch', scope => 'chat:read');
    my (undef, $j) = token('twitch', { grant_type => 'authorization_code', code => $q->{code}, redirect_uri => $cb, code_verifier => $v });
    ok(!exists decode_json(userinfo('twitch', $j->{access_token})->{content})->{data}[0]{email}, 'twitch: email needs user:read:email');
}

{
    my $r = $http->get($mock->url('facebook', '/me?fields=id,name'), { headers => { authorization => "Bearer $tok{facebook}{access_token}" } });
    ok(!exists decode_json($r->{content})->{email}, 'facebook: email only when asked for');
    my ($ar, $q, $v) = authorize('facebook', scope => 'public_profile');
    my (undef, $j) = token('facebook', { code => $q->{code}, redirect_uri => $cb, code_verifier => $v });
    ok(!exists decode_json(userinfo('facebook', $j->{access_token})->{content})->{email}, 'facebook: email needs the email permission');
    my $bad = userinfo('facebook', 'nope');
    is(decode_json($bad->{content})->{error}{code}, 190, 'facebook: OAuthException 190');
    like($ar->{headers}{location}, qr/#_=_\z/, 'facebook: #_=_ on the redirect');
}

like($tok{google}{scope}, qr{https://www\.googleapis\.com/auth/userinfo\.email}, 'google: scope as URLs');
like($tok{google}{id_token}, qr/^[\w-]+\.[\w-]+\.[\w-]+\z/, 'google: id_token');
like($tok{amazon}{access_token}, qr/^Atza\|/, 'amazon: Atza| token');
like($tok{amazon}{refresh_token}, qr/^Atzr\|/, 'amazon: Atzr| refresh token');
is($tok{linkedin}{scope}, 'openid,profile,email', 'linkedin: comma-separated scope');
like($tok{microsoft}{scope}, qr/\bUser\.Read\b/, 'microsoft: User.Read granted');
unlike($tok{microsoft}{scope}, qr/offline_access/, 'microsoft: offline_access not echoed');

# ------------------------------------------------------------ refresh

for my $name (grep { $P{$_}{refresh} ne 'none' } sort keys %P) {
    my $p = $P{$name};
    my $old = $tok{$name}{refresh_token};
    $mock->config('github', expiring_tokens => JSON::PP::true) if $name eq 'github';
    my ($r, $j) = token($name, { grant_type => 'refresh_token', refresh_token => $old });
    is($r->{status}, 200, "$name: refresh 200") or diag($r->{content});
    ok($j->{access_token} && $j->{access_token} ne $tok{$name}{access_token}, "$name: new access token");
    is(userinfo($name, $j->{access_token})->{status}, 200, "$name: new access token works");
    if ($p->{refresh} eq 'rotate') {
        ok($j->{refresh_token} && $j->{refresh_token} ne $old, "$name: rotated refresh token");
        my ($r2, $j2) = token($name, { grant_type => 'refresh_token', refresh_token => $old });
        ok($r2->{status} != 200 || !$j2->{access_token}, "$name: old refresh token refused");
    } elsif ($p->{refresh} eq 'echo') {
        is($j->{refresh_token}, $old, "$name: same refresh token");
    } else {
        ok(!exists $j->{refresh_token}, "$name: no refresh token on refresh");
    }
    $tok{$name} = { %$j, refresh_token => $j->{refresh_token} // $old };
}
{
    my ($r, $j) = token('facebook', { grant_type => 'refresh_token', refresh_token => 'x' });
    is($r->{status}, 400, 'facebook: no refresh grant');
}

# ------------------------------------------------------------ revoke, expiry, errors

for my $name (qw(gitlab microsoft)) {
    $mock->revoke($name);
    is(userinfo($name, $tok{$name}{access_token})->{status}, 401, "$name: revoked access token is 401");
    my ($r, $j) = token($name, { grant_type => 'refresh_token', refresh_token => $tok{$name}{refresh_token} });
    is($r->{status}, 400, "$name: revoked refresh token is 400");
    is($j->{error}, 'invalid_grant', "$name: invalid_grant");
}
like(userinfo('gitlab', $tok{gitlab}{access_token})->{content}, qr/revoked/, 'gitlab: says revoked');

$mock->config('gitlab', expires_in => 1);
{
    my (undef, $j) = login('gitlab');
    is($j->{expires_in}, 1, 'expires_in from /__test/config');
    is(userinfo('gitlab', $j->{access_token})->{status}, 200, 'fresh token works');
    sleep 1.3;
    my $r = userinfo('gitlab', $j->{access_token});
    is($r->{status}, 401, 'expired token is 401');
    like($r->{content}, qr/Token is expired/, 'gitlab: says expired');
}

$mock->config('amazon', userinfo_status => 500);
is(userinfo('amazon', $tok{amazon}{access_token})->{status}, 500, 'userinfo_status forces the status');
$mock->config('amazon', userinfo_status => undef);
is(userinfo('amazon', $tok{amazon}{access_token})->{status}, 200, 'and back');

$mock->config('google', deny => JSON::PP::true);
{
    my ($r, $q) = authorize('google');
    is($q->{error}, 'access_denied', 'deny: error=access_denied');
    is($q->{state}, 'st-google', 'deny: with the state');
    ok(!exists $q->{code}, 'deny: no code');
}
$mock->config('google', deny => JSON::PP::false);
{
    my ($r) = authorize('google', redirect_uri => 'https://evil.example/cb');
    is($r->{status}, 400, 'non-loopback redirect_uri: 400');
    ok(!$r->{headers}{location}, 'and no redirect');
    ($r) = authorize('google', client_id => 'nobody');
    is($r->{status}, 400, 'unknown client_id: 400');
    my ($ar, $q, $v) = authorize('google');
    my ($tr, $j) = token('google', { grant_type => 'authorization_code', code => $q->{code}, redirect_uri => "$cb/other", code_verifier => $v });
    is($j->{error}, 'invalid_grant', 'redirect_uri must match');
    ($ar, $q, $v) = authorize('google');
    ($tr, $j) = token('google', { grant_type => 'authorization_code', code => $q->{code}, redirect_uri => $cb, code_verifier => $v }, secret => 'wrong');
    is($tr->{status}, 401, 'wrong secret: 401');
    is($j->{error}, 'invalid_client', 'wrong secret: invalid_client');
    my ($r2) = authorize('google', scope => '');
    is(query_of($r2->{headers}{location})->{error}, 'invalid_request', 'google: scope is required');
}

# RFC 6749 2.3.1: Basic carries the form-url-encoded id and secret
$mock->add_client(client_id => 'id with:colon', client_secret => 's+/=%sec ret');
{
    my ($ar, $q, $v) = authorize('gitlab', client_id => 'id with:colon');
    my %f = (grant_type => 'authorization_code', code => $q->{code}, redirect_uri => $cb, code_verifier => $v);
    my $raw = form_post($mock->url('gitlab', '/oauth/token'), \%f,
        authorization => 'Basic ' . encode_base64('id with:colon:s+/=%sec ret', ''));
    is($raw->{status}, 401, 'Basic without form-url-encoding refused');
    ($ar, $q, $v) = authorize('gitlab', client_id => 'id with:colon');
    my ($r, $j) = token('gitlab', { %f, code => $q->{code}, code_verifier => $v }, client_id => 'id with:colon', secret => 's+/=%sec ret');
    is($r->{status}, 200, 'Basic with form-url-encoded id and secret');
    is($mock->requests('gitlab')->[-1]{headers}{authorization}, basic('id with:colon', 's+/=%sec ret'), 'Authorization header recorded');
}

$mock->reset;
is_deeply($mock->requests, [], 'reset clears the requests');
is(userinfo('amazon', $tok{amazon}{access_token})->{status}, 401, 'reset forgets tokens');

$t->done;
