#!/usr/bin/perl
# Login flows in a real browser (issue 12, A.3): headless Chromium from
# Debian's package, driven by playwright-core (t/browser/flows.mjs), against
# sites served over https with a self-signed certificate, the stock
# oidc-provider test IdP and SimpleSAMLphp.  curl-like clients ignore
# SameSite; Chromium does not, and a cross-site POST from the IdP carries no
# SameSite=Lax cookie.  The SAML IdP answers as "idp.test" (resolved to
# 127.0.0.1 inside Chromium only), another site than 127.0.0.1 whatever the
# scheme, so that its POST to the ACS is cross-site over plain http too.
#
#   1. OpenID Connect over https: protected URL, the IdP's login form, back
#      at that URL; the upstream saw the user; the session cookie is
#      __Host-, HttpOnly, Secure, SameSite=Lax; Redis holds the session.
#   2. Logout: cookie and Redis key gone; the protected URL again goes to
#      the IdP.
#   3. SAML, SP-initiated, over https and over plain http (the slow user,
#      more than two minutes at the IdP, is t/73-browser-saml-slow.t).
#   4. SAML, IdP-initiated (allow_idp_initiated on), over https.
#   5. A login whose browser binding really fails (the state cookie deleted
#      while the user is at the IdP): a page that says so, with a link, not
#      a bare 400; and no session.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Identity::Test;
use Identity::Browser qw(:all);
use Identity::Conf qw(preamble protected echo_upstream upstream_saw);
use Identity::SAML qw(make_keypair);

Identity::Test::need('chromium');

my $t = Identity::Test->new(name => 'browser-flows');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my ($n, $h, $i) = map { $t->port($_) } qw(nginx nginx_http nginx_idp);
my $base = "https://127.0.0.1:$n";          # OIDC and SAML, SP-initiated
my $base_http = "http://127.0.0.1:$h";      # SAML over plain http
my $base_idp = "https://127.0.0.1:$i";      # SAML, IdP-initiated

my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my %sp = (https => saml_sp($base, $sp_cert), http => saml_sp($base_http, $sp_cert),
          idp => saml_sp($base_idp, $sp_cert));
my $idp = start_cross_site_idp($t, @sp{qw(https http idp)});
my $idp_base = $idp->{base};
like(Identity::SAML::_slurp($idp->{metadata_file}),
     qr{Location="\Q${idp_base}\Esaml2/idp/SSOService\.php"},
     'SimpleSAMLphp\'s SSO service is at ' . $Identity::Browser::IDP_HOST);

my ($key, $crt) = https_cert($t);

my $providers = saml_provider('saml_https', $idp, $sp{https}, $sp_key, $sp_cert)
    . saml_provider('saml_http', $idp, $sp{http}, $sp_key, $sp_cert)
    . saml_provider('saml_idp', $idp, $sp{idp}, $sp_key, $sp_cert,
                    'allow_idp_initiated on;');

my $preamble = preamble(1);
my $upstream = echo_upstream();
my ($p_oidc, $p_saml, $p_http, $p_idp) =
    map { protected($_) } qw(op saml_https saml_http saml_idp);
my $tls = "ssl_certificate $crt;\n        ssl_certificate_key $key;";

my $conf = <<"EOF";
$preamble
    identity_redis 127.0.0.1:$rport timeout=2s;

    identity_provider op {
        type oidc;
        issuer $issuer;
        client_id test-client;
        client_secret test-secret;
    }

$providers

    server {
        listen 127.0.0.1:%%PORT_nginx%% ssl;
        $tls
        identity_public_url $base;

        location / {
$p_oidc
        }
        location /saml/ {
$p_saml
        }
        location /public/ {
            identity off;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_nginx_http%%;
        identity_public_url $base_http;

        location / {
$p_http
        }
    }

    server {
        listen 127.0.0.1:%%PORT_nginx_idp%% ssl;
        $tls
        identity_public_url $base_idp;

        location / {
$p_idp
        }
    }

$upstream
}
EOF
$t->nginx_conf($conf);
$t->start_nginx;

# ------------------------------------------------------------ the browser

mkdir "$dir/shots";
my $cdp = start_chromium($t);
my $idp_initiated = "${idp_base}saml2/idp/SSOService.php?spentityid="
    . Identity::Test::UA::uri_escape($sp{idp}{sp_entity_id})
    . '&RelayState=' . Identity::Test::UA::uri_escape('/idp/landing?x=1');

my $hc = '__Host-identity_session';
my $o = run_browser($t, 'flows.mjs', { cdp => $cdp, shots => "$dir/shots", redis => $rport, flows => [
    { kind => 'oidc', name => 'oidc', base => $base, issuer => $issuer, cookie => $hc,
      start => '/app/hello?from=browser', logout => '/_identity/logout?redirect_path=/public/bye',
      logout_lands => '/public/bye', after => '/app/again' },
    { kind => 'saml', name => 'saml_https', base => $base, cookie => $hc,
      start => '/saml/page?x=1&y=2' },
    { kind => 'saml', name => 'saml_http', base => $base_http, cookie => 'identity_session',
      start => '/app/page?over=http' },
    { kind => 'saml_idp', name => 'saml_idp', base => $base_idp, cookie => $hc, idp_url => $idp_initiated,
      lands => '/idp/landing?x=1' },
    { kind => 'saml', name => 'saml_broken', base => $base, cookie => $hc, start => '/saml/broken',
      drop_cookie => '__Host-identity_session_state' },
] });
stop_chromium($t);
is_deeply($o->{errors}, [], 'the browser ran') or diag(explain $o->{errors});

sub flow_ok {
    my ($name) = @_;
    my $r = $o->{$name} // {};
    is_deeply($r->{errors} // ['no result'], [], "$name: no error in the flow")
        or diag(explain { errors => $r->{errors}, chain => $r->{chain},
                          failed_at => $r->{failed_at} });
    return $r;
}

sub cookie {
    my ($cookies, $name) = @_;
    my ($c) = grep { $_->{name} eq $name } @{$cookies // []};
    return $c;
}

sub session_key { Identity::Test::session_key($_[0] // '') }

# The Set-Cookie header, as the server sent it, that set cookie C.
sub set_cookie_header {
    my ($chain, $c) = @_;
    return undef unless $c;
    my ($h) = grep { /^\Q$c->{name}=$c->{value}\E(;|$)/ }
        map { @{$_->{set_cookie} // []} } @{$chain // []};
    return $h;
}

# The attributes of a session cookie over https: as Chromium stored it,
# and SameSite as sent (the jar reports a cookie without SameSite as Lax).
sub host_cookie_ok {
    my ($name, $c, $chain) = @_;
    ok($c, "$name: the session cookie is __Host-identity_session") or return;
    ok($c->{httpOnly}, "$name: HttpOnly");
    ok($c->{secure}, "$name: Secure");
    is($c->{path}, '/', "$name: Path=/");
    is($c->{domain}, '127.0.0.1', "$name: no Domain (host-only)");
    like(set_cookie_header($chain, $c) // '', qr/;\s*SameSite=Lax(;|$)/i, "$name: SameSite=Lax")
        or diag(explain $chain);
}

# ------------------------------------------------------------ 1. OIDC

my $r = flow_ok('oidc');
like($r->{login_page} // '', qr{^\Q$issuer\E/interaction/}, 'oidc: at the IdP\'s login form');
is($r->{landed}{url}, "$base/app/hello?from=browser", 'oidc: back at the URL asked for');
is($r->{landed}{status}, 200, 'oidc: 200');
my $saw = upstream_saw($r->{landed}{text});
is($saw->{email}, 'alice@example.test', 'oidc: the upstream saw alice');
is($saw->{provider}, 'op', 'oidc: ... from the provider "op"');
like($saw->{session} // '', qr/^as_/, 'oidc: ... and her session id');
unlike($saw->{cookie} // '', qr/identity_session/, 'oidc: but not the session cookie');
my $sc = cookie($r->{cookies}, '__Host-identity_session');
host_cookie_ok('oidc', $sc, $r->{chain});
ok(!cookie($r->{cookies}, 'identity_session'), 'oidc: no cookie without the prefix');
is($r->{redis}{exists}, 1, 'oidc: Redis holds the session');
ok(defined $r->{redis}{id} && $r->{redis}{id} eq ($saw->{session} // ''),
   'oidc: ... the one the upstream saw');

# ------------------------------------------------------------ 2. logout

is($r->{logged_out}{url}, "$base/public/bye", 'logout: at the redirect_path');
is($r->{logged_out}{status}, 200, 'logout: 200');
ok(!cookie($r->{cookies_after_logout}, '__Host-identity_session'), 'logout: the cookie is gone');
is($r->{redis_after_logout}{exists}, 0, 'logout: the session is gone from Redis');
is($t->redis('EXISTS', session_key($sc && $sc->{value})), 0, '... and stays gone');
my @again = @{$r->{again_chain} // []};
is($again[0]{url}, "$base/app/again", 'after logout: the protected URL ...');
ok(($again[0]{status} // 0) == 302, '... answers a redirect') or diag(explain \@again);
ok((grep { $_->{url} =~ m{^\Q$issuer\E/auth\?} } @again), '... to the IdP')
    or diag(explain \@again);
my $sc2 = cookie($r->{cookies_again}, '__Host-identity_session');
ok(!$sc2 || $sc2->{value} ne $sc->{value}, 'the old session cookie is not back');

# ------------------------------------------------------------ 3. SAML, SP-initiated

for my $case (['saml_https', $base, '/saml/page?x=1&y=2', 'saml_https'],
              ['saml_http', $base_http, '/app/page?over=http', 'saml_http'])
{
    my ($name, $b, $start, $provider) = @$case;
    $r = flow_ok($name);
    like($r->{login_page} // '', qr{^\Q$idp_base\E}, "$name: at SimpleSAMLphp's login form");
    is($r->{landed}{url}, "$b$start", "$name: back at the URL asked for");
    is($r->{landed}{status}, 200, "$name: 200");
    $saw = upstream_saw($r->{landed}{text} // $r->{failed_at}{text});
    is($saw->{email}, 'alice@example.test', "$name: the upstream saw alice");
    is($saw->{provider}, $provider, "$name: ... from the provider \"$provider\"");
    my $cname = $name eq 'saml_https' ? '__Host-identity_session' : 'identity_session';
    my $c = cookie($r->{cookies}, $cname);
    if ($name eq 'saml_https') {
        host_cookie_ok($name, $c, $r->{chain});
    } else {
        ok($c && $c->{httpOnly}, "$name: a session cookie, HttpOnly");
        like(set_cookie_header($r->{chain}, $c) // '', qr/;\s*SameSite=Lax(;|$)/i,
             "$name: SameSite=Lax");
    }
    is($r->{redis}{exists}, 1, "$name: Redis holds the session");
    ok(defined $r->{redis}{id} && $r->{redis}{id} eq ($saw->{session} // ''),
       "$name: ... the one the upstream saw");
    diag(explain $r->{chain}) unless ($r->{landed}{status} // 0) == 200;
}

# ------------------------------------------------------------ 4. SAML, IdP-initiated

$r = flow_ok('saml_idp');
like($r->{login_page} // '', qr{^\Q$idp_base\E}, 'idp-initiated: SimpleSAMLphp\'s login form');
is($r->{landed}{url}, "$base_idp/idp/landing?x=1", 'idp-initiated: at the RelayState\'s path');
is($r->{landed}{status}, 200, 'idp-initiated: 200');
$saw = upstream_saw($r->{landed}{text});
is($saw->{email}, 'alice@example.test', 'idp-initiated: the upstream saw alice');
is($saw->{provider}, 'saml_idp', 'idp-initiated: ... from "saml_idp"');
$sc = cookie($r->{cookies}, '__Host-identity_session');
host_cookie_ok('idp-initiated', $sc, $r->{chain});
is($r->{redis}{exists}, 1, 'idp-initiated: Redis holds the session');
ok(defined $r->{redis}{id} && $r->{redis}{id} eq ($saw->{session} // ''),
   'idp-initiated: ... the one the upstream saw');

# ------------------------------------------------------------ 5. the binding fails

$r = $o->{saml_broken} // {};
ok($r->{dropped}, 'broken: the state cookie was deleted at the IdP');
my $page = $r->{landed} // $r->{failed_at} // {};
like($page->{url} // '', qr{^\Q$base\E/}, 'broken: the user is back on the site');
ok(($page->{status} // 0) >= 400 && $page->{status} < 500, 'broken: a 4xx')
    or diag("status: " . ($page->{status} // 'none'));
like($page->{text} // '', qr/\w+(\s+\w+){4}/, 'broken: a page with words on it')
    or diag($page->{text});
ok(@{$page->{links} // []} >= 1, 'broken: and a link to go on with')
    or diag(explain $page);
ok(!cookie($r->{cookies}, '__Host-identity_session'), 'broken: no session');

my @shots = map { "$dir/shots/$_.png" }
    qw(oidc-1-landed oidc-2-logged-out oidc-3-again saml_https-landed
       saml_http-landed saml_idp-landed saml_broken-landed);
ok(!grep({ !-s $_ } @shots), 'a screenshot of each final page') or diag(`ls $dir/shots`);

$t->done;
