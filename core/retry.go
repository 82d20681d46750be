package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Retries with backoff, and the dead set. A function's retry policy (FunctionSettings.Retry*) gives
// a failed background job more attempts: a failure — WORK_FAIL, WORK_EXCEPTION, a CAN_DO_TIMEOUT,
// or its worker lost past Options.JobRetries — sends it back to wait, as an epoch job due after
// its backoff (base doubling per attempt, capped, with jitter), durably. After its last attempt it
// joins the dead set with every attempt's error, where it can be listed, retried or deleted.
// Without a policy nothing changes: a failed job is gone, as in gearmand.

// maxErrorText bounds an attempt's error text kept in the dead set.
const maxErrorText = 1024

// Attempt is one failed attempt of a job.
type Attempt struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error"`
}

// DeadJob is a background job that failed its last attempt.
type DeadJob struct {
	Handle   string    `json:"handle"`
	Function string    `json:"function"`
	Unique   string    `json:"unique,omitempty"`
	Priority string    `json:"priority"`
	Data     []byte    `json:"data"`
	Attempts []Attempt `json:"attempts"`
	Died     time.Time `json:"died"`
}

// retryPolicy is what a function's settings say of retries.
type retryPolicy struct {
	attempts  int
	base, cap time.Duration
	jitter    float64
}

func (fs FunctionSettings) retry() retryPolicy {
	return retryPolicy{attempts: fs.RetryAttempts, base: time.Duration(fs.RetryBaseSeconds * float64(time.Second)),
		cap: time.Duration(fs.RetryCapSeconds * float64(time.Second)), jitter: fs.RetryJitter}
}

// backoff is the wait before attempt n+1 (n >= 1 failed so far).
func (p retryPolicy) backoff(n int) time.Duration {
	d := float64(p.base) * math.Pow(2, float64(n-1))
	if p.cap > 0 {
		d = min(d, float64(p.cap))
	}
	if p.jitter > 0 {
		d *= 1 + p.jitter*(2*rand.Float64()-1)
	}
	return time.Duration(max(d, 0))
}

// retryOrBury handles a failed attempt of j with error text why: true if j was sent back to
// wait for another attempt (the caller then does nothing more); false if the caller is to fail it
// as before — after putting it in the dead set when its function has a retry policy. The lock is
// held.
func (s *Core) retryOrBury(tx Tx, j *job, why string) bool {
	p := j.fn.retry
	if p.attempts <= 0 || !j.background || len(j.clients) > 0 {
		return false
	}
	x := j.extra()
	now := s.opts.Now()
	if len(why) > maxErrorText {
		why = why[:maxErrorText]
	}
	x.attempts = append(x.attempts, Attempt{Time: now.UTC(), Error: why})
	if len(x.attempts) < p.attempts {
		delay := p.backoff(len(x.attempts))
		s.log.Info("job failed; retrying after a backoff", "handle", s.handleOf(j), "function", j.fn.name,
			"attempt", len(x.attempts), "of", p.attempts, "in", delay, "error", why)
		if j.state == jobRunning {
			s.unassign(j)
		}
		x.when = now.Add(delay)
		x.num, x.den = "", ""
		s.makeRunnable(tx, j)
		if j.stored {
			s.opts.Store.SetRetries(s.record(j)) // with its due time: a restart keeps it waiting
		}
		return true
	}
	s.bury(j, now)
	return false
}

// bury adds j to the dead set (and to the store, if it keeps one). The lock is held.
func (s *Core) bury(j *job, now time.Time) {
	d := &DeadJob{Handle: s.handleOf(j), Function: j.fn.name, Unique: j.unique(), Priority: j.prio.String(),
		Data: slices.Clone(j.data), Attempts: slices.Clone(j.x.attempts), Died: now.UTC()}
	s.log.Warn("job failed its last attempt: moved to the dead set", "handle", d.Handle, "function", d.Function,
		"attempts", len(d.Attempts))
	s.addDead(d)
	if ds, ok := s.opts.Store.(store.DeadStore); ok {
		data, _ := json.Marshal(d)
		if err := ds.AddDead(d.Handle, data); err != nil {
			s.log.Error("dead job not stored: it lasts until a restart", "handle", d.Handle, "err", err)
		}
	}
}

// addDead keeps d in memory, dropping the oldest past Options.DeadMax. The lock is held.
func (s *Core) addDead(d *DeadJob) {
	if old, ok := s.deadByHandle[d.Handle]; ok {
		s.removeDead(old)
	}
	s.dead = append(s.dead, d)
	s.deadByHandle[d.Handle] = d
	s.trimDead()
}

// mergeDead adds ds, which the store holds already, to the dead set in order of death among the
// others (replacing an entry of the same handle), dropping the oldest past Options.DeadMax. The
// lock is held.
func (s *Core) mergeDead(ds []*DeadJob) {
	replaced := false
	for _, d := range ds {
		_, had := s.deadByHandle[d.Handle]
		replaced = replaced || had
		s.deadByHandle[d.Handle] = d
	}
	if replaced {
		s.compactDead()
	}
	for _, d := range ds {
		if s.deadByHandle[d.Handle] == d { // the last of a handle given twice
			s.dead = append(s.dead, d)
		}
	}
	slices.SortStableFunc(s.dead, func(a, b *DeadJob) int { return a.Died.Compare(b.Died) })
	s.trimDead()
}

// trimDead forgets the oldest dead jobs past Options.DeadMax. The lock is held.
func (s *Core) trimDead() {
	n := len(s.dead) - s.opts.DeadMax
	if n <= 0 {
		return
	}
	for _, d := range s.dead[:n] {
		delete(s.deadByHandle, d.Handle)
		s.deleteStoredDead(d.Handle)
	}
	s.dead = slices.Delete(s.dead, 0, n)
}

// compactDead drops from s.dead the entries deadByHandle no longer indexes (deleted or replaced).
func (s *Core) compactDead() {
	s.dead = slices.DeleteFunc(s.dead, func(x *DeadJob) bool { return s.deadByHandle[x.Handle] != x })
}

func (s *Core) removeDead(d *DeadJob) {
	s.dead = slices.DeleteFunc(s.dead, func(x *DeadJob) bool { return x == d })
	delete(s.deadByHandle, d.Handle)
}

// forgetDead removes d from memory and the store. The lock is held.
func (s *Core) forgetDead(d *DeadJob) {
	s.removeDead(d)
	s.deleteStoredDead(d.Handle)
}

func (s *Core) deleteStoredDead(handle string) {
	if ds, ok := s.opts.Store.(store.DeadStore); ok {
		if err := ds.DeleteDead(handle); err != nil {
			s.log.Error("cannot delete a dead job from the store", "handle", handle, "err", err)
		}
	}
}

// pruneDead forgets dead jobs older than Options.DeadMaxAge. The lock is held.
func (s *Core) pruneDead(now time.Time) {
	for len(s.dead) > 0 && s.opts.DeadMaxAge > 0 && now.Sub(s.dead[0].Died) > s.opts.DeadMaxAge {
		s.forgetDead(s.dead[0])
	}
}

// loadDead reads the dead set the store keeps. The lock is held.
func (s *Core) loadDead() error {
	ds, ok := s.opts.Store.(store.DeadStore)
	if !ok {
		return nil
	}
	var loaded []*DeadJob
	err := ds.LoadDead(func(handle string, data []byte) error {
		if d := s.decodeDead(handle, data); d != nil {
			loaded = append(loaded, d)
		}
		return nil
	})
	s.mergeDead(loaded)
	return err
}

// decodeDead reads a dead job as the store keeps it; nil (logged) if it cannot be read.
func (s *Core) decodeDead(handle string, data []byte) *DeadJob {
	d := &DeadJob{}
	if err := json.Unmarshal(data, d); err != nil {
		s.log.Error("ignoring an unreadable dead job", "handle", handle, "err", err)
		return nil
	}
	return d
}

// AdoptDead adds to the dead set the dead jobs an adoption moved to this server's store
// (store.Adoption.Dead), as loadDead does at start: in order of death among its own, the oldest
// going past Options.DeadMax. The store holds them already: they are not written again.
func (s *Core) AdoptDead(entries []store.DeadEntry) {
	s.lock()
	defer s.mu.Unlock()
	ds := make([]*DeadJob, 0, len(entries))
	for _, e := range entries {
		if d := s.decodeDead(e.Handle, e.Data); d != nil {
			ds = append(ds, d)
		}
	}
	s.mergeDead(ds)
}

// DeadHandles lists the handles of the dead set: Fleet's rejoin takes them before it asks the store
// which are still the server's (ForgetUnownedDead).
func (s *Core) DeadHandles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := make([]string, len(s.dead))
	for i, d := range s.dead {
		hs[i] = d.Handle
	}
	return hs
}

// ForgetUnownedDead drops from memory the dead jobs among handles that the store no longer holds
// for this server (a survivor adopted them while it was fenced, and shows them now) and returns how
// many. handles are the ones the dead set had before the store was asked, so that a job that died
// meanwhile, whose row is still to be written, is kept. They are not deleted from the store: the
// rows are the adopter's.
func (s *Core) ForgetUnownedDead(handles []string, owned func(handle string) bool) int {
	s.lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range handles {
		if _, ok := s.deadByHandle[h]; ok && !owned(h) {
			delete(s.deadByHandle, h)
			n++
		}
	}
	if n > 0 {
		s.compactDead()
		s.log.Info("forgot dead jobs adopted by another server while fenced", "dead", n)
	}
	return n
}

// DeadFilter selects dead jobs: by function ("" for all).
type DeadFilter struct{ Function string }

func (f DeadFilter) match(d *DeadJob) bool { return f.Function == "" || d.Function == f.Function }

// Dead lists the dead jobs matching f, newest first, from offset, at most limit, and the total.
func (s *Core) Dead(f DeadFilter, offset, limit int) (total int, page []DeadJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	page = []DeadJob{}
	for i := len(s.dead) - 1; i >= 0; i-- {
		d := s.dead[i]
		if !f.match(d) {
			continue
		}
		if total >= offset && len(page) < limit {
			page = append(page, *d)
		}
		total++
	}
	return total, page
}

// DeadJobOf is one dead job by handle.
func (s *Core) DeadJobOf(handle string) (DeadJob, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deadByHandle[handle]
	if !ok {
		return DeadJob{}, false
	}
	return *d, true
}

// RetryDead submits the dead jobs matching f (or the one named by handle) again as new background
// jobs, with fresh attempts, and removes them from the dead set. It returns their new handles.
// With a store the new jobs are stored like any submit: they are acknowledged here once queued.
func (s *Core) RetryDead(handle string, f DeadFilter, by string) ([]string, error) {
	s.lock()
	defer s.mu.Unlock()
	var picked []*DeadJob
	if handle != "" {
		d, ok := s.deadByHandle[handle]
		if !ok {
			return nil, ErrNoSuchJob
		}
		picked = []*DeadJob{d}
	} else {
		for _, d := range s.dead {
			if f.match(d) {
				picked = append(picked, d)
			}
		}
	}
	var handles []string
	for _, d := range picked {
		fn := s.function([]byte(d.Function), true)
		j := &job{seq: s.newSeq(), fn: fn, data: slices.Clone(d.Data), prio: parsePriority(d.Priority),
			background: true, uniqueKey: uniqueKey([]byte(d.Unique), d.Data)}
		if j.uniqueKey != "" && fn.uniques[j.uniqueKey] != nil {
			j.uniqueKey = "" // a live job has that key now: this one runs beside it
		}
		if s.opts.Observer != nil || s.opts.Store != nil {
			j.created = s.opts.Now().UnixNano()
		}
		s.jobs[j.seq] = j
		s.queuedBytes += int64(len(j.data))
		if j.uniqueKey != "" {
			fn.uniques[j.uniqueKey] = j
		}
		if s.opts.Store != nil {
			j.stored = true
			s.opts.Store.Add(s.record(j), func(err error) {
				if err != nil {
					s.log.Error("a retried dead job could not be stored; it runs from memory", "handle", d.Handle, "err", err)
				}
			})
		}
		s.emitJob(EventSubmitted, j, "")
		s.enqueue(s.async, j, false)
		handles = append(handles, s.handleOf(j))
		s.log.Info("dead job retried", "handle", d.Handle, "new_handle", s.handleOf(j), "function", d.Function, "by", by)
		s.forgetDead(d)
	}
	return handles, nil
}

// DeleteDead removes the dead jobs matching f (or the one named by handle); it returns how many.
func (s *Core) DeleteDead(handle string, f DeadFilter, by string) (int, error) {
	s.lock()
	defer s.mu.Unlock()
	if handle != "" {
		d, ok := s.deadByHandle[handle]
		if !ok {
			return 0, ErrNoSuchJob
		}
		s.forgetDead(d)
		s.log.Info("dead job deleted", "handle", handle, "by", by)
		return 1, nil
	}
	var picked []*DeadJob
	for _, d := range s.dead {
		if f.match(d) {
			picked = append(picked, d)
		}
	}
	for _, d := range picked {
		s.forgetDead(d)
	}
	s.log.Info("dead jobs deleted", "function", f.Function, "jobs", len(picked), "by", by)
	return len(picked), nil
}

func parsePriority(p string) priority {
	switch strings.ToLower(p) {
	case "high":
		return prioHigh
	case "low":
		return prioLow
	}
	return prioNormal
}

// adminDead handles the retry policy and dead set commands (Gear extensions):
//
//	retry FUNCTION ATTEMPTS BASE_SECONDS CAP_SECONDS [JITTER]
//	dead list [FUNCTION]            HANDLE\tFUNCTION\tATTEMPTS\tDIED\tLAST_ERROR lines, then "."
//	dead retry HANDLE | dead retry function FUNCTION      OK N
//	dead delete HANDLE | dead delete function FUNCTION    OK N
func (s *Core) adminDead(cmd protocol.AdminCommand, by string) string {
	usage := func(u string) string {
		return "ERR INVALID_ARGUMENTS Usage:+" + strings.ReplaceAll(u, " ", "+") + "\r\n"
	}
	args := cmd.Args
	switch cmd.Name {
	case protocol.AdminRetry:
		if len(args) != 4 && len(args) != 5 {
			return usage("retry FUNCTION ATTEMPTS BASE_SECONDS CAP_SECONDS [JITTER]")
		}
		attempts, e1 := strconv.Atoi(args[1])
		base, e2 := strconv.ParseFloat(args[2], 64)
		limit, e3 := strconv.ParseFloat(args[3], 64)
		jitter, e4 := 0.0, error(nil)
		if len(args) == 5 {
			jitter, e4 = strconv.ParseFloat(args[4], 64)
		}
		if errors.Join(e1, e2, e3, e4) != nil {
			return usage("retry FUNCTION ATTEMPTS BASE_SECONDS CAP_SECONDS [JITTER]")
		}
		_, err := s.SetFunction(args[0], func(fs *FunctionSettings) {
			fs.RetryAttempts, fs.RetryBaseSeconds, fs.RetryCapSeconds, fs.RetryJitter = attempts, base, limit, jitter
		}, by)
		if err != nil {
			return "ERR INVALID_ARGUMENTS " + strings.ReplaceAll(strings.TrimPrefix(err.Error(), ErrBadSettings.Error()+"\n"), " ", "+") + "\r\n"
		}
		return "OK\r\n"
	case protocol.AdminDeadList:
		f := DeadFilter{}
		if len(args) > 0 {
			f.Function = args[0]
		}
		_, page := s.Dead(f, 0, s.opts.DeadMax)
		var b strings.Builder
		for _, d := range page {
			last := ""
			if n := len(d.Attempts); n > 0 {
				last = strings.Join(strings.Fields(d.Attempts[n-1].Error), " ")
			}
			fmt.Fprintf(&b, "%s\t%s\t%d\t%s\t%s\n", d.Handle, d.Function, len(d.Attempts), d.Died.Format(time.RFC3339), last)
		}
		return b.String() + ".\n"
	}
	var handle string
	var f DeadFilter
	switch {
	case len(args) == 1:
		handle = args[0]
	case len(args) == 2 && args[0] == "function":
		f.Function = args[1]
	default:
		return usage(cmd.Name + " HANDLE|function FUNCTION")
	}
	var n int
	var err error
	if cmd.Name == protocol.AdminDeadRetry {
		var hs []string
		hs, err = s.RetryDead(handle, f, by)
		n = len(hs)
	} else {
		n, err = s.DeleteDead(handle, f, by)
	}
	if errors.Is(err, ErrNoSuchJob) {
		return "ERR UNKNOWN_JOB\r\n"
	}
	return "OK " + strconv.Itoa(n) + "\n"
}
