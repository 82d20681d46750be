package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/internal/tlsfiles"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Version is reported by the admin `version` command.
var Version = "0.1.0"

// Wake-up policies for Options.WorkerWakeup.
const (
	// WakeAll sends NOOP to every sleeping worker of the function (gearmand's `-w 0`).
	WakeAll = core.WakeAll
	// WakeOnePerJob wakes one sleeping worker per runnable job: enough to run it, without waking a herd.
	WakeOnePerJob = core.WakeOnePerJob
)

// Options configure a Server. The zero value is not valid: start from DefaultOptions.
type Options struct {
	// Listen holds the addresses to listen on, each "host:port", in plain TCP. An empty list listens
	// nowhere (tests may call Serve with their own listener).
	Listen []string
	// TLSListen holds addresses to listen on with TLS (Options.TLS), beside Listen's.
	TLSListen []string
	// TLS configures the TLS listeners (TLSListen, ServeTLS); nil: none. Its MinVersion is raised
	// to TLS 1.2 (a config from GetConfigForClient must set its own: TLSFiles' does). TLS
	// connections are served by goroutines even where event loops serve the plain ones.
	TLS *tls.Config
	// TLSHandshakeTimeout bounds a TLS handshake (default 10 s): a peer that connects and does not
	// complete it in time is dropped.
	TLSHandshakeTimeout time.Duration
	// JobRetries is the number of attempts after which a job whose worker keeps disconnecting is
	// failed (WORK_FAIL to its clients); 0 retries forever, as gearmand 1.1.
	JobRetries int
	// HandlePrefix starts every job handle ("H:host" by default).
	HandlePrefix string
	// Exceptions turns the `exceptions` option on for every connection.
	Exceptions bool
	// WorkerWakeup is how many sleeping workers a new job wakes: WakeOnePerJob (default), WakeAll,
	// or a positive limit.
	WorkerWakeup int
	// WakeTimeout is how long a woken worker may take to ask for a job before it is passed over:
	// another sleeping worker is woken for the jobs waiting, and the unresponsive one is woken
	// only when no other will do until it grabs again.
	WakeTimeout time.Duration
	// Keepalive enables TCP keepalive on accepted connections: the first probe after KeepaliveIdle
	// of silence, then one every KeepaliveInterval, KeepaliveCount unanswered ones ending the
	// connection (zero: the system's default).
	Keepalive         bool
	KeepaliveIdle     time.Duration
	KeepaliveInterval time.Duration
	KeepaliveCount    int
	// Access is who may do what (nil: everything); Server.SetAccess replaces it while serving.
	Access *access.Rules
	// MaxJobs bounds the unfinished jobs, MaxQueuedBytes the bytes of their payloads in memory
	// (0: none); MaxQueue sets per-function limits at start (see core.Options).
	MaxJobs        int
	MaxQueuedBytes int64
	MaxQueue       map[string]protocol.PriorityInts
	// StartSettings change functions' run limits and retry policies at start (core.Options).
	StartSettings map[string]func(*core.FunctionSettings)
	// PacketTimeout bounds how long one packet (or admin line) may take to arrive once its first
	// byte has; SilentTimeout how long a connection may stay without sending a complete one
	// (0: no limit). Offenders are closed with a log line (see watch.go). By default a packet has
	// two minutes (64 MiB at 550 KB/s) and silence is allowed: some client libraries connect
	// before their first job, and gearmand never cut them.
	PacketTimeout time.Duration
	SilentTimeout time.Duration
	// MaxConnections bounds the open connections (0: no limit), MaxConnectionsPerIP those from one
	// remote address; a connection over either gets ERROR CONNECTION_LIMIT and is closed.
	MaxConnections      int
	MaxConnectionsPerIP int
	// MaxPacketSize bounds the data of one binary packet; larger ones get ERROR ARGUMENT_TOO_LARGE and
	// the connection is closed.
	MaxPacketSize int
	// IOLoops is the number of event loops serving connections (Linux): each waits on its
	// connections with epoll and reads, dispatches and writes for all of them from one goroutine,
	// as gearmand's I/O threads do. 0 serves each connection with its own reader and writer
	// goroutines instead (the only way on other systems).
	IOLoops int
	// MaxOutbound bounds the bytes queued to one peer that does not read; past it the peer is dropped.
	MaxOutbound int
	// FunctionIdleTTL is how long a function with no workers, no jobs and no settings stays listed
	// by `status` before it is forgotten (0: at once).
	FunctionIdleTTL time.Duration
	// Store keeps background jobs on stable storage (nil: memory only). The server replays it in New
	// and never closes it: its owner closes it after the server.
	Store store.Store
	// Logger receives the server's log; Level (optional) is the level the admin `verbose` reports.
	Logger *slog.Logger
	Level  *slog.LevelVar
	// Now is the clock for epoch jobs and timeouts (tests inject one).
	Now func() time.Time
	// Observer, when set, is told of every job's and peer's lifecycle events (see core.Event).
	Observer core.Observer
	// Schedules are named schedules defined at start; ScheduleLeader the fleet hook (see
	// core.Options).
	Schedules      []protocol.ScheduleInfo
	ScheduleLeader func() bool
}

// coreOptions are the options of the rules, for core.New.
func (o *Options) coreOptions() core.Options {
	return core.Options{
		JobRetries: o.JobRetries, HandlePrefix: o.HandlePrefix, Exceptions: o.Exceptions,
		WorkerWakeup: o.WorkerWakeup, WakeTimeout: o.WakeTimeout, FunctionIdleTTL: o.FunctionIdleTTL,
		Store: o.Store, Logger: o.Logger, Level: o.Level, Now: o.Now, Version: Version, Observer: o.Observer,
		Access: o.Access, MaxJobs: o.MaxJobs, Schedules: o.Schedules, ScheduleLeader: o.ScheduleLeader, MaxQueuedBytes: o.MaxQueuedBytes, MaxQueue: o.MaxQueue, StartSettings: o.StartSettings,
		TransportLimits: protocol.LimitsInfo{MaxConnections: o.MaxConnections,
			MaxConnectionsPerIP: o.MaxConnectionsPerIP, MaxPacketSize: o.MaxPacketSize,
			PacketTimeout: int64(o.PacketTimeout / time.Second), SilentTimeout: int64(o.SilentTimeout / time.Second)},
	}
}

// DefaultOptions returns the defaults: loopback port 4730, one wake-up per job, 64 MiB packets.
func DefaultOptions() Options {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gear"
	}
	return Options{
		Listen:          []string{"127.0.0.1:4730"},
		HandlePrefix:    "H:" + host,
		WorkerWakeup:    WakeOnePerJob,
		WakeTimeout:     time.Second,
		KeepaliveIdle:   60 * time.Second,
		MaxPacketSize:   64 << 20,
		PacketTimeout:   2 * time.Minute,
		MaxOutbound:     256 << 20,
		IOLoops:         defaultIOLoops(),
		FunctionIdleTTL: 5 * time.Minute,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:             time.Now,
	}
}

// defaultIOLoops is one event loop per four CPUs, at least one. On the 2-core test machine one loop
// served `gear bench --scenario foreground --clients 8 --workers 4 --jobs 30000` with 1.03-1.05 s of
// server CPU and a p99 of 1.1-1.2 ms, a goroutine per connection with 1.17-1.22 s and 2.3-3.1 ms,
// two loops with 1.17-1.21 s and 2.4 ms; on larger machines more loops share the system calls,
// while the job state they all reach stays under one lock.
func defaultIOLoops() int { return max(1, runtime.GOMAXPROCS(0)/4) }

// validate checks the transport's options and fills in defaults; core.New checks the rules'.
func (o *Options) validate() error {
	if o.MaxPacketSize <= 0 {
		return fmt.Errorf("max packet size must be positive, got %d", o.MaxPacketSize)
	}
	if o.PacketTimeout < 0 || o.SilentTimeout < 0 {
		return fmt.Errorf("timeouts must be 0 (none) or more, got packet %v and silent %v", o.PacketTimeout, o.SilentTimeout)
	}
	if o.MaxConnections < 0 || o.MaxConnectionsPerIP < 0 {
		return fmt.Errorf("connection limits must be 0 (none) or more, got %d and %d per address", o.MaxConnections, o.MaxConnectionsPerIP)
	}
	if o.IOLoops < 0 {
		return fmt.Errorf("event loops must be 0 (a goroutine per connection) or more, got %d", o.IOLoops)
	}
	if len(o.TLSListen) > 0 && o.TLS == nil {
		return errors.New("TLS listeners without a TLS configuration")
	}
	if o.TLS != nil && o.TLS.MinVersion < tlsfiles.MinVersion {
		o.TLS = o.TLS.Clone() // the caller's is not ours to change
		o.TLS.MinVersion = tlsfiles.MinVersion
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxOutbound < 2*o.MaxPacketSize {
		o.MaxOutbound = 2 * o.MaxPacketSize
	}
	return nil
}
