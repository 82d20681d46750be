package core

import (
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Under a policy of 3 attempts a failing background job runs three times, with the backoff
// between attempts (fake clock), then lands in the dead set with every attempt's error; retrying
// it runs it again.
func TestRetry_BackoffThenDeadThenRetried(t *testing.T) {
	c, clock := newTestCore(t, nil)
	if _, err := c.SetFunction("fn", func(fs *FunctionSettings) {
		fs.RetryAttempts, fs.RetryBaseSeconds, fs.RetryCapSeconds = 3, 10, 15
	}, "test"); err != nil {
		t.Fatal(err)
	}
	client, worker := connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	client.send(protocol.SubmitJobBg, "fn", "u1", "payload")
	client.expect("JOB_CREATED " + handle(1))
	assign := "JOB_ASSIGN " + handle(1) + " fn payload"

	worker.send(protocol.GrabJob)
	worker.expect(assign)
	worker.send(protocol.WorkFail, handle(1))
	worker.send(protocol.GrabJob)
	worker.expect("NO_JOB") // waiting out its backoff (10 s)
	clock.Advance(10*time.Second - time.Millisecond)
	c.Tick(recorder{}, clock.Now())
	worker.send(protocol.GrabJob)
	worker.expect("NO_JOB")
	clock.Advance(time.Millisecond)
	c.Tick(recorder{}, clock.Now())
	worker.send(protocol.GrabJob)
	worker.expect(assign)
	worker.send(protocol.WorkException, handle(1), "boom")
	clock.Advance(15 * time.Second) // 20 s doubled, capped at 15
	c.Tick(recorder{}, clock.Now())
	worker.send(protocol.GrabJob)
	worker.expect(assign)
	worker.send(protocol.WorkFail, handle(1))
	worker.send(protocol.GrabJob)
	worker.expect("NO_JOB")

	total, dead := c.Dead(DeadFilter{}, 0, 10)
	if total != 1 || len(dead) != 1 {
		t.Fatalf("dead set: %d %+v", total, dead)
	}
	d := dead[0]
	var errs []string
	for _, a := range d.Attempts {
		errs = append(errs, a.Error)
	}
	if d.Handle != handle(1) || d.Function != "fn" || d.Unique != "u1" || string(d.Data) != "payload" ||
		strings.Join(errs, "|") != "WORK_FAIL|WORK_EXCEPTION: boom|WORK_FAIL" ||
		!d.Attempts[1].Time.Equal(d.Attempts[0].Time.Add(10*time.Second)) {
		t.Fatalf("dead job %+v", d)
	}
	if len(c.Jobs()) != 0 {
		t.Fatalf("a dead job is still unfinished: %+v", c.Jobs())
	}
	handles, err := c.RetryDead(d.Handle, DeadFilter{}, "test")
	if err != nil || len(handles) != 1 {
		t.Fatalf("retry dead: %v %v", handles, err)
	}
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handles[0] + " fn payload")
	if total, _ := c.Dead(DeadFilter{}, 0, 10); total != 0 {
		t.Fatal("a retried dead job stayed in the dead set")
	}
}

// Without a policy nothing changes; foreground jobs are never retried.
func TestRetry_OnlyBackgroundUnderAPolicy(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client, worker := connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	client.send(protocol.SubmitJobBg, "fn", "", "a")
	worker.send(protocol.GrabJob)
	worker.take()
	worker.send(protocol.WorkFail, handle(1))
	if len(c.Jobs()) != 0 {
		t.Fatal("a failed job without a policy is still there")
	}
	c.SetFunction("fn", func(fs *FunctionSettings) { fs.RetryAttempts = 5 }, "test")
	client.send(protocol.SubmitJob, "fn", "", "b")
	client.take()
	worker.send(protocol.GrabJob)
	worker.take()
	worker.send(protocol.WorkFail, handle(2))
	client.expect("WORK_FAIL " + handle(2))
	if total, _ := c.Dead(DeadFilter{}, 0, 10); total != 0 || len(c.Jobs()) != 0 {
		t.Fatal("a foreground job was retried or buried")
	}
}

// The dead set and a job waiting out its backoff survive a restart.
func TestRetry_Stored(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenPebble(dir, store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := &heldStore{Store: st}
	c, clock := newTestCore(t, func(o *Options) { o.Store = held })
	c.SetFunction("fn", func(fs *FunctionSettings) { fs.RetryAttempts, fs.RetryBaseSeconds = 2, 60 }, "test")
	client, worker := connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	client.send(protocol.SubmitJobBg, "fn", "", "dies")
	held.releaseAll(t, 1)
	for range 2 {
		worker.send(protocol.GrabJob)
		worker.take()
		worker.send(protocol.WorkFail, handle(1))
		clock.Advance(60 * time.Second)
		c.Tick(recorder{}, clock.Now())
	}
	client.send(protocol.SubmitJobBg, "fn", "", "waits")
	held.releaseAll(t, 1)
	worker.send(protocol.GrabJob)
	worker.take()
	worker.send(protocol.WorkFail, handle(2))
	if total, _ := c.Dead(DeadFilter{}, 0, 10); total != 1 {
		t.Fatalf("dead set of %d, want 1", total)
	}
	st.Close()

	st, err = store.OpenPebble(dir, store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, _ = newTestCore(t, func(o *Options) { o.Store = st; o.Now = clock.Now })
	total, dead := c.Dead(DeadFilter{Function: "fn"}, 0, 10)
	if total != 1 || string(dead[0].Data) != "dies" || len(dead[0].Attempts) != 2 {
		t.Fatalf("dead set after a restart: %+v", dead)
	}
	jobs := c.Jobs()
	if len(jobs) != 1 || jobs[0].State != "scheduled" {
		t.Fatalf("the job in its backoff after a restart: %+v", jobs)
	}
	if n, err := c.DeleteDead("", DeadFilter{Function: "fn"}, "test"); n != 1 || err != nil {
		t.Fatalf("delete dead: %d %v", n, err)
	}
}
