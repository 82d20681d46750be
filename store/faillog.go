package store

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// failureLogEvery paces the log of a run of failed writes.
const failureLogEvery = 10 * time.Second

// failureLog logs a store's failed writes without flooding the log: a database that is down fails
// a batch per submit, hundreds a second under load. The first failure of a run is logged at once,
// then at most one line every failureLogEvery with how many failed meanwhile, and the first
// success after the run says so, with how many failed and for how long. The committer's own.
type failureLog struct {
	failing  bool
	began    time.Time // the run's first failure
	lastLine time.Time
	failures int // in the run
	unlogged int // since the last line
	// since is began for other goroutines (Stats, readiness): Unix nanoseconds, 0 while writes
	// succeed.
	since atomic.Int64
}

// failed records a failed write.
func (f *failureLog) failed(log *slog.Logger, err error) {
	now := time.Now()
	if !f.failing {
		f.failing, f.began, f.lastLine, f.failures, f.unlogged = true, now, time.Time{}, 0, 0
		f.since.Store(now.UnixNano())
	}
	f.failures++
	f.unlogged++
	switch {
	case f.failures == 1:
		log.Error("store write failed", "err", err)
	case now.Sub(f.lastLine) >= failureLogEvery:
		log.Error("store write failed", "err", err, "failed_writes", f.unlogged, "failing_for", now.Sub(f.began).Round(time.Millisecond))
	default:
		return
	}
	f.lastLine, f.unlogged = now, 0
}

// ok records a successful write.
func (f *failureLog) ok(log *slog.Logger) {
	if f.failing {
		log.Info("store writes succeed again", "failed_writes", f.failures, "failing_for", time.Since(f.began).Round(time.Millisecond))
		f.failing = false
		f.since.Store(0)
	}
}
