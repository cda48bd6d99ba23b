#!/usr/bin/perl
# Benchmark of the authenticated request path.  Four variants, each a
# reverse proxy in front of the same tiny upstream (its own nginx):
#   (a) the plain proxy,
#   (b) the same proxy behind `identity test;`, strict: one Redis lookup
#       per request,
#   (c) the same with the per-node session cache (`identity_session_cache`
#       at http level, hence its own nginx); "n/a" when the module has no
#       such directive,
#   (d) (b) with the same Redis over TLS (`identity_redis ... tls`, a test
#       CA, the certificate verified); BENCH_TLS=0 leaves it out,
#   (e) (b) with a Redis Cluster of 3 primaries (`identity_redis
#       cluster=...`), its own login; BENCH_CLUSTER=0 leaves it out.
# Two modes: light (1 worker, wrk -t1 -c50) and full (2 workers, wrk -t2
# -c50, everything on the same cores); wrk alternates a, b, c, d, a, b, ...
# Run through bench/run.sh (make bench).  See bench/README.md.
#
#   perl bench/auth-path.pl [light|full|both]     (or BENCH_MODE)

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
my $MODE = $ARGV[0] // $ENV{BENCH_MODE} // 'both';    # light, full or both
my $ROUNDS = $ENV{BENCH_ROUNDS} // 7;          # a,b,c rounds measured
my $DURATION = $ENV{BENCH_DURATION} // 7;      # seconds per wrk run
my $WARMUP = $ENV{BENCH_WARMUP} // 3;          # seconds, per variant, not measured
my $CONNS = $ENV{BENCH_CONNECTIONS} // 50;     # wrk -c
my $SERIAL = $ENV{BENCH_SERIAL} // 3;          # seconds per variant with -c1 (0: skip)
my $QUIET_WAIT = $ENV{BENCH_QUIET_WAIT} // 40; # seconds per mode to wait for a quiet machine
my $WRK = $ENV{WRK} // '/usr/bin/wrk';
my $GEO = $ENV{BENCH_GEO} // '';               # 1: a generated geo database; or a .mmdb path
my $CACHE = $ENV{BENCH_CACHE} // 1;            # 0: skip the cache variant
my $CACHE_CONF = $ENV{BENCH_CACHE_CONF} // 'identity_session_cache zone=identity_cache:16m;';
my $TLS = $ENV{BENCH_TLS} // 1;                # 0: skip the Redis-over-TLS variant
my $CLUSTER = $ENV{BENCH_CLUSTER} // 1;        # 0: skip the Redis Cluster variant
my $OUTDIR = $ENV{BENCH_OUT} // "$ROOT/bench/out";
my $PIDFILE = "$OUTDIR/run.pids";

# what each mode runs; BENCH_WORKERS, BENCH_THREADS and
# BENCH_UPSTREAM_WORKERS override every mode's
my %MODES = (
    light => { workers => 1, threads => 1,
        what => 'one nginx worker, which is the bottleneck' },
    full => { workers => 2, threads => 2,
        what => 'two nginx workers; wrk, the upstream and Redis contend with them for the cores' },
);
my @modes = $MODE eq 'both' ? qw(light full) : ($MODE);
die "bench: mode must be light, full or both, not \"$MODE\"\n" if grep { !$MODES{$_} } @modes;
for my $m (values %MODES) {
    $m->{workers} = $ENV{BENCH_WORKERS} if $ENV{BENCH_WORKERS};
    $m->{threads} = $ENV{BENCH_THREADS} if $ENV{BENCH_THREADS};
    $m->{upstream_workers} = $ENV{BENCH_UPSTREAM_WORKERS} || $m->{workers};
}

my @VARIANTS = ('a', 'b', 'c', $TLS ? 'd' : (), $CLUSTER ? 'e' : ());
my %LABEL = (a => '(a) plain proxy', b => '(b) identity strict', c => '(c) identity cache',
             d => '(d) strict, TLS', e => '(e) strict, cluster');

Test::More->builder->no_ending(1);    # the harness uses Test::More; no tests here

make_path($OUTDIR);
open my $LOG, '>', "$OUTDIR/latest.txt" or die "$OUTDIR/latest.txt: $!";
$LOG->autoflush(1);
STDOUT->autoflush(1);
$SIG{__DIE__} = sub { print $LOG "bench failed: $_[0]" if defined $^S && !$^S };

sub out { my $s = join '', @_; $s .= "\n" unless $s =~ /\n\z/; print $s; print $LOG $s }

# ------------------------------------------------------------ stop by pid

my $wrk_pid;
my ($t, $tu, $tc, $td, $te);    # redis, IdP, front (a, b); upstream; (c); (d); (e)

sub record_pids {
    # run.sh's EXIT trap stops these if this process dies without cleaning up
    open my $fh, '>', $PIDFILE or return;
    print $fh "$_\n" for grep { $_ } (map { values %{$_->{procs}} } grep { $_ } $t, $tu, $tc, $td, $te),
        $wrk_pid;
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
    $_->stop_all for grep { $_ } $td, $tc, $tu, $t;    # nginx (QUIT), IdP, redis: by pid
    unlink $PIDFILE;
    $? = $rc;
}

# ------------------------------------------------------------ helpers

sub cpu_ticks {    # utime + stime of pids, in clock ticks
    my $ticks = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        $stat =~ s/^.*\)\s+//s;
        my @f = split ' ', $stat;
        $ticks += $f[11] + $f[12];
    }
    return $ticks;
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

sub stats_delta {
    my ($s0, $s1) = @_;
    my %d;
    for my $cmd (keys %$s1) {
        my $n = $s1->{$cmd} - ($s0->{$cmd} // 0);
        $d{$cmd} = $n if $n;
    }
    delete $d{info};    # ours
    return \%d;
}

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

my $CORES = () = grep { /^processor\s*:/ } split /\n/, do {
    open my $fh, '<', '/proc/cpuinfo' or die "/proc/cpuinfo: $!"; local $/; <$fh> };
my $TICK = eval { POSIX::sysconf(POSIX::_SC_CLK_TCK()) } || 100;

# Before a run, waits (up to 5 s, and $QUIET_WAIT s per mode) until other
# processes use less than $BUSY % of a core: the machine may be shared, and
# short bursts of other work are the main source of noise.
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

# The pids of a running nginx: its master and workers.
sub nginx_pids {
    my ($h, $workers) = @_;
    my $master = $h->{procs}{nginx} or die "nginx not running\n";
    my @kids;
    for (1 .. 100) {
        @kids = children_of($master);
        last if @kids >= $workers;
        sleep 0.05;
    }
    die "expected $workers nginx workers, found " . scalar(@kids) . "\n" if @kids < $workers;
    return ($master, @kids);
}

# Runs wrk once; returns a hash of its RESULT line plus rps, the CPU used
# by each party (% of one core, and us per request) and the Redis commands
# run meanwhile.
sub wrk {
    my (%o) = @_;
    my $conns = $o{conns} // $CONNS;
    my $threads = $o{threads} > $conns ? $conns : $o{threads};
    my @cmd = ($WRK, "-t$threads", "-c$conns", "-d$o{duration}s", '--timeout', '5s',
        '-s', "$ROOT/bench/report.lua");
    push @cmd, '-H', $o{header} if $o{header};
    push @cmd, $o{url};
    my $outfile = $t->testdir . '/wrk.out';
    wait_quiet();
    my %pids = (nginx => $o{nginx}, upstream => $o{upstream}, redis => [$t->{procs}{redis}]);
    my %cpu0 = map { $_ => cpu_ticks(@{$pids{$_}}) } keys %pids;
    my $stats0 = commandstats();
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
    my %sec = map { $_ => (cpu_ticks(@{$pids{$_}}) - $cpu0{$_}) / $TICK } keys %pids;
    $sec{wrk} = $cu1 + $cs1 - $cu0 - $cs0;
    # the requests wrk abandoned at the end (up to -c) are still in nginx:
    # let their Redis commands land in this run's count, not the next one's
    sleep 0.2;
    my $stats1 = commandstats();
    my $text = $t->read_file($outfile);
    my ($line) = $text =~ /^RESULT (.*)$/m;
    die "wrk failed (status $status):\n$text" if $status || !$line;
    my %r = map { split /=/, $_, 2 } split ' ', $line;
    $r{rps} = $r{requests} / ($r{duration_us} / 1e6);
    $r{errors} = $r{connect} + $r{read} + $r{write} + $r{timeout};
    $r{redis_cmds} = stats_delta($stats0, $stats1);
    my $ours = 0;
    for my $who (qw(nginx upstream redis wrk)) {
        $r{"cpu_$who"} = $sec{$who} / $elapsed * 100;
        # CPU time per request: robust against other load on the machine
        $r{"us_$who"} = $r{requests} ? $sec{$who} / $r{requests} * 1e6 : 0;
        $ours += $r{"cpu_$who"};
    }
    $r{us_total} = $r{us_nginx} + $r{us_upstream} + $r{us_redis} + $r{us_wrk};
    # everything else on the machine (other processes, softirq not charged
    # to ours): should be small, or the round is disturbed
    my $busy = $total1 > $total0 ? ($busy1 - $busy0) / ($total1 - $total0) * $CORES * 100 : 0;
    $r{cpu_other} = $busy - $ours;
    $r{cpu_other} = 0 if $r{cpu_other} < 0;
    # time the hypervisor gave our virtual CPUs to someone else
    $r{cpu_steal} = $total1 > $total0 ? ($steal1 - $steal0) / ($total1 - $total0) * $CORES * 100 : 0;
    $r{disturbed} = $r{cpu_other} + $r{cpu_steal} > $BUSY;
    return \%r;
}

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

# ------------------------------------------------------------ setup

$t = Identity::Test->new(name => 'bench-auth-path');
$tu = Identity::Test->new(name => 'bench-upstream');
$tc = Identity::Test->new(name => 'bench-cache');
$td = Identity::Test->new(name => 'bench-tls') if $TLS;
$te = Identity::Test->new(name => 'bench-cluster') if $CLUSTER;

# our own copy of the module, so that a rebuild during the run cannot touch
# the mapped file
my $so = $t->testdir . '/ngx_http_identity_module.so';
my $module_src = Identity::Test::module_path();
copy($module_src, $so) or die "copy $module_src: $!";
$ENV{IDENTITY_MODULE} = $so;

# (d): the same Redis on a TLS port too, with a certificate of a test CA
my ($tls_port, @tls_args, $tls_line);
if ($TLS) {
    my $dir = $t->testdir;
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca "
        . "-keyout $dir/ca.key -out $dir/ca.crt >>$dir/openssl.log 2>&1") == 0 or die "openssl: CA\n";
    system("openssl req -newkey rsa:2048 -nodes -subj /CN=redis.bench -keyout $dir/redis.key "
        . "-out $dir/redis.csr >>$dir/openssl.log 2>&1") == 0 or die "openssl: csr\n";
    $t->write_file('redis.ext', "subjectAltName=DNS:redis.bench,IP:127.0.0.1\n");
    system("openssl x509 -req -in $dir/redis.csr -CA $dir/ca.crt -CAkey $dir/ca.key -CAcreateserial "
        . "-days 2 -out $dir/redis.crt -extfile $dir/redis.ext >>$dir/openssl.log 2>&1") == 0
        or die "openssl: certificate\n";
    $tls_port = Identity::Test::free_port();
    @tls_args = ('--tls-port', $tls_port, '--tls-cert-file', "$dir/redis.crt",
                 '--tls-key-file', "$dir/redis.key", '--tls-ca-cert-file', "$dir/ca.crt",
                 '--tls-auth-clients', 'no');
    $tls_line = "identity_redis 127.0.0.1:$tls_port timeout=2s tls ca=$dir/ca.crt "
        . "server_name=redis.bench;";
}
my $rport = $t->start_redis(args => \@tls_args);
my $pa = $t->port('plain');
my $pb = $t->port('nginx');
my $pc = $tc->port('nginx');
my $pd = $TLS ? $td->port('nginx') : 0;
my $pe = $CLUSTER ? $te->port('nginx') : 0;
# (e): a cluster of 3 primaries on its own ports, the nodes' CPU its own
my @cluster = $CLUSTER ? $te->start_cluster(primaries => 3) : ();
my $pu = $tu->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["http://127.0.0.1:$pb/_identity/callback",
    $CLUSTER ? "http://127.0.0.1:$pe/_identity/callback" : ()]);
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
    my $db = $t->testdir . '/bench-geo.mmdb';
    Identity::GeoDB::write_mmdb($db, schema => 'geoip2', ip_version => 6, networks => \%nets);
    $geo_conf = "identity_geoip_database $db;";
} elsif ($GEO ne '') {
    $geo_conf = "identity_geoip_database $GEO;";
}

my $TEMP_PATHS = join "\n", map { "    ${_}_temp_path %%TESTDIR%%/$_;" }
    qw(client_body proxy fastcgi uwsgi scgi);

my $PROXY = <<'PROXY';
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
PROXY

# A front nginx: the module, Redis, the provider, the upstream (keepalive),
# and the given http-level lines and servers.
sub front_conf {
    my ($workers, $http, $servers, $redis) = @_;
    $redis //= "identity_redis 127.0.0.1:$rport timeout=2s;";
    return <<"CONF";
load_module %%MODULE%%;
daemon off;
master_process on;
worker_processes $workers;
error_log %%TESTDIR%%/error.log warn;
pid %%TESTDIR%%/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
$TEMP_PATHS

    $redis
    $geo_conf
    $http

    identity_provider test {
        type oidc;
        issuer $issuer;
        client_id test-client;
        client_secret test-secret;
    }

    upstream backend {
        server 127.0.0.1:$pu;
        keepalive 64;
        keepalive_requests 1000000;
    }
$servers}
CONF
}

# (a) and (b): one nginx, as in production a site and its protected twin
sub front_ab_conf {
    my ($workers) = @_;
    return front_conf($workers, '', <<"SERVERS");

    # (a) plain reverse proxy
    server {
        listen 127.0.0.1:%%PORT_plain%%;
        location / {
$PROXY        }
    }

    # (b) the same proxy behind the identity module
    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        location / {
            identity test;
$PROXY        }
    }
SERVERS
}

# A front nginx of one protected server: (c), whose cache is configured at
# http level, and (d), whose Redis is reached over TLS
sub front_one_conf {
    my ($workers, $what, $http, $redis) = @_;
    return front_conf($workers, $http, <<"SERVERS", $redis);

    # $what
    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        location / {
            identity test;
$PROXY        }
    }
SERVERS
}

sub front_c_conf {
    front_one_conf($_[0], '(c) the proxy behind the identity module, with the session cache',
                   $CACHE_CONF);
}

sub front_d_conf {
    front_one_conf($_[0], '(d) the proxy behind the identity module, Redis over TLS', '', $tls_line);
}

sub front_e_conf {
    front_one_conf($_[0], '(e) the proxy behind the identity module, a Redis Cluster', '',
                   "identity_redis cluster=127.0.0.1:$cluster[0] timeout=2s;");
}

# the upstream: its own nginx, so that its CPU is its own
sub upstream_conf {
    my ($workers) = @_;
    return <<"CONF";
daemon off;
master_process on;
worker_processes $workers;
error_log %%TESTDIR%%/error.log warn;
pid %%TESTDIR%%/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
$TEMP_PATHS
    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        keepalive_requests 1000000;
        default_type text/plain;
        location / {
            return 200 "ok";
        }
    }
}
CONF
}

# Is the cache variant possible with this module?  undef if so, or why not.
my $cache_na;
if (!$CACHE) {
    $cache_na = 'n/a (BENCH_CACHE=0)';
} else {
    $tc->nginx_conf(front_c_conf(1));
    my ($rc, $text) = $tc->nginx_test_conf;
    if ($rc) {
        my ($msg) = $text =~ /\[emerg\]\s*(.*)/;
        $cache_na = $text =~ /unknown directive "identity_session_cache"/
            ? 'n/a (module without identity_session_cache)'
            : 'n/a (nginx -t: ' . ($msg // 'failed') . ')';
    }
}
my @variants = grep { $_ ne 'c' || !$cache_na } @VARIANTS;

my ($cpu_model) = $t->read_file('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
out(sprintf "auth path benchmark, %s, %d CPUs (%s), nginx %s",
    scalar(localtime), $CORES, $cpu_model // '?',
    (`/usr/sbin/nginx -v 2>&1` =~ m{nginx/(\S+)})[0] // '?');
out("module $module_src");
out("(a) plain proxy_pass to the upstream (keepalive 64), a `return 200 \"ok\"` nginx of its own");
out("(b) the same, with `identity test;` and a valid session cookie: one Redis lookup a request"
    . ($geo_conf ? "; and $geo_conf" : ''));
out("(c) " . ($cache_na // "the same as (b) in an nginx with `$CACHE_CONF`"));
out("(d) the same as (b), the same Redis over TLS (TLS 1.3, the certificate verified)") if $TLS;
out("(e) the same as (b), a Redis Cluster of 3 primaries (its session in one of 16 shards); "
    . "its Redis CPU counts as other") if $CLUSTER;
out(sprintf "%d rounds of %ds per variant alternating (%s), %ds warm-up each%s",
    $ROUNDS, $DURATION, join(',', @variants, '...'), $WARMUP,
    $SERIAL ? ", then ${SERIAL}s each with -c1" : '');

# ------------------------------------------------------------ one mode

my ($cookie, $cookie_e);
my @problems;
my %result;    # mode => variant => medians

sub start_mode {
    my ($m) = @_;
    $tu->nginx_conf(upstream_conf($m->{upstream_workers}));
    $tu->start_nginx;
    $t->nginx_conf(front_ab_conf($m->{workers}));
    $t->start_nginx;
    if (!$cache_na) {
        $tc->nginx_conf(front_c_conf($m->{workers}));
        $tc->start_nginx;
    }
    if ($TLS) {
        $td->nginx_conf(front_d_conf($m->{workers}));
        $td->start_nginx;
    }
    if ($CLUSTER) {
        $te->nginx_conf(front_e_conf($m->{workers}));
        $te->start_nginx;
    }
    record_pids();
    $m->{pids} = {
        upstream => [nginx_pids($tu, $m->{upstream_workers})],
        ab => [nginx_pids($t, $m->{workers})],
        c => $cache_na ? [] : [nginx_pids($tc, $m->{workers})],
        d => $TLS ? [nginx_pids($td, $m->{workers})] : [],
        e => $CLUSTER ? [nginx_pids($te, $m->{workers})] : [],
    };
}

sub stop_mode {
    $_->stop_nginx for grep { $_ } $te, $td, $tc, $t, $tu;
    record_pids();
}

# What wrk will send, several times on one connection: each variant must
# answer from the upstream every time; without the cookie (b) and (c) must
# not.  A benchmark of 401s or 302s measures nothing.
sub check_variants {
    my ($port) = @_;
    for my $v (@variants) {
        my @got = keepalive_requests($port->{$v}, $v eq 'a' ? undef
                                                  : $v eq 'e' ? $cookie_e : $cookie, 5);
        my $bad = grep { $_ ne '200 ok' } @got;
        die "$LABEL{$v}: expected 5 x 200 \"ok\" from the upstream on one keep-alive connection, "
            . "got: " . join(', ', map { substr($_, 0, 3) } @got) . "\n" if $bad || @got != 5;
        next if $v eq 'a';
        my ($anon) = keepalive_requests($port->{$v}, undef, 1);
        die "$LABEL{$v} without a cookie: expected 401, got $anon\n" unless $anon =~ /^401 /;
    }
}

sub line {
    my ($label, $r) = @_;
    return sprintf "%-14s %7.0f req/s  p50 %6.3f  p99 %7.3f ms  non-2xx %d  err %d  "
        . "cpu%%: nginx %3.0f up %3.0f redis %2.0f wrk %3.0f other %3.0f steal %2.0f%s",
        $label, $r->{rps}, $r->{p50_us} / 1000, $r->{p99_us} / 1000, $r->{status},
        $r->{errors}, $r->{cpu_nginx}, $r->{cpu_upstream}, $r->{cpu_redis}, $r->{cpu_wrk},
        $r->{cpu_other}, $r->{cpu_steal}, $r->{disturbed} ? ' *' : '';
}

sub fmt_cmds {    # "hmget 1.000, eval 0.001" per request
    my ($cmds, $requests) = @_;
    my @c = sort { $cmds->{$b} <=> $cmds->{$a} || $a cmp $b } keys %$cmds;
    return 'none' unless @c;
    # the touch script's commands are counted under their own names too:
    # a handful of calls in a run, given as calls rather than 0.000
    return join ', ', map { $cmds->{$_} / $requests >= 0.001
        ? sprintf('%s %.3f', $_, $cmds->{$_} / $requests) : "$_ $cmds->{$_} calls" } @c;
}

sub run_mode {
    my ($name) = @_;
    my $m = $MODES{$name};
    $waited = 0;
    start_mode($m);
    my %port = (a => $pa, b => $pb, c => $pc, d => $pd, e => $pe);
    for my $p ($pb, $CLUSTER ? $pe : ()) {    # log in once, through the IdP
        next if $p == $pb ? $cookie : $cookie_e;
        my $ua = Identity::Test::UA->new;
        my $res = $ua->oidc_login("http://127.0.0.1:$p/");
        die "login failed: status $res->{status} at $res->{url}\n"
            unless $res->{status} == 200 && $res->{body} eq 'ok';
        my $token = $ua->cookie('identity_session', '127.0.0.1')
            // die "no identity_session cookie after login\n";
        ($p == $pb ? $cookie : $cookie_e) = "Cookie: identity_session=$token";
    }
    check_variants(\%port);

    out('');
    out(sprintf "=== %s mode: %s", $name, $m->{what});
    out(sprintf "worker_processes %d (upstream nginx: %d), wrk -t%d -c%d",
        $m->{workers}, $m->{upstream_workers}, $m->{threads}, $CONNS);
    # what Redis runs with no traffic at all (the cache's node heartbeats):
    # counted in every run below too
    my $idle0 = commandstats();
    my $idle_t = time;
    sleep 2;
    my $idle = stats_delta($idle0, commandstats());
    my $idle_s = time - $idle_t;
    out('redis commands per second with no traffic: '
        . (join(', ', map { sprintf '%s %.1f', $_, $idle->{$_} / $idle_s } sort keys %$idle) || 'none'));
    my $t_start = time;
    my %run = (threads => $m->{threads}, upstream => $m->{pids}{upstream});
    my %server = map { $_ => { %run, url => "http://127.0.0.1:$port{$_}/",
        header => $_ eq 'a' ? undef : $_ eq 'e' ? $cookie_e : $cookie,
        nginx => $m->{pids}{$_ =~ /^[cde]$/ ? $_ : 'ab'} } } @variants;

    # every run of a variant, for the checks; the rounds, for the figures
    my (%all, %runs, %serial);
    for my $v (@variants) {
        my $r = wrk(%{$server{$v}}, duration => $WARMUP);
        push @{$all{$v}}, $r;
        out(line("warm-up $v", $r));
    }
    for my $round (1 .. $ROUNDS) {
        for my $v (@variants) {
            my $r = wrk(%{$server{$v}}, duration => $DURATION);
            push @{$all{$v}}, $r;
            push @{$runs{$v}}, $r;
            out(line("round $round $v", $r));
        }
    }
    if ($SERIAL) {    # one connection: no queueing, the latency is that of one request
        for my $v (@variants) {
            my $r = wrk(%{$server{$v}}, duration => $SERIAL, conns => 1, threads => 1);
            push @{$all{$v}}, $r;
            $serial{$v} = $r;
            out(line("-c1 $v", $r));
        }
    }
    my $elapsed = time - $t_start;

    # ---------------------------------------------------- figures
    my %md;
    for my $v (@variants) {
        for my $k (qw(rps p50_us p99_us us_nginx us_upstream us_redis us_wrk us_total
                cpu_nginx cpu_upstream cpu_redis cpu_wrk cpu_other)) {
            $md{$v}{$k} = median(map { $_->{$k} } @{$runs{$v}});
        }
        my (%cmds, $requests);
        for my $r (@{$runs{$v}}) {
            $requests += $r->{requests};
            $cmds{$_} += $r->{redis_cmds}{$_} for keys %{$r->{redis_cmds}};
        }
        my $total = 0;
        $total += $_ for values %cmds;
        $md{$v}{cmds} = \%cmds;
        $md{$v}{requests} = $requests;
        $md{$v}{cmds_per_req} = $requests ? $total / $requests : 0;
        $md{$v}{serial_p50_us} = $serial{$v}{p50_us} if $SERIAL;
        $md{$v}{serial_p99_us} = $serial{$v}{p99_us} if $SERIAL;
    }
    $result{$name} = \%md;

    out('');
    out(sprintf "%s mode, median of %d rounds of %ds (us/req: CPU microseconds per request)",
        $name, $ROUNDS, $DURATION);
    out(sprintf "%-20s %7s %6s %7s %8s %7s | %6s %8s %6s %6s %6s | %8s",
        '', 'req/s', 'ratio', 'p50 ms', '+p50 ms', 'p99 ms',
        'nginx', 'upstream', 'redis', 'wrk', 'total', 'redis');
    out(sprintf "%-20s %7s %6s %7s %8s %7s | %6s %8s %6s %6s %6s | %8s",
        '', '', '', '', '', '', 'us/req', 'us/req', 'us/req', 'us/req', 'us/req', 'cmd/req');
    for my $v (@VARIANTS) {
        if ($v eq 'c' && $cache_na) {
            out(sprintf "%-20s %s", $LABEL{$v}, $cache_na);
            next;
        }
        my $d = $md{$v};
        out(sprintf "%-20s %7.0f %6.3f %7.3f %+8.3f %7.3f | %6.1f %8.1f %6.1f %6.1f %6.1f | %8.3f",
            $LABEL{$v}, $d->{rps}, $d->{rps} / $md{a}{rps}, $d->{p50_us} / 1000,
            ($d->{p50_us} - $md{a}{p50_us}) / 1000, $d->{p99_us} / 1000,
            $d->{us_nginx}, $d->{us_upstream}, $d->{us_redis}, $d->{us_wrk}, $d->{us_total},
            $d->{cmds_per_req});
    }
    for my $v (grep { $_ ne 'a' } @variants) {
        my @pair = map { $runs{$v}[$_]{rps} / $runs{a}[$_]{rps} } 0 .. $ROUNDS - 1;
        my @quiet = map { $pair[$_] } grep {
            !$runs{a}[$_]{disturbed} && !$runs{$v}[$_]{disturbed} } 0 .. $ROUNDS - 1;
        $md{$v}{quiet_ratio} = median(@quiet);
        $md{$v}{quiet_rounds} = @quiet;
        out(sprintf "req/s ratio per round (%s)/(a): %s (median %.3f; undisturbed rounds %d, median %s)",
            $v, join(' ', map { sprintf '%.3f', $_ } @pair), median(@pair),
            scalar @quiet, @quiet ? sprintf('%.3f', median(@quiet)) : '-');
    }
    for my $v (@variants) {
        out(sprintf "redis commands per request %s: %s", substr($LABEL{$v}, 0, 3),
            fmt_cmds($md{$v}{cmds}, $md{$v}{requests} || 1));
    }
    out(sprintf "CPU, median %% of one core: %s",
        join('; ', map { my $v = $_; sprintf "(%s) nginx %.0f upstream %.0f redis %.0f wrk %.0f other %.0f",
            $v, map { $md{$v}{"cpu_$_"} } qw(nginx upstream redis wrk other) } @variants));
    out(sprintf "one connection (-c1): p50 %s; p99 %s",
        join(' ', map { sprintf '(%s) %.0f us', $_, $serial{$_}{p50_us} } @variants),
        join(' ', map { sprintf '(%s) %.0f us', $_, $serial{$_}{p99_us} } @variants)) if $SERIAL;
    my $disturbed = grep { $_->{disturbed} } map { @{$runs{$_}} } @variants;
    out(sprintf "waited %.1f s in all for other processes to calm down before runs", $waited) if $waited;
    out(sprintf "* %d of %d runs had more than %d%% of a core used by other processes or "
        . "stolen by the hypervisor: the machine was busy, figures are less reliable",
        $disturbed, $ROUNDS * @variants, $BUSY) if $disturbed;

    # ---------------------------------------------------- checks
    for my $v (@variants) {
        my $bad = 0;
        $bad += $_->{status} + $_->{errors} for @{$all{$v}};
        push @problems, "$name mode, $LABEL{$v}: $bad non-2xx responses or socket errors" if $bad;
    }
    # (b): one HMGET per request.  Commands run by scripts are counted under
    # their own names as well: the touch script (EXISTS, then HMGET, ...)
    # does one HMGET, so lookups = hmget - touches.  Not every EVAL is a
    # touch: with the session cache each node also runs a heartbeat script,
    # whatever the traffic.  So touches = the smaller of eval and exists.
    # The in-flight requests wrk abandons at the end of each run (up to -c)
    # are not in its totals.
    my $touches = sub {
        my ($cmds) = @_;
        my ($eval, $exists) = ($cmds->{eval} // 0, $cmds->{exists} // 0);
        return $eval < $exists ? $eval : $exists;
    };
    my ($requests, $hmget, $touched) = (0, 0, 0);
    for my $r (@{$all{b}}) {
        $requests += $r->{requests};
        $hmget += $r->{redis_cmds}{hmget} // 0;
        $touched += $touches->($r->{redis_cmds});
    }
    my $lookups = $hmget - $touched;
    out(sprintf "(b) session lookups (HMGET outside scripts) %d for %d requests = %.3f per request",
        $lookups, $requests, $requests ? $lookups / $requests : 0);
    my $slack = $CONNS * @{$all{b}} + 20;
    push @problems, "$name mode: session lookups ($lookups) do not match requests to (b) ($requests)"
        if $lookups < $requests || $lookups > $requests + $slack;
    # last_active: written once per touch interval (60 s), by each request
    # then in flight (it read the old value), so up to -c at a time
    my $evals = 0;
    for my $v (@variants) {
        $evals += $touches->($_->{redis_cmds}) for @{$all{$v}};
    }
    my $allowed = $CONNS * (int($elapsed / 60) + 2);
    out(sprintf "last_active touches, all variants: %d (at most %d expected)", $evals, $allowed);
    push @problems, "$name mode: last_active written $evals times, expected at most $allowed"
        if $evals > $allowed;
    # (c): a cached request makes no Redis call; not a failure of the bench
    # if it does, but the reader must see it
    if (!$cache_na && $md{c}{cmds_per_req} > 0.1) {
        out(sprintf "NOTE: (c) made %.3f Redis commands per request, expected near 0: "
            . "the cache did not answer", $md{c}{cmds_per_req});
    }
    stop_mode();
}

for my $name (@modes) {
    run_mode($name);
}

# ------------------------------------------------------------ summary

out('');
out('summary (medians)' . (' ' x 23) . join('', map { sprintf '%10s', $_ } @modes));
my @rows = (
    ['req/s (a) plain proxy', sub { sprintf '%.0f', $_[0]{a}{rps} }],
    (map { my $v = $_; (
        ["req/s ratio ($v)/(a)", sub { $_[0]{$v} ? sprintf('%.3f', $_[0]{$v}{rps} / $_[0]{a}{rps}) : 'n/a' }],
        ["  same, undisturbed rounds (how many)", sub {
            $_[0]{$v} && $_[0]{$v}{quiet_rounds}
                ? sprintf('%.3f (%d)', $_[0]{$v}{quiet_ratio}, $_[0]{$v}{quiet_rounds})
                : $_[0]{$v} ? '- (0)' : 'n/a' }],
        # when our processes alone fill the cores, req/s is about their
        # number over the total CPU per request: a ratio that other load on
        # the machine disturbs much less than the req/s ratio
        ["  total CPU us/req ratio (a)/($v)", sub {
            $_[0]{$v} ? sprintf('%.3f', $_[0]{a}{us_total} / $_[0]{$v}{us_total}) : 'n/a' }],
        ["added p50 ($v), -c$CONNS, ms", sub {
            $_[0]{$v} ? sprintf('%+.3f', ($_[0]{$v}{p50_us} - $_[0]{a}{p50_us}) / 1000) : 'n/a' }],
        ($SERIAL ? ["added p50 ($v), -c1, ms", sub {
            $_[0]{$v} ? sprintf('%+.3f', ($_[0]{$v}{serial_p50_us} - $_[0]{a}{serial_p50_us}) / 1000)
                : 'n/a' }] : ()),
        ["nginx CPU us/req ($v) - (a)", sub {
            $_[0]{$v} ? sprintf('%+.1f', $_[0]{$v}{us_nginx} - $_[0]{a}{us_nginx}) : 'n/a' }],
        ["redis CPU us/req ($v)", sub { $_[0]{$v} ? sprintf('%.1f', $_[0]{$v}{us_redis}) : 'n/a' }],
        ["redis cmd/req ($v)", sub { $_[0]{$v} ? sprintf('%.3f', $_[0]{$v}{cmds_per_req}) : 'n/a' }],
    ) } grep { $_ ne 'a' } @VARIANTS),
    ($TLS ? ["req/s ratio (d)/(b): TLS over plain", sub {
        $_[0]{d} && $_[0]{b} ? sprintf('%.3f', $_[0]{d}{rps} / $_[0]{b}{rps}) : 'n/a' }] : ()),
    ($CLUSTER ? ["req/s ratio (e)/(b): cluster over one", sub {
        $_[0]{e} && $_[0]{b} ? sprintf('%.3f', $_[0]{e}{rps} / $_[0]{b}{rps}) : 'n/a' }] : ()),
);
for my $row (@rows) {
    out(sprintf '%-40s%s', $row->[0], join '', map { sprintf '%10s', $row->[1]->($result{$_}) } @modes);
}
out("(c): $cache_na") if $cache_na;

my @alerts = grep { /\[(alert|emerg|crit)\]/ } map { split /\n/, $_->error_log } grep { $_ } $t, $tc, $tu, $td, $te;
push @problems, "nginx error.log: " . scalar(@alerts) . " alert/crit lines, first: $alerts[0]" if @alerts;

out('');
if (@problems) {
    out('PROBLEMS:');
    out("  $_") for @problems;
    exit 1;
}
out(sprintf 'checks passed: every response 2xx, %s 401 without the cookie, '
    . '(b) one Redis lookup per request, last_active writes throttled, no alert in the error logs',
    $cache_na ? '(b) answers' : '(b) and (c) answer');
exit 0;
