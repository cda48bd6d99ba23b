#!/usr/bin/perl
# Paging the admin API across more than one page of sessions made by real
# logins: every session once, newest first, next_page_uri to the end, and a
# page that costs Redis O(limit), not O(sessions).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use POSIX qw(ceil);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'admin-paging');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice' },
        { id => 'bob', password => 'bob-password', email => 'bob@example.test',
          name => 'Bob Example', username => 'bob' },
    ]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1));
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

# ------------------------------------------------------------ 150 + 3 logins

# One browser per user keeps the IdP's cookies, so after its first login the
# IdP signs it in again without a form; dropping only the module's cookie
# makes the next visit a new login and a new session.

my (%ua, %first, @created, %user_of, @bad);

sub new_session {
    my ($user) = @_;
    my $start = "$base/_identity/login?redirect_path=/x";
    my ($ua, $r, @chain);

    if (!$ua{$user}) {
        $ua = $ua{$user} = Identity::Test::UA->new;
        $r = $ua->oidc_login($start, user => $user);
        @chain = @{$ua->{trace}};
        $first{$user} = { %$r, trace => [@chain] };

    } else {
        $ua = $ua{$user};
        $ua->delete_cookie('identity_session');
        @chain = $ua->follow($ua->get($start));
        $r = $chain[-1];
        push @bad, "$user login " . @created . ': IdP asked for the password again'
            if grep { $_->{url} =~ m{/interaction/} } @chain;
    }

    my $saw = upstream_saw($r->{body});
    if ($r->{status} != 200 || $r->{url} ne "$base/x" || $saw->{uri} ne '/x'
        || $saw->{session} !~ /^as_[0-9a-f]{32}$/)
    {
        push @bad, "$user login " . @created . ": $r->{status} at $r->{url}";
        return;
    }

    push @created, $saw->{session};
    $user_of{$saw->{session}} = $saw->{id};
}

for my $i (1 .. 150) {
    new_session('alice');
    new_session('bob') if $i == 40 || $i == 90 || $i == 150;
}

ok(!@bad, 'all 153 logins came back to /x, with single sign-on after the first')
    or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
ok(scalar(grep { $_->{url} =~ m{/interaction/[^/]+/login$} } @{$first{alice}{trace} || []}),
   'the first login went through the IdP login form');
is(scalar(keys %user_of), 153, '153 distinct $identity_session_id');
my $alice = upstream_saw($first{alice}{body})->{id};
my $bob = upstream_saw($first{bob}{body})->{id};
like($alice, qr/^au_[0-9a-f]{32}$/, 'alice has an identity');
isnt($alice, $bob, 'bob has another');
is(scalar(grep { $user_of{$_} eq $alice } @created), 150, 'alice: 150 sessions');
is(scalar(grep { $user_of{$_} eq $bob } @created), 3, 'bob: 3 sessions');
is($t->redis('ZCARD', 'identity:sessions'), 153, 'Redis indexes 153 sessions');
is($t->redis('ZCARD', "identity:user_sessions:$alice"), 150, 'and 150 of alice');

my @newest = reverse @created;
my @alice_newest = grep { $user_of{$_} eq $alice } @newest;
my @bob_newest = grep { $user_of{$_} eq $bob } @newest;

# ------------------------------------------------------------ walking the pages

sub get_json {
    my ($url) = @_;
    my $r = $api->get($url);
    $r->{json} = eval { decode_json($r->{body}) };
    return $r;
}

# Follows next_page_uri from $path; returns the pages (responses).
sub walk {
    my ($path) = @_;
    my @pages;
    my $url = "$base/api/$path";
    while (@pages < 200) {
        my $r = get_json($url);
        push @pages, $r;
        last if $r->{status} != 200 || !defined $r->{json}{next_page_uri};
        $url = $r->{json}{next_page_uri};
    }
    return @pages;
}

sub check_walk {
    my ($path, $limit, $expect) = @_;
    my $name = "walk $path";
    my @pages = walk($path);
    my $n_pages = ceil(@$expect / $limit);

    is(scalar(grep { $_->{status} == 200 } @pages), scalar @pages, "$name: every page 200")
        or diag(explain([map { "$_->{status} $_->{url} $_->{body}" } @pages]));
    is(scalar @pages, $n_pages, "$name: $n_pages pages");

    my @sizes = map { scalar @{$_->{json}{application_sessions} || []} } @pages;
    my @want = ((($limit) x ($n_pages - 1)), @$expect - $limit * ($n_pages - 1));
    is_deeply(\@sizes, \@want, "$name: page sizes @want");

    my @next = map { $_->{json}{next_page_uri} } @pages;
    is(scalar(grep { defined } @next[0 .. $#next - 1]), $#next,
       "$name: next_page_uri on every page but the last");
    ok(exists $pages[-1]{json}{next_page_uri} && !defined $next[-1],
       "$name: last page's next_page_uri is null");
    is(scalar(grep { defined && !m{^\Q$base\E/api/} } @next), 0,
       "$name: next_page_uri is an absolute URI of the API");

    my @s = map { @{$_->{json}{application_sessions} || []} } @pages;
    my @ids = map { $_->{id} } @s;
    my %seen;
    is(scalar(grep { $seen{$_}++ } @ids), 0, "$name: no session twice");
    is_deeply(\@ids, $expect, "$name: every session once, newest first");
    my @at = map { $_->{created_at} // '' } @s;
    is(scalar(grep { $at[$_] lt $at[$_ + 1] } 0 .. $#at - 1), 0,
       "$name: created_at never increases")
        or diag("@at");
    is(scalar(grep { ($_->{application_user}{id} // '') ne $user_of{$_->{id}} } @s), 0,
       "$name: each names its user");
    return @pages;
}

my @pages = check_walk('app/sessions', 100, \@newest);
is(scalar @{$pages[0]{json}{application_sessions}}, 100, 'default page: 100 sessions');
like($pages[0]{json}{next_page_uri}, qr/[?&]limit=100(&|$)/, 'default limit in next_page_uri');
like($pages[0]{json}{next_page_uri}, qr/[?&]before_id=\Q$newest[99]\E(&|$)/,
     'next page starts after the last session of this one');
is($pages[0]{json}{uri}, "$base/api/app/sessions", 'list uri');

check_walk('app/sessions?limit=7', 7, \@newest);
check_walk('app/sessions?limit=51', 51, \@newest);     # 153 = 3 x 51: no empty last page
check_walk('app/sessions?limit=100', 100, \@newest);
check_walk('app/sessions?limit=1', 1, \@newest);

check_walk("app/users/$alice/sessions", 100, \@alice_newest);
check_walk("app/users/$alice/sessions?limit=7", 7, \@alice_newest);
check_walk("app/users/$alice/sessions?limit=50", 50, \@alice_newest);
check_walk("app/users/$alice/sessions?limit=75", 75, \@alice_newest);
check_walk("app/users/$bob/sessions", 100, \@bob_newest);
check_walk("app/users/$bob/sessions?limit=2", 2, \@bob_newest);

my $r = get_json("$base/api/app/users/$alice/sessions");
is($r->{json}{uri}, "$base/api/app/users/$alice/sessions", 'per-user list uri');
like($r->{json}{next_page_uri} // '',
     qr{^\Q$base\E/api/app/users/\Q$alice\E/sessions\?}, 'per-user next_page_uri stays per user');

# limit bounds

$r = get_json("$base/api/app/sessions?limit=100");
is($r->{status}, 200, 'limit=100 is allowed');
is(scalar @{$r->{json}{application_sessions}}, 100, 'limit=100: 100 sessions');
for my $path ('app/sessions', "app/users/$alice/sessions") {
    for my $q ('limit=101', 'limit=1000', 'limit=0') {
        $r = get_json("$base/api/$path?$q");
        is($r->{status}, 400, "$path?$q: 400");
        is($r->{json}{status_code}, 400, "$path?$q: error JSON");
    }
}

# a session of another user is not a cursor for alice's sessions

$r = get_json("$base/api/app/users/$alice/sessions?before_id=$bob_newest[0]");
is($r->{status}, 400, "bob's session as before_id of alice's list: 400");

# ------------------------------------------------------------ cost of a page

sub hgetall_calls {
    my $info = $t->redis('INFO', 'commandstats') // '';
    return $info =~ /^cmdstat_hgetall:calls=(\d+)/m ? $1 : 0;
}

for ([first => "app/sessions?limit=5"],
     [deep => "app/sessions?limit=5&before_id=$newest[120]"],
     ['first of a user' => "app/users/$alice/sessions?limit=5"],
     ['deep in a user' => "app/users/$alice/sessions?limit=5&before_id=$alice_newest[140]"])
{
    my ($name, $path) = @$_;
    my $before = hgetall_calls();
    $r = get_json("$base/api/$path");
    my $calls = hgetall_calls() - $before;
    is($r->{status}, 200, "$name page of 5: 200");
    is(scalar @{$r->{json}{application_sessions} || []}, 5, "$name page of 5: 5 sessions");
    ok($calls > 0, "$name page of 5: Redis counted its HGETALLs ($calls)");
    cmp_ok($calls, '<=', 2 * (5 + 1) + 2, "$name page of 5: O(limit) HGETALLs, not 150");
}

$t->done;
