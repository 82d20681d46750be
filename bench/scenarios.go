package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

func clientDone(c *client) int64 { return c.done.Load() }

func (r *run) clientLatency(cs []*client, kind string) {
	var h histogram
	for _, c := range cs {
		h.merge(&c.hist)
	}
	r.res.Latency = h.summary(kind)
}

func (r *run) workerResults(ws []*worker) {
	var h histogram
	for _, w := range ws {
		h.merge(&w.hist)
		for p, n := range w.prioCount {
			r.res.Priorities[p] += n
		}
	}
	r.res.Latency = h.summary("GRAB→JOB_ASSIGN")
}

// drain starts the workers and waits until every job ran once (or the run aborts). It returns the
// wall-clock time from the first grab to the last execution, and the workers' WaitGroup for sweep.
func (r *run) drain(ctx context.Context, ws []*worker, phase string, total int64) (time.Duration, *sync.WaitGroup) {
	var wg sync.WaitGroup
	r.checkLost = true
	start := r.now()
	for _, w := range ws {
		r.spawn(&wg, w.run)
	}
	// Progress counts what the tracker verified: the same count that closes reached.
	r.watch(ctx, phase, total, r.tr.executed.Load, r.tr.reached)
	select {
	case <-r.tr.reached:
		return time.Duration(r.tr.doneAt.Load() - start), &wg
	default:
		return 0, &wg
	}
}

// background: clients submit SUBMIT_JOB_BG (timed: submit → JOB_CREATED) with no worker connected,
// then workers drain the queue and every job is verified.
func (r *run) background(ctx context.Context) error {
	n := int64(r.cfg.Jobs)
	r.tr = newTracker(n, false)
	cs, err := r.dialClients(ctx, r.cfg.Clients)
	if err != nil {
		return err
	}
	pl := newPlan(n, false)
	var wg sync.WaitGroup
	m0 := r.mark()
	for _, c := range cs {
		r.spawn(&wg, func() error { return c.runBackground(pl, r.cfg.Pipeline) })
	}
	r.watch(ctx, "submit", n, sum(cs, clientDone), waitChan(&wg))
	wg.Wait()
	r.timed(m0, r.mark(), sum(cs, clientDone)())
	r.clientLatency(cs, "submit→JOB_CREATED")
	if r.state.Load() != stateRun {
		return nil
	}
	ws, err := r.dialWorkers(ctx, r.cfg.Workers, false)
	if err != nil {
		return err
	}
	d, wwg := r.drain(ctx, ws, "drain", n)
	if d > 0 {
		r.res.DrainPerSec = float64(n) / d.Seconds()
	}
	r.sweep(ctx, wwg)
	return nil
}

// flow: workers run while clients submit SUBMIT_JOB_BG; timed from the first submit until every job
// ran, so the figure is jobs through the whole server (submit, store, dispatch, completion) per
// second, as a queue in steady state serves them.
func (r *run) flow(ctx context.Context) error {
	n := int64(r.cfg.Jobs)
	cs, wwg, err := r.startWorkersThenDial(ctx, n, false)
	if err != nil {
		return err
	}
	var cwg sync.WaitGroup
	pl := newPlan(n, false)
	m0 := r.mark()
	for _, c := range cs {
		r.spawn(&cwg, func() error { return c.runBackground(pl, r.cfg.Pipeline) })
	}
	r.watch(ctx, "run", n, r.tr.executed.Load, r.tr.reached)
	m1 := r.mark()
	cwg.Wait()
	r.timed(m0, m1, r.tr.executed.Load())
	r.clientLatency(cs, "submit→JOB_CREATED")
	r.sweep(ctx, wwg)
	return nil
}

// foreground: workers echo payloads; clients submit SUBMIT_JOB and wait for WORK_COMPLETE (timed).
func (r *run) foreground(ctx context.Context) error {
	n := int64(r.cfg.Jobs)
	r.fgClients = true
	cs, wwg, err := r.startWorkersThenDial(ctx, n, true)
	if err != nil {
		return err
	}
	var cwg sync.WaitGroup
	pl := newPlan(n, false)
	m0 := r.mark()
	for _, c := range cs {
		r.spawn(&cwg, func() error { return c.runForeground(pl, r.cfg.Pipeline) })
	}
	r.watch(ctx, "run", n, sum(cs, clientDone), waitChan(&cwg))
	cwg.Wait()
	r.timed(m0, r.mark(), sum(cs, clientDone)())
	r.clientLatency(cs, "submit→WORK_COMPLETE")
	r.sweep(ctx, wwg)
	return nil
}

// startWorkersThenDial serves the scenarios whose workers run while the clients submit: it tracks
// n jobs, connects the workers (echo: they send the payload back) and the clients, and starts the
// workers, which run every acknowledged job from here on.
func (r *run) startWorkersThenDial(ctx context.Context, n int64, echo bool) ([]*client, *sync.WaitGroup, error) {
	r.tr = newTracker(n, false)
	ws, err := r.dialWorkers(ctx, r.cfg.Workers, echo)
	if err != nil {
		return nil, nil, err
	}
	cs, err := r.dialClients(ctx, r.cfg.Clients)
	if err != nil {
		return nil, nil, err
	}
	var wwg sync.WaitGroup
	r.checkLost = true
	for _, w := range ws {
		r.spawn(&wwg, w.run)
	}
	return cs, &wwg, nil
}

// prefillAndDrain serves drain, priorities and unique: clients fill the queue with no worker
// connected (untimed), then workers drain it (timed, GRAB → JOB_ASSIGN latency).
func (r *run) prefillAndDrain(ctx context.Context) error {
	n := int64(r.cfg.Jobs)
	r.uniqueKeys = r.cfg.Scenario == ScenarioUnique
	r.priorities = r.cfg.Scenario == ScenarioPriorities
	r.tr = newTracker(n, r.uniqueKeys)
	cs, err := r.dialClients(ctx, r.cfg.Clients)
	if err != nil {
		return err
	}
	pl := newPlan(n, r.uniqueKeys)
	var wg sync.WaitGroup
	for _, c := range cs {
		r.spawn(&wg, func() error { return c.runBackground(pl, max(r.cfg.Pipeline, prefillPipeline)) })
	}
	r.watch(ctx, "prefill", pl.total, sum(cs, clientDone), waitChan(&wg))
	wg.Wait()
	if r.state.Load() != stateRun {
		return nil
	}
	if r.proc != nil {
		r.serverStats().LoadedRSSKiB = r.rss(0)
	}
	ws, err := r.dialWorkers(ctx, r.cfg.Workers, false)
	if err != nil {
		return err
	}
	m0 := r.mark()
	d, wwg := r.drain(ctx, ws, "drain", n)
	m1 := r.mark()
	if d > 0 {
		m1.t = m0.t.Add(d)
	}
	r.timed(m0, m1, r.tr.executed.Load())
	r.sweep(ctx, wwg)
	r.workerResults(ws)
	if r.proc != nil {
		r.serverStats().AfterRSSKiB = r.rss(250 * time.Millisecond)
	}
	return nil
}

// idleDialers bounds concurrent connection attempts: gearmand's default listen backlog is 32, and a
// SYN dropped on a full backlog costs a one-second retransmit.
const idleDialers = 16

// idle opens Clients connections, each doing one ECHO round trip, and measures the server's RSS
// growth per connection.
func (r *run) idle(ctx context.Context) error {
	n := r.cfg.Clients
	before := r.rss(100 * time.Millisecond)
	hists := make([]histogram, min(n, idleDialers))
	var next, done atomic.Int64
	var wg sync.WaitGroup
	m0 := r.mark()
	for g := range hists {
		r.spawn(&wg, func() error {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || r.state.Load() != stateRun {
					return nil
				}
				t := r.now()
				p, err := r.dial(ctx)
				if err != nil {
					return err
				}
				p.out = nil // held idle: keep only what the decoder needs
				hists[g].record(r.now() - t)
				done.Add(1)
			}
		})
	}
	r.watch(ctx, "connect", int64(n), done.Load, waitChan(&wg))
	wg.Wait()
	r.timed(m0, r.mark(), done.Load())
	var h histogram
	for i := range hists {
		h.merge(&hists[i])
	}
	r.res.Latency = h.summary("connect+ECHO")
	r.res.Conns = int(done.Load())
	if r.proc != nil && r.res.Conns > 0 {
		after := r.rss(300 * time.Millisecond)
		st := r.serverStats()
		st.LoadedRSSKiB = after
		r.res.RSSPerConn = float64(after-before) * 1024 / float64(r.res.Conns)
	}
	return nil
}
