#!/usr/bin/perl
# tls.pl: Perl's Gearman::Worker and Gearman::Client over TLS (IO::Socket::SSL), for the Go
# interop tests.
#
# usage: perl tls.pl worker HOST PORT FUNCTION ID CA [CERT KEY]
#        perl tls.pl client HOST PORT FUNCTION DATA CA [CERT KEY]
#
# The job server is given as Gearman::Objects documents it: { host, port, use_ssl => 1, ca_file,
# cert_file, key_file }; IO::Socket::SSL verifies the server's certificate against CA and its
# address. The worker registers FUNCTION (returning its data reversed) under the client id ID and
# serves until it is killed. The client runs one do_task and prints one JSON object: the result
# (null when the job did not run), what Gearman::Client died of, and IO::Socket::SSL's last error.
use strict;
use warnings;
use Gearman::Client;
use Gearman::Worker;
use IO::Socket::SSL;
use JSON::PP;

my ($role, $host, $port, $fn, $arg, $ca, $cert, $key) = @ARGV;
defined $ca or die "usage: perl tls.pl worker|client HOST PORT FUNCTION ID|DATA CA [CERT KEY]\n";
$| = 1;

my %server = (host => $host, port => $port, use_ssl => 1, ca_file => $ca);
if (defined $cert) {
    $server{cert_file} = $cert;
    $server{key_file}  = $key;
}

if ($role eq 'worker') {
    my $worker = Gearman::Worker->new(job_servers => [\%server], client_id => $arg);
    $worker->register_function($fn => sub { return scalar reverse $_[0]->arg });
    $worker->work while 1;
} elsif ($role eq 'client') {
    my $client = Gearman::Client->new(job_servers => [\%server], command_timeout => 20);
    my $res = eval { $client->do_task($fn, $arg, { timeout => 20 }) };
    print encode_json({ result => (defined $res ? $$res : undef), error => "$@",
        ssl_error => "$IO::Socket::SSL::SSL_ERROR" }), "\n";
} else {
    die "unknown role $role\n";
}
