#!/usr/bin/perl
# Two nginx instances share one Redis: a session made on one is valid on the
# other, and a revocation through either admin API refuses the session on
# both from the moment the DELETE is answered, while both are under load.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP qw(decode_json);
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $ta = Identity::Test->new(name => 'revocation-a');
my $tb = Identity::Test->new(name => 'revocation-b');

my $rport = $ta->start_redis;
my $base_a = 'http://127.0.0.1:' . $ta->port('nginx');
my $base_b = 'http://127.0.0.1:' . $tb->port('nginx');
my $issuer = $ta->start_idp(
    redirect_uris => ["$base_a/_identity/callback", "$base_b/_identity/callback"]);

my $token = 'admin-' . Identity::Test::random_token(24);
my $conf = identity_conf(redis => $rport, issuer => $issuer, workers => 2, admin => 1);

for my $t ($ta, $tb) {
    $t->write_file('admin.token', "$token\n");
    $t->nginx_conf($conf);
    $t->start_nginx;
}
isnt($ta->port('nginx'), $tb->port('nginx'), 'two instances on two ports');
isnt($ta->testdir, $tb->testdir, 'with their own prefix');

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

sub call {
    my ($base, $method, $path) = @_;
    my $r = $api->request($method, "$base/api/$path");
    $r->{json} = eval { decode_json($r->{body}) } if length($r->{body} // '');
    return $r;
}

# a browser that sends exactly this session cookie, and keeps no other
sub with_cookie {
    my ($base, $cookie, %h) = @_;
    return Identity::Test::UA->new(headers => \%h)
        ->get("$base/x", headers => { Cookie => "identity_session=$cookie" });
}

# ------------------------------------------------------------ one session, two instances

my $ua = Identity::Test::UA->new;
my $r = $ua->oidc_login("$base_a/a");
is($r->{status}, 200, 'logged in through instance A');
my $saw = upstream_saw($r->{body});
like($saw->{session}, qr/^as_[0-9a-f]{32}$/, 'A made a session');
my $cookie = $ua->cookie('identity_session', '127.0.0.1');
ok($cookie, 'session cookie for 127.0.0.1');

$r = $ua->get("$base_b/b");
is($r->{status}, 200, 'the same cookie is accepted by instance B');
my $saw_b = upstream_saw($r->{body});
is($saw_b->{session}, $saw->{session}, 'B sees the same session');
is($saw_b->{id}, $saw->{id}, 'and the same identity');
is($saw_b->{email}, 'alice@example.test', 'and its email');
is(with_cookie($base_b, $cookie)->{status}, 200, 'the bare cookie works on B');
is(with_cookie($base_a, $cookie)->{status}, 200, 'and on A');

is(call($base_b, 'GET', "app/sessions/$saw->{session}")->{status}, 200,
   "B's admin API sees the session made on A");

# ------------------------------------------------------------ revocation under load

# Each child asks one instance as fast as it can, one request after the
# other, and writes "start-time status" per request.

my $run_until = time + 2;

sub hammer {
    my ($base, $file) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my $ok = open my $fh, '>', $file;
    while ($ok && time < $run_until) {
        my $start = time;
        my $res = eval { with_cookie($base, $cookie) };
        printf $fh "%.6f %d\n", $start, $res ? $res->{status} : 0;
    }
    close $fh if $ok;
    POSIX::_exit($ok ? 0 : 1);
}

my %file = (A => $ta->testdir . '/hammer.log', B => $tb->testdir . '/hammer.log');
my %pid = (A => hammer($base_a, $file{A}), B => hammer($base_b, $file{B}));

sleep 0.7;
my $t_sent = time;
$r = call($base_a, 'DELETE', "app/users/$saw->{id}");
my $t_del = time;
is($r->{status}, 204, 'DELETE the user through A: 204');

for (sort keys %pid) {
    is(waitpid($pid{$_}, 0), $pid{$_}, "hammer on $_ finished");
    is($?, 0, "hammer on $_ exited 0");
}

for my $name ('A', 'B') {
    my @req = map { [split] } grep { /^\d+\.\d+ \d+$/ } split /\n/, $ta->read_file($file{$name});
    my @before = grep { $_->[0] < $t_sent } @req;
    my @after = grep { $_->[0] > $t_del } @req;
    my %after;
    $after{$_->[1]}++ for @after;

    note(sprintf '%s: %d requests, %d before the DELETE, %d after its 204 (%s)', $name,
         scalar @req, scalar @before, scalar @after,
         join ', ', map { "$_ x $after{$_}" } sort keys %after);
    cmp_ok(scalar(grep { $_->[1] == 200 } @before), '>', 10,
           "$name: 200s before the DELETE (the hammering ran)");
    cmp_ok(scalar @after, '>', 10, "$name: requests kept coming after the 204");
    is(scalar(grep { $_->[1] == 200 } @after), 0,
       "$name: no request started after the 204 got a 200");
    is(scalar(grep { $_->[1] != 302 && $_->[1] != 401 } @after), 0,
       "$name: every one of them got 302 or 401");
    is(scalar(grep { $_->[1] !~ /^(200|302|401)$/ } @req), 0,
       "$name: no other status at any time");
}

is(with_cookie($base_a, $cookie)->{status}, 302, 'A refuses the cookie now');
is(with_cookie($base_b, $cookie)->{status}, 302, 'B refuses it too');
is(with_cookie($base_b, $cookie, Accept => 'application/json', 'Sec-Fetch-Mode' => undef)
   ->{status}, 401, 'an API client gets 401 on B');
is($ta->redis('EXISTS', Identity::Test::session_key($cookie)), 0,
   'the session record is gone from Redis');
is($ta->redis('ZSCORE', 'identity:sessions', $saw->{session}), undef, 'and unindexed');
is(call($base_b, 'GET', "app/users/$saw->{id}")->{status}, 404, 'B: the user is gone');
is(call($base_b, 'GET', "app/sessions/$saw->{session}")->{status}, 404,
   'B: the session is gone');

# ------------------------------------------------------------ login again

$ua->delete_cookie('identity_session');
$r = $ua->oidc_login("$base_a/again");
is($r->{status}, 200, 'logging in again works');
my $again = upstream_saw($r->{body});
like($again->{session}, qr/^as_[0-9a-f]{32}$/, 'with a session');
isnt($again->{session}, $saw->{session}, 'a fresh session id');
isnt($again->{id}, $saw->{id}, 'and a fresh identity (the old one was deleted)');
my $cookie2 = $ua->cookie('identity_session', '127.0.0.1');
isnt($cookie2, $cookie, 'and a fresh cookie');
is(with_cookie($base_b, $cookie2)->{status}, 200, 'B accepts the new session');
is(with_cookie($base_a, $cookie)->{status}, 302, 'the old cookie stays refused');

# ------------------------------------------------------------ one session, deleted through B

my $ua2 = Identity::Test::UA->new;
$r = $ua2->oidc_login("$base_a/other");
my $other = upstream_saw($r->{body});
is($other->{id}, $again->{id}, 'a second session of the same identity');
my $cookie3 = $ua2->cookie('identity_session', '127.0.0.1');
is(with_cookie($base_a, $cookie2)->{status}, 200, 'session 1 works on A');
is(with_cookie($base_a, $cookie3)->{status}, 200, 'session 2 works on A');

$r = call($base_b, 'DELETE', "app/sessions/$again->{session}");
is($r->{status}, 204, 'DELETE session 1 through B: 204');
is(with_cookie($base_a, $cookie2)->{status}, 302, 'A refuses session 1 at once');
is(with_cookie($base_b, $cookie2)->{status}, 302, 'so does B');
is(with_cookie($base_a, $cookie3)->{status}, 200, 'session 2 still works on A');
is(with_cookie($base_b, $cookie3)->{status}, 200, 'and on B');
is(call($base_a, 'GET', "app/sessions/$again->{session}")->{status}, 404,
   "A's admin API: session 1 gone");
is(call($base_a, 'DELETE', "app/sessions/$again->{session}")->{status}, 404,
   "A's admin API: a second DELETE is 404");
is_deeply([map { $_->{id} } @{call($base_a, 'GET', "app/users/$again->{id}/sessions")
                                  ->{json}{application_sessions} || []}],
          [$other->{session}], "A's admin API lists only session 2");

$tb->stop_all;
is(scalar(grep { /\[(alert|emerg)\]/ } split /\n/, $tb->error_log), 0,
   'B: no alert/emerg in error.log');
$ta->done;
