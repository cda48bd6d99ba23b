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

my @names = qw(A B C);
my %t = map { $_ => Identity::Test->new(name => "session-cache-attacks-$_") } @names;
my $ta = $t{A};

my $rport = $ta->start_redis;
my %base = map { $_ => 'http://127.0.0.1:' . $t{$_}->port('nginx') } @names;
my $issuer = $ta->start_idp(
    redirect_uris => [map { "$base{$_}/_identity/callback" } @names]);

my $token = 'admin-' . Identity::Test::random_token(24);
my $long_prefix = 'identity:' . ('p' x 70) . ':';

# A: one worker (it holds the subscription too), and /slow, whose access
# log is a pipe the test fills and drains; B: the revoker; C: a long prefix
my $fifo = $ta->testdir . '/slow.log';
POSIX::mkfifo($fifo, 0600) or die "mkfifo: $!";
sysopen(my $pipe, $fifo, O_RDONLY | O_NONBLOCK) or die "open $fifo: $!";
# one page: one 3000-byte line fits, a second one blocks its writer
fcntl($pipe, F_SETPIPE_SZ, 4096) or die "F_SETPIPE_SZ: $!";

sub conf {
    my ($name) = @_;
    return identity_conf(redis => $rport, issuer => $issuer, workers => 1, admin => 1,
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

for (qw(B C)) {
    $t{$_}->stop_all;
    unlike($t{$_}->error_log, qr/\[(alert|emerg|crit)\]/, "$_: no alert in error.log");
}
$ta->done;
