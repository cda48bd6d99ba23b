#!/usr/bin/perl
# Broken identity providers (issue 16, item 4): slow, dead (refused, black
# hole), HTML instead of JSON, a 10 MB body, a redirect loop, a truncated
# body, discovery naming another issuer, a JWKS without the ID token's kid,
# endpoints of another scheme than http(s), SAML metadata that is garbage or
# 10 MB.  Each gets a bounded wait, the login error page (503 with
# Retry-After, or 403 for an ID token no key verifies; a way to try again),
# one [error] line, no session, and the worker's memory flat; a SAML
# metadata refresh that fails keeps the metadata in use.  One provider that
# hangs does not hold up the logins of another site (the per-provider cap,
# http_concurrency).
#
# The broken provider is t/idp/hostile.mjs: the first path segment names
# the case, so each case is a provider of its own here.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(sleep time);
use Identity::Test;
use Identity::Conf qw(:all);
use Identity::SAML qw(make_keypair);

my $t = Identity::Test->new(name => 'broken-idps');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $other = 'http://127.0.0.1:' . $t->port('other');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback",
                                             "$other/_identity/callback"]);

# ------------------------------------------------------------ the broken IdP

my $hp = $t->port('hostile');
$t->_spawn('hostile', ['node', "$Identity::Test::ROOT/t/idp/hostile.mjs", '--port', $hp],
           "$dir/hostile.out", "$dir/hostile.err");
my $end = time + 30;
sleep 0.05 until $t->read_file('hostile.out') =~ /^READY/m || time > $end;
like($t->read_file('hostile.out'), qr/^READY/m, 'the broken IdP listens');
my $hbase = "http://127.0.0.1:$hp";

sub hostile_stats {
    my $r = Identity::Test::UA->new->get("$hbase/__stats");
    return decode_json($r->{body});
}

# a port nothing listens on, and one that listens and never accepts
my $refused = $t->port('refused');
my $hole_port = $t->port('hole');
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $hole_port,
    Proto => 'tcp', Listen => 128, ReuseAddr => 1) or die "listen: $!";

# ------------------------------------------------------------ the config

my @oidc = qw(
    discovery-slow discovery-hole discovery-html discovery-big discovery-loop
    discovery-trunc discovery-issuer
    discovery-scheme-token discovery-scheme-userinfo discovery-scheme-jwks
    discovery-scheme-authorization
    jwks-html jwks-big jwks-loop jwks-trunc jwks-nokid
    token-slow token-hole token-html token-big token-loop token-trunc
    userinfo-slow userinfo-html userinfo-big userinfo-loop userinfo-trunc
    good
);

my %issuer_of = map { $_ => "$hbase/$_" } @oidc;
$issuer_of{refused} = "http://127.0.0.1:$refused";
$issuer_of{blackhole} = "http://127.0.0.1:$hole_port";

my (@providers, @locations);
for my $c (sort keys %issuer_of) {
    push @providers, provider_block($c, type => 'oidc', issuer => $issuer_of{$c},
        http_timeout => '2s');
    push @locations, location_block("/c/$c/", protected($c));
}

# OAuth 2.0 (generic): its token endpoint loops, its user info is 10 MB
for my $c (qw(token-loop userinfo-big)) {
    push @providers, provider_block("oauth-$c", type => 'oauth',
        authorization_endpoint => "$hbase/$c/auth",
        token_endpoint => "$hbase/$c/token",
        userinfo_endpoint => "$hbase/$c/userinfo",
        scopes => 'openid', http_timeout => '2s');
    push @locations, location_block("/c/oauth-$c/", protected("oauth-$c"));
}

# SAML: the configured metadata is good; the URL serves garbage, or 10 MB
my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my ($idp_key, $idp_cert) = make_keypair("$dir/idp", cn => 'idp');
(my $idp_pem = $t->read_file($idp_cert)) =~ s/-----[^-]+-----|\s+//g;
$t->write_file('idp-metadata.xml', <<"XML");
<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="http://idp.test/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>$idp_pem</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="http://idp.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
XML
for my $c (qw(metadata-garbage metadata-big)) {
    push @providers, provider_block($c, type => 'saml',
        idp_metadata => "$dir/idp-metadata.xml",
        idp_metadata_url => "$hbase/$c/metadata",
        sp_certificate => $sp_cert, sp_certificate_key => $sp_key,
        http_timeout => '2s');
    push @locations, location_block("/c/$c/", protected($c));
}

# the cap: four threads, a provider whose token endpoint hangs may hold two
push @providers, provider_block('stuck', type => 'oidc', issuer => "$hbase/token-hole",
    http_timeout => '6s', http_concurrency => 2);
push @locations, location_block('/c/stuck/', protected('stuck'));

my $conf = http_conf(
    redis => $rport,
    redis_timeout => '2s',
    providers => [provider_block('test', type => 'oidc', issuer => $issuer), @providers],
    servers => [
        server_block(port => 'nginx', directives => "identity_public_url $base;",
            locations => [location_block('/', protected('test')), @locations]),
        # another site on the same nginx, with the working provider
        server_block(port => 'other', locations => [location_block('/', protected('test'))]),
    ],
);
$conf =~ s/^(daemon off;)$/$1\nthread_pool default threads=4;/m;
$t->nginx_conf($conf);
$t->start_nginx;

# ------------------------------------------------------------ helpers

sub sessions { scalar @{$t->redis('KEYS', 'identity:session:*') || []} }

# the error log's lines since $mark at [error] or worse
sub lines_since {
    my ($mark) = @_;
    return grep { /^\d{4}\/\S+ \S+ \[(error|crit|alert|emerg)\]/ }
        split /\n/, substr($t->error_log, $mark);
}

# A login at /c/$c/: followed through the broken IdP to its end.
sub attempt {
    my ($c) = @_;
    my $ua = Identity::Test::UA->new(timeout => 15);
    my $t0 = time;
    my $r = eval { $ua->oidc_login("$base/c/$c/page?x=1", max => 5) };
    return ($r // { status => 0, body => $@ }, time - $t0);
}

sub page_ok {
    my ($name, $r, $status) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, $status, "$name: $status") or diag($r->{body});
    like($r->{body} // '', qr{<h1>Sign-in failed</h1>}, "$name: the login error page");
    like($r->{body} // '', qr{<a id="retry" href="/c/[\w-]+/page\?x=1">Try again</a>},
         "$name: a link to try again");
    like($r->{h}{'retry-after'} // '', qr/^\d+$/, "$name: Retry-After")
        if $status == 503;
}

# ------------------------------------------------------------ each case

my %expect = (
    # the discovery (and its JWKS) fails: 503 at once, remembered 5 s
    (map { $_ => [503, qr/provider "\Q$_\E": /] } qw(
        discovery-slow discovery-hole discovery-html discovery-big discovery-loop
        discovery-trunc discovery-issuer
        discovery-scheme-token discovery-scheme-userinfo discovery-scheme-jwks
        discovery-scheme-authorization
        jwks-html jwks-big jwks-loop jwks-trunc refused blackhole)),
    # the code exchange or userinfo fails at the callback
    (map { $_ => [503, qr/login with provider "\Q$_\E" failed: /] } qw(
        token-slow token-hole token-html token-big token-loop token-trunc
        userinfo-slow userinfo-html userinfo-big userinfo-loop userinfo-trunc)),
    # OAuth 2.0: the same, its line names the provider
    (map { $_ => [503, qr/provider "\Q$_\E": /] } qw(oauth-token-loop oauth-userinfo-big)),
    # an ID token no key verifies is refused, as a forged one would be
    'jwks-nokid' => [403, qr/login with provider "jwks-nokid" failed: id_token signed with unknown key/],
);

my %why = (
    'discovery-slow' => qr/timed out|Timeout/i,
    'discovery-hole' => qr/timed out|Timeout/i,
    'discovery-html' => qr/did not answer a JSON object/,
    'discovery-big' => qr/larger than maximum allowed size/,
    'discovery-loop' => qr/redirect/i,
    'discovery-trunc' => qr/transfer closed|partial|unreachable/i,
    'discovery-issuer' => qr/names issuer "http:\/\/127\.0\.0\.1:1\/someone-else"/,
    'discovery-scheme-token' => qr/token_endpoint "file:\/\/\/etc\/hostname" is not an http\(s\) URL/,
    'discovery-scheme-userinfo' => qr/userinfo_endpoint "file:\/\/\/etc\/hostname" is not an http\(s\) URL/,
    'discovery-scheme-jwks' => qr/jwks_uri "file:\/\/\/etc\/hostname" is not an http\(s\) URL/,
    'discovery-scheme-authorization' => qr/authorization_endpoint "file:\/\/\/etc\/hostname" is not an http\(s\) URL/,
    'jwks-big' => qr/larger than maximum allowed size/,
    'token-big' => qr/larger than maximum allowed size/,
    'userinfo-big' => qr/larger than maximum allowed size/,
    'refused' => qr/unreachable/,
    'oauth-token-loop' => qr/Maximum \(5\) redirects/,
    'oauth-userinfo-big' => qr/larger than maximum allowed size/,
    'blackhole' => qr/timed out|Timeout/i,
);

my $before = sessions();

for my $c (sort keys %expect) {
    my ($status, $line) = @{$expect{$c}};
    my $mark = length $t->error_log;
    my ($r, $took) = attempt($c);
    page_ok($c, $r, $status);
    ok($took < 12, "$c: the wait is bounded") or diag("took $took s");
    my @lines = lines_since($mark);
    is(scalar(grep { /\[error\]/ } @lines), 1, "$c: one [error] line")
        or diag(join "\n", @lines);
    is(scalar(grep { !/\[error\]/ } @lines), 0, "$c: nothing worse");
    my @why = grep { /$line/ } @lines;
    ok(@why, "$c: it says which provider failed") or diag(join "\n", @lines);
    like($why[0] // '', $why{$c}, "$c: and why") if $why{$c};
}

is(sessions(), $before, 'no session made by any broken provider');

my $stats = hostile_stats();
is($stats->{"token-html/token"}, 1, 'the token endpoint was asked (token-html)');
is($stats->{"userinfo-html/userinfo"}, 1, 'userinfo was asked (userinfo-html)');
is($stats->{"jwks-nokid/jwks"}, 2, 'a JWKS without the kid: fetched again once');
is($stats->{"discovery-loop/.well-known/openid-configuration"} // 0, 6,
   'a redirect loop: followed 5 times, no more');
is($stats->{"discovery-scheme-jwks/jwks"} // 0, 0, 'a file: jwks_uri: nothing fetched');
is(scalar(grep { m{^discovery-scheme-token/(token|auth)} } keys %$stats), 0,
   'a file: token_endpoint: the login never started');

# an API client at the callback gets the same as JSON
my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/c/token-html/api", stop => sub { $_[0] =~ m{/_identity/callback} });
$r = $ua->get(Identity::Test::UA::resolve_url($r->{url}, $r->{h}{location}),
              headers => { Accept => 'application/json', 'Sec-Fetch-Mode' => undef });
is($r->{status}, 503, 'API client: 503');
like($r->{h}{'content-type'} // '', qr{^application/json}, 'API client: JSON');
like($r->{body}, qr/"error":"temporarily_unavailable"/, 'API client: the error');
my $mark;

# ------------------------------------------------------------ memory

# liboauth2 stops reading at 1 MiB: five 10 MB token answers leave the
# worker about as big as it was

sub worker_rss {
    my ($master) = $t->read_file('nginx.pid') =~ /(\d+)/;
    for my $status (glob '/proc/[0-9]*/status') {
        my $text = $t->read_file($status);
        next unless $text =~ /^PPid:\s+$master$/m && $text =~ /^Name:\s+nginx/m;
        return $1 if $text =~ /^VmRSS:\s+(\d+) kB/m;
    }
    return 0;
}

my $rss0 = worker_rss();
ok($rss0 > 0, 'the worker\'s RSS is known');
my @big = map { (attempt('token-big'))[0]{status} } 1 .. 5;
is_deeply(\@big, [(503) x 5], 'five 10 MB token answers: five 503');
my $grown = worker_rss() - $rss0;
SKIP: {
    # under AddressSanitizer (make test-asan) what is freed is not given
    # back (its quarantine); LeakSanitizer checks that it was freed
    skip 'RSS under AddressSanitizer', 1 if $ENV{IDENTITY_ASAN_PRELOAD};
    ok($grown < 16 * 1024, "the worker kept none of the 50 MB (RSS +$grown kB)");
}

# ------------------------------------------------------------ SAML metadata

# A refresh from idp_metadata_url that fails keeps the configured metadata:
# the login goes on to the IdP; one [error] line, no new attempt for 10 s.

for my $c (qw(metadata-garbage metadata-big)) {
    my $mark = length $t->error_log;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->get("$base/c/$c/page");
    is($r->{status}, 302, "$c: the login still starts");
    like($r->{h}{location} // '', qr{^http://idp\.test/sso\?SAMLRequest=}, "$c: to the IdP");
    $r = Identity::Test::UA->new->get("$base/c/$c/again");
    is($r->{status}, 302, "$c: and the next one");
    my @lines = lines_since($mark);
    is(scalar @lines, 1, "$c: one [error] line") or diag(join "\n", @lines);
    like($lines[0] // '', qr/provider "\Q$c\E": IdP metadata not refreshed, the previous is kept/,
         "$c: it says the metadata was kept");
    like($lines[0] // '', $c eq 'metadata-big' ? qr/larger than maximum allowed size/
                                               : qr/is not metadata of/, "$c: and why");
    is(hostile_stats()->{"$c/metadata"}, 1, "$c: fetched once");
}

# ------------------------------------------------------------ the cap

# Four threads.  The token endpoint of "stuck" never answers: at most two
# of its logins hold a thread (http_concurrency 2), the others get 503 at
# once; meanwhile another site with a working provider logs in.

my $ou = Identity::Test::UA->new;
$r = $ou->oidc_login("$other/first");
is($r->{status}, 200, 'the other site: logged in before');

my @cb;
for my $i (1 .. 6) {
    my $u = Identity::Test::UA->new;
    my $x = $u->oidc_login("$base/c/stuck/p$i", stop => sub { $_[0] =~ m{/_identity/callback} });
    push @cb, [$u, Identity::Test::UA::resolve_url($x->{url}, $x->{h}{location})];
}
like($cb[-1][1], qr{/_identity/callback\?code=}, 'six logins of "stuck" at their callback');

my $held = hostile_stats()->{'token-hole/token'} // 0;
$mark = length $t->error_log;
my @pending = map { $_->[0]->start_request('GET', $_->[1]) } @cb;
$end = time + 5;
sleep 0.05 while (hostile_stats()->{'token-hole/token'} // 0) < $held + 2 && time < $end;
sleep 0.3;
is((hostile_stats()->{'token-hole/token'} // 0) - $held, 2,
   'two token calls of "stuck" hang at the IdP, no more');

$r = $ou->get("$other/during");
is($r->{status}, 200, 'meanwhile the other site serves its session');
my $nu = Identity::Test::UA->new;
$r = $nu->oidc_login("$other/new");
is($r->{status}, 200, 'and a new login there completes');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'as alice');
is(scalar(grep { !$_->ready } @pending), 2, 'while two logins of "stuck" still hang');
unlike(substr($t->error_log, $mark), qr/login with provider "stuck" failed/,
       'all before any call of "stuck" timed out');

my @res = map { $_->finish } @pending;
is(scalar(grep { $_->{status} == 503 } @res), 6, 'all six logins of "stuck": 503');
is(scalar(grep { ($_->{body} // '') =~ /<a id="retry" href="\/c\/stuck\/p\d">Try again/ } @res), 6,
   'each with the error page and a link to try again');
is(scalar(grep { ($_->{h}{'retry-after'} // '') =~ /^\d+$/ } @res), 6, 'and Retry-After');
my @lines = lines_since($mark);
is(scalar(grep { /\[error\].*provider "stuck" has 2 calls in flight in this worker/ } @lines), 1,
   'the cap logged once at error');
is(scalar(grep { /\[error\].*login with provider "stuck" failed: .*Timeout/ } @lines), 2,
   'each timed out call once');
is(scalar @lines, 3, 'and nothing else') or diag(join "\n", @lines);
like(substr($t->error_log, $mark), qr/\[info\].*provider "stuck" has 2 calls in flight/,
     'the other refusals at info');

$r = Identity::Test::UA->new->get("$base/c/stuck/after");
is($r->{status}, 302, 'the calls over, "stuck" starts logins again');

is(sessions(), $before + 2, 'the only sessions: the other site\'s two');

# a cap of 0 would refuse every login
(my $zero = $conf) =~ s/http_concurrency 2;/http_concurrency 0;/;
$t->nginx_conf($zero);
my ($rc, $out) = $t->nginx_test_conf;
isnt($rc, 0, 'http_concurrency 0: nginx -t fails');
like($out, qr/invalid value "0" in "http_concurrency" of identity provider "stuck"/,
     'and names the value');
$t->nginx_conf($conf);

$t->done;
