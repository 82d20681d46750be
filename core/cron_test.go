package core

import (
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// fnCounts is a function's queued and scheduled jobs.
func fnCounts(c *Core, name string) (queued, scheduled int) {
	for _, f := range c.Functions() {
		if f.Name == name {
			return f.Queued.High + f.Queued.Normal + f.Queued.Low, f.Scheduled
		}
	}
	return 0, 0
}

func mustAddSchedule(t *testing.T, c *Core, def Schedule) {
	t.Helper()
	if _, err := c.AddSchedule(def, "test"); err != nil {
		t.Fatal(err)
	}
}

// run ticks the core every step from the clock's time to end and returns when each tick of the
// named schedule fired (seen by its Fired count).
func runSchedule(c *Core, clock *fakeClock, name string, step time.Duration, end time.Time) []time.Time {
	var fired []time.Time
	var count int64
	for ; !clock.Now().After(end); clock.Advance(step) {
		c.Tick(recorder{}, clock.Now())
		c.Tick(recorder{}, clock.Now()) // twice at the same instant: never a second job
		for _, sc := range c.Schedules() {
			if sc.Name == name && sc.Fired != count {
				for range sc.Fired - count {
					fired = append(fired, clock.Now().UTC())
				}
				count = sc.Fired
			}
		}
	}
	return fired
}

func setClock(clock *fakeClock, t time.Time) { clock.t.Store(t.UnixNano()) }

func TestSchedule_FiresOncePerTickAtItsMinute(t *testing.T) {
	c, clock := newTestCore(t, nil)
	start := time.Date(2027, 1, 15, 8, 0, 30, 0, time.UTC)
	setClock(clock, start)
	mustAddSchedule(t, c, Schedule{Name: "five", Function: "tick", Spec: "*/5 * * * *", Data: "payload"})
	fired := runSchedule(c, clock, "five", 10*time.Second, start.Add(20*time.Minute))
	want := []string{"08:05:00", "08:10:00", "08:15:00", "08:20:00"}
	if len(fired) != len(want) {
		t.Fatalf("fired at %v, want %v", fired, want)
	}
	for i, f := range fired {
		if got := f.Format(time.TimeOnly); got != want[i] {
			t.Fatalf("tick %d fired at %s, want %s (all: %v)", i, got, want[i], fired)
		}
	}
	if q, _ := fnCounts(c, "tick"); q != 4 {
		t.Fatalf("%d jobs queued, want 4", q)
	}
	w := connect(t, c)
	w.send(protocol.CanDo, "tick")
	w.send(protocol.GrabJob)
	if got := w.take(); len(got) != 1 || got[0].typ != protocol.JobAssign || got[0].args[2] != "payload" {
		t.Fatalf("worker got %v, want JOB_ASSIGN with the schedule's payload", got)
	}
}

// A schedule runs on its zone's wall clock: 09:00 in Berlin is 07:00 UTC in summer time and 08:00
// after it ends; 02:30, which the end of summer time repeats, fires once.
func TestSchedule_TimeZoneAcrossDST(t *testing.T) {
	c, clock := newTestCore(t, nil)
	start := time.Date(2027, 10, 30, 0, 0, 0, 0, time.UTC)
	setClock(clock, start)
	mustAddSchedule(t, c, Schedule{Name: "nine", Function: "f", Spec: "0 9 * * *", TimeZone: "Europe/Berlin"})
	mustAddSchedule(t, c, Schedule{Name: "twothirty", Function: "g", Spec: "30 2 * * *", TimeZone: "Europe/Berlin"})
	end := time.Date(2027, 11, 1, 12, 0, 0, 0, time.UTC)
	var nine, twoThirty []string
	var n, m int64
	for ; !clock.Now().After(end); clock.Advance(time.Minute) {
		c.Tick(recorder{}, clock.Now())
		for _, sc := range c.Schedules() {
			switch {
			case sc.Name == "nine" && sc.Fired != n:
				n, nine = sc.Fired, append(nine, clock.Now().UTC().Format(time.DateTime))
			case sc.Name == "twothirty" && sc.Fired != m:
				m, twoThirty = sc.Fired, append(twoThirty, clock.Now().UTC().Format(time.DateTime))
			}
		}
	}
	if want := []string{"2027-10-30 07:00:00", "2027-10-31 08:00:00", "2027-11-01 08:00:00"}; strings.Join(nine, ",") != strings.Join(want, ",") {
		t.Errorf("09:00 Berlin fired at %v, want %v", nine, want)
	}
	if want := []string{"2027-10-30 00:30:00", "2027-10-31 00:30:00", "2027-11-01 01:30:00"}; strings.Join(twoThirty, ",") != strings.Join(want, ",") {
		t.Errorf("02:30 Berlin fired at %v, want %v (once on the night 02:30 comes twice)", twoThirty, want)
	}
}

// Ticks missed while the server was down fire once at start, not as a burst; a restart fires no
// stored tick again; the fired jobs are in the store.
func TestSchedule_DowntimeAndRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *store.Pebble { return mustOpenPebble(t, dir) }
	start := time.Date(2027, 1, 15, 8, 30, 0, 0, time.UTC)
	st := open()
	c, clock := newTestCore(t, func(o *Options) { o.Store = st })
	setClock(clock, start)
	mustAddSchedule(t, c, Schedule{Name: "hourly", Function: "h", Spec: "@hourly"})
	if fired := runSchedule(c, clock, "hourly", time.Minute, start.Add(45*time.Minute)); len(fired) != 1 {
		t.Fatalf("fired %v, want once at 09:00", fired)
	}
	waitQueued(t, c, "h", 1)
	st.Close()

	// Restart at once (09:15): the 09:00 tick is stored as fired.
	restart := func(at time.Time) (*Core, *fakeClock) {
		st = open()
		c, clock := newTestCore(t, func(o *Options) { o.Store = st; o.Now = func() time.Time { return at } })
		clock.t.Store(at.UnixNano())
		c.opts.Now = clock.Now
		return c, clock
	}
	c, clock = restart(start.Add(45 * time.Minute))
	if fired := runSchedule(c, clock, "hourly", time.Minute, start.Add(55*time.Minute)); len(fired) != 0 {
		t.Fatalf("fired %v after a restart, want nothing before 10:00", fired)
	}
	if q, _ := fnCounts(c, "h"); q != 1 {
		t.Fatalf("%d jobs after the restart, want the one stored", q)
	}
	st.Close()

	// Down from 09:25 to 14:10: the ticks of 10:00 to 14:00 fire once, at start, then 15:00.
	back := time.Date(2027, 1, 15, 14, 10, 0, 0, time.UTC)
	c, clock = restart(back)
	defer func() { st.Close() }()
	fired := runSchedule(c, clock, "hourly", time.Minute, back.Add(60*time.Minute))
	if len(fired) != 2 || !fired[0].Equal(back) || fired[1].Format(time.TimeOnly) != "15:00:00" {
		t.Fatalf("after downtime fired at %v, want once at start (14:10) and at 15:00", fired)
	}
	waitQueued(t, c, "h", 3)
	if sc := c.Schedules()[0]; sc.Last != time.Date(2027, 1, 15, 15, 0, 0, 0, time.UTC).Unix() {
		t.Fatalf("last tick %v, want 15:00", time.Unix(sc.Last, 0).UTC())
	}
}

// waitQueued waits until function has n queued jobs (the store acknowledges on its own goroutine).
func waitQueued(t *testing.T, c *Core, function string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, _ := fnCounts(c, function)
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d jobs queued, want %d", function, q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A tick while the job of the last one (same unique) is unfinished coalesces.
func TestSchedule_UniqueCoalesces(t *testing.T) {
	c, clock := newTestCore(t, nil)
	start := time.Date(2027, 1, 15, 8, 0, 30, 0, time.UTC)
	setClock(clock, start)
	mustAddSchedule(t, c, Schedule{Name: "u", Function: "f", Spec: "* * * * *", Unique: "only-one"})
	runSchedule(c, clock, "u", 10*time.Second, start.Add(5*time.Minute))
	if q, _ := fnCounts(c, "f"); q != 1 {
		t.Fatalf("%d jobs queued, want 1", q)
	}
	if sc := c.Schedules()[0]; sc.Fired != 1 || sc.Skipped != 4 {
		t.Fatalf("fired %d, coalesced %d; want 1 and 4", sc.Fired, sc.Skipped)
	}
}

// A server that is not the schedule leader skips the tick.
func TestSchedule_Leader(t *testing.T) {
	leader := false
	c, clock := newTestCore(t, func(o *Options) { o.ScheduleLeader = func() bool { return leader } })
	start := time.Date(2027, 1, 15, 8, 0, 30, 0, time.UTC)
	setClock(clock, start)
	mustAddSchedule(t, c, Schedule{Name: "m", Function: "f", Spec: "* * * * *"})
	if fired := runSchedule(c, clock, "m", 10*time.Second, start.Add(3*time.Minute)); len(fired) != 0 {
		t.Fatalf("a follower fired %v", fired)
	}
	leader = true
	if fired := runSchedule(c, clock, "m", 10*time.Second, start.Add(5*time.Minute)); len(fired) != 2 {
		t.Fatalf("the leader fired %v, want 2", fired)
	}
}

func TestSchedule_Invalid(t *testing.T) {
	c, _ := newTestCore(t, nil)
	for name, def := range map[string]Schedule{
		"no name":      {Function: "f", Spec: "@daily"},
		"bad spec":     {Name: "n", Function: "f", Spec: "61 * * * *"},
		"six fields":   {Name: "n", Function: "f", Spec: "0 0 * * * *"},
		"every":        {Name: "n", Function: "f", Spec: "@every 1h"},
		"tz in spec":   {Name: "n", Function: "f", Spec: "TZ=UTC 0 * * * *"},
		"bad zone":     {Name: "n", Function: "f", Spec: "@daily", TimeZone: "Mars/Olympus"},
		"bad priority": {Name: "n", Function: "f", Spec: "@daily", Priority: "urgent"},
		"space":        {Name: "a b", Function: "f", Spec: "@daily"},
	} {
		if _, err := c.AddSchedule(def, "test"); err == nil {
			t.Errorf("%s: %+v accepted", name, def)
		}
	}
	if len(c.Schedules()) != 0 {
		t.Fatalf("schedules %+v", c.Schedules())
	}
}

func TestSchedule_Admin(t *testing.T) {
	c, clock := newTestCore(t, nil)
	setClock(clock, time.Date(2027, 1, 15, 8, 0, 30, 0, time.UTC))
	admin := func(line string) string {
		out, _ := c.Admin(recorder{}, nil, []byte(line))
		return string(out)
	}
	for line, want := range map[string]string{
		"schedule add nightly backup 0 3 * * * tz=Europe/Berlin priority=high unique=nb data=full  run": "OK\r\n",
		"schedule add hourly report @hourly":                      "OK\r\n",
		"schedule add broken report 0 3 * *":                      "ERR INVALID_ARGUMENTS",
		"schedule add broken report 0 3 * * * color=red":          "ERR INVALID_ARGUMENTS",
		"schedule add broken report 0 3 * * * tz=Nowhere/Special": "ERR INVALID_ARGUMENTS",
		"schedule remove nosuch":                                  "ERR UNKNOWN_SCHEDULE nosuch\r\n",
	} {
		if got := admin(line); !strings.HasPrefix(got, want) {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
	want := "hourly\treport\t@hourly\tUTC\tnormal\t-\t2027-01-15T09:00:00Z\t-\n" +
		"nightly\tbackup\t0 3 * * *\tEurope/Berlin\thigh\tnb\t2027-01-16T02:00:00Z\t-\n.\n"
	if got := admin("schedule list"); got != want {
		t.Fatalf("schedule list:\n%q\nwant\n%q", got, want)
	}
	if sc := c.Schedules()[1]; sc.Data != "full  run" {
		t.Fatalf("data %q", sc.Data)
	}
	if got := admin("schedule remove hourly"); got != "OK\r\n" {
		t.Fatal(got)
	}
	if got := admin("schedule list"); strings.Contains(got, "hourly") {
		t.Fatalf("removed schedule listed: %q", got)
	}
}

// SUBMIT_JOB_SCHED: due at the next matching minute (UTC; the day of week counts from Monday = 0),
// durable and answered like SUBMIT_JOB_EPOCH; bad fields are refused.
func TestSchedule_SubmitJobSched(t *testing.T) {
	c, clock := newTestCore(t, nil)
	setClock(clock, time.Date(2027, 1, 15, 8, 0, 0, 0, time.UTC)) // a Friday
	cl := connect(t, c)
	cl.send(protocol.SubmitJobSched, "f", "", "0", "9", "", "", "0", "monday nine") // Monday 09:00
	cl.expect("JOB_CREATED " + handle(1))
	cl.send(protocol.SubmitJobSched, "f", "", "", "", "", "", "", "every minute")
	cl.expect("JOB_CREATED " + handle(2))
	for _, bad := range [][]string{{"60", "", "", "", ""}, {"", "24", "", "", ""}, {"", "", "0", "", ""},
		{"", "", "", "13", ""}, {"", "", "", "", "7"}, {"x", "", "", "", ""}, {"*/5", "", "", "", ""}, {"", "", "30", "2", ""}} {
		cl.send(protocol.SubmitJobSched, append(append([]string{"f", ""}, bad...), "d")...)
		if got := cl.take(); len(got) != 1 || got[0].typ != protocol.Error || got[0].args[0] != protocol.CodeInvalidArgument {
			t.Errorf("fields %q: got %v, want ERROR INVALID_ARGUMENT", bad, got)
		}
	}
	if q, s := fnCounts(c, "f"); q != 0 || s != 2 {
		t.Fatalf("queued %d scheduled %d, want 0 and 2", q, s)
	}
	for _, step := range []struct {
		at                time.Time
		queued, scheduled int
	}{
		{time.Date(2027, 1, 15, 8, 0, 59, 0, time.UTC), 0, 2},
		{time.Date(2027, 1, 15, 8, 1, 0, 0, time.UTC), 1, 1},
		{time.Date(2027, 1, 18, 8, 59, 59, 0, time.UTC), 1, 1},
		{time.Date(2027, 1, 18, 9, 0, 0, 0, time.UTC), 2, 0},
	} {
		setClock(clock, step.at)
		c.Tick(recorder{}, step.at)
		if q, s := fnCounts(c, "f"); q != step.queued || s != step.scheduled {
			t.Fatalf("at %v: queued %d scheduled %d, want %d and %d", step.at, q, s, step.queued, step.scheduled)
		}
	}
}

func mustOpenPebble(t *testing.T, dir string) *store.Pebble {
	t.Helper()
	st, err := store.OpenPebble(dir, store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
