package core

import (
	"testing"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// The server-wide limits refuse a submit with QUEUE_ERROR and nothing queued is lost; what
// finishes frees its place; a per-function limit can be set from the start.
func TestCore_ServerLimits(t *testing.T) {
	c, _ := newTestCore(t, func(o *Options) {
		o.MaxJobs, o.MaxQueuedBytes = 3, 10
		o.MaxQueue = map[string]protocol.PriorityInts{"capped": {High: 1, Normal: 1, Low: 1}}
		o.TransportLimits = protocol.LimitsInfo{MaxConnections: 7, MaxPacketSize: 99}
	})
	client, worker := connect(t, c), connect(t, c)
	client.send(protocol.SubmitJobBg, "fn", "", "12345")
	client.send(protocol.SubmitJobBg, "fn", "", "1234")
	client.expect("JOB_CREATED "+handle(1), "JOB_CREATED "+handle(2))
	client.send(protocol.SubmitJobBg, "fn", "", "12") // 11 bytes > 10
	client.expect("ERROR QUEUE_ERROR Server payload memory limit reached (10 bytes)")
	client.send(protocol.SubmitJobBg, "fn", "", "1")
	client.expect("JOB_CREATED " + handle(3))
	client.send(protocol.SubmitJobBg, "other", "", "")
	client.expect("ERROR QUEUE_ERROR Server job limit reached (3 jobs)")
	if got := c.Limits(); got != (protocol.LimitsInfo{MaxConnections: 7, MaxPacketSize: 99, Connections: 2,
		MaxJobs: 3, Jobs: 3, MaxQueuedBytes: 10, QueuedBytes: 10}) {
		t.Fatalf("limits %+v", got)
	}
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handle(1) + " fn 12345")
	worker.send(protocol.WorkComplete, handle(1), "")
	if l := c.Limits(); l.Jobs != 2 || l.QueuedBytes != 5 {
		t.Fatalf("after a job ended: %d jobs, %d bytes; want 2, 5", l.Jobs, l.QueuedBytes)
	}
	client.send(protocol.SubmitJobBg, "capped", "", "a")
	client.send(protocol.SubmitJobBg, "capped", "", "b")
	client.expect("JOB_CREATED "+handle(4), "ERROR QUEUE_ERROR Job queue is full")
	reply, _ := c.Admin(recorder{}, client.p, []byte("limits"))
	want := "max_connections\t7\nmax_connections_per_ip\t0\nconnections\t2\nmax_packet_size\t99\nmax_jobs\t3\njobs\t3\nmax_queued_bytes\t10\nqueued_bytes\t6\npacket_timeout_seconds\t0\nsilent_timeout_seconds\t0\n.\n"
	if string(reply) != want {
		t.Fatalf("limits reply %q, want %q", reply, want)
	}
}

// Replayed jobs were acknowledged before the restart: they are counted, never refused.
func TestCore_LimitsDoNotRefuseReplay(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenPebble(dir, store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := &heldStore{Store: st}
	c, _ := newTestCore(t, func(o *Options) { o.Store = held })
	client := connect(t, c)
	for range 3 {
		client.send(protocol.SubmitJobBg, "fn", "", "xx")
	}
	held.releaseAll(t, 3)
	st.Close()

	st, err = store.OpenPebble(dir, store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, _ = newTestCore(t, func(o *Options) { o.Store = st; o.MaxJobs = 1; o.MaxQueuedBytes = 1 })
	if l := c.Limits(); l.Jobs != 3 || l.QueuedBytes != 6 {
		t.Fatalf("after the replay: %d jobs, %d bytes; want all 3 jobs, 6 bytes", l.Jobs, l.QueuedBytes)
	}
	client = connect(t, c)
	client.send(protocol.SubmitJob, "fn", "", "")
	client.expect("ERROR QUEUE_ERROR Server job limit reached (1 jobs)")
}
