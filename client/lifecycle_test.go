package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/worker"
)

// twoServers starts two servers with handle prefixes of their own: on one host both would
// default to H:host, as gearmand's do, and their handles could name each other's jobs.
func twoServers(t *testing.T) (a, b string) {
	a, _ = testenv.StartGearWith(t, freeAddr(t), func(o *server.Options) { o.HandlePrefix = "H:lc-a" })
	b, _ = testenv.StartGearWith(t, freeAddr(t), func(o *server.Options) { o.HandlePrefix = "H:lc-b" })
	return a, b
}

// Cancel finds the job on whichever server of the client holds it, queued or running; a handle
// no server knows is ErrUnknownJob.
func TestClient_CancelOnTheServerThatHasTheJob(t *testing.T) {
	a, b := twoServers(t)
	ctx := ctxTimeout(t, 20*time.Second)
	onB := newClient(t, b)
	queued, err := onB.SubmitBackground(ctx, "lc-held", []byte("x"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	startWorker(t, []string{b}, 1, map[string]worker.Func{"lc-running": g.Fn})
	running, err := onB.Submit(ctx, "lc-running", []byte("y"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	g.WaitStarted(t)

	both := newClient(t, a, b)
	for _, h := range []string{queued, running.Handle()} {
		if err := both.Cancel(ctx, h); err != nil {
			t.Fatalf("Cancel %s: %v", h, err)
		}
	}
	var failed *client.JobFailedError
	if _, err := running.Wait(ctx); !errors.As(err, &failed) {
		t.Errorf("the running job's client got %v, want WORK_FAIL", err)
	}
	g.Open()
	if st := functionStatus(t, b, "lc-held"); st.Total != 0 {
		t.Errorf("the cancelled job is still queued: %+v", st)
	}
	if err := both.Cancel(ctx, queued); !errors.Is(err, client.ErrUnknownJob) {
		t.Errorf("cancelling it again: %v, want ErrUnknownJob", err)
	}

	// A server that cannot be asked may hold the job: the error says so, and is still unknown.
	withDown := newClient(t, a, freeAddr(t))
	err = withDown.Cancel(ctx, "H:nowhere:1")
	if !errors.Is(err, client.ErrUnknownJob) || err == client.ErrUnknownJob {
		t.Errorf("with a server down: %v, want ErrUnknownJob with the server's error", err)
	}
}

// The dead set of every server through the client: list, retry (one, or a function's), delete.
func TestClient_DeadSet(t *testing.T) {
	a, b := twoServers(t)
	ctx := ctxTimeout(t, 30*time.Second)
	for _, addr := range []string{a, b} {
		ac, err := admin.Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := ac.RetryPolicy(ctx, "lc-fails", 1, 0.01, 0.01, 0); err != nil {
			t.Fatal(err)
		}
		ac.Close()
	}
	runs := make(chan string, 16)
	startWorker(t, []string{a, b}, 1, map[string]worker.Func{"lc-fails": func(_ context.Context, j *worker.Job) ([]byte, error) {
		runs <- string(j.Data)
		return nil, errors.New("always fails")
	}})
	waitWorkers(t, a, "lc-fails", 1)
	waitWorkers(t, b, "lc-fails", 1)
	c := newClient(t, a, b)
	handles := map[string]string{}
	for _, addr := range []string{a, b} {
		h, err := newClient(t, addr).SubmitBackground(ctx, "lc-fails", []byte(addr), client.Submission{})
		if err != nil {
			t.Fatal(err)
		}
		handles[addr] = h
	}
	dead := func(n int) []client.DeadJob {
		t.Helper()
		var ds []client.DeadJob
		waitFor(t, "the dead jobs", 10*time.Second, func() bool {
			var err error
			ds, err = c.DeadJobs(ctx, "lc-fails")
			if err != nil {
				t.Fatal(err)
			}
			return len(ds) == n
		})
		return ds
	}
	for _, d := range dead(2) {
		if handles[d.Server] != d.Handle || d.Attempts != 1 || d.LastError == "" {
			t.Errorf("dead job %+v: want the handle submitted to its server, 1 attempt and its error", d)
		}
	}
	runsBefore := len(runs)
	if err := c.RetryDead(ctx, handles[b]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried job to run", 10*time.Second, func() bool { return len(runs) > runsBefore })
	dead(2) // it failed again
	if n, err := c.RetryDeadFunction(ctx, "lc-fails"); err != nil || n != 2 {
		t.Fatalf("RetryDeadFunction: %d, %v; want 2", n, err)
	}
	// A retried job runs under a new handle: delete the ones listed now.
	var gone string
	for _, d := range dead(2) {
		if err := c.DeleteDead(ctx, d.Handle); err != nil {
			t.Fatal(err)
		}
		gone = d.Handle
	}
	dead(0)
	if err := c.DeleteDead(ctx, gone); !errors.Is(err, client.ErrUnknownJob) {
		t.Errorf("deleting a deleted job: %v, want ErrUnknownJob", err)
	}
}

// A schedule goes to the server its name hashes to, is listed with that server, and is removed
// wherever it is.
func TestClient_Schedules(t *testing.T) {
	a, b := twoServers(t)
	ctx := ctxTimeout(t, 20*time.Second)
	c := newClient(t, a, b)
	sc := admin.ScheduleInfo{Name: "lc-nightly", Function: "lc-report", Spec: "0 3 * * *", TimeZone: "Europe/Paris", Data: "full"}
	if err := c.AddSchedule(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if err := c.AddSchedule(ctx, admin.ScheduleInfo{Name: "lc-bad", Function: "f", Spec: "61 * * * *"}); err == nil {
		t.Error("a bad cron spec was accepted")
	}
	ss, err := c.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].Name != sc.Name || ss[0].Spec != sc.Spec || ss[0].TimeZone != sc.TimeZone || ss[0].Next == 0 {
		t.Fatalf("schedules: %+v", ss)
	}
	// The same name goes to the same server: a second add replaces it.
	sc.Spec = "30 4 * * *"
	if err := c.AddSchedule(ctx, sc); err != nil {
		t.Fatal(err)
	}
	again, err := c.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Server != ss[0].Server || again[0].Spec != "30 4 * * *" {
		t.Fatalf("after replacing it: %+v", again)
	}
	if err := c.RemoveSchedule(ctx, sc.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveSchedule(ctx, sc.Name); !errors.Is(err, client.ErrUnknownSchedule) {
		t.Errorf("removing it again: %v, want ErrUnknownSchedule", err)
	}
}
