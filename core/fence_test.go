package core

import (
	"testing"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

func TestFence_NoJobsNoBackgroundSubmits(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client, worker := connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.PreSleep)

	c.SetFenced(true, "lease lapsed")
	if on, why := c.Fenced(); !on || why != "lease lapsed" {
		t.Fatalf("Fenced() = %v %q", on, why)
	}
	client.send(protocol.SubmitJobBg, "fn", "", "bg")
	client.send(protocol.SubmitJobEpoch, "fn", "", "1", "epoch")
	client.send(protocol.SubmitJob, "fn", "", "fg")
	client.expect("ERROR QUEUE_ERROR Server is fenced: lease lapsed", "ERROR QUEUE_ERROR Server is fenced: lease lapsed",
		"JOB_CREATED "+handle(1))
	worker.expect() // no NOOP for the foreground job
	worker.send(protocol.GrabJob)
	worker.expect("NO_JOB")
	worker.send(protocol.PreSleep)
	worker.expect() // work is queued, but a fenced server does not wake anyone

	c.SetFenced(false, "")
	worker.expect("NOOP")
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handle(1) + " fn fg")
	client.send(protocol.SubmitJobBg, "fn", "", "bg")
	client.expect("JOB_CREATED " + handle(2))
}

func TestFence_AdoptAndForget(t *testing.T) {
	st, err := store.OpenPebble(t.TempDir(), store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, _ := newTestCore(t, func(o *Options) { o.Store = st })
	worker := connect(t, c)
	worker.send(protocol.CanDo, "fn")

	first := c.AllocSeqs(3)
	if next := c.AllocSeqs(1); next != first+3 {
		t.Fatalf("AllocSeqs: %d after %d+3", next, first)
	}
	var jobs []*store.Job
	for i, d := range []string{"a", "b", "c"} {
		seq := first + uint64(i)
		jobs = append(jobs, &store.Job{Seq: seq, Handle: handle(int(seq)), Function: "fn", Unique: "u" + d,
			Data: []byte(d), Priority: uint8(2 - i), Retries: 1})
	}
	c.Adopt(jobs)
	// The store no longer holds the high-priority one for us: another server adopted it.
	if n := c.ForgetUnowned(func(seq uint64) bool { return seq != first+2 }); n != 1 {
		t.Fatalf("ForgetUnowned dropped %d jobs, want 1", n)
	}
	worker.send(protocol.GrabJobUniq)
	worker.send(protocol.GrabJobUniq)
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN_UNIQ "+handle(int(first+1))+" fn ub b", "JOB_ASSIGN_UNIQ "+handle(int(first))+" fn ua a", "NO_JOB")
}
