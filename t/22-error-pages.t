#!/usr/bin/perl
# A failed or refused login gets a page that says what happened (issue 12,
# B.17): words a person understands, a link to try again (where the login
# was to return, else "/"), and the request id of the error log's line.
# API clients get the same as JSON; a 503 says when to retry.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'error-pages');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer));
$t->start_nginx;

my $api_headers = { Accept => 'application/json', 'Sec-Fetch-Mode' => undef };

sub log_mark { length $t->error_log }

# the callback URL of a login started at $path, and its browser
sub to_callback {
    my ($path) = @_;
    my $ua = Identity::Test::UA->new;
    my $r = $ua->oidc_login("$base$path", stop => sub { $_[0] =~ m{/_identity/callback} });
    return ($ua, Identity::Test::UA::resolve_url($r->{url}, $r->{h}{location}));
}

# The answer is the HTML page: status, words, retry link, request id; the
# id is on the error log's line that says why.
sub page_ok {
    my ($r, $mark, %e) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $name = $e{name};
    is($r->{status}, $e{status}, "$name: $e{status}");
    like($r->{h}{'content-type'} // '', qr{^text/html}, "$name: an HTML page");
    like($r->{body} // '', qr{<h1>Sign-in failed</h1>}, "$name: titled");
    like($r->{body} // '', $e{words}, "$name: says what happened");
    like($r->{body} // '', qr{<a id="retry" href="\Q$e{retry}\E">Try again</a>},
         "$name: a link to try again at $e{retry}");
    my ($id) = ($r->{body} // '') =~ m{<code id="request-id">([0-9a-f]{32})</code>};
    ok($id, "$name: shows a request id");
    my $log = substr($t->error_log, $mark);
    $id //= 'none';
    my $why = $e{log};
    like($log, qr/\[(?:info|error)\][^\n]*(?:$why)[^\n]*request_id: "$id"/,
         "$name: the error log's line says why, with the same request id");
    my @worse = grep { /\[(alert|emerg|crit)\]/ } split /\n/, $log;
    ok(!@worse, "$name: nothing worse logged") or diag(join "\n", @worse);
}

sub json_ok {
    my ($r, $mark, %e) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $name = "$e{name}, API client";
    is($r->{status}, $e{status}, "$name: $e{status}");
    like($r->{h}{'content-type'} // '', qr{^application/json}, "$name: JSON");
    my $j = eval { decode_json($r->{body}) } // {};
    is($j->{error}, $e{error}, "$name: error $e{error}");
    like($j->{request_id} // '', qr/^[0-9a-f]{32}$/, "$name: a request id");
    my $id = $j->{request_id} // 'none';
    my $why = $e{log};
    like(substr($t->error_log, $mark), qr/(?:$why)[^\n]*request_id: "$id"/,
         "$name: the same id in the error log");
}

# ------------------------------------------------ state mismatch

my ($ua, $cb) = to_callback('/mismatch');
ok($cb, 'a login reaches the callback');
(my $forged = $cb) =~ s/([?&]state=)[^&]*/$1 . Identity::Test::random_token()/e;

my $mark = log_mark();
my $r = $ua->get($forged);
page_ok($r, $mark, name => 'state mismatch', status => 400,
        words => qr/expired, was already used, or was opened in another browser/,
        retry => '/', log => 'state does not match');

$mark = log_mark();
$r = $ua->get($forged, headers => $api_headers);
json_ok($r, $mark, name => 'state mismatch', status => 400,
        error => 'login_expired', log => 'state does not match');

# ------------------------------------------------ expired state

($ua, $cb) = to_callback('/expired');
my ($state) = $cb =~ /[?&]state=([^&]+)/;
is($t->redis('DEL', 'identity:login:' . sha256_hex($state)), 1,
   'the pending login expires in Redis');

$mark = log_mark();
$r = $ua->get($cb);
page_ok($r, $mark, name => 'expired state', status => 400,
        words => qr/expired, was already used, or was opened in another browser/,
        retry => '/', log => 'unknown, expired or used state');

$mark = log_mark();
$r = $ua->get($cb, headers => $api_headers);
json_ok($r, $mark, name => 'expired state', status => 400,
        error => 'login_expired', log => 'unknown, expired or used state');

# ------------------------------------------------ the IdP says no: the
# pending login of this browser's state is taken all the same (its
# provider is counted, t/96), so the retry link goes back where it started

($ua, $cb) = to_callback('/denied');
($state) = $cb =~ /[?&]state=([^&]+)/;
my $denied = "$base/_identity/callback?error=access_denied"
    . "&error_description=%3Cb%3Eno%3C%2Fb%3E&state=$state";

$mark = log_mark();
$r = $ua->get($denied);
page_ok($r, $mark, name => 'error=access_denied', status => 403,
        words => qr/cancelled or refused at the identity provider/,
        retry => '/denied', log => 'provider refused the login');
unlike($r->{body}, qr/<b>no/, 'the IdP\'s words are not on the page');

$mark = log_mark();
$r = $ua->get($denied, headers => $api_headers);
json_ok($r, $mark, name => 'error=access_denied', status => 403,
        error => 'login_cancelled', log => 'provider refused the login');

# ------------------------------------------------ refused after the IdP:
# the pending login is known, the retry link goes back where it started,
# HTML-escaped

$t->idp_mode(id_token => 'wrong_key');
$mark = log_mark();
$r = Identity::Test::UA->new->oidc_login('' . "$base/esc/page?a=1&b=<i>\"x\"");
page_ok($r, $mark, name => 'id_token refused', status => 403,
        words => qr/could not be accepted/,
        retry => '/esc/page?a=1&amp;b=&lt;i&gt;&quot;x&quot;',
        log => 'id_token signature is invalid');
$t->idp_mode(id_token => 'normal');

# ------------------------------------------------ a bad login link

$mark = log_mark();
$r = Identity::Test::UA->new->get("$base/_identity/login?redirect_path=//evil.example");
page_ok($r, $mark, name => 'bad redirect_path', status => 400,
        words => qr/This sign-in link is not valid/,
        retry => '/', log => 'redirect_path is not a same-site path');

# ------------------------------------------------ the SAML ACS is a form
# POST: a browser's gets the page too

$mark = log_mark();
$r = Identity::Test::UA->new->post_form("$base/_identity/saml/acs",
    { SAMLResponse => 'x', RelayState => Identity::Test::random_token() });
ok($r->{status} >= 400 && $r->{status} < 500, 'a bad POST to the ACS: 4xx');
like($r->{h}{'content-type'} // '', qr{^text/html}, '... an HTML page for the browser');
like($r->{body} // '', qr{<code id="request-id">[0-9a-f]{32}</code>}, '... with a request id');

# ------------------------------------------------ SAML's second step, the
# same-site GET after the ACS, with a key that is not (or no longer) there

$mark = log_mark();
$r = Identity::Test::UA->new->get("$base/_identity/saml/finish?k=" . Identity::Test::random_token());
page_ok($r, $mark, name => 'SAML finish, unknown key', status => 400,
        words => qr/expired, was already used, or was opened in another browser/,
        retry => '/', log => 'unknown, expired or used SAML finish key');

# ------------------------------------------------ the IdP down at the
# callback: the code cannot be exchanged

($ua, $cb) = to_callback('/idp-down/page');
$t->stop_idp;
$mark = log_mark();
$r = $ua->get($cb);
is($r->{status}, 503, 'IdP down at the callback: 503');
like($r->{body} // '', qr{<a id="retry" href="/idp-down/page">Try again</a>},
     'IdP down: the link goes back to where the login started');
my ($idp_id) = ($r->{body} // '') =~ m{<code id="request-id">([0-9a-f]{32})</code>};
ok($idp_id, 'IdP down: a request id');
like(substr($t->error_log, $mark), qr/\[error\][^\n]*request_id: "\Q${\($idp_id \/\/ 'none')}\E"/,
     'IdP down: an error line with the same request id');
like($r->{h}{'retry-after'} // '', qr/^\d+$/, 'IdP down: one Retry-After');

# ------------------------------------------------ Redis down: 503 with
# Retry-After, the link back to the page asked for

$t->stop_redis;

$mark = log_mark();
$r = Identity::Test::UA->new->get("$base/down/page?q=1");
page_ok($r, $mark, name => 'Redis down', status => 503,
        words => qr/not possible right now/,
        retry => '/down/page?q=1', log => 'sign-in failed with 503');
like($r->{h}{'retry-after'} // '', qr/^\d+$/, 'Redis down: Retry-After');

$mark = log_mark();
$r = Identity::Test::UA->new->get("$base/_identity/login?redirect_path=/down",
                                  headers => $api_headers);
json_ok($r, $mark, name => 'Redis down at login', status => 503,
        error => 'temporarily_unavailable', log => 'sign-in failed with 503');
like($r->{h}{'retry-after'} // '', qr/^\d+$/, 'Redis down at login: Retry-After');

$t->start_redis;

$t->done;
