package core

import (
	"fmt"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// A paused function keeps its jobs and takes submits, gives no worker a job, and wakes its
// sleeping workers when resumed.
func TestGates_Pause(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client, worker := connect(t, c), connect(t, c)
	worker.send(protocol.CanDo, "fn")
	if _, err := c.SetFunction("fn", func(fs *FunctionSettings) { fs.Paused = true }, "test"); err != nil {
		t.Fatal(err)
	}
	worker.send(protocol.PreSleep)
	client.send(protocol.SubmitJobBg, "fn", "", "a")
	client.expect("JOB_CREATED " + handle(1))
	worker.expect() // no NOOP for a paused function
	worker.send(protocol.GrabJob)
	worker.expect("NO_JOB")
	if fs := c.Functions(); len(fs) != 1 || !fs[0].Paused || fs[0].Queued.Normal != 1 {
		t.Fatalf("functions view of a paused function: %+v", fs)
	}
	worker.send(protocol.PreSleep)
	if _, err := c.SetFunction("fn", func(fs *FunctionSettings) { fs.Paused = false }, "test"); err != nil {
		t.Fatal(err)
	}
	worker.expect("NOOP")
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handle(1) + " fn a")
}

// At most MaxRunning jobs of a function run at once, whatever the number of workers; a job that
// ends lets the next one start and wakes a sleeper for it.
func TestGates_MaxRunning(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client := connect(t, c)
	if _, err := c.SetFunction("fn", func(fs *FunctionSettings) { fs.MaxRunning = 2 }, "test"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		client.send(protocol.SubmitJobBg, "fn", "", fmt.Sprint(i))
	}
	var workers []*fakePeer
	for range 4 {
		w := connect(t, c)
		w.send(protocol.CanDo, "fn")
		workers = append(workers, w)
	}
	for i, w := range workers {
		w.send(protocol.GrabJob)
		if i < 2 {
			w.expect(fmt.Sprintf("JOB_ASSIGN %s fn %d", handle(i+1), i))
		} else {
			w.expect("NO_JOB")
			w.send(protocol.PreSleep)
		}
	}
	workers[0].send(protocol.WorkComplete, handle(1), "")
	workers[2].expect("NOOP")
	workers[3].expect()
	workers[2].send(protocol.GrabJob)
	workers[2].expect("JOB_ASSIGN " + handle(3) + " fn 2")
	workers[3].send(protocol.GrabJob)
	workers[3].expect("NO_JOB")
}

// The rate limit: a bucket of RateBurst tokens refilled at RatePerSec; Tick wakes a sleeper when
// a token comes back.
func TestGates_Rate(t *testing.T) {
	c, clock := newTestCore(t, nil)
	client, worker := connect(t, c), connect(t, c)
	if _, err := c.SetFunction("fn", func(fs *FunctionSettings) { fs.RatePerSec, fs.RateBurst = 2, 2 }, "test"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		client.send(protocol.SubmitJobBg, "fn", "", fmt.Sprint(i))
	}
	worker.send(protocol.CanDo, "fn")
	for i := range 2 {
		worker.send(protocol.GrabJob)
		worker.expect(fmt.Sprintf("JOB_ASSIGN %s fn %d", handle(i+1), i))
		worker.send(protocol.WorkComplete, handle(i+1), "")
	}
	worker.send(protocol.GrabJob)
	worker.expect("NO_JOB")
	worker.send(protocol.PreSleep)
	next := c.Tick(recorder{}, clock.Now())
	if want := clock.Now().Add(500 * time.Millisecond); next.After(want) {
		t.Fatalf("next tick at %v, want by %v (the next token)", next, want)
	}
	clock.Advance(499 * time.Millisecond)
	c.Tick(recorder{}, clock.Now())
	worker.expect()
	clock.Advance(time.Millisecond)
	c.Tick(recorder{}, clock.Now())
	worker.expect("NOOP")
	worker.send(protocol.GrabJob)
	worker.expect("JOB_ASSIGN " + handle(3) + " fn 2")
	worker.send(protocol.GrabJob)
	worker.expect("NO_JOB")
	if _, err := c.SetFunction("fn", func(fs *FunctionSettings) { fs.RatePerSec = -1 }, "test"); err == nil {
		t.Fatal("a negative rate was accepted")
	}
}

// Settings survive a restart with a store that keeps them; start options win over stored ones.
func TestGates_Stored(t *testing.T) {
	dir := t.TempDir()
	open := func() *store.Pebble {
		st, err := store.OpenPebble(dir, store.SyncNone, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	c, _ := newTestCore(t, func(o *Options) { o.Store = st })
	if _, err := c.SetFunction("paused", func(fs *FunctionSettings) { fs.Paused = true }, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetFunction("limited", func(fs *FunctionSettings) { fs.MaxRunning, fs.MaxQueue = 3, [3]int{5, 5, 5} }, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetFunction("cleared", func(fs *FunctionSettings) { fs.Paused = true }, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetFunction("cleared", func(fs *FunctionSettings) { fs.Paused = false }, "test"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = open()
	t.Cleanup(func() { st.Close() })
	c, _ = newTestCore(t, func(o *Options) {
		o.Store = st
		o.MaxQueue = map[string]protocol.PriorityInts{"limited": {High: 9, Normal: 9, Low: 9}}
	})
	got := map[string]protocol.FunctionInfo{}
	for _, f := range c.Functions() {
		got[f.Name] = f
	}
	if !got["paused"].Paused || got["limited"].MaxRunning != 3 || got["limited"].MaxQueue.High != 9 {
		t.Fatalf("after the restart: %+v", got)
	}
	if _, ok := got["cleared"]; ok {
		t.Fatalf("a function whose settings went back to the defaults is still kept: %+v", got["cleared"])
	}
}

// WORK_CANCEL goes only to a worker that asked for it; the other's late result is dropped quietly.
func TestCore_CancelRunningTellsOptedInWorker(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client, aware, plain := connect(t, c), connect(t, c), connect(t, c)
	aware.send(protocol.OptionReq, OptionCancellation)
	aware.expect("OPTION_RES cancellation")
	for _, w := range []*fakePeer{aware, plain} {
		w.send(protocol.CanDo, "fn")
		client.send(protocol.SubmitJob, "fn", "", "x")
		w.send(protocol.GrabJob)
		w.take()
	}
	client.take()
	for i, w := range []*fakePeer{aware, plain} {
		if err := c.CancelJob(recorder{}, handle(i+1), "test"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			w.expect("WORK_CANCEL " + handle(1))
		} else {
			w.expect()
		}
		w.send(protocol.WorkComplete, handle(i+1), "late")
		w.expect()
	}
	client.expect("WORK_FAIL "+handle(1), "WORK_FAIL "+handle(2))
}

// The new admin commands answer bad input with an ERR line and change nothing.
func TestAdmin_GateAndDeadCommandsRefuseBadInput(t *testing.T) {
	c, _ := newTestCore(t, nil)
	admin := connect(t, c)
	for line, want := range map[string]string{
		"pause":                     "ERR INVALID_ARGUMENTS Usage:+pause+FUNCTION\r\n",
		"resume a b":                "ERR INVALID_ARGUMENTS Usage:+resume+FUNCTION\r\n",
		"limit fn 3":                "ERR INVALID_ARGUMENTS Usage:+limit+FUNCTION+MAX_RUNNING+RATE_PER_SECOND+[BURST]\r\n",
		"limit fn x 1":              "ERR INVALID_ARGUMENTS Usage:+limit+FUNCTION+MAX_RUNNING+RATE_PER_SECOND+[BURST]\r\n",
		"limit fn -1 1":             "ERR INVALID_ARGUMENTS max+running+must+be+0+(no+limit)+or+more\r\n",
		"limit fn 1 NaN":            "ERR INVALID_ARGUMENTS rate+must+be+0+(no+limit)+or+a+positive+number+of+jobs+per+second\r\n",
		"retry fn 3 1":              "ERR INVALID_ARGUMENTS Usage:+retry+FUNCTION+ATTEMPTS+BASE_SECONDS+CAP_SECONDS+[JITTER]\r\n",
		"retry fn 3 1 10 2":         "ERR INVALID_ARGUMENTS retry+jitter+must+be+from+0+to+1\r\n",
		"dead retry H:nope:1":       "ERR UNKNOWN_JOB\r\n",
		"dead delete":               "ERR INVALID_ARGUMENTS Usage:+dead+delete+HANDLE|function+FUNCTION\r\n",
		"dead delete function none": "OK 0\n",
		"dead list":                 ".\n",
	} {
		reply, _ := c.Admin(recorder{}, admin.p, []byte(line))
		if string(reply) != want {
			t.Errorf("%q: %q, want %q", line, reply, want)
		}
	}
	if fs := c.Functions(); len(fs) != 0 && (fs[0].MaxRunning != 0 || fs[0].RatePerSec != 0 || fs[0].Paused) {
		t.Errorf("refused commands changed a function: %+v", fs)
	}
}

// A resume makes a whole queue runnable at once: one sleeper is woken per queued job (as many as
// the run limit lets start), not one for the queue, so the workers drain it together.
func TestGates_ResumeWakesASleeperPerJob(t *testing.T) {
	for _, tt := range []struct {
		name       string
		maxRunning int
		woken      int
	}{{"unlimited", 0, 3}, {"max_running_2", 2, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestCore(t, nil)
			client := connect(t, c)
			if _, err := c.SetFunction("fn", func(fs *FunctionSettings) { fs.Paused, fs.MaxRunning = true, tt.maxRunning }, "test"); err != nil {
				t.Fatal(err)
			}
			workers := sleepers(t, c, "fn", 5)
			for i := range 3 {
				client.send(protocol.SubmitJobBg, "fn", "", fmt.Sprint(i))
				client.expect("JOB_CREATED " + handle(i+1))
			}
			if _, err := c.SetFunction("fn", func(fs *FunctionSettings) { fs.Paused = false }, "test"); err != nil {
				t.Fatal(err)
			}
			if woken := countNoops(workers); woken != tt.woken {
				t.Errorf("resume woke %d sleepers, want %d", woken, tt.woken)
			}
		})
	}
}

// A lifted fence wakes a sleeper per job queued meanwhile, too.
func TestFence_LiftWakesASleeperPerJob(t *testing.T) {
	c, _ := newTestCore(t, nil)
	client := connect(t, c)
	workers := sleepers(t, c, "fn", 4)
	c.SetFenced(true, "test")
	for i := range 2 {
		client.send(protocol.SubmitJob, "fn", "", fmt.Sprint(i)) // foreground: accepted while fenced
		client.expect("JOB_CREATED " + handle(i+1))
	}
	c.SetFenced(false, "")
	if woken := countNoops(workers); woken != 2 {
		t.Errorf("the lifted fence woke %d sleepers, want 2", woken)
	}
}

// sleepers connects n workers of fn that have gone to sleep (PRE_SLEEP).
func sleepers(t *testing.T, c *Core, fn string, n int) []*fakePeer {
	t.Helper()
	var workers []*fakePeer
	for range n {
		w := connect(t, c)
		w.send(protocol.CanDo, fn)
		w.send(protocol.PreSleep)
		workers = append(workers, w)
	}
	return workers
}

// countNoops is how many of the peers got a NOOP (and nothing else) since last asked.
func countNoops(peers []*fakePeer) int {
	n := 0
	for _, p := range peers {
		got := p.take()
		if len(got) == 1 && got[0].typ == protocol.Noop {
			n++
		} else if len(got) != 0 {
			p.t.Fatalf("peer %d got %v, want a NOOP or nothing", p.p.ID, got)
		}
	}
	return n
}
