#!/usr/bin/perl
# The admin API's location (issue 12, B.8 and B.13): a location nested in
# it is an ordinary protected location, which no Authorization header gets
# into without a session; only the admin API itself takes a bearer token.
# An admin location that logs people in must name its admins with a rule,
# or nginx -t refuses it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf http_conf provider_block server_block upstream_saw);

my $t = Identity::Test->new(name => 'admin-protection');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice' },
        { id => 'bob', password => 'bob-password', email => 'bob@example.test',
          name => 'Bob Builder', username => 'bob' },
    ]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

my $admin = <<'LOC';
        location /admin/ {
            identity test;
            identity_allow_email alice@example.test;
            identity_admin;
            identity_admin_token_file %%TESTDIR%%/admin.token;

            location /admin/x/ {
                proxy_pass http://127.0.0.1:%%PORT_upstream%%;
            }

            if ($arg_debug) {
                add_header X-Debug on;
            }
        }
LOC

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, locations => $admin));
$t->start_nginx;

my $browser = Identity::Test::UA->new;
my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef });

# ------------------------------------------------ B.8: the nested location

for my $auth ('Bearer nope', "Bearer $token", 'Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=',
              'Bearer', 'Bearer ') {
    my $r = $browser->get("$base/admin/x/page", headers => { Authorization => $auth });
    is($r->{status}, 302, "nested location, browser, Authorization \"$auth\": 302");
    like($r->{h}{location} // '', qr{^\Q$issuer\E/auth\?}, '... to the provider');
    unlike($r->{body} // '', qr/^uri=/m, '... the upstream saw nothing');

    $r = $api->get("$base/admin/x/page", headers => { Authorization => $auth });
    is($r->{status}, 401, "nested location, API client, Authorization \"$auth\": 401");
    unlike($r->{body} // '', qr/^uri=/m, '... the upstream saw nothing');
}

# a session its rules admit reaches the nested location's upstream; one
# they do not is refused there as at the admin API

my $alice = Identity::Test::UA->new;
my $r = $alice->oidc_login("$base/admin/x/page", user => 'alice');
is($r->{status}, 200, 'alice, named by the rule, reaches the nested upstream');
is(upstream_saw($r->{body})->{uri}, '/admin/x/page', '... which saw her request');

my $bob = Identity::Test::UA->new;
$r = $bob->oidc_login("$base/admin/x/page", user => 'bob');
is($r->{status}, 403, 'bob, whom no rule names, is refused the nested location');
unlike($r->{body} // '', qr/^uri=/m, '... the upstream saw nothing');

$r = $bob->get("$base/admin/x/page", headers => { Authorization => "Bearer $token" });
is($r->{status}, 403, 'bob with the admin token at the nested location: still 403');

# the admin API itself takes the token

$r = $api->get("$base/admin/app/users", headers => { Authorization => 'Bearer nope' });
is($r->{status}, 401, 'admin API, wrong token: 401');
like($r->{h}{'content-type'} // '', qr{^application/json}, '... JSON');
is(eval { decode_json($r->{body})->{status_code} }, 401, '... the error JSON');

# an "if" in the admin location is still the admin API: the token works
# there, a wrong one does not

$r = $api->get("$base/admin/app/users?debug=1", headers => { Authorization => "Bearer $token" });
is($r->{status}, 200, 'admin API inside an "if", right token: 200');
is($r->{h}{'x-debug'}, 'on', '... the "if" applied');
$r = $api->get("$base/admin/app/users?debug=1", headers => { Authorization => 'Bearer nope' });
is($r->{status}, 401, 'admin API inside an "if", wrong token: 401');

$r = $api->get("$base/admin/app/users", headers => { Authorization => 'Basic YWxpY2U6eA==' });
is($r->{status}, 401, 'admin API, Basic credentials: 401');

$r = $api->get("$base/admin/app/users", headers => { Authorization => "Bearer $token" });
is($r->{status}, 200, 'admin API, right token: 200');
ok(eval { ref decode_json($r->{body})->{application_users} eq 'ARRAY' }, '... the users');

$r = $alice->get("$base/admin/app/users", headers => { Accept => 'application/json' });
is($r->{status}, 200, 'admin API, alice\'s session: 200');
$r = $bob->get("$base/admin/app/users", headers => { Accept => 'application/json' });
is($r->{status}, 403, 'admin API, bob\'s session: 403');

$t->stop_nginx;
$t->check_log;

# ------------------------------------------------ B.13: nginx -t

sub conf_with {
    my ($admin_location) = @_;
    return http_conf(
        redis => $rport,
        providers => [provider_block('test', type => 'oidc', issuer => $issuer)],
        servers => [server_block(locations => [$admin_location])],
    );
}

my %refused = (
    'identity and identity_admin, no rule' => <<'LOC',
        location /admin/ {
            identity test;
            identity_admin;
        }
LOC
    'no rule, with a token file' => <<'LOC',
        location /admin/ {
            identity test;
            identity_admin;
            identity_admin_token_file %%TESTDIR%%/admin.token;
        }
LOC
    'identity at server level, no rule' => <<'LOC',
        identity test;
        location /admin/ {
            identity_admin;
        }
LOC
);

for my $name (sort keys %refused) {
    $t->nginx_conf(conf_with($refused{$name}));
    my ($status, $out) = $t->nginx_test_conf;
    isnt($status, 0, "nginx -t refuses: $name");
    like($out, qr/\[emerg\] \d+#\d+: "identity_admin" with "identity test" in location "\/admin\/" needs a rule of its own naming the admins/,
         '... saying that a rule must name the admins');
}

$t->nginx_conf(conf_with(<<'LOC'));
        location /admin/ {
            identity test;
            identity_admin;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }
LOC
my ($status, $out) = $t->nginx_test_conf;
isnt($status, 0, 'nginx -t refuses identity_admin with proxy_pass');
like($out, qr/"identity_admin" cannot share location "\/admin\/" with another content handler/,
     '... saying why');

my %accepted = (
    'identity_allow_email' => 'identity_allow_email alice@example.test;',
    'identity_allow_email_domain' => 'identity_allow_email_domain example.test;',
    'identity_require_group' => 'identity_require_group admins;',
    'identity_require_claim' => 'identity_require_claim role admin;',
);

for my $name (sort keys %accepted) {
    $t->nginx_conf(conf_with(<<"LOC"));
        location /admin/ {
            identity test;
            $accepted{$name}
            identity_admin;
            location /admin/x/ {
                proxy_pass http://127.0.0.1:%%PORT_upstream%%;
            }
        }
LOC
    my ($s, $o) = $t->nginx_test_conf;
    is($s, 0, "nginx -t accepts an admin location with $name") or diag($o);
}

$t->nginx_conf(conf_with(<<'LOC'));
        location /api/ {
            identity_admin;
            identity_admin_token_file %%TESTDIR%%/admin.token;
        }
LOC
($status, $out) = $t->nginx_test_conf;
is($status, 0, 'nginx -t accepts an admin API for tokens only, without rules') or diag($out);

done_testing();
