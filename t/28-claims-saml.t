#!/usr/bin/perl
# Control characters in SAML attributes and the NameID (issue 12, B.9), in
# responses signed by the IdP's key (t/lib/Identity/SAML.pm): the same
# sanitizer as OpenID Connect and OAuth (t/26-claims.t).  XML 1.0 carries
# CR (as &#13;), LF, tab, DEL and C1 controls; it cannot carry NUL, and
# &#27; (ESC) makes the document invalid, so such a response is refused.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);
use Identity::SAML qw(:all);

my $t = Identity::Test->new(name => 'claims-saml');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $n = $t->port('nginx');
my $base = "http://127.0.0.1:$n";

my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my $idp = $t->start_saml_idp(sps => [{
    sp_entity_id => "$base/_identity/saml/metadata",
    acs_url => "$base/_identity/saml/acs",
    slo_url => undef,
    sp_cert_pem => $sp_cert,
}]);

my $conf = identity_conf(
    redis => $rport,
    identity => 'corp',
    server => "identity_public_url $base;",
    providers => <<"EOF",
    identity_provider corp {
        type saml;
        idp_metadata $idp->{metadata_file};
        sp_certificate $sp_cert;
        sp_certificate_key $sp_key;
        attribute_map email=mail name=displayName username=uid groups=groups;
    }
    identity_provider corp_admins {
        type saml;
        idp_metadata $idp->{metadata_file};
        sp_certificate $sp_cert;
        sp_certificate_key $sp_key;
        attribute_map email=mail name=displayName username=uid groups=groups;
        authorized_groups admins;
    }
EOF
    locations => <<"EOF");
        location /admins/ {
            identity corp_admins;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }
EOF

# the response headers and the groups too; the upstream shows an injected one

$conf =~ s{(proxy_set_header X-Identity-Session \$identity_session_id;\n)}
          {$1            proxy_set_header X-Identity-Groups \$identity_groups;
            add_header X-Name \$identity_name always;
            add_header X-Groups \$identity_groups always;\n};
$conf =~ s{(cookie=\$http_cookie\n)}{${1}groups=\$http_x_identity_groups\ninjected=\$http_x_injected\n};
$t->nginx_conf($conf);
$t->start_nginx;

sub saw {
    my ($body) = @_;
    my %h;
    for (split /\n/, $body // '') {
        $h{$1} = $2 if /^(\w+)=(.*)$/;
    }
    return \%h;
}

sub sessions { scalar @{$t->redis('KEYS', 'identity:session:*')} }

# a fresh login, its response changed and signed again by the IdP's key,
# posted to the ACS, redirects followed; undef when XML cannot carry it

sub login_with {
    my (%changes) = @_;
    my $ua = Identity::Test::UA->new;
    my $path = delete $changes{path} // '/page';
    my $c = $ua->saml_response("$base$path", user => 'alice');
    ok($c, 'a fresh login at the IdP') or return;
    my $esc = delete $changes{esc};
    my $f = forge($c->{SAMLResponse}, idp => $idp, %changes);

    # ESC: signed as a marker, then written as the character reference
    # XML 1.0 forbids (no signer takes such a document)
    $f = encode_saml(decode_saml($f) =~ s/ESC-MARK/&#27;/gr) if $esc;

    my $r = $ua->saml_post($c, SAMLResponse => $f);
    $r = $ua->follow($r) if $r->{status} == 302 || $r->{status} == 303;
    return ($r, $ua);
}

# characters, not bytes, for XML::LibXML; ESC stands for itself below
my %ctl = (cr => "\r", lf => "\n", crlf => "\r\n", del => "\x7f", tab => "\t",
           c1 => "\x{85}", esc => 'ESC-MARK');
utf8::upgrade($_) for values %ctl;

for my $k (sort keys %ctl) {
    my $c = $ctl{$k};
    my $spaces = ' ' x ($k eq 'crlf' ? 2 : 1);

    # name: control characters become spaces

    my @esc = $k eq 'esc' ? (esc => 1) : ();
    my ($r, $ua) = login_with(@esc, attributes => { displayName => "Eve${c}X-Injected: yes" });
    if ($k eq 'esc') {
        like($r->{status}, qr/^40[03]$/, "name $k: XML cannot carry it: refused");
        ok(!grep({ /^identity_session=/ } @{$r->{cookies_set}}), "name $k: no session cookie");
    } else {
        is($r->{status}, 200, "name $k: logged in");
        my $s = saw($r->{body});
        is($s->{name}, "Eve${spaces}X-Injected: yes", "name $k: the upstream's X-Identity-Name");
        is($r->{h}{'x-name'}, "Eve${spaces}X-Injected: yes", "name $k: add_header X-Name");
        is($s->{injected}, '', "name $k: nothing injected upstream");
        ok(!exists $r->{h}{'x-injected'}, "name $k: nothing injected in the response");
    }

    # e-mail, username, NameID: refused

    for my $what (['e-mail', attributes => { mail => "eve${c}X-Injected: yes\@example.test" }],
                  ['username', attributes => { uid => "eve${c}X-Injected: yes" }],
                  ['user id', nameid => "eve${c}X-Injected: yes"]) {
        my ($field, @change) = @$what;
        my $before = sessions();
        my $mark = length $t->error_log;
        ($r, $ua) = login_with(@esc, @change);
        like($r->{status}, $k eq 'esc' ? qr/^40[03]$/ : qr/^403$/, "$field $k: refused");
        ok(!grep({ /^identity_session=/ } @{$r->{cookies_set}}), "$field $k: no session cookie");
        is(sessions(), $before, "$field $k: no session in Redis");
        next if $k eq 'esc';
        like(substr($t->error_log, $mark),
             qr/\[info\].*refused: the provider's \Q$field\E has a control character/,
             "$field $k: an info line says why");
    }

    # groups: the group that carries it is dropped, never turned into another

    ($r, $ua) = login_with(@esc, attributes => { groups => ['staff', "adm${c}ins", 'ops'] });
    if ($k eq 'esc') {
        like($r->{status}, qr/^40[03]$/, "groups $k: XML cannot carry it: refused");
        next;
    }
    is($r->{status}, 200, "groups $k: logged in");
    my $s = saw($r->{body});
    is($s->{groups}, 'staff,ops', "groups $k: the upstream's X-Identity-Groups");
    is($r->{h}{'x-groups'}, 'staff,ops', "groups $k: add_header X-Groups");
}

# lengths through SAML too

my ($r) = login_with(attributes => { displayName => 'n' x 300, groups => ['g' x 257, 'staff'] });
is($r->{status}, 200, 'long name and group: logged in');
my $s = saw($r->{body});
is($s->{name}, 'n' x 256, 'the name cut at 256 bytes');
is($s->{groups}, 'staff', 'the 257-byte group dropped');

($r) = login_with(attributes => { mail => ('m' x 250) . '@example.test' });
is($r->{status}, 403, 'an e-mail over 254 bytes: refused');

# the gate runs at the ACS, before authorized_groups and before anything is
# stored: a user id with LF is refused there, and no line names it

my $mark = length $t->error_log;
($r) = login_with(path => '/admins/x', nameid => "eve\n2026/01/01 00:00:00 [alert] forged",
                  attributes => { groups => ['staff'] });
is($r->{status}, 403, 'authorized_groups: refused');
is(scalar @{$t->redis('KEYS', 'identity:verified:*') // []}, 0,
   'nothing of the refused assertion waits in Redis for a finish step');
my $tail = substr($t->error_log, $mark);
like($tail, qr/\[info\].*refused: the provider's user id has a control character/,
     'refused by the claims gate at the ACS, naming no unfit user id');
unlike($tail, qr/authorized groups/, 'before authorized_groups');
unlike($tail, qr/^2026\/01\/01/m, 'no forged log line');

$t->done;
