package worker

import (
	"errors"
	"math/rand/v2"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Guard keeps a long-running worker from growing without bound. Every Interval it samples the
// process's memory: past WarnBytes it logs a warning and calls OnMemoryWarning (once per crossing); at
// MaxBytes it stops taking jobs, lets the jobs in hand finish, disconnects, and Run returns
// ErrMemoryCap, so the caller can exit or re-execute itself. MaxJobs and MaxLifetime recycle the
// worker the same way; Splay adds a random part of MaxLifetime (0..Splay×MaxLifetime) so a fleet
// started together does not restart together.
type Guard struct {
	WarnBytes   uint64
	MaxBytes    uint64
	Interval    time.Duration // default 1 s
	MaxJobs     uint64
	MaxLifetime time.Duration
	Splay       float64 // 0..1
	// OnMemoryWarning (optional) is the alert hook: it is called with the sampled size each time
	// memory crosses WarnBytes upwards, on a goroutine of its own so a slow hook does not delay the
	// guard. Running a command or posting to a URL is the program's business: gear worker's
	// --alert-command and --alert-url are such hooks.
	OnMemoryWarning func(bytes uint64)
	// OnMemoryCap (optional) is called the same way once, when memory reaches MaxBytes and the
	// worker starts recycling. A sample past both thresholds calls OnMemoryWarning first (if that
	// crossing was not yet reported), then OnMemoryCap: a worker that grows fast still warns.
	OnMemoryCap func(bytes uint64)
	// Sample returns the memory to compare (default: MemoryInUse).
	Sample func() uint64
}

func (g *Guard) validate() error {
	if g.MaxBytes > 0 && g.WarnBytes > g.MaxBytes {
		return errors.New("worker: memory warning threshold above the cap")
	}
	if g.Splay < 0 || g.Splay > 1 {
		return errors.New("worker: lifetime splay must be between 0 and 1")
	}
	if g.Interval <= 0 {
		g.Interval = time.Second
	}
	if g.Sample == nil {
		g.Sample = MemoryInUse
	}
	return nil
}

func (g *Guard) active() bool {
	return g.WarnBytes > 0 || g.MaxBytes > 0 || g.MaxLifetime > 0
}

// guardLoop samples memory and the clock until done closes.
func (w *Worker) guardLoop(done <-chan struct{}) {
	g := &w.opts.Guard
	var deadline <-chan time.Time
	if g.MaxLifetime > 0 {
		life := g.MaxLifetime + time.Duration(rand.Float64()*g.Splay*float64(g.MaxLifetime))
		w.log.Info("worker lifetime", "limit", life.Round(time.Second))
		t := time.NewTimer(life)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(g.Interval)
	defer tick.Stop()
	warned, capped := false, false
	// The hooks run on their own goroutines (a slow alert must not delay the next sample), but
	// Run returns only after they have: a caller closing its alert sender on return must not
	// lose the warn and cap it was being given.
	var hooks sync.WaitGroup
	defer hooks.Wait()
	for {
		select {
		case <-done:
			return
		case <-deadline:
			w.stopWith(ErrMaxLifetime)
			deadline = nil
		case <-tick.C:
			if g.WarnBytes == 0 && g.MaxBytes == 0 {
				continue
			}
			used := g.Sample()
			switch {
			case g.MaxBytes > 0 && used >= g.MaxBytes:
				if capped {
					continue
				}
				capped = true
				w.log.Warn("worker memory at its cap: finishing the jobs in hand", "bytes", used, "cap", g.MaxBytes)
				// One goroutine calls both hooks, in order: warn, then cap.
				warn := g.WarnBytes > 0 && !warned && g.OnMemoryWarning != nil
				warned = true
				hooks.Go(func() {
					if warn {
						g.OnMemoryWarning(used)
					}
					if g.OnMemoryCap != nil {
						g.OnMemoryCap(used)
					}
				})
				w.stopWith(ErrMemoryCap)
			case g.WarnBytes > 0 && used >= g.WarnBytes:
				if !warned {
					warned = true
					w.log.Warn("worker memory above its warning threshold", "bytes", used, "threshold", g.WarnBytes)
					if g.OnMemoryWarning != nil {
						hooks.Go(func() { g.OnMemoryWarning(used) })
					}
				}
			default:
				warned = false
			}
		}
	}
}

// MemoryInUse returns the process's resident set size on Linux, or else the memory the Go runtime
// holds from the system minus what it has released.
func MemoryInUse() uint64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				return pages * uint64(os.Getpagesize())
			}
		}
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}
