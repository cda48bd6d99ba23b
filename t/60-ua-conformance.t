#!/usr/bin/perl
# User-Agent parsing (ngx_http_identity_ua.c) through build/unit/ua_conformance:
# uap-core's own test files against Debian's regexes.yaml, a few real browsers
# with the device type derived from the parse, the specification's rules on a
# small regexes file written here, and files that must not load.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Identity::Test;

my $t = Identity::Test->new(name => 'ua');
my $dir = $t->testdir;
my $root = $Identity::Test::ROOT;
my $bin = "$root/build/unit/ua_conformance";
my $regexes = '/usr/share/uap-core/regexes.yaml';
my $tests = '/usr/share/uap-core/tests';

# Pass rates measured with uap-core 0.16.0 (Debian 12): 100%, 100% and
# 99.95% (7 device names longer than the 64-byte field are cut).  A rate
# under its floor is a regression.
my %floor = (
    'test_ua.yaml'     => 99.9,
    'test_os.yaml'     => 99.9,
    'test_device.yaml' => 99.9,
);

Identity::Test::need('uap-core');

is(system('make', '-s', '-C', $root, $bin), 0, 'make builds ua_conformance');
ok(-x $bin, 'ua_conformance built') or BAIL_OUT('no ua_conformance');

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

# parse(REGEXES, UA) -> { browser => ..., device_type => ... }
sub parse {
    my ($file, $ua) = @_;
    my ($code, $out, $err) = run('-p', $file, $ua);
    die "ua_conformance -p: exit $code: $err" if $code;
    my @keys = qw(browser browser_version os os_version device device_brand
        device_model device_type);
    my $re = join ' ', map { "$_=(.*)" } @keys;
    my @v = $out =~ /^$re\n\z/ or die "ua_conformance -p: \"$out\"";
    my %f;
    @f{@keys} = @v;
    return \%f;
}

# ------------------------------------------------------------ uap-core tests

my @files = map { "$tests/$_" } sort keys %floor;
my ($code, $out, $err) = run($regexes, @files);
is($code, 0, 'conformance run exits 0') or diag($err);
is($err, '', 'nothing on stderr (cached parses equal uncached ones)');

for my $name (sort keys %floor) {
    my ($passed, $total, $rate) =
        $out =~ /^\Q$name\E: (\d+)\/(\d+) passed \((\d+\.\d\d)%\)$/m;
    ok(defined $rate, "$name: a result line") or next;
    ok($total > 100, "$name: $total cases read");
    cmp_ok($rate, '>=', 99.0, "$name: at least 99% ($passed/$total)");
    cmp_ok($rate, '>=', $floor{$name}, "$name: at least the floor $floor{$name}%");
}

# ------------------------------------------------------------ real browsers

my @cases = (
    [ 'Chrome on Windows',
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36',
      { browser => 'Chrome', browser_version => '120.0.6099', os => 'Windows',
        os_version => '10', device => 'Other', device_type => 'Desktop' } ],
    [ 'Firefox on Linux',
      'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
      { browser => 'Firefox', browser_version => '121.0', os => 'Linux',
        os_version => '', device => 'Other', device_type => 'Desktop' } ],
    [ 'Safari on Mac',
      'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15',
      { browser => 'Safari', browser_version => '17.1', os => 'Mac OS X',
        os_version => '10.15.7', device => 'Mac', device_type => 'Desktop' } ],
    [ 'Safari on iPhone',
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1',
      { browser => 'Mobile Safari', browser_version => '17.1.2', os => 'iOS',
        os_version => '17.1.2', device => 'iPhone', device_brand => 'Apple',
        device_type => 'Mobile' } ],
    [ 'Safari on iPad',
      'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
      { browser => 'Mobile Safari', os => 'iOS', os_version => '16.6',
        device => 'iPad', device_type => 'Tablet' } ],
    [ 'Googlebot',
      'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
      { browser => 'Googlebot', browser_version => '2.1', device => 'Spider',
        device_type => 'Bot' } ],
    [ 'Chrome on an Android phone',
      'Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36',
      { browser => 'Chrome Mobile', os => 'Android', os_version => '13',
        device => 'Pixel 7', device_brand => 'Google',
        device_type => 'Mobile' } ],
    [ 'Samsung Internet on an Android tablet',
      'Mozilla/5.0 (Linux; Android 11; SAMSUNG SM-T500) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/14.0 Chrome/87.0.4280.141 Safari/537.36',
      { browser => 'Samsung Internet', browser_version => '14.0',
        os => 'Android', os_version => '11', device => 'Samsung SM-T500',
        device_brand => 'Samsung', device_model => 'SM-T500',
        device_type => 'Tablet' } ],
    [ 'Kindle Fire',
      'Mozilla/5.0 (Linux; Android 4.4.3; KFTHWI Build/KTU84M) AppleWebKit/537.36 (KHTML, like Gecko) Silk/47.1.79 like Chrome/47.0.2526.80 Safari/537.36',
      { browser => 'Amazon Silk', device_brand => 'Amazon',
        device_type => 'Tablet' } ],
    [ 'Edge on Windows Phone',
      'Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.14977',
      { os => 'Windows Phone', device_type => 'Mobile' } ],
    [ 'an Android TV',
      'Mozilla/5.0 (Linux; Android 9; SHIELD Android TV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
      { os => 'Android', device_type => 'Other' } ],
    [ 'curl', 'curl/7.88.1',
      { browser => 'curl', browser_version => '7.88.1', os => 'Other',
        device => 'Other', device_type => 'Other' } ],
    [ 'an empty User-Agent', '',
      { browser => 'Other', browser_version => '', os => 'Other',
        os_version => '', device => 'Other', device_brand => '',
        device_model => '', device_type => 'Other' } ],
    [ 'a User-Agent that starts with "-"', '-crawl-crawl',
      { device => 'Spider', device_type => 'Bot' } ],
);

for my $c (@cases) {
    my ($what, $ua, $want) = @$c;
    my $got = parse($regexes, $ua);
    is_deeply({ map { $_ => $got->{$_} } keys %$want }, $want, $what)
        or diag(explain($got));
}

# ------------------------------------------------------------ the specification

my $spec = $t->write_file('spec.yaml', <<'EOF');
# not a list: skipped
comment: 'x'
user_agent_parsers:
  - regex: '(Foo)(?:/(\d+)|)(?:\.(\d+)|)(?:\.(\d+)|)(?:\.(\d+)|)'
  - regex: 'Bar(?:/(\d+)|)'
    family_replacement: 'Bar $1 x'
    v1_replacement: '$1'
  - regex: '(Empty)(\d*)'
    family_replacement: '  $2  '
  - regex: '(Padded)/( 7 )'
  - regex: 'Fixed/(\d+)'
    family_replacement: 'Fixed'
    v1_replacement: 'v$1'
    v2_replacement: 'beta'
    unknown_key: 'ignored'
os_parsers:
  - regex: '(Win) (\d+)(?:\.(\d+)|)'
    os_replacement: 'Windows'
    os_v1_replacement: '$2 '
device_parsers:
  - regex: 'dev-(aaa)-(\w+)'
    regex_flag: 'i'
    device_replacement: 'D $1'
    brand_replacement: '$2'
    model_replacement: '$1 $9'
  - regex: 'plain-(x)'
  - regex: 'nogroup'
    device_replacement: 'NG'
  - regex: 'blank-(\s*)'
EOF

my %spec = (
    'Foo' => { browser => 'Foo', browser_version => '' },
    'Foo/3' => { browser => 'Foo', browser_version => '3' },
    'Foo/3.4.5.6' => { browser => 'Foo', browser_version => '3.4.5' },
    'a Foo/3.4 b' => { browser => 'Foo', browser_version => '3.4' },
    'Bar/9' => { browser => 'Bar 9 x', browser_version => '9' },
    'Bar' => { browser => 'Bar  x', browser_version => '' },
    'Empty' => { browser => 'Other' },
    'Empty42' => { browser => '42' },
    'Padded/ 7 ' => { browser => 'Padded', browser_version => '7' },
    'Fixed/2' => { browser => 'Fixed', browser_version => 'v2.beta' },
    'foo/3' => { browser => 'Other' },
    'Win 7.1' => { os => 'Windows', os_version => '7.1' },
    'Win' => { os => 'Other', os_version => '' },
    'DEV-AAA-Acme' => { device => 'D AAA', device_brand => 'Acme',
                        device_model => 'AAA', device_type => 'Other' },
    'plain-x' => { device => 'x', device_brand => '', device_model => 'x' },
    'plain-X' => { device => 'Other', device_model => '' },
    'nogroup' => { device => 'NG', device_brand => '', device_model => '' },
    'blank-   ' => { device => 'Other', device_model => '' },
    ('x' x 1100) . 'Foo/1' => { browser => 'Other' },
    ('x' x 1000) . 'Foo/1' => { browser => 'Foo' },
);

for my $ua (sort keys %spec) {
    my $want = $spec{$ua};
    my $got = parse($spec, $ua);
    my $name = length($ua) > 40 ? length($ua) . ' bytes' : "\"$ua\"";
    is_deeply({ map { $_ => $got->{$_} } keys %$want }, $want, "spec: $name")
        or diag(explain($got));
}

# ------------------------------------------------------------ files that fail

sub refused {
    my ($what, $content, $re) = @_;
    my $file = defined $content ? $t->write_file('bad.yaml', $content)
                                : "$dir/missing.yaml";
    my ($code, $out, $err) = run('-p', $file, 'Foo/1');
    is($code, 1, "$what: exit 1");
    like($err, $re, "$what: the reason");
    is($out, '', "$what: no parse");
}

refused('missing file', undef, qr/missing\.yaml: No such file/);
refused('bad regex', <<'EOF', qr/bad\.yaml:3: bad regex "\(unclosed": missing closing parenthesis at offset 9/);
user_agent_parsers:
  - regex: 'ok'
  - regex: '(unclosed'
os_parsers: []
device_parsers: []
EOF
refused('no device_parsers', <<'EOF', qr/bad\.yaml: no list "device_parsers"/);
user_agent_parsers: []
os_parsers: []
EOF
refused('rule without regex', <<'EOF', qr/bad\.yaml:2: rule without "regex"/);
user_agent_parsers:
  - family_replacement: 'x'
os_parsers: []
device_parsers: []
EOF
refused('list that is not a list', <<'EOF', qr/bad\.yaml:2: expected a list for "os_parsers"/);
user_agent_parsers: []
os_parsers: 'x'
device_parsers: []
EOF
refused('broken YAML', "user_agent_parsers:\n  - regex: 'a\n", qr/bad\.yaml:\d+: /);
refused('empty file', '', qr/no document/);

done_testing();
