#!/usr/bin/perl
# Risk signals at login (issue 17, part 3; docs/risk.md): new_country,
# new_device, impossible_travel and concurrent_sessions over the identity's
# history, with the real OIDC provider and the geo fixture (Tokyo and Paris,
# 9,712 km apart, the client's address from X-Forwarded-For through realip);
# the actions flag (the API's risk), deny (the login error page, 403, no
# session, at every server of the nginx) and revoke_others (the other
# sessions refused at once, on a second nginx sharing the Redis too); the
# sessions' filters; the metrics; identity_risk's errors, among them its
# use in a server or a location (the policy is the nginx's: a session works
# at every server); and the arithmetic through build/unit/risk_check.
#
# identity_risk is set at http level only, so each policy is an nginx of
# its own, all sharing the Redis and the provider: "nginx" flags (with
# concurrent_sessions max=2), "deny" denies new_country and
# impossible_travel (speed=300) at both of its servers, "revoke" revokes
# others past 1 session, "b" flags with the defaults, "race" denies past
# 2 sessions, where parallel callbacks must not make more than 2.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use POSIX ();
use Test::More;
use Identity::Test;
use Identity::GeoDB qw(write_mmdb);
use Identity::Conf qw(identity_conf protected upstream_saw);

my $ta = Identity::Test->new(name => 'risk');
my $tb = Identity::Test->new(name => 'risk-b');
my $td = Identity::Test->new(name => 'risk-deny');
my $tr = Identity::Test->new(name => 'risk-revoke');
my $tx = Identity::Test->new(name => 'risk-race');
my $root = $Identity::Test::ROOT;

# ------------------------------------------------------------ the arithmetic

my $bin = "$root/build/unit/risk_check";
is(system('make', '-s', '-C', $root, $bin), 0, 'make builds risk_check');
my $out = `$bin 2>&1`;
is($?, 0, 'risk_check passes') or diag($out);
like($out, qr/^risk_check: \d+ checks, 0 failed$/m, 'risk_check ran its checks');

# ------------------------------------------------------------ servers

my $rport = $ta->start_redis;
my %base = (
    nginx  => 'http://127.0.0.1:' . $ta->port('nginx'),
    b      => 'http://127.0.0.1:' . $tb->port('nginx'),
    deny   => 'http://127.0.0.1:' . $td->port('nginx'),
    deny2  => 'http://127.0.0.1:' . $td->port('other'),
    revoke => 'http://127.0.0.1:' . $tr->port('nginx'),
    race   => 'http://127.0.0.1:' . $tx->port('nginx'),
);

my @users = map { { id => $_, password => "$_-password", email => "$_\@example.test",
                    name => ucfirst $_, username => $_ } }
    qw(alice bob carol dave erin frank gina hank ivan judy kim leo);
my $issuer = $ta->start_idp(users => \@users,
    redirect_uris => [map { "$_/_identity/callback" } values %base]);

my $dir = $ta->testdir;
write_mmdb("$dir/city.mmdb", schema => 'geoip2', ip_version => 6, networks => {
    '198.51.100.0/24' => { country => 'JP', lat => 35.6762, lon => 139.6503, radius => 10 },
    '203.0.113.0/24'  => { country => 'FR', lat => 48.8566, lon => 2.3522, radius => 10 },
    '100.64.1.0/24'   => { country => 'JP', lat => 35.6762, lon => 139.6503, radius => 5000 },
    '100.64.2.0/24'   => { country => 'FR', lat => 48.8566, lon => 2.3522, radius => 5000 },
});
my ($TOKYO, $PARIS, $WIDE_JP, $WIDE_FR, $NOWHERE) =
    ('198.51.100.7', '203.0.113.7', '100.64.1.7', '100.64.2.7', '192.0.2.1');

my $token = 'admin-' . Identity::Test::random_token(24);
my $p = protected('test');
my $http = <<"H";
    identity_geoip_database $dir/city.mmdb;
    identity_session_cache zone=sessions:1m;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
H

# one nginx per policy, each with its admin API (its own /metrics)
sub start_with {
    my ($t, $policy, $more) = @_;
    $t->write_file('admin.token', "$token\n");
    $t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
        admin => 1, http => $http . $policy . ($more // '')));
    $t->start_nginx;
}

start_with($ta, "    identity_risk concurrent_sessions action=flag max=2;\n");

# the strict nginx: a second server, without a word about risk, denies too
start_with($td, <<"H", <<"S");
    identity_risk new_country action=deny;
    identity_risk impossible_travel action=deny speed=300;
H

    server {
        listen 127.0.0.1:%%PORT_other%%;
        location / {
$p        }
    }
S

start_with($tr,
    "    identity_risk concurrent_sessions action=revoke_others max=1;\n");

# the second nginx that flags: the same Redis, its own session cache
start_with($tb, '');

# concurrent_sessions denied past 2, with two workers for the callbacks
$tx->write_file('admin.token', "$token\n");
$tx->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1,
    workers => 2,
    http => $http . "    identity_risk concurrent_sessions action=deny max=2;\n"));
$tx->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub api_get {
    my ($path) = @_;
    my $r = $api->get("$base{nginx}/api/$path");
    return ($r->{status}, $r->{status} == 200 ? decode_json($r->{body}) : $r->{body});
}

my %agent = (
    windows => 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36',
    iphone  => 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1',
);

# login(server, user, address, agent) -> (browser, last response)
sub login {
    my ($server, $user, $ip, $agent, %opt) = @_;
    my $ua = Identity::Test::UA->new(headers => {
        'User-Agent' => $agent{$agent // 'windows'}, 'X-Forwarded-For' => $ip });
    my $r = $ua->oidc_login("$base{$server}/page", user => $user, %opt);
    return ($ua, $r);
}

sub cookie_of { $_[0]->cookie('identity_session', '127.0.0.1') }

sub session_of {
    my ($ua) = @_;
    my $c = cookie_of($ua) // return {};
    my %h = @{$ta->redis('HGETALL', Identity::Test::session_key($c))};
    return \%h;
}

sub risk_of {
    my ($sid) = @_;
    my ($st, $j) = api_get("app/sessions/$sid");
    is($st, 200, "API: session $sid");
    return $j->{risk};
}

sub user_rec {
    my ($uid) = @_;
    my %h = @{$ta->redis('HGETALL', "identity:user:$uid")};
    return \%h;
}

# the last login's time moved back: "the previous session" was $ago s ago
sub earlier {
    my ($uid, $ago) = @_;
    my $last = user_rec($uid)->{risk_last};
    my @f = split / /, $last;
    $f[4] -= $ago;
    $ta->redis('HSET', "identity:user:$uid", 'risk_last', join ' ', @f);
}

# ------------------------------------------------------------ the first login flags nothing

my ($a1, $r) = login('nginx', 'alice', $TOKYO);
is($r->{status}, 200, 'alice logs in from Tokyo');
my $s1 = session_of($a1);
is($s1->{country}, 'JP', 'located in Japan');
is($s1->{risk}, undef, 'a first login: no risk in the session hash');
is_deeply(risk_of($s1->{id}), [], 'API: risk is [] for the first login');

my $uid = $s1->{uid};
my $rec = user_rec($uid);
is($rec->{risk_countries}, 'JP', 'the identity has seen JP');
is($rec->{risk_devices}, 'Desktop / Windows', 'and a Windows desktop');
like($rec->{risk_last}, qr/^35\.6762 139\.6503 10 JP \d+$/, 'and its last place');

# ------------------------------------------------------------ flag: every signal

# ten minutes later, from Paris, on an iPhone
earlier($uid, 600);
my ($a2) = login('nginx', 'alice', $PARIS, 'iphone');
my $s2 = session_of($a2);
ok($s2->{id}, 'alice logs in from Paris: flag lets her in');
my $risk = risk_of($s2->{id});
my %sig = map { $_->{signal} => $_ } @$risk;
is_deeply([sort keys %sig], [qw(impossible_travel new_country new_device)],
          'new_country, new_device, impossible_travel flagged');
is($sig{new_country}{detail}, 'FR; seen before: JP', 'new_country detail');
is($sig{new_device}{detail}, 'Mobile / iOS', 'new_device detail');
like($sig{impossible_travel}{detail}, qr/^9,[67]\d\d km in 10 min$/,
     'impossible_travel detail: Tokyo to Paris less both radii, in 10 min')
    or diag($sig{impossible_travel}{detail});
my ($from, $to) = @{$sig{impossible_travel}}{qw(from to)};
is($from->{country_code}, 'JP', 'from: JP');
cmp_ok(abs($from->{latitude} - 35.6762), '<', 1e-3, 'from: latitude');
cmp_ok(abs($from->{longitude} - 139.6503), '<', 1e-3, 'from: longitude');
is($to->{country_code}, 'FR', 'to: FR');
cmp_ok(abs($to->{latitude} - 48.8566), '<', 1e-3, 'to: latitude');
cmp_ok(abs($to->{longitude} - 2.3522), '<', 1e-3, 'to: longitude');
like($from->{at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'from: at, RFC 3339');
like($to->{at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'to: at, RFC 3339');
ok(decode_json($s2->{risk}), 'the session hash holds the flags as JSON');

$rec = user_rec($uid);
is($rec->{risk_countries}, "FR\nJP", 'FR remembered first');
is($rec->{risk_devices}, "Mobile / iOS\nDesktop / Windows", 'the iPhone remembered');
like($rec->{risk_last}, qr/^48\.8566 2\.3522 10 FR \d+$/, 'Paris is the last place');

# a third session, from Paris on Windows: seen, seen, no move; 3 > max 2
my ($a3) = login('nginx', 'alice', $PARIS);
my $s3 = session_of($a3);
$risk = risk_of($s3->{id});
is_deeply($risk, [{ signal => 'concurrent_sessions', detail => '3 sessions, limit 2' }],
          'concurrent_sessions alone: 3 sessions, limit 2');
is($a1->get("$base{nginx}/x")->{status}, 200, 'flag ends no session');

# every ApplicationSession has risk, in lists too
my ($st, $j) = api_get("app/users/$uid/sessions");
is($st, 200, "the identity's sessions");
is(scalar(grep { ref $_->{risk} eq 'ARRAY' } @{$j->{application_sessions}}), 3,
   'risk is an array in every listed session');

# ------------------------------------------------------------ unknown places, radii

my ($b1) = login('nginx', 'bob', $TOKYO);
my $bob = session_of($b1)->{uid};
earlier($bob, 600);
my ($b2) = login('nginx', 'bob', $NOWHERE);
my $sb2 = session_of($b2);
is($sb2->{country} // '', '', 'an address no database knows');
is_deeply(risk_of($sb2->{id}), [], 'unknown place: no travel, no country flagged');
like(user_rec($bob)->{risk_last}, qr/ JP \d+$/, 'the last known place stays Tokyo');

my ($c1) = login('nginx', 'carol', $WIDE_JP);
my $carol = session_of($c1)->{uid};
earlier($carol, 600);
my ($c2) = login('nginx', 'carol', $WIDE_FR);
$risk = risk_of(session_of($c2)->{id});
is_deeply([map { $_->{signal} } @$risk], ['new_country'],
          'radii of 5,000 km each cover the distance: no impossible travel');

# the same move over a day is possible; over 10 minutes with a 9,700 km
# radius sum... (above); here over a day
my ($h1) = login('nginx', 'hank', $TOKYO);
my $hank = session_of($h1)->{uid};
earlier($hank, 86400);
my ($h2) = login('nginx', 'hank', $PARIS);
$risk = risk_of(session_of($h2)->{id});
is_deeply([map { $_->{signal} } @$risk], ['new_country'],
          'Tokyo to Paris in a day (405 km/h): no impossible travel');

# ------------------------------------------------------------ deny

my $keys_before;
my ($d1) = login('deny', 'dave', $TOKYO);
my $dave = session_of($d1)->{uid};
ok($dave, 'dave logs in from Tokyo on the deny server');
earlier($dave, 7 * 86400);    # a week: no impossible travel at 300 km/h
my $nsessions = $ta->redis('ZCARD', "identity:user_sessions:$dave");

my ($d2, $dr) = login('deny', 'dave', $PARIS);
is($dr->{status}, 403, 'from Paris: 403');
like($dr->{body}, qr/This sign-in was blocked because it came from a country this account has not used before\. Contact your administrator\./,
     'the page says why, in words');
like($dr->{h}{'content-type'}, qr{^text/html}, 'an HTML page for a browser');
ok(!cookie_of($d2), 'no session cookie');
is($ta->redis('ZCARD', "identity:user_sessions:$dave"), $nsessions, 'no session in Redis');
is(user_rec($dave)->{risk_countries}, 'JP', 'a denied login leaves no history');
$td->log_like(qr/login of "dave" with "test" denied by "risk:new_country"/,
              'the reason risk:new_country is logged');

# the strict nginx's other server sets nothing and denies as well: the
# policy is the nginx's, and a session made at one server works at all
my ($d4, $dr4) = login('deny2', 'dave', $PARIS);
is($dr4->{status}, 403, "from Paris at the strict nginx's other server: 403");
like($dr4->{body}, qr/country this account has not used before/, 'the same page');
ok(!cookie_of($d4), 'no session cookie');
is($ta->redis('ZCARD', "identity:user_sessions:$dave"), $nsessions, 'no session in Redis');

# a client that is not a browser gets JSON: stopped at the callback
my ($d3, $cb) = login('deny', 'dave', $PARIS, 'windows',
                      stop => sub { $_[0] =~ m{/_identity/callback} });
my $loc = $cb->{h}{location};
ok($loc && $loc =~ m{/_identity/callback}, 'the provider sends back to the callback');
$loc = "$base{deny}$loc" if $loc =~ m{^/};
$r = $d3->get($loc, headers => { Accept => 'application/json', 'Sec-Fetch-Mode' => 'cors' });
is($r->{status}, 403, 'JSON client: 403');
my $err = eval { decode_json($r->{body}) } // {};
is($err->{error}, 'risk_new_country', 'JSON: error risk_new_country');
like($err->{error_description}, qr/country this account has not used before/, 'JSON: the words');

# impossible travel denied: both countries seen, 10 minutes apart
my ($e1) = login('deny', 'erin', $PARIS);
my $erin = session_of($e1)->{uid};
$ta->redis('HSET', "identity:user:$erin", 'risk_countries', "FR\nJP");
earlier($erin, 600);
my ($e2, $er) = login('deny', 'erin', $TOKYO);
is($er->{status}, 403, 'Paris to Tokyo in 10 minutes: 403');
like($er->{body}, qr/came from too far away from the last one/, 'the travel page');
ok(!cookie_of($e2), 'no session');
$td->log_like(qr/denied by "risk:impossible_travel"/, 'reason risk:impossible_travel');

# speed=300: Tokyo to Paris in a day (405 km/h) is too fast there
my ($g1) = login('deny', 'gina', $TOKYO);
my $gina = session_of($g1)->{uid};
$ta->redis('HSET', "identity:user:$gina", 'risk_countries', "FR\nJP");
earlier($gina, 86400);
my ($g2, $gr) = login('deny', 'gina', $PARIS);
is($gr->{status}, 403, 'speed=300: a day from Tokyo to Paris is denied');
like($gr->{body}, qr/too far away/, 'as impossible travel');

# ------------------------------------------------------------ revoke_others

my ($f1) = login('revoke', 'frank', $TOKYO);
my $old = cookie_of($f1);
my $sf1 = session_of($f1);
ok($old, 'frank has a session');
my $with = sub {
    my ($base, $cookie) = @_;
    return Identity::Test::UA->new->get("$base/x",
        headers => { Cookie => "identity_session=$cookie" })->{status};
};
is($with->($base{revoke}, $old), 200, 'his cookie works here');
is($with->($base{b}, $old), 200, 'and on the second nginx (now in its cache)');
is($with->($base{b}, $old), 200, 'again, from its cache');

my ($f2) = login('revoke', 'frank', $TOKYO);
my $sf2 = session_of($f2);
ok($sf2->{id}, 'a second login makes its session');
is_deeply(risk_of($sf2->{id}), [{ signal => 'concurrent_sessions', detail => '2 sessions, limit 1' }],
          'flagged concurrent_sessions');
isnt($with->($base{revoke}, $old), 200, 'the old cookie is refused at once here');
isnt($with->($base{b}, $old), 200, 'and on the second nginx');
is($with->($base{revoke}, cookie_of($f2)), 200, 'the new session works');
is($with->($base{b}, cookie_of($f2)), 200, 'on both');
is($ta->redis('EXISTS', "identity:session:" . substr($sf1->{id}, 3)), 0,
   'the old session is gone from Redis');

# ------------------------------------------------------------ parallel logins

# concurrent_sessions action=deny max=2: N logins taken to the provider's
# answer, then their N callbacks sent at once (forked children).  Each
# checks the count, then makes its session: without a second count in the
# script that makes it, every callback that checked before the others made
# theirs was admitted.  Whatever the order, never more than 2 live
# sessions, and every other callback is the risk denial.
sub live_sessions {
    my ($uid) = @_;
    return 0 unless $uid;
    my $ids = $ta->redis('ZRANGE', "identity:user_sessions:$uid", 0, -1);
    return scalar grep { $ta->redis('EXISTS', 'identity:session:' . substr($_, 3)) } @$ids;
}

sub parallel_callbacks {
    my ($user, $n) = @_;
    my @pending;
    for my $i (1 .. $n) {
        my ($ua, $res) = login('race', $user, $TOKYO, 'windows',
                               stop => sub { $_[0] =~ m{/_identity/callback} });
        my $url = Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location});
        push @pending, [$ua, $url];
    }
    # the children wait for the pipe to close, then go together; the
    # provider holds each token answer, so that they come back together
    $ta->idp_mode(token_delay_ms => 300);
    pipe my $gate_r, my $gate_w or die "pipe: $!";
    my %pid;
    for my $i (0 .. $#pending) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $gate_w;
            sysread $gate_r, my $x, 1;
            my ($ua, $url) = @{$pending[$i]};
            my $res = $ua->get($url);
            my $ok = $res->{status} == 302 && cookie_of($ua) ? 1 : 0;
            my $why = $res->{body} =~ /too many sessions open/ ? 1 : 0;
            $tx->write_file("race-$user-$i", "$res->{status} $ok $why");
            POSIX::_exit(0);
        }
        $pid{$pid} = $i;
    }
    close $gate_r;
    close $gate_w;
    waitpid $_, 0 for keys %pid;
    $ta->idp_mode(token_delay_ms => 0);
    my @out = map { [split / /, $tx->read_file("race-$user-$_")] } 0 .. $#pending;
    return (scalar(grep { $_->[1] } @out),
            scalar(grep { $_->[0] == 403 && $_->[2] } @out));
}

# ivan has one session: 8 callbacks at once, room for one more
my ($i1) = login('race', 'ivan', $TOKYO);
my $ivan = session_of($i1)->{uid};
ok($ivan, 'ivan has a session');
my ($made, $refused) = parallel_callbacks('ivan', 8);
cmp_ok(live_sessions($ivan), '<=', 2, '8 parallel logins, max=2: never more than 2 live sessions')
    or diag("made $made, refused $refused");
is($made, 1, 'one login made its session');
is($refused, 7, 'the 7 others: 403, the too many sessions page');

# first logins: no identity yet when they are checked, so the check
# counts nothing and only the creation's count holds them; three users,
# for the race to show more often without the second count
for my $user (qw(judy kim leo)) {
    ($made, $refused) = parallel_callbacks($user, 8);
    my $uid = $ta->redis('GET', "identity:sub:test:$user");
    cmp_ok(live_sessions($uid), '<=', 2,
           "$user: 8 parallel first logins, max=2: never more than 2 live")
        or diag("made $made, refused $refused");
    is($made, 2, 'two made their sessions');
    is($refused, 6, 'the 6 others: 403, the too many sessions page');
}
$tx->log_like(qr/login of "judy" with "test" denied by "risk:concurrent_sessions"/,
              'the reason risk:concurrent_sessions is logged');
my $mx = $api->get("$base{race}/api/metrics")->{body};
like($mx, qr/^identity_risk_signals_total\{signal="concurrent_sessions",action="deny"\} 25$/m,
     'each of the 25 denials counted once, by the check or by the creation');
like($mx, qr/^identity_logins_total\{provider="test",outcome="denied"\} 25$/m,
     'as denied logins');

# ------------------------------------------------------------ metrics

# each nginx counts what it did (the counters are per node)
sub metrics_of {
    my ($server) = @_;
    my $r = $api->get("$base{$server}/api/metrics");
    is($r->{status}, 200, "/metrics of $server");
    return $r->{body};
}

my $m = metrics_of('nginx');
like($m, qr/^identity_risk_signals_total\{signal="new_country",action="flag"\} [1-9]/m,
     'new_country flagged counted');
$m = metrics_of('deny');
like($m, qr/^identity_risk_signals_total\{signal="new_country",action="deny"\} 3$/m,
     'new_country denied three times (twice at one server, once at the other)');
like($m, qr/^identity_risk_signals_total\{signal="impossible_travel",action="deny"\} 2$/m,
     'impossible_travel denied twice');
like($m, qr/^identity_logins_total\{provider="test",outcome="denied"\} 5$/m,
     'the risk denials are denied logins');
$m = metrics_of('revoke');
like($m, qr/^identity_risk_signals_total\{signal="concurrent_sessions",action="revoke_others"\} 1$/m,
     'concurrent_sessions revoke_others once');
like($m, qr/^identity_revocations_total\{source="risk"\} 1$/m, 'one session revoked by risk');

# ------------------------------------------------------------ events

# the audit events (docs/events.md) of the flags, the denials and the
# revocation, read back through the API; sent without waiting for Redis
sub events_of {
    my ($query, $want) = @_;
    my $found = [];
    for (1 .. 100) {
        my ($st, $j) = api_get("app/events?$query");
        $found = [grep { $want->($_) } @{ref $j ? $j->{events} : []}];
        last if @$found;
        select undef, undef, undef, 0.05;
    }
    return $found;
}

my $flagged = events_of("action=risk_flagged&user=$uid",
    sub { ($_[0]{session}{id} // '') eq $s2->{id} });
is(scalar @$flagged, 1, "risk_flagged: one event for alice's Paris session");
is_deeply([map { $_->{signal} } @{$flagged->[0]{risk} || []}],
          [map { $_->{signal} } @{risk_of($s2->{id})}],
          'the event carries the session\'s flags');
is($flagged->[0]{source}{geo}{country_iso_code}, 'FR', 'and where it came from');

my $denied = events_of('action=login', sub {
    ($_[0]{event}{outcome} // '') eq 'failure'
        && ($_[0]{event}{reason} // '') eq 'risk:new_country' });
ok(scalar @$denied >= 1, 'a login denied by risk: a failure event, reason risk:new_country');
is($denied->[0]{user}{id}, $dave, "naming dave") or diag(explain($denied->[0])) if @$denied;
ok(!$denied->[0]{session}{id}, 'and no session') if @$denied;

my $travel = events_of('action=login', sub {
    ($_[0]{event}{reason} // '') eq 'risk:impossible_travel' });
ok(scalar @$travel >= 2, 'impossible travel denied: reason risk:impossible_travel');

my $revoked = events_of("action=session_revoked&user=$sf2->{uid}", sub {
    ($_[0]{event}{reason} // '') eq 'risk' });
is(scalar @$revoked, 1, 'revoke_others: one session_revoked event, reason risk');
is($revoked->[0]{identity}{sessions}, 1, 'counting the one session ended') if @$revoked;
ok(!$revoked->[0]{session}{id}, 'not naming the new session as revoked') if @$revoked;

# ------------------------------------------------------------ filters

sub ids {
    my ($path) = @_;
    my ($st, $j) = api_get($path);
    is($st, 200, "GET $path") or diag($j);
    return [sort map { $_->{id} } @{$j->{application_sessions} || []}];
}

is_deeply(ids("app/users/$uid/sessions?country=FR"), [sort $s2->{id}, $s3->{id}],
          "country=FR: alice's Paris sessions");
is_deeply(ids("app/users/$uid/sessions?device=Mobile"), [$s2->{id}], 'device=Mobile');
is_deeply(ids("app/users/$uid/sessions?risk=any"), [sort $s2->{id}, $s3->{id}], 'risk=any');
is_deeply(ids("app/users/$uid/sessions?risk=concurrent_sessions"), [$s3->{id}],
          'risk=concurrent_sessions');
is_deeply(ids("app/users/$uid/sessions?country=FR&device=Desktop"), [$s3->{id}],
          'country and device combine');
my $all = ids("app/sessions?risk=impossible_travel&provider=test");
ok((grep { $_ eq $s2->{id} } @$all), 'app/sessions?risk=impossible_travel&provider=test');
ok(!(grep { $_ eq $s3->{id} } @$all), 'without the others');

($st, $j) = api_get("app/sessions?risk=any&country=FR&limit=1");
is($st, 200, 'a page of one');
like($j->{next_page_uri}, qr/[?&]country=FR(&|$)/, 'next_page_uri keeps country');
like($j->{next_page_uri}, qr/[?&]risk=any(&|$)/, 'and risk');

for my $bad ('country=fr', 'country=FRA', 'country=F1', 'device=Phone', 'device=desktop',
             'risk=all', 'risk=new_countries') {
    my ($st) = api_get("app/sessions?$bad");
    is($st, 400, "app/sessions?$bad: 400");
}
($st) = api_get('app/users?country=FR');
is($st, 400, 'app/users?country=FR: 400, sessions only');

# ------------------------------------------------------------ identity_risk's errors

my $tc = Identity::Test->new(name => 'risk-conf');
$tc->write_file('admin.token', "x\n");
for my $case (
    ['identity_risk foo action=flag;', qr/invalid value "foo" in "identity_risk"/],
    ['identity_risk new_country action=block;', qr/invalid value "action=block" in "identity_risk new_country"/],
    ['identity_risk new_country;', qr/invalid number of arguments in "identity_risk"/],
    ['identity_risk new_country speed=100 action=flag;', qr/invalid value "speed=100" in "identity_risk new_country"/],
    ['identity_risk impossible_travel action=flag speed=0;', qr/invalid value "speed=0"/],
    ['identity_risk impossible_travel action=flag speed=fast;', qr/invalid value "speed=fast"/],
    ['identity_risk concurrent_sessions action=flag max=0;', qr/invalid value "max=0"/],
    ['identity_risk concurrent_sessions action=flag max=x;', qr/invalid value "max=x"/],
    ['identity_risk new_device action=flag max=3;', qr/invalid value "max=3" in "identity_risk new_device"/],
    ['identity_risk concurrent_sessions max=3;', qr/"identity_risk concurrent_sessions" needs action=flag, action=deny or action=revoke_others/],
    ["identity_risk new_country action=flag;\nidentity_risk new_country action=deny;", qr/"identity_risk" directive is duplicate/],
) {
    my ($directive, $re) = @$case;
    $tc->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, http => $directive));
    my ($rc, $text) = $tc->nginx_test_conf;
    (my $name = $directive) =~ s{\n}{ }g;
    isnt($rc, 0, "nginx -t fails: $name");
    like($text, $re, 'with a message naming the value');
}

# the policy is the nginx's: a session works at every server
my $only = qr/"identity_risk" is allowed at http level only: a session works at every server that shares its provider and Redis, so the risk policy is the whole nginx's/;
$tc->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    server => 'identity_risk new_country action=deny;'));
my ($rc, $text) = $tc->nginx_test_conf;
isnt($rc, 0, 'nginx -t fails: identity_risk in a server');
like($text, $only, 'saying it is for http level only, and why');

$tc->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    locations => [Identity::Conf::location_block('/in/', 'identity_risk new_country action=deny;')]));
($rc, $text) = $tc->nginx_test_conf;
isnt($rc, 0, 'nginx -t fails: identity_risk in a location');
like($text, $only, 'with the same message');

$tc->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => "identity_risk impossible_travel action=revoke_others speed=1200;\n"
            . "identity_risk concurrent_sessions action=deny max=5;"));
($rc, $text) = $tc->nginx_test_conf;
is($rc, 0, 'good values pass nginx -t') or diag($text);

for my $t ($ta, $tb, $td, $tr, $tx) {
    $t->stop_nginx;
    unlike($t->error_log, qr/\[(alert|emerg)\]/, "no alert in $t->{name}");
}

done_testing;
