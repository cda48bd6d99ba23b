#!/usr/bin/perl
# The SAML ACS without the browser's cookies, and the SP's URLs from
# configuration only.
#
# A browser sends no SameSite=Lax cookie with the IdP's cross-site POST to
# the ACS: the ACS verifies the response, keeps the result under a one-time
# key and answers 303 to {public url}/_identity/saml/finish?k=KEY, a
# same-site GET that carries the state cookie; there the login is bound to
# its browser and the session made.  The entity id and ACS URL come from
# identity_public_url (nginx -t requires it), never from the Host header:
# a response the IdP made for another SP is refused whatever Host says.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use XML::LibXML;
use Identity::Test;
use Identity::Conf qw(identity_conf provider_block server_block location_block protected upstream_saw);
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'saml-finish');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $n = $t->port('nginx');
my $n2 = $t->port('nginx2');
my $base = "http://127.0.0.1:$n";
my $base2 = "http://127.0.0.1:$n2";
my $other = 'http://other-sp.example';    # another SP of the same IdP

my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');

my @sps = ((map { {
    sp_entity_id => "$_/_identity/saml/metadata",
    acs_url => "$_/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
} } $base, $base2), {
    sp_entity_id => "$other/_identity/saml/metadata",
    acs_url => "$other/_identity/saml/acs",
    slo_url => undef,
});
my $idp = $t->start_saml_idp(sps => \@sps);
my $entity = "$base/_identity/saml/metadata";
my $acs = "$base/_identity/saml/acs";

sub provider {
    my ($name, $extra) = @_;
    return provider_block($name, type => 'saml', idp_metadata => $idp->{metadata_file},
        sp_certificate => $sp_cert, sp_certificate_key => $sp_key, extra => $extra);
}

$t->nginx_conf(identity_conf(
    redis => $rport,
    identity => 'corp',
    server => "identity_public_url $base;",
    providers => provider('corp', 'allow_idp_initiated on;')
        . provider('second', 'allow_idp_initiated on; sp_entity_id urn:example:second;'),
    http => server_block(port => 'nginx2', directives => "identity_public_url $base2/;",
        locations => [location_block('/', protected('second'))])));
$t->start_nginx;

sub sessions { scalar @{$t->redis('KEYS', 'identity:session:*')} }
sub verified { scalar @{$t->redis('KEYS', 'identity:verified:*')} }

sub session_cookie {
    my ($r) = @_;
    return grep { /^identity_session=[^;]/ } @{$r->{cookies_set}};
}

# refused(NAME, STATUS, LOG, sub { response }): the status, an info line,
# no session (in Redis or as a cookie)
sub refused {
    my ($name, $status, $log, $post) = @_;
    my $count = sessions();
    my $mark = length $t->error_log;
    my $res = $post->();
    is($res->{status}, $status, "$name: $status");
    ok(!session_cookie($res), "$name: no session cookie");
    is(sessions(), $count, "$name: no session in Redis");
    like(substr($t->error_log, $mark), $log, "$name: logged");
    return $res;
}

my $token_re = qr/[A-Za-z0-9_-]{43}/;

# ------------------------------------------------------------ A.3

# SP-initiated, the ACS POST without cookies as a browser sends it

my $ua = Identity::Test::UA->new;
my $c = $ua->saml_response("$base/app?x=1", user => 'alice');
ok($c, 'login captured');
my $state = $ua->cookie('identity_session_state', '127.0.0.1');
ok($state, 'state cookie set at login');

my $rec = 'identity:login:' . sha256_hex($state);
is($t->redis('HGET', $rec, 'redirect_uri'), $acs, 'pending login: the ACS URL it sent');
is($t->redis('HGET', $rec, 'entity'), $entity, 'pending login: the entity id it sent');

my $before = sessions();
my $r = $ua->saml_post($c, cross_site => 1, finish => 0);
is($r->{status}, 303, 'ACS without cookies: 303');
like($r->{h}{location} // '', qr{^\Q$base\E/_identity/saml/finish\?k=$token_re\z},
     'to {identity_public_url}/_identity/saml/finish?k=KEY');
ok(!session_cookie($r), 'the ACS sets no session cookie');
ok(!grep({ /identity_session_state/ } @{$r->{cookies_set}}), 'nor touches the state cookie');
is(sessions(), $before, 'no session yet');
my ($key) = ($r->{h}{location} // '') =~ /k=([^&]+)/;
my $vkey = 'identity:verified:' . sha256_hex($key // '');
is($t->redis('EXISTS', $vkey), 1, 'the verified login is kept under the hash of the key');
cmp_ok($t->redis('TTL', $vkey), '<=', 60, 'for 60 s at most');
is($t->redis('EXISTS', "identity:verified:$key"), 0, 'not under the key itself');
is($t->redis('EXISTS', $rec), 0, 'the pending login was taken');

my $fin = $ua->get($r->{h}{location});
is($fin->{status}, 302, 'finish: 302');
is($fin->{h}{location}, "$base/app?x=1", 'finish: back to the URL first asked for');
ok(session_cookie($fin), 'finish: session cookie');
ok(grep({ /^identity_session_state=;/ } @{$fin->{cookies_set}}), 'finish: state cookie deleted');
is(sessions(), $before + 1, 'finish: one session');
is($t->redis('EXISTS', $vkey), 0, 'finish: the verified login is used up');
my $saw = upstream_saw($ua->get("$base/app?x=1")->{body});
is($saw->{email}, 'alice@example.test', 'upstream: alice');
like($t->error_log, qr/\[info\].*"alice" logged in with "corp"/, 'login logged');

refused('finish key used twice', 400, qr/\[info\].*unknown, expired or used SAML finish key/,
        sub { $ua->get($r->{h}{location}) });

# the whole flow as a browser with a cross-site IdP

my $ub = Identity::Test::UA->new;
$r = $ub->saml_login("$base/deep/link?y=2", user => 'bob', cross_site => 1);
is($r->{status}, 200, 'cross-site IdP: the upstream is reached');
is(upstream_saw($r->{body})->{uri}, '/deep/link?y=2', 'cross-site IdP: at the URL first asked');
ok(grep({ $_->{url} =~ m{/_identity/saml/finish\?k=} } @{$ub->{trace}}),
   'cross-site IdP: through the finish step');

# the finish step in another browser: the state cookie is not there

($ua, $c) = (Identity::Test::UA->new);
$c = $ua->saml_response("$base/x", user => 'alice');
$r = $ua->saml_post($c, cross_site => 1, finish => 0);
is($r->{status}, 303, 'another browser: the ACS answers 303');
my $thief = Identity::Test::UA->new;
refused('finish in another browser', 400, qr/\[info\].*state does not match this browser's/,
        sub { $thief->get($r->{h}{location}) });
refused('then in the right one: the key was used', 400,
        qr/unknown, expired or used SAML finish key/, sub { $ua->get($r->{h}{location}) });

# a state cookie of another login, at the finish step
$c = $ua->saml_response("$base/x", user => 'alice');
$r = $ua->saml_post($c, cross_site => 1, finish => 0);
$ua->set_cookie('identity_session_state', Identity::Test::random_token(32), Path => '/');
refused('finish with another login\'s state cookie', 400, qr/state does not match this browser's/,
        sub { $ua->get($r->{h}{location}) });

# expired: the key is gone from Redis after its TTL
$c = $ua->saml_response("$base/x", user => 'alice');
$r = $ua->saml_post($c, cross_site => 1, finish => 0);
($key) = ($r->{h}{location} // '') =~ /k=([^&]+)/;
$t->redis('PEXPIRE', 'identity:verified:' . sha256_hex($key), 1);
select undef, undef, undef, 0.05;
refused('expired finish key', 400, qr/\[info\].*unknown, expired or used SAML finish key/,
        sub { $ua->get($r->{h}{location}) });

# keys that are not keys
for my $q ('', '?k=', '?k=short', '?k=' . ('A' x 44), '?k=' . ('%2F' x 43), '?x=1',
           '?k=' . Identity::Test::random_token(32)) {
    my $want = $q =~ /^\?k=[A-Za-z0-9_-]{43}\z/
        ? qr/unknown, expired or used SAML finish key/ : qr/SAML finish without a valid key/;
    refused("finish$q", 400, qr/\[info\].*$want/,
            sub { Identity::Test::UA->new->get("$base/_identity/saml/finish$q") });
}
is(Identity::Test::UA->new->request('POST', "$base/_identity/saml/finish?k="
   . Identity::Test::random_token(32), body => '')->{status}, 405, 'POST to finish: 405');

# IdP-initiated: the same step, no state to bind

my $u = Identity::Test::UA->new;
my $got = $u->saml_idp_initiated($idp, sp_entity_id => $entity, relay_state => '/landing');
$r = $u->saml_post($got, cross_site => 1, finish => 0);
is($r->{status}, 303, 'IdP-initiated: 303');
like($r->{h}{location} // '', qr{^\Q$base\E/_identity/saml/finish\?k=$token_re\z},
     'IdP-initiated: to the finish step');
$fin = $u->get($r->{h}{location});
is($fin->{status}, 302, 'IdP-initiated: finish 302');
is($fin->{h}{location}, "$base/landing", 'IdP-initiated: to the RelayState path');
ok(session_cookie($fin), 'IdP-initiated: session cookie');
is(upstream_saw($u->get("$base/landing")->{body})->{email}, 'alice@example.test',
   'IdP-initiated: alice');

# ------------------------------------------------------------ B.7

# a response the IdP signed for another SP, replayed here with the other
# SP's Host

my $forged_host = { Host => 'other-sp.example' };
my %for_other = (destination => "$other/_identity/saml/acs",
                 recipient => "$other/_identity/saml/acs",
                 audience => "$other/_identity/saml/metadata");

$got = Identity::Test::UA->new->saml_idp_initiated($idp, sp_entity_id => "$other/_identity/saml/metadata");
ok($got, 'unsolicited response for the other SP');
is(response_info($got->{SAMLResponse})->{destination}, "$other/_identity/saml/acs",
   'made for the other SP');
refused('unsolicited, for another SP, forged Host', 403,
        qr/\[info\].*corp.*Destination "\Q$other\E\/_identity\/saml\/acs" is not "\Q$acs\E"/,
        sub { Identity::Test::UA->new(headers => $forged_host)->saml_post($got, action => $acs) });

# solicited: this browser's login, answered (InResponseTo and all) as if to
# the other SP, signed by the IdP's key
$ua = Identity::Test::UA->new;
$c = $ua->saml_response("$base/x", user => 'alice');
my $f = forge($c->{SAMLResponse}, idp => $idp, %for_other);
is(response_info($f)->{in_response_to}, response_info($c->{SAMLResponse})->{in_response_to},
   'forged: InResponseTo of this login');
$ua->{headers} = { %{$ua->{headers} || {}}, %$forged_host };
refused('solicited, for another SP, forged Host', 403,
        qr/\[info\].*corp.*Destination "\Q$other\E/,
        sub { $ua->saml_post($c, SAMLResponse => $f) });

# the same with only the audience or only the recipient another SP's
for my $what (qw(audience recipient)) {
    $ua = Identity::Test::UA->new;
    $c = $ua->saml_response("$base/x", user => 'alice');
    $ua->{headers} = { %{$ua->{headers} || {}}, %$forged_host };
    refused("solicited, $what of another SP, forged Host", 403,
            qr/\[info\].*corp.*(not for audience|not a bearer assertion for "\Q$acs\E")/,
            sub { $ua->saml_post($c, SAMLResponse => forge($c->{SAMLResponse}, idp => $idp,
                                                            $what => $for_other{$what})) });
}

# metadata and AuthnRequest: the configured URLs whatever Host says

for my $host ('other-sp.example', "127.0.0.1:$n", "localhost:$n") {
    $r = Identity::Test::UA->new(headers => { Host => $host })
        ->get("$base/_identity/saml/metadata");
    my $md = XML::LibXML->new(no_network => 1)->parse_string($r->{body});
    my $xpc = XML::LibXML::XPathContext->new($md);
    $xpc->registerNs($_, $Identity::SAML::NS{$_}) for keys %Identity::SAML::NS;
    is($xpc->findvalue('/md:EntityDescriptor/@entityID'), $entity,
       "metadata, Host $host: the configured entity id");
    is($xpc->findvalue('//md:AssertionConsumerService/@Location'), $acs,
       "metadata, Host $host: the configured ACS URL");
}

$r = Identity::Test::UA->new(headers => $forged_host)->get("$base/x");
my $q = decode_redirect($r->{h}{location} // '');
like($q->{SAMLRequest} // '', qr/AssertionConsumerServiceURL="\Q$acs\E"/,
     'AuthnRequest, forged Host: the configured ACS URL');
like($q->{SAMLRequest} // '', qr{<saml:Issuer>\Q$entity\E</saml:Issuer>},
     'AuthnRequest, forged Host: the configured entity id');

# sp_entity_id, and identity_public_url with a trailing slash
$r = Identity::Test::UA->new->get("$base2/_identity/saml/metadata");
like($r->{body}, qr/entityID="urn:example:second"/, 'sp_entity_id: the entity id');
like($r->{body}, qr{Location="\Q$base2\E/_identity/saml/acs"}, 'second server: its ACS URL');

# a verified login is finished only by a server that uses its provider

$got = Identity::Test::UA->new->saml_idp_initiated($idp, sp_entity_id => $entity);
$u = Identity::Test::UA->new;
$r = $u->saml_post($got, finish => 0);
is($r->{status}, 303, 'first server: 303');
(my $elsewhere = $r->{h}{location} // '') =~ s{^\Q$base\E}{$base2};
refused('finish at a server without that provider', 400,
        qr/\[info\].*SAML login of provider "corp", not used here/,
        sub { $u->get($elsewhere) });

$ua = Identity::Test::UA->new;
$c = $ua->saml_response("$base/x", user => 'alice');
$ua->set_cookie('identity_session_state', $ua->cookie('identity_session_state', '127.0.0.1'),
                host => '127.0.0.1', Path => '/');
refused('solicited response posted to a server without that provider', 400,
        qr/\[info\].*SAML response for provider "corp", not used here/,
        sub { $ua->saml_post($c, action => "$base2/_identity/saml/acs") });

# Redis down: 503 at the ACS and at the finish

$got = Identity::Test::UA->new->saml_idp_initiated($idp, sp_entity_id => $entity);
$u = Identity::Test::UA->new;
$r = $u->saml_post($got, finish => 0);
is($r->{status}, 303, 'before Redis stops: 303');
my $got2 = Identity::Test::UA->new->saml_idp_initiated($idp, sp_entity_id => $entity);
$t->stop_redis;
is($u->get($r->{h}{location})->{status}, 503, 'Redis down: the finish answers 503');
is(Identity::Test::UA->new->saml_post($got2, finish => 0)->{status}, 503,
   'Redis down: the ACS answers 503');

unlike($t->error_log, qr/\[(alert|emerg|crit)\]/, 'no alert');

# ------------------------------------------------------------ nginx -t

my $ct = Identity::Test->new(name => 'saml-finish-conf');
$ct->nginx_conf(identity_conf(redis => $rport, identity => 'corp',
                              providers => provider('corp', '')));
my ($rc, $out) = $ct->nginx_test_conf;
isnt($rc, 0, 'nginx -t: a SAML provider without identity_public_url is refused');
like($out, qr/\[emerg\].*SAML identity provider "corp" needs "identity_public_url"/,
     'nginx -t: says so');

$ct->nginx_conf(identity_conf(redis => $rport, identity => 'corp',
                              http => 'identity_public_url https://sp.example;',
                              providers => provider('corp', '')));
($rc, $out) = $ct->nginx_test_conf;
is($rc, 0, 'nginx -t: identity_public_url at http level will do') or diag($out);

$t->done;
