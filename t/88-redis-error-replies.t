#!/usr/bin/perl
# Redis answers, but with errors: maxmemory reached (OOM command not
# allowed).  The module fails closed (503 for what must write) and logs the
# first error reply of each 5 s at [error], the rest at info: not one
# [error] line per request.  Once Redis has memory again, logins work.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'redis-error-replies');
my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer));
$t->start_nginx;

my $browser = { Accept => 'text/html', 'Sec-Fetch-Mode' => 'navigate' };
is(Identity::Test::UA->new(headers => $browser)->get("$base/before")->{status}, 302,
   'a login starts while Redis has memory');

my $ua0 = Identity::Test::UA->new;
is($ua0->oidc_login("$base/first")->{status}, 200, 'a session made before');

$t->redis('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$t->redis('CONFIG', 'SET', 'maxmemory', '1');
my $mark = length $t->error_log;
my @st = map { Identity::Test::UA->new(headers => $browser)->get("$base/oom$_")->{status} } 1 .. 20;
is_deeply([grep { $_ != 503 } @st], [], 'maxmemory reached: a login cannot start, 503, 20 times');
my $log = substr($t->error_log, $mark);
like($log, qr/\[error\][^\n]*identity: redis error: "OOM command not allowed/, 'the first error reply at [error]');
my @errors = grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $log;
cmp_ok(scalar @errors, '<=', 3, '20 error replies, ' . scalar(@errors) . ' [error] lines')
    or diag(join "\n", @errors[0 .. ($#errors < 5 ? $#errors : 5)]);
is(scalar(() = $log =~ /\[info\][^\n]*identity: redis error: "OOM/g), 19, 'the others at info');
unlike($log, qr/\[alert\]/, 'no alert');
is($ua0->get("$base/still")->{status}, 200, 'a session made before still admits: a lookup only reads');

$t->redis('CONFIG', 'SET', 'maxmemory', '0');
is(Identity::Test::UA->new(headers => $browser)->get("$base/after")->{status}, 302,
   'memory again: a login starts');
my $ua = Identity::Test::UA->new;
is($ua->oidc_login("$base/in")->{status}, 200, 'and completes');

$t->done;
