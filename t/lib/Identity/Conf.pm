package Identity::Conf;

# The nginx.conf most tests share: the module, Redis, one OpenID provider,
# a protected server and an upstream that echoes what it received.

use strict;
use warnings;

use Exporter 'import';
our @EXPORT_OK = qw(identity_conf protected preamble echo_upstream upstream_saw);

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
    my $workers = $o{workers} // 1;
    my $name = $o{nginx} // 'nginx';
    my $http = $o{http} // '';
    my $provider = $o{provider} // '';
    my $identity = $o{identity} // 'test';
    my $server = $o{server} // '';
    my $locations = $o{locations} // '';
    $locations .= <<'LOC' if $o{admin};
        location /api/ {
            identity_admin;
            identity_admin_token_file %%TESTDIR%%/admin.token;
        }
LOC
    my $upstream = $o{no_upstream} ? '' : echo_upstream();

    my $preamble = preamble($workers);
    my $protected = protected($identity);

    my $providers = $o{providers} // <<"PROVIDER";
    identity_provider test {
        type oidc;
        issuer $o{issuer};
        client_id test-client;
        client_secret test-secret;
        $provider
    }
PROVIDER

    return <<"CONF";
$preamble
    identity_redis 127.0.0.1:$o{redis} timeout=2s;

$providers

    $http

    server {
        listen 127.0.0.1:%%PORT_$name%%;
        $server

        location / {
$protected
        }

        location /public/ {
            identity off;
            proxy_pass http://127.0.0.1:%%PORT_upstream%%;
        }

        $locations
    }

$upstream
}
CONF
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
