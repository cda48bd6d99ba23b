package Identity::SAML;

# SAML 2.0 for the tests: a SimpleSAMLphp IdP on loopback, browser flows
# through it (methods added to Identity::Test::UA), and tools that take a
# real SAMLResponse apart and forge bad ones.  POD at the end.

use strict;
use warnings;

use B ();
use Compress::Raw::Zlib qw(MAX_WBITS Z_OK Z_STREAM_END);
use Exporter 'import';
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);
use XML::LibXML;

use Identity::Test;

our @EXPORT_OK = qw(
    start_saml_idp idp_initiated_url idp_error make_keypair
    decode_saml encode_saml saml_doc response_info
    strip_signatures tamper resign forge wrap entity_expansion oversize
    xmlsec_verify
    authn_request logout_request redirect_url decode_redirect verify_redirect
    saml_time
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our $SSP_WWW = $ENV{SIMPLESAMLPHP_WWW} // '/usr/share/simplesamlphp/www';

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

sub _pem_body {
    my ($pem) = @_;
    $pem = _slurp($pem) unless $pem =~ /-----BEGIN/;
    $pem =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/s
        or die "no certificate in PEM\n";
    (my $b64 = $1) =~ s/\s+//g;
    return $b64;
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
    return "<?php\n// Written by t/lib/Identity/SAML.pm for one test run.\n\$$var = "
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

# saml_time(EPOCH) -> 2024-01-02T03:04:05Z
sub saml_time { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) }

sub _epoch {
    my ($s) = @_;
    $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z\z/ or return undef;
    return timegm($6, $5, $4, $3, $2 - 1, $1);
}

sub _new_id { '_' . unpack('H*', join '', map { chr int rand 256 } 1 .. 20) }

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

# ------------------------------------------------------------ redirect binding

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

# ------------------------------------------------------------ browser flows

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
    return $self->saml_response(Identity::SAML::idp_initiated_url($idp, %q), %opt);
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

Identity::SAML - SimpleSAMLphp IdP, SAML browser flows and SAMLResponse forging for the tests

=head1 SYNOPSIS

    use Identity::Test;
    use Identity::SAML qw(:all);

    my $t = Identity::Test->new(name => 'saml');
    my ($sp_key, $sp_cert) = make_keypair($t->testdir . '/sp');
    my $n = $t->port('nginx');
    my $idp = $t->start_saml_idp(
        sp_entity_id => "http://127.0.0.1:$n/saml/metadata",
        acs_url => "http://127.0.0.1:$n/saml/acs",
        slo_url => "http://127.0.0.1:$n/saml/slo",
        sp_cert_pem => $sp_cert);
    # ... nginx.conf names $idp->{metadata_file} ...

    my $ua = Identity::Test::UA->new;
    my $res = $ua->saml_login("http://127.0.0.1:$n/", user => 'alice');

    my $got = $ua->saml_response("http://127.0.0.1:$n/", user => 'alice');
    my $bad = forge($got->{SAMLResponse}, idp => $idp, audience => 'someone-else');
    is($ua->saml_post($got, SAMLResponse => $bad)->{status}, 403);

    $t->done;

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

=head1 BROWSER FLOWS (Identity::Test::UA)

Loading Identity::SAML adds these methods to C<Identity::Test::UA>.

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

=item saml_time(EPOCH)

C<YYYY-MM-DDTHH:MM:SSZ>.

=back

=cut
