package core

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Wake-up policies for Options.WorkerWakeup.
const (
	// WakeAll sends NOOP to every sleeping worker of the function (gearmand's `-w 0`).
	WakeAll = 0
	// WakeOnePerJob wakes one sleeping worker per runnable job: enough to run it, without waking a herd.
	WakeOnePerJob = -1
)

// Options configure the rules. The transport's options (server.Options) carry them.
type Options struct {
	// Access is who may do what (nil: everything, as in gearmand); SetAccess replaces it.
	Access *access.Rules
	// JobRetries is the number of attempts after which a job whose worker keeps disconnecting is
	// failed (WORK_FAIL to its clients); 0 retries forever, as gearmand 1.1.
	JobRetries int
	// HandlePrefix starts every job handle.
	HandlePrefix string
	// Exceptions turns the `exceptions` option on for every peer.
	Exceptions bool
	// WorkerWakeup is how many sleeping workers a new job wakes: WakeOnePerJob, WakeAll, or a
	// positive limit.
	WorkerWakeup int
	// WakeTimeout is how long a woken worker may take to ask for a job before it is passed over:
	// another sleeping worker is woken for the jobs waiting, and the unresponsive one is woken
	// only when no other will do until it grabs again.
	WakeTimeout time.Duration
	// MaxJobs bounds the unfinished jobs of all functions, MaxQueuedBytes the bytes of their
	// payloads held in memory (0: no limit). A submit past either gets ERROR QUEUE_ERROR; jobs
	// replayed from the store are never refused (they were acknowledged), only counted.
	MaxJobs        int
	MaxQueuedBytes int64
	// TransportLimits are the transport's limits (connections, packet size), which the core only
	// reports in the Limits view.
	TransportLimits protocol.LimitsInfo
	// MaxQueue is the per-function limit set at start (function name to its limit per priority;
	// 0: none), as the admin `maxqueue` sets it while serving.
	MaxQueue map[string]protocol.PriorityInts
	// StartSettings change functions' settings at start (the server's flags: run limits, retry
	// policies), over what the store kept; they are not stored.
	StartSettings map[string]func(*FunctionSettings)
	// DeadMax bounds the dead set (default 10,000: the oldest go first); DeadMaxAge is how long a
	// dead job is kept (0: until DeadMax pushes it out).
	DeadMax    int
	DeadMaxAge time.Duration
	// FunctionIdleTTL is how long a function with no workers, no jobs and no settings stays listed
	// by `status` before it is forgotten (0: at once).
	FunctionIdleTTL time.Duration
	// Store keeps background jobs on stable storage (nil: memory only). New replays it; its owner
	// closes it after the core is done with it.
	Store store.Store
	// Logger receives the log; Level (optional) is the level the admin `verbose` reports.
	Logger *slog.Logger
	Level  *slog.LevelVar
	// Now is the clock for epoch jobs, timeouts and wake checks (tests inject one).
	Now func() time.Time
	// Version is what the admin `version` reports.
	Version string
	// Observer, when set, is told of every job's and peer's lifecycle events (see Event).
	Observer Observer
	// Schedules are named schedules defined at start (cron.go): each replaces a stored one of its
	// name, keeping its last tick, and is stored.
	Schedules []protocol.ScheduleInfo
	// ScheduleLeader, when set, is asked at each schedule tick whether this server fires it: the
	// hook for a fleet sharing one store, where one leader (an advisory lock, a lease) fires each
	// tick once. A server that is not the leader skips the tick without recording it. Nil: always.
	ScheduleLeader func() bool
}

func (o *Options) validate() error {
	if o.JobRetries < 0 {
		return fmt.Errorf("job retries must be 0 (unlimited) or more, got %d", o.JobRetries)
	}
	if len(o.HandlePrefix) > 40 {
		return fmt.Errorf("job handle prefix %q is too long (40 bytes at most, handles are limited to 63)", o.HandlePrefix)
	}
	if o.MaxJobs < 0 || o.MaxQueuedBytes < 0 {
		return fmt.Errorf("job limits must be 0 (none) or more, got %d jobs and %d bytes", o.MaxJobs, o.MaxQueuedBytes)
	}
	if o.DeadMax <= 0 {
		o.DeadMax = 10_000
	}
	if o.FunctionIdleTTL < 0 {
		return fmt.Errorf("function idle TTL must not be negative, got %v", o.FunctionIdleTTL)
	}
	if o.WorkerWakeup < WakeOnePerJob {
		return fmt.Errorf("worker wakeup must be -1 (one per job), 0 (all) or a positive limit, got %d", o.WorkerWakeup)
	}
	if o.WakeTimeout <= 0 {
		return fmt.Errorf("wake timeout must be positive, got %v", o.WakeTimeout)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
