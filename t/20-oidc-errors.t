#!/usr/bin/perl
# Every bad input to the OpenID Connect login gets a clean answer, a log line
# at the right level and no session: forged or replayed state and code, each
# bad id_token the test IdP can make, key rotation, IdP errors, bad cookies,
# Redis going away, revoked and timed-out sessions, bad configuration.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(sleep time);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'oidc-errors');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $idle_base = 'http://127.0.0.1:' . $t->port('idle');
my $max_base = 'http://127.0.0.1:' . $t->port('max');
my $issuer = $t->start_idp(redirect_uris => [
    map { "$_/_identity/callback" } $base, $idle_base, $max_base]);

# two more servers with short session lifetimes

sub short_server {
    my ($port, $directives) = @_;
    return <<"CONF";
    server {
        listen 127.0.0.1:%%PORT_$port%%;
        $directives
        location / {
            identity test;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
            proxy_set_header X-Identity-Session \$identity_session_id;
        }
    }
CONF
}

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => short_server('idle', 'identity_idle_session_timeout 2s;'
                                 . ' identity_session_touch_interval 1s;')
          . short_server('max', 'identity_max_session_duration 3s;'
                                . ' identity_session_touch_interval 1s;')));
$t->start_nginx;

my $api_headers = { Accept => 'application/json', 'Sec-Fetch-Mode' => undef };

sub sessions { scalar @{$t->redis('KEYS', 'identity:session:*') || []} }

sub log_mark { length $t->error_log }

sub log_since { substr($t->error_log, $_[0]) }

# One line at $level matching $re was logged since $mark; for a client's
# mistake ("info") nothing worse was.
sub logged {
    my ($mark, $level, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $log = log_since($mark);
    ok($log =~ /\[\Q$level\E\][^\n]*$re/, "$name: [$level] $re")
        or diag(join "\n", grep { /\[(info|notice|warn|error|crit)\]/ } split /\n/, $log);
    if ($level eq 'info') {
        my @worse = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
        ok(!@worse, "$name: nothing worse than info logged")
            or diag(join "\n", @worse);
    }
}

# Drives a browser login up to the callback; returns the callback URL.
sub to_callback {
    my ($ua, $start) = @_;
    my $r = $ua->oidc_login($start // "$base/", stop => sub { $_[0] =~ m{/_identity/callback} });
    return undef unless $r->{status} =~ /^30[123]$/ && $r->{h}{location};
    return Identity::Test::UA::resolve_url($r->{url}, $r->{h}{location});
}

sub param {
    my ($url, $name) = @_;
    my ($v) = $url =~ /[?&]\Q$name\E=([^&#]*)/;
    return $v;
}

# the provider's metadata is fetched once, by a first login

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/warm");
is($r->{status}, 200, 'a normal login works');
my $n = sessions();
is($n, 1, 'one session in Redis');

# ------------------------------------------------------------ key rotation

# keys rotated seconds after the metadata and JWKS were fetched: the first
# unknown kid must still make the module fetch the JWKS again
$t->idp_stats(reset => 1);
my $kids = $t->idp_mode(rotate_keys => 1);
is(scalar @{$kids->{published_kids}}, 2, 'IdP publishes a new key and signs with it');
$ua = Identity::Test::UA->new;
$r = $ua->oidc_login("$base/rotated");
is($r->{status}, 200, 'after key rotation a login works');
is($t->idp_stats->{jwks}, 1, 'the JWKS was fetched again for the new kid');
is($t->idp_stats->{basic_elsewhere}, 0,
   '... without the client credentials of the token call before it');
is(sessions(), ++$n, 'session created');

my $mark = log_mark();
$t->idp_mode(id_token => 'unknown_kid');
$ua = Identity::Test::UA->new;
$r = $ua->oidc_login("$base/unknown-kid");
is($r->{status}, 403, 'unknown kid right after a refetch: 403');
is($t->idp_stats->{jwks}, 1, 'no second JWKS fetch within jwks_refetch_interval');
is(sessions(), $n, 'no session');
logged($mark, 'error', qr/id_token signed with unknown key/, 'unknown kid');
$t->idp_mode(id_token => 'normal');

$r = Identity::Test::UA->new->oidc_login("$base/rotated-again");
is($r->{status}, 200, 'the rotated key keeps working');
is($t->idp_stats->{jwks}, 1, 'without fetching the JWKS');
$n = sessions();

# ------------------------------------------------------------ forged state

$ua = Identity::Test::UA->new;
my $cb = to_callback($ua);
ok($cb, 'login reaches the callback');
my $state = param($cb, 'state');
my $code = param($cb, 'code');
ok($state && $code, 'callback carries code and state');

(my $forged = $cb) =~ s/([?&]state=)[^&]*/$1 . Identity::Test::random_token()/e;
$mark = log_mark();
$r = $ua->get($forged);
is($r->{status}, 400, 'state other than the browser\'s cookie: 400');
ok(!(grep { /^identity_session=/ } @{$r->{cookies_set}}), 'no session cookie');
is(sessions(), $n, 'no session');
logged($mark, 'info', qr/state does not match/, 'forged state');

$mark = log_mark();
$r = Identity::Test::UA->new->get($cb);
is($r->{status}, 400, 'callback without the state cookie: 400');
is(sessions(), $n, 'no session');
logged($mark, 'info', qr/state does not match/, 'no state cookie');

for my $q ("state=$state", "code=$code", '', "code=&state=$state", "code=$code&state=short") {
    $mark = log_mark();
    $r = $ua->get("$base/_identity/callback?$q");
    is($r->{status}, 400, "callback?$q: 400");
    logged($mark, 'info', qr/callback without a valid code and state/, "callback?$q");
}
is(sessions(), $n, 'no session from incomplete callbacks');

# the genuine callback still works: a forgery does not use up the state
$r = $ua->get($cb);
is($r->{status}, 302, 'the genuine callback after the forgeries: 302');
ok((grep { /^identity_session=[A-Za-z0-9_-]{43};/ } @{$r->{cookies_set}}), 'session cookie');
is(sessions(), ++$n, 'session created');

# ------------------------------------------------------------ replays

# the same callback URL again, with the state cookie put back
$ua->set_cookie('identity_session_state', $state);
$mark = log_mark();
$r = $ua->get($cb);
is($r->{status}, 400, 'replayed callback URL: 400');
ok(!(grep { /^identity_session=/ } @{$r->{cookies_set}}), 'no session cookie');
is(sessions(), $n, 'no session');
logged($mark, 'info', qr/unknown, expired or used state/, 'replayed state');

# a used code with a fresh state of another login
my $ua2 = Identity::Test::UA->new;
my $cb2 = to_callback($ua2);
my $state2 = param($cb2, 'state');
isnt($state2, $state, 'fresh login, fresh state');
$mark = log_mark();
$r = $ua2->get("$base/_identity/callback?code=$code&state=$state2");
is($r->{status}, 403, 'replayed code: 403');
ok(!(grep { /^identity_session=/ } @{$r->{cookies_set}}), 'no session cookie');
is(sessions(), $n, 'no session');
logged($mark, 'info', qr/invalid_grant/, 'replayed code');

# ------------------------------------------------------------ bad id_tokens

my %why = (
    tampered => qr/id_token signature is invalid/,
    expired => qr/id_token has expired/,
    wrong_aud => qr/id_token audience/,
    wrong_iss => qr/id_token iss/,
    wrong_nonce => qr/id_token nonce/,
    alg_none => qr/id_token/,
    wrong_key => qr/id_token signature is invalid/,
    unknown_kid => qr/id_token signed with unknown key/,
);

for my $mode (sort keys %why) {
    is($t->idp_mode(id_token => $mode)->{id_token}, $mode, "IdP makes $mode id_tokens");
    $ua = Identity::Test::UA->new;
    $mark = log_mark();
    $r = $ua->oidc_login("$base/$mode");
    like($r->{url}, qr{^\Q$base\E/_identity/callback\?}, "$mode: at the callback");
    is($r->{status}, 403, "$mode: 403");
    ok(!(grep { /^identity_session=/ } @{$r->{cookies_set}}), "$mode: no session cookie");
    is($ua->cookie('identity_session'), undef, "$mode: browser has no session");
    is(sessions(), $n, "$mode: no session in Redis");
    logged($mark, 'error', qr/id_token/, $mode);
    ok(log_since($mark) =~ $why{$mode}, "$mode: the reason is logged");
}
$t->idp_mode(id_token => 'normal');
$r = Identity::Test::UA->new->oidc_login("$base/normal-again");
is($r->{status}, 200, 'back to normal id_tokens: login works');
$n = sessions();

# ------------------------------------------------------------ IdP errors

$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/cancel"));
like($r->{url}, qr{/interaction/[^/]+$}, 'at the IdP login page');
$mark = log_mark();
$r = $ua->follow($ua->get("$r->{url}/abort"));
like($r->{url}, qr{^\Q$base\E/_identity/callback\?.*error=access_denied}, 'IdP sends error=access_denied');
is($r->{status}, 403, 'user cancelled at the IdP: 403');
is(sessions(), $n, 'no session');
logged($mark, 'info', qr/provider refused the login: "access_denied"/, 'IdP error');

$mark = log_mark();
$r = Identity::Test::UA->new->get("$base/_identity/callback?error=access_denied&state=" . Identity::Test::random_token());
is($r->{status}, 403, 'callback with error=access_denied: 403');
is(sessions(), $n, 'no session');
logged($mark, 'info', qr/provider refused the login/, 'forged IdP error');

# ------------------------------------------------------------ cookies

my $browser = Identity::Test::UA->new;
$browser->oidc_login("$base/cookies");
my $token = $browser->cookie('identity_session');
like($token, qr/^[A-Za-z0-9_-]{43}$/, 'logged in');
$n = sessions();
is($browser->get("$base/x")->{status}, 200, 'the session admits');

for my $bad ('short', substr($token, 0, 42), $token . 'A', substr($token, 0, 42) . '.',
             substr($token, 0, 40) . '%41', substr($token, 0, 42) . '=') {
    $mark = log_mark();
    $r = Identity::Test::UA->new->get("$base/x", headers => { Cookie => "identity_session=$bad" });
    is($r->{status}, 302, "malformed session cookie '$bad': 302");
    like($r->{h}{location} // '', qr{^\Q$issuer\E/auth\?}, '... to login');
    logged($mark, 'info', qr/malformed session cookie/, "cookie '$bad'");
    $r = Identity::Test::UA->new(headers => $api_headers)
        ->get("$base/x", headers => { Cookie => "identity_session=$bad" });
    is($r->{status}, 401, "malformed session cookie '$bad', API client: 401");
}

$mark = log_mark();
$r = $browser->get("$base/x", headers => { Cookie => "identity_session=$token; big=" . ('b' x 4100) });
is($r->{status}, 400, 'oversized Cookie header: 400');
logged($mark, 'info', qr/oversized Cookie header/, 'oversized cookie');
$r = $browser->get("$base/x", headers => { Cookie => "identity_session=$token; big=" . ('b' x 4000) });
is($r->{status}, 200, 'a large but allowed Cookie header: 200');

$mark = log_mark();
$r = $browser->get("$base/x", headers => { Cookie => "identity_session=$token; identity_session=$token" });
is($r->{status}, 400, 'session cookie sent twice: 400');
logged($mark, 'info', qr/duplicate cookie "identity_session"/, 'duplicate cookie');
$r = $browser->get("$base/x", headers => { Cookie => "a=1; identity_session=$token; b=2" });
is($r->{status}, 200, 'once among other cookies: 200');

my $raw = Identity::Test::http_raw($t->port('nginx'),
    "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n"
    . "Cookie: identity_session=$token\r\nCookie: identity_session=$token\r\n"
    . "Connection: close\r\n\r\n");
like($raw, qr{^HTTP/1\.1 400 }, 'session cookie in two Cookie headers: 400');
is(sessions(), $n, 'no session from bad cookies');

# ------------------------------------------------------------ revocation

$r = $browser->get("$base/before-revoke");
is($r->{status}, 200, 'session works');
my $sid = upstream_saw($r->{body})->{session};
is($t->redis('DEL', Identity::Test::session_key($token)), 1, 'admin deletes the session key');
$mark = log_mark();
$r = $browser->get("$base/after-revoke");
is($r->{status}, 302, 'revoked session, browser: 302');
like($r->{h}{location} // '', qr{^\Q$issuer\E/auth\?}, '... to login');
logged($mark, 'info', qr/unknown, expired or revoked session/, 'revoked');
$r = Identity::Test::UA->new(headers => $api_headers)
    ->get("$base/api", headers => { Cookie => "identity_session=$token" });
is($r->{status}, 401, 'revoked session, API client: 401');

# ------------------------------------------------------------ idle timeout

$ua = Identity::Test::UA->new;
$r = $ua->oidc_login("$idle_base/idle");
is($r->{status}, 200, 'logged in where the idle timeout is 2s');
$token = $ua->cookie('identity_session');
my $ttl = $t->redis('TTL', Identity::Test::session_key($token));
ok($ttl > 0 && $ttl <= 2, "session key expires with the idle timeout (ttl $ttl)");

my $end = time + 4;
my @st;
while (time < $end) {
    push @st, $ua->get("$idle_base/busy")->{status};
    sleep 0.3;
}
is_deeply([grep { $_ != 200 } @st], [], 'used every 0.3s for 4s: never idle, never refused');

sleep 3;
$mark = log_mark();
$r = $ua->get("$idle_base/after-idle");
is($r->{status}, 302, 'unused for 3s: 302');
like($r->{h}{location} // '', qr{^\Q$issuer\E/auth\?}, '... to login');
logged($mark, 'info', qr/unknown, expired or revoked session/, 'idle');

# ------------------------------------------------------------ maximum duration

$ua = Identity::Test::UA->new;
$r = $ua->oidc_login("$max_base/max");
my $t0 = time;
is($r->{status}, 200, 'logged in where sessions last 3s');
$token = $ua->cookie('identity_session');
my $skey = Identity::Test::session_key($token);
my %s = @{$t->redis('HGETALL', $skey) || []};
is($s{expires_at} - $s{created_at}, 3, 'expires_at is 3s after creation');

# created at a whole second S with expires_at S + 3: it lasts 2 to 3 s
my (@ok, @refused, $touched);
while (time - $t0 < 6) {
    sleep 0.9;
    my $at = time - $t0;
    my $st = $ua->get("$max_base/use")->{status};
    push @{$st == 200 ? \@ok : \@refused}, sprintf('%.1f', $at);
    last if $st != 200;
    $touched = 1 if ($t->redis('HGET', $skey, 'last_active') // 0) > $s{created_at};
}
ok(@ok >= 2 && $ok[-1] >= 1.7, "used every 0.9s: admitted at @ok");
ok($touched, 'the session was touched while used');
is(scalar @refused, 1, 'then refused');
ok(@refused && $refused[0] <= 4.2, "refused after 3s and a step (at @refused)");
$r = $ua->get("$max_base/after-max");
is($r->{status}, 302, 'past the maximum duration: 302');
$r = Identity::Test::UA->new(headers => $api_headers)
    ->get("$max_base/after-max", headers => { Cookie => "identity_session=$token" });
is($r->{status}, 401, 'past the maximum duration, API client: 401');

# ------------------------------------------------------------ Redis down

$browser = Identity::Test::UA->new;
$r = $browser->oidc_login("$base/before-redis-down");
is($r->{status}, 200, 'logged in');
$n = sessions();

$mark = log_mark();
$t->stop_redis;
$r = $browser->get("$base/redis-down");
is($r->{status}, 503, 'Redis down, valid session cookie: 503');
$r = Identity::Test::UA->new->get("$base/redis-down");
is($r->{status}, 503, 'Redis down, a login cannot start: 503');
ok(!$r->{h}{location}, 'no redirect to the IdP');
ok(!(grep { /^identity_session_state=/ } @{$r->{cookies_set}}), 'no state cookie');
$r = Identity::Test::UA->new(headers => $api_headers)->get("$base/redis-down");
is($r->{status}, 401, 'Redis down, API client without a cookie: still 401');
$r = Identity::Test::UA->new->get("$base/public/redis-down");
is($r->{status}, 200, 'Redis down, identity off: 200');
logged($mark, 'error', qr/redis/i, 'Redis down');

# while it stays down every request is answered at once, and the module
# backs off its reconnection attempts
my (@not503, $slowest);
$end = time + 3;
while (time < $end) {
    my $t1 = time;
    my $st = $browser->get("$base/still-down")->{status};
    push @not503, $st if $st != 503;
    $slowest = time - $t1 if !defined $slowest || time - $t1 > $slowest;
    sleep 0.1;
}
is_deeply(\@not503, [], 'Redis down for 3s: every request 503');
ok($slowest < 1, sprintf('each answered at once (slowest %.3fs)', $slowest));
like(log_since($mark), qr/redis at "127\.0\.0\.1" is down, next attempt in \d+ ms/,
     'reconnection attempts are spaced out');

# the outage is logged by its changes of state, not once per request
my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, log_since($mark);
ok(scalar(grep { /redis at "127\.0\.0\.1" (?:lost the connection|connect failed)[^\n]*refusing what needs it until it answers/ } @errors),
   'Redis down: one line says so, and why');
cmp_ok(scalar @errors, '<=', 4, 'and about 30 refused requests add no error line of their own')
    or diag(join "\n", @errors);
like(log_since($mark), qr/\[info\][^\n]*session store unavailable/, 'each refusal is logged at info');
$mark = log_mark();

$t->start_redis;
is(sessions(), 0, 'Redis came back empty');

my $t1 = time;
$end = $t1 + 10;
$r = undef;
my $fresh;
while (time < $end) {
    $fresh = Identity::Test::UA->new;
    $r = $fresh->get("$base/redis-back");
    last if $r->{status} == 302;
    sleep 0.2;
}
is($r->{status}, 302, 'Redis back: a login starts again (reconnected)');
like(log_since($mark), qr/\[notice\][^\n]*redis at "127\.0\.0\.1" answers again after \d+ ms; \d+ requests were refused/,
     'Redis back: one line says so, with the count of refusals');
ok(time - $t1 <= 10, sprintf('within %.1fs', time - $t1));
$r = $fresh->oidc_login("$base/redis-back");
is($r->{status}, 200, 'and completes');
is(sessions(), 1, 'with a session in the new Redis');
is($fresh->get("$base/again")->{status}, 200, 'the new session admits');
$r = $browser->get("$base/lost");
is($r->{status}, 302, 'the session lost with Redis\' data: 302 to login');
like($r->{h}{location} // '', qr{^\Q$issuer\E/auth\?}, '... to the IdP');

# ------------------------------------------------------------ bad configuration

my $c = Identity::Test->new(name => 'oidc-errors-conf');
sub conf_with { identity_conf(redis => 6379, issuer => 'http://127.0.0.1:9/', @_) }
my $good = conf_with();

sub conf_fails {
    my ($conf, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $c->nginx_conf($conf);
    my ($rc, $out) = $c->nginx_test_conf;
    isnt($rc, 0, "nginx -t fails: $name");
    like($out, qr/\[emerg\][^\n]*$re/, "... saying $re");
}

$c->nginx_conf($good);
my ($rc, $out) = $c->nginx_test_conf;
is($rc, 0, 'nginx -t accepts the shared configuration') or diag($out);

my %bad = (
    'identity with an unknown provider' => [
        conf_with(locations => 'location /x/ { identity nosuch; }'),
        qr/unknown identity provider "nosuch" in \S+nginx\.conf:\d+/],
    'provider without issuer' => [
        $good =~ s/^\s*issuer [^\n]*\n//mr,
        qr/identity provider "test" needs "issuer"/],
    'type foo' => [
        $good =~ s/type oidc;/type foo;/r,
        qr/invalid value "foo" in "type"/],
    'signing_algs none' => [
        conf_with(provider => 'signing_algs none;'),
        qr/invalid value "none" in "signing_algs"/],
    'signing_algs HS256' => [
        conf_with(provider => 'signing_algs RS256 HS256;'),
        qr/invalid value "HS256" in "signing_algs"/],
    'identity_redis db=x' => [
        $good =~ s/timeout=2s;/db=x timeout=2s;/r,
        qr/invalid value "db=x" in "identity_redis"/],
    'identity_redis timeout=0' => [
        $good =~ s/timeout=2s;/timeout=0;/r,
        qr/invalid value "timeout=0" in "identity_redis"/],
    'identity_redis bogus=1' => [
        $good =~ s/timeout=2s;/bogus=1;/r,
        qr/invalid value "bogus=1" in "identity_redis"/],
    'identity_path nopath' => [
        conf_with(server => 'identity_path nopath;'),
        qr/invalid value "nopath" in "identity_path"/],
    'identity_path /noslash' => [
        conf_with(server => 'identity_path /noslash;'),
        qr/invalid value "\/noslash" in "identity_path"/],
    'identity_provider without identity_redis' => [
        $good =~ s/^\s*identity_redis [^\n]*\n//mr,
        qr/"identity_provider" needs "identity_redis"/],
);

for my $name (sort keys %bad) {
    conf_fails(@{$bad{$name}}, $name);
}

$t->done;
