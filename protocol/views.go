package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The admin protocol's views as plain structs: the job server fills them from its state and
// renders them with the Append functions below; admin clients parse replies back into the same
// types with the Parse functions. Adding a view is one struct, one method on the server's core, one
// renderer and one parser here.

// FunctionStatus is one line of `status`: a function's unfinished jobs (queued and running), its
// running jobs, and the workers that can run it.
type FunctionStatus struct {
	Name    string `json:"function"`
	Total   int    `json:"total"`
	Running int    `json:"running"`
	Workers int    `json:"available_workers"`
}

// PriorityStatus is one line of `prioritystatus`: a function's queued (not running) jobs per
// priority and the workers that can run it. Gear counts epoch jobs not yet due under Normal.
type PriorityStatus struct {
	Name    string `json:"function"`
	High    int    `json:"high"`
	Normal  int    `json:"normal"`
	Low     int    `json:"low"`
	Workers int    `json:"available_workers"`
}

// WorkerInfo is one line of `workers`: a connection's descriptor (gearmand: the file descriptor;
// Gear: a connection number), peer IP, client ID ("-" when the peer never sent SET_CLIENT_ID) and
// the functions it registered. gearmand lists clients and admin connections too, with no functions.
// Sleeping and Running are known to Gear's own views only: the admin line does not carry them.
type WorkerInfo struct {
	FD        string   `json:"fd"`
	IP        string   `json:"ip"`
	ID        string   `json:"client_id"`
	Functions []string `json:"functions"`
	Sleeping  bool     `json:"sleeping,omitempty"`
	Running   int      `json:"running,omitempty"`
}

// MarshalJSON writes Functions as [] rather than null when there are none.
func (w WorkerInfo) MarshalJSON() ([]byte, error) {
	type plain WorkerInfo // no methods: no recursion
	if w.Functions == nil {
		w.Functions = []string{}
	}
	return json.Marshal(plain(w))
}

// JobInfo is one line of `show jobs`: an unfinished job's handle, how often its worker was lost,
// whether it was cancelled (gearmand keeps a cancelled job listed until it is dequeued) and the
// JOB_QUEUED flag. Gear sets Queued for a job waiting in a queue, not for a running one; gearmand
// 1.1 sets it for running jobs too and clears it only on cancel. The fields after Queued are
// known to Gear's own views only.
type JobInfo struct {
	Handle     string `json:"handle"`
	Retries    int    `json:"retries"`
	Ignored    bool   `json:"ignored"`
	Queued     bool   `json:"queued"`
	Function   string `json:"function,omitempty"`
	Unique     string `json:"unique,omitempty"`
	Priority   string `json:"priority,omitempty"` // high, normal, low
	State      string `json:"state,omitempty"`    // persisting, scheduled, queued, running
	Background bool   `json:"background,omitempty"`
	Clients    int    `json:"clients,omitempty"` // foreground clients waiting for it
	Size       int    `json:"size,omitempty"`    // bytes of payload
	// The fields below are filled in by the views of a single job or a page of jobs, not by the
	// admin protocol's full listings.
	Preview string `json:"preview,omitempty"` // the payload's first bytes, escaped (see core.Preview)
	Worker  string `json:"worker,omitempty"`  // ID of the connection running it
	Created string `json:"created,omitempty"` // submission time (RFC 3339), when the server keeps it
	Due     string `json:"due,omitempty"`     // an epoch job's time (RFC 3339)
}

// FunctionInfo is everything the server knows of one function, for Gear's own views (the admin
// text protocol has `status` and `prioritystatus`, which carry parts of it).
type FunctionInfo struct {
	Name      string       `json:"function"`
	Queued    PriorityInts `json:"queued"`    // runnable jobs waiting, per priority
	Scheduled int          `json:"scheduled"` // epoch jobs not yet due
	Running   int          `json:"running"`
	Workers   int          `json:"workers"`
	MaxQueue  PriorityInts `json:"max_queue"` // 0: no limit
	// Gates (Gear): paused, at most MaxRunning running at once, at most RatePerSec starts a second
	// (0: no limit).
	Paused     bool    `json:"paused"`
	MaxRunning int     `json:"max_running"`
	RatePerSec float64 `json:"rate_per_sec"`
	// OldestAge is how long the oldest queued job has waited, in seconds (0 with none queued, or
	// when the server keeps no submission times: it does for stored jobs and with an Observer).
	OldestAge float64 `json:"oldest_age_seconds"`
}

// PriorityInts holds one number per priority.
type PriorityInts struct {
	High   int `json:"high"`
	Normal int `json:"normal"`
	Low    int `json:"low"`
}

// ClientInfo is a connection that is not a worker: a client, an admin console, or one that has not
// said yet. The admin protocol has no such view (gearmand lists them among `workers`).
type ClientInfo struct {
	FD         string `json:"fd"`
	IP         string `json:"ip"`
	ID         string `json:"client_id"`
	Waiting    int    `json:"waiting"`    // foreground jobs it waits for
	Exceptions bool   `json:"exceptions"` // asked for WORK_EXCEPTION (OPTION_REQ exceptions)
}

// StoreInfo is the reply to `store`, a Gear extension: where the server keeps background jobs. A
// server keeping them in memory only reports Engine "memory" and nothing else.
type StoreInfo struct {
	Engine    string `json:"engine"`     // "pebble", "postgres" or "memory"
	Path      string `json:"path"`       // the data directory; for postgres the URL, password masked
	Sync      string `json:"sync"`       // "always", "interval" or "none"
	Jobs      int64  `json:"jobs"`       // background jobs stored
	LastSync  string `json:"last_sync"`  // RFC 3339 time of the last fsync, UTC; "" before the first
	LastError string `json:"last_error"` // the last failed write; "" if none failed
	// Counters of Gear's own views (the admin line does not carry them): batches committed,
	// failed, the operations they carried, and the seconds spent committing.
	Commits       int64   `json:"commits,omitempty"`
	CommitErrors  int64   `json:"commit_errors,omitempty"`
	CommittedOps  int64   `json:"committed_operations,omitempty"`
	CommitSeconds float64 `json:"commit_seconds,omitempty"`
}

// ServerInfo describes a job server as a whole: what `version`, `getpid` and `verbose` answer
// one at a time, and totals of the other views.
type ServerInfo struct {
	Version     string `json:"version"`
	PID         int    `json:"pid"`
	Verbose     string `json:"verbose"`
	Functions   int    `json:"functions"`
	Jobs        int    `json:"jobs"`    // unfinished jobs
	Running     int    `json:"running"` // jobs assigned to workers
	Workers     int    `json:"workers"` // connections that registered a function or asked for a job
	Connections int    `json:"connections"`
	Draining    bool   `json:"draining"` // a graceful shutdown is under way
}

// AppendStatus renders `status`: "FUNCTION\tTOTAL\tRUNNING\tAVAILABLE_WORKERS" lines, then ".".
func AppendStatus(b []byte, fs []FunctionStatus) []byte {
	for _, f := range fs {
		b = append(b, f.Name...)
		b = appendTabInts(b, f.Total, f.Running, f.Workers)
	}
	return append(b, ".\n"...)
}

// AppendPriorityStatus renders `prioritystatus`: "FUNCTION\tHIGH\tNORMAL\tLOW\tWORKERS" lines.
func AppendPriorityStatus(b []byte, ps []PriorityStatus) []byte {
	for _, p := range ps {
		b = append(b, p.Name...)
		b = appendTabInts(b, p.High, p.Normal, p.Low, p.Workers)
	}
	return append(b, ".\n"...)
}

func appendTabInts(b []byte, ns ...int) []byte {
	for _, n := range ns {
		b = strconv.AppendInt(append(b, '\t'), int64(n), 10)
	}
	return append(b, '\n')
}

// AppendWorkers renders `workers`: "FD IP CLIENT-ID : FUNCTION ..." lines (" :" with none).
func AppendWorkers(b []byte, ws []WorkerInfo) []byte {
	for _, w := range ws {
		b = append(b, w.FD...)
		b = append(b, ' ')
		b = append(b, w.IP...)
		b = append(b, ' ')
		b = append(b, w.ID...)
		b = append(b, " :"...)
		for _, f := range w.Functions {
			b = append(b, ' ')
			b = append(b, f...)
		}
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

// AppendJobs renders `show jobs`: "HANDLE\tRETRIES\tIGNORE_JOB\tJOB_QUEUED" lines.
func AppendJobs(b []byte, js []JobInfo) []byte {
	for _, j := range js {
		b = append(b, j.Handle...)
		b = appendTabInts(b, j.Retries, flag(j.Ignored), flag(j.Queued))
	}
	return append(b, ".\n"...)
}

// AppendUniqueJobs renders `show unique jobs`: one unique key per line.
func AppendUniqueJobs(b []byte, uniques []string) []byte {
	for _, u := range uniques {
		b = append(b, u...)
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

func flag(v bool) int {
	if v {
		return 1
	}
	return 0
}

// AppendStore renders `store`: "KEY\tVALUE" lines, "-" for an unset value; only the engine for a
// server without a store.
func AppendStore(b []byte, s StoreInfo) []byte {
	if s.Engine == "memory" {
		return append(b, "engine\tmemory\n.\n"...)
	}
	dash := func(v string) string {
		if v == "" {
			return "-"
		}
		return strings.Join(strings.Fields(v), " ") // one line, whatever the error said
	}
	b = append(b, "engine\t"+s.Engine+"\npath\t"+s.Path+"\nsync\t"+s.Sync+"\njobs\t"...)
	b = strconv.AppendInt(b, s.Jobs, 10)
	return append(b, "\nlast_sync\t"+dash(s.LastSync)+"\nlast_error\t"+dash(s.LastError)+"\n.\n"...)
}

// splitRow splits a tabular row into a leading name and n trailing integers. The name is whatever
// precedes the last n tab-separated fields, so a function name containing a tab still parses
// ("prefix\tfunc\t1\t0\t0").
func splitRow(line string, n int) (string, []int, bool) {
	nums := make([]int, n)
	rest := line
	for i := n - 1; i >= 0; i-- {
		tab := strings.LastIndexByte(rest, '\t')
		if tab < 0 {
			return "", nil, false
		}
		v, err := strconv.Atoi(strings.TrimSpace(rest[tab+1:]))
		if err != nil {
			return "", nil, false
		}
		nums[i] = v
		rest = rest[:tab]
	}
	return rest, nums, true
}

// ParseStatus parses the lines of a `status` reply (without the closing ".").
func ParseStatus(lines []string) ([]FunctionStatus, error) {
	out := make([]FunctionStatus, 0, len(lines))
	for _, line := range lines {
		name, v, ok := splitRow(line, 3)
		if !ok {
			return nil, fmt.Errorf("malformed status line %q", line)
		}
		out = append(out, FunctionStatus{Name: name, Total: v[0], Running: v[1], Workers: v[2]})
	}
	return out, nil
}

// ParsePriorityStatus parses the lines of a `prioritystatus` reply.
func ParsePriorityStatus(lines []string) ([]PriorityStatus, error) {
	out := make([]PriorityStatus, 0, len(lines))
	for _, line := range lines {
		name, v, ok := splitRow(line, 4)
		if !ok {
			return nil, fmt.Errorf("malformed prioritystatus line %q", line)
		}
		out = append(out, PriorityStatus{Name: name, High: v[0], Normal: v[1], Low: v[2], Workers: v[3]})
	}
	return out, nil
}

// ParseWorkers parses the lines of a `workers` reply. A connection without functions ends in ":"
// (gearmand) or ": " (the Perl server).
func ParseWorkers(lines []string) ([]WorkerInfo, error) {
	out := make([]WorkerInfo, 0, len(lines))
	for _, line := range lines {
		w, ok := parseWorker(line)
		if !ok {
			return nil, fmt.Errorf("malformed workers line %q", line)
		}
		out = append(out, w)
	}
	return out, nil
}

func parseWorker(line string) (WorkerInfo, bool) {
	fd, rest, ok := strings.Cut(line, " ")
	if !ok || fd == "" {
		return WorkerInfo{}, false
	}
	ip, rest, ok := strings.Cut(rest, " ")
	if !ok || ip == "" {
		return WorkerInfo{}, false
	}
	// The client ID is a single word for gearmand and Gear (both replace spaces), so the first " :"
	// that ends a word is the separator.
	var id, fns string
	switch i := strings.Index(rest, " : "); {
	case i >= 0:
		id, fns = rest[:i], rest[i+3:]
	case strings.HasSuffix(rest, " :"):
		id = rest[:len(rest)-2]
	default:
		return WorkerInfo{}, false
	}
	if id == "" {
		return WorkerInfo{}, false
	}
	functions := strings.Fields(fns)
	if functions == nil {
		functions = []string{}
	}
	return WorkerInfo{FD: fd, IP: ip, ID: id, Functions: functions}, true
}

// ParseJobs parses the lines of a `show jobs` reply.
func ParseJobs(lines []string) ([]JobInfo, error) {
	out := make([]JobInfo, 0, len(lines))
	for _, line := range lines {
		handle, v, ok := splitRow(line, 3)
		if !ok || handle == "" || !isFlag(v[1]) || !isFlag(v[2]) {
			return nil, fmt.Errorf("malformed show jobs line %q", line)
		}
		out = append(out, JobInfo{Handle: handle, Retries: v[0], Ignored: v[1] == 1, Queued: v[2] == 1})
	}
	return out, nil
}

func isFlag(v int) bool { return v == 0 || v == 1 }

// ParseUniqueJobs parses the lines of a `show unique jobs` reply. gearmand prints an empty line for
// a job submitted without a unique key; those are left out, as they name nothing.
func ParseUniqueJobs(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// ParseStore parses the lines of a `store` reply. Keys it does not know are skipped, so a later
// server may report more.
func ParseStore(lines []string) (StoreInfo, error) {
	var s StoreInfo
	for _, line := range lines {
		key, value, ok := strings.Cut(line, "\t")
		if !ok || key == "" {
			return StoreInfo{}, fmt.Errorf("malformed store line %q", line)
		}
		switch key {
		case "engine":
			s.Engine = value
		case "path":
			s.Path = value
		case "sync":
			s.Sync = value
		case "jobs":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return StoreInfo{}, fmt.Errorf("malformed store line %q", line)
			}
			s.Jobs = n
		case "last_sync":
			if value != "-" {
				s.LastSync = value
			}
		case "last_error":
			if value != "-" {
				s.LastError = value
			}
		}
	}
	if s.Engine == "" {
		return StoreInfo{}, errors.New("store reply names no engine")
	}
	return s, nil
}

// LimitsInfo is the server's limits (0: none) and what is in use of each: the `limits` admin
// command (a Gear extension) and the API's limits view.
type LimitsInfo struct {
	MaxConnections      int   `json:"max_connections"`
	MaxConnectionsPerIP int   `json:"max_connections_per_ip"`
	Connections         int   `json:"connections"`
	MaxPacketSize       int   `json:"max_packet_size"`
	MaxJobs             int   `json:"max_jobs"`
	Jobs                int   `json:"jobs"`
	MaxQueuedBytes      int64 `json:"max_queued_bytes"`
	QueuedBytes         int64 `json:"queued_bytes"`
	PacketTimeout       int64 `json:"packet_timeout_seconds"`
	SilentTimeout       int64 `json:"silent_timeout_seconds"`
}

// AppendLimits renders `limits`: one "name\tvalue" line per field, then ".".
func AppendLimits(b []byte, l LimitsInfo) []byte {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_connections", int64(l.MaxConnections)}, {"max_connections_per_ip", int64(l.MaxConnectionsPerIP)},
		{"connections", int64(l.Connections)}, {"max_packet_size", int64(l.MaxPacketSize)},
		{"max_jobs", int64(l.MaxJobs)}, {"jobs", int64(l.Jobs)},
		{"max_queued_bytes", l.MaxQueuedBytes}, {"queued_bytes", l.QueuedBytes},
		{"packet_timeout_seconds", l.PacketTimeout}, {"silent_timeout_seconds", l.SilentTimeout},
	} {
		b = append(b, f.name...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, f.v, 10)
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

// ParseLimits parses the lines of a `limits` reply (without the "." line); unknown names are
// skipped, so a newer server's additions do not break an older reader.
func ParseLimits(lines []string) (LimitsInfo, error) {
	var l LimitsInfo
	for _, line := range lines {
		key, value, ok := strings.Cut(line, "\t")
		n, err := strconv.ParseInt(value, 10, 64)
		if !ok || err != nil || n < 0 {
			return LimitsInfo{}, fmt.Errorf("malformed limits line %q", line)
		}
		switch key {
		case "max_connections":
			l.MaxConnections = int(n)
		case "max_connections_per_ip":
			l.MaxConnectionsPerIP = int(n)
		case "connections":
			l.Connections = int(n)
		case "max_packet_size":
			l.MaxPacketSize = int(n)
		case "max_jobs":
			l.MaxJobs = int(n)
		case "jobs":
			l.Jobs = int(n)
		case "max_queued_bytes":
			l.MaxQueuedBytes = n
		case "queued_bytes":
			l.QueuedBytes = n
		case "packet_timeout_seconds":
			l.PacketTimeout = n
		case "silent_timeout_seconds":
			l.SilentTimeout = n
		}
	}
	return l, nil
}

// AppendFunctions renders `functions` (a Gear extension): one line per function,
// "FUNCTION\tQUEUED\tRUNNING\tWORKERS\tSTATE\tMAX_RUNNING\tRATE", then ".". QUEUED counts every
// priority and scheduled jobs; STATE is "active" or "paused"; 0 is no limit.
func AppendFunctions(b []byte, fs []FunctionInfo) []byte {
	for _, f := range fs {
		b = append(b, f.Name...)
		b = appendTabInts(b, f.Queued.High+f.Queued.Normal+f.Queued.Low+f.Scheduled, f.Running, f.Workers)
		b = b[:len(b)-1] // appendTabInts ends the line
		if f.Paused {
			b = append(b, "\tpaused\t"...)
		} else {
			b = append(b, "\tactive\t"...)
		}
		b = strconv.AppendInt(b, int64(f.MaxRunning), 10)
		b = append(b, '\t')
		b = strconv.AppendFloat(b, f.RatePerSec, 'g', -1, 64)
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

// ParseFunctions parses the lines of a `functions` reply (without the "." line).
func ParseFunctions(lines []string) ([]FunctionInfo, error) {
	out := make([]FunctionInfo, 0, len(lines))
	for _, line := range lines {
		fields := strings.Split(line, "\t")
		if len(fields) < 7 {
			return nil, fmt.Errorf("malformed functions line %q", line)
		}
		n := len(fields)
		name := strings.Join(fields[:n-6], "\t") // a name may hold a tab
		queued, e1 := strconv.Atoi(fields[n-6])
		running, e2 := strconv.Atoi(fields[n-5])
		workers, e3 := strconv.Atoi(fields[n-4])
		maxRunning, e4 := strconv.Atoi(fields[n-2])
		rate, e5 := strconv.ParseFloat(fields[n-1], 64)
		state := fields[n-3]
		if err := errors.Join(e1, e2, e3, e4, e5); err != nil || (state != "paused" && state != "active") {
			return nil, fmt.Errorf("malformed functions line %q", line)
		}
		out = append(out, FunctionInfo{Name: name, Queued: PriorityInts{Normal: queued}, Running: running,
			Workers: workers, Paused: state == "paused", MaxRunning: maxRunning, RatePerSec: rate})
	}
	return out, nil
}
