#!/usr/bin/perl
# fuzz_geo_db.pl DIR: writes the databases unit/fuzz_geo.c looks addresses
# up in (make fuzz), with t/lib/Identity/GeoDB.pm as t/61-geo-lookup.t
# does: GeoIP2 City (IPv6 with the IPv4 alias, and IPv4 only), the flat
# records of ip-location-db, coordinates as strings, fields of the wrong
# type, and a copy of the first whose data section is garbage.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Identity::GeoDB qw(write_mmdb);
use MaxMind::DB::Reader;

my $dir = shift or die "usage: fuzz_geo_db.pl DIR\n";
-d $dir or mkdir $dir or die "$dir: $!";

my %city = (
    '203.0.113.0/24'   => { country => 'FR', city => 'Paris',
                            lat => 48.8566, lon => 2.3522, radius => 20 },
    '203.0.113.128/25' => { country => 'BE', lat => 50.85, lon => 4.35,
                            radius => 5 },
    '198.51.100.0/24'  => { country => 'US' },
    '192.0.2.0/24'     => { registered_country => 'DE', lat => 52.52,
                            lon => 13.405 },
    '192.0.2.128/25'   => { country => 'jp', registered_country => 'US' },
    '127.0.0.0/8'      => { country => 'GB', lat => 51.5, lon => -0.12,
                            radius => 1000 },
    '0.0.0.0/8'        => { country => 'ZZ', lat => -90, lon => -180,
                            radius => 20038 },
    '255.0.0.0/8'      => { country => 'ZZ', lat => 90, lon => 180,
                            radius => 20039 },
    '2001:db8::/32'    => { country => 'JP', lat => 35.67, lon => 139.65,
                            radius => 50 },
    '2001:db8:1::/48'  => { lat => -33.86, lon => 151.2 },
    '2001:db8:2::/48'  => { country => 'FRA', registered_country => '1A',
                            lat => 91, lon => 2.35, radius => 10 },
    '2001:db8:3::/48'  => { country => 'NL', lat => 52.37, lon => -181 },
    '2001:db8:4::/48'  => { country => 'IT', lat => 41.9, lon => 12.5,
                            radius => 0 },
    '::1/128'          => { country => 'CA', lat => 45.5, lon => -73.56,
                            radius => 100 },
);

my $city6 = write_mmdb("$dir/1-city6.mmdb", schema => 'geoip2',
                       ip_version => 6, networks => \%city);

write_mmdb("$dir/2-city4.mmdb", schema => 'geoip2', ip_version => 4,
    networks => { map { $_ => $city{$_} } grep { !/:/ } keys %city });

write_mmdb("$dir/3-flat4.mmdb", schema => 'flat', ip_version => 4,
    networks => {
        '203.0.113.0/24'  => { country => 'FR', lat => 48.85, lon => 2.35 },
        '198.51.100.0/24' => { country => 'us' },
        '192.0.2.0/24'    => { lat => -33.86, lon => 151.2 },
    });

write_mmdb("$dir/4-strings.mmdb", schema => 'flat', ip_version => 6,
    coord_type => 'string', alias_ipv6_to_ipv4 => 0,
    networks => {
        '203.0.113.0/24'  => { country => 'FR', lat => '48.85',
                               lon => '2.35' },
        '198.51.100.0/24' => { country => 'US', lat => 'north',
                               lon => '-74.0' },
        '192.0.2.0/24'    => { country => 'DE', lat => '', lon => '' },
        '2001:db8::/32'   => { country => 'JP', lat => '1.5e1',
                               lon => '-2.5E1' },
        '2001:db8:1::/48' => { country => 'A1', lat => 'nan',
                               lon => 'inf' },
        '2001:db8:2::/48' => { country => 'ES', lat => '0x10', lon => '10' },
        '2001:db8:3::/48' => { country => "\xc3\xa9", lat => '1e999',
                               lon => '-1e-999' },
        '2001:db8:4::/48' => { country => 'PT', lat => '1' x 31,
                               lon => '9' x 40 },
    });

write_mmdb("$dir/5-raw.mmdb", schema => 'raw', ip_version => 6,
    types => {
        country            => 'utf8_string',
        registered_country => 'map',
        iso_code           => 'uint32',
        location           => [ 'array', 'double' ],
        country_code       => 'utf8_string',
        latitude           => 'map',
        longitude          => 'boolean',
        value              => 'double',
    },
    networks => {
        '203.0.113.0/24'  => { record => {
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
        '192.0.2.0/24'    => { record => {} },
    });

# the first database, its data section overwritten: every lookup that
# finds an entry reads garbage
open my $fh, '<:raw', $city6 or die "$city6: $!";
my $bytes = do { local $/; <$fh> };
close $fh;

my $meta = MaxMind::DB::Reader->new(file => $city6)->metadata;
my $tree = $meta->node_count * $meta->record_size * 2 / 8;
my $end = rindex($bytes, "\xAB\xCD\xEFMaxMind.com");
substr($bytes, $tree + 16, $end - $tree - 16)
    = "\xff" x ($end - $tree - 16);

open $fh, '>:raw', "$dir/6-bad-data.mmdb" or die "$dir: $!";
print $fh $bytes;
close $fh or die "$dir: $!";
