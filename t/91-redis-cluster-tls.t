#!/usr/bin/perl
# A Redis Cluster over TLS (its bus too), with an ACL user limited to the
# module's keys and channels: identity_redis cluster=... tls ca=...
# user=... password_file=... logs in to every primary it is sent to by the
# slot map and by MOVED (which names the TLS ports), verifies each one's
# certificate, and runs logins, the admin API across shards and a
# confirmed revocation with nothing refused by the ACL.  A CA that did not
# sign the nodes' certificates is refused at connect, fail closed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use POSIX ();
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'redis-cluster-tls');
my $dir = $t->testdir;

sub run {
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec @_ or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($out, $? >> 8);
}

# a test CA, one certificate for every node, and another CA
my @req = ('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-days', '2');
for my $ca (qw(ca other)) {
    my ($out, $rc) = run(@req, '-x509', '-subj', "/CN=$ca", '-keyout', "$dir/$ca.key",
                         '-out', "$dir/$ca.crt");
    is($rc, 0, "the test CA \"$ca\"") or diag($out);
}
$t->write_file('node.ext', "subjectAltName=DNS:redis.test,IP:127.0.0.1\n");
my ($out, $rc) = run(@req, '-subj', '/CN=redis.test', '-keyout', "$dir/node.key",
                     '-out', "$dir/node.csr");
($out, $rc) = run('openssl', 'x509', '-req', '-in', "$dir/node.csr", '-CA', "$dir/ca.crt",
    '-CAkey', "$dir/ca.key", '-CAcreateserial', '-days', '2', '-out', "$dir/node.crt",
    '-extfile', "$dir/node.ext") unless $rc;
is($rc, 0, 'the nodes\' certificate') or diag($out);

my @primaries = $t->start_cluster(
    args => ['--requirepass', 'pw', '--masterauth', 'pw',
             '--user', 'identity', 'on', '>acl-pass', '~identity:*', '&identity:*', '+@all'],
    tls => { cert => "$dir/node.crt", key => "$dir/node.key", ca => "$dir/ca.crt" });
my @tls = @{$t->{cluster_tls_ports}};
is(scalar @tls, 3, 'a cluster of 3 primaries over TLS, with an ACL user');

my $base = 'http://127.0.0.1:' . $t->port('nginx');
my @users = map { { id => "u$_", password => "u$_-password", email => "u$_\@example.test",
                    name => "User $_", username => "u$_" } } 1 .. 6;
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"], users => \@users);
my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");
$t->write_file('redis.pw', "acl-pass\n");

sub conf {
    my ($ca) = @_;
    my $conf = identity_conf(redis => $tls[0], issuer => $issuer, workers => 2, admin => 1,
                             http => 'identity_session_cache zone=tls:1m;');
    $conf =~ s{identity_redis 127\.0\.0\.1:\d+}
              {identity_redis cluster=127.0.0.1:$tls[0] tls ca=$dir/$ca.crt user=identity password_file=%%TESTDIR%%/redis.pw}
        or die "no identity_redis\n";
    return $conf;
}

$t->nginx_conf(conf('ca'));
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

my %cookie;
for my $n (1 .. 6) {
    my $ua = Identity::Test::UA->new;
    is($ua->oidc_login("$base/in$n", user => "u$n")->{status}, 200, "u$n logs in");
    $cookie{"u$n"} = $ua->cookie('identity_session', '127.0.0.1');
}

my %shards = map { substr(Identity::Test::session_hex($_), 0, 1) => 1 } values %cookie;
my %owners = map { $t->cluster_owner(Identity::Test::key_slot("{\@$_}")) => 1 } keys %shards;
cmp_ok(scalar keys %owners, '>=', 2, 'the sessions are on ' . scalar(keys %owners) . ' primaries');

my $r = $api->get("$base/api/app/sessions?limit=4");
is($r->{status}, 200, 'the admin API merges the shards');
my $b = decode_json($r->{body});
is(scalar @{$b->{application_sessions}}, 4, 'a page of 4');
ok($b->{next_page_uri}, 'and a next page');

my $victim = 'as_' . Identity::Test::session_hex($cookie{u3});
is(Identity::Test::UA->new->get("$base/x", headers => { Cookie => "identity_session=$cookie{u3}" })->{status},
   200, 'u3 is admitted');
is($api->request('DELETE', "$base/api/app/sessions/$victim")->{status}, 204, 'a DELETE, confirmed');
is(Identity::Test::UA->new->get("$base/y", headers => { Cookie => "identity_session=$cookie{u3}" })->{status},
   302, 'u3 is refused');

for my $p (@primaries) {
    is_deeply($t->cluster_at($p, 'ACL', 'LOG'), [], "primary $p: the ACL denied the module nothing");
}
my @conns = grep { /user=identity/ } map { split /\n/, $t->cluster_at($_, 'CLIENT', 'LIST') } @primaries;
cmp_ok(scalar @conns, '>=', 3, scalar(@conns) . ' TLS connections log in as "identity"');

# ------------------------------------------------------------ another CA

$t->stop_nginx;
$t->nginx_conf(conf('other'));
my $mark = length $t->error_log;
$t->start_nginx;
my @st = map { Identity::Test::UA->new->get("$base/z$_", headers => {
    Cookie => "identity_session=$cookie{u1}" })->{status} } 1 .. 10;
is_deeply([sort keys %{{ map { $_ => 1 } @st }}], [503], 'a CA that did not sign the nodes: 503');
like(substr($t->error_log, $mark), qr/certificate failed verification/, 'and the log says why');

$t->done;
