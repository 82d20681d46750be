package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testenv"
)

// The memory guard of `gear worker` end to end: the binary recycles itself with the exit statuses a
// supervisor reads (3 memory cap, 4 --max-jobs), or re-executes itself with --restart, and never
// loses a job: the one in hand finishes first, the queued ones stay queued.

func guardClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Servers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// guardEnv keeps the race runtime from sleeping a second at every exit.
var guardEnv = []string{"GORACE=atexit_sleep_ms=0"}

func TestWorkerGuard_MaxJobsExitsWithStatus4(t *testing.T) {
	t.Parallel()
	addr := mustGear(t)
	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, d := range []string{"one", "two", "three"} {
		if _, err := c.SubmitBackground(ctx, "reverse", []byte(d), client.Submission{}); err != nil {
			t.Fatal(err)
		}
	}
	p := startGear(t, guardEnv, gearBin, "worker", "--server", addr, "--max-jobs", "2")
	if code := waitExit(t, p); code != exitMaxJobs {
		t.Fatalf("gear worker --max-jobs 2 exited %d, want %d\n%s", code, exitMaxJobs, p.output())
	}
	if st := testenv.FunctionStatus(t, addr, "reverse"); st.Total != 1 || st.Running != 0 || st.Workers != 0 {
		t.Errorf("after the worker exited the server has %+v; want exactly 2 of 3 jobs done", st)
	}
	if out := p.output(); !strings.Contains(out, "status=4") {
		t.Errorf("the exit is not logged with its status:\n%s", out)
	}
}

// With --restart the worker re-executes itself in place (same process, same PID) each time a limit
// is reached, and goes on serving.
func TestWorkerGuard_RestartReExecutes(t *testing.T) {
	t.Parallel()
	addr := mustGear(t)
	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startGear(t, guardEnv, gearBin, "worker", "--server", addr, "--max-jobs", "1", "--restart")
	pid := p.cmd.Process.Pid
	for _, in := range []string{"abc", "hello"} {
		out, err := c.Do(ctx, "reverse", []byte(in), client.Submission{})
		if want := reverseString(in); err != nil || string(out) != want {
			t.Fatalf("Do(%q) = %q, %v; want %q\n%s", in, out, err, want, p.output())
		}
	}
	waitFor(t, "the third start", 20*time.Second, func() bool {
		return strings.Count(p.output(), "gear worker started") >= 3
	})
	select {
	case <-p.done:
		t.Fatalf("the worker exited instead of restarting: %v\n%s", p.err, p.output())
	default:
	}
	if n := strings.Count(p.output(), "msg=restarting"); n != 2 {
		t.Errorf("%d restarts logged, want 2\n%s", n, p.output())
	}
	// The restarted worker still serves, in the same process.
	if out, err := c.Do(ctx, "reverse", []byte("xyz"), client.Submission{}); err != nil || string(out) != "zyx" {
		t.Fatalf("Do after restarts = %q, %v", out, err)
	}
	waitFor(t, "the fourth start", 20*time.Second, func() bool {
		return strings.Count(p.output(), "gear worker started") >= 4
	})
	if p.cmd.Process.Pid != pid {
		t.Fatal("the process changed")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, p); code != 0 {
		t.Errorf("exit status %d after SIGTERM\n%s", code, p.output())
	}
}

// At its memory cap (1 MiB: reached at the first sample) the worker finishes the job in hand, whose
// client gets the result, takes no other job, and exits with status 3.
func TestWorkerGuard_MemoryCapExitsWithStatus3AfterJobInHand(t *testing.T) {
	t.Parallel()
	addr := mustGear(t)
	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gateFile := filepath.Join(t.TempDir(), "go-ahead")
	inHand, err := c.Submit(ctx, "gated", []byte("in hand"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubmitBackground(ctx, "gated", []byte("queued"), client.Submission{}); err != nil {
		t.Fatal(err)
	}
	// The job waits for gateFile, then upper-cases its data.
	p := startGear(t, guardEnv, gearBin, "worker", "--server", addr, "--memory-cap", "1MiB", "-f", "gated", "--",
		"sh", "-c", `while [ ! -e "$0" ]; do sleep 0.01; done; tr a-z A-Z`, gateFile)
	waitFor(t, "the job to be running", 20*time.Second, func() bool {
		st, err := c.Status(ctx, inHand.Handle())
		return err == nil && st.Running
	})
	waitFor(t, "the guard to reach the cap", 20*time.Second, func() bool {
		return strings.Contains(p.output(), "worker memory at its cap")
	})
	select {
	case <-p.done:
		t.Fatalf("the worker exited with a job in hand\n%s", p.output())
	default:
	}
	if err := os.WriteFile(gateFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := inHand.Wait(ctx); err != nil || string(out) != "IN HAND" {
		t.Errorf("the job in hand = %q, %v\n%s", out, err, p.output())
	}
	if code := waitExit(t, p); code != exitMemoryCap {
		t.Fatalf("exit status %d, want %d\n%s", code, exitMemoryCap, p.output())
	}
	if st := testenv.FunctionStatus(t, addr, "gated"); st.Total != 1 || st.Running != 0 {
		t.Errorf("after the exit the server has %+v; want the second job still queued", st)
	}
}

// A worker always over its cap, with --restart: it re-executes itself after the job in hand again
// and again, and every job still runs exactly once and reaches its client.
func TestWorkerGuard_MemoryCapRestartLosesNoJob(t *testing.T) {
	t.Parallel()
	addr := mustGear(t)
	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	runLog := filepath.Join(t.TempDir(), "runs")
	const n = 4
	jobs := make([]*client.Job, n)
	for i := range jobs {
		var err error
		if jobs[i], err = c.Submit(ctx, "slow", []byte{'a' + byte(i)}, client.Submission{}); err != nil {
			t.Fatal(err)
		}
	}
	// Each job logs its data, takes a while (the guard samples once a second), and upper-cases it.
	p := startGear(t, guardEnv, gearBin, "worker", "--server", addr, "--memory-cap", "1MiB", "--restart", "-f", "slow", "--",
		"sh", "-c", `data=$(cat); echo "$data" >> "$0"; sleep 0.4; printf %s "$data" | tr a-z A-Z`, runLog)
	for i, j := range jobs {
		want := string(rune('A' + i))
		if out, err := j.Wait(ctx); err != nil || string(out) != want {
			t.Fatalf("job %d = %q, %v; want %q\n%s", i, out, err, want, p.output())
		}
	}
	b, err := os.ReadFile(runLog)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); strings.Join(got, "") != "abcd" {
		t.Errorf("jobs ran %q, want each of a b c d once, in order", got)
	}
	if !strings.Contains(p.output(), "msg=restarting") {
		t.Errorf("the worker never restarted at its cap\n%s", p.output())
	}
	select {
	case <-p.done:
		t.Errorf("the worker exited instead of restarting: %v\n%s", p.err, p.output())
	default:
	}
}

// The case: --alert-command 'sh -c "echo ALERT >> f"' reaches sh with its quoting intact, and
// a worker past --memory-warn and --memory-cap in the same sample runs it for warn and for cap (with
// its PID in the log) before it exits at the cap.
func TestWorkerGuard_AlertCommandQuotingWarnAndCap(t *testing.T) {
	t.Parallel()
	addr := mustGear(t)
	f := filepath.Join(t.TempDir(), "f")
	p := startGear(t, guardEnv, gearBin, "worker", "--server", addr, "--memory-warn", "1MiB", "--memory-cap", "2MiB",
		"--alert-command", `sh -c "echo ALERT >> '`+f+`'"`)
	if code := waitExit(t, p); code != exitMemoryCap {
		t.Fatalf("exit status %d, want %d\n%s", code, exitMemoryCap, p.output())
	}
	if b, err := os.ReadFile(f); err != nil || string(b) != "ALERT\nALERT\nALERT\n" {
		t.Errorf("the alert command wrote %q, %v; want ALERT three times (warn, cap, recycled)\n%s", b, err, p.output())
	}
	pid := strconv.Itoa(p.cmd.Process.Pid)
	for _, ev := range []string{"warn", "cap", "recycled"} {
		if !strings.Contains(p.output(), "msg=alert event="+ev+` program="gear worker" pid=`+pid) {
			t.Errorf("no %s alert for pid %s in the log\n%s", ev, pid, p.output())
		}
	}
	if strings.Contains(p.output(), "alert command failed") {
		t.Errorf("the alert command failed\n%s", p.output())
	}
	// A command line only a shell could run is refused at start, saying so.
	q := startGear(t, guardEnv, gearBin, "worker", "--server", addr, "--alert-command", `echo ALERT >> f`)
	if code := waitExit(t, q); code != 2 || !strings.Contains(q.output(), "sh -c") {
		t.Errorf("--alert-command 'echo ALERT >> f': status %d, want 2 and a hint to use sh -c\n%s", code, q.output())
	}
}

func reverseString(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// mustGear starts an in-process Gear server for the duration of the test and returns its address.
func mustGear(t *testing.T) string {
	addr, _ := testenv.StartGear(t)
	return addr
}
