#!/usr/bin/perl
# Redis misbehaving.  A server (broken, hostile, or a man in the middle
# without TLS) that announces a huge reply: an array of 2e9 elements, a
# string of 2e9 bytes, nested ones, a line that never ends.  The worker
# does not allocate it: the connection is dropped as for a malformed
# reply, its requests get 503, one [error] line says what was refused, and
# once the server behaves again the sessions it kept admit.  Then, on a
# real Redis: the module's connection killed (CLIENT KILL) under load, and
# a Lua script failing on a key of the wrong type.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'redis-misbehaving');
my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
    users => [map { { id => $_, password => "$_-password", email => "$_\@example.test",
                      name => ucfirst $_, username => $_ } } qw(alice bob)]);

# A proxy to the real Redis, one process per connection.  While the file
# "mode" holds a reply (hex: HEAD UNIT COUNT TAIL), a command is answered
# with HEAD, then UNIT COUNT times, then TAIL, and nothing more is said on
# that connection; the mode is read at each command.
my $fake = <<'PERL';
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
my ($port, $rport, $modefile) = @ARGV;
$SIG{PIPE} = 'IGNORE';
$SIG{CHLD} = 'IGNORE';
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
    Listen => 64, ReuseAddr => 1) or die "listen: $!";
sub mode { open my $fh, '<', $modefile or return; local $/; my $m = <$fh>;
           return defined $m && $m =~ /\S/ ? $m : undef }
sub put { my ($s, $data) = @_; my $off = 0;
          while ($off < length $data) {
              my $n = syswrite($s, $data, length($data) - $off, $off);
              return 0 unless $n; $off += $n }
          return 1 }
sub misbehave {
    my ($c, $mode) = @_;
    my ($head, $unit, $count, $tail) = split ' ', $mode;
    ($head, $unit, $tail) = map { $_ eq '-' ? '' : pack 'H*', $_ } $head, $unit, $tail;
    put($c, $head) or exit 0;
    my $per = length $unit ? int(65536 / length $unit) : 0;
    while ($per && $count > 0) {
        put($c, $unit x ($count < $per ? $count : $per)) or exit 0;
        $count -= $per;
    }
    put($c, $tail) if length $tail;
    1 while sysread($c, my $buf, 65536);
    exit 0;
}
while (1) {
    my $c = $l->accept or next;
    my $pid = fork;
    next if !defined $pid || $pid;
    close $l;
    my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $rport,
        Proto => 'tcp') or exit 0;
    my $sel = IO::Select->new($c, $r);
    while (1) {
        for my $s ($sel->can_read) {
            my $n = sysread($s, my $buf, 65536);
            exit 0 unless $n;
            if ($s == $c) {
                my $mode = mode();
                misbehave($c, $mode) if $mode;
                put($r, $buf) or exit 0;
            } else {
                put($c, $buf) or exit 0;
            }
        }
    }
}
PERL

my $fport = Identity::Test::free_port();
my $modefile = $t->testdir . '/mode';
$t->write_file('mode', '');
$t->_spawn('fake', [$^X, $t->write_file('fake.pl', $fake), $fport, $rport, $modefile],
           $t->testdir . '/fake.log', $t->testdir . '/fake.log');
{
    my $end = time + 10;
    sleep 0.05 while time < $end && !IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $fport, Proto => 'tcp');
}

sub conf_for {
    my ($port) = @_;
    my $conf = identity_conf(redis => $port, issuer => $issuer,
                             server => 'add_header X-Worker $pid always;');
    # many requests: the log at info, which is what is judged
    $conf =~ s/error\.log debug;/error.log info;/ or die "no error_log\n";
    return $conf;
}

$t->nginx_conf(conf_for($fport));
$t->start_nginx;

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/in");
is($r->{status}, 200, 'logged in through the proxy');
my $cookie = $ua->cookie('identity_session', '127.0.0.1');
my $key = Identity::Test::session_key($cookie);
is($t->redis('EXISTS', $key), 1, 'the session is in Redis');
my $id = upstream_saw($r->{body})->{id};
ok($id, "the upstream saw the identity ($id)");

sub get {
    my ($path) = @_;
    my $res = eval { Identity::Test::UA->new(timeout => 10)->get("$base$path",
        headers => { Cookie => "identity_session=$cookie" }) };
    return $res || { status => 0, h => {}, body => '' };
}

sub status_of {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return {};
    my %v = map { /^(Vm\w+):\s+(\d+) kB/ ? ($1 => $2) : () } <$fh>;
    return \%v;
}

# admitted again within SECONDS: the first response that is a 200
sub admitted_within {
    my ($path, $seconds) = @_;
    my $end = time + $seconds;
    my $res;
    while (time < $end) {
        $res = get($path);
        return $res if $res->{status} == 200;
        sleep 0.05;
    }
    return $res;
}

my $worker = get('/warm')->{h}{'x-worker'};
ok($worker, "the worker ($worker)");
get("/warm$_") for 1 .. 20;
my $before = status_of($worker);
ok($before->{VmRSS}, "its RSS before: $before->{VmRSS} kB, peak $before->{VmHWM} kB, "
   . "address space $before->{VmPeak} kB");

# ------------------------------------------------------------ huge replies

my @cases = (
    ['an array of 2e9 elements', "*2000000000\r\n", '', 0, '',
     qr/out of bounds: 2000000000 array elements \(at most 1048576\)/],
    ['a string of 2e9 bytes, then 128 MB of it', "\$2000000000\r\n", 'a' x 1024, 131072, '',
     qr/out of bounds: a string of 2000000000 bytes \(at most 67108864\)/],
    ['an array of 2e9 elements in an array', "*1\r\n*2000000000\r\n", '', 0, '',
     qr/out of bounds: 2000000001 array elements \(at most 1048576\)/],
    ['a string of 2e9 bytes in an array', "*2\r\n:1\r\n\$2000000000\r\n", '', 0, '',
     qr/out of bounds: a string of 2000000000 bytes \(at most 67108864\)/],
    ['arrays of 300,000 then 800,000 elements in an array',
     "*2\r\n*300000\r\n", ":1\r\n", 300000, "*800000\r\n",
     qr/out of bounds: 1100002 array elements \(at most 1048576\)/],
    ['a line of 80 MB that never ends', '+', 'a' x 1024, 81920, '',
     qr/out of bounds: a line of \d+ bytes \(at most 65536\)/],
    ['an array length that never ends', '*', '1' x 1024, 81920, '',
     qr/out of bounds: a line of \d+ bytes \(at most 65536\)/],
    ['a type byte that is not RESP', "!oops\r\n", '', 0, '',
     qr/sent a malformed reply \(Protocol error, got "!" as reply type byte\)/],
    # last: the reader holds a string it copies out, twice what a reply may
    ['strings of 40 MB and 40 MB in an array', "*2\r\n\$40000000\r\n", 'a' x 1000, 40000,
     "\r\n\$40000000\r\n",
     qr/out of bounds: a string of 40000000 bytes \(at most 67108864\)/],
);

# under AddressSanitizer (make test-asan) what is freed is not given back
my $asan = $ENV{IDENTITY_ASAN_PRELOAD};
my $n = 0;
for my $case (@cases) {
    my ($name, $head, $unit, $count, $tail, $expect) = @$case;
    $n++;
    my $mark = length $t->error_log;
    my ($h, $u, $tl) = map { length $_ ? unpack('H*', $_) : '-' } $head, $unit, $tail;
    $t->write_file('mode', "$h $u $count $tl");
    my @st = map { get("/bad$n-$_")->{status} } 1 .. 5;
    is_deeply(\@st, [(503) x 5], "$name: 503, 5 times");

    my $now = status_of($worker);
    my $grew = ($now->{VmHWM} // 0) - $before->{VmHWM};
    my $mapped = ($now->{VmPeak} // 0) - $before->{VmPeak};
    my $bound = $name =~ /^strings of 40 MB/ ? 160 * 1024 : 64 * 1024;
    SKIP: {
        skip "$name: RSS under AddressSanitizer (its quarantine keeps what is freed)", 1
            if $asan;
        cmp_ok($grew, '<', $bound, "$name: the worker's peak RSS grew by $grew kB");
    }
    cmp_ok($mapped, '<', 1024 * 1024, "$name: its peak address space grew by $mapped kB");

    my $log = substr($t->error_log, $mark);
    my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
    is(scalar @errors, 1, "$name: one error line") or diag(join "\n", @errors[0 .. ($#errors < 5 ? $#errors : 5)]);
    like($errors[0] // '', qr/\[error\][^\n]*redis at "127\.0\.0\.1" lost the connection: [^\n]*$expect/,
         "$name: it says what was refused");
    unlike($log, qr/\[alert\]/, "$name: no alert");

    $t->write_file('mode', '');
    my $ok = admitted_within("/good$n", 5);
    is($ok->{status}, 200, "$name: the server behaves again: admitted");
    is(upstream_saw($ok->{body})->{id}, $id, "$name: as the same identity");
    like(substr($t->error_log, $mark), qr/\[notice\][^\n]*answers again after/,
         "$name: one line says Redis answers again");
}

my $after = status_of($worker);
is(get('/same')->{h}{'x-worker'}, $worker, 'the same worker answers: it never died');
SKIP: {
    skip 'RSS under AddressSanitizer', 1 if $asan;
    cmp_ok($after->{VmRSS} - $before->{VmRSS}, '<', 64 * 1024,
           "its RSS now: $after->{VmRSS} kB");
}
is($t->redis('EXISTS', $key), 1, 'the session is still in Redis');

# ------------------------------------------------------------ CLIENT KILL

# nginx straight to the real Redis
$t->nginx_conf(conf_for($rport));
ok($t->reload_nginx, 'reloaded: nginx talks to Redis itself');
$t->stop_proc('fake');
admitted_within('/direct', 5);
$worker = admitted_within('/direct', 5)->{h}{'x-worker'};

# the module's connection: a normal client that is not this one
sub module_conn {
    my $list = $t->redis('CLIENT', 'LIST', 'TYPE', 'normal') // '';
    my @addr = map { /\baddr=(\S+)/ ? $1 : () } grep { !/\bcmd=client/ } split /\n/, $list;
    return @addr;
}

my $stop = $t->testdir . '/stop';
my (%pids, @files);
for my $c (1 .. 3) {
    my $file = $t->testdir . "/load-$c.log";
    push @files, $file;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $ok = open my $fh, '>', $file;
        while ($ok && !-e $stop) {
            my $start = time;
            my $res = get('/load');
            my $who = $res->{status} == 200 ? upstream_saw($res->{body})->{id} || '-' : '-';
            printf $fh "%.6f %.6f %d %s\n", $start, time, $res->{status}, $who;
            $fh->flush;
        }
        close $fh if $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    $pids{$pid} = 1;
}

sleep 1;
my $mark = length $t->error_log;
my @kills;
for (1 .. 3) {
    my @addr = module_conn();
    is(scalar @addr, 1, "one connection of the worker (@addr)");
    push @kills, time;
    is($t->redis('CLIENT', 'KILL', 'ADDR', $addr[0]), 1, "CLIENT KILL ADDR $addr[0]") if @addr;
    sleep 1.5;
}
$t->write_file('stop', '');
for my $pid (keys %pids) {
    is(waitpid($pid, 0), $pid, 'a load child finished');
    is($?, 0, 'and exited 0');
}

my @req = map { [split] } grep { /^\d+\.\d+ \d+\.\d+ \d+ \S+$/ }
          map { split /\n/, $t->read_file($_) } @files;
cmp_ok(scalar @req, '>', 100, scalar(@req) . ' requests under load');
is(scalar(grep { $_->[2] !~ /^(200|503)$/ } @req), 0, 'each answered 200 or 503');
is(scalar(grep { $_->[2] == 200 && $_->[3] ne $id } @req), 0,
   'each 200 after the session was checked: the upstream saw its identity');
my $refused = grep { $_->[2] == 503 } @req;
for my $k (@kills) {
    my ($first) = grep { $_->[0] > $k && $_->[2] == 200 } sort { $a->[0] <=> $b->[0] } @req;
    ok($first, 'admitted again after a kill') or next;
    cmp_ok($first->[1] - $k, '<', 1, sprintf 'the first 200 %.3f s after the kill', $first->[1] - $k);
}
my $log = substr($t->error_log, $mark);
my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
is(scalar @errors, scalar @kills, scalar(@kills) . " kills, $refused refused: one error line each")
    or diag(join "\n", @errors[0 .. ($#errors < 5 ? $#errors : 5)]);
is(scalar(() = $log =~ /\[error\][^\n]*redis at "127\.0\.0\.1" lost the connection/g), scalar @kills,
   'each: the connection was lost');
is(scalar(() = $log =~ /\[notice\][^\n]*redis at "127\.0\.0\.1" answers again/g), scalar @kills,
   'each: Redis answers again');
is($t->redis('EXISTS', $key), 1, 'no session lost');
is(get('/after-kills')->{status}, 200, 'and it admits');

# ------------------------------------------------------------ a script error

# bob's identity key of the wrong type: the login's script fails on it
my $bob = Identity::Test::UA->new;
is($bob->oidc_login("$base/bob", user => 'bob')->{status}, 200, 'bob logs in');
my $subkey = 'identity:sub:test:bob';
is($t->redis('TYPE', $subkey), 'string', "bob's identity by subject: $subkey");
$t->redis('DEL', $subkey);
$t->redis('HSET', $subkey, 'not', 'a string');

$mark = length $t->error_log;
my @st = map { Identity::Test::UA->new->oidc_login("$base/bob$_", user => 'bob')->{status} } 1 .. 3;
is_deeply(\@st, [503, 503, 503], "bob's logins: the script fails, 503");
is(get('/others')->{status}, 200, 'meanwhile another session is admitted');
is(get('/others')->{h}{'x-worker'}, $worker, 'by the same worker');
$log = substr($t->error_log, $mark);
@errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
is(scalar @errors, 1, '3 script errors, one error line') or diag(join "\n", @errors);
like($errors[0] // '', qr/\[error\][^\n]*identity: redis error: "[^"\n]*WRONGTYPE/, 'which says WRONGTYPE');
is(scalar(() = $log =~ /\[info\][^\n]*identity: redis error: "[^"\n]*WRONGTYPE/g), 2, 'the others at info');
unlike($log, qr/refusing what needs it/, 'the connection stays up');

$t->redis('DEL', $subkey);
is(Identity::Test::UA->new->oidc_login("$base/bob-again", user => 'bob')->{status}, 200,
   'the key gone: bob logs in');

$t->done;
