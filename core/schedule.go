package core

import (
	"container/heap"
	"time"
)

// jobHeap orders jobs by a time: epoch jobs by when they fall due, running jobs by their
// CAN_DO_TIMEOUT deadline. A job sits in at most one heap at a time (it is either scheduled or
// running), so one heapIndex field serves both. Tick serves both heaps: no timer per job.
type jobHeap struct {
	jobs []*job
	less func(a, b *job) bool
}

func (h *jobHeap) Len() int           { return len(h.jobs) }
func (h *jobHeap) Less(i, k int) bool { return h.less(h.jobs[i], h.jobs[k]) }
func (h *jobHeap) Swap(i, k int) {
	h.jobs[i], h.jobs[k] = h.jobs[k], h.jobs[i]
	h.jobs[i].x.heapIndex = i
	h.jobs[k].x.heapIndex = k
}
func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.extra().heapIndex = len(h.jobs)
	h.jobs = append(h.jobs, j)
}
func (h *jobHeap) Pop() any {
	n := len(h.jobs) - 1
	j := h.jobs[n]
	h.jobs[n] = nil
	h.jobs = h.jobs[:n]
	j.x.heapIndex = -1
	return j
}

func (h *jobHeap) add(j *job) { heap.Push(h, j) }

func (h *jobHeap) remove(j *job) {
	if j.x == nil {
		return // never in a heap
	}
	if i := j.x.heapIndex; i >= 0 && i < len(h.jobs) && h.jobs[i] == j {
		heap.Remove(h, i)
	}
}

func (h *jobHeap) peek() *job {
	if len(h.jobs) == 0 {
		return nil
	}
	return h.jobs[0]
}

// TickWake receives a value whenever the next time Tick must run may have come earlier (a new
// earliest epoch job, timeout or wake check). The transport's timer loop waits on it.
func (s *Core) TickWake() <-chan struct{} { return s.tickWake }

// kickTick signals TickWake.
func (s *Core) kickTick() {
	select {
	case s.tickWake <- struct{}{}:
	default:
	}
}

// Tick does what has fallen due at now: epoch jobs move into their queues, waking sleeping workers
// (which gearmand 1.1 forgets to do); running jobs whose CAN_DO_TIMEOUT expired fail; woken workers
// that never asked for a job are passed over; functions idle past FunctionIdleTTL are forgotten.
// It returns when it wants to run next. Output goes through tx.
func (s *Core) Tick(tx Tx, now time.Time) time.Time {
	s.lock()
	defer s.mu.Unlock()
	sweepEvery := max(s.opts.FunctionIdleTTL/4, 100*time.Millisecond)
	if now.Sub(s.lastSweep) >= sweepEvery {
		s.sweepIdleFunctions(now)
		s.pruneDead(now)
		s.lastSweep = now
	}
	for j := s.epochs.peek(); j != nil && !j.x.when.After(now); j = s.epochs.peek() {
		heap.Pop(&s.epochs)
		j.fn.scheduled--
		s.enqueue(tx, j, false)
	}
	for j := s.timeouts.peek(); j != nil && !j.x.deadline.After(now); j = s.timeouts.peek() {
		heap.Pop(&s.timeouts)
		s.expire(tx, j)
	}
	next := s.lastSweep.Add(sweepEvery)
	if due := s.checkWakes(tx, now); !due.IsZero() {
		// Wake checks are coarse: under load a NOOP goes out every few microseconds, and a Tick
		// per NOOP would cost a goroutine wake-up per job. A hung worker is passed over within
		// 1.25 WakeTimeout.
		if earliest := now.Add(s.opts.WakeTimeout / 4); due.Before(earliest) {
			due = earliest
		}
		if due.Before(next) {
			next = due
		}
	}
	if due := s.checkTokens(tx, now); !due.IsZero() && due.Before(next) {
		next = due
	}
	if due := s.fireSchedules(tx, now); !due.IsZero() && due.Before(next) {
		next = due
	}
	if j := s.epochs.peek(); j != nil && j.x.when.Before(next) {
		next = j.x.when
	}
	if j := s.timeouts.peek(); j != nil && j.x.deadline.Before(next) {
		next = j.x.deadline
	}
	return next
}
