// Package supervise keeps worker programs running — any command, PHP, Perl or Python scripts as
// much as gear worker — with their memory watched from outside: `gear supervise`.
//
// A Supervisor runs Count copies ("children") of each Program. Every Interval it reads the
// resident memory of each child's whole process tree from /proc: past MemoryWarn it sends a warn
// alert, at MemoryCap a cap alert and recycles the child (StopSignal, StopGrace, then SIGKILL to
// its process group; the server requeues a job the child held, so such a job runs at least once);
// past MaxLifetime (plus a random splay) it recycles it too. A child that exits on its own is
// restarted: at once after a clean exit, after a backoff after a crash; a program that crashes
// more than MaxRestarts times within a minute is given up (crash-loop alert) and Run stops every
// child and returns an error. When it is told the job server (admin protocol or HTTP API), a child
// due for recycling that is running a job is left to finish it (up to RecycleWait) while idle ones
// go first.
//
// One goroutine (Run's) owns all the state; each child has a goroutine waiting for its exit, and
// os/exec's copiers for its output, all ended by the child's exit.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"syscall"
	"time"

	"github.com/gearhq/gear/alert"
)

// Options configures a Supervisor.
type Options struct {
	Programs []Program
	Alerts   *alert.Sender // nil: events are only logged
	Logger   *slog.Logger
	Interval time.Duration // between memory and lifetime checks (default 1 s)
	// Server (HOST:PORT, admin protocol) or ServerHTTP (the HTTP API's base URL, with
	// ServerToken as its bearer token) is the job server the children serve; "" for none.
	Server, ServerHTTP, ServerToken string
	// RecycleWait is how long a child due for recycling may go on running a job before it is
	// stopped anyway (default 30 s); used only with a server.
	RecycleWait time.Duration
}

// Backoff after a crash: 250 ms, doubling up to 5 s; a child that ran stableUptime resets it, and
// one that exits within minUptime of its start has crashed whatever its status.
const (
	backoffMin   = 250 * time.Millisecond
	backoffMax   = 5 * time.Second
	stableUptime = 10 * time.Second
	minUptime    = time.Second
	crashWindow  = time.Minute
)

// Supervisor runs programs. Create it with New, run it with Run; Reload changes its programs.
type Supervisor struct {
	opts   Options
	log    *slog.Logger
	alerts *alert.Sender
	reload chan []Program
	exits  chan *child
	idle   chan idleAnswer
	done   chan struct{}

	// Owned by Run's goroutine.
	programs map[string]*program
	order    []string // program names in config order, for logs
	live     map[*child]bool
	seq      int
	querying bool
	shutting bool
	fatal    error
	mem      procTable
}

type program struct {
	Program
	slots    []*slot
	crashes  []time.Time // within the last crashWindow
	retiring bool
}

type slot struct {
	prog      *program
	index     int // 1-based
	child     *child
	restartAt time.Time
	failures  int // consecutive crashes, for the backoff
	removed   bool
}

type child struct {
	slot     *slot
	id       string // GEAR_WORKER_ID
	cmd      *exec.Cmd
	pid      int
	started  time.Time
	deadline time.Time // lifetime end; zero: none
	stdout   *lineLog
	stderr   *lineLog

	warned, capped bool
	due            string // why it is waiting to be recycled; "" not due
	dueSince       time.Time

	stopping   bool
	recycle    bool // the stop is a recycle: alert when it exits
	stopReason string
	stopAt     time.Time
	killed     bool

	err error // Wait's, set before the child is sent on exits
}

// New checks the programs and returns a Supervisor.
func New(opts Options) (*Supervisor, error) {
	if err := validatePrograms(opts.Programs); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.Alerts == nil {
		opts.Alerts = alert.New(alert.Options{Logger: opts.Logger})
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.RecycleWait <= 0 {
		opts.RecycleWait = 30 * time.Second
	}
	return &Supervisor{opts: opts, log: opts.Logger, alerts: opts.Alerts, reload: make(chan []Program),
		exits: make(chan *child), idle: make(chan idleAnswer), done: make(chan struct{}),
		programs: map[string]*program{}, live: map[*child]bool{}}, nil
}

func validatePrograms(ps []Program) error {
	if len(ps) == 0 {
		return errors.New("supervise: no program to run")
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("supervise: %w", err)
		}
		if seen[p.Name] {
			return fmt.Errorf("supervise: two programs named %q", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// Reload replaces the programs: new ones start, removed ones stop, changed ones are restarted with
// their new settings (a changed count only adds or stops copies), unchanged ones are left alone.
func (s *Supervisor) Reload(programs []Program) error {
	if err := validatePrograms(programs); err != nil {
		return err
	}
	select {
	case s.reload <- programs:
		return nil
	case <-s.done:
		return errors.New("supervise: not running")
	}
}

// ErrCrashLoop is wrapped by Run's error when a program was given up.
var ErrCrashLoop = errors.New("crash loop")

// Run starts the programs and keeps them running until ctx ends — then every child gets its
// stop signal, and Run returns nil once all have exited — or a program crash-loops: then every
// child is stopped the same way and Run returns an error wrapping ErrCrashLoop.
func (s *Supervisor) Run(ctx context.Context) error {
	defer close(s.done)
	for _, p := range s.opts.Programs {
		s.add(p)
	}
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	ctxDone := ctx.Done()
	for {
		next := s.startDue(time.Now())
		if s.shutting && len(s.live) == 0 && !s.querying {
			return s.fatal
		}
		if !next.IsZero() {
			wake.Reset(time.Until(next))
		}
		select {
		case <-ctxDone:
			ctxDone = nil
			s.shutdown("supervisor stopping")
		case ps := <-s.reload:
			s.apply(ps)
		case c := <-s.exits:
			s.exited(c, time.Now())
		case a := <-s.idle:
			s.answer(a, time.Now())
		case now := <-tick.C:
			s.check(now)
		case <-wake.C:
		}
	}
}

// add starts managing p (its children start on the loop's next turn).
func (s *Supervisor) add(p Program) {
	pr := &program{Program: p.withDefaults()}
	s.programs[p.Name] = pr
	s.resize(pr, pr.Count)
	s.log.Info("program", "name", p.Name, "count", pr.Count, "command", alert.QuoteCommand(p.Command))
}

// resize adds slots, or stops the children of the slots past n.
func (s *Supervisor) resize(pr *program, n int) {
	for len(pr.slots) < n {
		pr.slots = append(pr.slots, &slot{prog: pr, index: len(pr.slots) + 1})
	}
	for _, sl := range pr.slots[n:] {
		sl.removed = true
		if sl.child != nil {
			s.stop(sl.child, "count lowered", false)
		}
	}
	pr.slots = pr.slots[:n]
	pr.Count = n
}

func (s *Supervisor) apply(ps []Program) {
	keep := map[string]bool{}
	var added, changed, resized, same int
	for _, p := range ps {
		keep[p.Name] = true
		p = p.withDefaults()
		old := s.programs[p.Name]
		switch {
		case old == nil:
			added++
			s.add(p)
		case reflect.DeepEqual(old.Program, p):
			same++
		case sameButCount(old.Program, p):
			resized++
			s.resize(old, p.Count)
		default:
			changed++
			s.retire(old, "its configuration changed")
			s.add(p)
		}
	}
	removed := 0
	for name, old := range s.programs {
		if !keep[name] {
			removed++
			s.retire(old, "removed from the configuration")
		}
	}
	s.log.Info("configuration reloaded", "added", added, "removed", removed, "changed", changed, "resized", resized, "unchanged", same)
}

func sameButCount(a, b Program) bool {
	a.Count, b.Count = 0, 0
	return reflect.DeepEqual(a, b)
}

// retire stops every child of pr and forgets it; its children's exits restart nothing.
func (s *Supervisor) retire(pr *program, why string) {
	pr.retiring = true
	delete(s.programs, pr.Name)
	for _, sl := range pr.slots {
		if sl.child != nil {
			s.stop(sl.child, "program "+why, false)
		}
	}
}

// startDue starts every slot whose restart time has come and returns the earliest one still to come.
func (s *Supervisor) startDue(now time.Time) (next time.Time) {
	if s.shutting {
		return time.Time{}
	}
	for _, pr := range s.programs {
		for _, sl := range pr.slots {
			if sl.child != nil {
				continue
			}
			if sl.restartAt.After(now) {
				if next.IsZero() || sl.restartAt.Before(next) {
					next = sl.restartAt
				}
				continue
			}
			s.start(sl, now)
			if s.shutting { // the start failed into a crash loop
				return time.Time{}
			}
		}
	}
	return next
}

func (s *Supervisor) start(sl *slot, now time.Time) {
	pr := sl.prog
	s.seq++
	c := &child{slot: sl, id: pr.Name + "." + strconv.Itoa(sl.index) + "." + strconv.Itoa(s.seq), started: now}
	c.stdout = &lineLog{log: s.log, program: pr.Name, slot: sl.index, stream: "stdout"}
	c.stderr = &lineLog{log: s.log, program: pr.Name, slot: sl.index, stream: "stderr"}
	cmd := exec.Command(pr.Command[0], pr.Command[1:]...)
	cmd.Dir = pr.Dir
	cmd.Env = append(append(os.Environ(), pr.Env...), "GEAR_WORKER_ID="+c.id,
		"GEAR_SUPERVISE_PROGRAM="+pr.Name, "GEAR_SUPERVISE_SLOT="+strconv.Itoa(sl.index))
	cmd.SysProcAttr = childAttr()
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	// A grandchild holding the output pipes open must not keep the child's exit from being seen.
	cmd.WaitDelay = 2 * time.Second
	c.cmd = cmd
	sl.child = c
	s.live[c] = true
	if err := cmd.Start(); err != nil {
		c.err = err
		s.exited(c, now)
		return
	}
	c.pid = cmd.Process.Pid
	c.stdout.pid.Store(int64(c.pid))
	c.stderr.pid.Store(int64(c.pid))
	if pr.MaxLifetime > 0 {
		c.deadline = now.Add(pr.MaxLifetime + time.Duration(rand.Float64()*pr.LifetimeSplay*float64(pr.MaxLifetime)))
	}
	s.log.Info("started", "program", pr.Name, "slot", sl.index, "pid", c.pid, "worker_id", c.id)
	go func() {
		c.err = cmd.Wait()
		s.exits <- c
	}()
}

// stop sends the child its stop signal (SIGKILL follows after the grace period, see check).
func (s *Supervisor) stop(c *child, reason string, recycle bool) {
	if c.stopping || c.pid == 0 {
		return
	}
	c.stopping, c.recycle, c.stopReason, c.stopAt = true, recycle, reason, time.Now()
	sig := c.slot.prog.StopSignal
	s.log.Info("stopping", "program", c.slot.prog.Name, "slot", c.slot.index, "pid", c.pid, "signal", sig.String(), "reason", reason)
	target := c.pid
	if sig == syscall.SIGKILL {
		target = -c.pid
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Error("cannot signal a child", "pid", c.pid, "err", err)
	}
}

func (s *Supervisor) shutdown(reason string) {
	s.shutting = true
	for c := range s.live {
		s.stop(c, reason, false)
	}
}

// exited handles a child's end: a requested stop restarts at once, a clean exit too, a crash
// after a backoff, unless its program has crashed too often.
func (s *Supervisor) exited(c *child, now time.Time) {
	delete(s.live, c)
	c.stdout.flush()
	c.stderr.flush()
	sl, pr := c.slot, c.slot.prog
	if sl.child == c {
		sl.child = nil
	}
	lived := now.Sub(c.started).Round(time.Millisecond)
	status := exitStatus(c.err)
	restart := !s.shutting && !pr.retiring && !sl.removed
	if c.stopping {
		how := status
		if c.killed {
			how += " (SIGKILL after the grace period)"
		}
		s.log.Info("stopped", "program", pr.Name, "slot", sl.index, "pid", c.pid, "status", how, "reason", c.stopReason)
		if c.recycle {
			s.alerts.Send(alert.Event{Kind: alert.Recycled, Program: pr.Name, PID: c.pid, Reason: c.stopReason + "; " + how})
		}
		if restart {
			sl.restartAt = now
		}
		return
	}
	if clean(c.err) && lived >= minUptime {
		s.log.Info("exited", "program", pr.Name, "slot", sl.index, "pid", c.pid, "status", status, "after", lived)
		sl.failures = 0
		if restart {
			sl.restartAt = now
		}
		return
	}
	reason := status + " after " + lived.String()
	if last := c.stderr.lastLine(); last != "" {
		reason += "; last stderr line: " + last
	}
	s.alerts.Send(alert.Event{Kind: alert.Crashed, Program: pr.Name, PID: c.pid, Reason: reason})
	if !restart {
		return
	}
	cut := 0
	for cut < len(pr.crashes) && now.Sub(pr.crashes[cut]) > crashWindow {
		cut++
	}
	pr.crashes = append(pr.crashes[cut:], now)
	if len(pr.crashes) > pr.MaxRestarts {
		why := fmt.Sprintf("%d crashes within %v (max_restarts %d); last: %s", len(pr.crashes), crashWindow, pr.MaxRestarts, reason)
		s.alerts.Send(alert.Event{Kind: alert.CrashLoop, Program: pr.Name, PID: c.pid, Reason: why})
		s.fatal = fmt.Errorf("program %q gave up: %w: %s", pr.Name, ErrCrashLoop, why)
		s.log.Error("crash loop: stopping every program", "program", pr.Name, "reason", why)
		s.shutdown("program " + pr.Name + " is crash-looping")
		return
	}
	if lived >= stableUptime {
		sl.failures = 0
	}
	sl.failures++
	backoff := min(backoffMin<<min(sl.failures-1, 16), backoffMax)
	sl.restartAt = now.Add(backoff)
	s.log.Warn("restarting after a crash", "program", pr.Name, "slot", sl.index, "in", backoff)
}

// clean reports an exit a worker makes on purpose: status 0, or gear worker's own recycling
// statuses (3 memory cap, 4 --max-jobs, 5 --max-lifetime).
func clean(err error) bool {
	if err == nil {
		return true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case 3, 4, 5:
			return true
		}
	}
	return false
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// check samples memory, finds lifetimes that ended, SIGKILLs children past their grace period and
// recycles the children due for it.
func (s *Supervisor) check(now time.Time) {
	sampled := false
	for c := range s.live {
		pr := c.slot.prog
		if c.stopping {
			if !c.killed && now.Sub(c.stopAt) >= pr.StopGrace {
				c.killed = true
				s.log.Warn("grace period over: SIGKILL", "program", pr.Name, "pid", c.pid, "grace", pr.StopGrace)
				syscall.Kill(-c.pid, syscall.SIGKILL)
			}
			continue
		}
		if c.pid == 0 {
			continue
		}
		if pr.MemoryWarn > 0 || pr.MemoryCap > 0 {
			if !sampled {
				s.mem.read()
				sampled = true
			}
			s.checkMemory(c, s.mem.treeRSS(c.pid))
		}
		if !c.deadline.IsZero() && !now.Before(c.deadline) {
			s.markDue(c, "max lifetime reached", now)
		}
	}
	s.recycleDue(now)
}

func (s *Supervisor) checkMemory(c *child, used uint64) {
	pr := c.slot.prog
	event := func(kind alert.Kind, threshold uint64) {
		s.alerts.Send(alert.Event{Kind: kind, Program: pr.Name, PID: c.pid, Bytes: used,
			Reason: fmt.Sprintf("memory %d bytes (process tree), %s threshold %d", used, kind, threshold)})
	}
	switch {
	case pr.MemoryCap > 0 && used >= pr.MemoryCap:
		if c.capped {
			return
		}
		c.capped = true
		if pr.MemoryWarn > 0 && !c.warned { // crossed both in one sample: warn first
			c.warned = true
			event(alert.Warn, pr.MemoryWarn)
		}
		event(alert.Cap, pr.MemoryCap)
		s.markDue(c, fmt.Sprintf("memory cap: %d bytes, cap %d", used, pr.MemoryCap), time.Now())
	case pr.MemoryWarn > 0 && used >= pr.MemoryWarn:
		if !c.warned {
			c.warned = true
			event(alert.Warn, pr.MemoryWarn)
		}
	default:
		c.warned = false
	}
}

func (s *Supervisor) markDue(c *child, reason string, now time.Time) {
	if c.due == "" {
		c.due, c.dueSince = reason, now
	}
}

func (s *Supervisor) hasServer() bool { return s.opts.Server != "" || s.opts.ServerHTTP != "" }

// recycleDue stops the children due for recycling: all at once without a server; with one, those
// idle first (asking the server), the busy ones when idle or after RecycleWait.
func (s *Supervisor) recycleDue(now time.Time) {
	var ask []string
	for c := range s.live {
		if c.due == "" || c.stopping {
			continue
		}
		if !s.hasServer() || now.Sub(c.dueSince) >= s.opts.RecycleWait {
			s.stop(c, c.due, true)
			continue
		}
		ask = append(ask, c.id)
	}
	if len(ask) == 0 || s.querying {
		return
	}
	s.querying = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		idle, err := queryIdle(ctx, s.opts.Server, s.opts.ServerHTTP, s.opts.ServerToken, ask)
		s.idle <- idleAnswer{idle: idle, err: err}
	}()
}

func (s *Supervisor) answer(a idleAnswer, now time.Time) {
	s.querying = false
	if a.err != nil {
		s.log.Warn("cannot ask the job server which workers are idle", "err", a.err)
		return
	}
	for c := range s.live {
		if c.due != "" && !c.stopping && a.idle[c.id] {
			s.stop(c, c.due+" (idle)", true)
		}
	}
}
