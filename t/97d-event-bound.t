#!/usr/bin/perl
# An audit event is at most 7 KiB of JSON (issue 17, part 1), so that a
# syslog datagram, header included, stays within the 8 KiB rsyslog takes by
# default: logins whose claims and User-Agent are at or past their bounds,
# made of the characters JSON escapes longest, and flagged by risk (a new
# device), give file lines and datagrams of valid JSON within the bound.
# The session's own bounds keep these documents under 3 KiB: events.c's
# cuts past 7 KiB are a guarantee that no input here reaches.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::INET;
use Time::HiRes ();
use JSON::PP qw(decode_json);
use Test::More;
use Identity::Test;
use Identity::Conf qw(identity_conf);

my $t = Identity::Test->new(name => 'event-bound');

my $rport = $t->start_redis;
my $base = 'http://127.0.0.1:' . $t->port('nginx');

# what JSON escapes: a quote or a backslash takes two bytes, a control
# character six ("\u0001")
my $esc = '"\\' x 64;
my @users = (
    { id => 'quotes', password => 'p', email => ('"' x 200) . '@example.test',
      name => $esc . ("\x01" x 128), username => '\\' x 256 },
    { id => 'controls', password => 'p', email => 'c@example.test',
      name => "\x01\"" x 200, username => '"' x 256 },
    { id => 'plain', password => 'p', email => 'p@example.test',
      name => 'Plain User', username => 'plain' },
);
my $issuer = $t->start_idp(redirect_uris => ["$base/_identity/callback"],
                           users => \@users);

my $syslog = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1',
                                   LocalPort => 0) or die "udp: $!";
my $sport = $syslog->sockport;

$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => "identity_audit_log %%TESTDIR%%/audit.log json;\n"
          . "    identity_audit_log syslog:server=127.0.0.1:$sport,tag=identity;"));
$t->start_nginx;

# a User-Agent past the session's bound, of characters JSON escapes (a
# control character would be refused by the IdP's server)
my $agent = "Mozilla/5.0 " . ("\"\\" x 400);
my $n = 0;
for my $u (@users) {
    for my $agent_of ($agent, "Other/1.0 $agent") {    # the second: a new device
        my $ua = Identity::Test::UA->new(headers => { 'User-Agent' => $agent_of });
        my $res = $ua->oidc_login("$base/x", user => $u->{id}, password => 'p');
        is($res->{status}, 200, "$u->{id}: a login");
        $n++;
    }
}

my @stream;
for (1 .. 100) {
    my $e = $t->redis('XRANGE', 'identity:audit', '-', '+') || [];
    @stream = map { { @{$_->[1]} }->{doc} } @$e;
    last if @stream >= $n;
    Time::HiRes::sleep(0.05);
}
ok(@stream >= $n, 'the stream has the events: ' . @stream);

my @lines;
for (1 .. 100) {
    @lines = split /\n/, $t->read_file('audit.log');
    last if @lines >= @stream;
    Time::HiRes::sleep(0.05);
}
is(scalar @lines, scalar @stream, 'the file has every event');

my @dgrams;
my $sel = IO::Select->new($syslog);
while (@dgrams < @stream && $sel->can_read(5)) {
    $syslog->recv(my $d, 65536);
    push @dgrams, $d;
}
is(scalar @dgrams, scalar @stream, 'syslog has every event');

my $max = 0;
for my $doc (@stream, @lines) {
    $max = length $doc if length $doc > $max;
}
ok($max <= 7168, "every document within 7 KiB (the longest $max bytes)");
ok(!(grep { length($_) > 8192 } @dgrams), 'every datagram within 8 KiB');

my @docs = grep { defined } map { eval { decode_json($_) } } @lines;
is(scalar @docs, scalar @lines, 'every line is one JSON document');
my @sdocs = grep { defined } map { /identity: (\{.*\})\z/s ? eval { decode_json($1) } : undef }
            @dgrams;
is(scalar @sdocs, scalar @dgrams, 'every datagram is a header and one JSON document');

# what was kept is the start of what the provider said
my %by_id;
for my $u (@users) {
    my @mine = grep { ($_->{event}{action} // '') eq 'login'
                      && ($_->{user}{email} // '') ne ''
                      && index($u->{email}, $_->{user}{email}) == 0 } @docs;
    ok(@mine >= 2, "$u->{id}: the logins in the file");
    for my $d (@mine) {
        my $name = $d->{user}{name} // '';
        ok(length($name) > 0, "$u->{id}: a name kept");
    }
}
my ($plain) = grep { ($_->{user}{username} // '') eq 'plain' } @docs;
is($plain->{user}{name}, 'Plain User', 'a short document is whole');
ok($plain->{user_agent}, 'with its user agent');

$t->stop_nginx;
unlike($t->error_log, qr/audit event not made/, 'every event made');

# ------------------------------------------------------------ no route

# A syslog server the kernel will not send to: connect() of a UDP socket
# fails at once (broadcast without SO_BROADCAST: EACCES; no route:
# ENETUNREACH), and nginx's ngx_syslog says so at alert, each message, as
# for access_log syslog: (docs/events.md).  The login and the file go on.
$t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer,
    http => "identity_audit_log %%TESTDIR%%/audit2.log json;\n"
          . "    identity_audit_log syslog:server=255.255.255.255:514,tag=identity;"));
$t->start_nginx;
my $ua = Identity::Test::UA->new;
is($ua->oidc_login("$base/x", user => 'plain', password => 'p')->{status}, 200,
   'a login with a syslog server that cannot be reached');
my $text = '';
for (1 .. 100) {
    $text = -e $t->testdir . '/audit2.log' ? $t->read_file('audit2.log') : '';
    last if $text =~ /\n/;
    Time::HiRes::sleep(0.05);
}
my @events = map { decode_json($_) } split /\n/, $text;
ok((grep { ($_->{event}{action} // '') eq 'login' } @events), 'its event in the file');
like($t->error_log, qr/\[alert\].*connect\(\) failed \(13: /,
     "nginx's own alert, as for access_log syslog:");
$t->stop_nginx;

done_testing;
