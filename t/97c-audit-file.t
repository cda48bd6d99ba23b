#!/usr/bin/perl
# identity_audit_log's file is written without blocking the worker (issue
# 17, part 1): its target here is a FIFO that a reader holds open but does
# not read, so that write() would block; logins, the admin API and forged
# callbacks still answer, and once the reader drains the FIFO it gets the
# lines, whole and in the stream's order, and the lines that did not fit
# the worker's buffer are counted in the error log.  Then a burst of events
# into a regular file: none is lost, each line is one JSON document.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Fcntl qw(O_RDONLY O_NONBLOCK F_GETFL F_SETFL);
use POSIX qw(mkfifo);
use Time::HiRes ();
use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'audit-file');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');
my $issuer = $t->start_idp(
    redirect_uris => ["$base/_identity/callback"],
    users => [
        { id => 'alice', password => 'alice-password', email => 'alice@example.test',
          name => 'Alice Example', username => 'alice' },
    ]);

my $token = 'admin-' . Identity::Test::random_token(24);
$t->write_file('admin.token', "$token\n");
my $api = Identity::Test::UA->new(headers => { Authorization => "Bearer $token",
                                               Accept => 'application/json' });

# both streams (docs/events.md): the known identities' and the anonymous
# failures', in the order Redis took them; an id both have is the main
# stream's first, as the events here came in that order
my @streams = ('identity:audit', 'identity:audit:failures');

sub stream_ids {
    my @all;
    for my $rank (0, 1) {
        my $entries = $t->redis('XRANGE', $streams[$rank], '-', '+') || [];
        for (@$entries) {
            my ($ms, $seq) = split /-/, $_->[0];
            push @all, [$ms, $seq, $rank,
                        decode_json({ @{$_->[1]} }->{doc})->{event}{id}];
        }
    }
    return map { $_->[3] }
           sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] || $a->[2] <=> $b->[2] } @all;
}

sub stream_len {
    my $n = 0;
    $n += $t->redis('XLEN', $_) // 0 for @streams;
    return $n;
}

sub wait_stream {
    my ($n) = @_;
    for (1 .. 200) {
        last if stream_len() >= $n;
        Time::HiRes::sleep(0.05);
    }
    return stream_ids();
}

# ------------------------------------------------------------ a blocked FIFO

my $fifo = $t->testdir . '/audit.fifo';
mkfifo($fifo, 0600) or die "mkfifo: $!";

# the master opens the FIFO for writing: it needs a reader, which reads
# nothing until told; the pipe made as small as Linux allows (a page)
sysopen(my $reader, $fifo, O_RDONLY | O_NONBLOCK) or die "open fifo: $!";
fcntl($reader, 1031, 4096);    # F_SETPIPE_SZ

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1,
    http => "identity_audit_log $fifo json;\n"
          . "    identity_audit_stream_size 1000;"));
$t->start_nginx;

# a long User-Agent makes each login's line about 2 KiB: two fill the pipe
my $agent = 'Mozilla/5.0 (X11; Linux x86_64) ' . ('a' x 2000);
my ($answered, $sessions) = (0, 0);

for my $i (1 .. 8) {
    my $ua = Identity::Test::UA->new(headers => { 'User-Agent' => $agent },
                                     timeout => 30);
    my $res = eval { $ua->oidc_login("$base/x$i", user => 'alice') };
    $answered++ if $res && $res->{status} == 200;
    my $cookie = $ua->cookie('identity_session', '127.0.0.1') // '';
    my $id = $t->redis('HGET', Identity::Test::session_key($cookie), 'id');
    next unless $id;
    $sessions++;
    $res = eval { $api->request('DELETE', "$base/api/app/sessions/$id") };
    $answered++ if $res && $res->{status} == 204;
}
is($answered, 16, 'logins and revocations answer while the file is blocked');
is($sessions, 8, 'each login made its session');

my $res = eval { $api->get("$base/api/app/events?limit=5") };
is($res && $res->{status}, 200, 'the admin API answers too');

# more than the worker holds: 300 forged callbacks, a login failure each,
# about 100 KiB in all (the pipe and the buffer hold 68); those past its buffer are dropped and counted
my $forged = 0;
for my $i (1 .. 300) {
    my $res = eval { Identity::Test::UA->new(timeout => 30)->get(
        "$base/_identity/callback?code=c$i&state=" . Identity::Test::random_token()) };
    $forged++ if $res && $res->{status} == 400;
}
is($forged, 300, 'forged callbacks answer while the file is blocked');

my @ids = wait_stream(316);
is(scalar @ids, 316, "the streams have the 316 events");

# now the reader drains the FIFO, until nothing came for 2 s (30 s at most)
sub drain {
    my ($got) = @_;
    my ($end, $quiet) = (time + 30, time + 2);
    while (time < $end && time < $quiet) {
        my $n = sysread($reader, $$got, 65536, length $$got);
        if ($n) {
            $quiet = time + 2;
        } else {
            Time::HiRes::sleep(0.05);
        }
    }
}

my $got = '';
drain(\$got);
$t->stop_nginx;
drain(\$got);
close $reader;

my @lines = split /\n/, $got, -1;
is(pop @lines, '', 'the FIFO ends with a whole line');
my @docs = grep { defined } map { eval { decode_json($_) } } @lines;
is(scalar @docs, scalar @lines, 'each line is one JSON document');
ok(@docs >= 16, 'the lines of the logins and revocations came through: ' . @docs);
is_deeply([map { $_->{event}{id} } @docs[0 .. 15]], [@ids[0 .. 15]],
          'in the order of the stream');

# the rest: a part of the stream's events, in order, and the others counted
my %at;
@at{@ids} = 0 .. $#ids;
my @pos = map { $at{$_->{event}{id}} // -1 } @docs;
ok(!(grep { $pos[$_] <= $pos[$_ - 1] } 1 .. $#pos), 'every line an event, in order');
my @told = $t->error_log =~ /\[error\].*audit log ".*audit\.fifo": lines lost: (\d+)/g;
ok(@told >= 1, 'the lines lost were said at error');
my $lost = 0;
$lost += $_ for @told;
is($lost + @docs, 316, "each event written or counted lost ($lost lost)");

# ------------------------------------------------------------ a burst

$t->redis('DEL', @streams);
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1,
    http => "identity_audit_log %%TESTDIR%%/audit.log json;\n"
          . "    identity_audit_stream_size 1000;"));
$t->start_nginx;

# a callback with a state nobody issued: a login failure each, at once
my @pending = map {
    Identity::Test::UA->new->start_request('GET',
        "$base/_identity/callback?code=c$_&state=" . Identity::Test::random_token())
} 1 .. 200;
my @status = map { $_->finish->{status} } @pending;
is(scalar(grep { $_ == 400 } @status), 200, '200 forged callbacks: 400 each');

@ids = wait_stream(200);
is(scalar @ids, 200, 'the failures stream has 200 events');

my @file;
for (1 .. 200) {
    @file = split /\n/, $t->read_file('audit.log');
    last if @file >= 200;
    Time::HiRes::sleep(0.05);
}
@docs = grep { defined } map { eval { decode_json($_) } } @file;
is(scalar @file, 200, 'the file has 200 lines');
is(scalar @docs, 200, 'each one JSON document');
is(scalar(grep { ($_->{event}{reason} // '') eq 'state' } @docs), 200,
   'each the failure of a forged callback');
is_deeply([sort map { $_->{event}{id} } @docs], [sort @ids], 'the events of the stream');
unlike($t->error_log, qr/audit log ".*audit\.log": lines lost: \d+/, 'nothing lost');

done_testing;
