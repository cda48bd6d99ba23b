#!/usr/bin/perl
# userinfo auto | on | off, and whose word an e-mail needs (issue 12, A.1
# and B.10), against oidc-provider.
#
# Two test IdPs: "stock" runs oidc-provider with its default claim
# behaviour (conformIdTokenClaims: the ID token of the code flow has only
# sub and protocol claims; e-mail, name and username come from userinfo);
# "idtoken" is told (id_token_claims) to put the scopes' claims in the ID
# token too, which some providers do, so that "auto" has no reason to call
# userinfo.  The IdPs count their userinfo calls (/__test/stats).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);

my $t = Identity::Test->new(name => 'oidc-userinfo');
my $t2 = Identity::Test->new(name => 'oidc-userinfo-idtoken');

my $rport = $t->start_redis;
my $nport = $t->port('nginx');
my $base = "http://127.0.0.1:$nport";

my @users = (
    { id => 'alice', password => 'alice-password', email => 'alice@example.test',
      name => 'Alice Example', username => 'alice', groups => ['staff'] },

    # the provider says the address is not verified
    { id => 'uv', password => 'uv-password', email => 'uv@example.test',
      email_verified => JSON::PP::false(), name => 'Un Verified', username => 'uv' },

    # the provider says nothing about it
    { id => 'nov', password => 'nov-password', email => 'nov@example.test',
      email_verified => undef, name => 'No Word', username => 'nov' },

    # the ID token vouches for the address, userinfo does not
    { id => 'flip', password => 'flip-password', email => 'flip@example.test',
      name => 'Flip', username => 'flip',
      userinfo => { email_verified => JSON::PP::false() } },

    # userinfo gives another address, without vouching for it
    { id => 'swap', password => 'swap-password', email => 'swap@example.test',
      name => 'Swap', username => 'swap',
      userinfo => { email => 'ceo@example.test', email_verified => undef } },

    # userinfo speaks of another user
    { id => 'liar', password => 'liar-password', email => 'liar@example.test',
      name => 'Liar', username => 'liar', userinfo => { sub => 'alice' } },
);

my $stock = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
                          users => \@users);
my $idtok = $t2->start_idp(redirect_uris => ["$base/_identity/callback"],
                           users => \@users, id_token_claims => JSON::PP::true());

my $providers = '';
for my $p (['stock', $stock, ''], ['stockon', $stock, 'userinfo on;'],
           ['stockoff', $stock, 'userinfo off;'], ['idtok', $idtok, ''],
           ['idtokon', $idtok, 'userinfo on;'])
{
    $providers .= <<"P";
    identity_provider $p->[0] {
        type oidc;
        issuer $p->[1];
        client_id test-client;
        client_secret test-secret;
        $p->[2]
    }
P
}

my $locations = '';
for my $p (qw(stockon stockoff idtok idtokon)) {
    $locations .= "        location /$p/ {\n" . protected($p) . "        }\n";
}
$locations .= "        location /rule/ {\n"
    . "            identity_allow_email_domain example.test;\n"
    . protected('stock') . "        }\n";
$locations .= "        location /rule-idtok/ {\n"
    . "            identity_allow_email_domain example.test;\n"
    . protected('idtokon') . "        }\n";
$locations .= "        location /claim/ {\n"
    . "            identity_require_claim preferred_username alice;\n"
    . protected('stock') . "        }\n";

$t->nginx_conf(identity_conf(redis => $rport, providers => $providers,
    identity => 'stock', locations => $locations));
$t->start_nginx;

sub login {
    my ($path, $user) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base$path", user => $user);
    return ($r, upstream_saw($r->{body}));
}

sub userinfo_calls {
    my ($tt) = @_;
    return $tt->idp_stats(reset => 1)->{userinfo};
}

userinfo_calls($t);
userinfo_calls($t2);

# A.1: a stock provider, userinfo auto (the default)

my ($r, $saw) = login('/x', 'alice');
is($r->{status}, 200, 'stock IdP, auto: logged in');
is($saw->{email}, 'alice@example.test', 'stock IdP, auto: e-mail from userinfo');
is($saw->{name}, 'Alice Example', 'stock IdP, auto: name from userinfo');
is($saw->{username}, 'alice', 'stock IdP, auto: username from userinfo');
is(userinfo_calls($t), 1, 'stock IdP, auto: userinfo called once');

($r, $saw) = login('/claim/x', 'alice');
is($r->{status}, 200, 'identity_require_claim sees the claims userinfo gave');

($r, $saw) = login('/rule/x', 'alice');
is($r->{status}, 200, 'stock IdP: identity_allow_email_domain admits a verified e-mail');

# userinfo off with a stock provider: no e-mail (the documented consequence)

userinfo_calls($t);
($r, $saw) = login('/stockoff/x', 'alice');
is($r->{status}, 200, 'stock IdP, userinfo off: logged in');
is($saw->{email}, '', 'stock IdP, userinfo off: no e-mail');
is($saw->{name}, '', 'stock IdP, userinfo off: no name');
is($saw->{user_id}, 'alice', 'stock IdP, userinfo off: the sub');
is(userinfo_calls($t), 0, 'stock IdP, userinfo off: no userinfo call');

# an ID token that has every claim: auto makes no userinfo call

($r, $saw) = login('/idtok/x', 'alice');
is($r->{status}, 200, 'claims in the ID token, auto: logged in');
is($saw->{email}, 'alice@example.test', 'claims in the ID token: e-mail');
is($saw->{username}, 'alice', 'claims in the ID token: username');
is(userinfo_calls($t2), 0, 'claims in the ID token, auto: no userinfo call');

($r, $saw) = login('/idtokon/x', 'alice');
is($saw->{email}, 'alice@example.test', 'userinfo on: e-mail');
is(userinfo_calls($t2), 1, 'userinfo on: userinfo called');

# B.10: an e-mail counts only with its source's word for it

for my $u (['uv', 'email_verified false'], ['nov', 'no email_verified']) {
    ($r, $saw) = login('/x', $u->[0]);
    is($r->{status}, 200, "$u->[1]: logged in");
    is($saw->{email}, '', "$u->[1]: no e-mail");
    is($saw->{name}, $u->[0] eq 'uv' ? 'Un Verified' : 'No Word', "$u->[1]: the name still");
    my $uid = $saw->{id};
    is($t->redis('HGET', "identity:user:$uid", 'email') // '', '',
       "$u->[1]: the identity has no e-mail");

    ($r) = login('/rule/x', $u->[0]);
    is($r->{status}, 403, "$u->[1]: identity_allow_email_domain refuses");
}

# the ID token's word does not cover userinfo's answer

($r, $saw) = login('/idtok/x', 'flip');
is($saw->{email}, 'flip@example.test', 'ID token verified, no userinfo call: e-mail');
($r, $saw) = login('/idtokon/x', 'flip');
is($r->{status}, 200, 'userinfo says email_verified false: logged in');
is($saw->{email}, '', 'userinfo says email_verified false: no e-mail');
($r) = login('/rule-idtok/x', 'flip');
is($r->{status}, 403, 'userinfo says email_verified false: the domain rule refuses');

($r, $saw) = login('/idtokon/x', 'swap');
is($r->{status}, 200, 'userinfo gives another address: logged in');
is($saw->{email}, '', 'an address only userinfo gives, unverified: no e-mail');
($r) = login('/rule-idtok/x', 'swap');
is($r->{status}, 403, 'an address only userinfo gives: the domain rule refuses');

# userinfo's sub must be the ID token's

($r, $saw) = login('/x', 'liar');
is($r->{status}, 403, 'userinfo of another sub: login refused');
like($t->read_file('error.log'), qr/userinfo sub does not match the id_token's/,
     'userinfo of another sub: logged');

like($t->read_file('error.log'),
     qr/\[info\].*provider "stock" did not say the user's e-mail is verified/,
     'an unverified e-mail is logged at info');

$t2->stop_all;
$t->done;
