package core

import (
	"strings"
	"time"
)

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

// job is one unit of work. All fields are guarded by the core lock.
//
// A server may hold millions of queued jobs, so a job keeps only what every job needs (112 bytes);
// the fields few jobs use live in jobExtra, allocated on first use.
type job struct {
	data      []byte
	fn        *function
	clients   []*Peer // foreground clients waiting for WORK_* packets
	worker    *Peer
	uniqueKey string // key in fn.uniques ("" = not coalescable); see unique()
	seq       uint64 // submission order; the handle is HandlePrefix:seq (see Server.appendHandle)
	created   int64  // Unix nanoseconds of its submission; kept for stored jobs and when an Observer listens (0 otherwise)
	x         *jobExtra

	retries    uint16 // times its worker was lost (saturates)
	prio       priority
	background bool
	state      jobState
	stored     bool // on stable storage: removing the job removes it there too
	pooledData bool // data came from bufpool and goes back when the job ends
}

// jobExtra holds the fields of a job that only some jobs use.
type jobExtra struct {
	handle    string    // a replayed job's handle when it is not HandlePrefix:seq (the prefix changed)
	when      time.Time // epoch jobs: not runnable before
	deadline  time.Time // CAN_DO_TIMEOUT expiry while running
	heapIndex int       // position in the scheduler heap it sits in, -1 when in none
	reducer   string
	num, den  string    // last WORK_STATUS numerator/denominator
	attempts  []Attempt // failed attempts under a retry policy (retry.go)
}

// extra returns j's jobExtra, allocating it on first use.
func (j *job) extra() *jobExtra {
	if j.x == nil {
		j.x = &jobExtra{heapIndex: -1}
	}
	return j.x
}

// when is the time an epoch job becomes runnable; zero for other jobs.
func (j *job) when() time.Time {
	if j.x == nil {
		return time.Time{}
	}
	return j.x.when
}

// unique is the unique ID as the client sent it ("" = none): the coalescing key, which differs from
// it only for "-" (see uniqueKey).
func (j *job) unique() string {
	if strings.HasPrefix(j.uniqueKey, dataKeyPrefix) {
		return "-"
	}
	return j.uniqueKey
}

func (j *job) reducer() string {
	if j.x == nil {
		return ""
	}
	return j.x.reducer
}

// status is the last WORK_STATUS numerator and denominator ("" before any).
func (j *job) status() (num, den string) {
	if j.x == nil {
		return "", ""
	}
	return j.x.num, j.x.den
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

// oldest returns the oldest job still queued, or nil.
func (q *jobQueue) oldest() *job {
	for i := 0; i < q.n; i++ {
		if j := q.ring[(q.head+i)%len(q.ring)]; j.state == jobQueued {
			return j
		}
	}
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

// function is a named queue and the workers able to run it. Guarded by the core lock.
type function struct {
	name        string
	queues      [numPriorities]jobQueue
	queued      [numPriorities]int // live jobs per queue (the rings may hold removed ones)
	running     int
	scheduled   int // epoch jobs not yet due
	persisting  int // background jobs being written to the store: not in total, yet alive
	workers     []*Peer
	wakeNext    int // rotating start for NOOP wake-ups
	maxQueue    [numPriorities]int
	explicit    bool // created by the admin `create function`: kept until dropped
	idleSince   time.Time
	uniques     map[string]*job
	uniquesPeak int // largest len(uniques) since it was last rebuilt
	// observerSlot is the Observer's per-function state (Event.Slot).
	observerSlot any
	gate         *gate       // pause and limits; nil: none (gates.go)
	retry        retryPolicy // retries of failed background jobs (retry.go)
	// when the settings last changed, and who changed them
	settingsUpdated int64
	settingsOrigin  string
}

// total is what gearmand's `status` calls TOTAL: every job of the function that is not finished.
func (f *function) total() int {
	return f.queued[prioHigh] + f.queued[prioNormal] + f.queued[prioLow] + f.running + f.scheduled
}

func (f *function) queuedTotal() int {
	return f.queued[prioHigh] + f.queued[prioNormal] + f.queued[prioLow]
}

// limitCount is what maxqueue limits: every unfinished job, those still being stored included (a
// pipelined burst of durable submits must not slip past the limit while it is being written).
func (f *function) limitCount() int { return f.total() + f.persisting }

// idle reports whether nothing keeps the function alive. An idle function stays listed for
// Options.FunctionIdleTTL (monitoring sees a drained queue as "0 0 0"), then is removed, so `status`
// does not accumulate ghosts of long-gone workers as gearmand's does.
func (f *function) idle() bool {
	return !f.explicit && f.limitCount() == 0 && len(f.workers) == 0 &&
		f.maxQueue == [numPriorities]int{} && f.gate == nil && f.retry.attempts == 0
}

func (st jobState) String() string {
	return [...]string{"queued", "scheduled", "running", "done", "persisting"}[st]
}
