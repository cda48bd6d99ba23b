#!/usr/bin/perl
# The layers of docs/architecture.md, held against the code (issue 13): no
# file of ngx_http_identity_module/ includes a header, or calls a function,
# of a layer above its own; files call each other in no circle; module.c
# stays near 800 lines and no other hand-written file much over 1,200.
# The calls are read from the module's object files (nm), so this is what
# the linker sees, not what a regex guesses.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Basename qw(basename dirname);
use Test::More;
use Identity::Test;

my $src = "$FindBin::Bin/../ngx_http_identity_module";

# docs/architecture.md's picture: 1 is the top; a header without a .c (types
# only) sits below every file that uses it
my %layer = (
    module => 1, provider => 1, variables => 1,
    access => 2, endpoint => 2, admin => 2, dashboard => 2,
    admin_json => 2.2,
    dashboard_files => 2.5,
    login => 3,
    oidc => 4, oauth => 4, saml => 4,
    oidc_discovery => 4.2, oidc_token => 4.2, oauth_presets => 4.2,
    saml_message => 4.2, saml_idp => 4.3,
    saml_assertion => 4.4, oauth_user => 4.4,
    oauth2 => 4.5,
    protocol => 4.9,
    store => 5, store_admin => 5, store_login => 5, store_revoke => 5, meta => 5, rules => 5,
    store_risk => 5,
    events => 5.2, events_admin => 5.2, audit_log => 5.3,
    store_cmd => 5.5, node => 5.6, cache => 5.7,
    request => 6, cookie => 6, crypto => 6, redis => 6, redis_conf => 6, fetch => 6,
    parse => 6.1,
    redis_cluster => 6.2, redis_link => 6.25, redis_state => 6.3,
    redis_conn => 6.5,
    metrics => 6.9,
    task => 6, body => 6, claims => 6, json => 6, error => 6, ua => 6, geo => 6,
    risk => 6,
    types => 7, records => 7,
);

sub unit { my ($f) = @_; $f =~ /ngx_http_identity_(\w+)\.[ch]$/ ? $1 : undef }

my @files = sort glob "$src/ngx_http_identity_*.[ch]";
ok(@files > 20, 'the sources are there');

for my $f (@files) {
    my $u = unit($f);
    ok(exists $layer{$u}, "$u has a layer in this test and docs/architecture.md");
}

# ------------------------------------------------------------ includes

my %edges;    # file unit -> { unit => 'include' | 'call' }

for my $f (@files) {
    my $u = unit($f);
    next unless exists $layer{$u};
    open my $fh, '<', $f or die "$f: $!";
    while (<$fh>) {
        next unless /^#include "ngx_http_identity_(\w+)\.h"/;
        my $h = $1;
        next if $h eq $u;
        my $hl = $layer{$h};
        ok(defined $hl && $hl >= $layer{$u},
           "$u includes $h.h, of its layer or below")
            or diag("$u is on layer $layer{$u}, $h.h on " . ($hl // '?'));
        $edges{$u}{$h} = 'include';
    }
}

# ------------------------------------------------------------ calls

my $objs = dirname(Identity::Test::module_path())
    . '/nginx-src/objs/addon/ngx_http_identity_module';
my @objs = glob "$objs/ngx_http_identity_*.o";

SKIP: {
    skip "no object files in $objs: make module first", 4 unless @objs;

    my (%defines, %uses);
    for my $o (@objs) {
        my $u = unit(basename($o, '.o') . '.c');
        for (`nm $o`) {
            my ($type, $sym) = /^\s*\S*\s+([A-Za-z])\s+(\S+)$/ or next;
            next unless $sym =~ /^ngx_http_identity_/;
            if ($type eq 'U') {
                $uses{$u}{$sym} = 1;
            } elsif ($type =~ /[TDBR]/) {
                $defines{$sym} = $u;
            }
        }
    }

    my @up;
    for my $u (sort keys %uses) {
        for my $sym (sort keys %{$uses{$u}}) {
            my $d = $defines{$sym} // next;
            next if $d eq $u || $sym eq 'ngx_http_identity_module';
            $edges{$u}{$d} = 'call';
            push @up, "$u -> $d ($sym)" if $layer{$d} < $layer{$u};
        }
    }
    ok(!@up, 'no file calls a function of a layer above it')
        or diag(join "\n", @up);

    ok(keys %uses > 20, 'the calls were read');

    # an export nobody else uses is a dead export; unit/ programs count as
    # users, and nginx looks the module up by name
    my $unit = join '', map { local $/; open my $fh, '<', $_ or die; <$fh> }
        glob "$FindBin::Bin/../unit/*.c";
    my %used = map { %$_ } values %uses;
    my @dead;
    for my $sym (sort keys %defines) {
        next if $used{$sym} || $sym eq 'ngx_http_identity_module';
        next if $unit =~ /\b\Q$sym\E\b/;
        push @dead, "$defines{$sym}: $sym";
    }
    ok(!@dead, 'every exported name is used by another file')
        or diag(join "\n", @dead);

    # a circle: a path from a file back to itself, calls and includes alike
    my (%state, @stack, @circles);
    my $visit;
    $visit = sub {
        my ($u) = @_;
        $state{$u} = 1;
        push @stack, $u;
        for my $v (sort keys %{$edges{$u} // {}}) {
            if (($state{$v} // 0) == 1) {
                my @loop = @stack;
                shift @loop while $loop[0] ne $v;
                push @circles, join ' -> ', @loop, $v;
            } elsif (!$state{$v}) {
                $visit->($v);
            }
        }
        pop @stack;
        $state{$u} = 2;
    };
    $visit->($_) for grep { !$state{$_} } sort keys %edges;
    ok(!@circles, 'no circle of calls or includes between files')
        or diag(join "\n", @circles);
}

# ------------------------------------------------------------ sizes

for my $f (grep { /\.c$/ } @files) {
    my $u = unit($f);
    my $lines = () = do { open my $fh, '<', $f or die; local $/; <$fh> } =~ /\n/g;
    my $max = $u eq 'module' ? 800 : $u eq 'ua' ? 1300 : 1250;
    cmp_ok($lines, '<=', $max, "$u.c has $lines lines, at most about $max");
}

done_testing();
