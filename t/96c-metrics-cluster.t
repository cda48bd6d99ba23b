#!/usr/bin/perl
# identity_sessions_active (issue 17, part 2) in a Redis Cluster: the sum of
# the 16 shards' session indexes, read back through GET {admin}/metrics and
# prometheus_client's parser.  The gauge is cached by the answering worker
# for a few seconds, so the test polls, within a bound, until it settles.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf);
use Identity::Metrics qw(have_parser metric);

plan skip_all => 'needs python3-prometheus-client' unless have_parser();

my $t = Identity::Test->new(name => 'metrics-cluster');

my @primaries = $t->start_cluster;
is(scalar @primaries, 3, 'a cluster of 3 primaries');

my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $n = 7;
my @users = map { { id => "u$_", password => "u$_-password", email => "u$_\@example.test",
                    name => "User $_", username => "u$_" } } 1 .. $n;
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
                           users => \@users);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

my $conf = identity_conf(redis => $primaries[0], issuer => $issuer, admin => 1);
$conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis cluster=127.0.0.1:$primaries[0]/
    or die "no identity_redis\n";
$t->nginx_conf($conf);
$t->start_nginx;

# the shards' indexes, as Redis holds them
sub indexed {
    my ($total, $shards) = (0, 0);
    for my $d (0 .. 9, 'a' .. 'f') {
        my $c = $t->redis_cluster('ZCARD', "identity:{\@$d}sessions") // 0;
        $total += $c;
        $shards++ if $c;
    }
    return wantarray ? ($total, $shards) : $total;
}

# polls until the gauge reads $want (the worker's count is cached); returns
# the last value read
sub gauge_settles {
    my ($want) = @_;
    my ($got, $end) = (undef, time + 20);
    while (1) {
        $got = metric($t, $base, $token)->{'identity_sessions_active{}'};
        last if (defined $got && $got == $want) || time > $end;
        sleep 0.5;
    }
    return $got;
}

my $v = metric($t, $base, $token);
is($v->{'identity_redis_up{}'}, 1, 'identity_redis_up 1 with a cluster');
is($v->{'identity_sessions_active{}'}, 0, 'no session yet');

my @ua;
for my $i (1 .. $n) {
    my $ua = Identity::Test::UA->new;
    is($ua->oidc_login("$base/in$i", user => "u$i")->{status}, 200,
       "u$i logs in through the cluster");
    push @ua, $ua;
}

my ($total, $shards) = indexed();
is($total, $n, "the shards' indexes hold $n sessions");
cmp_ok($shards, '>', 1, "spread over $shards shards");

is(gauge_settles($n), $n, "identity_sessions_active $n: every shard counted");

# two revoked through the API: the gauge follows
my $api = Identity::Test::UA->new(headers => {
    Authorization => "Bearer $token", Accept => 'application/json' });
my $list = decode_json($api->get("$base/api/app/sessions")->{body})
    ->{application_sessions};
is(scalar @$list, $n, "the API lists $n sessions");
for my $s (@$list[0, 1]) {
    is($api->request('DELETE', "$base/api/app/sessions/$s->{id}")->{status}, 204,
       "session $s->{id} revoked");
}
is(scalar indexed(), $n - 2, 'the indexes hold two fewer');
is(gauge_settles($n - 2), $n - 2, 'identity_sessions_active ' . ($n - 2));

$v = metric($t, $base, $token);
is($v->{'identity_revocations_total{source=api}'}, 2, 'two revocations by the API');
is($v->{'identity_logins_total{outcome=success,provider=test}'}, $n,
   "$n logins counted");

$t->done;
