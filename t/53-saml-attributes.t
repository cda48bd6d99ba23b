#!/usr/bin/perl
# SAML attributes: the default attribute map (SimpleSAMLphp's, Shibboleth's,
# ADFS's and Entra ID's usual names, first present wins), attribute_map
# overriding it key by key, an e-mail NameID as the e-mail, and values split
# by XML comments (CVE-2017-11427) read whole, never truncated.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf protected upstream_saw);
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'saml-attributes');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $n = $t->port('nginx');
my $n2 = $t->port('nginx2');
my $base = "http://127.0.0.1:$n";
my $base2 = "http://127.0.0.1:$n2";

my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');

my @sps = map { {
    sp_entity_id => "$_/_identity/saml/metadata",
    acs_url => "$_/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
} } $base, $base2;

my $idp = $t->start_saml_idp(sps => \@sps);

sub provider {
    my ($name, $extra) = @_;
    return <<"EOF";
    identity_provider $name {
        type saml;
        idp_metadata $idp->{metadata_file};
        sp_certificate $sp_cert;
        sp_certificate_key $sp_key;
        allow_idp_initiated on;
        $extra
    }
EOF
}

my $mapped = protected('mapped');

# no attribute_map at all on the first server; the second maps e-mail
# only, from "email", and keeps the defaults for the other keys
$t->nginx_conf(identity_conf(
    redis => $rport,
    identity => 'plain',
    server => "identity_public_url $base;",
    providers => provider('plain', '')
        . provider('mapped', 'attribute_map email=email;'),
    http => <<"EOF"));
    server {
        listen 127.0.0.1:%%PORT_nginx2%%;
        identity_public_url $base2;

        location / {
$mapped
        }
    }
EOF
$t->start_nginx;

sub session_cookie {
    my ($r) = @_;
    my ($c) = map { /^identity_session=([^;]+)/ ? $1 : () } @{$r->{cookies_set}};
    return $c;
}

# login(UA, RESPONSE FORM, SAMLResponse): posted like the IdP's form; what
# the upstream then sees, and the groups kept in the session ('' for none:
# the session leaves an empty field out)
sub login {
    my ($ua, $form, $response, $where) = @_;
    my $r = $ua->saml_post($form, defined $response ? (SAMLResponse => $response) : ());
    my $cookie = session_cookie($r);
    return { status => $r->{status} } unless $cookie;
    my $saw = upstream_saw($ua->get(($where // $base) . '/x')->{body});
    $saw->{status} = $r->{status};
    $saw->{groups} = $t->redis('HGET', Identity::Test::session_key($cookie), 'groups') // '';
    return $saw;
}

my $seq = 0;
sub fresh_id { '_forged' . ++$seq . Identity::Test::random_token(8) =~ tr/-_/ab/r }

# the attributes SimpleSAMLphp releases for alice, all removed
my %none = map { $_ => undef } qw(uid mail displayName eduPersonAffiliation groups);

# an unsolicited response for SERVER re-signed with the IdP's key with
# %changes, and a fresh assertion id (each is accepted once)
sub unsolicited {
    my ($server, %changes) = @_;
    my $ua = Identity::Test::UA->new;
    my $got = $ua->saml_idp_initiated($idp, sp_entity_id => "$server/_identity/saml/metadata");
    ok($got, 'unsolicited response made') or return ($ua, {}, undef);
    my $edit = delete $changes{edit};
    my $doc = saml_doc(tamper($got->{SAMLResponse}, assertion_id => fresh_id(), %changes));
    $edit->($doc) if $edit;
    return ($ua, $got, resign(encode_saml($doc->toString), idp => $idp));
}

# ------------------------------------------------------------ defaults

# SimpleSAMLphp's usual names, no attribute_map: a real login
my $ua = Identity::Test::UA->new;
my $r = $ua->saml_login("$base/x", user => 'alice');
is($r->{status}, 200, 'no attribute_map: logged in');
my $saw = upstream_saw($r->{body});
is($saw->{email}, 'alice@example.test', 'no attribute_map: e-mail from mail');
is($saw->{name}, 'Alice Example', 'no attribute_map: name from displayName');
is($saw->{username}, 'alice', 'no attribute_map: username from uid');
is($saw->{user_id}, 'alice', 'no attribute_map: the user id is the NameID');

my %cases = (
    'OIDs (attrname-format:uri)' => [{
        'urn:oid:0.9.2342.19200300.100.1.3' => 'oid@example.test',
        'urn:oid:2.16.840.1.113730.3.1.241' => 'Oid Display',
        'urn:oid:0.9.2342.19200300.100.1.1' => 'oiduid',
        'urn:oid:1.3.6.1.4.1.5923.1.1.1.1' => ['member', 'staff'],
    }, 'oid@example.test', 'Oid Display', 'oiduid', "member\nstaff"],
    'Entra ID / ADFS claims' => [{
        'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress' => 'ms@example.test',
        'http://schemas.microsoft.com/identity/claims/displayname' => 'Ms Name',
        'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups' => ['g1', 'g2'],
    }, 'ms@example.test', 'Ms Name', '', "g1\ng2"],
    'WS-Federation name and Group' => [{
        'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name' => 'Ws Name',
        'http://schemas.xmlsoap.org/claims/Group' => 'wsgroup',
        eduPersonPrincipalName => 'eppn@example.test',
    }, '', 'Ws Name', 'eppn@example.test', 'wsgroup'],
    'cn, email, memberOf, the eduPersonPrincipalName OID' => [{
        cn => 'Common Name', email => 'e@example.test', memberOf => 'cn=admins',
        'urn:oid:1.3.6.1.4.1.5923.1.1.1.6' => 'eppn2@example.test',
        'urn:oid:2.5.4.3' => 'Oid Cn',
    }, 'e@example.test', 'Common Name', 'eppn2@example.test', 'cn=admins'],
    'the first present name wins' => [{
        'urn:oid:0.9.2342.19200300.100.1.3' => 'second@example.test',
        mail => 'first@example.test', emailAddress => 'third@example.test',
        'urn:oid:2.5.4.3' => 'Later', displayName => 'Sooner',
        'urn:oid:1.3.6.1.4.1.5923.1.1.1.1' => 'later-group', memberOf => ['m1', 'm2'],
    }, 'first@example.test', 'Sooner', '', "m1\nm2"],
    'an empty value is no value' => [{
        mail => '', email => 'nonempty@example.test', displayName => ['', 'Second'],
    }, 'nonempty@example.test', 'Second', '', ''],
);

for my $name (sort keys %cases) {
    my ($attrs, $email, $dn, $username, $groups) = @{$cases{$name}};
    my ($u, $got, $f) = unsolicited($base, attributes => { %none, %$attrs });
    $saw = login($u, $got, $f);
    is($saw->{status}, 302, "$name: accepted");
    is($saw->{email}, $email, "$name: e-mail");
    is($saw->{name}, $dn, "$name: name");
    is($saw->{username}, $username, "$name: username");
    is($saw->{groups}, $groups, "$name: groups");
}

# an e-mail NameID: the e-mail when no attribute gives one

my $email_format = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
my ($u, $got, $f) = unsolicited($base, nameid => 'nameid@example.test',
                                nameid_format => $email_format, attributes => \%none);
$saw = login($u, $got, $f);
is($saw->{email}, 'nameid@example.test', 'emailAddress NameID: the e-mail');
is($saw->{user_id}, 'nameid@example.test', 'emailAddress NameID: the user id');

($u, $got, $f) = unsolicited($base, nameid => 'nameid@example.test',
                             nameid_format => $email_format);
is(login($u, $got, $f)->{email}, 'alice@example.test',
   'emailAddress NameID and a mail attribute: the attribute');

($u, $got, $f) = unsolicited($base, nameid => 'notmail@example.test', attributes => \%none);
is(login($u, $got, $f)->{email}, '', 'persistent NameID: no e-mail');

# attribute_map overrides one key, the others keep their defaults

($u, $got, $f) = unsolicited($base2, attributes => { email => 'mapped@example.test' });
$saw = login($u, $got, $f, $base2);
is($saw->{status}, 302, 'attribute_map email=email: accepted');
is($saw->{email}, 'mapped@example.test', 'attribute_map email=email: e-mail from email');
is($saw->{name}, 'Alice Example', 'attribute_map email=email: name still from displayName');
is($saw->{username}, 'alice', 'attribute_map email=email: username still from uid');
is($saw->{groups}, 'staff', 'attribute_map email=email: groups still from groups');

($u, $got, $f) = unsolicited($base2, attributes => { email => undef });
is(login($u, $got, $f, $base2)->{email}, '',
   'attribute_map email=email: mail is no longer read');

# ------------------------------------------------------------ comments

# text, then a comment, then text, in the element XPATH of the document:
# what a signature over the canonical form (comments dropped) still covers
sub commented {
    my ($path, $before, $after) = @_;
    return sub {
        my ($doc) = @_;
        my $xpc = XML::LibXML::XPathContext->new($doc);
        $xpc->registerNs($_, $Identity::SAML::NS{$_}) for keys %Identity::SAML::NS;
        for my $el ($xpc->findnodes($path)) {
            $el->removeChild($_) for $el->childNodes;
            $el->appendText($before);
            $el->appendChild($doc->createComment(''));
            $el->appendText($after);
        }
    };
}

my $mail_value = '//saml:Attribute[@Name="mail"]/saml:AttributeValue';

# unsolicited, re-signed by the IdP's key
($u, $got, $f) = unsolicited($base, attributes => { mail => 'x' },
                             edit => commented($mail_value, 'alice@example.org',
                                               '.evil.example'));
like(decode_saml($f), qr/alice\@example\.org<!---->\.evil\.example/,
     'comment in the mail value: in the signed response');
ok(xmlsec_verify($f, idp => $idp, node => 'assertion'), 'and its signature verifies');
$saw = login($u, $got, $f);
is($saw->{status}, 302, 'comment in the mail value: accepted');
is($saw->{email}, 'alice@example.org.evil.example', 'comment in the mail value: read whole');

($u, $got, $f) = unsolicited($base, nameid => 'x', nameid_format => $email_format,
                             attributes => \%none,
                             edit => commented('//saml:Assertion/saml:Subject/saml:NameID',
                                               'alice@example.org', '.evil.example'));
$saw = login($u, $got, $f);
is($saw->{email}, 'alice@example.org.evil.example', 'comment in an e-mail NameID: read whole');
is($saw->{user_id}, 'alice@example.org.evil.example', 'and the user id too');

($u, $got, $f) = unsolicited($base, attributes => { groups => 'x' },
                             edit => commented('//saml:Attribute[@Name="groups"]'
                                               . '/saml:AttributeValue', 'sta', 'ff-admins'));
is(login($u, $got, $f)->{groups}, 'staff-admins', 'comment in a group: one group, whole');

# the IdP's own signature, untouched: the comment goes in after signing,
# as in the attack (exclusive c14n drops comments, the digest still holds)
my $cb = Identity::Test::UA->new;
my $orig = $cb->saml_idp_initiated($idp, sp_entity_id => "$base/_identity/saml/metadata");
my $doc = saml_doc($orig->{SAMLResponse});
commented($mail_value, 'alice@example.te', 'st')->($doc);
my $attack = encode_saml($doc->toString);
ok(xmlsec_verify($attack, idp => $idp, node => 'assertion'),
   'comment added after signing: the IdP signature still verifies');
$saw = login($cb, $orig, $attack);
is($saw->{status}, 302, 'comment added after signing: accepted');
is($saw->{email}, 'alice@example.test', 'comment added after signing: the signed value');

# solicited: a login of this browser, its response changed and re-signed

my $sb = Identity::Test::UA->new;
my $c = $sb->saml_response("$base/x", user => 'alice');
ok($c, 'solicited login captured');
$doc = saml_doc($c->{SAMLResponse});
commented($mail_value, 'alice@example.org', '.evil.example')->($doc);
commented('//saml:Assertion/saml:Subject/saml:NameID', 'ali', 'ce')->($doc);
$saw = login($sb, $c, forge(encode_saml($doc->toString), idp => $idp,
                            assertion_id => fresh_id()));
is($saw->{status}, 302, 'solicited, comments: accepted');
is($saw->{email}, 'alice@example.org.evil.example', 'solicited, comment in mail: read whole');
is($saw->{user_id}, 'alice', 'solicited, comment in the NameID: read whole');

# a value with an element inside is no text value
($u, $got, $f) = unsolicited($base, edit => sub {
    my ($d) = @_;
    my $xpc = XML::LibXML::XPathContext->new($d);
    $xpc->registerNs($_, $Identity::SAML::NS{$_}) for keys %Identity::SAML::NS;
    my ($v) = $xpc->findnodes($mail_value);
    $v->removeChild($_) for $v->childNodes;
    $v->appendText('alice@example.org');
    $v->appendChild($d->createElementNS('urn:x', 'x:b'))->appendText('.evil.example');
});
$saw = login($u, $got, $f);
is($saw->{status}, 302, 'an element in the mail value: accepted');
is($saw->{email}, '', 'an element in the mail value: no e-mail from it');

# CDATA is text too: its content, with the text around it
($u, $got, $f) = unsolicited($base, edit => sub {
    my ($d) = @_;
    my $xpc = XML::LibXML::XPathContext->new($d);
    $xpc->registerNs($_, $Identity::SAML::NS{$_}) for keys %Identity::SAML::NS;
    for my $path ($mail_value, '//saml:Assertion/saml:Subject/saml:NameID') {
        my ($v) = $xpc->findnodes($path);
        $v->removeChild($_) for $v->childNodes;
        $v->appendText('cd');
        $v->appendChild($d->createCDATASection('ata@example'));
        $v->appendText('.test');
    }
});
like(decode_saml($f), qr/<!\[CDATA\[ata\@example\]\]>/, 'CDATA in the response');
$saw = login($u, $got, $f);
is($saw->{status}, 302, 'CDATA: accepted');
is($saw->{user_id}, 'cdata@example.test', 'CDATA in the NameID: read whole');
is($saw->{email}, 'cdata@example.test', 'CDATA in the mail value: read whole');

unlike($t->error_log, qr/\[(alert|emerg|crit)\]/, 'no alert');

$t->done;
