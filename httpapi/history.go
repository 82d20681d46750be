package httpapi

import (
	"sync"
	"time"
)

// The dashboard's charts show the last minutes as soon as the page opens, so the server keeps
// them: a sample of the job totals and the queue every Options.HistoryInterval, historySamples
// of them.
const (
	defaultHistoryInterval = 2 * time.Second
	historySamples         = 300 // 10 minutes at the default interval
)

// sample is the server's state at one moment. The totals only grow: the rates are the
// differences between samples.
type sample struct {
	Time      float64 `json:"time"` // Unix seconds
	Submitted uint64  `json:"submitted"`
	Completed uint64  `json:"completed"`
	Failed    uint64  `json:"failed"` // WORK_FAIL, WORK_EXCEPTION or timed out
	Queued    int     `json:"queued"` // unfinished jobs not running (queued, scheduled, being stored)
	Running   int     `json:"running"`
	Workers   int     `json:"workers"`
}

// history is a ring of samples.
type history struct {
	mu      sync.Mutex
	samples []sample
	next    int
}

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) < historySamples {
		h.samples = append(h.samples, s)
		return
	}
	h.samples[h.next] = s
	h.next = (h.next + 1) % historySamples
}

// list is the samples, oldest first.
func (h *history) list() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]sample, 0, len(h.samples))
	out = append(out, h.samples[h.next:]...)
	return append(out, h.samples[:h.next]...)
}

type historyView struct {
	IntervalSeconds float64  `json:"interval_seconds"`
	Samples         []sample `json:"samples"`
}

// sampleNow records the attached server's state.
func (h *HTTP) sampleNow(now time.Time) {
	srv := h.srv.Load()
	if srv == nil {
		return
	}
	info := srv.Core().Info()
	m := h.opts.Metrics
	h.history.add(sample{Time: float64(now.UnixMilli()) / 1000,
		Submitted: m.totalSubmitted.Load(), Completed: m.totalCompleted.Load(), Failed: m.totalFailed.Load(),
		Queued: info.Jobs - info.Running, Running: info.Running, Workers: info.Workers})
}

// sampleLoop samples every HistoryInterval until the listener closes.
func (h *HTTP) sampleLoop(stop <-chan struct{}) {
	t := time.NewTicker(h.opts.HistoryInterval)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			h.sampleNow(now)
		case <-stop:
			return
		}
	}
}
