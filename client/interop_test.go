package client_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
)

// phpWorker is a pecl-gearman (libgearman) GearmanWorker: reverse, progress, exception and fail.
const phpWorker = `<?php
$w = new GearmanWorker();
$w->addServer($argv[1], (int)$argv[2]);
$w->addFunction("peer.reverse", function (GearmanJob $j) { return strrev($j->workload()); });
$w->addFunction("peer.progress", function (GearmanJob $j) {
    $j->sendData("d1");
    $j->sendStatus(1, 2);
    $j->sendWarning("w1");
    $j->sendData("d2");
    return "done:" . $j->workload();
});
$w->addFunction("peer.exc", function (GearmanJob $j) {
    $j->sendException("php boom: " . $j->workload());
    $j->setReturn(GEARMAN_WORK_EXCEPTION);
    return null;
});
$w->addFunction("peer.fail", function (GearmanJob $j) {
    $j->setReturn(GEARMAN_WORK_FAIL);
    return null;
});
for (;;) {
    if (!@$w->work()) {
        usleep(10000);
    }
}
`

// perlWorker is a Gearman::Worker (pure Perl): reverse, exception (die) and fail (undef).
const perlWorker = `use strict;
use warnings;
use Gearman::Worker;
my $w = Gearman::Worker->new(job_servers => ["$ARGV[0]:$ARGV[1]"]);
$w->register_function("peer.reverse" => sub { return scalar reverse $_[0]->arg });
$w->register_function("peer.exc" => sub { die "perl boom: " . $_[0]->arg . "\n" });
$w->register_function("peer.fail" => sub { return undef });
$w->work while 1;
`

// startPeer runs interpreter on script (written to a file) with host and port, until the test ends.
// A missing interpreter fails the test: CI installs the foreign peers.
func startPeer(t *testing.T, interpreter, script, addr string) {
	t.Helper()
	path, err := exec.LookPath(interpreter)
	if err != nil {
		t.Fatalf("%s is required for the interop tests: %v", interpreter, err)
	}
	file := filepath.Join(t.TempDir(), "peer")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(path, file, host, port)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", interpreter, out.String())
		}
	})
}

// Gear's client against foreign workers on a Gear server: results, progress packets, exceptions
// and failures as libgearman and Perl produce them.
func TestClient_ForeignWorkers(t *testing.T) {
	for _, peer := range []struct {
		name, interpreter, script string
		progress                  bool
	}{
		{"php", "php", phpWorker, true},
		{"perl", "perl", perlWorker, false},
	} {
		t.Run(peer.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := mustStartGear(t)
			startPeer(t, peer.interpreter, peer.script, addr)
			waitWorkers(t, addr, "peer.fail", 1)
			c := newClient(t, addr)
			ctx := ctxTimeout(t, 20*time.Second)

			inputs := []string{"hello", "", "a longer payload with spaces"}
			if peer.name == "perl" {
				// Gearman::Worker 2.004 sends an empty (or "0") result as WORK_COMPLETE without the
				// NUL after the handle; Gear answers ERROR and the Perl worker dies.
				inputs = slices.DeleteFunc(inputs, func(s string) bool { return s == "" })
			}
			for _, in := range inputs {
				out, err := c.Do(ctx, "peer.reverse", []byte(in), client.Submission{})
				want := []byte(in)
				slices.Reverse(want)
				if err != nil || string(out) != string(want) {
					t.Errorf("reverse %q = %q, %v; want %q", in, out, err, want)
				}
			}
			// Several at once, pipelined on the one connection; the worker takes them in turn.
			var wg sync.WaitGroup
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					in := fmt.Sprint("job", i)
					out, err := c.Do(ctx, "peer.reverse", []byte(in), client.Submission{Priority: client.Priority(i % 3)})
					want := []byte(in)
					slices.Reverse(want)
					if err != nil || string(out) != string(want) {
						t.Errorf("concurrent reverse %q = %q, %v", in, out, err)
					}
				}()
			}
			wg.Wait()

			_, err := c.Do(ctx, "peer.exc", []byte("x"), client.Submission{})
			if ee, ok := errors.AsType[*client.JobExceptionError](err); !ok || !strings.Contains(string(ee.Data), peer.name+" boom: x") {
				t.Errorf("exception from the %s worker: %v", peer.name, err)
			}
			_, err = c.Do(ctx, "peer.fail", []byte("x"), client.Submission{})
			if _, ok := errors.AsType[*client.JobFailedError](err); !ok {
				t.Errorf("failure from the %s worker: %v; want *JobFailedError", peer.name, err)
			}

			if peer.progress {
				var events []string
				out, err := c.Do(ctx, "peer.progress", []byte("p"), client.Submission{Handlers: client.Handlers{
					OnData:    func(d []byte) { events = append(events, "data:"+string(d)) },
					OnWarning: func(d []byte) { events = append(events, "warning:"+string(d)) },
					OnStatus:  func(n, d uint64) { events = append(events, fmt.Sprintf("status:%d/%d", n, d)) },
				}})
				if err != nil || string(out) != "done:p" {
					t.Errorf("progress = %q, %v", out, err)
				}
				if want := []string{"data:d1", "status:1/2", "warning:w1", "data:d2"}; !slices.Equal(events, want) {
					t.Errorf("progress events %q, want %q", events, want)
				}
			}

			// A background job and its status, as the foreign worker reports it.
			h, err := c.SubmitBackground(ctx, "peer.reverse", []byte("bg"), client.Submission{})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the background job to finish", 10*time.Second, func() bool {
				st, err := c.Status(ctx, h)
				return err == nil && !st.Known
			})
		})
	}
}
