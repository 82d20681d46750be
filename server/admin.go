package server

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/gearhq/gear/protocol"
)

// handleAdmin answers one line of the text admin protocol, byte-compatible with gearmand 1.1 where
// admin clients parse it: lists end with ".\n", "OK value" lines with "\n", bare OK/ERR with "\r\n",
// and error words join with '+'.
func (s *Server) handleAdmin(c *conn, line []byte) {
	cmd := protocol.ParseAdmin(line)
	if cmd.Name == "" && cmd.Word == "" {
		return // blank line: gearmand ignores it too
	}
	var b strings.Builder
	s.mu.Lock()
	shutdown := s.adminCommand(c, &b, cmd)
	s.mu.Unlock()
	c.replyText([]byte(b.String()))
	if shutdown != nil {
		go shutdown()
	}
}

// adminCommand writes the reply to cmd, sent on c, into b and may return an action to run after the
// reply is queued (shutdown). Server.mu must be held.
func (s *Server) adminCommand(c *conn, b *strings.Builder, cmd protocol.AdminCommand) func() {
	switch cmd.Name {
	case protocol.AdminStatus:
		for _, f := range s.sortedFunctions() {
			b.WriteString(f.name + "\t" + strconv.Itoa(f.total()) + "\t" + strconv.Itoa(f.running) +
				"\t" + strconv.Itoa(len(f.workers)) + "\n")
		}
		b.WriteString(".\n")
	case protocol.AdminPriorityStatus:
		for _, f := range s.sortedFunctions() {
			b.WriteString(f.name + "\t" + strconv.Itoa(f.queued[prioHigh]) + "\t" +
				strconv.Itoa(f.queued[prioNormal]+f.scheduled) + "\t" + strconv.Itoa(f.queued[prioLow]) +
				"\t" + strconv.Itoa(len(f.workers)) + "\n")
		}
		b.WriteString(".\n")
	case protocol.AdminWorkers:
		s.writeWorkers(b)
	case protocol.AdminVersion:
		b.WriteString("OK " + Version + "\n")
	case protocol.AdminVerbose:
		b.WriteString("OK " + s.levelName() + "\n")
	case protocol.AdminGetPID:
		b.WriteString("OK " + strconv.Itoa(pid) + "\n")
	case protocol.AdminMaxQueue:
		s.adminMaxQueue(b, cmd.Args)
	case protocol.AdminShowJobs:
		s.writeJobs(b)
	case protocol.AdminShowUniqueJobs:
		for _, j := range s.sortedJobs() {
			if u := j.unique(); u != "" {
				b.WriteString(u + "\n")
			}
		}
		b.WriteString(".\n")
	case protocol.AdminCancelJob:
		s.adminCancel(b, cmd.Args)
	case protocol.AdminCreateFunction:
		if len(cmd.Args) != 1 {
			b.WriteString("ERR INVALID_ARGUMENTS Usage:+create+function+NAME\r\n")
			break
		}
		s.function([]byte(cmd.Args[0]), true).explicit = true
		b.WriteString("OK\r\n")
	case protocol.AdminDropFunction:
		s.adminDrop(b, cmd.Args)
	case protocol.AdminStore:
		s.writeStoreStats(b)
	case protocol.AdminShutdown:
		b.WriteString("OK\r\n")
		graceful := len(cmd.Args) > 0 && strings.EqualFold(cmd.Args[0], "graceful")
		s.log.Info("shutdown requested by admin", "graceful", graceful)
		if graceful {
			// Drain now, not in the goroutine: once the admin reads OK nothing new is accepted. The
			// connection stays open (the admin may watch `status`); Shutdown flushes it at the end.
			s.startDrain()
			return func() { s.Shutdown(context.Background()) }
		}
		// Close would drop the queued OK: let it reach the admin first.
		return func() {
			<-c.flushAndClose()
			s.Close()
		}
	default:
		b.WriteString("ERR UNKNOWN_COMMAND Unknown+server+command:+" +
			strings.ReplaceAll(cmd.Word, " ", "+") + "\r\n")
	}
	return nil
}

// writeWorkers lists worker connections as "ID IP CLIENT-ID : FUNCTION ...". Unlike gearmand it
// leaves out connections that are only clients or admin consoles.
func (s *Server) writeWorkers(b *strings.Builder) {
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.isWorker || len(c.abilities) > 0 {
			conns = append(conns, c)
		}
	}
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	for _, c := range conns {
		b.WriteString(strconv.FormatUint(c.id, 10) + " " + c.remote + " " + c.clientID + " :")
		for _, a := range c.abilities {
			b.WriteString(" " + a.fn.name)
		}
		b.WriteString("\n")
	}
	b.WriteString(".\n")
}

// writeJobs lists "HANDLE\tRETRIES\tIGNORE_JOB\tJOB_QUEUED" for every unfinished job.
func (s *Server) writeJobs(b *strings.Builder) {
	for _, j := range s.sortedJobs() {
		b.WriteString(s.handleOf(j) + "\t" + strconv.FormatUint(uint64(j.retries), 10) + "\t0\t" +
			string(boolArg(j.state != jobRunning)) + "\n")
	}
	b.WriteString(".\n")
}

// adminMaxQueue handles "maxqueue FUNCTION [MAX | HIGH NORMAL LOW]"; 0 or less means unlimited. The
// function is created if it does not exist, so the limit is in force for its first job (gearmand
// silently ignores it).
func (s *Server) adminMaxQueue(b *strings.Builder, args []string) {
	if len(args) == 0 {
		b.WriteString("ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n")
		return
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
				b.WriteString("ERR INVALID_ARGUMENTS Queue+size+is+not+a+number\r\n")
				return
			}
			limits[i] = max(n, 0)
		}
	default:
		b.WriteString("ERR INVALID_ARGUMENTS Usage:+maxqueue+FUNCTION+[MAX|HIGH+NORMAL+LOW]\r\n")
		return
	}
	f := s.function([]byte(args[0]), true)
	f.maxQueue = limits
	s.collect(f)
	b.WriteString("OK\r\n")
}

// adminCancel handles "cancel job HANDLE": the job's clients get WORK_FAIL, a queued job never runs,
// a running one is forgotten and its worker's result ignored.
func (s *Server) adminCancel(b *strings.Builder, args []string) {
	if len(args) != 1 {
		b.WriteString("ERR INVALID_ARGUMENTS Usage:+cancel+job+HANDLE\r\n")
		return
	}
	j := s.jobByHandle([]byte(args[0]))
	if j == nil {
		b.WriteString("ERR UNKNOWN_JOB\r\n")
		return
	}
	s.log.Info("job cancelled by admin", "handle", args[0], "function", j.fn.name)
	s.failClients(j, "job cancelled")
	s.finish(j)
	b.WriteString("OK\r\n")
}

// adminDrop handles "drop function NAME". It refuses while workers are registered, jobs run, or jobs
// wait (gearmand drops the function and orphans its queued jobs).
func (s *Server) adminDrop(b *strings.Builder, args []string) {
	if len(args) != 1 {
		b.WriteString("ERR INVALID_ARGUMENTS Usage:+drop+function+NAME\r\n")
		return
	}
	f := s.functions[args[0]]
	switch {
	case f == nil:
		b.WriteString("ERR function not found\r\n")
	case len(f.workers) > 0 || f.running > 0:
		b.WriteString("ERR there are still connected workers or executing clients\r\n")
	case f.total() > 0:
		b.WriteString("ERR there are still queued jobs\r\n")
	default:
		delete(s.functions, f.name)
		b.WriteString("OK\r\n")
	}
}

func (s *Server) sortedFunctions() []*function {
	fs := make([]*function, 0, len(s.functions))
	for _, f := range s.functions {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *function) int { return strings.Compare(a.name, b.name) })
	return fs
}

// sortedJobs lists unfinished jobs in submission order.
func (s *Server) sortedJobs() []*job {
	js := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		js = append(js, j)
	}
	slices.SortFunc(js, func(a, b *job) int { return cmp.Compare(a.seq, b.seq) })
	return js
}

// levelName reports the log level in gearmand's words.
func (s *Server) levelName() string {
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

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
