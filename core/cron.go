package core

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
	"github.com/robfig/cron/v3"
)

// Named schedules: a background job submitted at every tick of a cron spec, in a time zone. They
// sit in one heap ordered by their next tick, served by Tick like the epoch jobs: no timer per
// schedule.
//
// Each tick fires once. A fired tick is recorded with its job in one store write
// (store.ScheduleStore.AddFired), so a restart neither fires a stored tick again nor loses one.
// Ticks missed while the server was down (or paused in a debugger, or a clock jump) fire once, at
// start, not as a burst: after a tick fires, the next is the first one after now. A tick while the
// schedule's last job (found by its unique) is unfinished coalesces into it and is only recorded.
//
// Time zones: a wall-clock time that a daylight-saving change skips does not fire that day (the
// cron library's rule); one it repeats fires once, at its first occurrence.

// Schedule is a named schedule as defined and shown.
type Schedule = protocol.ScheduleInfo

// ErrBadSchedule reports a schedule definition that is not valid.
var ErrBadSchedule = errors.New("bad schedule")

// ErrNoSuchSchedule names no schedule the server has.
var ErrNoSuchSchedule = errors.New("no such schedule")

// cronParser reads standard five-field cron specs and @descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// maxScheduleData bounds a schedule's payload: it is kept in memory and in the store's record.
const maxScheduleData = 1 << 20

// schedule is a named schedule's live state.
type schedule struct {
	def   Schedule
	spec  cron.Schedule
	loc   *time.Location
	prio  priority
	next  time.Time // zero: never (no tick within five years)
	index int       // in the heap; -1: not in it
}

// schedules is the core's named schedules. Its fields are guarded by the core's lock but for mu.
type schedules struct {
	mu     sync.Mutex // orders the store writes of definitions; taken before the core's lock
	byName map[string]*schedule
	heap   schedHeap
}

type schedHeap []*schedule

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, k int) bool { return h[i].next.Before(h[k].next) }
func (h schedHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].index, h[k].index = i, k
}
func (h *schedHeap) Push(x any) {
	sc := x.(*schedule)
	sc.index = len(*h)
	*h = append(*h, sc)
}
func (h *schedHeap) Pop() any {
	old := *h
	sc := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	sc.index = -1
	return sc
}

// compileSchedule validates def and makes its live state (without a next tick).
func compileSchedule(def Schedule) (*schedule, error) {
	bad := func(format string, args ...any) (*schedule, error) {
		return nil, fmt.Errorf("%w: %s", ErrBadSchedule, fmt.Sprintf(format, args...))
	}
	word := func(what, v string, limit int, required bool) error {
		switch {
		case v == "" && required:
			return fmt.Errorf("%w: no %s", ErrBadSchedule, what)
		case len(v) > limit:
			return fmt.Errorf("%w: %s longer than %d bytes", ErrBadSchedule, what, limit)
		case strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '=' }):
			return fmt.Errorf("%w: %s %q holds whitespace, a control character or '='", ErrBadSchedule, what, v)
		}
		return nil
	}
	if err := errors.Join(word("name", def.Name, 128, true), word("function", def.Function, protocol.MaxFunctionSize, true),
		word("unique", def.Unique, protocol.MaxUniqueSize, false), word("time zone", def.TimeZone, 128, false)); err != nil {
		return nil, err
	}
	if def.Unique == "-" {
		return bad(`unique "-" (the payload as key) is not for schedules: give a name`)
	}
	if len(def.Data) > maxScheduleData {
		return bad("payload longer than %d bytes", maxScheduleData)
	}
	sc := &schedule{def: def, index: -1, prio: prioNormal}
	switch def.Priority {
	case "", "normal":
		sc.def.Priority = "normal"
	case "high":
		sc.prio = prioHigh
	case "low":
		sc.prio = prioLow
	default:
		return bad("priority %q: high, normal or low", def.Priority)
	}
	var err error
	switch def.TimeZone {
	case "", "UTC":
		sc.def.TimeZone, sc.loc = "UTC", time.UTC
	case "Local":
		return bad("time zone Local depends on the machine: name an IANA zone")
	default:
		if sc.loc, err = time.LoadLocation(def.TimeZone); err != nil {
			return bad("time zone %q: %v", def.TimeZone, err)
		}
	}
	spec := strings.Join(strings.Fields(def.Spec), " ")
	switch {
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return bad("give the time zone as tz=, not in the spec")
	case strings.HasPrefix(spec, "@every"):
		return bad("@every is an interval, not a calendar schedule: use a cron spec")
	}
	if sc.spec, err = cronParser.Parse(spec); err != nil {
		return bad("spec %q: %v", def.Spec, err)
	}
	sc.def.Spec = spec
	return sc, nil
}

// nextAfter is sc's first tick after t, skipping a wall-clock time a daylight-saving change
// repeats when last fired at its first occurrence.
func (sc *schedule) nextAfter(t time.Time, last int64) time.Time {
	next := sc.spec.Next(t.In(sc.loc))
	if last != 0 && !next.IsZero() {
		prev := time.Unix(last, 0).In(sc.loc)
		if n := next.In(sc.loc); n.Format(time.DateTime) == prev.Format(time.DateTime) {
			next = sc.spec.Next(next)
		}
	}
	return next
}

// view is sc as shown. The lock is held.
func (sc *schedule) view() Schedule {
	v := sc.def
	v.Next = 0
	if !sc.next.IsZero() {
		v.Next = sc.next.Unix()
	}
	return v
}

// place puts sc in the heap at its next tick. The lock is held.
func (s *Core) placeSchedule(sc *schedule) {
	h := &s.sched.heap
	if sc.index >= 0 {
		heap.Remove(h, sc.index)
	}
	if sc.next.IsZero() {
		return
	}
	heap.Push(h, sc)
	if (*h)[0] == sc {
		s.kickTick()
	}
}

// installSchedule makes sc live, replacing a schedule of the same name; its first tick is the
// first after its last fired tick (so a tick missed while down fires at the next Tick) or, for a
// schedule never fired, after now. The lock is held.
func (s *Core) installSchedule(sc *schedule, now time.Time) {
	if s.sched.byName == nil {
		s.sched.byName = make(map[string]*schedule)
	}
	if old := s.sched.byName[sc.def.Name]; old != nil && old.index >= 0 {
		heap.Remove(&s.sched.heap, old.index)
	}
	s.sched.byName[sc.def.Name] = sc
	from := now
	if sc.def.Last != 0 {
		from = time.Unix(sc.def.Last, 0)
	}
	sc.next = sc.nextAfter(from, sc.def.Last)
	s.placeSchedule(sc)
}

// AddSchedule defines (or replaces) a named schedule and stores it when the store keeps schedules
// (store.ScheduleStore). A replaced schedule keeps its last tick, so redefining it does not fire
// it again. by names who asked.
func (s *Core) AddSchedule(def Schedule, by string) (Schedule, error) {
	def.Last, def.Next, def.Fired, def.Skipped = 0, 0, 0, 0
	sc, err := compileSchedule(def)
	if err != nil {
		return Schedule{}, err
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	s.lock()
	now := s.opts.Now()
	sc.def.Updated, sc.def.Origin = now.Unix(), by
	if old := s.sched.byName[sc.def.Name]; old != nil {
		sc.def.Last = old.def.Last
	}
	s.installSchedule(sc, now)
	v := sc.view()
	s.mu.Unlock()
	s.log.Info("schedule defined", "schedule", v.Name, "function", v.Function, "spec", v.Spec, "tz", v.TimeZone, "by", by)
	return v, s.saveSchedule(v.Name, &v)
}

// RemoveSchedule forgets a named schedule; jobs it submitted stay.
func (s *Core) RemoveSchedule(name, by string) error {
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	s.lock()
	sc := s.sched.byName[name]
	if sc != nil {
		delete(s.sched.byName, name)
		if sc.index >= 0 {
			heap.Remove(&s.sched.heap, sc.index)
		}
	}
	s.mu.Unlock()
	if sc == nil {
		return ErrNoSuchSchedule
	}
	s.log.Info("schedule removed", "schedule", name, "by", by)
	return s.saveSchedule(name, nil)
}

// Schedules lists the named schedules by name.
func (s *Core) Schedules() []Schedule {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Schedule, 0, len(s.sched.byName))
	for _, sc := range s.sched.byName {
		out = append(out, sc.view())
	}
	slices.SortFunc(out, func(a, b Schedule) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// saveSchedule records a definition (nil: removes it) in the store, if it keeps schedules.
func (s *Core) saveSchedule(name string, def *Schedule) error {
	ss, ok := s.opts.Store.(store.ScheduleStore)
	if !ok {
		return nil
	}
	var data []byte
	if def != nil {
		stored := *def
		stored.Next, stored.Fired, stored.Skipped = 0, 0, 0
		data, _ = json.Marshal(stored)
	}
	if err := ss.SaveSchedule(name, data); err != nil {
		s.log.Error("schedule changed but not stored: the change lasts until a restart", "schedule", name, "err", err)
		return err
	}
	return nil
}

// loadSchedules installs the schedules the store keeps, then those of Options.Schedules (which
// replace stored ones of the same name, keeping their last tick, and are stored in turn). The
// lock is held.
func (s *Core) loadSchedules() ([]Schedule, error) {
	now := s.opts.Now()
	if ss, ok := s.opts.Store.(store.ScheduleStore); ok {
		err := ss.LoadSchedules(func(name string, data []byte, fired int64) error {
			var def Schedule
			if err := json.Unmarshal(data, &def); err != nil {
				s.log.Error("ignoring unreadable stored schedule", "schedule", name, "err", err)
				return nil
			}
			sc, err := compileSchedule(def)
			if err != nil || sc.def.Name != name {
				s.log.Error("ignoring invalid stored schedule", "schedule", name, "err", err)
				return nil
			}
			sc.def.Last = max(sc.def.Last, fired)
			s.installSchedule(sc, now)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var save []Schedule
	for _, def := range s.opts.Schedules {
		sc, err := compileSchedule(def)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", def.Name, err)
		}
		sc.def.Updated, sc.def.Source = now.Unix(), "flag"
		if old := s.sched.byName[sc.def.Name]; old != nil {
			sc.def.Last = old.def.Last
			sc.def.Updated = old.def.Updated
		}
		s.installSchedule(sc, now)
		save = append(save, sc.view())
	}
	return save, nil
}

// scheduleLeader reports whether this server fires schedules now (Options.ScheduleLeader).
func (s *Core) scheduleLeader() bool {
	return s.opts.ScheduleLeader == nil || s.opts.ScheduleLeader()
}

// fireSchedules fires the schedules whose tick has come and returns when the next one is due
// (zero: none). The lock is held.
func (s *Core) fireSchedules(tx Tx, now time.Time) time.Time {
	h := &s.sched.heap
	for h.Len() > 0 && !(*h)[0].next.After(now) {
		sc := (*h)[0]
		tick := sc.next
		switch {
		case s.draining:
			// Not fired and not recorded: after the restart it is a missed tick, fired once.
		case !s.scheduleLeader():
			s.log.Debug("schedule tick left to the leader", "schedule", sc.def.Name)
		default:
			s.fireSchedule(tx, sc, tick, now)
			sc.def.Last = tick.Unix()
		}
		sc.next = sc.nextAfter(now, sc.def.Last)
		s.placeSchedule(sc)
	}
	if h.Len() == 0 {
		return time.Time{}
	}
	return (*h)[0].next
}

// fireSchedule submits the background job of sc's tick, or coalesces it into the unfinished job
// holding its unique. The lock is held.
func (s *Core) fireSchedule(tx Tx, sc *schedule, tick, now time.Time) {
	ss, _ := s.opts.Store.(store.ScheduleStore)
	name := sc.def.Name
	logDone := func(err error) {
		if err != nil {
			s.log.Error("schedule tick not recorded", "schedule", name, "err", err)
		}
	}
	f := s.function([]byte(sc.def.Function), true)
	key := sc.def.Unique
	if key != "" && f.uniques[key] != nil {
		sc.def.Skipped++
		s.log.Info("schedule tick coalesced: its last job is unfinished", "schedule", name, "unique", key)
		if ss != nil {
			ss.AddFired(nil, name, tick.Unix(), logDone)
		}
		return
	}
	refuse := s.overServerLimit(len(sc.def.Data))
	if limit := f.maxQueue[sc.prio]; limit > 0 && f.limitCount() >= limit {
		refuse = "Job queue is full"
	}
	if refuse != "" {
		s.log.Warn("schedule tick refused: no job submitted", "schedule", name, "function", f.name, "why", refuse)
		s.collect(f)
		if ss != nil {
			ss.AddFired(nil, name, tick.Unix(), logDone)
		}
		return
	}
	j := &job{seq: s.newSeq(), fn: f, uniqueKey: key, data: []byte(sc.def.Data), prio: sc.prio, background: true,
		created: now.UnixNano()}
	s.jobs[j.seq] = j
	s.queuedBytes += int64(len(j.data))
	s.emitJob(EventSubmitted, j, "schedule "+name)
	if key != "" {
		f.uniques[key] = j
	}
	sc.def.Fired++
	s.log.Info("schedule fired", "schedule", name, "tick", tick.UTC().Format(time.RFC3339), "handle", s.handleOf(j))
	if s.opts.Store == nil {
		s.makeRunnable(tx, j)
		return
	}
	// As persist, with no client waiting for JOB_CREATED.
	j.state = jobPersisting
	f.persisting++
	j.stored = true
	done := func(err error) { s.persisted(j, err) }
	if ss != nil {
		ss.AddFired(s.record(j), name, tick.Unix(), done)
	} else {
		s.opts.Store.Add(s.record(j), done)
	}
}

// schedWhen is the due time of a SUBMIT_JOB_SCHED: the next minute after now, in UTC, that
// matches its five fields (see protocol.SchedCronSpec).
func (s *Core) schedWhen(fields [][]byte) (time.Time, error) {
	spec, err := protocol.SchedCronSpec([5][]byte(fields))
	if err != nil {
		return time.Time{}, err
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return time.Time{}, err
	}
	when := sched.Next(s.opts.Now().UTC())
	if when.IsZero() {
		return time.Time{}, errors.New("no such date within five years")
	}
	return when, nil
}

// adminSchedule handles the schedule admin commands (Gear extensions):
//
//	schedule add NAME FUNCTION MIN HOUR DOM MON DOW|@DESCRIPTOR [tz=ZONE] [priority=P] [unique=U] [data=REST]
//	schedule list
//	schedule remove NAME
func (s *Core) adminSchedule(cmd protocol.AdminCommand, line []byte, by string) string {
	errLine := func(code string, err error) string {
		return "ERR " + code + " " + strings.ReplaceAll(err.Error(), " ", "+") + "\r\n"
	}
	switch cmd.Name {
	case protocol.AdminScheduleList:
		return string(protocol.AppendSchedules(nil, s.Schedules()))
	case protocol.AdminScheduleRemove:
		if len(cmd.Args) != 1 {
			return "ERR INVALID_ARGUMENTS Usage:+schedule+remove+NAME\r\n"
		}
		switch err := s.RemoveSchedule(cmd.Args[0], by); {
		case errors.Is(err, ErrNoSuchSchedule):
			return "ERR UNKNOWN_SCHEDULE " + strings.ReplaceAll(cmd.Args[0], " ", "+") + "\r\n"
		case err != nil:
			return errLine("QUEUE_ERROR", err)
		}
		return "OK\r\n"
	}
	def, err := protocol.ParseScheduleAdd(string(line))
	if err != nil {
		return errLine("INVALID_ARGUMENTS", err)
	}
	if _, err := s.AddSchedule(def, by); errors.Is(err, ErrBadSchedule) {
		return errLine("INVALID_ARGUMENTS", err)
	} else if err != nil {
		return errLine("QUEUE_ERROR", err)
	}
	return "OK\r\n"
}

// ValidateSchedule checks a definition as AddSchedule does (for a start option's early check).
func ValidateSchedule(def Schedule) error {
	_, err := compileSchedule(def)
	return err
}
