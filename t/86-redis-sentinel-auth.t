#!/usr/bin/perl
# identity_redis sentinel=... sentinel_password_file=: sentinels that ask
# for a password.  The right one finds the primary; a wrong one, or none,
# fails closed (503) with one line that says the sentinel refused, not one
# per request.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'redis-sentinel-auth');

my $primary = $t->start_redis;
my $sentinel = $t->start_sentinel('sentinel1', 'idm', $primary, 'requirepass sentinel-secret');
is($t->redis_at($sentinel, 'PING'), undef, 'the sentinel refuses a client without its password');
like($t->redis_error // '', qr/NOAUTH/, 'NOAUTH');

my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

sub restart {
    my ($args) = @_;
    my $conf = identity_conf(redis => $primary, issuer => $issuer);
    $conf =~ s/identity_redis 127\.0\.0\.1:\d+/identity_redis sentinel=127.0.0.1:$sentinel master=idm $args/ or die;
    $t->stop_nginx;
    my $mark = length($t->error_log // '');
    $t->nginx_conf($conf);
    $t->start_nginx;
    return $mark;
}

$t->write_file('sentinel.pw', "sentinel-secret\n");
restart('sentinel_password_file=%%TESTDIR%%/sentinel.pw');
my $ua = Identity::Test::UA->new;
is($ua->oidc_login("$base/in")->{status}, 200, 'the right password: the sentinel names the primary, a login');
is($ua->get("$base/again")->{status}, 200, 'and its session admits');
my $list = do { local $t->{redis_port} = $sentinel; local $t->{redis_password} = 'sentinel-secret';
                $t->redis('CLIENT', 'LIST') } // '';
my @c = grep { /cmd=sentinel|cmd=subscribe/ } split /\n/, $list;
cmp_ok(scalar @c, '>=', 1, 'the module is connected to the sentinel');

for my $case (['sentinel_password=wrong', 'a wrong password'], ['', 'no password']) {
    my ($args, $name) = @$case;
    my $mark = restart($args);
    my @st = map { Identity::Test::UA->new->get("$base/x$_")->{status} } 1 .. 10;
    is_deeply([grep { $_ != 503 } @st], [], "$name: 503, 10 times");
    sleep 1.2;    # the +switch-master watch retries each second
    my $log = substr($t->error_log, $mark);
    like($log, qr/\[error\][^\n]*redis sentinel[^\n]* at "127\.0\.0\.1" (?:refused AUTH|refused SENTINEL)[^\n]*(?:WRONGPASS|NOAUTH|invalid password)/i,
         "$name: the log says the sentinel refused");
    my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
    cmp_ok(scalar @errors, '<=', 4, "$name: a line per connection, not per request (" . scalar(@errors) . ')')
        or diag(join "\n", @errors);
}

$t->done;
