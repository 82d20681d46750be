package server

import "time"

// priority of a job; lower runs first.
type priority uint8

const (
	prioHigh priority = iota
	prioNormal
	prioLow
	numPriorities
)

func (p priority) String() string {
	return [...]string{"high", "normal", "low"}[p]
}

type jobState uint8

const (
	jobQueued     jobState = iota // runnable, in its function's queue
	jobScheduled                  // epoch job waiting for its time, in the scheduler heap
	jobRunning                    // assigned to a worker
	jobDone                       // finished, cancelled or dropped; unreachable from every index
	jobPersisting                 // background job being written to the store; not runnable yet
)

// job is one unit of work. All fields are guarded by Server.mu.
type job struct {
	handle     string
	seq        uint64 // submission order
	fn         *function
	unique     string // as the client sent it ("" = none)
	uniqueKey  string // key in fn.uniques ("" = not coalescable)
	data       []byte
	reducer    string
	prio       priority
	background bool
	when       time.Time // epoch jobs: not runnable before
	created    time.Time

	state   jobState
	clients []*conn // foreground clients waiting for WORK_* packets
	worker  *conn
	retries int
	num     string // last WORK_STATUS numerator/denominator
	den     string

	stored bool  // on stable storage: removing the job removes it there too
	acks   []ack // JOB_CREATED replies waiting for the store (state jobPersisting)

	heapIndex int       // position in the scheduler heap it sits in, -1 when in none
	deadline  time.Time // CAN_DO_TIMEOUT expiry while running
}

// jobQueue is a FIFO of jobs as a ring buffer. Jobs leave it lazily: a job cancelled while queued is
// marked done and skipped when it reaches the front, so removal is O(1) and no per-job node exists.
type jobQueue struct {
	ring []*job
	head int
	n    int // entries in ring, including lazily removed ones
}

func (q *jobQueue) grow() {
	size := max(16, 2*len(q.ring))
	ring := make([]*job, size)
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

func (q *jobQueue) pushBack(j *job) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = j
	q.n++
}

// pushFront puts a requeued job back where it was taken from, ahead of younger jobs.
func (q *jobQueue) pushFront(j *job) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.head = (q.head - 1 + len(q.ring)) % len(q.ring)
	q.ring[q.head] = j
	q.n++
}

// popRunnable removes and returns the oldest job still queued, or nil.
func (q *jobQueue) popRunnable() *job {
	for q.n > 0 {
		j := q.ring[q.head]
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		if j.state == jobQueued {
			q.shrink()
			return j
		}
	}
	q.shrink()
	return nil
}

// shrink gives memory back after a large queue drains.
func (q *jobQueue) shrink() {
	if len(q.ring) > 1024 && q.n < len(q.ring)/8 {
		ring := make([]*job, max(16, len(q.ring)/4))
		for i := 0; i < q.n; i++ {
			ring[i] = q.ring[(q.head+i)%len(q.ring)]
		}
		q.ring, q.head = ring, 0
	} else if q.n == 0 && len(q.ring) > 1024 {
		q.ring, q.head = nil, 0
	}
}

// each calls f for every job still queued, oldest first.
func (q *jobQueue) each(f func(*job)) {
	for i := 0; i < q.n; i++ {
		if j := q.ring[(q.head+i)%len(q.ring)]; j.state == jobQueued {
			f(j)
		}
	}
}

// function is a named queue and the workers able to run it. Guarded by Server.mu.
type function struct {
	name        string
	queues      [numPriorities]jobQueue
	queued      [numPriorities]int // live jobs per queue (the rings may hold removed ones)
	running     int
	scheduled   int // epoch jobs not yet due
	workers     []*conn
	wakeNext    int // rotating start for NOOP wake-ups
	maxQueue    [numPriorities]int
	explicit    bool // created by the admin `create function`: kept until dropped
	idleSince   time.Time
	uniques     map[string]*job
	uniquesPeak int // largest len(uniques) since it was last rebuilt
}

// total is what gearmand's `status` calls TOTAL: every job of the function that is not finished.
func (f *function) total() int {
	return f.queued[prioHigh] + f.queued[prioNormal] + f.queued[prioLow] + f.running + f.scheduled
}

func (f *function) queuedTotal() int {
	return f.queued[prioHigh] + f.queued[prioNormal] + f.queued[prioLow]
}

// idle reports whether nothing keeps the function alive. An idle function stays listed for
// Options.FunctionIdleTTL (monitoring sees a drained queue as "0 0 0"), then is removed, so `status`
// does not accumulate ghosts of long-gone workers as gearmand's does.
func (f *function) idle() bool {
	return !f.explicit && f.total() == 0 && len(f.workers) == 0 &&
		f.maxQueue == [numPriorities]int{}
}
