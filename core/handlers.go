package core

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gearhq/gear/internal/bufpool"
	"github.com/gearhq/gear/protocol"
)

// textCommandNotExpect is gearmand's text for a packet a server does not take as a request.
const textCommandNotExpect = "Command not expected"

// submitKind describes one of the SUBMIT_* packet forms.
type submitKind struct {
	prio       priority
	background bool
	epoch      bool // SUBMIT_JOB_EPOCH: function, unique, when, data
	sched      bool // SUBMIT_JOB_SCHED: function, unique, minute, hour, day, month, weekday, data
	reduce     bool // SUBMIT_REDUCE_JOB*: function, unique, reducer, aggregator, data
}

var submitKinds = map[protocol.Type]submitKind{
	protocol.SubmitJob:                 {prio: prioNormal},
	protocol.SubmitJobBg:               {prio: prioNormal, background: true},
	protocol.SubmitJobHigh:             {prio: prioHigh},
	protocol.SubmitJobHighBg:           {prio: prioHigh, background: true},
	protocol.SubmitJobLow:              {prio: prioLow},
	protocol.SubmitJobLowBg:            {prio: prioLow, background: true},
	protocol.SubmitJobEpoch:            {prio: prioNormal, background: true, epoch: true},
	protocol.SubmitJobSched:            {prio: prioNormal, background: true, sched: true},
	protocol.SubmitReduceJob:           {prio: prioNormal, reduce: true},
	protocol.SubmitReduceJobBackground: {prio: prioNormal, background: true, reduce: true},
}

// Handle runs the handler for one request packet from p; what it sends goes through tx. A panic
// in a handler is logged and answered with ERROR SERVER_ERROR; the server and the peer stay up.
func (s *Core) Handle(tx Tx, p *Peer, pkt *protocol.Packet) {
	s.lock()
	defer s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			p.Log.Error("handler panic", "type", pkt.Type, "panic", r, "stack", string(debug.Stack()))
			s.sendError(tx, p, protocol.CodeServerError, fmt.Sprintf("internal error handling %s", pkt.Type))
		}
	}()
	if p.gone {
		return
	}
	if pkt.Magic != protocol.MagicReq {
		s.sendError(tx, p, protocol.CodeInvalidMagic, "Request magic expected")
		return
	}
	if kind, ok := submitKinds[pkt.Type]; ok {
		s.submitJob(tx, p, pkt, kind)
		return
	}
	switch pkt.Type {
	case protocol.EchoReq:
		s.send(tx, p, protocol.EchoRes, pkt.Args[0])
	case protocol.CanDo:
		s.canDo(tx, p, pkt.Args[0], 0)
	case protocol.CanDoTimeout:
		s.canDoTimeout(tx, p, pkt)
	case protocol.CantDo:
		s.cantDo(tx, p, pkt.Args[0])
	case protocol.ResetAbilities:
		s.resetAbilities(tx, p)
	case protocol.PreSleep:
		s.preSleep(tx, p)
	case protocol.GrabJob, protocol.GrabJobUniq, protocol.GrabJobAll:
		s.grabJob(tx, p, pkt.Type)
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus,
		protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		s.workResult(tx, p, pkt)
	case protocol.GetStatus:
		s.getStatus(tx, p, pkt.Args[0])
	case protocol.GetStatusUnique:
		s.getStatusUnique(tx, p, pkt.Args[0])
	case protocol.OptionReq:
		s.optionReq(tx, p, pkt.Args[0])
	case protocol.SetClientID:
		s.setClientID(p, pkt.Args[0])
	default:
		// Response types and ALL_YOURS: what gearmand answers.
		s.sendError(tx, p, protocol.CodeInvalidCommand, textCommandNotExpect)
	}
}

// submitJob handles the SUBMIT_JOB family: "FUNCTION\0UNIQUE\0DATA", with "WHEN\0" before DATA for
// SUBMIT_JOB_EPOCH and "REDUCER\0AGGREGATOR\0" before DATA for SUBMIT_REDUCE_JOB*.
func (s *Core) submitJob(tx Tx, c *Peer, p *protocol.Packet, kind submitKind) {
	name, unique := p.Args[0], p.Args[1]
	data := p.Args[len(p.Args)-1]
	if len(unique) > protocol.MaxUniqueSize {
		s.sendError(tx, c, protocol.CodeArgumentTooLarge, "Unique value too large")
		return
	}
	if len(name) > protocol.MaxFunctionSize {
		s.sendError(tx, c, protocol.CodeArgumentTooLarge, "Function name too large")
		return
	}
	if hasLineBreak(name) || hasLineBreak(unique) {
		s.sendError(tx, c, protocol.CodeInvalidArgument, "Function name or unique contains a line break")
		return
	}
	if !s.maySubmit(c, name) {
		s.deny(tx, c, "submit", string(name))
		return
	}
	if s.draining {
		s.sendError(tx, c, protocol.CodeQueueError, "Server is shutting down")
		return
	}
	if s.fence.on && kind.background {
		s.refuseFenced(tx, c)
		return
	}
	var when time.Time
	if kind.epoch {
		sec, err := strconv.ParseInt(string(bytes.TrimSpace(p.Args[2])), 10, 64)
		if err != nil || sec < 0 {
			s.sendError(tx, c, protocol.CodeInvalidArgument, "Epoch time is not a number of seconds")
			return
		}
		when = time.Unix(sec, 0)
	}
	if kind.sched {
		var err error
		if when, err = s.schedWhen(p.Args[2:7]); err != nil {
			s.sendError(tx, c, protocol.CodeInvalidArgument, "Schedule: "+err.Error())
			return
		}
	}
	f := s.function(name, true)

	key := uniqueKey(unique, data)
	if key != "" {
		if j := f.uniques[key]; j != nil {
			s.coalesce(tx, c, j, kind)
			return
		}
	}
	if limit := f.maxQueue[kind.prio]; limit > 0 && f.limitCount() >= limit {
		s.sendError(tx, c, protocol.CodeQueueError, "Job queue is full")
		s.collect(f)
		return
	}
	if msg := s.overServerLimit(len(data)); msg != "" {
		s.sendError(tx, c, protocol.CodeQueueError, msg)
		s.collect(f)
		return
	}
	j := &job{
		seq:        s.newSeq(),
		fn:         f,
		uniqueKey:  key,
		data:       bufpool.Get(len(data)),
		pooledData: len(data) >= bufpool.Min,
		prio:       kind.prio,
		background: kind.background,
	}
	if s.opts.Observer != nil || kind.background && s.opts.Store != nil {
		// A clock read per submit is a tenth of the handlers' cost: only for whoever reads it
		// (the oldest-job age an observer's metrics report, the store's record).
		j.created = s.opts.Now().UnixNano()
	}
	if !when.IsZero() {
		j.extra().when = when
	}
	if kind.reduce {
		j.extra().reducer = string(p.Args[2])
	}
	copy(j.data, data)
	s.jobs[j.seq] = j
	s.queuedBytes += int64(len(j.data))
	s.emitJob(EventSubmitted, j, "")
	if key != "" {
		f.uniques[key] = j
	}
	if !kind.background {
		s.attachClient(j, c)
	}
	if kind.background && s.opts.Store != nil {
		s.persist(tx, c, j) // JOB_CREATED once it is on stable storage
		return
	}
	s.send(tx, c, protocol.JobCreated, s.handleArg(j))
	s.makeRunnable(tx, j)
}

// dataKeyPrefix starts the coalescing key of a submit with unique "-": a NUL, which no unique sent
// as a packet argument can contain, keeps it apart from every other unique.
const dataKeyPrefix = "-\x00"

// uniqueKey is the coalescing key of a submit: none for an empty unique, the workload for "-".
func uniqueKey(unique, data []byte) string {
	switch {
	case len(unique) == 0:
		return ""
	case len(unique) == 1 && unique[0] == '-':
		return dataKeyPrefix + string(data)
	}
	return string(unique)
}

// coalesce attaches a submit to an existing job with the same function and unique key: the client
// gets the same handle and every WORK_* packet; its payload is ignored. A background submit onto a
// foreground job makes the job background, so it runs even if the foreground client leaves.
func (s *Core) coalesce(tx Tx, c *Peer, j *job, kind submitKind) {
	if kind.background {
		j.background = true
	} else {
		s.attachClient(j, c)
	}
	switch {
	case j.state == jobPersisting:
		// Acknowledge together with the job it joins, once that is durable.
		s.acks[j] = append(s.acks[j], ack{c, c.Link.Hold()})
	case kind.background && s.opts.Store != nil && !j.stored:
		// A background submit joining an in-memory foreground job: the job must now survive a
		// crash too. It stays where it is (queued or running) while it is written.
		j.stored = true
		j.pooledData = false // the store may read it after the job ends
		if j.created == 0 {
			j.created = s.opts.Now().UnixNano()
		}
		s.acks[j] = append(s.acks[j], ack{c, c.Link.Hold()})
		s.opts.Store.Add(s.record(j), func(err error) { s.persisted(j, err) })
	default:
		s.send(tx, c, protocol.JobCreated, s.handleArg(j))
	}
}

// attachClient adds c to j's listeners once per submit: a client that submits the same unique twice
// on one connection gets two JOB_CREATED and two of every WORK_* packet, as with gearmand (Perl task
// sets count on it).
func (s *Core) attachClient(j *job, c *Peer) {
	j.clients = append(j.clients, c)
	if c.waiting == nil {
		c.waiting = make(map[*job]struct{})
	}
	c.waiting[j] = struct{}{}
}

// canDo registers a function for worker c: "FUNCTION".
func (s *Core) canDo(tx Tx, c *Peer, name []byte, timeout time.Duration) {
	c.isWorker = true
	if hasLineBreak(name) {
		// Silently ignored, as a CAN_DO has no reply: a name like "x\n.\n" would forge admin lines.
		c.Log.Warn("ignoring CAN_DO for a function name with a line break", "function", string(name))
		return
	}
	if c.grant != nil && !c.grant.MayRegister(string(name)) {
		s.deny(tx, c, "register", string(name)) // refused aloud: a worker must not wait for jobs that never come
		return
	}
	for i, a := range c.abilities {
		if a.fn.name == string(name) {
			c.abilities[i].timeout = timeout
			return
		}
	}
	f := s.function(name, true)
	c.abilities = append(c.abilities, ability{fn: f, timeout: timeout})
	f.workers = append(f.workers, c)
	s.emitPeer(EventRegistered, c, f.name)
	// A worker that registers while asleep can have work at once.
	if c.sleeping && !c.noopSent && s.hasWork(f) {
		s.sendNoop(tx, c)
	}
}

// canDoTimeout registers "FUNCTION\0TIMEOUT". As in gearmand the timeout is in milliseconds and at
// least one second (values below are raised to it); unlike gearmand, a job that outruns it fails
// (see expire). Zero or an unparsable value means no timeout.
func (s *Core) canDoTimeout(tx Tx, c *Peer, p *protocol.Packet) {
	ms, err := strconv.ParseInt(string(bytes.TrimSpace(p.Args[1])), 10, 64)
	var timeout time.Duration
	if err == nil && ms > 0 {
		timeout = max(time.Duration(ms)*time.Millisecond, time.Second)
	}
	s.canDo(tx, c, p.Args[0], timeout)
}

// cantDo withdraws one function: "FUNCTION".
func (s *Core) cantDo(tx Tx, c *Peer, name []byte) {
	for i, a := range c.abilities {
		if a.fn.name == string(name) {
			c.abilities = append(c.abilities[:i], c.abilities[i+1:]...)
			if c.grabNext >= len(c.abilities) {
				c.grabNext = 0
			}
			s.removeWorker(tx, a.fn, c)
			s.emitPeer(EventUnregistered, c, a.fn.name)
			return
		}
	}
}

// preSleep: the worker will wait for a NOOP. If it has work already, it gets the NOOP at once.
func (s *Core) preSleep(tx Tx, c *Peer) {
	c.isWorker = true
	c.sleeping = true
	c.noopSent = false
	if s.draining || s.fence.on {
		return
	}
	for _, a := range c.abilities {
		if s.hasWork(a.fn) {
			s.sendNoop(tx, c)
			return
		}
	}
}

// grabJob answers GRAB_JOB (JOB_ASSIGN "HANDLE\0FUNCTION\0DATA"), GRAB_JOB_UNIQ (JOB_ASSIGN_UNIQ, with
// the unique) and GRAB_JOB_ALL (JOB_ASSIGN_ALL with the reducer for reduce jobs, else
// JOB_ASSIGN_UNIQ, as gearmand does), or NO_JOB.
func (s *Core) grabJob(tx Tx, c *Peer, t protocol.Type) {
	c.isWorker = true
	c.sleeping = false
	c.noopSent = false
	c.passedOver = false // it answers its NOOPs
	var j *job
	if !s.draining && !s.fence.on {
		j = s.nextJob(c)
	}
	if j == nil {
		s.send(tx, c, protocol.NoJob)
		return
	}
	s.assign(j, c)
	h, fn := s.handleArg(j), s.strArg(j.fn.name)
	switch {
	case t == protocol.GrabJob:
		s.send(tx, c, protocol.JobAssign, h, fn, j.data)
	case t == protocol.GrabJobAll && j.reducer() != "":
		s.send(tx, c, protocol.JobAssignAll, h, fn, s.strArg(j.unique()), s.strArg(j.reducer()), j.data)
	default:
		s.send(tx, c, protocol.JobAssignUniq, h, fn, s.strArg(j.unique()), j.data)
	}
}

// workResult handles WORK_DATA, WORK_WARNING, WORK_STATUS ("HANDLE\0NUM\0DEN"), WORK_COMPLETE,
// WORK_FAIL and WORK_EXCEPTION from the worker running the job.
func (s *Core) workResult(tx Tx, c *Peer, p *protocol.Packet) {
	handle := p.Args[0]
	if p.Type == protocol.WorkFail {
		// Some peers end the single argument with a NUL, as gearmand 1.1 itself does.
		handle = bytes.TrimRight(handle, "\x00")
	}
	j := s.jobByHandle(handle)
	if j == nil || j.worker != c {
		if s.recentlyEnded(c, handle) {
			// A late packet for a job that already ended here (WORK_FAIL after WORK_EXCEPTION, as
			// Perl's Gearman::Worker sends, or a result after a timeout or cancel): nothing to do.
			c.Log.Debug("ignoring late packet for an ended job", "type", p.Type, "handle", string(handle))
			return
		}
		s.sendError(tx, c, protocol.CodeJobNotFound, "Job given in work result not found")
		return
	}
	switch p.Type {
	case protocol.WorkData:
		s.forward(tx, j, p.Type, handle, p.Args[1])
		s.emitJob(EventData, j, "")
	case protocol.WorkWarning:
		s.forward(tx, j, p.Type, handle, p.Args[1])
		s.emitJob(EventWarning, j, "")
	case protocol.WorkStatus:
		x := j.extra()
		x.num, x.den = string(p.Args[1]), string(p.Args[2])
		s.forward(tx, j, p.Type, handle, p.Args[1], p.Args[2])
		s.emitJob(EventStatus, j, "")
	case protocol.WorkComplete:
		s.forward(tx, j, p.Type, handle, p.Args[1])
		s.emitJob(EventCompleted, j, "")
		s.finish(j)
	case protocol.WorkFail:
		s.forward(tx, j, p.Type, handle)
		s.emitJob(EventFailed, j, "")
		if !s.retryOrBury(tx, j, "WORK_FAIL") {
			s.finish(j)
		}
	case protocol.WorkException:
		s.emitJob(EventException, j, "")
		for _, cl := range j.clients {
			if cl.exceptions {
				s.send(tx, cl, protocol.WorkException, handle, p.Args[1])
			} else {
				s.send(tx, cl, protocol.WorkFail, handle)
			}
		}
		if !s.retryOrBury(tx, j, "WORK_EXCEPTION: "+string(p.Args[1])) {
			s.finish(j)
		}
	}
}

// getStatus answers GET_STATUS "HANDLE" with STATUS_RES "HANDLE\0KNOWN\0RUNNING\0NUM\0DEN".
func (s *Core) getStatus(tx Tx, c *Peer, handle []byte) {
	j := s.jobByHandle(handle)
	if j == nil {
		s.send(tx, c, protocol.StatusRes, handle, zero, zero, zero, zero)
		return
	}
	num, den := j.status()
	s.send(tx, c, protocol.StatusRes, handle, one, boolArg(j.state == jobRunning), s.numArg(num), s.numArg(den))
}

// getStatusUnique answers GET_STATUS_UNIQUE "UNIQUE" with STATUS_RES_UNIQUE
// "UNIQUE\0KNOWN\0RUNNING\0NUM\0DEN\0CLIENTS", looking in every function.
func (s *Core) getStatusUnique(tx Tx, c *Peer, unique []byte) {
	var j *job
	if len(unique) > 0 {
		for _, f := range s.functions {
			if j = f.uniques[string(unique)]; j != nil {
				break
			}
		}
	}
	if j == nil {
		s.send(tx, c, protocol.StatusResUnique, unique, zero, zero, zero, zero, zero)
		return
	}
	num, den := j.status()
	s.send(tx, c, protocol.StatusResUnique, unique, one, boolArg(j.state == jobRunning),
		s.numArg(num), s.numArg(den), s.intArg(len(j.clients)))
}

// optionReq handles OPTION_REQ "NAME": only "exceptions" exists.
func (s *Core) optionReq(tx Tx, c *Peer, name []byte) {
	switch {
	case bytes.EqualFold(name, []byte("exceptions")):
		c.exceptions = true
	case bytes.EqualFold(name, []byte(OptionCancellation)):
		c.cancelAware = true
	default:
		s.sendError(tx, c, protocol.CodeUnknownOption, "Server does not recognize given option")
		return
	}
	s.send(tx, c, protocol.OptionRes, name)
}

// OptionCancellation is the OPTION_REQ with which a worker asks to be told (WORK_CANCEL) when a
// job it runs is cancelled (a Gear extension; gearmand answers it with UNKNOWN_OPTION).
const OptionCancellation = "cancellation"

// setClientID handles SET_CLIENT_ID "ID", shown by the admin `workers`. Truncated as in gearmand;
// spaces and control bytes would break the `workers` line format, so they become '_'.
func (s *Core) setClientID(c *Peer, id []byte) {
	if len(id) > protocol.MaxClientIDSize {
		id = id[:protocol.MaxClientIDSize]
	}
	clean := []byte(string(id))
	for i, b := range clean {
		if b <= ' ' || b == 0x7f {
			clean[i] = '_'
		}
	}
	if len(clean) == 0 {
		c.clientID = "-"
		return
	}
	c.clientID = string(clean)
}

// hasLineBreak reports whether b would break a line of the admin protocol's listings, where function
// names and unique keys appear as they were submitted.
func hasLineBreak(b []byte) bool { return bytes.ContainsAny(b, "\r\n") }

var (
	zero = []byte("0")
	one  = []byte("1")
)

func boolArg(b bool) []byte {
	if b {
		return one
	}
	return zero
}

// numArg is a WORK_STATUS number as kept ("" before any: 0).
func (s *Core) numArg(v string) []byte {
	if v == "" {
		return zero
	}
	return s.strArg(v)
}
