#!/usr/bin/perl
# The worker never blocks: with one worker process, a login whose token
# exchange takes 2 s (in the thread pool) does not hold up other users, and
# with Redis down requests are answered at once instead of hanging.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'nonblocking');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
    users => [map { { id => $_, password => "$_-password", email => "$_\@example.test",
                      name => ucfirst $_, username => $_ } } qw(alice bob carol)]);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, workers => 1));
$t->start_nginx;

# user A logs in while the IdP answers at once

my $a = Identity::Test::UA->new;
my $r = $a->oidc_login("$base/a", user => 'alice');
is($r->{status}, 200, 'user A logged in');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'as alice');

# user B's token exchange will take 2 s

is($t->idp_mode(token_delay_ms => 2000)->{token_delay_ms}, 2000, 'IdP token endpoint slowed to 2s');

my $b = Identity::Test::UA->new;
$r = $b->oidc_login("$base/b", user => 'bob', stop => sub { $_[0] =~ m{/_identity/callback} });
ok($r->{status} =~ /^30[123]$/ && $r->{h}{location}, 'user B is sent back to the callback');
my $cb = Identity::Test::UA::resolve_url($r->{url}, $r->{h}{location});
like($cb, qr{^\Q$base\E/_identity/callback\?}, 'callback URL');

my $tokens = $t->idp_stats->{token};
my $t0 = time;
my $h = $b->start_request('GET', $cb);

# wait until the module's token request is held by the IdP: from here on
# B's login is in the thread pool, waiting
my $end = time + 5;
sleep 0.01 while $t->idp_stats->{token} == $tokens && time < $end;
is($t->idp_stats->{token}, $tokens + 1, 'B\'s token request reached the IdP');
ok(!$h->ready, 'B\'s callback is pending');

my @st;
for my $i (1 .. 20) {
    my $res = $a->get("$base/a/$i");
    push @st, $res->{status} == 200 && upstream_saw($res->{body})->{email} eq 'alice@example.test'
        ? 200 : $res->{status};
}
my $ready = $h->ready;
is_deeply(\@st, [(200) x 20], '20 requests of user A answered meanwhile, as alice');
ok(!$ready, 'all before B\'s slow login finished');

$r = Identity::Test::UA->new->get("$base/c");
is($r->{status}, 302, 'a new login can start meanwhile');
like($r->{h}{location} // '', qr{^\Q$issuer\E/auth\?}, '... to the IdP');
ok(!$h->ready, 'still before B\'s login finished');

$r = $h->finish;
ok(time - $t0 >= 1.9, sprintf('B\'s callback took the IdP\'s 2s (%.1fs)', time - $t0));
is($r->{status}, 302, 'B\'s login completed');
is($r->{h}{location}, "$base/b", 'back to where B started');
ok((grep { /^identity_session=[A-Za-z0-9_-]{43};/ } @{$r->{cookies_set}}), 'with a session cookie');
$r = $b->get("$base/b");
is($r->{status}, 200, 'B\'s session admits');
is(upstream_saw($r->{body})->{email}, 'bob@example.test', 'as bob');

$t->idp_mode(token_delay_ms => 0);

# Redis hangs: stopped with SIGSTOP it still accepts connections but never
# answers.  The harness has no call for this, hence its pid from inside.

my $redis_pid = $t->{procs}{redis};
ok($redis_pid && kill('STOP', $redis_pid), 'Redis paused');
$t0 = time;
$h = $a->start_request('GET', "$base/a/hung");
sleep 0.2;    # time for nginx to send the lookup and start waiting
my @pub = map { Identity::Test::UA->new->get("$base/public/hung$_")->{status} } 1 .. 10;
$ready = $h->ready;
is_deeply(\@pub, [(200) x 10], 'Redis hanging: identity off served meanwhile');
ok(!$ready, 'while a request with a session still waits for Redis');
$r = $h->finish;
is($r->{status}, 503, 'which gets 503 when the Redis timeout expires');
ok(time - $t0 >= 1.9 && time - $t0 < 5, sprintf('after timeout=2s (%.1fs)', time - $t0));
$t->log_like(qr/\[error\][^\n]*redis at "127\.0\.0\.1" timed out while waiting for a reply/,
             'Redis timeout logged');
ok(kill('CONT', $redis_pid), 'Redis resumed');
$end = time + 10;
while (1) {
    $r = $a->get("$base/a/resumed");
    last if $r->{status} == 200 || time > $end;
    sleep 0.2;
}
is($r->{status}, 200, 'Redis answering again: A\'s session admits');

# Redis down: protected requests fail fast, unprotected ones are served

$t->stop_redis;

my ($slowest, @wrong) = (0);
for my $i (1 .. 10) {
    my $t1 = time;
    my $pub = Identity::Test::UA->new->get("$base/public/$i");
    my $prot = $a->get("$base/a/$i");
    my $login = Identity::Test::UA->new->get("$base/c/$i");
    $slowest = time - $t1 if time - $t1 > $slowest;
    push @wrong, "public $pub->{status}" if $pub->{status} != 200;
    push @wrong, "session $prot->{status}" if $prot->{status} != 503;
    push @wrong, "login $login->{status}" if $login->{status} != 503;
}
is_deeply(\@wrong, [], 'Redis down: identity off 200, session 503, login 503, ten times');
ok($slowest < 1, sprintf('each round answered at once (slowest %.3fs)', $slowest));

$t->done;
