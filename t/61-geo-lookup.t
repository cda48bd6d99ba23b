#!/usr/bin/perl
# IP geolocation (ngx_http_identity_geo.c) through build/unit/geo_lookup, on
# MaxMind DB files written here: the GeoIP2-City schema, the flat schema of
# ip-location-db, broken fields and broken files.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use MaxMind::DB::Reader;
use Test::More;
use Identity::GeoDB qw(write_mmdb);
use Identity::Test;

my $t = Identity::Test->new(name => 'geo');
my $dir = $t->testdir;
my $root = $Identity::Test::ROOT;
my $bin = "$root/build/unit/geo_lookup";

# the program alone: make's target is the absolute path under build/
is(system('make', '-s', '-C', $root, $bin), 0, 'make builds geo_lookup');
ok(-x $bin, 'geo_lookup built') or BAIL_OUT('no geo_lookup');

# geo_lookup(DB, IP...) -> (exit code, { IP => rest of its line }, stderr)
sub geo_lookup {
    my ($db, @ips) = @_;
    my $err = "$dir/stderr";
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $err or die "$err: $!";
        exec $bin, $db, @ips or die "exec $bin: $!";
    }
    my %line;
    my @order;
    while (<$fh>) {
        chomp;
        my ($ip, $rest) = split / /, $_, 2;
        push @order, $ip;
        $line{$ip} = $rest;
    }
    close $fh;
    my $code = $? >> 8;
    return ($code, \%line, $t->read_file($err), \@order);
}

# ------------------------------------------------------------ GeoIP2 schema

my $city = write_mmdb("$dir/city.mmdb",
    schema     => 'geoip2',
    ip_version => 6,
    networks   => {
        '203.0.113.0/24'   => { country => 'FR', city => 'Paris',
                                lat => 48.8566, lon => 2.3522, radius => 20 },
        '203.0.113.128/25' => { country => 'BE', lat => 50.8503,
                                lon => 4.3517, radius => 5 },
        '198.51.100.0/24'  => { country => 'US' },
        '192.0.2.0/24'     => { registered_country => 'DE',
                                lat => 52.52, lon => 13.405 },
        '192.0.2.128/25'   => { country => 'jp', registered_country => 'US' },
        '127.0.0.0/8'      => { country => 'GB', lat => 51.5074,
                                lon => -0.1278, radius => 1000 },
        '2001:db8::/32'    => { country => 'JP', lat => 35.6762,
                                lon => 139.6503, radius => 50 },
        '2001:db8:1::/48'  => { lat => -33.8688, lon => 151.2093 },
        '2001:db8:2::/48'  => { country => 'FRA', registered_country => '1A',
                                lat => 91, lon => 2.35, radius => 10 },
        '2001:db8:3::/48'  => { country => 'NL', lat => 52.37, lon => -181 },
        '2001:db8:4::/48'  => { country => 'IT', lat => 41.9, lon => 12.5,
                                radius => 0 },
        '2001:db8:5::/48'  => { country => 'IT', lat => 41.9, lon => 12.5,
                                radius => 30000 },
        '::1/128'          => { country => 'CA', lat => 45.5019,
                                lon => -73.5674, radius => 100 },
    });

my $reader = MaxMind::DB::Reader->new(file => $city);
is($reader->metadata->database_type, 'GeoIP2-City', 'geoip2: database_type');
is($reader->record_for_address('203.0.113.1')->{location}{latitude}, 48.8566,
   'geoip2: nested location written');

my ($code, $out, $err, $order) = geo_lookup($city,
    '203.0.113.9', '203.0.113.200', '::ffff:203.0.113.9', '::ffff:cb00:7109',
    '198.51.100.7', '192.0.2.1', '192.0.2.129', '127.0.0.1', '2001:db8::1',
    '2001:db8:1::1', '2001:db8:2::1', '2001:db8:3::1', '2001:db8:4::1',
    '2001:db8:5::1', '::1',
    '10.0.0.1', '2001:db9::1', 'fe80::1', '::2');

is($code, 0, 'geoip2: exit code');
is($err, '', 'geoip2: nothing on stderr');
is(scalar @$order, 19, 'geoip2: one line per address');
is($out->{'203.0.113.9'}, 'country=FR lat=48.8566 lon=2.3522 radius=20',
   'geoip2: IPv4 in an IPv6 database, country, coordinates, radius');
is($out->{'203.0.113.200'}, 'country=BE lat=50.8503 lon=4.3517 radius=5',
   'geoip2: the more specific network');
is($out->{'::ffff:203.0.113.9'}, $out->{'203.0.113.9'},
   'geoip2: IPv4-mapped IPv6 as IPv4');
is($out->{'::ffff:cb00:7109'}, $out->{'203.0.113.9'},
   'geoip2: IPv4-mapped IPv6 in hex');
is($out->{'198.51.100.7'}, 'country=US lat=- lon=- radius=-',
   'geoip2: country without location');
is($out->{'192.0.2.1'}, 'country=DE lat=52.5200 lon=13.4050 radius=-',
   'geoip2: registered_country when country is missing');
is($out->{'192.0.2.129'}, 'country=JP lat=- lon=- radius=-',
   'geoip2: country before registered_country, upper-cased');
is($out->{'127.0.0.1'}, 'country=GB lat=51.5074 lon=-0.1278 radius=1000',
   'geoip2: loopback, negative longitude');
is($out->{'2001:db8::1'}, 'country=JP lat=35.6762 lon=139.6503 radius=50',
   'geoip2: IPv6');
is($out->{'2001:db8:1::1'}, 'country=- lat=-33.8688 lon=151.2093 radius=-',
   'geoip2: location without country, negative latitude');
is($out->{'2001:db8:2::1'}, 'not-found',
   'geoip2: 3-letter and non-letter codes and latitude 91 refused');
is($out->{'2001:db8:3::1'}, 'country=NL lat=- lon=- radius=-',
   'geoip2: longitude -181 refused');
is($out->{'2001:db8:4::1'}, 'country=IT lat=41.9000 lon=12.5000 radius=-',
   'geoip2: radius 0 is unknown');
is($out->{'2001:db8:5::1'}, 'country=IT lat=41.9000 lon=12.5000 radius=-',
   'geoip2: radius past half the Earth is unknown');
is($out->{'::1'}, 'country=CA lat=45.5019 lon=-73.5674 radius=100',
   'geoip2: ::1');
is($out->{'10.0.0.1'}, 'not-found', 'geoip2: IPv4 not in the database');
is($out->{'2001:db9::1'}, 'not-found', 'geoip2: IPv6 not in the database');
is($out->{'fe80::1'}, 'not-found', 'geoip2: link-local not found');
is($out->{'::2'}, 'not-found', 'geoip2: ::2 next to ::1');

# ------------------------------------------------------------ IPv4-only

my $city4 = write_mmdb("$dir/city4.mmdb",
    schema     => 'geoip2',
    ip_version => 4,
    networks   => {
        '203.0.113.0/24' => { country => 'FR', lat => 48.8566, lon => 2.3522 },
    });

($code, $out) = geo_lookup($city4, '203.0.113.1', '::ffff:203.0.113.1',
                           '2001:db8::1', '198.51.100.1');
is($code, 0, 'ipv4 db: exit code');
is($out->{'203.0.113.1'}, 'country=FR lat=48.8566 lon=2.3522 radius=-',
   'ipv4 db: IPv4');
is($out->{'::ffff:203.0.113.1'}, $out->{'203.0.113.1'},
   'ipv4 db: IPv4-mapped IPv6');
is($out->{'2001:db8::1'}, 'not-found', 'ipv4 db: IPv6 is not found');
is($out->{'198.51.100.1'}, 'not-found', 'ipv4 db: IPv4 not found');

# ------------------------------------------------------------ flat schema

# as ip-location-db: one file per IP version, coordinates as float
my $flat4 = write_mmdb("$dir/flat4.mmdb",
    schema     => 'flat',
    ip_version => 4,
    networks   => {
        '203.0.113.0/24'  => { country => 'FR', city => 'Paris',
                               lat => 48.8566, lon => 2.3522 },
        '198.51.100.0/24' => { country => 'us' },
        '192.0.2.0/24'    => { lat => -33.8688, lon => 151.2093 },
    });
my $flat6 = write_mmdb("$dir/flat6.mmdb",
    schema     => 'flat',
    ip_version => 6,
    networks   => {
        '2001:db8::/32' => { country => 'JP', lat => 35.6762,
                             lon => 139.6503 },
    });

$reader = MaxMind::DB::Reader->new(file => $flat4);
is($reader->record_for_address('203.0.113.1')->{country_code}, 'FR',
   'flat: country_code at the top');

($code, $out, $err) = geo_lookup($flat4, '203.0.113.1', '::ffff:203.0.113.1',
    '198.51.100.1', '192.0.2.1', '2001:db8::1', '10.0.0.1');
is($code, 0, 'flat4: exit code');
is($out->{'203.0.113.1'}, 'country=FR lat=48.8566 lon=2.3522 radius=-',
   'flat4: country and float coordinates');
is($out->{'::ffff:203.0.113.1'}, $out->{'203.0.113.1'},
   'flat4: IPv4-mapped IPv6');
is($out->{'198.51.100.1'}, 'country=US lat=- lon=- radius=-',
   'flat4: lower-case country upper-cased, no location');
is($out->{'192.0.2.1'}, 'country=- lat=-33.8688 lon=151.2093 radius=-',
   'flat4: location without country');
is($out->{'2001:db8::1'}, 'not-found', 'flat4: IPv6 in the IPv4 file');
is($out->{'10.0.0.1'}, 'not-found', 'flat4: not found');

($code, $out) = geo_lookup($flat6, '2001:db8::1', '203.0.113.1');
is($code, 0, 'flat6: exit code');
is($out->{'2001:db8::1'}, 'country=JP lat=35.6762 lon=139.6503 radius=-',
   'flat6: IPv6');
is($out->{'203.0.113.1'}, 'not-found', 'flat6: IPv4 in the IPv6 file');

# coordinates stored as strings, and no ::ffff:0:0/96 alias in the file
my $strings = write_mmdb("$dir/strings.mmdb",
    schema             => 'flat',
    ip_version         => 6,
    coord_type         => 'string',
    alias_ipv6_to_ipv4 => 0,
    networks           => {
        '203.0.113.0/24'  => { country => 'FR', lat => '48.8566',
                               lon => '2.3522' },
        '198.51.100.0/24' => { country => 'US', lat => 'north',
                               lon => '-74.0' },
        '192.0.2.0/24'    => { country => 'DE', lat => '', lon => '' },
        '2001:db8::/32'   => { country => 'JP', lat => '1.5e1',
                               lon => '-2.5E1' },
        '2001:db8:1::/48' => { country => 'A1', lat => 'nan', lon => 'inf' },
        '2001:db8:2::/48' => { country => 'ES', lat => '0x10', lon => '10' },
        '2001:db8:3::/48' => { country => 'PT', lat => '10', lon => '1.2.3' },
    });

($code, $out) = geo_lookup($strings, '203.0.113.1', '::ffff:203.0.113.1',
    '198.51.100.1', '192.0.2.1', '2001:db8::1', '2001:db8:1::1',
    '2001:db8:2::1', '2001:db8:3::1');
is($code, 0, 'strings: exit code');
is($out->{'203.0.113.1'}, 'country=FR lat=48.8566 lon=2.3522 radius=-',
   'strings: decimal strings');
is($out->{'::ffff:203.0.113.1'}, $out->{'203.0.113.1'},
   'strings: IPv4-mapped IPv6 found without the alias');
is($out->{'198.51.100.1'}, 'country=US lat=- lon=- radius=-',
   'strings: a word is no latitude');
is($out->{'192.0.2.1'}, 'country=DE lat=- lon=- radius=-',
   'strings: empty coordinates');
is($out->{'2001:db8::1'}, 'country=JP lat=15.0000 lon=-25.0000 radius=-',
   'strings: exponents');
is($out->{'2001:db8:1::1'}, 'not-found',
   'strings: nan, inf and a code with a digit refused');
is($out->{'2001:db8:2::1'}, 'country=ES lat=- lon=- radius=-',
   'strings: hex refused');
is($out->{'2001:db8:3::1'}, 'country=PT lat=- lon=- radius=-',
   'strings: trailing garbage refused');

# ------------------------------------------------------------ wrong types

my $raw = write_mmdb("$dir/raw.mmdb",
    schema     => 'raw',
    ip_version => 6,
    types      => {
        country            => 'utf8_string',
        registered_country => 'map',
        iso_code           => 'uint32',
        location           => [ 'array', 'double' ],
        country_code       => 'utf8_string',
        latitude           => 'map',
        longitude          => 'boolean',
        value              => 'double',
    },
    networks   => {
        '203.0.113.0/24' => { record => {
            country            => 'FR',
            registered_country => { iso_code => 250 },
            location           => [ 48.85, 2.35 ],
            latitude           => { value => 48.85 },
            longitude          => 1,
        } },
        '198.51.100.0/24' => { record => {
            country      => 'FR',
            country_code => 'DE',
            location     => [ 1, 2 ],
        } },
        '192.0.2.0/24' => { record => {} },
    });

($code, $out, $err) = geo_lookup($raw, '203.0.113.1', '198.51.100.1',
                                 '192.0.2.1');
is($code, 0, 'wrong types: exit code');
is($err, '', 'wrong types: nothing on stderr');
is($out->{'203.0.113.1'}, 'not-found', 'wrong types: every field skipped');
is($out->{'198.51.100.1'}, 'country=DE lat=- lon=- radius=-',
   'wrong types: the next schema\'s field is read');
is($out->{'192.0.2.1'}, 'not-found', 'wrong types: empty record');

# ------------------------------------------------------------ broken files

my $garbage = $t->write_file('garbage.mmdb', "not a MaxMind database\n" x 200);
($code, $out, $err) = geo_lookup($garbage, '203.0.113.1');
is($code, 1, 'garbage: exit code');
is_deeply($out, {}, 'garbage: no lookup');
like($err, qr/^geo_lookup: cannot open "\Q$garbage\E": .*metadata/,
     'garbage: the error names the file and the cause');

my $empty = $t->write_file('empty.mmdb', '');
($code, $out, $err) = geo_lookup($empty, '203.0.113.1');
is($code, 1, 'empty file: exit code');
like($err, qr/^geo_lookup: cannot open "\Q$empty\E"/, 'empty file: error');

($code, $out, $err) = geo_lookup("$dir/missing.mmdb", '203.0.113.1');
is($code, 1, 'missing file: exit code');
like($err, qr/cannot open "\Q$dir\E\/missing.mmdb": No such file or directory/,
     'missing file: error');

# the search tree's first node points far past the file, and then every
# byte of the data section is an invalid control byte
my $bytes = $t->read_file($city);
my $meta = MaxMind::DB::Reader->new(file => $city)->metadata;
my $tree_size = $meta->node_count * $meta->record_size * 2 / 8;
my $end = rindex($bytes, "\xAB\xCD\xEFMaxMind.com");
ok($end > $tree_size + 16, 'city.mmdb: metadata marker after the data');

my $bad = $bytes;
substr($bad, 0, 7) = "\xff" x 7;
my $bad_tree = $t->write_file('bad-tree.mmdb', $bad);

$bad = $bytes;
substr($bad, $tree_size + 16, $end - $tree_size - 16)
    = "\xff" x ($end - $tree_size - 16);
my $bad_data = $t->write_file('bad-data.mmdb', $bad);

($code, $out) = geo_lookup($bad_tree, '203.0.113.1', '2001:db8::1');
is($code, 1, 'corrupt tree: exit code');
like($out->{'203.0.113.1'}, qr/^error: .*search tree is corrupt/,
     'corrupt tree: IPv4 lookup fails');
like($out->{'2001:db8::1'}, qr/^error: .*search tree is corrupt/,
     'corrupt tree: IPv6 lookup fails');

($code, $out) = geo_lookup($bad_data, '203.0.113.1', '2001:db8::1');
is($code, 1, 'corrupt data: exit code');
like($out->{'203.0.113.1'}, qr/^error: .*data section/,
     'corrupt data: IPv4 lookup fails');
like($out->{'2001:db8::1'}, qr/^error: .*data section/,
     'corrupt data: IPv6 lookup fails');

# ------------------------------------------------------------ usage

($code, $out) = geo_lookup($city, 'not-an-ip', '203.0.113.1');
is($code, 2, 'bad address: exit code 2');
is($out->{'not-an-ip'}, 'invalid-address', 'bad address: reported');
is($out->{'203.0.113.1'}, 'country=FR lat=48.8566 lon=2.3522 radius=20',
   'bad address: the next address still looked up');

($code, $out, $err) = geo_lookup($city);
is($code, 2, 'no address: exit code 2');
like($err, qr/^usage: geo_lookup DB IP/, 'no address: usage');

$t->done;
