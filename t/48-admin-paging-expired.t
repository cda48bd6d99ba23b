#!/usr/bin/perl
# The admin API's session list when the newest sessions have ended in
# Redis (idled out: the record gone, the index entry still there): a page
# examines at most 4 x (limit + 1) entries, and when every one of them
# had ended the page must still say where to go on (next_page_uri), not
# look like the last one.  In a Redis Cluster the same page of one shard
# would otherwise end that shard for the merged list, skipping its live
# sessions.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf upstream_saw);

my $t = Identity::Test->new(name => 'admin-paging-expired');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [ { id => 'alice', password => 'alice-password', email => 'alice@example.test',
                 name => 'Alice Example', username => 'alice' } ]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1));
$t->start_nginx;

my $api = Identity::Test::UA->new(headers => {
    Accept => 'application/json', 'Sec-Fetch-Mode' => undef,
    Authorization => "Bearer $token" });

my $ua = Identity::Test::UA->new;
my (@created, %cookie);
my $start = "$base/_identity/login?redirect_path=/x";
for my $i (1 .. 12) {
    my $r;
    if ($i == 1) {
        $r = $ua->oidc_login($start, user => 'alice');
    } else {
        $ua->delete_cookie('identity_session');
        my @chain = $ua->follow($ua->get($start));
        $r = $chain[-1];
    }
    my $saw = upstream_saw($r->{body});
    push @created, $saw->{session} // '';
    $cookie{$saw->{session} // ''} = $ua->cookie('identity_session', '127.0.0.1');
}
is(scalar(grep { /^as_[0-9a-f]{32}$/ } @created), 12, '12 sessions');

# the 10 newest end in Redis (as an idle timeout does): only the index keeps them
for my $sid (@created[2 .. 11]) {
    $t->redis('DEL', 'identity:session:' . substr($sid, 3));
}
is($t->redis('ZCARD', 'identity:sessions'), 12, 'the index still names 12');

my ($before, @ids, @status, $pages);
for (1 .. 20) {
    my $r = $api->get("$base/api/app/sessions?limit=1" . ($before ? "&before_id=$before" : ''));
    push @status, $r->{status};
    last unless $r->{status} == 200;
    my $b = decode_json($r->{body});
    $pages++;
    push @ids, map { $_->{id} } @{$b->{application_sessions}};
    last unless $b->{next_page_uri};
    ($before) = $b->{next_page_uri} =~ /before_id=([^&]+)/;
}
is_deeply(\@ids, [@created[1, 0]], "the 2 live sessions, newest first, in $pages pages of 1")
    or diag(explain { ids => \@ids, status => \@status });

($before, @ids) = ();
for (1 .. 20) {
    my $r = $api->get("$base/api/app/sessions?limit=1" . ($before ? "&before_id=$before" : ''));
    last unless $r->{status} == 200;
    my $b = decode_json($r->{body});
    push @ids, map { $_->{id} } @{$b->{application_sessions}};
    last unless $b->{next_page_uri};
    ($before) = $b->{next_page_uri} =~ /before_id=([^&]+)/;
}
is_deeply(\@ids, [@created[1, 0]], 'and again, the ended ones unindexed on the way');
ok($t->redis('ZCARD', 'identity:sessions') <= 3, 'the index keeps at most the one a cursor named');

done_testing;
