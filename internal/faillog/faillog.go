// Package faillog logs a run of failures of one recurring operation without flooding the log: a
// database that is down fails a store's batch per submit, hundreds a second under load, and the
// fleet's heartbeat every few hundred milliseconds. The first failure of a run is logged at once,
// then at most one line every Every with how many failed meanwhile, and the first success after
// the run says so, with how many failed and for how long.
package faillog

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Every paces the lines of a run of failures.
const Every = 10 * time.Second

// Run is the state of one operation's failures. Failed and OK are called by one goroutine at a
// time (the operation's own); Since may be called by any.
type Run struct {
	// Failure and Recovery are the messages of a failure's line and of the success after a run;
	// Count names the attribute that counts the failures (failed_writes, say); Level is the
	// failures' level (the recovery is logged at Info).
	Failure, Recovery, Count string
	Level                    slog.Level
	// Now is the clock (nil: time.Now); the core gives its own, which tests set.
	Now func() time.Time

	failing  bool
	began    time.Time // the run's first failure
	lastLine time.Time
	failures int // in the run
	unlogged int // since the last line
	since    atomic.Int64
}

// Failed records a failure; attrs are added to its line.
func (f *Run) Failed(log *slog.Logger, err error, attrs ...any) {
	now := f.now()
	if !f.failing {
		f.failing, f.began, f.lastLine, f.failures, f.unlogged = true, now, time.Time{}, 0, 0
		f.since.Store(now.UnixNano())
	}
	f.failures++
	f.unlogged++
	switch {
	case f.failures == 1:
		log.Log(nil, f.Level, f.Failure, append([]any{"err", err}, attrs...)...)
	case now.Sub(f.lastLine) >= Every:
		log.Log(nil, f.Level, f.Failure, append([]any{"err", err}, append(attrs, f.Count, f.unlogged, "failing_for", now.Sub(f.began).Round(time.Millisecond))...)...)
	default:
		return
	}
	f.lastLine, f.unlogged = now, 0
}

// OK records a success, which ends a run of failures.
func (f *Run) OK(log *slog.Logger) {
	if f.failing {
		log.Info(f.Recovery, f.Count, f.failures, "failing_for", f.now().Sub(f.began).Round(time.Millisecond))
		f.failing = false
		f.since.Store(0)
	}
}

func (f *Run) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Failing reports whether the last attempt failed.
func (f *Run) Failing() bool { return f.failing }

// Since is when the current run of failures began; zero when the last attempt succeeded.
func (f *Run) Since() time.Time {
	if ns := f.since.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
