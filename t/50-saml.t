#!/usr/bin/perl
# SAML 2.0 service provider against SimpleSAMLphp: the signed AuthnRequest,
# a login through the ACS to the upstream, the SP metadata, the admin API on
# a SAML identity, and every forged or misdirected response refused with a
# 4xx, a log line and no session.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP qw(decode_json);
use Test::More;
use XML::LibXML;
use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'saml');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $n = $t->port('nginx');
my $n2 = $t->port('nginx2');
my $base = "http://127.0.0.1:$n";
my $base2 = "http://127.0.0.1:$n2";

my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my ($evil_key, $evil_cert) = make_keypair("$dir/evil", cn => 'evil');

# Two SPs at the IdP: the protected server, and a second one that accepts
# unsolicited responses.  The IdP requires their AuthnRequests signed.
my %sp = (
    sp_entity_id => "$base/_identity/saml/metadata",
    acs_url => "$base/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
);
my %sp2 = (
    %sp,
    sp_entity_id => "$base2/_identity/saml/metadata",
    acs_url => "$base2/_identity/saml/acs",
);
my $idp = $t->start_saml_idp(sps => [\%sp, \%sp2]);
my $entity = $sp{sp_entity_id};
my $acs = $sp{acs_url};

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

# no attribute_map but for corp_idp: the default map reads SimpleSAMLphp's
# names (mail, displayName, uid, groups)
sub provider {
    my ($name, $extra, $map) = @_;
    $map = $map ? "attribute_map $map;" : '';
    return <<"EOF";
    identity_provider $name {
        type saml;
        idp_metadata $idp->{metadata_file};
        sp_certificate $sp_cert;
        sp_certificate_key $sp_key;
        $map
        $extra
    }
EOF
}

my $staff = protected('corp_staff');
my $idp_initiated = protected('corp_idp');

$t->nginx_conf(identity_conf(
    redis => $rport,
    admin => 1,
    identity => 'corp_saml',
    server => "identity_public_url $base;",
    providers => provider('corp_saml', '')
        . provider('corp_staff', 'authorized_groups admins staff; force_authn on;'
                   . ' nameid_format persistent;')
        . provider('corp_idp', 'allow_idp_initiated on;',
                   # one attribute for two keys, the user id from an attribute
                   'id=mail email=mail name=displayName username=uid'),
    locations => <<"EOF",
        location /staff/ {
$staff
        }
EOF
    http => <<"EOF"));
    server {
        listen 127.0.0.1:%%PORT_nginx2%%;
        identity_public_url $base2;

        location / {
$idp_initiated
        }
    }
EOF
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub api {
    my ($method, $path) = @_;
    my $r = $api->request($method, "$base/api/$path");
    $r->{json} = eval { decode_json($r->{body}) } if length($r->{body} // '');
    return $r;
}

sub sessions { scalar @{$t->redis('KEYS', 'identity:session:*')} }

sub session_cookie {
    my ($r) = @_;
    return grep { /^identity_session=[^;]/ } @{$r->{cookies_set}};
}

# ------------------------------------------------------------ login

my $ua = Identity::Test::UA->new;
my $r = $ua->get("$base/app?x=1");
is($r->{status}, 302, 'protected URL: 302');
my $location = $r->{h}{location} // '';
like($location, qr/^\Q$idp->{sso_url}\E\?/, 'to the IdP SSO service');

my $q = decode_redirect($location);
is($q->{message}, 'SAMLRequest', 'HTTP-Redirect binding: SAMLRequest');
like($q->{RelayState} // '', qr/^[A-Za-z0-9_-]{43}$/, 'RelayState: a random token');
is($q->{SigAlg}, 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256', 'SigAlg rsa-sha256');
ok(length($q->{Signature} // ''), 'Signature in the query');
ok(verify_redirect($location, cert => $sp_cert), 'signed with the SP key');
ok(!verify_redirect($location, cert => $evil_cert), 'and not with another');

my $areq = saml_doc($q->{SAMLRequest});
my $xpc = XML::LibXML::XPathContext->new($areq);
$xpc->registerNs($_, $Identity::SAML::NS{$_}) for keys %Identity::SAML::NS;
is($areq->documentElement->localname, 'AuthnRequest', 'an AuthnRequest');
my $areq_id = $xpc->findvalue('/samlp:AuthnRequest/@ID');
like($areq_id, qr/^[_a-zA-Z]/, 'AuthnRequest ID is an NCName');
is($xpc->findvalue('/samlp:AuthnRequest/@Destination'), $idp->{sso_url}, 'Destination');
is($xpc->findvalue('/samlp:AuthnRequest/@AssertionConsumerServiceURL'), $acs,
   'AssertionConsumerServiceURL');
is($xpc->findvalue('/samlp:AuthnRequest/@ProtocolBinding'), Identity::SAML::BINDING_POST,
   'ProtocolBinding HTTP-POST');
is($xpc->findvalue('/samlp:AuthnRequest/saml:Issuer'), $entity, 'Issuer: the SP entity id');
is($xpc->findvalue('/samlp:AuthnRequest/samlp:NameIDPolicy/@Format'),
   Identity::SAML::NAMEID_PERSISTENT, 'NameIDPolicy persistent');
isnt($xpc->findvalue('/samlp:AuthnRequest/@ForceAuthn'), 'true', 'no ForceAuthn');
my $state = $ua->cookie('identity_session_state', '127.0.0.1');
is($state, $q->{RelayState}, 'the state cookie holds the RelayState');

my $before = sessions();
my $got = $ua->saml_follow($r, capture => 1);
ok($got, 'the IdP accepted the signed AuthnRequest and answered')
    or diag(explain([map { "$_->{status} $_->{url}" } @{$ua->{trace}}]));
is(idp_error($ua->{trace}[-1]), undef, 'no IdP error page');
ok(grep({ $_->{url} =~ /loginuserpass/ } @{$ua->{trace}}), 'through the IdP login form');
is($got->{action}, $acs, 'the IdP posts to the ACS');
is($got->{RelayState}, $q->{RelayState}, 'RelayState back');
my $info = response_info($got->{SAMLResponse});
is($info->{in_response_to}, $areq_id, 'InResponseTo: our AuthnRequest');
is_deeply($info->{audiences}, [$entity], 'Audience: our entity id');

$r = $ua->saml_post($got);
is($r->{status}, 302, 'ACS: 302');
is($r->{h}{location}, "$base/app?x=1", 'back to the URL first asked for');
my ($cookie) = session_cookie($r);
ok($cookie, 'session cookie set');
like($cookie // '', qr/HttpOnly/i, 'HttpOnly');
like($cookie // '', qr/SameSite=Lax/i, 'SameSite=Lax');
ok(grep({ /^identity_session_state=;/ } @{$r->{cookies_set}}), 'state cookie deleted');
is(sessions(), $before + 1, 'one session in Redis');

$r = $ua->get("$base/app?x=1");
is($r->{status}, 200, 'upstream reached');
my $saw = upstream_saw($r->{body});
is($saw->{email}, 'alice@example.test', '$identity_email');
is($saw->{name}, 'Alice Example', '$identity_name');
is($saw->{username}, 'alice', '$identity_username');
is($saw->{provider}, 'corp_saml', '$identity_provider');
is($saw->{user_id}, $info->{nameid}, '$identity_provider_user_id: the NameID');
is($saw->{user_id}, 'alice', 'which is alice');
like($saw->{id}, qr/^au_[0-9a-f]{32}$/, '$identity_id');
like($saw->{session}, qr/^as_[0-9a-f]{32}$/, '$identity_session_id');
unlike($saw->{cookie}, qr/identity_session/, 'no module cookie upstream');
like($t->error_log, qr/\[info\].*"alice" logged in with "corp_saml"/, 'login logged');

# the audit events (docs/events.md), sent without waiting: the last may
# follow the answer
sub audit {
    my ($want) = @_;
    for (1 .. 100) {
        # a login failure that names nobody is in a stream of its own
        my @ev = map { decode_json({ @{$_->[1]} }->{doc}) }
                 map { @{$t->redis('XRANGE', $_, '-', '+') || []} }
                 'identity:audit', 'identity:audit:failures';
        my @hit = grep { $want->($_) } @ev;
        return $hit[-1] if @hit;
        select(undef, undef, undef, 0.05);
    }
    return undef;
}
my $ev = audit(sub { $_[0]{event}{action} eq 'login' && ($_[0]{event}{outcome} // '') eq 'success' });
is($ev->{identity}{provider}, 'corp_saml', 'audit: the SAML login, its provider');
is($ev->{session}{id}, $saw->{session}, 'audit: its session');

# the admin API on the SAML identity

$r = api('GET', 'app/users?provider=corp_saml');
is($r->{status}, 200, 'admin: list users');
my ($user) = grep { $_->{id} eq $saw->{id} } @{$r->{json}{application_users} // []};
ok($user, 'admin: the identity is listed');
is_deeply($user->{identity_provider}, { name => 'corp_saml', url => $idp->{entity_id} },
          'admin: identity_provider url is the IdP entity id');
is($user->{provider_user_id}, 'alice', 'admin: provider_user_id');
is($user->{email}, 'alice@example.test', 'admin: email');
is($user->{name}, 'Alice Example', 'admin: name');
is($user->{username}, 'alice', 'admin: username');

$r = api('GET', "app/users/$saw->{id}/sessions");
is_deeply([map { $_->{id} } @{$r->{json}{application_sessions} // []}], [$saw->{session}],
          'admin: her session');
$r = api('GET', "app/sessions/$saw->{session}");
is($r->{status}, 200, 'admin: get the session');
is($r->{json}{application_user}{id}, $saw->{id}, 'admin: session of the identity');
is($r->{json}{public_url}, $base, 'admin: public_url');

$r = api('DELETE', "app/sessions/$saw->{session}");
is($r->{status}, 204, 'admin: DELETE session');
$r = $ua->get("$base/app?x=1");
is($r->{status}, 302, 'revoked: the next request goes to login');
like($r->{h}{location} // '', qr/^\Q$idp->{sso_url}\E\?SAMLRequest=/, 'revoked: to the IdP');
is(api('GET', "app/sessions/$saw->{session}")->{status}, 404, 'admin: session gone');

# SSO at the IdP: a second login needs no password

$r = $ua->saml_follow($r);
is($r->{status}, 200, 'second login: upstream reached');
ok(!grep({ $_->{url} =~ /loginuserpass/ } @{$ua->{trace}}), 'second login: no login form');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'second login: alice');

# ------------------------------------------------------------ SP metadata

$r = Identity::Test::UA->new->get("$base/_identity/saml/metadata");
is($r->{status}, 200, 'metadata: 200');
like($r->{h}{'content-type'} // '', qr{^application/samlmetadata\+xml}, 'metadata: type');
my $md = eval { XML::LibXML->new(no_network => 1)->parse_string($r->{body}) };
ok($md, 'metadata: well-formed XML') or diag($@);
$md //= XML::LibXML::Document->new;
$xpc = XML::LibXML::XPathContext->new($md);
$xpc->registerNs($_, $Identity::SAML::NS{$_}) for keys %Identity::SAML::NS;
is($xpc->findvalue('/md:EntityDescriptor/@entityID'), $entity, 'metadata: entity id');
is($xpc->findvalue('//md:SPSSODescriptor/md:AssertionConsumerService/@Location'), $acs,
   'metadata: ACS location');
is($xpc->findvalue('//md:SPSSODescriptor/md:AssertionConsumerService/@Binding'),
   Identity::SAML::BINDING_POST, 'metadata: ACS binding HTTP-POST');
is($xpc->findvalue('//md:SPSSODescriptor/@AuthnRequestsSigned'), 'true',
   'metadata: AuthnRequestsSigned');
is($xpc->findvalue('//md:KeyDescriptor[@use="signing"]//ds:X509Certificate') =~ s/\s+//gr,
   Identity::SAML::_pem_body($sp_cert), 'metadata: the SP signing certificate');
is($xpc->findvalue('//md:SPSSODescriptor/md:NameIDFormat'), Identity::SAML::NAMEID_PERSISTENT,
   'metadata: NameID format');
$r = Identity::Test::UA->new->get("$base2/_identity/saml/metadata");
is(XML::LibXML->new->parse_string($r->{body})->documentElement->getAttribute('entityID'),
   $sp2{sp_entity_id}, 'metadata: the entity id follows the server');
is(Identity::Test::UA->new->request('POST', "$base/_identity/saml/metadata", body => '')
   ->{status}, 405, 'metadata: POST 405');

# ------------------------------------------------------------ refusals

# A fresh login up to the IdP's POST to the ACS: the browser and what it
# would post.
sub capture {
    my (%o) = @_;
    my $b = Identity::Test::UA->new;
    my $c = $b->saml_response(($o{base} // $base) . ($o{path} // '/neg'),
                              user => $o{user} // 'alice');
    ok($c, 'fresh login captured') or diag(explain($b->{trace}));
    return ($b, $c // {});
}

# refused(NAME, STATUS, LOG, sub { response }, FILE): the status, a line
# matching LOG in FILE (error.log), no session (in Redis or as a cookie).
sub refused {
    my ($name, $status, $log, $post, $file) = @_;
    $file //= 'error.log';
    my $count = sessions();
    my $mark = length $t->read_file($file);
    my $res = $post->();
    is($res->{status}, $status, "$name: $status");
    ok(!session_cookie($res), "$name: no session cookie");
    is(sessions(), $count, "$name: no session in Redis");
    # the access log is written once the response is out
    my $tail;
    for (1 .. 50) {
        $tail = substr($t->read_file($file), $mark);
        last if $tail =~ $log;
        select undef, undef, undef, 0.02;
    }
    like($tail, $log, "$name: logged")
        or diag(join "\n", grep { !/\[debug\]/ } split /\n/, $tail);
    return $res;
}

my $count;
my $refused = qr/\[info\].*identity: provider "corp_saml": SAML response refused/;
my $past = time - 3600;
my $future = time + 3600;

my ($b, $c) = capture();
refused('unsigned', 403, $refused,
        sub { $b->saml_post($c, SAMLResponse => strip_signatures($c->{SAMLResponse})) });
ok(audit(sub { $_[0]{event}{action} eq 'login' && ($_[0]{event}{outcome} // '') eq 'failure'
               && ($_[0]{event}{reason} // '') eq 'refused' }),
   'audit: the unsigned response, a login refused');

($b, $c) = capture();
refused('signed with another key', 403, $refused,
        sub { $b->saml_post($c, SAMLResponse => resign($c->{SAMLResponse},
                                                       key => $evil_key, cert => $evil_cert)) });

($b, $c) = capture();
refused('another key and a forged user', 403, $refused,
        sub { $b->saml_post($c, SAMLResponse => forge($c->{SAMLResponse}, key => $evil_key,
                                                      cert => $evil_cert, nameid => 'mallory')) });

($b, $c) = capture();
refused('modified after signing', 403, $refused,
        sub { $b->saml_post($c, SAMLResponse => tamper($c->{SAMLResponse}, nameid => 'mallory')) });

# signed by the IdP's own key, refused for what they say

my %forged = (
    'wrong audience' => [{ audience => 'http://evil.test/sp' }, qr/not for audience/],
    'expired conditions' => [{ not_on_or_after => $past }, qr/assertion is not current/],
    'expired subject confirmation' => [{ scd_not_on_or_after => $past },
                                       qr/subject confirmation is not current/],
    'expired everything' => [{ shift_times => -7200 }, qr/is not current/],
    'not yet valid' => [{ not_before => $future }, qr/assertion is not current/],
    'not yet valid, shifted' => [{ shift_times => 3600 }, qr/is not current/],
    'wrong Recipient' => [{ recipient => 'http://evil.test/acs' }, qr/not a bearer assertion/],
    'wrong Destination' => [{ destination => 'http://evil.test/acs' },
                            qr/Destination "http:\/\/evil\.test\/acs"/],
    'no Destination' => [{ destination => undef }, qr/Destination "" is not/],
    'InResponseTo of another request' => [{ in_response_to => '_another' },
                                          qr/SAML response InResponseTo does not match/],
    'subject InResponseTo of another request' => [{ scd_in_response_to => '_another' },
                                                  qr/subject confirmation InResponseTo/],
    'no InResponseTo' => [{ in_response_to => undef }, qr/InResponseTo does not match/],
    'another issuer' => [{ issuer => 'http://evil.test/idp' }, qr/SAML response refused/],
    'status not Success' => [{ status => 'urn:oasis:names:tc:SAML:2.0:status:Responder' },
                             qr/SAML response refused/],
    'no audience' => [{ remove => ['//saml:AudienceRestriction'] }, qr/not for audience/],
    'no subject confirmation data' => [{ remove => ['//saml:SubjectConfirmationData'] },
                                       qr/not a bearer assertion/],
    'not a bearer' => [{ set => [['//saml:SubjectConfirmation/@Method',
                                  'urn:oasis:names:tc:SAML:2.0:cm:holder-of-key']] },
                       qr/not a bearer assertion/],
    'two assertions' => [{}, qr/exactly one assertion/, sub {
        my ($doc) = @_;
        my ($a) = $doc->documentElement->getChildrenByTagNameNS($Identity::SAML::NS{saml},
                                                                'Assertion');
        my $copy = $a->cloneNode(1);
        $copy->setAttribute(ID => '_second' . Identity::Test::random_token(8) =~ tr/-_/ab/r);
        $a->parentNode->insertAfter($copy, $a);
    }],
);
for my $name (sort keys %forged) {
    my ($changes, $log, $edit) = @{$forged{$name}};
    ($b, $c) = capture();
    my $f = $c->{SAMLResponse};
    if ($edit) {
        my $doc = saml_doc($f);
        $edit->($doc);
        $f = encode_saml($doc->toString);
    }
    $f = forge($f, idp => $idp, %$changes);
    refused("forged, $name", 403, qr/\[info\].*corp_saml.*$log/,
            sub { $b->saml_post($c, SAMLResponse => $f) });
}

# what the IdP signed, however: the response, the assertion, or both

for my $how ([assertion => sign_response => 0], [response => sign_assertion => 0]) {
    my ($what, @opt) = @$how;
    ($b, $c) = capture();
    my $one = resign($c->{SAMLResponse}, idp => $idp, @opt);
    my $i = response_info($one);
    ok($what eq 'assertion' ? !$i->{response_signed} && $i->{assertion_signed}
                            : $i->{response_signed} && !$i->{assertion_signed},
       "only the $what signed");
    $count = sessions();
    $r = $b->saml_post($c, SAMLResponse => $one);
    is($r->{status}, 302, "only the $what signed: accepted");
    is(sessions(), $count + 1, "only the $what signed: a session");
    is(upstream_saw($b->get("$base/neg")->{body})->{email}, 'alice@example.test',
       "only the $what signed: alice");
    ($b, $c) = capture();
    $one = resign($c->{SAMLResponse}, idp => $idp, @opt);
    refused("only the $what signed, then changed", 403, $refused,
            sub { $b->saml_post($c, SAMLResponse => tamper($one, nameid => 'mallory')) });
}

# a response the IdP made for another browser's request

my ($b1, $c1) = capture();
my ($b2, $c2) = capture();
refused('response to another request', 403, qr/InResponseTo does not match/,
        sub { $b2->saml_post($c1, RelayState => $c2->{RelayState}) });

# the browser's state

($b, $c) = capture();
refused('RelayState not this browser\'s', 400, qr/state does not match this browser's/,
        sub { $b->saml_post($c, RelayState => Identity::Test::random_token(32)) });
refused('RelayState of another browser', 400, qr/state does not match this browser's/,
        sub { $b->saml_post($c, RelayState => $c1->{RelayState}) });
$b->delete_cookie('identity_session_state');
refused('no state cookie', 400, qr/state does not match this browser's/,
        sub { $b->saml_post($c) });

# replay: the same response twice

($b, $c) = capture();
$count = sessions();
$r = $b->saml_post($c);
is($r->{status}, 302, 'replay: first post accepted');
ok(session_cookie($r), 'replay: first post makes a session');
is(sessions(), $count + 1, 'replay: one session');
# (the ACS takes the pending login without the state cookie, which
# browsers do not send with the IdP's cross-site POST: it is gone)
refused('replay: same response, same browser', 400,
        qr/state does not match this browser's|unknown, expired or used RelayState/,
        sub { $b->saml_post($c) });
$b->set_cookie('identity_session_state', $c->{RelayState}, host => '127.0.0.1', Path => '/');
refused('replay: same response, state cookie put back', 400,
        qr/\[info\].*unknown, expired or used RelayState/, sub { $b->saml_post($c) });

# the same assertion again, for another pending login of another browser
# (re-signed so that its InResponseTo names that login): the assertion id
# is what refuses it
($b2, $c2) = capture();
my $again = forge($c->{SAMLResponse}, idp => $idp,
                  in_response_to => response_info($c2->{SAMLResponse})->{in_response_to});
is(response_info($again)->{assertion_id}, response_info($c->{SAMLResponse})->{assertion_id},
   'replay: same assertion id');
refused('replay: same assertion, another login', 403,
        qr/\[info\].*replayed SAML assertion/,
        sub { $b2->saml_post($c2, SAMLResponse => $again) });
ok($t->redis('EXISTS', 'identity:login:' . sha256_hex($c2->{RelayState})) == 0,
   'replay: the pending login was used up');

# an assertion past its NotOnOrAfter but within the clock skew (60 s) is
# accepted, and its id is kept until the skew is over too
($b, $c) = capture();
my $noa = time - 30;
my $late = forge($c->{SAMLResponse}, idp => $idp, not_on_or_after => $noa,
                 scd_not_on_or_after => $noa);
$r = $b->saml_post($c, SAMLResponse => $late);
is($r->{status}, 302, 'within the clock skew: accepted');
my $once = 'identity:once:' . sha256_hex("$idp->{entity_id} "
                                         . response_info($late)->{assertion_id});
cmp_ok($t->redis('TTL', $once) // -2, '>=', $noa + 60 - time - 1,
       'its id is kept until NotOnOrAfter + skew');
sleep 2;
($b2, $c2) = capture();
refused('replay within the clock skew', 403, qr/\[info\].*replayed SAML assertion/,
        sub { $b2->saml_post($c2, SAMLResponse => forge($late, idp => $idp,
              in_response_to => response_info($c2->{SAMLResponse})->{in_response_to})) });

# messages that are not even looked at

($b, $c) = capture();
refused('DOCTYPE with entities', 400, qr/\[info\].*SAMLResponse with a DOCTYPE/,
        sub { $b->saml_post($c, SAMLResponse => entity_expansion($c->{SAMLResponse},
                                                                 idp => $idp)) });
refused('oversized (300 KB)', 413, qr/\[info\].*request body of \d+ bytes is over 262144/,
        sub { $b->saml_post($c, SAMLResponse => oversize($c->{SAMLResponse}, size => 300_000,
                                                         idp => $idp)) });
refused('oversized (1.2 MB)', 413, qr/\[info\].*request body of \d+ bytes is over 262144/,
        sub { $b->saml_post($c, SAMLResponse => oversize($c->{SAMLResponse}, idp => $idp)) });
refused('no SAMLResponse', 400, qr/\[info\].*POST without SAMLResponse/,
        sub { $b->saml_post($c, SAMLResponse => undef) });
refused('empty SAMLResponse', 400, qr/\[info\].*POST without SAMLResponse/,
        sub { $b->saml_post($c, SAMLResponse => '') });
refused('not base64', 400, qr/\[info\].*SAMLResponse is not base64/,
        sub { $b->saml_post($c, SAMLResponse => '%%%') });
refused('GET on the ACS', 405, qr/"GET \/_identity\/saml\/acs HTTP\/1\.1" 405 /,
        sub { $b->get($acs) }, 'access.log');

# none of these used up the pending login
$r = $b->saml_post($c);
is($r->{status}, 302, 'after the refusals, the real response is accepted');

($b, $c) = capture();
refused('not XML', 400, $refused,
        sub { $b->saml_post($c, SAMLResponse => encode_saml('hello')) });

# a chunked body past the limit (no Content-Length to refuse it by)
$count = sessions();
my $mark = length $t->error_log;
my $chunk = 'SAMLResponse=' . ('A' x 65536);
my $raw = "POST /_identity/saml/acs HTTP/1.1\r\nHost: 127.0.0.1:$n\r\n"
    . "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n"
    . "Connection: close\r\n\r\n";
$raw .= sprintf("%x\r\n%s\r\n", length($chunk), $chunk) for 1 .. 5;
$raw .= "0\r\n\r\n";
like(Identity::Test::http_raw($n, $raw), qr{^HTTP/1\.1 413 }, 'chunked 320 KB: 413');
is(sessions(), $count, 'chunked 320 KB: no session');
like(substr($t->error_log, $mark), qr/\[info\].*SAML response without a usable body/,
     'chunked 320 KB: logged');

# XML signature wrapping: the IdP's signed assertion intact somewhere,
# mallory where a careless SP would read him

for my $v (Identity::SAML::wrap_variants()) {
    ($b, $c) = capture();
    my $w = wrap($c->{SAMLResponse}, $v);
    my $res = refused("wrapping $v", 403, qr/\[info\].*corp_saml.*SAML (response|assertion)/,
                      sub { $b->saml_post($c, SAMLResponse => $w) });
    unlike($t->error_log, qr/"mallory" logged in/, "wrapping $v: mallory never logged in");
}

# a response for the first server, posted to the second one (which takes
# unsolicited ones)
($b, $c) = capture();
refused('response for another SP', 403, qr/\[info\].*corp_idp.*Destination/,
        sub { $b->saml_post($c, action => $sp2{acs_url}, RelayState => undef) });

# ------------------------------------------------------------ unsolicited

my $u = Identity::Test::UA->new;
$got = $u->saml_idp_initiated($idp, sp_entity_id => $entity);
ok($got, 'unsolicited response to the first server');
is(response_info($got->{SAMLResponse} // '')->{in_response_to}, undef,
   'unsolicited: no InResponseTo');
refused('unsolicited, allow_idp_initiated off', 403,
        qr/\[info\].*unsolicited SAML response refused/, sub { $u->saml_post($got) });
$got = $u->saml_idp_initiated($idp, sp_entity_id => $entity, relay_state => '/landing');
refused('unsolicited with a path RelayState, allow_idp_initiated off', 403,
        qr/unsolicited SAML response refused/, sub { $u->saml_post($got) });

$u = Identity::Test::UA->new;
$got = $u->saml_idp_initiated($idp, sp_entity_id => $sp2{sp_entity_id},
                              relay_state => '/landing');
ok($got, 'unsolicited response to the second server');
is($got->{action}, $sp2{acs_url}, 'posted to its ACS');
$count = sessions();
$r = $u->saml_post($got);
is($r->{status}, 302, 'allow_idp_initiated on: accepted');
is($r->{h}{location}, "$base2/landing", 'to the RelayState path');
ok(session_cookie($r), 'allow_idp_initiated on: session cookie');
is(sessions(), $count + 1, 'allow_idp_initiated on: a session');
$saw = upstream_saw($u->get("$base2/landing")->{body});
is($saw->{email}, 'alice@example.test', 'unsolicited login: alice');
is($saw->{provider}, 'corp_idp', 'unsolicited login: provider corp_idp');
is($saw->{user_id}, 'alice@example.test', 'unsolicited login: user id from attribute_map id=mail');
is($saw->{username}, 'alice', 'unsolicited login: username');
is($saw->{name}, 'Alice Example', 'unsolicited login: name');

refused('unsolicited replay', 403, qr/\[info\].*replayed SAML assertion/,
        sub { Identity::Test::UA->new->saml_post($got) });

# RelayState is not signed: whatever the browser posts, it is sent to a
# path of this site
for my $relay ('//evil.test/x', '/\\evil.test/x', 'http://evil.test/', "/x\r\nX-Injected: 1",
               "/x\x00y", '/' . ('a' x 2048)) {
    $got = Identity::Test::UA->new->saml_idp_initiated($idp, sp_entity_id => $sp2{sp_entity_id});
    $r = Identity::Test::UA->new->saml_post($got, RelayState => $relay);
    (my $shown = substr($relay, 0, 20)) =~ s/([^\x21-\x7e])/sprintf '\\x%02x', ord $1/ge;
    is($r->{status}, 302, "unsolicited, RelayState \"$shown\": accepted");
    is($r->{h}{location}, "$base2/", "unsolicited, RelayState \"$shown\": sent to /");
    ok(!exists $r->{h}{'x-injected'}, "unsolicited, RelayState \"$shown\": no header injected");
}

$got = Identity::Test::UA->new->saml_idp_initiated($idp, sp_entity_id => $sp2{sp_entity_id});
ok(!exists $got->{RelayState}, 'unsolicited without RelayState');
$r = Identity::Test::UA->new->saml_post($got);
is($r->{status}, 302, 'unsolicited without RelayState: accepted');
is($r->{h}{location}, "$base2/", 'unsolicited without RelayState: sent to /');

$got = Identity::Test::UA->new->saml_idp_initiated($idp, sp_entity_id => $sp2{sp_entity_id});
refused('unsolicited but with InResponseTo', 403, qr/InResponseTo does not match/,
        sub { Identity::Test::UA->new->saml_post($got, SAMLResponse =>
              forge($got->{SAMLResponse}, idp => $idp, in_response_to => '_made_up')) });

# ------------------------------------------------------------ groups

($b, $c) = capture(path => '/staff/', user => 'bob');
is_deeply(response_info($c->{SAMLResponse})->{attributes}{groups}, ['guests'], 'bob is a guest');
refused('authorized_groups: bob (guests)', 403,
        qr/\[info\].*"bob" is in none of the authorized groups of "corp_staff"/,
        sub { $b->saml_post($c) });

($b, $c) = capture(path => '/staff/');
$count = sessions();
$r = $b->saml_post($c);
is($r->{status}, 302, 'authorized_groups: alice (staff) accepted');
is(sessions(), $count + 1, 'authorized_groups: her session');
$r = $b->get("$base/staff/");
is($r->{status}, 200, 'authorized_groups: alice reaches the upstream');
is(upstream_saw($r->{body})->{provider}, 'corp_staff', 'with provider corp_staff');

# force_authn: logged in at the IdP, alice has to give her password again

$r = $ua->get("$base/staff/");
is($r->{status}, 302, 'force_authn: a corp_saml session is no corp_staff one');
$q = decode_redirect($r->{h}{location} // '');
like($q->{SAMLRequest} // '', qr/<samlp:AuthnRequest[^>]* ForceAuthn="true"/,
     'force_authn: ForceAuthn="true"');
ok(verify_redirect($r->{h}{location} // '', cert => $sp_cert), 'force_authn: signed');
$r = $ua->saml_follow($r);
ok(grep({ $_->{url} =~ /loginuserpass/ } @{$ua->{trace}}), 'force_authn: the IdP asked again');
is($r->{status}, 200, 'force_authn: upstream reached');
is(upstream_saw($r->{body})->{provider}, 'corp_staff', 'force_authn: as corp_staff');

$t->done;
