package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/protocol"
)

// Run states: workers and clients block in reads; the coordinator changes the state and then sets a
// past read deadline on their connections, so each wakes, reads the state and acts on it.
const (
	stateRun   int32 = iota
	stateSweep       // workers: the goal is reached; grab until NO_JOB to catch stray jobs, then stop
	stateAbort       // everyone: stop now (no progress for Timeout, an error, or ctx done)
)

// errAborted is what a goroutine returns when it stops because of stateAbort: the reason is recorded
// elsewhere, so it is not reported again.
var errAborted = errors.New("aborted")

// prefillPipeline is the submits in flight per client when filling the queue before a timed drain:
// the fill is not measured, so it goes as fast as the server takes it.
const prefillPipeline = 64

// run is the state of one Run call. The coordinator (Run's goroutine) owns everything but the atomics,
// the mutex-guarded fields and what each client and worker owns.
type run struct {
	cfg       Config
	codec     *codec
	tr        *tracker
	fn        []byte
	epoch     time.Time
	maxPacket int
	progress  io.Writer
	tty       bool
	proc      *sampler
	res       *Result
	started   atomic.Bool // a connection succeeded: from here on failures are results, not setup errors
	checkLost bool        // the phase that runs every acknowledged job started: unrun jobs are lost
	fgClients bool        // jobs are foreground: a job is complete when its client has the result

	uniqueKeys bool // submits carry unique keys (unique scenario)
	priorities bool // submit priority depends on the job id (priorities scenario)

	state      atomic.Int32
	unanswered atomic.Int64 // submits never answered with JOB_CREATED before an abort

	mu       sync.Mutex
	peers    []*peer // every connection, for abort and close
	workers  []*worker
	errs     []error
	failed   chan struct{}
	failOnce sync.Once
	stalled  bool
}

func newRun(cfg Config, nonce uint32, progress io.Writer) *run {
	r := &run{
		cfg:       cfg,
		codec:     newCodec(cfg.PayloadSize, nonce),
		fn:        []byte(cfg.Function),
		epoch:     time.Now(),
		maxPacket: max(2*cfg.PayloadSize+4096, 1<<20),
		progress:  progress,
		failed:    make(chan struct{}),
	}
	if f, ok := progress.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			r.tty = true
		}
	}
	return r
}

// now is the run clock in nanoseconds (monotonic).
func (r *run) now() int64 { return int64(time.Since(r.epoch)) }

// fail records the first errors; the first one aborts the run.
func (r *run) fail(err error) {
	if err == nil || errors.Is(err, errAborted) {
		return
	}
	r.mu.Lock()
	if len(r.errs) < maxNotes {
		r.errs = append(r.errs, err)
	}
	r.mu.Unlock()
	r.failOnce.Do(func() { close(r.failed) })
}

func (r *run) spawn(wg *sync.WaitGroup, f func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.fail(f())
	}()
}

func (r *run) addPeer(p *peer) {
	r.mu.Lock()
	r.peers = append(r.peers, p)
	r.mu.Unlock()
}

func (r *run) abort() {
	r.state.Store(stateAbort)
	r.mu.Lock()
	for _, p := range r.peers {
		p.interrupt()
	}
	r.mu.Unlock()
}

// sweep tells the workers the goal is reached and waits for them to finish their final sweep.
func (r *run) sweep(ctx context.Context, wg *sync.WaitGroup) {
	r.state.CompareAndSwap(stateRun, stateSweep)
	r.mu.Lock()
	for _, w := range r.workers {
		w.p.interrupt()
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.fail(ctx.Err())
		r.abort()
		<-done
	}
}

func (r *run) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.peers {
		p.close()
	}
	r.peers = nil
}

func (r *run) dial(ctx context.Context) (*peer, error) {
	p, err := dialPeer(ctx, r.cfg.Server, r.cfg.TLS, r.cfg.Timeout, r.maxPacket, r.cfg.NetConn)
	if err != nil {
		return nil, err
	}
	r.addPeer(p)
	if err := p.echo(r.cfg.Timeout); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", r.cfg.Server, err)
	}
	r.started.Store(true)
	return p, nil
}

func (r *run) dialClients(ctx context.Context, n int) ([]*client, error) {
	cs := make([]*client, n)
	for i := range cs {
		p, err := r.dial(ctx)
		if err != nil {
			return nil, err
		}
		cs[i] = &client{r: r, p: p}
	}
	return cs, nil
}

// dialWorkers connects n workers and registers them: CAN_DO, then an ECHO round trip so that the
// server has processed the registration before the clock starts.
func (r *run) dialWorkers(ctx context.Context, n int, echo bool) ([]*worker, error) {
	ws := make([]*worker, n)
	grab := protocol.GrabJobUniq
	if r.cfg.PlainGrab && !r.uniqueKeys {
		grab = protocol.GrabJob
	}
	for i := range ws {
		p, err := dialPeer(ctx, r.cfg.Server, r.cfg.TLS, r.cfg.Timeout, r.maxPacket, r.cfg.NetConn)
		if err != nil {
			return nil, err
		}
		r.addPeer(p)
		p.send(protocol.CanDo, r.fn)
		if err := p.echo(r.cfg.Timeout); err != nil {
			return nil, fmt.Errorf("registering a worker with %s: %w", r.cfg.Server, err)
		}
		r.started.Store(true)
		ws[i] = &worker{r: r, p: p, echo: echo, grab: grab}
	}
	r.mu.Lock()
	r.workers = append(r.workers, ws...)
	r.mu.Unlock()
	return ws, nil
}

// watch waits until done is closed, reporting progress. It aborts the run when a goroutine fails, when
// ctx ends, or when count has not moved for Timeout (then it returns true: the run stalled).
func (r *run) watch(ctx context.Context, phase string, total int64, count func() int64, done <-chan struct{}) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	last, lastAt, lastPrint := count(), start, start
	for {
		select {
		case <-done:
			r.printProgress(phase, count(), total, start, true)
			return false
		case <-r.failed:
			r.abort()
			return false
		case <-ctx.Done():
			r.fail(ctx.Err())
			r.abort()
			return false
		case now := <-tick.C:
			c := count()
			if c != last {
				last, lastAt = c, now
			} else if now.Sub(lastAt) >= r.cfg.Timeout {
				r.stalled = true
				r.printProgress(phase, c, total, start, true)
				r.abort()
				return true
			}
			if r.tty || now.Sub(lastPrint) >= time.Second {
				r.printProgress(phase, c, total, start, false)
				lastPrint = now
			}
		}
	}
}

func (r *run) printProgress(phase string, c, total int64, start time.Time, final bool) {
	if r.progress == nil {
		return
	}
	el := time.Since(start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(c) / el
	}
	line := fmt.Sprintf("%s %s: %d/%d  %.0f/s  %.1fs", r.cfg.Scenario, phase, c, total, rate, el)
	switch {
	case r.tty && final:
		fmt.Fprintf(r.progress, "\r\033[K%s\n", line)
	case r.tty:
		fmt.Fprintf(r.progress, "\r\033[K%s", line)
	default:
		fmt.Fprintln(r.progress, line)
	}
}

// mark is a point of the timed phase: wall clock and CPU times.
type mark struct {
	t              time.Time
	serverCPU      time.Duration
	serverSwitches int64
	selfCPU        time.Duration
}

func (r *run) mark() mark {
	m := mark{t: time.Now(), selfCPU: selfCPU()}
	if r.proc != nil {
		m.serverCPU, _ = r.proc.cpu()
		m.serverSwitches, _ = r.proc.switches()
	}
	return m
}

// timed records the timed phase: jobs done between m0 and m1.
func (r *run) timed(m0, m1 mark, jobs int64) {
	res := r.res
	res.Jobs = jobs
	res.Elapsed = m1.t.Sub(m0.t)
	if res.Elapsed > 0 {
		res.JobsPerSec = float64(jobs) / res.Elapsed.Seconds()
	}
	res.BenchCPU = m1.selfCPU - m0.selfCPU
	if r.proc != nil {
		st := r.serverStats()
		st.CPU = m1.serverCPU - m0.serverCPU
		st.Switches = m1.serverSwitches - m0.serverSwitches
	}
}

func (r *run) serverStats() *ServerStats {
	if r.res.Server == nil {
		r.res.Server = &ServerStats{PID: r.cfg.ServerPID}
	}
	return r.res.Server
}

// rss samples the server's current RSS after letting it settle (freed memory, lazily returned).
func (r *run) rss(settle time.Duration) int64 {
	if r.proc == nil {
		return 0
	}
	time.Sleep(settle)
	rss, _, _ := r.proc.mem()
	return rss
}

func sum[T any](xs []T, f func(T) int64) func() int64 {
	return func() int64 {
		var n int64
		for _, x := range xs {
			n += f(x)
		}
		return n
	}
}

func waitChan(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch
}

// finish turns the tracker's records and the collected errors into Result fields and Result.Err.
func (r *run) finish(runErr error) {
	res := r.res
	r.fail(runErr)
	var errs []error
	r.mu.Lock()
	failed := len(r.errs) > 0
	r.mu.Unlock()
	if r.tr != nil {
		// After an error the run was cut short: jobs it never got to are not the server's losses.
		v := r.tr.verdict(r.fgClients, r.checkLost && (r.stalled || !failed))
		unanswered := int64(0)
		if r.stalled {
			unanswered = r.unanswered.Load()
		}
		res.Lost = v.Lost + unanswered
		res.Duplicated = v.Duplicated
		res.Corrupted = v.Corrupted
		res.Foreign = r.tr.foreign.Load()
		res.Uncoalesced = r.tr.uncoalesced.Load()
		res.OrderViolations = r.tr.order.Load()
		res.ServerErrors = r.tr.serverErrs.Load()
		res.Executions = v.Runs
		if res.Lost > 0 {
			what := "run by a worker"
			if r.fgClients {
				what = "completed to its client"
			}
			msg := fmt.Sprintf("%d acknowledged but never %s", v.Lost, what)
			if unanswered > 0 {
				msg += fmt.Sprintf(", %d submits never answered with JOB_CREATED", unanswered)
			}
			if len(v.firstLost) > 0 {
				msg += " (job ids " + formatIDs(v.firstLost) + "…)"
			}
			if r.stalled {
				msg += fmt.Sprintf("; nothing progressed for %v", r.cfg.Timeout)
			}
			errs = append(errs, fmt.Errorf("%w: %s", ErrLost, msg))
		}
		if res.Duplicated > 0 {
			errs = append(errs, fmt.Errorf("%w: %d jobs ran or were delivered more than once", ErrDuplicated, res.Duplicated))
		}
		if res.Corrupted > 0 {
			errs = append(errs, fmt.Errorf("%w: %d payloads failed their checksum or did not match", ErrCorrupted, res.Corrupted))
		}
		if res.OrderViolations > 0 {
			errs = append(errs, fmt.Errorf("%w: %d grabs returned a higher-priority job after a lower-priority one", ErrOrder, res.OrderViolations))
		}
		if res.Uncoalesced > 0 {
			errs = append(errs, fmt.Errorf("%w: %d repeated submits of a unique key got a new handle", ErrCoalesce, res.Uncoalesced))
		}
		r.tr.mu.Lock()
		for _, n := range r.tr.notes {
			errs = append(errs, errors.New("  "+n))
		}
		r.tr.mu.Unlock()
	}
	if r.stalled && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%w: nothing progressed for %v", ErrLost, r.cfg.Timeout))
	}
	r.mu.Lock()
	errs = append(r.errs, errs...)
	r.mu.Unlock()
	if r.proc != nil {
		st := r.serverStats()
		st.PeakRSSKiB = r.proc.peak()
		_, st.HWMKiB, _ = r.proc.mem()
		st.StartRSSKiB = r.proc.start
		if c, err := r.proc.cpu(); err == nil {
			st.RunCPU = c - r.proc.startCPU
		}
	}
	res.Err = errors.Join(errs...)
}
