#!/usr/bin/perl
# The identity provider down: a worker makes one discovery attempt however
# many logins need it, every login gets 503 with Retry-After (at once while
# the failure is remembered), the failure is logged once, and logins work
# again once the provider is back.  Clients that go away while a login waits
# for the provider are finalized and what was fetched for them is freed
# (make test-asan checks for leaks).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'idp-outage');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');

# the provider's port, taken first by a black hole, later by the real IdP
my $idp_port = $t->port('idp');
$t->{idp_port} = $idp_port;
my $issuer = "http://127.0.0.1:$idp_port";
my $hole_issuer = 'http://127.0.0.1:' . $t->port('hole');

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    provider => 'http_timeout 3s;',
    http => <<"HTTP",
    identity_provider hole {
        type oidc;
        issuer $hole_issuer;
        client_id test-client;
        client_secret test-secret;
        http_timeout 1s;
    }
HTTP
    locations => <<'LOC'));
        location /hole/ {
            identity hole;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }
LOC
$t->start_nginx;

# A listening socket that never accepts: connections complete in the
# kernel's backlog and are never answered; counted by accepting them later.
sub black_hole {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
        Proto => 'tcp', Listen => 128, ReuseAddr => 1) or die "listen $port: $!";
    return $s;
}

sub connections {
    my ($hole) = @_;
    $hole->blocking(0);
    my $n = 0;
    while (my $c = $hole->accept) {
        $n++;
        close $c;
    }
    $hole->blocking(1);
    return $n;
}

sub errors {
    my @lines = grep { /\[error\].*provider "test": .*logins answer 503/ }
        split /\n/, $t->error_log;
    return scalar @lines;
}

# N logins at once; the responses
sub logins {
    my ($n, $path) = @_;
    my @pending = map { Identity::Test::UA->new->start_request('GET', "$base$path$_") } 1 .. $n;
    return map { $_->finish } @pending;
}

sub all_unavailable {
    my ($what, @res) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(scalar(grep { $_->{status} == 503 } @res), scalar @res, "$what: every login 503")
        or diag(join ' ', map { $_->{status} } @res);
    is(scalar(grep { ($_->{h}{'retry-after'} // '') =~ /^[1-5]\z/ } @res), scalar @res,
        "$what: every 503 says Retry-After (1 to 5 s)")
        or diag(join ' ', map { $_->{h}{'retry-after'} // '-' } @res);
    is(scalar(grep { ($_->{h}{'set-cookie'} // '') =~ /identity/ } @res), 0,
        "$what: no login state cookie");
}

# ------------------------------------------------------------ black hole

my $hole = black_hole($idp_port);

my @res = logins(8, '/app/');
all_unavailable('provider not answering', @res);

my $later = Identity::Test::UA->new->get("$base/later");
all_unavailable('within the backoff', $later);

is(connections($hole), 1, 'nine logins, one discovery attempt');
is(errors(), 1, 'the failure logged once');
is(scalar @{$t->redis('KEYS', 'identity:login:*') || []}, 0, 'no pending login stored');

# ------------------------------------------------------------ refused

close $hole;
sleep $later->{h}{'retry-after'} + 0.2;

@res = logins(6, '/refused/');
all_unavailable('provider refusing connections', @res);
is(errors(), 2, 'the new failure logged once more');

# ------------------------------------------------------------ back again

$t->start_idp(redirect_uris => ["$base/_identity/callback"]);
is($t->idp_port, $idp_port, 'IdP on the port it had');
sleep $res[0]{h}{'retry-after'} + 0.2;

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/back");
is($r->{status}, 200, 'provider back: login works');
is(upstream_saw($r->{body})->{email}, 'alice@example.test', 'provider back: identity');

# ------------------------------------------------------------ clients going away

# ... while their logins wait for a discovery that does not answer

my $hole2 = black_hole($t->port('hole'));
for (1 .. 5) {
    my $p = Identity::Test::UA->new->start_request('GET', "$base/hole/x$_");
    close $p->{sock};
}
sleep 1.5;
is(connections($hole2), 1, 'clients gone: one discovery attempt');
$r = Identity::Test::UA->new->get("$base/hole/after");
is($r->{status}, 503, 'then a login still gets 503');
close $hole2;

# ... while their code is exchanged at a slow token endpoint

$t->idp_mode(token_delay_ms => 1000);
my $before = scalar @{$t->redis('KEYS', 'identity:session:*') || []};
for (1 .. 3) {
    my $u = Identity::Test::UA->new;
    my $cb = $u->oidc_login("$base/gone$_", stop => sub { $_[0] =~ m{/_identity/callback} });
    my ($url) = grep { m{/_identity/callback} } map { $_->{h}{location} // () } @{$u->{trace}};
    ok($url, "client $_: at the callback") or next;
    my $p = $u->start_request('GET', Identity::Test::UA::resolve_url("$base/", $url));
    close $p->{sock};
}
sleep 2;
$t->idp_mode(token_delay_ms => 0);
is(scalar @{$t->redis('KEYS', 'identity:session:*') || []}, $before,
    'clients gone at the callback: no session made for them');
my @gone = $t->read_file('access.log') =~ m{"GET /_identity/callback\S* HTTP/1\.1" 499 }g;
is(scalar @gone, 3, 'clients gone at the callback: finalized as 499');

$r = Identity::Test::UA->new->oidc_login("$base/still");
is($r->{status}, 200, 'logins still work');

$t->done;
