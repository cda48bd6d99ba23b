#!/usr/bin/perl
# Benchmark of the authenticated request path: one nginx with (a) a plain
# reverse proxy and (b) the same proxy behind `identity test;`, both in front
# of the same tiny upstream; wrk alternates between them.  Run through
# bench/run.sh (make bench).  See bench/README.md.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use File::Copy qw(copy);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Identity::Test;

my $ROOT = $Identity::Test::ROOT;

# knobs (environment)
my $WORKERS = $ENV{BENCH_WORKERS} // 1;        # nginx worker_processes
my $ROUNDS = $ENV{BENCH_ROUNDS} // 7;          # a,b pairs measured
my $DURATION = $ENV{BENCH_DURATION} // 7;      # seconds per wrk run
my $WARMUP = $ENV{BENCH_WARMUP} // 3;          # seconds, per server, not measured
my $CONNS = $ENV{BENCH_CONNECTIONS} // 50;     # wrk -c
my $SERIAL = $ENV{BENCH_SERIAL} // 3;          # seconds per server with -c1 (0: skip)
my $THREADS = $ENV{BENCH_THREADS} // 1;        # wrk -t
my $QUIET_WAIT = $ENV{BENCH_QUIET_WAIT} // 40; # seconds in all to wait for a quiet machine
my $WRK = $ENV{WRK} // '/usr/bin/wrk';
my $GEO = $ENV{BENCH_GEO} // '';               # 1: a generated geo database; or a .mmdb path
my $OUTDIR = $ENV{BENCH_OUT} // "$ROOT/bench/out";
my $PIDFILE = "$OUTDIR/run.pids";

Test::More->builder->no_ending(1);    # the harness uses Test::More; no tests here

make_path($OUTDIR);
open my $LOG, '>', "$OUTDIR/latest.txt" or die "$OUTDIR/latest.txt: $!";
$LOG->autoflush(1);
STDOUT->autoflush(1);
$SIG{__DIE__} = sub { print $LOG "bench failed: $_[0]" if defined $^S && !$^S };

sub out { my $s = join '', @_; $s .= "\n" unless $s =~ /\n\z/; print $s; print $LOG $s }

# ------------------------------------------------------------ stop by pid

my $wrk_pid;
my $t;

sub record_pids {
    # run.sh's EXIT trap stops these if this process dies without cleaning up
    open my $fh, '>', $PIDFILE or return;
    print $fh "$_\n" for grep { $_ } values(%{$t->{procs}}), $wrk_pid;
    close $fh;
}

sub stop_wrk {
    my $pid = $wrk_pid or return;
    undef $wrk_pid;
    kill 'TERM', $pid;
    for (1 .. 60) { return if waitpid($pid, WNOHANG) != 0; sleep 0.05 }
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

$SIG{$_} = sub { out("interrupted"); exit 1 } for qw(INT TERM HUP);
$SIG{PIPE} = 'IGNORE';
END {
    my $rc = $?;
    stop_wrk();
    if ($t) { $t->stop_all }      # nginx (QUIT), IdP, redis: by pid
    unlink $PIDFILE;
    $? = $rc;
}

# ------------------------------------------------------------ helpers

sub cpu_ticks {    # utime + stime of a pid, in clock ticks
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    $stat =~ s/^.*\)\s+//s;
    my @f = split ' ', $stat;
    return $f[11] + $f[12];
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $rest) = $line =~ /^(\d+) \(.*\) (.*)$/s or next;
        my @f = split ' ', $rest;
        push @kids, $pid if $f[1] == $ppid;
    }
    return @kids;
}

sub cpu_busy {    # (busy, steal, total) jiffies of the whole machine
    open my $fh, '<', '/proc/stat' or return (0, 0, 0);
    my ($cpu) = <$fh>;
    my @f = (split ' ', $cpu)[1 .. 8];
    my $total = 0;
    $total += $_ for @f;
    return ($total - $f[3] - $f[4] - $f[7], $f[7], $total);
}

sub commandstats {
    my $info = $t->redis('INFO', 'commandstats') // die "INFO failed\n";
    my %calls;
    $calls{$1} = $2 while $info =~ /^cmdstat_([\w|]+):calls=(\d+)/mg;
    return \%calls;
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

my $CORES = () = grep { /^processor\s*:/ } split /\n/, do {
    open my $fh, '<', '/proc/cpuinfo' or die "/proc/cpuinfo: $!"; local $/; <$fh> };
my $TICK = eval { POSIX::sysconf(POSIX::_SC_CLK_TCK()) } || 100;

# Before a run, waits (up to 5 s, and $QUIET_WAIT s over the whole benchmark)
# until other processes use less than $BUSY % of a core: the machine may be
# shared, and short bursts of other work are the main source of noise.
my $BUSY = 25;
my $waited = 0;
sub wait_quiet {
    my $end = time + 5;
    while ($waited < $QUIET_WAIT && time < $end) {
        my ($b0, undef, $t0) = cpu_busy();
        sleep 0.3;
        my ($b1, undef, $t1) = cpu_busy();
        return if $t1 <= $t0 || ($b1 - $b0) / ($t1 - $t0) * $CORES * 100 < $BUSY;
        $waited += 0.3;
    }
}

# Runs wrk once; returns a hash of its RESULT line plus rps and CPU use.
sub wrk {
    my (%o) = @_;
    my @cmd = ($WRK, "-t$THREADS", '-c' . ($o{conns} // $CONNS), "-d$o{duration}s", '--timeout', '5s',
        '-s', "$ROOT/bench/report.lua");
    push @cmd, '-H', $o{header} if $o{header};
    push @cmd, $o{url};
    my $outfile = $t->testdir . '/wrk.out';
    wait_quiet();
    my @watch = ($t->{procs}{redis}, @{$o{workers}});
    my %cpu0 = map { $_ => cpu_ticks($_) } @watch;
    my $t0 = time;
    my (undef, undef, $cu0, $cs0) = times;
    my ($busy0, $steal0, $total0) = cpu_busy();
    $wrk_pid = fork // die "fork: $!";
    if (!$wrk_pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $outfile or die "$outfile: $!";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec $WRK: $!";
    }
    record_pids();
    waitpid $wrk_pid, 0;
    my $status = $?;
    undef $wrk_pid;
    my $elapsed = time - $t0;
    my (undef, undef, $cu1, $cs1) = times;
    my ($busy1, $steal1, $total1) = cpu_busy();
    my %sec = map { $_ => (cpu_ticks($_) - $cpu0{$_}) / $TICK } @watch;
    my %cpu = map { $_ => $sec{$_} / $elapsed * 100 } @watch;
    my $text = $t->read_file($outfile);
    my ($line) = $text =~ /^RESULT (.*)$/m;
    die "wrk failed (status $status):\n$text" if $status || !$line;
    my %r = map { split /=/, $_, 2 } split ' ', $line;
    $r{rps} = $r{requests} / ($r{duration_us} / 1e6);
    $r{errors} = $r{connect} + $r{read} + $r{write} + $r{timeout};
    $r{cpu_redis} = $cpu{$t->{procs}{redis}};
    $r{cpu_wrk} = ($cu1 + $cs1 - $cu0 - $cs0) / $elapsed * 100;
    $r{cpu_nginx} = 0;
    $r{cpu_nginx} += $cpu{$_} for @{$o{workers}};
    # CPU time per request: robust against other load on the machine
    my $nginx_sec = 0;
    $nginx_sec += $sec{$_} for @{$o{workers}};
    $r{us_nginx} = $r{requests} ? $nginx_sec / $r{requests} * 1e6 : 0;
    $r{us_redis} = $r{requests} ? $sec{$t->{procs}{redis}} / $r{requests} * 1e6 : 0;
    # everything else on the machine (other processes, softirq not charged
    # to ours): should be small, or the round is disturbed
    my $busy = $total1 > $total0 ? ($busy1 - $busy0) / ($total1 - $total0) * $CORES * 100 : 0;
    $r{cpu_other} = $busy - $r{cpu_nginx} - $r{cpu_redis} - $r{cpu_wrk};
    $r{cpu_other} = 0 if $r{cpu_other} < 0;
    # time the hypervisor gave our virtual CPUs to someone else
    $r{cpu_steal} = $total1 > $total0 ? ($steal1 - $steal0) / ($total1 - $total0) * $CORES * 100 : 0;
    return \%r;
}

# ------------------------------------------------------------ setup

$t = Identity::Test->new(name => 'bench-auth-path');

# our own copy of the module, so that a rebuild during the run cannot touch
# the mapped file
my $so = $t->testdir . '/ngx_http_identity_module.so';
my $module_src = Identity::Test::module_path();
copy($module_src, $so) or die "copy $module_src: $!";
$ENV{IDENTITY_MODULE} = $so;

my $rport = $t->start_redis;
my $pa = $t->port('plain');
my $pb = $t->port('nginx');
my $base_a = "http://127.0.0.1:$pa";
my $base_b = "http://127.0.0.1:$pb";
my $issuer = $t->start_idp(redirect_uris => ["$base_b/_identity/callback"]);
record_pids();

# with BENCH_GEO, sessions are located: the database is only read at login,
# so the authenticated path must not change
my $geo_conf = '';
if ($GEO eq '1') {
    require Identity::GeoDB;
    my %nets = ('127.0.0.0/8' => { country => 'JP', lat => 35.6895, lon => 139.6917, radius => 50 });
    for my $i (1 .. 4000) {    # some bulk, so that lookups walk a real tree
        $nets{sprintf '%d.%d.%d.0/24', 11 + $i % 200, ($i * 7) % 256, ($i * 13) % 256} =
            { country => 'FR', lat => 48.85, lon => 2.35, radius => 20 };
    }
    Identity::GeoDB::write_mmdb($t->testdir . '/bench-geo.mmdb', schema => 'geoip2',
        ip_version => 6, networks => \%nets);
    $geo_conf = "identity_geoip_database %%TESTDIR%%/bench-geo.mmdb;";
} elsif ($GEO ne '') {
    $geo_conf = "identity_geoip_database $GEO;";
}

$t->nginx_conf(<<"CONF");
load_module %%MODULE%%;
daemon off;
master_process on;
worker_processes $WORKERS;
error_log %%TESTDIR%%/error.log warn;
pid %%TESTDIR%%/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %%TESTDIR%%/client_body;
    proxy_temp_path %%TESTDIR%%/proxy;
    fastcgi_temp_path %%TESTDIR%%/fastcgi;
    uwsgi_temp_path %%TESTDIR%%/uwsgi;
    scgi_temp_path %%TESTDIR%%/scgi;

    identity_redis 127.0.0.1:$rport timeout=2s;
    $geo_conf

    identity_provider test {
        type oidc;
        issuer $issuer;
        client_id test-client;
        client_secret test-secret;
    }

    upstream backend {
        server 127.0.0.1:%%PORT_upstream%%;
        keepalive 64;
    }

    # (a) plain reverse proxy
    server {
        listen 127.0.0.1:%%PORT_plain%%;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    # (b) the same proxy behind the identity module
    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        location / {
            identity test;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    # the upstream
    server {
        listen 127.0.0.1:%%PORT_upstream%%;
        default_type text/plain;
        location / {
            return 200 "ok";
        }
    }
}
CONF
$t->start_nginx;
record_pids();

my $master = $t->{procs}{nginx};
my @workers;
for (1 .. 100) {
    @workers = children_of($master);
    last if @workers >= $WORKERS;
    sleep 0.05;
}
die "expected $WORKERS nginx workers, found " . scalar(@workers) . "\n" if @workers < $WORKERS;

# ------------------------------------------------------------ log in once

my $ua = Identity::Test::UA->new;
my $res = $ua->oidc_login("$base_b/");
die "login failed: status $res->{status} at $res->{url}\n"
    unless $res->{status} == 200 && $res->{body} eq 'ok';
my $token = $ua->cookie('identity_session', '127.0.0.1')
    // die "no identity_session cookie after login\n";
my $cookie = "Cookie: identity_session=$token";

# Sends N requests one after the other on one keep-alive connection, as wrk
# does; returns "STATUS BODY" for each.
sub keepalive_requests {
    my ($port, $header, $n) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or die "connect to $port: $!\n";
    my $sel = IO::Select->new($sock);
    my @got;
    for (1 .. $n) {
        syswrite $sock, "GET / HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
            . ($header ? "$header\r\n" : '') . "\r\n";
        my $buf = '';
        my ($head, $len);
        while (1) {
            if (!defined $head && $buf =~ /\A(.*?\r\n\r\n)/s) {
                $head = $1;
                ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
                die "response without Content-Length on port $port:\n$head" unless defined $len;
            }
            last if defined $head && length($buf) >= length($head) + $len;
            $sel->can_read(5) or die "timeout reading from port $port\n";
            sysread($sock, $buf, 65536, length $buf) or last;
        }
        last unless defined $head;
        my ($status) = $head =~ m{^HTTP/1\.\d (\d{3})};
        push @got, "$status " . substr($buf, length $head, $len);
    }
    close $sock;
    return @got;
}

# what wrk will send, several times on one connection: (a) and (b) must
# answer from the upstream every time, (b) without the cookie must not
for my $check (["(a)", $pa, undef], ["(b) with the session cookie", $pb, $cookie]) {
    my ($what, $port, $hdr) = @$check;
    my @got = keepalive_requests($port, $hdr, 5);
    my $bad = grep { $_ ne '200 ok' } @got;
    die "$what: expected 5 x 200 \"ok\" from the upstream on one keep-alive connection, got: "
        . join(', ', map { substr($_, 0, 3) } @got) . "\n" if $bad || @got != 5;
}
my ($anon) = keepalive_requests($pb, undef, 1);
die "(b) without a cookie: expected 401, got $anon\n" unless $anon =~ /^401 /;

# ------------------------------------------------------------ run

my ($cpu_model) = $t->read_file('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
out(sprintf "auth path benchmark, %s, %d CPUs (%s), nginx %s, worker_processes %d",
    scalar(localtime), $CORES, $cpu_model // '?', (`/usr/sbin/nginx -v 2>&1` =~ m{nginx/(\S+)})[0] // '?',
    $WORKERS);
out(sprintf "wrk -t%d -c%d, %d rounds of %ds per server alternating (a,b,...), %ds warm-up each%s",
    $THREADS, $CONNS, $ROUNDS, $DURATION, $WARMUP,
    $SERIAL ? ", then ${SERIAL}s each with -c1" : '');
out("module $module_src");
out("(a) $base_a/  plain proxy_pass to a `return 200 \"ok\"` upstream (keepalive)");
out("(b) $base_b/  same, with `identity test;`, valid session cookie"
    . ($geo_conf ? ", and $geo_conf" : ''));
out('');

my %server = (
    a => { url => "$base_a/", header => undef },
    b => { url => "$base_b/", header => $cookie },
);

my $stats0 = commandstats();
my $b_requests = 0;
my %bad = (a => 0, b => 0);

sub line {
    my ($label, $r) = @_;
    return sprintf "%-10s %8.0f req/s  p50 %6.3f ms  p99 %7.3f ms  non-2xx %d  errors %d  "
        . "cpu%%: nginx %3.0f redis %2.0f wrk %2.0f other %3.0f steal %2.0f%s",
        $label, $r->{rps}, $r->{p50_us} / 1000, $r->{p99_us} / 1000, $r->{status},
        $r->{errors}, $r->{cpu_nginx}, $r->{cpu_redis}, $r->{cpu_wrk}, $r->{cpu_other},
        $r->{cpu_steal}, $r->{cpu_other} > $BUSY ? ' *' : '';
}

for my $s (qw(a b)) {
    my $r = wrk(%{$server{$s}}, duration => $WARMUP, workers => \@workers);
    out(line("warm-up $s", $r));
    $b_requests += $r->{requests} if $s eq 'b';
    $bad{$s} += $r->{status} + $r->{errors};
}

my %runs = (a => [], b => []);
for my $round (1 .. $ROUNDS) {
    for my $s (qw(a b)) {
        my $r = wrk(%{$server{$s}}, duration => $DURATION, workers => \@workers);
        push @{$runs{$s}}, $r;
        $b_requests += $r->{requests} if $s eq 'b';
        $bad{$s} += $r->{status} + $r->{errors};
        out(line("round $round $s", $r));
    }
}

# one connection: no queueing, the latency is that of one request
my %serial;
if ($SERIAL) {
    for my $s (qw(a b)) {
        my $r = wrk(%{$server{$s}}, duration => $SERIAL, conns => 1, workers => \@workers);
        $serial{$s} = $r;
        $b_requests += $r->{requests} if $s eq 'b';
        $bad{$s} += $r->{status} + $r->{errors};
        out(line("-c1 $s", $r));
    }
}

my $stats1 = commandstats();

# ------------------------------------------------------------ report

my %m;
for my $s (qw(a b)) {
    for my $k (qw(rps p50_us p99_us us_nginx us_redis cpu_nginx cpu_redis cpu_wrk cpu_other)) {
        $m{$s}{$k} = median(map { $_->{$k} } @{$runs{$s}});
    }
}
my @pair = map { $runs{b}[$_]{rps} / $runs{a}[$_]{rps} } 0 .. $ROUNDS - 1;
my $disturbed = grep { $_->{cpu_other} > $BUSY } @{$runs{a}}, @{$runs{b}};

my $ratio_rps = $m{b}{rps} / $m{a}{rps};
out('');
out("median of $ROUNDS rounds      req/s    p50 ms    p99 ms   nginx CPU us/req  redis CPU us/req");
for my $s (qw(a b)) {
    out(sprintf "%-22s %9.0f  %8.3f  %8.3f   %16.1f  %16.1f",
        $s eq 'a' ? '(a) plain proxy' : '(b) identity', $m{$s}{rps},
        $m{$s}{p50_us} / 1000, $m{$s}{p99_us} / 1000, $m{$s}{us_nginx}, $m{$s}{us_redis});
}
out(sprintf "%-22s %9.3f  %8.2f  %8.2f   %16.2f",
    '(b)/(a)', $ratio_rps, $m{b}{p50_us} / $m{a}{p50_us}, $m{b}{p99_us} / $m{a}{p99_us},
    $m{b}{us_nginx} / $m{a}{us_nginx});
out(sprintf "req/s ratio target >= 0.80: %s", $ratio_rps >= 0.80 ? 'met' : 'NOT MET');
out(sprintf "req/s ratio per round (b)/(a): %s (median %.3f)",
    join(' ', map { sprintf '%.3f', $_ } @pair), median(@pair));
my @quiet = map { $pair[$_] } grep {
    $runs{a}[$_]{cpu_other} <= $BUSY && $runs{b}[$_]{cpu_other} <= $BUSY } 0 .. $ROUNDS - 1;
out(sprintf "  rounds undisturbed by other processes: %d, their median ratio %s",
    scalar @quiet, @quiet ? sprintf('%.3f', median(@quiet)) : '-');
out(sprintf "CPU, median %% of one core: nginx (a) %.0f (b) %.0f, redis (b) %.0f, wrk (a) %.0f (b) %.0f, "
    . "other (a) %.0f (b) %.0f", $m{a}{cpu_nginx}, $m{b}{cpu_nginx}, $m{b}{cpu_redis},
    $m{a}{cpu_wrk}, $m{b}{cpu_wrk}, $m{a}{cpu_other}, $m{b}{cpu_other});
out(sprintf "one connection (-c1): p50 (a) %.0f us (b) %.0f us, +%.0f us; p99 (a) %.0f us (b) %.0f us",
    $serial{a}{p50_us}, $serial{b}{p50_us}, $serial{b}{p50_us} - $serial{a}{p50_us},
    $serial{a}{p99_us}, $serial{b}{p99_us}) if $SERIAL;
out(sprintf "waited %.1f s in all for other processes to calm down before runs", $waited) if $waited;
out(sprintf "* %d of %d runs had more than %d%% of a core used by other processes: "
    . "the machine was busy, figures are less reliable", $disturbed, 2 * $ROUNDS, $BUSY) if $disturbed;

my %delta;
for my $cmd (keys %$stats1) {
    my $d = $stats1->{$cmd} - ($stats0->{$cmd} // 0);
    $delta{$cmd} = $d if $d;
}
delete $delta{info};    # ours
my $hmget = $delta{hmget} // 0;
my $eval = $delta{eval} // 0;
# commands run by scripts are counted under their own names as well; the
# touch script does one HMGET, so lookups = hmget - eval
my $lookups = $hmget - $eval;
out('');
out(sprintf "redis during the run (warm-up included), %d requests to (b):", $b_requests);
out(sprintf "  session lookups (HMGET outside scripts) %d = %.3f per request",
    $lookups, $b_requests ? $lookups / $b_requests : 0);
out(sprintf "  last_active touches (EVAL) %d (due once per touch interval; every request then in flight"
    . " sees the old value, so up to -c at a time)", $eval);
out('  all commands: ' . join(', ', map { "$_ $delta{$_}" } sort keys %delta));
my @problems;
push @problems, "non-2xx responses or socket errors: (a) $bad{a}, (b) $bad{b}"
    if $bad{a} || $bad{b};
# one HMGET per request; the in-flight requests wrk abandons at the end of
# each run (up to -c per run) are not counted in its totals
my $slack = $CONNS * ($ROUNDS + 1) + 20;
push @problems, "session lookups ($lookups) do not match requests to (b) ($b_requests)"
    if $lookups < $b_requests || $lookups > $b_requests + $slack;
push @problems, "last_active written $eval times, expected a handful at most"
    if $eval > 2 * $CONNS;
my @alerts = grep { /\[(alert|emerg|crit)\]/ } split /\n/, $t->error_log;
push @problems, "nginx error.log: " . scalar(@alerts) . " alert/crit lines, first: $alerts[0]" if @alerts;

out('');
if (@problems) {
    out('PROBLEMS:');
    out("  $_") for @problems;
    exit 1;
}
out('checks passed: every response 2xx, one Redis lookup per request, last_active writes throttled');
exit 0;
