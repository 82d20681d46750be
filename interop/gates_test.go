package interop

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/worker"
)

// Pause and resume with a PHP worker: while its function is paused the worker, busy with another
// function, is never given the paused function's job; resumed, it is.
func TestPause_PHPWorker(t *testing.T) {
	needPHP(t)
	g := startGear(t, nil)
	pfx := prefix(t)
	w := g.startScriptWorker(t, "php", pfx, "php-pause", false)
	if got := g.admin(t, "pause "+pfx+".rev"); got != "OK\r\n" {
		t.Fatalf("pause: %q", got)
	}
	c := testenv.NewClient(t, g.addr())
	ctx := testenv.CtxTimeout(t, 30*time.Second)
	if _, err := c.SubmitBackground(ctx, pfx+".rev", []byte("paused job"), client.Submission{}); err != nil {
		t.Fatalf("a submit to a paused function: %v", err)
	}
	// Work of another function goes through the same worker meanwhile.
	for i := range 3 {
		j, err := c.Submit(ctx, pfx+".progress", []byte(fmt.Sprint(i)), client.Submission{})
		if err == nil {
			_, err = j.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range w.jobs(t) { // the log names functions without the prefix
		if j.fn == "rev" {
			t.Fatalf("the PHP worker was given a job of the paused function: %+v", j)
		}
	}
	if out := g.admin(t, "functions"); !strings.Contains(out, pfx+".rev\t1\t0\t1\tpaused\t0\t0\n") {
		t.Fatalf("functions while paused:\n%s", out)
	}
	if got := g.admin(t, "resume "+pfx+".rev"); got != "OK\r\n" {
		t.Fatalf("resume: %q", got)
	}
	waitFor(t, "the resumed job at the PHP worker", func() (bool, string) {
		js := w.jobs(t)
		return len(js) == 4 && js[3].fn == "rev" && js[3].workload == "paused job", fmt.Sprint(js)
	})
}

// A limit of 3 running at once holds across 8 workers, counted by the workers themselves and by
// the server, and is reached.
func TestMaxRunning_AcrossWorkers(t *testing.T) {
	g := startGear(t, nil)
	fn := prefix(t) + ".limited"
	if got := g.admin(t, "limit "+fn+" 3 0"); got != "OK\r\n" {
		t.Fatalf("limit: %q", got)
	}
	var inFlight, peak atomic.Int64
	gateFn := func(ctx context.Context, j *worker.Job) ([]byte, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select { // long enough for the others to pile up behind the limit
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil, nil
	}
	for range 8 {
		testenv.StartWorker(t, []string{g.addr()}, 1, map[string]worker.Func{fn: gateFn})
	}
	c := testenv.NewClient(t, g.addr())
	ctx := testenv.CtxTimeout(t, 60*time.Second)
	var wg sync.WaitGroup
	var maxSeen atomic.Int64
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() { // the server's own count, watched while the jobs run
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if st, ok := g.status(t, fn); ok {
				for m := maxSeen.Load(); int64(st.running) > m && !maxSeen.CompareAndSwap(m, int64(st.running)); m = maxSeen.Load() {
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := c.Submit(ctx, fn, nil, client.Submission{})
			if err == nil {
				_, err = j.Wait(ctx)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-watched // it must not ask the server after the test ends
	if p := peak.Load(); p > 3 || maxSeen.Load() > 3 {
		t.Fatalf("%d Go workers' jobs at once (the server saw %d running): the limit is 3", p, maxSeen.Load())
	}
	if peak.Load() < 3 {
		t.Fatalf("at most %d job ran at once: the test did not exercise the limit", peak.Load())
	}
	t.Logf("peak running: %d counted by the workers, %d seen by the server", peak.Load(), maxSeen.Load())
}

// A rate of 50 starts a second, measured over 10 s by the workers, within 10 %.
func TestRateLimit_Measured(t *testing.T) {
	g := startGear(t, nil)
	fn := prefix(t) + ".rated"
	if got := g.admin(t, "limit "+fn+" 0 50"); got != "OK\r\n" { // burst: one second's worth
		t.Fatalf("limit: %q", got)
	}
	var mu sync.Mutex
	var starts []time.Time
	count := func(context.Context, *worker.Job) ([]byte, error) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return nil, nil
	}
	for range 4 {
		testenv.StartWorker(t, []string{g.addr()}, 2, map[string]worker.Func{fn: count})
	}
	c := testenv.NewClient(t, g.addr())
	ctx := testenv.CtxTimeout(t, 60*time.Second)
	for i := range 700 {
		if _, err := c.SubmitBackground(ctx, fn, []byte(fmt.Sprint(i)), client.Submission{}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "11 s of starts", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) > 0 && time.Since(starts[0]) > 11*time.Second
	})
	mu.Lock()
	defer mu.Unlock()
	from := starts[0].Add(time.Second) // past any start-up burst
	n := 0
	for _, s := range starts {
		if !s.Before(from) && s.Before(from.Add(10*time.Second)) {
			n++
		}
	}
	t.Logf("%d starts in 10 s (50/s wanted)", n)
	if n < 450 || n > 550 {
		t.Fatalf("%d starts in 10 s; want 500 ± 10 %%", n)
	}
}

// Cancel a running job: its client gets WORK_FAIL at once; a Gear worker (which asked with
// OPTION_REQ "cancellation") sees its context end; a PHP worker, not told, finishes later and its
// late WORK_COMPLETE is dropped without an error to it, and it goes on working.
func TestCancelRunning(t *testing.T) {
	needPHP(t)
	g := startGear(t, nil)
	pfx := prefix(t)
	c := testenv.NewClient(t, g.addr())
	ctx := testenv.CtxTimeout(t, 30*time.Second)

	t.Run("gear worker", func(t *testing.T) {
		fn := pfx + ".cancellable"
		started, ended := make(chan string, 1), make(chan error, 1)
		testenv.StartWorker(t, []string{g.addr()}, 1, map[string]worker.Func{fn: func(ctx context.Context, j *worker.Job) ([]byte, error) {
			started <- j.Handle
			<-ctx.Done()
			ended <- context.Cause(ctx)
			return nil, ctx.Err()
		}})
		job, err := c.Submit(ctx, fn, nil, client.Submission{})
		if err != nil {
			t.Fatal(err)
		}
		h := <-started
		t0 := time.Now()
		if got := g.admin(t, "cancel job "+h); got != "OK\r\n" {
			t.Fatalf("cancel: %q", got)
		}
		if _, err := job.Wait(ctx); err == nil {
			t.Fatal("the client of a cancelled job got a result")
		}
		clientTook := time.Since(t0)
		select {
		case cause := <-ended:
			t.Logf("client told in %v, worker's context ended in %v: %v", clientTook, time.Since(t0), cause)
			if cause == nil || !strings.Contains(cause.Error(), "cancelled on the job server") {
				t.Errorf("the worker's context ended with %v, want the server's cancellation", cause)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the Gear worker's context did not end")
		}
		if clientTook > 100*time.Millisecond { // the bound
			t.Errorf("the client learned of the cancellation after %v", clientTook)
		}
	})

	t.Run("php worker", func(t *testing.T) {
		w := g.startScriptWorker(t, "php", pfx, "php-cancel", false)
		release := t.TempDir() + "/release"
		job, err := c.Submit(ctx, pfx+".gate", []byte(release), client.Submission{})
		if err != nil {
			t.Fatal(err)
		}
		h := w.waitJob(t, 1).handle
		if got := g.admin(t, "cancel job "+h); got != "OK\r\n" {
			t.Fatalf("cancel: %q", got)
		}
		if _, err := job.Wait(ctx); err == nil {
			t.Fatal("the client of a cancelled job got a result")
		}
		if err := os.WriteFile(release, nil, 0o644); err != nil { // the PHP job now completes, late
			t.Fatal(err)
		}
		j2, err := c.Submit(ctx, pfx+".rev", []byte("still works"), client.Submission{})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := j2.Wait(ctx); err != nil || string(out) != "skrow llits" {
			t.Fatalf("the PHP worker after its late result: %q %v", out, err)
		}
		// That the late result gets no ERROR (which libgearman would report) is checked on the
		// wire by the cancel-job case of server/admin_test.go (the worker gets nothing back).
	})
}

// Retries with a PHP worker: under a policy of 3 attempts a job failing twice runs 3 times, with
// gaps following the backoff (0.4 s, then 0.8 s); a job that always fails lands in the dead set
// with its 3 errors; retrying it runs it again.
func TestRetry_PHPWorker(t *testing.T) {
	needPHP(t)
	g := startGear(t, nil)
	fn := prefix(t) + ".flaky"
	log := t.TempDir() + "/attempts.log"
	start(t, nil, "php", testdata(t, "flaky.php"), g.host, g.port, fn, log)
	g.waitWorkers(t, 1, fn)
	if got := g.admin(t, "retry "+fn+" 3 0.4 10"); got != "OK\r\n" {
		t.Fatalf("retry policy: %q", got)
	}
	c := testenv.NewClient(t, g.addr())
	ctx := testenv.CtxTimeout(t, 30*time.Second)
	for _, w := range []string{"2:recovers", "99:dies"} {
		if _, err := c.SubmitBackground(ctx, fn, []byte(w), client.Submission{}); err != nil {
			t.Fatal(err)
		}
	}
	attempts := func(id string) []float64 {
		var ts []float64
		for _, line := range readLines(t, log) {
			f := strings.SplitN(line, "\t", 2)
			if len(f) == 2 && f[1] == id {
				v, _ := strconv.ParseFloat(f[0], 64)
				ts = append(ts, v)
			}
		}
		return ts
	}
	waitFor(t, "3 attempts of each job, and the dead set", func() (bool, string) {
		out := g.admin(t, "dead list")
		return len(attempts("recovers")) == 3 && len(attempts("dies")) == 3 && strings.Count(out, "\n") == 2, out
	})
	ts := attempts("recovers")
	gap1, gap2 := ts[1]-ts[0], ts[2]-ts[1]
	t.Logf("gaps between attempts: %.3f s, %.3f s (backoff 0.4 s, 0.8 s)", gap1, gap2)
	if gap1 < 0.35 || gap1 > 1.4 || gap2 < 0.75 || gap2 > 1.8 {
		t.Errorf("gaps %.3f s and %.3f s do not follow the backoff of 0.4 s then 0.8 s", gap1, gap2)
	}
	out := g.admin(t, "dead list")
	fields := strings.Split(strings.TrimSuffix(strings.Split(out, "\n")[0], "\n"), "\t")
	if len(fields) != 5 || fields[1] != fn || fields[2] != "3" || fields[4] != "WORK_FAIL" {
		t.Fatalf("dead list: %q", out)
	}
	if got := g.admin(t, "dead retry "+fields[0]); got != "OK 1\n" {
		t.Fatalf("dead retry: %q", got)
	}
	waitFor(t, "the retried dead job to run", func() (bool, string) {
		return len(attempts("dies")) == 4, fmt.Sprint(attempts("dies"))
	})
	if got := g.admin(t, "dead list"); got != ".\n" {
		t.Errorf("dead list after the retry: %q", got)
	}
}
