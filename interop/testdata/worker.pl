#!/usr/bin/perl
# worker.pl: a Perl Gearman::Worker driven by the Go interop tests.
#
# usage: perl worker.pl HOST PORT PREFIX ID LOG [hang]
#
# Registers PREFIX.<name> for every function below under the client id ID (SET_CLIENT_ID) and
# serves jobs until it is killed. Every job appends "name<TAB>handle<TAB>workload" to LOG when it
# starts. With "hang" every job hangs after that line: the test kills the worker mid-job.
#
# work() is deliberately not wrapped in eval: if the server answers the worker with a packet it
# does not expect (an ERROR), Gearman::Worker dies and the test sees the process gone.
use strict;
use warnings;
use Fcntl qw(:flock);
use Gearman::Worker;
use Time::HiRes qw(usleep time);

@ARGV >= 5 or die "usage: perl worker.pl HOST PORT PREFIX ID LOG [hang]\n";
my ($host, $port, $prefix, $id, $log, $mode) = @ARGV;
my $hang = defined $mode && $mode eq 'hang';
$| = 1;

my $worker = Gearman::Worker->new(job_servers => ["$host:$port"], client_id => $id);

sub note {
    my ($name, $job) = @_;
    open(my $fh, '>>', $log) or die "open $log: $!";
    flock($fh, LOCK_EX);
    print $fh join("\t", $name, $job->handle, $job->arg), "\n";
    close $fh;
}

my %functions = (
    rev  => sub { return scalar reverse $_[0]->arg },
    fail => sub { return undef },                          # WORK_FAIL
    exc  => sub { die "perl boom: " . $_[0]->arg . "\n" },  # WORK_EXCEPTION, then WORK_FAIL
    progress => sub {
        my $job = shift;
        $worker->send_work_data($job, 'd1');
        $job->set_status(1, 2);
        $worker->send_work_warning($job, 'w1');
        $worker->send_work_data($job, 'd2');
        $job->set_status(2, 2);
        return 'done:' . $job->arg;
    },
    # gate reports 1/2, then waits until the file named by the workload exists.
    gate => sub {
        my $job = shift;
        $job->set_status(1, 2);
        my $deadline = time + 30;
        until (-e $job->arg) {
            return undef if time > $deadline;
            usleep(10_000);
        }
        $job->set_status(2, 2);
        return 'opened';
    },
);

for my $name (sort keys %functions) {
    my $fn = $functions{$name};
    $worker->register_function("$prefix.$name" => sub {
        my $job = shift;
        note($name, $job);
        sleep 600 if $hang;
        return $fn->($job);
    });
}
$worker->work while 1;
