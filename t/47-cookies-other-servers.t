#!/usr/bin/perl
# Found in review: the module's cookies are stripped per server
# only.  Browsers do not isolate cookies by port (RFC 6265 8.5), and
# identity_cookie_domain shares them with sibling hosts, so another server
# block of the same nginx that uses no identity at all hands the session
# cookie (the session secret) to its upstream.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'cookie-servers');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $other = 'http://127.0.0.1:' . $t->port('other');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => <<'H'));
    server {
        listen 127.0.0.1:%%PORT_other%%;
        location / {
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }
    }
H
$t->start_nginx;

my $ua = Identity::Test::UA->new;

my $r = $ua->oidc_login("$base/x");
is($r->{status}, 200, 'logged in');
my $secret = $ua->cookie('identity_session');
ok($secret, 'session cookie identity_session');

# the same host on another port: a browser sends the cookie there too
$r = $ua->get("$other/y");
is($r->{status}, 200, 'other server: 200');
my $cookie = upstream_saw($r->{body})->{cookie} // '';
like($r->{request}, qr/identity_session=/,
     'the client sent the session cookie to the other port, as browsers do')
    if defined $r->{request};
unlike($cookie, qr/identity_session/,
       "another server's upstream does not get the session cookie");
unlike($cookie, qr/\Q$secret\E/, 'nor the session secret') if $secret;

$t->done;
