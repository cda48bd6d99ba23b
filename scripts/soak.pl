#!/usr/bin/perl
# make soak: two nginx instances sharing one Redis under a steady, moderate
# mix of logins (OpenID Connect, OAuth through the mock, SAML through
# SimpleSAMLphp), authenticated requests, admin API listings, revocations,
# logouts and idle expiry, for SOAK_SECONDS (1800).  Every SOAK_INTERVAL
# seconds it samples each worker's RSS and open descriptors, Redis's key
# count and used_memory, the requests and 5xx so far and the error logs'
# [alert]/[crit]/[emerg]/[error] lines.  After the load it lets every
# session end and compares Redis with its baseline.
#
# Pass (exit 0) when:
#   - each worker's RSS and fd count are flat: the median of the last
#     samples is at most 5% above the median of the samples right after
#     the warm-up (fds: or 1 descriptor, a request in flight);
#   - Redis is back at its baseline once the sessions have ended: the
#     keys without a TTL are those of the baseline, in number, kind and
#     size (5%), no key with a TTL is left but the replay caches, and no
#     index entry names a session or an identity that is gone (after the
#     module's own sweep, by logins);
#   - no 5xx (clients' and access logs'), no [alert]/[crit]/[emerg], no
#     worker restarted, and every operation got the answer it should.
#
# The report goes to stdout and to build/soak/report.txt, the samples to
# build/soak/samples.tsv, the error logs to build/soak/.  Knobs:
#   SOAK_SECONDS   length of the load (1800)
#   SOAK_INTERVAL  seconds between samples (SOAK_SECONDS / 120, 5 to 15)
#   SOAK_WARMUP    seconds of load before the RSS/fd reference (SOAK_SECONDS
#                  / 6, 30 to 300)
#   SOAK_CLIENTS   browsers logging in at the same time (3)
#   SOAK_IDLE      identity_idle_session_timeout in seconds (20)
#   SOAK_MAX       identity_max_session_duration in seconds (60)
#   SOAK_PRIME_LOGINS  SAML logins per instance before the load, a third
#                  as many OpenID and OAuth ones (60): warm_threads()

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use File::Copy qw(copy);
use File::Path qw(make_path);
use JSON::PP qw(decode_json);
use List::Util qw(sum max min shuffle);
use POSIX ();
use Time::HiRes qw(time sleep);
use Test::More ();
use Identity::Test;
use Identity::OAuthMock;
use Identity::SAML qw(:all);
use Identity::Conf qw(http_conf provider_block server_block location_block
    protected upstream_saw);

Test::More->builder->no_ending(1);    # the harness uses Test::More
STDOUT->autoflush(1);

my $SECONDS = $ENV{SOAK_SECONDS} // 1800;
my $INTERVAL = $ENV{SOAK_INTERVAL} // min(15, max(5, int($SECONDS / 120)));
my $WARMUP = $ENV{SOAK_WARMUP} // min(300, max(30, int($SECONDS / 6)));
my $CLIENTS = $ENV{SOAK_CLIENTS} // 3;
my $IDLE = $ENV{SOAK_IDLE} // 20;
my $MAX = $ENV{SOAK_MAX} // 60;
my $PRIME = $ENV{SOAK_PRIME_LOGINS} // 60;
my $OUT = "$Identity::Test::ROOT/build/soak";

die "SOAK_SECONDS must be at least 60\n" unless $SECONDS >= 60;
make_path($OUT);
open my $report_fh, '>', "$OUT/report.txt" or die "$OUT/report.txt: $!\n";

sub say_ {
    my ($line) = @_;
    print "$line\n";
    print $report_fh "$line\n";
}

sub stamp { POSIX::strftime('%H:%M:%S', gmtime) }

# ------------------------------------------------------------ servers

my $ta = Identity::Test->new(name => 'soak-a');
my $tb = Identity::Test->new(name => 'soak-b');
my %inst = (A => $ta, B => $tb);
my %base = map { $_ => 'http://127.0.0.1:' . $inst{$_}->port('nginx') } keys %inst;

my $rport = $ta->start_redis;

# OpenID: alice and bob browse; carol is the identity that client 0 deletes
my @oidc_users = map { { id => $_, password => "$_-password", email => "$_\@example.test",
    name => ucfirst($_) . ' Example', username => $_ } } qw(alice bob carol);
my $issuer = $ta->start_idp(users => \@oidc_users,
    redirect_uris => [map { "$base{$_}/_identity/callback" } sort keys %base]);

my $mock = $ta->start_oauth_mock;
my $m = $mock->{base};
$mock->set_user('gitlab', { id => 7_000_001, username => 'dana', name => 'Dana GitLab',
    email => 'dana@gitlab.example' });

my $dir = $ta->testdir;
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my $idp = $ta->start_saml_idp(sps => [map { {
    sp_entity_id => "$base{$_}/_identity/saml/metadata",
    acs_url => "$base{$_}/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
} } sort keys %base]);

my $token = 'admin-' . Identity::Test::random_token(24);
my $upstream = 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;';

for my $name (sort keys %inst) {
    my $t = $inst{$name};
    $t->write_file('admin.token', "$token\n");
    $t->write_file('token.key', Identity::Test::random_token(48) . "\n");
    my $conf = http_conf(
        workers => 2,
        redis => $rport, redis_timeout => '2s',
        http => ["identity_idle_session_timeout ${IDLE}s;",
                 "identity_max_session_duration ${MAX}s;",
                 'identity_session_touch_interval 5s;',
                 'identity_token_key_file %%TESTDIR%%/token.key;'],
        providers => [
            provider_block('test', type => 'oidc', issuer => $issuer),
            provider_block('gitlab', type => 'oauth',
                authorization_endpoint => "$m/gitlab/oauth/authorize",
                token_endpoint => "$m/gitlab/oauth/token",
                userinfo_endpoint => "$m/gitlab/api/v4/user",
                scopes => 'read_user',
                claim_map => 'id=id email=email name=name username=username'),
            provider_block('corp', type => 'saml',
                idp_metadata => $idp->{metadata_file},
                sp_certificate => $sp_cert,
                sp_certificate_key => $sp_key),
        ],
        servers => [server_block(
            directives => ["identity_public_url $base{$name};"],
            locations => [
                location_block('/', protected('test')),
                location_block('/gl/', protected('gitlab')),
                location_block('/saml/', protected('corp')),
                location_block('/api/', 'identity_admin;',
                    'identity_admin_token_file %%TESTDIR%%/admin.token;'),
            ])],
    );
    # a soak's error log at debug level would be gigabytes: notice and up
    $conf =~ s{(error_log \S+) debug;}{$1 notice;};
    $t->nginx_conf($conf);
    $t->start_nginx;
}

# ------------------------------------------------------------ clients

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub api_call {
    my ($inst, $method, $path) = @_;
    my $r = $api->request($method, "$base{$inst}/api/$path");
    $r->{json} = eval { decode_json($r->{body}) } if length($r->{body} // '');
    return $r;
}

# an API client that sends exactly this session cookie: 200, or 401 when
# the session ended (a browser would get a 302 and leave a pending login
# behind, which lives its 10 minutes in Redis)
sub with_cookie {
    my ($inst, $cookie) = @_;
    return Identity::Test::UA->new(headers => {
        Accept => 'application/json', 'Sec-Fetch-Mode' => undef })->get("$base{$inst}/x",
        headers => { Cookie => "identity_session=$cookie" });
}

# login(KIND, INSTANCE, USER) -> (response, ua): through the provider
sub login {
    my ($kind, $inst, $user) = @_;
    my $ua = Identity::Test::UA->new;
    my $r;
    if ($kind eq 'oidc') {
        $r = $ua->oidc_login("$base{$inst}/o/page", user => $user);
    } elsif ($kind eq 'oauth') {
        $r = $ua->follow($ua->get("$base{$inst}/gl/page"));
    } else {
        $r = $ua->saml_login("$base{$inst}/saml/page", user => $user);
    }
    return ($r, $ua);
}

my %path = (oidc => '/o/', oauth => '/gl/', saml => '/saml/');

# each client appends "time op instance status ok" lines to its log
my ($log_fh, $client_id);

sub record {
    my ($op, $inst, $status, $ok) = @_;
    printf $log_fh "%.3f %s %s %s %d\n", time, $op, $inst, $status // 0, $ok ? 1 : 0;
}

sub other { $_[0] eq 'A' ? 'B' : 'A' }
sub pick { $_[int rand @_] }
sub nap { sleep $_[0] + rand($_[1] - $_[0]) }

# One browser's life: log in, browse on both instances, then end it one
# way: logout, a revocation through the admin API (of the session, or for
# client 0 of the identity carol), or leaving it to expire, checked later
# or never (then only the sweep of logins takes it out of the index).
sub browse_once {
    my ($stop_at, $idle) = @_;
    my @kinds = (['oidc', 'alice'], ['oidc', 'bob'], ['oauth', 'dana'],
                 ['saml', 'alice'], ['saml', 'bob']);
    my $end = rand;
    my ($kind, $user) = @{pick(@kinds)};
    my $carol = $client_id == 0 && $end < 0.08;
    ($kind, $user) = ('oidc', 'carol') if $carol;
    my $inst = pick('A', 'B');
    my ($r, $ua) = eval { login($kind, $inst, $user) };
    my $saw = upstream_saw($r && $r->{body});
    my $ok = $r && $r->{status} == 200 && ($saw->{session} // '') =~ /^as_/;
    record("login_$kind", $inst, $r && $r->{status}, $ok);
    return unless $ok;
    my $cookie = $ua->cookie('identity_session', '127.0.0.1');

    for (1 .. 3 + int rand 6) {
        nap(0.3, 1.2);
        my $i = pick('A', 'B');
        my $res = eval { $ua->get("$base{$i}$path{$kind}page?n=$_") };
        my $s = upstream_saw($res && $res->{body});
        record('auth', $i, $res && $res->{status},
               $res && $res->{status} == 200 && ($s->{session} // '') eq $saw->{session});
    }

    my $i = pick('A', 'B');
    if ($carol) {
        $r = api_call($i, 'DELETE', "app/users/$saw->{id}");
        record('revoke_user', $i, $r->{status}, $r->{status} == 204);
        $r = with_cookie(other($i), $cookie);
        record('revoked_refused', other($i), $r->{status}, $r->{status} == 401);
    } elsif ($end < 0.40) {
        $r = $ua->get("$base{$i}/_identity/logout");
        record('logout', $i, $r->{status}, $r->{status} == 302);
        $r = with_cookie(other($i), $cookie);
        record('logged_out_refused', other($i), $r->{status}, $r->{status} == 401);
    } elsif ($end < 0.60) {
        $r = api_call($i, 'DELETE', "app/sessions/$saw->{session}");
        record('revoke_session', $i, $r->{status}, $r->{status} == 204);
        $r = with_cookie(other($i), $cookie);
        record('revoked_refused', other($i), $r->{status}, $r->{status} == 401);
    } elsif ($end < 0.80) {
        push @$idle, [time, $cookie];       # left to expire, checked later
    } else {
        record('abandoned', '-', 0, 1);     # never seen again: swept
    }
}

# the abandoned sessions whose idle timeout has passed are refused
sub check_idle {
    my ($idle, $all) = @_;
    my @keep;
    for my $e (@$idle) {
        if ($all || time > $e->[0] + $IDLE + 2) {
            my $i = pick('A', 'B');
            my $r = with_cookie($i, $e->[1]);
            record('idle_expired', $i, $r->{status}, $r->{status} == 401);
        } else {
            push @keep, $e;
        }
    }
    @$idle = @keep;
}

sub browser_client {
    my ($stop_at) = @_;
    my @idle;
    while (time < $stop_at) {
        eval { browse_once($stop_at, \@idle); 1 }
            or record('error', '-', 0, 0), print STDERR "client $client_id: $@";
        check_idle(\@idle, 0);
        nap(0.5, 2);
    }
    # what is left is checked once its idle timeout has passed
    if (@idle) {
        sleep 0.5 while time < $idle[-1][0] + $IDLE + 2;
        check_idle(\@idle, 1);
    }
}

# the admin: lists sessions (paging on) and users, reads one session
sub admin_client {
    my ($stop_at) = @_;
    while (time < $stop_at) {
        my $i = pick('A', 'B');
        my $limit = pick(1, 5, 20, 100);
        my $r = api_call($i, 'GET', "app/sessions?limit=$limit");
        record('api_list_sessions', $i, $r->{status}, $r->{status} == 200 && $r->{json});
        my @s = @{($r->{json} || {})->{application_sessions} || []};
        if (my $next = ($r->{json} || {})->{next_page_uri}) {
            $next =~ s{^.*?/api/}{};
            $r = api_call(other($i), 'GET', $next);
            record('api_list_sessions', other($i), $r->{status}, $r->{status} == 200);
        }
        if (@s) {
            $r = api_call(other($i), 'GET', "app/sessions/$s[0]{id}");
            # it may have ended in between
            record('api_get_session', other($i), $r->{status},
                   $r->{status} == 200 || $r->{status} == 404);
        }
        $r = api_call($i, 'GET', 'app/users?limit=20');
        record('api_list_users', $i, $r->{status}, $r->{status} == 200);
        nap(1, 3);
    }
}

sub start_client {
    my ($id, $file, $code, $stop_at) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    srand($$ ^ int(time * 1000));
    $client_id = $id;
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
    open $log_fh, '>>', $file or POSIX::_exit(1);
    $log_fh->autoflush(1);
    eval { $code->($stop_at); 1 } or print STDERR "client $id: $@";
    close $log_fh;
    POSIX::_exit(0);
}

# ------------------------------------------------------------ sampling

sub workers {
    my ($t) = @_;
    my $master = $t->{procs}{nginx} or return ();
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
        push @w, $pid if $ppid == $master;
    }
    return sort { $a <=> $b } @w;
}

sub rss_kb {
    open my $fh, '<', "/proc/$_[0]/status" or return undef;
    while (my $line = <$fh>) { return $1 if $line =~ /^VmRSS:\s+(\d+)/ }
    return undef;
}

sub fds {
    opendir my $dh, "/proc/$_[0]/fd" or return undef;
    return scalar grep { /^\d+$/ } readdir $dh;
}

sub redis_memory {
    my $info = $ta->redis('INFO', 'memory') // '';
    return $info =~ /^used_memory:(\d+)/m ? $1 : 0;
}

# what used_memory holds besides the keys: {field => value}
sub redis_memory_parts {
    my $info = ($ta->redis('INFO', 'memory') // '') . ($ta->redis('INFO', 'clients') // '');
    my %f = $info =~ /^(\w+):(\S+)\r?$/mg;
    return { map { $_ => $f{$_} // '?' } qw(used_memory used_memory_dataset
        used_memory_overhead used_memory_scripts_eval number_of_cached_scripts
        mem_clients_normal mem_clients_slaves used_memory_startup connected_clients) };
}

# counts in the logs since the start: [level] lines of error.log, and the
# requests and 5xx of access.log
sub log_counts {
    my %c = map { $_ => 0 } qw(alert crit emerg error requests 5xx);
    for my $t ($ta, $tb) {
        for (split /\n/, $t->read_file('error.log')) {
            $c{$1}++ if m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(alert|crit|emerg|error)\]};
        }
        for (split /\n/, $t->read_file('access.log')) {
            next unless /" (\d{3}) \d+ "/;
            $c{requests}++;
            $c{'5xx'}++ if $1 >= 500;
        }
    }
    return \%c;
}

# the clients' logs: op => {n, bad, 5xx}
sub client_counts {
    my %c;
    for my $file (glob "$dir/client-*.log") {
        open my $fh, '<', $file or next;
        while (<$fh>) {
            my (undef, $op, undef, $status, $ok) = split;
            next unless defined $ok;
            $c{$op}{n}++;
            $c{$op}{bad}++ unless $ok;
            $c{$op}{'5xx'}++ if $status >= 500;
        }
    }
    return \%c;
}

my (@samples, %worker_pids);

sub sample {
    my ($phase) = @_;
    my %s = (t => time, phase => $phase, keys => $ta->redis('DBSIZE') // -1,
             sessions => scalar @{$ta->redis('KEYS', 'identity:session:*') || []},
             index => $ta->redis('ZCARD', 'identity:sessions') // -1,
             mem => redis_memory(), w => []);
    for my $name ('A', 'B') {
        my @w = workers($inst{$name});
        $worker_pids{"$name:$_"} //= 1 for @w;
        push @{$s{w}}, map { [$name, $_, rss_kb($_) // 0, fds($_) // 0] } @w;
    }
    my $l = log_counts();
    my $c = client_counts();
    $s{requests} = $l->{requests};
    $s{'5xx'} = $l->{'5xx'} + sum(0, map { $_->{'5xx'} // 0 } values %$c);
    $s{alerts} = $l->{alert} + $l->{crit} + $l->{emerg};
    $s{errors} = $l->{error};
    $s{ops} = sum(0, map { $_->{n} } values %$c);
    push @samples, \%s;
    return \%s;
}

my $t0;

sub sample_line {
    my ($s) = @_;
    return sprintf '%6d %-6s %-31s %-19s %5d %4d %4d %8.1f %8d %6d %4d %4d', $s->{t} - $t0,
        $s->{phase}, join(' ', map { sprintf '%7.1f', $_->[2] / 1024 } @{$s->{w}}),
        join(' ', map { sprintf '%4d', $_->[3] } @{$s->{w}}),
        $s->{keys}, $s->{sessions}, $s->{index}, $s->{mem} / 1024, $s->{requests}, $s->{ops},
        $s->{'5xx'}, $s->{alerts};
}

# ------------------------------------------------------------ Redis's state

sub all_keys { sort @{$ta->redis('KEYS', 'identity:*') || []} }

sub kind {
    my ($k) = @_;
    $k =~ s/^identity://;
    return $k =~ /^([a-z_]+)(?::|$)/ ? $1 : $k;
}

# {count, persistent => {kind => n}, ttl => {kind => n}, bytes}: bytes, what
# the keys without TTL take (MEMORY USAGE)
sub redis_state {
    my %st = (count => 0, persistent => {}, ttl => {}, bytes => 0);
    for my $k (all_keys()) {
        $st{count}++;
        my $ttl = $ta->redis('TTL', $k) // -2;
        next if $ttl == -2;
        $st{$ttl == -1 ? 'persistent' : 'ttl'}{kind($k)}++;
        $st{bytes} += $ta->redis('MEMORY', 'USAGE', $k, 'SAMPLES', '0') // 0 if $ttl == -1;
    }
    return \%st;
}

sub kinds_text {
    my ($h) = @_;
    return join(', ', map { "$_ $h->{$_}" } sort keys %$h) || 'none';
}

# index entries that name a session or an identity that is gone
sub orphans {
    my @o;
    my $session = sub {
        my ($sid) = @_;
        my ($h) = $sid =~ /^as_([0-9a-f]{32})$/ or return 0;
        return $ta->redis('EXISTS', "identity:session:$h");
    };
    my $user = sub { $ta->redis('EXISTS', "identity:user:$_[0]") };
    for my $k (all_keys()) {
        my $kind = kind($k);
        my $type = $ta->redis('TYPE', $k) // '';
        if ($kind =~ /^(sessions|user_sessions|endpoint_sessions|session_expiry)$/
            && $type eq 'zset') {
            push @o, map { "$k -> $_" } grep { !$session->($_) }
                @{$ta->redis('ZRANGE', $k, 0, -1) || []};
        }
        if ($kind eq 'idp_sid' && $type eq 'set') {
            push @o, map { "$k -> $_" } grep { !$session->($_) }
                @{$ta->redis('SMEMBERS', $k) || []};
        }
        if ($kind eq 'users') {
            push @o, map { "$k -> $_" } grep { !$user->($_) }
                @{$ta->redis('ZRANGE', $k, 0, -1) || []};
        }
        if ($kind eq 'sub') {
            my $uid = $ta->redis('GET', $k) // '';
            push @o, "$k -> $uid" unless $user->($uid);
        }
        if ($kind =~ /^(user_sessions|endpoints|endpoint_sessions)$/) {
            my ($uid) = $k =~ /^identity:\w+:(au_[0-9a-f]+)/;
            push @o, "$k (no identity)" if $uid && !$user->($uid);
        }
        if ($kind eq 'user') {
            (my $uid = $k) =~ s/^identity:user://;
            push @o, "$k (not in users)"
                unless defined $ta->redis('ZSCORE', 'identity:users', $uid);
        }
    }
    return @o;
}

# every identity logs in once on each instance, then logs out: the
# baseline's identities and sites, and no session
sub prime {
    my $bad = 0;
    for my $inst ('A', 'B') {
        for my $who (['oidc', 'alice'], ['oidc', 'bob'], ['oidc', 'carol'], ['oauth', 'dana'],
                     ['saml', 'alice'], ['saml', 'bob']) {
            my ($r, $ua) = login($who->[0], $inst, $who->[1]);
            my $out = $ua->get("$base{$inst}/_identity/logout");
            $bad++ unless $r->{status} == 200 && $out->{status} == 302;
        }
    }
    return $bad;
}

# Before the load: a worker's thread pool (nginx's default, 32 threads)
# grows as each thread first runs lasso and xmlsec for a SAML login, and
# an OpenID or OAuth code exchange: glibc gives each thread its own malloc
# arena.  That is ~20 MiB per worker, once, and would read as growth: the
# warm-up logs in SOAK_PRIME_LOGINS times per instance and kind first.
sub warm_threads {
    my ($n) = @_;
    my $bad = 0;
    for my $k (1 .. $n) {
        for my $inst ('A', 'B') {
            for my $who ($k <= $n / 3 ? (['oidc', 'alice'], ['oauth', 'dana']) : (),
                         ['saml', 'bob']) {
                my ($r, $ua) = login($who->[0], $inst, $who->[1]);
                my $out = $ua->get("$base{$inst}/_identity/logout");
                $bad++ unless $r->{status} == 200 && $out->{status} == 302;
            }
        }
    }
    return $bad;
}

# ------------------------------------------------------------ the run

say_(sprintf 'soak: %d s of load, samples every %d s, warm-up %d s, %d browsers and an admin,'
     . ' idle timeout %d s, maximum duration %d s', $SECONDS, $INTERVAL, $WARMUP, $CLIENTS,
     $IDLE, $MAX);
say_("nginx A $base{A}, nginx B $base{B}, 2 workers each; Redis 127.0.0.1:$rport");

my $prime_bad = warm_threads($PRIME) + prime();
my $base_state = redis_state();
my $base_mem = redis_memory();
my $base_parts = redis_memory_parts();
my @base_orphans = orphans();
say_(sprintf 'warm-up logins: %d SAML, %d OpenID, %d OAuth per instance', $PRIME,
     int($PRIME / 3), int($PRIME / 3));
say_(sprintf 'baseline (identities known, no session): %d keys, used_memory %.1f KiB;'
     . ' without TTL: %s; with TTL: %s', $base_state->{count}, $base_mem / 1024,
     kinds_text($base_state->{persistent}), kinds_text($base_state->{ttl}));

$t0 = time;
my $stop_at = $t0 + $SECONDS;
my @pids;
push @pids, start_client($_, "$dir/client-$_.log", \&browser_client, $stop_at)
    for 0 .. $CLIENTS - 1;
push @pids, start_client($CLIENTS, "$dir/client-admin.log", \&admin_client, $stop_at);

say_('');
say_('RSS in MiB and fds of the workers A1 A2 B1 B2; Redis: keys, sessions, entries of the'
     . ' index "sessions", used_memory; nginx requests, client operations, 5xx, alerts');
say_(sprintf '%6s %-6s %-31s %-19s %5s %4s %4s %8s %8s %6s %4s %4s', 'time', 'phase',
     'RSS MiB', 'fds', 'keys', 'sess', 'ix', 'mem KiB', 'requests', 'ops', '5xx', 'alrt');
while (time < $stop_at) {
    my $s = sample(time - $t0 < $WARMUP ? 'warmup' : 'load');
    say_(sample_line($s));
    my $next = $s->{t} + $INTERVAL;
    sleep 0.2 while time < $next && time < $stop_at;
}

# the clients finish their browser, and check their idle sessions
my $stop_wait = time;
for my $pid (@pids) {
    waitpid $pid, 0;
    if (time - $stop_wait > $INTERVAL) {
        say_(sample_line(sample('drain')));
        $stop_wait = time;
    }
}
my $load_end = time;
say_(sample_line(sample('stop')));
my @at_stop = orphans();

# every session ends: the last ones made in prime() are logged out; the
# load's last ones live at most the maximum duration
my $prime2_bad = prime();
my $last_login = time;
my $deadline = $last_login + $MAX + 30;
while (time < $deadline) {
    my $live = @{$ta->redis('KEYS', 'identity:session:*') || []};
    # the shared user agent record lives the maximum duration
    last if !$live && time > $last_login + $MAX + 2;
    my $next = time + $INTERVAL;
    sleep 0.2 while time < $next && time < $deadline;
    say_(sample_line(sample('expire')));
}
my @left = @{$ta->redis('KEYS', 'identity:session:*') || []};

# the index "sessions" is swept by logins, a hundred entries each; count
# what the sweep has left before, and let logins (each logged out) sweep
my @before_sweep = orphans();
my $sweeps = 0;
while ($sweeps < 50 && grep { /^identity:sessions -> / } orphans()) {
    my $inst = pick('A', 'B');
    my (undef, $ua) = login('oidc', $inst, 'alice');
    $ua->get("$base{$inst}/_identity/logout");
    $sweeps++;
}
sleep 1;
my @end_orphans = orphans();
my $end_state = redis_state();
my $end_mem = redis_memory();
my $end_parts = redis_memory_parts();
my $final = sample('end');
say_(sample_line($final));

# B first: A owns the Redis that B's workers would lose
$_->stop_all for $tb, $ta;

# ------------------------------------------------------------ the verdict

my $logs = log_counts();
my $ops = client_counts();
my @fail;

say_('');
say_('operations (client side): op, count, unexpected answers, 5xx');
for my $op (sort keys %$ops) {
    my $c = $ops->{$op};
    say_(sprintf '  %-20s %7d %5d %5d', $op, $c->{n}, $c->{bad} // 0, $c->{'5xx'} // 0);
}
my $bad_ops = sum(0, map { $_->{bad} // 0 } values %$ops);
my $client_5xx = sum(0, map { $_->{'5xx'} // 0 } values %$ops);
push @fail, "$bad_ops operations got an unexpected answer" if $bad_ops;
push @fail, "the logins before or after the load failed ($prime_bad, $prime2_bad)"
    if $prime_bad || $prime2_bad;

say_('');
say_(sprintf 'nginx: %d requests in the access logs, %d 5xx; error logs: %d [alert], %d [crit],'
     . ' %d [emerg], %d [error]', $logs->{requests}, $logs->{'5xx'}, $logs->{alert},
     $logs->{crit}, $logs->{emerg}, $logs->{error});
push @fail, "$logs->{'5xx'} 5xx in the access logs" if $logs->{'5xx'};
push @fail, "$client_5xx 5xx seen by the clients" if $client_5xx;
my $alerts = $logs->{alert} + $logs->{crit} + $logs->{emerg};
push @fail, "$alerts [alert]/[crit]/[emerg] lines" if $alerts;
my $nworkers = keys %worker_pids;
push @fail, "workers changed: $nworkers pids seen for 4 workers" if $nworkers != 4;

# flatness: median right after the warm-up against the median at the end
sub median {
    my @v = sort { $a <=> $b } @_;
    return 0 unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

my @load = grep { $_->{phase} eq 'load' } @samples;
my $win = max(3, int(@load / 5));
say_('');
if (@load < 2 * $win) {
    push @fail, sprintf 'too few samples after the warm-up (%d) to judge flatness', scalar @load;
} else {
    my @first = @load[0 .. $win - 1];
    my @last = @load[-$win .. -1];
    say_(sprintf 'flatness: median of samples %d..%d s against %d..%d s (%d samples each)',
         $first[0]{t} - $t0, $first[-1]{t} - $t0, $last[0]{t} - $t0, $last[-1]{t} - $t0, $win);
    for my $j (0 .. $#{$first[0]{w}}) {
        my ($name, $pid) = @{$first[0]{w}[$j]};
        my $col = sub { my ($set, $k) = @_;
            median(map { my $w = $_->{w}[$j]; $w && $w->[1] == $pid ? $w->[$k] : () } @$set) };
        my ($r0, $r1, $f0, $f1) = ($col->(\@first, 2), $col->(\@last, 2),
                                   $col->(\@first, 3), $col->(\@last, 3));
        my $rg = $r0 ? 100 * ($r1 - $r0) / $r0 : 0;
        my $fg = $f0 ? 100 * ($f1 - $f0) / $f0 : 0;
        say_(sprintf '  worker %s %-7d RSS %8d -> %8d KiB (%+.1f%%)   fds %3d -> %3d (%+.1f%%)',
             $name, $pid, $r0, $r1, $rg, $f0, $f1, $fg);
        push @fail, sprintf 'worker %s %d: RSS grew %.1f%%', $name, $pid, $rg if $rg > 5;
        push @fail, sprintf 'worker %s %d: fds grew from %d to %d', $name, $pid, $f0, $f1
            if $f1 > $f0 * 1.05 && $f1 > $f0 + 1;
    }
}

say_('');
say_(sprintf 'Redis: baseline %d keys, used_memory %.1f KiB; end %d keys, used_memory %.1f KiB'
     . ' (%+.1f%%)', $base_state->{count}, $base_mem / 1024, $end_state->{count}, $end_mem / 1024,
     $base_mem ? 100 * ($end_mem - $base_mem) / $base_mem : 0);
say_('  used_memory\'s parts, baseline -> end: '
     . join(', ', map { "$_ $base_parts->{$_} -> $end_parts->{$_}" } sort keys %$base_parts));
say_(sprintf '  compared: the keys without TTL, baseline %d, end %d',
     sum(0, values %{$base_state->{persistent}}), sum(0, values %{$end_state->{persistent}}));
say_('  keys without TTL: baseline ' . kinds_text($base_state->{persistent})
     . '; end ' . kinds_text($end_state->{persistent}));
my $bytes_growth = $base_state->{bytes}
    ? 100 * ($end_state->{bytes} - $base_state->{bytes}) / $base_state->{bytes} : 0;
say_(sprintf '  their MEMORY USAGE: baseline %d bytes, end %d bytes (%+.1f%%)',
     $base_state->{bytes}, $end_state->{bytes}, $bytes_growth);
push @fail, sprintf 'the keys without TTL grew %.1f%%', $bytes_growth if $bytes_growth > 5;
say_('  keys with a TTL at the end: ' . kinds_text($end_state->{ttl})
     . ' (once: and jti: are replay caches, kept until the assertion or token expires)');
say_(sprintf '  index entries of ended sessions: %d at the end of the load, %d once every'
     . ' session ended (after the logins of the identities); %d more logins swept;'
     . ' orphaned entries left: %d', scalar @at_stop, scalar @before_sweep, $sweeps,
     scalar @end_orphans);
say_("    $_") for @end_orphans[0 .. min(9, $#end_orphans)];
push @fail, sprintf '%d session keys still there %d s after the last login', scalar @left,
    time - $last_login if @left;
push @fail, scalar(@end_orphans) . ' orphaned index entries' if @end_orphans;
push @fail, scalar(@base_orphans) . ' orphaned index entries at the baseline' if @base_orphans;
if (kinds_text($base_state->{persistent}) ne kinds_text($end_state->{persistent})) {
    push @fail, 'the keys without TTL differ from the baseline';
}
my %transient = map { $_ => 1 } qw(once jti);
my @stale = grep { !$transient{$_} } keys %{$end_state->{ttl}};
push @fail, 'keys with a TTL left that are not replay caches: '
    . join(', ', map { "$_ $end_state->{ttl}{$_}" } sort @stale) if @stale;

# what the run leaves: samples and logs
open my $tsv, '>', "$OUT/samples.tsv" or die "$OUT/samples.tsv: $!\n";
print $tsv join("\t", qw(seconds phase worker pid rss_kb fds keys sessions index used_memory
                         requests ops 5xx alerts)), "\n";
for my $s (@samples) {
    for my $w (@{$s->{w}}) {
        print $tsv join("\t", sprintf('%.1f', $s->{t} - $t0), $s->{phase}, $w->[0], $w->[1],
                        $w->[2], $w->[3], $s->{keys}, $s->{sessions}, $s->{index}, $s->{mem},
                        $s->{requests}, $s->{ops},
                        $s->{'5xx'}, $s->{alerts}), "\n";
    }
}
close $tsv;
for my $name ('A', 'B') {
    copy($inst{$name}->testdir . '/error.log', "$OUT/error-$name.log");
}

say_('');
say_(sprintf 'load %d s, %d operations, %d nginx requests', $load_end - $t0,
     sum(0, map { $_->{n} } values %$ops), $logs->{requests});
if (@fail) {
    say_("FAIL: $_") for @fail;
} else {
    say_('PASS: RSS and fds flat, Redis back at its baseline with no orphaned entry,'
         . ' 0 5xx, 0 alerts');
}
say_("report in $OUT/report.txt, samples in $OUT/samples.tsv");
close $report_fh;
exit(@fail ? 1 : 0);
