package Identity::SAML::Common;

# What the SAML test modules share: the XML namespaces, the SAML constants,
# a scratch directory, reading and writing files, running a command without
# a shell, and SAML's time format.  Nothing here knows about an IdP or a
# message.

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use POSIX qw(strftime);
use Time::Local qw(timegm);

our @EXPORT_OK = qw(
    %NS BINDING_POST BINDING_REDIRECT NAMEID_PERSISTENT RSA_SHA256
    _tmp _slurp _spew _run _run_ok _pem_body saml_time _epoch _new_id
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our %NS = (
    samlp => 'urn:oasis:names:tc:SAML:2.0:protocol',
    saml => 'urn:oasis:names:tc:SAML:2.0:assertion',
    md => 'urn:oasis:names:tc:SAML:2.0:metadata',
    ds => 'http://www.w3.org/2000/09/xmldsig#',
    xs => 'http://www.w3.org/2001/XMLSchema',
    xsi => 'http://www.w3.org/2001/XMLSchema-instance',
);

use constant {
    BINDING_POST => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
    BINDING_REDIRECT => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
    NAMEID_PERSISTENT => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
    RSA_SHA256 => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
};

my $TMP;    # scratch files for openssl and xmlsec1, removed at exit

sub _tmp { $TMP //= tempdir('saml-XXXXXX', TMPDIR => 1, CLEANUP => 1) }

sub _slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!\n";
    local $/;
    return scalar <$fh>;
}

sub _spew {
    my ($path, $content) = @_;
    open my $fh, '>:raw', $path or die "$path: $!\n";
    print $fh $content;
    close $fh or die "$path: $!\n";
    return $path;
}

# Runs a command without a shell; returns (exit code, stdout+stderr).
sub _run {
    my (@cmd) = @_;
    my $out = _tmp() . "/run.out";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        # _exit: the child must not run the parent's END blocks
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return ($? >> 8, _slurp($out));
}

sub _run_ok {
    my ($rc, $out) = _run(@_);
    die "$_[0] failed ($rc): $out\n" if $rc;
    return $out;
}

sub _pem_body {
    my ($pem) = @_;
    $pem = _slurp($pem) unless $pem =~ /-----BEGIN/;
    $pem =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/s
        or die "no certificate in PEM\n";
    (my $b64 = $1) =~ s/\s+//g;
    return $b64;
}

# saml_time(EPOCH) -> 2024-01-02T03:04:05Z
sub saml_time { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) }

sub _epoch {
    my ($s) = @_;
    $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z\z/ or return undef;
    return timegm($6, $5, $4, $3, $2 - 1, $1);
}

sub _new_id { '_' . unpack('H*', join '', map { chr int rand 256 } 1 .. 20) }

1;

__END__

=head1 NAME

Identity::SAML::Common - what the SAML test modules share

=head1 SYNOPSIS

    use Identity::SAML::Common qw(:all);

=head1 CONTENTS

=over

=item %NS

The prefixes C<samlp saml md ds xs xsi> and their namespace URIs.

=item BINDING_POST, BINDING_REDIRECT, NAMEID_PERSISTENT, RSA_SHA256

The SAML binding, NameID format and signature algorithm URIs.

=item _tmp, _slurp(FILE), _spew(FILE, CONTENT), _run(CMD...), _run_ok(CMD...), _pem_body(PEM)

A scratch directory removed at exit; reading and writing a file (raw);
running a command without a shell, returning (exit code, output), or
dying unless it exits 0; the base64 body of a PEM certificate (text or
file).

=item saml_time(EPOCH)

C<YYYY-MM-DDTHH:MM:SSZ>; C<_epoch> reads it back, C<_new_id> makes an XML
ID.

=back

=cut
