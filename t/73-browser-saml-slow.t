#!/usr/bin/perl
# SP-initiated SAML in Chromium for a slow user (issue 12, A.3): more than
# two minutes at the IdP's login form before submitting, over https.
# Chromium lets a cookie that has no SameSite attribute ride on a
# cross-site POST during its first two minutes ("Lax-allowing-unsafe");
# dropping the attribute from the state cookie would pass a quick test and
# fail real users.  This is the quick flow of t/72-browser-flows.t with the
# wait, kept apart because it takes that long.  IDENTITY_SLOW_WAIT (seconds,
# default 125) sets the wait.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Browser qw(:all);
use Identity::Conf qw(preamble protected echo_upstream upstream_saw);
use Identity::SAML qw(make_keypair);

Identity::Test::need('chromium');

my $wait = $ENV{IDENTITY_SLOW_WAIT} // 125;

my $t = Identity::Test->new(name => 'browser-saml-slow');
my $dir = $t->testdir;

my $rport = $t->start_redis;
my $n = $t->port('nginx');
my $base = "https://127.0.0.1:$n";

my ($sp_key, $sp_cert) = make_keypair("$dir/sp", cn => 'identity-sp');
my $sp = saml_sp($base, $sp_cert);
my $idp = start_cross_site_idp($t, $sp);
my ($key, $crt) = https_cert($t);

my $preamble = preamble(1);
my $upstream = echo_upstream();
my $provider = saml_provider('corp', $idp, $sp, $sp_key, $sp_cert);
my $protected = protected('corp');

my $conf = <<"EOF";
$preamble
    identity_redis 127.0.0.1:$rport timeout=2s;

$provider

    server {
        listen 127.0.0.1:%%PORT_nginx%% ssl;
        ssl_certificate $crt;
        ssl_certificate_key $key;
        identity_public_url $base;

        location / {
$protected
        }
    }

$upstream
}
EOF
$t->nginx_conf($conf);
$t->start_nginx;

mkdir "$dir/shots";
my $cdp = start_chromium($t);
my $start = '/app/slow?after=coffee';
my $o = run_browser($t, 'flows.mjs', { cdp => $cdp, shots => "$dir/shots", redis => $rport,
    flows => [ { kind => 'saml', name => 'slow', base => $base, start => $start,
                 cookie => '__Host-identity_session', wait_ms => $wait * 1000 } ] });
stop_chromium($t);
is_deeply($o->{errors}, [], 'the browser ran') or diag(explain $o->{errors});

my $r = $o->{slow} // {};
is_deeply($r->{errors} // ['no result'], [], 'no error in the flow')
    or diag(explain { errors => $r->{errors}, chain => $r->{chain}, failed_at => $r->{failed_at} });

# the state cookie the module set before sending the user to the IdP: the
# wait is longer than two minutes after it was made
my ($state) = grep { $_->{name} eq '__Host-identity_session_state' }
    @{$r->{cookies_before_idp} // []};
ok($state, 'a state cookie was set before the IdP');
ok($wait > 120, "the user waited ${wait}s at the IdP (more than Chromium's two minutes)");
like($r->{login_page} // '', qr{^\Q$idp->{base}\E}, 'at SimpleSAMLphp\'s login form');

is($r->{landed}{url}, "$base$start", 'back at the URL asked for');
is($r->{landed}{status}, 200, 'the page answers 200');
my $saw = upstream_saw($r->{landed}{text});
is($saw->{email}, 'alice@example.test', 'the upstream saw alice');
my ($c) = grep { $_->{name} eq '__Host-identity_session' } @{$r->{cookies} // []};
ok($c && $c->{secure} && $c->{httpOnly}, 'a __Host- session cookie, Secure, HttpOnly');
is($r->{redis}{exists}, 1, 'Redis holds the session');
ok(-s "$dir/shots/slow-landed.png", 'a screenshot of the final page');

$t->done;
