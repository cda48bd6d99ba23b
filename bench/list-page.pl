#!/usr/bin/perl
# Latency of one page of the admin API's session list with 1k sessions in
# Redis, then with 1M (BENCH_LIST_LARGE): paging must cost O(page), not
# O(sessions); the target is a p50 ratio of at most 1.5.  Run
# through bench/run.sh (make bench) or alone: perl bench/list-page.pl.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use Time::HiRes qw(time);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $SMALL = $ENV{BENCH_LIST_SMALL} // 1_000;
my $LARGE = $ENV{BENCH_LIST_LARGE} // 1_000_000;
my $REQUESTS = $ENV{BENCH_LIST_REQUESTS} // 300;
my $AGENT = 'Mozilla/5.0 (bench)';

Test::More->builder->no_ending(1);    # the harness uses Test::More
STDOUT->autoflush(1);

my $t = Identity::Test->new(name => 'bench-list-page');
my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);
my $token = Identity::Test::random_token(24);
$t->write_file('admin.token', $token);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1));
$t->start_nginx;

# one real login, so that the synthetic sessions hang off a real identity

my $ua = Identity::Test::UA->new;
my $saw = upstream_saw($ua->oidc_login("$base/x")->{body});
my $uid = $saw->{id} or die "login failed\n";

# Synthetic sessions, written the way a login writes them (the key layout
# of ngx_http_identity_store.c, version 3: one user agent record, named by
# the first 16 hex digits of its SHA-256), a batch per EVAL.

my $fill = <<'LUA';
local p, uid, from, n, now = ARGV[1], ARGV[2], tonumber(ARGV[3]),
                             tonumber(ARGV[4]), tonumber(ARGV[5])
local uah = ARGV[6]
for i = from, from + n - 1 do
  local sid = string.format('as_%032x', i)
  local th = string.format('%064x', i)
  redis.call('HSET', p .. 'session:' .. th, 'v', '3', 'id', sid,
             'uid', uid, 'provider', 'test', 'sub', 'alice',
             'email', 'alice@example.test', 'name', 'Alice Example',
             'username', 'alice', 'created_at', now, 'last_active', now,
             'expires_at', now + 86400, 'idle', 86400, 'ip', '127.0.0.1',
             'uah', uah, 'url', 'http://127.0.0.1', 'checked', now)
  redis.call('EXPIRE', p .. 'session:' .. th, 86400)
  redis.call('HSET', p .. 'sid:' .. sid, 'th', th, 'uid', uid)
  redis.call('ZADD', p .. 'sessions', now * 1000 + i, sid)
  redis.call('ZADD', p .. 'user_sessions:' .. uid, now * 1000 + i, sid)
end
redis.call('HSET', p .. 'ua:' .. uah, 'ua', ARGV[7])
redis.call('EXPIRE', p .. 'ua:' .. uah, 86400)
return n
LUA

# The batches are pipelined: every EVALSHA is written before the first
# reply is read, on a connection of its own.
my $filled = 0;
sub fill_to {
    my ($n) = @_;
    my $sha = $t->redis('SCRIPT', 'LOAD', $fill);
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $rport,
        Proto => 'tcp') or die "redis: $!\n";
    my $sent = 0;
    while ($filled < $n) {
        my $batch = $n - $filled > 5000 ? 5000 : $n - $filled;
        my @cmd = ('EVALSHA', $sha, 0, 'identity:', $uid, $filled + 1, $batch, time - 3600,
                   substr(sha256_hex($AGENT), 0, 16), $AGENT);
        print $sock '*' . @cmd . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @cmd);
        $filled += $batch;
        $sent++;
    }
    for (1 .. $sent) {
        my $line = <$sock> // die "redis closed the connection\n";
        die "redis: $line" unless $line =~ /^:\d+/;
    }
    close $sock;
}

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub measure {
    my ($path) = @_;
    my @ms;
    for (1 .. 20) { $api->get("$base/api/$path") }            # warm-up
    for (1 .. $REQUESTS) {
        my $t0 = time;
        my $r = $api->get("$base/api/$path");
        push @ms, (time - $t0) * 1000;
        die "GET $path: $r->{status}\n" unless $r->{status} == 200;
    }
    @ms = sort { $a <=> $b } @ms;
    return { p50 => $ms[int(@ms * 0.5)], p99 => $ms[int(@ms * 0.99)] };
}

sub middle_id {
    my $ids = $t->redis('ZREVRANGE', 'identity:sessions', $filled / 2, $filled / 2);
    return $ids->[0];
}

my %r;
fill_to($SMALL);
my $n_small = $t->redis('ZCARD', 'identity:sessions');
$r{small_first} = measure('app/sessions?limit=100');
$r{small_deep} = measure('app/sessions?limit=100&before_id=' . middle_id());

my $t_fill = time;
fill_to($LARGE);
my $fill_s = time - $t_fill;
my $n_large = $t->redis('ZCARD', 'identity:sessions');
$r{large_first} = measure('app/sessions?limit=100');
$r{large_deep} = measure('app/sessions?limit=100&before_id=' . middle_id());

printf "admin API list page (limit=100), %d requests each, sequential, one client\n", $REQUESTS;
printf "%-28s %10s %10s\n", '', 'p50 ms', 'p99 ms';
printf "%-28s %10.2f %10.2f\n", "$n_small sessions, first page", @{$r{small_first}}{qw(p50 p99)};
printf "%-28s %10.2f %10.2f\n", "$n_small sessions, middle page", @{$r{small_deep}}{qw(p50 p99)};
printf "%-28s %10.2f %10.2f\n", "$n_large sessions, first page", @{$r{large_first}}{qw(p50 p99)};
printf "%-28s %10.2f %10.2f\n", "$n_large sessions, middle page", @{$r{large_deep}}{qw(p50 p99)};
my @ratio = ($r{large_first}{p50} / $r{small_first}{p50},
             $r{large_deep}{p50} / $r{small_deep}{p50});
printf "ratio %dk/%dk, p50: first page %.2f, middle page %.2f (target: at most 1.5) %s\n",
    $n_large / 1000, $n_small / 1000, @ratio,
    (grep { $_ > 1.5 } @ratio) ? 'ABOVE TARGET' : 'ok';
printf "seeded %d sessions in %.1f s (pipelined EVALSHA batches of 5000); redis used_memory %s\n",
    $n_large - $n_small, $fill_s,
    (map { /used_memory_human:(\S+)/ ? $1 : '?' } $t->redis('INFO', 'memory'))[0];

$t->stop_all;
