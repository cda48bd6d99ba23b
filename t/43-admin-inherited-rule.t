#!/usr/bin/perl
# Found in review (issue 12, B.13): "an admin location that logs people in
# needs a rule naming the admins" counts a rule inherited from the server.
# The common shape, a site-wide rule for every employee at server level
# and an identity_admin location under it, passes nginx -t, and every
# user the site admits is an admin: bob, an ordinary user, lists and can
# delete everyone's sessions.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(http_conf provider_block server_block location_block);

my $t = Identity::Test->new(name => 'admin-inherited-rule');

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

$t->nginx_conf(http_conf(
    redis => $rport,
    providers => [provider_block('test', type => 'oidc', issuer => $issuer)],
    servers => [server_block(directives => <<'SERVER', locations => [
# the site: every employee
identity test;
identity_allow_email_domain example.test;
SERVER
        location_block('/', 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;'),
        "# the admin API: no rule of its own\n" . location_block('/admin/', 'identity_admin;'),
    ])],
));

my ($status, $out) = $t->nginx_test_conf;
isnt($status, 0, 'nginx -t refuses an admin location whose only rule is the site-wide one');

SKIP: {
    skip 'refused at nginx -t', 2 if $status != 0;
    $t->start_nginx;
    my $bob = Identity::Test::UA->new;
    my $r = $bob->oidc_login("$base/app", user => 'bob');
    is($r->{status}, 200, 'bob, an ordinary user, signs in to the site');
    $r = $bob->get("$base/admin/app/users", headers => { Accept => 'application/json' });
    isnt($r->{status}, 200, 'bob is not an admin: the admin API refuses him');
    $t->stop_nginx;
    $t->check_log;
}

done_testing();
