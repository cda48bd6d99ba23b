package Identity::SAML::Flows;

# Browser flows through the SAML IdP: methods of Identity::Test::UA that
# follow redirects, fill SimpleSAMLphp's login form and post the auto-POST
# forms, or stop at the SAMLResponse form to hand it to a forger.  POD at
# the end.

use strict;
use warnings;

use Identity::Test;
use Identity::SAML::IdP ();

package Identity::Test::UA;

use strict;
use warnings;

sub _saml_form {
    my ($res, $field) = @_;
    return undef unless $res->{status} == 200;
    my ($form) = grep { exists $_->{fields}{$field} } @{forms($res)};
    return $form;
}

# Drives the browser from $res on: follows redirects, fills SimpleSAMLphp's
# login form, submits auto-POST forms carrying SAMLRequest or SAMLResponse.
# %opt: user, password, stop (sub: URL -> true stops before a GET),
# capture (stop before posting a SAMLResponse and return the form), max,
# cross_site (post the SAMLResponse without cookies, as a browser does when
# the IdP is another site: the module's cookies are SameSite=Lax).
sub saml_follow {
    my ($self, $res, %opt) = @_;
    my $user = $opt{user} // 'alice';
    my $password = $opt{password} // "$user-password";
    my @trace = ($res);
    my $posted_login = 0;
    my $captured;
    for (1 .. $opt{max} // 30) {
        if ($res->{status} =~ /^30[12378]$/ && defined $res->{h}{location}) {
            my $url = resolve_url($res->{url}, $res->{h}{location});
            last if $opt{stop} && $opt{stop}->($url);
            $res = $self->get($url);
        } elsif (my $login = _saml_form($res, 'AuthState')) {
            last unless exists $login->{fields}{password};
            last if $posted_login++;    # the form again: wrong credentials
            $res = $self->post_form($login->{action},
                { %{$login->{fields}}, username => $user, password => $password });
        } elsif (my $post = _saml_form($res, 'SAMLResponse') || _saml_form($res, 'SAMLRequest')) {
            if ($opt{capture} && exists $post->{fields}{SAMLResponse}) {
                $captured = { action => $post->{action}, %{$post->{fields}}, page => $res };
                last;
            }
            $res = $self->post_form($post->{action}, $post->{fields},
                $opt{cross_site} && exists $post->{fields}{SAMLResponse}
                    ? (headers => { Cookie => undef }) : ());
        } else {
            last;
        }
        push @trace, $res;
    }
    $self->{trace} = \@trace;
    return $opt{capture} ? $captured : $res;
}

# saml_login(START_URL, user => 'alice', password => 'alice-password', stop => sub {...})
sub saml_login {
    my ($self, $start_url, %opt) = @_;
    return $self->saml_follow($self->get($start_url), %opt, capture => 0);
}

# saml_response(START_URL, %opt) -> {action, SAMLResponse, RelayState, page}
# or undef when the flow did not reach the IdP's POST form ($ua->{trace}).
sub saml_response {
    my ($self, $start_url, %opt) = @_;
    return $self->saml_follow($self->get($start_url), %opt, capture => 1);
}

# saml_idp_initiated(IDP, sp_entity_id => ID, relay_state => RS, user/password)
# -> as saml_response: the unsolicited response SimpleSAMLphp made.
sub saml_idp_initiated {
    my ($self, $idp, %opt) = @_;
    my %q = map { exists $opt{$_} ? ($_ => delete $opt{$_}) : () } qw(sp_entity_id relay_state);
    return $self->saml_response(Identity::SAML::IdP::idp_initiated_url($idp, %q), %opt);
}

# saml_post(CAPTURED, SAMLResponse => B64, RelayState => RS, action => URL,
#           cross_site => 1, finish => 0)
# posts the captured form, fields overridden (undef drops one), and follows
# the ACS's 303 to its finish step (saml/finish?k=KEY) as a browser does;
# returns that last response (the ACS's own in {acs}), other redirects not
# followed.  cross_site: the POST carries no cookie, as in a browser whose
# IdP is on another site (the module's cookies are SameSite=Lax); finish =>
# 0: the ACS's response itself.
sub saml_post {
    my ($self, $captured, %over) = @_;
    my %f = map { defined $captured->{$_} ? ($_ => $captured->{$_}) : () } qw(SAMLResponse RelayState);
    my $action = delete $over{action} // $captured->{action};
    my $cross = delete $over{cross_site};
    my $finish = delete $over{finish} // 1;
    %f = (%f, %over);
    delete $f{$_} for grep { !defined $f{$_} } keys %f;
    my $res = $self->post_form($action, \%f, $cross ? (headers => { Cookie => undef }) : ());
    return $res unless $finish && $res->{status} == 303
        && ($res->{h}{location} // '') =~ m{/saml/finish\?k=};
    my $end = $self->get(Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location}));
    $end->{acs} = $res;
    return $end;
}

1;

__END__

=head1 NAME

Identity::SAML::Flows - SAML browser flows (methods of Identity::Test::UA)

=head1 SYNOPSIS

    use Identity::SAML qw(:all);    # or use Identity::SAML::Flows;

    my $ua = Identity::Test::UA->new;
    my $res = $ua->saml_login("http://127.0.0.1:$n/", user => 'alice');

=head1 BROWSER FLOWS (Identity::Test::UA)

Loading Identity::SAML (or Identity::SAML::Flows) adds these methods to C<Identity::Test::UA>.

=over

=item $ua->saml_login($start_url, user => 'alice', password => 'alice-password', stop => sub {...}, max => 30)

GETs $start_url and follows redirects (from the SP to the IdP and back); on
SimpleSAMLphp's login page it posts username and password (once: with wrong
credentials it returns the second login page, status 200); on a page with an
auto-POST form carrying C<SAMLRequest> or C<SAMLResponse> (and C<RelayState>)
it posts the form's fields to the form's action. Returns the last response;
every response is in C<< $ua->{trace} >>.

=item $ua->saml_response($start_url, %opt)

The same, but stops at the IdP's POST form and returns

    { action => ACS URL, SAMLResponse => B64, RelayState => RS (if any),
      page => the IdP's response }

or undef if the flow never got there (look at C<< $ua->{trace} >>).

=item $ua->saml_idp_initiated($idp, sp_entity_id => ID, relay_state => RS, user => ..., password => ...)

C<saml_response(idp_initiated_url(...))>: an unsolicited response (no
InResponseTo). To post it right away: C<< $ua->saml_login(idp_initiated_url(...)) >>.

=item $ua->saml_post($captured, SAMLResponse => B64, RelayState => RS, action => URL, cross_site => 1, finish => 0)

POSTs C<SAMLResponse> and C<RelayState> of a captured form, each replaceable
(undef leaves the field out), to its action, and follows the ACS's C<303> to
its finish step (C<{identity_path}saml/finish?k=KEY>, a same-site GET that
carries the state cookie) as a browser does: the result is that step's
response, the ACS's own in C<< {acs} >>. Other redirects are not followed.
C<< cross_site => 1 >> posts without cookies, as a browser whose IdP is on
another site does (the module's cookies are C<SameSite=Lax>); C<< finish =>
0 >> returns the ACS's response.

=item $ua->saml_follow($res, %opt)

The loop behind the three above, from a response already fetched (C<capture
=> 1> stops at the SAMLResponse form).

=back

=cut
