// Package gcfloor keeps the garbage collector from running while the heap is small.
//
// Go collects when the heap has grown by GOGC percent (100) over what the last collection left
// live. A job server's live heap is a few megabytes until it holds many queued jobs, so under load
// it collected every few megabytes allocated — dozens of times a second, each cycle a fixed cost in
// CPU and a stretch of mark assists that delays the event loop (measured in the README). With a
// floor, the heap may grow to the floor before a collection; past it, GOGC applies as before, so a
// server holding a million jobs uses no more memory than without.
//
// The collector has no such setting, so Start re-tunes GOGC after every collection (a finalizer
// re-armed each cycle): to what makes the next goal the floor while the live heap is below half of
// it, to the base percent otherwise. The runtime's memory limit (GOMEMLIMIT) still applies, and a
// collection that frees memory for the operating system (debug.FreeOSMemory) still runs at once.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// runtimeHeapMinimum is the Go runtime's smallest heap goal at GOGC 100; it scales with GOGC
// (runtime/mgcpacer.go, defaultHeapMinimum): 4 MiB × GOGC/100 is a goal the collector keeps
// whatever the live heap. The tuned percent never makes that minimum exceed the floor.
const runtimeHeapMinimum = 4 << 20

// Tuner keeps the heap floor; Stop ends it and restores the base percent.
type Tuner struct {
	floor   uint64
	base    int
	stopped atomic.Bool
	mu      sync.Mutex // serializes a cycle's tuning with Stop
	percent int        // as last set (-2 before the first: Percent never returns it)
	sample  []metrics.Sample
}

// Start sets a heap floor of floor bytes over base, the GOGC percent it applies above the floor
// (100 is Go's default). The caller should not start one when the user set GOGC.
func Start(floor uint64, base int) *Tuner {
	t := &Tuner{floor: floor, base: base, percent: -2,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
	t.arm()
	return t
}

// Percent returns the GOGC percent a live heap of live bytes gets: the next goal, live × (1 +
// percent/100) or the runtime's minimum goal, whichever is larger, is then about the floor, or
// what base gives when that is more.
func Percent(floor, live uint64, base int) int {
	if floor <= live+live*uint64(base)/100 {
		return base
	}
	limit := max(uint64(base), floor*100/runtimeHeapMinimum) // the minimum goal at the floor
	if live == 0 {
		return int(limit)
	}
	return int(min(floor*100/live-100, limit))
}

// sentinel holds a pointer so that it is never one of the tiny allocations, which share a block
// and may never be finalized.
type sentinel struct{ _ *int }

// arm asks to be called after the next collection: the finalizer of an object nothing refers to
// runs once a cycle has found it unreachable.
func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	})
}

func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	live := uint64(0)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if p := Percent(t.floor, live, t.base); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// Stop ends the tuning and sets the base percent back.
func (t *Tuner) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped.Swap(true) {
		debug.SetGCPercent(t.base)
	}
}
