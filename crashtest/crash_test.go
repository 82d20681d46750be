package crashtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

const (
	function = "crash"
	numJobs  = 2000
	clients  = 4  // concurrent submitting connections
	window   = 32 // submits in flight per connection
	ioWait   = 30 * time.Second
)

var submitTypes = [3]protocol.Type{protocol.SubmitJobHighBg, protocol.SubmitJobBg, protocol.SubmitJobLowBg}

// spec is one submit: its payload starts with "job ID\n", so a run names the submit it came from.
type spec struct {
	id     int
	prio   int    // 0 high, 1 normal, 2 low
	unique string // "" or a key that two submits share
	data   []byte
}

// makeSpecs returns n submits with mixed priorities and payload sizes, a tenth of them in pairs
// sharing a unique key.
func makeSpecs(rng *rand.Rand, n int) []spec {
	specs := make([]spec, n)
	for i := range specs {
		pad := rng.IntN(64)
		if rng.IntN(20) == 0 {
			pad = 4<<10 + rng.IntN(12<<10)
		}
		data := append([]byte(fmt.Sprintf("job %d\n", i)), bytes.Repeat([]byte{'a' + byte(i%26)}, pad)...)
		specs[i] = spec{id: i, prio: rng.IntN(3), data: data}
	}
	perm := rng.Perm(n)
	for k := 0; k+1 < n/10; k += 2 {
		key := "key-" + strconv.Itoa(k/2)
		specs[perm[k]].unique, specs[perm[k+1]].unique = key, key
	}
	return specs
}

// ledger is what the clients saw: submits written to a socket, and the JOB_CREATED handles.
type ledger struct {
	specs []spec
	acks  atomic.Int64

	mu       sync.Mutex
	sent     map[int]bool
	acked    map[int]string // id → handle
	ackOrder [][]int        // per connection, acknowledged ids in submission order
	errs     []string
}

// submitAll submits specs over several connections, each pipelining up to window submits, and
// closes killNow once killAt submits are acknowledged. It returns when every connection has its
// replies or is dead. It runs beside the test's goroutine, so it reports with Errorf only.
func submitAll(t *testing.T, addr string, specs []spec, killAt int64, killNow chan struct{}) *ledger {
	l := &ledger{specs: specs, sent: map[int]bool{}, acked: map[int]string{}, ackOrder: make([][]int, clients)}
	conns := make([]net.Conn, clients)
	for k := range conns {
		nc, err := net.DialTimeout("tcp", addr, ioWait)
		if err != nil {
			t.Errorf("client %d: %v", k, err)
			for _, c := range conns[:k] {
				c.Close()
			}
			return l
		}
		nc.SetDeadline(time.Now().Add(ioWait))
		conns[k] = nc
	}
	var once sync.Once
	var wg sync.WaitGroup
	for k, nc := range conns {
		var mine []spec
		for i := k; i < len(specs); i += clients {
			mine = append(mine, specs[i])
		}
		pending := make(chan int, window)
		readerDone := make(chan struct{})
		wg.Go(func() { // reader: the replies come in submission order
			defer close(readerDone)
			dec := protocol.NewDecoder(nc, 0)
			for range mine {
				f, err := dec.Next()
				if err != nil {
					return // the server was killed
				}
				id := <-pending
				switch f.Packet.Type {
				case protocol.JobCreated:
					l.mu.Lock()
					l.acked[id] = string(f.Packet.Args[0])
					l.ackOrder[k] = append(l.ackOrder[k], id)
					l.mu.Unlock()
					if l.acks.Add(1) == killAt {
						once.Do(func() { close(killNow) })
					}
				default:
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Sprintf("job %d: %v %q", id, f.Packet.Type, f.Packet.Args))
					l.mu.Unlock()
				}
			}
		})
		wg.Go(func() { // writer
			defer func() { <-readerDone; nc.Close() }()
			for _, sp := range mine {
				select {
				case pending <- sp.id:
				case <-readerDone:
					return
				}
				l.mu.Lock()
				l.sent[sp.id] = true
				l.mu.Unlock()
				var u []byte
				if sp.unique != "" {
					u = []byte(sp.unique)
				}
				if _, err := nc.Write(protocol.AppendRequest(nil, submitTypes[sp.prio], []byte(function), u, sp.data)); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(l.errs) > 0 {
		t.Errorf("%d submits answered with an error, first: %s", len(l.errs), l.errs[0])
	}
	return l
}

// run is one JOB_ASSIGN a worker received.
type run struct {
	handle string
	data   []byte
}

// drain runs every queued job with one worker, in the order the server hands them out, and returns
// the runs. With stopAfter > 0 it stops at that run without completing it (the job is running) and
// closes stopped.
func drain(t *testing.T, addr string, stopAfter int, stopped chan struct{}) []run {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	dec := protocol.NewDecoder(nc, 0)
	out := protocol.AppendRequest(nil, protocol.CanDo, []byte(function))
	out = protocol.AppendRequest(out, protocol.GrabJob)
	var runs []run
	for {
		if _, err := nc.Write(out); err != nil {
			t.Fatalf("worker: %v", err)
		}
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("worker: %v", err)
		}
		switch f.Packet.Type {
		case protocol.NoJob:
			return runs
		case protocol.JobAssign:
		default:
			t.Fatalf("worker got %v %q", f.Packet.Type, f.Packet.Args)
		}
		h := string(f.Packet.Args[0])
		runs = append(runs, run{handle: h, data: bytes.Clone(f.Packet.Args[2])})
		if len(runs) == stopAfter {
			close(stopped)
			return runs
		}
		out = protocol.AppendRequest(nil, protocol.WorkComplete, []byte(h), nil)
		out = protocol.AppendRequest(out, protocol.GrabJob)
	}
}

// dial connects to the server; every read and write on the connection must be done within ioWait.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(ioWait))
	return nc
}

// storedJobs asks the server's admin `store` command how many jobs its store holds: the count of
// committed adds less committed removals.
func storedJobs(t *testing.T, addr string) int64 {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	if _, err := nc.Write([]byte("store\n")); err != nil {
		t.Fatalf("admin store: %v", err)
	}
	dec := protocol.NewDecoder(nc, 0)
	jobs := int64(-1)
	for {
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("admin store: %v", err)
		}
		line := string(f.Line)
		if line == "." {
			break
		}
		if v, ok := strings.CutPrefix(line, "jobs\t"); ok {
			if jobs, err = strconv.ParseInt(v, 10, 64); err != nil {
				t.Fatalf("admin store: %q", line)
			}
		}
	}
	if jobs < 0 {
		t.Fatal("admin store: no jobs line")
	}
	return jobs
}

// waitStoredJobs polls the store's job count until it is want.
func waitStoredJobs(t *testing.T, addr string, want int64) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for {
		got := storedJobs(t, addr)
		if got == want {
			return
		}
		if got < want || time.Now().After(deadline) {
			t.Fatalf("store holds %d jobs, want %d", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// handleNumber is the number a handle "H:crash:N" ends in: the server's submission order.
func handleNumber(t *testing.T, h string) int {
	n, err := strconv.Atoi(h[strings.LastIndexByte(h, ':')+1:])
	if err != nil {
		t.Fatalf("job handle %q", h)
	}
	return n
}

// checker accumulates failures and reports the first few of each kind.
type checker struct {
	t      *testing.T
	counts map[string]int
}

func (c *checker) fail(kind, format string, args ...any) {
	c.t.Helper()
	if c.counts[kind]++; c.counts[kind] <= 3 {
		c.t.Errorf(kind+": "+format, args...)
	}
}

func (c *checker) done() {
	for kind, n := range c.counts {
		if n > 3 {
			c.t.Errorf("%s: %d failures in all", kind, n)
		}
	}
}

// checkRuns checks runs (in the order a single worker got them, after a restart) against what the
// clients saw. earlier lists the jobs completed in a drain that a crash ended (nil if none).
// exactlyOnce says no job may run twice (no crash while jobs ran).
func checkRuns(t *testing.T, l *ledger, earlier, runs []run, exactlyOnce bool) {
	c := &checker{t: t, counts: map[string]int{}}
	defer c.done()
	ranHandle := map[string]int{} // handle → times run (all drains)
	ranID := map[int]string{}     // payload id → handle it ran under
	for _, r := range slices.Concat(earlier, runs) {
		line, _, _ := bytes.Cut(r.data, []byte("\n"))
		id, err := strconv.Atoi(strings.TrimPrefix(string(line), "job "))
		switch {
		case err != nil || id < 0 || id >= len(l.specs) || !bytes.Equal(r.data, l.specs[id].data):
			c.fail("unknown job ran", "%s with payload %.40q", r.handle, r.data)
			continue
		case !l.sent[id]:
			c.fail("unsent job ran", "job %d (%s) was never submitted", id, r.handle)
		}
		if h, ok := ranID[id]; ok && h != r.handle {
			c.fail("payload under two handles", "job %d ran as %s and %s", id, h, r.handle)
		}
		ranID[id] = r.handle
		if h, ok := l.acked[id]; ok && h != r.handle {
			c.fail("wrong handle", "job %d was acknowledged as %s but ran as %s", id, h, r.handle)
		}
		ranHandle[r.handle]++
	}
	for id, h := range l.acked {
		if ranHandle[h] == 0 {
			c.fail("acknowledged job lost", "job %d (%s, priority %d) never ran", id, h, l.specs[id].prio)
		}
	}
	if exactlyOnce {
		for h, n := range ranHandle {
			if n > 1 {
				c.fail("ran twice", "%s ran %d times", h, n)
			}
		}
	}

	// Unique keys: the submits of a key that were acknowledged share one handle; one job ran for
	// the key (exactly once unless jobs were running at a crash).
	byKey := map[string][]int{}
	for _, sp := range l.specs {
		if sp.unique != "" {
			byKey[sp.unique] = append(byKey[sp.unique], sp.id)
		}
	}
	for key, ids := range byKey {
		handles := map[string]bool{}
		for _, id := range ids {
			if h, ok := l.acked[id]; ok {
				handles[h] = true
			}
			if h, ok := ranID[id]; ok {
				handles[h] = true
			}
		}
		if len(handles) > 1 {
			c.fail("unique key not coalesced", "key %s: jobs %v ran or were acknowledged under %v", key, ids, handles)
		}
	}

	// Order: one worker takes every high job first, then normal, then low; within a priority in
	// submission order (handle numbers increase) — and so for each connection's own submits.
	pos := map[string]int{}
	lastPrio, lastN := -1, 0
	for i, r := range runs {
		id, ok := idOf(r)
		if !ok {
			continue
		}
		prio, n := l.specs[id].prio, handleNumber(t, r.handle)
		switch {
		case prio < lastPrio:
			c.fail("priority order", "run %d: %s (priority %d) after a priority %d job", i, r.handle, prio, lastPrio)
		case prio == lastPrio && n <= lastN:
			c.fail("FIFO order", "run %d: %s after %s within priority %d", i, r.handle, runs[i-1].handle, prio)
		}
		lastPrio, lastN = prio, n
		if _, seen := pos[r.handle]; !seen {
			pos[r.handle] = i
		}
	}
	for k, ids := range l.ackOrder {
		last := [3]int{-1, -1, -1}
		for _, id := range ids {
			h := l.acked[id]
			p, ok := pos[h]
			if !ok || ranID[id] != h {
				continue // ran in the earlier drain, or coalesced onto another submit's job
			}
			prio := l.specs[id].prio
			if p < last[prio] {
				c.fail("submission order", "connection %d: job %d (%s) ran before an earlier submit of priority %d", k, id, h, prio)
			}
			last[prio] = p
		}
	}
}

func idOf(r run) (int, bool) {
	line, _, _ := bytes.Cut(r.data, []byte("\n"))
	id, err := strconv.Atoi(strings.TrimPrefix(string(line), "job "))
	return id, err == nil
}

// seed returns the seed for a test's random choices: GEAR_CRASH_SEED, else the time, logged so a
// failure can be repeated.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("GEAR_CRASH_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("GEAR_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with GEAR_CRASH_SEED=%d)", s, s)
	return s
}

// crashRound submits numJobs jobs, kills the server after a random number of acknowledgements while
// submits are in flight, restarts it, optionally crashes it again while a job runs, drains the
// queue and checks the runs.
func crashRound(t *testing.T, rng *rand.Rand, dir []string, killDuringDrain bool, flags ...string) {
	specs := makeSpecs(rng, numJobs)
	killAt := int64(numJobs/10 + rng.IntN(numJobs*8/10))
	t.Logf("kill after %d acknowledged submits", killAt)

	srv := startServer(t, dir, flags...)
	killNow := make(chan struct{})
	var l *ledger
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		l = submitAll(t, srv.addr, specs, killAt, killNow)
	}()
	select {
	case <-killNow:
	case <-submitted:
		select {
		case <-killNow: // reached, but the clients were quicker than the kill
		default:
			t.Fatalf("every submit was answered before the kill point %d", killAt)
		}
	}
	srv.kill()
	<-submitted
	t.Logf("%d submits written, %d acknowledged", len(l.sent), len(l.acked))

	srv = startServer(t, dir, flags...)
	var earlier []run
	if killDuringDrain {
		stopAfter := 1 + rng.IntN(max(1, len(l.acked)/2))
		stored := storedJobs(t, srv.addr)
		stopped := make(chan struct{})
		earlier = drain(t, srv.addr, stopAfter, stopped)
		<-stopped
		// A finished job's removal is committed after WORK_COMPLETE is answered, so a crash right
		// after a completion may still run that job again (at least once). Once the store reports
		// the removals committed, none of those jobs may run again: wait for that, then kill.
		waitStoredJobs(t, srv.addr, stored-int64(len(earlier)-1))
		srv.kill() // the last job is running; the others completed and their removals are committed
		running := earlier[len(earlier)-1].handle
		t.Logf("killed while %s ran, after %d completed", running, len(earlier)-1)
		srv = startServer(t, dir, flags...)
		runs := drain(t, srv.addr, 0, nil)
		if !slices.ContainsFunc(runs, func(r run) bool { return r.handle == running }) {
			t.Errorf("%s was running at the crash and did not run again", running)
		}
		completed := map[string]bool{}
		for _, r := range earlier[:len(earlier)-1] {
			completed[r.handle] = true
		}
		again := 0
		for _, r := range runs {
			if completed[r.handle] {
				again++
			}
		}
		if again > 0 {
			t.Errorf("%d of %d jobs completed before the crash ran again: their committed removals were lost", again, len(completed))
		}
		checkRuns(t, l, earlier[:len(earlier)-1], runs, false)
	} else {
		checkRuns(t, l, nil, drain(t, srv.addr, 0, nil), true)
	}

	// Handles never repeat: a new job gets a number past every one handed out before the crash.
	maxN := 0
	for _, h := range l.acked {
		maxN = max(maxN, handleNumber(t, h))
	}
	nc := dial(t, srv.addr)
	defer nc.Close()
	nc.Write(protocol.AppendRequest(nil, protocol.SubmitJobBg, []byte("after"), nil, []byte("x")))
	f, err := protocol.NewDecoder(nc, 0).Next()
	if err != nil || f.Packet.Type != protocol.JobCreated {
		t.Fatalf("submit after restart: %v %v", err, f)
	}
	if n := handleNumber(t, string(f.Packet.Args[0])); n <= maxN {
		t.Errorf("new job %s after restart: handle number not past %d", f.Packet.Args[0], maxN)
	}
	srv.stop()
}

func TestCrash_KillDuringSubmit(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 0))
	for round := range 5 {
		t.Run("round "+strconv.Itoa(round+1), func(t *testing.T) { crashRound(t, rng, pebbleStore(t), false) })
	}
}

func TestCrash_KillDuringSubmitSyncInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 1))
	for round := range 2 {
		t.Run("round "+strconv.Itoa(round+1), func(t *testing.T) {
			crashRound(t, rng, pebbleStore(t), false, "--sync", "interval")
		})
	}
}

func TestCrash_KillDuringDrain(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 2))
	t.Run("sync always", func(t *testing.T) { crashRound(t, rng, pebbleStore(t), true) })
	t.Run("sync none", func(t *testing.T) { crashRound(t, rng, pebbleStore(t), true, "--sync", "none") })
}

// The same rounds with the jobs in PostgreSQL: the server is killed, its database lives on.
func TestCrash_PostgresKillDuringSubmit(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 3))
	for round := range 3 {
		t.Run("round "+strconv.Itoa(round+1), func(t *testing.T) { crashRound(t, rng, postgresStore(t), false) })
	}
	t.Run("sync interval", func(t *testing.T) { crashRound(t, rng, postgresStore(t), false, "--sync", "interval") })
}

func TestCrash_PostgresKillDuringDrain(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 4))
	crashRound(t, rng, postgresStore(t), true)
}
