#!/usr/bin/perl
# The public origin (issue 12, A.4, B.14, B.15): identity_public_url states
# the scheme and host users reach the site at, as behind a TLS-terminating
# proxy; without it the Host header counts only when it names this server.
# Cookies, redirect_uri, the recorded endpoint and the admin API's URIs
# come from it, never from a forged Host.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf server_block location_block upstream_saw);

my $t = Identity::Test->new(name => 'public-origin');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $pport = $t->port('proxied');
my $mport = $t->port('named');
my $mbase = "http://127.0.0.1:$mport";
my $base = "http://127.0.0.1:$nport";
my $pbase = "http://127.0.0.1:$pport";
my $public = 'https://app.example.test';
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback",
    "$public/_identity/callback", "http://named.example.test:$mport/_identity/callback"]);
$t->write_file('admin.token', "origin-admin-token\n");

my $to_upstream = 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;';
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1, http => [
    server_block(port => 'proxied', directives => 'identity_public_url https://APP.example.test/;',
        locations => [location_block('/', 'identity test;', $to_upstream,
            'proxy_set_header X-Identity-Email $identity_email;')]),
    server_block(port => 'named',
        directives => 'server_name named.example.test *.wild.example.test;',
        locations => [location_block('/', 'identity test;', $to_upstream)]),
]));
$t->start_nginx;

sub redirect_uri {
    my ($loc) = @_;
    my ($u) = ($loc // '') =~ /[?&]redirect_uri=([^&]+)/;
    return Identity::Test::UA::uri_unescape($u // '');
}

# ------------------------------------------------ behind a TLS proxy

my $ua = Identity::Test::UA->new;
my $r = $ua->get("$pbase/app?x=1", headers => { Host => 'evil.example' });
is($r->{status}, 302, 'public URL: sent to log in');
is(redirect_uri($r->{h}{location}), "$public/_identity/callback",
   'redirect_uri from identity_public_url, not from the Host header');
my ($state) = grep { /_state=/ } @{$r->{cookies_set}};
like($state, qr/^__Host-identity_session_state=/, 'https public scheme: __Host- prefix over plain http');
like($state, qr/; Secure/, '... and Secure');
like($state, qr/; HttpOnly/, '... and HttpOnly');

# the IdP sends the browser to the public URL; the proxy brings it here
my ($sv) = $state =~ /^[^=]+=([^;]*)/;
my $idp = Identity::Test::UA->new;
$idp->set_cookie($_->{name}, $_->{value}) for @{$ua->cookies};
my $res = $idp->oidc_login($r->{h}{location}, stop => sub { $_[0] =~ m{/_identity/callback} });
my $cb = Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location});
like($cb, qr{^\Q$public\E/_identity/callback\?}, 'the IdP returns to the public URL');
$cb =~ s{^\Q$public\E}{$pbase};
my $cbua = Identity::Test::UA->new;
$cbua->set_cookie('__Host-identity_session_state', $sv);
$r = $cbua->get($cb, headers => { Host => 'evil.example' });
is($r->{status}, 302, 'callback through the proxy');
is($r->{h}{location}, "$public/app?x=1", 'back to where the user was, at the public URL');
my ($sc) = grep { /^__Host-identity_session=/ } @{$r->{cookies_set}};
ok($sc, 'session cookie __Host- prefixed');
like($sc // '', qr/; Secure/, 'session cookie Secure');
my ($token) = ($sc // '') =~ /^__Host-identity_session=([^;]+)/;

my $s = Identity::Test::UA->new;
$s->set_cookie('__Host-identity_session', $token);
$r = $s->get("$pbase/in", headers => { Host => 'evil.example' });
is($r->{status}, 200, 'session works behind the proxy');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'as alice');

my $key = Identity::Test::session_key($token);
my $uid = $t->redis('HGET', $key, 'uid');
my $sid = $t->redis('HGET', $key, 'sid');
my %eps = @{$t->redis('HGETALL', "identity:endpoints:$uid") // []};
is_deeply([sort keys %eps], [$public], 'recorded endpoint: the public URL only, whatever Host said');

# ------------------------------------------------ no public URL: Host must name the server

$ua = Identity::Test::UA->new;
$r = $ua->get("$base/x", headers => { Host => "evil.example:$nport" });
is(redirect_uri($r->{h}{location}), "$base/_identity/callback",
   'a Host that names no server: the server\'s address');
$r = $ua->get("$mbase/x", headers => { Host => "evil.example:$mport" });
is(redirect_uri($r->{h}{location}), "http://named.example.test:$mport/_identity/callback",
   'a Host that names no server: the server\'s first name');

$r = $ua->get("$base/x", headers => { Host => 'h' x 4096 });
is($r->{status}, 302, '4 KiB Host header: still a login redirect');
is(redirect_uri($r->{h}{location}), "$base/_identity/callback", '... with the server address');

$r = $ua->get("$base/x", headers => { Host => '127.0.0.1:1' });
is(redirect_uri($r->{h}{location}), "$base/_identity/callback",
   'the server address with another port: the port the connection came on');

$r = $ua->get("$mbase/x", headers => { Host => "named.example.test:$mport" });
is(redirect_uri($r->{h}{location}), "http://named.example.test:$mport/_identity/callback",
   'a server_name: taken');
$r = $ua->get("$mbase/x", headers => { Host => "NAMED.Example.TEST:$mport" });
is(redirect_uri($r->{h}{location}), "http://named.example.test:$mport/_identity/callback",
   'a server_name in capitals: taken, lowercased');
$r = $ua->get("$mbase/x", headers => { Host => "a.wild.example.test:$mport" });
is(redirect_uri($r->{h}{location}), "http://a.wild.example.test:$mport/_identity/callback",
   'a name under a wildcard server_name: taken');
$r = $ua->get("$mbase/x", headers => { Host => "wild.example.test.evil:$mport" });
is(redirect_uri($r->{h}{location}), "http://named.example.test:$mport/_identity/callback",
   'a name that only contains a server_name: not taken');

# a login made with a forged Host records the server's endpoint

$ua = Identity::Test::UA->new(headers => { Host => "forged.example:$nport" });
$r = $ua->get("$base/y");
$idp = Identity::Test::UA->new;
$idp->set_cookie($_->{name}, $_->{value}) for @{$ua->cookies};
$res = $idp->oidc_login($r->{h}{location}, stop => sub { $_[0] =~ m{/_identity/callback} });
$cb = Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location});
$r = $ua->get($cb);
is($r->{status}, 302, "login with a forged Host") or diag("cb=$cb res=$res->{status} $res->{url}");
my ($bt) = map { /^identity_session=([^;]+)/ ? $1 : () } @{$r->{cookies_set}};
my $bkey = Identity::Test::session_key($bt // '');
my $buid = $t->redis('HGET', $bkey, 'uid');
%eps = @{$t->redis('HGETALL', "identity:endpoints:$buid") // []};
is_deeply([sort keys %eps], [sort $base, $public], 'recorded endpoint: the server, not the forged Host');
$r = $ua->get("$base/z", headers => { Host => "other.forged:$nport" });
is($r->{status}, 200, 'the session works');
%eps = @{$t->redis('HGETALL', "identity:endpoints:$buid") // []};
is_deeply([sort keys %eps], [sort $base, $public], 'still no endpoint under a forged Host');

# the admin API's URIs

my $api = Identity::Test::UA->new(headers => { Authorization => 'Bearer origin-admin-token',
    Host => 'evil.example', Accept => 'application/json' });
$r = $api->get("$base/api/app/sessions");
is($r->{status}, 200, 'admin API');
my $j = eval { decode_json($r->{body}) } // {};
like($j->{uri} // '', qr{^\Q$base\E/api/app/sessions}, 'list uri: the server address, not the Host');
for my $sess (@{$j->{application_sessions} // []}) {
    unlike($sess->{uri} // '', qr/evil|forged/, "session uri $sess->{id}: no forged Host");
    for my $ep (@{$sess->{endpoints} // []}) {
        unlike($ep->{public_url} // $ep->{url} // '', qr/evil|forged/, '... nor its endpoints');
    }
}

# ------------------------------------------------ bad values fail nginx -t

for my $bad ('ftp://app.example.test', 'https://app.example.test/path',
             'https://user@app.example.test', 'https://', 'app.example.test',
             'https://app.example.test?x', 'https://app.example.test:99999')
{
    $t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
        server => "identity_public_url $bad;"));
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, "nginx -t refuses identity_public_url $bad");
    like($out, qr/invalid value "\Q$bad\E" in "identity_public_url"/, '... naming the value');
}
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    server => 'identity_public_url https://app.example.test:8443;'));
my ($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'nginx -t takes https://app.example.test:8443') or diag($out);

$t->done;
