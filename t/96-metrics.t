#!/usr/bin/perl
# GET {admin}/metrics (issue 17, part 2): the Prometheus text the admin API
# serves behind its own authentication, the node's counters summed over
# its two workers.  The output is parsed whole by prometheus_client's own
# parser (Debian's python3-prometheus-client); the values are those of the
# logins, denials, revocations and cache lookups this test made.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw location_block);
use Identity::Metrics;

plan skip_all => 'needs python3-prometheus-client'
    unless Identity::Metrics::have_parser();

my $t = Identity::Test->new(name => 'metrics');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice' },
        { id => 'bob', password => 'bob-password', email => 'bob@corp.test',
          name => 'Bob Builder', username => 'bobby' },
    ]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, workers => 2,
    admin => 1,
    http => 'identity_session_cache zone=sessions:1m;',
    server => 'add_header X-Worker $pid always;',
    locations => [
        location_block('/alice-only/', 'identity test;',
            'identity_allow_email alice@example.test;',
            'proxy_pass http://127.0.0.1:%%PORT_upstream%%;'),
    ]));
$t->start_nginx;

my %auth = (Authorization => "Bearer $token");

# a fresh connection each time, so that both workers answer in turn
sub scrape {
    my ($headers) = @_;
    return Identity::Test::UA->new(headers => $headers // { %auth })
        ->get("$base/api/metrics");
}

# the whole text through prometheus_client (Identity::Metrics)
sub parse { Identity::Metrics::parse($t, $_[0]) }

# ------------------------------------------------------------ authentication

my $r = scrape({ Accept => 'application/json' });
is($r->{status}, 401, 'no token: 401');
like($r->{h}{'www-authenticate'} // '', qr/^Bearer/, 'WWW-Authenticate: Bearer');
$r = scrape({ Authorization => "Bearer ${token}x" });
is($r->{status}, 401, 'a wrong token: 401');

$r = scrape();
is($r->{status}, 200, 'with the admin token: 200');
is($r->{h}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
   'the text exposition format, 0.0.4');
my $m = parse($r->{body});
ok($m, 'prometheus_client parses it') or diag($r->{body});
is($m->{values}{'identity_logins_total{outcome=success,provider=test}'}, 0,
   'no login yet');
is($m->{values}{'identity_redis_up{}'}, 1, 'identity_redis_up 1');
is($m->{values}{'identity_sessions_active{}'}, 0, 'no session yet');

$r = Identity::Test::UA->new(headers => { %auth })
    ->request('DELETE', "$base/api/metrics");
is($r->{status}, 405, 'DELETE /metrics: 405');

# ------------------------------------------------------------ what is counted

# six logins, each on a connection of its own
my @alice;
for (1 .. 5) {
    my $ua = Identity::Test::UA->new;
    my $res = $ua->oidc_login("$base/a$_", user => 'alice');
    is($res->{status}, 200, "alice's login $_");
    push @alice, $ua;
}
my $bob = Identity::Test::UA->new;
is($bob->oidc_login("$base/b", user => 'bob')->{status}, 200, "bob's login");

# a login the provider refuses (the user cancels): denied
{
    my $ua = Identity::Test::UA->new;
    my $res = $ua->follow($ua->get("$base/cancel"));
    $res = $ua->follow($ua->get("$res->{url}/abort"));
    is($res->{status}, 403, 'a login cancelled at the IdP: 403');
}

# a login whose state is forged: failed (its provider unknown)
{
    my $ua = Identity::Test::UA->new;
    my $res = $ua->oidc_login("$base/forged",
        stop => sub { $_[0] =~ m{/_identity/callback} });
    my $cb = Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location});
    $cb =~ s/([?&]state=)[^&]*/$1 . Identity::Test::random_token()/e;
    is($ua->get($cb)->{status}, 400, 'a forged state: 400');
}

# the rules refuse bob twice, admit alice
is($bob->get("$base/alice-only/x")->{status}, 403, 'bob refused by a rule');
is($bob->get("$base/alice-only/y")->{status}, 403, 'and again');
is($alice[0]->get("$base/alice-only/z")->{status}, 200, 'alice admitted');

# the session cache: alice's sessions looked up again
for my $ua (@alice) {
    is($ua->get("$base/again")->{status}, 200, 'a request with a session');
}

# revocations: one by the API, one at logout
my $api = Identity::Test::UA->new(headers => { %auth, Accept => 'application/json' });
$r = $api->get("$base/api/app/sessions");
my $list = decode_json($r->{body})->{application_sessions};
is(scalar @$list, 6, 'six sessions');
$r = $api->request('DELETE', "$base/api/app/sessions/$list->[0]{id}");
is($r->{status}, 204, 'a session revoked by the API (bob\'s, the newest)');
isnt($bob->get("$base/after")->{status}, 200, 'bob\'s session is gone');
$r = $alice[1]->get("$base/_identity/logout");
is($r->{status}, 302, 'a logout');

# ------------------------------------------------------------ the values

# a worker counts the sessions at most every 5 s: the first scrape's count
# (none) is forgotten by now
sleep 5.5;

my $indexed = 0;
$indexed += $t->redis('ZCARD', 'identity:sessions') // 0;
is($indexed, 4, 'Redis indexes four sessions (six, less two revoked)');

my %seen;
for (1 .. 40) {
    $r = scrape();
    next unless $r->{status} == 200;
    $seen{$r->{h}{'x-worker'} // ''} = parse($r->{body});
    last if keys %seen >= 2;
}
is(scalar keys %seen, 2, 'both workers answered /metrics');
note($r->{body});

for my $pid (sort keys %seen) {
    my $v = $seen{$pid}{values};
    my $ty = $seen{$pid}{types};
    my $w = "worker $pid";
    ok($v, "$w: parsed");
    is($v->{'identity_logins_total{outcome=success,provider=test}'}, 6,
       "$w: six successful logins, summed over both workers");
    # the provider's error comes back with this browser's state: the
    # pending login names its provider
    is($v->{'identity_logins_total{outcome=denied,provider=test}'}, 1,
       "$w: one login denied (cancelled at the IdP), under its provider");
    is($v->{'identity_logins_total{outcome=denied,provider=}'}, 0,
       "$w: none denied with its provider unknown");
    is($v->{'identity_logins_total{outcome=failed,provider=}'}, 1,
       "$w: one login failed, its provider unknown (forged state)");
    is($v->{'identity_logins_total{outcome=failed,provider=test}'}, 0,
       "$w: no failed login with a known provider");
    is($v->{'identity_denials_total{reason=email}'}, 2, "$w: two denials by an e-mail rule");
    is($v->{'identity_denials_total{reason=group}'}, 0, "$w: none by a group");
    is($v->{'identity_revocations_total{source=api}'}, 1, "$w: one revocation by the API");
    is($v->{'identity_revocations_total{source=logout}'}, 1, "$w: one at logout");
    is($v->{'identity_revocations_total{source=backchannel}'}, 0, "$w: none back-channel");
    cmp_ok($v->{'identity_session_cache_hits_total{}'} // -1, '>=', 1,
           "$w: the session cache was hit");
    cmp_ok($v->{'identity_session_cache_misses_total{}'} // -1, '>=', 1,
           "$w: and missed");
    is($ty->{identity_redis_request_duration_seconds}, 'histogram',
       "$w: identity_redis_request_duration_seconds is a histogram");
    my $count = $v->{'identity_redis_request_duration_seconds_count{}'} // 0;
    cmp_ok($count, '>=', 6, "$w: the Redis commands were timed");
    is($v->{'identity_redis_request_duration_seconds_bucket{le=+Inf}'}, $count,
       "$w: +Inf bucket = count");
    is($v->{'identity_redis_up{}'}, 1, "$w: identity_redis_up 1");
    is($ty->{identity_idp_request_duration_seconds}, 'histogram',
       "$w: identity_idp_request_duration_seconds is a histogram");
    is($v->{'identity_idp_request_duration_seconds_count{call=token,provider=test}'}, 6,
       "$w: six token calls (one a successful login)");
    is($v->{'identity_idp_request_duration_seconds_bucket{call=token,le=+Inf,provider=test}'}, 6,
       "$w: in the +Inf bucket too");
    cmp_ok($v->{'identity_idp_request_duration_seconds_count{call=discovery,provider=test}'} // 0,
           '>=', 1, "$w: the discovery was timed");
    cmp_ok($v->{'identity_idp_request_duration_seconds_count{call=jwks,provider=test}'} // 0,
           '>=', 1, "$w: the JWKS fetch was timed");
    is($v->{'identity_idp_request_duration_seconds_count{call=saml,provider=test}'}, 0,
       "$w: no SAML metadata for an OIDC provider");
    is($ty->{identity_sessions_active}, 'gauge', "$w: identity_sessions_active is a gauge");
    is($v->{'identity_sessions_active{}'}, $indexed, "$w: identity_sessions_active $indexed");
}

# ------------------------------------------------------------ a reload

ok($t->reload_nginx, 'nginx reloaded, with the same providers');
$r = scrape();
my $after = parse($r->{body} // '');
is($after && $after->{values}{'identity_logins_total{outcome=success,provider=test}'}, 6,
   'the counters survive the reload (the zone is kept)');

# ------------------------------------------------------------ Redis down

$t->stop_redis;
for (1 .. 10) {
    $r = Identity::Test::UA->new->get("$base/again");   # a command fails
    $r = scrape();
    last if ($r->{body} // '') =~ /^identity_redis_up 0$/m;
}
like($r->{body}, qr/^identity_redis_up 0$/m, 'Redis stopped: identity_redis_up 0');
is($r->{status}, 200, '/metrics still answers');
ok(parse($r->{body}), 'and parses');

done_testing();
