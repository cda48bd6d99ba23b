#!/usr/bin/perl
# Redis killed and restarted under load, for several outage lengths, and
# paused: while it is away every protected request is refused (503, never
# a 200 without a check); once it answers again every worker admits
# within a second, the admin API too; the sessions Redis kept are still
# valid; and the outage is logged by its changes of state, not once per
# refused request.

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

my $t = Identity::Test->new(name => 'redis-recovery');

# kept on disk at every write, as an operator who needs sessions to survive
# a restart configures it
my $rport = $t->start_redis(args => ['--appendonly', 'yes', '--appendfsync', 'always']);
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

# two workers, each connection to either (reuseport), each response says
# which worker answered it
my $conf = identity_conf(redis => $rport, issuer => $issuer, workers => 2, admin => 1,
                         server => 'add_header X-Worker $pid always;');
$conf =~ s/listen (127\.0\.0\.1:%%PORT_nginx%%);/listen $1 reuseport;/ or die "no listen\n";
# tens of thousands of requests: the log at notice, which is what is judged
$conf =~ s/error\.log debug;/error.log notice;/ or die "no error_log\n";
$t->nginx_conf($conf);
$t->start_nginx;

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/in");
is($r->{status}, 200, 'logged in');
my $cookie = $ua->cookie('identity_session', '127.0.0.1');
my $key = Identity::Test::session_key($cookie);
is($t->redis('EXISTS', $key), 1, 'the session is in Redis');

sub worker_of { $_[0]{h}{'x-worker'} // 0 }

# ------------------------------------------------------------ load

# Children ask as fast as they can, a new connection each time, until the
# stop file appears: three with the session cookie, one at the admin API.
# Each writes "start end status worker kind" per request.

my $stop = $t->testdir . '/stop';

sub hammer {
    my ($n, $kind) = @_;
    my $file = $t->testdir . "/load-$n.log";
    my $pid = fork // die "fork: $!";
    return ($pid, $file) if $pid;
    my $ok = open my $fh, '>', $file;
    my $c = Identity::Test::UA->new(timeout => 5, headers => $kind eq 'api'
        ? { Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
            Authorization => "Bearer $token" }
        : { Cookie => "identity_session=$cookie" });
    while ($ok && !-e $stop) {
        my $start = time;
        my $res = eval { $c->get($kind eq 'api' ? "$base/api/app/sessions?limit=1" : "$base/load") };
        printf $fh "%.6f %.6f %d %d %s\n", $start, time, $res ? $res->{status} : 0,
            $res ? worker_of($res) : 0, $kind;
        $fh->flush;
    }
    close $fh if $ok;
    POSIX::_exit($ok ? 0 : 1);
}

my (%pids, @files);
for my $n (1 .. 4) {
    my ($pid, $file) = hammer($n, $n == 4 ? 'api' : 'site');
    $pids{$pid} = 1;
    push @files, $file;
}

sub wait_answers {
    my $end = time + 10;
    while (time < $end) {
        my $pong = eval { $t->redis('PING') };
        return time if defined $pong && $pong eq 'PONG';
        sleep 0.01;
    }
    die "redis did not come back\n";
}

sleep 1;
my @outages;
for my $len (0.5, 2, 7) {
    my %o = (name => "killed for ${len}s", len => $len);
    $o{mark} = length $t->error_log;
    $o{kill} = time;
    $t->kill_redis;
    $o{down} = time;
    sleep $len;
    $o{restart} = time;
    $t->start_redis;
    $o{up} = wait_answers();
    sleep 2;
    $o{log} = substr($t->error_log, $o{mark});
    push @outages, \%o;
}
{
    my %o = (name => 'paused for 3.5s', len => 3.5, paused => 1);
    $o{mark} = length $t->error_log;
    $o{kill} = time;
    $t->pause_redis(0);
    $o{down} = time;
    sleep 3.5;
    $o{restart} = time;
    $t->pause_redis(1);
    $o{up} = wait_answers();
    sleep 2;
    $o{log} = substr($t->error_log, $o{mark});
    push @outages, \%o;
}

$t->write_file('stop', '');
for my $pid (keys %pids) {
    is(waitpid($pid, 0), $pid, 'a load child finished');
    is($?, 0, 'and exited 0');
}

my @req = map { [split] } grep { /^\d+\.\d+ \d+\.\d+ \d+ \d+ \w+$/ }
          map { split /\n/, $t->read_file($_ =~ s{.*/}{}r) } @files;
cmp_ok(scalar @req, '>', 1000, scalar(@req) . ' requests in all');
my %workers = map { $_->[3] => 1 } grep { $_->[3] } @req;
is(scalar keys %workers, 2, 'both workers answered');
is(scalar(grep { $_->[2] !~ /^(200|503)$/ } @req), 0, 'every answer 200 or 503')
    or diag(join ' ', map { $_->[2] } grep { $_->[2] !~ /^(200|503)$/ } @req);

$outages[$_]{end} = $outages[$_ + 1]{kill} for 0 .. $#outages - 1;
$outages[-1]{end} = 9e9;

for my $o (@outages) {
    my $name = $o->{name};

    # a request answered while Redis was away (a paused Redis holds them:
    # they end with the command timeout, 2 s here)
    my @during = grep { $_->[1] > $o->{down} + 0.05 && $_->[1] < $o->{restart} } @req;
    cmp_ok(scalar(grep { $_->[2] == 503 } @during), '>', $o->{paused} ? 1 : 5,
           "$name: refused while Redis was away (" . scalar(@during) . ')');
    is(scalar(grep { $_->[2] == 200 } @during), 0, "$name: not one 200 while Redis was away");

    # every worker and the admin API admit again within a second
    for my $w (sort keys %workers) {
        for my $kind ('site', 'api') {
            my @after = grep { $_->[3] == $w && $_->[4] eq $kind && $_->[0] >= $o->{up}
                               && $_->[1] < $o->{end} } @req;
            my ($first) = grep { $_->[2] == 200 } @after;
            ok($first, "$name: worker $w admits again ($kind)") or next;
            my $took = $first->[1] - $o->{up};
            cmp_ok($took, '<', 1, sprintf('%s: worker %s, %s: the first 200 %.3f s after Redis answered',
                                          $name, $w, $kind, $took));
            my @late = grep { $_->[2] != 200 && $_->[0] > $o->{up} + 1 } @after;
            is(scalar @late, 0, "$name: worker $w, $kind: no refusal from a second after")
                or diag(join "\n", map { sprintf '%.3f %.3f %d', $_->[0] - $o->{up}, $_->[1] - $o->{up}, $_->[2] } @late[0 .. ($#late < 4 ? $#late : 4)]);
        }
    }

    # its log: the changes of state, not one line per refused request
    my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $o->{log};
    my $refused = grep { $_->[2] == 503 } @during;
    cmp_ok(scalar @errors, '<=', 8, "$name: $refused refusals, " . scalar(@errors) . ' error lines')
        or diag(join "\n", @errors[0 .. ($#errors < 9 ? $#errors : 9)]);
    like($o->{log}, qr/\[notice\][^\n]*redis at "127\.0\.0\.1" answers again after \d+ ms; \d+ requests were refused/,
         "$name: one line says Redis is back");
    unlike($o->{log}, qr/\[alert\]/, "$name: no alert");
}

like($outages[2]{log}, qr/\[error\][^\n]*still down after \d+ ms: \d+ requests refused in the last \d+ ms/,
     'a 7 s outage: the refusals are counted every 5 s of it');

# what Redis kept is still valid
is($t->redis('EXISTS', $key), 1, 'the session survived the restarts');
$r = Identity::Test::UA->new->get("$base/after", headers => { Cookie => "identity_session=$cookie" });
is($r->{status}, 200, 'and admits');

$t->done;
