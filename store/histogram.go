package store

import (
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/internal/faillog"
)

// Histogram counts observations into fixed buckets without a lock, so a store can report the
// distribution of its commit latencies and batch sizes without importing a metrics library: the
// HTTP front end turns a snapshot into a Prometheus histogram.
type Histogram struct {
	bounds []float64 // upper bounds, ascending; a last, implicit bucket is +Inf
	counts []atomic.Uint64
	sum    atomic.Uint64 // math.Float64bits of the sum
}

// NewHistogram returns a histogram with the given ascending upper bounds.
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// exponential returns n bounds from start, each factor times the last.
func exponential(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// Observe counts v.
func (h *Histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// HistogramSnapshot is a histogram at one moment: Buckets maps each upper bound to the count of
// observations at or below it (cumulative, as Prometheus has them).
type HistogramSnapshot struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

// Snapshot reads the histogram. Concurrent observations may be half in it (a count without its
// sum); the next snapshot has them whole.
func (h *Histogram) Snapshot() HistogramSnapshot {
	if h == nil {
		return HistogramSnapshot{}
	}
	s := HistogramSnapshot{Sum: math.Float64frombits(h.sum.Load()), Buckets: make(map[float64]uint64, len(h.bounds))}
	for i, b := range h.bounds {
		s.Count += h.counts[i].Load()
		s.Buckets[b] = s.Count
	}
	s.Count += h.counts[len(h.bounds)].Load()
	return s
}

// counters are what both stores count for Stats: stored jobs, the last durable commit and the last
// error, and each batch's commit (how many, how long, how large).
type counters struct {
	jobs         atomic.Int64
	lastSync     atomic.Int64 // Unix nanoseconds
	lastErr      atomic.Pointer[string]
	commits      atomic.Int64 // batches committed
	commitErrors atomic.Int64
	committedOps atomic.Int64
	commitNanos  atomic.Int64
	// 100 µs .. 3.3 s, and 1 .. 32768 operations
	commitLatency *Histogram
	batchSize     *Histogram

	writeLog faillog.Run // the committer's
}

func (c *counters) init() {
	c.writeLog = faillog.Run{Failure: "store write failed", Recovery: "store writes succeed again",
		Count: "failed_writes", Level: slog.LevelError}
	c.commitLatency = NewHistogram(exponential(0.0001, 2, 16)...)
	c.batchSize = NewHistogram(exponential(1, 2, 16)...)
}

// observeCommit counts a batch of ops that took took to commit, failed if err is not nil.
func (c *counters) observeCommit(ops int, took time.Duration, err error) {
	c.commits.Add(1)
	c.committedOps.Add(int64(ops))
	c.commitNanos.Add(int64(took))
	c.commitLatency.Observe(took.Seconds())
	c.batchSize.Observe(float64(ops))
	if err != nil {
		c.commitErrors.Add(1)
	}
}

// setError records err as the store's last error.
func (c *counters) setError(err error) {
	msg := err.Error()
	c.lastErr.Store(&msg)
}

// stats returns the counters as Stats of the given engine.
func (c *counters) stats(engine, path string, mode SyncMode) Stats {
	st := Stats{Engine: engine, Path: path, Sync: mode, Jobs: c.jobs.Load(),
		Commits: c.commits.Load(), CommitErrors: c.commitErrors.Load(), CommittedOps: c.committedOps.Load(),
		CommitTime:    time.Duration(c.commitNanos.Load()),
		CommitLatency: c.commitLatency.Snapshot(), BatchSize: c.batchSize.Snapshot()}
	if ns := c.lastSync.Load(); ns != 0 {
		st.LastSync = time.Unix(0, ns)
	}
	if e := c.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	st.FailingSince = c.writeLog.Since()
	return st
}
