package bench

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
)

// Verification errors, wrapped in Result.Err: test for them with errors.Is.
var (
	ErrLost       = errors.New("lost jobs")
	ErrDuplicated = errors.New("duplicated jobs")
	ErrCorrupted  = errors.New("corrupted jobs")
	ErrOrder      = errors.New("priority order violated")
	ErrCoalesce   = errors.New("unique jobs not coalesced")
	ErrServer     = errors.New("server error")
)

// Job state word: an execution count in the low bits and flags on top. One word per job id, updated
// with atomic adds and ors, so workers and clients never share a lock.
const (
	execMask    = 1<<24 - 1
	flagDone    = 1 << 28 // a foreground client received its WORK_COMPLETE
	flagDup     = 1 << 29 // delivered twice to a client
	flagCorrupt = 1 << 30 // a payload of this job came back corrupted
	flagAcked   = 1 << 31 // the server answered the submit with JOB_CREATED
)

const maxNotes = 8

// tracker records what happened to every job id of a run.
type tracker struct {
	n        int64
	state    []atomic.Uint32
	handles  []atomic.Uint64 // unique scenario: hash of the first handle each key got
	executed atomic.Int64    // ids run at least once
	target   int64           // executed value that completes the drain
	reached  chan struct{}   // closed when executed reaches target
	doneAt   atomic.Int64    // run clock when it did

	corruptOther atomic.Int64 // corrupted payloads that name no job of ours
	dupOther     atomic.Int64 // completions that name no job of ours
	foreign      atomic.Int64 // valid payloads of another run
	uncoalesced  atomic.Int64 // repeated unique keys that got a different handle
	order        atomic.Int64 // grabs that came after a grab of lower priority
	serverErrs   atomic.Int64 // ERROR, WORK_FAIL, WORK_EXCEPTION packets

	mu    sync.Mutex
	notes []string // the first few problems, for the error message
}

func newTracker(n int64, unique bool) *tracker {
	t := &tracker{n: n, state: make([]atomic.Uint32, n), target: n, reached: make(chan struct{})}
	if unique {
		t.handles = make([]atomic.Uint64, n)
	}
	if n == 0 {
		close(t.reached)
	}
	return t
}

func (t *tracker) note(format string, a ...any) {
	t.mu.Lock()
	if len(t.notes) < maxNotes {
		t.notes = append(t.notes, fmt.Sprintf(format, a...))
	}
	t.mu.Unlock()
}

func (t *tracker) valid(id int64) bool { return id >= 0 && id < t.n }

// acked records the JOB_CREATED of job id. For the unique scenario it checks that every submit of a
// key got the same handle.
func (t *tracker) acked(id int64, handle []byte) {
	t.state[id].Or(flagAcked)
	if t.handles == nil {
		return
	}
	h := fnv.New64a()
	h.Write(handle)
	sum := h.Sum64() | 1
	if !t.handles[id].CompareAndSwap(0, sum) && t.handles[id].Load() != sum {
		if t.uncoalesced.Add(1) == 1 {
			t.note("unique key of job %d got a second handle %q", id, handle)
		}
	}
}

// executed records that a worker received job id (with an intact payload or not) and reports whether
// it was the first time.
func (t *tracker) execute(id int64, now int64) bool {
	n := t.state[id].Add(1) & execMask
	if n == 1 {
		if t.executed.Add(1) == t.target {
			t.doneAt.Store(now)
			close(t.reached)
		}
		return true
	}
	if n == 2 {
		t.note("job %d was handed to a worker twice", id)
	}
	return false
}

// completed records the WORK_COMPLETE of job id at its foreground client.
func (t *tracker) completed(id int64) {
	if old := t.state[id].Or(flagDone); old&flagDone != 0 {
		t.state[id].Or(flagDup)
		t.note("job %d completed twice at its client", id)
	}
}

// unexpectedCompletion records a WORK_COMPLETE a client was not waiting for: a second delivery (when
// the payload names a job of ours) or a stray packet.
func (t *tracker) unexpectedCompletion(id int64, handle []byte) {
	if t.valid(id) {
		t.state[id].Or(flagDup)
		t.note("WORK_COMPLETE for job %d (handle %q) arrived after it completed", id, handle)
		return
	}
	t.dupOther.Add(1)
	t.note("WORK_COMPLETE for a handle no client waits for: %q", handle)
}

// corrupt records a corrupted payload, seen by a worker or, for echoes, by a client.
func (t *tracker) corrupt(id int64, where string) {
	if t.valid(id) {
		if old := t.state[id].Or(flagCorrupt); old&flagCorrupt == 0 {
			t.note("job %d: corrupted payload at the %s", id, where)
		}
		return
	}
	t.corruptOther.Add(1)
	t.note("corrupted payload at the %s, naming no job of this run", where)
}

func (t *tracker) foreignJob() {
	if t.foreign.Add(1) == 1 {
		t.note("a job of another run was handed to a worker (leftovers on this function?)")
	}
}

// verdict counts the lost, duplicated and corrupted jobs. A job is lost when the server acknowledged
// it and it never ran (fgClient false) or its result never came back to its client (fgClient true: a
// verified echo proves it ran); a corrupted job is only counted as corrupted.
type verdict struct {
	Lost, Duplicated, Corrupted int64
	Runs                        int64 // executions, repeats included
	firstLost                   []int64
}

func (t *tracker) verdict(fgClient, checkLost bool) verdict {
	var v verdict
	for i := range t.state {
		s := t.state[i].Load()
		runs := s & execMask
		v.Runs += int64(runs)
		if s&flagCorrupt != 0 {
			v.Corrupted++
		} else if checkLost && s&flagAcked != 0 && (fgClient && s&flagDone == 0 || !fgClient && runs == 0) {
			v.Lost++
			if len(v.firstLost) < 5 {
				v.firstLost = append(v.firstLost, int64(i))
			}
		}
		if runs > 1 || s&flagDup != 0 {
			v.Duplicated++
		}
	}
	v.Corrupted += t.corruptOther.Load()
	v.Duplicated += t.dupOther.Load()
	return v
}

func formatIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}
