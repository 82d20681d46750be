// Package worker serves Gearman jobs: register functions, connect to one or more job servers, run
// jobs concurrently, and stop gracefully.
//
//	w, _ := worker.New(worker.Options{Servers: []string{"127.0.0.1:4730"}, Concurrency: 4})
//	w.Register("reverse", func(ctx context.Context, j *worker.Job) ([]byte, error) {
//		return reverse(j.Data), nil
//	}, 0)
//	err := w.Run(ctx) // until ctx ends or Stop; jobs in hand finish first
//
// An idle worker sleeps on every server (PRE_SLEEP) until the server wakes it with NOOP, so it costs
// nothing. It asks for jobs with GRAB_JOB_ALL, so the unique key (and reducer) reach the function.
// A function's error becomes WORK_EXCEPTION with the error text (clients without the exceptions
// option see WORK_FAIL); ErrFail becomes a plain WORK_FAIL; a panic becomes WORK_EXCEPTION, and the
// worker lives on.
package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/internal/serveraddr"
)

// Func runs one job. Its context ends when the function's timeout passes or the connection to the
// job's server is lost.
type Func func(ctx context.Context, job *Job) ([]byte, error)

// ErrFail, returned by a Func, ends the job with WORK_FAIL and no message.
var ErrFail = errors.New("job failed")

// Reasons Run returns after a Stop it started itself.
var (
	ErrMemoryCap   = errors.New("worker memory reached its cap")
	ErrMaxJobs     = errors.New("worker ran its maximum number of jobs")
	ErrMaxLifetime = errors.New("worker reached its maximum lifetime")
)

// Options configure a Worker.
type Options struct {
	// Servers lists job servers, each an address or a comma-separated list of them, read as
	// client.ParseServers reads them ("host", "host:port", "[v6]:port"...; port 4730 if omitted);
	// empty: GEARMAN_SERVERS, else 127.0.0.1:4730; "tls://host:port" for a server reached over TLS.
	// A malformed address makes New fail.
	Servers []string
	// TLS, when set, connects to every server over TLS with this configuration (its ServerName,
	// when empty, is the host dialled). Nil: plain TCP, but for "tls://" servers, which are
	// verified against the system's CAs.
	TLS *tls.Config
	// ID is sent with SET_CLIENT_ID, shown by the admin `workers` command.
	ID string
	// Concurrency is how many jobs run at once, across all servers (default 1).
	Concurrency int
	// DialTimeout bounds a connection attempt (default 5 s); MaxBackoff caps the wait between
	// reconnection attempts (default 10 s, starting at 100 ms).
	DialTimeout time.Duration
	MaxBackoff  time.Duration
	// Guard limits the worker's memory, jobs and lifetime (optional).
	Guard Guard
	// Logger receives all of the worker's log: connections, job errors, guard warnings and the
	// stack of a panicking job function. Nil discards it all (the library never writes to the
	// process's stderr on its own); pass slog.Default() to use the program's default logger.
	Logger *slog.Logger
}

type registration struct {
	fn      Func
	timeout time.Duration
}

// Worker serves registered functions. Register functions before calling Run.
type Worker struct {
	opts   Options
	log    *slog.Logger
	funcs  map[string]registration
	slots  chan struct{}
	stopCh chan struct{}

	stopOnce   sync.Once
	stopReason atomic.Pointer[error]
	jobs       sync.WaitGroup
	completed  atomic.Uint64
	running    atomic.Int64
	started    atomic.Bool
}

// New returns a worker for opts.
func New(opts Options) (*Worker, error) {
	servers, err := serveraddr.Servers(opts.Servers, os.Getenv(serveraddr.EnvVar))
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	opts.Servers = servers // a new slice: the caller's is not ours to rewrite
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := opts.Guard.validate(); err != nil {
		return nil, err
	}
	return &Worker{
		opts:   opts,
		log:    opts.Logger,
		funcs:  make(map[string]registration),
		slots:  make(chan struct{}, opts.Concurrency),
		stopCh: make(chan struct{}),
	}, nil
}

// Register adds a function. A positive timeout cancels the job's context after it and is announced
// to the server with CAN_DO_TIMEOUT (milliseconds). Register must be called before Run.
func (w *Worker) Register(name string, fn Func, timeout time.Duration) error {
	if w.started.Load() {
		return errors.New("worker: Register after Run")
	}
	if name == "" || fn == nil {
		return errors.New("worker: Register needs a name and a function")
	}
	w.funcs[name] = registration{fn: fn, timeout: timeout}
	return nil
}

// Stop stops taking jobs; Run returns once the jobs in hand have finished.
func (w *Worker) Stop() { w.stopWith(nil) }

func (w *Worker) stopWith(reason error) {
	w.stopOnce.Do(func() {
		if reason != nil {
			w.stopReason.Store(&reason)
			w.log.Warn("worker stopping", "reason", reason)
		}
		close(w.stopCh)
	})
}

func (w *Worker) stopping() bool {
	select {
	case <-w.stopCh:
		return true
	default:
		return false
	}
}

// Completed counts the jobs this worker has finished (any outcome).
func (w *Worker) Completed() uint64 { return w.completed.Load() }

// Running counts the jobs in hand.
func (w *Worker) Running() int { return int(w.running.Load()) }

// Run connects to every server and serves jobs until ctx ends or Stop is called (or the Guard stops
// it), then waits for the jobs in hand and disconnects. It returns nil after a plain stop, or the
// guard's reason (ErrMemoryCap, ErrMaxJobs, ErrMaxLifetime).
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice")
	}
	if len(w.funcs) == 0 {
		return errors.New("worker: no functions registered")
	}
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.stopCh:
		}
	}()
	var wg sync.WaitGroup
	guardDone := make(chan struct{})
	if w.opts.Guard.active() {
		wg.Add(1)
		go func() { defer wg.Done(); w.guardLoop(guardDone) }()
	}
	var conns sync.WaitGroup
	for _, addr := range w.opts.Servers {
		sc := &serverConn{w: w, addr: addr}
		conns.Add(1)
		go func() { defer conns.Done(); sc.run() }()
	}
	<-w.stopCh
	// Each connection finishes and reports its jobs in hand before it closes, so once every
	// connection is done no job runs. Waiting on w.jobs first broke the WaitGroup rule that an Add
	// from zero happen before Wait: a connection may take a job (Add) just as Stop lands, with
	// nothing ordering the two, which the race detector reports.
	conns.Wait()
	w.jobs.Wait()
	close(guardDone)
	wg.Wait()
	if r := w.stopReason.Load(); r != nil {
		return *r
	}
	return nil
}

// runJob runs one job on its own goroutine, holding a concurrency slot, and reports the outcome.
func (w *Worker) runJob(cn *workerConn, j *Job) {
	defer func() {
		w.running.Add(-1)
		n := w.completed.Add(1)
		// Stop before the slot is freed: a connection waiting for the slot would otherwise send
		// GRAB_JOB at once and run a job past MaxJobs.
		if max := w.opts.Guard.MaxJobs; max > 0 && n >= max {
			w.stopWith(ErrMaxJobs)
		}
		<-w.slots
		w.jobs.Done()
	}()
	reg, ok := w.funcs[j.Function]
	if !ok {
		cn.send(workException(j.Handle, "function "+j.Function+" is not registered on this worker"))
		return
	}
	ctx, cancel := context.WithCancelCause(cn.ctx)
	defer cancel(nil)
	defer cn.track(j.Handle, cancel)()
	if reg.timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, reg.timeout)
		defer stop()
	}
	out, err := w.safeCall(ctx, reg.fn, j)
	if errors.Is(context.Cause(ctx), errCancelledByServer) {
		w.log.Info("job cancelled on the job server", "function", j.Function, "handle", j.Handle)
		return // the server has forgotten the job: a result would only be dropped
	}
	switch {
	case err == nil:
		cn.send(workComplete(j.Handle, out))
	case errors.Is(err, ErrFail):
		cn.send(workFail(j.Handle))
	default:
		w.log.Info("job failed", "function", j.Function, "handle", j.Handle, "err", err)
		cn.send(workException(j.Handle, err.Error()))
	}
}

// safeCall runs fn, turning a panic into an error; the panic and its stack are logged.
func (w *Worker) safeCall(ctx context.Context, fn Func, j *Job) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("panic in job function", "function", j.Function, "handle", j.Handle, "panic", fmt.Sprint(r),
				"stack", string(debug.Stack()))
			out, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(ctx, j)
}
