package Identity::SAML::IdP;

# The SimpleSAMLphp IdP of the tests: its keys, its PHP configuration
# written from Perl data, starting and stopping it as a harness process,
# and the URLs and error pages tests look at.  POD at the end.

use strict;
use warnings;

use B ();
use Exporter 'import';
use File::Path qw(make_path);
use JSON::PP ();
use Time::HiRes qw(sleep time);

use Identity::Test;
use Identity::SAML::Common qw(:all);

our @EXPORT_OK = qw(start_saml_idp stop_saml_idp idp_initiated_url idp_error make_keypair);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our $SSP_WWW = $ENV{SIMPLESAMLPHP_WWW} // '/usr/share/simplesamlphp/www';

# ------------------------------------------------------------ keys

# make_keypair($prefix, cn => CN): $prefix.key and $prefix.crt, a self-signed
# RSA 2048 certificate; returns (key file, cert file).
sub make_keypair {
    my ($prefix, %opt) = @_;
    my ($key, $cert) = ("$prefix.key", "$prefix.crt");
    _run_ok('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
        '-days', $opt{days} // 3650, '-subj', '/CN=' . ($opt{cn} // 'identity-test'),
        '-keyout', $key, '-out', $cert);
    return ($key, $cert);
}

# ------------------------------------------------------------ PHP config

# Perl data to a PHP literal: hashes and arrays nest, JSON::PP booleans and
# \1 / \0 are true / false, numbers stay numbers, anything else is a string.
sub _php {
    my ($v, $ind) = @_;
    $ind //= '';
    my $in = "$ind    ";
    return 'null' unless defined $v;
    return $$v ? 'true' : 'false' if ref $v eq 'SCALAR';
    return $v ? 'true' : 'false' if JSON::PP::is_bool($v);
    if (ref $v eq 'ARRAY') {
        return "[\n" . join('', map { $in . _php($_, $in) . ",\n" } @$v) . "$ind]";
    }
    if (ref $v eq 'HASH') {
        return "[\n" . join('', map { $in . _php_str($_) . ' => ' . _php($v->{$_}, $in) . ",\n" }
            sort keys %$v) . "$ind]";
    }
    my $flags = B::svref_2object(\$v)->FLAGS;
    return $v if $flags & (B::SVp_IOK() | B::SVp_NOK()) && !($flags & B::SVp_POK());
    return _php_str($v);
}

sub _php_str {
    (my $s = shift) =~ s/([\\'])/\\$1/g;
    return "'$s'";
}

sub _php_file {
    my ($var, $value) = @_;
    return "<?php\n// Written by t/lib/Identity/SAML/IdP.pm for one test run.\n\$$var = "
        . _php($value) . ";\n";
}

my %DEFAULT_USERS = (
    alice => { password => 'alice-password', attributes => {
        uid => 'alice', mail => 'alice@example.test', displayName => 'Alice Example',
        eduPersonAffiliation => ['staff'], groups => ['staff'] } },
    bob => { password => 'bob-password', attributes => {
        uid => 'bob', mail => 'bob@example.test', displayName => 'Bob Example',
        eduPersonAffiliation => ['guests'], groups => ['guests'] } },
);

sub _sp_metadata {
    my ($sp, $default_format) = @_;
    my %m = (
        AssertionConsumerService => [{ Binding => BINDING_POST, Location => $sp->{acs_url}, index => 0 }],
        NameIDFormat => $sp->{nameid_format} // $default_format,
    );
    $m{SingleLogoutService} = [{ Binding => BINDING_REDIRECT, Location => $sp->{slo_url} }]
        if defined $sp->{slo_url};
    if (defined $sp->{sp_cert_pem}) {
        $m{certData} = _pem_body($sp->{sp_cert_pem});
        $m{'validate.authnrequest'} = $sp->{validate_authnrequest} // \1;
        $m{'validate.logout'} = $sp->{validate_logout} // \1;
    }
    return { %m, %{$sp->{extra} || {}} };
}

sub _write_config {
    my ($t, $idp, %opt) = @_;
    my $dir = $idp->{dir};
    my $url = $idp->{url};
    make_path(map { "$dir/$_" } qw(config metadata log tmp sessions data));

    my %config = (
        baseurlpath => $url,
        certdir => "$dir/",
        loggingdir => "$dir/log/",
        datadir => "$dir/data/",
        tempdir => "$dir/tmp",
        metadatadir => "$dir/metadata/",
        secretsalt => Identity::Test::random_token(24),
        technicalcontact_name => 'Identity tests',
        technicalcontact_email => 'na@example.test',
        timezone => 'UTC',
        'enable.saml20-idp' => \1,
        'module.enable' => { exampleauth => \1, core => \1, saml => \1 },
        'session.cookie.secure' => \0,
        'session.cookie.samesite' => 'Lax',
        'session.phpsession.cookiename' => 'SimpleSAML',
        'session.phpsession.savepath' => "$dir/sessions",
        'session.phpsession.httponly' => \1,
        'language.cookie.secure' => \0,
        'language.cookie.samesite' => 'Lax',
        'store.type' => 'phpsession',
        'trusted.url.domains' => ['127.0.0.1'],
        'logging.handler' => 'file',
        'logging.logfile' => 'simplesamlphp.log',
        'logging.level' => 7,    # SimpleSAML\Logger::DEBUG
        debug => { saml => \1, backtraces => \1, validatexml => \0 },
        showerrors => \1,
        errorreporting => \0,
        'admin.checkforupdates' => \0,
        'metadata.sources' => [{ type => 'flatfile' }],
        %{$opt{config} || {}},
    );
    $t->write_file("$idp->{name}/config/config.php", _php_file('config', \%config));

    my %users = (%DEFAULT_USERS, %{$opt{users} || {}});
    my %source = (0 => 'exampleauth:UserPass');
    $source{"$_:$users{$_}{password}"} = $users{$_}{attributes}
        for grep { defined $users{$_} } sort keys %users;
    $t->write_file("$idp->{name}/config/authsources.php",
        _php_file('config', { 'example-userpass' => \%source }));

    my $format = $opt{nameid_format} // NAMEID_PERSISTENT;
    my %hosted = (
        host => '__DEFAULT__',
        entityid => $idp->{entity_id},
        privatekey => $idp->{key_file},
        certificate => $idp->{cert_file},
        auth => 'example-userpass',
        NameIDFormat => $format,
        'sign.logout' => \1,
        'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    );
    $hosted{'simplesaml.nameidattribute'} = $opt{nameid_attribute} // 'uid'
        if ($opt{nameid_attribute} // 'uid') ne '';
    $hosted{'saml20.sign.response'} = $opt{sign_response} ? \1 : \0 if defined $opt{sign_response};
    $hosted{'saml20.sign.assertion'} = $opt{sign_assertion} ? \1 : \0 if defined $opt{sign_assertion};
    $hosted{'assertion.lifetime'} = 0 + $opt{assertion_lifetime} if defined $opt{assertion_lifetime};
    %hosted = (%hosted, %{$opt{extra_idp} || {}});
    $t->write_file("$idp->{name}/metadata/saml20-idp-hosted.php",
        _php_file('metadata', { $idp->{entity_id} => \%hosted }));

    my %remote = map { $_->{sp_entity_id} => _sp_metadata($_, $format) } @{$idp->{sps}};
    $t->write_file("$idp->{name}/metadata/saml20-sp-remote.php", _php_file('metadata', \%remote));
}

# ------------------------------------------------------------ the IdP

sub start_saml_idp {
    my ($t, %opt) = @_;
    my $name = $opt{name} // 'saml_idp';
    my $port = $t->port($name);
    my $dir = $t->testdir . "/$name";
    my $url = "http://127.0.0.1:$port/";
    make_path($dir);

    my ($key, $cert) = ($opt{key_file}, $opt{cert_file});
    if (!defined $key) {
        ($key, $cert) = ("$dir/idp.key", "$dir/idp.crt");
        make_keypair("$dir/idp", cn => "identity-test-idp-$name") unless -s $key && -s $cert;
    }

    my $nport = $t->port('nginx');
    my @sps = $opt{sps} ? @{$opt{sps}} : ({
        sp_entity_id => $opt{sp_entity_id} // "http://127.0.0.1:$nport/saml/metadata",
        acs_url => $opt{acs_url} // "http://127.0.0.1:$nport/saml/acs",
        slo_url => exists $opt{slo_url} ? $opt{slo_url} : "http://127.0.0.1:$nport/saml/slo",
        map { exists $opt{$_} ? ($_ => $opt{$_}) : () }
            qw(sp_cert_pem nameid_format validate_authnrequest validate_logout),
    });
    $_->{extra} //= $opt{extra_sp} for @sps;

    my $idp = {
        name => $name,
        dir => $dir,
        port => $port,
        url => $url,
        entity_id => $opt{entity_id} // "${url}saml2/idp/metadata.php",
        metadata_url => "${url}saml2/idp/metadata.php",
        sso_url => "${url}saml2/idp/SSOService.php",
        slo_url => "${url}saml2/idp/SingleLogoutService.php",
        init_slo_url => "${url}saml2/idp/initSLO.php",
        key_file => $key,
        cert_file => $cert,
        metadata_file => "$dir/idp-metadata.xml",
        log_file => "$dir/log/simplesamlphp.log",
        sps => \@sps,
    };
    _write_config($t, $idp, %opt);

    local $ENV{SIMPLESAMLPHP_CONFIG_DIR} = "$dir/config";
    local $ENV{PHP_CLI_SERVER_WORKERS} = $opt{workers} // 1;
    delete $ENV{PHP_CLI_SERVER_WORKERS} if $ENV{PHP_CLI_SERVER_WORKERS} <= 1;
    $t->_spawn($name, ['php', '-d', 'display_errors=stderr', '-d', 'log_errors=0',
        '-S', "127.0.0.1:$port", '-t', $SSP_WWW], "$dir/php.log", "$dir/php.log");

    my $ua = Identity::Test::UA->new(timeout => 5);
    my $end = time + 30;
    my ($res, $why);
    while (!$why) {
        $res = eval { $ua->get($idp->{metadata_url}) };
        if ($res && $res->{status} == 200 && $res->{body} =~ /EntityDescriptor/) {
            _spew($idp->{metadata_file}, $res->{body});
            return $t->{saml_idp}{$name} = $idp;
        }
        $why = !$t->_running($name) ? 'exited'
            : time > $end ? 'did not serve its metadata in 30 s' : undef;
        sleep 0.1 unless $why;
    }
    $t->_stop($name, 'TERM', 3);
    die "SimpleSAMLphp $why:\n" . ($res ? "$res->{status} $res->{body}\n" : '')
        . $t->read_file("$dir/php.log") . $t->read_file($idp->{log_file});
}

sub stop_saml_idp {
    my ($t, $name) = @_;
    $t->_stop($name // 'saml_idp', 'TERM', 5);
}

# The harness object gets the two as methods too.
{
    no warnings 'once';
    *Identity::Test::start_saml_idp = \&start_saml_idp;
    *Identity::Test::stop_saml_idp = \&stop_saml_idp;
}

# idp_initiated_url($idp, sp_entity_id => ID, relay_state => RS, %more_params)
sub idp_initiated_url {
    my ($idp, %opt) = @_;
    my %q = (spentityid => delete $opt{sp_entity_id} // $idp->{sps}[0]{sp_entity_id});
    $q{RelayState} = delete $opt{relay_state} if defined $opt{relay_state};
    %q = (%q, %opt);
    return "$idp->{sso_url}?" . Identity::Test::UA::form_encode(\%q);
}

# idp_error(RES): for one of SimpleSAMLphp's error pages (which answer 200),
# the innermost error ("Caused by: ..." or the error code); undef otherwise.
sub idp_error {
    my ($res) = @_;
    my $body = $res->{body} // '';
    return undef unless $body =~ /<div class="trackidtext">|SimpleSAML\\Error\\/;
    my @causes = $body =~ /Caused by: ([^\n<]+)/g;
    return $causes[-1] if @causes;
    return $1 if $body =~ /SimpleSAML\\Error\\\w+: (\w+)/;
    return 'error';
}

1;

__END__

=head1 NAME

Identity::SAML::IdP - the SimpleSAMLphp IdP of the tests

=head1 SYNOPSIS

    use Identity::SAML::IdP qw(:all);    # or Identity::SAML qw(:all)

    my ($sp_key, $sp_cert) = make_keypair($t->testdir . '/sp');
    my $n = $t->port('nginx');
    my $idp = $t->start_saml_idp(
        sp_entity_id => "http://127.0.0.1:$n/saml/metadata",
        acs_url => "http://127.0.0.1:$n/saml/acs",
        slo_url => "http://127.0.0.1:$n/saml/slo",
        sp_cert_pem => $sp_cert);
    # ... nginx.conf names $idp->{metadata_file} ...

=head1 THE IDP

SimpleSAMLphp 1.19 (Debian's package, F</usr/share/simplesamlphp/www>, or
C<$ENV{SIMPLESAMLPHP_WWW}>) runs under C<php -S 127.0.0.1:PORT> with
C<SIMPLESAMLPHP_CONFIG_DIR> pointing at a configuration written for the test
below F<TESTDIR/NAME/>: F<config/config.php>, F<config/authsources.php>,
F<metadata/saml20-idp-hosted.php>, F<metadata/saml20-sp-remote.php>; its log
(debug level, full SAML messages) is F<log/simplesamlphp.log>, PHP's own
output F<php.log>. The session cookie is C<SimpleSAML> (plus
C<SimpleSAMLAuthToken> once logged in), C<SameSite=Lax>, not C<Secure>.

=over

=item start_saml_idp($t, %opt), $t->start_saml_idp(%opt)

Starts the IdP on C<< $t->port(NAME) >> (so C<%%PORT_saml_idp%%> works in
nginx.conf, before or after), waits until the metadata URL answers, saves
that XML, and returns (and keeps in C<< $t->{saml_idp}{NAME} >>):

    {
        name          => 'saml_idp',
        port          => PORT,
        url           => 'http://127.0.0.1:PORT/',
        entity_id     => 'http://127.0.0.1:PORT/saml2/idp/metadata.php',
        metadata_url  => 'http://127.0.0.1:PORT/saml2/idp/metadata.php',
        metadata_file => 'TESTDIR/saml_idp/idp-metadata.xml',
        sso_url       => 'http://127.0.0.1:PORT/saml2/idp/SSOService.php',
        slo_url       => 'http://127.0.0.1:PORT/saml2/idp/SingleLogoutService.php',
        init_slo_url  => 'http://127.0.0.1:PORT/saml2/idp/initSLO.php',
        key_file      => 'TESTDIR/saml_idp/idp.key',
        cert_file     => 'TESTDIR/saml_idp/idp.crt',
        log_file      => 'TESTDIR/saml_idp/log/simplesamlphp.log',
        dir           => 'TESTDIR/saml_idp',
        sps           => [ { sp_entity_id, acs_url, ... } ],
    }

The IdP runs as a harness process: C<< $t->done >> and the harness's
cleanup stop it by pid; C<stop_saml_idp($t, NAME)> (or
C<< $t->stop_saml_idp >>) stops it earlier. Starting it again with the same
name keeps its port and its key. Options:

    name                 'saml_idp'; several IdPs need several names
    sp_entity_id         'http://127.0.0.1:PORT_nginx/saml/metadata'
    acs_url              'http://127.0.0.1:PORT_nginx/saml/acs' (HTTP-POST)
    slo_url              'http://127.0.0.1:PORT_nginx/saml/slo' (HTTP-Redirect);
                         undef: no SingleLogoutService
    sp_cert_pem          the SP's signing certificate (PEM text or a file);
                         with it the IdP requires signed AuthnRequests and
                         logout messages ('validate.authnrequest' and
                         'validate.logout'); without it, it checks neither
    validate_authnrequest, validate_logout
                         override those two (0 or 1, as \0 / \1)
    nameid_format        NameID format offered and used
                         (urn:oasis:names:tc:SAML:2.0:nameid-format:persistent)
    nameid_attribute     attribute whose value is the NameID ('uid', so
                         alice's persistent NameID is "alice"); '' makes
                         SimpleSAMLphp hash the user id per SP
    sign_response        saml20.sign.response (SimpleSAMLphp's default: 1)
    sign_assertion       saml20.sign.assertion (SimpleSAMLphp's default: 1)
    assertion_lifetime   seconds (SimpleSAMLphp's default: 300)
    entity_id            the IdP's entity ID
    users                { name => { password => P, attributes => {...} } },
                         added to (or replacing, or with undef removing)
                         alice and bob
    sps                  [ { sp_entity_id, acs_url, slo_url, sp_cert_pem,
                         nameid_format, extra }, ... ] instead of the one SP
    extra_idp, extra_sp  more keys for saml20-idp-hosted / saml20-sp-remote
    config               more keys for config.php
    key_file, cert_file  the IdP's signing key and certificate (default: made
                         with openssl, RSA 2048, self-signed, kept)
    workers              PHP_CLI_SERVER_WORKERS (default 1: one request at a
                         time)

In the PHP files, C<\1> and C<\0> (or JSON::PP booleans) are true and false.

Users: C<alice> / C<alice-password> (uid alice, mail alice@example.test,
displayName "Alice Example", eduPersonAffiliation and groups [staff]);
C<bob> / C<bob-password> (uid bob, mail bob@example.test, displayName "Bob
Example", eduPersonAffiliation and groups [guests]). All attributes are
released, NameFormat C<basic>, values typed C<xs:string>.

=item idp_initiated_url($idp, sp_entity_id => ID, relay_state => RS, %params)

C<SSOService.php?spentityid=ID&RelayState=RS>: IdP-initiated SSO (the first
SP when no ID). Other parameters SimpleSAMLphp reads there: C<NameIDFormat>,
C<ConsumerURL>, C<binding>.

=item idp_error($res)

SimpleSAMLphp 1.19 answers its error pages with status 200 (the legacy
templates drop the status code). For such a page this returns the innermost
exception message (e.g. "SimpleSAML\Error\Exception: Validation of received
messages enabled, but no signature found on message."), or the error code
(C<NOSTATE>, ...); undef for any other page.

=item make_keypair($prefix, cn => CN, days => 3650)

Writes F<$prefix.key> and F<$prefix.crt> (RSA 2048, self-signed, SHA-256)
and returns C<($key_file, $cert_file)>.

=back

=cut
