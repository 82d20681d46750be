package server

// One test per binary packet type (or family), over real TCP, asserting the exact arguments of every
// reply.

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

func TestPacket_Submit(t *testing.T) {
	cases := []struct {
		name       string
		typ        protocol.Type
		background bool
		prioStatus string // prioritystatus line while the job waits
	}{
		{"SUBMIT_JOB", protocol.SubmitJob, false, "fn\t0\t1\t0\t1\n"},
		{"SUBMIT_JOB_BG", protocol.SubmitJobBg, true, "fn\t0\t1\t0\t1\n"},
		{"SUBMIT_JOB_HIGH", protocol.SubmitJobHigh, false, "fn\t1\t0\t0\t1\n"},
		{"SUBMIT_JOB_HIGH_BG", protocol.SubmitJobHighBg, true, "fn\t1\t0\t0\t1\n"},
		{"SUBMIT_JOB_LOW", protocol.SubmitJobLow, false, "fn\t0\t0\t1\t1\n"},
		{"SUBMIT_JOB_LOW_BG", protocol.SubmitJobLowBg, true, "fn\t0\t0\t1\t1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, func(o *Options) { o.HandlePrefix = "H:custom-prefix" })
			addr := addrOf(t, s)
			worker, client, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
			worker.send(protocol.CanDo, "fn")
			worker.expectQuiet()

			data := "pay\x00load\xff"
			client.send(tc.typ, "fn", "uniq", data)
			client.expect(protocol.JobCreated, "H:custom-prefix:1")
			expectAdminList(t, admin, "prioritystatus", tc.prioStatus+".\n")
			expectAdminList(t, admin, "status", "fn\t1\t0\t1\n.\n")

			worker.send(protocol.GrabJob)
			worker.expect(protocol.JobAssign, "H:custom-prefix:1", "fn", data)
			expectAdminList(t, admin, "status", "fn\t1\t1\t1\n.\n")
			worker.send(protocol.WorkComplete, "H:custom-prefix:1", "done\x00")
			worker.expectQuiet()
			if tc.background {
				client.expectQuiet()
			} else {
				client.expect(protocol.WorkComplete, "H:custom-prefix:1", "done\x00")
			}
			expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
		})
	}
}

func TestPacket_HandlePrefixDefault(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gear"
	}
	s := mustStartServer(t, func(o *Options) { o.HandlePrefix = DefaultOptions().HandlePrefix })
	client := mustConnect(t, addrOf(t, s))
	client.send(protocol.SubmitJobBg, "fn", "", "x")
	client.expect(protocol.JobCreated, "H:"+host+":1")
	client.send(protocol.SubmitJobBg, "fn", "", "x")
	client.expect(protocol.JobCreated, "H:"+host+":2")
}

func TestPacket_SubmitJobEpoch(t *testing.T) {
	t.Run("runs at its time and wakes a sleeping worker", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "ep")
		worker.send(protocol.PreSleep)
		worker.expectQuiet()

		// Due within the next second, on the real clock and the real timer.
		when := strconv.FormatInt(time.Now().Unix()+1, 10)
		h := client.submit(protocol.SubmitJobEpoch, "ep", "e1", when+"\x00data")
		if h != handle(1) {
			t.Fatalf("handle %q, want %q", h, handle(1))
		}
		worker.expect(protocol.Noop) // within readTimeout (3 s)
		worker.send(protocol.GrabJobUniq)
		worker.expect(protocol.JobAssignUniq, h, "ep", "e1", "data")
		worker.send(protocol.WorkComplete, h, "")
		worker.expectQuiet()
		client.expectQuiet() // epoch jobs are background
	})

	t.Run("not runnable before its time", func(t *testing.T) {
		clock := newFakeClock()
		s := mustStartServer(t, withFakeClock(clock))
		addr := addrOf(t, s)
		worker, client, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "ep")
		when := strconv.FormatInt(clock.Now().Add(time.Hour).Unix(), 10)
		h := client.submit(protocol.SubmitJobEpoch, "ep", "", when+"\x00data")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.NoJob)
		worker.send(protocol.PreSleep)
		worker.expectQuiet()
		expectAdminList(t, admin, "status", "ep\t1\t0\t1\n.\n")
		expectAdminList(t, admin, "prioritystatus", "ep\t0\t1\t0\t1\n.\n")
		client.send(protocol.GetStatus, h)
		client.expect(protocol.StatusRes, h, "1", "0", "0", "0")

		clock.Advance(59 * time.Minute)
		time.Sleep(250 * time.Millisecond) // two schedule-loop rounds: still not due
		worker.expectQuiet()

		clock.Advance(2 * time.Minute)
		worker.expect(protocol.Noop)
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h, "ep", "data")
	})

	t.Run("in the past runs at once", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "ep")
		h := client.submit(protocol.SubmitJobEpoch, "ep", "", "0\x00old")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h, "ep", "old")
	})

	t.Run("bad time", func(t *testing.T) {
		s := mustStartServer(t, nil)
		client := mustConnect(t, addrOf(t, s))
		for _, when := range []string{"soon", "-5", ""} {
			client.send(protocol.SubmitJobEpoch, "ep", "", when, "data")
			client.expectError(errInvalidArgument)
		}
	})
}

func TestPacket_SubmitReduceJob(t *testing.T) {
	cases := []struct {
		name       string
		typ        protocol.Type
		background bool
	}{
		{"SUBMIT_REDUCE_JOB", protocol.SubmitReduceJob, false},
		{"SUBMIT_REDUCE_JOB_BACKGROUND", protocol.SubmitReduceJobBackground, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, nil)
			addr := addrOf(t, s)
			worker, client := mustConnect(t, addr), mustConnect(t, addr)
			worker.send(protocol.CanDo, "mapper")
			client.send(tc.typ, "mapper", "u-1", "reducer-fn", "", "a\x00b")
			h := client.expectType(protocol.JobCreated).args[0]
			worker.send(protocol.GrabJobAll)
			worker.expect(protocol.JobAssignAll, h, "mapper", "u-1", "reducer-fn", "a\x00b")
			worker.send(protocol.WorkComplete, h, "reduced")
			worker.expectQuiet()
			if tc.background {
				client.expectQuiet()
			} else {
				client.expect(protocol.WorkComplete, h, "reduced")
			}
		})
	}

	t.Run("older grabs do not see the reducer", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "mapper")
		client.send(protocol.SubmitReduceJobBackground, "mapper", "u-1", "reducer-fn", "agg", "d1")
		h1 := client.expectType(protocol.JobCreated).args[0]
		client.send(protocol.SubmitReduceJobBackground, "mapper", "u-2", "reducer-fn", "agg", "d2")
		h2 := client.expectType(protocol.JobCreated).args[0]
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h1, "mapper", "d1")
		worker.send(protocol.GrabJobUniq)
		worker.expect(protocol.JobAssignUniq, h2, "mapper", "u-2", "d2")
	})
}

func TestPacket_Grab(t *testing.T) {
	cases := []struct {
		name   string
		grab   protocol.Type
		assign func(h string) packet
	}{
		{"GRAB_JOB", protocol.GrabJob, func(h string) packet {
			return packet{protocol.JobAssign, []string{h, "fn", "da\x00ta"}}
		}},
		{"GRAB_JOB_UNIQ", protocol.GrabJobUniq, func(h string) packet {
			return packet{protocol.JobAssignUniq, []string{h, "fn", "the-unique", "da\x00ta"}}
		}},
		{"GRAB_JOB_ALL without reducer", protocol.GrabJobAll, func(h string) packet {
			return packet{protocol.JobAssignUniq, []string{h, "fn", "the-unique", "da\x00ta"}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, nil)
			addr := addrOf(t, s)
			worker, client := mustConnect(t, addr), mustConnect(t, addr)
			worker.send(protocol.CanDo, "fn")
			worker.send(tc.grab)
			worker.expect(protocol.NoJob)
			h := client.submit(protocol.SubmitJob, "fn", "the-unique", "da\x00ta")
			worker.send(tc.grab)
			want := tc.assign(h)
			worker.expect(want.typ, want.args...)
			worker.send(tc.grab)
			worker.expect(protocol.NoJob)
		})
	}

	t.Run("worker without abilities", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		client.submit(protocol.SubmitJob, "fn", "", "x")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.NoJob)
	})
}

func TestPacket_GetStatus(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	worker, client, other := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	h := client.submit(protocol.SubmitJob, "fn", "", "x")

	other.send(protocol.GetStatus, h)
	other.expect(protocol.StatusRes, h, "1", "0", "0", "0")

	worker.send(protocol.GrabJob)
	worker.expectType(protocol.JobAssign)
	other.send(protocol.GetStatus, h)
	other.expect(protocol.StatusRes, h, "1", "1", "0", "0")

	worker.send(protocol.WorkStatus, h, "3", "10")
	client.expect(protocol.WorkStatus, h, "3", "10")
	other.send(protocol.GetStatus, h)
	other.expect(protocol.StatusRes, h, "1", "1", "3", "10")

	worker.send(protocol.WorkComplete, h, "ok")
	client.expect(protocol.WorkComplete, h, "ok")
	other.send(protocol.GetStatus, h)
	other.expect(protocol.StatusRes, h, "0", "0", "0", "0")

	other.send(protocol.GetStatus, "H:nope:42")
	other.expect(protocol.StatusRes, "H:nope:42", "0", "0", "0", "0")
	other.expectQuiet()
}

func TestPacket_GetStatusUnique(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	worker, c1, c2, other := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	h := c1.submit(protocol.SubmitJob, "fn", "same", "x")
	if h2 := c2.submit(protocol.SubmitJob, "fn", "same", "y"); h2 != h {
		t.Fatalf("coalesced submit got handle %q, want %q", h2, h)
	}

	other.send(protocol.GetStatusUnique, "same")
	other.expect(protocol.StatusResUnique, "same", "1", "0", "0", "0", "2")

	worker.send(protocol.GrabJob)
	worker.expectType(protocol.JobAssign)
	worker.send(protocol.WorkStatus, h, "1", "2")
	worker.expectQuiet()
	other.send(protocol.GetStatusUnique, "same")
	other.expect(protocol.StatusResUnique, "same", "1", "1", "1", "2", "2")

	other.send(protocol.GetStatusUnique, "nope")
	other.expect(protocol.StatusResUnique, "nope", "0", "0", "0", "0", "0")

	worker.send(protocol.WorkComplete, h, "")
	c1.expect(protocol.WorkStatus, h, "1", "2")
	c1.expect(protocol.WorkComplete, h, "")
	other.send(protocol.GetStatusUnique, "same")
	other.expect(protocol.StatusResUnique, "same", "0", "0", "0", "0", "0")
}

func TestPacket_Echo(t *testing.T) {
	s := mustStartServer(t, nil)
	p := mustConnect(t, addrOf(t, s))
	cases := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"text", "hello"},
		{"NULs", "\x00a\x00\x00b\x00"},
		{"binary 256 KiB", strings.Repeat("\x00\x01\xfe\xff", 64<<10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.tb = t
			p.send(protocol.EchoReq, tc.data)
			p.expect(protocol.EchoRes, tc.data)
		})
	}
}

func TestPacket_OptionReq(t *testing.T) {
	cases := []struct {
		option string
		want   packet
	}{
		{"exceptions", packet{protocol.OptionRes, []string{"exceptions"}}},
		{"EXCEPTIONS", packet{protocol.OptionRes, []string{"EXCEPTIONS"}}},
		{"bogus", packet{protocol.Error, []string{"UNKNOWN_OPTION", "Server does not recognize given option"}}},
		{"", packet{protocol.Error, []string{"UNKNOWN_OPTION", "Server does not recognize given option"}}},
	}
	s := mustStartServer(t, nil)
	p := mustConnect(t, addrOf(t, s))
	for _, tc := range cases {
		t.Run(tc.option, func(t *testing.T) {
			p.tb = t
			p.send(protocol.OptionReq, tc.option)
			p.expect(tc.want.typ, tc.want.args...)
		})
	}
}

func TestPacket_SetClientID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		want string
	}{
		{"plain", "my-worker", "my-worker"},
		{"spaces and controls", "a b\tc\x00d", "a_b_c_d"},
		{"empty", "", "-"},
		{"truncated", strings.Repeat("x", 200), strings.Repeat("x", protocol.MaxClientIDSize)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, nil)
			addr := addrOf(t, s)
			worker, admin := mustConnect(t, addr), mustConnect(t, addr)
			worker.send(protocol.SetClientID, tc.id)
			worker.send(protocol.CanDo, "a")
			worker.send(protocol.CanDo, "b")
			worker.expectQuiet()
			expectAdminList(t, admin, "workers", "1 127.0.0.1 "+tc.want+" : a b\n.\n")
		})
	}
}

func TestPacket_Abilities(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	worker, client, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)

	worker.send(protocol.CanDo, "a")
	worker.send(protocol.CanDoTimeout, "b", "5000")
	worker.send(protocol.CanDo, "a") // registering twice changes nothing
	worker.expectQuiet()
	expectAdminList(t, admin, "status", "a\t0\t0\t1\nb\t0\t0\t1\n.\n")
	expectAdminList(t, admin, "workers", "1 127.0.0.1 - : a b\n.\n")

	ha := client.submit(protocol.SubmitJob, "a", "", "ja")
	hb := client.submit(protocol.SubmitJob, "b", "", "jb")

	worker.send(protocol.CantDo, "a")
	worker.send(protocol.CantDo, "never-registered") // ignored
	worker.expectQuiet()
	expectAdminList(t, admin, "status", "a\t1\t0\t0\nb\t1\t0\t1\n.\n")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, hb, "b", "jb")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob)

	worker.send(protocol.CanDo, "a")
	worker.send(protocol.ResetAbilities)
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob)
	expectAdminList(t, admin, "workers", "1 127.0.0.1 - :\n.\n")
	expectAdminList(t, admin, "status", "a\t1\t0\t0\nb\t1\t1\t0\n.\n")

	// The running job survives the reset: the worker may still finish it.
	worker.send(protocol.WorkComplete, hb, "rb")
	client.expect(protocol.WorkComplete, hb, "rb")
	worker.send(protocol.CanDo, "a")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, ha, "a", "ja")
}

func TestPacket_PreSleep(t *testing.T) {
	t.Run("job waiting: immediate NOOP", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		client.submit(protocol.SubmitJobBg, "fn", "", "x")
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.PreSleep)
		worker.expect(protocol.Noop)
		worker.expectQuiet()
	})
	t.Run("no job: NOOP when one arrives, once", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.PreSleep)
		worker.expectQuiet()
		client.submit(protocol.SubmitJobBg, "fn", "", "x")
		worker.expect(protocol.Noop)
		client.submit(protocol.SubmitJobBg, "fn", "", "y")
		worker.expectQuiet() // one NOOP per sleep
	})
	t.Run("registering while asleep", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		worker, client := mustConnect(t, addr), mustConnect(t, addr)
		client.submit(protocol.SubmitJobBg, "fn", "", "x")
		worker.send(protocol.PreSleep)
		worker.expectQuiet()
		worker.send(protocol.CanDo, "fn")
		worker.expect(protocol.Noop)
	})
}

func TestPacket_WorkUpdates(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	worker, client := mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	h := client.submit(protocol.SubmitJob, "fn", "", "x")
	worker.send(protocol.GrabJob)
	worker.expectType(protocol.JobAssign)

	worker.send(protocol.WorkData, h, "part\x001")
	worker.send(protocol.WorkWarning, h, "careful\x00")
	worker.send(protocol.WorkStatus, h, "1", "4")
	worker.send(protocol.WorkData, h, "")
	client.expect(protocol.WorkData, h, "part\x001")
	client.expect(protocol.WorkWarning, h, "careful\x00")
	client.expect(protocol.WorkStatus, h, "1", "4")
	client.expect(protocol.WorkData, h, "")
	worker.send(protocol.WorkComplete, h, "final")
	client.expect(protocol.WorkComplete, h, "final")
	worker.expectQuiet()
}

func TestPacket_WorkEnd(t *testing.T) {
	cases := []struct {
		name           string
		serverExc      bool                    // Options.Exceptions
		send           func(*testPeer, string) // the worker's final packet
		plain, optedIn func(h string) packet   // what a client without / with OPTION_REQ exceptions gets
	}{
		{
			name:  "WORK_COMPLETE",
			send:  func(w *testPeer, h string) { w.send(protocol.WorkComplete, h, "res\x00ult") },
			plain: func(h string) packet { return packet{protocol.WorkComplete, []string{h, "res\x00ult"}} },
			optedIn: func(h string) packet {
				return packet{protocol.WorkComplete, []string{h, "res\x00ult"}}
			},
		},
		{
			name:    "WORK_FAIL",
			send:    func(w *testPeer, h string) { w.send(protocol.WorkFail, h) },
			plain:   func(h string) packet { return packet{protocol.WorkFail, []string{h}} },
			optedIn: func(h string) packet { return packet{protocol.WorkFail, []string{h}} },
		},
		{
			name:    "WORK_FAIL with a trailing NUL",
			send:    func(w *testPeer, h string) { w.send(protocol.WorkFail, h+"\x00") },
			plain:   func(h string) packet { return packet{protocol.WorkFail, []string{h}} },
			optedIn: func(h string) packet { return packet{protocol.WorkFail, []string{h}} },
		},
		{
			name:  "WORK_EXCEPTION",
			send:  func(w *testPeer, h string) { w.send(protocol.WorkException, h, "boom\x00") },
			plain: func(h string) packet { return packet{protocol.WorkFail, []string{h}} },
			optedIn: func(h string) packet {
				return packet{protocol.WorkException, []string{h, "boom\x00"}}
			},
		},
		{
			name:      "WORK_EXCEPTION with Options.Exceptions",
			serverExc: true,
			send:      func(w *testPeer, h string) { w.send(protocol.WorkException, h, "boom") },
			plain:     func(h string) packet { return packet{protocol.WorkException, []string{h, "boom"}} },
			optedIn:   func(h string) packet { return packet{protocol.WorkException, []string{h, "boom"}} },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartServer(t, func(o *Options) { o.Exceptions = tc.serverExc })
			addr := addrOf(t, s)
			worker, plain, optedIn := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
			optedIn.send(protocol.OptionReq, "exceptions")
			optedIn.expect(protocol.OptionRes, "exceptions")
			worker.send(protocol.CanDo, "fn")
			h := plain.submit(protocol.SubmitJob, "fn", "u", "x")
			optedIn.submit(protocol.SubmitJob, "fn", "u", "x")
			worker.send(protocol.GrabJob)
			worker.expectType(protocol.JobAssign)
			tc.send(worker, h)
			want := tc.plain(h)
			plain.expect(want.typ, want.args...)
			want = tc.optedIn(h)
			optedIn.expect(want.typ, want.args...)
			worker.expectQuiet()
			// The job is gone: a second result is a late packet, dropped quietly.
			worker.send(protocol.WorkComplete, h, "again")
			worker.expectQuiet()
			plain.expectQuiet()
			plain.send(protocol.GetStatus, h)
			plain.expect(protocol.StatusRes, h, "0", "0", "0", "0")
		})
	}
}

func TestPacket_WorkFailAfterWorkException(t *testing.T) {
	// Perl's Gearman::Worker sends WORK_FAIL right after WORK_EXCEPTION; gearmand must not answer it
	// with an ERROR (which kills the Perl worker).
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	worker, client := mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	h := client.submit(protocol.SubmitJob, "fn", "", "x")
	worker.send(protocol.GrabJob)
	worker.expectType(protocol.JobAssign)
	worker.send(protocol.WorkException, h, "died")
	worker.send(protocol.WorkFail, h)
	worker.expectQuiet()
	client.expect(protocol.WorkFail, h)
	client.expectQuiet()
}

func TestPacket_WorkUnknownHandle(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	worker, other, client := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	h := client.submit(protocol.SubmitJob, "fn", "", "x")
	worker.send(protocol.GrabJob)
	worker.expectType(protocol.JobAssign)

	cases := []struct {
		name string
		typ  protocol.Type
		args []string
	}{
		{"WORK_DATA", protocol.WorkData, []string{"d"}},
		{"WORK_WARNING", protocol.WorkWarning, []string{"w"}},
		{"WORK_STATUS", protocol.WorkStatus, []string{"1", "2"}},
		{"WORK_COMPLETE", protocol.WorkComplete, []string{"r"}},
		{"WORK_FAIL", protocol.WorkFail, nil},
		{"WORK_EXCEPTION", protocol.WorkException, []string{"e"}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" unknown handle", func(t *testing.T) {
			worker.tb = t
			worker.send(tc.typ, append([]string{"H:nope:1"}, tc.args...)...)
			worker.expect(protocol.Error, errJobNotFound, "Job given in work result not found")
			worker.expectQuiet()
		})
		t.Run(tc.name+" job of another worker", func(t *testing.T) {
			other.tb = t
			other.send(tc.typ, append([]string{h}, tc.args...)...)
			other.expect(protocol.Error, errJobNotFound, "Job given in work result not found")
		})
	}
	worker.tb = t
	client.expectQuiet()
	worker.send(protocol.WorkComplete, h, "mine")
	client.expect(protocol.WorkComplete, h, "mine")
}

func TestPacket_InvalidCommand(t *testing.T) {
	// Response types sent to the server and ALL_YOURS: ERROR, the connection lives.
	types := []protocol.Type{
		protocol.Noop, protocol.JobCreated, protocol.NoJob, protocol.JobAssign, protocol.EchoRes,
		protocol.Error, protocol.StatusRes, protocol.AllYours, protocol.OptionRes,
		protocol.JobAssignUniq, protocol.JobAssignAll, protocol.StatusResUnique,
	}
	s := mustStartServer(t, nil)
	p := mustConnect(t, addrOf(t, s))
	for _, typ := range types {
		t.Run(typ.String(), func(t *testing.T) {
			p.tb = t
			args := make([]string, typ.Argc())
			for i := range args {
				args[i] = "a"
			}
			p.send(typ, args...)
			p.expect(protocol.Error, errInvalidCommand, "Command not expected")
			p.send(protocol.EchoReq, "alive")
			p.expect(protocol.EchoRes, "alive")
		})
	}
}

func TestPacket_ResponseMagic(t *testing.T) {
	s := mustStartServer(t, nil)
	p := mustConnect(t, addrOf(t, s))
	p.write(protocol.AppendResponse(nil, protocol.EchoReq, []byte("x")))
	p.expect(protocol.Error, errInvalidMagic, "Request magic expected")
	p.write(protocol.AppendResponse(nil, protocol.SubmitJob, []byte("fn"), nil, []byte("x")))
	p.expect(protocol.Error, errInvalidMagic, "Request magic expected")
	p.send(protocol.EchoReq, "alive")
	p.expect(protocol.EchoRes, "alive")
	// The \0RES SUBMIT_JOB created nothing.
	admin := mustConnect(t, addrOf(t, s))
	expectAdminList(t, admin, "status", ".\n")
}

func TestPacket_TooFewArguments(t *testing.T) {
	cases := []struct {
		name string
		typ  protocol.Type
		data string
	}{
		{"SUBMIT_JOB without separators", protocol.SubmitJob, "fn"},
		{"SUBMIT_JOB with one separator", protocol.SubmitJob, "fn\x00data"},
		{"SUBMIT_REDUCE_JOB with 3 arguments", protocol.SubmitReduceJob, "fn\x00u\x00reducer\x00data"},
		{"SUBMIT_JOB_EPOCH without time", protocol.SubmitJobEpoch, "fn\x00u\x00data"},
		{"CAN_DO_TIMEOUT without timeout", protocol.CanDoTimeout, "fn"},
		{"WORK_STATUS without denominator", protocol.WorkStatus, "H:x:1\x001"},
	}
	s := mustStartServer(t, nil)
	p := mustConnect(t, addrOf(t, s))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.tb = t
			p.write(protocol.AppendRequest(nil, tc.typ, []byte(tc.data)))
			p.expect(protocol.Error, errInvalidArgument, "Packet has too few arguments for "+tc.typ.String())
			p.send(protocol.EchoReq, "alive")
			p.expect(protocol.EchoRes, "alive")
		})
	}
	admin := mustConnect(t, addrOf(t, s))
	expectAdminList(t, admin, "status", ".\n")
}
