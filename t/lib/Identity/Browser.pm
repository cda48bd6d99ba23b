package Identity::Browser;

# Real-browser tests: headless Chromium (Debian's package) started here, by
# pid, with a remote debugging port; a playwright-core script under
# t/browser/ connects to it, drives it and prints one JSON object of
# observations.  Also the https side: a self-signed certificate for
# 127.0.0.1 made with the openssl CLI.  POD at the end.

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;
use POSIX ();

use Identity::Test;
use Identity::SAML ();

our @EXPORT_OK = qw(chromium_ok https_cert start_chromium stop_chromium
    run_browser saml_sp start_cross_site_idp saml_provider);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our $CHROMIUM = $ENV{CHROMIUM} // '/usr/bin/chromium';

# The host name the SAML IdP is given, mapped to 127.0.0.1 inside Chromium
# only: another site than 127.0.0.1, so that its POST to the ACS is
# cross-site over plain http too (ports do not make sites).
our $IDP_HOST = 'idp.test';

sub chromium_ok { -x $CHROMIUM }

sub _run {
    my ($out, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return $? >> 8;
}

# https_cert($t): (key file, cert file), self-signed for IP 127.0.0.1
sub https_cert {
    my ($t) = @_;
    my $dir = $t->testdir;
    my ($key, $crt) = ("$dir/https.key", "$dir/https.crt");
    my $rc = _run("$dir/openssl.out", 'openssl', 'req', '-x509',
        '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', $key, '-out', $crt);
    die "openssl req failed:\n" . $t->read_file('openssl.out') if $rc;
    return ($key, $crt);
}

# start_chromium($t): starts Chromium headless with a fresh profile and a
# debugging port; returns the URL a script connects to (connectOverCDP).
# It runs in its own process group under the harness, which stops it by
# pid (stop_chromium, done, or the cleanup at exit).
sub start_chromium {
    my ($t) = @_;
    my $dir = $t->testdir;
    my $port = $t->port('chromium');
    my $profile = "$dir/chromium-profile";
    mkdir $profile;
    $t->_spawn('chromium', [$CHROMIUM,
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
        '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        '--ignore-certificate-errors',
        "--host-resolver-rules=MAP $IDP_HOST 127.0.0.1",
        # plain http stays plain http (IP addresses are exempt anyway)
        '--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable',
        '--remote-debugging-address=127.0.0.1',
        "--remote-debugging-port=$port",
        "--user-data-dir=$profile",
        'about:blank'], "$dir/chromium.log", "$dir/chromium.log");
    my $ok = Identity::Test::_wait_port($port, 30,
        sub { $t->_running('chromium') });
    if (!$ok) {
        $t->_stop('chromium', 'TERM', 3);
        die "Chromium did not listen on its debugging port:\n"
            . $t->read_file('chromium.log');
    }
    return "http://127.0.0.1:$port";
}

# saml_sp(BASE, CERT): the IdP's entry for the SP at origin BASE, whose
# AuthnRequests are signed with CERT
sub saml_sp {
    my ($base, $cert) = @_;
    return { sp_entity_id => "$base/_identity/saml/metadata",
             acs_url => "$base/_identity/saml/acs",
             slo_url => undef, sp_cert_pem => $cert };
}

# start_cross_site_idp($t, SP, ...): SimpleSAMLphp as $IDP_HOST; returns
# the IdP (see Identity::SAML) with "base", its URL as Chromium sees it
sub start_cross_site_idp {
    my ($t, @sps) = @_;
    my $base = "http://$IDP_HOST:" . $t->port('saml_idp') . '/';
    my $idp = $t->start_saml_idp(sps => \@sps,
        entity_id => "${base}saml2/idp/metadata.php",
        config => { baseurlpath => $base,
                    'trusted.url.domains' => ['127.0.0.1', $IDP_HOST] });
    $idp->{base} = $base;
    return $idp;
}

# saml_provider(NAME, IDP, SP, KEY, CERT, EXTRA): an identity_provider block
sub saml_provider {
    my ($name, $idp, $sp, $key, $cert, $extra) = @_;
    $extra //= '';
    return <<"EOF";
    identity_provider $name {
        type saml;
        idp_metadata $idp->{metadata_file};
        sp_certificate $cert;
        sp_certificate_key $key;
        sp_entity_id $sp->{sp_entity_id};
        attribute_map email=mail name=displayName username=uid groups=groups;
        $extra
    }
EOF
}

sub stop_chromium { $_[0]->_stop('chromium', 'TERM', 10) }

# run_browser($t, SCRIPT, \%args, name => N, timeout => S): runs
# "node t/browser/SCRIPT ARGS.json" and returns its JSON (or
# { errors => [why] }); a script still running after S seconds is stopped.
sub run_browser {
    my ($t, $script, $args, %opt) = @_;
    my $name = $opt{name} // 'browser';
    my $timeout = $opt{timeout} // 600;
    my $dir = $t->testdir;
    my $json = $t->write_file("$name-args.json", encode_json($args));
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/$name.out" or POSIX::_exit(127);
        open STDERR, '>', "$dir/$name.err" or POSIX::_exit(127);
        exec 'node', "$Identity::Test::ROOT/t/browser/$script", $json
            or POSIX::_exit(127);
    }
    my $why = '';
    if (!Identity::Test::_wait_exit($pid, $timeout)) {
        $why = "still running after ${timeout}s, stopped; ";
        kill 'TERM', $pid;
        Identity::Test::_wait_exit($pid, 5) or kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    my $rc = $? >> 8;
    my $out = $t->read_file("$name.out");
    my $o = eval { decode_json($out) };
    return $o if !$why && ref $o eq 'HASH';
    return { errors => ["${why}no JSON from $script (exit $rc): $out"
        . $t->read_file("$name.err")] };
}

1;

__END__

=head1 NAME

Identity::Browser - headless Chromium for the browser-flow tests

=head1 SYNOPSIS

    use Identity::Browser qw(:all);

    Identity::Test::need('chromium');    # fails, or skips if optional
    my ($key, $crt) = https_cert($t);      # for "listen ... ssl;"
    my $cdp = start_chromium($t);
    my $o = run_browser($t, 'flows.mjs', { cdp => $cdp, ... });
    stop_chromium($t);

=head1 FUNCTIONS

=over

=item chromium_ok

True when C</usr/bin/chromium> (or C<$ENV{CHROMIUM}>) is there. Tests call
C<Identity::Test::need('chromium')> instead, which fails the test when
Chromium is absent, or skips it when C<IDENTITY_OPTIONAL> says so (see
L<Identity::Test>).

=item https_cert($t)

C<(key, cert)> in testdir: RSA 2048, self-signed, CN and subjectAltName
C<IP:127.0.0.1>, made with C<openssl req>.

=item start_chromium($t), stop_chromium($t)

Starts Chromium with the project's usual flags (C<--headless --no-sandbox
--disable-gpu --disable-quic --no-first-run --disable-background-networking
--disable-component-update --disable-sync>), C<--ignore-certificate-errors>
for the self-signed certificate, a fresh C<--user-data-dir> in testdir, and
C<--remote-debugging-port=port('chromium')>. C<$Identity::Browser::IDP_HOST>
(C<idp.test>) resolves to 127.0.0.1 inside this Chromium only. Returns
C<http://127.0.0.1:PORT> for playwright-core's C<connectOverCDP>. The
process is registered with the harness like the servers: C<stop_chromium>,
C<done> and the cleanup at exit stop it by pid (and its process group).

=item saml_sp(BASE, CERT), start_cross_site_idp($t, SP, ...)

C<saml_sp> is the IdP's entry (for C<start_saml_idp>'s C<sps>) of the SP at
origin BASE (entity id C<BASE/_identity/saml/metadata>, ACS
C<BASE/_identity/saml/acs>), its AuthnRequests signed with CERT.
C<start_cross_site_idp> starts SimpleSAMLphp with those SPs, its URLs (and
entity id) under C<http://idp.test:PORT/>, so that Chromium sees it as
another site than 127.0.0.1; the IdP hashref gets C<base>, that URL.

=item saml_provider(NAME, IDP, SP, KEY, CERT, EXTRA)

An C<identity_provider NAME { type saml; ... }> block for that IdP and SP,
with the SP's entity id and SimpleSAMLphp's attribute names mapped.

=item run_browser($t, SCRIPT, \%args, name => 'browser', timeout => 600)

Writes the arguments to F<NAME-args.json>, runs C<node
t/browser/SCRIPT FILE> (stdout to F<NAME.out>, stderr to F<NAME.err>) and
returns the decoded JSON object it printed; when there is none, or the
script was still running after C<timeout> seconds (it is then stopped by
pid), C<< { errors => [...] } >> with the output.

=back

=cut
