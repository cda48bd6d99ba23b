#!/usr/bin/perl
# What a provider says of a user is sanitized once, before a session is made
# (issue 12, B.9): control characters never reach $identity_* and so never a
# request header (proxy_set_header), a response header (add_header) or a log
# line.  An e-mail, username or user id that carries one, or is over its
# bound, refuses the login with a 403 and one info line; a name has them
# replaced by spaces and is cut at 256 bytes on a character boundary; a
# group that carries one, or is over 256 bytes, is dropped whole; at most
# 256 groups are kept.  OpenID Connect through t/idp/oidc.mjs, OAuth through
# the mock (for the user id, which oidc-provider takes from its login form).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(identity_conf preamble);

my $t = Identity::Test->new(name => 'claims');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";

my %ctl = (cr => "\r", lf => "\n", crlf => "\r\n", esc => "\e", del => "\x7f",
           nul => "\0", tab => "\t", c1 => "\xc2\x85");    # U+0085, as UTF-8

# id => claims; each logs in by its id

my @users;
sub user {
    my ($id, %c) = @_;
    push @users, { id => $id, password => "$id-password", username => $id,
                   email => "$id\@example.test", name => "Name $id", groups => ['staff'], %c };
}

for my $k (sort keys %ctl) {
    user("name-$k", name => "Eve${\ $ctl{$k}}X-Injected: yes");
    user("email-$k", email => "eve$ctl{$k}X-Injected: yes\@example.test");
    user("user-$k", username => "eve$ctl{$k}X-Injected: yes");
    user("groups-$k", groups => ['staff', "adm$ctl{$k}ins", "x$ctl{$k}X-Injected: yes", 'ops']);
}

my $domain = '@example.test';
user('email-254', email => ('e' x (254 - length $domain)) . $domain);
user('email-255', email => ('e' x (255 - length $domain)) . $domain);
user('user-256', username => 'u' x 256);
user('user-257', username => 'u' x 257);
user('name-300', name => 'n' x 300);
user('name-utf8', name => ('n' x 255) . "\xc3\xa9");    # é: two bytes, cut whole
user('name-c1-utf8', name => "\xc3\xa9t\xc3\xa9\xc2\x85end");
user('groups-256', groups => ['g' x 256, 'h' x 257, 'staff']);
user('groups-300', groups => [map { sprintf 'g%03d', $_ } 1 .. 300]);
user('groups-20000', groups => [map { sprintf 'group-%05d-padding-padding', $_ } 1 .. 20000]);

my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"], users => \@users);

# the OAuth mock's GitLab user endpoint answers the user as it is set

my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

my $headers = <<'H';
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
            proxy_set_header X-Identity-Email $identity_email;
            proxy_set_header X-Identity-Name $identity_name;
            proxy_set_header X-Identity-Username $identity_username;
            proxy_set_header X-Identity-User-Id $identity_provider_user_id;
            proxy_set_header X-Identity-Groups $identity_groups;
            add_header X-Name $identity_name always;
            add_header X-Email $identity_email always;
            add_header X-Username $identity_username always;
            add_header X-Groups $identity_groups always;
H

$t->write_file('token.key', Identity::Test::random_token(48) . "\n");

my $preamble = preamble();
$t->nginx_conf(<<"CONF");
$preamble
    identity_redis 127.0.0.1:$rport timeout=2s;
    log_format claims '\$identity_name|\$identity_groups';
    access_log %%TESTDIR%%/claims.log claims;

    identity_provider test {
        type oidc;
        issuer $issuer;
        client_id test-client;
        client_secret test-secret;
        scopes openid email profile groups;
    }

    identity_token_key_file %%TESTDIR%%/token.key;

    identity_provider gitlab_refresh {
        type oauth;
        authorization_endpoint $m/gitlab/oauth/authorize;
        token_endpoint $m/gitlab/oauth/token;
        userinfo_endpoint $m/gitlab/api/v4/user;
        client_id test-client;
        client_secret test-secret;
        scopes read_user;
        claim_map id=id email=email name=name username=username groups=groups
                  email_verified=verified;
        userinfo_refresh_interval 1s;
    }

    identity_provider gitlab {
        type oauth;
        authorization_endpoint $m/gitlab/oauth/authorize;
        token_endpoint $m/gitlab/oauth/token;
        userinfo_endpoint $m/gitlab/api/v4/user;
        client_id test-client;
        client_secret test-secret;
        scopes read_user;
        claim_map id=id email=email name=name username=username groups=groups
                  email_verified=verified;
    }

    server {
        listen 127.0.0.1:%%PORT_nginx%%;

        location / {
            identity test;
$headers
        }

        location /gl/ {
            identity gitlab;
$headers
        }

        location /glr/ {
            identity gitlab_refresh;
$headers
        }
    }

    server {
        listen 127.0.0.1:%%PORT_upstream%%;
        default_type text/plain;
        location / {
            return 200 "email=\$http_x_identity_email
name=\$http_x_identity_name
username=\$http_x_identity_username
user_id=\$http_x_identity_user_id
groups=\$http_x_identity_groups
injected=\$http_x_injected
";
        }
    }
}
CONF
$t->start_nginx;

sub saw {
    my ($body) = @_;
    my %h;
    for (split /\n/, $body // '') {
        $h{$1} = $2 if /^(\w+)=(.*)$/;
    }
    return \%h;
}

sub sessions { scalar @{$t->redis('KEYS', 'identity:session:*')} }

# a login that must be refused: a 403, no session, one info line

sub refused {
    my ($ua, $r, $what, $log) = @_;
    is($r->{status}, 403, "$what: login refused with 403");
    ok(!grep({ /^(?:__Host-)?identity_session=/ } @{$r->{cookies_set}}), "$what: no session cookie");
    like($t->error_log, $log, "$what: an info line says why");
    my $back = $ua->get("$base/page");
    is($back->{status}, 302, "$what: the browser is still not logged in");
}

# a login that must succeed: what the upstream and the response carry

sub admitted {
    my ($id, $path) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base/$path", user => $id);
    is($r->{status}, 200, "$id: logged in");
    my $s = saw($r->{body});
    is($s->{injected}, '', "$id: no header injected upstream");
    ok(!exists $r->{h}{'x-injected'}, "$id: no header injected in the response");
    my ($head) = split /\r\n\r\n/, $r->{raw}, 2;
    unlike($head =~ s/\r\n/ /gr, qr/[\x00-\x1f\x7f]/, "$id: no control character in the response head");
    return ($r, $s);
}

my $before = sessions();

# JSON carries NUL only as \u0000, which jansson refuses: the whole ID
# token (or user info) is refused, so a NUL never reaches a claim, let alone
# a header; strings are never cut at a NUL either

sub never_admitted {
    my ($r, $what) = @_;
    ok($r->{status} == 403 || $r->{status} == 503, "$what: refused ($r->{status})");
    ok(!grep({ /^(?:__Host-)?identity_session=/ } @{$r->{cookies_set}}), "$what: no session cookie");
}

for my $k (sort keys %ctl) {
    my $c = $ctl{$k};

    # name: control characters become spaces

    my $id = "name-$k";
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base/n", user => $id);

    if ($k eq 'nul') {
        never_admitted($r, $id);

    } else {
        my $want = 'Eve' . (' ' x ($k eq 'c1' ? 1 : length $c)) . 'X-Injected: yes';
        is($r->{status}, 200, "$id: logged in");
        my $s = saw($r->{body});
        is($s->{name}, $want, "$id: the upstream's X-Identity-Name");
        is($s->{injected}, '', "$id: no X-Injected header upstream");
        is($r->{h}{'x-name'}, $want, "$id: add_header X-Name");
        ok(!exists $r->{h}{'x-injected'}, "$id: no X-Injected header in the response");
    }

    # e-mail and username: refused

    for my $what (qw(email user)) {
        $id = "$what-$k";
        $ua = Identity::Test::UA->new;
        $r = $ua->oidc_login("$base/$what", user => $id);
        my $field = $what eq 'email' ? 'e-mail' : 'username';
        if ($k eq 'nul') {
            never_admitted($r, $id);
            next;
        }
        refused($ua, $r, $id,
                qr/\[info\].*user "\Q$id\E" refused: the provider's \Q$field\E has a control character/);
    }

    # groups: the group that carries it is dropped whole

    $id = "groups-$k";
    if ($k eq 'nul') {
        $ua = Identity::Test::UA->new;
        never_admitted($ua->oidc_login("$base/g", user => $id), $id);
        next;
    }

    my ($s);
    ($r, $s) = admitted($id, 'g');
    is($s->{groups}, 'staff,ops', "$id: the upstream's X-Identity-Groups");
    is($r->{h}{'x-groups'}, 'staff,ops', "$id: add_header X-Groups");
}

is(sessions(), $before + scalar(grep { $_ ne 'nul' } keys %ctl) * 2,
   'sessions only for the names and groups');

# the access log: one line per request, never a forged one

my @lines = split /\n/, $t->read_file('claims.log');
ok(!grep({ /^X-Injected/ } @lines), 'no forged access log line');

# lengths: at and over each bound

my ($r, $s) = admitted('email-254', 'e');
is(length $s->{email}, 254, 'a 254-byte e-mail is taken');
my $ua = Identity::Test::UA->new;
refused($ua, $ua->oidc_login("$base/e", user => 'email-255'), 'email-255',
        qr/user "email-255" refused: the provider's e-mail is too long/);

($r, $s) = admitted('user-256', 'u');
is($s->{username}, 'u' x 256, 'a 256-byte username is taken');
$ua = Identity::Test::UA->new;
refused($ua, $ua->oidc_login("$base/u", user => 'user-257'), 'user-257',
        qr/user "user-257" refused: the provider's username is too long/);

($r, $s) = admitted('name-300', 'n');
is($s->{name}, 'n' x 256, 'a name is cut at 256 bytes');

($r, $s) = admitted('name-utf8', 'n');
is($s->{name}, 'n' x 255, 'a name is never cut inside a character');

($r, $s) = admitted('name-c1-utf8', 'n');
is($s->{name}, "\xc3\xa9t\xc3\xa9 end", 'a C1 control in a name becomes a space, other characters stay');

($r, $s) = admitted('groups-256', 'g');
is($s->{groups}, ('g' x 256) . ',staff', 'a 256-byte group is kept, a 257-byte one dropped');

($r, $s) = admitted('groups-300', 'g');
my @g = split /,/, $s->{groups};
is(scalar @g, 256, '300 groups: 256 kept');
is($g[-1], 'g256', '300 groups: the provider\'s first 256');
like($t->error_log, qr/\[info\].*44 of the provider's groups dropped/, 'the dropped groups are logged');

($r, $s) = admitted('groups-20000', 'g');
@g = split /,/, $s->{groups};
ok(@g && @g <= 256 && length($s->{groups}) <= 4096, '20000 groups: at most 256 kept, 4 KiB in all');
is($g[0], 'group-00001-padding-padding', '20000 groups: the first are kept');

# OAuth: the user id, e-mail and groups through the generic form

my @oauth = (
    ['id-crlf', { id => "u1\r\nX-Injected: yes" }, qr/user refused: the provider's user id has a control character/],
    ['id-esc', { id => "u2\e" }, qr/user refused: the provider's user id has a control character/],
    ['id-257', { id => 'i' x 257 }, qr/user refused: the provider's user id is too long/],
    ['email-nul', { id => 'u3', email => "eve\0\@example.test" }, undef],
    ['email-del', { id => 'u4', email => "eve\x7f\@example.test" },
     qr/user "u4" refused: the provider's e-mail has a control character/],
);

for my $o (@oauth) {
    my ($what, $user, $log) = @$o;
    $mock->set_user('gitlab', { username => 'x', name => 'X', verified => JSON::PP::true(),
                                %$user });
    $ua = Identity::Test::UA->new;
    $r = $ua->get("$base/gl/x");
    $r = $ua->follow($r);
    if ($log) {
        refused($ua, $r, "oauth $what", $log);
    } else {
        # an unparsable user info is the provider's failure: 503
        never_admitted($r, "oauth $what");
    }
}

$mock->set_user('gitlab', { id => 'i' x 256, username => 'x', name => "Mal\r\nX-Injected: yes",
                            email => 'mal@example.test', groups => ["a\rb", 'ops'],
                            verified => JSON::PP::true() });
$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/gl/x"));
is($r->{status}, 200, 'oauth: a 256-byte user id is taken');
$s = saw($r->{body});
is($s->{user_id}, 'i' x 256, 'oauth: the upstream\'s user id');
is($s->{name}, 'Mal  X-Injected: yes', 'oauth: the name\'s CRLF became spaces');
is($s->{groups}, 'ops', 'oauth: the group with CR dropped');
is($s->{injected}, '', 'oauth: nothing injected upstream');
ok(!exists $r->{h}{'x-injected'}, 'oauth: nothing injected in the response');

# a user info refresh passes the same gate: a name is cleaned, an e-mail
# with a control character ends the session

$mock->set_user('gitlab', { id => 'r1', username => 'r1', name => 'Rita',
                            email => 'rita@example.test', groups => ['staff'],
                            verified => JSON::PP::true() });
$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/glr/x"));
is($r->{status}, 200, 'refresh: logged in');
$mock->set_user('gitlab', { id => 'r1', username => 'r1', name => "Rita\r\nX-Injected: yes",
                            email => 'rita@example.test', groups => ["staff\r", 'ops'],
                            verified => JSON::PP::true() });
select undef, undef, undef, 1.2;
$r = $ua->get("$base/glr/x");
is($r->{status}, 200, 'refresh: still admitted');
$s = saw($r->{body});
is($s->{name}, 'Rita  X-Injected: yes', 'refresh: the new name, cleaned');
is($s->{groups}, 'ops', 'refresh: the group with CR dropped');
is($s->{injected}, '', 'refresh: nothing injected upstream');
ok(!exists $r->{h}{'x-injected'}, 'refresh: nothing injected in the response');

$mock->set_user('gitlab', { id => 'r1', username => 'r1', name => 'Rita',
                            email => "rita\r\nX-Injected: yes\@example.test",
                            verified => JSON::PP::true() });
select undef, undef, undef, 1.2;
$r = $ua->get("$base/glr/x");
is($r->{status}, 403, 'refresh: an e-mail with CRLF ends the session: 403');
like($t->error_log, qr/\[info\].*user "r1" refused: the provider's e-mail has a control character/,
     'refresh: an info line says why');
$r = $ua->get("$base/glr/x");
is($r->{status}, 302, 'refresh: the session is gone');

unlike($t->error_log, qr/\[(alert|crit)\]|\[error\].*refused/, 'no alert, crit or error for a refusal');

$t->done;
