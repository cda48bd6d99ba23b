#!/usr/bin/perl
# Self-test of t/lib/Identity/SAML.pm: the SimpleSAMLphp IdP, the browser
# flows through it and the forging tools (no identity module needed).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Conf qw(preamble);
use Identity::Test;
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'saml-idp');
my $dir = $t->testdir;
my $n = $t->port('nginx');
my $sp = 'urn:identity-test:sp';
my $acs = "http://127.0.0.1:$n/acs";
my $slo = "http://127.0.0.1:$n/slo";
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'sp');
my ($evil_key, $evil_cert) = make_keypair("$dir/evil", cn => 'evil');

# A stand-in for the SP: /acs logs the posted body and redirects to /done.
# (The shared preamble, without the identity module.)
$t->nginx_conf((preamble(1) =~ s/^load_module .*\n//mr) . <<'EOF');
    log_format body $request_body;

    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        location = /acs {
            client_body_buffer_size 2m;
            client_max_body_size 2m;
            access_log %%TESTDIR%%/acs.log body;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }
        location = /done { return 200 "done"; }
    }
    server {
        listen 127.0.0.1:%%PORT_upstream%%;
        location / { return 303 http://127.0.0.1:%%PORT_nginx%%/done; }
    }
}
EOF
$t->start_nginx;

my $idp = $t->start_saml_idp(sp_entity_id => $sp, acs_url => $acs, slo_url => $slo,
    sp_cert_pem => $sp_cert);
my $base = "http://127.0.0.1:$idp->{port}/";
is($idp->{url}, $base, 'url');
is($idp->{port}, $t->port('saml_idp'), 'port is port(saml_idp)');
is($idp->{entity_id}, "${base}saml2/idp/metadata.php", 'entity_id');
ok(-s $idp->{key_file} && -s $idp->{cert_file}, 'key and cert written');
like(Identity::SAML::_slurp($idp->{cert_file}), qr/BEGIN CERTIFICATE/, 'cert is PEM');

# The form fields of the Nth POST to /acs (nginx logs after answering).
sub acs_posted {
    my ($nth) = @_;
    my @lines;
    for (1 .. 100) {
        @lines = split /\n/, $t->read_file('acs.log');
        last if @lines >= $nth;
        select undef, undef, undef, 0.05;
    }
    my $body = $lines[$nth - 1] // '';
    $body =~ s/\\x([0-9A-F]{2})/chr hex $1/ge;
    return { map { Identity::Test::UA::uri_unescape($_) } map { split /=/, $_, 2 } split /&/, $body };
}

# ------------------------------------------------------------ metadata

my $md = saml_doc(Identity::SAML::_slurp($idp->{metadata_file}));
my $xpc = Identity::SAML::_xpc($md);
is($md->documentElement->getAttribute('entityID'), $idp->{entity_id}, 'metadata entityID');
is($xpc->findvalue('//md:SingleSignOnService[@Binding="' . Identity::SAML::BINDING_REDIRECT
    . '"]/@Location'), $idp->{sso_url}, 'metadata SSO (HTTP-Redirect)');
is($xpc->findvalue('//md:SingleLogoutService/@Location'), $idp->{slo_url}, 'metadata SLO');
is($xpc->findvalue('//md:KeyDescriptor[@use="signing"]//ds:X509Certificate') =~ s/\s+//gr,
    Identity::SAML::_pem_body($idp->{cert_file}), 'metadata signing cert is ours');
is($xpc->findvalue('//md:NameIDFormat'), Identity::SAML::NAMEID_PERSISTENT, 'metadata NameIDFormat');

# ------------------------------------------------------------ IdP-initiated

my $ua = Identity::Test::UA->new;
my $got = $ua->saml_idp_initiated($idp, relay_state => 'rs-1');
ok($got, 'IdP-initiated: auto-POST form reached') or diag(explain($ua->{trace}));
ok(grep({ $_->{url} =~ m{/module\.php/core/loginuserpass\.php} } @{$ua->{trace}}),
    'IdP-initiated: went through the login form');
my ($cookie) = grep { /^SimpleSAML=/ } map { @{$_->{cookies_set}} } @{$ua->{trace}};
like($cookie // '', qr/;\s*SameSite=Lax/i, 'IdP session cookie SameSite=Lax');
unlike($cookie // '', qr/;\s*Secure/i, 'IdP session cookie not Secure (plain http)');
is($got->{action}, $acs, 'form posts to the ACS');
is($got->{RelayState}, 'rs-1', 'RelayState');
my $b64 = $got->{SAMLResponse};
my $i = response_info($b64);
is($i->{root}, 'Response', 'a Response');
is($i->{status}, 'urn:oasis:names:tc:SAML:2.0:status:Success', 'status Success');
is($i->{destination}, $acs, 'Destination');
is($i->{issuer}, $idp->{entity_id}, 'Issuer');
is($i->{in_response_to}, undef, 'unsolicited: no InResponseTo');
ok($i->{response_signed}, 'Response signed (default)');
ok($i->{assertion_signed}, 'Assertion signed (default)');
is(scalar @{$i->{assertions}}, 1, 'one assertion');
is($i->{nameid}, 'alice', 'NameID');
is($i->{nameid_format}, Identity::SAML::NAMEID_PERSISTENT, 'NameID format persistent');
is($i->{sp_name_qualifier}, $sp, 'SPNameQualifier');
is_deeply($i->{audiences}, [$sp], 'Audience is the SP');
is($i->{recipient}, $acs, 'Recipient');
is($i->{scd_in_response_to}, undef, 'SubjectConfirmationData without InResponseTo');
ok($i->{session_index}, 'SessionIndex');
is_deeply([map { $i->{attributes}{$_} } qw(uid mail displayName groups eduPersonAffiliation)],
    [['alice'], ['alice@example.test'], ['Alice Example'], ['staff'], ['staff']], 'attributes');
my $now = time;
ok(Identity::SAML::_epoch($i->{not_on_or_after}) > $now
    && Identity::SAML::_epoch($i->{not_before}) <= $now, 'Conditions valid now');

# the same checks on the raw XML with XML::LibXML
my $doc = saml_doc(decode_saml($b64));
$xpc = Identity::SAML::_xpc($doc);
is($xpc->findnodes('/samlp:Response/ds:Signature')->size, 1, 'XML: Response/Signature');
is($xpc->findvalue('local-name(/samlp:Response/saml:Assertion/ds:Signature/preceding-sibling::*[1])'),
    'Issuer', 'XML: Assertion/Signature right after Issuer');
is($xpc->findvalue('//saml:Assertion/ds:Signature//ds:SignatureMethod/@Algorithm'),
    Identity::SAML::RSA_SHA256, 'XML: rsa-sha256');
is($xpc->findvalue('//saml:Attribute[@Name="mail"]/saml:AttributeValue'), 'alice@example.test',
    'XML: mail attribute');

my ($ok, $out) = xmlsec_verify($b64, idp => $idp);
ok($ok, 'xmlsec1 accepts the Response signature') or diag($out);
ok(xmlsec_verify($b64, idp => $idp, node => 'response'), 'xmlsec1: response node');
ok(xmlsec_verify($b64, idp => $idp, node => 'assertion'), 'xmlsec1: assertion node');
ok(!xmlsec_verify($b64, cert => $evil_cert), 'xmlsec1: not with another cert');

# posting the captured form
my $res = $ua->saml_post($got);
is($res->{status}, 303, 'ACS stand-in answered the POST');
my $posted = acs_posted(1);
is($posted->{SAMLResponse}, $b64, 'ACS got the SAMLResponse');
is($posted->{RelayState}, 'rs-1', 'ACS got the RelayState');
$res = $ua->saml_post($got, SAMLResponse => 'x', RelayState => undef);
is_deeply(acs_posted(2), { SAMLResponse => 'x' }, 'saml_post: fields replaced and dropped');

# saml_login: all the way, SSO on the second time (no login form)
$res = $ua->saml_login(idp_initiated_url($idp));
is($res->{status}, 200, 'saml_login: final response');
is($res->{body}, 'done', 'saml_login: followed the ACS redirect');
ok(!grep({ $_->{url} =~ /loginuserpass/ } @{$ua->{trace}}), 'SSO: no login form');
ok(grep({ ($_->{method} // '') eq 'POST' && $_->{url} eq $acs } @{$ua->{trace}}),
    'trace has the POST to the ACS');

my $bad = Identity::Test::UA->new->saml_login(idp_initiated_url($idp), user => 'alice',
    password => 'nope');
is($bad->{status}, 200, 'wrong password: 200');
like($bad->{body}, qr/name="password"/, 'wrong password: the login form again');
like($bad->{body}, qr/Incorrect username or password/i, 'wrong password: message');

$got = Identity::Test::UA->new->saml_idp_initiated($idp, user => 'bob');
$i = response_info($got->{SAMLResponse});
is_deeply([$i->{nameid}, $i->{attributes}{groups}, $i->{attributes}{mail}],
    ['bob', ['guests'], ['bob@example.test']], 'bob: NameID, groups, mail');

# ------------------------------------------------------------ SP-initiated

my $areq_id = '_areq' . Identity::Test::random_token(8) =~ tr/-_/xy/r;
my %areq = (issuer => $sp, acs_url => $acs, destination => $idp->{sso_url}, id => $areq_id);
my $url = redirect_url($idp->{sso_url}, SAMLRequest => authn_request(%areq),
    relay_state => 'sp-rs', key => $sp_key);
my $sp_ua = Identity::Test::UA->new;
$got = $sp_ua->saml_response($url);
ok($got, 'signed AuthnRequest: answered') or diag(explain($sp_ua->{trace}));
$i = response_info($got->{SAMLResponse});
is($i->{in_response_to}, $areq_id, 'Response InResponseTo');
is($i->{scd_in_response_to}, $areq_id, 'SubjectConfirmationData InResponseTo');
is($got->{RelayState}, 'sp-rs', 'RelayState back');

for my $case ([unsigned => undef], [wrong_key => $evil_key]) {
    my $u = redirect_url($idp->{sso_url}, SAMLRequest => authn_request(%areq, id => '_x1'),
        relay_state => 'r', key => $case->[1]);
    my $ua2 = Identity::Test::UA->new;
    ok(!$ua2->saml_response($u), "AuthnRequest $case->[0]: refused (validate.authnrequest)");
    like(idp_error($ua2->{trace}[-1]), $case->[1] ? qr/Unable to validate signature/
        : qr/no signature found/, "AuthnRequest $case->[0]: error page says why");
}

# ------------------------------------------------------------ logout

my $lreq_id = '_lreq1';
my %lreq = (issuer => $sp, destination => $idp->{slo_url}, nameid => 'alice',
    sp_name_qualifier => $sp, session_index => $i->{session_index}, id => $lreq_id);
$res = $sp_ua->get(redirect_url($idp->{slo_url}, SAMLRequest => logout_request(%lreq),
    relay_state => 'bye', key => $sp_key));
my $last = $sp_ua->follow($res, stop => sub { $_[0] =~ /^\Q$slo\E\?/ });
my ($to) = grep { /^\Q$slo\E\?/ } map { $_->{h}{location} // () } $res, $last;
ok($to, 'signed LogoutRequest: LogoutResponse redirected to the SP') or diag(explain($last));
my $lr = decode_redirect($to // "$slo?");
like($lr->{SAMLResponse} // '', qr/LogoutResponse.*InResponseTo="$lreq_id"/s, 'LogoutResponse for our request');
like($lr->{SAMLResponse} // '', qr/status:Success/, 'logout Success');
is($lr->{RelayState}, 'bye', 'logout RelayState');
ok(verify_redirect($to // "$slo?", idp => $idp), 'LogoutResponse signed (sign.logout)');
ok(!verify_redirect($to // "$slo?", cert => $evil_cert), 'verify_redirect: not with another cert');
$got = $sp_ua->saml_response(idp_initiated_url($idp));
ok(grep({ $_->{url} =~ /loginuserpass/ } @{$sp_ua->{trace}}), 'after logout: login form again');

$res = Identity::Test::UA->new->get(redirect_url($idp->{slo_url},
    SAMLRequest => logout_request(%lreq, id => '_lreq2'), relay_state => 'bye'));
like(idp_error($res), qr/no signature found on message/, 'unsigned LogoutRequest refused (validate.logout)');
is($res->{status}, 200, "SimpleSAMLphp's error pages answer 200");
is(idp_error($got->{page}), undef, 'idp_error: undef on a normal page');

# ------------------------------------------------------------ forging

$got = Identity::Test::UA->new->saml_response($url);
$b64 = $got->{SAMLResponse};
$i = response_info($b64);

my $s = strip_signatures($b64);
is(response_info($s)->{signatures}, 0, 'strip_signatures: none left');
is(response_info($s)->{nameid}, 'alice', 'strip_signatures: content kept');

my $tampered = tamper($b64, audience => 'someone-else');
is_deeply(response_info($tampered)->{audiences}, ['someone-else'], 'tamper: Audience changed');
ok(!xmlsec_verify($tampered, idp => $idp, node => 'response'), 'tamper: Response signature broken');
ok(!xmlsec_verify($tampered, idp => $idp, node => 'assertion'), 'tamper: Assertion signature broken');

my $past = time - 3600;
my $future = time + 3600;
my %forgeries = (
    audience => [{ audience => 'someone-else' }, sub { $_[0]{audiences}[0] eq 'someone-else' }],
    expired => [{ not_on_or_after => $past }, sub { $_[0]{not_on_or_after} eq saml_time($past) }],
    not_yet_valid => [{ not_before => $future }, sub { $_[0]{not_before} eq saml_time($future) }],
    scd_expired => [{ scd_not_on_or_after => $past },
        sub { $_[0]{scd_not_on_or_after} eq saml_time($past) }],
    recipient => [{ recipient => 'http://evil.test/acs' }, sub { $_[0]{recipient} eq 'http://evil.test/acs' }],
    scd_in_response_to => [{ scd_in_response_to => '_other' },
        sub { $_[0]{scd_in_response_to} eq '_other' && $_[0]{in_response_to} eq $areq_id }],
    in_response_to => [{ in_response_to => '_other' },
        sub { $_[0]{scd_in_response_to} eq '_other' && $_[0]{in_response_to} eq '_other' }],
    no_in_response_to => [{ in_response_to => undef },
        sub { !defined $_[0]{scd_in_response_to} && !defined $_[0]{in_response_to} }],
    destination => [{ destination => 'http://evil.test/acs' }, sub { $_[0]{destination} eq 'http://evil.test/acs' }],
    nameid => [{ nameid => 'mallory' }, sub { $_[0]{nameid} eq 'mallory' }],
    attribute => [{ attributes => { mail => 'mallory@evil.test', groups => ['admin', 'staff'] } },
        sub { $_[0]{attributes}{mail}[0] eq 'mallory@evil.test'
            && "@{$_[0]{attributes}{groups}}" eq 'admin staff' && $_[0]{attributes}{uid}[0] eq 'alice' }],
    issuer => [{ issuer => 'http://evil.test/idp' },
        sub { $_[0]{issuer} eq 'http://evil.test/idp' && $_[0]{assertion_issuer} eq 'http://evil.test/idp' }],
    status => [{ status => 'urn:oasis:names:tc:SAML:2.0:status:Requester' },
        sub { $_[0]{status} =~ /Requester\z/ }],
    shift_times => [{ shift_times => -7200 },
        sub { Identity::SAML::_epoch($_[0]{not_on_or_after})
            == Identity::SAML::_epoch($i->{not_on_or_after}) - 7200
            && Identity::SAML::_epoch($_[0]{authn_instant})
            == Identity::SAML::_epoch($i->{authn_instant}) - 7200 }],
    set => [{ set => [['//saml:AuthnContextClassRef', 'urn:x'], ['/samlp:Response/@Version', '1.0']] },
        sub { 1 }],
);
for my $name (sort keys %forgeries) {
    my ($changes, $check) = @{$forgeries{$name}};
    my $f = forge($b64, idp => $idp, %$changes);
    my $fi = response_info($f);
    ok($check->($fi), "forge $name: changed") or diag(explain($fi));
    ok($fi->{response_signed} && $fi->{assertion_signed}, "forge $name: both signed again");
    my ($ok_r, $out_r) = xmlsec_verify($f, idp => $idp, node => 'response');
    my ($ok_a, $out_a) = xmlsec_verify($f, idp => $idp, node => 'assertion');
    ok($ok_r && $ok_a, "forge $name: both signatures verify with the IdP cert") or diag($out_r, $out_a);
}
like(decode_saml(forge($b64, idp => $idp, set => [['/samlp:Response/@Version', '1.0']])),
    qr/<samlp:Response[^>]* Version="1.0"/, 'forge set: attribute by XPath');

my $f = forge($b64, key => $evil_key, cert => $evil_cert, nameid => 'mallory');
ok(!xmlsec_verify($f, idp => $idp), 'forge with another key: refused with the IdP cert');
ok(xmlsec_verify($f, cert => $evil_cert, node => 'assertion'), 'forge with another key: verifies with its own');

$f = resign($b64, idp => $idp, sign_response => 0);
$i = response_info($f);
ok(!$i->{response_signed} && $i->{assertion_signed}, 'resign: assertion only');
ok(xmlsec_verify($f, idp => $idp), 'resign: assertion only verifies');
$f = resign($b64, idp => $idp, sign_assertion => 0);
$i = response_info($f);
ok($i->{response_signed} && !$i->{assertion_signed}, 'resign: response only');
ok(xmlsec_verify($f, idp => $idp), 'resign: response only verifies');
$f = forge($f, idp => $idp, nameid => 'carol');
$i = response_info($f);
ok($i->{response_signed} && !$i->{assertion_signed} && $i->{nameid} eq 'carol',
    'forge keeps what was signed');

# ------------------------------------------------------------ wrapping

# What xmlsec1 says by default (first signature in document order), whether
# the IdP's own assertion signature still verifies where it now is, and
# which NameID the first assertion in the document carries.
my $signed_orig = "//*[local-name()='Assertion']"
    . "[*[local-name()='Subject']/*[local-name()='NameID']='alice']/*[local-name()='Signature']";
# variant => [xmlsec1 default, first NameID in document order,
#             NameIDs of the Response's Assertion children]
my %wrap_expect = (
    assertion_before => [1, 'mallory', 'mallory alice'],
    assertion_after => [1, 'alice', 'alice mallory'],
    extensions => [1, 'alice', 'mallory'],
    object => [0, 'mallory', 'mallory'],
    same_id => [0, 'mallory', 'mallory alice'],
    response_wrap => [1, 'alice', 'mallory'],
);
is_deeply([Identity::SAML::wrap_variants()], [sort keys %wrap_expect], 'wrap variants');
for my $v (sort keys %wrap_expect) {
    my $w = wrap($b64, $v);
    my $wd = saml_doc($w);
    my $wx = Identity::SAML::_xpc($wd);
    my ($first_ok, $wrap_nameid, $children) = @{$wrap_expect{$v}};
    is(scalar xmlsec_verify($w, idp => $idp), $first_ok, "wrap $v: xmlsec1 default " . ($first_ok ? 'accepts' : 'refuses'));
    is($wx->findvalue('(//saml:Assertion)[1]/saml:Subject/saml:NameID'), $wrap_nameid,
        "wrap $v: first assertion in document order is $wrap_nameid");
    is(join(' ', map { $_->textContent }
        $wx->findnodes('/samlp:Response/saml:Assertion/saml:Subject/saml:NameID')), $children,
        "wrap $v: Response/Assertion: $children");
    is($wx->findnodes('/samlp:Response/saml:Assertion[ds:Signature]'
        . '[saml:Subject/saml:NameID="mallory"]')->size ? 1 : 0, $v =~ /^(object|same_id)\z/ ? 1 : 0,
        "wrap $v: forged assertion " . ($v =~ /^(object|same_id)\z/ ? 'carries a copied' : 'has no')
        . ' Signature');
    is($wx->findvalue('//saml:Attribute[@Name="mail"]/saml:AttributeValue[.="mallory@evil.test"]'),
        'mallory@evil.test', "wrap $v: forged mail");
    next if $v eq 'same_id';    # xmlsec1 refuses duplicate IDs outright
    my ($ok_o, $out_o) = xmlsec_verify($w, idp => $idp, node => $signed_orig);
    ok($ok_o, "wrap $v: the IdP's assertion signature still verifies") or diag($out_o);
}
my ($ok_s, $out_s) = xmlsec_verify(wrap($b64, 'same_id'), idp => $idp);
like($out_s, qr/duplicate ID/, 'wrap same_id: xmlsec1 refuses the duplicate ID');
is(response_info(wrap($b64, 'response_wrap'))->{response_signed}, 0,
    'wrap response_wrap: outer Response unsigned');
ok(xmlsec_verify(wrap($b64, 'response_wrap'), idp => $idp,
    node => "//*[local-name()='Extensions']/*[local-name()='Response']/*[local-name()='Signature']"),
    'wrap response_wrap: inner Response signature verifies');
is(response_info(wrap($b64, 'assertion_before', nameid => 'eve'))->{nameid}, 'eve',
    'wrap with own changes');

# ------------------------------------------------------------ entities, size

my $e = entity_expansion($b64);
my $ex = decode_saml($e);
like($ex, qr/^(<\?xml[^>]*>\s*)?<!DOCTYPE samlp:Response \[/, 'entities: DOCTYPE');
like($ex, qr/<!ENTITY e5 "(&e4;){10}">/, 'entities: nested entity');
like($ex, qr/<saml:NameID[^>]*>&e5;<\/saml:NameID>/, 'entities: NameID is &e5;');
ok(length $e < 20_000, 'entities: small (' . length($e) . ' bytes base64)');
my $big = XML::LibXML->new(expand_entities => 1, load_ext_dtd => 1, huge => 1, no_network => 1)
    ->parse_string($ex);
is(length(Identity::SAML::_first($big, '//saml:NameID')->textContent), 300_000,
    'entities: expands to 300 KB');
ok(!eval { XML::LibXML->new(expand_entities => 1, load_ext_dtd => 1, no_network => 1)
    ->parse_string($ex); 1 }, 'entities: libxml2 without XML_PARSE_HUGE refuses to expand');
ok(!xmlsec_verify($e, idp => $idp), 'entities: unsigned one does not verify');
$e = entity_expansion($b64, idp => $idp, levels => 4, field => 'attr:mail');
like(decode_saml($e), qr/<saml:AttributeValue[^>]*>&e4;</, 'entities in an attribute');
ok(xmlsec_verify($e, idp => $idp, node => 'assertion', expand_entities => 1),
    'entities: signed one verifies once expanded');
ok(!xmlsec_verify($e, idp => $idp, node => 'assertion'), 'entities: xmlsec1 itself does not expand');

my $o = oversize($b64, idp => $idp);
ok(length $o > 1_048_576, 'oversize: ' . length($o) . ' bytes base64');
ok(xmlsec_verify($o, idp => $idp, node => 'assertion') && xmlsec_verify($o, idp => $idp),
    'oversize: signed again, verifies');
is(response_info($o)->{nameid}, 'alice', 'oversize: content kept');

# ------------------------------------------------------------ IdP options, restart

my $pid = $t->{procs}{saml_idp};
$t->stop_saml_idp;
ok(!kill(0, $pid), 'stop_saml_idp: php is gone');
my $cert_before = Identity::SAML::_slurp($idp->{cert_file});
my $idp2 = $t->start_saml_idp(sp_entity_id => $sp, acs_url => $acs, sign_response => 0,
    nameid_format => 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient');
is($idp2->{port}, $idp->{port}, 'restart: same port');
is(Identity::SAML::_slurp($idp2->{cert_file}), $cert_before, 'restart: same key');
$i = response_info(Identity::Test::UA->new->saml_idp_initiated($idp2)->{SAMLResponse});
ok(!$i->{response_signed} && $i->{assertion_signed}, 'sign_response => 0: assertion only');
is($i->{nameid_format}, 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient', 'nameid_format');
isnt($i->{nameid}, 'alice', 'transient NameID is random');

my $idp3 = $t->start_saml_idp(name => 'idp3', sp_entity_id => $sp, acs_url => $acs,
    sign_assertion => 0, sign_response => 1, assertion_lifetime => 60,
    users => { carol => { password => 'pw', attributes => { uid => 'carol', mail => 'c@x.test' } } });
isnt($idp3->{port}, $idp2->{port}, 'second IdP, own port');
$i = response_info(Identity::Test::UA->new->saml_idp_initiated($idp3, user => 'carol',
    password => 'pw')->{SAMLResponse});
my $resp_only = Identity::Test::UA->new->saml_idp_initiated($idp3)->{SAMLResponse};
ok(response_info($resp_only)->{response_signed} && !response_info($resp_only)->{assertion_signed},
    'sign_assertion => 0: response only');
ok(xmlsec_verify(wrap($resp_only, 'response_wrap'), idp => $idp3,
    node => "//*[local-name()='Extensions']/*[local-name()='Response']/*[local-name()='Signature']"),
    'wrap response_wrap of a response-only signed Response');
ok(!eval { wrap($resp_only, 'same_id'); 1 }, 'wrap same_id needs a signed assertion');
is($i->{nameid}, 'carol', 'extra user');
is(Identity::SAML::_epoch($i->{not_on_or_after})
    - Identity::SAML::_epoch($i->{assertion_issue_instant}), 60, 'assertion_lifetime');

$t->done;
