package core

import (
	"bytes"
	"fmt"
	"go/build"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// The rules tested without sockets: fake peers record the typed packets the core sends them.

// sent is one packet the core sent, its arguments copied.
type sent struct {
	typ  protocol.Type
	args []string
}

func (p sent) String() string { return fmt.Sprintf("%s%q", p.typ, p.args) }

// fakeLink is a peer's transport side: it records what the core sends, and holds replies as the
// real transport does (everything after a held reply waits for it).
type fakeLink struct {
	got   []sent
	holds []*fakeHeld
}

type fakeHeld struct {
	l     *fakeLink
	ready bool
	reply sent
	after []sent
}

func (l *fakeLink) add(pkt *protocol.Packet) {
	p := sent{typ: pkt.Type}
	for _, a := range pkt.Args {
		p.args = append(p.args, string(a))
	}
	if n := len(l.holds); n > 0 {
		l.holds[n-1].after = append(l.holds[n-1].after, p)
		return
	}
	l.got = append(l.got, p)
}

func (l *fakeLink) Hold() Held {
	h := &fakeHeld{l: l}
	l.holds = append(l.holds, h)
	return h
}

func (h *fakeHeld) Release(pkt *protocol.Packet) {
	h.reply = sent{typ: pkt.Type}
	for _, a := range pkt.Args {
		h.reply.args = append(h.reply.args, string(a))
	}
	h.ready = true
	l := h.l
	for len(l.holds) > 0 && l.holds[0].ready {
		l.got = append(l.got, l.holds[0].reply)
		l.got = append(l.got, l.holds[0].after...)
		l.holds = l.holds[1:]
	}
}

// recorder is the Tx of every call: it hands each packet to its peer's fakeLink.
type recorder struct{}

func (recorder) Send(to *Peer, pkt *protocol.Packet) { to.Link.(*fakeLink).add(pkt) }

// fakeClock is an injectable Options.Now.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.t.Add(int64(d)) }

const testPrefix = "H:test"

func newTestCore(t testing.TB, configure func(*Options)) (*Core, *fakeClock) {
	t.Helper()
	clock := &fakeClock{}
	clock.t.Store(time.Unix(1_800_000_000, 0).UnixNano())
	opts := Options{HandlePrefix: testPrefix, WorkerWakeup: WakeOnePerJob, WakeTimeout: time.Second,
		FunctionIdleTTL: time.Minute, Now: clock.Now, Version: "test"}
	if configure != nil {
		configure(&opts)
	}
	c, err := New(opts, recorder{})
	if err != nil {
		t.Fatal(err)
	}
	return c, clock
}

// fakePeer is a connected peer of a test core.
type fakePeer struct {
	t    testing.TB
	c    *Core
	p    *Peer
	link *fakeLink
}

var nextPeerID atomic.Uint64

func connect(t testing.TB, c *Core) *fakePeer {
	link := &fakeLink{}
	p := NewPeer(nextPeerID.Add(1), "192.0.2.1", nil, link)
	c.Connect(p)
	return &fakePeer{t: t, c: c, p: p, link: link}
}

func (f *fakePeer) send(typ protocol.Type, args ...string) {
	pkt := &protocol.Packet{Magic: protocol.MagicReq, Type: typ}
	for _, a := range args {
		pkt.Args = append(pkt.Args, []byte(a))
	}
	f.c.Handle(recorder{}, f.p, pkt)
}

// take returns and forgets what the peer got so far.
func (f *fakePeer) take() []sent {
	got := f.link.got
	f.link.got = nil
	return got
}

// expect checks that the peer got exactly the packets want (as "TYPE arg arg" strings).
func (f *fakePeer) expect(want ...string) {
	f.t.Helper()
	var got []string
	for _, p := range f.take() {
		got = append(got, strings.TrimSpace(p.typ.String()+" "+strings.Join(p.args, " ")))
	}
	if !slices.Equal(got, want) {
		f.t.Fatalf("peer %d got %q, want %q", f.p.ID, got, want)
	}
}

func handle(n int) string { return fmt.Sprintf("%s:%d", testPrefix, n) }

func TestCore_ImportsNoTransport(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "net" || strings.HasPrefix(imp, "net/") || imp == "syscall" ||
			strings.HasPrefix(imp, "golang.org/x/sys") || strings.HasSuffix(imp, "/server") || strings.HasSuffix(imp, "/rawio") {
			t.Errorf("core imports %s: the rules must not know the transport", imp)
		}
	}
}

func TestCore_ForegroundRoundTrip(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client, worker := connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.PreSleep)
	worker.expect()
	client.send(protocol.SubmitJob, "fn", "", "data")
	client.expect("JOB_CREATED " + handle(1))
	worker.expect("NOOP")
	worker.send(protocol.GrabJobUniq)
	worker.expect("JOB_ASSIGN_UNIQ " + handle(1) + " fn  data")
	worker.send(protocol.WorkStatus, handle(1), "1", "2")
	worker.send(protocol.WorkData, handle(1), "part")
	worker.send(protocol.WorkComplete, handle(1), "done")
	client.expect("WORK_STATUS "+handle(1)+" 1 2", "WORK_DATA "+handle(1)+" part", "WORK_COMPLETE "+handle(1)+" done")
	if jobs := c.Jobs(); len(jobs) != 0 {
		t.Fatalf("jobs left: %v", jobs)
	}
	// A late result for the ended job is dropped quietly; an unknown handle is an error.
	worker.send(protocol.WorkFail, handle(1))
	worker.send(protocol.WorkFail, handle(9))
	worker.expect("ERROR JOB_NOT_FOUND Job given in work result not found")
}

func TestCore_PriorityAcrossFunctions(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client, worker := connect(t, c), connect(t, c)
	client.send(protocol.SubmitJobLowBg, "a", "", "low-a")
	client.send(protocol.SubmitJobBg, "b", "", "normal-b")
	client.send(protocol.SubmitJobHighBg, "b", "", "high-b")
	client.send(protocol.SubmitJobBg, "a", "", "normal-a")
	worker.send(protocol.CanDo, "a")
	worker.send(protocol.CanDo, "b")
	var order []string
	for range 4 {
		worker.send(protocol.GrabJob)
		got := worker.take()
		order = append(order, got[0].args[2])
		worker.send(protocol.WorkComplete, got[0].args[0], "")
	}
	want := []string{"high-b", "normal-a", "normal-b", "low-a"} // equal priorities rotate from b to a
	if !slices.Equal(order, want) {
		t.Fatalf("ran %v, want %v", order, want)
	}
}

func TestCore_CoalesceAndViews(t *testing.T) {
	c, _ := newTestCore(t, nil)
	a, b, worker := connect(t, c), connect(t, c), connect(t, c)
	a.send(protocol.SubmitJob, "fn", "u1", "x")
	b.send(protocol.SubmitJob, "fn", "u1", "ignored")
	a.expect("JOB_CREATED " + handle(1))
	b.expect("JOB_CREATED " + handle(1))
	worker.send(protocol.SetClientID, "w 1")
	worker.send(protocol.CanDo, "fn")
	if got := c.Status(); len(got) != 1 || got[0] != (protocol.FunctionStatus{Name: "fn", Total: 1, Workers: 1}) {
		t.Fatalf("status %+v", got)
	}
	ws := c.Workers()
	if len(ws) != 1 || ws[0].ID != "w_1" || !slices.Equal(ws[0].Functions, []string{"fn"}) {
		t.Fatalf("workers %+v", ws)
	}
	j, ok := c.Job(handle(1))
	if !ok || j.Clients != 2 || j.Unique != "u1" || j.State != "queued" || j.Priority != "normal" || j.Size != 1 {
		t.Fatalf("job %+v", j)
	}
	worker.send(protocol.GrabJob)
	worker.take()
	worker.send(protocol.WorkComplete, handle(1), "r")
	a.expect("WORK_COMPLETE " + handle(1) + " r")
	b.expect("WORK_COMPLETE " + handle(1) + " r")
	reply, _ := c.Admin(recorder{}, a.p, []byte("status"))
	if string(reply) != "fn\t0\t0\t1\n.\n" {
		t.Fatalf("status reply %q", reply)
	}
}

func TestCore_WorkerLostRequeuesAtFront(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client, w1, w2 := connect(t, c), connect(t, c), connect(t, c)
	client.send(protocol.SubmitJobBg, "fn", "", "A")
	client.send(protocol.SubmitJobBg, "fn", "", "B")
	w1.send(protocol.CanDo, "fn")
	w1.send(protocol.GrabJob)
	w1.expect("JOB_ASSIGN " + handle(1) + " fn A")
	c.Disconnect(recorder{}, w1.p)
	w2.send(protocol.CanDo, "fn")
	w2.send(protocol.GrabJob)
	w2.expect("JOB_ASSIGN " + handle(1) + " fn A")
	if j, _ := c.Job(handle(1)); j.Retries != 1 {
		t.Fatalf("retries %d, want 1", j.Retries)
	}
}

// Tick drives time: an epoch job falls due and wakes a sleeper; a CAN_DO_TIMEOUT fails its job.
func TestCore_TickEpochAndTimeout(t *testing.T) {
	c, clock := newTestCore(t, nil)
	client, worker := connect(t, c), connect(t, c)
	when := clock.Now().Add(10 * time.Second).Unix()
	client.send(protocol.SubmitJobEpoch, "fn", "", fmt.Sprint(when), "later")
	client.expect("JOB_CREATED " + handle(1))
	worker.send(protocol.CanDoTimeout, "fn", "2000")
	worker.send(protocol.PreSleep)
	c.Tick(recorder{}, clock.Now())
	worker.expect()
	clock.Advance(10 * time.Second)
	c.Tick(recorder{}, clock.Now())
	worker.expect("NOOP")
	client.send(protocol.SubmitJob, "fn", "", "slow")
	client.expect("JOB_CREATED " + handle(2))
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handle(1) + " fn later")
	worker.send(protocol.WorkComplete, handle(1), "")
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handle(2) + " fn slow")
	clock.Advance(2 * time.Second)
	c.Tick(recorder{}, clock.Now())
	client.expect("WORK_FAIL " + handle(2))
	worker.send(protocol.WorkComplete, handle(2), "late") // ignored without an error
	worker.expect()
}

// The wake-one bug of issue 11 against the core alone: a woken sleeper that never grabs is passed
// over after WakeTimeout, without sockets or timers.
func TestCore_UnresponsiveSleeperPassedOver(t *testing.T) {
	c, clock := newTestCore(t, nil)
	client, hung, live := connect(t, c), connect(t, c), connect(t, c)
	for _, w := range []*fakePeer{hung, live} {
		w.send(protocol.CanDo, "fn")
		w.send(protocol.PreSleep)
	}
	client.send(protocol.SubmitJobBg, "fn", "", "x")
	hung.expect("NOOP")
	live.expect()
	clock.Advance(time.Second - 1)
	// Wake checks are coarse: a NOOP falling due in 1 ns does not make Tick run again at once
	// (under load that would be a Tick per job).
	if next := c.Tick(recorder{}, clock.Now()); next.Before(clock.Now().Add(time.Second / 4)) {
		t.Fatalf("next tick in %v, want at least WakeTimeout/4", next.Sub(clock.Now()))
	}
	live.expect()
	clock.Advance(1)
	next := c.Tick(recorder{}, clock.Now())
	live.expect("NOOP")
	if want := clock.Now().Add(time.Second); !next.Equal(want) {
		t.Fatalf("next tick at %v, want %v (the new NOOP's check)", next, want)
	}
	live.send(protocol.GrabJob)
	live.expect("JOB_ASSIGN " + handle(1) + " fn x")
	live.send(protocol.WorkComplete, handle(1), "")
	live.send(protocol.PreSleep)
	hung.send(protocol.PreSleep) // asleep again without ever grabbing: the rotation points at it
	client.send(protocol.SubmitJobBg, "fn", "", "y")
	hung.expect()
	live.expect("NOOP")
}

// A background job being stored counts for maxqueue and keeps its function alive, so a pipelined
// burst cannot pass the limit and a function cannot be dropped under a job in flight.
func TestCore_PersistingJobsCount(t *testing.T) {
	st := newHeldStore(t)
	c, _ := newTestCore(t, func(o *Options) { o.Store = st; o.FunctionIdleTTL = 0 })
	client, worker, admin := connect(t, c), connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	reply, _ := c.Admin(recorder{}, admin.p, []byte("maxqueue fn 1"))
	if string(reply) != "OK\r\n" {
		t.Fatalf("maxqueue: %q", reply)
	}
	client.send(protocol.SubmitJobBg, "fn", "", "a")
	client.send(protocol.SubmitJobBg, "fn", "", "b")
	worker.send(protocol.CantDo, "fn")
	c.Admin(recorder{}, admin.p, []byte("maxqueue fn 0"))
	if reply, _ := c.Admin(recorder{}, admin.p, []byte("drop function fn")); !bytes.HasPrefix(reply, []byte("ERR")) {
		t.Fatalf("drop function with a job being stored: %q", reply)
	}
	st.releaseAll(t, 1)
	client.expect("JOB_CREATED "+handle(1), "ERROR QUEUE_ERROR Job queue is full")
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handle(1) + " fn a")
}

func TestCore_Events(t *testing.T) {
	var events []string
	var times []string // wait and run of the job events that carry them
	c, clock := newTestCore(t, func(o *Options) {
		o.Observer = ObserverFunc(func(e Event) {
			events = append(events, e.Kind.String()+" "+e.Function)
			if e.Wait > 0 || e.Run > 0 {
				times = append(times, fmt.Sprintf("%s wait %v run %v", e.Kind, e.Wait, e.Run))
			}
		})
	})
	client, worker := connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	client.send(protocol.SubmitJob, "fn", "", "x")
	clock.Advance(2 * time.Second)
	worker.send(protocol.GrabJob)
	clock.Advance(3 * time.Second)
	worker.send(protocol.WorkComplete, handle(1), "")
	client.send(protocol.SubmitJobBg, "fn", "", "y")
	clock.Advance(time.Second)
	worker.send(protocol.GrabJob)
	clock.Advance(5 * time.Second)
	c.Disconnect(recorder{}, worker.p)
	c.Admin(recorder{}, client.p, []byte("cancel job "+handle(2)))
	want := []string{"connected ", "connected ", "registered fn", "submitted fn", "started fn", "completed fn",
		"submitted fn", "started fn", "requeued fn", "unregistered fn", "disconnected ", "cancelled fn"}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%q\nwant\n%q", events, want)
	}
	wantTimes := []string{"started wait 2s run 0s", "completed wait 0s run 3s", "started wait 1s run 0s", "requeued wait 0s run 5s"}
	if !slices.Equal(times, wantTimes) {
		t.Fatalf("times\n%q\nwant\n%q", times, wantTimes)
	}
}

// A server holds up to millions of queued jobs: the job struct must stay within the 112-byte size
// class (the next one up costs 16 MiB more per million jobs). Rare fields belong in jobExtra.
func TestJobStaysSmall(t *testing.T) {
	if size := unsafe.Sizeof(job{}); size > 112 {
		t.Fatalf("job is %d bytes, want at most 112: move rarely used fields to jobExtra", size)
	}
}

// A handle is HandlePrefix:seq, parsed back exactly as written: anything else is not this
// server's handle (and so not a job), never a near miss of one.
func TestParseHandle(t *testing.T) {
	s := &Core{prefix: "H:host:"}
	for _, tc := range []struct {
		handle string
		seq    uint64
		ok     bool
	}{
		{"H:host:1", 1, true},
		{"H:host:18446744073709551615", 18446744073709551615, true},
		{"H:host:18446744073709551616", 0, false}, // overflow
		{"H:host:007", 0, false},
		{"H:host:0", 0, false},
		{"H:host:", 0, false},
		{"H:host:12a", 0, false},
		{"H:host:-1", 0, false},
		{"H:other:1", 0, false},
		{"H:host", 0, false},
		{"", 0, false},
	} {
		seq, ok := s.parseHandle([]byte(tc.handle))
		if seq != tc.seq || ok != tc.ok {
			t.Errorf("parseHandle(%q) = %d, %v; want %d, %v", tc.handle, seq, ok, tc.seq, tc.ok)
		}
	}
}

// Handles are parsed for every WORK_* packet: without an allocation.
func TestParseHandleDoesNotAllocate(t *testing.T) {
	s := &Core{prefix: "H:host:"}
	h := []byte("H:host:1234567")
	if n := testing.AllocsPerRun(100, func() { s.parseHandle(h) }); n != 0 {
		t.Fatalf("%.0f allocations per parse", n)
	}
}

// heldStore is a real Pebble store whose acknowledgements wait until the test releases them, so a
// job can be seen while it is being stored.
type heldStore struct {
	store.Store
	mu   sync.Mutex
	done []func()
}

func newHeldStore(t testing.TB) *heldStore {
	st, err := store.OpenPebble(t.TempDir(), store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &heldStore{Store: st}
}

func (h *heldStore) Add(j *store.Job, done func(error)) {
	h.Store.Add(j, func(err error) {
		h.mu.Lock()
		h.done = append(h.done, func() { done(err) })
		h.mu.Unlock()
	})
}

// releaseAll waits for n writes to be durable and then acknowledges them, in order.
func (h *heldStore) releaseAll(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		if len(h.done) >= n {
			done := h.done
			h.done = nil
			h.mu.Unlock()
			for _, d := range done {
				d()
			}
			return
		}
		h.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("the store acknowledged fewer than %d writes", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// heldStore passes on what its store keeps besides jobs.
func (h *heldStore) AddDead(handle string, data []byte) error {
	return h.Store.(store.DeadStore).AddDead(handle, data)
}
func (h *heldStore) DeleteDead(handle string) error {
	return h.Store.(store.DeadStore).DeleteDead(handle)
}
func (h *heldStore) LoadDead(fn func(string, []byte) error) error {
	return h.Store.(store.DeadStore).LoadDead(fn)
}
