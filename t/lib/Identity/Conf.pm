package Identity::Conf;

# The nginx.conf of the tests: a small API that states one in a few lines
# (http_conf, provider_block, server_block, location_block), the pieces it
# is made of (preamble, protected, echo_upstream), and identity_conf, the
# config most tests share: the module, Redis, one OpenID provider, a
# protected server and an upstream that echoes what it received.  POD at
# the end.

use strict;
use warnings;

use Exporter 'import';
our @EXPORT_OK = qw(identity_conf protected preamble echo_upstream upstream_saw
    http_conf provider_block server_block location_block);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

# ------------------------------------------------------------ the API

# _indent(TEXT, LEVEL): TEXT's lines re-indented, 4 spaces a level, LEVEL
# plus the depth of the braces around each line.  Lines inside a quoted
# string ("..." or '...') are left as they are: they belong to it.  Ends
# with a newline unless TEXT is empty.
sub _indent {
    my ($text, $level) = @_;
    my ($out, $depth, $quote) = ('', 0, '');
    for my $line (split /\n/, $text // '') {
        if ($quote) {
            $out .= "$line\n";
        } else {
            (my $s = $line) =~ s/^\s+//;
            my $d = $depth - ($s =~ /^\}/ ? 1 : 0);
            $d = 0 if $d < 0;
            $out .= $s eq '' ? "\n" : ('    ' x ($level + $d)) . "$s\n";
        }
        for my $tok ($line =~ /(\\.|["'{}#])/g) {
            if ($quote) {
                $quote = '' if $tok eq $quote;
            } elsif ($tok eq '"' || $tok eq "'") {
                $quote = $tok;
            } elsif ($tok eq '#') {
                last;
            } elsif ($tok eq '{') {
                $depth++;
            } elsif ($tok eq '}') {
                $depth--;
            }
        }
    }
    return $out;
}

# _lines(ITEMS): array ref or text, one string
sub _lines {
    my ($items) = @_;
    return '' unless defined $items;
    return join '', map { defined $_ && $_ ne '' ? (/\n\z/ ? $_ : "$_\n") : '' }
        ref $items eq 'ARRAY' ? @$items : ($items);
}

# provider_block(NAME, DIRECTIVE => VALUE, ..., extra => TEXT)
sub provider_block {
    my ($name, @pairs) = @_;
    die "provider_block $name: odd number of arguments\n" if @pairs % 2;
    my ($body, $extra, %seen) = ('', '');
    while (my ($k, $v) = splice @pairs, 0, 2) {
        if ($k eq 'extra') {
            $extra .= _lines($v);
            next;
        }
        $seen{$k} = 1;
        $body .= "$k " . (ref $v eq 'ARRAY' ? join(' ', @$v) : $v) . ";\n";
    }
    my $type = $body =~ /^type (\w+);/m ? $1 : '';
    if ($type eq 'oidc' || $type eq 'oauth') {
        $body .= "client_id test-client;\n" unless $seen{client_id};
        $body .= "client_secret test-secret;\n" unless $seen{client_secret};
    }
    return _indent("identity_provider $name {\n$body$extra}\n", 1);
}

# location_block(PATH, LINES...)
sub location_block {
    my ($path, @lines) = @_;
    return _indent("location $path {\n" . _lines(\@lines) . "}\n", 2);
}

# server_block(port => NAME, listen => ARGS, directives => LINES, locations => [...])
sub server_block {
    my (%o) = @_;
    my $listen = $o{listen} // '127.0.0.1:%%PORT_' . ($o{port} // 'nginx') . '%%';
    my $text = "server {\nlisten $listen;\n" . _lines($o{directives});
    my @loc = ref $o{locations} eq 'ARRAY' ? @{$o{locations}} : ($o{locations} // ());
    $text .= "\n" . _lines($_) for grep { defined && $_ ne '' } @loc;
    return _indent("$text}\n", 1);
}

# http_conf(redis => PORT, redis_timeout => T, workers => N, http => LINES,
#           providers => [...], servers => [...], upstream => 0)
sub http_conf {
    my (%o) = @_;
    my $text = preamble($o{workers});
    if (defined $o{redis}) {
        $text .= "    identity_redis 127.0.0.1:$o{redis}"
            . (defined $o{redis_timeout} ? " timeout=$o{redis_timeout}" : '') . ";\n";
    }
    $text .= _indent(_lines($o{http}), 1);
    for my $part (grep { defined && $_ ne '' } @{$o{providers} || []}, @{$o{servers} || []}) {
        $text .= "\n" . _indent(_lines($part), 1);
    }
    $text .= "\n" . echo_upstream() if $o{upstream} // 1;
    return "$text}\n";
}

# ------------------------------------------------------------ identity_conf

# identity_conf(redis => PORT, issuer => URL, %opt)
#   workers   worker_processes (1)
#   http      extra http-level directives
#   provider  extra lines inside the provider block
#   providers identity_provider blocks instead of the OpenID one (then
#             issuer and provider are not used), e.g. SAML providers
#   identity  the provider that protects "location /" ('test')
#   server    extra server-level directives
#   locations extra locations of the protected server
#   admin     1: the admin API at /api/, its token in %%TESTDIR%%/admin.token
#   nginx     port name of the protected server ('nginx')
sub identity_conf {
    my (%o) = @_;
    my $name = $o{nginx} // 'nginx';
    my @locations = ref $o{locations} eq 'ARRAY' ? @{$o{locations}} : ($o{locations} // ());
    push @locations, location_block('/api/', 'identity_admin;',
        'identity_admin_token_file %%TESTDIR%%/admin.token;') if $o{admin};
    my $providers = $o{providers} // provider_block('test', type => 'oidc',
        issuer => $o{issuer}, client_id => 'test-client',
        client_secret => 'test-secret', extra => $o{provider});

    return http_conf(
        workers => $o{workers} // 1,
        redis => $o{redis},
        redis_timeout => '2s',
        providers => [$providers, $o{http}],
        servers => [server_block(
            port => $name,
            directives => $o{server},
            locations => [
                location_block('/', protected($o{identity} // 'test')),
                location_block('/public/', 'identity off;',
                    'proxy_pass http://127.0.0.1:%%PORT_upstream%%;'),
                @locations,
            ],
        )],
        upstream => !$o{no_upstream},
    );
}

# protected(PROVIDER): the inside of a location that PROVIDER protects, in
# front of the echo upstream, with the X-Identity-* headers it reports
sub protected {
    my ($provider) = @_;

    return <<"CONF";
            identity $provider;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
            proxy_set_header X-Identity-Id \$identity_id;
            proxy_set_header X-Identity-Email \$identity_email;
            proxy_set_header X-Identity-Name \$identity_name;
            proxy_set_header X-Identity-Username \$identity_username;
            proxy_set_header X-Identity-Provider \$identity_provider;
            proxy_set_header X-Identity-User-Id \$identity_provider_user_id;
            proxy_set_header X-Identity-Session \$identity_session_id;
CONF
}

# the top of a test nginx.conf, up to inside "http {"
sub preamble {
    my ($workers) = @_;
    $workers //= 1;

    return <<"CONF";
load_module %%MODULE%%;
daemon off;
master_process on;
worker_processes $workers;
error_log %%TESTDIR%%/error.log debug;
pid %%TESTDIR%%/nginx.pid;
events { worker_connections 1024; }
http {
    access_log %%TESTDIR%%/access.log;
    client_body_temp_path %%TESTDIR%%/client_body;
    proxy_temp_path %%TESTDIR%%/proxy;
    fastcgi_temp_path %%TESTDIR%%/fastcgi;
    uwsgi_temp_path %%TESTDIR%%/uwsgi;
    scgi_temp_path %%TESTDIR%%/scgi;
CONF
}

sub echo_upstream {
    return <<'CONF';
    server {
        listen 127.0.0.1:%%PORT_upstream%%;
        default_type text/plain;
        location / {
            return 200 "uri=$request_uri
id=$http_x_identity_id
email=$http_x_identity_email
name=$http_x_identity_name
username=$http_x_identity_username
provider=$http_x_identity_provider
user_id=$http_x_identity_user_id
session=$http_x_identity_session
cookie=$http_cookie
";
        }
    }
CONF
}

# upstream_saw($body) -> { uri => ..., email => ..., ... }
sub upstream_saw {
    my ($body) = @_;
    my %h;
    for (split /\n/, $body // '') {
        $h{$1} = $2 if /^(\w+)=(.*)$/;
    }
    return \%h;
}

1;

__END__

=head1 NAME

Identity::Conf - the nginx.conf of the tests, stated in a few lines

=head1 SYNOPSIS

    use Identity::Conf qw(:all);

    $t->nginx_conf(http_conf(
        redis => $rport,
        providers => [provider_block('test', type => 'oidc', issuer => $issuer)],
        servers => [server_block(port => 'nginx',
            directives => 'identity_path /auth/;',
            locations => [
                location_block('/', protected('test')),
                location_block('/admin/', 'identity test;',
                    'identity_require_group admins;', 'identity_admin;'),
            ])],
    ));

    # the shared config: one OpenID provider "test", "location /" protected
    $t->nginx_conf(identity_conf(redis => $rport, issuer => $issuer, admin => 1));

Each function returns nginx.conf text, placeholders (C<%%MODULE%%>,
C<%%TESTDIR%%>, C<%%PORT_name%%>) left for C<< $t->nginx_conf >>. Text is
re-indented by the depth of its braces (4 spaces a level), so pieces nest
whatever their own indentation; lines inside a quoted string that spans
lines (C<return 200 "a\nb";> written with real newlines) are kept as they
are. A LINES argument is one string (one or more lines) or an array ref of
them; each is a directive with its C<;> (or a block, or a comment).

=head1 THE API

=over

=item http_conf(%opt)

The whole nginx.conf: C<preamble>, then, inside C<http { }>:

    redis          PORT: "identity_redis 127.0.0.1:PORT;"
    redis_timeout  with redis: " timeout=VALUE" ('2s')
    http           LINES at http level, right after identity_redis
    providers      [ TEXT, ... ], usually provider_block()s
    servers        [ TEXT, ... ], usually server_block()s
    upstream       0: leave out the echo upstream (echo_upstream(), on
                   by default; then name your own server on
                   %%PORT_upstream%%)
    workers        worker_processes (1)

=item provider_block(NAME, DIRECTIVE => VALUE, ..., extra => LINES)

C<identity_provider NAME { ... }>: one C<DIRECTIVE VALUE;> line per pair,
in the order given (a VALUE may be an array ref: joined with spaces);
C<extra> is raw text added at the end. For C<< type => 'oidc' >> and
C<< type => 'oauth' >>, C<client_id test-client;> and C<client_secret
test-secret;> are added unless given.

    provider_block('gitlab', type => 'oauth',
        authorization_endpoint => "$m/gitlab/oauth/authorize",
        token_endpoint => "$m/gitlab/oauth/token",
        userinfo_endpoint => "$m/gitlab/api/v4/user",
        scopes => 'read_user')

=item server_block(port => NAME, listen => ARGS, directives => LINES, locations => [TEXT, ...])

C<server { listen 127.0.0.1:%%PORT_NAME%%; ... }> (NAME: C<nginx>);
C<listen> replaces the listen arguments (C<'127.0.0.1:%%PORT_tls%% ssl'>).
The directives come first, then each of C<locations> (location_block()s,
or any text: a nested block, a comment), separated by blank lines.

=item location_block(PATH, LINES...)

C<location PATH { LINES }>. PATH may carry a modifier (C<'= /x'>, C<'~
^/y'>). A line may be another location_block (nested) or C<protected(P)>.

=back

=head1 THE PIECES

=over

=item preamble(WORKERS)

The top of a test nginx.conf, up to inside C<http {>: the module, no
daemon, logs, pid and temp paths in testdir.

=item protected(PROVIDER)

The inside of a location that PROVIDER protects, in front of the echo
upstream, passing the C<X-Identity-*> headers (id, email, name, username,
provider, user id, session).

=item echo_upstream(), upstream_saw(BODY)

A server on C<%%PORT_upstream%%> that answers C<key=value> lines: uri, the
X-Identity-* headers it got, cookie. C<upstream_saw> reads such a body
into a hashref.

=item identity_conf(redis => PORT, issuer => URL, %opt)

The config most tests share: provider C<test> (OpenID, issuer URL, client
C<test-client> / C<test-secret>), a server on C<%%PORT_nginx%%> whose
C<location /> is C<protected('test')> and whose C</public/> is not, and
the echo upstream. Options: C<workers>; C<http> (LINES at http level, after
the providers: more servers, e.g. server_block()s); C<provider> (more lines
inside the provider block); C<providers> (the provider blocks instead of
that one, e.g. SAML providers); C<identity> (the provider of C<location
/>, C<test>); C<server> (server-level LINES); C<locations> (more
locations: text, or an array ref of location_block()s); C<< admin => 1 >> (the admin API at
C</api/>, its token in F<%%TESTDIR%%/admin.token>); C<nginx> (the port
name of the server); C<< no_upstream => 1 >>. Built with the functions
above.

=back

=cut
