package server

import (
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// nearMinute is a clock that reaches its next whole minute a second after it is made, so that
// a job due "at the next matching minute" falls due on the real timer within the test's deadline.
func nearMinute() func() time.Time {
	now := time.Now()
	offset := now.Truncate(time.Minute).Add(time.Minute - time.Second).Sub(now)
	return func() time.Time { return time.Now().Add(offset) }
}

// SUBMIT_JOB_SCHED over TCP: JOB_CREATED, scheduled until its minute, then a sleeping worker is woken
// for it; a field out of range gets ERROR INVALID_ARGUMENT and the connection lives.
func TestPacket_SubmitJobSched(t *testing.T) {
	s := mustStartServer(t, func(o *Options) { o.Now = nearMinute() })
	addr := addrOf(t, s)
	worker, client, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "sched")
	worker.send(protocol.PreSleep)

	client.send(protocol.SubmitJobSched, "sched", "s1", "60", "", "", "", "", "x")
	client.expectError(errInvalidArgument)
	client.send(protocol.SubmitJobSched, "sched", "s1", "", "", "", "", "7", "x")
	client.expectError(errInvalidArgument)
	// Every field empty or "*": the next minute.
	h := client.submit(protocol.SubmitJobSched, "sched", "s1", "*\x00\x00\x00*\x00\x00data")
	if got := admin.adminList("status"); !strings.Contains(got, "sched\t1\t0\t1") {
		t.Fatalf("status %q: want the scheduled job counted", got)
	}
	worker.expect(protocol.Noop)
	worker.send(protocol.GrabJobUniq)
	worker.expect(protocol.JobAssignUniq, h, "sched", "s1", "data")
	worker.send(protocol.WorkComplete, h, "")
	client.expectQuiet() // background
}

// A schedule defined with the admin protocol fires at its minute and wakes a sleeping worker.
func TestAdmin_Schedule(t *testing.T) {
	s := mustStartServer(t, func(o *Options) { o.Now = nearMinute() })
	addr := addrOf(t, s)
	worker, admin := mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "cron")
	worker.send(protocol.PreSleep)
	if got := admin.admin("schedule add every-minute cron * * * * * priority=high data=a b"); got != "OK\r\n" {
		t.Fatalf("schedule add: %q", got)
	}
	if got := admin.adminList("schedule list"); !strings.HasPrefix(got, "every-minute\tcron\t* * * * *\tUTC\thigh\t-\t") {
		t.Fatalf("schedule list: %q", got)
	}
	worker.expect(protocol.Noop)
	worker.send(protocol.GrabJob)
	p := worker.expectType(protocol.JobAssign)
	if p.args[1] != "cron" || p.args[2] != "a b" {
		t.Fatalf("assigned %v", p)
	}
	if got := admin.admin("schedule remove every-minute"); got != "OK\r\n" {
		t.Fatalf("schedule remove: %q", got)
	}
	if got := admin.admin("schedule remove every-minute"); !strings.HasPrefix(got, "ERR UNKNOWN_SCHEDULE") {
		t.Fatalf("second remove: %q", got)
	}
}
