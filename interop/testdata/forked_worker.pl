#!/usr/bin/perl
# forked_worker.pl: the fork-and-kill pattern of Perl worker pools, driven by the Go interop tests.
#
# usage: perl forked_worker.pl HOST PORT FUNCTION ID
#
# The parent creates a Gearman::Worker and registers FUNCTION (which opens the connection), then
# forks: the child runs work() on the inherited socket, the parent prints "child PID" and keeps
# the socket open until it is killed. The test kills the child, so the server sees a worker that
# went to sleep and will never read its NOOP, on a connection that stays open.
use strict;
use warnings;
use Gearman::Worker;

@ARGV == 4 or die "usage: perl forked_worker.pl HOST PORT FUNCTION ID\n";
my ($host, $port, $function, $id) = @ARGV;
$| = 1;

my $worker = Gearman::Worker->new(job_servers => ["$host:$port"], client_id => $id);
$worker->register_function($function => sub { return scalar reverse $_[0]->arg });

my $pid = fork();
defined $pid or die "fork: $!";
if ($pid == 0) {
    $worker->work while 1;
    exit 0;
}
print "child $pid\n";
sleep 600;
