#!/usr/bin/perl
# Found in review of the claims gate and the e-mail verification work
# (issue 12, B.9, B.10, B.14): what an IdP user or an OAuth provider
# response could still get past them.
#
# 1. A groups claim that is a JSON string (not an array) with a newline
#    reads as two groups: "staff\nadmins" meets identity_require_group
#    admins.  docs/security/claims.md: "A group with a newline never reads
#    as two groups".  OpenID Connect and generic OAuth.
# 2. An e-mail the provider does not vouch for is dropped from
#    $identity_email, but the provider's raw claims still hold it, so
#    identity_require_claim email|mail|email_verified ... would match it
#    (with Microsoft's common tenant, the nOAuth hole again): nginx -t
#    refuses such rules; the e-mail rules read only a vouched address.
# 3. A session record written before the gate existed (an older module, up
#    to identity_max_session_duration ago) is used as it is: a CRLF in its
#    e-mail would reach proxy_set_header.  Records carry a version now; one
#    without it is not a session.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::OAuthMock;
use Identity::Conf qw(preamble upstream_saw);

my $t = Identity::Test->new(name => 'claims-review');
my $t2 = Identity::Test->new(name => 'claims-review-idtoken');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";
my $T = JSON::PP::true();
my $F = JSON::PP::false();

my @users = (
    { id => 'gstr', password => 'gstr-password', email => 'gstr@example.test',
      name => 'G Str', username => 'gstr', groups => "staff\nadmins" },
    { id => 'garr', password => 'garr-password', email => 'garr@example.test',
      name => 'G Arr', username => 'garr', groups => ["staff\nadmins"] },
    { id => 'uv', password => 'uv-password', email => 'boss@example.test',
      email_verified => $F, name => 'Un Verified', username => 'uv',
      groups => ['staff'] },
    { id => 'alice', password => 'alice-password', email => 'alice@example.test',
      name => 'Alice', username => 'alice', groups => ['staff'] },
);

my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
                           users => \@users);

# an IdP whose ID token has the claims too; userinfo gives another address
# and says nothing of it
my $idtok = $t2->start_idp(redirect_uris => ["$base/_identity/callback"],
    id_token_claims => $T,
    users => [{ id => 'swap', password => 'swap-password',
                email => 'swap@example.test', name => 'Swap', username => 'swap',
                userinfo => { email => 'ceo@example.test', email_verified => undef } }]);
my $mock = $t->start_oauth_mock;
my $m = $mock->{base};

my $up = <<'H';
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
            proxy_set_header X-Identity-Email $identity_email;
            proxy_set_header X-Identity-Name $identity_name;
            proxy_set_header X-Identity-User-Id $identity_provider_user_id;
            proxy_set_header X-Identity-Groups $identity_groups;
H

my $preamble = preamble();
$t->nginx_conf(<<"CONF");
$preamble
    identity_redis 127.0.0.1:$rport timeout=2s;

    identity_provider test {
        type oidc;
        issuer $issuer;
        client_id test-client;
        client_secret test-secret;
        scopes openid email profile groups;
    }

    identity_provider idtok {
        type oidc;
        issuer $idtok;
        client_id test-client;
        client_secret test-secret;
        userinfo on;
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

    identity_provider mscommon {
        type oauth;
        preset microsoft;
        client_id test-client;
        client_secret test-secret;
        authorization_endpoint $m/microsoft/common/oauth2/v2.0/authorize;
        token_endpoint $m/microsoft/common/oauth2/v2.0/token;
        userinfo_endpoint $m/microsoft/v1.0/me;
    }

    server {
        listen 127.0.0.1:%%PORT_nginx%%;

        location / {
            identity test;
$up
        }

        location /admins/ {
            identity test;
            identity_require_group admins;
$up
        }

        location /idtok/ {
            identity idtok;
$up
        }

        location /gl/ {
            identity gitlab;
            identity_require_group admins;
$up
        }

        location /ms/ {
            identity mscommon;
$up
        }
    }

    server {
        listen 127.0.0.1:%%PORT_upstream%%;
        default_type text/plain;
        location / {
            return 200 "email=\$http_x_identity_email
name=\$http_x_identity_name
user_id=\$http_x_identity_user_id
groups=\$http_x_identity_groups
injected=\$http_x_injected
";
        }
    }
}
CONF
$t->start_nginx;

sub oidc {
    my ($path, $user) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base$path", user => $user);
    return ($ua, $r, upstream_saw($r->{body}));
}

# 1. groups: a string with a newline must not read as two groups

my ($ua, $r, $saw) = oidc('/x', 'garr');
is($r->{status}, 200, 'oidc, array group with a newline: logged in');
is($saw->{groups}, '', '... the group is dropped (as documented)');

($ua, $r, $saw) = oidc('/admins/x', 'gstr');
isnt($r->{status}, 200,
     'oidc, groups "staff\nadmins" as one JSON string: not admitted by '
     . 'identity_require_group admins');
($ua, $r, $saw) = oidc('/x', 'gstr');
isnt($saw->{groups}, 'staff,admins',
     '... and $identity_groups does not say admins');

$mock->set_user('gitlab', { id => 'g1', username => 'g1', name => 'G1',
                            email => 'g1@example.test', verified => $T,
                            groups => "staff\nadmins" });
$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/gl/x"));
isnt($r->{status}, 200,
     'oauth claim_map groups=, "staff\nadmins" as one JSON string: not '
     . 'admitted by identity_require_group admins');

# 2. an unverified e-mail: no rule may read it

($ua, $r, $saw) = oidc('/x', 'uv');
is($r->{status}, 200, 'oidc, email_verified false: logged in');
is($saw->{email}, '', '... $identity_email is empty');

for my $claim (qw(email email_verified mail userPrincipalName upn Email)) {
    my $conf = $t->read_file('nginx.conf');
    (my $bad = $conf) =~ s{(location /admins/ \{)}{$1\n            identity_require_claim $claim x;};
    $t->write_file('nginx.conf', $bad);
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, "nginx -t refuses identity_require_claim $claim");
    like($out, qr/invalid value "\Q$claim\E" in "identity_require_claim": an e-mail claim counts only when the provider vouches for it/,
         '... and says why');
    $t->write_file('nginx.conf', $conf);
}

# the ID token vouches for one address, userinfo gives another: no e-mail
($ua, $r, $saw) = oidc('/idtok/x', 'swap');
is($r->{status}, 200, 'userinfo gives another address than the vouched one: logged in');
is($saw->{email}, '', '... with no e-mail');

my $mallory = { id => '99999999-2222-4333-8444-555555555555',
                displayName => 'Mallory', mail => 'ceo@victim.example',
                userPrincipalName => 'mallory@attacker.example',
                _tid => '0badc0de-9999-4abc-8def-0123456789ab' };
$mock->set_user('microsoft', $mallory);
$ua = Identity::Test::UA->new;
$r = $ua->follow($ua->get("$base/ms/x"));
$saw = upstream_saw($r->{body});
is($r->{status}, 200, 'microsoft common: logged in');
is($saw->{email}, '', '... with no e-mail (nOAuth)');

# 3. a session record the gate never saw (written by an older module)

($ua, $r, $saw) = oidc('/x', 'alice');
is($r->{status}, 200, 'alice logged in');
my $keys = $t->redis('KEYS', 'identity:session:*');
for my $k (@$keys) {
    my $sub = $t->redis('HGET', $k, 'sub');
    next unless defined $sub && $sub eq 'alice';
    $t->redis('HSET', $k, 'email', "alice\@example.test\r\nX-Injected: yes");
    $t->redis('HDEL', $k, 'v');
}
$r = $ua->get("$base/x");
$saw = upstream_saw($r->{body});
isnt($r->{status}, 200, 'a pre-gate session record (no version): not a session');
is($saw->{injected} // '', '',
   '... its CRLF never reaches an upstream header');

$t2->stop_all;
$t->done;
