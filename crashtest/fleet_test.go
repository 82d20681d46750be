package crashtest

import (
	"context"
	"hash/crc32"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/internal/testpg"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/worker"
)

// A fleet of gear servers on one PostgreSQL database (issue 17): a server that dies or is cut off
// from the database loses its lease, and a survivor adopts its jobs.

const (
	fleetFunction = "fleet"
	leaseTTL      = 2 * time.Second
)

// startFleetServer starts a gear server of the fleet on database url, named prefix.
func startFleetServer(t *testing.T, url, prefix string) *server {
	return startServer(t, []string{"--store", "postgres", "--postgres-url", url},
		"--job-handle-prefix", prefix, "--lease-ttl", strconv.FormatFloat(leaseTTL.Seconds(), 'f', -1, 64))
}

// fleetJob is one background submit: its payload names it, "job ID".
type fleetJob struct {
	id     int
	unique string
	when   int64 // SUBMIT_JOB_EPOCH when positive
}

// submitJobs pipelines jobs to addr on one connection and returns the ids acknowledged with
// JOB_CREATED; any other answer fails the test.
func submitJobs(t *testing.T, addr string, jobs []fleetJob) []int {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	errc := make(chan error, 1)
	go func() {
		var out []byte
		for _, j := range jobs {
			data := []byte("job " + strconv.Itoa(j.id))
			if j.when > 0 {
				out = protocol.AppendRequest(out, protocol.SubmitJobEpoch, []byte(fleetFunction), []byte(j.unique),
					[]byte(strconv.FormatInt(j.when, 10)), data)
			} else {
				out = protocol.AppendRequest(out, protocol.SubmitJobBg, []byte(fleetFunction), []byte(j.unique), data)
			}
		}
		_, err := nc.Write(out)
		errc <- err
	}()
	dec := protocol.NewDecoder(nc, 0)
	var acked []int
	for _, j := range jobs {
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("submitting to %s: %v", addr, err)
		}
		if f.Packet.Type != protocol.JobCreated {
			t.Fatalf("submit of job %d to %s: %v %q", j.id, addr, f.Packet.Type, f.Packet.Args)
		}
		acked = append(acked, j.id)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return acked
}

// runLog counts the runs of each job id a set of workers saw.
type runLog struct {
	mu   sync.Mutex
	runs map[int]int
	bad  []string // payloads that name no job
}

func newRunLog() *runLog { return &runLog{runs: map[int]int{}} }

func (l *runLog) record(data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, err := strconv.Atoi(strings.TrimPrefix(string(data), "job "))
	if err != nil || !strings.HasPrefix(string(data), "job ") {
		l.bad = append(l.bad, string(data))
		return
	}
	l.runs[id]++
}

func (l *runLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.runs {
		n += c
	}
	return n
}

func (l *runLog) ran(id int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs[id] > 0
}

// waitAllRan waits until every job of acked (by id) has run at least once.
func waitAllRan[V any](t *testing.T, l *runLog, acked map[int]V) {
	t.Helper()
	testenv.WaitFor(t, "every acknowledged job to run", 2*time.Minute, func() bool {
		for id := range acked {
			if !l.ran(id) {
				return false
			}
		}
		return true
	})
}

// startWorker runs a Go worker connected to servers, recording its runs in log; each job takes
// pause. It stops when the test ends, or when stop is called (which waits for its running jobs).
func startWorker(t *testing.T, log *runLog, pause time.Duration, concurrency int, servers ...string) (stop func()) {
	t.Helper()
	w, err := worker.New(worker.Options{Servers: servers, Concurrency: concurrency, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register(fleetFunction, func(ctx context.Context, j *worker.Job) ([]byte, error) {
		log.record(j.Data)
		time.Sleep(pause)
		return nil, nil
	}, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.Run(context.Background()); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { w.Stop(); <-done }) }
	t.Cleanup(stop)
	return stop
}

var adoptedRe = regexp.MustCompile(`msg="adopted the jobs of a server whose lease lapsed" from=(\S+) jobs=(\d+)`)

// adoptedFrom is how many jobs s logged adopting from owner (-1: none yet).
func (s *server) adoptedFrom(owner string) int {
	for _, m := range adoptedRe.FindAllStringSubmatch(s.output(), -1) {
		if m[1] == owner {
			n, _ := strconv.Atoi(m[2])
			return n
		}
	}
	return -1
}

// adminText sends an admin line and returns the reply up to its "." line.
func adminText(t *testing.T, addr, line string) string {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	if _, err := nc.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	dec := protocol.NewDecoder(nc, 0)
	var b strings.Builder
	for {
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("admin %s: %v", line, err)
		}
		if string(f.Line) == "." {
			return b.String()
		}
		b.Write(f.Line)
		b.WriteByte('\n')
		if strings.HasPrefix(string(f.Line), "ERR ") {
			return b.String()
		}
	}
}

// Three servers on one database, workers connected to all of them, background jobs spread over
// them by unique key. One server is killed (SIGKILL) in the middle of the drain: a survivor adopts
// its jobs within the lease TTL and a second, and every acknowledged job runs at least once.
func TestFleet_KillAServer(t *testing.T) {
	n := 20_000
	if raceEnabled || testing.Short() {
		n = 3_000 // the race detector slows the servers and workers some tenfold
	}
	url := testpg.NewDB(t)
	names := []string{"H:f0", "H:f1", "H:f2"}
	servers := make([]*server, len(names))
	for i, name := range names {
		servers[i] = startFleetServer(t, url, name)
	}
	// Spread by unique, as clients hashing uniques over servers do.
	perServer := make([][]fleetJob, len(servers))
	for id := range n {
		u := "u-" + strconv.Itoa(id)
		k := crc32.ChecksumIEEE([]byte(u)) % uint32(len(servers))
		perServer[k] = append(perServer[k], fleetJob{id: id, unique: u})
	}
	acked := map[int]bool{}
	for k, s := range servers {
		for _, id := range submitJobs(t, s.addr, perServer[k]) {
			acked[id] = true
		}
	}
	if len(acked) != n {
		t.Fatalf("%d of %d submits acknowledged", len(acked), n)
	}

	runs := newRunLog()
	addrs := []string{servers[0].addr, servers[1].addr, servers[2].addr}
	for range 2 {
		startWorker(t, runs, 2*time.Millisecond, 4, addrs...)
	}
	testenv.WaitFor(t, "a quarter of the jobs to run", time.Minute, func() bool { return runs.total() >= n/4 })
	victim, survivors := servers[1], []*server{servers[0], servers[2]}
	killed := time.Now()
	victim.cmd.Process.Kill()
	<-victim.done
	ranAtKill := runs.total()

	var adopter *server
	testenv.WaitFor(t, "a survivor to adopt the killed server's jobs", leaseTTL+10*time.Second, func() bool {
		for _, s := range survivors {
			if s.adoptedFrom(names[1]) >= 0 {
				adopter = s
				return true
			}
		}
		return false
	})
	took := time.Since(killed)
	t.Logf("%d jobs (%d had run when the server was killed); %s adopted %d jobs of %s %v after the kill (lease TTL %v)",
		n, ranAtKill, adopter.addr, adopter.adoptedFrom(names[1]), names[1], took.Round(time.Millisecond), leaseTTL)
	if took > leaseTTL+time.Second {
		t.Errorf("adoption took %v, more than the lease TTL (%v) and a second", took, leaseTTL)
	}
	for _, s := range survivors {
		if s != adopter && s.adoptedFrom(names[1]) >= 0 {
			t.Errorf("both survivors adopted %s", names[1])
		}
	}

	waitAllRan(t, runs, acked)
	runs.mu.Lock()
	for id := range runs.runs {
		if !acked[id] {
			t.Errorf("job %d ran but was never acknowledged", id)
		}
	}
	if len(runs.bad) > 0 {
		t.Errorf("%d runs of invented jobs, first %q", len(runs.bad), runs.bad[0])
	}
	again := 0
	for _, c := range runs.runs {
		if c > 1 {
			again++
		}
	}
	runs.mu.Unlock()
	t.Logf("%d jobs ran more than once (running on the killed server, or adopted before it reported them done)", again)
	fleet := adminText(t, adopter.addr, "fleet")
	if !strings.Contains(fleet, names[1]+" epoch=") || !strings.Contains(fleet, "adopted_by=") {
		t.Errorf("admin fleet:\n%s", fleet)
	}
	for _, s := range survivors {
		s.stop()
	}
}

// One server is cut off from the database while its workers stay connected: once its lease lapses
// it hands out nothing, the other server adopts its jobs and runs them, and when the cut heals it
// rejoins under a new epoch without running an adopted job again.
func TestFleet_Partition(t *testing.T) {
	const n = 300
	url := testpg.NewDB(t)
	proxy := testpg.Shared(t).NewProxy(t)
	a := startFleetServer(t, proxy.URL(url), "H:pa")
	b := startFleetServer(t, url, "H:pb")

	// Epoch jobs, due after the lease has lapsed: they are queued at a when the cut comes, and
	// fall due while it is fenced.
	due := time.Now().Add(leaseTTL + 3*time.Second).Unix()
	jobs := make([]fleetJob, n)
	for i := range jobs {
		jobs[i] = fleetJob{id: i, unique: "p-" + strconv.Itoa(i), when: due}
	}
	if got := submitJobs(t, a.addr, jobs); len(got) != n {
		t.Fatalf("%d of %d acknowledged", len(got), n)
	}
	onA, onB := newRunLog(), newRunLog()
	startWorker(t, onA, 0, 2, a.addr)
	startWorker(t, onB, 0, 2, b.addr)

	proxy.Cut()
	cut := time.Now()
	testenv.WaitFor(t, "a to fence itself", leaseTTL+5*time.Second, func() bool { return strings.Contains(a.output(), "msg=\"fenced: ") })
	t.Logf("a fenced itself %v after the cut", time.Since(cut).Round(time.Millisecond))
	testenv.WaitFor(t, "b to adopt a's jobs", leaseTTL+5*time.Second, func() bool { return b.adoptedFrom("H:pa") >= 0 })
	if got := b.adoptedFrom("H:pa"); got != n {
		t.Fatalf("b adopted %d jobs, want %d", got, n)
	}
	t.Logf("b adopted them %v after the cut", time.Since(cut).Round(time.Millisecond))
	testenv.WaitFor(t, "b's workers to run the adopted jobs", 30*time.Second, func() bool { return onB.total() >= n })
	if got := onA.total(); got != 0 {
		t.Fatalf("the fenced server handed out %d jobs", got)
	}
	// Submits to the fenced server are refused.
	nc := dial(t, a.addr)
	nc.Write(protocol.AppendRequest(nil, protocol.SubmitJobBg, []byte(fleetFunction), nil, []byte("job -1")))
	if f, err := protocol.NewDecoder(nc, 0).Next(); err != nil || f.Packet.Type != protocol.Error ||
		string(f.Packet.Args[0]) != protocol.CodeQueueError {
		t.Fatalf("background submit to a fenced server: %v %v", f, err)
	}
	nc.Close()

	proxy.Heal()
	testenv.WaitFor(t, "a to rejoin", 30*time.Second, func() bool { return strings.Contains(a.output(), "fence lifted") })
	if !strings.Contains(a.output(), "forgot jobs adopted by another server while fenced\" jobs=300") {
		t.Errorf("a did not forget the %d adopted jobs:\n%s", n, a.output())
	}
	// A job submitted after the rejoin runs at a; had a kept the adopted jobs, due before it, they
	// would have run there first.
	after := submitJobs(t, a.addr, []fleetJob{{id: n}})
	if len(after) != 1 {
		t.Fatal("submit after rejoining refused")
	}
	testenv.WaitFor(t, "a's worker to run the new job", 30*time.Second, func() bool { return onA.ran(n) })
	if got := onA.total(); got != 1 {
		t.Errorf("after rejoining, a ran %d jobs, want only the new one", got)
	}
	for i := range n {
		if !onB.ran(i) {
			t.Errorf("adopted job %d never ran", i)
		}
	}
	fleet := adminText(t, b.addr, "fleet")
	for _, want := range []string{"self=H:pb", "H:pa epoch=3 alive", "jobs_adopted=300"} {
		if !strings.Contains(fleet, want) {
			t.Errorf("admin fleet lacks %q:\n%s", want, fleet)
		}
	}
	b.stop()
	a.stop()
}

// Two servers define the same every-minute schedule; the one holding the fleet's leader lease
// fires each tick, the other skips it (and logs so at DEBUG): one job per tick for the whole fleet.
func TestFleet_ScheduleFiresOncePerFleet(t *testing.T) {
	url := testpg.NewDB(t)
	flag := "tick " + fleetFunction + " * * * * * data=job 7"
	servers := make([]*server, 2)
	for i, name := range []string{"H:sa", "H:sb"} {
		servers[i] = startServer(t, []string{"--store", "postgres", "--postgres-url", url}, "--job-handle-prefix", name,
			"--lease-ttl", "2", "--schedule", flag, "--verbose", "DEBUG")
	}
	runs := newRunLog()
	startWorker(t, runs, 0, 2, servers[0].addr, servers[1].addr)
	skipped := func() bool {
		for _, s := range servers {
			if strings.Contains(s.output(), `msg="schedule tick left to the leader" schedule=tick`) {
				return true
			}
		}
		return false
	}
	testenv.WaitFor(t, "a tick fired by one server and skipped by the other", 75*time.Second,
		func() bool { return runs.total() > 0 && skipped() })
	if got := runs.total(); got != 1 || !runs.ran(7) {
		t.Fatalf("a tick ran %d jobs in a fleet of two", got)
	}
	for _, s := range servers {
		s.stop()
	}
}

// A server alone on its database, cut off longer than its lease: it fences itself, nobody adopts
// its jobs, and when the database is back it rejoins keeping all of them; every one runs.
func TestFleet_AloneThroughAnOutage(t *testing.T) {
	const n = 200
	proxy := testpg.Shared(t).NewProxy(t)
	s := startFleetServer(t, proxy.URL(testpg.NewDB(t)), "H:alone")
	jobs := make([]fleetJob, n)
	for i := range jobs {
		jobs[i] = fleetJob{id: i}
	}
	submitJobs(t, s.addr, jobs)
	proxy.Cut()
	testenv.WaitFor(t, "the server to fence itself", leaseTTL+5*time.Second, func() bool {
		return strings.Contains(s.output(), `msg="fenced: `)
	})
	runs := newRunLog()
	startWorker(t, runs, 0, 2, s.addr)
	proxy.Heal()
	testenv.WaitFor(t, "every job to run after the outage", 30*time.Second, func() bool { return runs.total() >= n })
	for i := range n {
		if !runs.ran(i) {
			t.Errorf("job %d never ran", i)
		}
	}
	if !strings.Contains(s.output(), `msg="rejoined the fleet" owner=H:alone epoch=2 jobs=200`) {
		t.Errorf("the server did not rejoin with its jobs:\n%s", s.output())
	}
	s.stop()
}

// A dead job follows its server's adoption: a server cut off from the database loses it to the
// survivor that adopts its jobs, which lists it and can retry it; when the cut heals the first
// server rejoins and no longer lists it.
func TestFleet_DeadSetFollowsAdoption(t *testing.T) {
	url := testpg.NewDB(t)
	proxy := testpg.Shared(t).NewProxy(t)
	a := startFleetServer(t, proxy.URL(url), "H:da")
	b := startFleetServer(t, url, "H:db")
	if got := adminLines(t, a.addr, "retry doomed 1 0 0", false); got != "OK\r\n" {
		t.Fatalf("retry doomed 1 0 0: %q", got)
	}
	req := func(tp protocol.Type, args ...string) []byte {
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		return protocol.AppendRequest(nil, tp, b...)
	}
	got := raw(t, a.addr, 1, req(protocol.SubmitJobBg, "doomed", "", "d"))
	if got[0].Type != protocol.JobCreated {
		t.Fatalf("submit: %v", got[0].Type)
	}
	h := string(got[0].Args[0])
	// The failure buries the job; the submit after it is acknowledged once its batch is committed,
	// and the dead job's row was queued before it.
	got = raw(t, a.addr, 2, req(protocol.CanDo, "doomed"), req(protocol.GrabJob), req(protocol.WorkFail, h),
		req(protocol.SubmitJobBg, "later", "", "l"))
	if got[0].Type != protocol.JobAssign || got[1].Type != protocol.JobCreated {
		t.Fatalf("grab, fail and submit: %v %v", got[0].Type, got[1].Type)
	}
	listed := h + "\tdoomed\t1\t"
	if got := adminLines(t, a.addr, "dead list", true); !strings.Contains(got, listed) {
		t.Fatalf("a's dead list: %q", got)
	}

	proxy.Cut()
	testenv.WaitFor(t, "b to adopt a's jobs", leaseTTL+10*time.Second, func() bool { return b.adoptedFrom("H:da") >= 0 })
	if !strings.Contains(b.output(), `from=H:da jobs=1 dead=1`) {
		t.Errorf("b's adoption log:\n%s", b.output())
	}
	if got := adminLines(t, b.addr, "dead list", true); !strings.Contains(got, listed) {
		t.Fatalf("the adopter's dead list: %q", got)
	}

	proxy.Heal()
	testenv.WaitFor(t, "a to rejoin", 30*time.Second, func() bool { return strings.Contains(a.output(), "fence lifted") })
	if !strings.Contains(a.output(), `msg="forgot dead jobs adopted by another server while fenced" dead=1`) {
		t.Errorf("a did not forget the adopted dead job:\n%s", a.output())
	}
	if got := adminLines(t, a.addr, "dead list", true); got != ".\n" {
		t.Errorf("a's dead list after rejoining: %q", got)
	}
	if got := adminLines(t, b.addr, "dead retry "+h, false); got != "OK 1\n" {
		t.Fatalf("dead retry %s on the adopter: %q", h, got)
	}
	if got := adminLines(t, b.addr, "dead list", true); got != ".\n" {
		t.Errorf("the adopter's dead list after the retry: %q", got)
	}
	if got := adminLines(t, b.addr, "status", true); !strings.Contains(got, "doomed\t1\t0\t0\n") {
		t.Errorf("the retried job is not queued at the adopter:\n%s", got)
	}
	b.stop()
	a.stop()
}
