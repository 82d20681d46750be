<?php
// flaky.php: a PHP GearmanWorker for the retry tests.
//
// usage: php flaky.php HOST PORT FUNCTION LOG
//
// A job's workload is "N:ID": the job fails (WORK_FAIL) its first N attempts and then succeeds.
// Every attempt appends "MICROTIME<TAB>ID" to LOG, so the test sees how many attempts ran and when.
[$_, $host, $port, $function, $log] = $argv + array_fill(0, 5, null);
if ($log === null) {
    fwrite(STDERR, "usage: php flaky.php HOST PORT FUNCTION LOG\n");
    exit(2);
}
$w = new GearmanWorker();
$w->addServer($host, (int)$port);
$w->addFunction($function, function (GearmanJob $job) use ($log) {
    [$fails, $id] = explode(':', $job->workload(), 2);
    file_put_contents($log, sprintf("%.6f\t%s\n", microtime(true), $id), FILE_APPEND | LOCK_EX);
    $seen = 0;
    foreach (file($log) as $line) {
        if (rtrim(explode("\t", $line)[1]) === $id) {
            $seen++;
        }
    }
    if ($seen <= (int)$fails) {
        $job->setReturn(GEARMAN_WORK_FAIL);
        return null;
    }
    return "ok";
});
while (true) {
    if (!@$w->work()) {
        $rc = $w->returnCode();
        if ($rc !== GEARMAN_SUCCESS && $rc !== GEARMAN_WORK_FAIL) {
            fwrite(STDERR, "flaky.php: work() failed: " . $w->error() . " (rc $rc)\n");
            exit(1);
        }
    }
}
