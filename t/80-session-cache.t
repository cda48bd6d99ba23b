#!/usr/bin/perl
# identity_session_cache: three nginx instances, each with its own cache,
# share one Redis.  A cached session costs no Redis call; every way a
# session ends reaches every cache before a DELETE is answered, also while
# one instance's subscription is cut, while one is frozen and cannot
# acknowledge, and when one is killed; a Redis that restarts empty leaves no
# session cached.  The protocol: docs/session-cache.md.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw location_block);

my @names = qw(A B C);
my %t = map { $_ => Identity::Test->new(name => "session-cache-$_") } @names;
my $ta = $t{A};

my $rport = $ta->start_redis;
my %base = map { $_ => 'http://127.0.0.1:' . $t{$_}->port('nginx') } @names;
my $issuer = $ta->start_idp(
    redirect_uris => [map { "$base{$_}/_identity/callback" } @names]);

my $token = 'admin-' . Identity::Test::random_token(24);

sub conf {
    my (%o) = @_;
    return identity_conf(redis => $rport, issuer => $issuer, workers => 2, admin => 1,
        http => $o{cache} // 'identity_session_cache zone=sessions:1m;',
        locations => [location_block('/cache', 'identity test;',
            'proxy_pass http://127.0.0.1:%%PORT_upstream%%;',
            'add_header X-Cache "cache=$identity_session_cache session=$identity_session_id";'),
          location_block('/touch', 'identity test;',
            'identity_session_touch_interval 1s;',
            'proxy_pass http://127.0.0.1:%%PORT_upstream%%;',
            'add_header X-Cache "cache=$identity_session_cache";')]);
}

# ------------------------------------------------------------ configuration

{
    my $t = Identity::Test->new(name => 'session-cache-conf');
    for ([ 'identity_session_cache ttl=10s;', qr/must have "zone" parameter/ ],
         [ 'identity_session_cache zone=x;', qr/invalid parameter "zone=x"/ ],
         [ 'identity_session_cache zone=x:1k;', qr/is too small/ ],
         [ 'identity_session_cache zone=x:1m ttl=0;', qr/invalid parameter "ttl=0"/ ],
         [ 'identity_session_cache zone=x:1m fast;', qr/invalid parameter "fast"/ ],
         [ "identity_session_cache zone=x:1m;\nidentity_session_cache zone=y:1m;",
           qr/is duplicate/ ])
    {
        my ($line, $re) = @$_;
        $t->write_file('admin.token', "$token\n");
        $t->nginx_conf(conf(cache => $line));
        my ($rc, $out) = $t->nginx_test_conf;
        isnt($rc, 0, "nginx -t refuses: $line");
        like($out, $re, '  with a message that says why');
    }
    $t->nginx_conf(conf(cache => 'identity_session_cache zone=x:1m ttl=30s;'));
    my ($rc, $out) = $t->nginx_test_conf;
    is($rc, 0, 'nginx -t accepts zone=x:1m ttl=30s') or diag($out);
}

for (@names) {
    $t{$_}->write_file('admin.token', "$token\n");
    $t{$_}->nginx_conf(conf());
    $t{$_}->start_nginx;
}

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub call {
    my ($name, $method, $path) = @_;
    my $r = $api->request($method, "$base{$name}/api/$path");
    $r->{json} = eval { decode_json($r->{body}) } if length($r->{body} // '');
    return $r;
}

# a fresh client that sends exactly this session cookie
sub with_cookie {
    my ($name, $cookie, $path) = @_;
    return Identity::Test::UA->new->get("$base{$name}" . ($path // '/x'),
        headers => { Cookie => "identity_session=$cookie" });
}

sub cache_status {
    my ($name, $cookie) = @_;
    my $r = with_cookie($name, $cookie, '/cache');
    return $r->{status} == 200 && ($r->{h}{'x-cache'} // '') =~ /cache=(\w*)/
        ? $1 : "status $r->{status}";
}

# until the instance's cache answers HIT for this cookie (it is leased a
# moment after start, after a restart of Redis, after a cut)
sub until_hit {
    my ($name, $cookie) = @_;
    my $end = time + 10;
    my $s = '';
    while (time < $end) {
        $s = cache_status($name, $cookie);
        return $s if $s eq 'HIT';
        sleep 0.05;
    }
    return $s;
}

sub calls {
    my %c;
    for (split /\r?\n/, $ta->redis('INFO', 'commandstats')) {
        $c{$1} = $2 if /^cmdstat_(\w+):calls=(\d+)/;
    }
    return \%c;
}

sub login {
    my ($name) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base{$name}/login-$name");
    is($r->{status}, 200, "logged in through $name");
    return (upstream_saw($r->{body}), $ua->cookie('identity_session', '127.0.0.1'));
}

# ------------------------------------------------------------ nodes

my $end = time + 10;
sleep 0.1 while time < $end && @{$ta->redis('ZRANGE', 'identity:nodes', 0, -1) || []} < 3;
my @nodes = @{$ta->redis('ZRANGE', 'identity:nodes', 0, -1) || []};
is(scalar @nodes, 3, 'three nodes registered in identity:nodes');
like($_, qr/^[0-9a-f]{16}$/, "node id $_") for @nodes;
my @subs = grep { /name=identity-node-/ } split /\n/, $ta->redis('CLIENT', 'LIST');
is(scalar @subs, 3, 'one subscriber connection per node, not per worker');
is_deeply([sort map { node_of($_) } @names], [sort @nodes],
          'each instance logged its node id as it subscribed');
like($_, qr/sub=1 /, '  subscribed to one channel') for @subs;

# ------------------------------------------------------------ hits cost no Redis call

my ($saw, $cookie) = login('A');
like($saw->{session}, qr/^as_[0-9a-f]{32}$/, 'a session');

is(until_hit($_, $cookie), 'HIT', "$_ answers from its cache") for @names;

my $before = calls();
for my $i (1 .. 30) {
    my $name = $names[$i % 3];
    my $r = with_cookie($name, $cookie, '/cache');
    is($r->{h}{'x-cache'}, "cache=HIT session=$saw->{session}", "request $i on $name: a hit")
        if $i <= 3;
}
my $after = calls();
is(($after->{hmget} // 0) - ($before->{hmget} // 0), 0, '30 cached requests: no HMGET');
is(($after->{hset} // 0) - ($before->{hset} // 0), 0,
   'and no write (last_active is recent: no touch)');

my $r = with_cookie('B', $cookie);
is($r->{status}, 200, 'the upstream behind B is reached');
my $seen = upstream_saw($r->{body});
is($seen->{session}, $saw->{session}, 'and receives the session id from the cache');
is($seen->{email}, 'alice@example.test', 'and the e-mail');

# ------------------------------------------------------------ last_active, written from hits

{
    use Digest::SHA qw(sha256_hex);
    my $key = Identity::Test::session_key($cookie);
    my $last = $ta->redis('HGET', $key, 'last_active');
    sleep 2.1;
    my $t0 = time;
    $r = with_cookie('B', $cookie, '/touch');
    is($r->{h}{'x-cache'}, 'cache=HIT', 'a hit past the touch interval is still a hit');
    my $end = time + 5;
    my $now;
    while (time < $end) {
        $now = $ta->redis('HGET', $key, 'last_active');
        last if $now > $last;
        sleep 0.05;
    }
    cmp_ok($now, '>', $last, 'and last_active is written to Redis without the request waiting');
    cmp_ok($ta->redis('TTL', $key), '>', 0, 'the record keeps its idle TTL');
    $before = calls();
    is(with_cookie('B', $cookie, '/touch')->{h}{'x-cache'}, 'cache=HIT', 'the next hit')
        for 1 .. 4;
    $after = calls();
    is(($after->{hset} // 0) - ($before->{hset} // 0), 0,
       'writes nothing: the node knows it was just written');
}

# ------------------------------------------------------------ revocation under load

my ($hammer_until, $hammer_stop);

sub hammer {
    my ($name, $c, $file) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my $ok = open my $fh, '>', $file;
    while ($ok && time < $hammer_until && !-e $hammer_stop) {
        my $start = time;
        my $res = eval { with_cookie($name, $c) };
        printf $fh "%.6f %d\n", $start, $res ? $res->{status} : 0;
    }
    close $fh if $ok;
    POSIX::_exit($ok ? 0 : 1);
}

# hammers every live instance while DELETE runs through A; then checks
# that no request started after the 204 was admitted
sub revoke_under_load {
    my ($label, $c, $path, %o) = @_;
    my @live = grep { !$o{skip}{$_} } @names;
    # until a second after the 204, whatever the DELETE took
    $hammer_until = time + 20;
    $hammer_stop = $ta->testdir . "/hammer-$label.stop";
    my %file = map { $_ => $t{$_}->testdir . "/hammer-$label.log" } @live;
    my %pid = map { $_ => hammer($_, $c, $file{$_}) } @live;

    sleep 0.6;
    $o{before}->() if $o{before};
    my $t_sent = time;
    my $res = call('A', 'DELETE', $path);
    my $t_del = time;
    is($res->{status}, 204, "$label: DELETE $path through A: 204");
    $o{after}->() if $o{after};
    sleep 1;
    $ta->write_file("hammer-$label.stop", '');

    for (sort keys %pid) {
        is(waitpid($pid{$_}, 0), $pid{$_}, "$label: hammer on $_ finished");
    }
    for my $name (@live) {
        my @req = map { [split] } grep { /^\d+\.\d+ \d+$/ }
                  split /\n/, $ta->read_file($file{$name});
        my @before = grep { $_->[0] < $t_sent } @req;
        my @after = grep { $_->[0] > $t_del } @req;
        note(sprintf '%s %s: %d requests, %d before the DELETE, %d after its 204',
             $label, $name, scalar @req, scalar @before, scalar @after);
        cmp_ok(scalar(grep { $_->[1] == 200 } @before), '>', 5,
               "$label $name: 200s before the DELETE");
        cmp_ok(scalar @after, '>', 3, "$label $name: requests after the 204");
        is(scalar(grep { $_->[1] == 200 } @after), 0,
           "$label $name: no request started after the 204 got a 200");
        is(scalar(grep { $_->[1] !~ /^(200|302)$/ } @req), 0,
           "$label $name: only 200 and 302 at any time");
    }
    return $t_del - $t_sent;
}

revoke_under_load('user', $cookie, "app/users/$saw->{id}");
is(with_cookie($_, $cookie)->{status}, 302, "$_ refuses the revoked cookie") for @names;

# ------------------------------------------------------------ logout through one, refused by all

my ($s2, $c2) = login('B');
is(until_hit($_, $c2), 'HIT', "$_ caches the new session") for @names;
$r = Identity::Test::UA->new->get("$base{B}/_identity/logout",
    headers => { Cookie => "identity_session=$c2" });
cmp_ok($r->{status}, '>=', 300, 'logout through B');
is(with_cookie($_, $c2)->{status}, 302, "$_ refuses the cookie after the logout") for @names;

# ------------------------------------------------------------ C's subscription cut

my ($s3, $c3) = login('A');
is(until_hit($_, $c3), 'HIT', "$_ caches session 3") for @names;

my $c_log_offset = length $t{C}->error_log;
revoke_under_load('cut', $c3, "app/sessions/$s3->{session}", before => sub {
    # C's subscriber connection, found by its name, which holds C's node id
    for my $l (grep { /name=identity-node-/ } split /\n/, $ta->redis('CLIENT', 'LIST')) {
        my ($cid) = $l =~ /\bid=(\d+)/;
        my ($nid) = $l =~ /name=identity-node-([0-9a-f]+)/;
        $ta->redis('CLIENT', 'KILL', 'ID', $cid) if $nid eq node_of('C');
    }
});
is(with_cookie($_, $c3)->{status}, 302, "cut: $_ refuses the revoked cookie") for @names;

# C learns of the cut when its connection reads the close, which may come
# after the revocation was answered (under ASan, seconds after)
$end = time + 10;
sleep 0.1 while time < $end
    && substr($t{C}->error_log, $c_log_offset) !~ /session cache subscription lost/;
my $c_log = substr($t{C}->error_log, $c_log_offset);
like($c_log, qr/\[warn\].*session cache subscription lost/,
     'C logged the lost subscription, at warn');
$end = time + 10;
sleep 0.1 while time < $end
    && substr($t{C}->error_log, $c_log_offset) !~ /session cache subscribed again/;
like(substr($t{C}->error_log, $c_log_offset), qr/\[notice\].*session cache subscribed again/,
     'and, at notice, that it subscribed again');

my ($s4, $c4) = login('A');
is(until_hit('C', $c4), 'HIT', 'C uses its cache again once resubscribed');

# ------------------------------------------------------------ the subscribed worker of B killed

{
    my ($line) = grep { /name=identity-node-\Q${\node_of('B')}\E-/ }
                 split /\n/, $ta->redis('CLIENT', 'LIST');
    my ($worker) = ($line // '') =~ /name=identity-node-[0-9a-f]+-(\d+)/;
    ok($worker, "B's subscriber connection names its worker ($worker)");
    kill 'KILL', $worker;
    # the other worker, or the new one, takes the subscription over
    my $end = time + 15;
    my $new;
    while (time < $end) {
        ($line) = grep { /name=identity-node-\Q${\node_of('B')}\E-/ }
                  split /\n/, $ta->redis('CLIENT', 'LIST');
        ($new) = ($line // '') =~ /name=identity-node-[0-9a-f]+-(\d+)/;
        last if $new && $new != $worker;
        sleep 0.1;
    }
    ok($new && $new != $worker, "another worker of B subscribed ($new)");
    my ($sk, $ck) = login('A');
    is(until_hit('B', $ck), 'HIT', 'B uses its cache again');
    is(call('A', 'DELETE', "app/sessions/$sk->{session}")->{status}, 204, 'DELETE through A');
    is(with_cookie('B', $ck)->{status}, 302, 'B refuses it at once');
}

# ------------------------------------------------------------ C frozen: it cannot acknowledge

my $c_pid = $t{C}{procs}{nginx};
my $a_log_offset = length $ta->error_log;
my $took = revoke_under_load('frozen', $c4, "app/sessions/$s4->{session}",
    skip => { C => 1 },
    before => sub { kill 'STOP', -$c_pid },
    after => sub { kill 'CONT', -$c_pid });
note(sprintf 'DELETE with C frozen took %.2f s', $took);
is(with_cookie('C', $c4)->{status}, 302, 'frozen: C, woken, refuses the revoked cookie');
like(substr($ta->error_log, $a_log_offset),
     qr/\[warn\].*1 node\(s\) did not confirm "identity:inv:\d+" within 1500 ms/,
     'A logged, at warn, that one node did not confirm');

# ------------------------------------------------------------ C killed

my ($s5, $c5) = login('A');
is(until_hit($_, $c5), 'HIT', "$_ caches session 5") for @names;
kill 'KILL', -$c_pid;
waitpid($c_pid, 0);
delete $t{C}{procs}{nginx};
revoke_under_load('killed', $c5, "app/sessions/$s5->{session}", skip => { C => 1 });
is(with_cookie($_, $c5)->{status}, 302, "killed: $_ refuses the revoked cookie") for qw(A B);

# ------------------------------------------------------------ Redis restarts empty

my ($s6, $c6) = login('A');
is(until_hit($_, $c6), 'HIT', "$_ caches session 6") for qw(A B);
$ta->stop_redis;
$r = with_cookie('A', $c6);
is($r->{status}, 503, 'Redis down: 503, not a cached 200');
$ta->start_redis;
is($ta->redis('EXISTS', 'identity:sessions'), 0, 'Redis restarted empty');
for my $name (qw(A B)) {
    # the worker's Redis connection comes back after its backoff: 503 till then
    my $end = time + 10;
    my $st;
    while (time < $end) {
        $st = with_cookie($name, $c6)->{status};
        last if $st != 503;
        sleep 0.1;
    }
    is($st, 302, "$name refuses the session Redis lost, once Redis answers");
}

my ($s7, $c7) = login('B');
is(until_hit($_, $c7), 'HIT', "$_ caches again after the restart") for qw(A B);

# ------------------------------------------------------------ a reload that changes the keyspace

{
    is(until_hit('B', $c7), 'HIT', 'B has session 7 cached');
    my $conf = conf();
    $conf =~ s/(identity_redis [^;]*;)/$1\n    identity_redis_prefix other:;/;
    $t{B}->nginx_conf($conf);
    ok($t{B}->reload_nginx, 'B reloaded with identity_redis_prefix other:');
    # old workers may still answer a moment, from the old keyspace and Redis
    my (%seen, $last);
    my $end = time + 10;
    while (time < $end) {
        my $r = with_cookie('B', $c7, '/cache');
        $last = $r->{status} == 200 ? ($r->{h}{'x-cache'} // '') : $r->{status};
        $seen{$last =~ /cache=(\w+)/ ? $1 : $last}++;
        last if $last eq '302';
        sleep 0.02;
    }
    is($last, 302, 'the new configuration refuses the session of the old keyspace');
    is($seen{HIT}, undef, 'and the kept zone never served it after the reload')
        or diag(join ', ', map { "$_ x $seen{$_}" } sort keys %seen);
    my ($s8, $c8) = login('B');
    is(until_hit('B', $c8), 'HIT', 'B caches sessions of its new keyspace');
    ok(grep({ $_ eq node_of('B') } @{$ta->redis('ZRANGE', 'other:nodes', 0, -1) || []}),
       'and registered under the new prefix');
}

# ------------------------------------------------------------ strict mode remains

{
    my $t = Identity::Test->new(name => 'session-cache-strict');
    $t->write_file('admin.token', "$token\n");
    $t->nginx_conf(conf(cache => ''));
    $t->start_nginx;
    my $base_s = 'http://127.0.0.1:' . $t->port('nginx');
    $base{S} = $base_s;
    $before = calls();
    for (1 .. 5) {
        is(with_cookie('S', $c7, '/cache')->{h}{'x-cache'}, "cache= session=$s7->{session}",
           "strict $_: no cache status");
    }
    $after = calls();
    is(($after->{hmget} // 0) - ($before->{hmget} // 0), 5,
       'without identity_session_cache: one HMGET per request');
    $t->stop_all;
    $t->check_log;
}

for (qw(B C)) {
    $t{$_}->stop_all;
    # B's master reports the worker this test killed, at alert
    my @bad = grep { /\[(alert|emerg|crit)\]/ && !/worker process \d+ exited on signal 9/ }
              split /\n/, $t{$_}->error_log;
    is(scalar @bad, 0, "$_: no other alert in error.log") or diag(join "\n", @bad[0 .. 4]);
}
$ta->done;

sub node_of {
    my ($name) = @_;
    my ($id) = $t{$name}->error_log =~ /identity: node ([0-9a-f]{16}) subscribed/;
    return $id // '';
}
