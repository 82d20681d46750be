package server

// The text admin protocol, byte for byte: gearmand's admin tools parse these replies.

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

func TestAdmin_Status(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	admin, client, w1, w2 := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	expectAdminList(t, admin, "status", ".\n")

	w1.send(protocol.CanDo, "zeta")
	w1.send(protocol.CanDo, "alpha")
	w2.send(protocol.CanDo, "alpha")
	w1.expectQuiet()
	w2.expectQuiet()
	client.submit(protocol.SubmitJob, "alpha", "", "1")
	client.submit(protocol.SubmitJobLowBg, "alpha", "", "2")
	client.submit(protocol.SubmitJobHighBg, "mid", "", "3") // no worker
	w2.send(protocol.GrabJob)
	w2.expectType(protocol.JobAssign)

	expectAdminList(t, admin, "status", "alpha\t2\t1\t2\nmid\t1\t0\t0\nzeta\t0\t0\t1\n.\n")
	expectAdminList(t, admin, "prioritystatus", "alpha\t0\t0\t1\t2\nmid\t1\t0\t0\t0\nzeta\t0\t0\t0\t1\n.\n")
}

func TestAdmin_Workers(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	// Connection ids follow the accept order: 1 w1, 2 client, 3 w2, 4 grabber, 5 admin.
	w1, client, w2, grabber, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr),
		mustConnect(t, addr), mustConnect(t, addr)
	w1.send(protocol.SetClientID, "worker-one")
	w1.send(protocol.CanDo, "b")
	w1.send(protocol.CanDo, "a")
	w1.expectQuiet()
	client.submit(protocol.SubmitJobBg, "a", "", "x") // a client only: not listed
	w2.send(protocol.CanDoTimeout, "c", "5000")
	w2.expectQuiet()
	grabber.send(protocol.GrabJob) // asked for work without abilities: a worker with no functions
	grabber.expect(protocol.NoJob)

	expectAdminList(t, admin, "workers",
		"1 127.0.0.1 worker-one : b a\n3 127.0.0.1 - : c\n4 127.0.0.1 - :\n.\n")

	w1.close()
	checkAdmin(t, admin, "workers", "3 127.0.0.1 - : c\n4 127.0.0.1 - :\n.\n")
}

func TestAdmin_OneLineReplies(t *testing.T) {
	level := new(slog.LevelVar)
	cases := []struct {
		name, line, want string
		level            slog.Level
	}{
		{"version", "version", "OK " + Version + "\n", 0},
		{"getpid", "getpid", "OK " + strconv.Itoa(os.Getpid()) + "\n", 0},
		{"verbose debug", "verbose", "OK DEBUG\n", slog.LevelDebug},
		{"verbose info", "verbose", "OK INFO\n", slog.LevelInfo},
		{"verbose warning", "verbose", "OK WARNING\n", slog.LevelWarn},
		{"verbose error", "verbose", "OK ERROR\n", slog.LevelError},
		{"upper case", "VERSION", "OK " + Version + "\n", 0},
		{"mixed case and blanks", " \tGetPid \r", "OK " + strconv.Itoa(os.Getpid()) + "\n", 0},
		{"unknown command", "frobnicate now", "ERR UNKNOWN_COMMAND Unknown+server+command:+frobnicate\r\n", 0},
		{"bare show", "show", "ERR UNKNOWN_COMMAND Unknown+server+command:+show\r\n", 0},
		{"maxqueue without arguments", "maxqueue",
			"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n", 0},
		{"maxqueue one value", "maxqueue fn 10", "OK\r\n", 0},
		{"maxqueue three values", "maxqueue fn 1 2 3", "OK\r\n", 0},
		{"maxqueue function only", "maxqueue fn", "OK\r\n", 0},
		{"maxqueue two values", "maxqueue fn 1 2", "ERR INVALID_ARGUMENTS Usage:+maxqueue+FUNCTION+[MAX|HIGH+NORMAL+LOW]\r\n", 0},
		{"maxqueue not a number", "maxqueue fn ten", "ERR INVALID_ARGUMENTS Queue+size+is+not+a+number\r\n", 0},
		{"cancel job unknown", "cancel job H:nope:1", "ERR UNKNOWN_JOB\r\n", 0},
		{"cancel job without handle", "cancel job", "ERR INVALID_ARGUMENTS Usage:+cancel+job+HANDLE\r\n", 0},
		{"create function without name", "create function", "ERR INVALID_ARGUMENTS Usage:+create+function+NAME\r\n", 0},
		{"drop function unknown", "drop function nope", "ERR function not found\r\n", 0},
		{"drop function without name", "drop function", "ERR INVALID_ARGUMENTS Usage:+drop+function+NAME\r\n", 0},
	}
	s := mustStartServer(t, func(o *Options) { o.Level = level })
	admin := mustConnect(t, addrOf(t, s))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			admin.tb = t
			level.Set(tc.level)
			if got := admin.admin(tc.line); got != tc.want {
				t.Fatalf("%q = %q, want %q", tc.line, got, tc.want)
			}
		})
	}

	t.Run("verbose without a level variable", func(t *testing.T) {
		s := mustStartServer(t, nil)
		admin := mustConnect(t, addrOf(t, s))
		if got := admin.admin("verbose"); got != "OK INFO\n" {
			t.Fatalf("verbose = %q", got)
		}
	})
}

func TestAdmin_LinesAndCase(t *testing.T) {
	s := mustStartServer(t, nil)
	admin := mustConnect(t, addrOf(t, s))
	// Blank lines get no reply: the first reply is version's.
	admin.write([]byte("\n\r\n   \n\t\r\nversion\r\n"))
	if got := admin.readLine(); got != "OK "+Version+"\n" {
		t.Fatalf("reply %q, want version's", got)
	}
	// Pipelined commands are answered in order.
	admin.write([]byte("create function f1\nSTATUS\nShow Jobs\nsHoW uNiQuE jObS\nCreate Function F2\n"))
	want := "OK\r\nf1\t0\t0\t0\n.\n.\n.\nOK\r\n"
	var got strings.Builder
	for got.Len() < len(want) {
		got.WriteString(admin.readLine())
	}
	if got.String() != want {
		t.Fatalf("replies %q, want %q", got.String(), want)
	}
	// Arguments keep their case.
	expectAdminList(t, admin, "status", "F2\t0\t0\t0\nf1\t0\t0\t0\n.\n")
}

func TestAdmin_ShowJobs(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	admin, client, worker := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	expectAdminList(t, admin, "show jobs", ".\n")
	expectAdminList(t, admin, "show unique jobs", ".\n")

	h1 := client.submit(protocol.SubmitJob, "fn", "uniq-1", "a")
	h2 := client.submit(protocol.SubmitJobBg, "fn", "", "b")
	h3 := client.submit(protocol.SubmitJobLowBg, "other", "uniq-3", "c")
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h1, "fn", "a")

	// HANDLE RETRIES IGNORE_JOB JOB_QUEUED, in submission order.
	expectAdminList(t, admin, "show jobs", h1+"\t0\t0\t0\n"+h2+"\t0\t0\t1\n"+h3+"\t0\t0\t1\n.\n")
	expectAdminList(t, admin, "show unique jobs", "uniq-1\nuniq-3\n.\n")

	worker.send(protocol.WorkComplete, h1, "")
	client.expect(protocol.WorkComplete, h1, "")
	expectAdminList(t, admin, "show jobs", h2+"\t0\t0\t1\n"+h3+"\t0\t0\t1\n.\n")
	expectAdminList(t, admin, "show unique jobs", "uniq-3\n.\n")
}

func TestAdmin_CancelJob(t *testing.T) {
	t.Run("queued job", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		admin, client, worker := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		h := client.submit(protocol.SubmitJob, "fn", "u", "x")
		h2 := client.submit(protocol.SubmitJob, "fn", "", "y")
		if got := admin.admin("cancel job " + h); got != "OK\r\n" {
			t.Fatalf("cancel job = %q", got)
		}
		client.expect(protocol.WorkFail, h)
		if got := admin.admin("cancel job " + h); got != "ERR UNKNOWN_JOB\r\n" {
			t.Fatalf("second cancel job = %q", got)
		}
		expectAdminList(t, admin, "show jobs", h2+"\t0\t0\t1\n.\n")
		expectAdminList(t, admin, "status", "fn\t1\t0\t0\n.\n")
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, h2, "fn", "y") // the cancelled job never runs
		worker.send(protocol.GrabJob)
		worker.expect(protocol.NoJob)
		// Its unique is free again.
		if h3 := client.submit(protocol.SubmitJob, "fn", "u", "z"); h3 == h {
			t.Fatalf("resubmit after cancel got the cancelled handle %q", h3)
		}
	})

	t.Run("running job", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		admin, client, worker := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		client.send(protocol.OptionReq, "exceptions")
		client.expect(protocol.OptionRes, "exceptions")
		worker.send(protocol.CanDo, "fn")
		h := client.submit(protocol.SubmitJob, "fn", "", "x")
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		if got := admin.admin("cancel job " + h); got != "OK\r\n" {
			t.Fatalf("cancel job = %q", got)
		}
		client.expect(protocol.WorkFail, h) // a server verdict is a plain failure, exceptions or not
		expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
		worker.send(protocol.WorkComplete, h, "late")
		worker.expectQuiet()
		client.expectQuiet()
	})

	t.Run("scheduled job", func(t *testing.T) {
		s := mustStartServer(t, nil)
		addr := addrOf(t, s)
		admin, client := mustConnect(t, addr), mustConnect(t, addr)
		when := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
		h := client.submit(protocol.SubmitJobEpoch, "fn", "", when+"\x00x")
		expectAdminList(t, admin, "status", "fn\t1\t0\t0\n.\n")
		if got := admin.admin("cancel job " + h); got != "OK\r\n" {
			t.Fatalf("cancel job = %q", got)
		}
		expectAdminList(t, admin, "show jobs", ".\n")
		expectAdminList(t, admin, "status", "fn\t0\t0\t0\n.\n")
		expectAdminList(t, admin, "prioritystatus", "fn\t0\t0\t0\t0\n.\n")
	})
}

func TestAdmin_CreateFunction(t *testing.T) {
	s := mustStartServer(t, func(o *Options) { o.FunctionIdleTTL = 0 })
	addr := addrOf(t, s)
	admin, worker := mustConnect(t, addr), mustConnect(t, addr)
	if got := admin.admin("create function newfn"); got != "OK\r\n" {
		t.Fatalf("create function = %q", got)
	}
	long := strings.Repeat("f", 300)
	if got := admin.admin("create function " + long); got != "OK\r\n" {
		t.Fatalf("create function = %q", got)
	}
	expectAdminList(t, admin, "status", long+"\t0\t0\t0\nnewfn\t0\t0\t0\n.\n")
	// An explicitly created function outlives its workers even with no idle TTL.
	worker.send(protocol.CanDo, "newfn")
	worker.expectQuiet()
	expectAdminList(t, admin, "status", long+"\t0\t0\t0\nnewfn\t0\t0\t1\n.\n")
	worker.close()
	checkAdmin(t, admin, "status", long+"\t0\t0\t0\nnewfn\t0\t0\t0\n.\n")
	// Creating an existing function is harmless.
	if got := admin.admin("create function newfn"); got != "OK\r\n" {
		t.Fatalf("create function = %q", got)
	}
	expectAdminList(t, admin, "status", long+"\t0\t0\t0\nnewfn\t0\t0\t0\n.\n")
}

func TestAdmin_DropFunction(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	admin, worker, client, w2 := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	admin.admin("create function idle")
	worker.send(protocol.CanDo, "busy")
	worker.expectQuiet()
	client.submit(protocol.SubmitJobBg, "queued", "", "x")
	w2.send(protocol.CanDo, "running")
	h := client.submit(protocol.SubmitJobBg, "running", "", "x")
	w2.send(protocol.GrabJob)
	w2.expectType(protocol.JobAssign)
	w2.send(protocol.ResetAbilities) // no worker left, but a job still runs
	w2.expectQuiet()

	cases := []struct{ name, want string }{
		{"nope", "ERR function not found\r\n"},
		{"busy", "ERR there are still connected workers or executing clients\r\n"},
		{"running", "ERR there are still connected workers or executing clients\r\n"},
		{"queued", "ERR there are still queued jobs\r\n"},
		{"idle", "OK\r\n"},
		{"idle", "ERR function not found\r\n"},
	}
	for _, tc := range cases {
		if got := admin.admin("drop function " + tc.name); got != tc.want {
			t.Fatalf("drop function %s = %q, want %q", tc.name, got, tc.want)
		}
	}
	expectAdminList(t, admin, "status", "busy\t0\t0\t1\nqueued\t1\t0\t0\nrunning\t1\t1\t0\n.\n")
	w2.send(protocol.WorkComplete, h, "")
	w2.expectQuiet()
	worker.close()
	// With the default idle TTL both stay listed as 0 0 0 until dropped.
	checkAdmin(t, admin, "status", "busy\t0\t0\t0\nqueued\t1\t0\t0\nrunning\t0\t0\t0\n.\n")
	for _, name := range []string{"busy", "running"} {
		if got := admin.admin("drop function " + name); got != "OK\r\n" {
			t.Fatalf("drop function %s = %q", name, got)
		}
	}
	expectAdminList(t, admin, "status", "queued\t1\t0\t0\n.\n")
}

func TestAdmin_FunctionIdleExpiry(t *testing.T) {
	t.Run("no TTL: gone with the last worker", func(t *testing.T) {
		s := mustStartServer(t, func(o *Options) { o.FunctionIdleTTL = 0 })
		addr := addrOf(t, s)
		admin, w1, w2 := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		w1.send(protocol.CanDo, "fn")
		w2.send(protocol.CanDo, "fn")
		w1.expectQuiet()
		w2.expectQuiet()
		expectAdminList(t, admin, "status", "fn\t0\t0\t2\n.\n")
		w1.close()
		checkAdmin(t, admin, "status", "fn\t0\t0\t1\n.\n")
		w2.send(protocol.CantDo, "fn")
		w2.expectQuiet()
		expectAdminList(t, admin, "status", ".\n")
	})

	t.Run("no TTL: kept while jobs wait", func(t *testing.T) {
		s := mustStartServer(t, func(o *Options) { o.FunctionIdleTTL = 0 })
		addr := addrOf(t, s)
		admin, client, worker := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
		h := client.submit(protocol.SubmitJobBg, "fn", "", "x")
		expectAdminList(t, admin, "status", "fn\t1\t0\t0\n.\n")
		worker.send(protocol.CanDo, "fn")
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		worker.send(protocol.ResetAbilities)
		worker.expectQuiet()
		expectAdminList(t, admin, "status", "fn\t1\t1\t0\n.\n")
		worker.send(protocol.WorkComplete, h, "")
		worker.expectQuiet()
		expectAdminList(t, admin, "status", ".\n")
	})

	t.Run("TTL: listed as 0 0 0, then gone", func(t *testing.T) {
		clock := newFakeClock()
		s := mustStartServer(t, func(o *Options) {
			o.Now = clock.Now
			o.FunctionIdleTTL = 200 * time.Millisecond
		})
		addr := addrOf(t, s)
		admin, worker := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		worker.expectQuiet()
		expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
		worker.close()
		checkAdmin(t, admin, "status", "fn\t0\t0\t0\n.\n")
		clock.Advance(150 * time.Millisecond)
		time.Sleep(250 * time.Millisecond) // two sweeps: not idle long enough yet
		expectAdminList(t, admin, "status", "fn\t0\t0\t0\n.\n")
		clock.Advance(100 * time.Millisecond)
		checkAdmin(t, admin, "status", ".\n")
	})

	t.Run("TTL on the real clock", func(t *testing.T) {
		s := mustStartServer(t, func(o *Options) { o.FunctionIdleTTL = 200 * time.Millisecond })
		addr := addrOf(t, s)
		admin, worker := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		worker.expectQuiet()
		expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
		worker.close()
		checkDisconnected(t, s, worker)
		// Listed as 0 0 0 for at least the TTL, then forgotten by a sweep.
		checkAdmin(t, admin, "status", ".\n")
	})

	t.Run("TTL: a returning worker keeps it", func(t *testing.T) {
		clock := newFakeClock()
		s := mustStartServer(t, func(o *Options) {
			o.Now = clock.Now
			o.FunctionIdleTTL = 200 * time.Millisecond
		})
		addr := addrOf(t, s)
		admin, w1 := mustConnect(t, addr), mustConnect(t, addr)
		w1.send(protocol.CanDo, "fn")
		w1.expectQuiet()
		w1.close()
		checkAdmin(t, admin, "status", "fn\t0\t0\t0\n.\n")
		w2 := mustConnect(t, addr)
		w2.send(protocol.CanDo, "fn")
		w2.expectQuiet()
		clock.Advance(time.Hour)
		time.Sleep(250 * time.Millisecond) // two sweeps
		expectAdminList(t, admin, "status", "fn\t0\t0\t1\n.\n")
	})
}

func TestAdmin_Shutdown(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	admin, client := mustConnect(t, addr), mustConnect(t, addr)
	client.submit(protocol.SubmitJobBg, "fn", "", "x")
	if got := admin.admin("shutdown"); got != "OK\r\n" {
		t.Fatalf("shutdown = %q", got)
	}
	select {
	case <-s.Done():
	case <-time.After(readTimeout):
		t.Fatal("server not closed after shutdown")
	}
	admin.expectClosed()
	client.expectClosed()
	checkFor(t, readTimeout, func() error {
		if nc, err := dialOnce(addr); err == nil {
			nc.Close()
			return fmt.Errorf("dial %s succeeded after shutdown", addr)
		}
		return nil
	})
}

func TestAdmin_ShutdownGraceful(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	admin, client, worker, idle := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	idle.send(protocol.CanDo, "fn")
	idle.expectQuiet() // accepted before the listener closes: a connection still in the backlog is reset
	h := client.submit(protocol.SubmitJob, "fn", "", "running")
	client.submit(protocol.SubmitJob, "fn", "", "queued")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "fn", "running")

	if got := admin.admin("shutdown graceful"); got != "OK\r\n" {
		t.Fatalf("shutdown graceful = %q", got)
	}
	// From the OK on: no new jobs, nothing handed out, the listener is closed.
	idle.send(protocol.GrabJob)
	idle.expect(protocol.NoJob)
	idle.send(protocol.PreSleep)
	idle.expectQuiet()
	client.send(protocol.SubmitJob, "fn", "", "new")
	client.expect(protocol.Error, errQueueError, "Server is shutting down")
	if nc, err := dialOnce(addr); err == nil {
		nc.Close()
		t.Fatal("dial succeeded during a graceful shutdown")
	}
	select {
	case <-s.Done():
		t.Fatal("server closed while a job runs")
	default:
	}

	// The running job finishes and its result is delivered; then the server closes.
	worker.send(protocol.WorkStatus, h, "1", "1")
	worker.send(protocol.WorkComplete, h, "finished")
	client.expect(protocol.WorkStatus, h, "1", "1")
	client.expect(protocol.WorkComplete, h, "finished")
	select {
	case <-s.Done():
	case <-time.After(readTimeout):
		t.Fatal("server not closed after the last job finished")
	}
	client.expectClosed()
	worker.expectClosed()
}

func TestAdmin_ShutdownGracefulIdle(t *testing.T) {
	s := mustStartServer(t, nil)
	admin := mustConnect(t, addrOf(t, s))
	if got := admin.admin("SHUTDOWN Graceful"); got != "OK\r\n" {
		t.Fatalf("shutdown graceful = %q", got)
	}
	select {
	case <-s.Done():
	case <-time.After(readTimeout):
		t.Fatal("idle server not closed after a graceful shutdown")
	}
	admin.expectClosed()
}
