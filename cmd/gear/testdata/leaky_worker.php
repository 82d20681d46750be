<?php
// leaky_worker.php: a PHP worker that leaks memory on every job, for gear supervise's tests.
//
// usage: php leaky_worker.php HOST PORT FUNCTION LOG LEAK_BYTES
//
// Serves FUNCTION (the workload reversed) under the client ID $GEAR_WORKER_ID, keeps LEAK_BYTES
// of every job in a global, and appends "PID<TAB>workload" to LOG for each job. SIGTERM stops it
// between jobs (the job in hand finishes), as the README's example worker does.
[$_, $host, $port, $function, $log, $leakBytes] = $argv + array_fill(0, 6, null);
if ($leakBytes === null) {
    fwrite(STDERR, "usage: php leaky_worker.php HOST PORT FUNCTION LOG LEAK_BYTES\n");
    exit(2);
}
$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; });

$leak = [];
$w = new GearmanWorker();
$w->addServer($host, (int)$port);
$w->setId(getenv('GEAR_WORKER_ID') ?: 'leaky');
$w->setTimeout(200); // work() returns every 200 ms without a job, to see $stop
$w->addFunction($function, function (GearmanJob $job) use (&$leak, $log, $leakBytes) {
    $leak[] = str_repeat('x', (int)$leakBytes);
    usleep(5000);
    file_put_contents($log, getmypid() . "\t" . $job->workload() . "\n", FILE_APPEND | LOCK_EX);
    return strrev($job->workload());
});
fwrite(STDERR, "leaky worker " . getmypid() . " serving $function\n");
while (!$stop) {
    if (@$w->work() || $w->returnCode() === GEARMAN_TIMEOUT) {
        continue;
    }
    if ($stop) {
        break;
    }
    fwrite(STDERR, "leaky_worker.php: work() failed: " . $w->error() . "\n");
    exit(1);
}
fwrite(STDERR, "leaky worker " . getmypid() . " stopping\n");
