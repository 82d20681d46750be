package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/worker"
)

// uniqueJobs returns the unique keys of the jobs on addr (admin `show unique jobs`).
func uniqueJobs(t *testing.T, addr string) []string {
	t.Helper()
	ctx := ctxTimeout(t, 5*time.Second)
	ac, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	keys, err := ac.UniqueJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Jobs with a unique key go to the server the key hashes to, the same one every time and from every
// client with the same server list, so coalescing works across a fleet.
func TestClient_MultiServer_UniqueKeySticksToOneServer(t *testing.T) {
	t.Parallel()
	a, _ := mustStartGear(t)
	b, _ := mustStartGear(t)
	c1 := newClient(t, a, b)
	c2 := newClient(t, a, b)
	ctx := ctxTimeout(t, 10*time.Second)
	const n = 20
	handles := map[string]string{}
	for i := range n {
		key := fmt.Sprintf("key-%d", i)
		h, err := c1.SubmitBackground(ctx, "ms.sticky", []byte("x"), client.Submission{Unique: key})
		if err != nil {
			t.Fatal(err)
		}
		handles[key] = h
	}
	onA, onB := uniqueJobs(t, a), uniqueJobs(t, b)
	if len(onA)+len(onB) != n {
		t.Fatalf("servers hold %d + %d jobs, want %d", len(onA), len(onB), n)
	}
	if len(onA) == 0 || len(onB) == 0 {
		t.Errorf("all %d keys went to one server (a: %d, b: %d)", n, len(onA), len(onB))
	}
	for i := range n {
		key := fmt.Sprintf("key-%d", i)
		if slices.Contains(onA, key) == slices.Contains(onB, key) {
			t.Errorf("key %s on a: %v, on b: %v; want exactly one", key, slices.Contains(onA, key), slices.Contains(onB, key))
		}
		// Again, from this client and from another: coalesced onto the same job (same handle).
		for _, c := range []*client.Client{c1, c2} {
			h, err := c.SubmitBackground(ctx, "ms.sticky", []byte("y"), client.Submission{Unique: key})
			if err != nil || h != handles[key] {
				t.Errorf("resubmit of %s = %q, %v; want the handle %q", key, h, err, handles[key])
			}
		}
	}
	if got := len(uniqueJobs(t, a)) + len(uniqueJobs(t, b)); got != n {
		t.Errorf("after resubmitting, the servers hold %d jobs, want %d", got, n)
	}
}

// A server that refuses connections from the start is skipped: every job runs on the other one,
// whatever its key hashes to.
func TestClient_MultiServer_OneDownAtStart(t *testing.T) {
	t.Parallel()
	live, _ := mustStartGear(t)
	dead := freeAddr(t)
	startWorker(t, []string{live}, 4, map[string]worker.Func{"ms.rev": reverseFunc})
	for _, order := range [][]string{{dead, live}, {live, dead}} {
		c := newClient(t, order...)
		ctx := ctxTimeout(t, 10*time.Second)
		for i := range 10 {
			s := client.Submission{}
			if i%2 == 0 {
				s.Unique = fmt.Sprint("u", i)
			}
			out, err := c.Do(ctx, "ms.rev", []byte("ab"), s)
			if err != nil || string(out) != "ba" {
				t.Fatalf("servers %v, job %d: Do = %q, %v", order, i, out, err)
			}
		}
		if _, err := c.Echo(ctx, []byte("e")); err != nil {
			t.Errorf("Echo: %v", err)
		}
	}
}

// With every server down, requests fail at once with *NoServerError naming each server, rather
// than waiting for the context.
func TestClient_MultiServer_AllDown(t *testing.T) {
	t.Parallel()
	d1, d2 := freeAddr(t), freeAddr(t)
	c := newClient(t, d1, d2)
	ctx := ctxTimeout(t, 30*time.Second)
	for name, call := range map[string]func() error{
		"Do":               func() error { _, err := c.Do(ctx, "f", nil, client.Submission{}); return err },
		"SubmitBackground": func() error { _, err := c.SubmitBackground(ctx, "f", nil, client.Submission{Unique: "k"}); return err },
		"Echo":             func() error { _, err := c.Echo(ctx, nil); return err },
		"StatusUnique":     func() error { _, err := c.StatusUnique(ctx, "k"); return err },
	} {
		err := call()
		ne, ok := errors.AsType[*client.NoServerError](err)
		if !ok {
			t.Errorf("%s with every server down: %v; want *NoServerError", name, err)
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("%s waited for the context", name)
		}
		if len(ne.Errs) != 2 {
			t.Errorf("%s: %v; want one error per server", name, err)
		}
		for _, e := range ne.Errs {
			if _, ok := errors.AsType[*client.ConnError](e); !ok {
				t.Errorf("%s: %v is not a *ConnError", name, e)
			}
		}
	}
	if _, err := c.Status(ctx, "H:x:1"); err == nil {
		t.Error("Status with every server down succeeded")
	}
}

// A server that dies while a foreground job runs on it: Do submits the job again to the other
// server, where it completes.
func TestClient_MultiServer_ServerKilledMidJob(t *testing.T) {
	t.Parallel()
	addrA, srvA := mustStartGear(t)
	addrB, srvB := mustStartGear(t)
	servers := map[string]closer{addrA: srvA, addrB: srvB}
	started := make(chan string, 10)
	release := make(chan struct{})
	// One worker per server, so the function knows which server handed it the job.
	for _, addr := range []string{addrA, addrB} {
		startWorker(t, []string{addr}, 1, map[string]worker.Func{"ms.slow": func(ctx context.Context, j *worker.Job) ([]byte, error) {
			started <- addr
			select {
			case <-release:
				return []byte("done on " + addr), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}})
	}
	waitWorkers(t, addrA, "ms.slow", 1)
	waitWorkers(t, addrB, "ms.slow", 1)
	c := newClient(t, addrA, addrB)
	ctx := ctxTimeout(t, 20*time.Second)
	type result struct {
		out []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, err := c.Do(ctx, "ms.slow", []byte("job"), client.Submission{})
		res <- result{out, err}
	}()
	first := <-started
	servers[first].Close()
	var second string
	select {
	case second = <-started:
	case r := <-res:
		t.Fatalf("Do returned %q, %v before the job was resubmitted", r.out, r.err)
	case <-ctx.Done():
		t.Fatal("the job was not resubmitted")
	}
	if second == first {
		t.Fatalf("the job was resubmitted to the server that died (%s)", first)
	}
	close(release)
	r := <-res
	if r.err != nil || string(r.out) != "done on "+second {
		t.Fatalf("Do = %q, %v; want the result from %s", r.out, r.err, second)
	}
}

// With a single server that dies mid-job, Do ends with a *ConnError (inside *NoServerError, or
// alone), not a hang.
func TestClient_MultiServer_OnlyServerKilledMidJob(t *testing.T) {
	t.Parallel()
	addr, srv := mustStartGear(t)
	g := newGate()
	defer g.Open()
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"ms.hang": g.Fn})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, "ms.hang", []byte("x"), client.Submission{})
		errc <- err
	}()
	g.WaitStarted(t)
	srv.Close()
	err := <-errc
	if _, ok := errors.AsType[*client.ConnError](err); !ok {
		t.Fatalf("Do after its only server died: %v; want a *ConnError", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Do waited for its context")
	}
}

// After its server restarts on the same address, the client reconnects (and so does the worker).
func TestClient_MultiServer_ReconnectAfterRestart(t *testing.T) {
	t.Parallel()
	addr, srv := mustStartGear(t)
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"ms.rev": reverseFunc})
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 20*time.Second)
	if out, err := c.Do(ctx, "ms.rev", []byte("abc"), client.Submission{}); err != nil || string(out) != "cba" {
		t.Fatalf("Do = %q, %v", out, err)
	}
	srv.Close()
	waitFor(t, "the client to notice the server is gone", 10*time.Second, func() bool {
		_, err := c.Echo(ctx, []byte("x"))
		return err != nil
	})
	mustStartGearOn(t, addr)
	var out []byte
	var err error
	waitFor(t, "a job through the restarted server", 15*time.Second, func() bool {
		jctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		out, err = c.Do(jctx, "ms.rev", []byte("xyz"), client.Submission{})
		return err == nil
	})
	if string(out) != "zyx" {
		t.Errorf("Do after the restart = %q", out)
	}
}

type closer interface{ Close() error }
