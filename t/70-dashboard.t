#!/usr/bin/perl
# The Identities dashboard in a real browser: headless Chromium from
# Debian's package driven by playwright-core (t/browser/dashboard.mjs).  A
# user logs in through oidc-provider and reaches the upstream; an admin
# logs in to the dashboard (an allow-listed group), finds the user, opens
# the endpoint and the session, checks what it shows, and deletes the user;
# the user's next navigation lands on the IdP's login page.  Plus what the
# browser cannot show: the files' headers, the API's answers to a session
# and to a token, CSRF.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use File::Copy qw(copy);
use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::GeoDB qw(write_mmdb);
use Identity::Conf qw(identity_conf protected upstream_saw);

Identity::Test::need('chromium');

my $t = Identity::Test->new(name => 'dashboard');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice', groups => ['staff'] },
        { id => 'admin', password => 'admin-password', email => 'admin@example.test',
          name => 'Ada Admin', username => 'admin', groups => ['admins'] },
    ]);

my $dir = $t->testdir;
write_mmdb("$dir/geo.mmdb", schema => 'geoip2', ip_version => 6, networks => {
    '127.0.0.0/8' => { country => 'NZ', lat => -41.2865, lon => 174.7762, radius => 20 },
});
$t->write_file('admin.token', "script-token-0123456789\n");

my $app = protected('test');
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    provider => 'scopes openid email profile groups;',
    http => 'identity_geoip_database %%TESTDIR%%/geo.mmdb;',
    locations => <<"L"));
        location /app/ {
$app        }
        location /admin/ {
            identity test;
            identity_require_group admins;
            identity_admin;
            identity_admin_token_file %%TESTDIR%%/admin.token;
        }
L
$t->start_nginx;

# ------------------------------------------------------------ the browser

mkdir "$dir/shots";
my $arg = encode_json({ base => $base, issuer => $issuer, shots => "$dir/shots" });
my $json = `node $Identity::Test::ROOT/t/browser/dashboard.mjs '$arg' 2>$dir/browser.err`;
my $o = eval { decode_json($json) } // { errors => ["no JSON: $json " . $t->read_file('browser.err')] };
is_deeply($o->{errors}, [], 'the browser run went through') or diag(join "\n", @{$o->{errors}});

# the user
like($o->{alice_login_page} // '', qr{^\Q$issuer\E/interaction/}, 'user sent to the IdP\'s login page');
is($o->{user_landed}, "$base/app/hello?from=browser", 'user back at the page asked for');
like($o->{user_body} // '', qr/^email=alice\@example\.test$/m, 'the upstream saw alice');
is($o->{alice_admin_status}, 403, 'alice, not in "admins", is refused the dashboard');
like($o->{alice_admin_text} // '', qr/signed in as alice\@example\.test/, '... with the page naming her');

# the admin: login, table, search
like($o->{admin_login_page} // '', qr{^\Q$issuer\E/interaction/}, 'the dashboard asks the IdP to log in');
like($o->{account} // '', qr/admin\@example\.test/, 'dashboard shows who is signed in');
is(scalar @{$o->{users_listed} // []}, 2, 'identities table lists both identities');
is(scalar @{$o->{search_rows} // []}, 1, 'search "alice" (typed, Enter) finds one identity');
my $uid = $o->{search_rows}[0]{id} // '';
like($uid, qr/^au_[0-9a-f]{32}$/, 'an identity id');
like($o->{search_rows}[0]{text} // '', qr/test.*alice\@example\.test/, 'row: provider and e-mail');
like($o->{empty_text} // '', qr/\S/, 'a search finding nobody shows the empty state');

# identity detail, endpoint, session
like($o->{user_detail} // '', qr/Alice Example/, 'identity detail: the name');
like($o->{user_detail} // '', qr/\Q$issuer\E/, 'identity detail: the provider that authenticated the user');
is(scalar @{$o->{endpoints} // []}, 1, 'one endpoint accessed');
like($o->{endpoints}[0]{text} // '', qr/\Q$base\E/, 'the endpoint\'s public URL');
is(scalar @{$o->{endpoint_sessions} // []}, 2, 'its sessions: the laptop\'s and the phone\'s');
is($o->{phone_landed}, "$base/app/phone", 'the phone logged in too');
like($o->{phone_device} // '', qr/Mobile.*iPhone|iPhone.*Mobile/, 'the phone session: a Mobile iPhone');
like($o->{phone_browser} // '', qr/Mobile Safari/, 'the phone session: Mobile Safari');
like($o->{session_notice} // '', qr/delet|ended/i, 'the session\'s trash can: a notice');
like($o->{phone_after_delete} // '', qr{^\Q$issuer\E/interaction/}, 'the phone is back at the IdP login');
is($o->{user_still_in}, 200, 'the laptop session of the same user goes on');

my ($sid) = grep { $_ ne ($o->{phone_session} // '') } map { $_->{id} } @{$o->{endpoint_sessions} // []};
$sid //= '';
my $api = Identity::Test::UA->new(headers => { Accept => 'application/json',
    Authorization => 'Bearer script-token-0123456789' });
# the user is gone by now; the session's record was fetched by the browser,
# so compare with what the module parsed and located for the same browser
my $s = $o->{session} // {};
like($s->{browser} // '', qr/Chrome/, 'session detail: browser');
like($s->{os} // '', qr/Linux/, 'session detail: OS');
like($s->{device} // '', qr/Desktop|Other/, 'session detail: device');
like($s->{ip} // '', qr/^127\.0\.0\.1$/, 'session detail: IP');
like($s->{country} // '', qr/NZ|New Zealand/, 'session detail: country');
like($s->{coordinates} // '', qr/-41\.2865.*174\.7762/, 'session detail: coordinates');
is($s->{agent}, $o->{user_agent}, 'session detail: the raw user agent');
like($o->{map_link} // '', qr{^https://www\.openstreetmap\.org/\?mlat=-41\.2865&mlon=174\.7762}, 'coordinates link to a map');
like($o->{session_url} // '', qr{#/sessions/\Q$sid\E$}, 'session page URL');

# CSRF and the trash can
is($o->{csrf_status}, 403, 'a DELETE without the CSRF token is refused');
is($o->{after_cancel_status}, 200, 'Escape in the confirmation deletes nothing');
like($o->{notice} // '', qr/delet/i, 'a notice after deleting');
is($o->{after_delete_status}, 404, 'the identity is gone');
is($t->redis('EXISTS', "identity:user:$uid"), 0, 'from Redis too');
like($o->{user_after_delete} // '', qr{^\Q$issuer\E/interaction/}, 'the user\'s next navigation lands on the IdP login');
is_deeply($o->{console_errors}, [], 'no errors in the browser console') or diag(explain $o->{console_errors});

my @shots = map { "$dir/shots/$_.png" } qw(03-identities 05-identity 07-session 08-session-phone);
ok(!grep({ !-s $_ } @shots), 'screenshots saved') or diag(`ls $dir/shots`);
copy("$dir/shots/07-session.png", "$Identity::Test::ROOT/docs/dashboard-session.png")
    if $ENV{IDENTITY_UPDATE_SCREENSHOTS};
copy("$dir/shots/03-identities.png", "$Identity::Test::ROOT/docs/dashboard.png")
    if $ENV{IDENTITY_UPDATE_SCREENSHOTS};

# ------------------------------------------------------------ without the browser

is(system("sh $Identity::Test::ROOT/scripts/embed-dashboard.sh --check >/dev/null 2>&1"), 0,
   'the embedded dashboard is the one in dashboard/');

my $r = Identity::Test::UA->new->get("$base/admin/");
is($r->{status}, 302, 'the dashboard without a session: login');
like($r->{h}{location}, qr{^\Q$issuer\E/auth\?}, '... at the IdP');

$r = $api->get("$base/admin/");
is($r->{status}, 200, 'with the bearer token, the page is served');
like($r->{h}{'content-type'}, qr{^text/html}, 'as HTML');
like($r->{h}{'content-security-policy'} // '', qr/default-src 'none'.*script-src 'self'/, 'under a strict CSP');
is($r->{h}{'x-content-type-options'}, 'nosniff', 'nosniff');
like($r->{body}, qr/<script[^>]+src="dashboard\.js"/, 'the script is a file, not inline');
unlike($r->{body}, qr/<script>(?!<\/script>)/, 'no inline script');
my $etag = $r->{h}{etag};
like($etag // '', qr/^"[0-9a-f]{16}"$/, 'an ETag');
$r = $api->get("$base/admin/", headers => { 'If-None-Match' => $etag });
is($r->{status}, 304, 'If-None-Match: 304');
$r = $api->get("$base/admin/dashboard.js");
like($r->{h}{'content-type'}, qr{javascript}, 'dashboard.js');
unlike($r->{body}, qr{https?://(?!www\.openstreetmap\.org/|www\.w3\.org/2000/svg)}, 'no URL of another site in the script (no CDN)');
$r = $api->get("$base/admin/nope.js");
is($r->{status}, 404, 'no such file: 404');
$r = $api->request('POST', "$base/admin/dashboard.css", body => 'x');
is($r->{status}, 405, 'POST to a file: 405');
$r = $api->get("$base/admin/app/me");
is(decode_json($r->{body})->{authenticated_by}, 'token', 'app/me with the token');
$r = Identity::Test::UA->new(headers => { Accept => 'application/json',
    Authorization => 'Bearer wrong' })->get("$base/admin/app/users");
is($r->{status}, 401, 'a wrong token is not let through by the session check');

# app/me and CSRF with a session, without a browser
my $adm = Identity::Test::UA->new;
$r = $adm->oidc_login("$base/admin/app/me", user => 'admin');
is($r->{status}, 200, 'app/me with the admin\'s session');
my $me = decode_json($r->{body});
is($me->{email}, 'admin@example.test', 'app/me: e-mail');
like($me->{csrf_token}, qr/^[A-Za-z0-9_-]{43}$/, 'app/me: a CSRF token');
is($me->{logout_url}, '/_identity/logout?redirect_path=/admin/', 'app/me: where to log out');
ok(index($me->{csrf_token}, $adm->cookie('identity_session')) < 0, 'the token is not the cookie');

my $bob = Identity::Test::UA->new;
$bob->oidc_login("$base/app/x", user => 'alice');
my $bob_sid = $t->redis('HGET', Identity::Test::session_key($bob->cookie('identity_session')), 'id');
my $js = { Accept => 'application/json' };
$r = $adm->request('DELETE', "$base/admin/app/sessions/$bob_sid", headers => { %$js, 'X-CSRF-Token' => 'x' x 43 });
is($r->{status}, 403, 'DELETE with a wrong CSRF token: 403');
$r = $adm->request('DELETE', "$base/admin/app/sessions/$bob_sid",
    headers => { %$js, 'X-CSRF-Token' => $me->{csrf_token}, Origin => 'http://evil.example' });
is($r->{status}, 403, 'DELETE from another origin: 403');
$r = $adm->request('DELETE', "$base/admin/app/sessions/$bob_sid",
    headers => { %$js, 'X-CSRF-Token' => $me->{csrf_token}, Origin => $base });
is($r->{status}, 204, 'DELETE with the token, from this origin: 204');
is($bob->get("$base/app/x", headers => $js)->{status}, 401, 'that session is refused at once');
$r = $bob->get("$base/app/x");
is($r->{status}, 302, 'the revoked browser is sent to log in');
like($r->{h}{location}, qr/[?&]prompt=login(&|$)/, '... with prompt=login: the IdP\'s session must not log it back in');
$r = Identity::Test::UA->new->get("$base/app/x");
unlike($r->{h}{location}, qr/prompt=/, 'a browser that never had a session: no prompt');

$t->done;
