package Identity::Metrics;

# GET {admin}/metrics read back for the tests: scraped with the admin token
# and parsed whole by prometheus_client's own parser (Debian's
# python3-prometheus-client), as { "name{label=value,...}" => number },
# labels sorted by name.  parse() is undef when the parser refuses the text.

use strict;
use warnings;

use Exporter 'import';
use Identity::Test;

our @EXPORT_OK = qw(have_parser scrape parse metric);

my $python = '/usr/bin/python3';

sub have_parser {
    return system($python, '-c', 'import prometheus_client.parser') == 0;
}

# scrape($base, $token): the answer of a fresh connection
sub scrape {
    my ($base, $token) = @_;
    return Identity::Test::UA->new(headers => { Authorization => "Bearer $token" })
        ->get("$base/api/metrics");
}

sub parse {
    my ($t, $text) = @_;
    $t->write_file('metrics.txt', $text);
    my $file = $t->testdir . '/metrics.txt';
    my $out = `$python -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    print("family", f.name, f.type)
    for s in f.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("sample", s.name + "{" + labels + "}", repr(float(s.value)))
' '$file' 2>&1`;
    return undef if $?;
    my (%v, %type);
    for (split /\n/, $out) {
        my @w = split / /;
        if ($w[0] eq 'family') { $type{$w[1]} = $w[2] }
        elsif ($w[0] eq 'sample') { $v{$w[1]} = $w[2] + 0 }
    }
    return { values => \%v, types => \%type, raw => $out };
}

# metric($t, $base, $token): the parsed values of one scrape (a 200), or {}
sub metric {
    my ($t, $base, $token) = @_;
    my $r = scrape($base, $token);
    return {} unless $r->{status} == 200;
    my $m = parse($t, $r->{body});
    return $m ? $m->{values} : {};
}

1;
