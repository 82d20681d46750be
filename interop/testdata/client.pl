#!/usr/bin/perl
# client.pl: one Gearman::Client call for the Go interop tests.
#
# usage: perl client.pl HOST PORT MODE ARGS...
#
#   do FUNCTION DATA [PRIO]           do_task (PRIO normal|high|low) with every callback recorded
#   do_exceptions FUNCTION DATA       the same from a client created with exceptions => 1
#   bg FUNCTION DATA                  dispatch_background
#   taskset DATA FUNCTION...          one task set, a task per FUNCTION, all callbacks recorded
#
# Prints one JSON object; the Go test makes every assertion. "events" lists the callbacks in the
# order they ran: data:X, status:N/D, warning:X, exception:X, fail, complete:X.
use strict;
use warnings;
use Gearman::Client;
use JSON::PP;
use Storable ();

my ($host, $port, $mode, @args) = @ARGV;
defined $mode or die "usage: perl client.pl HOST PORT MODE ARGS...\n";
$| = 1;

sub client { Gearman::Client->new(job_servers => ["$host:$port"], command_timeout => 20, @_) }

# callbacks returns task options that append every callback to @$events.
sub callbacks {
    my ($events) = @_;
    return (
        on_data      => sub { push @$events, 'data:' . ${ $_[0] } },
        on_status    => sub { push @$events, "status:$_[0]/$_[1]" },
        on_warning   => sub { push @$events, 'warning:' . (ref $_[0] ? ${ $_[0] } : $_[0]) },
        # Gearman::Worker sends a die message frozen by Storable::nfreeze and Gearman::Client hands
        # on_exception the payload as it came, so thaw it as a Perl caller would.
        on_exception => sub {
            my $v = eval { Storable::thaw($_[0]) };
            push @$events, 'exception:' . (ref $v eq 'SCALAR' ? $$v : $_[0] // '');
        },
        on_fail      => sub { push @$events, 'fail' },
        on_complete  => sub { push @$events, 'complete:' . ${ $_[0] } },
        timeout      => 20,
    );
}

sub do_task {
    my ($c, $fn, $data, $prio) = @_;
    my @events;
    my %opts = callbacks(\@events);
    $opts{priority} = $prio if $prio && $prio ne 'normal';
    my $res = $c->do_task($fn, $data, \%opts);
    return { result => (defined $res ? $$res : undef), events => \@events };
}

my $out;
if ($mode eq 'do') {
    $out = do_task(client(), @args);
} elsif ($mode eq 'do_exceptions') {
    $out = do_task(client(exceptions => 1), @args);
} elsif ($mode eq 'bg') {
    my ($fn, $data) = @args;
    $out = { handle => client()->dispatch_background($fn, $data) };
} elsif ($mode eq 'taskset') {
    my ($data, @fns) = @args;
    my $ts = client()->new_task_set;
    my @tasks = map { [] } @fns;
    $ts->add_task($fns[$_], $data, { callbacks($tasks[$_]) }) for 0 .. $#fns;
    $ts->wait(timeout => 20);
    $out = { tasks => \@tasks };
} else {
    die "unknown mode $mode\n";
}
print JSON::PP->new->canonical->encode($out), "\n";
