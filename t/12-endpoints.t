#!/usr/bin/perl
# The reserved endpoints work whichever location is protected, under a
# custom identity_path; cookies over https are Secure and __Host- prefixed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(http_conf provider_block server_block location_block upstream_saw);

my $t = Identity::Test->new(name => 'endpoints');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $sport = $t->port('tls');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(redirect_uris => ["$base/auth/callback",
                                             "https://127.0.0.1:$sport/_identity/callback"]);

my $dir = $t->testdir;
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
       . "-keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or BAIL_OUT('openssl cannot make a test certificate');

$t->nginx_conf(http_conf(
    redis => $rport,
    providers => [provider_block('test', type => 'oidc', issuer => $issuer)],
    servers => [
        server_block(port => 'nginx', directives => 'identity_path /auth/;', locations => [
            location_block('/', 'return 404;'),
            location_block('/app/', 'identity test;',
                'proxy_pass http://127.0.0.1:%%PORT_upstream%%;',
                'proxy_set_header X-Identity-Email $identity_email;'),
        ]),
        server_block(listen => '127.0.0.1:%%PORT_tls%% ssl', directives => [
            'ssl_certificate %%TESTDIR%%/cert.pem;',
            'ssl_certificate_key %%TESTDIR%%/key.pem;',
        ], locations => [
            location_block('/', 'identity test;', 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;'),
        ]),
        server_block(port => 'plain', locations => [location_block('/', 'return 200 "own $uri";')]),
        server_block(port => 'upstream', locations => [
            location_block('/', "return 200 \"uri=\$request_uri\nemail=\$http_x_identity_email\n\";"),
        ]),
    ],
    upstream => 0,
));
$t->start_nginx;

# the callback is under /auth/ although only /app/ is protected

my $ua = Identity::Test::UA->new;
my $r = $ua->get("$base/app/page");
is($r->{status}, 302, 'protected location redirects');
like($r->{h}{location}, qr/redirect_uri=\Q@{[Identity::Test::UA::uri_escape("$base\/auth\/callback")]}\E/,
     'redirect_uri under the custom identity_path');

$r = $ua->oidc_login("$base/app/page");
is($r->{status}, 200, 'login through /auth/callback');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'upstream sees the identity');

$r = $ua->get("$base/_identity/callback?code=x&state=y");
is($r->{status}, 404, 'the default prefix is not reserved any more');

$r = $ua->get("$base/auth/logout?redirect_path=/app/");
is($r->{status}, 302, 'logout under the custom prefix');
is($ua->get("$base/app/page")->{status}, 302, 'logged out');

# a server of the same nginx that protects nothing keeps /_identity/

my $plain = $t->port('plain');
$r = Identity::Test::UA->new->get("http://127.0.0.1:$plain/_identity/login?redirect_path=/x");
is($r->{status}, 200, 'a server without identity: its own /_identity/');
is($r->{body}, 'own /_identity/login', 'served by its own location');

# https: Secure and __Host-

my $headers = `curl -sk -o /dev/null -D - -H 'Accept: text/html' https://127.0.0.1:$sport/x 2>&1`;
like($headers, qr{^HTTP/\S+ 302}m, 'https: redirect to login') or diag($headers);
my ($state) = $headers =~ /^Set-Cookie: (__Host-identity_session_state=[^\r\n]*)/mi;
ok($state, 'https: state cookie has the __Host- prefix');
like($state // '', qr/; Secure/, 'https: Secure');
like($state // '', qr/; HttpOnly/, 'https: HttpOnly');
like($state // '', qr/; Path=\//, 'https: Path=/');
unlike($state // '', qr/Domain=/i, 'https: no Domain, as __Host- requires');
like($headers, qr/redirect_uri=https%3A%2F%2F127\.0\.0\.1%3A$sport%2F_identity%2Fcallback/,
     'https: redirect_uri with https scheme');

$t->done;
