#!/usr/bin/perl
# Review of issue 17's audit file and app/events paging, as an attacker
# and an nginx reader see them (review17b).
#
# 1. A write of the audit file that stops in the middle of a line (a full
#    disk: write() takes what fits, then ENOSPC) left that part of a line
#    without its end: once the disk had room again, the next task's first
#    line was glued to it, and a reader of JSON lines lost a good event
#    (or read a forged one).  The part is now ended by a "\n" before the
#    next lines: a line of its own, which is not JSON, and the next event
#    is whole.  The disk here is a tmpfs of 64 KiB (root only: else the
#    part is skipped; the others run).
# 2. (sound) Many events into a regular file, then USR1 after a rename:
#    the worker holds one descriptor of the file, the one nginx opened
#    (each task's dup() is closed), and the lines after the reopen go to
#    the new file, whole.
# 3. At a worker's exit the lines that wait are written on the loop, with
#    one write(): into a FIFO that is slow to read, a signal (SIGALRM of
#    timer_resolution, a USR1 of logrotate) ends it early, with EINTR or
#    a part written, and every line waiting was counted lost, the rest not
#    written and a part of a line left.  It now writes on after EINTR and
#    after a part, as the thread does.
# 4. (sound) A FIFO whose reader has gone: write() fails with EPIPE (nginx
#    ignores SIGPIPE, in the pool's threads too), the lines are counted
#    lost, and the worker goes on.
# 5. (sound) Two workers and a reload (HUP) amid a burst of events into a
#    regular file: every event of the stream is one whole line of the
#    file, once; the old workers' tasks in flight end on their own cycle's
#    file.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Fcntl qw(O_RDONLY O_NONBLOCK);
use POSIX qw(mkfifo);
use Time::HiRes ();
use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'review17b');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
                           users => [{ id => 'alice', password => 'pw' }]);

# part 1 needs a small disk of its own: a tmpfs, which needs root and the
# right to mount (a container may not have it); the other parts run anyway
my $small = $t->testdir . '/small';
mkdir $small or die "mkdir: $!";
my $mounted = $> == 0
    && system('mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', $small) == 0;
sub unmount { system('umount', '-l', $small) if $mounted; $mounted = 0 }
END { unmount() }

sub forge {
    my ($n) = @_;
    for (1 .. $n) {
        Identity::Test::UA->new->get("$base/_identity/callback?code=c&state="
                                     . Identity::Test::random_token());
    }
}

sub wait_log {
    my ($re) = @_;
    for (1 .. 100) {
        return 1 if $t->error_log =~ $re;
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

SKIP: {
skip 'part 1 mounts a tmpfs: root and the right to mount needed', 5 unless $mounted;

# all the tmpfs but its last page
open my $fh, '>', "$small/filler" or die "filler: $!";
print $fh 'x' x (15 * 4096);
close $fh or die "filler: $!";

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => "identity_audit_log $small/audit.log json;"));
$t->start_nginx;

sub file { open my $f, '<', "$small/audit.log" or return ''; local $/; <$f> }

# about 400 bytes a line: the page is full within a few, mid-line
forge(30);
ok(wait_log(qr/audit log ".*audit\.log" not written.*No space left/),
   'the full disk was said');
my $before = file();
ok(length $before > 0 && $before !~ /\n\z/,
   'the file ends with a part of a line (' . length($before) . ' bytes)');

# room again: the next events' lines
unlink "$small/filler" or die "unlink: $!";
forge(3);
my $ids = $t->redis('XREVRANGE', 'identity:audit:failures', '+', '-',
                    'COUNT', 3);
my @want = map { decode_json({ @{$_->[1]} }->{doc})->{event}{id} } @$ids;
is(scalar @want, 3, 'three more events in the stream');

my %line;
for (1 .. 100) {
    %line = ();
    for (split /\n/, file()) {
        my $doc = eval { decode_json($_) } or next;
        $line{$doc->{event}{id} // ''} = 1;
    }
    last if !grep { !$line{$_} } @want;
    Time::HiRes::sleep(0.05);
}
is_deeply([grep { $line{$_} } @want], \@want,
          'each of them is a line of its own, whole JSON');
is(substr(file(), length $before, 1), "\n", 'the part is ended by a newline');

$t->stop_nginx;
unmount();
}

# ------------------------------------------------------------ descriptors

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => 'identity_audit_log %%TESTDIR%%/audit.log json;'));
$t->start_nginx;

my $log = $t->testdir . '/audit.log';

sub lines_of {
    my ($path, $n) = @_;
    my @l;
    for (1 .. 200) {
        open my $f, '<', $path or next;
        @l = <$f>;
        last if @l >= $n;
        Time::HiRes::sleep(0.05);
    }
    return @l;
}

sub worker_fds {
    my ($path) = @_;
    my $master = $t->{procs}{nginx};
    my @pids = map { /(\d+)/ ? $1 : () }
               split ' ', Identity::Test::_slurp("/proc/$master/task/$master/children");
    my $n = 0;
    for my $pid (@pids) {
        for (glob "/proc/$pid/fd/*") {
            my $to = readlink $_ // '';
            $n++ if $to eq $path;
        }
    }
    return (scalar @pids, $n);
}

# a task in flight holds a dup() of its own a moment: wait for it to end
sub settled_fds {
    my ($path, $want) = @_;
    my @got;
    for (1 .. 100) {
        @got = worker_fds($path);
        last if $got[1] == $want;
        Time::HiRes::sleep(0.05);
    }
    return @got;
}

forge(200);
is(scalar(() = lines_of($log, 200)), 200, '200 events, 200 lines');
is_deeply([settled_fds($log, 1)], [1, 1], 'the worker holds one descriptor of the file');

rename $log, "$log.1" or die "rename: $!";
kill 'USR1', $t->{procs}{nginx};
for (1 .. 100) { last if -e $log; Time::HiRes::sleep(0.05) }
forge(5);
my @new = lines_of($log, 5);
is(scalar(grep { eval { decode_json($_) } } @new), 5,
   'after USR1 the lines go to the new file, whole');
is_deeply([settled_fds($log, 1)], [1, 1], 'and the worker holds one descriptor of it');
is_deeply([(settled_fds("$log.1", 0))[1]], [0], 'and none of the old');

$t->stop_nginx;

# ------------------------------------------------------------ exit, signals

my $fifo = $t->testdir . '/audit.fifo';
mkfifo($fifo, 0600) or die "mkfifo: $!";
sysopen(my $reader, $fifo, O_RDONLY | O_NONBLOCK) or die "open fifo: $!";
fcntl($reader, 1031, 4096);    # F_SETPIPE_SZ

(my $conf = identity_conf(redis => $rport, issuer => $issuer,
    http => "identity_audit_log $fifo json;"))
    =~ s/^daemon off;$/daemon off;\ntimer_resolution 10ms;/m;
$t->nginx_conf($conf);
$t->start_nginx;

$t->redis('DEL', 'identity:audit:failures');
forge(100);

# the worker exits with a task in flight and lines waiting; the reader
# reads slowly meanwhile
my $master = $t->{procs}{nginx};
kill 'QUIT', $master;

my $got = '';
my ($end, $quiet) = (time + 30, time + 2);
while (time < $end && time < $quiet) {
    my $n = sysread($reader, $got, 1024, length $got);
    $quiet = time + 2 if $n;
    Time::HiRes::sleep(0.02);
}
$t->stop_nginx;
close $reader;

my @lines = split /\n/, $got, -1;
is(pop @lines, '', 'the FIFO ends with a whole line');
is(scalar(grep { eval { decode_json($_) } } @lines), scalar @lines,
   'each line is one JSON document');
my $lost = 0;
$lost += $_ for $t->error_log =~ /audit log ".*audit\.fifo": lines lost: (\d+)/g;
is($lost + @lines, 100, "each event written or counted lost ($lost lost)");
unlike($t->error_log, qr/audit log ".*audit\.fifo" not written/,
       'no write failed');

# ------------------------------------------------------------ no reader

sysopen($reader, $fifo, O_RDONLY | O_NONBLOCK) or die "open fifo: $!";
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => "identity_audit_log $fifo json;"));
$t->start_nginx;
close $reader;

forge(5);
ok(wait_log(qr/audit log ".*audit\.fifo" not written \(32: Broken pipe\)/),
   'EPIPE is said');
is(Identity::Test::UA->new->get("$base/_identity/callback?code=c&state=x")
   ->{status}, 400, 'the worker still answers');
is_deeply([settled_fds($fifo, 1)], [1, 1], 'one worker, one descriptor');
$t->stop_nginx;
like($t->error_log, qr/audit\.fifo": lines lost: \d+/, 'the lines lost counted');
unlike($t->error_log, qr/exited on signal/, 'no worker died');

# ------------------------------------------------------------ reload

$t->redis('DEL', 'identity:audit:failures');
unlink $log;
my $offset = length $t->error_log;
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, workers => 2,
    http => 'identity_audit_log %%TESTDIR%%/audit.log json;'));
$t->start_nginx;

my @pending = map {
    Identity::Test::UA->new->start_request('GET',
        "$base/_identity/callback?code=c&state=" . Identity::Test::random_token())
} 1 .. 100;
ok($t->reload_nginx, 'a reload amid the burst');
push @pending, map {
    Identity::Test::UA->new->start_request('GET',
        "$base/_identity/callback?code=c&state=" . Identity::Test::random_token())
} 1 .. 100;
is(scalar(grep { ($_->finish->{status} // 0) == 400 } @pending), 200,
   '200 forged callbacks: 400 each');

my @ids;
for (1 .. 100) {
    @ids = map { decode_json({ @{$_->[1]} }->{doc})->{event}{id} }
           @{$t->redis('XRANGE', 'identity:audit:failures', '-', '+') || []};
    last if @ids >= 200;
    Time::HiRes::sleep(0.05);
}
my @file = lines_of($log, scalar @ids);
my @docs = grep { defined } map { eval { decode_json($_) } } @file;
is(scalar @docs, scalar @file, 'each line is one JSON document');
is_deeply([sort map { $_->{event}{id} } @docs], [sort @ids],
          'each event of the stream once (' . @ids . ')');
$t->stop_nginx;
unlike(substr($t->error_log, $offset), qr/lines lost|exited on signal/,
       'nothing lost, no worker died');

done_testing;
