#!/usr/bin/perl
# A hostile login costs at most 16 KiB of Redis (issue 12, B.14): a user
# with 20,000 groups, an 8 KiB name, a 64 KiB claim and every other claim
# at its bound, logging in with an 8 KiB User-Agent and a 4 KiB Host header.
# The session keeps the first 512 bytes of the user agent, the bounded
# claims (t/26-claims.t) and, of the provider's claims JSON, only the claims
# identity_require_claim names, which still work.  OAuth, generic form,
# against the mock's GitLab user endpoint, which answers the user as set.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(http_conf provider_block server_block location_block);

my $t = Identity::Test->new(name => 'bounded-records');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

my $upstream = 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;';
$t->nginx_conf(http_conf(
    redis => $rport, redis_timeout => '2s',
    http => 'large_client_header_buffers 4 16k;',
    providers => [provider_block('gitlab', type => 'oauth',
        authorization_endpoint => "$m/gitlab/oauth/authorize",
        token_endpoint => "$m/gitlab/oauth/token",
        userinfo_endpoint => "$m/gitlab/api/v4/user",
        client_id => 'test-client', client_secret => 'test-secret',
        scopes => 'read_user',
        claim_map => 'id=id email=email name=name username=username groups=groups')],
    servers => [
        server_block(directives => ['identity gitlab;',
            'proxy_set_header X-Identity-Username $identity_username;'], locations => [
            location_block('/', $upstream),
            location_block('/sales/', 'identity_require_claim department sales;', $upstream),
            location_block('/title/', 'identity_require_claim title ~^t;', $upstream),
            location_block('/roles/', 'identity_require_claim roles admin;', $upstream),
        ]),
        server_block(port => 'upstream', locations => [
            location_block('/', "return 200 \"user=\$http_x_identity_username\n\";"),
        ]),
    ],
    upstream => 0,
));
$t->start_nginx;

my $domain = '@example.test';
my $hostile = {
    id => 'i' x 256,
    email => ('e' x (254 - length $domain)) . $domain,
    username => 'u' x 256,
    name => "Mallory\r\n" x 1000,
    groups => [map { sprintf 'group-%05d-%s', $_, 'p' x 14 } 1 .. 20000],
    department => 'sales',
    title => 't' x 960,                 # kept: the kept JSON near its bound
    roles => [map { "role-$_" } 1 .. 5000, 'admin'],
    bio => 'b' x 65536,
};

$mock->set_user('gitlab', $hostile);

my %headers = ('User-Agent' => 'Mozilla/5.0 ' . ('a' x 8180), Host => ('h' x 4090) . '.test');
is(length $headers{'User-Agent'}, 8192, 'an 8 KiB User-Agent');

my $ua = Identity::Test::UA->new(headers => \%headers);
is(scalar @{$t->redis('KEYS', '*')}, 0, 'Redis is empty before the login');

# redirects followed by hand: nginx's own absolute redirects name the Host
# header, which is no address

sub login {
    my ($ua, $url) = @_;
    my $r = $ua->get($url);
    for (1 .. 10) {
        last unless $r->{status} =~ /^30[1237]$/;
        my $next = Identity::Test::UA::resolve_url($r->{url}, $r->{h}{location});
        $next =~ s{^http://h+\.test(:\d+)?}{$base};
        $r = $ua->get($next);
    }
    return $r;
}

my $r = login($ua, "$base/x");
is($r->{status}, 200, 'the hostile user logged in');
is($r->{body}, 'user=' . ('u' x 256) . "\n", 'with the username at its bound');

# every key the login made, and what they cost

my @keys = sort @{$t->redis('KEYS', '*')};
ok(scalar @keys, scalar(@keys) . ' keys made');
my $total = 0;
for my $k (@keys) {
    my $n = $t->redis('MEMORY', 'USAGE', $k, 'SAMPLES', '0');
    note("$n\t$k");
    $total += $n;
}
cmp_ok($total, '<=', 16384, "the login costs at most 16 KiB of Redis ($total bytes)");

my ($skey) = grep { /^identity:session:/ } @keys;
my %s = @{$t->redis('HGETALL', $skey)};
is(length $t->redis('HGET', "identity:ua:$s{uah}", 'ua'), 512,
   'the user agent is kept to 512 bytes, under its hash');
is($s{browser} // '', 'Other', 'and parsed from those') if exists $s{browser};
is($s{url}, $base, 'the recorded endpoint is not the Host header');
is_deeply(decode_json($s{claims}), { department => 'sales', title => 't' x 960 },
   'of the claims JSON, only what a rule names and that fits');
ok(length $s{claims} <= 1024, 'in at most 1 KiB (' . length($s{claims}) . ' bytes)');
ok(length $s{groups} <= 4096, 'groups kept to 4 KiB (' . length($s{groups}) . ' bytes)');
is(length $s{name}, 256, 'the name cut to 256 bytes');
unlike($s{name}, qr/[\r\n]/, 'without its CR LF');

# the kept claim still decides; the claim left out fails closed

$r = $ua->get("$base/sales/");
is($r->{status}, 200, 'identity_require_claim on a kept claim admits');
$r = $ua->get("$base/title/");
is($r->{status}, 200, 'so does a rule on the other kept claim');
$r = $ua->get("$base/roles/");
is($r->{status}, 403, 'a claim over the bound is not kept: its rule refuses');
$t->log_like(qr/\[info\].*the provider's claim "roles" is not kept: over 1024 bytes/,
             'and says so at info level');

# another user, another department: refused by the same rule

$mock->set_user('gitlab', { id => 'bob', username => 'bob', name => 'Bob',
                            email => 'bob@example.test', department => 'hr' });
my $bob = Identity::Test::UA->new;
$r = login($bob, "$base/x");
is($r->{status}, 200, 'bob logged in');
$r = $bob->get("$base/sales/");
is($r->{status}, 403, 'identity_require_claim refuses another value');

my ($bkey) = grep { $_ ne $skey } @{$t->redis('KEYS', 'identity:session:*')};
is($t->redis('HGET', $bkey, 'claims'), '{"department":"hr"}', 'bob\'s session keeps only department');

$t->done;
