package core

import (
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Fencing and adoption, for a fleet of servers sharing one store (issue 17).
//
// A server that lost its lease on the shared store (cut off from the database, paused, slow) must
// stop acting as the owner of its stored jobs, which a survivor may adopt at any moment: it is
// fenced. A fenced core hands out no job (GRAB_JOB answers NO_JOB, no NOOP wakes a worker) and
// refuses background submits with ERROR QUEUE_ERROR, since it could not store them as their owner;
// foreground submits go on in memory, as they would without a store. Work results of jobs already
// running are taken as usual: their removal from the store is refused there if the job was adopted,
// and the job then runs again at its adopter (at least once). When the server holds a lease again,
// ForgetUnowned drops the jobs it no longer owns and SetFenced(false, "") wakes the workers.

// fenceState is the core's fence. the core lock guards it.
type fenceState struct {
	on     bool
	reason string
}

// SetFenced fences the core (on) or lifts the fence; reason is logged and shown to refused clients.
func (s *Core) SetFenced(on bool, reason string) {
	s.lock()
	defer s.mu.Unlock()
	if s.fence.on == on {
		s.fence.reason = reason
		return
	}
	s.fence = fenceState{on: on, reason: reason}
	if on {
		s.log.Warn("fenced: handing out no jobs and refusing background submits", "reason", reason)
		return
	}
	s.log.Info("fence lifted: serving jobs again")
	for _, f := range s.functions {
		if s.hasWork(f) {
			s.wakeFor(s.async, f, f.queuedTotal())
		}
	}
}

// Fenced reports whether the core is fenced, and why.
func (s *Core) Fenced() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fence.on, s.fence.reason
}

// refuseFenced answers a background submit of a fenced core. the core lock must be held.
func (s *Core) refuseFenced(tx Tx, c *Peer) {
	s.sendError(tx, c, protocol.CodeQueueError, "Server is fenced: "+s.fence.reason)
}

// AllocSeqs reserves n consecutive sequence numbers (job handles) and returns the first: the
// adopted jobs' new numbers. They are reserved in the store like a foreground job's.
func (s *Core) AllocSeqs(n int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.handleSeq + 1
	s.handleSeq += uint64(n)
	if s.opts.Store != nil && s.handleSeq > s.reservedSeq {
		s.reservedSeq = s.handleSeq + handleReserveBlock
		s.opts.Store.ReserveSeq(s.reservedSeq + 1)
	}
	return first
}

// Adopt serves jobs that the store moved to this server (another server's, whose lease lapsed) as
// it serves the jobs it replays at start: already stored, in their priority and order, with their
// unique keys, due times and retry counts. Their numbers come from AllocSeqs.
func (s *Core) Adopt(jobs []*store.Job) {
	s.lock()
	defer s.mu.Unlock()
	for _, r := range jobs {
		s.restore(s.async, r)
	}
}

// ForgetUnowned drops from memory the stored jobs the store no longer holds for this server (a
// survivor adopted them while it was fenced) and returns how many. Jobs still being written are
// left to their write's outcome. A dropped job that is running is forgotten too: its worker's
// result is answered as for any unknown job, and the job runs at its adopter.
func (s *Core) ForgetUnowned(owned func(seq uint64) bool) int {
	s.lock()
	defer s.mu.Unlock()
	n := 0
	for seq, j := range s.jobs {
		if !j.stored || j.state == jobPersisting || owned(seq) {
			continue
		}
		j.stored = false // not ours to remove
		s.finish(j)
		n++
	}
	if n > 0 {
		s.log.Info("forgot jobs adopted by another server while fenced", "jobs", n)
	}
	return n
}
