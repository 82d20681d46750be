package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testenv"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/worker"
)

func TestWorker_RegisterAndRunMisuse(t *testing.T) {
	addr, _ := mustStartGear(t)
	w, err := worker.New(worker.Options{Servers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("Run with no function registered succeeded")
	}
	w, _ = worker.New(worker.Options{Servers: []string{addr}})
	if err := w.Register("", reverseFunc, 0); err == nil {
		t.Error("Register without a name succeeded")
	}
	if err := w.Register("f", nil, 0); err == nil {
		t.Error("Register without a function succeeded")
	}
	if err := w.Register("wk.misuse", reverseFunc, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitWorkers(t, addr, "wk.misuse", 1)
	if err := w.Register("late", reverseFunc, 0); err == nil {
		t.Error("Register after Run succeeded")
	}
	if err := w.Run(ctx); err == nil {
		t.Error("a second Run succeeded")
	}
	cancel() // ending Run's context stops it like Stop
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after its context ended = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	waitFor(t, "the worker to disconnect", 10*time.Second, func() bool {
		return functionStatus(t, addr, "wk.misuse").Workers == 0
	})

	// New adds the default port to its own copy of the server list, not to the caller's.
	servers := []string{"127.0.0.1", addr}
	if _, err := worker.New(worker.Options{Servers: servers}); err != nil || servers[0] != "127.0.0.1" {
		t.Errorf("New rewrote the caller's server list to %q (%v)", servers, err)
	}

	// A malformed address fails New, from Options.Servers or GEARMAN_SERVERS.
	for _, bad := range [][]string{{addr, "h:0"}, {":4730"}, {","}} {
		if _, err := worker.New(worker.Options{Servers: bad}); err == nil {
			t.Errorf("New with servers %q: no error", bad)
		}
	}
	t.Setenv("GEARMAN_SERVERS", "a:b")
	if _, err := worker.New(worker.Options{}); err == nil || !strings.Contains(err.Error(), "GEARMAN_SERVERS") {
		t.Errorf("New with a bad GEARMAN_SERVERS: %v", err)
	}

	if _, err := worker.New(worker.Options{Servers: []string{addr}, Guard: worker.Guard{WarnBytes: 2, MaxBytes: 1}}); err == nil {
		t.Error("a warning threshold above the cap was accepted")
	}
	if _, err := worker.New(worker.Options{Servers: []string{addr}, Guard: worker.Guard{MaxLifetime: time.Hour, Splay: 1.5}}); err == nil {
		t.Error("a splay above 1 was accepted")
	}
}

// TestWorker_AgainstServers runs the worker cases against Gear and the real gearmand.
func TestWorker_AgainstServers(t *testing.T) {
	for _, kind := range testenv.ServerKinds {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			addr := kind.Start(t)
			for _, tc := range workerCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, addr) })
			}
		})
	}
}

var workerCases = []struct {
	name string
	run  func(t *testing.T, addr string)
}{
	{"UniqueAndData", testUniqueAndData},
	{"TimeoutCancelsContext", testTimeout},
	{"PanicBecomesException", testPanic},
	{"ErrFailIsWorkFail", testErrFail},
	{"GracefulStop", testGracefulStop},
	{"ClientID", testClientID},
}

func testUniqueAndData(t *testing.T, addr string) {
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"ud.fn": func(_ context.Context, j *worker.Job) ([]byte, error) {
		return fmt.Appendf(nil, "%s|%s|%q|%s", j.Function, j.Unique, j.Data, j.Reducer), nil
	}})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	for _, tc := range []struct {
		unique string
		data   string
	}{{"the-key", "payload"}, {"", "no key"}, {"k2", "bin\x00ary\x00"}, {"k3", ""}} {
		out, err := c.Do(ctx, "ud.fn", []byte(tc.data), client.Submission{Unique: tc.unique})
		if want := fmt.Sprintf("ud.fn|%s|%q|", tc.unique, tc.data); err != nil || string(out) != want {
			t.Errorf("Do(%q, unique %q) = %q, %v; want %q", tc.data, tc.unique, out, err, want)
		}
	}
}

func testTimeout(t *testing.T, addr string) {
	type seen struct {
		err         error
		hasDeadline bool
	}
	got := make(chan seen, 1)
	startWorkerOpts(t, worker.Options{Servers: []string{addr}, Concurrency: 1}, map[string]worker.Func{
		"to.slow": func(ctx context.Context, _ *worker.Job) ([]byte, error) {
			_, ok := ctx.Deadline()
			select {
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
			}
			got <- seen{ctx.Err(), ok}
			return nil, ctx.Err()
		},
		"to.fast": reverseFunc,
	}, map[string]time.Duration{"to.slow": 300 * time.Millisecond, "to.fast": 10 * time.Second})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	_, err := c.Do(ctx, "to.slow", []byte("x"), client.Submission{})
	s := <-got
	if !errors.Is(s.err, context.DeadlineExceeded) || !s.hasDeadline {
		t.Errorf("the function's context: deadline set %v, ended with %v; want DeadlineExceeded", s.hasDeadline, s.err)
	}
	if ee, ok := errors.AsType[*client.JobExceptionError](err); !ok || !strings.Contains(string(ee.Data), "deadline exceeded") {
		t.Errorf("client got %v; want an exception saying the deadline passed", err)
	}
	// The worker serves on.
	if out, err := c.Do(ctx, "to.fast", []byte("ab"), client.Submission{}); err != nil || string(out) != "ba" {
		t.Errorf("Do after a timeout = %q, %v", out, err)
	}
}

func testPanic(t *testing.T, addr string) {
	var logs syncBuffer
	startWorkerOpts(t, worker.Options{Servers: []string{addr}, Logger: logTo(&logs)}, map[string]worker.Func{"pn.fn": func(_ context.Context, j *worker.Job) ([]byte, error) {
		if string(j.Data) == "boom" {
			var m map[string]int
			m["nil map"]++ // a runtime panic, not a deliberate one
		}
		return j.Data, nil
	}}, nil)
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	for range 2 {
		_, err := c.Do(ctx, "pn.fn", []byte("boom"), client.Submission{})
		ee, ok := errors.AsType[*client.JobExceptionError](err)
		if !ok || !strings.HasPrefix(string(ee.Data), "panic: ") || !strings.Contains(string(ee.Data), "nil map") {
			t.Fatalf("a panicking job: %v; want an exception with the panic", err)
		}
		if out, err := c.Do(ctx, "pn.fn", []byte("fine"), client.Submission{}); err != nil || string(out) != "fine" {
			t.Fatalf("Do after a panic = %q, %v", out, err)
		}
	}
	// The panic and its stack go to the worker's Logger (the library writes nowhere else).
	if l := logs.String(); strings.Count(l, `msg="panic in job function" function=pn.fn`) != 2 || !strings.Contains(l, "nil map") ||
		!strings.Contains(l, "stack=") {
		t.Errorf("the worker's log lacks the two panics with their stacks:\n%s", l)
	}
}

func testErrFail(t *testing.T, addr string) {
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"ef.fn": func(_ context.Context, j *worker.Job) ([]byte, error) {
		if string(j.Data) == "wrapped" {
			return nil, fmt.Errorf("giving up: %w", worker.ErrFail)
		}
		return nil, worker.ErrFail
	}})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	for _, data := range []string{"plain", "wrapped"} {
		_, err := c.Do(ctx, "ef.fn", []byte(data), client.Submission{})
		if _, ok := errors.AsType[*client.JobFailedError](err); !ok {
			t.Errorf("%s ErrFail: client got %v; want *JobFailedError", data, err)
		}
	}
}

// Stop finishes the job in hand, delivers its result, takes no further job, and Run returns nil.
func testGracefulStop(t *testing.T, addr string) {
	g := newGate()
	defer g.Open()
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	first, err := c.Submit(ctx, "gs.fn", []byte("in hand"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubmitBackground(ctx, "gs.fn", []byte("queued"), client.Submission{}); err != nil {
		t.Fatal(err)
	}
	r := startWorker(t, []string{addr}, 1, map[string]worker.Func{"gs.fn": g.Fn})
	if d := g.WaitStarted(t); d != "in hand" {
		t.Fatalf("first job %q", d)
	}
	r.Stop()
	select {
	case <-r.Done():
		t.Fatal("Run returned while a job was in hand")
	default:
	}
	g.Open()
	if out, err := first.Wait(ctx); err != nil || string(out) != "released:in hand" {
		t.Errorf("the job in hand = %q, %v", out, err)
	}
	if err := r.Wait(t, 10*time.Second); err != nil {
		t.Errorf("Run after Stop = %v, want nil", err)
	}
	select {
	case d := <-g.Started():
		t.Errorf("job %q started after Stop", d)
	default:
	}
	waitFor(t, "the stopped worker to disconnect", 10*time.Second, func() bool {
		st := functionStatus(t, addr, "gs.fn")
		return st.Workers == 0
	})
	if st := functionStatus(t, addr, "gs.fn"); st.Total != 1 || st.Running != 0 {
		t.Errorf("after Stop the server has %+v; want the second job still queued", st)
	}
	// A new worker takes the queued job.
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"gs.fn": g.Fn})
	if d := g.WaitStarted(t); d != "queued" {
		t.Errorf("the next worker ran %q", d)
	}
}

func testClientID(t *testing.T, addr string) {
	startWorkerOpts(t, worker.Options{Servers: []string{addr}, ID: "gear-test-worker-7"},
		map[string]worker.Func{"id.a": reverseFunc, "id.b": reverseFunc}, nil)
	waitWorkers(t, addr, "id.b", 1)
	ctx := ctxTimeout(t, 5*time.Second)
	ac, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ws, err := ac.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == "gear-test-worker-7" {
			slices.Sort(w.Functions)
			if !slices.Equal(w.Functions, []string{"id.a", "id.b"}) {
				t.Errorf("worker functions %q", w.Functions)
			}
			return
		}
	}
	t.Errorf("no worker with the ID in %+v", ws)
}

// Concurrency N runs N jobs at once and never more: the server sees exactly N of them running
// while the others wait in the queue.
func TestWorker_Concurrency(t *testing.T) {
	t.Parallel()
	addr, _ := mustStartGear(t)
	const n = 3
	g := newGate()
	defer g.Open()
	var cur, peak atomic.Int32
	startWorker(t, []string{addr}, n, map[string]worker.Func{"cc.fn": func(ctx context.Context, j *worker.Job) ([]byte, error) {
		now := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		return g.Fn(ctx, j)
	}})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	for i := range 2 * n {
		if _, err := c.SubmitBackground(ctx, "cc.fn", []byte(fmt.Sprint(i)), client.Submission{}); err != nil {
			t.Fatal(err)
		}
	}
	for range n { // the barrier: n jobs are inside the function together
		g.WaitStarted(t)
	}
	for range 10 {
		if st := functionStatus(t, addr, "cc.fn"); st.Total != 2*n || st.Running != n {
			t.Fatalf("server status %+v; want %d jobs of which %d running", st, 2*n, n)
		}
		if len(g.Started()) != 0 || cur.Load() != n {
			t.Fatalf("%d jobs running in the worker, want %d", cur.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.Open()
	waitFor(t, "every job to finish", 10*time.Second, func() bool { return functionStatus(t, addr, "cc.fn").Total == 0 })
	if p := peak.Load(); p != n {
		t.Errorf("at most %d jobs ran at once, want %d", p, n)
	}
}

// A worker connected to two servers keeps serving the one that stays.
func TestWorker_KeepsWorkingWhenOneServerGoesAway(t *testing.T) {
	t.Parallel()
	addrA, srvA := mustStartGear(t)
	addrB, _ := mustStartGear(t)
	r := startWorker(t, []string{addrA, addrB}, 2, map[string]worker.Func{"two.rev": reverseFunc})
	ca, cb := newClient(t, addrA), newClient(t, addrB)
	ctx := ctxTimeout(t, 20*time.Second)
	for _, c := range []*client.Client{ca, cb} {
		if out, err := c.Do(ctx, "two.rev", []byte("ab"), client.Submission{}); err != nil || string(out) != "ba" {
			t.Fatalf("Do = %q, %v", out, err)
		}
	}
	srvA.Close()
	for i := range 10 {
		in := fmt.Sprint("after", i)
		out, err := cb.Do(ctx, "two.rev", []byte(in), client.Submission{})
		if err != nil || len(out) != len(in) || out[0] != in[len(in)-1] {
			t.Fatalf("Do on the remaining server = %q, %v", out, err)
		}
	}
	select {
	case <-r.Done():
		t.Fatalf("Run returned when one server went away: %v", r.Err())
	default:
	}
}

// A worker reconnects to a server that restarts on the same address and registers again.
func TestWorker_ReconnectsAfterServerRestart(t *testing.T) {
	t.Parallel()
	addr, srv := mustStartGear(t)
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"rc.rev": reverseFunc})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	if out, err := c.Do(ctx, "rc.rev", []byte("abc"), client.Submission{}); err != nil || string(out) != "cba" {
		t.Fatalf("Do = %q, %v", out, err)
	}
	srv.Close()
	mustStartGearOn(t, addr)
	// A fresh client: the job waits in the new server's queue until the worker is back.
	c2 := newClient(t, addr)
	if out, err := c2.Do(ctx, "rc.rev", []byte("xyz"), client.Submission{}); err != nil || string(out) != "zyx" {
		t.Fatalf("Do through the restarted server = %q, %v", out, err)
	}
	if st := functionStatus(t, addr, "rc.rev"); st.Workers != 1 {
		t.Errorf("the restarted server sees %d workers", st.Workers)
	}
}

// A job whose server goes away: its context ends and sending progress reports ErrConnectionLost.
func TestWorker_ConnectionLostCancelsJob(t *testing.T) {
	t.Parallel()
	addr, srv := mustStartGear(t)
	type seen struct{ ctxErr, sendErr error }
	started, got := make(chan struct{}), make(chan seen, 1)
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"cl.fn": func(ctx context.Context, j *worker.Job) ([]byte, error) {
		close(started)
		<-ctx.Done()
		got <- seen{ctx.Err(), j.SendData([]byte("late"))}
		return nil, ctx.Err()
	}})
	c := newClient(t, addr)
	if _, err := c.SubmitBackground(ctxTimeout(t, 5*time.Second), "cl.fn", nil, client.Submission{}); err != nil {
		t.Fatal(err)
	}
	<-started
	srv.Close()
	select {
	case s := <-got:
		if !errors.Is(s.ctxErr, context.Canceled) || !errors.Is(s.sendErr, worker.ErrConnectionLost) {
			t.Errorf("after the server went away: context %v, SendData %v", s.ctxErr, s.sendErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job's context did not end when its server went away")
	}
}

// An idle worker sends PRE_SLEEP and then nothing until the server wakes it with NOOP. It asks with
// GRAB_JOB_ALL, and the unique key and reducer of JOB_ASSIGN_UNIQ/JOB_ASSIGN_ALL reach the function.
// The "server" here is the test, speaking the protocol by hand.
func TestWorker_SleepsUntilNoop(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	startWorker(t, []string{ln.Addr().String()}, 1, map[string]worker.Func{"fake.fn": func(_ context.Context, j *worker.Job) ([]byte, error) {
		return fmt.Appendf(nil, "%s|%s|%s", j.Unique, j.Reducer, j.Data), nil
	}})
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	dec := protocol.NewDecoder(nc, 0)
	expect := func(want protocol.Type, args ...string) {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("waiting for %v: %v", want, err)
		}
		if f.IsText || f.Packet.Type != want {
			t.Fatalf("got %v %q, want %v", f.Packet.Type, f.Line, want)
		}
		for i, a := range args {
			if got := string(f.Packet.Arg(i)); got != a {
				t.Fatalf("%v argument %d = %q, want %q", want, i, got, a)
			}
		}
	}
	send := func(tp protocol.Type, args ...string) {
		t.Helper()
		bargs := make([][]byte, len(args))
		for i, a := range args {
			bargs[i] = []byte(a)
		}
		if _, err := nc.Write(protocol.AppendResponse(nil, tp, bargs...)); err != nil {
			t.Fatal(err)
		}
	}
	expect(protocol.OptionReq, "cancellation")
	send(protocol.Error, protocol.CodeUnknownOption, "Server does not recognize given option") // as gearmand
	expect(protocol.CanDo, "fake.fn")
	expect(protocol.GrabJobAll)
	send(protocol.NoJob)
	expect(protocol.PreSleep)
	// Asleep: the worker sends nothing, however long the server stays quiet.
	nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if f, err := dec.Next(); err == nil {
		t.Fatalf("a sleeping worker sent %v", f.Packet.Type)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("reading from the sleeping worker: %v", err)
	}
	send(protocol.Noop)
	expect(protocol.GrabJobAll)
	send(protocol.JobAssignUniq, "H:fake:1", "fake.fn", "uniq-1", "data-1")
	expect(protocol.WorkComplete, "H:fake:1", "uniq-1||data-1")
	expect(protocol.GrabJobAll)
	send(protocol.JobAssignAll, "H:fake:2", "fake.fn", "uniq-2", "reducer-fn", "data\x002")
	expect(protocol.WorkComplete, "H:fake:2", "uniq-2|reducer-fn|data\x002")
	expect(protocol.GrabJobAll)
	send(protocol.JobAssign, "H:fake:3", "fake.fn", "plain")
	expect(protocol.WorkComplete, "H:fake:3", "||plain")
	expect(protocol.GrabJobAll)
	send(protocol.NoJob)
	expect(protocol.PreSleep)
	// An ERROR while asleep changes nothing; the NOOP after it wakes the worker.
	send(protocol.Error, "SOME_ERROR", "ignored")
	send(protocol.Noop)
	expect(protocol.GrabJobAll)
	send(protocol.NoJob)
	expect(protocol.PreSleep)
}

// Stop while a job runs that the test knows of only through the server (no channel from the job to
// the test, so nothing orders the worker's bookkeeping for that job before Stop): the job finishes,
// Run returns nil, and the race detector has nothing to say about how Run waits for it.
func TestWorker_StopWithJobInHandSeenOnlyByServer(t *testing.T) {
	t.Parallel()
	addr, _ := mustStartGear(t)
	release := make(chan struct{})
	// Concurrency 1: after taking the job the worker writes nothing until it ends. (The race
	// detector orders every socket write before every later read in the process, so another write
	// would order the job's bookkeeping before Stop.)
	r := startWorker(t, []string{addr}, 1, map[string]worker.Func{"sj.fn": func(ctx context.Context, j *worker.Job) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return j.Data, nil
	}})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 10*time.Second)
	job, err := c.Submit(ctx, "sj.fn", []byte("x"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to run", 10*time.Second, func() bool { return functionStatus(t, addr, "sj.fn").Running == 1 })
	r.Stop()
	time.AfterFunc(50*time.Millisecond, func() { close(release) })
	if out, err := job.Wait(ctx); err != nil || string(out) != "x" {
		t.Errorf("the job in hand = %q, %v", out, err)
	}
	if err := r.Wait(t, 10*time.Second); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// The library neither runs programs nor speaks HTTP: alert hooks that do belong to the program
// (gear worker's --alert-command and --alert-url live in cmd/gear).
func TestWorker_Dependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/gearhq/gear/worker").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net/http" || dep == "os/exec" {
			t.Errorf("package worker depends on %s", dep)
		}
	}
}
