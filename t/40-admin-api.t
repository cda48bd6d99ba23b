#!/usr/bin/perl
# The admin API, shaped like ngrok's App Users and App Sessions API, driven
# over HTTP against sessions made by real logins.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Digest::SHA qw(sha256_hex);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'admin-api');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice' },
        { id => 'bob', password => 'bob-password', email => 'bob@corp.test',
          name => 'Bob Builder', username => 'bobby' },
    ]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "\n  $token  \n");

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1));
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token", 'Ngrok-Version' => '2' });

sub call {
    my ($method, $path, %o) = @_;
    my $r = $api->request($method, "$base/api/$path", %o);
    $r->{json} = eval { decode_json($r->{body}) } if length($r->{body} // '');
    return $r;
}

sub login {
    my ($user, $path) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base$path", user => $user);
    return ($ua, upstream_saw($r->{body}));
}

my $rfc3339 = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

# auth

my $r = Identity::Test::UA->new(headers => { Accept => 'application/json' })
    ->get("$base/api/app/users");
is($r->{status}, 401, 'no token: 401');
like($r->{h}{'www-authenticate'} // '', qr/^Bearer/, 'WWW-Authenticate: Bearer');
my $e = decode_json($r->{body});
is($e->{status_code}, 401, 'error JSON: status_code');
ok($e->{error_code} && $e->{msg} && ref $e->{details} eq 'HASH', 'error JSON: ngrok shape');
$r = call('GET', 'app/users', headers => { Authorization => "Bearer ${token}x" });
is($r->{status}, 401, 'wrong token: 401');
$r = call('GET', 'app/users', headers => { Authorization => "Basic $token" });
is($r->{status}, 401, 'not a bearer token: 401');
$r = call('GET', 'app/users', headers => { 'Ngrok-Version' => undef });
is($r->{status}, 200, 'Ngrok-Version may be absent');

# empty lists

$r = call('GET', 'app/users');
is_deeply($r->{json}{application_users}, [], 'no users yet');
is($r->{json}{uri}, "$base/api/app/users", 'list uri');
ok(exists $r->{json}{next_page_uri} && !defined $r->{json}{next_page_uri},
   'next_page_uri null');
is($r->{h}{'content-type'}, 'application/json', 'content type');

# real logins

my ($alice_ua, $alice) = login('alice', '/a');
my ($bob_ua, $bob) = login('bob', '/b');
my ($alice2_ua, $alice2) = login('alice', '/c');

$r = call('GET', 'app/users');
is($r->{status}, 200, 'list users');
my @users = @{$r->{json}{application_users}};
is(scalar @users, 2, 'two identities');
is($users[0]{id}, $bob->{id}, 'newest first');
my ($u) = grep { $_->{id} eq $alice->{id} } @users;
is($u->{uri}, "$base/api/app/users/$alice->{id}", 'user uri');
is_deeply($u->{identity_provider}, { name => 'test', url => $issuer }, 'identity_provider');
is($u->{provider_user_id}, 'alice', 'provider_user_id');
is($u->{email}, 'alice@example.test', 'email');
is($u->{name}, 'Alice Example', 'name');
is($u->{username}, 'alice', 'username');
like($u->{$_}, $rfc3339, "user $_ is RFC 3339 UTC") for qw(created_at last_active last_login);
is_deeply([sort keys %$u], [sort qw(id uri identity_provider provider_user_id username
                                    email name created_at last_active last_login)],
          'ApplicationUser fields');

$r = call('GET', "app/users/$alice->{id}");
is($r->{status}, 200, 'get user');
is($r->{json}{id}, $alice->{id}, 'the user');
is($r->{json}{email}, 'alice@example.test', 'its email');

$r = call('GET', 'app/sessions');
my @sessions = @{$r->{json}{application_sessions}};
is(scalar @sessions, 3, 'three sessions');
is($sessions[0]{id}, $alice2->{session}, 'newest session first');
my ($s) = grep { $_->{id} eq $bob->{session} } @sessions;
is($s->{uri}, "$base/api/app/sessions/$bob->{session}", 'session uri');
is($s->{public_url}, $base, 'public_url');
is($s->{browser_session}{ip_address}, '127.0.0.1', 'ip_address');
like($s->{browser_session}{user_agent}{raw}, qr/Chrome/, 'raw user agent');
is_deeply($s->{application_user}, { id => $bob->{id}, uri => "$base/api/app/users/$bob->{id}" },
          'application_user ref');
like($s->{$_}, $rfc3339, "session $_ is RFC 3339 UTC") for qw(created_at last_active expires_at);
like($s->{endpoint}{id}, qr/^ep_[0-9a-f]{16}$/, 'endpoint ref id');
is_deeply([sort keys %$s], [sort qw(id uri public_url browser_session application_user
                                    created_at last_active expires_at endpoint risk)],
          'ApplicationSession fields');
is_deeply($s->{risk}, [], 'risk: [] for a first login (docs/risk.md)');

$r = call('GET', "app/sessions/$bob->{session}");
is($r->{status}, 200, 'get session');
is($r->{json}{application_user}{id}, $bob->{id}, 'its user');

# per identity

$r = call('GET', "app/users/$alice->{id}/sessions");
is($r->{status}, 200, 'sessions of a user');
is_deeply([map { $_->{id} } @{$r->{json}{application_sessions}}],
          [$alice2->{session}, $alice->{session}], 'only hers, newest first');
is($r->{json}{uri}, "$base/api/app/users/$alice->{id}/sessions", 'its uri');

$r = call('GET', "app/users/$alice->{id}/endpoints");
is($r->{status}, 200, 'endpoints of a user');
my $ep = $r->{json}{endpoints};
is(scalar @$ep, 1, 'one endpoint');
is($ep->[0]{public_url}, $base, 'endpoint public URL');
is($ep->[0]{session_count}, 2, 'session count');
like($ep->[0]{first_accessed}, $rfc3339, 'first access');
like($ep->[0]{last_accessed}, $rfc3339, 'last access');
is($ep->[0]{id}, $s->{endpoint}{id}, 'same endpoint id as in the session');

# filters

sub ids { [map { $_->{id} } @{$_[0]{json}{application_users} // $_[0]{json}{application_sessions}}] }

is_deeply(ids(call('GET', 'app/users?user=BUILD')), [$bob->{id}], 'user filter: name, any case');
is_deeply(ids(call('GET', 'app/users?user=corp.test')), [$bob->{id}], 'user filter: email');
is_deeply(ids(call('GET', 'app/users?user=bobby')), [$bob->{id}], 'user filter: username');
is_deeply(ids(call('GET', 'app/users?user=nobody')), [], 'user filter: no match');
is_deeply(ids(call('GET', 'app/users?provider=test&user=alice')), [$alice->{id}], 'provider filter');
is_deeply(ids(call('GET', 'app/users?provider=other')), [], 'provider filter: no match');
is_deeply(ids(call('GET', 'app/users?id=' . substr($alice->{id}, 5, 10))), [$alice->{id}],
          'id filter: part of the id');
is_deeply(ids(call('GET', 'app/sessions?user=alice')), [$alice2->{session}, $alice->{session}],
          'session filter by user');
is_deeply(ids(call('GET', "app/sessions?id=$bob->{id}")), [$bob->{session}],
          'session filter by user id');

# paging

$r = call('GET', 'app/sessions?limit=2');
is(scalar @{$r->{json}{application_sessions}}, 2, 'limit=2');
is($r->{json}{next_page_uri}, "$base/api/app/sessions?limit=2&before_id=$bob->{session}",
   'next_page_uri');
my $next = $r->{json}{next_page_uri};
$next =~ s{^\Q$base\E/api/}{};
$r = call('GET', $next);
is_deeply(ids($r), [$alice->{session}], 'second page');
ok(!defined $r->{json}{next_page_uri}, 'last page: next_page_uri null');
$r = call('GET', 'app/users?limit=1&user=e');
like($r->{json}{next_page_uri} // '', qr/[?&]user=e(&|$)/, 'next page keeps the filters');

# errors

for my $q ('limit=0', 'limit=101', 'limit=x', 'limit=-1', 'before_id=zz',
           'before_id=as_0123', "before_id=$alice->{id}") {
    $r = call('GET', "app/sessions?$q");
    is($r->{status}, 400, "400 for $q");
    is($r->{json}{status_code}, 400, "error JSON for $q");
}
$r = call('GET', 'app/sessions?before_id=as_' . ('0' x 32));
is($r->{status}, 400, 'unknown before_id: 400');

for my $p ('app/users/au_' . ('0' x 32), 'app/sessions/as_' . ('0' x 32),
           'app/users/nope', 'app/sessions/au_' . ('0' x 32), 'app/other', 'nothing',
           "app/users/$alice->{id}/other") {
    $r = call('GET', $p);
    is($r->{status}, 404, "404 for $p");
    is($r->{json}{status_code}, 404, "error JSON for $p");
}
$r = call('DELETE', 'app/users/au_' . ('0' x 32));
is($r->{status}, 404, 'DELETE unknown user: 404');

$r = call('POST', 'app/users', body => '{}');
is($r->{status}, 405, 'POST on a list: 405');
is($r->{h}{allow}, 'GET, HEAD', 'Allow on a list');
$r = call('PUT', "app/users/$alice->{id}", body => '{}');
is($r->{status}, 405, 'PUT on a user: 405');
is($r->{h}{allow}, 'GET, HEAD, DELETE', 'Allow on a user');
$r = call('DELETE', 'app/sessions');
is($r->{status}, 405, 'DELETE on a list: 405');

# revocation of one session

is($bob_ua->get("$base/x")->{status}, 200, 'bob is logged in');
$r = call('DELETE', "app/sessions/$bob->{session}");
is($r->{status}, 204, 'DELETE session: 204');
is($r->{body}, '', 'no body');
$r = $bob_ua->get("$base/x");
is($r->{status}, 302, "bob's next request goes to login");
is($bob_ua->get("$base/x", headers => { Accept => 'application/json' })->{status}, 401,
   'and an API client gets 401');
is(call('GET', "app/sessions/$bob->{session}")->{status}, 404, 'session gone');
is(call('DELETE', "app/sessions/$bob->{session}")->{status}, 404, 'second DELETE: 404');
is(call('GET', "app/users/$bob->{id}")->{status}, 200, 'bob the identity remains');

# deleting a user ends all their sessions at once, atomically

is($alice_ua->get("$base/x")->{status}, 200, 'alice (1) logged in');
is($alice2_ua->get("$base/x")->{status}, 200, 'alice (2) logged in');
$r = call('DELETE', "app/users/$alice->{id}");
is($r->{status}, 204, 'DELETE user: 204');
is($alice_ua->get("$base/x")->{status}, 302, 'alice (1) refused');
is($alice2_ua->get("$base/x")->{status}, 302, 'alice (2) refused');
is(call('GET', "app/users/$alice->{id}")->{status}, 404, 'user gone');
is_deeply(ids(call('GET', 'app/sessions?user=alice')), [], 'her sessions gone');
my $keys = $t->redis('KEYS', '*');
ok(!(grep { /\Q$alice->{id}\E|\Q$alice->{session}\E|\Q$alice2->{session}\E/ } @$keys),
   'no key names her or her sessions');
ok(!(grep { $_ eq $alice->{id} } @{$t->redis('ZRANGE', 'identity:users', 0, -1)}),
   'unindexed');

# logging in again works, with a fresh session

my ($again_ua, $again) = login('alice', '/d');
ok($again->{session} && $again->{session} ne $alice->{session}, 'fresh session after login');
is(call('GET', "app/users/$again->{id}")->{json}{email}, 'alice@example.test',
   'a new identity record');

# an expired session disappears from the lists

my ($carol_ua, $carol) = login('bob', '/e');
$t->redis('DEL', Identity::Test::session_key($carol_ua->cookie('identity_session', '127.0.0.1')));
ok(!(grep { $_ eq $carol->{session} } @{ids(call('GET', 'app/sessions'))}),
   'expired session not listed');
is(call('GET', "app/sessions/$carol->{session}")->{status}, 404, 'expired session: 404');
is($t->redis('ZSCORE', 'identity:sessions', $carol->{session}), undef, 'and unindexed');

# Redis down

$t->stop_redis;
$r = call('GET', 'app/users');
is($r->{status}, 503, 'Redis down: 503');
is($r->{json}{status_code}, 503, 'error JSON');
$t->start_redis;

$t->done;
