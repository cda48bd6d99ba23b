#!/usr/bin/perl
# No upstream sees the module's cookies (issue 12, B.12): with two locations
# using different identity_cookie_name, neither upstream gets the other's
# session cookie, an unprotected location gets none of them, and the
# user's own cookies pass everywhere.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'cookie-isolation');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

my $locations = <<'LOC';
        location /a/ {
            identity test;
            identity_cookie_name sess_a;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }

        location /b/ {
            identity test;
            identity_cookie_name sess_b;
            identity_auth_id two;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }

        location /open/ {
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }
LOC

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
                             locations => $locations));
$t->start_nginx;

my $ua = Identity::Test::UA->new;

my $r = $ua->oidc_login("$base/a/x");
is($r->{status}, 200, 'logged in at /a/');
ok($ua->cookie('sess_a'), 'session cookie sess_a');

$r = $ua->oidc_login("$base/b/x");
is($r->{status}, 200, 'logged in at /b/');
ok($ua->cookie('sess_b_two'), 'session cookie sess_b_two (auth id two)');

$r = $ua->oidc_login("$base/x");
is($r->{status}, 200, 'logged in at /');
ok($ua->cookie('identity_session'), 'session cookie identity_session');

# the user's own cookies, some with names close to the module's

my @own = ('theme=dark', 'sess_ab=1', 'identity_sessionx=2', 'sess=3',
           'b_sess_a=4');
my @ours = ('__Host-sess_a=forged', 'sess_b_other=5',
            'identity_session_state=6', '__Host-identity_session=7');

for my $c (@own, @ours) {
    my ($n, $v) = split /=/, $c, 2;
    $ua->set_cookie($n, $v);
}

for my $path ('/a/x', '/b/x', '/x', '/public/x', '/open/x') {
    $r = $ua->get("$base$path");
    is($r->{status}, 200, "$path: 200");
    my $cookie = upstream_saw($r->{body})->{cookie} // '';
    my %got = map { (split /=/, $_, 2)[0] => 1 } split /;\s*/, $cookie;
    for my $name (qw(sess_a sess_b_two identity_session identity_session_state
                     __Host-sess_a sess_b_other __Host-identity_session)) {
        ok(!$got{$name}, "$path: the upstream did not get $name");
    }
    for my $c (@own) {
        my ($n) = split /=/, $c;
        ok($got{$n}, "$path: the upstream got the user's own $n");
    }
    unlike($cookie, qr/[A-Za-z0-9_-]{43}/, "$path: no session secret in the Cookie header");
}

$t->done;
