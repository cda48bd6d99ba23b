#!/usr/bin/perl
# Audit events (issue 17, part 1): every event type read back from the
# Redis Stream, the JSON-lines file, syslog (a UDP listener here) and
# GET {admin}/app/events (paging, filters, bad parameters, admission), and
# the login counters of GET {admin}/app/stats/logins.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA ();
use IO::Socket::INET;
use IO::Select;
use Time::HiRes ();
use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::GeoDB qw(write_mmdb);
use Identity::Conf qw(identity_conf location_block);

my $t = Identity::Test->new(name => 'events');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $endpoint = "$base/_identity/backchannel_logout";
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    backchannel_logout_uri => $endpoint,
    backchannel_logout_session_required => JSON::PP::true,
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice' },
        { id => 'bob', password => 'bob-password', email => 'bob@corp.test',
          name => 'Bob Builder', username => 'bobby' },
    ]);

# the test's clients are in Tokyo
write_mmdb($t->testdir . '/city.mmdb', schema => 'geoip2', ip_version => 6, networks => {
    '127.0.0.0/8' => { country => 'JP', lat => 35.6895, lon => 139.6917, radius => 50 },
});

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

# the syslog server: a UDP socket of our own
my $syslog = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1',
                                   LocalPort => 0) or die "udp: $!";
my $sport = $syslog->sockport;

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1,
    http => "identity_geoip_database %%TESTDIR%%/city.mmdb;\n"
          . "    identity_audit_log %%TESTDIR%%/audit.log json;\n"
          . "    identity_audit_log syslog:server=127.0.0.1:$sport,tag=identity;\n"
          . "    identity_audit_stream_size 1000;",
    locations => [
        location_block('/alice-only/', 'identity test;',
            'identity_allow_email alice@example.test;',
            'proxy_pass http://127.0.0.1:%%PORT_upstream%%;'),
    ]));
$t->start_nginx;

my %auth = (Authorization => "Bearer $token");
my $api = Identity::Test::UA->new(headers => { %auth, Accept => 'application/json' });

sub session_of {
    my ($ua) = @_;
    my $key = Identity::Test::session_key($ua->cookie('identity_session', '127.0.0.1') // '');
    return { key => $key, %{{ @{$t->redis('HGETALL', $key) || []} }} };
}

# ------------------------------------------------------------ what happens

my $chrome = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 '
           . '(KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36';
my $alice = Identity::Test::UA->new(headers => { 'User-Agent' => $chrome });
is($alice->oidc_login("$base/a", user => 'alice')->{status}, 200, "alice's login");
my $a1 = session_of($alice);
like($a1->{uid} // '', qr/^au_[0-9a-f]{32}$/, "alice's identity id");

my $bob = Identity::Test::UA->new;
is($bob->oidc_login("$base/b", user => 'bob')->{status}, 200, "bob's login");
my $b1 = session_of($bob);

# a login cancelled at the IdP; one whose state is forged
{
    my $ua = Identity::Test::UA->new;
    my $res = $ua->follow($ua->get("$base/cancel"));
    $res = $ua->follow($ua->get("$res->{url}/abort"));
    is($res->{status}, 403, 'a login cancelled at the IdP: 403');

    $ua = Identity::Test::UA->new;
    $res = $ua->oidc_login("$base/forged",
        stop => sub { $_[0] =~ m{/_identity/callback} });
    my $cb = Identity::Test::UA::resolve_url($res->{url}, $res->{h}{location});
    $cb =~ s/([?&]state=)[^&]*/$1 . Identity::Test::random_token()/e;
    is($ua->get($cb)->{status}, 400, 'a forged state: 400');
}

is($bob->get("$base/alice-only/x")->{status}, 403, 'bob refused by a rule');

# the API revokes bob's session
my $r = $api->request('DELETE', "$base/api/app/sessions/$b1->{id}");
is($r->{status}, 204, "bob's session revoked by the API");

# alice logs out
is($alice->get("$base/_identity/logout")->{status}, 302, "alice's logout");

# alice again, ended by a back-channel logout
my $alice2 = Identity::Test::UA->new;
is($alice2->oidc_login("$base/c", user => 'alice')->{status}, 200, "alice's second login");
my $a2 = session_of($alice2);
my $idp_client = Identity::Test::UA->new(headers => {
    Accept => '*/*', 'User-Agent' => 'oidc-provider', 'Accept-Language' => undef,
    'Sec-Fetch-Mode' => undef, 'Sec-Fetch-Dest' => undef,
    'Upgrade-Insecure-Requests' => undef });
$r = $idp_client->request('POST', $endpoint,
    body => 'logout_token=' . Identity::Test::UA::uri_escape(
        $t->idp_logout_token(sub => 'alice', sid => $a2->{idp_sid})),
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($r->{status}, 200, 'a back-channel logout');
is($t->redis('EXISTS', $a2->{key}), 0, 'it ended the session');

# a session past its maximum duration, noticed by the next request
my $alice3 = Identity::Test::UA->new;
is($alice3->oidc_login("$base/d", user => 'alice')->{status}, 200, "alice's third login");
my $a3 = session_of($alice3);
$t->redis('HSET', $a3->{key}, 'expires_at', time - 10);
is($alice3->get("$base/e")->{status}, 302, 'an expired session: sent to log in');

# the API deletes alice
$r = $api->request('DELETE', "$base/api/app/users/$a1->{uid}");
is($r->{status}, 204, 'alice deleted by the API');

my $token_id = 'token:' . substr(Digest::SHA::sha256_hex($token), 0, 8);

# ------------------------------------------------------------ the stream

# an event is sent without waiting for Redis: the last may follow its answer
# login failures that name no identity are in a stream of their own
for (1 .. 100) {
    last if ($t->redis('XLEN', 'identity:audit') // 0) >= 12
            && ($t->redis('XLEN', 'identity:audit:failures') // 0) >= 2;
    Time::HiRes::sleep(0.05);
}
sub id_cmp {
    my ($x, $y) = map { [split /-/] } @_;
    return $x->[0] <=> $y->[0] || $x->[1] <=> $y->[1];
}
my (@stream, %in);
for my $key ('identity:audit', 'identity:audit:failures') {
    for my $e (@{$t->redis('XRANGE', $key, '-', '+') || []}) {
        my %f = @{$e->[1]};
        push @stream, { id => $e->[0], %f, doc => decode_json($f{doc}) };
        $in{$stream[-1]{doc}{event}{id}} = $key;
    }
}
@stream = sort { id_cmp($a->{id}, $b->{id}) } @stream;
# (not by stream id: the two streams can give two events the same one)
my @anon = grep { $in{$_->{doc}{event}{id}} eq 'identity:audit:failures' } @stream;
is_deeply([sort map { $_->{doc}{event}{reason} } @anon], ['cancelled', 'state'],
          'the failures that name nobody are in identity:audit:failures');
is_deeply([map { $_->{user} } @anon], ['', ''], 'with an empty user field');

sub find_event {
    my ($list, %want) = @_;
    for my $e (@$list) {
        my $d = $e->{doc} // $e;
        next if $want{action} && ($d->{event}{action} // '') ne $want{action};
        next if $want{outcome} && ($d->{event}{outcome} // '') ne $want{outcome};
        next if $want{reason} && ($d->{event}{reason} // '') ne $want{reason};
        next if $want{user} && ($d->{user}{id} // '') ne $want{user};
        return $d;
    }
    return undef;
}

my @expect = (
    [ 'login success, alice', action => 'login', outcome => 'success', user => $a1->{uid} ],
    [ 'login success, bob', action => 'login', outcome => 'success', user => $b1->{uid} ],
    [ 'login success, alice again', action => 'login', outcome => 'success', user => $a1->{uid} ],
    [ 'login success, alice a third time', action => 'login', outcome => 'success',
      user => $a1->{uid} ],
    [ 'login failure, cancelled', action => 'login', outcome => 'failure', reason => 'cancelled' ],
    [ 'login failure, forged state', action => 'login', outcome => 'failure', reason => 'state' ],
    [ 'login failure, a rule', action => 'login', outcome => 'failure', reason => 'rule:email',
      user => $b1->{uid} ],
    [ 'revoked by the API', action => 'session_revoked', reason => 'api', user => $token_id ],
    [ 'logout', action => 'logout', user => $a1->{uid} ],
    # alice's second login, by another user agent: a new device (docs/risk.md)
    [ 'risk flagged', action => 'risk_flagged', user => $a1->{uid} ],
    [ 'revoked at logout', action => 'session_revoked', reason => 'logout', user => $a1->{uid} ],
    [ 'revoked back-channel', action => 'session_revoked', reason => 'backchannel' ],
    [ 'expired', action => 'session_expired', reason => 'max_duration', user => $a3->{uid} ],
    [ 'user deleted', action => 'user_deleted', user => $token_id ],
);

is(scalar @stream, scalar @expect, 'the streams hold one entry per event')
    or diag(join "\n", map { $_->{fields} // $_->{action} } @stream);

for my $x (@expect) {
    my ($name, %want) = @$x;
    ok(find_event(\@stream, %want), "stream: $name");
}

my $flag = find_event(\@stream, action => 'risk_flagged');
is_deeply([map { $_->{signal} } @{$flag->{risk} || []}], ['new_device'],
          'risk_flagged: the new device, with its flag');
is($flag->{session}{id}, $a2->{id}, 'risk_flagged: the session of the second login');
my $login = find_event(\@stream, action => 'login', outcome => 'success', user => $a1->{uid});
is($login->{user}{email}, 'alice@example.test', 'user.email');
is($login->{user}{name}, 'Alice Example', 'user.name');
is($login->{user}{username}, 'alice', 'user.username');
is($login->{session}{id}, $a1->{id}, 'session.id');
is($login->{identity}{provider}, 'test', 'identity.provider');
is($login->{source}{ip}, '127.0.0.1', 'source.ip');
is($login->{user_agent}{original}, $chrome, 'user_agent.original');
is($login->{user_agent}{name}, 'Chrome', 'user_agent.name');
is($login->{user_agent}{os}{name}, 'Windows', 'user_agent.os.name');
is($login->{user_agent}{device}{name}, 'Desktop', 'user_agent.device.name');
is($login->{source}{geo}{country_iso_code}, 'JP', 'source.geo.country_iso_code');
is($login->{source}{geo}{location}{lat}, 35.6895, 'source.geo.location.lat');
is($login->{source}{geo}{location}{lon}, 139.6917, 'source.geo.location.lon');
is($login->{url}{domain}, '127.0.0.1', 'url.domain');
like($login->{url}{full} // '', qr{^http://127\.0\.0\.1:\d+$}, 'url.full');
like($login->{'@timestamp'} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, '@timestamp');
like($login->{event}{id} // '', qr/^[0-9a-f]{32}$/, 'event.id');
is($login->{event}{kind}, 'event', 'event.kind');
is_deeply($login->{event}{category}, ['authentication'], 'event.category');
is_deeply(find_event(\@stream, action => 'user_deleted')->{event}{category}, ['iam'],
          'event.category of user_deleted');
is_deeply(find_event(\@stream, action => 'logout')->{event}{category}, ['session'],
          'event.category of logout');
ok(!exists $login->{risk}, 'no risk without flags');

my $api_rev = find_event(\@stream, action => 'session_revoked', reason => 'api');
is($api_rev->{user}{target}{id}, $b1->{id}, 'the API revocation names the session as target');
unlike(JSON::PP->new->canonical->encode($api_rev), qr/\Q$token\E/, 'never the token');
my $del = find_event(\@stream, action => 'user_deleted');
is($del->{user}{target}{id}, $a1->{uid}, 'user_deleted names the user as target');
my $bc = find_event(\@stream, action => 'session_revoked', reason => 'backchannel');
is($bc->{identity}{sessions}, 1, 'back-channel: one session ended');

my ($bob_login) = grep { $_->{doc}{event}{action} eq 'login' && ($_->{user} // '') eq $b1->{uid} } @stream;
is($bob_login->{action}, 'login', 'the entry\'s action field');
is($bob_login->{user}, $b1->{uid}, 'the entry\'s user field');

# ------------------------------------------------------------ the file

# a worker's thread writes the file: the last line may follow its answer
sub audit_lines {
    my ($name, $n) = @_;
    my $text = '';
    for (1 .. 100) {
        $text = -e $t->testdir . "/$name" ? $t->read_file($name) : '';
        last if (() = $text =~ /\n/g) >= $n;
        Time::HiRes::sleep(0.05);
    }
    return $text;
}

my @file = map { decode_json($_) } grep { length } split /\n/, audit_lines('audit.log', scalar @expect);
is(scalar @file, scalar @expect, 'the file has one line per event');
for my $x (@expect) {
    my ($name, %want) = @$x;
    ok(find_event(\@file, %want), "file: $name");
}
is_deeply([sort map { $_->{event}{id} } @file], [sort map { $_->{doc}{event}{id} } @stream],
          'the same events as the stream');

# ------------------------------------------------------------ syslog

my @syslog;
my $sel = IO::Select->new($syslog);
while ($sel->can_read(1)) {
    my $dgram;
    $syslog->recv($dgram, 65536);
    push @syslog, $dgram;
    last if @syslog >= @expect;
}
is(scalar @syslog, scalar @expect, 'syslog: one datagram per event');
like($syslog[0] // '', qr/^<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ identity: \{/,
     'syslog: a header with the tag, then the JSON');
my @sdocs = map { /identity: (\{.*\})$/s ? decode_json($1) : () } @syslog;
for my $x (@expect) {
    my ($name, %want) = @$x;
    ok(find_event(\@sdocs, %want), "syslog: $name");
}

# ------------------------------------------------------------ the API

$r = Identity::Test::UA->new(headers => { Accept => 'application/json' })
    ->get("$base/api/app/events");
is($r->{status}, 401, 'app/events without a token: 401');
$r = Identity::Test::UA->new(headers => { Accept => 'application/json' })
    ->get("$base/api/app/stats/logins");
is($r->{status}, 401, 'app/stats/logins without a token: 401');

$r = $api->get("$base/api/app/events");
is($r->{status}, 200, 'app/events: 200');
my $body = decode_json($r->{body});
is(scalar @{$body->{events}}, scalar @expect, 'every event');
is($body->{events}[0]{id}, $stream[-1]{id}, 'newest first, with the stream id');
is($body->{events}[0]{event}{action}, 'user_deleted', 'the newest is the last');
is($body->{uri}, "$base/api/app/events", 'uri');
is($body->{next_page_uri}, undef, 'one page: no next_page_uri');

# paging by 4
my @paged;
my $next = "$base/api/app/events?limit=4";
my $pages = 0;
while ($next && $pages < 10) {
    $r = $api->get($next);
    is($r->{status}, 200, "page $pages: 200");
    $body = decode_json($r->{body});
    push @paged, @{$body->{events}};
    $next = $body->{next_page_uri};
    $pages++;
}
# four pages of 4, 4, 4 and 2; or five, when two events of the two
# streams got the same id and a page ended before the pair
ok($pages == 4 || $pages == 5, "14 events in pages of 4: $pages pages");
is_deeply([map { $_->{id} } @paged], [reverse map { $_->{id} } @stream],
          'the pages are the two streams merged, newest first, none twice');

# filters
$r = $api->get("$base/api/app/events?action=login");
$body = decode_json($r->{body});
is(scalar @{$body->{events}}, 7, 'action=login: seven');
is(scalar(grep { $_->{event}{action} ne 'login' } @{$body->{events}}), 0, 'only logins');

$r = $api->get("$base/api/app/events?user=$b1->{uid}&limit=1");
$body = decode_json($r->{body});
is(scalar @{$body->{events}}, 1, 'user= and limit=1: one');
# the newest: the API's revocation of his session, filed under bob
is($body->{events}[0]{event}{reason}, 'api', "bob's: the API revoked his session");
is($body->{events}[0]{user}{target}{id}, $b1->{id}, 'his session, by the admin');
like($body->{next_page_uri} // '', qr/[?&]user=\Q$b1->{uid}\E/, 'the filter kept in next_page_uri');
$r = $api->get($body->{next_page_uri});
$body = decode_json($r->{body});
is(scalar @{$body->{events}}, 1, "bob's second event on the next page");
is($body->{events}[0]{event}{action}, 'login', "bob's, an older one");
is($body->{events}[0]{user}{id}, $b1->{uid}, 'his own');

$r = $api->get("$base/api/app/events?limit=&before_id=&user=&action=");
is($r->{status}, 200, 'empty parameters are absent ones: 200');
is(scalar @{decode_json($r->{body})->{events}}, scalar @expect, 'every event');
$r = $api->get("$base/api/app/events?user=au_" . ('0' x 32));
is(scalar @{decode_json($r->{body})->{events}}, 0, 'an unknown user: none');

$r = $api->get("$base/api/app/events?action=session_expired");
$body = decode_json($r->{body});
is(scalar @{$body->{events}}, 1, 'action=session_expired: one');

# HEAD, other methods
$r = $api->request('HEAD', "$base/api/app/events");
is($r->{status}, 200, 'HEAD app/events: 200');
is($r->{body} // '', '', 'with no body');
$r = $api->request('POST', "$base/api/app/events", body => '');
is($r->{status}, 405, 'POST app/events: 405');
is($r->{h}{allow}, 'GET, HEAD', 'Allow: GET, HEAD');
$r = $api->request('DELETE', "$base/api/app/stats/logins");
is($r->{status}, 405, 'DELETE app/stats/logins: 405');

# bad parameters
for my $q ('limit=0', 'limit=101', 'limit=x', 'limit=-1', 'before_id=abc',
           'before_id=1-', 'before_id=-1', 'before_id=1-2-3', 'before_id=' . ('1' x 21) . '-0',
           'user=bob', 'user=as_' . ('0' x 32), 'user=au_' . ('0' x 31),
           'action=nope', 'action=LOGIN', 'user=' . ('a' x 1000))
{
    $r = $api->get("$base/api/app/events?$q");
    is($r->{status}, 400, "app/events?$q: 400");
    like($r->{body}, qr/"status_code":400/, 'with a JSON error') if $r->{status} == 400;
}
for my $q ('range=1y', 'range=24', 'range=7D') {
    $r = $api->get("$base/api/app/stats/logins?$q");
    is($r->{status}, 400, "app/stats/logins?$q: 400");
}

# ------------------------------------------------------------ login stats

for my $range ('24h', '7d') {
    $r = $api->get("$base/api/app/stats/logins?range=$range");
    is($r->{status}, 200, "stats $range: 200");
    $body = decode_json($r->{body});
    my ($n, $step) = $range eq '24h' ? (24, 3600) : (28, 21600);
    is($body->{range}, $range, "range $range");
    is($body->{bucket_seconds}, $step, "bucket_seconds $step");
    is(scalar @{$body->{buckets}}, $n, "$n buckets");
    my ($s, $f) = (0, 0);
    $s += $_->{success} for @{$body->{buckets}};
    $f += $_->{failure} for @{$body->{buckets}};
    is($s, 4, "$range: four successful logins");
    is($f, 2, "$range: two failed (the rules' refusals are not logins)");
    like($body->{buckets}[0]{start}, qr/^\d{4}-\d\d-\d\dT\d\d:00:00Z$/, 'RFC 3339 starts');
    my @starts = map { $_->{start} } @{$body->{buckets}};
    is_deeply(\@starts, [sort @starts], 'oldest first');
    ok($body->{buckets}[-1]{success} + ($body->{buckets}[-2]{success} // 0) >= 1,
       'the logins are in the last buckets');
}
$r = $api->get("$base/api/app/stats/logins");
is(decode_json($r->{body})->{range}, '24h', 'the default range is 24h');

my @keys = @{$t->redis('KEYS', 'identity:logins:*') || []};
is(scalar @keys, 1, 'one day\'s counters') or diag("@keys");
my $ttl = $t->redis('TTL', $keys[0] // 'none');
ok($ttl > 8 * 86400 && $ttl <= 9 * 86400, "kept 9 days (ttl $ttl)");

# ------------------------------------------------------------ USR1 reopens the file

my $dir = $t->testdir;
rename("$dir/audit.log", "$dir/audit.log.1") or die "rename: $!";
my $old_lines = () = $t->read_file('audit.log.1') =~ /\n/g;
kill 'USR1', $t->{procs}{nginx};
# the master reopens, then tells its worker
for (1 .. 100) {
    my $n = () = $t->error_log =~ /reopening logs/g;
    last if $n >= 2;
    Time::HiRes::sleep(0.05);
}
my $dave = Identity::Test::UA->new;
is($dave->oidc_login("$base/g", user => 'bob')->{status}, 200, 'a login after USR1');
my @new = map { decode_json($_) } grep { length } split /\n/, audit_lines('audit.log', 1);
is(scalar @new, 1, 'its event is in the reopened file');
is($new[0]{event}{action}, 'login', 'a login');
my $old_now = () = $t->read_file('audit.log.1') =~ /\n/g;
is($old_now, $old_lines, 'and not in the file moved away');

# ------------------------------------------------------------ Redis refuses the event

# the stream's key holds a string: XADD fails, the login does not
$t->redis('DEL', 'identity:audit');
$t->redis('SET', 'identity:audit', 'not a stream');
my $lines = () = $t->read_file('audit.log') =~ /\n/g;
my $carol = Identity::Test::UA->new;
is($carol->oidc_login("$base/f", user => 'bob')->{status}, 200,
   'a login whose event Redis refuses still succeeds');
is($t->redis('GET', 'identity:audit'), 'not a stream', 'Redis took no event');
my $lines2 = () = audit_lines('audit.log', $lines + 1) =~ /\n/g;
is($lines2, $lines + 1, 'the file still has it');
$t->redis('DEL', 'identity:audit', 'identity:audit:failures');
$r = $api->get("$base/api/app/events");
is($r->{status}, 200, 'app/events of no stream: 200');
is_deeply(decode_json($r->{body})->{events}, [], 'no events');
is(decode_json($r->{body})->{next_page_uri}, undef, 'and no next page');

# an id in both streams (the same millisecond and sequence): the main
# stream's first, and no page splits the pair
for my $x (['identity:audit', '5-1', 'm5'], ['identity:audit', '7-1', 'm7'],
           ['identity:audit:failures', '6-1', 'f6'],
           ['identity:audit:failures', '7-1', 'f7'],
           ['identity:audit:failures', '8-1', 'f8'])
{
    $t->redis('XADD', $x->[0], $x->[1], 'action', 'login',
              'user', $x->[0] =~ /failures/ ? '' : $b1->{uid},
              'doc', '{"event":{"action":"login","reason":"' . $x->[2] . '"}}');
}
# with action= each stream is read 1000 entries deep: past the pair that
# starts a page of limit=1, the page still ends (review17b)
for my $case ([2, [1, 2, 2]], [1, [1, 2, 1, 1, 0]],
              ['1&action=login', [1, 2, 1, 1]])
{
    my ($limit, $sizes) = @$case;
    my (@seen, @n);
    my $next = "$base/api/app/events?limit=$limit";
    while ($next && @n < 10) {
        my $b = decode_json($api->get($next)->{body});
        push @n, scalar @{$b->{events}};
        push @seen, map { "$_->{id} $_->{event}{reason}" } @{$b->{events}};
        $next = $b->{next_page_uri};
    }
    is_deeply(\@seen, ['8-1 f8', '7-1 m7', '7-1 f7', '6-1 f6', '5-1 m5'],
              "limit=$limit: both streams, newest first, the pair once each");
    is_deeply(\@n, $sizes, "limit=$limit: pages of @$sizes");
}
$r = $api->get("$base/api/app/events?user=$b1->{uid}");
is_deeply([map { $_->{event}{reason} } @{decode_json($r->{body})->{events}}],
          ['m7', 'm5'], 'user=: the main stream only');
$t->redis('DEL', 'identity:audit', 'identity:audit:failures');

# ------------------------------------------------------------ configuration

$t->stop_nginx;

for my $bad (['identity_audit_stream_size -1;', qr/invalid number/],
             ['identity_audit_stream_size many;', qr/invalid number/],
             ['identity_audit_log %%TESTDIR%%/a.log yaml;',
              qr/invalid value "yaml" in "identity_audit_log"/],
             ['identity_audit_log %%TESTDIR%%/a.log; identity_audit_log %%TESTDIR%%/b.log;',
              qr/"identity_audit_log" directive is duplicate/],
             ['identity_audit_log "";', qr/invalid value "" in "identity_audit_log"/],
             ['identity_audit_log syslog:nowhere;', qr/syslog|server/])
{
    $t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, http => $bad->[0]));
    my ($rc, $out) = $t->nginx_test_conf;
    isnt($rc, 0, "nginx -t refuses $bad->[0]");
    like($out, $bad->[1], '... saying why');
}
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => 'identity_audit_stream_size 0; identity_audit_log %%TESTDIR%%/a.log json;'));
my ($rc, $out) = $t->nginx_test_conf;
is($rc, 0, 'nginx -t takes a stream size of 0 and a file') or diag($out);

# ------------------------------------------------------------ the stream's size

# A login's event goes to Redis before its counter, on the same
# connection: once the counter has it, Redis has had the event too.
sub counted {
    my $n = 0;
    for my $k (@{$t->redis('KEYS', 'identity:logins:*') || []}) {
        my %h = @{$t->redis('HGETALL', $k) || []};
        $n += $h{$_} for grep { /:success$/ } keys %h;
    }
    return $n;
}
sub login_counted {
    my ($path) = @_;
    my $before = counted();
    my $st = Identity::Test::UA->new->oidc_login("$base$path", user => 'bob')->{status};
    for (1 .. 100) { last if counted() > $before; Time::HiRes::sleep(0.05) }
    return $st;
}

# one entry a stream node, so that "MAXLEN ~" trims to the entry
$t->redis('CONFIG', 'SET', 'stream-node-max-entries', '1');
$t->redis('DEL', 'identity:audit');
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => 'identity_audit_stream_size 3;'));
$t->start_nginx;
is(login_counted("/s$_"), 200, "stream size 3: login $_") for 1 .. 5;
my $len = $t->redis('XLEN', 'identity:audit');
ok($len >= 3 && $len <= 4, "identity_audit_stream_size 3: about 3 entries ($len) after 5 logins");
$t->stop_nginx;

$t->redis('DEL', 'identity:audit');
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => 'identity_audit_stream_size 0;'));
$t->start_nginx;
is(login_counted('/z'), 200, 'stream size 0: a login, counted');
is($t->redis('EXISTS', 'identity:audit'), 0, 'and no stream');

$t->done;
