package core

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gearhq/gear/protocol"
)

// AdminAction is what the transport must do after sending an admin reply.
type AdminAction int

const (
	AdminNone AdminAction = iota
	// AdminShutdown: close the server at once, once the reply has reached the admin.
	AdminShutdown
	// AdminShutdownGraceful: the core is draining already (nothing new is accepted from the
	// moment the reply is queued); stop listening and shut down once running jobs are done.
	AdminShutdownGraceful
)

// Admin answers one line of the text admin protocol from p, byte-compatible with gearmand 1.1 where
// admin clients parse it: lists end with ".\n", "OK value" lines with "\n", bare OK/ERR with
// "\r\n", and error words join with '+'. Packets the command causes (WORK_FAIL for a cancelled
// job) go through tx. A blank line has no reply.
func (s *Core) Admin(tx Tx, p *Peer, line []byte) ([]byte, AdminAction) {
	cmd := protocol.ParseAdmin(line)
	if cmd.Name == "" && cmd.Word == "" {
		return nil, AdminNone // blank line: gearmand ignores it too
	}
	if refusal := s.adminRefusal(p, cmd); refusal != nil {
		return refusal, AdminNone
	}
	switch cmd.Name {
	case protocol.AdminStore:
		return protocol.AppendStore(nil, s.Store()), AdminNone // the store answers without the lock
	case protocol.AdminLimits:
		return protocol.AppendLimits(nil, s.Limits()), AdminNone // a view that takes the lock itself
	case protocol.AdminMaxQueue: // settings are stored outside the lock
		return []byte(s.adminMaxQueue(cmd.Args, peerName(p))), AdminNone
	case protocol.AdminPause, protocol.AdminResume, protocol.AdminLimit:
		return []byte(s.adminGate(cmd, peerName(p))), AdminNone
	case protocol.AdminFunctions:
		return protocol.AppendFunctions(nil, s.Functions()), AdminNone
	case protocol.AdminRetry, protocol.AdminDeadList, protocol.AdminDeadRetry, protocol.AdminDeadDelete:
		return []byte(s.adminDead(cmd, peerName(p))), AdminNone
	case protocol.AdminScheduleAdd, protocol.AdminScheduleList, protocol.AdminScheduleRemove: // cron.go
		return []byte(s.adminSchedule(cmd, line, peerName(p))), AdminNone
	}
	s.lock()
	defer s.mu.Unlock()
	return s.adminCommand(tx, cmd)
}

func (s *Core) adminCommand(tx Tx, cmd protocol.AdminCommand) ([]byte, AdminAction) {
	switch cmd.Name {
	case protocol.AdminStatus:
		return protocol.AppendStatus(nil, s.status()), AdminNone
	case protocol.AdminPriorityStatus:
		return protocol.AppendPriorityStatus(nil, s.priorityStatus()), AdminNone
	case protocol.AdminWorkers:
		return protocol.AppendWorkers(nil, s.workers()), AdminNone
	case protocol.AdminVersion:
		return []byte("OK " + s.opts.Version + "\n"), AdminNone
	case protocol.AdminVerbose:
		return []byte("OK " + s.levelName() + "\n"), AdminNone
	case protocol.AdminGetPID:
		return []byte("OK " + strconv.Itoa(pid) + "\n"), AdminNone
	case protocol.AdminShowJobs:
		return protocol.AppendJobs(nil, s.jobList()), AdminNone
	case protocol.AdminShowUniqueJobs:
		return protocol.AppendUniqueJobs(nil, s.uniqueJobs()), AdminNone
	case protocol.AdminCancelJob:
		return []byte(s.adminCancel(tx, cmd.Args)), AdminNone
	case protocol.AdminCreateFunction:
		if len(cmd.Args) != 1 {
			return []byte("ERR INVALID_ARGUMENTS Usage:+create+function+NAME\r\n"), AdminNone
		}
		s.function([]byte(cmd.Args[0]), true).explicit = true
		return []byte("OK\r\n"), AdminNone
	case protocol.AdminDropFunction:
		return []byte(s.adminDrop(cmd.Args)), AdminNone
	case protocol.AdminShutdown:
		graceful := len(cmd.Args) > 0 && strings.EqualFold(cmd.Args[0], "graceful")
		s.log.Info("shutdown requested by admin", "graceful", graceful)
		if graceful {
			// Drain now: once the admin reads OK nothing new is accepted. The connection stays
			// open (the admin may watch `status`); the transport flushes it at the end.
			s.startDrain()
			return []byte("OK\r\n"), AdminShutdownGraceful
		}
		return []byte("OK\r\n"), AdminShutdown
	default:
		return []byte("ERR UNKNOWN_COMMAND Unknown+server+command:+" +
			strings.ReplaceAll(cmd.Word, " ", "+") + "\r\n"), AdminNone
	}
}

// adminMaxQueue handles "maxqueue FUNCTION [MAX | HIGH NORMAL LOW]"; 0 or less means unlimited. The
// function is created if it does not exist, so the limit is in force for its first job (gearmand
// silently ignores it).
func (s *Core) adminMaxQueue(args []string, by string) string {
	if len(args) == 0 {
		return "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n"
	}
	var limits [numPriorities]int
	switch len(args) {
	case 1:
	case 2, 4:
		for i := range limits {
			v := args[1]
			if len(args) == 4 {
				v = args[1+i]
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return "ERR INVALID_ARGUMENTS Queue+size+is+not+a+number\r\n"
			}
			limits[i] = max(n, 0)
		}
	default:
		return "ERR INVALID_ARGUMENTS Usage:+maxqueue+FUNCTION+[MAX|HIGH+NORMAL+LOW]\r\n"
	}
	if _, err := s.SetFunction(args[0], func(fs *FunctionSettings) { fs.MaxQueue = limits }, by); err != nil {
		return "ERR QUEUE_ERROR " + strings.ReplaceAll(err.Error(), " ", "+") + "\r\n"
	}
	return "OK\r\n"
}

// adminGate handles "pause FUNCTION", "resume FUNCTION" and
// "limit FUNCTION MAX_RUNNING RATE_PER_SECOND [BURST]" (0: no limit).
func (s *Core) adminGate(cmd protocol.AdminCommand, by string) string {
	usage := map[string]string{protocol.AdminPause: "pause+FUNCTION", protocol.AdminResume: "resume+FUNCTION",
		protocol.AdminLimit: "limit+FUNCTION+MAX_RUNNING+RATE_PER_SECOND+[BURST]"}[cmd.Name]
	bad := "ERR INVALID_ARGUMENTS Usage:+" + usage + "\r\n"
	var change func(*FunctionSettings)
	switch {
	case cmd.Name == protocol.AdminPause && len(cmd.Args) == 1:
		change = func(fs *FunctionSettings) { fs.Paused = true }
	case cmd.Name == protocol.AdminResume && len(cmd.Args) == 1:
		change = func(fs *FunctionSettings) { fs.Paused = false }
	case cmd.Name == protocol.AdminLimit && (len(cmd.Args) == 3 || len(cmd.Args) == 4):
		running, err1 := strconv.Atoi(cmd.Args[1])
		rate, err2 := strconv.ParseFloat(cmd.Args[2], 64)
		burst, err3 := 0, error(nil)
		if len(cmd.Args) == 4 {
			burst, err3 = strconv.Atoi(cmd.Args[3])
		}
		if err1 != nil || err2 != nil || err3 != nil {
			return bad
		}
		change = func(fs *FunctionSettings) { fs.MaxRunning, fs.RatePerSec, fs.RateBurst = running, rate, burst }
	default:
		return bad
	}
	if _, err := s.SetFunction(cmd.Args[0], change, by); err != nil {
		if errors.Is(err, ErrBadSettings) {
			return "ERR INVALID_ARGUMENTS " + strings.ReplaceAll(strings.TrimPrefix(err.Error(), ErrBadSettings.Error()+"\n"), " ", "+") + "\r\n"
		}
		return "ERR QUEUE_ERROR " + strings.ReplaceAll(err.Error(), " ", "+") + "\r\n"
	}
	return "OK\r\n"
}

// SetMaxQueue limits the queued jobs of a function per priority (0: no limit). The function is
// created if it does not exist, so the limit holds for its first job.
func (s *Core) SetMaxQueue(function string, limits protocol.PriorityInts) error {
	_, err := s.SetFunction(function, func(fs *FunctionSettings) {
		fs.MaxQueue = [numPriorities]int{max(limits.High, 0), max(limits.Normal, 0), max(limits.Low, 0)}
	}, "api")
	return err
}

// peerName names an admin peer for the log of what it changed.
func peerName(p *Peer) string {
	if p == nil {
		return "admin"
	}
	return "admin " + p.Identity.String()
}

// CancelQueued cancels the jobs of a function waiting in its queue — of one priority, or of all
// when priority is "" — as CancelJob does each, and returns how many. Running jobs are left.
func (s *Core) CancelQueued(tx Tx, function, priority, by string) (int, error) {
	p := numPriorities
	switch priority {
	case "":
	case "high":
		p = prioHigh
	case "normal":
		p = prioNormal
	case "low":
		p = prioLow
	default:
		return 0, fmt.Errorf("priority %q: high, normal or low", priority)
	}
	s.lock()
	defer s.mu.Unlock()
	f := s.functions[function]
	if f == nil {
		return 0, nil
	}
	var victims []*job
	for _, j := range s.jobs {
		if j.fn == f && j.state == jobQueued && (p == numPriorities || j.prio == p) {
			victims = append(victims, j)
		}
	}
	for _, j := range victims {
		s.failClients(tx, j, "job cancelled")
		s.emitJob(EventCancelled, j, "cancelled by "+by)
		s.finish(j)
	}
	if len(victims) > 0 {
		s.log.Info("queued jobs cancelled", "function", function, "priority", priority, "jobs", len(victims), "by", by)
	}
	return len(victims), nil
}

// ErrFunctionBusy refuses to drop a function that has workers, or jobs running, queued or being
// stored.
var ErrFunctionBusy = errors.New("the function has workers or jobs")

// ErrNoSuchFunction names no function the server knows.
var ErrNoSuchFunction = errors.New("no such function")

// DropFunction forgets a function with no workers and no jobs.
func (s *Core) DropFunction(name string) error {
	s.lock()
	defer s.mu.Unlock()
	f := s.functions[name]
	switch {
	case f == nil:
		return ErrNoSuchFunction
	case len(f.workers) > 0 || f.limitCount() > 0:
		return ErrFunctionBusy
	}
	delete(s.functions, name)
	return nil
}

// adminCancel handles "cancel job HANDLE": the job's clients get WORK_FAIL, a queued job never runs,
// a running one is forgotten and its worker's result ignored.
func (s *Core) adminCancel(tx Tx, args []string) string {
	if len(args) != 1 {
		return "ERR INVALID_ARGUMENTS Usage:+cancel+job+HANDLE\r\n"
	}
	if !s.cancelJob(tx, args[0], "admin") {
		return "ERR UNKNOWN_JOB\r\n"
	}
	return "OK\r\n"
}

// ErrNoSuchJob is CancelJob's answer for a handle that names no unfinished job.
var ErrNoSuchJob = errors.New("no such job")

// CancelJob cancels an unfinished job: its clients get WORK_FAIL at once, a queued job never runs,
// a running one is forgotten and its worker's result ignored. by names who asked, for the log.
func (s *Core) CancelJob(tx Tx, handle, by string) error {
	s.lock()
	defer s.mu.Unlock()
	if !s.cancelJob(tx, handle, by) {
		return ErrNoSuchJob
	}
	return nil
}

func (s *Core) cancelJob(tx Tx, handle, by string) bool {
	j := s.jobByHandle([]byte(handle))
	if j == nil {
		return false
	}
	s.log.Info("job cancelled", "handle", handle, "function", j.fn.name, "by", by)
	if w := j.worker; j.state == jobRunning && w != nil && w.cancelAware && !w.gone {
		s.send(tx, w, protocol.WorkCancel, s.handleArg(j)) // so its function can stop
	}
	s.failClients(tx, j, "job cancelled")
	s.emitJob(EventCancelled, j, "cancelled by "+by)
	s.finish(j)
	return true
}

// adminDrop handles "drop function NAME". It refuses while workers are registered, jobs run, or jobs
// wait, or are being stored (gearmand drops the function and orphans its queued jobs).
func (s *Core) adminDrop(args []string) string {
	if len(args) != 1 {
		return "ERR INVALID_ARGUMENTS Usage:+drop+function+NAME\r\n"
	}
	f := s.functions[args[0]]
	switch {
	case f == nil:
		return "ERR function not found\r\n"
	case len(f.workers) > 0 || f.running > 0:
		return "ERR there are still connected workers or executing clients\r\n"
	case f.limitCount() > 0:
		return "ERR there are still queued jobs\r\n"
	default:
		delete(s.functions, f.name)
		return "OK\r\n"
	}
}
