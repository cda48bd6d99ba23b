#!/usr/bin/perl
# The parsers of a request's input that need no request
# (ngx_http_identity_parse.c), through build/unit/parse_check: the Cookie
# header (a cookie found, absent, refused when sent twice or in an oversized
# header; the module's cookies stripped for upstream), a session token's
# shape, return targets (the open-redirect gate), the admin API's routes
# and ids, and the parameters of a POSTed form.  make fuzz fuzzes the same
# functions (unit/fuzz_cookie.c, fuzz_return.c, fuzz_admin.c, fuzz_form.c);
# this holds their known answers in make test.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;

my $t = Identity::Test->new(name => 'parse');
my $dir = $t->testdir;
my $root = $Identity::Test::ROOT;
my $bin = "$root/build/unit/parse_check";

is(system('make', '-s', '-C', $root, $bin), 0, 'make builds parse_check');
ok(-x $bin, 'parse_check built') or BAIL_OUT('no parse_check');

my $err = "$dir/stderr";
my $out = `$bin 2>$err`;
my $code = $? >> 8;

is($code, 0, 'the checks pass') or diag($t->read_file($err));
like($out, qr/^parse_check: (\d+) checks, 0 failed$/m, 'the summary');
my ($n) = $out =~ /(\d+) checks/;
cmp_ok($n // 0, '>=', 84, 'all the checks ran');
is($t->read_file($err), '', 'no failure on stderr');

# the seeds make fuzz starts from are committed
for my $target (qw(cookie return admin form)) {
    my @seeds = glob "$root/unit/corpus-$target/*";
    cmp_ok(scalar @seeds, '>=', 5, "unit/corpus-$target has seeds");
}

done_testing();
