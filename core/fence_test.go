package core

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

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

// deadLog is a store that records the dead set writes the core makes.
type deadLog struct {
	*store.Pebble
	mu            sync.Mutex
	adds, deletes []string
}

func (d *deadLog) AddDead(handle string, data []byte) error {
	d.mu.Lock()
	d.adds = append(d.adds, handle)
	d.mu.Unlock()
	return d.Pebble.AddDead(handle, data)
}

func (d *deadLog) DeleteDead(handle string) error {
	d.mu.Lock()
	d.deletes = append(d.deletes, handle)
	d.mu.Unlock()
	return d.Pebble.DeleteDead(handle)
}

func (d *deadLog) writes() (adds, deletes []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.adds), slices.Clone(d.deletes)
}

// deadEntry is a dead job of function fn, died at minute min past 10:00, as the store keeps it.
func deadEntry(t *testing.T, h string, min int) store.DeadEntry {
	t.Helper()
	data, err := json.Marshal(DeadJob{Handle: h, Function: "fn", Priority: "normal", Data: []byte(h),
		Died: time.Date(2027, 1, 1, 10, min, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return store.DeadEntry{Handle: h, Data: data}
}

// deadHandles lists the dead set's handles, newest first.
func deadHandles(c *Core) []string {
	_, page := c.Dead(DeadFilter{}, 0, 100)
	var hs []string
	for _, d := range page {
		hs = append(hs, d.Handle)
	}
	return hs
}

// Dead jobs an adoption moved to this server join the dead set in order of death, the oldest going
// past DeadMax (deleted from the store), without being written again; ForgetUnownedDead drops the
// ones a survivor adopted while the server was fenced, not from the store, and keeps those that
// died after the handles were taken.
func TestFence_AdoptDeadAndForget(t *testing.T) {
	pb, err := store.OpenPebble(t.TempDir(), store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	for _, e := range []store.DeadEntry{deadEntry(t, "H:own:1", 0), deadEntry(t, "H:own:3", 20)} {
		if err := pb.AddDead(e.Handle, e.Data); err != nil {
			t.Fatal(err)
		}
	}
	st := &deadLog{Pebble: pb}
	c, _ := newTestCore(t, func(o *Options) { o.Store = st; o.DeadMax = 4 })
	if got := deadHandles(c); !slices.Equal(got, []string{"H:own:3", "H:own:1"}) {
		t.Fatalf("dead set at start: %v", got)
	}

	c.AdoptDead([]store.DeadEntry{deadEntry(t, "H:a:4", 30), deadEntry(t, "H:a:0", -10), deadEntry(t, "H:a:2", 10),
		{Handle: "H:a:bad", Data: []byte("not json")}})
	if got := deadHandles(c); !slices.Equal(got, []string{"H:a:4", "H:own:3", "H:a:2", "H:own:1"}) {
		t.Fatalf("dead set after an adoption: %v", got)
	}
	if adds, deletes := st.writes(); len(adds) != 0 || !slices.Equal(deletes, []string{"H:a:0"}) {
		t.Fatalf("store writes of an adoption: adds %v, deletes %v; want only the oldest deleted", adds, deletes)
	}

	before := c.DeadHandles()
	c.AdoptDead([]store.DeadEntry{deadEntry(t, "H:new:9", 40)}) // after the handles were taken
	if n := c.ForgetUnownedDead(before, func(h string) bool { return h == "H:own:3" }); n != 2 {
		t.Fatalf("ForgetUnownedDead dropped %d dead jobs, want 2 (H:a:2, H:a:4; H:own:1 went past DeadMax)", n)
	}
	if got := deadHandles(c); !slices.Equal(got, []string{"H:new:9", "H:own:3"}) {
		t.Fatalf("dead set after forgetting: %v", got)
	}
	if _, ok := c.DeadJobOf("H:a:2"); ok {
		t.Error("a forgotten dead job is still found by handle")
	}
	if adds, deletes := st.writes(); len(adds) != 0 || !slices.Equal(deletes, []string{"H:a:0", "H:own:1"}) {
		t.Fatalf("store writes: adds %v, deletes %v; forgetting must not delete", adds, deletes)
	}
}
