#!/usr/bin/perl
# The trace (error_log ... debug, t/25-tracing.t) never writes a claim
# before the claims gate has checked it: a user id with a newline from the
# provider is refused, and writes no line of its own into error.log.
# Found by the review of issue 13's redesign.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'trace-forging');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

my $conf = <<"P";
    identity_provider google {
        type oauth;
        preset google;
        client_id test-client;
        client_secret test-secret;
        authorization_endpoint $m/google/o/oauth2/v2/auth;
        token_endpoint $m/google/token;
        userinfo_endpoint $m/google/v1/userinfo;
    }
P
my $locations = "        location /google/ {\n" . protected('google') . "        }\n";

$t->nginx_conf(identity_conf(redis => $rport, providers => $conf,
    identity => 'google', locations => $locations));
$t->start_nginx;

my $mark = length $t->error_log;

$mock->set_user('google', { sub => "evil\n2026/12/07 00:00:00 [alert] 1#1: FORGED LINE",
    name => 'E', email => 'e@example.test', email_verified => JSON::PP::true() });

my $ua = Identity::Test::UA->new;
my $r = $ua->follow($ua->get("$base/google/x"));
is($r->{status}, 403, 'the claims gate refuses a user id with a newline');

my $log = substr($t->error_log, $mark);
my @forged = grep { /^2026\/12\/07 00:00:00 \[alert\] 1#1: FORGED LINE/ } split /\n/, $log;
ok(!@forged, 'no forged line in error.log') or diag(join "\n", grep { /FORGED|login verified/ } split /\n/, $log);
like($log, qr/\[debug\].*identity: login verified by "google"$/m,
     'the trace says the provider verified a login, without its claims');
unlike($log, qr/sanitized, session create sent/,
       'no session was made for it');

$t->done;
