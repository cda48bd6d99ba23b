#!/usr/bin/perl
# Review of issue 17's audit events and risk signals, as an attacker
# reads them.
#
# 1. GET app/events?before_id=: an id Redis refuses in an exclusive range
#    is a client's mistake, a 400 like any other bad before_id, not a 503
#    that says the session store is down (and logs a Redis error reply
#    at error): "0-0" (nothing precedes it, and no entry has it) and a
#    part past 2^64 - 1 ("99999999999999999999-0").  An id of 20 digits
#    that fits is still a cursor.
# 2. A provider's error= at the callback takes the pending login of this
#    browser only: another browser's state (no cookie, or another's) is
#    refused and leaves that login pending, which then finishes.
# 3. Anyone, without a cookie, could push every other event out of the
#    stream: a callback with a forged state is a login failure (reason
#    "state"), and the stream keeps its last identity_audit_stream_size
#    entries.  Login failures that name no identity now go to a stream of
#    their own, "P audit:failures", as long; app/events merges the two.
# 4. identity_risk ... action=deny set for one server kept no session out
#    of it.  Sessions are shared by every server of the provider and the
#    Redis, and a request never looks at a session's risk: a login the
#    strict server denied was made at another server, which only flagged
#    it, and its cookie was then admitted by the strict server (the same
#    host: the browser sends it by itself).  identity_risk is now set at
#    http level only (t/98 checks that a server or a location fails
#    nginx -t): the login is denied at every server of the nginx.
# 5. A login without a User-Agent (none, or an empty one) passed
#    "identity_risk new_device action=deny": no device parsed was "input
#    unknown", so no signal, and the login's callback is a request its
#    client sends as it likes.  It is now the device "Other / Other", the
#    parser's name for a user agent it does not know: new unless seen.
# 6. (sound) A User-Agent that tries to end the JSON document and start
#    another, with bytes that are not UTF-8, stays one line of the
#    audit file, one JSON object, and forges no event.
# 7. A session the location's rules refuse wrote a login failure on each
#    refused request: its holder could flood the stream.  Now once a
#    minute per session (and worker): 20 refusals, one event; another
#    session's refusal still has its own.
# 8. An admin's DELETE of a session was filed under nobody in the
#    stream (the document's user is the admin): the user's page,
#    app/events?user=, missed it.  It is filed under whose it was.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Time::HiRes ();
use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf protected location_block);

my $t = Identity::Test->new(name => 'review17');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $strict = 'http://127.0.0.1:' . $t->port('strict');
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback", "$strict/_identity/callback"]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

my $p = protected('test');
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1,
    locations => [
        location_block('/refused/', 'identity test;',
            'identity_allow_email nobody\@example.invalid;',
            'proxy_pass http://127.0.0.1:%%PORT_upstream%%;'),
    ],
    http => <<"H"));
    identity_audit_stream_size 100;
    identity_audit_log %%TESTDIR%%/audit.log;
    identity_risk new_device action=deny;

    server {
        listen 127.0.0.1:%%PORT_strict%%;
        location / {
$p        }
    }
H
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Authorization => "Bearer $token", Accept => 'application/json' });

my $alice = Identity::Test::UA->new;
is($alice->oidc_login("$base/a", user => 'alice')->{status}, 200,
   "alice's login: an event in the stream");

# ------------------------------------------------------------ 1. before_id

for my $id ('0-0', '99999999999999999999-0', '1-99999999999999999999',
            '18446744073709551616-0')
{
    my $r = $api->get("$base/api/app/events?before_id=$id");
    is($r->{status}, 400, "before_id=$id: 400");
    like($r->{body}, qr/invalid before_id/, 'it says why');
}

for my $id ('18446744073709551615-18446744073709551615', '1-0',
            '00000000000000000001-1')
{
    my $r = $api->get("$base/api/app/events?before_id=$id");
    is($r->{status}, 200, "before_id=$id: 200");
}

# ------------------------------------------------------------ 2. error=

{
    my $victim = Identity::Test::UA->new;
    my $res = $victim->oidc_login("$base/victim",
        stop => sub { index($_[0], $issuer) == 0 });
    my $auth = Identity::Test::UA::resolve_url($res->{url},
                                               $res->{h}{location});
    my ($state) = $auth =~ /[?&]state=([^&]+)/;
    ok($state, "the victim's login is pending");

    for my $who (Identity::Test::UA->new, $alice) {
        my $r = $who->get("$base/_identity/callback?error=access_denied"
                          . "&state=$state");
        is($r->{status}, 403, "another browser's error= with its state: 403");
    }

    $res = $victim->oidc_login($auth, user => 'bob');
    is($res->{status}, 200, "the victim's login still finishes");
}

# ------------------------------------------------------------ 3. flood

{
    my $uid = $t->redis('GET', 'identity:sub:test:alice');
    my $mine = sub {
        my $r = $api->get("$base/api/app/events?user=$uid&action=login");
        return $r->{status} == 200
               ? scalar @{decode_json($r->{body})->{events}} : -1;
    };
    is($mine->(), 1, "alice's login is in app/events");

    my $anon = Identity::Test::UA->new;
    my $n = 0;
    for (1 .. 300) {
        $n++ if $anon->get("$base/_identity/callback?code=x&state="
                           . Identity::Test::random_token())->{status} == 400;
    }
    is($n, 300, '300 forged callbacks without a cookie: 400 each');

    is($mine->(), 1, "alice's login is still in app/events");
    my $kept = $t->redis('XLEN', 'identity:audit');
    ok($kept < 100, "the stream of identities has room ($kept entries)");

    # they went to a stream of their own, as long, and are still listed
    my $fails = $t->redis('XLEN', 'identity:audit:failures');
    ok($fails >= 100 && $fails < 300, "the failures' stream: about 100 ($fails)");
    my $r = $api->get("$base/api/app/events?limit=100");
    my @ev = @{decode_json($r->{body})->{events}};
    is(scalar(grep { ($_->{event}{reason} // '') eq 'state' } @ev), 100,
       'app/events lists the forged callbacks first');

    # every page of logins, from both streams: each entry once
    my (@all, $pages);
    my $next = "$base/api/app/events?action=login&limit=70";
    while ($next && ++$pages < 20) {
        my $b = decode_json($api->get($next)->{body});
        push @all, @{$b->{events}};
        $next = $b->{next_page_uri};
    }
    my %f = map { $_->[0] => 1 }
            @{$t->redis('XRANGE', 'identity:audit:failures', '-', '+') || []};
    my %m = map { $_->[0] => 1 }
            @{$t->redis('XRANGE', 'identity:audit', '-', '+') || []};
    is(scalar @all, (scalar keys %f) + (grep { $m{$_->{id}} } @all),
       'the pages hold every failure');
    is(scalar(grep { ($_->{user}{id} // '') eq $uid } @all), 1,
       "and alice's login, merged among them");
    my @ids = map { $_->{id} } @all;
    my $cmp = sub {
        my ($x, $y) = map { [split /-/] } @_;
        return $x->[0] <=> $y->[0] || $x->[1] <=> $y->[1];
    };
    is_deeply(\@ids, [sort { $cmp->($b, $a) } keys %{{ map { $_ => 1 } @ids }}],
              'newest first, none twice');
}

# ------------------------------------------------------------ 4. servers

{
    my $iphone = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) '
               . 'AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 '
               . 'Mobile/15E148 Safari/604.1';

    # alice's history: the harness's Linux desktop (her login above)
    my $ua = Identity::Test::UA->new(headers => { 'User-Agent' => $iphone });
    is($ua->oidc_login("$strict/x", user => 'alice')->{status}, 403,
       'a new device at the strict server: denied');
    ok(!$ua->cookie('identity_session', '127.0.0.1'), 'no session');

    # a login with no User-Agent is a device as well, not an exemption
    for my $agent (undef, '') {
        my $other = Identity::Test::UA->new(headers => { 'User-Agent' => $agent });
        my $name = defined $agent ? 'an empty User-Agent' : 'no User-Agent';
        is($other->oidc_login("$strict/y", user => 'alice')->{status}, 403,
           "$name at the strict server: denied as a new device");
        ok(!$other->cookie('identity_session', '127.0.0.1'), 'no session');
    }

    is($ua->oidc_login("$base/x", user => 'alice')->{status}, 403,
       'the same login at the other server: denied too');
    ok(!$ua->cookie('identity_session', '127.0.0.1'), 'no session');
    my $r = $ua->get("$strict/x");
    isnt($r->{status}, 200, 'nothing for the strict server to admit');
}

# ------------------------------------------------------------ 6. the file

{
    my $agent = 'Mozilla/5.0 "},"event":{"action":"logout"},"x":{"a":"'
              . "\xff\xfe \\\" " . ('A' x 3000);
    my $ua = Identity::Test::UA->new(headers => { 'User-Agent' => $agent });
    is($ua->oidc_login("$base/z", user => 'bob')->{status}, 200,
       'a login with a hostile User-Agent');

    # written by a worker's thread: the login's line may follow its answer
    my @lines;
    for (1 .. 100) {
        @lines = split /\n/, $t->read_file('audit.log');
        last if grep { /Mozilla\/5\.0 \\"/ } @lines;
        Time::HiRes::sleep(0.05);
    }
    my @docs = grep { defined } map { eval { decode_json($_) } } @lines;
    is(scalar @docs, scalar @lines, 'every line of the file is one JSON object');
    is(scalar(grep { ($_->{event}{action} // '') eq 'logout' } @docs), 0,
       'no logout forged');
    my ($last) = grep { ($_->{event}{action} // '') eq 'login'
                        && ($_->{event}{outcome} // '') eq 'success' }
                 reverse @docs;
    unlike($last->{user_agent}{original} // '', qr/\xff/, 'no byte that is not UTF-8');
}

# ------------------------------------------------------------ 7. refusals

# a session the rules refuse: one event a minute, not one a request (two
# sessions of alice: the rules look at sessions, the limit too)
my ($carl, $dora) = map { Identity::Test::UA->new } 1 .. 2;
is($carl->oidc_login("$base/c", user => 'alice')->{status}, 200, "carl's login");
is($dora->oidc_login("$base/d", user => 'alice')->{status}, 200, "dora's login");
my %sid = map { $_->[0] => 'as_' . Identity::Test::session_hex(
                              $_->[1]->cookie('identity_session', '127.0.0.1')) }
          (['carl', $carl], ['dora', $dora]);
my @st = map { $carl->get("$base/refused/$_")->{status} } 1 .. 20;
is_deeply([keys %{{ map { $_ => 1 } @st }}], [403], '20 refused requests: 403');
is($dora->get("$base/refused/x")->{status}, 403, "another session's refusal");

my $refusals = sub {
    my ($who) = @_;
    return scalar grep {
        my %f = @{$_->[1]};
        my $d = decode_json($f{doc});
        ($d->{event}{reason} // '') eq 'rule:email'
        && ($d->{session}{id} // '') eq $sid{$who}
    } @{$t->redis('XRANGE', 'identity:audit', '-', '+') || []};
};
# events of one worker, on one connection: in order
for (1 .. 100) { last if $refusals->('dora'); select(undef, undef, undef, 0.05) }
is($refusals->('carl'), 1, "carl's 20 refusals: one event");
is($refusals->('dora'), 1, "dora's refusal: her own event");
my @f = grep { /rule:email/ } split /\n/, $t->read_file('audit.log');
is(scalar @f, 2, 'and two lines in the file');

# ------------------------------------------------------------ 8. API writes

# an admin's revocation is on the page of the user whose session it was
{
    my $alice_id = $t->redis('GET', 'identity:sub:test:alice');
    my $erin = Identity::Test::UA->new;
    is($erin->oidc_login("$base/e", user => 'alice')->{status}, 200,
       "erin's login (alice)");
    my $sid = 'as_' . Identity::Test::session_hex(
                          $erin->cookie('identity_session', '127.0.0.1'));
    my $r = $api->request('DELETE', "$base/api/app/sessions/$sid");
    is($r->{status}, 204, "the API revokes erin's session");
    my @ev;
    for (1 .. 100) {
        $r = $api->get("$base/api/app/events?user=$alice_id"
                       . "&action=session_revoked");
        @ev = @{decode_json($r->{body})->{events}};
        last if @ev;
        select(undef, undef, undef, 0.05);
    }
    is(scalar @ev, 1, "app/events?user=<alice's id>: the revocation");
    is($ev[0]{event}{reason}, 'api', 'by the API');
    like($ev[0]{user}{id} // '', qr/^token:[0-9a-f]{8}$/, 'user.id: the admin');
    is($ev[0]{user}{target}{id}, $sid, 'user.target.id: the session');

    $r = $api->request('DELETE', "$base/api/app/users/$alice_id");
    is($r->{status}, 204, 'the API deletes alice');
    for (1 .. 100) {
        $r = $api->get("$base/api/app/events?user=$alice_id&action=user_deleted");
        @ev = @{decode_json($r->{body})->{events}};
        last if @ev;
        select(undef, undef, undef, 0.05);
    }
    is(scalar @ev, 1, "app/events?user=<alice's id>: her deletion");
    like($ev[0]{user}{id} // '', qr/^token:/, 'user.id: the admin');
    is($ev[0]{user}{target}{id}, $alice_id, 'user.target.id: alice');
}

done_testing;
