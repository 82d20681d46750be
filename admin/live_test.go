package admin

// Live tests: the client against a real Gear server in-process and a real Debian gearmand, over TCP.
// Where the two servers differ, the test states each one's behaviour rather than stepping around it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
)

// gearmandPath is Debian's gearmand (package gearman-job-server), the reference server.
const gearmandPath = "/usr/sbin/gearmand"

const liveTimeout = 10 * time.Second

// mustStartGear starts a Gear server on 127.0.0.1:0 and closes it when the test ends.
func mustStartGear(tb testing.TB) (*server.Server, string) {
	tb.Helper()
	opts := server.DefaultOptions()
	opts.Listen = nil
	opts.HandlePrefix = "H:test"
	srv, err := server.New(opts)
	if err != nil {
		tb.Fatalf("server.New: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	if err := srv.Serve(ln); err != nil {
		ln.Close()
		tb.Fatalf("Serve: %v", err)
	}
	return srv, ln.Addr().String()
}

// mustStartGearmand starts Debian's gearmand on a free loopback port and kills it when the test
// ends. It returns the address and the process ID.
func mustStartGearmand(tb testing.TB) (string, int) {
	tb.Helper()
	if _, err := os.Stat(gearmandPath); err != nil {
		tb.Fatalf("%s is required for this test (Debian package gearman-job-server; scripts/install-test-deps.sh installs it): %v",
			gearmandPath, err)
	}
	// A port found free may be taken again before gearmand binds it (gearmand then retries bind for
	// a long while): give each attempt a deadline and move on to another port.
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(tb)
		cmd := exec.Command(gearmandPath, "--port", strconv.Itoa(port), "--listen", "127.0.0.1", "--log-file", "none", "-t", "0")
		if err := cmd.Start(); err != nil {
			tb.Fatalf("starting gearmand: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if waitAccepting(addr, exited) {
			tb.Cleanup(stop)
			return addr, cmd.Process.Pid
		}
		stop()
	}
	tb.Fatal("gearmand did not start accepting connections")
	return "", 0
}

// waitAccepting polls addr until it accepts a connection, the process exits, or liveTimeout passes.
func waitAccepting(addr string, exited <-chan struct{}) bool {
	for deadline := time.Now().Add(liveTimeout); time.Now().Before(deadline); {
		select {
		case <-exited:
			return false
		default:
		}
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// peer is a raw binary-protocol connection: a client or a worker.
type peer struct {
	tb  testing.TB
	nc  net.Conn
	dec *protocol.Decoder
}

func mustConnect(tb testing.TB, addr string) *peer {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, liveTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(liveTimeout))
	return &peer{tb: tb, nc: nc, dec: protocol.NewDecoder(nc, 0)}
}

func (p *peer) send(t protocol.Type, args ...string) {
	p.tb.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	if _, err := p.nc.Write(protocol.AppendRequest(nil, t, bs...)); err != nil {
		p.tb.Fatal(err)
	}
}

// expect reads the next packet, which must be of type t, and returns its arguments.
func (p *peer) expect(t protocol.Type) []string {
	p.tb.Helper()
	f, err := p.dec.Next()
	if err != nil {
		p.tb.Fatalf("waiting for %v: %v", t, err)
	}
	if f.Packet.Type != t {
		p.tb.Fatalf("got %v %q, want %v", f.Packet.Type, f.Packet.Args, t)
	}
	args := make([]string, len(f.Packet.Args))
	for i, a := range f.Packet.Args {
		args[i] = string(a)
	}
	return args
}

func (p *peer) submitBg(t protocol.Type, fn, unique string) string {
	p.tb.Helper()
	p.send(t, fn, unique, "data")
	return p.expect(protocol.JobCreated)[0]
}

func mustDial(tb testing.TB, addr string) *Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	defer cancel()
	c, err := Dial(ctx, addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func liveCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// flavor is what differs between the servers under test.
type flavor struct {
	pid     int
	version *regexp.Regexp
	// onlyWorkers: `workers` leaves out clients and admin connections (Gear).
	onlyWorkers bool
	// runningQueued: `show jobs` reports a running job as JOB_QUEUED=1 (gearmand: the flag means
	// "not cancelled" rather than "waiting").
	runningQueued bool
	// cancelKeepsJob: a cancelled job stays in `show jobs`, IGNORE_JOB=1, until dequeued (gearmand).
	cancelKeepsJob bool
	// store: the server answers `store`, `limits` and `functions` (Gear).
	store bool
}

func TestLive_Gear(t *testing.T) {
	_, addr := mustStartGear(t)
	testLive(t, addr, flavor{
		pid:         os.Getpid(),
		version:     regexp.MustCompile("^" + regexp.QuoteMeta(server.Version) + "$"),
		onlyWorkers: true,
		store:       true,
	})
}

func TestLive_Gearmand(t *testing.T) {
	addr, pid := mustStartGearmand(t)
	testLive(t, addr, flavor{
		pid:            pid,
		version:        regexp.MustCompile(`^1\.1\.\d+`),
		runningQueued:  true,
		cancelKeepsJob: true,
	})
}

// testLive drives one server through every command: three background jobs of "fn" (normal with
// unique u1, high with u2, low without a unique), a worker "worker-1" for "fn" and "other" running
// the high one.
func testLive(t *testing.T, addr string, fl flavor) {
	ctx := liveCtx(t)
	client := mustConnect(t, addr)
	h1 := client.submitBg(protocol.SubmitJobBg, "fn", "u1")
	h2 := client.submitBg(protocol.SubmitJobHighBg, "fn", "u2")
	h3 := client.submitBg(protocol.SubmitJobLowBg, "fn", "")
	worker := mustConnect(t, addr)
	worker.send(protocol.SetClientID, "worker-1")
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.CanDo, "other")
	worker.send(protocol.GrabJob)
	if got := worker.expect(protocol.JobAssign)[0]; got != h2 {
		t.Fatalf("worker got %s, want the high-priority job %s", got, h2)
	}
	c := mustDial(t, addr)

	t.Run("status", func(t *testing.T) {
		s, err := c.Status(ctx)
		want := []FunctionStatus{{Name: "fn", Total: 3, Running: 1, Workers: 1}, {Name: "other", Total: 0, Running: 0, Workers: 1}}
		if err != nil || !reflect.DeepEqual(sortedStatus(s), want) {
			t.Errorf("Status: %v %v, want %v", s, err, want)
		}
	})
	t.Run("prioritystatus", func(t *testing.T) {
		s, err := c.PriorityStatus(ctx)
		want := []PriorityStatus{{Name: "fn", High: 0, Normal: 1, Low: 1, Workers: 1}, {Name: "other", High: 0, Normal: 0, Low: 0, Workers: 1}}
		if err != nil || !reflect.DeepEqual(sortedPriority(s), want) {
			t.Errorf("PriorityStatus: %v %v, want %v", s, err, want)
		}
	})
	t.Run("workers", func(t *testing.T) {
		ws, err := c.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ws, func(w WorkerInfo) bool { return w.ID == "worker-1" })
		if i < 0 {
			t.Fatalf("worker-1 not in %v", ws)
		}
		if w := sortedWorkers(ws[i : i+1])[0]; w.IP != "127.0.0.1" || !slices.Equal(w.Functions, []string{"fn", "other"}) || w.FD == "" {
			t.Errorf("worker-1: %+v", w)
		}
		if fl.onlyWorkers && len(ws) != 1 {
			t.Errorf("workers lists non-workers: %v", ws)
		}
		if !fl.onlyWorkers && len(ws) < 3 {
			t.Errorf("want the client and admin connections listed too: %v", ws)
		}
	})
	t.Run("show jobs", func(t *testing.T) {
		js, err := c.Jobs(ctx)
		want := []JobInfo{{Handle: h1, Retries: 0, Ignored: false, Queued: true}, {Handle: h2, Retries: 0, Ignored: false, Queued: fl.runningQueued}, {Handle: h3, Retries: 0, Ignored: false, Queued: true}}
		if err != nil || !reflect.DeepEqual(sortedJobs(js), want) {
			t.Errorf("Jobs: %v %v, want %v", js, err, want)
		}
	})
	t.Run("show unique jobs", func(t *testing.T) {
		u, err := c.UniqueJobs(ctx)
		slices.Sort(u)
		if err != nil || !slices.Equal(u, []string{"u1", "u2"}) {
			t.Errorf("UniqueJobs: %q %v", u, err)
		}
	})
	t.Run("version getpid verbose", func(t *testing.T) {
		if v, err := c.Version(ctx); err != nil || !fl.version.MatchString(v) {
			t.Errorf("Version: %q %v, want %v", v, err, fl.version)
		}
		if pid, err := c.PID(ctx); err != nil || pid != fl.pid {
			t.Errorf("PID: %d %v, want %d", pid, err, fl.pid)
		}
		if v, err := c.Verbose(ctx); err != nil || v == "" {
			t.Errorf("Verbose: %q %v", v, err)
		}
	})
	t.Run("Show", func(t *testing.T) {
		var b bytes.Buffer
		if err := Show(ctx, &b, addr, "status", true); err != nil {
			t.Fatal(err)
		}
		var got []FunctionStatus
		if err := json.Unmarshal(b.Bytes(), &got); err != nil || len(got) != 2 || got[0].Name != "fn" {
			t.Errorf("Show status --json: %v %q", err, b.String())
		}
		for _, view := range views {
			b.Reset()
			if (view == "store" || view == "limits" || view == "functions") && !fl.store {
				if err := Show(ctx, &b, addr, view, false); err == nil || b.Len() > 0 {
					t.Errorf("Show %s (Gear only) on a server without it: %v %q", view, err, b.String())
				}
				continue
			}
			if err := Show(ctx, &b, addr, view, false); err != nil || b.Len() == 0 {
				t.Errorf("Show %s: %v %q", view, err, b.String())
			}
		}
		if err := Show(ctx, &b, addr, "nope", false); err == nil {
			t.Error("Show of an unknown view: no error")
		}
	})
	t.Run("cancel job", func(t *testing.T) {
		checkErr(t, c.Cancel(ctx, "H:nope:1"), serverErr("UNKNOWN_JOB", ""))
		if err := c.Cancel(ctx, h1); err != nil {
			t.Fatal(err)
		}
		js, err := c.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(js, func(j JobInfo) bool { return j.Handle == h1 })
		switch {
		case fl.cancelKeepsJob && (i < 0 || !js[i].Ignored || js[i].Queued):
			t.Errorf("want %s listed as ignored and not queued: %v", h1, js)
		case !fl.cancelKeepsJob && i >= 0:
			t.Errorf("cancelled job %s still listed: %v", h1, js)
		}
	})
	t.Run("create and drop function", func(t *testing.T) {
		if err := c.CreateFunction(ctx, "newfn"); err != nil {
			t.Fatal(err)
		}
		// The whole name, on gearmand too: the client ends its lines in "\r\n" (see
		// TestLive_GearmandCreateFunctionBareLF).
		name := "newfn"
		if !hasFunction(t, c, name) {
			t.Fatalf("%q not in status after create function newfn", name)
		}
		if err := c.DropFunction(ctx, name); err != nil {
			t.Fatal(err)
		}
		if hasFunction(t, c, name) {
			t.Errorf("%q still in status after drop function", name)
		}
		checkErr(t, c.DropFunction(ctx, "nope"), serverErr("", "function not found"))
		checkErr(t, c.DropFunction(ctx, "fn"), serverErr("", "there are still connected workers or executing clients"))
	})
	t.Run("maxqueue", func(t *testing.T) {
		// gearmand ignores a limit on a function it has not seen yet, so the first job comes first.
		client.submitBg(protocol.SubmitJobBg, "limited", "")
		if err := c.MaxQueue(ctx, "limited", 1); err != nil {
			t.Fatal(err)
		}
		client.send(protocol.SubmitJobBg, "limited", "", "data")
		if got := client.expect(protocol.Error); got[0] != "QUEUE_ERROR" {
			t.Errorf("submit over the limit: ERROR %q", got)
		}
		if err := c.MaxQueue(ctx, "limited", 5, 5, 5); err != nil {
			t.Fatal(err)
		}
		client.submitBg(protocol.SubmitJobBg, "limited", "")
		if err := c.MaxQueue(ctx, "limited"); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			client.submitBg(protocol.SubmitJobLowBg, "limited", "")
		}
		checkErr(t, c.MaxQueue(ctx, "limited", 1, 2), errMalformed)
	})
	t.Run("a server error leaves the connection usable", func(t *testing.T) {
		checkErr(t, c.Cancel(ctx, "H:nope:2"), serverErr("UNKNOWN_JOB", ""))
		if _, err := c.Version(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func hasFunction(t *testing.T, c *Conn, name string) bool {
	t.Helper()
	s, err := c.Status(liveCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(s, func(f FunctionStatus) bool { return f.Name == name })
}

// gearmand's `create function` takes the last two bytes of the line for its "\r\n" ending: sent with
// a bare "\n", the name loses its last character. This is why Conn ends commands in "\r\n".
func TestLive_GearmandCreateFunctionBareLF(t *testing.T) {
	addr, _ := mustStartGearmand(t)
	nc, err := net.DialTimeout("tcp", addr, liveTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(liveTimeout))
	r := bufio.NewReader(nc)
	nc.Write([]byte("create function newfn\n"))
	if line, err := readLine(r); err != nil || line != "OK" {
		t.Fatalf("create function: %q %v", line, err)
	}
	nc.Write([]byte("status\n"))
	lines, err := readReply(r, tabular)
	if err != nil || !slices.Equal(lines, []string{"newf\t0\t0\t0"}) {
		t.Fatalf("status after create function newfn with a bare LF: %q %v", lines, err)
	}
}

// gearmand prints function names as they are, so a name holding "\n.\n" ends the `status` list
// early and leaves the rest of it unread. The client must report an error then, not a wrong list,
// and must not read the leftovers as the next reply. Gear refuses such a name at submit.
func TestLive_NewlineInFunctionName(t *testing.T) {
	t.Run("gear", func(t *testing.T) {
		_, addr := mustStartGear(t)
		p := mustConnect(t, addr)
		p.send(protocol.SubmitJobBg, "evil\n.\nERR", "", "data")
		if got := p.expect(protocol.Error); got[0] != "INVALID_ARGUMENT" {
			t.Fatalf("submit with a line break in the function name: ERROR %q, want INVALID_ARGUMENT", got)
		}
		if s, err := mustDial(t, addr).Status(liveCtx(t)); err != nil || len(s) != 0 {
			t.Fatalf("Status: %v %v, want no functions", s, err)
		}
	})
	gearmand, _ := mustStartGearmand(t)
	for name, addr := range map[string]string{"gearmand": gearmand} {
		t.Run(name, func(t *testing.T) {
			mustConnect(t, addr).submitBg(protocol.SubmitJobBg, "evil\n.\nERR", "")
			c := mustDial(t, addr)
			s, err := c.Status(liveCtx(t))
			if err == nil {
				t.Fatalf("Status: no error, got %v", s)
			}
			if _, again := c.Version(liveCtx(t)); again == nil {
				t.Fatal("the connection was used again after a reply that did not parse")
			}
		})
	}
}

// gearmand 1.1.15 removed `shutdown`; the client reports the server's refusal and gearmand lives on.
func TestLive_GearmandShutdownRefused(t *testing.T) {
	addr, _ := mustStartGearmand(t)
	c := mustDial(t, addr)
	for _, graceful := range []bool{false, true} {
		err := c.Shutdown(liveCtx(t), graceful)
		var se *ServerError
		if !errors.As(err, &se) || se.Code != "UNKNOWN_COMMAND" {
			t.Fatalf("Shutdown(graceful=%v): %v, want ERR UNKNOWN_COMMAND", graceful, err)
		}
	}
	if _, err := c.Version(liveCtx(t)); err != nil {
		t.Fatalf("gearmand gone after a refused shutdown: %v", err)
	}
}

func TestLive_GearShutdown(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run("graceful="+strconv.FormatBool(graceful), func(t *testing.T) {
			_, addr := mustStartGear(t)
			if err := mustDial(t, addr).Shutdown(liveCtx(t), graceful); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the server to stop accepting", func() bool {
				nc, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return true
				}
				nc.Close()
				return false
			})
		})
	}
}

// The exact table `gear admin status` prints for a known state.
func TestLive_ShowStatusTable(t *testing.T) {
	_, addr := mustStartGear(t)
	client := mustConnect(t, addr)
	for range 3 {
		client.submitBg(protocol.SubmitJobBg, "resize_image", "")
	}
	client.submitBg(protocol.SubmitJobBg, "email", "")
	worker := mustConnect(t, addr)
	worker.send(protocol.CanDo, "resize_image")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign)
	var b bytes.Buffer
	if err := Show(liveCtx(t), &b, addr, "status", false); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"FUNCTION      TOTAL  RUNNING  WORKERS\n" +
		"email         1      0        0\n" +
		"resize_image  3      1        1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// A server that never answers: the context's deadline ends the call, and cancelling ends it too.
func TestConn_ContextEndsCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() {
		ln.Close()
		for nc := range accepted {
			nc.Close()
		}
	})
	go func() {
		defer close(accepted)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- nc // held open, never answered
		}
	}()
	addr := ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c := mustDial(t, addr)
	if _, err := c.Status(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Status past the deadline: %v", err)
	}
	if _, err := c.Version(liveCtx(t)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call after an interrupted one: %v, want the first error", err)
	}

	c2 := mustDial(t, addr)
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel2)
	if _, err := c2.Jobs(ctx2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Jobs cancelled: %v", err)
	}

	done, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if _, err := Dial(done, addr); err == nil {
		t.Fatal("Dial with a cancelled context: no error")
	}
}

func TestDial_Unreachable(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	if _, err := Dial(liveCtx(t), addr); err == nil {
		t.Fatal("no error")
	}
	var b bytes.Buffer
	if err := Show(liveCtx(t), &b, addr, "status", false); err == nil || b.Len() != 0 {
		t.Fatalf("Show: %v, printed %q", err, b.String())
	}
}

// waitFor polls cond until it holds or liveTimeout passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(liveTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
