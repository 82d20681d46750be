package crashtest

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/internal/testpg"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/worker"
	"github.com/jackc/pgx/v5"
)

// A database restart under load (issue 17's check): while PostgreSQL is down, background submits
// get ERROR QUEUE_ERROR (in a bounded time, on a connection that stays open, never JOB_CREATED);
// nothing acknowledged is lost; once it is back, submits succeed again without touching gear.

const (
	restartSubmitters = 6                // connections submitting one background job at a time
	replyWait         = 15 * time.Second // the longest any submit may wait for its answer
	// refuseWithin bounds the answer to a submit refused while the database is down: the store's
	// commit timeout (10 s) is the worst case; a refused connection is answered at once.
	refuseWithin = 11 * time.Second
)

// answer is the reply to one submit.
type answer struct {
	id         int
	conn       int
	sent, at   time.Time
	typ        protocol.Type
	code, text string // of an ERROR
}

// submitLog is every answer the submitters got, in the order they came.
type submitLog struct {
	mu      sync.Mutex
	answers []answer
	broken  []string // connections that failed: a dropped connection or a reply past replyWait
}

func (l *submitLog) add(a answer) {
	l.mu.Lock()
	l.answers = append(l.answers, a)
	l.mu.Unlock()
}

// count is how many answers match.
func (l *submitLog) count(match func(answer) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		if match(a) {
			n++
		}
	}
	return n
}

func (l *submitLog) snapshot() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.answers)
}

func isAck(a answer) bool { return a.typ == protocol.JobCreated }

func isRefusal(a answer) bool {
	return a.typ == protocol.Error && a.code == protocol.CodeQueueError
}

// submitLoop submits background jobs of fleetFunction on one connection, one at a time, until stop
// is closed; each payload is "job ID" with a new ID from next. After a refusal it waits 10 ms, as a
// client retrying would, rather than spin.
func submitLoop(addr string, conn int, next *atomic.Int64, log *submitLog, stop <-chan struct{}) {
	nc, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		log.mu.Lock()
		log.broken = append(log.broken, fmt.Sprintf("connection %d: %v", conn, err))
		log.mu.Unlock()
		return
	}
	defer nc.Close()
	dec := protocol.NewDecoder(nc, 0)
	for {
		select {
		case <-stop:
			return
		default:
		}
		id := int(next.Add(1))
		a := answer{id: id, conn: conn, sent: time.Now()}
		nc.SetDeadline(a.sent.Add(replyWait))
		_, err := nc.Write(protocol.AppendRequest(nil, protocol.SubmitJobBg, []byte(fleetFunction), nil, []byte("job "+strconv.Itoa(id))))
		var f *protocol.Frame
		if err == nil {
			f, err = dec.Next()
		}
		if err != nil {
			log.mu.Lock()
			log.broken = append(log.broken, fmt.Sprintf("connection %d, job %d sent at %s: %v",
				conn, id, a.sent.Format("15:04:05.000"), err))
			log.mu.Unlock()
			return
		}
		a.at, a.typ = time.Now(), f.Packet.Type
		if a.typ == protocol.Error && len(f.Packet.Args) == 2 {
			a.code, a.text = string(f.Packet.Args[0]), string(f.Packet.Args[1])
		}
		log.add(a)
		if a.typ != protocol.JobCreated {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// heldFunction is a function no worker takes until the end: its jobs, acknowledged before the
// restart, wait in the database through it.
const heldFunction = "held"

// submitHeld pipelines n background jobs of heldFunction, IDs from next, and returns their IDs;
// each must be acknowledged.
func submitHeld(t *testing.T, addr string, next *atomic.Int64, n int) []int {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	ids := make([]int, n)
	var out []byte
	for i := range ids {
		ids[i] = int(next.Add(1))
		out = protocol.AppendRequest(out, protocol.SubmitJobBg, []byte(heldFunction), nil, []byte("job "+strconv.Itoa(ids[i])))
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	dec := protocol.NewDecoder(nc, 0)
	for _, id := range ids {
		f, err := dec.Next()
		if err != nil || f.Packet.Type != protocol.JobCreated {
			t.Fatalf("held job %d: %v %v", id, f, err)
		}
	}
	return ids
}

// startDrainWorker runs a worker for fleetFunction and heldFunction on addr, recording the runs in
// log, until the test ends.
func startDrainWorker(t *testing.T, log *runLog, addr string) {
	t.Helper()
	w, err := worker.New(worker.Options{Servers: []string{addr}, Concurrency: 4, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{fleetFunction, heldFunction} {
		if err := w.Register(fn, func(ctx context.Context, j *worker.Job) ([]byte, error) {
			log.record(j.Data)
			return nil, nil
		}, 0); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { w.Run(context.Background()); close(done) }()
	t.Cleanup(func() { w.Stop(); <-done })
}

// storedIDs returns the IDs of the jobs stored in gear_jobs (their payloads say "job ID").
func storedIDs(dbURL string) (map[int]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT data FROM gear_jobs`)
	if err != nil {
		return nil, err
	}
	datas, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	ids := make(map[int]bool, len(datas))
	for _, d := range datas {
		id, err := strconv.Atoi(strings.TrimPrefix(string(d), "job "))
		if err != nil {
			return nil, fmt.Errorf("a stored job's payload %q", d)
		}
		ids[id] = true
	}
	return ids, nil
}

// ownerLocked reports whether a session holds the advisory lock of a gear server's owner name
// (store/postgres.go: lockOwner, hashtext(owner)).
func ownerLocked(dbURL, owner string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND classid = x'67656171'::int::oid AND objid = hashtext($1)::oid AND objsubid = 2`, owner).Scan(&n)
	return err == nil && n > 0
}

// refusedStart runs a second `gear server` with args and expects it to exit, refused, with an error
// containing want.
func refusedStart(t *testing.T, want string, args ...string) {
	t.Helper()
	cmd := exec.Command(gearBin, append([]string{"server", "--port", "0"}, args...)...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0 atexit_sleep_ms=0", "GEAR_STORE=", "GEAR_DATA_DIR=")
	out := make(chan []byte, 1)
	go func() { b, _ := cmd.CombinedOutput(); out <- b }()
	select {
	case b := <-out:
		if cmd.ProcessState.Success() || !strings.Contains(string(b), want) {
			t.Errorf("a second gear server %v: want it refused with %q:\n%s", args, want, b)
		}
	case <-time.After(ioWait):
		cmd.Process.Kill()
		<-out
		t.Errorf("a second gear server %v did not exit within %v: want it refused with %q", args, ioWait, want)
	}
}

// The errors a server logs while its database is down, one a failed batch or refused job.
var outageErrors = []string{`msg="store write failed"`, `msg="cannot store background job"`}

// One gear server on a PostgreSQL cluster of its own, six connections submitting background jobs
// one at a time without pause, a worker draining more slowly; PostgreSQL is stopped (fast
// shutdown) in the middle and started again on the same port. Figures in the README.
func TestPostgresRestart(t *testing.T) {
	t.Run("default lease 10s, down 3s", func(t *testing.T) { pgRestart(t, 3*time.Second, false) })
	// Down longer than the lease: the server fences itself, and rejoins once the database is back.
	t.Run("lease 2s, down 5s", func(t *testing.T) { pgRestart(t, 5*time.Second, true, "--lease-ttl", "2") })
}

// pgRestart runs one gear server on a cluster of its own, submitters and a worker; stops
// PostgreSQL (fast shutdown) for outage in the middle of the load, starts it again, and checks
// what the clients saw; fences: the lease runs out during the outage.
func pgRestart(t *testing.T, outage time.Duration, fences bool, flags ...string) {
	cluster := testpg.New(t)
	sock, err := cluster.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(sock)
	dbURL := cluster.TCPURL(strings.TrimPrefix(u.Path, "/"))
	s := startServer(t, []string{"--store", "postgres", "--postgres-url", dbURL}, append([]string{"--http", "127.0.0.1:0"}, flags...)...)
	readyz := s.httpURL() + "/readyz"
	testenv.WaitFor(t, "/readyz to answer 200 with the database up", 30*time.Second, func() bool {
		code, _ := httpGet(t, readyz)
		return code == http.StatusOK
	})

	// The worker is slower than the clients: a backlog of acknowledged jobs builds up.
	runs := newRunLog()
	stopWorker := startWorker(t, runs, time.Millisecond, 2, s.addr)
	var next atomic.Int64
	log := &submitLog{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for k := range restartSubmitters {
		wg.Go(func() { submitLoop(s.addr, k, &next, log, stop) })
	}
	stopped := false
	stopSubmitters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopSubmitters)
	healthy := func() {
		t.Helper()
		log.mu.Lock()
		defer log.mu.Unlock()
		if len(log.broken) > 0 {
			t.Fatalf("%d submitting connections failed, first: %s\n%s", len(log.broken), log.broken[0], s.output())
		}
	}

	testenv.WaitFor(t, "2,000 jobs acknowledged before the restart", time.Minute, func() bool { return log.count(isAck) >= 2000 })
	healthy()
	if n := log.count(func(a answer) bool { return !isAck(a) }); n > 0 {
		t.Fatalf("%d submits refused with the database up:\n%s", n, s.output())
	}

	const nHeld = 500
	held := submitHeld(t, s.addr, &next, nHeld)
	heldAt := time.Now()

	downAt := time.Now()
	if err := cluster.Down("fast"); err != nil {
		t.Fatal(err)
	}
	isDown := time.Now() // pg_ctl stop -w returned: the server has exited
	testenv.WaitFor(t, "a submit refused while the database is down", refuseWithin, func() bool {
		return log.count(func(a answer) bool { return isRefusal(a) && !a.sent.Before(isDown) }) > 0
	})
	firstRefusal := time.Since(isDown)
	healthy()
	// The metrics say how long the store has been failing. /readyz stays ready (foreground jobs
	// are served: the database is every server's) until the server fences itself.
	if f := metricValue(t, s.httpURL(), "gear_store_failing_seconds"); f <= 0 {
		t.Errorf("gear_store_failing_seconds %v with the database down, want > 0", f)
	}
	if fences {
		testenv.WaitFor(t, "/readyz to answer 503 once the lease lapsed", time.Minute, func() bool {
			code, body := httpGet(t, readyz)
			return code == http.StatusServiceUnavailable && strings.Contains(body, "fenced from the fleet")
		})
	} else if code, body := httpGet(t, readyz); code != http.StatusOK {
		t.Errorf("/readyz with the database down, the lease held: %d %q, want 200", code, body)
	}
	time.Sleep(outage - time.Since(downAt)) // the database stays down this long
	upAt := time.Now()
	if err := cluster.Up(); err != nil {
		t.Fatal(err)
	}
	isUp := time.Now() // accepting connections again
	testenv.WaitFor(t, "every connection's submits to succeed again", time.Minute, func() bool {
		healthy()
		for k := range restartSubmitters {
			if log.count(func(a answer) bool { return a.conn == k && isAck(a) && a.sent.After(isUp) }) == 0 {
				return false
			}
		}
		return true
	})
	testenv.WaitFor(t, "/readyz to answer 200 and the store to stop failing", time.Minute, func() bool {
		code, _ := httpGet(t, readyz)
		return code == http.StatusOK && metricValue(t, s.httpURL(), "gear_store_failing_seconds") == 0
	})
	// Resumed: how long after the database was back the first connection, and the last, had a
	// submit acknowledged.
	firstAck := map[int]time.Time{}
	for _, a := range log.snapshot() {
		if _, ok := firstAck[a.conn]; !ok && isAck(a) && a.sent.After(isUp) {
			firstAck[a.conn] = a.at
		}
	}
	resumeFirst, resumeAll := time.Duration(math.MaxInt64), time.Duration(0)
	for _, at := range firstAck {
		resumeFirst, resumeAll = min(resumeFirst, at.Sub(isUp)), max(resumeAll, at.Sub(isUp))
	}
	// The restart ended the session holding the server's owner lock: it is taken again, and a
	// second server under the same name is still refused.
	testenv.WaitFor(t, "the owner lock to be taken again", 15*time.Second, func() bool { return ownerLocked(dbURL, "H:crash") })
	refusedStart(t, "in use by another gear server", "--store", "postgres", "--postgres-url", dbURL, "--job-handle-prefix", "H:crash")
	before := log.count(isAck)
	testenv.WaitFor(t, "2,000 more jobs acknowledged after the restart", time.Minute, func() bool { return log.count(isAck) >= before+2000 })
	stopSubmitters()
	healthy()

	// What the clients saw.
	answers := log.snapshot()
	acked, refused := map[int]time.Time{}, map[int]bool{}
	var refusedDown, refusedStarting, refusedAfter int
	var longest time.Duration
	texts := map[string]int{}
	for _, a := range answers {
		wait := a.at.Sub(a.sent)
		switch {
		case isAck(a):
			acked[a.id] = a.at
			if a.at.After(isDown) && a.at.Before(upAt) {
				t.Errorf("job %d acknowledged at %s, while the database was down (%s to %s)", a.id,
					a.at.Format("15:04:05.000"), isDown.Format("15:04:05.000"), upAt.Format("15:04:05.000"))
			}
		case isRefusal(a):
			refused[a.id] = true
			text, _, _ := strings.Cut(a.text, ":")
			texts[text]++
			if a.at.Before(downAt) {
				t.Errorf("job %d refused before the database went down: %q", a.id, a.text)
			}
			switch {
			case a.sent.Before(upAt):
				refusedDown++
				longest = max(longest, wait)
			case a.sent.Before(isUp):
				refusedStarting++
			default:
				refusedAfter++
			}
		default:
			t.Errorf("job %d answered %v %q %q", a.id, a.typ, a.code, a.text)
		}
		if !a.sent.Before(isDown) && a.at.Before(upAt) && wait > refuseWithin {
			t.Errorf("job %d sent while the database was down waited %v for its answer", a.id, wait)
		}
		// Sent while the database was down, with time to be answered before it came back: refused.
		if !a.sent.Before(isDown) && a.sent.Add(time.Second).Before(upAt) && !isRefusal(a) {
			t.Errorf("job %d sent at %s, while the database was down, answered %v", a.id, a.sent.Format("15:04:05.000"), a.typ)
		}
	}
	t.Logf("%d submits over %d connections: %d acknowledged, %d refused with QUEUE_ERROR (%v); and %d of a function no worker took, before the restart",
		len(answers), restartSubmitters, len(acked), len(refused), texts, len(held))
	for _, id := range held {
		acked[id] = heldAt
	}
	t.Logf("database down for %v (pg_ctl stop -m fast took %v, start %v); first refusal %v after it stopped; "+
		"%d submits refused while it was down, the slowest answered in %v; %d while it started, %d once it accepted connections",
		isUp.Sub(downAt).Round(time.Millisecond), isDown.Sub(downAt).Round(time.Millisecond), isUp.Sub(upAt).Round(time.Millisecond),
		firstRefusal.Round(time.Millisecond), refusedDown, longest.Round(time.Millisecond), refusedStarting, refusedAfter)
	t.Logf("service resumed %v after the database accepted connections again (every connection %v)",
		resumeFirst.Round(time.Millisecond), resumeAll.Round(time.Millisecond))
	if refusedDown == 0 {
		t.Error("no submit was refused while the database was down")
	}
	if resumeAll > 15*time.Second {
		t.Errorf("service resumed only %v after the database came back", resumeAll)
	}

	// Nothing acknowledged lost: with the worker stopped, every acknowledged job it has not run is a
	// row of the database (committed before the restart and kept, or after it), and then runs.
	stopWorker()
	stored, err := storedIDs(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pending, throughRestart := 0, 0
	for id, at := range acked {
		if !runs.ran(id) {
			pending++
			if at.Before(downAt) {
				throughRestart++
			}
			if !stored[id] {
				t.Errorf("job %d was acknowledged, has not run, and is not in the database", id)
			}
		}
	}
	t.Logf("%d acknowledged jobs waiting when the worker stopped (%d of them since before the restart), every one of them in the database",
		pending, throughRestart)
	if throughRestart < nHeld {
		t.Errorf("%d jobs acknowledged before the restart had not run, want at least the %d held ones", throughRestart, nHeld)
	}
	startDrainWorker(t, runs, s.addr)
	waitAllRan(t, runs, acked)
	// Nothing invented, nothing refused run.
	runs.mu.Lock()
	again := 0
	for id, n := range runs.runs {
		switch {
		case refused[id]:
			t.Errorf("job %d was refused with QUEUE_ERROR but ran", id)
		case acked[id].IsZero():
			t.Errorf("job %d ran but was never acknowledged", id)
		}
		if n > 1 {
			again++
		}
	}
	if len(runs.bad) > 0 {
		t.Errorf("%d runs of invented jobs, first %q", len(runs.bad), runs.bad[0])
	}
	runs.mu.Unlock()
	t.Logf("every one of the %d acknowledged jobs ran; %d more than once", len(acked), again)
	// The removals the outage held back are committed: no finished job is left in the table. A
	// submit refused as the database went down may have committed all the same (its answer lost
	// with the connection): such a row would run after gear's next start.
	var left map[int]bool
	testenv.WaitFor(t, "the finished jobs' rows to be removed", 30*time.Second, func() bool {
		left, err = storedIDs(dbURL)
		if err != nil {
			return false
		}
		for id := range left {
			if !refused[id] {
				return false
			}
		}
		return true
	})
	if len(left) > 0 {
		t.Logf("%d refused submits were committed all the same: %v", len(left), left)
	}
	s.stop(outageErrors...)
	// The outage is in the log, but does not flood it: the store's failures and the refused jobs
	// are logged once, then every 10 s, and so are the fleet loop's failed renewals (it tries
	// every 250 ms).
	logged, errors := map[string]int{}, 0
	for _, line := range strings.Split(s.output(), "\n") {
		for _, level := range []string{"ERROR", "WARN"} {
			if _, after, ok := strings.Cut(line, "level="+level+" msg="); ok {
				msg := after
				if strings.HasPrefix(msg, `"`) {
					msg, _, _ = strings.Cut(msg[1:], `"`)
				} else {
					msg, _, _ = strings.Cut(msg, " ")
				}
				logged[level+" "+msg]++
				if level == "ERROR" {
					errors++
				}
			}
		}
	}
	t.Logf("the server logged %v", logged)
	if limit := 2 * (1 + int(outage/(10*time.Second))); errors > limit {
		t.Errorf("the server logged %d errors in a %v outage, want at most %d", errors, outage, limit)
	}
	// Renewals fail only if one falls in the outage: certainly when the lease lapses in it.
	if n, limit := logged["WARN cannot renew the fleet lease"], 1+int(outage/(10*time.Second)); n > limit || fences && n == 0 {
		t.Errorf("the server logged %d failed lease renewals in a %v outage, want at most %d (and one if fenced)", n, outage, limit)
	}
	if fences && !strings.Contains(s.output(), `msg="fleet lease renewed again"`) {
		t.Errorf("the server did not log that its fleet lease is renewed again:\n%s", s.output())
	}
	if !strings.Contains(s.output(), `msg="background jobs are stored again"`) {
		t.Errorf("the server did not log that background jobs are stored again:\n%s", s.output())
	}
	if !strings.Contains(s.output(), `msg="store writes succeed again"`) {
		t.Errorf("the server did not log that its store writes succeed again:\n%s", s.output())
	}
}

// metricValue scrapes base's /metrics for an unlabelled metric's value (-1 when it is absent).
func metricValue(t testing.TB, base, name string) float64 {
	t.Helper()
	_, body := httpGet(t, base+"/metrics")
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %q is not a number", name, rest)
			}
			return v
		}
	}
	return -1
}
