// Package testenv starts what the client and worker tests run against — an in-process Gear server,
// Debian's gearmand, workers and gates — so both test suites share one copy. Only tests import it.
package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/syncbuf"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/worker"
)

// gearmandPath is the Debian gearmand the compatibility cases run against. CI installs it; a
// missing binary fails the test rather than skipping it.
const gearmandPath = "/usr/sbin/gearmand"

// StartGear starts an in-process Gear server on a free loopback port and returns its address.
func StartGear(t testing.TB) (string, *server.Server) {
	t.Helper()
	return StartGearOn(t, "127.0.0.1:0")
}

// StartGearOn starts an in-process Gear server on addr; a restarted server gets the port its
// predecessor had (retrying while the kernel still holds it).
func StartGearOn(t testing.TB, addr string) (string, *server.Server) {
	t.Helper()
	return StartGearWith(t, addr, nil)
}

// StartGearWith is StartGearOn with the default options changed by configure (when not nil).
func StartGearWith(t testing.TB, addr string, configure func(*server.Options)) (string, *server.Server) {
	t.Helper()
	opts := server.DefaultOptions()
	opts.Listen = nil
	if configure != nil {
		configure(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var ln net.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := srv.Serve(ln); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), srv
}

// StartGearTLS starts an in-process Gear server with a plain and a TLS listener on free loopback
// ports, its TLS configuration from files, and returns both addresses.
func StartGearTLS(t testing.TB, files *server.TLSFiles) (plain, tlsAddr string, srv *server.Server) {
	t.Helper()
	plain, srv = StartGearWith(t, "127.0.0.1:0", func(o *server.Options) { o.TLS = files.Config() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeTLS(ln); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	return plain, ln.Addr().String(), srv
}

// FreeAddr returns a loopback address nothing listens on (it was free a moment ago).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// StartGearmand starts the real gearmand on a free port and returns its address once it
// accepts connections. It is killed when the test ends.
func StartGearmand(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(gearmandPath); err != nil {
		t.Fatalf("gearmand is required for the compatibility cases (apt-get install gearman-job-server): %v", err)
	}
	var lastErr error
	for range 3 { // another process may take the free port before gearmand binds it
		addr, err := StartGearmandOn(t, FreeAddr(t))
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return ""
}

func StartGearmandOn(t testing.TB, addr string) (string, error) {
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(gearmandPath, "--port", port, "--listen", "127.0.0.1", "--log-file", "none", "-t", "0")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting gearmand: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
			t.Cleanup(stop)
			return addr, nil
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("gearmand on %s exited: %v", addr, err)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("gearmand did not accept connections on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ServerKind is one job server implementation the shared test cases run against.
type ServerKind struct {
	Name  string
	Start func(t testing.TB) string
}

// ServerKinds are Gear and Debian's gearmand, for tests that must hold against both.
var ServerKinds = []ServerKind{
	{"gear", func(t testing.TB) string { addr, _ := StartGear(t); return addr }},
	{"gearmand", StartGearmand},
}

// NewClient returns a client for addrs, with a short reconnection backoff, closed at the end.
func NewClient(t testing.TB, addrs ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Servers: addrs, MaxBackoff: 100 * time.Millisecond, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Worker is a worker.Worker serving in the background.
type Worker struct {
	*worker.Worker
	done chan struct{}
	err  error
}

// Wait returns Run's result, failing the test if it does not come within timeout.
func (r *Worker) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		t.Fatalf("worker did not stop within %v", timeout)
		return nil
	}
}

// StartWorker registers funcs on a new worker for addrs and runs it until the test ends.
func StartWorker(t testing.TB, addrs []string, concurrency int, funcs map[string]worker.Func) *Worker {
	t.Helper()
	return StartWorkerOpts(t, worker.Options{Servers: addrs, Concurrency: concurrency}, funcs, nil)
}

// StartWorkerOpts starts a worker with opts (a short MaxBackoff unless set), funcs, and per-function
// timeouts; Stop is called when the test ends.
func StartWorkerOpts(t testing.TB, opts worker.Options, funcs map[string]worker.Func, timeouts map[string]time.Duration) *Worker {
	t.Helper()
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 100 * time.Millisecond
	}
	w, err := worker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range funcs {
		if err := w.Register(name, fn, timeouts[name]); err != nil {
			t.Fatal(err)
		}
	}
	r := &Worker{Worker: w, done: make(chan struct{})}
	go func() {
		r.err = w.Run(context.Background())
		close(r.done)
	}()
	t.Cleanup(func() {
		w.Stop()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Errorf("worker did not stop")
		}
	})
	return r
}

// Reverse is a worker function returning its data reversed byte by byte.
func Reverse(_ context.Context, j *worker.Job) ([]byte, error) {
	out := make([]byte, len(j.Data))
	for i, b := range j.Data {
		out[len(out)-1-i] = b
	}
	return out, nil
}

// WaitFor polls cond every few milliseconds until it holds, failing the test at the deadline.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FunctionStatus returns the admin `status` row for function on addr (zero if absent).
func FunctionStatus(t testing.TB, addr, function string) admin.FunctionStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rows, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Name == function {
			return r
		}
	}
	return admin.FunctionStatus{Name: function}
}

// WaitWorkers waits until function has at least n workers on addr.
func WaitWorkers(t testing.TB, addr, function string, n int) {
	t.Helper()
	WaitFor(t, strconv.Itoa(n)+" workers for "+function+" on "+addr, 10*time.Second, func() bool {
		return FunctionStatus(t, addr, function).Workers >= n
	})
}

// gate lets a test hold jobs inside a worker function and release them.
type Gate struct {
	started chan string // the data of each job that entered
	release chan struct{}
	once    sync.Once
}

func NewGate() *Gate {
	return &Gate{started: make(chan string, 100), release: make(chan struct{})}
}

// Fn is a worker function that reports its start, then waits for open (or its context).
func (g *Gate) Fn(ctx context.Context, j *worker.Job) ([]byte, error) {
	g.started <- string(j.Data)
	select {
	case <-g.release:
		return append([]byte("released:"), j.Data...), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *Gate) Open() { g.once.Do(func() { close(g.release) }) }

// WaitStarted returns the data of the next job that entered the gate.
func (g *Gate) WaitStarted(t testing.TB) string {
	t.Helper()
	select {
	case d := <-g.started:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no job reached the worker")
		return ""
	}
}

// CtxTimeout returns a context ending after d, cancelled when the test ends.
func CtxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Done is closed when Run has returned.
func (r *Worker) Done() <-chan struct{} { return r.done }

// Err is what Run returned; valid once Done is closed.
func (r *Worker) Err() error { return r.err }

// Started delivers the data of each job as it enters the gate.
func (g *Gate) Started() <-chan string { return g.started }

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a logger, a child process's output)
// and readers (the test).
type SyncBuffer = syncbuf.Buffer

// HTTPGet fetches url and returns the status code and the body; a failed request fails the test.
func HTTPGet(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
