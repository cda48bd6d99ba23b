#!/usr/bin/perl
# Self-test of the harness's Redis Cluster tools (t/lib/Identity/Test.pm; no
# identity module needed): start_cluster, key_slot, cluster_owner,
# redis_cluster following MOVED and ASK, cluster_keys, a slot migrated by
# hand while keys are read and written, a failover, and stop by pid.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Identity::Test;

my $t = Identity::Test->new(name => 'cluster-harness');

# ------------------------------------------------------------ key_slot

# values from the Redis Cluster specification
is(Identity::Test::key_slot('123456789'), 0x31C3, 'key_slot: CRC16 check value');
is(Identity::Test::key_slot('{user1000}.following'),
   Identity::Test::key_slot('{user1000}.followers'), 'key_slot: same tag, same slot');
isnt(Identity::Test::key_slot('foo{}{bar}'), Identity::Test::key_slot('foo{}{bar}x'),
   'key_slot: an empty first tag: the whole key is hashed');

# ------------------------------------------------------------ three primaries

my @primaries = $t->start_cluster;
is(scalar @primaries, 3, 'start_cluster returns three primary ports');
is_deeply([map { $_->{name} } $t->cluster_nodes], [qw(cluster1 cluster2 cluster3)], 'named cluster1..3');
is_deeply([map { $_->{role} } $t->cluster_nodes], [('master') x 3], 'all primaries');
for my $port (@primaries) {
    like($t->cluster_at($port, 'CLUSTER', 'INFO'), qr/^cluster_state:ok\r?$/m, "port $port: cluster_state:ok");
}

my @keys = ('', 'a', 'foo', 'bar', '123456789', 'identity:session:0123abcd',
    '{t1}', '{t1}:x', 'x{t1}', 'a{t1}b', '{}', '{}x', 'x{}', 'x{}{t1}', '{}{t1}',
    '{', '{x', 'x{', '}', '}{', 'x}y{z', '{a}{b}', 'x{a}{b}', '{a{b}c}', '{{a}}',
    '{a}}', 'a{b', 'a}b{c}', '{ }', "{\0}", "bin\0\xff\x80", "\x{e9}t\x{e9}",
    "{\x{263a}}smile", '{identity:u:alice}:sessions', 'identity:{b7}:sessions',
    'x' x 300, '{' . ('y' x 200) . '}z', 'tag{with}{several}{tags}', '{}{}{}');
for my $key (@keys) {
    my $bytes = $key;
    utf8::encode($bytes) if utf8::is_utf8($bytes);
    my $printable = $bytes =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ger;
    $printable = substr($printable, 0, 40) . '...' if length $printable > 40;
    is(Identity::Test::key_slot($key), $t->cluster_at($primaries[0], 'CLUSTER', 'KEYSLOT', $bytes),
       "key_slot('$printable') is CLUSTER KEYSLOT's");
}

# ------------------------------------------------------------ redis_cluster

my %value;
for my $i (1 .. 200) {
    $value{"{t1}:$i"} = "tagged $i";
    $value{"spread:$i"} = "spread $i";
}
my $writes_ok = grep { ($t->redis_cluster('SET', $_, $value{$_}) // '') eq 'OK' } sort keys %value;
is($writes_ok, 400, '400 SETs through redis_cluster');
is($t->redis_cluster('HSET', '{t1}:h', 'a', 1, 'b', 2), 2, 'HSET');
is_deeply({ @{$t->redis_cluster('HGETALL', '{t1}:h')} }, { a => 1, b => 2 }, 'HGETALL');
is($t->redis_cluster('EVAL', "return redis.call('GET', KEYS[1])", 1, '{t1}:7'), 'tagged 7',
   'EVAL is routed by its first key');
is($t->redis_cluster('GET', 'no-such-key'), undef, 'nil');
is($t->redis_cluster('NOSUCHCMD', 'k'), undef, 'an error reply: undef');
like($t->redis_error, qr/unknown command/i, 'and redis_error');

my @held = map { $t->cluster_at($_, 'DBSIZE') } @primaries;
is(scalar(grep { $_ > 0 } @held), 3, "every primary holds keys (@held)");
my @tagged = $t->cluster_keys('{t1}:*');
is(scalar @tagged, 201, 'cluster_keys: the 200 tagged keys and the hash');
is(scalar($t->cluster_keys('spread:*')), 200, 'cluster_keys: 200 spread keys over three primaries');
is(scalar($t->cluster_keys), 401, 'cluster_keys: all');

my $slot = Identity::Test::key_slot('{t1}');
my $from = $t->cluster_owner($slot);
ok((grep { $_ == $from } @primaries), "cluster_owner: slot $slot is on a primary ($from)");
is($t->cluster_at($from, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 201, 'which holds its keys');
my ($to, $third) = grep { $_ != $from } @primaries;

# ------------------------------------------------------------ a slot migrated step by step

my $m = $t->migrate_slot_begin($slot, $from, $to, batch => 20);
is($t->migrate_slot_step($m), 20, 'migrate_slot_step moves a batch');
my @there = @{$t->cluster_at($to, 'CLUSTER', 'GETKEYSINSLOT', $slot, 100)};
is(scalar @there, 20, 'the target holds 20 keys');
my %before = %{$t->{cluster_redirects} || {}};
is($t->redis_cluster('GET', $there[0]), $value{$there[0]}, 'a moved key reads back (ASK)');
is(($t->{cluster_redirects}{ASK} // 0) - ($before{ASK} // 0), 1, 'through one ASK');
is($t->redis_cluster('SET', '{t1}:new', 'during'), 'OK', 'a new key written during the migration');
$value{'{t1}:new'} = 'during';
ok((grep { $_ eq '{t1}:new' } @{$t->cluster_at($to, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000)}),
   'lands on the target');
my $steps = 1;
while ($t->migrate_slot_step($m)) {
    $steps++;
    # the test's own requests between batches
    my @k = grep { /^\{t1\}:\d/ } sort keys %value;
    is($t->redis_cluster('GET', $k[$steps * 7]), $value{$k[$steps * 7]}, "read between batches $steps")
        if $steps <= 3;
}
is($t->migrate_slot_end($m), 201, 'migrate_slot_end: 201 keys moved');
is($steps, 11, 'in 11 batches of 20');
is($t->cluster_owner($slot), $to, 'cluster_owner names the new owner');
for my $port (@primaries) {
    my $owner = (grep { $_->[0] <= $slot && $slot <= $_->[1] } @{$t->cluster_at($port, 'CLUSTER', 'SLOTS')})[0];
    is($owner->[2][1], $to, "port $port agrees");
}
is($t->cluster_at($to, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 202, 'the target holds every key of the slot');
is($t->cluster_at($from, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 0, 'the source none');

# ------------------------------------------------------------ migrate_slot in one call, with a pause

is($t->migrate_slot($slot, $to, $third, batch => 20, pause => 0.05), 202,
   'migrate_slot: 202 keys moved, batch 20 with a pause');
is($t->cluster_owner($slot), $third, 'cluster_owner names the third primary');
# a slot map as stale as a client's that did not see the resharding
is($t->redis_cluster('GET', 'spread:1'), 'spread 1', 'redis_cluster keeps a slot map');
$t->{cluster_map}[$slot] = $from;
%before = %{$t->{cluster_redirects} || {}};
my $same = grep { ($t->redis_cluster('GET', $_) // '') eq $value{$_} } sort keys %value;
is($same, 401, 'every key reads back with its value');
ok(($t->{cluster_redirects}{MOVED} // 0) > ($before{MOVED} // 0), 'after following MOVED');
is_deeply({ @{$t->redis_cluster('HGETALL', '{t1}:h')} }, { a => 1, b => 2 }, 'the hash moved too');
is(scalar(() = $t->cluster_keys('{t1}:*')), 202, 'cluster_keys after the migrations');

# ------------------------------------------------------------ migrate_slot in a child, under load

# back to the first owner, in a forked child, while this process reads
# and writes the slot's keys
my $child = fork // die "fork: $!";
if (!$child) {
    my $moved = eval { $t->migrate_slot($slot, $third, $from, batch => 10, pause => 0.02) };
    print STDERR "migrate_slot in the child: $@" unless defined $moved;
    # and those this process wrote before the slot was MIGRATING
    print STDERR "migrate_slot in the child moved $moved keys\n" if defined $moved && $moved < 202;
    POSIX::_exit(defined $moved && $moved >= 202 ? 0 : 1);
}
my @tagged_keys = grep { /^\{t1\}:\d/ } sort keys %value;
my ($reads, $bad_reads, $writes, $bad_writes) = (0, 0, 0, 0);
%before = %{$t->{cluster_redirects} || {}};
while (waitpid($child, POSIX::WNOHANG()) == 0) {
    my $k = $tagged_keys[$reads % @tagged_keys];
    $reads++;
    $bad_reads++ if ($t->redis_cluster('GET', $k) // '') ne $value{$k};
    $writes++;
    $value{"{t1}:load$writes"} = "load $writes";
    $bad_writes++ if ($t->redis_cluster('SET', "{t1}:load$writes", "load $writes") // '') ne 'OK';
}
is($?, 0, 'the child moved the 202 keys (and any written before it began)');
ok($reads > 10, "reads during the migration ($reads)");
is($bad_reads, 0, 'every one read its value');
is($bad_writes, 0, "every write during the migration was accepted ($writes)");
is($t->cluster_owner($slot), $from, 'the slot is back on its first owner');
is($t->cluster_at($from, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 1 + grep({ /^\{t1\}/ } keys %value),
   'with every key of the slot (and the hash)');
is($t->cluster_at($third, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 0, 'none left behind');
$same = grep { ($t->redis_cluster('GET', $_) // '') eq $value{$_} } sort keys %value;
is($same, scalar(keys %value), 'every key, those written during the migration too, reads back');
note(explain({ map { $_ => ($t->{cluster_redirects}{$_} // 0) - ($before{$_} // 0) } qw(MOVED ASK) }));

# ------------------------------------------------------------ stop by pid

my @pids = map { $t->{procs}{$_->{name}} } $t->cluster_nodes;
$t->stop_all;
is(scalar(grep { kill 0, $_ } @pids), 0, 'stop_all stopped every node');

# ------------------------------------------------------------ TLS, password, replicas, failover

my $p = Identity::Test->new(name => 'cluster-harness-auth');
my $dir = $p->testdir;

# a command's output (stdout and stderr) and exit code
sub run {
    my $pid = open my $fh, '-|' // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec @_ or print "exec $_[0]: $!\n";
        POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($out, $? >> 8);
}

# a test CA and one certificate for every node (no extendedKeyUsage: the
# nodes are servers and, on the cluster bus, clients)
my @ossl = ('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-days', '2');
my ($out, $rc) = run(@ossl, '-x509', '-subj', '/CN=test-ca', '-keyout', "$dir/ca.key", '-out', "$dir/ca.crt");
is($rc, 0, 'a test CA') or diag($out);
$p->write_file('node.ext', "subjectAltName=DNS:redis.test,IP:127.0.0.1\n");
($out, $rc) = run(@ossl, '-subj', '/CN=redis.test', '-keyout', "$dir/node.key", '-out', "$dir/node.csr");
($out, $rc) = run('openssl', 'x509', '-req', '-in', "$dir/node.csr", '-CA', "$dir/ca.crt",
    '-CAkey', "$dir/ca.key", '-CAcreateserial', '-days', '2', '-out', "$dir/node.crt",
    '-extfile', "$dir/node.ext") unless $rc;
is($rc, 0, 'a node certificate') or diag($out);

my @pp = $p->start_cluster(replicas => 1, args => ['--requirepass', 'pw', '--masterauth', 'pw'],
    tls => { cert => "$dir/node.crt", key => "$dir/node.key", ca => "$dir/ca.crt" });
is(scalar @pp, 3, 'with TLS, a password and a replica each: three primaries');
is(scalar(grep { $_->{role} eq 'slave' } $p->cluster_nodes), 3, 'and three replicas');
my @tls_ports = @{$p->{cluster_tls_ports}};
is(scalar @tls_ports, 3, 'and their TLS ports');
like($p->cluster_at($pp[0], 'CONFIG', 'GET', 'tls-cluster')->[1], qr/^yes\z/, 'tls-cluster yes');
# a TLS client is sent to TLS ports, a plain one to plain ports
my $moved_slot = Identity::Test::key_slot('m');
my ($wrong) = grep { $_ != $p->cluster_owner($moved_slot) } @pp;
my ($wrong_tls) = map { $_->{tls_port} } grep { $_->{port} == $wrong } $p->cluster_nodes;
my $owner_tls = (map { $_->{tls_port} } grep { $_->{port} == $p->cluster_owner($moved_slot) } $p->cluster_nodes)[0];
($out) = run('redis-cli', '--tls', '--cacert', "$dir/ca.crt", '-p', $wrong_tls, '-a', 'pw',
    '--no-auth-warning', 'GET', 'm');
like($out, qr/^MOVED $moved_slot 127\.0\.0\.1:$owner_tls$/m, 'over TLS, MOVED names the TLS port');
is($p->cluster_at($wrong, 'GET', 'm'), undef, 'in plain text');
like($p->redis_error, qr/^MOVED $moved_slot 127\.0\.0\.1:${\ $p->cluster_owner($moved_slot)}\z/, 'the plain port');
is($p->redis_at($pp[0], 'GET', 'x'), undef, 'no password');
like($p->redis_error, qr/NOAUTH/, 'NOAUTH');
%value = map { ("{a}:$_" => "a$_", "b:$_" => "b$_") } 1 .. 20;
$writes_ok = grep { ($p->redis_cluster('SET', $_, $value{$_}) // '') eq 'OK' } sort keys %value;
is($writes_ok, 40, 'SETs with the password');
$slot = Identity::Test::key_slot('{a}');
$from = $p->cluster_owner($slot);
($to) = grep { $_ != $from } @pp;
is($p->migrate_slot($slot, $from, $to, batch => 7), 20, 'migrate_slot with MIGRATE ... AUTH');
is($p->cluster_owner($slot), $to, 'new owner');

# the replica of the owner takes over when it is killed
is($p->redis_cluster('GET', '{a}:1'), 'a1', 'read before the failover');
my ($owner) = grep { $_->{port} == $to } $p->cluster_nodes;
my ($replica) = grep { ($_->{primary} // '') eq $owner->{name} } $p->cluster_nodes;
ok($replica, "$owner->{name} has a replica") or die "no replica\n";
ok($p->wait_replicated($to, $replica->{port}, cluster => 1), 'replicated');
$p->kill_cluster_node($owner->{name});
my $end = time + 20;
sleep 0.2 while time < $end && (eval { $p->cluster_owner($slot) } // 0) != $replica->{port};
is($p->cluster_owner($slot), $replica->{port}, "failover: $replica->{name} serves the slot");
# the other nodes learn of the new primary at their own pace (gossip):
# read until they all have, or 10 s
$end = time + 10;
do {
    $same = grep { (eval { $p->redis_cluster('GET', $_) } // '') eq $value{$_} } sort keys %value;
} while ($same < 40 && time < $end && sleep 0.2);
is($same, 40, 'every key reads back after the failover');
ok($p->{cluster_redirects}{refresh}, 'redis_cluster asked for the new slot map');
$p->restart_cluster_node($owner->{name});
$end = time + 20;
sleep 0.2 while time < $end && ($p->cluster_at($owner->{port}, 'ROLE')->[0] // '') ne 'slave';
is($p->cluster_at($owner->{port}, 'ROLE')->[0], 'slave', 'restart_cluster_node: it rejoins as a replica');

@pids = map { $p->{procs}{$_->{name}} } $p->cluster_nodes;
$p->stop_all;
is(scalar(grep { kill 0, $_ } @pids), 0, 'stop_all stopped every node');

$p->done;
