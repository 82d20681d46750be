package core

import (
	"cmp"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// The typed views of the server's state. The admin text protocol renders them (protocol.Append*),
// and any other front end (an HTTP API, metrics) reads the same structs. Each takes the lock once
// and copies what it reports.

// Status is the `status` view: every function, sorted by name.
func (s *Core) Status() []protocol.FunctionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status()
}

func (s *Core) status() []protocol.FunctionStatus {
	fs := s.sortedFunctions()
	out := make([]protocol.FunctionStatus, len(fs))
	for i, f := range fs {
		out[i] = protocol.FunctionStatus{Name: f.name, Total: f.total(), Running: f.running, Workers: len(f.workers)}
	}
	return out
}

// PriorityStatus is the `prioritystatus` view: queued jobs per priority (epoch jobs not yet due
// count as normal), sorted by name.
func (s *Core) PriorityStatus() []protocol.PriorityStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priorityStatus()
}

func (s *Core) priorityStatus() []protocol.PriorityStatus {
	fs := s.sortedFunctions()
	out := make([]protocol.PriorityStatus, len(fs))
	for i, f := range fs {
		out[i] = protocol.PriorityStatus{Name: f.name, High: f.queued[prioHigh],
			Normal: f.queued[prioNormal] + f.scheduled, Low: f.queued[prioLow], Workers: len(f.workers)}
	}
	return out
}

// Functions describes every function, sorted by name: queues per priority, scheduled, running,
// workers, limits and the age of the oldest queued job.
func (s *Core) Functions() []protocol.FunctionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now().UnixNano()
	fs := s.sortedFunctions()
	out := make([]protocol.FunctionInfo, len(fs))
	for i, f := range fs {
		fi := protocol.FunctionInfo{Name: f.name, Scheduled: f.scheduled, Running: f.running, Workers: len(f.workers),
			Queued:   protocol.PriorityInts{High: f.queued[prioHigh], Normal: f.queued[prioNormal], Low: f.queued[prioLow]},
			MaxQueue: protocol.PriorityInts{High: f.maxQueue[prioHigh], Normal: f.maxQueue[prioNormal], Low: f.maxQueue[prioLow]}}
		oldest := int64(0)
		for p := range f.queues {
			if f.queued[p] == 0 {
				continue
			}
			if j := f.queues[p].oldest(); j != nil && j.created > 0 && (oldest == 0 || j.created < oldest) {
				oldest = j.created
			}
		}
		if oldest > 0 {
			fi.OldestAge = max(0, float64(now-oldest)/1e9)
		}
		gateInfo(f, &fi)
		out[i] = fi
	}
	return out
}

// Workers is the `workers` view: peers that registered a function or asked for a job, by ID.
// Unlike gearmand it leaves out peers that are only clients or admin consoles.
func (s *Core) Workers() []protocol.WorkerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers()
}

// sortedPeers lists the workers (or the peers that are not workers), by ID. A peer is a worker once
// it registered a function or asked for a job (canDo, preSleep and grabJob set isWorker).
func (s *Core) sortedPeers(workers bool) []*Peer {
	ps := make([]*Peer, 0, len(s.peers))
	for p := range s.peers {
		if p.isWorker == workers {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b *Peer) int { return cmp.Compare(a.ID, b.ID) })
	return ps
}

func (s *Core) workers() []protocol.WorkerInfo {
	ps := s.sortedPeers(true)
	out := make([]protocol.WorkerInfo, len(ps))
	for i, p := range ps {
		fns := make([]string, len(p.abilities))
		for k, a := range p.abilities {
			fns[k] = a.fn.name
		}
		out[i] = protocol.WorkerInfo{FD: strconv.FormatUint(p.ID, 10), IP: p.Remote, ID: p.clientID,
			Functions: fns, Sleeping: p.sleeping, Running: len(p.running)}
	}
	return out
}

// Clients lists the peers that are not workers, by ID.
func (s *Core) Clients() []protocol.ClientInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.sortedPeers(false)
	out := make([]protocol.ClientInfo, len(ps))
	for i, p := range ps {
		out[i] = protocol.ClientInfo{FD: strconv.FormatUint(p.ID, 10), IP: p.Remote,
			ID: p.clientID, Waiting: len(p.waiting), Exceptions: p.exceptions}
	}
	return out
}

// Jobs is the `show jobs` view: every unfinished job in submission order.
func (s *Core) Jobs() []protocol.JobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobList()
}

func (s *Core) jobList() []protocol.JobInfo {
	js := s.sortedJobs()
	out := make([]protocol.JobInfo, len(js))
	for i, j := range js {
		out[i] = s.jobInfo(j)
	}
	return out
}

// Job is one unfinished job by its handle.
func (s *Core) Job(handle string) (protocol.JobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobByHandle([]byte(handle))
	if j == nil {
		return protocol.JobInfo{}, false
	}
	return s.jobDetail(j), true
}

func (s *Core) jobInfo(j *job) protocol.JobInfo {
	return protocol.JobInfo{
		Handle: s.handleOf(j), Retries: int(j.retries), Queued: j.state != jobRunning,
		Function: j.fn.name, Unique: j.unique(), Priority: j.prio.String(), State: j.state.String(),
		Background: j.background, Clients: len(j.clients), Size: len(j.data),
	}
}

// UniqueJobs is the `show unique jobs` view: the unique keys of unfinished jobs, in submission order.
func (s *Core) UniqueJobs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uniqueJobs()
}

func (s *Core) uniqueJobs() []string {
	var out []string
	for _, j := range s.sortedJobs() {
		if u := j.unique(); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// StoreStats is the durable store's own report, histograms included; false without a store.
func (s *Core) StoreStats() (store.Stats, bool) {
	if s.opts.Store == nil {
		return store.Stats{}, false
	}
	return s.opts.Store.Stats(), true
}

// Store is the `store` view: where background jobs are kept. It takes no lock: the store
// answers for itself.
func (s *Core) Store() protocol.StoreInfo {
	if s.opts.Store == nil {
		return protocol.StoreInfo{Engine: "memory"}
	}
	st := s.opts.Store.Stats()
	info := protocol.StoreInfo{Engine: st.Engine, Path: st.Path, Sync: st.Sync.String(), Jobs: st.Jobs,
		LastError: st.LastError, Commits: st.Commits, CommitErrors: st.CommitErrors,
		CommittedOps: st.CommittedOps, CommitSeconds: st.CommitTime.Seconds()}
	if !st.LastSync.IsZero() {
		info.LastSync = st.LastSync.UTC().Format(time.RFC3339Nano)
	}
	return info
}

// Info describes the server as a whole.
func (s *Core) Info() protocol.ServerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	workers := 0
	for p := range s.peers {
		if p.isWorker {
			workers++
		}
	}
	return protocol.ServerInfo{Version: s.opts.Version, PID: pid, Verbose: s.levelName(),
		Functions: len(s.functions), Jobs: len(s.jobs), Running: s.runningCount(), Workers: workers,
		Connections: len(s.peers), Draining: s.draining}
}

func (s *Core) sortedFunctions() []*function {
	fs := make([]*function, 0, len(s.functions))
	for _, f := range s.functions {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *function) int { return strings.Compare(a.name, b.name) })
	return fs
}

// sortedJobs lists unfinished jobs in submission order.
func (s *Core) sortedJobs() []*job {
	js := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		js = append(js, j)
	}
	slices.SortFunc(js, func(a, b *job) int { return cmp.Compare(a.seq, b.seq) })
	return js
}

// levelName reports the log level in gearmand's words.
func (s *Core) levelName() string {
	if s.opts.Level == nil {
		return "INFO"
	}
	switch l := s.opts.Level.Level(); {
	case l <= slog.LevelDebug:
		return "DEBUG"
	case l <= slog.LevelInfo:
		return "INFO"
	case l <= slog.LevelWarn:
		return "WARNING"
	default:
		return "ERROR"
	}
}
