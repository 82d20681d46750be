package core

import "time"

// EventKind names what happened to a job or a peer.
type EventKind uint8

const (
	EventSubmitted    EventKind = iota + 1 // a new job (not one a submit coalesced onto)
	EventStarted                           // handed to a worker
	EventData                              // WORK_DATA from its worker
	EventWarning                           // WORK_WARNING
	EventStatus                            // WORK_STATUS
	EventCompleted                         // WORK_COMPLETE
	EventFailed                            // WORK_FAIL from its worker, or retries exhausted (Detail)
	EventException                         // WORK_EXCEPTION
	EventRequeued                          // its worker was lost; back to the front of its queue
	EventTimedOut                          // outran its CAN_DO_TIMEOUT; failed
	EventCancelled                         // cancelled by the admin
	EventConnected                         // a peer connected
	EventDisconnected                      // a peer left
	EventRegistered                        // a worker registered Function
	EventUnregistered                      // a worker withdrew Function
	EventDenied                            // the access rules refused a request (Detail: what; Function, if any)
)

var eventNames = [...]string{"", "submitted", "started", "data", "warning", "status", "completed",
	"failed", "exception", "requeued", "timed_out", "cancelled", "connected", "disconnected",
	"registered", "unregistered", "denied"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one thing that happened. Job fields are empty for peer events.
type Event struct {
	Kind       EventKind
	Time       time.Time
	Handle     []byte // valid only during Observe: copy it to keep it
	Function   string
	Priority   string // high, normal, low
	Background bool
	Retries    int           // times the job's worker was lost so far
	Wait       time.Duration // Started: time since it was submitted
	Run        time.Duration // Completed, Failed, Exception, TimedOut, Requeued: time since it started
	Peer       uint64        // the peer concerned: the submitter, the worker, the one connecting
	Detail     string        // why a job failed or was cancelled
	// Slot is the function's own place for an observer's state (its resolved metrics, say), so
	// that an event finds it without a lookup. Only the observer uses it, always under the lock.
	Slot *any
}

// Observer is told of every Event, in order, with the core's lock held: it must return quickly,
// never block, and never call the core. Metrics, logs and later features subscribe here. With no
// Observer set (Options.Observer nil) reporting costs a nil check per event.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

func (f ObserverFunc) Observe(e Event) { f(e) }

// emitJob reports an event of job j. Times kept for Wait and Run live in the job's extra fields,
// allocated only when someone listens.
func (s *Core) emitJob(kind EventKind, j *job, detail string) {
	o := s.opts.Observer
	if o == nil {
		return
	}
	var now time.Time
	if kind == EventSubmitted && j.created > 0 {
		now = time.Unix(0, j.created) // read by the submit a moment ago: one clock read per submit
	} else {
		now = s.opts.Now()
	}
	e := Event{Kind: kind, Time: now, Handle: s.handleArg(j), Function: j.fn.name, Priority: j.prio.String(),
		Background: j.background, Retries: int(j.retries), Detail: detail, Slot: &j.fn.observerSlot}
	switch kind {
	case EventStarted:
		// The submission time is the job's own (kept when observed); the start time is kept in
		// its worker's set of running jobs, so an observed job allocates nothing more.
		if j.created > 0 {
			e.Wait = max(0, now.Sub(time.Unix(0, j.created)))
		}
		if w := j.worker; w != nil {
			w.running[j] = now.UnixNano()
		}
	case EventCompleted, EventFailed, EventException, EventTimedOut, EventRequeued:
		if w := j.worker; w != nil {
			if started := w.running[j]; started > 0 {
				e.Run = now.Sub(time.Unix(0, started))
			}
		}
	}
	if j.worker != nil {
		e.Peer = j.worker.ID
	}
	o.Observe(e)
}

// emitPeer reports an event of peer p; fn names the function for (un)registrations.
func (s *Core) emitPeer(kind EventKind, p *Peer, fn string) {
	if o := s.opts.Observer; o != nil {
		o.Observe(Event{Kind: kind, Time: s.opts.Now(), Peer: p.ID, Function: fn})
	}
}
