<?php
// client.php: one GearmanClient (pecl gearman on libgearman) call for the Go interop tests.
//
// usage: php client.php HOST PORT MODE ARGS...
//
//   do PRIO FUNCTION DATA [UNIQUE]  doNormal/doHigh/doLow (PRIO normal|high|low)
//   bg PRIO FUNCTION DATA           doBackground/doHighBackground/doLowBackground
//   status HANDLE                   jobStatus
//   tasks FUNCTION DATA             addTask + runTasks with every callback set; records them in order
//
// Prints one JSON object: "rc" (the return code's name), and "result", "handle", "status" or
// "events" depending on MODE. The Go test makes every assertion.
[$_, $host, $port, $mode] = $argv + array_fill(0, 4, null);
$args = array_slice($argv, 4);

function rc_name(int $rc): string {
    foreach (['GEARMAN_SUCCESS', 'GEARMAN_WORK_FAIL', 'GEARMAN_WORK_EXCEPTION', 'GEARMAN_TIMEOUT',
              'GEARMAN_LOST_CONNECTION', 'GEARMAN_COULD_NOT_CONNECT', 'GEARMAN_SERVER_ERROR',
              'GEARMAN_UNKNOWN_STATE', 'GEARMAN_NO_ACTIVE_FDS', 'GEARMAN_IO_WAIT'] as $name) {
        if (constant($name) === $rc) {
            return $name;
        }
    }
    return "rc=$rc";
}

function out(GearmanClient $c, array $fields): void {
    echo json_encode(['rc' => rc_name($c->returnCode())] + $fields, JSON_UNESCAPED_SLASHES), "\n";
}

$c = new GearmanClient();
if (!$c->addServer($host, (int)$port)) {
    fwrite(STDERR, "addServer failed\n");
    exit(2);
}
$c->setTimeout(20000); // ms: fail rather than hang if the server never answers

switch ($mode) {
case 'do':
    [$prio, $fn, $data] = $args;
    $method = ['normal' => 'doNormal', 'high' => 'doHigh', 'low' => 'doLow'][$prio];
    $result = @$c->$method($fn, $data, $args[3] ?? '');
    out($c, ['result' => $result]);
    break;
case 'bg':
    [$prio, $fn, $data] = $args;
    $method = ['normal' => 'doBackground', 'high' => 'doHighBackground', 'low' => 'doLowBackground'][$prio];
    $handle = $c->$method($fn, $data);
    out($c, ['handle' => $handle]);
    break;
case 'status':
    $st = $c->jobStatus($args[0]);
    out($c, ['status' => $st]);
    break;
case 'tasks':
    [$fn, $data] = $args;
    $events = [];
    $c->setDataCallback(function (GearmanTask $t) use (&$events) { $events[] = 'data:' . $t->data(); });
    $c->setStatusCallback(function (GearmanTask $t) use (&$events) {
        $events[] = 'status:' . $t->taskNumerator() . '/' . $t->taskDenominator();
    });
    $c->setWarningCallback(function (GearmanTask $t) use (&$events) { $events[] = 'warning:' . $t->data(); });
    $c->setCompleteCallback(function (GearmanTask $t) use (&$events) { $events[] = 'complete:' . $t->data(); });
    $c->setFailCallback(function (GearmanTask $t) use (&$events) { $events[] = 'fail'; });
    $c->setExceptionCallback(function (GearmanTask $t) use (&$events) { $events[] = 'exception:' . $t->data(); });
    $c->addTask($fn, $data);
    @$c->runTasks();
    out($c, ['events' => $events]);
    break;
default:
    fwrite(STDERR, "unknown mode $mode\n");
    exit(2);
}
