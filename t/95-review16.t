#!/usr/bin/perl
# Review of issue 16's broken-provider work, as an attacker reads it.
#
# 1. The per-provider cap (http_concurrency) must not turn a provider's
#    slow logins into refused back-channel logouts: the IdP's logout
#    token is answered 200 and ends the session while the provider's
#    logins hold every slot of the cap (they hang at its token endpoint,
#    or anyone keeps them busy with codes of their own).
# 2. A discovery document's endpoints are URLs, with no control
#    character: an authorization_endpoint with CR LF in it would end the
#    Location header of the redirect to the provider and add headers of
#    the provider's choosing (a Set-Cookie for this site).  The discovery
#    is refused (503, one [error] line) and nothing of it reaches a
#    header.  The same for a SAML IdP's SSO URL from its metadata (here
#    refreshed from idp_metadata_url), where XML carries CR LF as
#    "&#13;&#10;".
#    The same for a session's userinfo refresh (OAuth 2.0 continuous
#    authorization): it is not skipped for the logins' cap.
# 3. ctx->told puts the error page's line at info once the cause is
#    logged: a discovery that fails is logged at error whatever the
#    provider answered (a 400 "invalid_grant" was logged at info, and so
#    the outage at info only).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Identity::Test;
use Identity::Conf qw(:all);
use Identity::SAML qw(make_keypair);

my $t = Identity::Test->new(name => 'review16');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $endpoint = "$base/_identity/backchannel_logout";
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    backchannel_logout_uri => $endpoint,
    backchannel_logout_session_required => JSON::PP::true);

# a provider whose discovery document names an endpoint with CR LF in it,
# served by this nginx itself
my %doc = (issuer => "$base/evil", token_endpoint => "$base/evil/token",
           jwks_uri => "$base/evil/jwks");
my %bad = (
    'crlf-authorization' => { authorization_endpoint =>
        "$base/evil/auth\r\nSet-Cookie: planted=1; Path=/" },
    'crlf-end-session' => { authorization_endpoint => "$base/evil/auth",
        end_session_endpoint => "$base/evil/end\r\nSet-Cookie: planted=1; Path=/" },
    'space-authorization' => { authorization_endpoint => "$base/evil/a b" },
);
my (@providers, @locations);
for my $c (sort keys %bad) {
    my $iss = "$base/evil-$c";
    $t->write_file("evil-$c.json", JSON::PP->new->canonical->encode(
        { %doc, issuer => $iss, jwks_uri => "$iss/jwks", %{$bad{$c}} }));
    push @providers, provider_block($c, type => 'oidc', issuer => $iss,
                                    http_timeout => '2s');
    push @locations,
        location_block("= /evil-$c/.well-known/openid-configuration",
            'identity off;', 'default_type application/json;',
            "alias $dir/evil-$c.json;"),
        location_block("/c/$c/", protected($c));
}
# a discovery document answered 400 invalid_grant: a GET no browser made
push @providers, provider_block('grant', type => 'oidc', issuer => "$base/evil-grant",
                                http_timeout => '2s');
push @locations,
    location_block('= /evil-grant/.well-known/openid-configuration',
        'identity off;', 'default_type application/json;',
        "return 400 '{\"error\":\"invalid_grant\"}';"),
    location_block('/c/grant/', protected('grant'));
# SAML: the metadata refreshed from idp_metadata_url names an SSO URL with
# CR LF in it (an XML character reference: no parser folds it)
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my ($idp_key, $idp_cert) = make_keypair("$dir/idp", cn => 'idp');
(my $idp_pem = $t->read_file($idp_cert)) =~ s/-----[^-]+-----|\s+//g;
for my $m (['idp-metadata.xml', 'http://idp.test/sso'],
           ['evil-metadata.xml', 'http://idp.test/sso&#13;&#10;Set-Cookie: planted=1; Path=/'])
{
    $t->write_file($m->[0], <<"XML");
<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="http://idp.test/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>$idp_pem</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="$m->[1]"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
XML
}
push @providers, provider_block('sm', type => 'saml',
    idp_metadata => "$dir/idp-metadata.xml",
    idp_metadata_url => "$base/evil-saml/metadata",
    sp_certificate => $sp_cert, sp_certificate_key => $sp_key,
    http_timeout => '2s');
push @locations,
    location_block('= /evil-saml/metadata', 'identity off;',
        'default_type application/samlmetadata+xml;', "alias $dir/evil-metadata.xml;"),
    location_block('/sm/', protected('sm'));
$t->write_file('jwks.json', '{"keys":[]}');
push @locations, location_block('~ ^/evil-[\w-]+/jwks$', 'identity off;',
    'default_type application/json;', "alias $dir/jwks.json;");

# OAuth 2.0 against the same IdP, its sessions' user info checked again
# every 2 s (continuous authorization)
$t->write_file('token.key', Identity::Test::random_token(48) . "\n");
push @providers, provider_block('oa', type => 'oauth',
    authorization_endpoint => "$issuer/auth", token_endpoint => "$issuer/token",
    userinfo_endpoint => "$issuer/me", scopes => 'openid email profile',
    claim_map => 'id=sub email=email name=name username=preferred_username '
                 . 'email_verified=email_verified',
    userinfo_refresh_interval => '2s', http_concurrency => 1);
push @locations, location_block('/oa/', protected('oa'));

my $conf = http_conf(
    redis => $rport,
    redis_timeout => '2s',
    http => 'identity_token_key_file %%TESTDIR%%/token.key;',
    providers => [provider_block('test', type => 'oidc', issuer => $issuer,
                                 http_concurrency => 1), @providers],
    servers => [
        server_block(port => 'nginx', directives => "identity_public_url $base;",
            locations => [location_block('/', protected('test')), @locations]),
    ],
);
$t->nginx_conf($conf);
$t->start_nginx;

# the error log's lines since $mark at [error] or worse
sub lines_since {
    my ($mark) = @_;
    return grep { /^\d{4}\/\S+ \S+ \[(error|crit|alert|emerg)\]/ }
        split /\n/, substr($t->error_log, $mark);
}

# ------------------------------------------------------------ 1. the cap

my $idp_client = Identity::Test::UA->new(headers => {
    Accept => '*/*', 'User-Agent' => 'oidc-provider', 'Accept-Language' => undef,
    'Sec-Fetch-Mode' => undef, 'Sec-Fetch-Dest' => undef,
    'Upgrade-Insecure-Requests' => undef });

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/mine");
is($r->{status}, 200, 'alice logged in');
my $key = Identity::Test::session_key($ua->cookie('identity_session', '127.0.0.1') // '');
my %s = @{$t->redis('HGETALL', $key) || []};
ok(length($s{idp_sid} // ''), 'her session keeps the IdP session id');

# another login, its code exchange held at the token endpoint: the
# provider's one slot (http_concurrency 1) is taken meanwhile
$t->idp_mode(token_delay_ms => 3000);
my $u2 = Identity::Test::UA->new(timeout => 15);
my $x = $u2->oidc_login("$base/other", stop => sub { $_[0] =~ m{/_identity/callback} });
my $cb = Identity::Test::UA::resolve_url($x->{url}, $x->{h}{location});
like($cb, qr{/_identity/callback\?code=}, 'another login at its callback');
my $pending = $u2->start_request('GET', $cb);
sleep 0.8;
ok(!$pending->ready, 'its code exchange is in flight');

my $tok = $t->idp_logout_token(sub => 'alice', sid => $s{idp_sid});
$r = $idp_client->request('POST', $endpoint,
    body => 'logout_token=' . Identity::Test::UA::uri_escape($tok),
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($r->{status}, 200, 'the logout token is answered 200 while the logins hold the cap')
    or diag($r->{body});
is($t->redis('EXISTS', $key), 0, 'and her session is gone');
ok(!$pending->ready, 'before the other login was over');

my $done = $pending->finish;
is($done->{status}, 302, 'the other login completes');
$t->idp_mode(token_delay_ms => 0);

# the cap still holds for logins: see t/94

# continuous authorization: a session's check of the user info is not
# skipped because the provider's logins hold its cap (the check is
# claimed for the whole interval: a user the provider no longer admits
# would keep the session that long, each time the logins are busy)
my $oa = Identity::Test::UA->new;
$r = $oa->oidc_login("$base/oa/x");
is($r->{status}, 200, 'OAuth 2.0 (oa): logged in');
my $okey = Identity::Test::session_key($oa->cookie('identity_session', '127.0.0.1') // '');
sleep 2.3;

$t->idp_mode(token_delay_ms => 3000);
my $u3 = Identity::Test::UA->new(timeout => 15);
$x = $u3->oidc_login("$base/oa/other", stop => sub { $_[0] =~ m{/_identity/callback} });
$cb = Identity::Test::UA::resolve_url($x->{url}, $x->{h}{location});
like($cb, qr{/_identity/callback\?code=}, 'another login of oa at its callback');
$pending = $u3->start_request('GET', $cb);
sleep 0.8;
ok(!$pending->ready, 'its code exchange is in flight');

my $mark = length $t->error_log;
my $before = $t->idp_stats->{userinfo};
$r = $oa->get("$base/oa/y");
is($r->{status}, 200, 'the session is admitted');
is($t->idp_stats->{userinfo} - $before, 1, 'after its user info was checked again');
is(scalar(grep { /provider "oa" has \d+ .* in flight/ } split /\n/, substr($t->error_log, $mark)),
   0, 'no cap refused it');
ok(!$pending->ready, 'while the other login was in flight');
is($pending->finish->{status}, 302, 'which then completes');
$t->idp_mode(token_delay_ms => 0);

# ------------------------------------------------------------ 2. endpoints

for my $c (sort keys %bad) {
    next if $c eq 'crlf-end-session';
    my $mark = length $t->error_log;
    my $b = Identity::Test::UA->new;
    $r = $b->get("$base/c/$c/page");
    is($r->{status}, 503, "$c: the login is refused") or diag($r->{body});
    ok(!grep({ /planted/ } @{$r->{cookies_set} || []}), "$c: no header of the provider's")
        or diag(explain($r->{h}));
    unlike($r->{h}{location} // '', qr{/evil}, "$c: no redirect to it");
    my @lines = lines_since($mark);
    is(scalar @lines, 1, "$c: one [error] line") or diag(join "\n", @lines);
    like($lines[0] // '', qr/authorization_endpoint "[^"\n]*" is not an http\(s\) URL/,
         "$c: it says which endpoint");
}

# RP-initiated logout goes to the end_session_endpoint: that is refused too
{
    my $c = 'crlf-end-session';
    my $mark = length $t->error_log;
    $r = Identity::Test::UA->new->get("$base/c/$c/page");
    is($r->{status}, 503, "$c: the login is refused") or diag($r->{body});
    my @lines = lines_since($mark);
    like($lines[0] // '', qr/end_session_endpoint "[^"\n]*" is not an http\(s\) URL/,
         "$c: it says which endpoint");
}

# SAML: the SSO URL of the IdP's metadata goes into the Location header
for my $i (1, 2) {
    my $mark = length $t->error_log;
    $r = Identity::Test::UA->new->get("$base/sm/x$i");
    ok(!grep({ /planted/ } @{$r->{cookies_set} || []}),
       "SAML login $i: no header of the metadata's") or diag(explain($r->{h}));
    is($r->{status}, 503, "SAML login $i: refused") or diag($r->{body});
    is($r->{h}{location}, undef, "SAML login $i: no redirect to the broken SSO URL");
    my @lines = lines_since($mark);
    is(scalar @lines, 1, "SAML login $i: one [error] line") or diag(join "\n", @lines);
    ok(scalar(grep { /provider "sm": the IdP metadata's SSO URL "http:\/\/idp\.test\/sso\?\?Set-Cookie/ } @lines),
       "SAML login $i: it says why, CR LF made harmless") or diag(join "\n", @lines);
}

# a provider down is an [error], however its discovery says so
{
    my $mark = length $t->error_log;
    $r = Identity::Test::UA->new->get("$base/c/grant/page");
    is($r->{status}, 503, 'discovery answered invalid_grant: 503') or diag($r->{body});
    my @lines = lines_since($mark);
    is(scalar @lines, 1, 'one [error] line') or diag(substr($t->error_log, $mark));
    like($lines[0] // '', qr/provider "grant": .*answered invalid_grant; logins answer 503/,
         'it names the provider and why');
}

$t->done;
