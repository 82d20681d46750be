package bench

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/protocol"
)

// worker runs jobs on one connection the way a well-behaved Gearman worker does: GRAB_JOB_UNIQ (or
// GRAB_JOB); on NO_JOB, PRE_SLEEP and wait for NOOP; on a job, WORK_COMPLETE and the next grab in one
// write. It checks every payload and records every execution in the tracker.
type worker struct {
	r    *run
	p    *peer
	hist histogram // GRAB → JOB_ASSIGN
	done atomic.Int64
	echo bool // foreground: the result is the payload; background: empty
	grab protocol.Type

	maxPrio   int // lowest priority (highest number) handed to this worker so far
	prioCount [3]int64
	ukey      []byte
}

func (w *worker) run() error {
	sleeping, sweeping := false, false
	w.p.send(w.grab)
	t0 := w.r.now()
	for {
		pkt, err := w.p.next()
		if err != nil {
			if !isTimeout(err) {
				return fmt.Errorf("worker connection: %w", err)
			}
			switch st := w.r.state.Load(); {
			case st == stateAbort:
				return errAborted
			case st == stateSweep && !sweeping:
				// The goal is reached. One more grab must answer NO_JOB: a job handed out now is one
				// the server ran twice or invented.
				sweeping = true
				w.p.nc.SetReadDeadline(time.Now().Add(w.r.cfg.Timeout))
				if w.r.state.Load() == stateAbort {
					return errAborted
				}
				if sleeping {
					sleeping = false
					w.p.send(w.grab)
				}
				continue
			case sweeping:
				return fmt.Errorf("worker: no answer to %s within %v", w.grab, w.r.cfg.Timeout)
			}
			return fmt.Errorf("worker connection: %w", err)
		}
		switch pkt.Type {
		case protocol.JobAssign, protocol.JobAssignUniq:
			if !sweeping {
				w.hist.record(w.r.now() - t0)
			}
			var unique []byte
			if pkt.Type == protocol.JobAssignUniq {
				unique = pkt.Arg(2)
			}
			w.execute(pkt.Arg(0), unique, pkt.Args[len(pkt.Args)-1])
			w.p.send(w.grab)
			t0 = w.r.now()
		case protocol.NoJob:
			if sweeping {
				return nil
			}
			w.p.send(protocol.PreSleep)
			sleeping = true
		case protocol.Noop:
			if sleeping {
				sleeping = false
				w.p.send(w.grab)
				t0 = w.r.now()
			}
		case protocol.Error:
			w.r.tr.serverErrs.Add(1)
			return fmt.Errorf("worker: %w", serverError(pkt))
		default:
			return unexpected(pkt, "JOB_ASSIGN, NO_JOB or NOOP")
		}
	}
}

// execute checks a job and queues its WORK_COMPLETE. A corrupted payload that still names a job of
// ours counts as that job's execution, so it is reported as corrupted and not also as lost.
func (w *worker) execute(handle, unique, data []byte) {
	tr := w.r.tr
	id, st := w.r.codec.check(data)
	if st == payloadOK && !tr.valid(id) {
		st, id = payloadCorrupt, -1
	}
	switch st {
	case payloadForeign:
		tr.foreignJob()
	case payloadCorrupt:
		tr.corrupt(id, "worker")
		if tr.valid(id) {
			tr.execute(id, w.r.now())
		}
	case payloadOK:
		tr.execute(id, w.r.now())
		w.done.Add(1)
		if w.r.uniqueKeys {
			w.ukey = w.r.codec.uniqueKey(w.ukey, id)
			if !bytes.Equal(unique, w.ukey) {
				tr.corrupt(id, fmt.Sprintf("worker (unique key %q, want %q)", unique, w.ukey))
			}
		}
		if w.r.priorities {
			p := prioOf(id)
			w.prioCount[p]++
			if p < w.maxPrio {
				if tr.order.Add(1) == 1 {
					tr.note("job %d (priority %s) was handed out after a %s job", id, prioName[p], prioName[w.maxPrio])
				}
			}
			w.maxPrio = max(w.maxPrio, p)
		}
	}
	var result []byte
	if w.echo {
		result = data
	}
	w.p.send(protocol.WorkComplete, handle, result)
}

var prioName = [3]string{"HIGH", "NORMAL", "LOW"}
