#!/usr/bin/perl
# OpenID Connect login end to end: redirect, the IdP's login form, callback,
# session cookie, what the upstream sees, what Redis holds, logout.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'oidc-login');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer));
$t->start_nginx;

my $ua = Identity::Test::UA->new;

# an unauthenticated browser is sent to the provider

my $r = $ua->get("$base/hello?x=1");
is($r->{status}, 302, 'browser without session: 302');
like($r->{h}{location}, qr{^\Q$issuer\E/auth\?}, 'to the authorization endpoint');
my $loc = $r->{h}{location};
like($loc, qr/[?&]response_type=code(&|$)/, 'response_type=code');
like($loc, qr/[?&]client_id=test-client(&|$)/, 'client_id');
like($loc, qr/[?&]code_challenge_method=S256(&|$)/, 'PKCE S256');
like($loc, qr/[?&]code_challenge=[A-Za-z0-9_-]{43}(&|$)/, 'code_challenge');
like($loc, qr/[?&]nonce=[A-Za-z0-9_-]{43}(&|$)/, 'nonce');
like($loc, qr/[?&]scope=openid%20email%20profile(&|$)/, 'scopes');
like($loc, qr/[?&]redirect_uri=\Q@{[Identity::Test::UA::uri_escape("$base\/_identity\/callback")]}\E(&|$)/,
     'redirect_uri from scheme, Host and identity_path');
my ($state) = $loc =~ /[?&]state=([^&]+)/;

my ($sc) = grep { /^identity_session_state=/ } @{$r->{cookies_set}};
ok($sc, 'state cookie set');
like($sc, qr/^identity_session_state=\Q$state\E;/, 'state cookie carries the state');
like($sc, qr/; HttpOnly/, 'state cookie HttpOnly');
like($sc, qr/; SameSite=Lax/, 'state cookie SameSite=Lax');
unlike($sc, qr/; Secure/, 'no Secure on http');
is($t->redis('EXISTS', 'identity:login:' . sha256_hex($state)), 1,
   'pending login kept in Redis under the hash of the state');

# API clients get 401 instead

my $api = Identity::Test::UA->new(headers => { Accept => 'application/json',
                                               'Sec-Fetch-Mode' => undef });
$r = $api->get("$base/hello");
is($r->{status}, 401, 'API client without session: 401');
ok($r->{h}{'www-authenticate'}, 'with WWW-Authenticate');
$r = $ua->get("$base/hello", headers => { 'X-Requested-With' => 'XMLHttpRequest' });
is($r->{status}, 401, 'XHR without session: 401');
$r = $ua->request('POST', "$base/hello", body => 'a=1');
is($r->{status}, 401, 'POST without session: 401');

# the whole browser flow

$ua = Identity::Test::UA->new;
$r = $ua->oidc_login("$base/hello?x=1", user => 'alice');
is($r->{status}, 200, 'logged in, upstream answers');
is($r->{url}, "$base/hello?x=1", 'back at the original URL');
my $saw = upstream_saw($r->{body});
is($saw->{uri}, '/hello?x=1', 'upstream got the original request');
is($saw->{email}, 'alice@example.test', '$identity_email');
is($saw->{name}, 'Alice Example', '$identity_name');
is($saw->{username}, 'alice', '$identity_username');
is($saw->{provider}, 'test', '$identity_provider');
is($saw->{user_id}, 'alice', '$identity_provider_user_id');
like($saw->{id}, qr/^au_[0-9a-f]{32}$/, '$identity_id');
like($saw->{session}, qr/^as_[0-9a-f]{32}$/, '$identity_session_id');
unlike($saw->{cookie}, qr/identity_session/, 'module cookies not passed upstream');

my ($cb) = grep { $_->{url} =~ m{^\Q$base\E/_identity/callback} } @{$ua->{trace}};
ok($cb, 'went through the callback');
is($cb->{status}, 302, 'callback redirects');
is($cb->{h}{location}, "$base/hello?x=1", 'callback redirects to the original URL');
my ($cookie_line) = grep { /^identity_session=/ } @{$cb->{cookies_set}};
ok($cookie_line, 'session cookie set');
like($cookie_line, qr/; HttpOnly/, 'session cookie HttpOnly');
like($cookie_line, qr/; SameSite=Lax/, 'session cookie SameSite=Lax');
like($cookie_line, qr/; Path=\//, 'session cookie Path=/');
ok((grep { /^identity_session_state=;.*Max-Age=0/ } @{$cb->{cookies_set}}),
   'state cookie deleted');

my $token = $ua->cookie('identity_session', '127.0.0.1');
like($token, qr/^[A-Za-z0-9_-]{43}$/, 'cookie holds a 256-bit secret');
isnt($saw->{session}, $token, 'session id is not the cookie');

# Redis holds only hashes of the secret

my $skey = Identity::Test::session_key($token);
my %s = @{$t->redis('HGETALL', $skey) || []};
is($s{id}, $saw->{session}, 'session record under sha256(cookie)');
is($s{uid}, $saw->{id}, 'session names its identity');
is($s{ip}, '127.0.0.1', 'client IP recorded');
like($t->redis('HGET', "identity:ua:$s{uah}", 'ua'), qr/Chrome/,
     'user agent recorded, under its hash');
is($s{url}, $base, 'endpoint public URL recorded');
is($s{provider}, 'test', 'provider recorded');
ok($s{created_at} && $s{last_active} && $s{expires_at} > time, 'times recorded');
my $ttl = $t->redis('TTL', $skey);
ok($ttl > 0 && $ttl <= 86400, "session expires (ttl $ttl)");
my $keys = $t->redis('KEYS', '*');
ok(!(grep { index($_, $token) >= 0 } @$keys), 'no Redis key contains the cookie');
my $dump = join '', map { my $v = $t->redis('TYPE', $_) eq 'hash'
                          ? join(',', @{$t->redis('HGETALL', $_)}) : ''; $v } @$keys;
ok(index($dump, $token) < 0, 'no Redis value contains the cookie');

my %u = @{$t->redis('HGETALL', "identity:user:$saw->{id}")};
is($u{email}, 'alice@example.test', 'identity record');
is($u{issuer}, $issuer, 'identity keeps the issuer URL');
is($u{sub}, 'alice', 'identity keeps the provider user id');
is($t->redis('ZSCORE', 'identity:sessions', $saw->{session}) > 0, 1, 'session indexed');
is($t->redis('ZSCORE', "identity:user_sessions:$saw->{id}", $saw->{session}) > 0, 1,
   'session indexed under its identity');
is($t->redis('ZSCORE', 'identity:users', $saw->{id}) > 0, 1, 'identity indexed');

# the session works for later requests, including from API clients

$r = $ua->get("$base/other");
is($r->{status}, 200, 'session cookie admits the next request');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'identity again');
$r = $ua->get("$base/api", headers => { Accept => 'application/json' });
is($r->{status}, 200, 'API request with session cookie');

# several requests, one after the other, on one kept-alive connection: the
# connection's write event is ready while each waits for Redis

my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$nport") or die $!;
my @statuses;
for my $i (1 .. 5) {
    print $sock "GET /ka$i HTTP/1.1\r\nHost: 127.0.0.1:$nport\r\n"
                . "Cookie: identity_session=$token\r\nAccept: text/html\r\n\r\n";
    my ($head, $line) = ('');
    while (defined($line = <$sock>)) { $head .= $line; last if $line eq "\r\n" }
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;
    read($sock, my $body, $len // 0);
    push @statuses, ($head =~ m{^HTTP/1\.1 (\d+)}) [0] // 0;
}
close $sock;
is_deeply(\@statuses, [200, 200, 200, 200, 200], 'keep-alive: every request admitted');

$r = Identity::Test::UA->new->get("$base/public/x");
is($r->{status}, 200, 'identity off: no login');
$r = $ua->get("$base/public/x");
unlike(upstream_saw($r->{body})->{cookie}, qr/identity_session/,
       'identity off: the session cookie is not passed upstream either');

# a second login of the same user keeps the identity, makes a new session

my $ua2 = Identity::Test::UA->new;
$r = $ua2->oidc_login("$base/second", user => 'alice');
my $saw2 = upstream_saw($r->{body});
is($saw2->{id}, $saw->{id}, 'same identity id on second login');
isnt($saw2->{session}, $saw->{session}, 'new session');

# the login endpoint

$r = Identity::Test::UA->new->get("$base/_identity/login?redirect_path=/deep/page");
is($r->{status}, 302, 'login endpoint redirects to the provider');
like($r->{h}{location}, qr{^\Q$issuer\E/auth\?}, 'login endpoint: to the IdP');
for my $bad ('//evil.example/', '/\\evil.example', 'https://evil.example/',
             '%2F%2Fevil.example', "/x%0d%0aSet-Cookie:a=b") {
    $r = Identity::Test::UA->new->get("$base/_identity/login?redirect_path=$bad");
    is($r->{status}, 400, "login refuses redirect_path $bad");
}
my $ua3 = Identity::Test::UA->new;
$r = $ua3->oidc_login("$base/_identity/login?redirect_path=/deep/page");
is($r->{url}, "$base/deep/page", 'login endpoint returns to redirect_path');
$r = $ua->get("$base/_identity/nope");
is($r->{status}, 404, 'unknown reserved path: 404');

# logout deletes the session in Redis

$r = $ua->get("$base/_identity/logout?redirect_path=/public/bye");
is($r->{status}, 302, 'logout redirects');
is($r->{h}{location}, "$base/public/bye", 'to redirect_path');
ok((grep { /^identity_session=;.*Max-Age=0/ } @{$r->{cookies_set}}), 'cookie deleted');
is($t->redis('EXISTS', $skey), 0, 'session deleted in Redis');
is($t->redis('ZSCORE', 'identity:sessions', $saw->{session}), undef, 'and unindexed');
$ua->set_cookie('identity_session', $token);
$r = $ua->get("$base/hello");
is($r->{status}, 302, 'old cookie no longer admits');
$r = $ua->get("$base/_identity/logout?redirect_path=//evil.example");
is($r->{status}, 400, 'logout refuses an open redirect');

$t->done;
