package core

import (
	"fmt"
	"strconv"

	"github.com/gearhq/gear/protocol"
)

// overServerLimit is the refusal of a new job with a payload of size bytes under the server-wide
// limits (Options.MaxJobs, MaxQueuedBytes), or "". The lock is held.
func (s *Core) overServerLimit(size int) string {
	if max := s.opts.MaxJobs; max > 0 && len(s.jobs) >= max {
		return "Server job limit reached (" + strconv.Itoa(max) + " jobs)"
	}
	if max := s.opts.MaxQueuedBytes; max > 0 && s.queuedBytes+int64(size) > max {
		return "Server payload memory limit reached (" + strconv.FormatInt(max, 10) + " bytes)"
	}
	return ""
}

// applyStartSettings applies Options.StartSettings. The lock is held.
func (s *Core) applyStartSettings() error {
	now := s.opts.Now()
	for name, change := range s.opts.StartSettings {
		f := s.function([]byte(name), true)
		fs := f.settings()
		change(&fs)
		if err := fs.validate(); err != nil {
			return fmt.Errorf("function %s: %w", name, err)
		}
		s.apply(f, fs, now)
	}
	return nil
}

// applyMaxQueue sets the per-function limits given at start. The lock is held.
func (s *Core) applyMaxQueue() {
	for name, l := range s.opts.MaxQueue {
		f := s.function([]byte(name), true)
		f.maxQueue = [numPriorities]int{prioHigh: l.High, prioNormal: l.Normal, prioLow: l.Low}
	}
}

// Limits is the `limits` view: every limit of the server (0: none) and what is in use of each.
func (s *Core) Limits() protocol.LimitsInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.opts.TransportLimits
	l.Connections = len(s.peers)
	l.MaxJobs, l.Jobs = s.opts.MaxJobs, len(s.jobs)
	l.MaxQueuedBytes, l.QueuedBytes = s.opts.MaxQueuedBytes, s.queuedBytes
	return l
}
