#!/usr/bin/perl
# Tracing (issue 13): with "error_log ... debug" an operator can follow one
# login and one authenticated request through the module, step by step, by
# the connection number nginx puts on every line.  Secrets never appear.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'tracing');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"]);

my $token = 'tracing-admin-token-0123456789';
$t->write_file('admin.token', "$token\n");
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1));
$t->start_nginx;

# the module's debug lines of one connection, in order
sub trace {
    my ($from, $conn) = @_;
    my @lines;
    for (split /\n/, substr($t->error_log, $from)) {
        next unless /\[debug\] \d+#\d+: \*(\d+) identity: (.*)$/;
        my ($n, $text) = ($1, $2);
        push @lines, $text if !defined $conn || $n == $conn;
    }
    return @lines;
}

sub conn_of {
    my ($from, $re) = @_;
    for (split /\n/, substr($t->error_log, $from)) {
        next unless /\[debug\] \d+#\d+: \*(\d+) identity: /;
        my $conn = $1;
        return $conn if /$re/;
    }
    return undef;
}

# the order in which the steps must appear
sub in_order {
    my ($lines, $steps, $name) = @_;
    my $i = 0;
    for my $line (@$lines) {
        $i++ if $i < @$steps && $line =~ $steps->[$i];
    }
    ok($i == @$steps, $name)
        or diag("missing step: $steps->[$i]\ntrace:\n" . join "\n", @$lines);
}

my $mark = length $t->error_log;
my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base/page");
is($r->{status}, 200, 'login through the provider');
my $session = upstream_saw($r->{body})->{session};
ok($session, '... gives a session');

# the first request: no cookie, sent to the provider
my $c = conn_of($mark, qr/no session cookie/);
ok($c, 'the first request is traced');
in_order([trace($mark, $c)], [
    qr/^no session cookie$/,
    qr/^browser sent to log in with "test"$/,
    qr/^login started with "test" \(oidc\)$/,
], 'the first request: no cookie, sent to log in with the provider');

# the callback: verified, session made
$c = conn_of($mark, qr/login verified by/);
ok($c, 'the callback is traced');
in_order([trace($mark, $c)], [
    qr/^login verified by "test"$/,
    qr/^claims of "[^"]+" sanitized, session create sent$/,
], 'the callback: verified by the provider, then the session is created');

# back at the page: the session is looked up, checked and admitted
$mark = length $t->error_log;
$r = $ua->get("$base/page");
is($r->{status}, 200, 'an authenticated request');
in_order([trace($mark)], [
    qr/^session lookup sent$/,
    qr/^session "\Q$session\E" checked, user "[^"]+"$/,
    qr/^session "\Q$session\E" admitted$/,
], 'an authenticated request: lookup, checked, admitted');

# a revocation is traced too
$mark = length $t->error_log;
my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });
$r = $api->request('DELETE', "$base/api/app/sessions/$session");
is($r->{status}, 204, 'the admin API revokes the session');
in_order([trace($mark)], [qr/^admin delete: revoked$/], 'the revocation is traced');

$mark = length $t->error_log;
$r = $ua->get("$base/page");
is($r->{status}, 302, 'the revoked session is sent to log in again');
in_order([trace($mark)], [qr/^session lookup sent$/, qr/^no such session$/],
         'the revoked session: looked up, not found');

# no secret in any debug line of the module
my @all = trace(0);
ok(@all > 10, 'the module traced the whole run');
ok(!grep({ index($_, 'test-secret') >= 0 } @all), 'no client secret in the trace');
ok(!grep({ index($_, $token) >= 0 } @all), 'no admin token in the trace');

$t->done;
