package Identity::SAML;

# SAML 2.0 for the tests, one name for the modules below Identity::SAML::,
# each for one role:
#
#   Identity::SAML::IdP       the SimpleSAMLphp IdP (keys, PHP config,
#                             start/stop, idp_initiated_url, idp_error)
#   Identity::SAML::Flows     browser flows through it (Identity::Test::UA
#                             methods saml_login, saml_response, ...)
#   Identity::SAML::Forge     the attacker's kit: reading, changing,
#                             signing, wrapping SAMLResponses, parser
#                             attacks, xmlsec1 verify
#   Identity::SAML::Redirect  the HTTP-Redirect binding, AuthnRequest and
#                             LogoutRequest
#   Identity::SAML::Common    namespaces, constants, temp files, commands
#
# This module loads them all and re-exports their functions, so that
# "use Identity::SAML qw(:all)" gives a test everything.  The names tests
# reach as Identity::SAML::NAME (%NS, the constants, _slurp, _xpc, ...)
# stay reachable here too.

use strict;
use warnings;

use Exporter 'import';

use Identity::SAML::Common qw(:all);
use Identity::SAML::IdP qw(:all);
use Identity::SAML::Forge qw(:all);
use Identity::SAML::Redirect qw(:all);
use Identity::SAML::Flows;

our @EXPORT_OK = qw(
    start_saml_idp idp_initiated_url idp_error make_keypair
    decode_saml encode_saml saml_doc response_info
    strip_signatures tamper resign forge wrap entity_expansion oversize
    xmlsec_verify
    authn_request logout_request redirect_url decode_redirect verify_redirect
    saml_time
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

# %NS, $SSP_WWW and the internals some tests look at, by their old names
our (%NS, $SSP_WWW);
*NS = \%Identity::SAML::Common::NS;
*SSP_WWW = \$Identity::SAML::IdP::SSP_WWW;
{
    no warnings 'once';
    *_xpc = \&Identity::SAML::Forge::_xpc;
    *_find = \&Identity::SAML::Forge::_find;
    *_first = \&Identity::SAML::Forge::_first;
}

1;

__END__

=head1 NAME

Identity::SAML - SimpleSAMLphp IdP, SAML browser flows and SAMLResponse forging for the tests

=head1 SYNOPSIS

    use Identity::Test;
    use Identity::SAML qw(:all);

    my $t = Identity::Test->new(name => 'saml');
    my ($sp_key, $sp_cert) = make_keypair($t->testdir . '/sp');
    my $idp = $t->start_saml_idp(sp_cert_pem => $sp_cert);
    my $ua = Identity::Test::UA->new;
    my $got = $ua->saml_response("http://127.0.0.1:$n/", user => 'alice');
    my $bad = forge($got->{SAMLResponse}, idp => $idp, audience => 'someone-else');
    is($ua->saml_post($got, SAMLResponse => $bad)->{status}, 403);

=head1 DESCRIPTION

A facade: it loads the modules below and exports their functions
(C<:all>, or by name). Each module documents its part:

=over

=item L<Identity::SAML::IdP>

the SimpleSAMLphp IdP: C<start_saml_idp> (also C<< $t->start_saml_idp >>),
C<stop_saml_idp>, C<idp_initiated_url>, C<idp_error>, C<make_keypair>

=item L<Identity::SAML::Flows>

browser flows, methods of C<Identity::Test::UA>: C<saml_login>,
C<saml_response>, C<saml_idp_initiated>, C<saml_post>, C<saml_follow>

=item L<Identity::SAML::Forge>

reading and forging responses: C<decode_saml>, C<encode_saml>,
C<saml_doc>, C<response_info>, C<strip_signatures>, C<tamper>, C<forge>,
C<resign>, C<wrap> (C<Identity::SAML::wrap_variants()>),
C<entity_expansion>, C<oversize>, C<xmlsec_verify>

=item L<Identity::SAML::Redirect>

the HTTP-Redirect binding and SP-side messages: C<redirect_url>,
C<decode_redirect>, C<verify_redirect>, C<authn_request>,
C<logout_request>

=item L<Identity::SAML::Common>

C<%NS>, C<BINDING_POST>, C<BINDING_REDIRECT>, C<NAMEID_PERSISTENT>,
C<RSA_SHA256>, C<saml_time> and the helpers the others share

=back

=cut
