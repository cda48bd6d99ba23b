#!/usr/bin/perl
# Session metadata: the user agent parsed with uap-core's regexes, the
# client's country and coordinates from MaxMind DB files (GeoIP2 City and
# ip-location-db schemas, IPv4 and IPv6, $remote_addr after realip), what
# the admin API and the variables show, and the endpoints an identity used
# with the sessions of each.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);
use Identity::Test;
use Identity::GeoDB qw(write_mmdb);
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'session-metadata');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $n2port = $t->port('nginx2');
my $base = "http://127.0.0.1:$nport";
my $base2 = "http://127.0.0.1:$n2port";
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback",
                                             "$base2/_identity/callback"]);

my $dir = $t->testdir;
write_mmdb("$dir/flat.mmdb", schema => 'flat', ip_version => 4, networks => {
    '203.0.113.0/24' => { country => 'FR', lat => 48.8566, lon => 2.3522 },
});
write_mmdb("$dir/city.mmdb", schema => 'geoip2', ip_version => 6, networks => {
    '127.0.0.0/8'    => { country => 'JP', lat => 35.6895, lon => 139.6917, radius => 50 },
    '2001:db8::/32'  => { country => 'NZ', lat => -41.2865, lon => 174.7762, radius => 20 },
    '203.0.113.0/24' => { country => 'DE', lat => 52.52, lon => 13.405, radius => 100 },
});
$t->write_file('admin.token', "admin-secret-token\n");

my $vars = join '', map { (my $h = $_) =~ tr/_/-/; "            proxy_set_header X-M-$h \$identity_$_;\n" }
    qw(country latitude longitude browser browser_version os os_version device_type);
my $p = protected('test');

my $conf = identity_conf(redis => $rport, issuer => $issuer, admin => 1,
    server => 'identity_session_touch_interval 1s;',
    http => <<"H");
    identity_geoip_database %%TESTDIR%%/flat.mmdb;
    identity_geoip_database %%TESTDIR%%/city.mmdb;

    server {
        listen 127.0.0.1:%%PORT_nginx2%%;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        identity_session_touch_interval 1s;
        location / {
$p        }
    }
H
$conf =~ s{(            identity test;\n)}{$1$vars}g;
$conf =~ s{(cookie=\$http_cookie\n)}{$1 . join('', map { "$_=\$http_x_m_$_\n" }
    qw(country latitude longitude browser browser_version os os_version device_type))}e;
$t->nginx_conf($conf);
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', Authorization => 'Bearer admin-secret-token' });
sub api_get {
    my ($path) = @_;
    my $r = $api->get("$base/api/$path");
    return ($r->{status}, $r->{status} == 200 ? decode_json($r->{body}) : $r->{body});
}

my %ua = (
    chrome  => 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36',
    iphone  => 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1',
    tablet  => 'Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36',
    bot     => 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
);

sub login {
    my ($url, $agent, $xff) = @_;
    my $ua = Identity::Test::UA->new(headers => { 'User-Agent' => $agent,
        $xff ? ('X-Forwarded-For' => $xff) : () });
    my $r = $ua->oidc_login($url);
    return ($ua, $r);
}

sub session_of {
    my ($ua) = @_;
    my ($c) = grep { $_->{name} eq 'identity_session' } @{$ua->cookies};
    my %h = @{$t->redis('HGETALL', Identity::Test::session_key($c->{value}))};
    return \%h;
}

# desktop Chrome from 127.0.0.1: the GeoIP2 City database answers

my ($ua1, $r) = login("$base/desk", $ua{chrome});
is($r->{status}, 200, 'Chrome on Windows logged in');
my $saw = upstream_saw($r->{body});
is($saw->{browser}, 'Chrome', '$identity_browser');
is($saw->{browser_version}, '120.0.6099', '$identity_browser_version');
is($saw->{os}, 'Windows', '$identity_os');
is($saw->{os_version}, '10', '$identity_os_version');
is($saw->{device_type}, 'Desktop', '$identity_device_type');
is($saw->{country}, 'JP', '$identity_country from the GeoIP2 City schema');
is($saw->{latitude}, '35.6895', '$identity_latitude');
is($saw->{longitude}, '139.6917', '$identity_longitude');
my $s1 = session_of($ua1);
is($s1->{radius}, '50', 'accuracy radius kept');

my ($st, $j) = api_get("app/sessions/$s1->{id}");
is($st, 200, 'session through the API');
my $bs = $j->{browser_session};
is($bs->{ip_address}, '127.0.0.1', 'ip_address');
is($bs->{user_agent}{raw}, $ua{chrome}, 'user_agent.raw');
is($bs->{user_agent}{browser_name}, 'Chrome', 'user_agent.browser_name');
is($bs->{user_agent}{browser_version}, '120.0.6099', 'user_agent.browser_version');
is($bs->{user_agent}{os_name}, 'Windows', 'user_agent.os_name');
is($bs->{user_agent}{os_version}, '10', 'user_agent.os_version');
is($bs->{user_agent}{device_type}, 'Desktop', 'user_agent.device_type');
is($bs->{user_agent}{device_family}, 'Other', 'user_agent.device_family');
is($bs->{location}{country_code}, 'JP', 'location.country_code');
cmp_ok(abs($bs->{location}{latitude} - 35.6895), '<', 1e-6, 'location.latitude, a number');
cmp_ok(abs($bs->{location}{longitude} - 139.6917), '<', 1e-6, 'location.longitude');
is($bs->{location}{lat_long_radius_km}, 50, 'location.lat_long_radius_km');

# an iPhone behind a load balancer, IPv6: realip, then the City database

my ($ua2) = login("$base2/phone", $ua{iphone}, '2001:db8::5');
my $s2 = session_of($ua2);
is($s2->{ip}, '2001:db8::5', 'realip: the session has the client address');
is($s2->{country}, 'NZ', 'IPv6 address located');
is($s2->{browser}, 'Mobile Safari', 'Mobile Safari');
is($s2->{os}, 'iOS', 'iOS');
is($s2->{os_version}, '17.1.2', 'iOS version');
is($s2->{device}, 'iPhone', 'device family iPhone');
is($s2->{device_type}, 'Mobile', 'a Mobile device');

# an Android tablet from 203.0.113.7: the flat database is first and answers

my ($ua3) = login("$base2/tab", $ua{tablet}, '203.0.113.7');
my $s3 = session_of($ua3);
is($s3->{country}, 'FR', 'the first database that knows the address answers (flat schema)');
is($s3->{lat}, '48.8566', 'latitude from the flat schema');
is($s3->{lon}, '2.3522', 'longitude from the flat schema');
ok(!defined $s3->{radius} || $s3->{radius} eq '', 'no radius in that schema');
is($s3->{device_type}, 'Tablet', 'Android without "Mobile": Tablet');

# an address no database knows, and a crawler

my ($ua4) = login("$base2/bot", $ua{bot}, '198.51.100.1');
my $s4 = session_of($ua4);
is($s4->{country} // '', '', 'unknown address: no country');
is($s4->{device_type}, 'Bot', 'Googlebot is a Bot');
($st, $j) = api_get("app/sessions/$s4->{id}");
is_deeply($j->{browser_session}{location}, {}, 'API: an empty location');
is($j->{browser_session}{user_agent}{browser_name}, 'Googlebot', 'API: browser Googlebot');

# no User-Agent at all

my $bare = Identity::Test::UA->new(headers => { 'User-Agent' => undef });
$r = $bare->oidc_login("$base/bare");
is($r->{status}, 200, 'a client without User-Agent logs in');
my $s5 = session_of($bare);
is($s5->{browser} // '', '', 'nothing parsed');
($st, $j) = api_get("app/sessions/$s5->{id}");
is($j->{browser_session}{user_agent}{raw}, '', 'API: raw is empty');

# endpoints an identity used, and the sessions of each

my $uid = $s1->{uid};
is($s2->{uid}, $uid, 'all these sessions are alice\'s');
($st, $j) = api_get("app/users/$uid/endpoints");
is($st, 200, 'endpoints of the identity');
my %ep = map { $_->{public_url} => $_ } @{$j->{endpoints}};
ok($ep{$base} && $ep{$base2}, 'both endpoints listed');
is($ep{$base}{session_count}, 2, 'sessions made at the first');
is($ep{$base2}{session_count}, 3, 'sessions made at the second');
like($ep{$base}{first_accessed}, qr/^\d{4}-\d\d-\d\dT/, 'first access');
like($ep{$base}{last_accessed}, qr/^\d{4}-\d\d-\d\dT/, 'last access');
like($ep{$base}{id}, qr/^ep_[0-9a-f]{16}$/, 'an ep_ id');

($st, $j) = api_get("app/users/$uid/sessions?endpoint=$ep{$base}{id}");
is($st, 200, 'sessions of one endpoint');
is_deeply([sort map { $_->{id} } @{$j->{application_sessions}}],
          [sort $s1->{id}, $s5->{id}], 'the sessions made there');

# the Chrome session goes on to the second endpoint: it is listed there too

sleep 1.1;
$ua1->get("$base2/later");
sleep 0.3;
($st, $j) = api_get("app/users/$uid/sessions?endpoint=$ep{$base2}{id}");
ok((grep { $_->{id} eq $s1->{id} } @{$j->{application_sessions}}),
   'a session that went on to another endpoint is listed there');
is(scalar @{$j->{application_sessions}}, 4, 'with the three made there');

($st, $j) = api_get("app/users/$uid/sessions?endpoint=ep_0123456789abcdef&limit=2");
is($st, 200, 'an endpoint never used: 200');
is_deeply($j->{application_sessions}, [], 'no sessions');
($st) = api_get("app/users/$uid/sessions?endpoint=ep_XYZ");
is($st, 400, 'malformed endpoint id: 400');
($st) = api_get("app/sessions?endpoint=$ep{$base}{id}");
is($st, 400, 'endpoint filter without a user: 400');

# paging through an endpoint's sessions keeps the filter

($st, $j) = api_get("app/users/$uid/sessions?endpoint=$ep{$base2}{id}&limit=2");
like($j->{next_page_uri} // '', qr/[?&]endpoint=\Q$ep{$base2}{id}\E(&|$)/, 'next_page_uri keeps endpoint=');
my ($next) = ($j->{next_page_uri} // '') =~ m{/api/(.*)$};
($st, $j) = api_get($next);
is(scalar @{$j->{application_sessions}}, 2, 'second page');

# a revoked session leaves its endpoints' lists

my $del = $api->request('DELETE', "$base/api/app/sessions/$s1->{id}");
is($del->{status}, 204, 'Chrome session deleted');
($st, $j) = api_get("app/users/$uid/sessions?endpoint=$ep{$base2}{id}");
ok(!(grep { $_->{id} eq $s1->{id} } @{$j->{application_sessions}}), 'gone from the endpoint\'s sessions');
is($t->redis('EXISTS', "identity:session_endpoints:$s1->{id}"), 0, 'and its endpoint set');

# deleting the identity leaves no endpoint keys behind

$del = $api->request('DELETE', "$base/api/app/users/$uid");
is($del->{status}, 204, 'identity deleted');
my @left = grep { /endpoint/ } @{$t->redis('KEYS', 'identity:*')};
is_deeply(\@left, [], 'no endpoint keys left') or diag("@left");

# configuration errors

my $c = Identity::Test->new(name => 'session-metadata-conf');
$c->write_file('garbage.mmdb', "not a database\n" x 10);
$c->write_file('bad.yaml', "user_agent_parsers:\n  - regex: '(unclosed'\n");
for my $case (
    ['identity_geoip_database %%TESTDIR%%/garbage.mmdb;', qr/invalid value .*garbage\.mmdb.* in "identity_geoip_database"/, 'garbage geo database'],
    ['identity_geoip_database %%TESTDIR%%/missing.mmdb;', qr/missing\.mmdb/, 'missing geo database'],
    ['identity_user_agent_regexes %%TESTDIR%%/bad.yaml;', qr/user agent regexes .*bad\.yaml/, 'bad regexes file'],
) {
    $c->nginx_conf(identity_conf(redis => 6379, issuer => 'http://127.0.0.1:9/', http => $case->[0]));
    my ($rc, $out) = $c->nginx_test_conf;
    isnt($rc, 0, "nginx -t fails: $case->[2]");
    like($out, $case->[1], "... naming it");
}
$c->nginx_conf(identity_conf(redis => 6379, issuer => 'http://127.0.0.1:9/',
                             http => 'identity_user_agent_regexes off;'));
my ($rc, $out) = $c->nginx_test_conf;
is($rc, 0, 'identity_user_agent_regexes off') or diag($out);

$t->done;
