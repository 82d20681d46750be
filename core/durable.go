package core

import (
	"math"
	"strconv"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Durable background jobs. With Options.Store set, a background job is written to the store before
// its JOB_CREATED goes out: the job waits in state jobPersisting, the connection's replies from that
// point are held in order (Link.Hold), and the store's callback makes the job runnable and releases
// the reply — or, if the write failed, drops the job and answers ERROR QUEUE_ERROR. The connection's
// reader never waits for the disk, so one client's pipelined submits share an fsync too.

// ack is a JOB_CREATED waiting for its job to be durable.
type ack struct {
	c *Peer
	h Held
}

// persist starts writing background job j. the core lock must be held.
func (s *Core) persist(tx Tx, c *Peer, j *job) {
	j.state = jobPersisting
	j.fn.persisting++
	j.stored = true
	j.pooledData = false // the store may read it after the job ends
	s.acks[j] = append(s.acks[j], ack{c, c.Link.Hold()})
	s.opts.Store.Add(s.record(j), func(err error) { s.persisted(j, err) })
}

// persisted is the store's answer for j.
func (s *Core) persisted(j *job, err error) {
	s.lock()
	defer s.mu.Unlock()
	acks := s.acks[j]
	delete(s.acks, j)
	if err != nil {
		// The first refusal of a run at once, then a line every faillog.Every with a count: a store
		// that is down under load refuses every submit, and must not flood the log as well.
		s.refused.Failed(s.log, err, "handle", s.handleOf(j), "function", j.fn.name)
		if j.state == jobPersisting {
			j.stored = false
			s.finish(j)
		} else if j.state != jobDone {
			j.stored = false // a foreground job a background submit tried to join: it goes on in memory
		}
		msg := s.strArg("Cannot store job: " + err.Error())
		for _, a := range acks {
			s.release(a.h, protocol.Error, s.strArg(protocol.CodeQueueError), msg)
		}
		return
	}
	s.refused.OK(s.log)
	if j.state == jobPersisting {
		j.fn.persisting--
		s.makeRunnable(s.async, j)
	}
	h := s.handleArg(j)
	for _, a := range acks {
		s.release(a.h, protocol.JobCreated, h)
	}
}

// makeRunnable queues j, or schedules it if it is an epoch job not yet due. the core lock must be held.
func (s *Core) makeRunnable(tx Tx, j *job) {
	if when := j.when(); !when.IsZero() && when.After(s.opts.Now()) {
		j.state = jobScheduled
		j.fn.scheduled++
		if s.epochs.peek() == nil || when.Before(s.epochs.peek().when()) {
			s.kickTick()
		}
		s.epochs.add(j)
		return
	}
	s.enqueue(tx, j, false)
}

// record is j as the store keeps it.
func (s *Core) record(j *job) *store.Job {
	r := &store.Job{
		Seq: j.seq, Handle: s.handleOf(j), Function: j.fn.name, Unique: j.unique(), Reducer: j.reducer(),
		Data: j.data, Priority: uint8(j.prio), Retries: uint32(j.retries), Created: j.created,
	}
	if when := j.when(); !when.IsZero() {
		r.When = when.Unix()
	}
	return r
}

// restore rebuilds a stored job at start, in its original priority and order, with its unique key,
// due time and retry count. the core lock must be held.
func (s *Core) restore(tx Tx, r *store.Job) {
	f := s.function([]byte(r.Function), true)
	j := &job{
		seq: r.Seq, fn: f, uniqueKey: uniqueKey([]byte(r.Unique), r.Data),
		data: r.Data, prio: priority(min(r.Priority, uint8(prioLow))), background: true,
		stored: true, retries: uint16(min(r.Retries, math.MaxUint16)), created: r.Created,
	}
	if r.Reducer != "" {
		j.extra().reducer = r.Reducer
	}
	if r.When != 0 {
		j.extra().when = time.Unix(r.When, 0)
	}
	if r.Handle != s.prefix+strconv.FormatUint(r.Seq, 10) {
		j.extra().handle = r.Handle
		if s.foreignJobs == nil {
			s.foreignJobs = make(map[string]*job)
		}
		s.foreignJobs[r.Handle] = j
	}
	s.jobs[j.seq] = j
	s.queuedBytes += int64(len(j.data))
	if j.uniqueKey != "" {
		f.uniques[j.uniqueKey] = j
	}
	s.makeRunnable(tx, j)
}
