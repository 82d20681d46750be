<?php
// worker.php: a PHP GearmanWorker (pecl gearman on libgearman) driven by the Go interop tests.
//
// usage: php worker.php HOST PORT PREFIX ID LOG [hang]
//
// Registers PREFIX.<name> for every function below under the worker id ID (SET_CLIENT_ID) and
// serves jobs until it is killed. Every job appends "name<TAB>handle<TAB>workload" to LOG when it
// starts, so a test can tell which worker ran what. With "hang" every job hangs after that line:
// the test kills the worker mid-job.
[$_, $host, $port, $prefix, $id, $log] = $argv + array_fill(0, 6, null);
if ($log === null) {
    fwrite(STDERR, "usage: php worker.php HOST PORT PREFIX ID LOG [hang]\n");
    exit(2);
}
$hang = ($argv[6] ?? '') === 'hang';

function note(string $log, string $name, GearmanJob $job): void {
    file_put_contents($log, "$name\t{$job->handle()}\t{$job->workload()}\n", FILE_APPEND | LOCK_EX);
}

// Each handler gets the job and returns the result (or sets a non-success return code).
$functions = [
    'rev' => fn (GearmanJob $j) => strrev($j->workload()),
    'fail' => function (GearmanJob $j) {
        $j->setReturn(GEARMAN_WORK_FAIL);
        return null;
    },
    'exc' => function (GearmanJob $j) {
        $j->sendException('php boom: ' . $j->workload());
        $j->setReturn(GEARMAN_WORK_EXCEPTION);
        return null;
    },
    'progress' => function (GearmanJob $j) {
        $j->sendData('d1');
        $j->sendStatus(1, 2);
        $j->sendWarning('w1');
        $j->sendData('d2');
        $j->sendStatus(2, 2);
        return 'done:' . $j->workload();
    },
    // gate reports 1/2, then waits until the file named by the workload exists.
    'gate' => function (GearmanJob $j) {
        $j->sendStatus(1, 2);
        $deadline = microtime(true) + 30;
        while (!file_exists($j->workload())) {
            if (microtime(true) > $deadline) {
                $j->setReturn(GEARMAN_WORK_FAIL);
                return null;
            }
            usleep(10000);
        }
        $j->sendStatus(2, 2);
        return 'opened';
    },
];

$w = new GearmanWorker();
$w->addServer($host, (int)$port);
$w->setId($id);
foreach ($functions as $name => $fn) {
    $w->addFunction("$prefix.$name", function (GearmanJob $job) use ($log, $name, $fn, $hang) {
        note($log, $name, $job);
        if ($hang) {
            sleep(600);
        }
        return $fn($job);
    });
}
while (true) {
    if (!@$w->work()) {
        $rc = $w->returnCode();
        if ($rc !== GEARMAN_SUCCESS && $rc !== GEARMAN_WORK_FAIL && $rc !== GEARMAN_WORK_EXCEPTION) {
            fwrite(STDERR, "worker.php: work() failed: " . $w->error() . " (rc $rc)\n");
            exit(1);
        }
    }
}
