package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/worker"
)

// gearmandPath is the Debian gearmand the compatibility cases run against. CI installs it; a
// missing binary fails the test rather than skipping it.
const gearmandPath = "/usr/sbin/gearmand"

// mustStartGear starts an in-process Gear server on a free loopback port and returns its address.
func mustStartGear(t testing.TB) (string, *server.Server) {
	t.Helper()
	return mustStartGearOn(t, "127.0.0.1:0")
}

// mustStartGearOn starts an in-process Gear server on addr; a restarted server gets the port its
// predecessor had (retrying while the kernel still holds it).
func mustStartGearOn(t testing.TB, addr string) (string, *server.Server) {
	t.Helper()
	opts := server.DefaultOptions()
	opts.Listen = nil
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

// freeAddr returns a loopback address nothing listens on (it was free a moment ago).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// mustStartGearmand starts the real gearmand on a free port and returns its address once it
// accepts connections. It is killed when the test ends.
func mustStartGearmand(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(gearmandPath); err != nil {
		t.Fatalf("gearmand is required for the compatibility cases (apt-get install gearman-job-server): %v", err)
	}
	var lastErr error
	for range 3 { // another process may take the free port before gearmand binds it
		addr, err := startGearmandOn(t, freeAddr(t))
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return ""
}

func startGearmandOn(t testing.TB, addr string) (string, error) {
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

// serverKind is one job server implementation the shared cases run against.
type serverKind struct {
	name  string
	start func(t testing.TB) string
}

var serverKinds = []serverKind{
	{"gear", func(t testing.TB) string { addr, _ := mustStartGear(t); return addr }},
	{"gearmand", mustStartGearmand},
}

// newClient returns a client for addrs, with a short reconnection backoff, closed at the end.
func newClient(t testing.TB, addrs ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Servers: addrs, MaxBackoff: 100 * time.Millisecond, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runningWorker is a worker.Worker serving in the background.
type runningWorker struct {
	*worker.Worker
	done chan struct{}
	err  error
}

// wait returns Run's result, failing the test if it does not come within timeout.
func (r *runningWorker) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		t.Fatalf("worker did not stop within %v", timeout)
		return nil
	}
}

// startWorker registers funcs on a new worker for addrs and runs it until the test ends.
func startWorker(t testing.TB, addrs []string, concurrency int, funcs map[string]worker.Func) *runningWorker {
	t.Helper()
	w, err := worker.New(worker.Options{Servers: addrs, Concurrency: concurrency, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range funcs {
		if err := w.Register(name, fn, 0); err != nil {
			t.Fatal(err)
		}
	}
	r := &runningWorker{Worker: w, done: make(chan struct{})}
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

// reverseFunc is a worker function returning its data reversed byte by byte.
func reverseFunc(_ context.Context, j *worker.Job) ([]byte, error) {
	out := make([]byte, len(j.Data))
	for i, b := range j.Data {
		out[len(out)-1-i] = b
	}
	return out, nil
}

// waitFor polls cond every few milliseconds until it holds, failing the test at the deadline.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// functionStatus returns the admin `status` row for function on addr (zero if absent).
func functionStatus(t testing.TB, addr, function string) admin.FunctionStatus {
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

// waitWorkers waits until function has at least n workers on addr.
func waitWorkers(t testing.TB, addr, function string, n int) {
	t.Helper()
	waitFor(t, strconv.Itoa(n)+" workers for "+function+" on "+addr, 10*time.Second, func() bool {
		return functionStatus(t, addr, function).Workers >= n
	})
}

// gate lets a test hold jobs inside a worker function and release them.
type gate struct {
	started chan string // the data of each job that entered
	release chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{started: make(chan string, 100), release: make(chan struct{})}
}

// fn is a worker function that reports its start, then waits for open (or its context).
func (g *gate) fn(ctx context.Context, j *worker.Job) ([]byte, error) {
	g.started <- string(j.Data)
	select {
	case <-g.release:
		return append([]byte("released:"), j.Data...), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// waitStarted returns the data of the next job that entered the gate.
func (g *gate) waitStarted(t testing.TB) string {
	t.Helper()
	select {
	case d := <-g.started:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no job reached the worker")
		return ""
	}
}

// ctxTimeout returns a context ending after d, cancelled when the test ends.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func errorsAs[T error](err error) (T, bool) {
	var target T
	ok := errors.As(err, &target)
	return target, ok
}
