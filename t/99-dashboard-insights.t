#!/usr/bin/perl
# The dashboard's pictures (issue 17, part 4) in a real browser: headless
# Chromium from Debian's package driven by playwright-core
# (t/browser/insights.mjs).  Users log in from several countries (the geo
# fixture, and realip's X-Forwarded-For) with two providers and two kinds
# of device; one is refused by a rule; one travels from Paris to Tokyo in
# seconds.  An admin then looks at the overview (the logins chart, the
# world map), the sessions page and its filters, the risky session, the
# activity page and a user's activity, and the test compares what the
# browser shows with what the API answers.  The page must break no CSP
# rule and make no request to another origin.  Plus the world map's
# generator: regenerating dashboard/world.js gives the committed file.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Copy qw(copy);
use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::GeoDB qw(write_mmdb);
use Identity::Conf qw(identity_conf protected provider_block);

my $ROOT = $Identity::Test::ROOT;

# ------------------------------------------------------------ the map's data

SKIP: {
    skip 'scripts/map/node_modules absent (cd scripts/map && npm ci)', 3
        unless -d "$ROOT/scripts/map/node_modules/world-atlas";
    my $tmp = "$ROOT/t/tmp/world-$$.js";
    mkdir "$ROOT/t/tmp";
    is(system('node', "$ROOT/scripts/build-world-map.mjs", $tmp), 0,
       'the world map\'s generator runs');
    my $want = do { local (@ARGV, $/) = "$ROOT/dashboard/world.js"; <> };
    my $got = do { local (@ARGV, $/) = $tmp; <> } // '';
    unlink $tmp;
    ok($got eq $want, 'regenerating dashboard/world.js gives the committed file');
    cmp_ok(length $want, '<', 150_000, 'world.js is small: ' . length($want) . ' bytes');
}

Identity::Test::need('chromium');

my $t = Identity::Test->new(name => 'dashboard-insights');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        map({ { id => $_, password => "$_-password", email => "$_\@example.test",
                name => ucfirst($_) . ' Example', username => $_, groups => ['staff'] } }
            qw(alice carol)),
        { id => 'bob', password => 'bob-password', email => 'bob@example.test',
          name => 'Bob Example', username => 'bob', groups => [] },
        { id => 'admin', password => 'admin-password', email => 'admin@example.test',
          name => 'Ada Admin', username => 'admin', groups => ['admins'] },
    ]);

my $dir = $t->testdir;
my %city = (
    NZ => [-41.2865, 174.7762],      # the admin's browser, 127.0.0.1
    FR => [48.8566, 2.3522],
    JP => [35.6895, 139.6917],
    US => [40.7128, -74.006],
);
write_mmdb("$dir/geo.mmdb", schema => 'geoip2', ip_version => 6, networks => {
    '127.0.0.0/8'     => { country => 'NZ', lat => $city{NZ}[0], lon => $city{NZ}[1], radius => 20 },
    '203.0.113.0/24'  => { country => 'FR', lat => $city{FR}[0], lon => $city{FR}[1], radius => 20 },
    '198.51.100.0/24' => { country => 'JP', lat => $city{JP}[0], lon => $city{JP}[1], radius => 20 },
    '192.0.2.0/24'    => { country => 'US', lat => $city{US}[0], lon => $city{US}[1], radius => 20 },
});
$t->write_file('admin.token', "insights-token-0123456789\n");

my $other = protected('other');
my $staff = protected('test');
my $conf = identity_conf(redis => $rport, issuer => $issuer,
    provider => 'scopes openid email profile groups;',
    http => "identity_geoip_database %%TESTDIR%%/geo.mmdb;\n"
        . provider_block('other', type => 'oidc', issuer => $issuer,
                         extra => 'scopes openid email profile groups;'),
    server => "set_real_ip_from 127.0.0.1;\nreal_ip_header X-Forwarded-For;",
    locations => <<"L");
        location /other/ {
$other        }
        location /staff/ {
$staff            identity_require_group staff;
        }
        location /admin/ {
            identity test;
            identity_require_group admins;
            identity_admin;
            identity_admin_token_file %%TESTDIR%%/admin.token;
        }
L
$t->nginx_conf($conf);
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => { Accept => 'application/json',
    Authorization => 'Bearer insights-token-0123456789' });
sub api_get {
    my ($path) = @_;
    my $r = $api->get("$base/admin/$path");
    return ($r->{status}, $r->{status} == 200 ? decode_json($r->{body}) : undef);
}

# ------------------------------------------------------------ the logins

my %ua = (
    desktop => 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
    mobile  => 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1',
);
my %sid;
sub login {
    my ($name, $user, $ip, $device, $path) = @_;
    my $ua = Identity::Test::UA->new(headers => { 'X-Forwarded-For' => $ip,
        'User-Agent' => $ua{$device} });
    my $r = $ua->oidc_login("$base$path", user => $user);
    my $cookie = $ua->cookie('identity_session');
    $sid{$name} = $cookie
        ? $t->redis('HGET', Identity::Test::session_key($cookie), 'id') : undef;
    return $r->{status};
}

is(login('alice_fr', 'alice', '203.0.113.7', 'desktop', '/app/1'), 200, 'alice logs in from Paris');
is(login('alice_fr_phone', 'alice', '203.0.113.8', 'mobile', '/app/2'), 200, '... and from Paris on a phone');
is(login('bob_jp', 'bob', '198.51.100.9', 'mobile', '/app/3'), 200, 'bob logs in from Tokyo on a phone');
is(login('carol_us', 'carol', '192.0.2.10', 'desktop', '/other/4'), 200, 'carol logs in from New York through "other"');
is(login('bob_staff', 'bob', '198.51.100.9', 'desktop', '/staff/5'), 403, 'bob is refused /staff/ by a rule');
is(login('alice_jp', 'alice', '198.51.100.20', 'desktop', '/app/6'), 200, 'alice, seconds later, from Tokyo');

# a login that fails at the callback: its state forged
{
    my $ua = Identity::Test::UA->new(headers => { 'X-Forwarded-For' => '203.0.113.66' });
    my $res = $ua->oidc_login("$base/app/forged", user => 'carol',
        stop => sub { $_[0] =~ m{/_identity/callback} });
    my $cb = Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location} // '');
    $cb =~ s/([?&]state=)[^&]*/$1 . Identity::Test::random_token()/e;
    is($ua->get($cb)->{status}, 400, 'a login with a forged state fails: 400');
}

my ($st, $me) = api_get('app/users?user=alice');
my $alice = $me->{application_users}[0]{id} // '';
like($alice, qr/^au_/, 'alice\'s identity');

# ------------------------------------------------------------ the browser

mkdir "$dir/shots";
my $arg = encode_json({ base => $base, shots => "$dir/shots", user => $alice,
                        risky => $sid{alice_jp} });
my $json = `node $ROOT/t/browser/insights.mjs '$arg' 2>$dir/browser.err`;
my $o = eval { decode_json($json) }
    // { errors => ["no JSON: $json " . $t->read_file('browser.err')] };
is_deeply($o->{errors}, [], 'the browser run went through') or diag(join "\n", @{$o->{errors}});

# what the API says, to compare with (every session: the admin's too)
my ($ss, $sessions) = api_get('app/sessions?limit=100');
is($ss, 200, 'app/sessions');
my @all = @{$sessions->{application_sessions} // []};
my (%by_cc, %by_id);
for my $s (@all) {
    my $cc = $s->{browser_session}{location}{country_code} // '';
    $by_cc{$cc}++ if $cc;
    $by_id{$s->{id}} = $s;
}

# navigation, by keyboard
is_deeply($o->{nav}, [qw(Overview Identities Sessions Activity)], 'the sections in the top bar');
is($o->{nav_focus}, 'nav-overview', 'Shift+Tab from Identities reaches Overview');
is($o->{nav_hash}, '#/overview', 'Enter opens the overview');
is($o->{nav_current}, 'nav-overview', '... marked as the current section');

# ------------------------------------------------------------ the chart

my ($cs, $stats) = api_get('app/stats/logins?range=24h');
is($cs, 200, 'app/stats/logins');
my @bars = @{$o->{chart_24h}{bars} // []};
is(scalar @bars, scalar @{$stats->{buckets}}, '24 h: a bar per bucket (' . @bars . ')');
is_deeply([map { [$_->{start}, $_->{success}, $_->{failure}] } @bars],
          [map { [$_->{start}, $_->{success}, $_->{failure}] } @{$stats->{buckets}}],
          'each bar holds the API\'s counts');
my ($ok, $ko) = (0, 0);
$ok += $_->{success} for @bars;
$ko += $_->{failure} for @bars;
is($ok, 7, 'the bars count the logins made: 7 succeeded (bob\'s at /staff/ too: the rule refused him after)');
is($ko, 1, '... and the forged one failed');
my ($last) = grep { $_->{success} } reverse @bars;
ok($last && $last->{drawn} >= 1, 'the bucket of the logins is drawn');
like($last->{title} // '', qr/\d+ succeeded, \d+ failed/, '... with a tooltip');
like($o->{chart_24h}{summary}, qr/\Q$ok\E succeeded, \Q$ko\E failed/, 'the summary says so');
my ($c7, $s7) = api_get('app/stats/logins?range=7d');
is_deeply([map { [$_->{start}, $_->{success}, $_->{failure}] } @{$o->{chart_7d}{bars} // []}],
          [map { [$_->{start}, $_->{success}, $_->{failure}] } @{$s7->{buckets} // []}],
          '7 d: the bars hold the API\'s 28 buckets');

# ------------------------------------------------------------ the map

my %shaded = map { $_->{cc} => $_->{count} } @{$o->{map}{countries} // []};
is_deeply(\%shaded, \%by_cc, 'the map shades each country with its sessions: '
          . join(' ', map { "$_=$by_cc{$_}" } sort keys %by_cc));
is($shaded{FR}, 2, 'France: alice\'s two sessions');
ok($shaded{JP} && $shaded{US} && $shaded{NZ}, 'Japan, the United States, New Zealand');
cmp_ok($o->{map}{paths} // 0, '>', 150, "the world's countries are drawn ($o->{map}{paths})");
my ($fr) = grep { $_->{cc} eq 'FR' } @{$o->{map}{countries} // []};
like($fr->{title} // '', qr/France.*2 sessions/, 'a shaded country\'s tooltip: its name and count');
isnt($fr->{fill} // '', $o->{map}{unshaded_fill}, '... and it is filled in another colour');
my %points = map { $_->{cc} => $_ } @{$o->{map}{points} // []};
for my $cc (sort keys %city) {
    my $p = $points{$cc};
    ok($p, "a point in $cc") or next;
    ok(abs($p->{lat} - $city{$cc}[0]) < 0.01 && abs($p->{lon} - $city{$cc}[1]) < 0.01,
       "... at the fixture's coordinates");
    # equirectangular, 4 units a degree
    ok(abs($p->{cx} - ($city{$cc}[1] + 180) * 4) < 0.2 && abs($p->{cy} - (90 - $city{$cc}[0]) * 4) < 0.2,
       '... drawn where the projection puts them');
}
is($points{FR}{count}, 2, 'the Paris point counts two sessions');
like($o->{map}{note} // '', qr/^\Q${\ scalar @all}\E active sessions?\b/, 'the note counts the sessions');
unlike($o->{map}{note} // '', qr/first/, '... all of them: not capped');
my ($top) = sort { $by_cc{$b} <=> $by_cc{$a} || $a cmp $b } keys %by_cc;
is_deeply([map { $_->{cc} } @{$o->{map}{list} // []}],
          [sort { $by_cc{$b} <=> $by_cc{$a} || $a cmp $b } keys %by_cc],
          'the list of countries, the most first');
like($o->{map}{list}[0]{text} // '', qr/\($top\)\s*\Q$by_cc{$top}\E$/, '... with the count');
is($o->{from_map}{hash}, "#/sessions?country=$top", 'a country in the list opens its sessions');
is($o->{cap_requests}, 10, 'with endless pages of sessions, the map reads 10 pages');
like($o->{cap_note} // '', qr/^1,000 active sessions counted \(the first 1,000; there are more\)/,
     '... and says that it counted the first 1,000');
is($o->{cap_br}, 1000, '... all of them shaded');

# ------------------------------------------------------------ sessions

is_deeply([sort map { $_->{sessionId} } @{$o->{sessions_all} // []}], [sort keys %by_id],
          'the sessions page lists every session');
ok((grep { $_ eq 'Risk' } @{$o->{sessions_columns} // []}), '... with a risk column');
is_deeply($o->{provider_options}, ['', 'other', 'test'], 'providers to filter by');
is_deeply([map { $_->{sessionId} } @{$o->{sessions_provider} // []}], [$sid{carol_us}],
          'provider "other": carol\'s session');
my @fr = sort grep { ($by_id{$_}{browser_session}{location}{country_code} // '') eq 'FR' } keys %by_id;
is_deeply([sort map { $_->{sessionId} } @{$o->{sessions_country} // []}], \@fr,
          'country FR (typed in lower case): alice\'s two Paris sessions');
is_deeply([sort map { $_->{sessionId} } @{$o->{from_map}{rows} // []}],
          [sort grep { ($by_id{$_}{browser_session}{location}{country_code} // '') eq $top } keys %by_id],
          "... as from the map ($top)");
my @mobile = sort grep { ($by_id{$_}{browser_session}{user_agent}{device_type} // '') eq 'Mobile' } keys %by_id;
is_deeply([sort map { $_->{sessionId} } @{$o->{sessions_device} // []}], \@mobile,
          'device Mobile: the phones\' sessions (' . scalar(@mobile) . ')');
is(scalar @{$o->{sessions_provider_country} // []}, 0, 'provider "other" in FR: none ...');
like($o->{sessions_provider_country_empty} // '', qr/No sessions match/, '... and the page says so');

# ------------------------------------------------------------ risk

my @risky = sort grep { @{$by_id{$_}{risk} // []} } keys %by_id;
is_deeply(\@risky, [sort grep { defined } @sid{qw(alice_fr_phone bob_staff alice_jp)}],
          'risky: alice\'s phone and bob\'s laptop (new devices), alice in Tokyo');
is_deeply([sort map { $_->{sessionId} } @{$o->{sessions_risk} // []}], \@risky,
          'risk=any: the sessions with a signal (' . scalar(@risky) . ')');
my %want = map { $_->{signal} => 1 } map { @{$by_id{$_}{risk}} } @risky;
my %got = map { $_->{signal} => 1 } @{$o->{risk_badges} // []};
is_deeply(\%got, \%want, 'a badge for each signal: ' . join(' ', sort keys %want));
my @it = @{$o->{risky}{items} // []};
ok((grep { $_->{signal} eq 'impossible_travel' } @it), 'alice\'s Tokyo session: impossible travel');
like($o->{risky}{from} // '', qr/France.*48\.8566, 2\.3522/, 'from Paris, with its coordinates');
like($o->{risky}{to} // '', qr/Japan.*35\.6895, 139\.6917/, 'to Tokyo');
like($o->{risky}{from} . $o->{risky}{to}, qr/\d{4}.*\d{4}/, 'with the times');
is($o->{risky}{map}{line}, 1, 'a small map: the two joined by a line');
is($o->{risky}{map}{dots}, 2, '... two points');
is_deeply([sort @{$o->{risky}{map}{shaded} // []}], [qw(FR JP)], '... the two countries shaded');
my %alice_signals = map { $_->{signal} => 1 } map { @{$_->{risk} // []} }
    grep { ($_->{application_user}{id} // '') eq $alice } @all;
is_deeply({ map { $_ => 1 } @{$o->{user_session_badges} // []} }, \%alice_signals,
          'alice\'s page: the badges of her sessions (' . join(' ', sort keys %alice_signals) . ')');

# ------------------------------------------------------------ activity

my ($es, $events) = api_get('app/events?limit=50');
is($es, 200, 'app/events');
is_deeply([map { $_->{eventId} } @{$o->{activity} // []}],
          [map { $_->{id} } @{$events->{events}}], 'the activity page lists the events, newest first');
my @logins = grep { $_->{event}{action} eq 'login' } @{$events->{events}};
is_deeply([map { $_->{eventId} } @{$o->{activity_login} // []}], [map { $_->{id} } @logins],
          'filtered by action "login"');
ok((grep { ($_->{outcome} // '') eq 'failure' && $_->{text} =~ /failed/ }
    @{$o->{activity_login_badges} // []}), 'failed logins are there, marked as failed');
ok((grep { $_->{text} =~ /No valid login state/ } @{$o->{activity_login} // []}),
   'the forged login\'s reason, in words');
ok((grep { $_->{text} =~ /Refused by a group rule/ } @{$o->{activity_login} // []}),
   'bob\'s refusal at /staff/, in words');
ok((grep { $_->{text} =~ /bob\@example\.test/ && $_->{text} =~ /198\.51\.100\.9/ }
    @{$o->{activity_login} // []}), '... naming bob and his address');
my ($us, $ue) = api_get("app/events?user=$alice&limit=20");
is_deeply([map { $_->{eventId} } @{$o->{user_activity} // []}], [map { $_->{id} } @{$ue->{events}}],
          'alice\'s page: her recent activity');
cmp_ok(scalar @{$o->{user_activity} // []}, '>=', 3, '... her three logins at least');
like($o->{user_activity_text} // '', qr/\S/, 'alice\'s page has an activity card');

# ------------------------------------------------------------ the page itself

is_deeply($o->{csp}, [], 'no CSP violation') or diag(explain $o->{csp});
is_deeply($o->{console_errors}, [], 'no error in the console') or diag(explain $o->{console_errors});
my @reqs = @{$o->{requests} // []};
cmp_ok(scalar @reqs, '>', 10, scalar(@reqs) . ' requests recorded');
is_deeply([grep { !m{^\Q$base\E/} } @reqs], [], 'every request is to the dashboard\'s origin');
ok((grep { m{/admin/world\.js$} } @reqs), 'the map\'s shapes come from world.js, served by the module');
ok(!$o->{phone_overflow}, 'at a phone\'s width, nothing overflows sideways');

my @shots = map { "$dir/shots/$_.png" }
    qw(01-overview 02-overview-7d 03-sessions 04-sessions-provider 05-sessions-country
       06-sessions-risk 08-activity 09-user-activity 10-overview-phone 11-sessions-phone);
push @shots, "$dir/shots/07-session-risk.png" if @risky;
ok(!grep({ !-s $_ } @shots), 'screenshots saved in ' . "$dir/shots") or diag(`ls $dir/shots`);
if ($ENV{IDENTITY_UPDATE_SCREENSHOTS}) {
    copy("$dir/shots/01-overview.png", "$ROOT/docs/dashboard-overview.png");
    copy("$dir/shots/07-session-risk.png", "$ROOT/docs/dashboard-risk.png") if @risky;
}

# ------------------------------------------------------------ without the browser

my $r = $api->get("$base/admin/world.js");
is($r->{status}, 200, 'world.js is served');
like($r->{h}{'content-type'} // '', qr{^text/javascript}, '... as JavaScript');
like($r->{h}{'content-security-policy'} // '', qr/default-src 'none'/, '... under the CSP');
unlike($r->{body}, qr{https?://}, '... naming no URL');
$r = $api->get("$base/admin/");
like($r->{body}, qr{<script src="world\.js" defer></script>\s*<script src="dashboard\.js" defer>},
     'the page loads world.js before dashboard.js');
$r = $api->get("$base/admin/dashboard.js");
unlike($r->{body}, qr/\.style\s*=|setAttribute\(\s*'style'|innerHTML/,
       'dashboard.js sets no style attribute and writes no HTML');

$t->done;
