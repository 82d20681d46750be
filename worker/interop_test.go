package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testenv"

	"github.com/gearhq/gear/worker"
)

// peerFuncs are the functions Gear's worker serves to the foreign clients.
var peerFuncs = map[string]worker.Func{
	"peer.reverse": reverseFunc,
	"peer.fail":    func(context.Context, *worker.Job) ([]byte, error) { return nil, worker.ErrFail },
	"peer.exc":     func(context.Context, *worker.Job) ([]byte, error) { return nil, errors.New("go boom") },
	"peer.progress": func(_ context.Context, j *worker.Job) ([]byte, error) {
		j.SendData([]byte("d1"))
		j.SendStatus(1, 2)
		j.SendWarning([]byte("w1"))
		j.SendData([]byte("d2"))
		j.SendStatus(2, 2)
		return append([]byte("done:"), j.Data...), nil
	},
}

// runPeer runs a foreign client to completion (at most 20 s) and returns its stdout, stderr and exit
// status. A missing program fails the test: CI installs the foreign peers.
func runPeer(t *testing.T, program string, args ...string) (string, string, int) {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s is required for the interop tests: %v", program, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish: %s", program, args, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// phpClient drives pecl-gearman's GearmanClient (libgearman) against the functions above and prints
// what it saw as JSON; the Go test makes the assertions.
const phpClient = `<?php
$c = new GearmanClient();
$c->addServer($argv[1], (int)$argv[2]);
$c->setTimeout(15000);
$out = [];
$out['normal'] = $c->doNormal("peer.reverse", "hello php");
$out['normal_ok'] = $c->returnCode() == GEARMAN_SUCCESS;
$out['high'] = $c->doHigh("peer.reverse", "high");
$out['low'] = $c->doLow("peer.reverse", "low", "uniq-low");
@$c->doNormal("peer.fail", "x");
$out['fail_rc'] = $c->returnCode() == GEARMAN_WORK_FAIL;
@$c->doNormal("peer.exc", "x");
$out['exc_rc'] = $c->returnCode() == GEARMAN_WORK_FAIL || $c->returnCode() == GEARMAN_WORK_EXCEPTION;
$events = [];
$c->setDataCallback(function ($t) use (&$events) { $events[] = "data:" . $t->data(); });
$c->setWarningCallback(function ($t) use (&$events) { $events[] = "warning:" . $t->data(); });
$c->setStatusCallback(function ($t) use (&$events) { $events[] = "status:" . $t->taskNumerator() . "/" . $t->taskDenominator(); });
$c->setCompleteCallback(function ($t) use (&$events) { $events[] = "complete:" . $t->data(); });
$c->addTask("peer.progress", "p");
$c->runTasks();
$out['events'] = $events;
$h = $c->doBackground("peer.reverse", "bg");
$out['bg_handle'] = $h;
for ($i = 0; $i < 200; $i++) {
    $st = $c->jobStatus($h);
    if (!$st[0]) { break; }
    usleep(10000);
}
$out['bg_done'] = !$st[0];
echo json_encode($out);
`

// Gear's worker serving foreign clients: the gearman CLI (libgearman) and PHP's GearmanClient, on
// Gear and on gearmand.
func TestWorker_ServesForeignClients(t *testing.T) {
	for _, kind := range testenv.ServerKinds {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			addr := kind.Start(t)
			host, port, _ := strings.Cut(addr, ":")
			startWorker(t, []string{addr}, 2, peerFuncs)
			waitWorkers(t, addr, "peer.reverse", 1)

			t.Run("gearman CLI", func(t *testing.T) {
				for _, tc := range []struct {
					args []string
					want string
				}{
					{[]string{"-f", "peer.reverse", "data"}, "atad"},
					{[]string{"-f", "peer.reverse", "-I", "-u", "cli-unique", "high with unique"}, "euqinu htiw hgih"},
					{[]string{"-f", "peer.reverse", "-L", "low"}, "wol"},
				} {
					out, errOut, code := runPeer(t, "gearman", append([]string{"-h", host, "-p", port}, tc.args...)...)
					if code != 0 || out != tc.want {
						t.Errorf("gearman %q = %q (exit %d, stderr %q), want %q", tc.args, out, code, errOut, tc.want)
					}
				}
				if _, _, code := runPeer(t, "gearman", "-h", host, "-p", port, "-f", "peer.fail", "x"); code == 0 {
					t.Error("gearman on a failing job exited 0")
				}
				// A background job: the worker runs it after the CLI has gone.
				if _, errOut, code := runPeer(t, "gearman", "-h", host, "-p", port, "-b", "-f", "peer.reverse", "bg"); code != 0 {
					t.Errorf("gearman -b exited %d: %s", code, errOut)
				}
				waitFor(t, "the background job to run", 10*time.Second, func() bool {
					return functionStatus(t, addr, "peer.reverse").Total == 0
				})
			})

			t.Run("php GearmanClient", func(t *testing.T) {
				script := filepath.Join(t.TempDir(), "client.php")
				if err := os.WriteFile(script, []byte(phpClient), 0o644); err != nil {
					t.Fatal(err)
				}
				out, errOut, code := runPeer(t, "php", script, host, port)
				if code != 0 {
					t.Fatalf("php exited %d: %s%s", code, out, errOut)
				}
				var got struct {
					Normal   string   `json:"normal"`
					NormalOK bool     `json:"normal_ok"`
					High     string   `json:"high"`
					Low      string   `json:"low"`
					FailRC   bool     `json:"fail_rc"`
					ExcRC    bool     `json:"exc_rc"`
					Events   []string `json:"events"`
					BgHandle string   `json:"bg_handle"`
					BgDone   bool     `json:"bg_done"`
				}
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("php output %q: %v (stderr %s)", out, err, errOut)
				}
				if got.Normal != "php olleh" || !got.NormalOK || got.High != "hgih" || got.Low != "wol" {
					t.Errorf("doNormal/doHigh/doLow: %+v", got)
				}
				if !got.FailRC || !got.ExcRC {
					t.Errorf("failure return codes: fail %v, exception %v", got.FailRC, got.ExcRC)
				}
				want := []string{"data:d1", "status:1/2", "warning:w1", "data:d2", "status:2/2", "complete:done:p"}
				if !slices.Equal(got.Events, want) {
					t.Errorf("task callbacks %q, want %q", got.Events, want)
				}
				if got.BgHandle == "" || !got.BgDone {
					t.Errorf("background job %q finished: %v", got.BgHandle, got.BgDone)
				}
			})
		})
	}
}
