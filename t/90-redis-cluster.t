#!/usr/bin/perl
# identity_redis cluster=...: a real Redis Cluster of 3 primaries, each
# with a replica (redis-cli --cluster create), given to nginx by one node.
#
# The keys are in 16 shards, each a hash tag ({@0} to {@f}): an identity,
# its sessions and its lists share one (its id's 4th character, its
# sessions' hashes' first), so every script touches one slot, and the
# shards spread over the primaries.  The admin API merges the shards'
# pages newest first; a back-channel logout by IdP session asks every
# shard; a revocation is published from the nodes' shard and confirmed by
# both workers.
#
# Under load (sessions on two workers, the admin API, logins), one shard's
# slot is migrated to another primary, a few keys at a time: no answer but
# 200 or 503, every session still valid afterwards, the keys on the new
# primary, and both workers answering from it (MOVED, ASK).  Then that
# primary is killed: 503 until the cluster promotes its replica, then
# admitted again, the sessions still valid, and a DELETE refuses at once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'redis-cluster');

my @primaries = $t->start_cluster(replicas => 1);
is(scalar @primaries, 3, 'a cluster of 3 primaries, each with a replica');

my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $endpoint = "$base/_identity/backchannel_logout";
my @users = map { { id => "u$_", password => "u$_-password", email => "u$_\@example.test",
                    name => "User $_", username => "u$_" } } 1 .. 12;
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
    backchannel_logout_uri => $endpoint,
    backchannel_logout_session_required => JSON::PP::true, users => \@users);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

sub conf {
    my (%o) = @_;
    my $conf = identity_conf(redis => $primaries[0], issuer => $issuer, workers => 2,
                             admin => 1, http => 'identity_session_cache zone=cl:1m;',
                             server => 'add_header X-Worker $pid always;');
    my $seeds = $o{seeds} // "127.0.0.1:$primaries[0]";
    my $args = $o{args} // '';
    $conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis cluster=$seeds$args/
        or die "no identity_redis\n";
    $conf =~ s/listen (127\.0\.0\.1:%%PORT_nginx%%);/listen $1 reuseport;/ or die "no listen\n";
    $conf =~ s/error\.log debug;/error.log info;/ or die "no error_log\n";
    return $conf;
}

# ------------------------------------------------------------ nginx -t

$t->nginx_conf(conf(args => ' db=2'));
my ($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'nginx -t: db= is refused in a cluster');
like($out, qr/a Redis Cluster has no "db="/, 'and says why');

$t->nginx_conf(conf(seeds => "127.0.0.1:$primaries[0],redis.internal"));
($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'nginx -t: a node given by name is refused (workers make no DNS queries)');
like($out, qr/invalid cluster node "redis\.internal"/, 'and named');

# one node given: the others are learnt from it
$t->nginx_conf(conf());
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub get_with {
    my ($cookie, $path) = @_;
    return Identity::Test::UA->new->get("$base$path",
        headers => { Cookie => "identity_session=$cookie" });
}

sub shard { '{@' . substr($_[0], 0, 1) . '}' }
sub session_key { my $h = Identity::Test::session_hex($_[0]); "identity:" . shard($h) . "session:$h" }

my (%cookie, @order);
for my $n (1 .. 12) {
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base/in$n", user => "u$n");
    is($r->{status}, 200, "u$n logs in through the cluster");
    $cookie{"u$n"} = $ua->cookie('identity_session', '127.0.0.1');
    push @order, 'as_' . Identity::Test::session_hex($cookie{"u$n"});
}

# ------------------------------------------------------------ the layout

my $rec = $t->redis_cluster('HGETALL', session_key($cookie{u1}));
my %s1 = ref $rec eq 'ARRAY' ? @$rec : ();
like($s1{uid} // '', qr/^au_[0-9a-f]{32}$/, "u1's session is in its shard's key");
is(substr($s1{uid}, 3, 1), substr(Identity::Test::session_hex($cookie{u1}), 0, 1),
   "the identity's id and its session's hash share the shard's digit");
my $tag = shard(substr($s1{uid}, 3));
ok(scalar(@{$t->redis_cluster('HGETALL', "identity:${tag}user:$s1{uid}")}),
   "the identity is in the same shard ($tag)");
is($t->redis_cluster('ZSCORE', "identity:${tag}sessions", $s1{id}) ? 1 : 0, 1,
   "and the shard's session index holds the session");
my %slots = map { Identity::Test::key_slot($_) => 1 } "identity:${tag}user:$s1{uid}",
    session_key($cookie{u1}), "identity:${tag}user_sessions:$s1{uid}", "identity:${tag}sessions";
is(scalar keys %slots, 1, 'all in one slot');

my %per_node;
for my $p (@primaries) {
    $per_node{$p} = scalar grep { /^identity:/ } @{$t->redis_at($p, 'KEYS', 'identity:*')};
}
is(scalar(grep { $per_node{$_} > 0 } @primaries), 3,
   'keys on every primary: ' . join(', ', map { $per_node{$_} } @primaries));

# ------------------------------------------------------------ the admin API across shards

sub page_all {
    my ($what, $q) = @_;
    my ($before, @ids, $pages);
    for (1 .. 30) {
        my $r = $api->get("$base/api/app/$what?$q" . ($before ? "&before_id=$before" : ''));
        return (undef, "status $r->{status}: $r->{body}") unless $r->{status} == 200;
        my $b = decode_json($r->{body});
        $pages++;
        push @ids, map { $_->{id} } @{$b->{"application_$what"}};
        last unless $b->{next_page_uri};
        ($before) = $b->{next_page_uri} =~ /before_id=([^&]+)/;
    }
    return (\@ids, $pages);
}

my ($ids, $pages) = page_all('sessions', 'limit=5');
is_deeply($ids, [reverse @order], "the sessions, newest first, in $pages pages of 5 across 16 shards")
    or diag(explain $ids);
($ids, $pages) = page_all('users', 'limit=5');
is(scalar @{$ids // []}, 12, "the 12 users in $pages pages");
is(scalar keys %{{ map { $_ => 1 } @{$ids // []} }}, 12, 'each once');

($ids) = page_all('sessions', 'limit=2&user=u1');
is_deeply($ids, [@order[11, 10, 9, 0]], 'a filtered list (u1, u10, u11, u12), in pages of 2');

my $r = $api->get("$base/api/app/sessions?limit=2&before_id=as_" . ('0' x 32));
my $unknown = $r->{status};
ok($unknown == 400 || $unknown == 404, "an unknown before_id: $unknown, as on one Redis");

$r = $api->get("$base/api/app/users/$s1{uid}");
is($r->{status}, 200, "an identity by id, from its shard");
$r = $api->get("$base/api/app/sessions/$order[3]");
is($r->{status}, 200, 'a session by id');
is(decode_json($r->{body})->{browser_session}{user_agent}{browser_name}, 'Chrome',
   "with its user agent, joined from the shard's record");

# ------------------------------------------------------------ revocations

sub refused { is(get_with($cookie{$_[0]}, "/after-" . ($_[1] =~ s/\W+/-/gr))->{status}, 302, "$_[0] refused after $_[1]") }

for (1 .. 4) { get_with($cookie{$_}, '/warm') for qw(u2 u3 u6 u7) }    # cached on the workers

$r = $api->get("$base/api/app/users?limit=50");
my ($u2) = grep { $_->{username} eq 'u2' } @{decode_json($r->{body})->{application_users}};
$r = $api->request('DELETE', "$base/api/app/users/$u2->{id}");
is($r->{status}, 204, 'DELETE of a user');
refused('u2', 'its DELETE') for 1 .. 3;
is($t->redis_cluster('EXISTS', "identity:" . shard(substr($u2->{id}, 3)) . "user:$u2->{id}"), 0,
   'the identity is gone');

$r = $api->request('DELETE', "$base/api/app/sessions/$order[2]");
is($r->{status}, 204, 'DELETE of a session');
refused('u3', 'its DELETE') for 1 .. 3;
is($api->get("$base/api/app/sessions/$order[2]")->{status}, 404, 'it is gone from the API');

my $idp = Identity::Test::UA->new(headers => { Accept => '*/*', 'Sec-Fetch-Mode' => undef });
sub backchannel {
    my $lt = $t->idp_logout_token(@_);
    return $idp->request('POST', $endpoint, body => 'logout_token=' . Identity::Test::UA::uri_escape($lt),
        headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
}
my $isid = $t->redis_cluster('HGET', session_key($cookie{u6}), 'idp_sid');
ok($isid, "u6's session has its IdP session");
is(backchannel(sid => $isid)->{status}, 200, 'a back-channel logout by IdP session alone (every shard asked)');
refused('u6', 'its back-channel logout');
is(backchannel(sub => 'u7')->{status}, 200, 'a back-channel logout by user');
refused('u7', 'its back-channel logout');
is(get_with($cookie{u8}, '/still')->{status}, 200, 'another user is still admitted');

# a logout's event names its user and session, relayed from the nodes' shard
{
    my $ua = Identity::Test::UA->new;
    is($ua->oidc_login("$base/lo", user => 'u12')->{status}, 200, 'u12 logs in again');
    my $sid = 'as_' . Identity::Test::session_hex($ua->cookie('identity_session', '127.0.0.1'));
    is($ua->get("$base/_identity/logout")->{status}, 302, 'and logs out');
    my $r = $api->get("$base/api/app/events?action=logout&limit=1");
    my ($ev) = @{decode_json($r->{body})->{events}};
    is($ev->{session}{id}, $sid, 'the logout event names the session in a cluster');
    like($ev->{user}{id} // '', qr/^au_[0-9a-f]{32}$/, 'and its user');
}

# the audit streams and the login counters: one shard, {@0}
is($t->redis_cluster('XLEN', 'identity:{@0}audit') > 0 ? 1 : 0, 1, 'the audit stream is in {@0}');
is(Identity::Test::UA->new->get("$base/_identity/callback?code=x&state="
                                . Identity::Test::random_token())->{status},
   400, 'a forged callback: 400');
for (1 .. 100) {
    last if ($t->redis_cluster('XLEN', 'identity:{@0}audit:failures') // 0) > 0;
    select(undef, undef, undef, 0.05);
}
is($t->redis_cluster('XLEN', 'identity:{@0}audit:failures'), 1,
   'its failure is in identity:{@0}audit:failures');
$r = $api->get("$base/api/app/events?limit=1");
is((decode_json($r->{body})->{events}[0]{event}{reason} // ''), 'state',
   'app/events reads both streams of the shard {@0}: the failure first');
$r = $api->get("$base/api/app/events?action=session_revoked&limit=100");
is($r->{status}, 200, 'app/events in a cluster');
my %reasons;
$reasons{$_->{event}{reason}}++ for @{decode_json($r->{body})->{events}};
is($reasons{api}, 1, 'the DELETE of a session, revoked by the API');
my ($u3) = grep { $_->{username} eq 'u3' } @{decode_json(
    $api->get("$base/api/app/users?limit=50")->{body})->{application_users}};
$r = $api->get("$base/api/app/events?user=$u3->{id}&action=session_revoked");
is(scalar(grep { $_->{event}{reason} eq 'api' } @{decode_json($r->{body})->{events}}),
   1, 'filed under u3, whose session it was (its shard told)');
is($reasons{backchannel}, 2, 'the two back-channel logouts');
$r = $api->get("$base/api/app/events?action=login&limit=100");
my @ok = grep { $_->{event}{outcome} eq 'success' } @{decode_json($r->{body})->{events}};
cmp_ok(scalar @ok, '>=', 8, 'every login is an event');
$r = $api->get("$base/api/app/stats/logins?range=7d");
my $n = 0;
$n += $_->{success} for @{decode_json($r->{body})->{buckets}};
is($n, scalar @ok, 'and counted, in {@0} too');

# ------------------------------------------------------------ slot migration under load

my $stop = $t->testdir . '/stop';

sub hammer {
    my ($n, $kind, $cookie) = @_;
    my $file = $t->testdir . "/load-$n.log";
    my $pid = fork // die "fork: $!";
    return ($pid, $file) if $pid;
    my $ok = open my $fh, '>', $file;
    my $c = Identity::Test::UA->new(timeout => 5, headers => $kind eq 'api'
        ? { Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
            Authorization => "Bearer $token" }
        : $kind eq 'site' ? { Cookie => "identity_session=$cookie" } : {});
    my $i = 0;
    while ($ok && !-e $stop) {
        my $start = time;
        my $res = eval {
            $kind eq 'api' ? $c->get("$base/api/app/sessions?limit=3")
          : $kind eq 'site' ? $c->get("$base/load")
          : do { $c->clear_cookies; $c->oidc_login("$base/login", user => 'u' . (9 + $i++ % 4)) };
        };
        printf $fh "%.6f %.6f %d %s %s\n", $start, time, $res ? $res->{status} : 0,
            $res ? ($res->{h}{'x-worker'} // 0) : 0, $kind;
        $fh->flush;
    }
    close $fh if $ok;
    POSIX::_exit($ok ? 0 : 1);
}

sub run_load {
    my ($during, @site) = @_;
    unlink $stop;
    my (%pids, @files);
    my @kinds = ((map { ['site', $_] } @site), ['api'], ['login']);
    for my $n (0 .. $#kinds) {
        my ($pid, $file) = hammer($n, @{$kinds[$n]});
        $pids{$pid} = 1;
        push @files, $file;
    }
    sleep 0.5;
    my %mark = $during->();
    sleep 1;
    $t->write_file('stop', '');
    waitpid($_, 0) for keys %pids;
    my @req = map { [split] } grep { /^\d+\.\d+ \d+\.\d+ \d+ \d+ \w+$/ }
              map { split /\n/, $t->read_file($_ =~ s{.*/}{}r) } @files;
    return (\@req, \%mark);
}

# the shard of u9..u12 (logins in the load) and of u1, u4
my $mshard = shard(Identity::Test::session_hex($cookie{u1}));
my $slot = Identity::Test::key_slot($mshard);
my $owner = $t->cluster_owner($slot);
my $target = (grep { $_ != $owner } @primaries)[0];
my $log_mark = length $t->error_log;

my ($req, $mark) = run_load(sub {
    my $start = time;
    my $moved = $t->migrate_slot($slot, $owner, $target, batch => 1, pause => 0.05);
    return (start => $start, end => time, moved => $moved);
}, $cookie{u1}, $cookie{u4});

cmp_ok($mark->{moved}, '>=', 4, "slot $slot ($mshard): $mark->{moved} keys migrated, one at a time");
is($t->cluster_owner($slot), $target, 'the slot is served by another primary now');
cmp_ok(scalar @$req, '>', 100, scalar(@$req) . ' requests during the load');
my @bad = grep { $_->[2] !~ /^(200|503)$/ } @$req;
is(scalar @bad, 0, 'every answer 200 or 503, during the migration too')
    or diag(join "\n", map { "@$_" } @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
my @site = grep { $_->[4] eq 'site' } @$req;
my @during = grep { $_->[0] >= $mark->{start} && $_->[1] <= $mark->{end} } @site;
my $refused = grep { $_->[2] != 200 } @during;
cmp_ok(scalar @during, '>', 10, scalar(@during) . ' session requests while the slot moved');
my $logins = grep { $_->[4] eq 'login' && $_->[2] == 200 } @$req;
my $lfail = grep { $_->[4] eq 'login' && $_->[2] != 200 } @$req;
diag(sprintf 'slot migration: %d keys in %.2f s; %d of %d session requests refused meanwhile; '
             . '%d logins, %d refused', $mark->{moved}, $mark->{end} - $mark->{start}, $refused,
             scalar @during, $logins, $lfail);
my @late = grep { $_->[0] > $mark->{end} + 0.3 } @site;
is(scalar(grep { $_->[2] != 200 } @late), 0, 'once it has moved, every session request admits');
my %workers = map { $_->[3] => 1 } grep { $_->[3] } @late;
is(scalar keys %workers, 2, 'on both workers');
cmp_ok($logins, '>', 0, "$logins logins during the load");

is($t->redis_at($owner, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 0, 'the old primary holds none of its keys');
is($t->redis_at($target, 'EXISTS', session_key($cookie{u1})), 1, 'the new one holds its sessions');
for my $u (map { "u$_" } 1, 4, 5, 8) {
    is(get_with($cookie{$u}, "/kept-$u")->{status}, 200, "$u is still admitted");
}
my $log = substr($t->error_log, $log_mark);
unlike($log, qr/\[(alert|emerg|crit)\]/, 'nothing worse than an error logged');

# ------------------------------------------------------------ failover of that primary

my ($name) = map { $_->{name} } grep { $_->{port} == $target } @{$t->{cluster_nodes}};
($req, $mark) = run_load(sub {
    my $kill = time;
    $t->stop_proc($name, 'KILL');
    my ($first, $end) = (undef, time + 20);
    while (time < $end) {
        my $st = $api->get("$base/api/app/sessions/" . 'as_' . Identity::Test::session_hex($cookie{u1}))->{status};
        if ($st == 200) { $first = time; last }
        sleep 0.05;
    }
    return (kill => $kill, back => $first);
}, $cookie{u1});
ok($mark->{back}, "the shard's sessions are read again once the cluster promoted the replica");
diag(sprintf 'cluster failover seen by the admin API: %.2f s from the kill (cluster-node-timeout 2 s)',
             ($mark->{back} // time) - $mark->{kill});
@bad = grep { $_->[2] !~ /^(200|503)$/ } @$req;
is(scalar @bad, 0, 'every answer 200 or 503 during the failover');
isnt($t->cluster_owner($slot), $target, 'the replica serves the slot now');
for my $u (map { "u$_" } 1, 4, 5, 8) {
    is(get_with($cookie{$u}, "/after-failover-$u")->{status}, 200, "$u survived the failover");
}

$r = $api->request('DELETE', "$base/api/app/sessions/$order[0]");
is($r->{status}, 204, 'DELETE after the failover');
refused('u1', 'the DELETE after the failover') for 1 .. 3;

$t->done;
