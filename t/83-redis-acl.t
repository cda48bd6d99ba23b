#!/usr/bin/perl
# identity_redis user= password_file=: the module logs in to Redis as an ACL
# user whose keys and channels are limited to its prefix, on both of its
# connections (commands, and the session cache's subscription); every
# command it sends stays inside that limit.  A wrong password fails closed:
# 503, one clear line in the log, not one per request.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'redis-acl');

# the harness itself uses the default user; the module gets "identity"
my $rport = $t->start_redis(args => [
    '--user', 'identity', 'on', '>acl-pass-1', '~identity:*', '&identity:*', '+@all']);
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");
$t->write_file('redis.pw', "acl-pass-1\n");

sub conf {
    my (%o) = @_;
    my $conf = identity_conf(redis => $rport, issuer => $issuer, admin => 1,
                             http => 'identity_session_cache zone=acl:1m;');
    my $args = $o{args} // 'user=identity password_file=%%TESTDIR%%/redis.pw';
    $conf =~ s/(identity_redis 127\.0\.0\.1:\d+)/$1 $args/ or die "no identity_redis\n";
    return $conf;
}

$t->nginx_conf(conf());
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/in");
is($r->{status}, 200, 'a login, as the ACL user');
my $cookie = $ua->cookie('identity_session', '127.0.0.1');
is($ua->get("$base/again")->{status}, 200, 'its session admits');
my $sid = $t->redis('HGET', Identity::Test::session_key($cookie), 'id');
like($sid // '', qr/^as_[0-9a-f]{32}$/, 'the session is in Redis');

my @conns = grep { /\buser=identity\b/ } split /\n/, $t->redis('CLIENT', 'LIST');
cmp_ok(scalar @conns, '>=', 2, 'two connections log in as "identity": commands and the subscription');
ok(scalar(grep { /name=identity-node-/ } @conns), 'the subscription among them');

$r = $api->get("$base/api/app/sessions");
is($r->{status}, 200, 'the admin API lists');
is(scalar @{decode_json($r->{body})->{application_sessions}}, 1, 'the session');
$r = $api->request('DELETE', "$base/api/app/sessions/$sid");
is($r->{status}, 204, 'a DELETE, confirmed by the node over its subscription');
is(Identity::Test::UA->new->get("$base/x", headers => { Cookie => "identity_session=$cookie" })->{status},
   302, 'the session is refused after it');

# the audit stream and the login counters are under the prefix too
$r = $api->get("$base/api/app/events");
is($r->{status}, 200, 'app/events, as the ACL user');
is_deeply([map { $_->{event}{action} } @{decode_json($r->{body})->{events}}],
          ['session_revoked', 'login'], 'the login and the revocation, newest first');

# a forged callback: the failures' stream, written and read as the ACL user
is(Identity::Test::UA->new->get("$base/_identity/callback?code=x&state="
                                . Identity::Test::random_token())->{status},
   400, 'a forged callback: 400');
my @ev;
for (1 .. 100) {
    @ev = @{decode_json($api->get("$base/api/app/events")->{body})->{events}};
    last if @ev == 3;
    select(undef, undef, undef, 0.05);
}
is_deeply([map { $_->{event}{reason} // '' } @ev], ['state', 'api', ''],
          'its failure, from identity:audit:failures, first');
is($t->redis('XLEN', 'identity:audit:failures'), 1, 'in a stream of its own');
$r = $api->get("$base/api/app/stats/logins");
is($r->{status}, 200, 'app/stats/logins, as the ACL user');
my $logins = 0;
$logins += $_->{success} for @{decode_json($r->{body})->{buckets}};
is($logins, 1, 'the login counted');

is_deeply($t->redis('ACL', 'LOG'), [], 'Redis denied the module nothing: every key and channel under its prefix');

# ------------------------------------------------------------ a wrong password

$t->stop_nginx;
$t->write_file('redis.pw', "not-the-password\n");
$t->start_nginx;
my $mark = length $t->error_log;
my @st = map { Identity::Test::UA->new->get("$base/x$_")->{status} } 1 .. 20;
is_deeply([sort { $a <=> $b } keys %{{ map { $_ => 1 } @st }}], [503], 'a wrong password: 503, 20 times');
my $log = substr($t->error_log, $mark);
like($log, qr/\[error\][^\n]*redis at "127\.0\.0\.1" refused AUTH: "WRONGPASS/,
     'one line says Redis refused the credentials');
my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
cmp_ok(scalar @errors, '<=', 4, 'and 20 refusals add no error line each (' . scalar(@errors) . ')')
    or diag(join "\n", @errors);
unlike($log, qr/\[alert\]/, 'no alert');

# ------------------------------------------------------------ configuration

$t->nginx_conf(conf(args => 'user=identity'));
my ($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'user= without a password: nginx -t fails');
like($out, qr/"identity_redis" with "user=" needs its password/, 'and says why');

$t->done;
