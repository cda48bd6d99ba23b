#!/usr/bin/perl
# identity_redis sentinel=... with sentinels that answer wrongly or not at
# all: a sentinel that does not know the primary's name is left for the
# next one; one that names a primary by something other than an IP address
# (a name, a line break) is refused with one clear line and left too; and
# while no sentinel answers, requests are refused without one error line
# each (the outage is logged by its changes of state).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf);

# A fake sentinel: SENTINEL get-master-addr-by-name answered with REPLY
# (raw RESP), SUBSCRIBE confirmed, PING answered; one process, many clients.
my $fake = <<'PERL';
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
my ($port, $reply) = @ARGV;
$reply =~ s/\\r\\n/\r\n/g;
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
    Listen => 16, ReuseAddr => 1) or die "listen: $!";
my $sel = IO::Select->new($l);
my %buf;
while (1) {
    for my $s ($sel->can_read) {
        if ($s == $l) { my $c = $l->accept; $sel->add($c) if $c; next }
        my $n = sysread($s, my $chunk, 4096);
        if (!$n) { $sel->remove($s); delete $buf{$s}; close $s; next }
        $buf{$s} .= $chunk;
        while ($buf{$s} =~ /\A\*(\d+)\r\n/) {
            my ($n, $pos, @a) = ($1, length "*$1\r\n");
            for (1 .. $n) {
                last unless substr($buf{$s}, $pos) =~ /\A\$(\d+)\r\n/;
                my $len = $1;
                $pos += length("\$$len\r\n");
                last if length($buf{$s}) < $pos + $len + 2;
                push @a, substr($buf{$s}, $pos, $len);
                $pos += $len + 2;
            }
            last unless @a == $n;
            substr($buf{$s}, 0, $pos) = '';
            my $cmd = uc $a[0];
            my $out = $cmd eq 'SENTINEL' ? $reply
                : $cmd eq 'SUBSCRIBE' ? "*3\r\n\$9\r\nsubscribe\r\n\$" . length($a[1])
                                        . "\r\n$a[1]\r\n:1\r\n"
                : $cmd eq 'PING' ? "+PONG\r\n"
                : "-ERR unknown command\r\n";
            syswrite $s, $out;
        }
    }
}
PERL

sub start_fake {
    my ($t, $name, $reply) = @_;
    my $port = Identity::Test::free_port();
    my $script = $t->write_file("$name.pl", $fake);
    $t->_spawn($name, [$^X, $script, $port, $reply], $t->testdir . "/$name.log",
               $t->testdir . "/$name.log");
    my $end = time + 10;
    sleep 0.05 while time < $end && !IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $port, Proto => 'tcp');
    return $port;
}

sub nginx_with {
    my ($t, $primary, $issuer, @sentinels) = @_;
    my $conf = identity_conf(redis => $primary, issuer => $issuer);
    my $list = join ',', map { "127.0.0.1:$_" } @sentinels;
    $conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis sentinel=$list master=idm/ or die;
    $t->nginx_conf($conf);
    $t->start_nginx;
    return 'http://127.0.0.1:' . $t->port('nginx');
}

sub login_within {
    my ($base, $seconds) = @_;
    my $end = time + $seconds;
    my $r;
    while (time < $end) {
        my $ua = Identity::Test::UA->new;
        $r = eval { $ua->oidc_login("$base/in") };
        return $r->{status} if $r && $r->{status} == 200;
        sleep 0.2;
    }
    return $r ? $r->{status} : 0;
}

# ------------------------------------------------ a sentinel of another master

{
    my $t = Identity::Test->new(name => 'sentinel-unknown-name');
    my $primary = $t->start_redis;
    my $other = $t->start_sentinel('other', 'elsewhere', $primary);
    my $right = $t->start_sentinel('right', 'idm', $primary);
    my $issuer;
    my $base = 'http://127.0.0.1:' . $t->port('nginx');
    $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
    nginx_with($t, $primary, $issuer, $other, $right);

    is(login_within($base, 5), 200,
       'a sentinel that does not know "idm" is left for the next, which does');
    $t->log_like(qr/\[notice\][^\n]*names "127\.0\.0\.1" port $primary the primary of "idm"/,
                 'the next one named the primary');
    $t->stop_all;
    $t->check_log;
}

# ------------------------------------------------ a primary named by a name

for my $case (['a host name', 'localhost'], ['a line break', "127.0.0.1\\r\\n2026/01/01 00:00:00 [emerg] forged"]) {
    my ($what, $host) = @$case;
    my $t = Identity::Test->new(name => "sentinel-bad-host-" . length $host);
    my $primary = $t->start_redis;
    (my $len = $host) =~ s/\\r\\n/xx/g;
    my $bad = start_fake($t, 'fake', sprintf("*2\\r\\n\$%d\\r\\n%s\\r\\n\$%d\\r\\n%d\\r\\n",
                                             length $len, $host, length $primary, $primary));
    my $right = $t->start_sentinel('right', 'idm', $primary);
    my $base = 'http://127.0.0.1:' . $t->port('nginx');
    my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
    nginx_with($t, $primary, $issuer, $bad, $right);

    is(login_within($base, 5), 200, "a sentinel naming the primary by $what is left for the next");
    my $log = $t->error_log;
    like($log, qr/\[error\][^\n]*sentinel at "127\.0\.0\.1" names no primary \(an IP address and port\) for: idm/,
         'one clear line says why');
    unlike($log, qr/^2026\/01\/01/m, 'what it sent does not reach the log raw');
    unlike($log, qr/out of memory/, 'no misleading "out of memory"');
    $t->stop_all;
    $t->check_log;
}

# ------------------------------------------------ no sentinel answers

{
    my $t = Identity::Test->new(name => 'sentinel-none');
    my $primary = $t->start_redis;
    my $gone = Identity::Test::free_port();
    my $base = 'http://127.0.0.1:' . $t->port('nginx');
    my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
    nginx_with($t, $primary, $issuer, $gone);

    my @status = map { Identity::Test::UA->new->get("$base/in")->{status} } 1 .. 20;
    is(scalar(grep { $_ == 503 } @status), 20, 'every request refused while no sentinel answers');
    my @errors = grep { /\[error\]/ } split /\n/, $t->error_log;
    cmp_ok(scalar(grep { /session store unavailable/ } @errors), '<=', 1,
           'not one error line per request')
        or diag(join "\n", @errors[0 .. ($#errors > 5 ? 5 : $#errors)]);
    like(join("\n", @errors), qr/sentinel at "127\.0\.0\.1" connect failed/,
         'the sentinel\'s outage is logged');
    $t->stop_all;
    $t->check_log;
}

# ------------------------------------------------ values nginx -t refuses

{
    my $t = Identity::Test->new(name => 'redis-conf-values');
    my $long = 'a' x 300;
    for my $case (['unix:', qr/invalid unix socket path "unix:"/],
                  ["unix:/tmp/$long", qr/invalid unix socket path/],
                  ["127.0.0.1:1 tls server_name=$long", qr/invalid value "server_name=a+"/]) {
        my ($value, $why) = @$case;
        my $conf = identity_conf(redis => 1, issuer => 'http://127.0.0.1:1');
        $conf =~ s/identity_redis [^;]*;/identity_redis $value;/ or die;
        $t->nginx_conf($conf);
        my ($rc, $out) = $t->nginx_test_conf;
        isnt($rc, 0, 'nginx -t refuses identity_redis ' . substr($value, 0, 30));
        like($out, $why, 'and says why');
    }
}

# ------------------------------------------------ a sentinel that names a replica

{
    my $t = Identity::Test->new(name => 'sentinel-names-replica');
    my $primary = $t->start_redis;
    my $replica = $t->start_redis_server('replica', '--replicaof', '127.0.0.1', $primary);
    $t->redis_at($replica, 'CONFIG', 'SET', 'requirepass', 'secret');
    my $bad = start_fake($t, 'fake', sprintf("*2\\r\\n\$9\\r\\n127.0.0.1\\r\\n\$%d\\r\\n%d\\r\\n",
                                             length $replica, $replica));
    my $base = 'http://127.0.0.1:' . $t->port('nginx');
    my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
    my $conf = identity_conf(redis => $primary, issuer => $issuer);
    $conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis sentinel=127.0.0.1:$bad master=idm password=secret/ or die;
    $t->nginx_conf($conf);
    $t->start_nginx;

    my @status;
    for (1 .. 12) {
        push @status, Identity::Test::UA->new->get("$base/in")->{status};
        sleep 0.15;
    }
    is(scalar(grep { $_ == 503 } @status), 12, 'nothing is answered by the replica');
    my $log = $t->error_log;
    my @lines = grep { /identity: redis at/ && !/\[debug\]/ } split /\n/, $log;
    is(scalar(grep { /answers again/ } @lines), 0,
       'its AUTH is not taken for an answer of the primary')
        or diag(join "\n", @lines[0 .. ($#lines > 6 ? 6 : $#lines)]);
    is(scalar(grep { /is not the primary/ } @lines), 1, 'one line says it is not the primary');
    $t->stop_all;
    $t->check_log;
}

# ------------------------------------------------ a database it refuses

{
    my $t = Identity::Test->new(name => 'redis-select-refused');
    my $port = $t->start_redis(password => 'secret');
    my $base = 'http://127.0.0.1:' . $t->port('nginx');
    my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
    my $conf = identity_conf(redis => $port, issuer => $issuer);
    $conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis 127.0.0.1:$port password=secret db=99/ or die;
    $t->nginx_conf($conf);
    $t->start_nginx;

    my @status;
    for (1 .. 12) {
        push @status, Identity::Test::UA->new->get("$base/in")->{status};
        sleep 0.15;
    }
    is(scalar(grep { $_ == 503 } @status), 12, 'db=99: every request refused');
    my @lines = grep { /identity: redis at/ && !/\[(debug|info)\]/ } split /\n/, $t->error_log;
    is(scalar(grep { /answers again/ } @lines), 0, 'its accepted AUTH is not taken for an answer')
        or diag(join "\n", @lines[0 .. ($#lines > 6 ? 6 : $#lines)]);
    is(scalar(grep { /refused SELECT/ } @lines), 1, 'one line says it refused SELECT');
    $t->stop_all;
    $t->check_log;
}

# ------------------------------------------------ a stale sentinel

{
    my $t = Identity::Test->new(name => 'sentinel-stale');
    my $primary = $t->start_redis;
    my $dead = Identity::Test::free_port();
    my $stale = start_fake($t, 'fake', sprintf("*2\\r\\n\$9\\r\\n127.0.0.1\\r\\n\$%d\\r\\n%d\\r\\n",
                                               length $dead, $dead));
    my $right = $t->start_sentinel('right', 'idm', $primary);
    my $base = 'http://127.0.0.1:' . $t->port('nginx');
    my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
    nginx_with($t, $primary, $issuer, $stale, $right);

    is(login_within($base, 5), 200,
       'a sentinel naming a primary that does not answer is left for the next');
    $t->stop_all;
    $t->check_log;
}

# ------------------------------------------------ no sentinel answers

# a listener that counts the connections it gets and closes each at once:
# while no sentinel answers, the worker asks at its backoff's pace, not at
# each request
{
    my $t = Identity::Test->new(name => 'sentinel-none');
    my $primary = $t->start_redis;
    my $port = Identity::Test::free_port();
    my $count = $t->testdir . '/accepted';
    my $script = $t->write_file('closer.pl', <<'PERL');
use strict;
use warnings;
use IO::Socket::INET;
my ($port, $count) = @ARGV;
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
    Listen => 64, ReuseAddr => 1) or die "listen: $!";
while (my $c = $l->accept) {
    open my $fh, '>>', $count or die; print $fh "1\n"; close $fh;
    close $c;
}
PERL
    $t->_spawn('closer', [$^X, $script, $port, $count], $t->testdir . '/closer.log',
               $t->testdir . '/closer.log');
    my $end = time + 10;
    sleep 0.05 while time < $end && !IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $port, Proto => 'tcp');
    unlink $count;
    my $base = nginx_with($t, $primary, 'http://127.0.0.1:1', $port);
    my $t0 = time;
    # a session cookie: each request would look it up in Redis
    my $cookie = 'identity_session=' . Identity::Test::random_token(32);
    my @st = map { Identity::Test::UA->new->get("$base/x$_", headers => { Cookie => $cookie })->{status} }
             1 .. 100;
    my $took = time - $t0;
    is_deeply([grep { $_ != 503 } @st], [], 'no sentinel answers: 503, 100 times');
    my $n = () = ($t->read_file('accepted') // '') =~ /\n/g;
    cmp_ok($n, '<=', 5 + 15 * $took, sprintf('%d connections to the sentinel in %.2f s of 100 requests: '
                                              . 'at the backoff\'s pace, not one a request', $n, $took));
    $t->stop_all;
    $t->check_log;
}

done_testing();
