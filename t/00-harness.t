#!/usr/bin/perl
# Self-test of t/lib/Identity/Test.pm and t/idp/oidc.mjs (no identity module needed).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use MIME::Base64 qw(encode_base64);
use Test::More;
use Identity::Test;

my $t = Identity::Test->new(name => 'harness');

# ------------------------------------------------------------ redis

$t->start_redis;
is($t->redis('SET', 'k', "v\r\nal"), 'OK', 'redis SET');
is($t->redis('GET', 'k'), "v\r\nal", 'redis GET round trip');
is($t->redis('GET', 'missing'), undef, 'redis nil');
is($t->redis('RPUSH', 'l', 'a', 'b'), 2, 'redis integer');
is_deeply($t->redis('LRANGE', 'l', 0, -1), ['a', 'b'], 'redis array');
is($t->redis('NOSUCHCMD'), undef, 'redis error reply');
like($t->redis_error, qr/unknown command/i, 'redis_error set');
$t->stop_redis;
ok(!eval { $t->redis('PING'); 1 }, 'redis down');
$t->start_redis;
is($t->redis('PING'), 'PONG', 'redis back on the same port');

# ------------------------------------------------------------ IdP

my $nport = $t->port('nginx');
my $redirect_uri = "http://127.0.0.1:$nport/cb";
my $issuer = $t->start_idp(redirect_uris => [$redirect_uri]);
is($issuer, 'http://127.0.0.1:' . $t->idp_port, 'issuer');

my $api = Identity::Test::UA->new(headers => { Accept => 'application/json' });
my $disc = decode_json($api->get("$issuer/.well-known/openid-configuration")->{body});
is($disc->{issuer}, $issuer, 'discovery issuer');
my $jwks = decode_json($api->get($disc->{jwks_uri})->{body});
ok(@{$jwks->{keys}} >= 1 && $jwks->{keys}[0]{kid}, 'jwks has a key');

# ------------------------------------------------------------ nginx

$t->nginx_conf(<<'EOF');
daemon off;
master_process on;
worker_processes 1;
error_log %%TESTDIR%%/error.log debug;
pid %%TESTDIR%%/nginx.pid;
events { worker_connections 64; }
http {
    access_log %%TESTDIR%%/access.log;
    client_body_temp_path %%TESTDIR%%/client_body;
    proxy_temp_path %%TESTDIR%%/proxy;
    fastcgi_temp_path %%TESTDIR%%/fastcgi;
    uwsgi_temp_path %%TESTDIR%%/uwsgi;
    scgi_temp_path %%TESTDIR%%/scgi;

    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        location /cb { return 200 "code=$arg_code state=$arg_state"; }
        location / { proxy_pass http://127.0.0.1:%%PORT_upstream%%; }
    }
    server {
        listen 127.0.0.1:%%PORT_upstream%%;
        location /echo { return 200 "hdr=$http_x_test"; }
        location /set {
            add_header Set-Cookie "a=1; Path=/; HttpOnly";
            add_header Set-Cookie "b=2; Path=/sub; Max-Age=3600";
            add_header Set-Cookie "gone=1; Path=/";
            return 302 /sub/show;
        }
        location /del {
            add_header Set-Cookie "a=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
            add_header Set-Cookie "b=; Path=/sub; Max-Age=0";
            return 302 sub/show;
        }
        location /sub/show { return 200 "cookie=$http_cookie"; }
        location /sfm { return 200 "m=$http_sec_fetch_mode"; }
        location /show { return 200 "cookie=$http_cookie"; }
    }
}
EOF
my ($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'nginx -t') or diag($out);
$t->start_nginx;

my $ua = Identity::Test::UA->new;
my $r = $ua->get("http://127.0.0.1:$nport/echo", headers => { 'X-Test' => 'hello' });
is($r->{status}, 200, 'proxied request');
is($r->{body}, 'hdr=hello', 'header echoed through proxy');
like(Identity::Test::http_raw($nport, "GET /echo HTTP/1.0\r\nX-Test: raw\r\n\r\n"),
    qr/^HTTP\/1\.1 200.*\r\n\r\nhdr=raw\z/s, 'http_raw');
like(Identity::Test::http_raw($nport, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", timeout => 0.5),
    qr/^HTTP\/1\.1 200.*hdr=\z/s, 'http_raw returns on timeout (keep-alive)');

is($ua->get("http://127.0.0.1:$nport/sfm")->{body}, 'm=navigate', 'browser headers');
is($ua->get("http://127.0.0.1:$nport/sfm", headers => { 'sec-fetch-mode' => undef })->{body},
    'm=', 'default header removed');
my @chain = $ua->follow($ua->get("http://127.0.0.1:$nport/set"));
is(scalar @chain, 2, 'follow: one redirect');
is($chain[-1]{body}, 'cookie=b=2; a=1; gone=1', 'cookies sent, longest path first');
is($ua->get("http://127.0.0.1:$nport/show")->{body}, 'cookie=a=1; gone=1', 'cookie path');
$r = $ua->follow($ua->get("http://127.0.0.1:$nport/del"));
is($r->{body}, 'cookie=gone=1', 'Expires in the past and Max-Age=0 delete');
is($ua->cookie('gone'), 1, 'cookie()');
$ua->clear_cookies;
is(Identity::Test::UA::parse_response(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")->{body},
    'abcde', 'chunked body');

# ------------------------------------------------------------ login flow

my ($state, $nonce, $verifier);
sub auth_url {
    my ($challenge);
    ($verifier, $challenge) = Identity::Test::pkce_pair();
    $state = Identity::Test::random_token(16);
    $nonce = Identity::Test::random_token(16);
    return "$disc->{authorization_endpoint}?" . Identity::Test::UA::form_encode({
        client_id => 'test-client', response_type => 'code', scope => 'openid email profile groups',
        redirect_uri => $redirect_uri, state => $state, nonce => $nonce,
        code_challenge => $challenge, code_challenge_method => 'S256',
    });
}

my $bad = Identity::Test::UA->new->oidc_login(auth_url(), user => 'alice', password => 'nope');
is($bad->{status}, 200, 'wrong password: 200');
like($bad->{body}, qr/Invalid login/, 'wrong password: Invalid login');

sub login_and_token {
    my $res = $ua->oidc_login(auth_url(), user => 'alice', password => 'alice-password');
    my ($code) = $res->{body} =~ /^code=(\S+) state=\Q$state\E\z/ or return (undef, $res);
    my $tok = $api->request('POST', $disc->{token_endpoint},
        headers => { Authorization => 'Basic ' . encode_base64('test-client:test-secret', '') },
        form => { grant_type => 'authorization_code', code => $code,
            redirect_uri => $redirect_uri, code_verifier => $verifier });
    return ($tok->{status} == 200 ? decode_json($tok->{body}) : undef, $tok);
}

my ($tokens, $res) = login_and_token();
ok($tokens && $tokens->{id_token}, 'login, callback with code and state, token exchange')
    or diag(explain($res), explain($ua->{trace}));
ok(grep({ ($_->{url} // '') =~ m{/interaction/} } @{$ua->{trace}}), 'went through the login page');
my ($hdr, $claims) = Identity::Test::jwt_decode($tokens->{id_token});
is($hdr->{alg}, 'RS256', 'id_token alg');
is($hdr->{kid}, $jwks->{keys}[0]{kid}, 'id_token kid published');
is_deeply([@$claims{qw(iss aud sub nonce)}], [$issuer, 'test-client', 'alice', $nonce],
    'id_token claims');
# oidc-provider's default (conformIdTokenClaims): the scopes' claims are in
# userinfo only, not in the ID token of the code flow
ok(!grep({ exists $claims->{$_} } qw(email email_verified name preferred_username groups)),
   'stock IdP: no e-mail, name, username or groups in the id_token');
my $info = decode_json($api->get($disc->{userinfo_endpoint},
    headers => { Authorization => "Bearer $tokens->{access_token}" })->{body});
is_deeply([@$info{qw(sub email email_verified name preferred_username)}],
    ['alice', 'alice@example.test', JSON::PP::true, 'Alice Example', 'alice'], 'userinfo');
is_deeply($info->{groups}, ['staff'], 'groups claim in userinfo');

# Second login: the IdP session is reused, so no login page.
my $orig_sig = (split /\./, $tokens->{id_token})[2];
$t->idp_mode(id_token => 'tampered');
($tokens) = login_and_token();
ok(!grep({ ($_->{url} // '') =~ m{/interaction/[^/]+/login} } @{$ua->{trace}}), 'SSO: no login form');
(undef, $claims) = Identity::Test::jwt_decode($tokens->{id_token});
is($claims->{email}, 'mallory@evil.test', 'tampered: email changed');
is($claims->{sub}, 'alice', 'tampered: rest unchanged');

my %check = (
    expired => sub { $_[1]{exp} < time },
    wrong_aud => sub { $_[1]{aud} eq 'someone-else' },
    wrong_iss => sub { $_[1]{iss} ne $issuer },
    wrong_nonce => sub { $_[1]{nonce} ne $nonce },
    alg_none => sub { $_[0]{alg} eq 'none' && $_[2] =~ /\.\z/ },
    wrong_key => sub { $_[0]{kid} eq $jwks->{keys}[0]{kid} },
    unknown_kid => sub { $_[0]{kid} ne $jwks->{keys}[0]{kid} },
    normal => sub { $_[0]{kid} eq $jwks->{keys}[0]{kid} && $_[1]{sub} eq 'alice' },
);
for my $mode (sort keys %check) {
    $t->idp_mode(id_token => $mode);
    ($tokens) = login_and_token();
    my $jwt = $tokens->{id_token};
    ok($check{$mode}->(Identity::Test::jwt_decode($jwt), $jwt), "id_token mode $mode");
}

my $mode = $t->idp_mode(rotate_keys => 1);
my $keys = decode_json($api->get($disc->{jwks_uri})->{body})->{keys};
is(scalar @$keys, 2, 'rotate_keys: both keys published');
($tokens) = login_and_token();
($hdr) = Identity::Test::jwt_decode($tokens->{id_token});
is($hdr->{kid}, $mode->{signing_kids}{RS256}, 'rotate_keys: signed with the new key');
isnt($hdr->{kid}, $jwks->{keys}[0]{kid}, 'rotate_keys: new kid');

# A slow request does not block another one.
$t->idp_mode(token_delay_ms => 1000);
my $slow = $api->start_request('POST', $disc->{token_endpoint}, form => { grant_type => 'x' });
select undef, undef, undef, 0.2;
ok(!$slow->ready, 'delayed token request pending');
is($api->get("$issuer/.well-known/openid-configuration")->{status}, 200, 'other request served');
is($slow->finish->{status}, 400, 'delayed token request answered');
$t->idp_mode(token_delay_ms => 0);

my $stats = $t->idp_stats;
ok($stats->{token} >= 12 && $stats->{discovery} >= 2 && $stats->{jwks} >= 2, 'stats')
    or diag(explain($stats));

# ------------------------------------------------------------ a private checkout

# A checkout under /root (0700), tested as root as CI does: nginx's workers
# must still read files below the test directory and write client_body temp
# files there.  A test directory of mode 0700 stands for /root.
SKIP: {
    skip 'run as root only: workers then would not be root', 4 if $> != 0;

    my $p = Identity::Test->new(name => 'harness-private');
    chmod 0700, $p->testdir or die "chmod: $!";
    $p->write_file('www/fixture.txt', "fixture\n");
    $p->nginx_conf(<<'EOF');
daemon off;
master_process on;
worker_processes 1;
error_log %%TESTDIR%%/error.log info;
pid %%TESTDIR%%/nginx.pid;
events { worker_connections 64; }
http {
    access_log %%TESTDIR%%/access.log;
    client_body_temp_path %%TESTDIR%%/client_body;
    proxy_temp_path %%TESTDIR%%/proxy;
    fastcgi_temp_path %%TESTDIR%%/fastcgi;
    uwsgi_temp_path %%TESTDIR%%/uwsgi;
    scgi_temp_path %%TESTDIR%%/scgi;

    server {
        listen 127.0.0.1:%%PORT_nginx%%;
        location /www/ { root %%TESTDIR%%; }
        location /post {
            client_body_in_file_only clean;
            proxy_pass http://127.0.0.1:%%PORT_nginx%%/posted;
        }
        location /posted { return 200 "length=$http_content_length"; }
    }
}
EOF
    $p->start_nginx;
    my $pport = $p->port('nginx');
    my $pua = Identity::Test::UA->new;
    my $got = $pua->get("http://127.0.0.1:$pport/www/fixture.txt");
    is($got->{status}, 200, 'private test dir: worker reads a fixture');
    is($got->{body}, "fixture\n", 'private test dir: fixture content');
    $got = $pua->request('POST', "http://127.0.0.1:$pport/post", body => 'x' x 100);
    is($got->{status}, 200, 'private test dir: worker writes a request body');
    $p->stop_all;
    unlike($p->error_log, qr/Permission denied/, 'private test dir: no EACCES');
}

$t->done;
