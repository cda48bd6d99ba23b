#!/usr/bin/perl
# identity_redis ... tls: the module speaks to Redis over TLS (nginx's
# OpenSSL), checks the server's certificate against ca= and its name
# against server_name= (or the address) as proxy_ssl_verify does, and
# presents a client certificate when Redis asks for one.  A wrong CA, a
# wrong name or a missing client certificate is refused at connect: 503,
# and one line that says why.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'redis-tls');
my $dir = $t->testdir;

# ------------------------------------------------------------ a test CA

sub openssl {
    my @cmd = ('openssl', @_);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>>', "$dir/openssl.log";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or exit 127;
    }
    waitpid $pid, 0;
    die "openssl @_ failed:\n" . $t->read_file('openssl.log') if $?;
}

sub ca {
    my ($name) = @_;
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
            '-subj', "/CN=$name", '-keyout', "$dir/$name.key", '-out', "$dir/$name.crt");
}

sub issue {
    my ($ca, $name, $ext) = @_;
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', "/CN=$name",
            '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
    $t->write_file("$name.ext", $ext);
    openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.crt", '-CAkey', "$dir/$ca.key",
            '-CAcreateserial', '-days', '2', '-out', "$dir/$name.crt", '-extfile', "$dir/$name.ext");
}

ca('test-ca');
ca('other-ca');
issue('test-ca', 'redis.test', "subjectAltName=DNS:redis.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
issue('test-ca', 'nginx-client', "extendedKeyUsage=clientAuth\n");

# Redis: the harness on the plain port, the module on the TLS port
my $tls_port = Identity::Test::free_port();
my @tls = ('--tls-port', $tls_port, '--tls-cert-file', "$dir/redis.test.crt",
           '--tls-key-file', "$dir/redis.test.key", '--tls-ca-cert-file', "$dir/test-ca.crt");
my $rport = $t->start_redis(args => [@tls, '--tls-auth-clients', 'no']);

my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

sub conf {
    my ($args) = @_;
    my $conf = identity_conf(redis => $rport, issuer => $issuer, admin => 1,
                             http => 'identity_session_cache zone=tls:1m;');
    $conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis 127.0.0.1:$tls_port $args/ or die;
    return $conf;
}

sub restart {
    my ($args) = @_;
    $t->stop_nginx;
    $t->nginx_conf(conf($args));
    $t->start_nginx;
    return length $t->error_log;
}

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

# ------------------------------------------------------------ verified

restart("tls ca=$dir/test-ca.crt server_name=redis.test");
my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/in");
is($r->{status}, 200, 'a login over TLS, the certificate verified against ca= and server_name=');
my $cookie = $ua->cookie('identity_session', '127.0.0.1');
is($ua->get("$base/again")->{status}, 200, 'its session admits');
my $key = Identity::Test::session_key($cookie);
is($t->redis('EXISTS', $key), 1, 'the session is in Redis');
my @node = grep { /name=identity-node-/ } split /\n/, $t->redis('CLIENT', 'LIST');
is(scalar @node, 1, 'the subscription is connected too');
my $sid = $t->redis('HGET', $key, 'id');
is($api->request('DELETE', "$base/api/app/sessions/$sid")->{status}, 204, 'a DELETE, confirmed over TLS');
is(Identity::Test::UA->new->get("$base/x", headers => { Cookie => "identity_session=$cookie" })->{status},
   302, 'the session is refused after it');

# no server_name: the address is the name, and the certificate has its IP
restart("tls ca=$dir/test-ca.crt");
is(Identity::Test::UA->new->oidc_login("$base/ip")->{status}, 200,
   'without server_name= the address is checked against the certificate\'s IP');

# ------------------------------------------------------------ refused

sub refused {
    my ($args, $why, $name) = @_;
    my $mark = restart($args);
    my @st = map { Identity::Test::UA->new->get("$base/r$_")->{status} } 1 .. 10;
    is_deeply([grep { $_ != 503 } @st], [], "$name: 503, 10 times");
    my $log = substr($t->error_log, $mark);
    like($log, qr/\[error\][^\n]*redis at "127\.0\.0\.1" (?:connect failed|lost the connection): $why/,
         "$name: the log says why");
    my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
    cmp_ok(scalar @errors, '<=', 3, "$name: one line, not one per request (" . scalar(@errors) . ')')
        or diag(join "\n", @errors);
}

refused("tls ca=$dir/other-ca.crt server_name=redis.test",
        qr/its certificate failed verification: /, 'a certificate of another CA');
refused("tls ca=$dir/test-ca.crt server_name=other.test",
        qr/its certificate does not match "other\.test"/, 'a certificate of another name');
refused("tls", qr/its certificate failed verification: /, 'no ca=: the system\'s CAs, which do not know the test CA');

my $mark = restart("tls ca=$dir/other-ca.crt verify=off");
is(Identity::Test::UA->new->oidc_login("$base/noverify")->{status}, 200, 'verify=off: not checked');
like($t->read_file('nginx.err') // '', qr/verify=off/, 'and nginx says so when it starts')
    if -e "$dir/nginx.err";

# ------------------------------------------------------------ client certificates

$t->stop_nginx;
$t->stop_redis;
$t->start_redis(args => [@tls, '--tls-auth-clients', 'yes']);

refused("tls ca=$dir/test-ca.crt server_name=redis.test",
        qr/TLS (?:handshake|read|write) failed/,
        'Redis asks for a client certificate and none is given');
restart("tls ca=$dir/test-ca.crt server_name=redis.test cert=$dir/nginx-client.crt key=$dir/nginx-client.key");
is(Identity::Test::UA->new->oidc_login("$base/cert")->{status}, 200, 'with cert= and key=: a login');

# ------------------------------------------------------------ configuration

$t->nginx_conf(conf("ca=$dir/test-ca.crt"));
my ($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'ca= without tls: nginx -t fails');
like($out, qr/need "tls"/, 'and says why');
$t->nginx_conf(conf("tls cert=$dir/nginx-client.crt"));
($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'cert= without key=: nginx -t fails');
$t->nginx_conf(conf("tls verify=off"));
($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'verify=off passes nginx -t');
like($out, qr/\[warn\][^\n]*verify=off/, 'with a warning');

$t->done;
