package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/gearhq/gear/internal/testenv"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/worker"
)

// TestClient_AgainstServers runs every single-server client case against Gear and against the real
// gearmand, each case with its own function names so they share one server per kind.
func TestClient_AgainstServers(t *testing.T) {
	for _, kind := range testenv.ServerKinds {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			addr := kind.Start(t)
			for _, tc := range clientCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, addr, kind.Name) })
			}
		})
	}
}

var clientCases = []struct {
	name string
	run  func(t *testing.T, addr, kind string)
}{
	{"Do", testDo},
	{"HandlersInOrder", testHandlersInOrder},
	{"WorkFail", testWorkFail},
	{"WorkException", testWorkException},
	{"BackgroundStatus", testBackgroundStatus},
	{"StatusUniqueQueued", testStatusUniqueQueued},
	{"Priorities", testPriorities},
	{"UniqueCoalescing", testUniqueCoalescing},
	{"Epoch", testEpoch},
	{"Echo", testEcho},
	{"Pipelined200", testPipelined},
	{"ContextCancel", testContextCancel},
	{"ServerError", testServerError},
}

func testDo(t *testing.T, addr, _ string) {
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"do.reverse": reverseFunc})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	out, err := c.Do(ctx, "do.reverse", []byte("hello"), client.Submission{})
	if err != nil || string(out) != "olleh" {
		t.Fatalf("Do = %q, %v; want olleh", out, err)
	}
	// Binary data with NULs survives both ways.
	in := []byte("a\x00b\x00\x00c")
	out, err = c.Do(ctx, "do.reverse", in, client.Submission{Priority: client.High})
	if err != nil || !bytes.Equal(out, []byte("c\x00\x00b\x00a")) {
		t.Fatalf("Do(binary) = %q, %v", out, err)
	}
	out, err = c.Do(ctx, "do.reverse", nil, client.Submission{Priority: client.Low})
	if err != nil || len(out) != 0 {
		t.Fatalf("Do(empty) = %q, %v", out, err)
	}
}

func testHandlersInOrder(t *testing.T, addr, _ string) {
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"h.progress": func(_ context.Context, j *worker.Job) ([]byte, error) {
		steps := []func() error{
			func() error { return j.SendData([]byte("d1")) },
			func() error { return j.SendWarning([]byte("w1")) },
			func() error { return j.SendStatus(1, 3) },
			func() error { return j.SendData([]byte("d2")) },
			func() error { return j.SendStatus(2, 3) },
			func() error { return j.SendWarning([]byte("w2")) },
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return nil, err
			}
		}
		return []byte("done"), nil
	}})
	c := newClient(t, addr)
	var mu sync.Mutex
	var events []string
	record := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	out, err := c.Do(ctxTimeout(t, 10*time.Second), "h.progress", []byte("x"), client.Submission{Handlers: client.Handlers{
		OnData:    func(d []byte) { record("data:" + string(d)) },
		OnWarning: func(d []byte) { record("warning:" + string(d)) },
		OnStatus:  func(n, d uint64) { record(fmt.Sprintf("status:%d/%d", n, d)) },
	}})
	if err != nil || string(out) != "done" {
		t.Fatalf("Do = %q, %v", out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"data:d1", "warning:w1", "status:1/3", "data:d2", "status:2/3", "warning:w2"}
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
}

func testWorkFail(t *testing.T, addr, _ string) {
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"f.fail": func(context.Context, *worker.Job) ([]byte, error) {
		return nil, worker.ErrFail
	}})
	c := newClient(t, addr)
	out, err := c.Do(ctxTimeout(t, 10*time.Second), "f.fail", []byte("x"), client.Submission{})
	fe, ok := errors.AsType[*client.JobFailedError](err)
	if !ok {
		t.Fatalf("Do = %q, %v; want *JobFailedError", out, err)
	}
	if fe.Handle == "" || strings.ContainsRune(fe.Handle, 0) {
		t.Errorf("failed job handle %q", fe.Handle)
	}
	// The client stays usable after a failed job.
	if _, err := c.Echo(ctxTimeout(t, 5*time.Second), []byte("still here")); err != nil {
		t.Errorf("Echo after a failure: %v", err)
	}
}

func testWorkException(t *testing.T, addr, _ string) {
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"e.exc": func(_ context.Context, j *worker.Job) ([]byte, error) {
		return nil, errors.New("boom: bad input " + string(j.Data))
	}})
	c := newClient(t, addr)
	// The very first job on a fresh connection must already see the exception: the client turns
	// the option on before anything else it sends.
	for i := range 5 {
		out, err := c.Do(ctxTimeout(t, 10*time.Second), "e.exc", []byte(fmt.Sprint(i)), client.Submission{})
		ee, ok := errors.AsType[*client.JobExceptionError](err)
		if !ok {
			t.Fatalf("job %d: Do = %q, %v; want *JobExceptionError", i, out, err)
		}
		if want := fmt.Sprintf("boom: bad input %d", i); string(ee.Data) != want {
			t.Errorf("exception data %q, want %q", ee.Data, want)
		}
		if ee.Handle == "" || !strings.Contains(ee.Error(), "boom: bad input") {
			t.Errorf("exception error %q (handle %q)", ee.Error(), ee.Handle)
		}
	}
}

func testBackgroundStatus(t *testing.T, addr, _ string) {
	g := newGate()
	defer g.Open()
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	const unique = "bg-status-unique"
	handle, err := c.SubmitBackground(ctx, "bg.status", []byte("payload"), client.Submission{Unique: unique})
	if err != nil || handle == "" {
		t.Fatalf("SubmitBackground = %q, %v", handle, err)
	}
	st, err := c.Status(ctx, handle)
	if err != nil || !st.Known || st.Running || st.Handle != handle {
		t.Fatalf("queued job status %+v, %v; want known, not running", st, err)
	}
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"bg.status": func(ctx context.Context, j *worker.Job) ([]byte, error) {
		if err := j.SendStatus(3, 7); err != nil {
			return nil, err
		}
		return g.Fn(ctx, j)
	}})
	if d := g.WaitStarted(t); d != "payload" {
		t.Errorf("worker got %q", d)
	}
	waitFor(t, "status 3/7 while running", 10*time.Second, func() bool {
		st, err = c.Status(ctx, handle)
		return err == nil && st.Known && st.Running && st.Numerator == 3 && st.Denominator == 7
	})
	su, err := c.StatusUnique(ctx, unique)
	if err != nil || !su.Known || !su.Running || su.Numerator != 3 || su.Denominator != 7 || su.Unique != unique || su.Waiting != 0 {
		t.Errorf("StatusUnique = %+v, %v; want known, running, 3/7, no waiting client", su, err)
	}
	g.Open()
	waitFor(t, "the finished job to be unknown", 10*time.Second, func() bool {
		st, err = c.Status(ctx, handle)
		return err == nil && !st.Known
	})
	if st.Running || st.Numerator != 0 || st.Denominator != 0 {
		t.Errorf("finished job status %+v", st)
	}
	if su, err := c.StatusUnique(ctx, unique); err != nil || su.Known {
		t.Errorf("StatusUnique after the end = %+v, %v", su, err)
	}
	if st, err := c.Status(ctx, "H:no-such-handle:1"); err != nil || st.Known {
		t.Errorf("unknown handle status %+v, %v", st, err)
	}
}

func testStatusUniqueQueued(t *testing.T, addr, _ string) {
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	const unique = "two-waiters"
	j1, err := c.Submit(ctx, "su.none", []byte("a"), client.Submission{Unique: unique})
	if err != nil {
		t.Fatal(err)
	}
	j2, err := c.Submit(ctx, "su.none", []byte("b"), client.Submission{Unique: unique})
	if err != nil {
		t.Fatal(err)
	}
	if j1.Handle() != j2.Handle() {
		t.Fatalf("coalesced handles differ: %q %q", j1.Handle(), j2.Handle())
	}
	su, err := c.StatusUnique(ctx, unique)
	if err != nil || !su.Known || su.Running || su.Waiting != 2 {
		t.Errorf("StatusUnique = %+v, %v; want known, queued, 2 waiting", su, err)
	}
}

func testPriorities(t *testing.T, addr, _ string) {
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	submits := []struct {
		data string
		prio client.Priority
	}{{"L1", client.Low}, {"N1", client.Normal}, {"H1", client.High}, {"L2", client.Low}, {"N2", client.Normal}, {"H2", client.High}}
	for _, s := range submits {
		if _, err := c.SubmitBackground(ctx, "p.order", []byte(s.data), client.Submission{Priority: s.prio}); err != nil {
			t.Fatal(err)
		}
	}
	// Foreground submits take the same queues.
	fg, err := c.Submit(ctx, "p.order", []byte("H3"), client.Submission{Priority: client.High})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	done := make(chan struct{})
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"p.order": func(_ context.Context, j *worker.Job) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, string(j.Data))
		if len(order) == 7 {
			close(done)
		}
		return j.Data, nil
	}})
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("not every job ran")
	}
	if out, err := fg.Wait(ctx); err != nil || string(out) != "H3" {
		t.Errorf("foreground high job = %q, %v", out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"H1", "H2", "H3", "N1", "N2", "L1", "L2"}; !slices.Equal(order, want) {
		t.Errorf("run order %v, want %v", order, want)
	}
}

func testUniqueCoalescing(t *testing.T, addr, _ string) {
	c := newClient(t, addr)
	other := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	var runs sync.Map // data -> count
	j1, err := c.Submit(ctx, "u.fn", []byte("first"), client.Submission{Unique: "same"})
	if err != nil {
		t.Fatal(err)
	}
	j2, err := c.Submit(ctx, "u.fn", []byte("second"), client.Submission{Unique: "same"})
	if err != nil {
		t.Fatal(err)
	}
	j3, err := other.Submit(ctx, "u.fn", []byte("third"), client.Submission{Unique: "same"})
	if err != nil {
		t.Fatal(err)
	}
	j4, err := c.Submit(ctx, "u.fn", []byte("fourth"), client.Submission{Unique: "different"})
	if err != nil {
		t.Fatal(err)
	}
	if j1.Handle() == "" || j1.Handle() != j2.Handle() || j1.Handle() != j3.Handle() {
		t.Fatalf("handles %q %q %q; want one shared handle", j1.Handle(), j2.Handle(), j3.Handle())
	}
	if j4.Handle() == j1.Handle() {
		t.Fatalf("a different unique shares handle %q", j4.Handle())
	}
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"u.fn": func(_ context.Context, j *worker.Job) ([]byte, error) {
		n, _ := runs.LoadOrStore(string(j.Data), new(int))
		*n.(*int)++
		return append([]byte("got:"), j.Data...), nil
	}})
	for i, j := range []*client.Job{j1, j2, j3} {
		if out, err := j.Wait(ctx); err != nil || string(out) != "got:first" {
			t.Errorf("coalesced job %d = %q, %v; want got:first", i+1, out, err)
		}
	}
	if out, err := j4.Wait(ctx); err != nil || string(out) != "got:fourth" {
		t.Errorf("other job = %q, %v", out, err)
	}
	if _, ran := runs.Load("second"); ran {
		t.Error("the coalesced payload ran as a job of its own")
	}
	if n, _ := runs.Load("first"); n == nil || *n.(*int) != 1 {
		t.Errorf("the shared job ran %v times", n)
	}
}

func testEpoch(t *testing.T, addr, kind string) {
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 15*time.Second)
	type run struct {
		data string
		at   time.Time
	}
	ran := make(chan run, 10)
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"ep.fn": func(_ context.Context, j *worker.Job) ([]byte, error) {
		if string(j.Data) != "nudge" { // nudges, below, may outlive the test: they are not reported
			ran <- run{string(j.Data), time.Now()}
		}
		return nil, nil
	}})
	waitWorkers(t, addr, "ep.fn", 1)
	// A whole second 1-2 s ahead: the wire carries seconds.
	at := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
	handle, err := c.SubmitBackground(ctx, "ep.fn", []byte("scheduled"), client.Submission{At: at})
	if err != nil || handle == "" {
		t.Fatalf("epoch submit = %q, %v", handle, err)
	}
	if _, err := c.Submit(ctx, "ep.fn", nil, client.Submission{At: at}); err == nil {
		t.Error("a foreground epoch job was accepted")
	}
	if _, err := c.SubmitBackground(ctx, "ep.fn", nil, client.Submission{At: at, Priority: client.High}); err == nil {
		t.Error("a high-priority epoch job was accepted")
	}
	// gearmand 1.1 does not wake sleeping workers when an epoch job comes due (issue #101): only a
	// worker that asks for a job once the job is due by gearmand's clock gets it. That clock is a
	// second-resolution copy of the time it refreshes once a second, counted from its own start, so
	// it may read the previous second for up to a second after `at`. A single plain job sent at `at`
	// woke the worker too early: it took that job, was told NO_JOB for the epoch job, and slept for
	// good. So a plain job wakes the worker every 200 ms from `at` until the epoch job runs.
	var nudge <-chan time.Time
	if kind == "gearmand" {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		time.Sleep(time.Until(at))
		nudge = tick.C
	}
	for {
		select {
		case <-nudge:
			if _, err := c.SubmitBackground(ctx, "ep.fn", []byte("nudge"), client.Submission{}); err != nil {
				t.Fatal(err)
			}
		case r := <-ran:
			if r.data != "scheduled" {
				continue
			}
			if r.at.Before(at) {
				t.Errorf("epoch job ran at %v, before its time %v", r.at.Format(time.StampMilli), at.Format(time.StampMilli))
			}
			return
		case <-ctx.Done():
			t.Fatal("the epoch job never ran")
		}
	}
}

func testEcho(t *testing.T, addr, _ string) {
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 5*time.Second)
	for _, in := range [][]byte{[]byte("ping"), []byte("with\x00nul\x00bytes"), bytes.Repeat([]byte("x"), 1<<20)} {
		out, err := c.Echo(ctx, in)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("Echo(%d bytes) = %d bytes, %v", len(in), len(out), err)
		}
	}
}

func testPipelined(t *testing.T, addr, _ string) {
	startWorker(t, []string{addr}, 8, map[string]worker.Func{"pl.reverse": reverseFunc})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 30*time.Second)
	const goroutines, perGoroutine = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perGoroutine)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perGoroutine {
				in := fmt.Sprintf("job-%03d-%03d", g, i)
				s := client.Submission{}
				if i%3 == 0 {
					s.Unique = in // some with a unique key, which must not coalesce distinct jobs
				}
				out, err := c.Do(ctx, "pl.reverse", []byte(in), s)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", in, err)
					continue
				}
				want := make([]byte, len(in))
				for k := range in {
					want[len(in)-1-k] = in[k]
				}
				if string(out) != string(want) {
					errs <- fmt.Errorf("%s: got %q, want %q", in, out, want)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d jobs went wrong", n, goroutines*perGoroutine)
	}
}

func testContextCancel(t *testing.T, addr, _ string) {
	g := newGate()
	defer g.Open()
	startWorker(t, []string{addr}, 2, map[string]worker.Func{"cc.block": g.Fn, "cc.reverse": reverseFunc})
	c := newClient(t, addr)

	// A deadline while the job runs: Do returns the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	out, err := c.Do(ctx, "cc.block", []byte("deadline"), client.Submission{})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do past its deadline = %q, %v; want context.DeadlineExceeded", out, err)
	}
	g.WaitStarted(t)

	// An explicit cancel while waiting.
	ctx, cancel = context.WithCancel(context.Background())
	job, err := c.Submit(ctx, "cc.block", []byte("cancel"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	g.WaitStarted(t)
	go cancel()
	if out, err := job.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %q, %v; want context.Canceled", out, err)
	}

	// An already-ended context fails before anything is sent.
	if _, err := c.Do(ctx, "cc.reverse", []byte("x"), client.Submission{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context: %v", err)
	}

	// The abandoned jobs finish on the server; their results are dropped, and the client works on.
	g.Open()
	ctx = ctxTimeout(t, 10*time.Second)
	for i := range 3 {
		out, err := c.Do(ctx, "cc.reverse", []byte(fmt.Sprint("abc", i)), client.Submission{})
		if err != nil || string(out) != fmt.Sprint(i, "cba") {
			t.Fatalf("Do after cancellations = %q, %v", out, err)
		}
	}
	out, err = c.Do(ctx, "cc.block", []byte("after"), client.Submission{})
	if err != nil || string(out) != "released:after" {
		t.Errorf("Do on the function that was cancelled = %q, %v", out, err)
	}
}

func testServerError(t *testing.T, addr, _ string) {
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	// gearmand ignores maxqueue for a function it does not know yet, so queue one job first.
	if _, err := c.SubmitBackground(ctx, "se.full", []byte("1"), client.Submission{}); err != nil {
		t.Fatal(err)
	}
	ac, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if err := ac.MaxQueue(ctx, "se.full", 1); err != nil {
		t.Fatal(err)
	}
	_, err = c.SubmitBackground(ctx, "se.full", []byte("2"), client.Submission{})
	se, ok := errors.AsType[*client.ServerError](err)
	if !ok || se.Code != "QUEUE_ERROR" {
		t.Fatalf("submit to a full queue: %v; want *ServerError QUEUE_ERROR", err)
	}
	if se.Text == "" {
		t.Error("ServerError without its text")
	}
	_, err = c.Do(ctx, "se.full", []byte("3"), client.Submission{})
	if se, ok := errors.AsType[*client.ServerError](err); !ok || se.Code != "QUEUE_ERROR" {
		t.Errorf("Do on a full queue: %v", err)
	}
	// The connection survives the ERROR.
	if out, err := c.Echo(ctx, []byte("alive")); err != nil || string(out) != "alive" {
		t.Errorf("Echo after ERROR = %q, %v", out, err)
	}
}
