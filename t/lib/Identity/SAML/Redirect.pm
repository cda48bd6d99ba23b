package Identity::SAML::Redirect;

# The HTTP-Redirect binding (deflate, base64, query signature) and the SP
# side's messages (AuthnRequest, LogoutRequest): to drive the IdP without
# our SP, and to check what our SP sends.  POD at the end.

use strict;
use warnings;

use Compress::Raw::Zlib qw(MAX_WBITS Z_OK Z_STREAM_END);
use Exporter 'import';
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(time);

use Identity::Test;
use Identity::SAML::Common qw(:all);

our @EXPORT_OK = qw(authn_request logout_request redirect_url decode_redirect verify_redirect);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

sub _deflate {
    my ($d) = Compress::Raw::Zlib::Deflate->new(-WindowBits => -MAX_WBITS(), -AppendOutput => 1);
    my $out = '';
    $d->deflate($_[0], $out) == Z_OK or die "deflate failed\n";
    $d->flush($out) == Z_OK or die "deflate failed\n";
    return $out;
}

sub _inflate {
    my ($i) = Compress::Raw::Zlib::Inflate->new(-WindowBits => -MAX_WBITS(), -AppendOutput => 1);
    my ($in, $out) = ($_[0], '');
    my $st = $i->inflate($in, $out);
    die "inflate failed: $st\n" unless $st == Z_OK || $st == Z_STREAM_END;
    return $out;
}

sub _rsa_sha256 {
    my ($key, $data) = @_;
    my $in = _spew(_tmp() . '/redirect.txt', $data);
    return _run_ok('openssl', 'dgst', '-sha256', '-sign', $key, $in);
}

# redirect_url(ENDPOINT, SAMLRequest => XML | SAMLResponse => XML,
#              relay_state => RS, key => FILE): the HTTP-Redirect binding,
# signed (rsa-sha256, in the query) when a key is given.
sub redirect_url {
    my ($endpoint, %o) = @_;
    my ($param) = grep { defined $o{$_} } qw(SAMLRequest SAMLResponse) or die "redirect_url: no message\n";
    my $q = "$param=" . Identity::Test::UA::uri_escape(encode_base64(_deflate($o{$param}), ''));
    $q .= '&RelayState=' . Identity::Test::UA::uri_escape($o{relay_state}) if defined $o{relay_state};
    if ($o{key}) {
        $q .= '&SigAlg=' . Identity::Test::UA::uri_escape(RSA_SHA256);
        $q .= '&Signature=' . Identity::Test::UA::uri_escape(encode_base64(_rsa_sha256($o{key}, $q), ''));
    }
    return $endpoint . ($endpoint =~ /\?/ ? '&' : '?') . $q;
}

# decode_redirect(URL) -> {SAMLRequest|SAMLResponse => XML, RelayState,
# SigAlg, Signature, signed_query => the octets the signature covers}
sub decode_redirect {
    my ($url) = @_;
    my ($query) = $url =~ /\?(.*)\z/s or die "no query in $url\n";
    my (%raw, %r);
    for (split /&/, $query) {
        my ($k, $v) = split /=/, $_, 2;
        $raw{$k} = $v // '';
        $r{$k} = Identity::Test::UA::uri_unescape($v // '');
    }
    for my $p (grep { defined $r{$_} } qw(SAMLRequest SAMLResponse)) {
        $r{$p} = _inflate(decode_base64($r{$p}));
        $r{message} = $p;
    }
    # the signature covers the parameters as they were sent, in this order
    $r{signed_query} = join '&', map { "$_=$raw{$_}" }
        grep { defined $raw{$_} } qw(SAMLRequest SAMLResponse RelayState SigAlg);
    return \%r;
}

# verify_redirect(URL, cert => FILE | idp => IDP): 1 if the query signature
# is an rsa-sha256 signature by that certificate's key.
sub verify_redirect {
    my ($url, %o) = @_;
    my $cert = $o{cert} // $o{idp}{cert_file};
    my $r = decode_redirect($url);
    return 0 unless defined $r->{Signature} && ($r->{SigAlg} // '') eq RSA_SHA256;
    my $dir = _tmp();
    my $pub = _spew("$dir/pub.pem", _run_ok('openssl', 'x509', '-in', $cert, '-pubkey', '-noout'));
    _spew("$dir/sig.bin", decode_base64($r->{Signature}));
    _spew("$dir/data.txt", $r->{signed_query});
    my ($rc) = _run('openssl', 'dgst', '-sha256', '-verify', $pub, '-signature', "$dir/sig.bin",
        "$dir/data.txt");
    return $rc == 0 ? 1 : 0;
}

# authn_request(issuer => SP, acs_url => URL, destination => SSO URL,
#               id => ID, nameid_format => F, force_authn => 1, is_passive => 1)
sub authn_request {
    my (%o) = @_;
    my $id = $o{id} // _new_id();
    my $extra = join '', map { " $_->[0]=\"$_->[1]\"" } grep { $_->[1] }
        [ForceAuthn => $o{force_authn} && 'true'], [IsPassive => $o{is_passive} && 'true'];
    my $policy = defined $o{nameid_format}
        ? qq{<samlp:NameIDPolicy Format="$o{nameid_format}" AllowCreate="true"/>} : '';
    return qq{<samlp:AuthnRequest xmlns:samlp="$NS{samlp}" xmlns:saml="$NS{saml}" ID="$id"}
        . qq{ Version="2.0" IssueInstant="} . saml_time($o{issue_instant} // time) . '"'
        . qq{ Destination="$o{destination}" AssertionConsumerServiceURL="$o{acs_url}"}
        . qq{ ProtocolBinding="} . BINDING_POST . qq{"$extra>}
        . qq{<saml:Issuer>$o{issuer}</saml:Issuer>$policy</samlp:AuthnRequest>};
}

# logout_request(issuer => SP, destination => SLO URL, nameid => V,
#                nameid_format => F, sp_name_qualifier => Q, session_index => S, id => ID)
sub logout_request {
    my (%o) = @_;
    my $id = $o{id} // _new_id();
    my $fmt = $o{nameid_format} // NAMEID_PERSISTENT;
    my $spnq = defined $o{sp_name_qualifier} ? qq{ SPNameQualifier="$o{sp_name_qualifier}"} : '';
    my $si = defined $o{session_index} ? "<samlp:SessionIndex>$o{session_index}</samlp:SessionIndex>" : '';
    return qq{<samlp:LogoutRequest xmlns:samlp="$NS{samlp}" xmlns:saml="$NS{saml}" ID="$id"}
        . qq{ Version="2.0" IssueInstant="} . saml_time(time) . qq{" Destination="$o{destination}">}
        . qq{<saml:Issuer>$o{issuer}</saml:Issuer>}
        . qq{<saml:NameID Format="$fmt"$spnq>$o{nameid}</saml:NameID>$si</samlp:LogoutRequest>};
}

1;

__END__

=head1 NAME

Identity::SAML::Redirect - the HTTP-Redirect binding and SP-side messages for the tests

=head1 MESSAGES FROM THE SP SIDE

For driving the IdP without our SP (and for checking what our SP sends).

=over

=item authn_request(issuer => SP, destination => SSO URL, acs_url => URL, id => ID, nameid_format => F, force_authn => 1, is_passive => 1) -> XML

=item logout_request(issuer => SP, destination => SLO URL, nameid => V, nameid_format => F, sp_name_qualifier => Q, session_index => S, id => ID) -> XML

=item redirect_url(ENDPOINT, SAMLRequest => XML | SAMLResponse => XML, relay_state => RS, key => FILE)

HTTP-Redirect binding: deflated, base64, in the query; signed with rsa-sha256
(C<SigAlg>, C<Signature>) when given a key.

=item decode_redirect(URL)

C<< { SAMLRequest or SAMLResponse => XML, message => which, RelayState,
SigAlg, Signature, signed_query } >>.

=item verify_redirect(URL, idp => $idp | cert => FILE)

1 if the query's signature is valid rsa-sha256 by that certificate.

=back

=cut
