package server

// Durable background jobs: JOB_CREATED only once the store has the job, replies kept in order behind
// it, replay after a restart, removal when a job ends, and a store that fails.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/syncbuf"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// mustOpenStore opens a Pebble store in dir and closes it when the test ends, after the servers
// using it (cleanups run last registered first, and servers are started after their store).
func mustOpenStore(tb testing.TB, dir string) *store.Pebble {
	tb.Helper()
	st, err := store.OpenPebble(dir, store.SyncAlways, nil)
	if err != nil {
		tb.Fatalf("OpenPebble: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// withStore configures a server to keep background jobs in st, then applies more options.
func withStore(st store.Store, more ...func(*Options)) func(*Options) {
	return func(o *Options) {
		o.Store = st
		for _, f := range more {
			f(o)
		}
	}
}

// restart stops s, closes st, opens its directory again and starts a new server on it: what a crash
// or a restart of the process does, minus the process.
func restart(tb testing.TB, s *Server, st *store.Pebble, dir string, more ...func(*Options)) (*Server, *store.Pebble) {
	tb.Helper()
	s.Close()
	if err := st.Close(); err != nil {
		tb.Fatalf("closing the store: %v", err)
	}
	st = mustOpenStore(tb, dir)
	return mustStartServer(tb, withStore(st, more...)), st
}

// gatedStore holds every Add until release, so a test can look at the server while jobs are being
// written. Its callback counts, then passes the inner store's answer on.
type gatedStore struct {
	store.Store
	mu      sync.Mutex
	held    []func()
	durable atomic.Int64 // Adds the inner store has answered
}

func (g *gatedStore) Add(j *store.Job, done func(error)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held = append(g.held, func() {
		g.Store.Add(j, func(err error) {
			g.durable.Add(1)
			done(err)
		})
	})
}

// Remove keeps its place behind held Adds, as it would in the store's own queue.
func (g *gatedStore) Remove(seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.held) == 0 {
		g.Store.Remove(seq)
		return
	}
	g.held = append(g.held, func() { g.Store.Remove(seq) })
}

func (g *gatedStore) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

// waitHeld waits until n operations are held.
func (g *gatedStore) waitHeld(tb testing.TB, n int) {
	tb.Helper()
	checkFor(tb, readTimeout, func() error {
		if got := g.heldCount(); got != n {
			return fmt.Errorf("%d Adds held, want %d", got, n)
		}
		return nil
	})
}

// release passes the held Adds to the inner store, in reverse order when reverse is set (so later
// jobs become durable first).
func (g *gatedStore) release(reverse bool) {
	g.mu.Lock()
	held := g.held
	g.held = nil
	g.mu.Unlock()
	if reverse {
		slices.Reverse(held)
	}
	for _, f := range held {
		f()
	}
}

// expectNothingFor checks that no byte arrives for d. It peeks, so the decoder's state is untouched.
func (p *testPeer) expectNothingFor(d time.Duration) {
	p.tb.Helper()
	p.nc.SetReadDeadline(time.Now().Add(d))
	b, err := p.br.Peek(1)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		p.tb.Fatalf("got %q (%v), want nothing while the job is being stored", b, err)
	}
}

func TestDurable_JobCreatedAfterStore(t *testing.T) {
	dir := t.TempDir()
	st := mustOpenStore(t, dir)
	gate := &gatedStore{Store: st}
	s := mustStartServer(t, withStore(gate))
	addr := addrOf(t, s)
	client, admin := mustConnect(t, addr), mustConnect(t, addr)

	client.send(protocol.SubmitJobBg, "fn", "", "payload")
	gate.waitHeld(t, 1)
	client.expectNothingFor(100 * time.Millisecond)
	// Not runnable yet either: no worker may run a job that a crash could still lose.
	expectAdminList(t, admin, "status", "fn\t0\t0\t0\n.\n")

	gate.release(false)
	h := client.expectType(protocol.JobCreated).args[0]
	if gate.durable.Load() != 1 || st.Stats().Jobs != 1 {
		t.Fatalf("JOB_CREATED before the store answered: %d answered, %d stored", gate.durable.Load(), st.Stats().Jobs)
	}
	expectAdminList(t, admin, "status", "fn\t1\t0\t0\n.\n")

	// The job is on disk: a new server on the same directory has it, under the same handle.
	s, _ = restart(t, s, st, dir)
	worker := mustConnect(t, addrOf(t, s))
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "fn", "payload")
}

// One connection pipelines many background submits in one write; the replies come back in order,
// each after its job is stored, even when later jobs become durable first.
func TestDurable_PipelinedSubmitsAnsweredInOrder(t *testing.T) {
	const n = 200
	for _, reverse := range []bool{false, true} {
		t.Run("durable in reverse="+strconv.FormatBool(reverse), func(t *testing.T) {
			st := mustOpenStore(t, t.TempDir())
			gate := &gatedStore{Store: st}
			s := mustStartServer(t, withStore(gate))
			client := mustConnect(t, addrOf(t, s))
			var burst []byte
			kinds := []protocol.Type{protocol.SubmitJobBg, protocol.SubmitJobHighBg, protocol.SubmitJobLowBg}
			for i := range n {
				burst = protocol.AppendRequest(burst, kinds[i%3], []byte("fn"), nil, []byte(strconv.Itoa(i)))
			}
			client.write(burst)
			gate.waitHeld(t, n)
			gate.release(reverse)
			for i := range n {
				client.expect(protocol.JobCreated, handle(i+1))
			}
			client.expectQuiet()
			if got := st.Stats().Jobs; got != n {
				t.Fatalf("%d jobs stored, want %d", got, n)
			}
		})
	}
}

// Replies to requests that follow a pending background submit, and packets pushed to the
// connection meanwhile, wait behind its JOB_CREATED.
func TestDurable_LaterRepliesWaitBehindPendingSubmit(t *testing.T) {
	st := mustOpenStore(t, t.TempDir())
	gate := &gatedStore{Store: st}
	s := mustStartServer(t, withStore(gate))
	addr := addrOf(t, s)
	client, worker := mustConnect(t, addr), mustConnect(t, addr)

	// A foreground job, running, whose WORK_COMPLETE will be pushed while a submit is pending.
	worker.send(protocol.CanDo, "fg")
	hfg := client.submit(protocol.SubmitJob, "fg", "", "x")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, hfg, "fg", "x")

	var burst []byte
	burst = protocol.AppendRequest(burst, protocol.SubmitJobBg, []byte("fn"), []byte("u"), []byte("bg1"))
	burst = protocol.AppendRequest(burst, protocol.EchoReq, []byte("echo1"))
	burst = protocol.AppendRequest(burst, protocol.SubmitJob, []byte("other"), nil, []byte("fg2"))
	burst = protocol.AppendRequest(burst, protocol.SubmitJob, []byte("fn"), []byte("u"), []byte("joins bg1"))
	burst = protocol.AppendRequest(burst, protocol.GetStatus, []byte(handle(2)))
	burst = protocol.AppendRequest(burst, protocol.OptionReq, []byte("exceptions"))
	client.write(burst)
	gate.waitHeld(t, 1)
	// The replies above cannot be observed while held, so a WORK_COMPLETE pushed now must be
	// ordered after them by the server itself: wait until it handled the whole burst.
	checkFor(t, readTimeout, func() error {
		for _, c := range s.Core().Clients() {
			if c.Exceptions {
				return nil
			}
		}
		return errors.New("OPTION_REQ not handled yet")
	})
	worker.send(protocol.WorkComplete, hfg, "result")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob) // the server has handled the WORK_COMPLETE
	burst = protocol.AppendRequest(nil, protocol.SubmitJobHighBg, []byte("fn"), nil, []byte("bg2"))
	burst = protocol.AppendRequest(burst, protocol.EchoReq, []byte("echo2"))
	client.write(burst)
	gate.waitHeld(t, 2)
	client.expectNothingFor(100 * time.Millisecond)

	gate.release(true)
	client.expect(protocol.JobCreated, handle(2))
	client.expect(protocol.EchoRes, "echo1")
	client.expect(protocol.JobCreated, handle(3))
	client.expect(protocol.JobCreated, handle(2)) // coalesced onto the pending job: waited for it
	client.expect(protocol.StatusRes, handle(2), "1", "0", "0", "0")
	client.expect(protocol.OptionRes, "exceptions")
	client.expect(protocol.WorkComplete, hfg, "result")
	client.expect(protocol.JobCreated, handle(4))
	client.expect(protocol.EchoRes, "echo2")
	client.expectQuiet()
}

// A restart replays background jobs in priority and submission order, with their unique keys
// (still coalescing), due times and retry counts; foreground jobs are gone; handles go on from the
// last one.
func TestDurable_RestartReplays(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	opts := func(o *Options) {
		withFakeClock(clock)(o)
		o.JobRetries = 2
	}
	st := mustOpenStore(t, dir)
	s := mustStartServer(t, withStore(st, opts))
	addr := addrOf(t, s)
	client, admin := mustConnect(t, addr), mustConnect(t, addr)
	when := strconv.FormatInt(clock.Now().Add(time.Hour).Unix(), 10)
	submits := []struct {
		typ          protocol.Type
		unique, data string
	}{
		{protocol.SubmitJobBg, "", "n1"},
		{protocol.SubmitJobLowBg, "", "l1"},
		{protocol.SubmitJobHighBg, "", "h1"},
		{protocol.SubmitJobBg, "u-n2", "n2"},
		{protocol.SubmitJobEpoch, "", when + "\x00e1"},
		{protocol.SubmitJob, "", "foreground"}, // memory only
		{protocol.SubmitJobHighBg, "u-h2", "h2"},
		{protocol.SubmitJobLowBg, "", "l2"},
		{protocol.SubmitJobBg, "-", "n3"}, // unique "-": coalesces on the data
		{protocol.SubmitJobHighBg, "", "h3"},
	}
	handles := map[string]string{}
	for _, sub := range submits {
		if sub.typ == protocol.SubmitJobEpoch {
			handles["e1"] = client.submit(sub.typ, "fn", sub.unique, sub.data)
			continue
		}
		handles[sub.data] = client.submit(sub.typ, "fn", sub.unique, sub.data)
	}
	// A job whose worker is lost once: one retry, recorded.
	hr := client.submit(protocol.SubmitJobBg, "retry", "", "r1")
	w := mustConnect(t, addr)
	w.send(protocol.CanDo, "retry")
	w.send(protocol.GrabJob)
	w.expect(protocol.JobAssign, hr, "retry", "r1")
	w.close()
	checkAdmin(t, admin, "show jobs", showJobs(handles, hr, 1))

	s, st = restart(t, s, st, dir, opts)
	addr = addrOf(t, s)
	client, admin = mustConnect(t, addr), mustConnect(t, addr)
	delete(handles, "foreground")
	expectAdminList(t, admin, "show jobs", showJobs(handles, hr, 1))
	expectAdminList(t, admin, "prioritystatus", "fn\t3\t4\t2\t0\nretry\t0\t1\t0\t0\n.\n")

	// Unique keys still coalesce, the "-" key on the data too.
	if got := client.submit(protocol.SubmitJobBg, "fn", "u-n2", "ignored"); got != handles["n2"] {
		t.Errorf("unique u-n2 after restart: %s, want %s", got, handles["n2"])
	}
	if got := client.submit(protocol.SubmitJob, "fn", "u-h2", "ignored"); got != handles["h2"] {
		t.Errorf("unique u-h2 after restart: %s, want %s", got, handles["h2"])
	}
	if got := client.submit(protocol.SubmitJobLowBg, "fn", "-", "n3"); got != handles["n3"] {
		t.Errorf("unique - with data n3 after restart: %s, want %s", got, handles["n3"])
	}
	// A new job gets a handle never used before.
	hnew := client.submit(protocol.SubmitJobLowBg, "fn", "", "l3")
	if n := handleNumber(t, hnew); n <= handleNumber(t, hr) {
		t.Errorf("new handle %s after restart reuses a number (last stored %s)", hnew, hr)
	}

	worker := mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	for _, data := range []string{"h1", "h2", "h3", "n1", "n2", "n3", "l1", "l2"} {
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, handles[data], "fn", data)
		worker.send(protocol.WorkComplete, handles[data], "")
	}
	client.expect(protocol.WorkComplete, handles["h2"], "") // the foreground submit onto h2
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, hnew, "fn", "l3")
	worker.send(protocol.WorkComplete, hnew, "")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob) // the epoch job is not due

	clock.Advance(2 * time.Hour)
	worker.send(protocol.PreSleep)
	worker.expect(protocol.Noop)
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, handles["e1"], "fn", "e1")
	worker.send(protocol.WorkComplete, handles["e1"], "")

	// The retry count came back: one more lost worker reaches JobRetries=2 and the job is dropped.
	w = mustConnect(t, addr)
	w.send(protocol.CanDo, "retry")
	w.send(protocol.GrabJob)
	w.expect(protocol.JobAssign, hr, "retry", "r1")
	w.close()
	checkAdmin(t, admin, "show jobs", ".\n")

	// Everything ended, so nothing is left to replay.
	checkFor(t, readTimeout, func() error {
		if n := st.Stats().Jobs; n != 0 {
			return fmt.Errorf("%d jobs still stored", n)
		}
		return nil
	})
	s, _ = restart(t, s, st, dir, opts)
	expectAdminList(t, mustConnect(t, addrOf(t, s)), "show jobs", ".\n")
}

// showJobs is the `show jobs` listing of the queued jobs in handles, plus hr with retries.
func showJobs(handles map[string]string, hr string, retries int) string {
	type row struct {
		n    int
		line string
	}
	var rows []row
	add := func(h string, r int) {
		n, _ := strconv.Atoi(h[len(testPrefix)+1:])
		rows = append(rows, row{n, h + "\t" + strconv.Itoa(r) + "\t0\t1\n"})
	}
	for _, h := range handles {
		add(h, 0)
	}
	add(hr, retries)
	slices.SortFunc(rows, func(a, b row) int { return a.n - b.n })
	var out string
	for _, r := range rows {
		out += r.line
	}
	return out + ".\n"
}

func handleNumber(tb testing.TB, h string) int {
	tb.Helper()
	n, err := strconv.Atoi(h[len(testPrefix)+1:])
	if err != nil {
		tb.Fatalf("handle %q", h)
	}
	return n
}

// Completing, failing or cancelling a job removes it from the store; a job that stays is replayed.
func TestDurable_EndedJobsLeaveTheStore(t *testing.T) {
	dir := t.TempDir()
	st := mustOpenStore(t, dir)
	s := mustStartServer(t, withStore(st))
	addr := addrOf(t, s)
	client, worker, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	hDone := client.submit(protocol.SubmitJobBg, "fn", "", "complete me")
	hFail := client.submit(protocol.SubmitJobBg, "fn", "", "fail me")
	hExc := client.submit(protocol.SubmitJobBg, "fn", "", "throw")
	hCancel := client.submit(protocol.SubmitJobBg, "fn", "", "cancel me")
	hStay := client.submit(protocol.SubmitJobBg, "fn", "", "stay")
	if n := st.Stats().Jobs; n != 5 {
		t.Fatalf("%d jobs stored, want 5", n)
	}
	worker.send(protocol.CanDo, "fn")
	for _, end := range []struct {
		h   string
		typ protocol.Type
		arg []string
	}{
		{hDone, protocol.WorkComplete, []string{"ok"}},
		{hFail, protocol.WorkFail, nil},
		{hExc, protocol.WorkException, []string{"boom"}},
	} {
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		worker.send(end.typ, append([]string{end.h}, end.arg...)...)
	}
	// The worker's last result is handled before its ECHO: after the reply, admin sees it.
	worker.send(protocol.EchoReq, "sync")
	worker.expect(protocol.EchoRes, "sync")
	if got := admin.admin("cancel job " + hCancel); got != "OK\r\n" {
		t.Fatalf("cancel: %q", got)
	}
	expectAdminList(t, admin, "show jobs", hStay+"\t0\t0\t1\n.\n")
	checkFor(t, readTimeout, func() error {
		if n := st.Stats().Jobs; n != 1 {
			return fmt.Errorf("%d jobs stored, want 1", n)
		}
		return nil
	})

	s, _ = restart(t, s, st, dir)
	worker = mustConnect(t, addrOf(t, s))
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, hStay, "fn", "stay")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob)
}

// A job cancelled while it is being stored is not run, and does not come back after a restart.
func TestDurable_CancelWhileStoring(t *testing.T) {
	dir := t.TempDir()
	st := mustOpenStore(t, dir)
	gate := &gatedStore{Store: st}
	s := mustStartServer(t, withStore(gate))
	addr := addrOf(t, s)
	client, worker, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	client.send(protocol.SubmitJobBg, "fn", "", "x")
	gate.waitHeld(t, 1)
	if got := admin.admin("cancel job " + handle(1)); got != "OK\r\n" {
		t.Fatalf("cancel: %q", got)
	}
	gate.release(false)
	client.expect(protocol.JobCreated, handle(1)) // it was stored; then it was removed
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob)
	checkFor(t, readTimeout, func() error {
		if n := st.Stats().Jobs; n != 0 {
			return fmt.Errorf("%d jobs stored, want 0", n)
		}
		return nil
	})
	s, _ = restart(t, s, st, dir)
	expectAdminList(t, mustConnect(t, addrOf(t, s)), "show jobs", ".\n")
}

// failingStore is a store whose every write fails, as on a full disk. Its callback runs on another
// goroutine, as the Store contract requires (the server holds its lock while calling Add).
type failingStore struct{ adds atomic.Int64 }

func (f *failingStore) Add(j *store.Job, done func(error)) {
	f.adds.Add(1)
	go done(errors.New("disk full"))
}
func (f *failingStore) Remove(uint64)                       {}
func (f *failingStore) SetRetries(*store.Job)               {}
func (f *failingStore) Replay(func(*store.Job) error) error { return nil }
func (f *failingStore) NextSeq() uint64                     { return 1 }
func (f *failingStore) ReserveSeq(uint64)                   {}
func (f *failingStore) Close() error                        { return nil }
func (f *failingStore) Stats() store.Stats {
	return store.Stats{Engine: "failing", Path: "/dev/full", Sync: store.SyncAlways, Jobs: 0,
		LastSync: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), LastError: "write /dev/full:\nno space\tleft"}
}

func TestDurable_StoreFailure(t *testing.T) {
	fs := &failingStore{}
	gate := &gatedStore{Store: fs}
	s := mustStartServer(t, withStore(gate))
	addr := addrOf(t, s)
	client, sleeper, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	sleeper.send(protocol.CanDo, "fn")
	sleeper.send(protocol.PreSleep)
	sleeper.expectQuiet()

	client.send(protocol.SubmitJobBg, "fn", "", "x")
	gate.waitHeld(t, 1)
	gate.release(false)
	client.expect(protocol.Error, errQueueError, "Cannot store job: disk full")

	// Two submits of one unique key: the second joins the first while it is being stored, and
	// fails with it.
	client.send(protocol.SubmitJobHighBg, "fn", "u", "a")
	client.send(protocol.SubmitJob, "fn", "u", "b")
	client.send(protocol.EchoReq, "still here")
	gate.waitHeld(t, 1)
	checkFor(t, readTimeout, func() error {
		// The foreground submit joins as the job's one client.
		if j, ok := s.Core().Job(handle(2)); !ok || j.Clients != 1 {
			return errors.New("the second submit has not joined the first yet")
		}
		return nil
	})
	gate.release(false)
	client.expectError(errQueueError)
	client.expectError(errQueueError)
	client.expect(protocol.EchoRes, "still here")
	if n := fs.adds.Load(); n != 2 {
		t.Errorf("%d Adds, want 2", n)
	}

	// The failed jobs are nowhere: not listed, not coalescing, never offered to a worker.
	expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
	expectAdminList(t, admin, "show jobs", ".\n")
	expectAdminList(t, admin, "show unique jobs", ".\n")
	sleeper.expectQuiet()
	client.send(protocol.GetStatusUnique, "u")
	client.expect(protocol.StatusResUnique, "u", "0", "0", "0", "0", "0")

	// Foreground jobs do not touch the store: the server goes on serving them.
	roundTrip(t, addr)
	if n := fs.adds.Load(); n != 2 {
		t.Errorf("%d Adds after a foreground job, want 2", n)
	}
}

// A store that is down refuses every background submit: the first refusal is logged at once, the
// next ones only as a count on a line every 10 s, not a line each.
func TestDurable_StoreFailureLogPaced(t *testing.T) {
	logs := &syncbuf.Buffer{}
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	s := mustStartServer(t, withStore(&failingStore{}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	}))
	client := mustConnect(t, addrOf(t, s))
	submit := func(n int) {
		t.Helper()
		for range n {
			client.send(protocol.SubmitJobBg, "fn", "", "x")
		}
		for range n {
			client.expectError(errQueueError)
		}
	}
	lines := func() []string {
		return regexp.MustCompile(`msg="cannot store background job".*`).FindAllString(logs.String(), -1)
	}
	submit(50)
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "function=fn") || strings.Contains(got[0], "refused=") {
		t.Fatalf("50 refusals logged:\n%s", strings.Join(got, "\n"))
	}
	now.Add(int64(9 * time.Second))
	submit(1)
	if got := lines(); len(got) != 1 {
		t.Fatalf("9 s later:\n%s", strings.Join(got, "\n"))
	}
	now.Add(int64(time.Second))
	submit(1)
	if got := lines(); len(got) != 2 || !strings.HasSuffix(got[1], "refused=51 failing_for=10s") {
		t.Fatalf("10 s later, one line more counting the refusals since the first:\n%s", strings.Join(got, "\n"))
	}
}

func TestDurable_StoreAdminCommand(t *testing.T) {
	t.Run("pebble", func(t *testing.T) {
		dir := t.TempDir()
		st := mustOpenStore(t, dir)
		s := mustStartServer(t, withStore(st))
		admin, client := mustConnect(t, addrOf(t, s)), mustConnect(t, addrOf(t, s))
		expectAdminList(t, admin, "store",
			"engine\tpebble\npath\t"+dir+"\nsync\talways\njobs\t0\nlast_sync\t-\nlast_error\t-\n.\n")
		client.submit(protocol.SubmitJobBg, "fn", "", "x")
		client.submit(protocol.SubmitJobBg, "fn", "", "y")
		got := admin.adminList("store")
		re := regexp.MustCompile(`^engine\tpebble\npath\t` + regexp.QuoteMeta(dir) +
			`\nsync\talways\njobs\t2\nlast_sync\t(\S+)\nlast_error\t-\n\.\n$`)
		m := re.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("store = %q", got)
		}
		if ts, err := time.Parse(time.RFC3339Nano, m[1]); err != nil || time.Since(ts) > time.Minute || ts.Location() != time.UTC {
			t.Errorf("last_sync %q: %v", m[1], err)
		}
	})
	t.Run("memory", func(t *testing.T) {
		s := mustStartServer(t, nil)
		expectAdminList(t, mustConnect(t, addrOf(t, s)), "store", "engine\tmemory\n.\n")
	})
	t.Run("an error with line breaks stays on one line", func(t *testing.T) {
		s := mustStartServer(t, withStore(&failingStore{}))
		expectAdminList(t, mustConnect(t, addrOf(t, s)), "store",
			"engine\tfailing\npath\t/dev/full\nsync\talways\njobs\t0\nlast_sync\t2026-01-02T03:04:05.000006Z\n"+
				"last_error\twrite /dev/full: no space left\n.\n")
	})
}

// A background submit coalescing onto a foreground job turns it into a background job and is
// acknowledged; it should then be as durable as any background job.
func TestDurable_BackgroundSubmitOntoForegroundJob(t *testing.T) {
	dir := t.TempDir()
	st := mustOpenStore(t, dir)
	s := mustStartServer(t, withStore(st))
	addr := addrOf(t, s)
	fg, bg := mustConnect(t, addr), mustConnect(t, addr)
	h := fg.submit(protocol.SubmitJob, "fn", "u", "data")
	if got := bg.submit(protocol.SubmitJobBg, "fn", "u", "data"); got != h {
		t.Fatalf("background submit got %s, want %s", got, h)
	}
	s, _ = restart(t, s, st, dir)
	worker := mustConnect(t, addrOf(t, s))
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "fn", "data")
}

// Foreground jobs are not stored, but their handle numbers are reserved in the store: after a
// restart no handle given out before names a new job.
func TestDurable_ForegroundHandlesNotReusedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	st := mustOpenStore(t, dir)
	s := mustStartServer(t, withStore(st))
	c := mustConnect(t, addrOf(t, s))
	var last string
	for range 3 {
		last = c.submit(protocol.SubmitJob, "fg", "", "x")
	}
	c.close()
	s, _ = restart(t, s, st, dir)
	next := mustConnect(t, addrOf(t, s)).submit(protocol.SubmitJob, "fg", "", "y")
	seq := func(h string) int {
		n, err := strconv.Atoi(h[strings.LastIndexByte(h, ':')+1:])
		if err != nil {
			t.Fatalf("handle %q: %v", h, err)
		}
		return n
	}
	if seq(next) <= seq(last) {
		t.Fatalf("handle %s after restart repeats a number given before (last %s)", next, last)
	}
}

// Jobs replayed after the handle prefix changed (a new host name, --handle-prefix) keep the handles
// their clients were given; new jobs get the new prefix.
func TestDurable_ReplayedHandlesSurviveANewPrefix(t *testing.T) {
	dir := t.TempDir()
	st := mustOpenStore(t, dir)
	s := mustStartServer(t, withStore(st, func(o *Options) { o.HandlePrefix = "H:old" }))
	client := mustConnect(t, addrOf(t, s))
	hOld := client.submit(protocol.SubmitJobBg, "fn", "u1", "replayed")
	if hOld != "H:old:1" {
		t.Fatalf("handle %q, want H:old:1", hOld)
	}

	s, _ = restart(t, s, st, dir, func(o *Options) { o.HandlePrefix = "H:new" })
	addr := addrOf(t, s)
	client, worker := mustConnect(t, addr), mustConnect(t, addr)
	client.send(protocol.GetStatus, hOld)
	client.expect(protocol.StatusRes, hOld, "1", "0", "0", "0")
	hNew := client.submit(protocol.SubmitJobBg, "fn", "", "fresh")
	if !strings.HasPrefix(hNew, "H:new:") {
		t.Fatalf("new handle %q, want the new prefix", hNew)
	}
	// A handle of the new prefix with the old job's number is not the old job.
	client.send(protocol.GetStatus, "H:new:1")
	client.expect(protocol.StatusRes, "H:new:1", "0", "0", "0", "0")

	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJobUniq)
	worker.expect(protocol.JobAssignUniq, hOld, "fn", "u1", "replayed")
	worker.send(protocol.WorkComplete, hOld, "done")
	worker.send(protocol.WorkFail, hOld) // late: dropped quietly, not an ERROR
	worker.send(protocol.GrabJobUniq)
	worker.expect(protocol.JobAssignUniq, hNew, "fn", "", "fresh")
	worker.send(protocol.WorkComplete, hNew, "done")
	client.send(protocol.GetStatus, hOld)
	client.expect(protocol.StatusRes, hOld, "0", "0", "0", "0")
}
