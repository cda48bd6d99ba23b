#!/usr/bin/perl
# identity_session_cache read as an attacker would: what t/80 does not
# cover.  A worker held up inside one turn of its event loop (here by an
# access log that is a full pipe; in production a slow disk, a burst of TLS
# handshakes) must not trust the lease by the time it read when the turn
# began; a long identity_redis_prefix must not stop a node from
# confirming; an admin client that goes away while its DELETE waits for
# the nodes costs nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Fcntl qw(O_RDONLY O_NONBLOCK);
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw location_block);

# F_SETPIPE_SZ, <linux/fcntl.h>: not in Fcntl
use constant F_SETPIPE_SZ => 1031;

my @names = qw(A B C D);
my %t = map { $_ => Identity::Test->new(name => "session-cache-attacks-$_") } @names;
my $ta = $t{A};

my $rport = $ta->start_redis;
my %base = map { $_ => 'http://127.0.0.1:' . $t{$_}->port('nginx') } @names;
my $issuer = $ta->start_idp(
    redirect_uris => [map { "$base{$_}/_identity/callback" } @names]);

my $token = 'admin-' . Identity::Test::random_token(24);
my $long_prefix = 'identity:' . ('p' x 70) . ':';

# A: one worker (it holds the subscription too), and /slow, whose access
# log is a pipe the test fills and drains; B: the revoker; C: a long
# prefix; D: two workers, the subscribed one killed, then D reloaded
my $fifo = $ta->testdir . '/slow.log';
POSIX::mkfifo($fifo, 0600) or die "mkfifo: $!";
sysopen(my $pipe, $fifo, O_RDONLY | O_NONBLOCK) or die "open $fifo: $!";
# one page: one 3000-byte line fits, a second one blocks its writer
fcntl($pipe, F_SETPIPE_SZ, 4096) or die "F_SETPIPE_SZ: $!";

sub conf {
    my ($name) = @_;
    return identity_conf(redis => $rport, issuer => $issuer, admin => 1,
        workers => $name eq 'D' ? 2 : 1,
        http => "identity_session_cache zone=sessions:1m;\n"
            . "log_format fill '\$http_x_fill';\n"
            . ($name eq 'C' ? "identity_redis_prefix $long_prefix;\n" : ''),
        locations => [
            location_block('/cache', 'identity test;',
                'proxy_pass http://127.0.0.1:%%PORT_upstream%%;',
                'add_header X-Cache "cache=$identity_session_cache";'),
            location_block('/slow', 'identity off;',
                "access_log $fifo fill;", 'return 200 "slow\n";'),
        ]);
}

for (@names) {
    $t{$_}->write_file('admin.token', "$token\n");
    $t{$_}->nginx_conf(conf($_));
    $t{$_}->start_nginx;
}

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub call {
    my ($name, $method, $path) = @_;
    return $api->request($method, "$base{$name}/api/$path");
}

sub with_cookie {
    my ($name, $cookie, $path) = @_;
    return Identity::Test::UA->new->get("$base{$name}" . ($path // '/x'),
        headers => { Cookie => "identity_session=$cookie" });
}

sub until_hit {
    my ($name, $cookie) = @_;
    my $end = time + 10;
    my $s = '';
    while (time < $end) {
        my $r = with_cookie($name, $cookie, '/cache');
        $s = ($r->{h}{'x-cache'} // '') =~ /cache=(\w+)/ ? $1 : "status $r->{status}";
        return $s if $s eq 'HIT';
        sleep 0.05;
    }
    return $s;
}

sub login {
    my ($name) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base{$name}/login-$name");
    is($r->{status}, 200, "logged in through $name");
    return (upstream_saw($r->{body}), $ua->cookie('identity_session', '127.0.0.1'));
}

sub connect_to {
    my ($name) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t{$name}->port('nginx'), Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    binmode $s;
    return $s;
}

sub slow_request {
    return "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fill: " . ('f' x 3000)
        . "\r\n\r\n";
}

# the status line of the first response on a socket, or ''
sub read_status {
    my ($s, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $end = time + ($timeout // 10);
    while ($buf !~ /\r\n\r\n/ && time < $end) {
        last unless $sel->can_read($end - time);
        my $n = sysread $s, $buf, 65536, length $buf;
        last unless $n;
    }
    return $buf;
}

sub drain {
    my ($bytes) = @_;
    my $sel = IO::Select->new($pipe);
    my $got = 0;
    my $end = time + 10;
    while ((!defined $bytes || $got < $bytes) && time < $end) {
        last unless $sel->can_read(defined $bytes ? $end - time : 0.2);
        my $n = sysread $pipe, my $buf, defined $bytes ? $bytes - $got : 65536;
        last unless $n;
        $got += $n;
    }
    return $got;
}

# ------------------------------------------------------------ a worker held up in one turn

my ($saw, $cookie) = login('B');
is(until_hit('A', $cookie), 'HIT', 'A caches the session');

# the pipe holds one line: the next /slow request blocks A in its log phase
my $r = Identity::Test::UA->new->get("$base{A}/slow", headers => { 'X-Fill' => 'f' x 3000 });
is($r->{status}, 200, '/slow answers, its log line fills the pipe');

# two connections A has accepted and waits on
my $c2 = connect_to('A');
my $c3 = connect_to('A');
sleep 0.2;

# turn 0: A answers /slow, then waits for room in the pipe
my $c1 = connect_to('A');
syswrite $c1, slow_request();
like(read_status($c1), qr{^HTTP/1\.1 200}, 'turn 0: A answered /slow, blocked on its log');
sleep 0.05;

# ready when turn 1 begins, in this order: a /slow request, then the first
# byte of a request whose rest comes after the DELETE
syswrite $c2, slow_request();
sleep 0.05;
syswrite $c3, 'G';
sleep 0.05;

is(drain(3001), 3001, 'room for one line: turn 0 ends');
like(read_status($c2), qr{^HTTP/1\.1 200}, 'turn 1: A answered /slow, blocked again');

# A cannot acknowledge: B waits for it, up to 1.5 s, and answers
my $t0 = time;
my $del = call('B', 'DELETE', "app/sessions/$saw->{session}");
is($del->{status}, 204, 'DELETE through B: 204 (A did not confirm)');
note(sprintf 'DELETE took %.2f s', time - $t0);

syswrite $c3, "ET /cache HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    . "Cookie: identity_session=$cookie\r\nConnection: close\r\n\r\n";
sleep 0.05;
drain(3001);

my $head = read_status($c3);
my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
my ($cache) = $head =~ /X-Cache: cache=(\w*)/i;
isnt($status // 0, 200,
     'a request sent after the 204 is not admitted by a worker whose clock is '
     . 'the one of an earlier moment')
    or diag("A answered it with cache=" . ($cache // '?'));
close $_ for $c1, $c2, $c3;
drain();

is(with_cookie('A', $cookie)->{status}, 302, 'A refuses the revoked cookie afterwards');

# ------------------------------------------------------------ a long prefix

my ($sc, $cc) = login('C');
is(until_hit('C', $cc), 'HIT', 'C (a prefix of ' . length($long_prefix) . ' bytes) caches');
my $c_offset = length $t{C}->error_log;
$del = call('C', 'DELETE', "app/sessions/$sc->{session}");
is($del->{status}, 204, 'DELETE through C: 204');
unlike(substr($t{C}->error_log, $c_offset), qr/did not confirm/,
       'C confirmed its own eviction: the DELETE did not wait it out');
is(with_cookie('C', $cc)->{status}, 302, 'C refuses the revoked cookie');

# ------------------------------------------------------------ the admin goes away

my ($s3, $k3) = login('B');
is(until_hit('A', $k3), 'HIT', 'A caches session 3');
my $a_pid = $ta->{procs}{nginx};
kill 'STOP', -$a_pid;
my $b_offset = length $t{B}->error_log;
{
    my $s = connect_to('B');
    syswrite $s, "DELETE /api/app/sessions/$s3->{session} HTTP/1.1\r\n"
        . "Host: 127.0.0.1\r\nAccept: application/json\r\n"
        . "Authorization: Bearer $token\r\n\r\n";
    sleep 0.2;
    close $s;
}
# many at once, all gone before their answer
for (1 .. 20) {
    my $s = connect_to('B');
    syswrite $s, "DELETE /api/app/sessions/$s3->{session} HTTP/1.1\r\n"
        . "Host: 127.0.0.1\r\nAccept: application/json\r\n"
        . "Authorization: Bearer $token\r\n\r\n";
    close $s;
}
sleep 2;
kill 'CONT', -$a_pid;
is(with_cookie('B', $k3)->{status}, 302, 'B, its admin gone mid-wait, refuses the cookie');
is(with_cookie('A', $k3)->{status}, 302, 'A, woken, refuses it too');
unlike(substr($t{B}->error_log, $b_offset), qr/\[(alert|crit)\]/, 'B: no alert');

# ------------------------------------------------------------ D: its subscriber killed, D reloaded

# until the file "$file.stop" exists: a loaded machine slows the DELETE,
# not the count of requests after it
sub hammer {
    my ($name, $c, $file) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my $ok = open my $fh, '>', $file;
    my $end = time + 30;
    while ($ok && !-e "$file.stop" && time < $end) {
        my $start = time;
        my $res = eval { with_cookie($name, $c) };
        printf $fh "%.6f %d\n", $start, $res ? $res->{status} : 0;
    }
    close $fh if $ok;
    POSIX::_exit($ok ? 0 : 1);
}

# D hammered while something happens to it and B answers a DELETE: no
# request started after the 204 gets a 200, none gets a 5xx
sub revoke_during {
    my ($label, $what, $lost) = @_;
    my ($s, $c) = login('B');
    is(until_hit('D', $c), 'HIT', "$label: D caches the session");
    my $file = $t{D}->testdir . "/hammer-$label.log";
    my $pid = hammer('D', $c, $file);
    sleep 0.3;
    $what->();
    my $t_sent = time;
    my $res = call('B', 'DELETE', "app/sessions/$s->{session}");
    my $t_del = time;
    is($res->{status}, 204, "$label: DELETE through B: 204");
    sleep 1;
    $t{D}->write_file("hammer-$label.log.stop", '');
    is(waitpid($pid, 0), $pid, "$label: hammer finished");
    my @req = map { [split] } grep { /^\d+\.\d+ \d+$/ } split /\n/, $t{D}->read_file($file);
    my @after = grep { $_->[0] > $t_del } @req;
    note(sprintf '%s: %d requests, %d after the 204', $label, scalar @req, scalar @after);
    cmp_ok(scalar @after, '>', 3, "$label: requests after the 204");
    is(scalar(grep { $_->[1] == 200 } @after), 0, "$label: none of them admitted");
    # but the few a killed worker had in hand: their upstream (D itself) is gone
    cmp_ok(scalar(grep { $_->[1] !~ /^(200|302)$/ } @req), '<=', $lost // 0,
           "$label: only 200 and 302" . ($lost ? ", or $lost lost with the worker" : ''));
    is(with_cookie('D', $c)->{status}, 302, "$label: D refuses the revoked cookie");
}

sub owner_pid {
    my @pids = $t{D}->error_log =~ /\[debug\] (\d+)#\d+: [^\n]*holds the node's subscription/g;
    return $pids[-1];
}

my $owner = owner_pid();
ok($owner, "D: worker $owner holds the subscription");
revoke_during('subscriber killed', sub { kill 'KILL', $owner }, 1);
my $end = time + 10;
sleep 0.1 while time < $end && (owner_pid() // 0) == $owner;
isnt(owner_pid(), $owner, 'another worker of D took the subscription over');
my ($s8, $k8) = login('B');
is(until_hit('D', $k8), 'HIT', 'D uses its cache again');

revoke_during('reload', sub { ok($t{D}->reload_nginx, 'D reloads, its zone reused') });
my ($s9, $k9) = login('B');
is(until_hit('D', $k9), 'HIT', 'D uses its cache again after the reload');

# a lookup that Redis has not answered yet when D is told to reload: the
# worker finishes it (Redis answers in time) rather than exit with it
{
    my ($s10, $k10) = login('B');
    my $busy = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $rport,
        Proto => 'tcp', Timeout => 5) or die "connect to redis: $!";
    my $script = "local function us() local t = redis.call('TIME') "
        . "return t[1] * 1000000 + t[2] end "
        . "local s = us() repeat until us() - s > 1500000 return 1";
    print $busy "*3\r\n\$4\r\nEVAL\r\n\$" . length($script) . "\r\n$script\r\n\$1\r\n0\r\n";
    sleep 0.2;
    my $pending = Identity::Test::UA->new->start_request('GET', "$base{D}/x",
        headers => { Cookie => "identity_session=$k10" });
    sleep 0.2;
    ok($t{D}->reload_nginx, 'D reloads while Redis is busy for 1.5 s');
    my $res = $pending->finish;
    is($res->{status}, 200, 'the lookup in flight is answered, not failed with the old worker');
    close $busy;
}

# ------------------------------------------------------------ the end

{
    $t{D}->stop_all;
    my @bad = grep { /\[(alert|emerg|crit)\]/ && !/worker process $owner exited on signal 9/ }
        split /\n/, $t{D}->error_log;
    is(scalar @bad, 0, 'D: no alert but the killed worker') or diag(join "\n", @bad);
}

for (qw(B C)) {
    $t{$_}->stop_all;
    unlike($t{$_}->error_log, qr/\[(alert|emerg|crit)\]/, "$_: no alert in error.log");
}
$ta->done;
