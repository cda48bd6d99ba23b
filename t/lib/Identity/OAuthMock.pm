package Identity::OAuthMock;

# Starts t/idp/oauth-mock.mjs (eight OAuth 2.0 providers on loopback) for the
# tests, and talks to its /__test/* controls.  See t/idp/oauth-mock.md.
#
#   my $mock = start_oauth_mock($t, config => {...});   # or $t->start_oauth_mock
#   my $mock = start_oauth_mock(config => {...});       # without a harness
#   $mock->{port}, $mock->{pid}, $mock->{base}          # base: http://127.0.0.1:PORT
#   $mock->url('github', '/login/oauth/authorize')
#   $mock->set_user('github', {...}, [emails]);  $mock->config('github', deny => 1);
#   $mock->revoke('github');  $mock->requests('github');  $mock->reset;
#
# With a harness the mock is one of its processes (named 'oauth_mock' unless
# name => is given) and is stopped with them; without one it is stopped by
# pid at END.

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP ();
use POSIX qw(WNOHANG);
use Scalar::Util qw(blessed);
use Time::HiRes qw(sleep time);

use Identity::Test;

our @EXPORT_OK = qw(start_oauth_mock stop_oauth_mock);

my $JSON = JSON::PP->new->canonical;
my @own;    # mocks started without a harness: stopped by pid at END

sub _slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar <$fh>;
}

sub start_oauth_mock {
    my $t = blessed($_[0]) && $_[0]->isa('Identity::Test') ? shift : undef;
    my (%opt) = @_;
    my $name = $opt{name} // 'oauth_mock';
    my $dir = $t ? $t->testdir : tempdir('oauth-mock-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = $opt{port} // ($t ? $t->port($name) : Identity::Test::free_port());
    my @cmd = ('node', "$Identity::Test::ROOT/t/idp/oauth-mock.mjs", $port);
    if ($opt{config}) {
        my $file = "$dir/$name.json";
        open my $fh, '>', $file or die "$file: $!";
        print $fh $JSON->encode($opt{config});
        close $fh or die "$file: $!";
        push @cmd, $file;
    }
    my ($out, $err) = ("$dir/$name.out", "$dir/$name.err");
    unlink $out;
    my $pid;
    if ($t) {
        $pid = $t->_spawn($name, \@cmd, $out, $err);
    } else {
        $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', $out or POSIX::_exit(127);
            open STDERR, '>', $err or POSIX::_exit(127);
            exec @cmd or POSIX::_exit(127);
        }
    }
    my $self = bless { name => $name, port => $port, pid => $pid, base => "http://127.0.0.1:$port",
        harness => $t, owner => $$ }, __PACKAGE__;
    push @own, $self unless $t;
    my $end = time + 30;
    while (time < $end) {
        return $self if _slurp($out) =~ /^ready$/m;
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    $self->stop;
    die "oauth-mock did not start:\n" . _slurp($err);
}

sub stop {
    my ($self) = @_;
    return if !$self->{pid} || $self->{owner} != $$;
    if ($self->{harness}) {
        $self->{harness}->_stop($self->{name}, 'TERM', 5);
    } else {
        kill 'TERM', $self->{pid};
        my $end = time + 5;
        sleep 0.05 while waitpid($self->{pid}, WNOHANG) == 0 && time < $end;
        if (waitpid($self->{pid}, WNOHANG) == 0) { kill 'KILL', $self->{pid}; waitpid($self->{pid}, 0) }
    }
    delete $self->{pid};
}

sub stop_oauth_mock { $_[0]->stop }

END { my $exit = $?; $_->stop for @own; @own = (); $? = $exit }

{
    no warnings 'once';
    *Identity::Test::start_oauth_mock = \&start_oauth_mock;
}

sub url {
    my ($self, $provider, $path) = @_;
    return "$self->{base}/$provider" . ($path // '');
}

# $mock->control(METHOD, '/__test/...', \%json_body_or_query) -> decoded JSON
sub control {
    my ($self, $method, $path, $data) = @_;
    my $http = HTTP::Tiny->new(timeout => 10);
    my $res;
    if ($method eq 'GET') {
        my $q = $data ? '?' . $http->www_form_urlencode($data) : '';
        $res = $http->get("$self->{base}$path$q");
    } else {
        $res = $http->request($method, "$self->{base}$path", {
            headers => { 'content-type' => 'application/json' },
            content => $JSON->encode($data // {}) });
    }
    die "oauth-mock $method $path: $res->{status} $res->{content}\n" unless $res->{status} == 200;
    return JSON::PP::decode_json($res->{content});
}

sub set_user {
    my ($self, $provider, $user, $emails) = @_;
    return $self->control(POST => '/__test/user',
        { provider => $provider, user => $user, $emails ? (emails => $emails) : () });
}

# config($provider, key => value, ...); $provider undef: every provider
sub config {
    my ($self, $provider, %c) = @_;
    return $self->control(POST => '/__test/config', { %c, defined $provider ? (provider => $provider) : () });
}

sub revoke { $_[0]->control(POST => '/__test/revoke', { provider => $_[1] }) }
sub add_client { my ($self, %c) = @_; $self->control(POST => '/__test/client', \%c) }
sub reset { $_[0]->control(POST => '/__test/reset') }

sub requests {
    my ($self, $provider, %opt) = @_;
    return $self->control(GET => '/__test/requests',
        { defined $provider ? (provider => $provider) : (), $opt{clear} ? (clear => 1) : () });
}

1;
