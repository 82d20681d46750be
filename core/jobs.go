package core

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/gearhq/gear/internal/bufpool"
	"github.com/gearhq/gear/protocol"
)

// This file holds the job lifecycle. Every function here expects the core lock to be held.
//
//	submit ──► queued ──grab──► running ──WORK_COMPLETE/FAIL/EXCEPTION──► done
//	   │          ▲                │
//	   │          └─worker lost────┘ (retries++, back to the front; failed after --job-retries)
//	   └─epoch─► scheduled ──due──► queued
//
// A queued foreground job whose last client leaves, and any job cancelled by the admin, go to done.

// function returns the named function, creating it when create is set.
func (s *Core) function(name []byte, create bool) *function {
	if f, ok := s.functions[string(name)]; ok {
		return f
	}
	if !create {
		return nil
	}
	f := &function{name: string(name), uniques: make(map[string]*job)}
	s.functions[f.name] = f
	return f
}

// collect notes that f may have become idle; the schedule loop removes it once it stayed idle for
// Options.FunctionIdleTTL (at once when that is zero).
func (s *Core) collect(f *function) {
	if !f.idle() || s.functions[f.name] != f {
		return
	}
	if s.opts.FunctionIdleTTL == 0 {
		delete(s.functions, f.name)
		return
	}
	f.idleSince = s.opts.Now()
}

// sweepIdleFunctions removes functions idle for longer than Options.FunctionIdleTTL.
func (s *Core) sweepIdleFunctions(now time.Time) {
	for name, f := range s.functions {
		if f.idle() && !f.idleSince.IsZero() && now.Sub(f.idleSince) >= s.opts.FunctionIdleTTL {
			delete(s.functions, name)
		}
	}
}

// enqueue makes j runnable and wakes workers for it. front puts it ahead of younger jobs (requeue).
func (s *Core) enqueue(tx Tx, j *job, front bool) {
	j.state = jobQueued
	f := j.fn
	if front {
		f.queues[j.prio].pushFront(j)
	} else {
		f.queues[j.prio].pushBack(j)
	}
	f.queued[j.prio]++
	s.wake(tx, f)
}

// wake sends NOOP to sleeping workers of f that have not been woken yet, rotating through them so
// wake-ups spread over the fleet. How many depends on Options.WorkerWakeup. A worker that was
// passed over (woken before and never grabbed, see checkWakes) is woken only when no other will do.
func (s *Core) wake(tx Tx, f *function) { s.wakeFor(tx, f, 1) }

// wakeFor is wake for jobs jobs that became runnable at once: a resume, a fence lifted, a gate
// reopened. With one wake-up per job, as many sleepers as jobs (and as the gate lets start) are
// woken, not one for the whole queue.
func (s *Core) wakeFor(tx Tx, f *function, jobs int) {
	if s.fence.on {
		return // woken when the fence lifts (SetFenced)
	}
	if g := f.gate; g != nil {
		if !s.gateOpen(f, s.opts.Now()) {
			return // woken when the gate opens (gateOpened, checkTokens)
		}
		if g.maxRunning > 0 {
			jobs = min(jobs, g.maxRunning-f.running)
		}
		if g.rate > 0 {
			jobs = min(jobs, int(g.tokens)) // gateOpen saw at least one
		}
	}
	limit := s.opts.WorkerWakeup
	switch {
	case limit == WakeOnePerJob:
		limit = jobs
	case limit == WakeAll:
		limit = len(f.workers)
	default:
		limit = min(limit*jobs, len(f.workers))
	}
	n, start := len(f.workers), f.wakeNext
	for pass := 0; pass < 2 && limit > 0; pass++ {
		for i := 0; i < n && limit > 0; i++ {
			w := f.workers[(start+i)%n]
			if w.sleeping && !w.noopSent && w.passedOver == (pass == 1) {
				s.sendNoop(tx, w)
				limit--
				f.wakeNext = (start + i + 1) % n
			}
		}
	}
}

// sendNoop wakes sleeping worker w and notes when, so that checkWakes can tell if it never acts on
// the NOOP.
func (s *Core) sendNoop(tx Tx, w *Peer) {
	w.noopSent = true
	w.wokenAt = s.opts.Now()
	s.send(tx, w, protocol.Noop)
	if len(s.wakeChecks) == 0 {
		s.kickTick()
	}
	s.wakeChecks = append(s.wakeChecks, wakeCheck{w, w.wokenAt})
}

// wakeCheck is a NOOP sent at a time, to be checked once Options.WakeTimeout has passed.
type wakeCheck struct {
	w  *Peer
	at time.Time
}

// checkWakes passes over every worker woken at least Options.WakeTimeout ago that still has not
// asked for a job — its process is stopped or hung, or it was forked and killed while its parent
// holds the socket open — and wakes another sleeper for each of its functions that has jobs
// waiting. Without it one unresponsive sleeper would stall a function under wake-one. It returns
// when the next check falls due (zero: none pending).
func (s *Core) checkWakes(tx Tx, now time.Time) time.Time {
	i := 0
	for ; i < len(s.wakeChecks); i++ {
		wc := s.wakeChecks[i]
		due := wc.at.Add(s.opts.WakeTimeout)
		if due.After(now) {
			break
		}
		s.wakeChecks[i] = wakeCheck{}
		w := wc.w
		if w.gone || !w.sleeping || !w.noopSent || !w.wokenAt.Equal(wc.at) {
			continue // it acted on the NOOP, or left
		}
		if !w.passedOver {
			w.passedOver = true
			w.Log.Info("woken worker has not asked for a job; waking another", "after", s.opts.WakeTimeout)
		}
		for _, a := range w.abilities {
			if a.fn.queuedTotal() > 0 {
				s.wake(tx, a.fn)
			}
		}
	}
	s.wakeChecks = s.wakeChecks[i:]
	if len(s.wakeChecks) == 0 {
		s.wakeChecks = nil // let a burst's backing array go
		return time.Time{}
	}
	return s.wakeChecks[0].at.Add(s.opts.WakeTimeout)
}

// nextJob takes the best runnable job for worker c: the highest priority across all its functions
// (as gearmand 2.0), rotating among its functions so none starves at equal priority.
func (s *Core) nextJob(c *Peer) *job {
	n := len(c.abilities)
	var now time.Time // read once, and only for a gated function
	for p := prioHigh; p < numPriorities; p++ {
		for i := 0; i < n; i++ {
			k := (c.grabNext + i) % n
			f := c.abilities[k].fn
			if f.queued[p] == 0 {
				continue
			}
			if f.gate != nil {
				if now.IsZero() {
					now = s.opts.Now()
				}
				if !s.gateOpen(f, now) {
					continue
				}
			}
			if j := f.queues[p].popRunnable(); j != nil {
				f.queued[p]--
				c.grabNext = (k + 1) % n
				return j
			}
		}
	}
	return nil
}

// assign hands j to worker c.
func (s *Core) assign(j *job, c *Peer) {
	j.state = jobRunning
	j.worker = c
	j.fn.running++
	if g := j.fn.gate; g != nil {
		g.started()
	}
	if c.running == nil {
		c.running = make(map[*job]int64)
	}
	c.running[j] = 0 // the start time, if an observer wants it, is set by emitJob
	s.emitJob(EventStarted, j, "")
	for _, a := range c.abilities {
		if a.fn == j.fn && a.timeout > 0 {
			x := j.extra()
			x.deadline = s.opts.Now().Add(a.timeout)
			if s.timeouts.peek() == nil || x.deadline.Before(s.timeouts.peek().x.deadline) {
				s.kickTick()
			}
			s.timeouts.add(j)
			break
		}
	}
}

// finish removes j from every index: it completed, failed, was cancelled or dropped.
func (s *Core) finish(j *job) {
	f := j.fn
	switch j.state {
	case jobRunning:
		s.unassign(j)
	case jobQueued:
		f.queued[j.prio]-- // its ring slot is skipped lazily
	case jobScheduled:
		f.scheduled--
		s.epochs.remove(j)
	case jobPersisting:
		f.persisting--
	case jobDone:
		return
	}
	if j.stored {
		s.opts.Store.Remove(j.seq)
		j.stored = false
	}
	j.state = jobDone
	j.worker = nil
	delete(s.jobs, j.seq)
	s.queuedBytes -= int64(len(j.data))
	if j.x != nil && j.x.handle != "" {
		delete(s.foreignJobs, j.x.handle)
	}
	var shrank bool
	if s.jobs, shrank = shrunk(s.jobs, &s.jobsPeak); shrank {
		s.freeMemory()
	}
	if j.uniqueKey != "" && f.uniques[j.uniqueKey] == j {
		delete(f.uniques, j.uniqueKey)
		if f.uniques, shrank = shrunk(f.uniques, &f.uniquesPeak); shrank {
			s.freeMemory()
		}
	}
	for _, c := range j.clients {
		delete(c.waiting, j)
	}
	j.clients = nil
	if j.pooledData {
		bufpool.Put(j.data)
	}
	j.data = nil
	s.collect(f)
	s.checkDrained()
}

// forward sends a WORK_* packet about j to every client waiting on it.
func (s *Core) forward(tx Tx, j *job, t protocol.Type, args ...[]byte) {
	for _, c := range j.clients {
		s.send(tx, c, t, args...)
	}
}

// failClients tells j's clients it failed, with WORK_FAIL. It is the server's own verdict (cancelled,
// timed out, retries exhausted), so it is a plain failure whatever the client's options: gearmand
// does the same, and libgearman clients (PHP, the gearman CLI), which always ask for exceptions,
// report GEARMAN_WORK_FAIL for it. The reason goes to the log.
func (s *Core) failClients(tx Tx, j *job, reason string) {
	if len(j.clients) > 0 {
		s.log.Info("job failed by the server", "handle", s.handleOf(j), "function", j.fn.name, "reason", reason)
	}
	h := s.handleArg(j)
	for _, c := range j.clients {
		s.send(tx, c, protocol.WorkFail, h)
	}
}

// requeueLost puts back a job whose worker went away, or fails it after Options.JobRetries attempts.
func (s *Core) requeueLost(tx Tx, j *job) {
	if j.retries < math.MaxUint16 {
		j.retries++
	}
	switch {
	case len(j.clients) == 0 && !j.background:
		// Its clients left while it ran: nobody wants the result any more.
		s.finish(j)
		return
	case s.opts.JobRetries > 0 && int(j.retries) >= s.opts.JobRetries:
		s.log.Warn("job dropped: its worker was lost too many times", "handle", s.handleOf(j),
			"function", j.fn.name, "attempts", j.retries)
		reason := "job failed: worker lost " + strconv.FormatUint(uint64(j.retries), 10) + " times"
		s.failClients(tx, j, reason)
		s.emitJob(EventFailed, j, reason)
		if !s.retryOrBury(tx, j, reason) {
			s.finish(j)
		}
		return
	}
	s.log.Info("worker lost; job requeued", "handle", s.handleOf(j), "function", j.fn.name, "retries", j.retries)
	s.emitJob(EventRequeued, j, "worker lost")
	s.unassign(j)
	if j.x != nil {
		j.x.num, j.x.den = "", ""
	}
	if j.stored {
		s.opts.Store.SetRetries(s.record(j))
	}
	s.enqueue(tx, j, true)
}

// unassign takes running job j away from its worker.
func (s *Core) unassign(j *job) {
	j.fn.running--
	if g := j.fn.gate; g != nil && g.maxRunning > 0 && j.fn.running == g.maxRunning-1 {
		defer s.gateOpened(s.async, j.fn) // a place to run: once the job has left the worker
	}
	s.timeouts.remove(j)
	if w := j.worker; w != nil {
		delete(w.running, j)
		w.rememberEnded(j)
	}
	j.worker = nil
}

// detachClient removes client c from j. A queued foreground job nobody waits for any more is dropped:
// running it would be work for nobody. A running one finishes, its result discarded.
func (s *Core) detachClient(j *job, c *Peer) {
	j.clients = slices.DeleteFunc(j.clients, func(x *Peer) bool { return x == c })
	if len(j.clients) == 0 && !j.background && j.state == jobQueued {
		s.finish(j)
	}
}

// expire handles a CAN_DO_TIMEOUT: the job failed. Gear tells the clients (WORK_FAIL) rather than
// requeueing silently as gearmand does, because a job that outran its limit once is likely to again and a silent requeue
// loops forever. The worker's late result is ignored.
func (s *Core) expire(tx Tx, j *job) {
	j.x.heapIndex = -1
	s.log.Warn("job timed out", "handle", s.handleOf(j), "function", j.fn.name)
	s.failClients(tx, j, "job timed out")
	s.emitJob(EventTimedOut, j, "job timed out")
	if !s.retryOrBury(tx, j, "timed out (CAN_DO_TIMEOUT)") {
		s.finish(j)
	}
}

// resetAbilities withdraws every function c registered.
func (s *Core) resetAbilities(tx Tx, c *Peer) {
	for _, a := range c.abilities {
		s.removeWorker(tx, a.fn, c)
		s.emitPeer(EventUnregistered, c, a.fn.name)
	}
	c.abilities = nil
	c.grabNext = 0
}

func (s *Core) removeWorker(tx Tx, f *function, c *Peer) {
	for i, w := range f.workers {
		if w == c {
			f.workers = append(f.workers[:i], f.workers[i+1:]...)
			break
		}
	}
	if f.wakeNext >= len(f.workers) {
		f.wakeNext = 0
	}
	// If c was woken for a job it will now never take, wake someone else.
	if c.sleeping && c.noopSent && f.queuedTotal() > 0 {
		s.wake(tx, f)
	}
	s.collect(f)
}

// shrunk returns m, or a right-sized copy of it once it has fallen to an eighth of the largest size
// it had: Go maps never give back their buckets, so after a queue of a million jobs drains the
// indexes would keep their peak memory for the life of the server. *peak tracks that size. When a
// large map is dropped (shrank true), the caller has the memory go back to the operating system at
// once (see freeMemory).
func shrunk[K comparable, V any](m map[K]V, peak *int) (_ map[K]V, shrank bool) {
	n := len(m)
	*peak = max(*peak, n)
	if *peak < shrinkMinPeak || n > *peak/8 {
		return m, false
	}
	c := make(map[K]V, n)
	for k, v := range m {
		c[k] = v
	}
	*peak = n
	return c, true
}

// freeMemory asks for the memory of a dropped index to go back to the operating system. That takes
// a garbage collection, far too long for the lock: Tick's caller does it (see FreeMemory).
func (s *Core) freeMemory() {
	s.memoryToFree = true
	s.kickTick()
}

// FreeMemory reports, once, that a large index was dropped since it was last asked: the caller
// then runs debug.FreeOSMemory, off the lock.
func (s *Core) FreeMemory() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	free := s.memoryToFree
	s.memoryToFree = false
	return free
}

// shrinkMinPeak keeps small maps, which cost little, from being copied at all.
const shrinkMinPeak = 1 << 16
