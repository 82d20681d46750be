package bench

import (
	"bytes"
	"fmt"
	"sync/atomic"

	"github.com/gearhq/gear/protocol"
)

// plan hands out submissions to clients. Submission s carries job id s, except in the unique
// scenario, where ids 0..n-1 are submitted once, then the even ids again, then every fifth id a third
// time: about 1.7 submits per distinct key, the repeats far from the first submit and on other
// connections.
type plan struct {
	next   atomic.Int64
	total  int64 // submissions
	n      int64 // distinct job ids
	n2, n5 int64 // repeats (unique scenario)
}

// planBatch is how many submissions a client takes at once: it amortises the shared counter.
const planBatch = 16

func newPlan(n int64, unique bool) *plan {
	p := &plan{total: n, n: n}
	if unique {
		p.n2, p.n5 = (n+1)/2, (n+4)/5
		p.total = n + p.n2 + p.n5
	}
	return p
}

func (p *plan) take() (lo, hi int64) {
	hi = p.next.Add(planBatch)
	return min(hi-planBatch, p.total), min(hi, p.total)
}

func (p *plan) id(s int64) int64 {
	switch {
	case s < p.n:
		return s
	case s < p.n+p.n2:
		return 2 * (s - p.n)
	default:
		return 5 * (s - p.n - p.n2)
	}
}

// Priority of job id in the priorities scenario: 0 HIGH, 1 NORMAL, 2 LOW, interleaved in submit order.
func prioOf(id int64) int { return int(id % 3) }

var prioSubmit = [3]protocol.Type{protocol.SubmitJobHighBg, protocol.SubmitJobBg, protocol.SubmitJobLowBg}

// client submits jobs on one connection. Its buffers are reused for every job.
type client struct {
	r       *run
	p       *peer
	hist    histogram
	done    atomic.Int64 // acknowledged (background) or completed (foreground) jobs
	payload []byte
	ukey    []byte
	pl      *plan
	lo, hi  int64 // current batch of submissions
}

func (c *client) nextID() (int64, bool) {
	if c.lo == c.hi {
		c.lo, c.hi = c.pl.take()
		if c.lo == c.hi {
			return 0, false
		}
	}
	s := c.lo
	c.lo++
	return c.pl.id(s), true
}

func (c *client) submit(t protocol.Type, id int64) {
	c.payload = c.r.codec.build(c.payload, uint64(id))
	var unique []byte
	if c.r.uniqueKeys {
		c.ukey = c.r.codec.uniqueKey(c.ukey, id)
		unique = c.ukey
	}
	c.p.send(t, c.r.fn, unique, c.payload)
}

// broken turns a read error into the client's exit: an abort is not an error of its own, but the
// submits it leaves unanswered count as lost.
func (c *client) broken(err error, unanswered int) error {
	if isTimeout(err) && c.r.state.Load() == stateAbort {
		c.r.unanswered.Add(int64(unanswered))
		return errAborted
	}
	return fmt.Errorf("client connection: %w", err)
}

// runBackground submits background jobs, keeping up to pipeline submits waiting for JOB_CREATED. The
// server answers a connection's submits in order, so a ring of send times matches the answers.
func (c *client) runBackground(pl *plan, pipeline int) error {
	c.pl = pl
	type pending struct{ id, t0 int64 }
	ring := make([]pending, pipeline)
	head, n := 0, 0
	for {
		for n < pipeline {
			id, ok := c.nextID()
			if !ok {
				break
			}
			t := protocol.SubmitJobBg
			if c.r.priorities {
				t = prioSubmit[prioOf(id)]
			}
			c.submit(t, id)
			ring[(head+n)%pipeline] = pending{id, c.r.now()}
			n++
		}
		if n == 0 {
			return nil
		}
		pkt, err := c.p.next()
		if err != nil {
			return c.broken(err, n)
		}
		switch pkt.Type {
		case protocol.JobCreated:
			pd := ring[head]
			head = (head + 1) % pipeline
			n--
			c.hist.record(c.r.now() - pd.t0)
			c.r.tr.acked(pd.id, pkt.Arg(0))
			c.done.Add(1)
		case protocol.Noop:
		case protocol.Error:
			c.r.tr.serverErrs.Add(1)
			return fmt.Errorf("submitting job %d: %w", ring[head].id, serverError(pkt))
		default:
			return unexpected(pkt, "JOB_CREATED")
		}
	}
}

// fgSlot is one foreground job in flight.
type fgSlot struct {
	id, t0 int64
	handle []byte // reused: the handle's bytes are copied in
	busy   bool   // JOB_CREATED received, waiting for WORK_COMPLETE
}

// runForeground submits foreground jobs, keeping up to pipeline in flight, and checks each echoed
// result against the job it was submitted as.
func (c *client) runForeground(pl *plan, pipeline int) error {
	c.pl = pl
	slots := make([]fgSlot, pipeline)
	free := make([]int, pipeline)
	for i := range free {
		free[i] = i
	}
	created := make([]int, pipeline) // slots waiting for JOB_CREATED, in submit order
	chead, cn, inflight := 0, 0, 0
	for {
		for len(free) > 0 {
			id, ok := c.nextID()
			if !ok {
				break
			}
			i := free[len(free)-1]
			free = free[:len(free)-1]
			c.submit(protocol.SubmitJob, id)
			slots[i].id, slots[i].t0 = id, c.r.now()
			created[(chead+cn)%pipeline] = i
			cn++
			inflight++
		}
		if inflight == 0 {
			return nil
		}
		pkt, err := c.p.next()
		if err != nil {
			return c.broken(err, cn)
		}
		switch pkt.Type {
		case protocol.JobCreated:
			if cn == 0 {
				return fmt.Errorf("protocol: JOB_CREATED %q answers no submit", pkt.Arg(0))
			}
			s := &slots[created[chead]]
			chead = (chead + 1) % pipeline
			cn--
			s.handle = append(s.handle[:0], pkt.Arg(0)...)
			s.busy = true
			c.r.tr.acked(s.id, nil)
		case protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
			h := pkt.Arg(0)
			i := findSlot(slots, h)
			if pkt.Type != protocol.WorkComplete {
				c.r.tr.serverErrs.Add(1)
				id := int64(-1)
				if i >= 0 {
					id = slots[i].id
				}
				return fmt.Errorf("%w: job %d (handle %q) ended with %s", ErrServer, id, h, pkt.Type)
			}
			data := pkt.Arg(1)
			id, st := c.r.codec.check(data)
			if i < 0 {
				if st != payloadOK {
					id = -1
				}
				c.r.tr.unexpectedCompletion(id, h)
				continue
			}
			s := &slots[i]
			if st != payloadOK || id != s.id {
				c.r.tr.corrupt(s.id, "client (echoed result)")
			}
			c.r.tr.completed(s.id)
			c.hist.record(c.r.now() - s.t0)
			c.done.Add(1)
			s.busy = false
			free = append(free, i)
			inflight--
		case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus, protocol.Noop:
		case protocol.Error:
			c.r.tr.serverErrs.Add(1)
			return serverError(pkt)
		default:
			return unexpected(pkt, "JOB_CREATED or WORK_COMPLETE")
		}
	}
}

func findSlot(slots []fgSlot, handle []byte) int {
	for i := range slots {
		if slots[i].busy && bytes.Equal(slots[i].handle, handle) {
			return i
		}
	}
	return -1
}
