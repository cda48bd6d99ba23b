#!/usr/bin/perl
# The Debian package on a fresh Debian 12: makes a minimal bookworm root with
# debootstrap, installs build/deb/libnginx-mod-http-identity_*.deb in it with
# `apt-get install ./...deb` (chroot), checks the files and the link Debian's
# module packages make, runs `nginx -t` with the package's sample
# configuration (examples/identity.conf, its Redis and provider named), starts
# the root's nginx and redis-server and completes one OpenID Connect login
# against the test IdP (t/idp/oidc.mjs, run on the host: the chroot shares
# the host's loopback).  Not part of `make test`: it needs root, the network
# and a few minutes (docs/debian.md).
#
#   perl -I t/lib scripts/deb-install-test.pl [DEB_DIR]    (make deb-install-test)
#
# DEB_DIR defaults to build/deb.  DEB_MIRROR (default
# http://deb.debian.org/debian) is the mirror of debootstrap and apt;
# DEB_TEST_KEEP=1 keeps the root (build/deb-install/root) for a look.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Test::More;
use Time::HiRes qw(sleep time);

use lib abs_path(dirname(__FILE__) . '/../t/lib');
use Identity::Test;

my $top = abs_path(dirname(__FILE__) . '/..');
my $debdir = abs_path($ARGV[0] // "$top/build/deb");
my $mirror = $ENV{DEB_MIRROR} // 'http://deb.debian.org/debian';
my $work = "$top/build/deb-install";
my $root = "$work/root";

die "$0: run as root (debootstrap, chroot, mount)\n" unless $> == 0;
for my $c (qw(debootstrap chroot mount)) {
    die "$0: $c is missing (apt-get install debootstrap)\n"
        unless grep { -x "$_/$c" } split /:/, "$ENV{PATH}:/usr/sbin:/sbin";
}
my @debs = glob "$debdir/libnginx-mod-http-identity_*_*.deb";
die "$0: no libnginx-mod-http-identity_*.deb in $debdir (make deb)\n"
    unless @debs == 1;
my $deb = $debs[0];
(my $debname = $deb) =~ s{.*/}{};

my ($proc_mounted, $nginx_started, $redis_started) = (0, 0, 0);

# runs a command (no shell), returns its exit code and output (2>&1)
sub run {
    my (@cmd) = @_;
    my $pid = open(my $p, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec { $cmd[0] } @cmd or do { print "exec $cmd[0]: $!\n"; exit 127 };
    }
    local $/;
    my $out = <$p> // '';
    close $p;
    return ($? >> 8, $out);
}

sub in_root { run('chroot', $root, @_) }

sub stop_servers {
    if ($nginx_started) {
        in_root('/usr/sbin/nginx', '-s', 'quit');
        for (1 .. 50) { last unless -e "$root/run/nginx.pid"; sleep 0.1 }
    }
    if ($redis_started && open my $fh, '<', "$root/run/identity-redis.pid") {
        my $pid = <$fh>;
        kill 'TERM', $pid + 0 if $pid && $pid =~ /^\d+$/;
    }
    $nginx_started = $redis_started = 0;
}

sub cleanup {
    stop_servers();
    run('umount', "$root/proc") if $proc_mounted;
    $proc_mounted = $nginx_started = $redis_started = 0;
    remove_tree($root) unless $ENV{DEB_TEST_KEEP};
}

END { cleanup() if defined $root && -d $root }
$SIG{$_} = sub { exit 1 } for qw(INT TERM HUP);

# ------------------------------------------------------------ a fresh root

remove_tree($root);
make_path($work);
diag("debootstrap --variant=minbase bookworm $root $mirror");
my ($rc, $out) = run('debootstrap', '--variant=minbase', 'bookworm', $root,
    $mirror);
is($rc, 0, 'debootstrap made a Debian 12 root') or do {
    diag(join "\n", (split /\n/, $out)[-20 .. -1]);
    BAIL_OUT('no root');
};

(my $security = $mirror) =~ s{/debian/?$}{/debian-security};
open my $src, '>', "$root/etc/apt/sources.list" or die $!;
print $src "deb $mirror bookworm main\n",
    "deb $mirror bookworm-updates main\n",
    "deb $security bookworm-security main\n";
close $src;
system('cp', '/etc/resolv.conf', "$root/etc/resolv.conf");
# no service starts while installing: the root shares the host's network
# (port 80 may be taken), and this test starts nginx and Redis itself
open my $prc, '>', "$root/usr/sbin/policy-rc.d" or die $!;
print $prc "#!/bin/sh\nexit 101\n";
close $prc;
chmod 0755, "$root/usr/sbin/policy-rc.d";
($rc) = run('mount', '-t', 'proc', 'proc', "$root/proc");
$proc_mounted = $rc == 0;

system('cp', $deb, "$root/tmp/$debname") == 0 or die "cp: $?";

# ------------------------------------------------------------ the package

($rc, $out) = in_root('env', 'DEBIAN_FRONTEND=noninteractive',
    'apt-get', 'update', '-q');
is($rc, 0, 'apt-get update in the root') or diag($out);

($rc, $out) = in_root('env', 'DEBIAN_FRONTEND=noninteractive',
    'sh', '-c', "cd /tmp && apt-get install -y -q ./$debname");
is($rc, 0, "apt-get install ./$debname") or diag($out);
diag($_) for grep { /^Setting up (libnginx-mod|nginx|uap-core)/ }
    split /\n/, $out;

my $modconf = "$root/usr/share/nginx/modules-available/mod-http-identity.conf";
ok(-f "$root/usr/lib/nginx/modules/ngx_http_identity_module.so",
    '/usr/lib/nginx/modules/ngx_http_identity_module.so');
is(Identity::Test->read_file($modconf),
    "load_module modules/ngx_http_identity_module.so;\n",
    'modules-available/mod-http-identity.conf loads it');
is(readlink("$root/etc/nginx/modules-enabled/50-mod-http-identity.conf"),
    '/usr/share/nginx/modules-available/mod-http-identity.conf',
    'modules-enabled/50-mod-http-identity.conf links to it');
($rc, $out) = in_root('dpkg-query', '-W', '-f', '${Status} ${Version}',
    'nginx');
like($out, qr/^install ok installed 1\.22\.1-/,
    'nginx (Recommends) installed with it');
my $example = "$root/usr/share/doc/libnginx-mod-http-identity/examples/identity.conf";
ok(-f $example, 'the sample configuration is installed');
ok(-f "$root/usr/share/doc/libnginx-mod-http-identity/docs/directives.md.gz",
    'the documentation is installed');

($rc, $out) = in_root('env', 'DEBIAN_FRONTEND=noninteractive',
    'apt-get', 'install', '-y', '-q', '--no-install-recommends',
    'redis-server');
is($rc, 0, 'apt-get install redis-server') or diag($out);

# ------------------------------------------------------------ configured

my $t = Identity::Test->new(name => 'deb-install');
my $port = $t->port('nginx');
my $app = $t->port('app');
my $redis = $t->port('redis');
my $issuer = $t->start_idp(
    redirect_uris => ["http://127.0.0.1:$port/_identity/callback"]);

# the sample as a user edits it: their Redis, provider, port and admin
my $conf = Identity::Test->read_file($example);
my %edits = (
    'identity_redis 127.0.0.1:6379;' => "identity_redis 127.0.0.1:$redis;",
    'issuer https://login.example.com;' => "issuer $issuer;",
    'client_id nginx;' => 'client_id test-client;',
    'listen 8080;' => "listen 127.0.0.1:$port;",
    'proxy_pass http://127.0.0.1:3000;' => "proxy_pass http://127.0.0.1:$app;",
    'identity_allow_email admin@example.com;'
        => 'identity_allow_email alice@example.test;',
);
for my $from (sort keys %edits) {
    my $n = $conf =~ s/\Q$from\E/$edits{$from}/g;
    is($n, 1, "sample config: '$from' edited") or BAIL_OUT('sample changed');
}
open my $fh, '>', "$root/etc/nginx/conf.d/identity.conf" or die $!;
print $fh $conf;
close $fh;
open $fh, '>', "$root/etc/nginx/identity-client.secret" or die $!;
print $fh "test-secret\n";
close $fh;
chmod 0600, "$root/etc/nginx/identity-client.secret";
# the upstream: shows what the module passed it
open $fh, '>', "$root/etc/nginx/conf.d/zz-app.conf" or die $!;
print $fh <<"EOF";
server {
    listen 127.0.0.1:$app;
    default_type text/plain;
    return 200 "app: email=\$http_x_user_email name=\$http_x_user_name\\n";
}
EOF
close $fh;
# Debian's default site listens on port 80 of the shared network
unlink "$root/etc/nginx/sites-enabled/default";

($rc, $out) = in_root('/usr/sbin/nginx', '-t');
is($rc, 0, 'nginx -t with the sample configuration') or diag($out);
like($out, qr/test is successful/, 'nginx -t: test is successful');
unlike($out, qr/\[(warn|emerg|alert)\]/, 'nginx -t: no warning')
    or diag($out);

# ------------------------------------------------------------ running

($rc, $out) = in_root('redis-server', '--port', $redis, '--bind', '127.0.0.1',
    '--daemonize', 'yes', '--pidfile', '/run/identity-redis.pid',
    '--save', '', '--appendonly', 'no');
is($rc, 0, "redis-server on 127.0.0.1:$redis in the root") or diag($out);
$redis_started = 1;
for (1 .. 50) { last if eval { $t->redis_at($redis, 'PING') }; sleep 0.1 }

($rc, $out) = in_root('/usr/sbin/nginx');
is($rc, 0, "nginx on 127.0.0.1:$port in the root") or diag($out);
$nginx_started = 1;
for (1 .. 50) {
    last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    sleep 0.1;
}

my $ua = Identity::Test::UA->new;
my $res = $ua->get("http://127.0.0.1:$port/healthz");
is($res->{status}, 200, '/healthz: 200 without a login');

$res = $ua->get("http://127.0.0.1:$port/");
is($res->{status}, 302, 'a browser is sent to log in');
like($res->{h}{location} // '', qr{^\Q$issuer\E/auth\?}, '... at the IdP');

$res = $ua->oidc_login("http://127.0.0.1:$port/");
is($res->{status}, 200, 'OIDC login as alice: back at the site, 200');
like($res->{body}, qr/email=alice\@example\.test name=Alice Example/,
    'the upstream receives who logged in');

my @keys = @{$t->redis_at($redis, 'KEYS', 'identity:session:*') || []};
is(scalar @keys, 1, 'one session in the root\'s Redis');
is($t->redis_at($redis, 'HGET', $keys[0], 'email'), 'alice@example.test',
    '... with her e-mail');

$res = $ua->get("http://127.0.0.1:$port/admin/");
is($res->{status}, 200, 'the dashboard (compiled in) for the admin');
like($res->{body}, qr/<html/i, '... an HTML page');

$res = $ua->get("http://127.0.0.1:$port/_identity/logout");
ok($res->{status} =~ /^30[23]$/, 'logout redirects');
$res = $ua->get("http://127.0.0.1:$port/");
is($res->{status}, 302, 'after logout, a login again');

my $log = Identity::Test->read_file("$root/var/log/nginx/error.log");
unlike($log, qr/\[(alert|emerg|crit)\]/, 'no alert in nginx\'s error.log')
    or diag($log);

# ------------------------------------------------------------ remove, purge

# as Debian's module packages do: remove keeps the link as ".removed", a
# reinstall brings it back, purge deletes it
stop_servers();
my $link = "$root/etc/nginx/modules-enabled/50-mod-http-identity.conf";
($rc, $out) = in_root('env', 'DEBIAN_FRONTEND=noninteractive',
    'apt-get', 'remove', '-y', '-q', 'libnginx-mod-http-identity');
is($rc, 0, 'apt-get remove libnginx-mod-http-identity') or diag($out);
ok(!-e "$root/usr/lib/nginx/modules/ngx_http_identity_module.so",
    'removed: the module is gone');
ok(!-l $link && -l "$link.removed", 'removed: the link is kept as .removed');

($rc, $out) = in_root('env', 'DEBIAN_FRONTEND=noninteractive',
    'sh', '-c', "cd /tmp && apt-get install -y -q ./$debname");
is($rc, 0, 'installed again') or diag($out);
ok(-l $link && !-e "$link.removed", 'installed again: the link is back');

($rc, $out) = in_root('env', 'DEBIAN_FRONTEND=noninteractive',
    'apt-get', 'purge', '-y', '-q', 'libnginx-mod-http-identity');
is($rc, 0, 'apt-get purge libnginx-mod-http-identity') or diag($out);
ok(!-l $link && !-l "$link.removed", 'purged: no link left');

cleanup();
done_testing();
