<?php
// reverse_worker.php: a PHP Gearman worker serving `reverse`, written to run under gear supervise.
//
//   gear supervise -n 4 --memory-cap 256MiB -- php examples/php/reverse_worker.php [HOST [PORT]]
//
// - It gives the job server $GEAR_WORKER_ID as its client ID, so gear supervise --server can tell
//   whether it is running a job and recycle idle copies first.
// - SIGTERM (gear supervise's stop signal) stops it between jobs: the job in hand finishes.
//   setTimeout makes work() return every second without a job, so an idle worker sees it too.
$host = $argv[1] ?? '127.0.0.1';
$port = (int)($argv[2] ?? 4730);

$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; });

$worker = new GearmanWorker();
$worker->addServer($host, $port);
$worker->setId(getenv('GEAR_WORKER_ID') ?: 'reverse-php');
$worker->setTimeout(1000);
$worker->addFunction('reverse', fn (GearmanJob $job) => strrev($job->workload()));

while (!$stop) {
    if (@$worker->work() || $worker->returnCode() === GEARMAN_TIMEOUT) {
        continue;
    }
    if ($stop) {
        break;
    }
    fwrite(STDERR, 'work() failed: ' . $worker->error() . "\n");
    exit(1); // gear supervise restarts it, with a backoff
}
