package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/worker"
)

// fakeMemory is an injected Guard.Sample: the test sets the "memory in use" and counts samples.
type fakeMemory struct {
	value   atomic.Uint64
	samples atomic.Int64
}

func (m *fakeMemory) sample() uint64 {
	m.samples.Add(1)
	return m.value.Load()
}

// waitSamples waits until the guard has sampled n more times, so it has seen the current value.
func (m *fakeMemory) waitSamples(t *testing.T, n int64) {
	t.Helper()
	target := m.samples.Load() + n
	waitFor(t, "the guard to sample", 10*time.Second, func() bool { return m.samples.Load() >= target })
}

// logTo returns a logger writing text lines to buf.
func logTo(buf *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

// The warning hook runs once each time memory crosses the threshold upwards, not on every sample.
func TestGuard_WarnOncePerCrossing(t *testing.T) {
	t.Parallel()
	addr, _ := mustStartGear(t)
	mem := &fakeMemory{}
	mem.value.Store(10)
	warns := make(chan uint64, 10)
	r := startWorkerOpts(t, worker.Options{Servers: []string{addr}, Guard: worker.Guard{
		WarnBytes: 100, MaxBytes: 1000, Interval: 2 * time.Millisecond,
		Sample: mem.sample, OnMemoryWarning: func(b uint64) { warns <- b },
	}}, map[string]worker.Func{"gw.fn": reverseFunc}, nil)
	count := func() int { return len(warns) }

	mem.waitSamples(t, 3)
	if n := count(); n != 0 {
		t.Fatalf("%d warnings below the threshold", n)
	}
	mem.value.Store(150)
	waitFor(t, "the first warning", 10*time.Second, func() bool { return count() == 1 })
	mem.waitSamples(t, 10)
	if n := count(); n != 1 {
		t.Fatalf("%d warnings for one crossing", n)
	}
	mem.value.Store(50) // back below: the next crossing warns again
	mem.waitSamples(t, 3)
	mem.value.Store(200)
	waitFor(t, "the second warning", 10*time.Second, func() bool { return count() == 2 })
	mem.waitSamples(t, 10)
	if n := count(); n != 2 {
		t.Fatalf("%d warnings for two crossings", n)
	}
	if a, b := <-warns, <-warns; a != 150 || b != 200 {
		t.Errorf("OnMemoryWarning got %d and %d, want the sampled 150 and 200", a, b)
	}
	select {
	case <-r.Done():
		t.Fatalf("a warning stopped the worker: %v", r.Err())
	default:
	}
	r.Stop()
	if err := r.Wait(t, 10*time.Second); err != nil {
		t.Errorf("Run = %v after Stop", err)
	}
}

// At the cap the worker finishes the job in hand (its client gets the result), takes no other job,
// and Run returns ErrMemoryCap. The job left in the queue is not lost: the next worker runs it.
func TestGuard_MemoryCapFinishesJobInHand(t *testing.T) {
	t.Parallel()
	addr, _ := mustStartGear(t)
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	inHand, err := c.Submit(ctx, "cap.fn", []byte("first"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.Submit(ctx, "cap.fn", []byte("second"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	mem := &fakeMemory{}
	mem.value.Store(10)
	var logs syncBuffer
	var ran []string
	var mu sync.Mutex
	var capHookDone atomic.Bool
	r := startWorkerOpts(t, worker.Options{Servers: []string{addr}, Logger: logTo(&logs), Guard: worker.Guard{
		MaxBytes: 1000, Interval: 2 * time.Millisecond, Sample: mem.sample,
		// A slow hook (an alert being queued): Run must not return before it has.
		OnMemoryCap: func(uint64) { time.Sleep(200 * time.Millisecond); capHookDone.Store(true) },
	}}, map[string]worker.Func{"cap.fn": func(_ context.Context, j *worker.Job) ([]byte, error) {
		mu.Lock()
		ran = append(ran, string(j.Data))
		mu.Unlock()
		mem.value.Store(5000) // this job "leaks" past the cap
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "worker memory at its cap"); {
			if time.Now().After(deadline) {
				return nil, errors.New("the guard never saw the cap")
			}
			time.Sleep(time.Millisecond)
		}
		return append([]byte("done:"), j.Data...), nil
	}}, nil)
	if out, err := inHand.Wait(ctx); err != nil || string(out) != "done:first" {
		t.Fatalf("the job in hand = %q, %v", out, err)
	}
	if err := r.Wait(t, 10*time.Second); !errors.Is(err, worker.ErrMemoryCap) {
		t.Fatalf("Run = %v, want ErrMemoryCap", err)
	}
	if !capHookDone.Load() {
		t.Error("Run returned before the cap hook had run: an alert sender closed on return would lose it")
	}
	mu.Lock()
	if len(ran) != 1 {
		t.Errorf("the capped worker ran %q, want only the first job", ran)
	}
	mu.Unlock()
	// The second job waits for the next worker (a restarted process, in real life).
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"cap.fn": reverseFunc})
	if out, err := next.Wait(ctx); err != nil || string(out) != "dnoces" {
		t.Errorf("the queued job = %q, %v", out, err)
	}
}

// MaxJobs recycles the worker after exactly that many jobs; the rest stay queued.
func TestGuard_MaxJobs(t *testing.T) {
	t.Parallel()
	addr, _ := mustStartGear(t)
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	const queued, limit = 6, 3
	for i := range queued {
		if _, err := c.SubmitBackground(ctx, "mj.fn", []byte(strconv.Itoa(i)), client.Submission{}); err != nil {
			t.Fatal(err)
		}
	}
	var ran atomic.Int32
	r := startWorkerOpts(t, worker.Options{Servers: []string{addr}, Guard: worker.Guard{MaxJobs: limit}},
		map[string]worker.Func{"mj.fn": func(context.Context, *worker.Job) ([]byte, error) {
			ran.Add(1)
			return nil, nil
		}}, nil)
	if err := r.Wait(t, 10*time.Second); !errors.Is(err, worker.ErrMaxJobs) {
		t.Fatalf("Run = %v, want ErrMaxJobs", err)
	}
	if n := ran.Load(); n != limit || r.Completed() != limit {
		t.Errorf("ran %d jobs (Completed %d), want exactly %d", n, r.Completed(), limit)
	}
	waitFor(t, "the worker to disconnect", 10*time.Second, func() bool { return functionStatus(t, addr, "mj.fn").Workers == 0 })
	if st := functionStatus(t, addr, "mj.fn"); st.Total != queued-limit || st.Running != 0 {
		t.Errorf("server status %+v; want %d jobs still queued", st, queued-limit)
	}
}

// MaxLifetime recycles the worker once its time is up, after the job in hand.
func TestGuard_MaxLifetime(t *testing.T) {
	t.Parallel()
	addr, _ := mustStartGear(t)
	g := newGate()
	defer g.Open()
	var logs syncBuffer
	r := startWorkerOpts(t, worker.Options{Servers: []string{addr}, Logger: logTo(&logs), Guard: worker.Guard{
		MaxLifetime: 200 * time.Millisecond,
	}}, map[string]worker.Func{"ml.fn": g.Fn}, nil)
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	job, err := c.Submit(ctx, "ml.fn", []byte("x"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	g.WaitStarted(t)
	waitFor(t, "the lifetime to end", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "reason=\"worker reached its maximum lifetime\"")
	})
	select {
	case <-r.Done():
		t.Fatal("Run returned with a job in hand")
	default:
	}
	g.Open()
	if out, err := job.Wait(ctx); err != nil || string(out) != "released:x" {
		t.Errorf("the job in hand = %q, %v", out, err)
	}
	if err := r.Wait(t, 10*time.Second); !errors.Is(err, worker.ErrMaxLifetime) {
		t.Errorf("Run = %v, want ErrMaxLifetime", err)
	}
}

// MemoryInUse reports the process's resident memory, which grows when memory is touched.
func TestMemoryInUse(t *testing.T) {
	before := worker.MemoryInUse()
	if before < 1<<20 {
		t.Fatalf("MemoryInUse = %d, implausibly small", before)
	}
	b := make([]byte, 64<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	after := worker.MemoryInUse()
	runtime.KeepAlive(b)
	if after < before+32<<20 {
		t.Errorf("MemoryInUse went from %d to %d after touching 64 MiB", before, after)
	}
}

// leaked is where leakingFunc leaks: nothing ever frees it while the worker lives.
var (
	leakMu sync.Mutex
	leaked [][]byte
)

// leakingFunc is a job function with a real leak: about 8 MiB per job, kept forever.
func leakingFunc(_ context.Context, j *worker.Job) ([]byte, error) {
	b := make([]byte, 8<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // touch every page, so it is resident
	}
	leakMu.Lock()
	leaked = append(leaked, b)
	leakMu.Unlock()
	return j.Data, nil
}

// The memory guard recycles a leaking worker with no job lost: 30 background jobs, a worker whose
// real resident memory may grow 48 MiB, restarted (as --restart would) each time it stops at its cap.
// Every job runs exactly once, and the worker was recycled along the way.
func TestGuard_RecyclesLeakingWorkerWithoutLosingJobs(t *testing.T) {
	addr, _ := mustStartGear(t)
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 60*time.Second)
	const jobs = 30
	for i := range jobs {
		if _, err := c.SubmitBackground(ctx, "leak", fmt.Appendf(nil, "job-%02d", i), client.Submission{}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	runs := map[string]int{}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, v := range runs {
			n += v
		}
		return n
	}
	capStops := 0
	for gen := 1; ; gen++ {
		if gen > 40 {
			t.Fatalf("no progress after %d workers: %d jobs ran", gen-1, total())
		}
		// A fresh process: the leak is gone. In-process, that means dropping it and returning the
		// memory to the OS, then measuring the new baseline.
		leakMu.Lock()
		leaked = nil
		leakMu.Unlock()
		runtime.GC()
		debug.FreeOSMemory()
		var samples atomic.Int64
		w, err := worker.New(worker.Options{Servers: []string{addr}, MaxBackoff: 100 * time.Millisecond, Guard: worker.Guard{
			MaxBytes: worker.MemoryInUse() + 48<<20,
			Interval: 5 * time.Millisecond,
			Sample:   func() uint64 { samples.Add(1); return worker.MemoryInUse() },
		}})
		if err != nil {
			t.Fatal(err)
		}
		w.Register("leak", func(ctx context.Context, j *worker.Job) ([]byte, error) {
			mu.Lock()
			runs[string(j.Data)]++
			mu.Unlock()
			out, err := leakingFunc(ctx, j)
			// Let the guard look at memory after this job's leak, so it stops the worker with
			// this job in hand rather than several jobs later.
			target := samples.Load() + 2
			for samples.Load() < target && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			return out, err
		}, 0)
		done := make(chan error, 1)
		go func() { done <- w.Run(context.Background()) }()
		var runErr error
		stopped := false
	wait:
		for {
			select {
			case runErr = <-done:
				break wait
			case <-ctx.Done():
				w.Stop()
				t.Fatalf("timed out: %d jobs ran", total())
			case <-time.After(5 * time.Millisecond):
				if !stopped && total() >= jobs && functionStatus(t, addr, "leak").Total == 0 {
					w.Stop()
					stopped = true
				}
			}
		}
		switch {
		case errors.Is(runErr, worker.ErrMemoryCap):
			capStops++
		case runErr == nil && stopped:
		default:
			t.Fatalf("worker %d: Run = %v", gen, runErr)
		}
		if stopped {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range jobs {
		key := fmt.Sprintf("job-%02d", i)
		if runs[key] != 1 {
			t.Errorf("%s ran %d times, want exactly once", key, runs[key])
		}
	}
	if len(runs) != jobs {
		t.Errorf("%d distinct jobs ran, want %d", len(runs), jobs)
	}
	if capStops == 0 {
		t.Error("the leaking worker never reached its memory cap")
	}
	t.Logf("%d jobs over %d workers stopped at the cap", jobs, capStops)
	leakMu.Lock()
	leaked = nil
	leakMu.Unlock()
}

// A sample past both thresholds at once (a fast leak, or a warning just under the cap) reports both:
// OnMemoryWarning, then OnMemoryCap, each once, and the worker recycles.
func TestGuard_WarnAndCapInOneSample(t *testing.T) {
	t.Parallel()
	addr, _ := mustStartGear(t)
	mem := &fakeMemory{}
	mem.value.Store(5000)
	events := make(chan string, 10)
	r := startWorkerOpts(t, worker.Options{Servers: []string{addr}, Guard: worker.Guard{
		WarnBytes: 100, MaxBytes: 1000, Interval: 2 * time.Millisecond, Sample: mem.sample,
		OnMemoryWarning: func(b uint64) { events <- fmt.Sprint("warn ", b) },
		OnMemoryCap:     func(b uint64) { events <- fmt.Sprint("cap ", b) },
	}}, map[string]worker.Func{"wc.fn": reverseFunc}, nil)
	if err := r.Wait(t, 10*time.Second); !errors.Is(err, worker.ErrMemoryCap) {
		t.Fatalf("Run = %v, want ErrMemoryCap", err)
	}
	waitFor(t, "both hooks", 10*time.Second, func() bool { return len(events) >= 2 })
	if a, b := <-events, <-events; a != "warn 5000" || b != "cap 5000" {
		t.Errorf("hooks called %q then %q; want warn 5000, cap 5000", a, b)
	}
	if n := len(events); n != 0 {
		t.Errorf("%d more hook calls", n)
	}
}
