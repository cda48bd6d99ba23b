#!/usr/bin/perl
# A Redis Cluster's slot map and redirects (ngx_http_identity_redis_cluster.c)
# through build/unit/redis_cluster: its own checks (key slots, well-formed
# and hostile CLUSTER SLOTS replies, MOVED and ASK), then the slot of each
# key below held against what a live redis-server --cluster-enabled yes
# answers to CLUSTER KEYSLOT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;

my $t = Identity::Test->new(name => 'cluster-slots');
my $dir = $t->testdir;
my $root = $Identity::Test::ROOT;
my $bin = "$root/build/unit/redis_cluster";

is(system('make', '-s', '-C', $root, $bin), 0, 'make builds redis_cluster');
ok(-x $bin, 'redis_cluster built') or BAIL_OUT('no redis_cluster');

# run(ARGS...) -> (exit code, stdout, stderr); no shell in between
sub run {
    my (@args) = @_;
    my $err = "$dir/stderr";
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $err or die "$err: $!";
        exec $bin, @args or die "exec $bin: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out, $t->read_file($err));
}

# ------------------------------------------------------------ the checks

my ($code, $out, $err) = run();
is($code, 0, 'the checks pass') or diag($err);
like($out, qr/^redis_cluster: (\d+) checks, 0 failed$/m, 'the summary');
my ($n) = $out =~ /(\d+) checks/;
cmp_ok($n // 0, '>', 150, 'all the checks ran');
is($err, '', 'no failure on stderr');

# ------------------------------------------------------------ a live Redis

$t->start_redis(args => ['--cluster-enabled', 'yes',
                         '--cluster-config-file', "$dir/nodes.conf"]);

my @keys = ('', 'foo', '123456789', '{user1000}.following', 'foo{}{bar}',
    'foo{{bar}}zap', 'foo{bar}{zap}', '{}', '{', '}', '}{', '{}foo', 'foo{',
    '{{}}', '{{a}}', 'x{a}y{b}z', "\x00", "{\x00}", "\xff\x00{\x01}z",
    "\x00{}\xff", "{\r\n}", '{identity}:session:0123456789abcdef',
    'identity:session:0123456789abcdef', "\xff" x 300,
    map { join '', map { chr int rand 256 } 1 .. 1 + int rand 40 } 1 .. 200);

# random keys with braces where they make a difference
push @keys, map { my $k = join '', map { ('{', '}', 'a', "\x00")[int rand 4] }
    1 .. 1 + int rand 12; $k } 1 .. 200;

my @want = map { $t->redis('CLUSTER', 'KEYSLOT', $_) } @keys;
ok(!grep({ !defined } @want), 'Redis answered each CLUSTER KEYSLOT')
    or diag($t->redis_error);

($code, $out, $err) = run('-k', map { unpack 'H*', $_ } @keys);
is($code, 0, 'redis_cluster -k exits 0') or diag($err);
my @got = split /\n/, $out;
is(scalar @got, scalar @keys, 'one slot a key');

my @diff = grep { ($got[$_] // '') ne ($want[$_] // '') } 0 .. $#keys;
ok(!@diff, 'every slot is the one Redis computes') or diag(join "\n",
    map { sprintf '%s: %s, Redis %s', unpack('H*', $keys[$_]),
          $got[$_] // '-', $want[$_] // '-' } @diff[0 .. ($#diff < 9 ? $#diff : 9)]);

done_testing();
