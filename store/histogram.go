package store

import (
	"math"
	"sync/atomic"
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
