package server

import (
	"container/heap"
	"time"
)

// jobHeap orders jobs by a time: epoch jobs by when they fall due, running jobs by their
// CAN_DO_TIMEOUT deadline. A job sits in at most one heap at a time (it is either scheduled or
// running), so one heapIndex field serves both. One loop serves both heaps: no timer per job.
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

// kickScheduler makes the schedule loop re-read its heaps (a new earliest time was added).
func (s *Server) kickScheduler() {
	select {
	case s.schedWake <- struct{}{}:
	default:
	}
}

// scheduleLoop moves epoch jobs into their queues when they fall due, waking sleeping workers (which
// gearmand 1.1 forgets to do), and fails running jobs whose CAN_DO_TIMEOUT expired.
func (s *Server) scheduleLoop() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sweepEvery := max(s.opts.FunctionIdleTTL/4, 100*time.Millisecond)
	lastSweep := s.opts.Now()
	for {
		s.mu.Lock()
		now := s.opts.Now()
		if now.Sub(lastSweep) >= sweepEvery {
			s.sweepIdleFunctions(now)
			lastSweep = now
		}
		for j := s.epochs.peek(); j != nil && !j.x.when.After(now); j = s.epochs.peek() {
			heap.Pop(&s.epochs)
			j.fn.scheduled--
			s.enqueue(j, false)
		}
		for j := s.timeouts.peek(); j != nil && !j.x.deadline.After(now); j = s.timeouts.peek() {
			heap.Pop(&s.timeouts)
			s.expire(j)
		}
		next := sweepEvery - now.Sub(lastSweep)
		if due := s.checkWakes(now); !due.IsZero() {
			next = min(next, due.Sub(now))
		}
		if j := s.epochs.peek(); j != nil {
			next = min(next, j.x.when.Sub(now))
		}
		if j := s.timeouts.peek(); j != nil {
			next = min(next, j.x.deadline.Sub(now))
		}
		s.mu.Unlock()
		timer.Reset(max(next, time.Millisecond))
		select {
		case <-timer.C:
		case <-s.schedWake:
		case <-s.done:
			return
		}
	}
}
