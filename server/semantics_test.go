package server

// Job semantics across connections: priorities, coalescing, wake-ups, lost workers and clients,
// CAN_DO_TIMEOUT, queue limits.

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// grabData grabs n jobs with GRAB_JOB and returns "function:data" of each.
func grabData(w *testPeer, n int) []string {
	w.tb.Helper()
	var got []string
	for range n {
		w.send(protocol.GrabJob)
		p := w.expectType(protocol.JobAssign)
		got = append(got, p.args[1]+":"+p.args[2])
	}
	w.send(protocol.GrabJob)
	w.expect(protocol.NoJob)
	return got
}

func TestQueue_Priority(t *testing.T) {
	cases := []struct {
		name            string
		high, norm, low protocol.Type
	}{
		{"foreground", protocol.SubmitJobHigh, protocol.SubmitJob, protocol.SubmitJobLow},
		{"background", protocol.SubmitJobHighBg, protocol.SubmitJobBg, protocol.SubmitJobLowBg},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, nil)
			addr := addrOf(t, s)
			worker, client := mustConnect(t, addr), mustConnect(t, addr)
			for _, sub := range []struct {
				typ  protocol.Type
				data string
			}{
				{tc.low, "L1"}, {tc.norm, "N1"}, {tc.high, "H1"},
				{tc.low, "L2"}, {tc.norm, "N2"}, {tc.high, "H2"}, {tc.norm, "N3"},
			} {
				client.submit(sub.typ, "fn", "", sub.data)
			}
			worker.send(protocol.CanDo, "fn")
			got := grabData(worker, 7)
			want := []string{"fn:H1", "fn:H2", "fn:N1", "fn:N2", "fn:N3", "fn:L1", "fn:L2"}
			if !slices.Equal(got, want) {
				t.Fatalf("grab order %q, want %q", got, want)
			}
		})
	}
}

func TestQueue_GlobalPriority(t *testing.T) {
	// As gearmand 2.0: all HIGH jobs of any of the worker's functions come before any NORMAL one, all
	// NORMAL before LOW; each function stays FIFO within a priority.
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	worker, client := mustConnect(t, addr), mustConnect(t, addr)
	for _, sub := range []struct {
		typ      protocol.Type
		fn, data string
	}{
		{protocol.SubmitJobLowBg, "a", "low1"},
		{protocol.SubmitJobBg, "a", "norm1"},
		{protocol.SubmitJobBg, "b", "norm1"},
		{protocol.SubmitJobLowBg, "b", "low1"},
		{protocol.SubmitJobHighBg, "b", "high1"},
		{protocol.SubmitJobBg, "a", "norm2"},
		{protocol.SubmitJobHighBg, "a", "high1"},
		{protocol.SubmitJobHighBg, "b", "high2"},
		{protocol.SubmitJobBg, "c", "norm1"}, // not the worker's: never handed out
	} {
		client.submit(sub.typ, sub.fn, "", sub.data)
	}
	worker.send(protocol.CanDo, "a")
	worker.send(protocol.CanDo, "b")
	got := grabData(worker, 8)

	tiers := []struct {
		name string
		want []string
	}{
		{"high", []string{"a:high1", "b:high1", "b:high2"}},
		{"normal", []string{"a:norm1", "a:norm2", "b:norm1"}},
		{"low", []string{"a:low1", "b:low1"}},
	}
	rest := got
	for _, tier := range tiers {
		part := slices.Clone(rest[:len(tier.want)])
		rest = rest[len(tier.want):]
		sorted := slices.Clone(part)
		slices.Sort(sorted)
		if !slices.Equal(sorted, tier.want) {
			t.Fatalf("%s tier got %q (whole order %q), want %q in some order", tier.name, part, got, tier.want)
		}
		for _, fn := range []string{"a:", "b:"} {
			var seq []string
			for _, g := range part {
				if strings.HasPrefix(g, fn) {
					seq = append(seq, g)
				}
			}
			if !slices.IsSorted(seq) {
				t.Fatalf("%s tier of %s not FIFO: %q", tier.name, fn, seq)
			}
		}
	}
}

func TestQueue_Background(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	client, admin := mustConnect(t, addr), mustConnect(t, addr)
	h := client.submit(protocol.SubmitJobBg, "bg", "", "data")
	client.close()
	// The submitter is gone; the job waits for a worker all the same.
	checkDisconnected(t, s, client)
	expectAdminList(t, admin, "status", "bg\t1\t0\t0\n.\n")
	worker := mustConnect(t, addr)
	worker.send(protocol.CanDo, "bg")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "bg", "data")
	worker.send(protocol.WorkData, h, "nobody listens")
	worker.send(protocol.WorkComplete, h, "done")
	worker.expectQuiet()
	expectAdminList(t, admin, "status", "bg\t0\t0\t1\n.\n")
}

func TestCoalesce(t *testing.T) {
	t.Run("two clients share one job and every WORK packet", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, c1, c2 := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		h := c1.submit(protocol.SubmitJob, "fn", "u1", "first")
		if h2 := c2.submit(protocol.SubmitJob, "fn", "u1", "second payload ignored"); h2 != h {
			t.Fatalf("second submit got %q, want the same handle %q", h2, h)
		}
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJobUniq)
		worker.expect(protocol.JobAssignUniq, h, "fn", "u1", "first")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.NoJob)
		worker.send(protocol.WorkData, h, "d")
		worker.send(protocol.WorkWarning, h, "w")
		worker.send(protocol.WorkStatus, h, "1", "2")
		worker.send(protocol.WorkComplete, h, "r")
		for _, c := range []*testPeer{c1, c2} {
			c.expect(protocol.WorkData, h, "d")
			c.expect(protocol.WorkWarning, h, "w")
			c.expect(protocol.WorkStatus, h, "1", "2")
			c.expect(protocol.WorkComplete, h, "r")
			c.expectQuiet()
		}
	})

	t.Run("same client twice gets everything twice", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, c := mustConnect(t, addr), mustConnect(t, addr)
		h := c.submit(protocol.SubmitJob, "fn", "u1", "x")
		if h2 := c.submit(protocol.SubmitJob, "fn", "u1", "x"); h2 != h {
			t.Fatalf("second submit got %q, want %q", h2, h)
		}
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h, "fn", "x")
		worker.send(protocol.WorkComplete, h, "r")
		c.expect(protocol.WorkComplete, h, "r")
		c.expect(protocol.WorkComplete, h, "r")
		c.expectQuiet()
	})

	t.Run("onto a running job", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, c1, c2 := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		h := c1.submit(protocol.SubmitJob, "fn", "u1", "x")
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		worker.send(protocol.WorkData, h, "early")
		c1.expect(protocol.WorkData, h, "early")
		if h2 := c2.submit(protocol.SubmitJob, "fn", "u1", "x"); h2 != h {
			t.Fatalf("submit onto a running job got %q, want %q", h2, h)
		}
		worker.send(protocol.WorkComplete, h, "r")
		c1.expect(protocol.WorkComplete, h, "r")
		c2.expect(protocol.WorkComplete, h, "r") // joined after WORK_DATA: gets only what follows
		worker.send(protocol.GrabJob)
		worker.expect(protocol.NoJob)
	})

	cases := []struct {
		name     string
		first    [3]string // function, unique, data
		second   [3]string
		coalesce bool
	}{
		{"dash with identical data", [3]string{"fn", "-", "same"}, [3]string{"fn", "-", "same"}, true},
		{"dash with different data", [3]string{"fn", "-", "one"}, [3]string{"fn", "-", "two"}, false},
		{"dash data versus literal unique", [3]string{"fn", "-", "x"}, [3]string{"fn", "x", "x"}, false},
		{"empty unique", [3]string{"fn", "", "same"}, [3]string{"fn", "", "same"}, false},
		{"different functions", [3]string{"fa", "u", "x"}, [3]string{"fb", "u", "x"}, false},
		{"unique of 64 bytes", [3]string{"fn", strings.Repeat("u", 64), "x"}, [3]string{"fn", strings.Repeat("u", 64), "y"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, nil)
			c := mustConnect(t, addrOf(t, s))
			h1 := c.submit(protocol.SubmitJobBg, tc.first[0], tc.first[1], tc.first[2])
			h2 := c.submit(protocol.SubmitJobBg, tc.second[0], tc.second[1], tc.second[2])
			if h1 != handle(1) {
				t.Fatalf("first handle %q, want %q", h1, handle(1))
			}
			want := handle(2)
			if tc.coalesce {
				want = h1
			}
			if h2 != want {
				t.Fatalf("second handle %q, want %q", h2, want)
			}
		})
	}

	t.Run("background onto foreground keeps the job when the client leaves", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		fg, bg, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		h := fg.submit(protocol.SubmitJob, "fn", "u", "fg-data")
		if h2 := bg.submit(protocol.SubmitJobBg, "fn", "u", "bg-data"); h2 != h {
			t.Fatalf("background submit got %q, want %q", h2, h)
		}
		fg.close()
		checkDisconnected(t, s, fg)
		expectAdminList(t, admin, "status", "fn\t1\t0\t0\n.\n")
		worker := mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h, "fn", "fg-data")
		worker.send(protocol.WorkComplete, h, "r")
		worker.expectQuiet()
		bg.expectQuiet() // background submitters get no result
	})
}

func TestSubmit_UniqueTooLarge(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	c, admin := mustConnect(t, addr), mustConnect(t, addr)
	for _, typ := range []protocol.Type{protocol.SubmitJob, protocol.SubmitJobBg, protocol.SubmitJobHigh} {
		c.send(typ, "fn", strings.Repeat("u", 65), "x")
		c.expect(protocol.Error, errArgumentTooLarge, "Unique value too large")
	}
	c.send(protocol.SubmitJobEpoch, "fn", strings.Repeat("u", 65), "0", "x")
	c.expectError(errArgumentTooLarge)
	c.send(protocol.SubmitReduceJob, "fn", strings.Repeat("u", 65), "r", "", "x")
	c.expectError(errArgumentTooLarge)
	expectAdminList(t, admin, "status", ".\n")
	c.submit(protocol.SubmitJobBg, "fn", strings.Repeat("u", 64), "x")

	c.send(protocol.SubmitJob, strings.Repeat("f", protocol.MaxFunctionSize+1), "", "x")
	c.expect(protocol.Error, errArgumentTooLarge, "Function name too large")
	c.submit(protocol.SubmitJobBg, strings.Repeat("f", protocol.MaxFunctionSize), "", "x")
}

func TestWake(t *testing.T) {
	cases := []struct {
		name   string
		wakeup int
		noops  int // NOOPs among three sleeping workers of fn for one job
	}{
		{"one per job (default)", WakeOnePerJob, 1},
		{"all", WakeAll, 3},
		{"limit 2", 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, func(o *Options) { o.WorkerWakeup = tc.wakeup })
			addr := addrOf(t, s)
			var workers []*testPeer
			for range 3 {
				w := mustConnect(t, addr)
				w.send(protocol.CanDo, "fn")
				w.send(protocol.PreSleep)
				w.expectQuiet()
				workers = append(workers, w)
			}
			other := mustConnect(t, addr)
			other.send(protocol.CanDo, "other")
			other.send(protocol.PreSleep)
			other.expectQuiet()
			client := mustConnect(t, addr)

			woken := map[int]bool{}
			countNoops := func() int {
				n := 0
				for i, w := range workers {
					for _, p := range w.pending() {
						if p.typ != protocol.Noop {
							t.Fatalf("worker %d got %v", i, p)
						}
						if woken[i] {
							t.Fatalf("worker %d woken twice in one sleep", i)
						}
						woken[i] = true
						n++
					}
				}
				return n
			}
			client.submit(protocol.SubmitJobBg, "fn", "", "1")
			if n := countNoops(); n != tc.noops {
				t.Fatalf("first job woke %d workers, want %d", n, tc.noops)
			}
			other.expectQuiet() // a worker of another function sleeps on

			if tc.wakeup == WakeOnePerJob {
				// The next job wakes the next sleeper, not the one already woken.
				client.submit(protocol.SubmitJobBg, "fn", "", "2")
				if n := countNoops(); n != 1 || len(woken) != 2 {
					t.Fatalf("second job woke %d more workers (woken so far %v), want one new one", n, woken)
				}
			}
		})
	}
}

func TestWorkerLost(t *testing.T) {
	t.Run("job requeued at the front for another worker", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		client, w1, w2, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		ha := client.submit(protocol.SubmitJob, "fn", "", "A")
		hb := client.submit(protocol.SubmitJob, "fn", "", "B")
		w1.send(protocol.CanDo, "fn")
		w1.send(protocol.GrabJob)
		w1.expect(protocol.JobAssign, ha, "fn", "A")
		w1.send(protocol.WorkStatus, ha, "1", "2")
		client.expect(protocol.WorkStatus, ha, "1", "2")
		w2.send(protocol.CanDo, "fn")
		w2.send(protocol.PreSleep)
		w2.expect(protocol.Noop) // B waits
		expectAdminList(t, admin, "show jobs", ha+"\t0\t0\t0\n"+hb+"\t0\t0\t1\n.\n")

		w1.close()
		checkAdmin(t, admin, "show jobs", ha+"\t1\t0\t1\n"+hb+"\t0\t0\t1\n.\n")
		client.send(protocol.GetStatus, ha)
		client.expect(protocol.StatusRes, ha, "1", "0", "0", "0") // progress reset

		w2.send(protocol.GrabJob)
		w2.expect(protocol.JobAssign, ha, "fn", "A") // the lost job first, same handle
		w2.send(protocol.WorkComplete, ha, "done by w2")
		client.expect(protocol.WorkComplete, ha, "done by w2")
		w2.send(protocol.GrabJob)
		w2.expect(protocol.JobAssign, hb, "fn", "B")
	})

	t.Run("a sleeping worker is woken for the requeued job", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		client, w1, w2 := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		h := client.submit(protocol.SubmitJob, "fn", "", "A")
		w1.send(protocol.CanDo, "fn")
		w1.send(protocol.GrabJob)
		w1.expectType(protocol.JobAssign)
		w2.send(protocol.CanDo, "fn")
		w2.send(protocol.PreSleep)
		w2.expectQuiet()
		w1.close()
		w2.expect(protocol.Noop)
		w2.send(protocol.GrabJob)
		w2.expect(protocol.JobAssign, h, "fn", "A")
	})

	cases := []struct {
		name       string
		exceptions bool
		want       func(h string) packet
	}{
		{"JobRetries reached: WORK_FAIL", false, func(h string) packet {
			return packet{protocol.WorkFail, []string{h}}
		}},
		{"JobRetries reached with exceptions on: still WORK_FAIL, as gearmand", true, func(h string) packet {
			return packet{protocol.WorkFail, []string{h}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, func(o *Options) { o.JobRetries = 2 })
			addr := addrOf(t, s)
			client, admin := mustConnect(t, addr), mustConnect(t, addr)
			if tc.exceptions {
				client.send(protocol.OptionReq, "exceptions")
				client.expect(protocol.OptionRes, "exceptions")
			}
			h := client.submit(protocol.SubmitJob, "fn", "", "A")
			for attempt := 1; attempt <= 2; attempt++ {
				w := mustConnect(t, addr)
				w.send(protocol.CanDo, "fn")
				w.send(protocol.GrabJob)
				w.expect(protocol.JobAssign, h, "fn", "A")
				w.close()
				if attempt == 1 {
					checkAdmin(t, admin, "show jobs", h+"\t1\t0\t1\n.\n")
					client.expectQuiet()
				}
			}
			want := tc.want(h)
			client.expect(want.typ, want.args...)
			expectAdminList(t, admin, "show jobs", ".\n")
			w := mustConnect(t, addr)
			w.send(protocol.CanDo, "fn")
			w.send(protocol.GrabJob)
			w.expect(protocol.NoJob)
		})
	}
}

func TestClientLost(t *testing.T) {
	t.Run("queued foreground jobs go, background jobs stay", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		client, admin := mustConnect(t, addr), mustConnect(t, addr)
		client.submit(protocol.SubmitJob, "fn", "", "fg1")
		hb := client.submit(protocol.SubmitJobBg, "fn", "", "bg")
		client.submit(protocol.SubmitJobHigh, "fn", "u", "fg2")
		expectAdminList(t, admin, "status", "fn\t3\t0\t0\n.\n")
		client.close()
		checkAdmin(t, admin, "status", "fn\t1\t0\t0\n.\n")
		expectAdminList(t, admin, "show unique jobs", ".\n")
		worker := mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, hb, "fn", "bg")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.NoJob)
	})

	t.Run("a running job finishes, its result goes nowhere", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		client, worker, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		h := client.submit(protocol.SubmitJob, "fn", "", "x")
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		client.close()
		checkDisconnected(t, s, client)
		expectAdminList(t, admin, "status", "fn\t1\t1\t1\n.\n")
		worker.send(protocol.WorkData, h, "d")
		worker.send(protocol.WorkComplete, h, "r")
		worker.expectQuiet()
		expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
	})

	t.Run("a running job whose client left is not requeued when its worker goes", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		client, worker, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		client.submit(protocol.SubmitJob, "fn", "", "x")
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		client.close()
		checkDisconnected(t, s, client)
		worker.close()
		checkDisconnected(t, s, worker)
		expectAdminList(t, admin, "show jobs", ".\n")
		expectAdminList(t, admin, "status", "fn\t0\t0\t0\n.\n")
	})

	t.Run("a coalesced job stays while one client waits", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		c1, c2, worker := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		h := c1.submit(protocol.SubmitJob, "fn", "u", "x")
		c2.submit(protocol.SubmitJob, "fn", "u", "x")
		c1.close()
		checkDisconnected(t, s, c1)
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h, "fn", "x")
		worker.send(protocol.WorkComplete, h, "r")
		c2.expect(protocol.WorkComplete, h, "r")
	})
}

func TestCanDoTimeout(t *testing.T) {
	cases := []struct {
		name       string
		timeout    string        // CAN_DO_TIMEOUT argument, milliseconds
		quiet      time.Duration // clock advance that must not expire the job
		expire     time.Duration // further advance that must
		exceptions bool
	}{
		{"1 ms is raised to 1 s", "1", 900 * time.Millisecond, 200 * time.Millisecond, false},
		{"2500 ms", "2500", 2400 * time.Millisecond, 200 * time.Millisecond, false},
		{"exceptions client gets WORK_EXCEPTION", "1000", 900 * time.Millisecond, 200 * time.Millisecond, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			s := mustStartServer(t, withFakeClock(clock))
			addr := addrOf(t, s)
			worker, client, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
			if tc.exceptions {
				client.send(protocol.OptionReq, "exceptions")
				client.expect(protocol.OptionRes, "exceptions")
			}
			worker.send(protocol.CanDoTimeout, "fn", tc.timeout)
			h := client.submit(protocol.SubmitJob, "fn", "", "x")
			worker.send(protocol.GrabJob)
			worker.expect(protocol.JobAssign, h, "fn", "x")

			clock.Advance(tc.quiet)
			time.Sleep(250 * time.Millisecond) // two schedule-loop rounds: must not expire
			client.expectQuiet()
			client.send(protocol.GetStatus, h)
			client.expect(protocol.StatusRes, h, "1", "1", "0", "0")

			clock.Advance(tc.expire)
			client.expect(protocol.WorkFail, h) // with or without exceptions, as gearmand
			expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
			// The worker is not told; its late result is dropped without an ERROR.
			worker.send(protocol.WorkData, h, "late")
			worker.send(protocol.WorkComplete, h, "late")
			worker.expectQuiet()
			client.expectQuiet()
			worker.send(protocol.GrabJob)
			worker.expect(protocol.NoJob)
		})
	}

	t.Run("a job completed in time does not expire", func(t *testing.T) {
		clock := newFakeClock()
		s := mustStartServer(t, withFakeClock(clock))
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDoTimeout, "fn", "1000")
		h1 := client.submit(protocol.SubmitJob, "fn", "", "1")
		h2 := client.submit(protocol.SubmitJob, "fn", "", "2")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h1, "fn", "1")
		worker.send(protocol.WorkComplete, h1, "ok")
		client.expect(protocol.WorkComplete, h1, "ok")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h2, "fn", "2")
		clock.Advance(1500 * time.Millisecond) // h1's deadline passes; h2's does too
		client.expect(protocol.WorkFail, h2)
		client.expectQuiet()
	})

	t.Run("plain CAN_DO has no timeout", func(t *testing.T) {
		clock := newFakeClock()
		s := mustStartServer(t, withFakeClock(clock))
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDoTimeout, "fn", "1000")
		worker.send(protocol.CanDo, "fn") // re-registering without a timeout clears it
		h := client.submit(protocol.SubmitJob, "fn", "", "x")
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		clock.Advance(time.Hour)
		time.Sleep(250 * time.Millisecond)
		client.expectQuiet()
		worker.send(protocol.WorkComplete, h, "ok")
		client.expect(protocol.WorkComplete, h, "ok")
	})
}

func TestMaxQueue(t *testing.T) {
	t.Run("one limit for all priorities", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		c, admin, worker := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		if got := admin.admin("maxqueue fn 2"); got != "OK\r\n" {
			t.Fatalf("maxqueue = %q", got)
		}
		h := c.submit(protocol.SubmitJob, "fn", "u1", "1")
		c.submit(protocol.SubmitJobBg, "fn", "", "2")
		for _, typ := range []protocol.Type{protocol.SubmitJob, protocol.SubmitJobHighBg, protocol.SubmitJobLow} {
			c.send(typ, "fn", "", "3")
			c.expect(protocol.Error, errQueueError, "Job queue is full")
		}
		// A coalescing submit adds no job, so it is accepted when the queue is full.
		if h2 := c.submit(protocol.SubmitJob, "fn", "u1", "1"); h2 != h {
			t.Fatalf("coalescing submit got %q, want %q", h2, h)
		}
		expectAdminList(t, admin, "status", "fn\t2\t0\t0\n.\n")

		// Running jobs count too (TOTAL); finishing one frees a slot.
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		c.send(protocol.SubmitJobBg, "fn", "", "3")
		c.expectError(errQueueError)
		worker.send(protocol.WorkComplete, h, "")
		c.expect(protocol.WorkComplete, h, "")
		c.expect(protocol.WorkComplete, h, "")
		c.submit(protocol.SubmitJobBg, "fn", "", "3")

		if got := admin.admin("maxqueue fn 0"); got != "OK\r\n" {
			t.Fatalf("maxqueue = %q", got)
		}
		for range 5 {
			c.submit(protocol.SubmitJobBg, "fn", "", "unlimited")
		}
	})

	t.Run("per priority", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		c, admin := mustConnect(t, addr), mustConnect(t, addr)
		if got := admin.admin("maxqueue fn 1 3 0"); got != "OK\r\n" {
			t.Fatalf("maxqueue = %q", got)
		}
		c.submit(protocol.SubmitJobHighBg, "fn", "", "h1")
		c.send(protocol.SubmitJobHighBg, "fn", "", "h2")
		c.expectError(errQueueError)
		c.submit(protocol.SubmitJobBg, "fn", "", "n1")
		c.submit(protocol.SubmitJobBg, "fn", "", "n2")
		c.send(protocol.SubmitJobBg, "fn", "", "n3")
		c.expectError(errQueueError)
		for range 3 {
			c.submit(protocol.SubmitJobLowBg, "fn", "", "low: unlimited")
		}
		expectAdminList(t, admin, "prioritystatus", "fn\t1\t2\t3\t0\n.\n")
	})
}

// A woken worker that never asks for a job (its process is stopped or hung, or a forked child that
// held the socket was killed while the parent keeps it open) must not stall its function under
// wake-one: after WakeTimeout the next sleeper is woken, and the unresponsive one is passed over
// for later jobs until it grabs again.
func TestWake_UnresponsiveSleeperIsPassedOver(t *testing.T) {
	clock := newFakeClock()
	s := mustStartServer(t, withFakeClock(clock))
	addr := addrOf(t, s)
	hung, live := mustConnect(t, addr), mustConnect(t, addr)
	for _, w := range []*testPeer{hung, live} {
		w.send(protocol.CanDo, "fn")
		w.send(protocol.PreSleep)
		w.expectQuiet()
	}
	client := mustConnect(t, addr)
	h1 := client.submit(protocol.SubmitJobBg, "fn", "", "one")
	hung.expect(protocol.Noop) // first in the rotation; it never acts on it
	live.expectQuiet()

	clock.Advance(s.opts.WakeTimeout - time.Millisecond)
	live.expectQuiet() // not yet: the woken worker still has time
	clock.Advance(time.Millisecond)
	live.expect(protocol.Noop)
	live.send(protocol.GrabJob)
	live.expect(protocol.JobAssign, h1, "fn", "one")
	live.send(protocol.WorkComplete, h1, "")
	live.send(protocol.PreSleep)
	live.expectQuiet()

	// The hung worker sleeps again without ever grabbing (its NOOP was never read): the rotation
	// points at it, but the next job wakes the live worker at once.
	hung.send(protocol.PreSleep)
	hung.expectQuiet()
	h2 := client.submit(protocol.SubmitJobBg, "fn", "", "two")
	live.expect(protocol.Noop)
	hung.expectQuiet()
	live.send(protocol.GrabJob)
	live.expect(protocol.JobAssign, h2, "fn", "two")
	live.send(protocol.WorkComplete, h2, "")

	// Once it grabs, it takes its turn again.
	hung.send(protocol.GrabJob)
	hung.expect(protocol.NoJob)
	hung.send(protocol.PreSleep)
	live.send(protocol.PreSleep)
	hung.expectQuiet()
	client.submit(protocol.SubmitJobBg, "fn", "", "three")
	n := len(hung.pending()) + len(live.pending())
	if n != 1 {
		t.Fatalf("the third job woke %d workers, want 1", n)
	}
}

// With no other sleeper to wake, the timeout changes nothing: the one woken worker keeps its NOOP
// and is not sent another.
func TestWake_UnresponsiveSoleSleeper(t *testing.T) {
	clock := newFakeClock()
	s := mustStartServer(t, withFakeClock(clock))
	addr := addrOf(t, s)
	w := mustConnect(t, addr)
	w.send(protocol.CanDo, "fn")
	w.send(protocol.PreSleep)
	w.expectQuiet()
	client := mustConnect(t, addr)
	h := client.submit(protocol.SubmitJobBg, "fn", "", "x")
	w.expect(protocol.Noop)
	clock.Advance(3 * s.opts.WakeTimeout)
	w.expectQuiet()
	w.send(protocol.GrabJob)
	w.expect(protocol.JobAssign, h, "fn", "x")
}
