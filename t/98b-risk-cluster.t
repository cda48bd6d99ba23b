#!/usr/bin/perl
# Risk signals in a Redis Cluster (docs/risk.md): the login's history check
# and the identity's history in its shard ({@k}), and revoke_others through
# the cluster's relayed revocation: the other session refused at once by
# every node, its keys gone, the new one flagged.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'risk-cluster');

my @primaries = $t->start_cluster;
is(scalar @primaries, 3, 'a cluster of 3 primaries');

my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

my $conf = identity_conf(redis => $primaries[0], issuer => $issuer, workers => 2,
    admin => 1, http => "identity_session_cache zone=cl:1m;\n"
        . 'identity_risk concurrent_sessions action=revoke_others max=1;');
$conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis cluster=127.0.0.1:$primaries[0]/
    or die "no identity_redis\n";
$t->nginx_conf($conf);
$t->start_nginx;

sub shard { '{@' . substr($_[0], 0, 1) . '}' }
sub session_key { my $h = Identity::Test::session_hex($_[0]); "identity:" . shard($h) . "session:$h" }

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub status_with {
    my ($cookie) = @_;
    return Identity::Test::UA->new->get("$base/x",
        headers => { Cookie => "identity_session=$cookie" })->{status};
}

my $ua1 = Identity::Test::UA->new;
is($ua1->oidc_login("$base/a")->{status}, 200, 'alice logs in');
my $c1 = $ua1->cookie('identity_session', '127.0.0.1');
my %s1 = @{$t->redis_cluster('HGETALL', session_key($c1))};
my $uid = $s1{uid};
like($uid, qr/^au_[0-9a-f]{32}$/, 'her identity');
my $tag = '{@' . substr($uid, 3, 1) . '}';
like($t->redis_cluster('HGET', "identity:${tag}user:$uid", 'risk_devices'), qr{^\w+ / \w+$},
   "the history is on the identity's record, in its shard")
    or diag(join ' | ', "tag $tag", @{$t->redis_cluster('HGETALL', "identity:${tag}user:$uid") || []},
                  $t->cluster_keys('identity:*user:*'));

# every worker has the first session cached
is(status_with($c1), 200, 'her session works') for 1 .. 4;

my $ua2 = Identity::Test::UA->new;
is($ua2->oidc_login("$base/b")->{status}, 200, 'a second login: made');
my $c2 = $ua2->cookie('identity_session', '127.0.0.1');
my %s2 = @{$t->redis_cluster('HGETALL', session_key($c2))};

my $r = $api->get("$base/api/app/sessions/$s2{id}");
is($r->{status}, 200, 'the new session through the API');
is_deeply(decode_json($r->{body})->{risk},
          [{ signal => 'concurrent_sessions', detail => '2 sessions, limit 1' }],
          'flagged concurrent_sessions');

is(status_with($c1), 302, 'the first session is refused at once') for 1 .. 4;
is($t->redis_cluster('EXISTS', session_key($c1)), 0, 'its hash is gone');
is($t->redis_cluster('ZSCORE', "identity:${tag}user_sessions:$uid", $s1{id}), undef,
   "and it left the identity's list");
is(status_with($c2), 200, 'the new session works');

$r = $api->get("$base/api/metrics");
like($r->{body}, qr/^identity_revocations_total\{source="risk"\} 1$/m,
     'one revocation by risk');

$t->stop_nginx;
unlike($t->error_log, qr/\[(alert|emerg)\]/, 'no alert');

done_testing;
