#!/usr/bin/perl
# Where a login returns to (issue 12, B.11): a same-site path whatever
# absolute_redirect says.  A login started at "//evil.example/x" and its
# kin returns to "/evil.example/x" on this site (the leading run of "/"
# and "\" made one "/"), never to another host; redirect_path that is not
# a same-site path is refused.  Each case is a real login at the test IdP.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'return-target');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
                             server => 'absolute_redirect off;'));
$t->start_nginx;

# the callback's answer at the end of a login started at $path
sub login_from {
    my ($path) = @_;
    my $ua = Identity::Test::UA->new;
    return $ua->oidc_login("$base$path", stop => sub {
        $_[0] !~ m{^\Q$issuer\E} && $_[0] !~ m{/_identity/} });
}

my %cases = (
    '//evil.example/x'          => '/evil.example/x',
    '///evil.example/x'         => '/evil.example/x',
    '/\\evil.example/x'         => '/evil.example/x',
    '/\\/evil.example/x'        => '/evil.example/x',
    '//\\evil.example/x?a=1'    => '/evil.example/x?a=1',
    '/%2F%2Fevil.example/x'     => '/%2F%2Fevil.example/x',
    '/%2F%5Cevil.example/x'     => '/%2F%5Cevil.example/x',
    '/%5C%5Cevil.example/x'     => '/%5C%5Cevil.example/x',
    '/deep/page?x=1'            => '/deep/page?x=1',
);

for my $start (sort keys %cases) {
    my $r = login_from($start);
    is($r->{status}, 302, "login started at $start ends with a redirect");
    my $loc = $r->{h}{location} // '';
    is($loc, $cases{$start}, "... to $cases{$start}");
    like($loc, qr{^/(?![/\\])}, '... a path with one leading "/"');
    ok((grep { /^identity_session=/ } @{$r->{cookies_set}}), '... and a session');
}

# a backslash later in the path is no same-site path: back to "/"

my $r = login_from('/a\\b');
is($r->{h}{location}, '/', 'login started at /a\\b returns to /');

# redirect_path: what is not a same-site path is refused before the login

for my $bad ('%2F%2Fevil.example', '%2F%5Cevil.example', '/%5Cevil.example',
             '%5C%5Cevil.example', '/%09/evil.example', '%2F%2F%2Fevil.example',
             'evil.example', '%0d%0a') {
    $r = Identity::Test::UA->new->get("$base/_identity/login?redirect_path=$bad");
    is($r->{status}, 400, "redirect_path=$bad: 400");
    ok(!$r->{h}{location}, '... and no redirect');
}

$r = Identity::Test::UA->new->oidc_login("$base/_identity/login?redirect_path=%2Fok%2Fpage",
    stop => sub { $_[0] !~ m{^\Q$issuer\E} && $_[0] !~ m{/_identity/} });
is($r->{h}{location}, '/ok/page', 'a same-site redirect_path is where the login returns');

$t->done;
