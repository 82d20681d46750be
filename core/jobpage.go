package core

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gearhq/gear/protocol"
)

// JobFilter selects unfinished jobs for JobPage; an empty field matches every job.
type JobFilter struct {
	Function string
	State    string // queued, running, scheduled or persisting
	Priority string // high, normal or low
}

// ErrBadFilter is returned for a JobFilter naming an unknown state or priority.
var ErrBadFilter = errors.New("bad job filter")

// JobPage is one page of the unfinished jobs matching a filter.
type JobPage struct {
	Total int // jobs matching the filter
	Jobs  []protocol.JobInfo
}

// pageStates is the order of JobPage's list: what runs now, what runs next (in the order workers
// will take it), what runs later, what is still being stored.
var pageStates = [...]jobState{jobRunning, jobQueued, jobScheduled, jobPersisting}

// JobPage returns the jobs matching f at [offset, offset+limit) of a list ordered by state
// (running, queued, scheduled, persisting). Running jobs are in submission order; queued ones by
// function name, then priority (high first), then position in the queue, which is the order a
// worker of one function takes them; scheduled ones by the time they fall due.
//
// It never builds the whole list, so it stays cheap with a million queued jobs: totals come from
// the per-function counters, and a page of queued jobs is read from the queues themselves, whole
// queues before the offset skipped by their counts. Only running, scheduled and persisting jobs —
// bounded by the workers, the epoch jobs and the store's batch — are collected and sorted.
func (s *Core) JobPage(f JobFilter, offset, limit int) (JobPage, error) {
	states, prios, err := f.parse()
	if err != nil {
		return JobPage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var fns []*function
	if f.Function != "" {
		if fn := s.functions[f.Function]; fn != nil {
			fns = []*function{fn}
		}
	} else {
		fns = s.sortedFunctions()
	}
	page := JobPage{Jobs: []protocol.JobInfo{}}
	take := func(j *job) bool { // false once the page is full
		if offset > 0 {
			offset--
			return true
		}
		if len(page.Jobs) == limit {
			return false
		}
		page.Jobs = append(page.Jobs, s.jobDetail(j))
		return true
	}
	allPrios := prios[prioHigh] && prios[prioNormal] && prios[prioLow]
	for _, st := range pageStates {
		if !states[st] {
			continue
		}
		if st == jobQueued {
			for _, fn := range fns {
				for p := range numPriorities {
					if prios[p] {
						page.Total += fn.queued[p]
					}
				}
			}
			if len(page.Jobs) < limit {
				s.pageQueued(fns, prios, &offset, take)
			}
			continue
		}
		if allPrios { // the counters say how many there are: collect only what the page shows
			n := 0
			for _, fn := range fns {
				n += fn.count(st)
			}
			if len(page.Jobs) == limit || offset >= n {
				page.Total += n
				offset -= min(offset, n)
				continue
			}
		}
		js := s.jobsIn(st, f.Function, prios)
		page.Total += len(js)
		if offset >= len(js) {
			offset -= len(js)
			continue
		}
		for _, j := range js {
			if !take(j) {
				break
			}
		}
	}
	return page, nil
}

func (f JobFilter) parse() (states [jobPersisting + 1]bool, prios [numPriorities]bool, err error) {
	for _, st := range pageStates {
		states[st] = f.State == "" || f.State == st.String()
	}
	for p := range numPriorities {
		prios[p] = f.Priority == "" || f.Priority == p.String()
	}
	if !slices.Contains(states[:], true) {
		return states, prios, errors.Join(ErrBadFilter, errors.New("state must be queued, running, scheduled or persisting"))
	}
	if !slices.Contains(prios[:], true) {
		return states, prios, errors.Join(ErrBadFilter, errors.New("priority must be high, normal or low"))
	}
	return states, prios, nil
}

// count is how many of f's jobs are in state st (running, scheduled or persisting).
func (f *function) count(st jobState) int {
	switch st {
	case jobRunning:
		return f.running
	case jobScheduled:
		return f.scheduled
	case jobPersisting:
		return f.persisting
	}
	return 0
}

// pageQueued feeds take the queued jobs from *offset on, skipping whole queues by their counts.
func (s *Core) pageQueued(fns []*function, prios [numPriorities]bool, offset *int, take func(*job) bool) {
	for _, fn := range fns {
		for p := range numPriorities {
			if !prios[p] || fn.queued[p] == 0 {
				continue
			}
			if *offset >= fn.queued[p] {
				*offset -= fn.queued[p]
				continue
			}
			q := &fn.queues[p]
			for i := 0; i < q.n; i++ {
				if j := q.ring[(q.head+i)%len(q.ring)]; j.state == jobQueued && !take(j) {
					return
				}
			}
		}
	}
}

// jobsIn gathers the jobs in state st (running, scheduled or persisting) of the function named fn
// ("" for all) with one of the priorities, in the order JobPage lists them.
func (s *Core) jobsIn(st jobState, fn string, prios [numPriorities]bool) []*job {
	var js []*job
	keep := func(j *job) {
		if j.state == st && (fn == "" || j.fn.name == fn) && prios[j.prio] {
			js = append(js, j)
		}
	}
	switch st {
	case jobRunning:
		for p := range s.peers {
			for j := range p.running {
				keep(j)
			}
		}
	case jobScheduled:
		for _, j := range s.epochs.jobs {
			keep(j)
		}
	case jobPersisting:
		for j := range s.acks {
			keep(j)
		}
	}
	slices.SortFunc(js, func(a, b *job) int {
		if st == jobScheduled {
			if c := a.when().Compare(b.when()); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return js
}

// jobDetail is jobInfo with what only a single job's view or a page carries: a preview of the
// payload, the worker running it, when it was submitted and when it falls due.
func (s *Core) jobDetail(j *job) protocol.JobInfo {
	info := s.jobInfo(j)
	info.Preview = Preview(j.data, previewBytes)
	if j.worker != nil {
		info.Worker = strconv.FormatUint(j.worker.ID, 10)
	}
	if j.created > 0 {
		info.Created = time.Unix(0, j.created).UTC().Format(time.RFC3339Nano)
	}
	if w := j.when(); !w.IsZero() {
		info.Due = w.UTC().Format(time.RFC3339)
	}
	return info
}

// previewBytes is how much of a payload a job's views show.
const previewBytes = 64

// Preview renders up to n bytes of a payload as safe text: printable UTF-8 as it is, anything else
// Go-escaped (\x00, \n, \u200b...), and "…" when the payload goes on. A payload is the client's
// business: only its start is ever shown, never the whole.
func Preview(data []byte, n int) string {
	cut := len(data) > n
	if cut {
		data = data[:n]
		// don't split a UTF-8 sequence: the tail would render as an escape
		for k := 0; k < utf8.UTFMax && len(data) > 0 && !utf8.Valid(data); k++ {
			data = data[:len(data)-1]
		}
		if !utf8.Valid(data) {
			data = data[:n]
		}
	}
	q := strconv.QuoteToGraphic(string(data))
	q = q[1 : len(q)-1]
	if cut {
		q += "…"
	}
	return q
}
