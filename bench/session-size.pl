#!/usr/bin/perl
# What a session costs Redis: MEMORY USAGE summed over every key under the
# prefix, before and after real logins (OAuth, generic form, against the
# mock's GitLab endpoints: t/idp/oauth-mock.mjs), divided by the number of
# logins.  So it counts what a login creates (the session, its id, the
# identity of a new user, index entries) and what it grows (the indexes).
#
#   (a) 200 distinct users, one login each
#   (b) 1,000 sessions of one user, same browser
#   (c) one hostile login: every claim at its bound (t/27-bounded-records.t)
#
# Run through bench/run.sh (sh bench/run.sh session-size) or alone:
# perl bench/session-size.pl.  Knobs: BENCH_SIZE_USERS (200),
# BENCH_SIZE_SESSIONS (1000).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Test::More ();
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(http_conf provider_block server_block location_block);

my $USERS = $ENV{BENCH_SIZE_USERS} // 200;
my $SESSIONS = $ENV{BENCH_SIZE_SESSIONS} // 1_000;

Test::More->builder->no_ending(1);    # the harness uses Test::More
STDOUT->autoflush(1);

my $CLUSTER = $ENV{BENCH_CLUSTER};       # 1: a Redis Cluster of 3 primaries

my $t = Identity::Test->new(name => 'bench-session-size');
my @nodes = $CLUSTER ? $t->start_cluster(primaries => 3) : ($t->start_redis);
my $rport = $nodes[0];
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

# a rule on a claim, so that the session keeps the claims JSON it needs

my $upstream = 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;';
my $conf = http_conf(
    redis => $rport, redis_timeout => '2s',
    http => ['large_client_header_buffers 4 16k;', 'error_log %%TESTDIR%%/error.log warn;'],
    providers => [provider_block('gitlab', type => 'oauth',
        authorization_endpoint => "$m/gitlab/oauth/authorize",
        token_endpoint => "$m/gitlab/oauth/token",
        userinfo_endpoint => "$m/gitlab/api/v4/user",
        scopes => 'read_user',
        claim_map => 'id=id email=email name=name username=username groups=groups')],
    servers => [
        server_block(directives => ['identity gitlab;'], locations => [
            location_block('/', $upstream),
            location_block('/sales/', 'identity_require_claim department sales;', $upstream),
        ]),
        server_block(port => 'upstream', locations => [
            location_block('/', 'return 200 "ok\n";'),
        ]),
    ],
    upstream => 0,
);
$conf =~ s/identity_redis 127/identity_redis cluster=127/ or die "no identity_redis\n" if $CLUSTER;
$t->nginx_conf($conf);
$t->start_nginx;

# the redirects by hand: a hostile Host header is no address to go to

sub login {
    my ($ua) = @_;
    my $r = $ua->get("$base/x");
    for (1 .. 10) {
        last unless $r->{status} =~ /^30[1237]$/;
        my $next = Identity::Test::UA::resolve_url($r->{url}, $r->{h}{location});
        $next =~ s{^http://h+\.test(:\d+)?}{$base};
        $r = $ua->get($next);
    }
    die "login failed: $r->{status} $r->{url}\n" unless $r->{status} == 200;
    return $r;
}

sub usage {
    my $sum = 0;
    my %kind;
    for my $node (@nodes) {
        my $cursor = 0;
        do {
            my $r = $t->redis_at($node, 'SCAN', $cursor, 'MATCH', 'identity:*', 'COUNT', 1000);
            $cursor = $r->[0];
            for my $k (@{$r->[1]}) {
                my $n = $t->redis_at($node, 'MEMORY', 'USAGE', $k, 'SAMPLES', '0') // 0;
                $sum += $n;
                (my $kind = $k) =~ s/^identity:(?:\{@\w\})?([a-z_]+).*/$1/;
                $kind{$kind}{bytes} += $n;
                $kind{$kind}{keys}++;
            }
        } while ($cursor);
    }
    return ($sum, \%kind);
}

sub user {
    my ($i) = @_;
    return { id => 4_000_000 + $i, username => "user$i", name => "User Number $i",
             email => "user$i\@example.test", groups => ['staff', 'developers'],
             department => 'sales' };
}

my (%row, %kinds);

sub measure {
    my ($name, $n, $each) = @_;
    my ($before, $kb) = usage();
    $each->($_) for 1 .. $n;
    my ($after, $ka) = usage();
    $row{$name} = { n => $n, bytes => ($after - $before) / $n };
    $kinds{$name} = { map { my $k = $_;
        $k => { keys => ($ka->{$k}{keys} // 0) - ($kb->{$k}{keys} // 0),
                bytes => (($ka->{$k}{bytes} // 0) - ($kb->{$k}{bytes} // 0)) / $n } }
        keys %$ka };
}

measure('(a) distinct users, one login each', $USERS, sub {
    $mock->set_user('gitlab', user($_[0]));
    login(Identity::Test::UA->new);
});

$mock->set_user('gitlab', user(0));
measure('(b) sessions of one user', $SESSIONS, sub {
    login(Identity::Test::UA->new);
});

my $domain = '@example.test';
$mock->set_user('gitlab', {
    id => 'i' x 256,
    email => ('e' x (254 - length $domain)) . $domain,
    username => 'u' x 256,
    name => "Mallory\r\n" x 1000,
    groups => [map { sprintf 'group-%05d-%s', $_, 'p' x 14 } 1 .. 20000],
    department => 'sales' . ('s' x 1010),
    bio => 'b' x 65536,
});
measure('(c) a hostile login', 1, sub {
    login(Identity::Test::UA->new(headers => {
        'User-Agent' => 'Mozilla/5.0 ' . ('a' x 8180), Host => ('h' x 4090) . '.test' }));
});

# the session's own keys and its entry in the global index; the rest is its
# identity's: the identity, its provider mapping, its lists and its entry
# in "users"
my %own = map { $_ => 1 } qw(session sessions ua idp_sid);
sub own {
    my ($name) = @_;
    my $sum = 0;
    $sum += $kinds{$name}{$_}{bytes} for grep { $own{$_} } keys %{$kinds{$name}};
    return $sum;
}

printf "Redis MEMORY USAGE per session, summed over every key a login creates or grows\n";
printf "%-38s %8s %14s %10s %10s\n", '', 'logins', 'bytes/session', 'session', 'identity';
printf "%-38s %8d %14.0f %10.0f %10.0f\n", $_, $row{$_}{n}, $row{$_}{bytes}, own($_),
    $row{$_}{bytes} - own($_) for sort keys %row;
printf "(session: its hash, its share of the user agent record, its entry in \"sessions\";\n"
     . " identity: the identity's hash, lists and provider mapping, its entry in \"users\")\n";
if ($ENV{BENCH_SIZE_KEYS}) {
    for my $name (sort keys %kinds) {
        print "\n$name, by key kind (new keys, bytes/session):\n";
        for my $k (sort { $kinds{$name}{$b}{bytes} <=> $kinds{$name}{$a}{bytes} } keys %{$kinds{$name}}) {
            my $e = $kinds{$name}{$k};
            next unless $e->{keys} || $e->{bytes};
            printf "  %-20s %6d %10.0f\n", $k, $e->{keys}, $e->{bytes};
        }
    }
}

$t->stop_all;
