package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/internal/faillog"
	"github.com/gearhq/gear/store"
)

// Fleet runs a server's side of a fleet of gear servers on one PostgreSQL database (issue 17): it
// renews the server's lease every TTL/3, fences the core the moment the lease runs out unrenewed,
// rejoins under a new epoch when the database answers again (forgetting the jobs and dead jobs
// adopted meanwhile), adopts the jobs and dead sets of servers whose lease lapsed, and holds the schedule leader lease
// (Leader, for Options.ScheduleLeader) so named schedules fire once per fleet.
//
// Time is measured on this machine: the lease counts from when the renewal was sent, so the server
// fences itself no later than the database sees its lease end (same clock rate assumed; the
// database's end is from when it ran the statement, which is later).
type Fleet struct {
	st    *store.Postgres
	ttl   time.Duration
	check time.Duration // how often lapsed leases are looked for
	log   *slog.Logger

	srv    *Server
	stop   chan struct{}
	ctx    context.Context // ends at Close: bounds the database calls made on the loop's behalf
	cancel context.CancelFunc
	wg     sync.WaitGroup
	leader atomic.Int64 // Unix nanoseconds until which this server leads the schedules
	// adopting is set while an adoption runs (one at a time, beside the loop's renewals).
	adopting atomic.Bool

	// beatLog paces the loop's warnings: a database that is down fails a beat every check.
	beatLog faillog.Run

	mu         sync.Mutex
	fenced     bool
	leaseUntil time.Time
	fenceTimer *time.Timer
}

// NewFleet returns the fleet loop of a server whose store is st, with leases of ttl. Start it once
// the server exists; Leader may be given to the server's options before.
func NewFleet(st *store.Postgres, ttl time.Duration, log *slog.Logger) *Fleet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Fleet{st: st, ttl: ttl, check: min(ttl/3, 250*time.Millisecond), log: log, stop: make(chan struct{}), ctx: ctx, cancel: cancel,
		beatLog: faillog.Run{Failure: "cannot renew the fleet lease", Recovery: "fleet lease renewed again", Count: "failed_beats", Level: slog.LevelWarn}}
}

// Leader reports whether this server fires the fleet's named schedules now.
func (f *Fleet) Leader() bool { return time.Now().UnixNano() < f.leader.Load() }

// Start starts the loop for srv. The lease given when the store opened counts from then.
func (f *Fleet) Start(srv *Server) {
	f.srv = srv
	srv.fleet.Store(f)
	f.mu.Lock()
	f.fenceTimer = time.AfterFunc(time.Hour, f.lapsed)
	f.mu.Unlock()
	f.renewed(f.st.LeaseStart())
	f.wg.Go(f.loop)
}

// Close stops the loop. The lease is left to lapse: the jobs stay the owner's until then.
func (f *Fleet) Close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.cancel() // an adoption under way does not hold Close up
	f.wg.Wait()
	f.mu.Lock()
	if f.fenceTimer != nil {
		f.fenceTimer.Stop()
	}
	f.mu.Unlock()
}

// renewed records a lease sent at sent: the fence falls when it runs out.
func (f *Fleet) renewed(sent time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaseUntil = sent.Add(f.ttl)
	f.fenceTimer.Reset(time.Until(f.leaseUntil))
}

// lapsed fences the core if the lease ran out unrenewed.
func (f *Fleet) lapsed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced || time.Now().Before(f.leaseUntil) {
		return
	}
	f.fence("lease lapsed")
}

// fence fences the core. f.mu must be held.
func (f *Fleet) fence(reason string) {
	if !f.fenced {
		f.fenced = true
		f.leader.Store(0)
		f.srv.core.SetFenced(true, reason)
	}
}

func (f *Fleet) isFenced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

func (f *Fleet) loop() {
	tick := time.NewTicker(f.check)
	defer tick.Stop()
	nextBeat := time.Now() // the lease given at open is renewed at once
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		if now := time.Now(); !now.Before(nextBeat) {
			if f.beat(now) {
				f.beatLog.OK(f.log)
				nextBeat = now.Add(f.ttl / 3)
			} else {
				nextBeat = now.Add(f.check) // the database did not answer: try again soon
			}
		}
		if !f.isFenced() && f.adopting.CompareAndSwap(false, true) {
			// On a goroutine of its own: adopting a server that owned many jobs takes longer than
			// a lease (about 12 µs a job), and this loop must go on renewing this server's lease
			// meanwhile, or the adopter fences itself.
			f.wg.Go(func() {
				defer f.adopting.Store(false)
				f.adoptLapsed()
			})
		}
	}
}

// beat renews the lease (or, fenced, rejoins) and the schedule leader lease; false if it failed.
func (f *Fleet) beat(now time.Time) bool {
	ctx, cancel := context.WithTimeout(context.Background(), f.ttl/3)
	defer cancel()
	if f.isFenced() {
		return f.rejoin(ctx, now)
	}
	err := f.st.Renew(ctx, f.ttl)
	if errors.Is(err, store.ErrFenced) {
		f.mu.Lock()
		f.fence("lease taken over: jobs adopted by another server")
		f.mu.Unlock()
		return f.rejoin(ctx, now)
	}
	if err != nil {
		f.beatLog.Failed(f.log, err, "step", "renew", "lease_until", f.leaseEnd())
		return false
	}
	f.renewed(now)
	f.lead(ctx, now)
	return true
}

func (f *Fleet) leaseEnd() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaseUntil
}

// rejoin takes a new epoch and lease, drops the jobs and dead jobs the server no longer owns and
// lifts the fence.
func (f *Fleet) rejoin(ctx context.Context, now time.Time) bool {
	dead := f.srv.core.DeadHandles() // before the store is asked: a job dying meanwhile stays
	owned, ownedDead, err := f.st.Rejoin(ctx, f.ttl)
	if err != nil {
		f.beatLog.Failed(f.log, err, "step", "rejoin", "fenced", true)
		return false
	}
	f.srv.core.ForgetUnowned(func(seq uint64) bool { return owned[seq] })
	f.srv.core.ForgetUnownedDead(dead, func(h string) bool { return ownedDead[h] })
	f.mu.Lock()
	f.fenced = false
	f.leaseUntil = now.Add(f.ttl)
	f.fenceTimer.Reset(time.Until(f.leaseUntil))
	f.srv.core.SetFenced(false, "")
	f.mu.Unlock()
	f.lead(ctx, now)
	return true
}

// lead takes or renews the schedule leader lease.
func (f *Fleet) lead(ctx context.Context, now time.Time) {
	ok, err := f.st.LeadSchedules(ctx, f.ttl)
	if err != nil {
		f.log.Warn("schedule leader lease", "err", err)
		return
	}
	if ok {
		f.leader.Store(now.Add(f.ttl).UnixNano())
	} else {
		f.leader.Store(0)
	}
}

// adoptLapsed adopts the jobs and dead sets of every server whose lease lapsed.
func (f *Fleet) adoptLapsed() {
	ctx, cancel := context.WithTimeout(f.ctx, max(f.ttl, adoptTimeout))
	defer cancel()
	dead, err := f.st.Lapsed(ctx)
	if err != nil {
		return // the beat reports the database's trouble
	}
	for _, owner := range dead {
		began := time.Now()
		a, err := f.st.Adopt(ctx, owner, f.srv.core.AllocSeqs)
		tx := time.Since(began)
		if err != nil {
			f.log.Warn("adoption failed", "from", owner, "err", err)
			continue
		}
		if a == nil {
			continue
		}
		f.srv.core.Adopt(a.Jobs)
		f.srv.core.AdoptDead(a.Dead)
		// took: the adoption's transaction and the hand-over of its jobs to the core; tx: the
		// transaction alone (bench/pgfleet.sh reads both).
		f.log.Info("adopted the jobs of a server whose lease lapsed", "from", owner, "jobs", len(a.Jobs),
			"dead", len(a.Dead), "took", time.Since(began).Round(time.Millisecond), "tx", tx.Round(time.Millisecond))
	}
}

// adoptTimeout bounds one round of adoptions: a million jobs take about 12 s here.
const adoptTimeout = 2 * time.Minute

// Fleet is the fleet's state as the database records it, for `fleet` and /api/v1/fleet.
func (f *Fleet) Fleet(ctx context.Context) (store.FleetView, error) { return f.st.Fleet(ctx) }

// Fleet is the server's fleet loop; nil when it does not run in a fleet.
func (s *Server) Fleet() *Fleet { return s.fleet.Load() }

// isFleetCommand reports whether an admin line is `fleet`, a Gear extension answered here rather
// than by the core, which knows nothing of the database.
func isFleetCommand(line []byte) bool { return string(bytes.TrimSpace(line)) == "fleet" }

// fleetText answers the admin `fleet`: a line per server of the fleet,
//
//	OWNER epoch=N alive|lapsed lease_until=RFC3339|- jobs=N adoptions=N jobs_adopted=N adopted_by=OWNER|-
//
// the schedule leader and this server's own name first, then ".".
func (s *Server) fleetText() []byte {
	f := s.fleet.Load()
	if f == nil {
		return []byte("ERR NOT_A_FLEET This+server+is+not+in+a+fleet+(--store+postgres)\r\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := f.Fleet(ctx)
	if err != nil {
		return []byte("ERR QUEUE_ERROR " + url.QueryEscape(err.Error()) + "\r\n")
	}
	var b bytes.Buffer
	fenced, why := s.core.Fenced()
	state := "serving"
	if fenced {
		state = "fenced (" + why + ")"
	}
	fmt.Fprintf(&b, "self=%s epoch=%d %s schedule_leader=%s\r\n", v.Self, v.Epoch, state, orDash(v.ScheduleLeader))
	for _, sv := range v.Servers {
		alive, until := "lapsed", "-"
		if sv.Alive {
			alive = "alive"
		}
		if !sv.LeaseUntil.IsZero() {
			until = sv.LeaseUntil.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(&b, "%s epoch=%d %s lease_until=%s jobs=%d adoptions=%d jobs_adopted=%d adopted_by=%s\r\n",
			sv.Owner, sv.Epoch, alive, until, sv.Jobs, sv.Adoptions, sv.JobsAdopted, orDash(sv.AdoptedBy))
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// FleetStats are the fleet loop's counters, for the metrics.
type FleetStats struct {
	Adoptions   int64 // servers whose jobs this one adopted since it started
	JobsAdopted int64
	Fenced      bool
}

// Stats reports the fleet loop's counters.
func (f *Fleet) Stats() FleetStats {
	adoptions, jobs := f.st.FleetCounters()
	return FleetStats{Adoptions: adoptions, JobsAdopted: jobs, Fenced: f.isFenced()}
}
