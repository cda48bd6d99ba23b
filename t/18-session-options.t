#!/usr/bin/perl
# Session options from ngrok's actions: auth ids (several configurations on
# one server), a cookie domain shared by subdomains, CORS preflight, and
# per-location session lifetimes; the login and logout endpoints with
# redirect_path and auth_id.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'session-options');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback",
    "http://a.example.test:$nport/_identity/callback"]);

my $p = protected('test');
my $locations = <<"L";
        location /one/ {
            identity_auth_id one;
$p        }
        location /one-more/ {
            identity_auth_id one;
$p        }
        location /two/ {
            identity_auth_id two;
            identity_max_session_duration 2s;
$p        }
        location /cors/ {
            identity_allow_cors_preflight on;
$p        }
L

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, locations => $locations,
    server => 'server_name 127.0.0.1;',
    http => <<'H'));
    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        server_name *.example.test;
        identity_cookie_domain example.test;
        location / {
            identity test;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
            proxy_set_header X-Identity-Email $identity_email;
        }
    }
H
$t->start_nginx;

# auth ids: separate cookies, separate sessions

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/one/x");
is($r->{status}, 200, 'logged in at auth id "one"');
ok($ua->cookie('identity_session_one'), 'its cookie is identity_session_one');
ok(!$ua->cookie('identity_session'), 'not the server\'s cookie');
my $sid = $ua->cookie('identity_session_one');
is($t->redis('HGET', Identity::Test::session_key($sid), 'auth'), 'one',
   'the session records its auth id');
is($ua->get("$base/one-more/y")->{status}, 200, 'another location of "one" shares it');
is($ua->get("$base/two/x")->{status}, 302, 'auth id "two" asks for its own login');
is($ua->get("$base/x")->{status}, 302, 'so does the server\'s default');
is(upstream_saw($ua->get("$base/one/x")->{body})->{session},
   $t->redis('HGET', Identity::Test::session_key($sid), 'id'), 'upstream sees the "one" session');

# a cookie of "one" replayed under "two"'s name is refused

my $copy = Identity::Test::UA->new(headers => { Accept => 'application/json' });
$copy->set_cookie('identity_session_two', $sid);
is($copy->get("$base/two/x")->{status}, 401, 'a session of "one" does not open "two"');
ok($t->log_like(qr/session "as_[0-9a-f]+" is for auth id "one"/), 'logged');

# the login endpoint with auth_id logs in for that configuration

$r = $ua->oidc_login("$base/_identity/login?auth_id=two&redirect_path=%2Ftwo%2Fz");
is($r->{status}, 200, 'login endpoint with auth_id=two');
is($r->{url}, "$base/two/z", 'back at redirect_path');
ok($ua->cookie('identity_session_two'), 'identity_session_two set');
is($ua->get("$base/one/x")->{status}, 200, '"one" still logged in beside it');
is($ua->get("$base/_identity/login?auth_id=nope")->{status}, 400, 'unknown auth id: 400');
is($ua->get("$base/_identity/login?redirect_path=//evil.example/")->{status}, 400,
   'redirect_path to another host: 400');

# the logout endpoint with auth_id ends that session only

my $sid2 = $ua->cookie('identity_session_two');
$r = $ua->get("$base/_identity/logout?auth_id=two&redirect_path=%2Fbye");
is($r->{status}, 302, 'logout auth_id=two');
like($r->{h}{location}, qr{/bye$}, 'to redirect_path');
is($t->redis('EXISTS', Identity::Test::session_key($sid2)), 0, '"two" session deleted');
is($t->redis('EXISTS', Identity::Test::session_key($sid)), 1, '"one" session kept');
is($ua->get("$base/one/x")->{status}, 200, '"one" still admitted');

# per-location maximum duration ("two": 2 s)

$r = $ua->oidc_login("$base/two/z");
is($r->{status}, 200, '"two" logged in again');
sleep 2.2;
is($ua->get("$base/two/z")->{status}, 302, 'after its 2 s maximum: login again');
is($ua->get("$base/one/x")->{status}, 200, '"one", with the default, still admitted');

# CORS preflight

my $pre = { Origin => 'http://app.example', 'Access-Control-Request-Method' => 'PUT' };
$r = Identity::Test::UA->new->request('OPTIONS', "$base/cors/x", headers => $pre);
is($r->{status}, 200, 'preflight passes to the upstream without a session');
like($r->{body}, qr{^uri=/cors/x}m, 'the upstream answered it');
$r = Identity::Test::UA->new(headers => { Accept => 'application/json' })
    ->request('OPTIONS', "$base/cors/x", headers => { Origin => 'http://app.example' });
is($r->{status}, 401, 'OPTIONS that is no preflight still needs a session');
$r = Identity::Test::UA->new(headers => { Accept => 'application/json' })
    ->request('OPTIONS', "$base/one/x", headers => $pre);
is($r->{status}, 401, 'without identity_allow_cors_preflight, a preflight needs a session');
$r = Identity::Test::UA->new(headers => { Accept => 'application/json' })
    ->request('GET', "$base/cors/x", headers => $pre);
is($r->{status}, 401, 'a GET with the preflight headers is no preflight');

# one login for several subdomains

my $sub = Identity::Test::UA->new;
$r = $sub->get("$base/", headers => { Host => "a.example.test:$nport" });
is($r->{status}, 302, 'a.example.test: sent to log in');
my ($state_cookie) = grep { /_state=/ } @{$r->{cookies_set}};
like($state_cookie, qr/; Domain=example\.test/, 'state cookie for the parent domain');
# finish the login through a.example.test, by hand: the IdP redirects there
my $idp_ua = Identity::Test::UA->new;
$idp_ua->set_cookie($_->{name}, $_->{value}) for @{$sub->cookies};
my $res = $idp_ua->oidc_login($r->{h}{location}, stop => sub { $_[0] =~ m{/_identity/callback} });
my $cb = Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location});
$cb =~ s{^http://a\.example\.test:$nport}{$base};
my ($st) = $state_cookie =~ /^([^=]+)=([^;]*)/ ? ($2) : ();
my $cbua = Identity::Test::UA->new;
$cbua->set_cookie((split /=|;/, $state_cookie)[0], $st);
$r = $cbua->get($cb, headers => { Host => "a.example.test:$nport" });
is($r->{status}, 302, 'callback on a.example.test');
my ($session_cookie) = grep { /^identity_session=/ } @{$r->{cookies_set}};
like($session_cookie, qr/; Domain=example\.test/, 'session cookie for the parent domain');
my ($v) = $session_cookie =~ /^identity_session=([^;]+)/;
my $b = Identity::Test::UA->new;
$b->set_cookie('identity_session', $v);
$r = $b->get("$base/", headers => { Host => "b.example.test:$nport" });
is($r->{status}, 200, 'the same session opens b.example.test');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'as alice');

$t->done;
