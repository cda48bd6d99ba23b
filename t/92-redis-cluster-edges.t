#!/usr/bin/perl
# Redis Cluster, the edges of sharding (t/90 is the end-to-end run):
#
# - a key prefix with "{" is refused in a cluster: it would be the keys'
#   hash tag (every key in one slot, or with "{}" a script's keys in
#   several slots: CROSSSLOT on every login);
# - the admin API's merged global list with a filter: when two shards both
#   stop at their scan budget, the page ends at the newest of their bounds,
#   so what the other shard has not examined yet is not skipped;
# - a back-channel logout by IdP session alone, one shard failing: the
#   answer is 503, and what the other shards ended is still published, so
#   no node's session cache admits it any longer.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'redis-cluster-edges');

my @primaries = $t->start_cluster;
is(scalar @primaries, 3, 'a cluster of 3 primaries');

my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $endpoint = "$base/_identity/backchannel_logout";
my @users = map { { id => "u$_", password => "u$_-password", email => "u$_\@example.test",
                    name => "User $_", username => "u$_" } } 1 .. 2;
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
    backchannel_logout_uri => $endpoint,
    backchannel_logout_session_required => JSON::PP::true, users => \@users);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

sub conf {
    my (%o) = @_;
    my $conf = identity_conf(redis => $primaries[0], issuer => $issuer, workers => 2,
                             admin => 1,
                             http => 'identity_session_cache zone=cl:1m;' . ($o{http} // ''),
                             server => 'add_header X-Worker $pid always;');
    $conf =~ s/identity_redis 127\.0\.0\.1:(\d+)/identity_redis cluster=127.0.0.1:$1/
        or die "no identity_redis\n";
    $conf =~ s/listen (127\.0\.0\.1:%%PORT_nginx%%);/listen $1 reuseport;/ or die "no listen\n";
    return $conf;
}

# ------------------------------------------------------------ the prefix

for my $prefix ('{identity}:', 'app{}:') {
    $t->nginx_conf(conf(http => " identity_redis_prefix \"$prefix\";"));
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, "nginx -t: prefix \"$prefix\" refused in a cluster");
    like($out, qr/identity_redis_prefix.*has a "\{"/, 'and says why');
}

$t->nginx_conf(conf());
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

# ------------------------------------------------------------ a filtered merge

# Shard a: 10000 users that do not match, then (older) A1 that does.
# Shard b: B1 that matches, then 9999 that do not, then one more.  Both
# shards stop at the scan budget (10000), a's bound newer than b's.
my $fill = <<'LUA';
local p, d, from, n, score = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 0, n - 1 do
  local id = string.format('au_%s%031x', d, from + i)
  redis.call('HSET', p .. 'user:' .. id, 'provider', 'test', 'sub', 'x' .. id,
             'email', id .. '@example.test', 'name', 'Nobody', 'username', 'nobody',
             'created_at', '1', 'last_active', '1', 'last_login', '1')
  redis.call('ZADD', p .. 'users', score + i, id)
end
return n
LUA
my $one = <<'LUA';
local p, id, score = ARGV[1], ARGV[2], ARGV[3]
redis.call('HSET', p .. 'user:' .. id, 'provider', 'test', 'sub', 'x' .. id,
           'email', id .. '@example.test', 'name', 'Match', 'username', 'zzmatch',
           'created_at', '1', 'last_active', '1', 'last_login', '1')
redis.call('ZADD', p .. 'users', score, id)
return 1
LUA
my ($pa, $pb) = ('identity:{@a}', 'identity:{@b}');
my $a1 = 'au_a' . ('f' x 31);
my $b1 = 'au_b' . ('f' x 31);
is($t->redis_cluster('EVAL', $fill, 1, "${pa}users", $pa, 'a', 1, 10000, 20001), 10000, 'shard a filled');
is($t->redis_cluster('EVAL', $one, 1, "${pa}users", $pa, $a1, 15000), 1, 'A1 in shard a');
is($t->redis_cluster('EVAL', $one, 1, "${pb}users", $pb, $b1, 25000), 1, 'B1 in shard b');
is($t->redis_cluster('EVAL', $fill, 1, "${pb}users", $pb, 'b', 1, 9999, 6002), 9999, 'shard b filled');
is($t->redis_cluster('EVAL', $fill, 1, "${pb}users", $pb, 'b', 100000, 1, 1), 1, 'and one more');

my ($before, @ids, @status);
for (1 .. 10) {
    my $r = $api->get("$base/api/app/users?limit=5&user=zzmatch" . ($before ? "&before_id=$before" : ''));
    push @status, $r->{status};
    last unless $r->{status} == 200;
    my $b = decode_json($r->{body});
    push @ids, map { $_->{id} } @{$b->{application_users}};
    last unless $b->{next_page_uri};
    ($before) = $b->{next_page_uri} =~ /before_id=([^&]+)/;
}
is_deeply(\@ids, [$b1, $a1], 'filtered across shards that both stop at their budget: every match, newest first')
    or diag(explain { ids => \@ids, status => \@status });

# ------------------------------------------------------------ ids naming another shard

sub get_with {
    my ($cookie, $path) = @_;
    return Identity::Test::UA->new->get("$base$path",
        headers => { Cookie => "identity_session=$cookie" });
}

{
    my $ua2 = Identity::Test::UA->new;
    is($ua2->oidc_login("$base/in2", user => 'u2')->{status}, 200, 'u2 logs in');
    my $c2 = $ua2->cookie('identity_session', '127.0.0.1');
    my $h2 = Identity::Test::session_hex($c2);
    my %s2 = @{$t->redis_cluster('HGETALL', "identity:{\@" . substr($h2, 0, 1) . "}session:$h2")};
    my $moved = sub { my $id = shift; my $c = substr($id, 3, 1) eq '0' ? '1' : '0';
                      substr($id, 3, 1, $c); $id };
    my ($uid, $sid) = ($s2{uid}, $s2{id});
    for my $path ("app/users/" . $moved->($uid), "app/sessions/" . $moved->($sid)) {
        is($api->get("$base/api/$path")->{status}, 404, "GET $path (another shard's digit): 404");
        is($api->request('DELETE', "$base/api/$path")->{status}, 404, "DELETE $path: 404");
    }
    my $r = $api->get("$base/api/app/sessions?limit=2&before_id=" . $moved->($sid));
    is($r->{status}, 400, 'before_id with another shard\'s digit: unknown, 400');
    $r = $api->get("$base/api/app/users/" . $moved->($uid) . "/sessions");
    ok($r->{status} == 404 || ($r->{status} == 200 && !@{decode_json($r->{body})->{application_sessions} // []}),
       "an identity's sessions by a moved id: none ($r->{status})");
    is($api->get("$base/api/app/users/$uid")->{status}, 200, 'the identity itself is untouched');
    is(get_with($c2, '/still')->{status}, 200, 'and its session still admitted');
}

# ------------------------------------------------------------ back-channel, a shard failing

my $ua = Identity::Test::UA->new;
is($ua->oidc_login("$base/in", user => 'u1')->{status}, 200, 'u1 logs in');
my $cookie = $ua->cookie('identity_session', '127.0.0.1');
my $hex = Identity::Test::session_hex($cookie);
my $d = substr($hex, 0, 1);
my %s = @{$t->redis_cluster('HGETALL', "identity:{\@$d}session:$hex")};
ok($s{idp_sid}, "u1's session has its IdP session (shard $d)");

# another shard's key of that IdP session is of the wrong type: its script fails
my $other = $d eq '0' ? '1' : '0';
$t->redis_cluster('SET', "identity:{\@$other}idp_sid:$s{provider}:$s{idp_sid}", 'not a set');

my %seen;
for (1 .. 8) {
    my $r = get_with($cookie, '/warm');
    $seen{$r->{h}{'x-worker'} // ''}++ if $r->{status} == 200;
}
is(scalar keys %seen, 2, 'the session is cached by both workers');

my $idp = Identity::Test::UA->new(headers => { Accept => '*/*', 'Sec-Fetch-Mode' => undef });
my $lt = $t->idp_logout_token(sid => $s{idp_sid});
my $r = $idp->request('POST', $endpoint, body => 'logout_token=' . Identity::Test::UA::uri_escape($lt),
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($r->{status}, 503, 'a back-channel logout by IdP session, one shard failing: 503');
is($t->redis_cluster('EXISTS', "identity:{\@$d}session:$hex"), 0, 'the session is gone from its shard');
my @after = map { get_with($cookie, "/after$_")->{status} } 1 .. 6;
is_deeply(\@after, [(302) x 6], 'and no worker admits it from its cache');

done_testing;
