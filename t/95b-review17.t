#!/usr/bin/perl
# Review of issue 17's audit events and risk signals, as an attacker
# reads them.
#
# 1. GET app/events?before_id=: an id Redis refuses in an exclusive range
#    is a client's mistake, a 400 like any other bad before_id, not a 503
#    that says the session store is down (and logs a Redis error reply
#    at error): "0-0" (nothing precedes it, and no entry has it) and a
#    part past 2^64 - 1 ("99999999999999999999-0").  An id of 20 digits
#    that fits is still a cursor.
# 2. A provider's error= at the callback takes the pending login of this
#    browser only: another browser's state (no cookie, or another's) is
#    refused and leaves that login pending, which then finishes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'review17');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1));
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Authorization => "Bearer $token", Accept => 'application/json' });

my $alice = Identity::Test::UA->new;
is($alice->oidc_login("$base/a", user => 'alice')->{status}, 200,
   "alice's login: an event in the stream");

# ------------------------------------------------------------ 1. before_id

for my $id ('0-0', '99999999999999999999-0', '1-99999999999999999999',
            '18446744073709551616-0')
{
    my $r = $api->get("$base/api/app/events?before_id=$id");
    is($r->{status}, 400, "before_id=$id: 400");
    like($r->{body}, qr/invalid before_id/, 'it says why');
}

for my $id ('18446744073709551615-18446744073709551615', '1-0',
            '00000000000000000001-1')
{
    my $r = $api->get("$base/api/app/events?before_id=$id");
    is($r->{status}, 200, "before_id=$id: 200");
}

# ------------------------------------------------------------ 2. error=

{
    my $victim = Identity::Test::UA->new;
    my $res = $victim->oidc_login("$base/victim",
        stop => sub { index($_[0], $issuer) == 0 });
    my $auth = Identity::Test::UA::resolve_url($res->{url},
                                               $res->{h}{location});
    my ($state) = $auth =~ /[?&]state=([^&]+)/;
    ok($state, "the victim's login is pending");

    for my $who (Identity::Test::UA->new, $alice) {
        my $r = $who->get("$base/_identity/callback?error=access_denied"
                          . "&state=$state");
        is($r->{status}, 403, "another browser's error= with its state: 403");
    }

    $res = $victim->oidc_login($auth, user => 'bob');
    is($res->{status}, 200, "the victim's login still finishes");
}

done_testing;
