package Identity::Test;

# Test harness for ngx_http_identity_module: temp dirs, redis, the test IdP,
# nginx, and a browser-like HTTP client (Identity::Test::UA).  POD at the end.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha256 sha256_hex);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');
our $NGINX = $ENV{NGINX} // '/usr/sbin/nginx';

# The Redis key of the session a cookie names (layout 4): its public id is
# "as_" and the same 32 hex digits
sub session_hex { substr(sha256_hex($_[0] // ''), 0, 32) }
sub session_key { 'identity:session:' . session_hex($_[0]) }

my @live;          # harness objects whose servers END must stop
my %used_ports;

sub new {
    my ($class, %opt) = @_;
    my $name = $opt{name} // 'test';
    $name =~ s/[^\w.-]+/_/g;
    make_path("$ROOT/t/tmp");
    my $self = bless {
        name => $name,
        dir => tempdir("$name-XXXXXX", DIR => "$ROOT/t/tmp"),
        owner => $$,
        procs => {},        # name => pid
        ports => {},        # name => port
    }, $class;
    chmod 0755, $self->{dir};    # for servers that drop privileges
    $SIG{$_} ||= sub { exit 1 } for qw(INT TERM HUP);    # so that END stops servers
    push @live, $self;
    return $self;
}

sub testdir { $_[0]{dir} }

# ------------------------------------------------------------ what a test needs

# What tests may need that only "make deps" installs: name => [check, what
# it is].  The check is true when it is there.
our %NEEDS = (
    chromium => [sub { -x ($ENV{CHROMIUM} // '/usr/bin/chromium') },
        'Chromium (' . ($ENV{CHROMIUM} // '/usr/bin/chromium') . ', Debian package chromium)'],
    'uap-core' => [sub { -f '/usr/share/uap-core/regexes.yaml' },
        'uap-core (/usr/share/uap-core/regexes.yaml, Debian package uap-core)'],
);

# optional(NAME): true when IDENTITY_OPTIONAL (comma-separated NAMEs, or
# "all") says a test may skip when NAME is absent
sub optional {
    my ($name) = @_;
    my %opt = map { $_ => 1 } grep { $_ ne '' } split /[\s,]+/, $ENV{IDENTITY_OPTIONAL} // '';
    return $opt{$name} || $opt{all} ? 1 : 0;
}

# need(NAME, ...), or $t->need(NAME, ...): before the first test.  Returns
# when all are there; otherwise skips the whole file if IDENTITY_OPTIONAL
# names the missing one, and fails it (one failing test, then exit) if not.
sub need {
    shift if ref $_[0] || ($_[0] // '') eq __PACKAGE__;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $name (@_) {
        my $need = $NEEDS{$name} or die "need: unknown requirement $name\n";
        next if $need->[0]->();
        if (optional($name)) {
            plan skip_all => "$need->[1] is not installed (optional: IDENTITY_OPTIONAL)";
        }
        plan tests => 1;
        fail("$need->[1] is installed");
        diag("$need->[1] is missing: install it with \"make deps\""
            . " (scripts/install-deps.sh), or run with IDENTITY_OPTIONAL=$name"
            . " to skip the tests that need it");
        exit 1;
    }
    return 1;
}

sub free_port {
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
            Proto => 'tcp', Listen => 1, ReuseAddr => 1) or die "bind: $!";
        my $port = $s->sockport;
        close $s;
        next if $used_ports{$port}++;
        return $port;
    }
    die "no free port found";
}

sub port {
    my ($self, $name) = @_;
    return $self->{ports}{$name} //= free_port();
}

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = "$self->{dir}/$name";
    make_path(dirname($path));
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh or die "$path: $!";
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '<', $path or return '';
    local $/;
    return scalar <$fh>;
}

# ------------------------------------------------------------ processes

sub _spawn {
    my ($self, $name, $cmd, $out, $err) = @_;
    die "$name already running\n" if $self->{procs}{$name};
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        setpgrp(0, 0);     # own group, so stragglers (nginx workers) can be killed
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $out or die "$out: $!";
        open STDERR, '>>', $err or die "$err: $!";
        exec @$cmd or die "exec $cmd->[0]: $!";
    }
    $self->{procs}{$name} = $pid;
    return $pid;
}

sub _running {
    my ($self, $name) = @_;
    my $pid = $self->{procs}{$name} or return 0;
    return 1 if waitpid($pid, WNOHANG) == 0;
    delete $self->{procs}{$name};
    return 0;
}

sub _wait_exit {
    my ($pid, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        my $r = waitpid($pid, WNOHANG);
        return 1 if $r == $pid || $r == -1;
        sleep 0.05;
    }
    return 0;
}

sub _stop {
    my ($self, $name, $sig, $timeout) = @_;
    my $pid = delete $self->{procs}{$name} or return;
    kill $sig, $pid;
    if (!_wait_exit($pid, $timeout // 10)) {
        kill 'TERM', $pid;
        if (!_wait_exit($pid, 3)) {
            kill 'KILL', $pid;
            _wait_exit($pid, 3);
        }
    }
    kill 'KILL', -$pid if kill 0, -$pid;    # leftovers in its process group
}

sub _wait_port {
    my ($port, $timeout, $alive) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp', Timeout => 1);
        return 0 if $alive && !$alive->();
        sleep 0.05;
    }
    return 0;
}

sub stop_all {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    $self->stop_nginx;
    $self->_stop($_, 'TERM', 5) for sort keys %{$self->{procs}};
}

sub _cleanup {
    my ($self, $exit) = @_;
    return unless $self->{owner} == $$ && !$self->{cleaned}++;
    local $?;
    $self->stop_all;
    # a harness that done() did not check: a report still fails the test
    if (!$self->{sanitizer_checked} && $self->sanitizer_reports) {
        $self->check_sanitizer;
    }
    my $passing = !$exit && Test::More->builder->is_passing;
    if ($ENV{TEST_KEEP} || !$passing) {
        Test::More::diag("test files kept in $self->{dir}");
    } else {
        remove_tree($self->{dir});
    }
}

sub DESTROY { $_[0]->_cleanup(0) }
END { my $exit = $?; local $?; $_->_cleanup($exit) for @live; @live = () }

# ------------------------------------------------------------ redis

sub start_redis {
    my ($self, %opt) = @_;
    $self->{redis_password} = $opt{password} if exists $opt{password};
    my $port = $self->{redis_port} //= free_port();
    my @cmd = ('redis-server', '--port', $port, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', $self->{dir});
    push @cmd, '--requirepass', $self->{redis_password} if defined $self->{redis_password};
    $self->{redis_args} = $opt{args} if $opt{args};
    push @cmd, @{$self->{redis_args} || []};
    $self->_spawn('redis', \@cmd, "$self->{dir}/redis.log", "$self->{dir}/redis.log");
    my $end = time + 10;
    while (time < $end) {
        my $pong = eval { $self->redis('PING') };
        return $port if defined $pong && $pong eq 'PONG';
        die "redis-server exited:\n" . $self->read_file('redis.log') unless $self->_running('redis');
        sleep 0.05;
    }
    die "redis-server did not answer PING:\n" . $self->read_file('redis.log');
}

# more servers than the main one (a replica, a sentinel): NAME is the
# process's name for stop_proc, each in a directory of its own
sub start_redis_server {
    my ($self, $name, @args) = @_;
    my $port = free_port();
    my $dir = "$self->{dir}/$name";
    make_path($dir);
    $self->_spawn($name, ['redis-server', '--port', $port, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', $dir, @args],
        "$dir/log", "$dir/log");
    $self->_wait_redis($name, $port, "$dir/log");
    return $port;
}

# a redis-sentinel that monitors PRIMARY_PORT as NAME (quorum 2, down after
# 1 s), with LINES added to its configuration
sub start_sentinel {
    my ($self, $name, $master, $primary_port, @lines) = @_;
    my $port = free_port();
    my $dir = "$self->{dir}/$name";
    make_path($dir);
    open my $fh, '>', "$dir/sentinel.conf" or die "$dir/sentinel.conf: $!";
    print $fh join("\n", "port $port", 'bind 127.0.0.1', "dir $dir",
        "sentinel monitor $master 127.0.0.1 $primary_port 2",
        "sentinel down-after-milliseconds $master 1000",
        "sentinel failover-timeout $master 10000", @lines), "\n";
    close $fh;
    $self->_spawn($name, ['redis-sentinel', "$dir/sentinel.conf"], "$dir/log", "$dir/log");
    my ($password) = map { /^requirepass (\S+)/ ? $1 : () } @lines;
    $self->_wait_redis($name, $port, "$dir/log", $password);
    return $port;
}

sub _wait_redis {
    my ($self, $name, $port, $log, $password) = @_;
    my $end = time + 10;
    while (time < $end) {
        my $pong = eval { local $self->{redis_port} = $port;
                          local $self->{redis_password} = $password; $self->redis('PING') };
        return if defined $pong && $pong eq 'PONG';
        die "$name exited:\n" . _slurp($log) unless $self->_running($name);
        sleep 0.05;
    }
    die "$name did not answer PING:\n" . _slurp($log);
}

sub _slurp { open my $fh, '<', $_[0] or return ''; local $/; scalar <$fh> }

# a command to the server at PORT, without the main server's password
sub redis_at {
    my ($self, $port, @cmd) = @_;
    local $self->{redis_port} = $port;
    local $self->{redis_password};
    return $self->redis(@cmd);
}

sub stop_proc { my ($self, $name, $sig) = @_; $self->_stop($name, $sig // 'TERM', 10) }

sub stop_redis { $_[0]->_stop('redis', 'TERM', 10) }
sub kill_redis { $_[0]->_stop('redis', 'KILL', 10) }
# SIGSTOP / SIGCONT: Redis keeps its connections and stops answering
sub pause_redis { kill $_[1] ? 'CONT' : 'STOP', $_[0]{procs}{redis} }
sub redis_port { $_[0]{redis_port} }
sub redis_error { $_[0]{redis_error} }

sub _resp_encode {
    my @args = map { my $s = "$_"; utf8::encode($s) if utf8::is_utf8($s); $s } @_;
    return join '', '*' . @args . "\r\n", map { '$' . length($_) . "\r\n$_\r\n" } @args;
}

sub _resp_read {
    my ($fh) = @_;
    my $line = <$fh>;
    die "redis: connection closed\n" unless defined $line;
    $line =~ s/\r\n\z// or die "redis: bad reply line\n";
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $type eq '+';
    return $rest + 0 if $type eq ':';
    return Identity::Test::RedisError->new($rest) if $type eq '-';
    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            my $n = read($fh, $buf, $rest + 2 - length($buf), length($buf));
            die "redis: connection closed\n" unless $n;
        }
        return substr($buf, 0, $rest);
    }
    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { _resp_read($fh) } 1 .. $rest];
    }
    die "redis: unsupported reply type '$type'\n";
}

sub redis {
    my ($self, @cmd) = @_;
    my $port = $self->{redis_port} or die "redis not started\n";
    delete $self->{redis_error};
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or die "redis: cannot connect to port $port: $!\n";
    local $SIG{ALRM} = sub { die "redis: timeout\n" };
    my $prev = alarm 10;
    my $reply = eval {
        if (defined $self->{redis_password}) {
            print $sock _resp_encode('AUTH', $self->{redis_password});
            my $r = _resp_read($sock);
            die "redis: AUTH failed: $r\n" if ref $r eq 'Identity::Test::RedisError';
        }
        print $sock _resp_encode(@cmd);
        _resp_read($sock);
    };
    my $err = $@;
    alarm $prev;
    close $sock;
    die $err if $err;
    if (ref $reply eq 'Identity::Test::RedisError') {
        $self->{redis_error} = $reply->message;
        return undef;
    }
    return $reply;
}

# ------------------------------------------------------------ redis cluster

# a port P below 55535 whose cluster bus port P + 10000 is free too; both
# are remembered as used
sub _cluster_port {
    for (1 .. 200) {
        my $port = free_port();
        next if $port >= 55535 || $used_ports{$port + 10000};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port + 10000,
            Proto => 'tcp', Listen => 1, ReuseAddr => 1) or next;
        close $s;
        $used_ports{$port + 10000}++;
        return $port;
    }
    die "no free port pair (P, P+10000) found";
}

# commands sent in order on one connection to the cluster node at PORT (AUTH
# first when the cluster has a password); returns the last reply, error
# replies as Identity::Test::RedisError objects.  Dies if it cannot connect.
sub _cluster_call {
    my ($self, $port, @cmds) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or die "redis: cannot connect to port $port: $!\n";
    unshift @cmds, ['AUTH', $self->{cluster_password}] if defined $self->{cluster_password};
    local $SIG{ALRM} = sub { die "redis: timeout\n" };
    local $SIG{PIPE} = 'IGNORE';    # a node killed meanwhile: an error, not the end
    my $prev = alarm 10;
    my @replies = eval {
        print $sock join '', map { _resp_encode(@$_) } @cmds;
        map { _resp_read($sock) } @cmds;
    };
    my $err = $@;
    alarm $prev;
    close $sock;
    die $err if $err;
    shift @replies if defined $self->{cluster_password};
    return $replies[-1];
}

# one command to the node at PORT, as redis() answers it
sub cluster_at {
    my ($self, $port, @cmd) = @_;
    delete $self->{redis_error};
    my $reply = $self->_cluster_call($port, \@cmd);
    if (ref $reply eq 'Identity::Test::RedisError') {
        $self->{redis_error} = $reply->message;
        return undef;
    }
    return $reply;
}

# true once the replica at REPLICA has everything the primary at PRIMARY had
# written when asked (their replication offsets), TIMEOUT seconds at most;
# WAIT cannot tell it: it counts only its own connection's writes.
# cluster => 1 asks the cluster's nodes (cluster_at) instead of redis_at.
sub wait_replicated {
    my ($self, $primary, $replica, %o) = @_;
    my $call = $o{cluster} ? sub { $self->cluster_at(@_) } : sub { $self->redis_at(@_) };
    my ($want) = ($call->($primary, 'INFO', 'replication') // '') =~ /master_repl_offset:(\d+)/;
    return 0 unless defined $want;
    my $end = time + ($o{timeout} // 10);
    while (time < $end) {
        my ($got) = ($call->($replica, 'INFO', 'replication') // '') =~ /slave_repl_offset:(\d+)/;
        return 1 if defined $got && $got >= $want;
        sleep 0.05;
    }
    return 0;
}

sub _cluster_die {
    my ($self, $what) = @_;
    die "$what\n" . join '', map { "--- $_->{name} (port $_->{port}):\n" . _slurp("$_->{dir}/log") }
        @{$self->{cluster_nodes} || []};
}

# start_cluster(primaries => 3, replicas => 0, args => [...], password => PW,
# tls => {...}): see the POD
sub start_cluster {
    my ($self, %opt) = @_;
    die "cluster already started\n" if $self->{cluster_nodes};
    my $primaries = $opt{primaries} // 3;
    my $replicas = $opt{replicas} // 0;
    my @args = @{$opt{args} || []};
    my $password = $opt{password};
    for my $i (0 .. $#args - 1) {
        $password //= $args[$i + 1] if $args[$i] eq '--requirepass';
    }
    push @args, '--requirepass', $password, '--masterauth', $password
        if defined $opt{password};
    $self->{cluster_password} = $password;
    my $tls = $opt{tls};
    my (@tls_args, @tls_cli);
    if ($tls) {
        @tls_args = ('--tls-cert-file', $tls->{cert}, '--tls-key-file', $tls->{key},
            '--tls-ca-cert-file', $tls->{ca}, '--tls-cluster', 'yes',
            '--tls-replication', 'yes', '--tls-auth-clients', $tls->{auth_clients} // 'no');
        @tls_cli = ('--tls', '--cacert', $tls->{ca});
        push @tls_cli, '--cert', $tls->{client_cert} // $tls->{cert},
            '--key', $tls->{client_key} // $tls->{key}
            if ($tls->{auth_clients} // 'no') ne 'no';
    }
    $self->{cluster_nodes} = [];
    for my $i (1 .. $primaries * (1 + $replicas)) {
        my $name = "cluster$i";
        my $port = _cluster_port();
        # with tls-cluster the bus is on the TLS port + 10000
        my $tls_port = $tls ? _cluster_port() : undef;
        my $dir = "$self->{dir}/$name";
        make_path($dir);
        my $node = { name => $name, port => $port, dir => $dir, role => 'master',
            ($tls ? (tls_port => $tls_port) : ()),
            cmd => ['redis-server', '--port', $port, '--bind', '127.0.0.1',
                '--daemonize', 'no', '--dir', $dir, '--cluster-enabled', 'yes',
                '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', 2000,
                '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', 0,
                '--repl-ping-replica-period', 1,
                ($tls ? ('--tls-port', $tls_port, @tls_args) : ()), @args] };
        push @{$self->{cluster_nodes}}, $node;
        $self->_spawn($name, $node->{cmd}, "$dir/log", "$dir/log");
    }
    for my $node (@{$self->{cluster_nodes}}) {
        local $self->{cluster_nodes} = [$node];
        my $end = time + 10;
        while (1) {
            my $pong = eval { $self->_cluster_call($node->{port}, ['PING']) };
            last if defined $pong && $pong eq 'PONG';
            $self->_cluster_die("$node->{name} exited") unless $self->_running($node->{name});
            $self->_cluster_die("$node->{name} did not answer PING") if time > $end;
            sleep 0.05;
        }
    }
    # over TLS when the bus is: the nodes then meet on their TLS ports
    my @create = ('redis-cli', @tls_cli, '--cluster', 'create',
        (map { '127.0.0.1:' . ($_->{tls_port} // $_->{port}) } @{$self->{cluster_nodes}}),
        '--cluster-replicas', $replicas, '--cluster-yes');
    push @create, '-a', $password, '--no-auth-warning' if defined $password;
    my $log = "$self->{dir}/cluster-create.log";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log or die "$log: $!";
        open STDERR, '>&', \*STDOUT;
        exec @create or print STDERR "exec redis-cli: $!\n";
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $out = _slurp($log);
    $? == 0 or $self->_cluster_die("redis-cli --cluster create failed:\n$out");
    $self->_cluster_wait(20, sub { $self->_cluster_converged($replicas) })
        or $self->_cluster_die("the cluster did not converge in 20 s:\n"
            . ($self->{cluster_why} // '') . "\n" . $out);
    for my $node (@{$self->{cluster_nodes}}) {
        $node->{id} = $self->cluster_at($node->{port}, 'CLUSTER', 'MYID');
        my $role = $self->cluster_at($node->{port}, 'ROLE');
        $node->{role} = $role->[0];
        # a replica's ROLE names its primary's TLS port under tls-replication
        ($node->{primary}) = map { $_->{name} } grep { $_->{port} == $role->[2]
            || ($_->{tls_port} // 0) == $role->[2] } @{$self->{cluster_nodes}}
            if $role->[0] eq 'slave';
    }
    $self->{cluster_ports} = [map { $_->{port} } grep { $_->{role} eq 'master' }
        @{$self->{cluster_nodes}}];
    $self->{cluster_tls_ports} = [map { $_->{tls_port} } grep { $_->{role} eq 'master' }
        @{$self->{cluster_nodes}}] if $tls;
    delete $self->{cluster_map};
    return @{$self->{cluster_ports}};
}

sub _cluster_wait {
    my ($self, $timeout, $cond) = @_;
    my $end = time + $timeout;
    while (1) {
        return 1 if $cond->();
        return 0 if time > $end;
        sleep 0.1;
    }
}

# CLUSTER SLOTS of the node at PORT as "start-end:primary[/replica,...] ..."
# (undef if it does not answer), and the slots it covers
sub _cluster_slots_text {
    my ($self, $port) = @_;
    my $slots = eval { $self->_cluster_call($port, ['CLUSTER', 'SLOTS']) };
    return (undef, 0) unless ref $slots eq 'ARRAY';
    my $covered = 0;
    my @ranges;
    for my $r (sort { $a->[0] <=> $b->[0] } @$slots) {
        my ($from, $to, $primary, @replicas) = @$r;
        $covered += $to - $from + 1;
        push @ranges, "$from-$to:$primary->[1]"
            . (@replicas ? '/' . join(',', sort map { $_->[1] } @replicas) : '');
    }
    return (join(' ', @ranges), $covered);
}

# every live node says cluster_state:ok and has the same slot table,
# covering all 16384 slots, with REPLICAS replicas per range; replicas are
# in sync
sub _cluster_converged {
    my ($self, $replicas) = @_;
    my %tables;
    for my $node ($self->_cluster_live) {
        my $info = eval { $self->_cluster_call($node->{port}, ['CLUSTER', 'INFO']) } // '';
        if ($info !~ /^cluster_state:ok\r?$/m) {
            $self->{cluster_why} = "$node->{name}: not cluster_state:ok";
            return 0;
        }
        my ($text, $covered) = $self->_cluster_slots_text($node->{port});
        if (!defined $text || $covered != 16384) {
            $self->{cluster_why} = "$node->{name}: covers $covered slots";
            return 0;
        }
        if (defined $replicas && grep { tr{,/}{} != $replicas } split / /, $text) {
            $self->{cluster_why} = "$node->{name}: not $replicas replicas per range: $text";
            return 0;
        }
        my $role = eval { $self->_cluster_call($node->{port}, ['ROLE']) };
        if (ref $role eq 'ARRAY' && $role->[0] eq 'slave' && $role->[3] ne 'connected') {
            $self->{cluster_why} = "$node->{name}: replica $role->[3]";
            return 0;
        }
        $tables{$text}++;
    }
    if (keys %tables != 1) {
        $self->{cluster_why} = "the nodes disagree:\n" . join "\n", sort keys %tables;
        return 0;
    }
    delete $self->{cluster_why};
    return 1;
}

# the nodes not stopped; in a forked child (a test may run migrate_slot in
# one) the nodes are not its children: kill 0 then
sub _cluster_live {
    my ($self) = @_;
    return grep {
        my $pid = $self->{procs}{$_->{name}};
        $self->{owner} == $$ ? $self->_running($_->{name}) : $pid && kill 0, $pid;
    } @{$self->{cluster_nodes} || []};
}

sub cluster_ports { @{$_[0]{cluster_ports} || []} }
sub cluster_nodes { @{$_[0]{cluster_nodes} || []} }
sub cluster_node {
    my ($self, $which) = @_;
    my ($node) = grep { $_->{name} eq $which || $_->{port} eq $which }
        @{$self->{cluster_nodes} || []};
    return $node;
}

sub kill_cluster_node { my ($self, $name, $sig) = @_; $self->_stop($name, $sig // 'KILL', 10) }

# starts a stopped node again, on its port and in its directory (its
# nodes.conf makes it rejoin)
sub restart_cluster_node {
    my ($self, $name) = @_;
    my $node = $self->cluster_node($name) or die "no cluster node $name\n";
    $self->_spawn($name, $node->{cmd}, "$node->{dir}/log", "$node->{dir}/log");
    my $end = time + 10;
    while (1) {
        my $pong = eval { $self->_cluster_call($node->{port}, ['PING']) };
        return $node->{port} if defined $pong && $pong eq 'PONG';
        die "$name exited:\n" . _slurp("$node->{dir}/log") unless $self->_running($name);
        die "$name did not answer PING:\n" . _slurp("$node->{dir}/log") if time > $end;
        sleep 0.05;
    }
}

# CRC16-XMODEM (polynomial 0x1021, initial value 0) of the key, or of its
# hash tag: what is between the first "{" and the first "}" after it, if
# that is not empty
sub key_slot {
    shift if ref $_[0] || ($_[0] // '') eq __PACKAGE__;
    my ($key) = @_;
    utf8::encode($key) if utf8::is_utf8($key);
    my $open = index $key, '{';
    if ($open >= 0) {
        my $close = index $key, '}', $open + 1;
        $key = substr($key, $open + 1, $close - $open - 1) if $close > $open + 1;
    }
    my $crc = 0;
    for my $byte (unpack 'C*', $key) {
        $crc ^= $byte << 8;
        for (1 .. 8) {
            $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) & 0xffff : ($crc << 1) & 0xffff;
        }
    }
    return $crc % 16384;
}

# the first live node's slot table: [slot => primary port] (16384 entries)
sub _cluster_map {
    my ($self) = @_;
    for my $node ($self->_cluster_live) {
        my $slots = eval { $self->_cluster_call($node->{port}, ['CLUSTER', 'SLOTS']) };
        next unless ref $slots eq 'ARRAY';
        my @map;
        @map[$_->[0] .. $_->[1]] = ($_->[2][1]) x ($_->[1] - $_->[0] + 1) for @$slots;
        return \@map;
    }
    die "no cluster node answers CLUSTER SLOTS\n";
}

sub cluster_owner {
    my ($self, $slot) = @_;
    return $self->_cluster_map->[$slot];
}

my %keyless = map { $_ => 1 } qw(PING INFO DBSIZE KEYS SCAN RANDOMKEY FLUSHALL
    FLUSHDB CLUSTER TIME SCRIPT FUNCTION CONFIG CLIENT ROLE WAIT ECHO LASTSAVE);

# the key a command is routed by: argv[1], or for EVAL-like commands the
# first key; undef when it has none
sub _command_key {
    my ($name, @args) = @_;
    $name = uc $name;
    if ($name =~ /^(?:EVAL|EVALSHA|EVAL_RO|EVALSHA_RO|FCALL|FCALL_RO)\z/) {
        return ($args[1] // 0) > 0 ? $args[2] : undef;
    }
    return undef if $keyless{$name} || !@args;
    return $args[0];
}

sub redis_cluster {
    my ($self, @cmd) = @_;
    my $ports = $self->{cluster_ports} or die "cluster not started\n";
    delete $self->{redis_error};
    my $key = _command_key(@cmd);
    my $map = $self->{cluster_map} //= $self->_cluster_map;
    my $slot = defined $key ? key_slot($key) : 0;
    my $port = $map->[$slot];
    my @calls = (\@cmd);
    my $refreshed = 0;
    for (0 .. 5) {
        die "redis: no node serves slot $slot\n" unless $port;
        my $reply = eval { $self->_cluster_call($port, @calls) };
        if (!defined $reply && $@) {
            # a node gone (a failover): ask the others once
            die $@ if $refreshed++;
            $self->{cluster_redirects}{refresh}++;
            $map = $self->{cluster_map} = $self->_cluster_map;
            $port = $map->[$slot];
            next;
        }
        if (ref $reply ne 'Identity::Test::RedisError') {
            return $reply;
        }
        my $msg = $reply->message;
        if ($_ < 5 && $msg =~ /^MOVED (\d+) [^:\s]*:(\d+)/) {
            $self->{cluster_redirects}{MOVED}++;
            $map->[$1] = $port = $2;
            @calls = (\@cmd);
        } elsif ($_ < 5 && $msg =~ /^ASK \d+ [^:\s]*:(\d+)/) {
            $self->{cluster_redirects}{ASK}++;
            $port = $1;
            @calls = (['ASKING'], \@cmd);
        } else {
            $self->{redis_error} = $msg;
            return undef;
        }
    }
}

# every key matching PATTERN on every primary (SCAN ... MATCH), sorted; in
# scalar context, how many
sub cluster_keys {
    my ($self, $pattern) = @_;
    my %keys;
    for my $port (@{$self->{cluster_ports} || []}) {
        my $cursor = 0;
        do {
            my $r = $self->_cluster_call($port, ['SCAN', $cursor, 'MATCH', $pattern // '*',
                'COUNT', 1000]);
            die "SCAN on port $port: $r\n" unless ref $r eq 'ARRAY';
            $cursor = $r->[0];
            $keys{$_}++ for @{$r->[1]};
        } while ($cursor != 0);
    }
    return wantarray ? sort keys %keys : scalar keys %keys;
}

sub _cluster_ok {
    my ($self, $port, @cmd) = @_;
    my $reply = $self->_cluster_call($port, \@cmd);
    die "@cmd on port $port: $reply\n" if ref $reply eq 'Identity::Test::RedisError';
    return $reply;
}

# resharding by hand, the steps redis-cli --cluster reshard takes:
# migrate_slot_begin marks the slot IMPORTING on TO and MIGRATING on FROM
# and returns a handle; each migrate_slot_step moves up to BATCH keys and
# returns how many (0: none left); migrate_slot_end gives the slot to TO
# on every primary, waits until every node says so, and returns the number
# of keys moved
sub migrate_slot_begin {
    my ($self, $slot, $from, $to, %opt) = @_;
    my $m = { slot => $slot, from => $from, to => $to, moved => 0,
        batch => $opt{batch} // 10, replace => $opt{replace},
        from_id => $self->_cluster_ok($from, 'CLUSTER', 'MYID'),
        to_id => $self->_cluster_ok($to, 'CLUSTER', 'MYID') };
    $self->_cluster_ok($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $m->{from_id});
    $self->_cluster_ok($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $m->{to_id});
    return $m;
}

sub migrate_slot_step {
    my ($self, $m, $batch) = @_;
    my $keys = $self->_cluster_ok($m->{from}, 'CLUSTER', 'GETKEYSINSLOT', $m->{slot},
        $batch // $m->{batch});
    return 0 unless @$keys;
    my @auth = defined $self->{cluster_password} ? ('AUTH', $self->{cluster_password}) : ();
    # with tls-cluster, MIGRATE speaks TLS: to the target's TLS port
    my $to = $self->cluster_node($m->{to});
    $self->_cluster_ok($m->{from}, 'MIGRATE', '127.0.0.1',
        $to->{tls_port} // $to->{port}, '', 0, 5000,
        ($m->{replace} ? 'REPLACE' : ()), @auth, 'KEYS', @$keys);
    $m->{moved} += @$keys;
    return scalar @$keys;
}

sub migrate_slot_end {
    my ($self, $m) = @_;
    my @cmd = ('CLUSTER', 'SETSLOT', $m->{slot}, 'NODE', $m->{to_id});
    $self->_cluster_ok($m->{to}, @cmd);
    $self->_cluster_ok($m->{from}, @cmd);
    for my $port (grep { $_ != $m->{to} && $_ != $m->{from} } $self->_cluster_primaries) {
        $self->_cluster_ok($port, @cmd);
    }
    $self->{cluster_ports} = [$self->_cluster_primaries];
    delete $self->{cluster_map};
    $self->_cluster_wait(20, sub {
        !grep { my $map = eval { local $self->{cluster_nodes} = [$_]; $self->_cluster_map };
                !$map || ($map->[$m->{slot}] // 0) != $m->{to} }
            $self->_cluster_live })
        or die "the nodes do not agree that slot $m->{slot} is on port $m->{to}\n";
    return $m->{moved};
}

# ports of the live nodes that are primaries now (ROLE)
sub _cluster_primaries {
    my ($self) = @_;
    return map { $_->{port} } grep {
        my $role = eval { $self->_cluster_call($_->{port}, ['ROLE']) };
        $_->{role} = $role->[0] if ref $role eq 'ARRAY';
        ref $role eq 'ARRAY' && $role->[0] eq 'master';
    } $self->_cluster_live;
}

sub migrate_slot {
    my ($self, $slot, $from, $to, %opt) = @_;
    my $m = $self->migrate_slot_begin($slot, $from, $to, %opt);
    while ($self->migrate_slot_step($m)) {
        sleep $opt{pause} if $opt{pause};
    }
    return $self->migrate_slot_end($m);
}

# ------------------------------------------------------------ identity provider

sub start_idp {
    my ($self, %config) = @_;
    my $port = $self->{idp_port} //= free_port();
    my $conf = $self->write_file('idp.json', JSON::PP->new->canonical->encode(\%config));
    my $out = "$self->{dir}/idp.out";
    unlink $out;
    $self->_spawn('idp', ['node', "$ROOT/t/idp/oidc.mjs", '--port', $port, '--config', $conf],
        $out, "$self->{dir}/idp.err");
    my $end = time + 30;
    while (time < $end) {
        if ($self->read_file($out) =~ /^READY (\S+)/m) {
            return $self->{idp_url} = $1;
        }
        die "IdP exited:\n" . $self->read_file('idp.err') unless $self->_running('idp');
        sleep 0.05;
    }
    die "IdP did not become ready:\n" . $self->read_file('idp.err');
}

sub stop_idp { $_[0]->_stop('idp', 'TERM', 5) }
sub idp_url { $_[0]{idp_url} }
sub idp_port { $_[0]{idp_port} }

sub _idp_json {
    my ($self, $path, %params) = @_;
    my $q = join '&', map { "$_=" . Identity::Test::UA::uri_escape($params{$_}) } sort keys %params;
    my $res = Identity::Test::UA->new->get("$self->{idp_url}$path" . ($q ? "?$q" : ''));
    die "IdP $path: $res->{status} $res->{body}\n" unless $res->{status} == 200;
    return decode_json($res->{body});
}

sub idp_mode { my ($self, %p) = @_; $self->_idp_json('/__test/mode', %p) }
sub idp_stats { my ($self, %p) = @_; $self->_idp_json('/__test/stats', %p) }
sub idp_logout_token { my ($self, %p) = @_; $self->_idp_json('/__test/logout_token', %p)->{logout_token} }

# ------------------------------------------------------------ nginx

sub module_path { $ENV{IDENTITY_MODULE} // "$ROOT/build/ngx_http_identity_module.so" }

sub nginx_conf {
    my ($self, $text) = @_;
    $text =~ s/%%TESTDIR%%/$self->{dir}/g;
    $text =~ s/%%MODULE%%/module_path()/ge;
    $text =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    # Run as root (CI, a fresh machine), the workers would be nobody, who
    # cannot write client_body temp files or read fixtures in a checkout
    # under /root.  Appended, so that the line numbers nginx reports stay.
    $text .= "\nuser root;  # the harness runs as root\n"
        if $> == 0 && $text !~ /^\s*user\s/m;
    $self->write_file('nginx.conf', $text);
    return $text;
}

sub _nginx_cmd {
    my ($self, $errlog, @extra) = @_;
    return ($NGINX, '-p', "$self->{dir}/", '-c', "$self->{dir}/nginx.conf", '-e', $errlog, @extra);
}

# make test-asan (scripts/test-asan.sh): nginx alone gets libasan preloaded,
# the module there being built with ASan and UBSan; reports go to
# TESTDIR/sanitizer.PID, which check_sanitizer() turns into a failure.
sub _sanitizer_env {
    my ($self) = @_;
    my $lib = $ENV{IDENTITY_ASAN_PRELOAD} or return ();
    my $log = "$self->{dir}/sanitizer";
    my $supp = $ENV{IDENTITY_ASAN_SUPPRESSIONS};
    if ($supp && $self->read_file('nginx.conf') =~ /^\s*type\s+saml\s*;/m) {
        # xmlsec's lost BIO, which only a libcrypto frame names (see there)
        (my $saml = $supp) =~ s/asan\.supp\z/asan-saml.supp/;
        $supp = $self->write_file('lsan.supp',
            $self->read_file($supp) . $self->read_file($saml));
    }
    return (
        LD_PRELOAD => $lib,
        # fast unwinding (the default): the slow one makes lasso and
        # libxml2 ten times slower; stacks stop in libraries built without
        # frame pointers, which t/asan.supp allows for
        ASAN_OPTIONS => "detect_leaks=1:log_path=$log"
            . ':detect_odr_violation=0:handle_abort=1',
        LSAN_OPTIONS => ($supp ? "suppressions=$supp:" : '')
            . 'print_suppressions=0',
        UBSAN_OPTIONS => "print_stacktrace=1:log_path=$log",
    );
}

# The reports: TESTDIR/sanitizer.PID files, and those written to stderr,
# which nginx points at its error log (LeakSanitizer's, in workers).
sub sanitizer_reports {
    my ($self) = @_;
    return () unless $ENV{IDENTITY_ASAN_PRELOAD};
    my @reports = map { $self->read_file($_) } glob "$self->{dir}/sanitizer.*";
    for my $log (grep { -f } glob "$self->{dir}/{error.log,nginx.stderr,nginx-t.out}") {
        my $text = $self->read_file($log);
        push @reports, $1 while $text =~ /^(==\d+==ERROR: \w+Sanitizer.*?^SUMMARY: [^\n]*)/msg;
        push @reports, $1 while $text =~ /^(\S+:\d+:\d+: runtime error: [^\n]*)/mg;
    }
    my $conns = $self->read_file('nginx.conf') =~ /worker_connections\s+(\d+)/
        ? $1 : 512;
    return grep { /\S/ && !_nginx_own_leaks($_, $conns) } @reports;
}

# nginx 1.22's own memory, which LeakSanitizer may report at exit and which a
# suppression cannot name (with fast unwinding the stacks stop at ngx_alloc):
# - the PCRE2 compile context ngx_regex.c makes (72 bytes, with ngx_alloc) at
#   the first regex compiled, which its ngx_regex_cleanup() "frees" with the
#   pool allocator set, a no-op (later nginx calls ngx_regex_malloc_init(NULL)
#   first).  Plain nginx with "location ~ \.php$" reports it too.
# - a worker's connection and read and write event arrays, which
#   ngx_event_process_init() allocates (worker_connections times 240, 96 and
#   96 bytes on amd64: nginx's debug log shows the three mallocs) and which
#   ngx_worker_process_exit() never frees: it destroys the cycle's pool and
#   calls exit().  They point at each other, so whether LeakSanitizer finds
#   them reachable depends on stale pointers left in epoll's event list: the
#   same test reports them in one run and not in the next.
# A report is dropped only if every leak in it is one of these, each
# allocated by ngx_alloc straight from malloc.
sub _nginx_own_leaks {
    my ($report, $conns) = @_;
    my @leaks = $report =~ /^((?:Direct|Indirect) leak of \d+ byte\(s\) in \d+ object\(s\) allocated from:\n(?:\s+#\d+ [^\n]*\n)+)/mg;
    return 0 unless @leaks;
    my %arrays = map { $_ * $conns => 1 } 96, 192, 240, 336, 432;
    my $events = 0;
    for my $leak (@leaks) {
        my ($bytes, $objects) = $leak =~ /leak of (\d+) byte\(s\) in (\d+) object/;
        my @frames = $leak =~ /^\s+#\d+ \S+ in (\S+)/mg;
        return 0 unless @frames == 2
            && $frames[0] =~ /^(?:__interceptor_)?malloc$/
            && $frames[1] eq 'ngx_alloc';
        if ($bytes == 72 && $objects == 1) {
            next;
        }
        return 0 unless $arrays{$bytes} && $objects <= 3;
        $events += $bytes;
    }
    return $events <= 432 * $conns;
}

sub check_sanitizer {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->{sanitizer_checked} = 1;
    my @reports = $self->sanitizer_reports;
    Test::More::ok(!@reports, 'no sanitizer report')
        or Test::More::diag(join "\n", "$self->{dir}:", @reports);
}

sub start_nginx {
    my ($self) = @_;
    my $dir = $self->{dir};
    my %env = $self->_sanitizer_env;
    local @ENV{keys %env} = values %env;
    $self->{nginx_started} = 1;
    my $pid = $self->_spawn('nginx', [$self->_nginx_cmd("$dir/error.log")],
        "$dir/nginx.stderr", "$dir/nginx.stderr");
    # under ASan, on a busy machine, loading the configuration takes longer
    my $wait = %env ? 60 : 10;
    return 1 if _wait_port($self->port('nginx'), $wait, sub { $self->_running('nginx') });
    my $why = $self->_running('nginx') ? "nginx did not listen in ${wait}s" : 'nginx exited';
    $self->_stop('nginx', 'TERM', 3);
    die "$why:\n" . $self->read_file('nginx.stderr') . $self->error_log;
}

sub stop_nginx { $_[0]->_stop('nginx', 'QUIT', 10) }

# Sends HUP and waits until new workers started; returns 0 if the reload failed.
sub reload_nginx {
    my ($self) = @_;
    my $pid = $self->{procs}{nginx} or die "nginx not running\n";
    my $offset = length $self->error_log;
    kill 'HUP', $pid;
    my $end = time + 10;
    while (time < $end) {
        my $new = substr($self->error_log, $offset);
        return 0 if $new =~ /\[emerg\]/;
        return 1 if $new =~ /reconfiguring.*start worker process/s;
        sleep 0.05;
    }
    return 0;
}

sub nginx_test_conf {
    my ($self) = @_;
    my $out = "$self->{dir}/nginx-t.out";
    my %env = $self->_sanitizer_env;
    unlink $out;
    # nginx -t returns from main() with its configuration cycle alive in a
    # local variable and never frees it: leaks are checked where nginx
    # frees its cycle, in the master and the workers as they exit
    $env{ASAN_OPTIONS} =~ s/detect_leaks=1/detect_leaks=0/ if %env;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        @ENV{keys %env} = values %env;
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        exec $self->_nginx_cmd('stderr', '-t') or exit 127;
    }
    waitpid $pid, 0;
    return ($? >> 8, $self->read_file($out));
}

sub error_log { $_[0]->read_file('error.log') }

sub log_like {
    my ($self, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::like($self->error_log, $re, $name);
}

sub check_log {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    # the level of the line, not text a client got quoted further on
    my @bad = grep { m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(alert|emerg)\]} }
        split /\n/, $self->error_log;
    Test::More::ok(!@bad, 'no alert/emerg in error.log') or Test::More::diag(join "\n", @bad);
}

sub done {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->stop_all;
    $self->check_log if $self->{nginx_started};
    if ($ENV{IDENTITY_ASAN_PRELOAD}) {
        # nginx writes leak reports as it exits: every nginx of this test
        for my $h (grep { $_->{owner} == $$ && $_->{nginx_started} } @live) {
            $h->stop_all;
            $h->check_sanitizer;
        }
    }
    Test::More::done_testing();
}

# ------------------------------------------------------------ helpers

sub b64url {
    my $s = encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+\z//;
    return $s;
}

sub b64url_decode {
    my $s = $_[0];
    $s =~ tr{-_}{+/};
    $s .= '=' x (-length($s) % 4);
    return decode_base64($s);
}

sub random_token {
    my $n = shift // 32;
    open my $fh, '<', '/dev/urandom' or die "urandom: $!";
    my $buf;
    read $fh, $buf, $n;
    return b64url($buf);
}

# Returns (code_verifier, code_challenge) for PKCE S256.
sub pkce_pair {
    my $verifier = random_token(32);
    return ($verifier, b64url(sha256($verifier)));
}

# Returns (header, payload) hashrefs of a compact JWS, without verifying it.
sub jwt_decode {
    my ($h, $p) = split /\./, shift;
    return map { decode_json(b64url_decode($_)) } $h, $p;
}

sub http_raw {
    my ($port, $text, %opt) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or die "connect to $port: $!\n";
    binmode $sock;
    syswrite $sock, $text if length $text;
    return Identity::Test::UA::_read_all($sock, $opt{timeout} // 5, 1);
}

package Identity::Test::RedisError;

use overload '""' => sub { $_[0]{message} }, fallback => 1;

sub new { bless { message => $_[1] }, $_[0] }
sub message { $_[0]{message} }

package Identity::Test::UA;

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use Time::Local qw(timegm);

my %DEFAULT_HEADERS = (
    'User-Agent' => 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 '
        . '(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    'Accept' => 'text/html,application/xhtml+xml,application/xml;q=0.9,'
        . 'image/avif,image/webp,*/*;q=0.8',
    'Accept-Language' => 'en-US,en;q=0.9',
    'Sec-Fetch-Mode' => 'navigate',
    'Sec-Fetch-Dest' => 'document',
    'Upgrade-Insecure-Requests' => '1',
);

sub new {
    my ($class, %opt) = @_;
    my $self = bless { jar => [], trace => [], timeout => $opt{timeout} // 10,
        headers => { %DEFAULT_HEADERS } }, $class;
    _merge_headers($self->{headers}, $opt{headers});
    return $self;
}

sub uri_escape {
    my $s = shift // '';
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub uri_unescape {
    my $s = shift;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

sub form_encode {
    my $f = shift;
    return join '&', map { uri_escape($_) . '=' . uri_escape($f->{$_}) } sort keys %$f;
}

# Case-insensitive header merge; an undef value removes the header.
sub _merge_headers {
    my ($into, $from) = @_;
    for my $k (keys %{$from || {}}) {
        delete $into->{$_} for grep { lc $_ eq lc $k } keys %$into;
        $into->{$k} = $from->{$k} if defined $from->{$k};
    }
}

sub parse_url {
    my $url = shift;
    $url =~ m{^http://([^/:?#]+)(?::(\d+))?([^#]*)} or die "unsupported URL: $url\n";
    my ($host, $port, $path) = ($1, $2 // 80, $3);
    $path = "/$path" unless $path =~ m{^/};
    return ($host, $port, $path);
}

sub resolve_url {
    my ($base, $ref) = @_;
    return $ref if $ref =~ m{^https?://}i;
    my ($scheme_host) = $base =~ m{^(https?://[^/?#]+)}i;
    return "http:$ref" if $ref =~ m{^//};
    return "$scheme_host$ref" if $ref =~ m{^/};
    my ($path) = $base =~ m{^https?://[^/?#]+([^?#]*)}i;
    $path ||= '/';
    return "$scheme_host$path$ref" if $ref =~ /^\?/;
    $path =~ s{[^/]*\z}{};
    return "$scheme_host$path$ref";
}

# ------------------------------------------------------------ cookies

sub _parse_date {
    my $s = shift;
    my %mon; @mon{qw(jan feb mar apr may jun jul aug sep oct nov dec)} = 0 .. 11;
    $s =~ /(\d{1,2})[ -]([A-Za-z]{3})[ -](\d{2,4})\s+(\d{1,2}):(\d{2}):(\d{2})/ or return undef;
    my $year = $3 < 100 ? $3 + ($3 < 70 ? 2000 : 1900) : $3;
    my $m = $mon{lc $2} // return undef;
    return timegm($6, $5, $4, $1, $m, $year);
}

sub _store_cookie {
    my ($self, $raw, $host, $path) = @_;
    my ($pair, @attrs) = split /;\s*/, $raw;
    my ($name, $value) = $pair =~ /^\s*([^=]+?)\s*=\s*(.*?)\s*$/ or return;
    my %c = (name => $name, value => $value, domain => lc $host, host_only => 1);
    ($c{path} = $path) =~ s{/[^/]*\z}{};
    $c{path} = '/' if $c{path} eq '';
    my $max_age;
    for (@attrs) {
        my ($k, $v) = /^\s*([^=]+?)\s*(?:=\s*(.*?)\s*)?$/ or next;
        $k = lc $k;
        if ($k eq 'domain' && defined $v && length $v) {
            ($c{domain} = lc $v) =~ s/^\.//;
            $c{host_only} = 0;
        } elsif ($k eq 'path' && defined $v && $v =~ m{^/}) {
            $c{path} = $v;
        } elsif ($k eq 'max-age' && defined $v && $v =~ /^-?\d+$/) {
            $max_age = $v;
        } elsif ($k eq 'expires' && defined $v) {
            $c{expires} = _parse_date($v);
        }
    }
    $c{expires} = time + $max_age if defined $max_age;
    @{$self->{jar}} = grep { !($_->{name} eq $c{name} && $_->{domain} eq $c{domain}
        && $_->{path} eq $c{path}) } @{$self->{jar}};
    push @{$self->{jar}}, \%c unless defined $c{expires} && $c{expires} <= time;
}

sub _path_match {
    my ($cpath, $path) = @_;
    return 1 if $cpath eq $path;
    return 0 unless index($path, $cpath) == 0;
    return $cpath =~ m{/\z} || substr($path, length $cpath, 1) eq '/';
}

sub _cookie_header {
    my ($self, $host, $path) = @_;
    $host = lc $host;
    $path =~ s/[?#].*//s;
    my @c = grep {
        (!defined $_->{expires} || $_->{expires} > time)
        && ($_->{host_only} ? $host eq $_->{domain}
            : ($host eq $_->{domain} || $host =~ /\.\Q$_->{domain}\E\z/))
        && _path_match($_->{path}, $path)
    } @{$self->{jar}};
    @c = sort { length $b->{path} <=> length $a->{path} } @c;
    return join '; ', map { "$_->{name}=$_->{value}" } @c;
}

sub cookie {
    my ($self, $name, $host) = @_;
    for (reverse @{$self->{jar}}) {
        next if $_->{name} ne $name || (defined $host && $_->{domain} ne lc $host);
        next if defined $_->{expires} && $_->{expires} <= time;
        return $_->{value};
    }
    return undef;
}

sub cookies { [grep { !defined $_->{expires} || $_->{expires} > time } @{$_[0]{jar}}] }

sub set_cookie {
    my ($self, $name, $value, %attr) = @_;
    my $raw = "$name=$value" . join '', map { "; $_=$attr{$_}" } grep { $_ ne 'host' } keys %attr;
    $self->_store_cookie($raw, $attr{host} // '127.0.0.1', '/');
}

sub clear_cookies { $_[0]{jar} = [] }

sub delete_cookie {
    my ($self, $name, $host) = @_;
    @{$self->{jar}} = grep { $_->{name} ne $name
        || (defined $host && $_->{domain} ne lc $host) } @{$self->{jar}};
}

# ------------------------------------------------------------ requests

sub start_request {
    my ($self, $method, $url, %opt) = @_;
    my ($host, $port, $path) = parse_url($url);
    my %h = %{$self->{headers}};
    my $body = $opt{body};
    if ($opt{form}) {
        $body = form_encode($opt{form});
        $h{'Content-Type'} = 'application/x-www-form-urlencoded';
    }
    my $cookie = $self->_cookie_header($host, $path);
    $h{Cookie} = $cookie if length $cookie;
    _merge_headers(\%h, $opt{headers});
    $h{'Content-Length'} = length $body
        if defined $body && !grep { lc $_ eq 'content-length' } keys %h;
    my ($vhost) = map { delete $h{$_} } grep { lc $_ eq 'host' } keys %h;    # a Host of one's own
    my $req = "$method $path HTTP/1.1\r\nHost: " . ($vhost // ($port == 80 ? $host : "$host:$port")) . "\r\n"
        . join('', map { "$_: $h{$_}\r\n" } sort keys %h)
        . "Connection: close\r\n\r\n" . ($body // '');

    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp',
        Timeout => $self->{timeout}) or die "connect to $host:$port: $!\n";
    binmode $sock;
    syswrite($sock, $req) == length $req or die "write to $host:$port: $!\n";
    return bless { ua => $self, sock => $sock, method => $method, url => $url,
        host => $host, path => $path, request => $req }, 'Identity::Test::UA::Pending';
}

sub request {
    my ($self, $method, $url, %opt) = @_;
    return $self->start_request($method, $url, %opt)->finish;
}

sub get { my ($self, $url, %opt) = @_; $self->request('GET', $url, %opt) }

sub post_form {
    my ($self, $url, $fields, %opt) = @_;
    return $self->request('POST', $url, form => $fields, %opt);
}

sub _read_all {
    my ($sock, $timeout, $partial_ok) = @_;
    my $sel = IO::Select->new($sock);
    my $end = time + $timeout;
    my $buf = '';
    while (1) {
        my $left = $end - time;
        if ($left <= 0 || !$sel->can_read($left)) {
            last if $partial_ok;
            die "timeout reading response\n";
        }
        my $n = sysread $sock, $buf, 65536, length $buf;
        last if !$n;    # EOF or reset
    }
    close $sock;
    return $buf;
}

sub _dechunk {
    my $in = shift;
    my $out = '';
    while ($in =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $n = hex $1;
        last if $n == 0;
        $out .= substr($in, 0, $n, '');
        $in =~ s/^\r\n//;
    }
    return $out;
}

sub parse_response {
    my ($raw) = @_;
    my %res = (raw => $raw, status => 0, headers => {}, h => {}, body => '', cookies_set => []);
    my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
    return \%res unless defined $head && $head =~ s{^HTTP/\d\.\d (\d{3})[ ]?([^\r\n]*)\r?\n?}{};
    @res{qw(status reason)} = ($1, $2);
    for (split /\r?\n/, $head) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{$res{headers}{lc $k}}, $v;
        $res{h}{lc $k} //= $v;
    }
    $body //= '';
    $body = _dechunk($body) if ($res{h}{'transfer-encoding'} // '') =~ /chunked/i;
    $res{body} = $body;
    $res{cookies_set} = $res{headers}{'set-cookie'} || [];
    return \%res;
}

# Follows Location headers with GET.  List context: ($res, @followed);
# scalar context: the last response.
sub follow {
    my ($self, $res, %opt) = @_;
    my @all = ($res);
    for (1 .. $opt{max} // 20) {
        my $r = $all[-1];
        last unless $r->{status} =~ /^30[12378]$/ && defined $r->{h}{location};
        my $url = resolve_url($r->{url}, $r->{h}{location});
        last if $opt{stop} && $opt{stop}->($url);
        push @all, $self->get($url);
    }
    return wantarray ? @all : $all[-1];
}

# Parses the forms of an HTML page: [{action, method, fields => {name => value}}].
sub forms {
    my ($res) = @_;
    my @forms;
    while ($res->{body} =~ m{<form\b([^>]*)>(.*?)</form>}gis) {
        my ($attrs, $inner) = ($1, $2);
        my %a = _attrs($attrs);
        my %f;
        while ($inner =~ m{<input\b([^>]*)>}gi) {
            my %i = _attrs($1);
            next if !defined $i{name} || ($i{type} // '') =~ /^(submit|button|image)$/i;
            $f{$i{name}} = $i{value} // '';
        }
        push @forms, { action => resolve_url($res->{url}, $a{action} // ''),
            method => uc($a{method} // 'GET'), fields => \%f };
    }
    return \@forms;
}

sub _attrs {
    my $s = shift;
    my %a;
    while ($s =~ /([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/g) {
        my ($k, $v) = (lc $1, $2 // $3 // $4);
        $v =~ s/&#(\d+);/chr $1/ge;
        $v =~ s/&#x([0-9a-fA-F]+);/chr hex $1/ge;
        $v =~ s/&quot;/"/g; $v =~ s/&lt;/</g; $v =~ s/&gt;/>/g; $v =~ s/&amp;/&/g;
        $a{$k} = $v;
    }
    return %a;
}

# Submits the first form (or the first whose action matches $opt{action})
# with its own inputs overridden by %$fields.
sub submit_form {
    my ($self, $res, $fields, %opt) = @_;
    my ($form) = grep { !$opt{action} || $_->{action} =~ $opt{action} } @{forms($res)};
    die "no form found in $res->{url}\n" unless $form;
    my %f = (%{$form->{fields}}, %{$fields || {}});
    return $self->post_form($form->{action}, \%f) if $form->{method} eq 'POST';
    my $url = $form->{action};
    $url =~ s/\?.*//s;
    return $self->get("$url?" . form_encode(\%f));
}

# Drives a browser login through t/idp/oidc.mjs starting at $start_url.
sub oidc_login {
    my ($self, $start_url, %opt) = @_;
    my $user = $opt{user} // 'alice';
    my $password = $opt{password} // "$user-password";
    my $res = $self->get($start_url);
    my @trace = ($res);
    my $posted_login = 0;
    for (1 .. $opt{max} // 30) {
        if ($res->{status} =~ /^30[12378]$/ && defined $res->{h}{location}) {
            my $url = resolve_url($res->{url}, $res->{h}{location});
            last if $opt{stop} && $opt{stop}->($url);
            $res = $self->get($url);
        } elsif ($res->{status} == 200 && $res->{url} =~ m{/interaction/}) {
            my ($form) = @{forms($res)};
            last unless $form;
            if ($form->{action} =~ m{/login\z}) {
                last if $posted_login++;     # the form again: wrong credentials
                $res = $self->submit_form($res, { login => $user, password => $password });
            } elsif ($form->{action} =~ m{/confirm\z}) {
                $res = $self->submit_form($res, {});
            } else {
                last;
            }
        } else {
            last;
        }
        push @trace, $res;
    }
    $self->{trace} = \@trace;
    return $res;
}

package Identity::Test::UA::Pending;

sub ready { IO::Select->new($_[0]{sock})->can_read(0) ? 1 : 0 }

sub finish {
    my ($self) = @_;
    my $ua = $self->{ua};
    my $res = Identity::Test::UA::parse_response(
        Identity::Test::UA::_read_all($self->{sock}, $ua->{timeout}));
    @$res{qw(method url request)} = @$self{qw(method url request)};
    $ua->_store_cookie($_, $self->{host}, $self->{path}) for @{$res->{cookies_set}};
    return $res;
}

1;

__END__

=head1 NAME

Identity::Test - harness for the ngx_http_identity_module tests

=head1 SYNOPSIS

    use Test::More;
    use Identity::Test;

    my $t = Identity::Test->new(name => 'basic');
    $t->start_redis;
    my $issuer = $t->start_idp(redirect_uris => ['http://127.0.0.1:' . $t->port('nginx') . '/cb']);
    $t->nginx_conf(<<'EOF');
    load_module %%MODULE%%;
    daemon off;
    master_process on;
    worker_processes 1;
    error_log %%TESTDIR%%/error.log debug;
    pid %%TESTDIR%%/nginx.pid;
    events { worker_connections 64; }
    http {
        access_log %%TESTDIR%%/access.log;
        client_body_temp_path %%TESTDIR%%/client_body;
        proxy_temp_path %%TESTDIR%%/proxy;
        fastcgi_temp_path %%TESTDIR%%/fastcgi;
        uwsgi_temp_path %%TESTDIR%%/uwsgi;
        scgi_temp_path %%TESTDIR%%/scgi;
        server { listen 127.0.0.1:%%PORT_nginx%%; ... }
    }
    EOF
    $t->start_nginx;

    my $ua = Identity::Test::UA->new;
    my $res = $ua->oidc_login("http://127.0.0.1:" . $t->port('nginx') . "/");
    is($res->{status}, 200);

    $t->done;

=head1 Identity::Test

=over

=item new(name => NAME)

Creates F<t/tmp/NAME-XXXXXX/> (C<testdir>). Every server started through the
object runs in its own process group and is stopped by pid when the object is
destroyed or at END. The directory is then removed, unless C<TEST_KEEP=1> is
set or the test is failing (its path is printed with diag).

=item testdir, write_file(NAME, CONTENT), read_file(NAME)

C<write_file> writes below testdir (creating directories) and returns the full
path. C<read_file> returns '' for a missing file; absolute paths are allowed.

=item Identity::Test::need(NAME, ...), $t->need(NAME, ...)

For a test that needs something only C<make deps> installs; call it before
the first test. NAMEs (C<%Identity::Test::NEEDS>): C<chromium>
(F</usr/bin/chromium> or C<$ENV{CHROMIUM}>), C<uap-core>
(F</usr/share/uap-core/regexes.yaml>). If one is absent, the test file
fails (one failing test, a message saying to run C<make deps>, exit 1) -
unless the environment variable C<IDENTITY_OPTIONAL> names it (a
comma-separated list of NAMEs, or C<all>): then the whole file is skipped
(C<plan skip_all>). C<Identity::Test::optional(NAME)> says whether it does.

    IDENTITY_OPTIONAL=chromium prove -I t/lib t/

=item Identity::Test::free_port(), port(NAME)

C<free_port> returns a free 127.0.0.1 TCP port, never the same twice in one
process. C<port(NAME)> allocates one per name, once (C<%%PORT_NAME%%>).

=item start_redis(password => PW), stop_redis, redis_port

Starts C<redis-server> (no persistence, bound to 127.0.0.1, dir testdir) and
waits for PING; returns the port. A later C<start_redis> reuses the same port
and password, so a test can stop Redis and bring it back.

=item redis(CMD, ARGS...), redis_error

Sends one command on a new connection (AUTH first when a password is set) and
returns the reply: simple strings and bulk strings as strings, integers as
numbers, nil as undef, arrays as (nested) array refs. An error reply makes it
return undef and sets C<redis_error> to the message (it is cleared on each
call); error replies inside arrays are C<Identity::Test::RedisError> objects
(stringify to the message). It dies if Redis cannot be reached.

=item start_redis_server(NAME, ARGS...), start_sentinel(NAME, MASTER, PORT, LINES...), redis_at(PORT, CMD...), stop_proc(NAME, SIG)

More servers, each in F<testdir/NAME/> and stopped by pid with C<stop_proc>
or C<stop_all>. C<redis_at> sends one command to PORT without a password.

=item start_cluster(primaries => 3, replicas => 0, args => [...], password => PW, tls => {...})

Starts a Redis Cluster on 127.0.0.1: C<primaries * (1 + replicas)>
C<redis-server>s named C<cluster1>, C<cluster2>, ... (processes for
C<stop_proc>, directories F<testdir/clusterN/> with their F<log> and
F<nodes.conf>), with C<--cluster-enabled yes --cluster-node-timeout 2000>,
no persistence, C<--repl-diskless-sync-delay 0 --repl-ping-replica-period
1> (replicas sync and show up in CLUSTER SLOTS within a second or two) and
ARGS last (they override). Every port P is below 55535 with P + 10000 (the
cluster bus) free too. Then C<redis-cli --cluster create ...
--cluster-replicas K --cluster-yes> (its output in
F<testdir/cluster-create.log>), and waits up to 20 s until every node says
C<cluster_state:ok>, has the same CLUSTER SLOTS table covering the 16384
slots with K replicas per range, and every replica's link is up; otherwise
it dies with every node's log.

The password is C<password> (which also adds C<--requirepass PW
--masterauth PW>) or the C<--requirepass> in ARGS; the harness's cluster
commands and redis-cli then AUTH with it.

C<< tls => { cert => F, key => F, ca => F, auth_clients => 'no' } >> gives
every node a TLS port too (C<--tls-port>, C<--tls-cluster yes>,
C<--tls-replication yes>, C<--tls-auth-clients> as given, default C<no>;
the bus is then on the TLS port + 10000, also kept free). The nodes meet
on their TLS ports. Redis answers a TLS client with TLS ports (CLUSTER
SLOTS, MOVED, ASK) and a plain one with plain ports, so the harness keeps
speaking plain text. The certificate serves the nodes as servers and, on
the bus, as clients: give it no C<extendedKeyUsage>, or both. With
C<auth_clients> other than C<no>, redis-cli presents C<client_cert> and
C<client_key> (default: cert and key).

Returns the primaries' (plain) ports. Also: C<cluster_ports> (that list),
C<< $t->{cluster_tls_ports} >> (their TLS ports, same order),
C<cluster_nodes> (every node: C<< { name, port, tls_port, dir, id, role
=> 'master'|'slave', primary => NAME (replicas) } >>; C<role> is
refreshed by the migrate functions, not by failovers),
C<cluster_node(NAME or PORT)>.

=item cluster_at(PORT, CMD...)

One command to the node at PORT, with the cluster's password; answers
like C<redis> (error: undef and C<redis_error>, e.g. C<MOVED 1234
127.0.0.1:PORT>).

=item Identity::Test::key_slot(KEY)

The key's hash slot (0..16383) as Redis Cluster computes it: CRC16-XMODEM of
the key, or of its hash tag (between the first C<{> and the first C<}> after
it, when not empty), mod 16384. A character string is hashed as UTF-8.

=item cluster_owner(SLOT)

The port of the primary serving SLOT now, from the CLUSTER SLOTS of the
first live node that answers (undef if no node serves it).

=item redis_cluster(CMD, ARGS...)

Like C<redis>, sent to the primary that owns the command's key: ARGS[0],
or for EVAL / EVALSHA / FCALL (and their _RO) the first key when numkeys
> 0; keyless commands (PING, INFO, DBSIZE, SCAN, KEYS, CLUSTER, ...) go to
the owner of slot 0. It keeps a slot map (C<< $t->{cluster_map} >>, loaded
on first use), follows C<-MOVED> (updating the map) and C<-ASK> (sending
C<ASKING> first on the same connection) up to 5 times, and when the node
it picked does not accept connections (a killed primary), reloads the map
once and retries. C<< $t->{cluster_redirects} >> counts C<MOVED>, C<ASK>
and C<refresh>. Error replies: undef and C<redis_error>.

=item cluster_keys(PATTERN)

SCAN ... MATCH PATTERN on every primary (C<*> if omitted), merged and
sorted; in scalar context, how many.

=item migrate_slot(SLOT, FROM_PORT, TO_PORT, batch => 10, pause => 0, replace => 0)

Moves SLOT as C<redis-cli --cluster reshard> does, by hand: C<CLUSTER
SETSLOT SLOT IMPORTING from-id> on TO, C<SETSLOT SLOT MIGRATING to-id> on
FROM, then C<CLUSTER GETKEYSINSLOT SLOT BATCH> and C<MIGRATE 127.0.0.1
TO "" 0 5000 [REPLACE] [AUTH PW] KEYS ...> until the slot is empty on
FROM (sleeping C<pause> seconds between batches), then C<SETSLOT SLOT
NODE to-id> on TO, FROM and every other primary, and waits (20 s at
most, else dies) until every live node's CLUSTER SLOTS names TO. Returns
the number of keys moved. Dies on an error reply. Under C<tls>, MIGRATE
goes to TO's TLS port (with tls-cluster the source speaks TLS to it).

=item migrate_slot_begin(SLOT, FROM, TO, batch => 10, replace => 0), migrate_slot_step(M, BATCH), migrate_slot_end(M)

The same in pieces, so that a test can send its own requests between
batches: C<begin> marks the slot and returns a handle M (C<< { slot, from,
to, from_id, to_id, moved, batch } >>); each C<step> moves one batch and
returns how many keys it moved (0 when none are left); C<end> gives the
slot away, waits for agreement and returns the total moved. The whole
C<migrate_slot> also works in a forked child while the parent sends load
(the child checks the nodes with C<kill 0>).

=item kill_cluster_node(NAME, SIG), restart_cluster_node(NAME)

C<kill_cluster_node> stops one node by pid (SIGKILL unless SIG is
given); C<restart_cluster_node> starts it again with the same port,
directory and arguments (its F<nodes.conf> makes it rejoin) and waits for
PING. C<stop_all> (and C<done>, and the cleanup) stop every node.

=item start_idp(%config), stop_idp, idp_url, idp_port

Writes %config as JSON to F<idp.json> and starts C<node t/idp/oidc.mjs> on a
free port (the same port on restart), waits for C<READY>, returns the issuer
URL C<http://127.0.0.1:PORT>. Config keys: see F<t/idp/README.md>.

=item idp_mode(%params), idp_stats(reset => 1)

GET C</__test/mode?...> and C</__test/stats>; return the decoded JSON.
C<idp_mode> returns the current state (C<token_delay_ms>, C<id_token>,
C<signing_kids>, C<published_kids>).

=item idp_logout_token(sub => S, sid => SID, mode => M, jti => J, client_id => C)

GET C</__test/logout_token?...>; returns the Back-Channel Logout token it
made (modes: see F<t/idp/README.md>). Dies unless the IdP answers 200.

=item start_saml_idp(%opt), stop_saml_idp(NAME)

Defined by L<Identity::SAML::IdP> (C<use Identity::SAML;> first): starts
SimpleSAMLphp as a SAML 2.0 IdP under C<php -S> on C<port(NAME)> (NAME
defaults to C<saml_idp>), registered like the other servers so that C<done>
and the cleanup stop it by pid; returns a hashref (url, entity_id,
metadata_file, key_file, cert_file, port, ...). Options, the browser flows
(C<saml_login>, C<saml_response>, C<saml_idp_initiated>, C<saml_post> on
Identity::Test::UA) and the forging tools: see F<t/lib/Identity/SAML.pm>.

=item nginx_conf(TEXT), module_path

Substitutes C<%%TESTDIR%%>, C<%%MODULE%%> (env C<IDENTITY_MODULE> or
F<build/ngx_http_identity_module.so> in the repository) and
C<%%PORT_name%%>, and writes F<nginx.conf>. Returns the final text. Nothing is
prepended: write C<daemon off;>, C<pid>, C<error_log> and temp paths yourself.
Run as root, C<user root;> is appended unless the text has a C<user>
directive: nginx's workers would otherwise run as C<nobody>, who cannot
reach a checkout under a private directory such as F</root>.

=item start_nginx, stop_nginx, reload_nginx

C<start_nginx> runs C<nginx -p TESTDIR/ -c TESTDIR/nginx.conf -e
TESTDIR/error.log> (stdout/stderr to F<nginx.stderr>) and waits up to 10 s
for C<port('nginx')> to accept; otherwise it dies with stderr and error.log.
C<stop_nginx> sends QUIT (then TERM, KILL). C<reload_nginx> sends HUP and
returns 1 once new workers started, 0 if the reload failed.

=item nginx_test_conf

Runs C<nginx -t> on the written conf and returns C<(exit_code, output)>.

=item error_log, log_like(QR, NAME), check_log

C<check_log> is one test: no C<[alert]> or C<[emerg]> line in error.log.

=item sanitizer_reports, check_sanitizer

Under C<make test-asan> (env C<IDENTITY_ASAN_PRELOAD>, set by
F<scripts/test-asan.sh>), nginx (and only nginx) runs with that libasan
preloaded, LeakSanitizer on, C<LSAN_OPTIONS> suppressions from
C<IDENTITY_ASAN_SUPPRESSIONS> (F<t/asan.supp>, plus F<t/asan-saml.supp> when
the nginx.conf has a SAML provider), and ASan and UBSan reports
written to F<TESTDIR/sanitizer.PID> (LeakSanitizer's, in workers, to
error.log: nginx points stderr there). C<sanitizer_reports> returns them;
C<check_sanitizer> is one test that fails, showing them, if there are
any. C<done> runs it for every harness of the test that started
nginx, after stopping them (leaks are reported as nginx exits); a harness
destroyed earlier with a report fails a test then. Outside C<make
test-asan> both do nothing.

=item done

Stops every server, runs C<check_log> if nginx was started (and
C<check_sanitizer> under C<make test-asan>), then C<done_testing>.

=item Identity::Test::http_raw(PORT, TEXT, timeout => 5)

Sends TEXT as is to 127.0.0.1:PORT and returns everything read until the
server closes or the timeout passes (then what was read so far).

=item helpers

C<b64url>, C<b64url_decode>, C<random_token(N)>, C<pkce_pair()> returning
C<(verifier, challenge)>, C<jwt_decode(JWT)> returning C<(header, payload)>
hashrefs (no verification).

=back

=head1 Identity::Test::UA

=over

=item new(headers => {...}, timeout => 10)

A cookie-keeping client that sends browser-like headers (Chrome User-Agent,
C<Accept: text/html,...>, C<Sec-Fetch-Mode: navigate>, C<Sec-Fetch-Dest:
document>). Headers given here or per request override case-insensitively;
C<undef> removes one. Every request uses HTTP/1.1 with C<Connection: close>.

=item request(METHOD, URL, headers => {...}, body => STR, form => {...})

Does not follow redirects. Returns a hashref:

    status       HTTP status (0 if the server closed without a response)
    reason       reason phrase
    headers      { lc name => [values] }
    h            { lc name => first value }
    body         body (chunked encoding removed)
    cookies_set  [raw Set-Cookie values]
    raw          the raw response
    method, url, request (the raw request text)

=item get(URL, %opt), post_form(URL, \%fields, %opt)

=item start_request(METHOD, URL, %opt)

Sends the request and returns a handle with C<ready> (1 if response bytes can
be read now, without blocking) and C<finish> (reads the response, as
C<request>).

=item follow(RES, max => 20, stop => sub { my $url = shift; ... })

Follows Location (relative or absolute) with GET while the status is a
redirect; C<stop> returning true stops before fetching that URL. List
context: C<(RES, @followed)>; scalar context: the last response.

=item forms(RES), submit_form(RES, \%fields, action => QR)

C<forms> returns C<[{action, method, fields}]> (action made absolute, fields
from the C<input> elements, not buttons). C<submit_form> submits the first
form (or the first whose action matches) with its fields overridden.

=item oidc_login(START_URL, user => 'alice', password => 'alice-password', stop => sub {...}, max => 30)

GETs START_URL and follows redirects; on an IdP interaction page it posts the
login form (login, password) or the consent form, and keeps following until a
response is neither a redirect nor an interaction page (or C<stop> says so for
the next URL). Returns that response; all responses are in C<< $ua->{trace} >>.
With wrong credentials it returns the second login page (status 200, body
contains "Invalid login").

=item cookie(NAME, HOST), cookies, set_cookie(NAME, VALUE, host => H, Path => P, ...), delete_cookie(NAME, HOST), clear_cookies

The jar matches host (Domain or host-only) and path, honours Max-Age and
Expires (a past date deletes), and ignores ports and Secure, like a browser on
plain http. C<delete_cookie> forgets every cookie named NAME (only those of
HOST if given) and keeps the others.

=item uri_escape, uri_unescape, form_encode(\%f), parse_url(URL), resolve_url(BASE, REF), parse_response(RAW)

=back

=cut
