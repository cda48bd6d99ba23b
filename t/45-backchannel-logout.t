#!/usr/bin/perl
# OpenID Connect Back-Channel Logout 1.0: the IdP POSTs a logout token to
# {identity_path}backchannel_logout; a valid one ends the sessions of that IdP
# session (sid) or else of that user (sub), anything invalid is a 400.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'backchannel-logout');

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
          name => 'Alice Example', username => 'alice' },
        { id => 'bob', password => 'bob-password', email => 'bob@example.test',
          name => 'Bob Example', username => 'bob' },
    ]);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer));
$t->start_nginx;

# a server-to-server client, as the IdP is
my $idp_client = Identity::Test::UA->new(headers => {
    Accept => '*/*', 'User-Agent' => 'oidc-provider', 'Accept-Language' => undef,
    'Sec-Fetch-Mode' => undef, 'Sec-Fetch-Dest' => undef,
    'Upgrade-Insecure-Requests' => undef });

sub post_body {
    my ($body, %h) = @_;
    return $idp_client->request('POST', $endpoint, body => $body,
        headers => { 'Content-Type' => 'application/x-www-form-urlencoded', %h });
}

sub post_token { post_body('logout_token=' . Identity::Test::UA::uri_escape($_[0])) }

sub token { $t->idp_logout_token(@_) }

# A login in $ua; returns what the module made of it.
sub login {
    my ($ua, $user, $path) = @_;
    my $r = $ua->oidc_login("$base$path", user => $user);
    my $cookie = $ua->cookie('identity_session', '127.0.0.1') // '';
    my $key = Identity::Test::session_key($cookie);
    return { status => $r->{status}, url => $r->{url}, saw => upstream_saw($r->{body}),
             cookie => $cookie, key => $key, %{{ @{$t->redis('HGETALL', $key) || []} }} };
}

# a new session of the same browser: the IdP signs it in without a form
sub relogin {
    my ($ua, $user, $path) = @_;
    $ua->delete_cookie('identity_session');
    return login($ua, $user, $path);
}

sub alive { $t->redis('EXISTS', $_[0]{key}) }

sub admits {
    my ($s) = @_;
    return Identity::Test::UA->new
        ->get("$base/x", headers => { Cookie => "identity_session=$s->{cookie}" })->{status};
}

sub jti_keys { scalar @{$t->redis('KEYS', 'identity:jti:*') || []} }

# ------------------------------------------------------------ the real flow

my $ua = Identity::Test::UA->new;
my $s0 = login($ua, 'alice', '/real');
is($s0->{status}, 200, 'logged in');
like($s0->{id} // '', qr/^as_[0-9a-f]{32}$/, 'session record in Redis');
ok(length($s0->{idp_sid} // ''), 'the session record keeps the IdP session id (idp_sid)')
    or diag(explain($s0));
my $s0b = relogin($ua, 'alice', '/real2');
is($s0b->{status}, 200, 'second session of the same browser, by single sign-on');
isnt($s0b->{id}, $s0->{id}, 'a new session');
is($s0b->{idp_sid}, $s0->{idp_sid}, 'with the same IdP session id');
is_deeply([sort @{$t->redis('SMEMBERS', "identity:idp_sid:test:$s0->{idp_sid}") || []}],
          [sort $s0->{id}, $s0b->{id}], 'both indexed under the IdP session id');

my $ua_other = Identity::Test::UA->new;
my $other = login($ua_other, 'alice', '/other');
isnt($other->{idp_sid}, $s0->{idp_sid}, 'another browser: another IdP session id');

$t->idp_stats(reset => 1);

my $post_logout = "$base/public/bye";
my $r = $ua->get("$issuer/session/end?client_id=test-client&post_logout_redirect_uri="
                 . Identity::Test::UA::uri_escape($post_logout));
is($r->{status}, 200, "the IdP's end_session endpoint asks for confirmation");
my ($form) = @{Identity::Test::UA::forms($r)};
like($form->{action} // '', qr{/session/end/confirm$}, 'with a form to /session/end/confirm');
$r = $ua->submit_form($r, { logout => 'yes' });
like($r->{status}, qr/^30[23]$/, 'confirming redirects');
$r = $ua->follow($r);
is($r->{url}, $post_logout, 'to the post_logout_redirect_uri');
is($r->{status}, 200, 'which answers');

my $end = time + 5;
sleep 0.05 while (alive($s0) || alive($s0b)) && time < $end;
is(alive($s0), 0, 'the IdP logout ended the session in Redis');
is(alive($s0b), 0, 'and the other session of that IdP session');
my $stats = $t->idp_stats;
is($stats->{backchannel_logout_ok}, 1, 'the IdP posted a logout token and got 200')
    or diag($t->read_file('idp.err'));
is($stats->{backchannel_logout_error}, 0, 'and no error');
is($ua->get("$base/x")->{status}, 302, 'the old cookie is refused: back to login');
is(admits($s0b), 302, 'so is the other one');
is($t->redis('EXISTS', "identity:idp_sid:test:$s0->{idp_sid}"), 0, 'IdP sid index gone');
is($t->redis('ZSCORE', 'identity:sessions', $s0->{id}), undef, 'session unindexed');
is($t->redis('EXISTS', 'identity:session:' . substr($s0->{id}, 3)), 0, 'its hash gone, which its public id names');
is($t->redis('ZSCORE', "identity:user_sessions:$s0->{uid}", $s0->{id}), undef, 'out of its identity\'s list');
is(admits($other), 200, 'the session of another IdP session is untouched');
ok(alive($other), 'and still in Redis');

# ------------------------------------------------------------ logout tokens by sid

my $ua1 = Identity::Test::UA->new;
my $ua2 = Identity::Test::UA->new;
my $ua3 = Identity::Test::UA->new;
my $s1 = login($ua1, 'alice', '/one');
my $s1b = relogin($ua1, 'alice', '/one-b');
my $s2 = login($ua2, 'alice', '/two');
my $s3 = login($ua3, 'bob', '/three');
is($s1b->{idp_sid}, $s1->{idp_sid}, 'browser 1: two sessions, one IdP session');
isnt($s2->{idp_sid}, $s1->{idp_sid}, 'browser 2: another IdP session');
is(admits($_), 200, "session $_->{saw}{uri} admits") for $s1, $s1b, $s2, $s3;

my $jtis = jti_keys();
my $tok = token(sub => 'alice', sid => $s1->{idp_sid});
$r = post_token($tok);
is($r->{status}, 200, 'logout token by sid: 200');
is($r->{body}, '', 'empty body');
is($r->{h}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
is(alive($s1), 0, 'session 1 ended');
is(alive($s1b), 0, 'and the other session of that IdP session');
is(admits($s1), 302, 'session 1 refused');
is(admits($s1b), 302, 'session 1b refused');
is(admits($s2), 200, 'the other IdP session of the same user stays');
is(admits($s3), 200, "bob's session stays");
is(jti_keys(), $jtis + 1, 'the jti is remembered');
my @ttl = map { $t->redis('TTL', $_) } @{$t->redis('KEYS', 'identity:jti:*') || []};
is(scalar(grep { $_ <= 300 || $_ > 600 } @ttl), 0,
   "for longer than a token is accepted, not forever (ttl @ttl)");

$r = post_token($tok);
is($r->{status}, 400, 'the same token again: 400 (replay)');

my $jti = Identity::Test::random_token(16);
is(post_token(token(sid => 'no-such-idp-session', jti => $jti))->{status}, 200,
   'a valid token for an unknown sid: 200');
is(post_token(token(sid => 'no-such-idp-session-2', jti => $jti))->{status}, 400,
   'another token with a used jti: 400');
is(post_token(token(sub => 'nobody'))->{status}, 200, 'a valid token for an unknown sub: 200');
is(post_token(token(sid => 'no-such-idp-session-3', mode => 'no_exp'))->{status}, 200,
   'exp is optional');
is(admits($s2), 200, 'none of them ended a session');
is(admits($s3), 200, 'none at all');

# ------------------------------------------------------------ invalid tokens

my @bad = qw(wrong_key unknown_kid alg_none no_events events_not_object event_not_object
             wrong_event with_nonce wrong_aud wrong_iss iat_future iat_old no_iat
             expired no_jti no_sub_sid);
for my $mode (@bad) {
    $r = post_token(token(sub => 'alice', sid => $s2->{idp_sid}, mode => $mode));
    is($r->{status}, 400, "logout token $mode: 400");
    ok(alive($s2), "logout token $mode: nothing revoked")
        or $s2 = relogin($ua2, 'alice', '/two-again');    # so the next mode is judged alone
}
is(admits($s2), 200, 'after all the invalid tokens the session still works');

# a token another client's: signed right, for someone else
is(post_token(token(sid => $s2->{idp_sid}, client_id => 'other-client'))->{status}, 400,
   'logout token for another client: 400');
ok(alive($s2), 'nothing revoked');

$r = $idp_client->get($endpoint);
is($r->{status}, 405, 'GET: 405');
$r = $idp_client->request('PUT', $endpoint, body => 'logout_token=x');
is($r->{status}, 405, 'PUT: 405');
$r = post_body('logout_token=' . ('a' x 17000));
is($r->{status}, 413, 'body over 16 KB: 413');
$r = post_body('x=' . ('a' x 40000) . '&logout_token='
               . token(sid => $s2->{idp_sid}));
is($r->{status}, 413, 'a valid token in a body over 16 KB: 413');
ok(alive($s2), 'nothing revoked');
like(Identity::Test::http_raw($t->port('nginx'),
        "POST /_identity/backchannel_logout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/x-www-form-urlencoded\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        . join('', map { sprintf("%x\r\n%s\r\n", 4096, 'a' x 4096) } 1 .. 5) . "0\r\n\r\n"),
     qr{^HTTP/1\.1 413 }, 'chunked body over 16 KB: 413');

$r = post_body('logout_token=' . token(sid => 'no-such-idp-session-4') . '&pad=' . ('p' x 11000));
is($r->{status}, 200, 'a valid token in a 12 KB body (under 16 KB) is accepted');

is(post_body('')->{status}, 400, 'empty body: 400');
is(post_body('foo=bar')->{status}, 400, 'no logout_token: 400');
is(post_body('logout_token=')->{status}, 400, 'empty logout_token: 400');
is(post_body('logout_token=garbage')->{status}, 400, 'garbage logout_token: 400');
is(post_body('logout_token=a.b.c')->{status}, 400, 'three garbage parts: 400');
my ($h, $p) = split /\./, token(sid => $s2->{idp_sid});
is(post_body("logout_token=$h.$p.")->{status}, 400, 'signature stripped: 400');
is(post_body("logout_token=$h.$p")->{status}, 400, 'two parts: 400');
ok(alive($s2), 'nothing revoked by any of them');

# ------------------------------------------------------------ logout tokens by sub

my $s4 = relogin($ua1, 'alice', '/four');
is(admits($s4), 200, 'alice has a new session');
$r = post_token(token(sub => 'alice'));
is($r->{status}, 200, 'logout token by sub only: 200');
is(alive($s2), 0, 'ends one session of that user');
is(alive($s4), 0, 'and the other');
is(admits($s2), 302, 'session 2 refused');
is(admits($s4), 302, 'session 4 refused');
is(admits($s3), 200, "bob's session stays");
my $alice_id = $s2->{uid};
is($t->redis('ZCARD', "identity:user_sessions:$alice_id"), 0, 'alice has no session left in Redis');

# ------------------------------------------------------------ and after all that

my $s5 = login(Identity::Test::UA->new, 'alice', '/five');
is($s5->{status}, 200, 'alice can log in again');
is(admits($s5), 200, 'with a working session');

$t->done;
