#!/usr/bin/perl
# RP-initiated logout: with end_session on, the logout endpoint deletes the
# session in Redis and then sends the browser to the provider's
# end_session_endpoint, which ends the provider's session and comes back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'rp-logout');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
                           post_logout_redirect_uris => ["$base/public/bye"]);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
                             provider => 'end_session on;'));
$t->start_nginx;

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/x");
is($r->{status}, 200, 'logged in');
my $token = $ua->cookie('identity_session', '127.0.0.1');
my $skey = Identity::Test::session_key($token);
is($t->redis('EXISTS', $skey), 1, 'session in Redis');

$r = $ua->get("$base/_identity/logout?redirect_path=/public/bye");
is($r->{status}, 302, 'logout redirects');
like($r->{h}{location}, qr{^\Q$issuer\E/session/end\?}, 'to the end_session_endpoint');
like($r->{h}{location}, qr/[?&]client_id=test-client(&|$)/, 'with client_id');
like($r->{h}{location},
     qr/[?&]post_logout_redirect_uri=\Q@{[Identity::Test::UA::uri_escape("$base\/public\/bye")]}\E(&|$)/,
     'with post_logout_redirect_uri');
ok((grep { /^identity_session=;.*Max-Age=0/ } @{$r->{cookies_set}}), 'cookie deleted');
is($t->redis('EXISTS', $skey), 0, 'session deleted in Redis first');

# the provider asks to confirm, then comes back

$r = $ua->get($r->{h}{location});
my ($form) = @{Identity::Test::UA::forms($r)};
ok($form && $form->{action} =~ m{/session/end/confirm}, 'the IdP asks to confirm');
$r = $ua->submit_form($r, { logout => 'yes' });
my $last = $ua->follow($r);
is($last->{url}, "$base/public/bye", 'back at redirect_path');

# the provider's session is over: a new login shows its login form again

$r = $ua->oidc_login("$base/again", user => 'alice');
ok((grep { ($_->{body} // '') =~ /name="password"/ } @{$ua->{trace}}),
   'the IdP asked for the password again');
is($r->{status}, 200, 'and the login works');

# without end_session, logout stays local

my $t2 = Identity::Test->new(name => 'rp-logout-off');
my $r2port = $t2->start_redis;
my $n2 = $t2->port('nginx');
my $issuer2 = $t2->start_idp(redirect_uris => ["http://127.0.0.1:$n2/_identity/callback"]);
$t2->nginx_conf(identity_conf(redis => $r2port, issuer => $issuer2));
$t2->start_nginx;
my $ua2 = Identity::Test::UA->new;
$ua2->oidc_login("http://127.0.0.1:$n2/x");
$r = $ua2->get("http://127.0.0.1:$n2/_identity/logout?redirect_path=/public/bye");
is($r->{h}{location}, "http://127.0.0.1:$n2/public/bye", 'end_session off: local redirect');
$t2->stop_all;
$t2->check_log;

$t->done;
