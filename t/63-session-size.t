#!/usr/bin/perl
# What a session costs Redis (issue 14, part 2), with real logins (OAuth,
# generic form, against the mock's GitLab endpoints): MEMORY USAGE summed
# over every key a login creates or grows, per login, for distinct users,
# for many sessions of one user and for a hostile login; every session hash
# in Redis's compact encoding; one user agent record for many sessions;
# and no key of a session left once it is deleted or has expired.  The
# admin API still shows the user agent and what was parsed from it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(http_conf provider_block server_block location_block);

my $t = Identity::Test->new(name => 'session-size');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $short = 'http://127.0.0.1:' . $t->port('short');
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};
my $token = Identity::Test::random_token(24);
$t->write_file('admin.token', $token);

my $upstream = 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;';
$t->nginx_conf(http_conf(
    redis => $rport, redis_timeout => '2s',
    http => 'large_client_header_buffers 4 16k;',
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
            location_block('/api/', 'identity off;', 'identity_admin;',
                'identity_admin_token_file %%TESTDIR%%/admin.token;'),
        ]),
        server_block(port => 'short', directives => ['identity gitlab;',
            'identity_max_session_duration 2s;'], locations => [
            location_block('/', $upstream),
        ]),
        server_block(port => 'upstream', locations => [
            location_block('/', 'return 200 "ok\n";'),
        ]),
    ],
    upstream => 0,
));
$t->start_nginx;

# redirects by hand: a hostile Host header is no address to go to

sub login {
    my ($ua, $url) = @_;
    my ($site) = $url =~ m{^(http://[^/]+)};
    my $r = $ua->get($url);
    for (1 .. 10) {
        last unless $r->{status} =~ /^30[1237]$/;
        my $next = Identity::Test::UA::resolve_url($r->{url}, $r->{h}{location});
        $next =~ s{^http://h+\.test(:\d+)?}{$site};
        $r = $ua->get($next);
    }
    return $r;
}

sub keys_of { @{$t->redis('KEYS', $_[0] // 'identity:*')} }

# the audit streams and the login counters (docs/events.md) are the events',
# bounded by identity_audit_stream_size and by day: counted apart, below
sub audit_key { $_[0] =~ /^identity:(audit|audit:failures|logins:\d{8})$/ }

sub usage {
    my $sum = 0;
    $sum += $t->redis('MEMORY', 'USAGE', $_, 'SAMPLES', '0') // 0
        for grep { !audit_key($_) } keys_of(@_);
    return $sum;
}

# what a session owns: its hash, its entry in "sessions", the shared user
# agent records (the rest is its identity's: bench/README.md)
sub session_usage { usage('identity:session:*') + usage('identity:sessions') + usage('identity:ua:*') }

sub user {
    my ($i) = @_;
    return { id => 4_000_000 + $i, username => "user$i", name => "User Number $i",
             email => "user$i\@example.test", groups => ['staff', 'developers'],
             department => 'sales' };
}

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub api_get {
    my $r = $api->get("$base/api/$_[0]");
    return ($r->{status}, $r->{status} == 200 ? decode_json($r->{body}) : undef);
}

# (a) distinct users, one login each

my $n = 20;
my $before = usage();
my $own_before = session_usage();
my @uas;
for my $i (1 .. $n) {
    $mock->set_user('gitlab', user($i));
    my $ua = Identity::Test::UA->new;
    my $r = login($ua, "$base/x");
    is($r->{status}, 200, "user $i logged in") if $i == 1 || $i == $n;
    push @uas, $ua;
}
my $per = (usage() - $before) / $n;
my $own = (session_usage() - $own_before) / $n;
note("distinct users: $per bytes per login, $own of them the session's");
cmp_ok($per, '<=', 2048, "distinct users: a session and a new identity in at most 2 KiB ($per)");
cmp_ok($own, '<=', 1024, "distinct users: the session's part at most 1 KiB ($own)");

# (b) sessions of one user, one browser: the user agent is kept once

$mock->set_user('gitlab', user(0));
$before = usage();
my $m_n = 30;
for (1 .. $m_n) {
    my $r = login(Identity::Test::UA->new, "$base/x");
    die "login failed: $r->{status}\n" unless $r->{status} == 200;
}
$per = (usage() - $before) / $m_n;
note("sessions of one user: $per bytes per session");
cmp_ok($per, '<=', 1024, "one user's sessions: at most 1 KiB each ($per)");

# the events of those logins: one stream entry each, bounded in size
# (and a risk_flagged event for each of user 0's sessions past the tenth)
my $xlen = 0;
for (1 .. 100) {
    $xlen = $t->redis('XLEN', 'identity:audit');
    last if $xlen >= $n + $m_n + $m_n - 10;
    select undef, undef, undef, 0.05;
}
is($xlen, $n + $m_n + $m_n - 10, 'the stream: a login event per login, a risk_flagged '
   . 'event per session past the tenth (concurrent_sessions)');
my $per_event = $t->redis('MEMORY', 'USAGE', 'identity:audit', 'SAMPLES', '0') / $xlen;
note("audit stream: $per_event bytes per event");
cmp_ok($per_event, '<=', 2048, "an audit event at most 2 KiB in Redis ($per_event)");

my @agents = keys_of('identity:ua:*');
is(scalar @agents, 1, 'one user agent record for ' . ($n + $m_n) . ' sessions of one browser');
my @sessions = keys_of('identity:session:*');
is(scalar @sessions, $n + $m_n, 'as many session hashes as logins');
my @wide = grep { $t->redis('OBJECT', 'ENCODING', $_) ne 'listpack' } @sessions;
is_deeply(\@wide, [], 'every session hash is listpack-encoded');
my ($one) = grep { $t->redis('HGET', $_, 'sub') eq '4000000' } @sessions;    # user 0's
my %s = @{$t->redis('HGETALL', $one)};
ok(!exists $s{ua}, 'a session keeps no user agent of its own');
is("identity:ua:$s{uah}", $agents[0], 'but names the shared record');
like($t->redis('HGET', $agents[0], 'ua'), qr/^Mozilla\/5\.0 .*Chrome/, 'which holds the user agent');
ok(!exists $s{issuer}, 'nor the issuer, which the identity keeps');
is(scalar keys_of('identity:sid:*'), 0, 'no record maps a session id to its key (layout 4)');
is($one, 'identity:session:' . substr($s{id}, 3), 'a session\'s key is its public id without "as_"');
like($s{id}, qr/^as_[0-9a-f]{32}$/, 'which is "as_" and 32 hex digits');
my $us_ttl = $t->redis('TTL', "identity:user_sessions:$s{uid}");
ok($us_ttl > 0 && $us_ttl <= 7 * 86400,
   "an identity's session list expires with its longest-lived session ($us_ttl s)");

# the admin API shows what it showed: the user agent and what it says

my ($st, $j) = api_get("app/sessions/$s{id}");
is($st, 200, 'the session through the API');
my $agent = $j->{browser_session}{user_agent};
like($agent->{raw}, qr/Chrome\/124/, 'user_agent.raw');
is($agent->{browser_name}, 'Chrome', 'user_agent.browser_name') if $s{browser};
is($agent->{device_family}, $s{device} // '', 'user_agent.device_family');
is($j->{public_url}, $base, 'public_url');
($st, $j) = api_get("app/users/$s{uid}/sessions?limit=100");
is($st, 200, 'the identity\'s sessions through the API');
my ($listed) = grep { $_->{id} eq $s{id} } @{$j->{application_sessions}};
like($listed->{browser_session}{user_agent}{raw} // '', qr/Chrome\/124/, 'a listed session shows its user agent');

# the sites of an identity that used one site: its sessions, with no list
# of their own until a second site comes

is(scalar keys_of('identity:endpoint_sessions:*'), 0, 'identities of one site: no site list');
my %ep = map { $_->{public_url} => $_->{id} } @{(api_get("app/users/$s{uid}/endpoints"))[1]{endpoints}};
sub site_sessions {
    my ($url) = @_;
    my ($st, $j) = api_get("app/users/$s{uid}/sessions?endpoint=$ep{$url}&limit=100");
    return $st == 200 ? [sort map { $_->{id} } @{$j->{application_sessions}}] : $st;
}
my $at_base = site_sessions($base);
is(scalar @$at_base, $m_n, "the site's sessions: the identity's $m_n");
my $r = login(Identity::Test::UA->new, "$short/x");
is($r->{status}, 200, 'the same user at a second site');
%ep = map { $_->{public_url} => $_->{id} } @{(api_get("app/users/$s{uid}/endpoints"))[1]{endpoints}};
is_deeply(site_sessions($base), $at_base, 'the first site still lists its sessions, not the new one');
my $at_short = site_sessions($short);
is(scalar @$at_short, 1, 'the second site lists the new one');
ok(!grep({ $_ eq $at_short->[0] } @$at_base), 'which is not one of the first site\'s');
is(scalar keys_of('identity:endpoint_sessions:*'), 2, 'now each site has its list');

# (c) a hostile login: every claim at its bound, an 8 KiB User-Agent and a
# 4 KiB Host header

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
$before = usage();
my $hostile = Identity::Test::UA->new(headers => {
    'User-Agent' => 'Mozilla/5.0 ' . ('a' x 8180), Host => ('h' x 4090) . '.test' });
$r = login($hostile, "$base/x");
is($r->{status}, 200, 'the hostile user logged in');
my $cost = usage() - $before;
cmp_ok($cost, '<=', 16384, "a hostile login costs at most 16 KiB ($cost)");
is(scalar keys_of('identity:ua:*'), 2, 'its user agent has a record of its own');

# admin DELETE: no key of the deleted sessions is left

sub session_keys {
    my ($sid) = @_;
    my @left = grep { index($_, $sid) >= 0 } keys_of();
    for my $z (grep { $t->redis('TYPE', $_) eq 'zset' } keys_of()) {
        push @left, "$z entry" if defined $t->redis('ZSCORE', $z, $sid);
    }
    return @left;
}

my @sids = map { $t->redis('HGET', $_, 'id') } keys_of('identity:session:*');
my %uid = map { $t->redis('HGET', $_, 'uid') => 1 } keys_of('identity:session:*');
for my $sid (@sids) {
    my $d = $api->request('DELETE', "$base/api/app/sessions/$sid");
    die "DELETE $sid: $d->{status}\n" unless $d->{status} == 204;
}
is(scalar keys_of('identity:session:*'), 0, 'every session deleted: no session hash left');
is(scalar keys_of('identity:sid:*'), 0, 'no session id record left');
my @left = map { session_keys($_) } @sids;
is_deeply(\@left, [], 'no index entry of a deleted session left');
for my $uid (keys %uid) {
    my $d = $api->request('DELETE', "$base/api/app/users/$uid");
    die "DELETE $uid: $d->{status}\n" unless $d->{status} == 204;
}
@left = grep { !/^identity:(ua:|sweep$|events$)/ && !audit_key($_) } keys_of();
is_deeply(\@left, [], 'every identity deleted: nothing left but user agent records, '
          . 'the counters of all sessions (sweep, events) and the audit trail') or diag("@left");
ok($t->redis('TTL', $_) > 0, "$_ expires") for keys_of('identity:logins:*');
my @ttl = map { $t->redis('TTL', $_) } keys_of('identity:ua:*');
ok(!grep({ $_ < 0 || $_ > 7 * 86400 } @ttl),
   "which expire within a session's maximum duration (@ttl s)");

# expiry: sessions of 2 s leave nothing once collected by the next login

$mock->set_user('gitlab', user(1));
my @short;
for (1 .. 3) {
    my $ua = Identity::Test::UA->new(headers => { 'User-Agent' => 'ShortLived/1.0' });
    my $r = login($ua, "$short/x");
    is($r->{status}, 200, 'logged in where sessions last 2 s') if $_ == 1;
}
@short = map { $t->redis('HGET', $_, 'id') } keys_of('identity:session:*');
is(scalar @short, 3, 'three short sessions');
my ($sua) = grep { $t->redis('HGET', $_, 'ua') eq 'ShortLived/1.0' } keys_of('identity:ua:*');
my $sttl = $t->redis('TTL', $sua);
ok($sttl > 0 && $sttl <= 2, "their user agent record lives as long as they do ($sttl s)");
sleep 3;
$mock->set_user('gitlab', user(2));
$r = login(Identity::Test::UA->new, "$base/x");
is($r->{status}, 200, 'another login, which collects expired sessions');
is($t->redis('EXISTS', $sua), 0, 'the short sessions\' user agent record expired');
@left = map { session_keys($_) } @short;
is_deeply(\@left, [], 'no key or index entry of the expired sessions left') or diag("@left");

# an identity that keeps a session: its list loses the expired ones at its
# next login (an expired session's hash no longer says whose it was)

$mock->set_user('gitlab', user(3));
$r = login(Identity::Test::UA->new, "$base/x");
is($r->{status}, 200, 'a long session');
login(Identity::Test::UA->new(headers => { 'User-Agent' => 'ShortLived/1.0' }), "$short/x") for 1 .. 2;
my $uid3 = $t->redis('GET', 'identity:sub:gitlab:4000003');
my @mine = @{$t->redis('ZRANGE', "identity:user_sessions:$uid3", 0, -1)};
is(scalar @mine, 3, 'and two short ones, in its list');
sleep 3;
$r = login(Identity::Test::UA->new, "$base/x");
is($r->{status}, 200, 'its next login');
my @live = grep { $t->redis('EXISTS', 'identity:session:' . substr($_, 3)) } @mine;
is(scalar @live, 1, 'one of the three is left');
@left = map { session_keys($_) } grep { my $m = $_; !grep { $_ eq $m } @live } @mine;
is_deeply(\@left, [], 'the expired ones are in no list of its identity') or diag("@left");
cmp_ok($t->redis('TTL', "identity:user_sessions:$uid3"), '>', 2, 'whose list lives as long as its long sessions');

# records of layout 3 (a random public id, a record mapping it to the
# cookie's full hash) are not found, and are cleaned up by the sweep

my ($lsid, $lth) = ('as_' . ('ab' x 16), 'cd' x 32);
$t->redis('HSET', "identity:sid:$lsid", 'th', $lth, 'uid', $uid3, 'isid', 'gitlab:old');
$t->redis('HSET', "identity:session:$lth", 'v', '3', 'id', $lsid, 'uid', $uid3);
$t->redis('EXPIRE', "identity:session:$lth", 3600);
$t->redis('SADD', 'identity:idp_sid:gitlab:old', $lsid);
$t->redis('ZADD', 'identity:sessions', 1, $lsid);
$t->redis('ZADD', "identity:user_sessions:$uid3", 1, $lsid);
$r = login(Identity::Test::UA->new, "$base/x");
is($r->{status}, 200, 'a login after an upgrade from layout 3');
@left = (session_keys($lsid), grep { $t->redis('EXISTS', $_) } "identity:session:$lth");
is_deeply(\@left, [], 'nothing of a layout 3 session left: its record, its hash, its index entries')
    or diag("@left");

$t->done;
