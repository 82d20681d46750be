package httpapi

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
	"github.com/prometheus/client_golang/prometheus"
)

// otherFunctions is the label of every function past the cardinality cap.
const otherFunctions = "_other"

// Metrics is the server's Prometheus metrics. Its job counters and histograms are fed by the
// core's lifecycle events (it is the server's core.Observer); queue, worker and connection gauges
// are read from the core's views when scraped.
type Metrics struct {
	registry *prometheus.Registry
	log      *slog.Logger
	cap      int

	submitted, completed, failed, exceptions, requeued, timedOut, cancelled *prometheus.CounterVec
	wait, run                                                               *prometheus.HistogramVec
	deniedVec                                                               *prometheus.CounterVec

	// totals of every function, for the dashboard's throughput (see history)
	totalSubmitted, totalCompleted, totalFailed atomic.Uint64

	mu     sync.Mutex // guards byName and warned (Observe runs under the core's lock; scrapes too)
	byName map[string]*functionMetrics
	warned bool
	srv    *server.Server
	srvMu  sync.RWMutex
}

// functionMetrics are one function's counters and histograms, resolved once.
type functionMetrics struct {
	submitted, completed, failed, exceptions, requeued, timedOut, cancelled prometheus.Counter
	wait, run                                                               prometheus.Observer
}

// NewMetrics returns the metrics, registered with Go runtime and process metrics, counting at most
// maxFunctions functions by name (the rest under the label "_other", said once in the log), so
// that a client inventing function names cannot grow them without bound.
func NewMetrics(maxFunctions int, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{registry: prometheus.NewRegistry(), log: log, cap: max(maxFunctions, 1),
		byName: map[string]*functionMetrics{}}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gear", Name: name, Help: help}, []string{"function"})
	}
	m.submitted = counter("jobs_submitted_total", "Jobs submitted (not counting submits that joined a job with the same unique key).")
	m.completed = counter("jobs_completed_total", "Jobs whose worker sent WORK_COMPLETE.")
	m.failed = counter("jobs_failed_total", "Jobs that failed: WORK_FAIL from their worker, or retries exhausted.")
	m.exceptions = counter("jobs_exceptions_total", "Jobs whose worker sent WORK_EXCEPTION.")
	m.requeued = counter("jobs_requeued_total", "Times a running job went back to its queue because its worker was lost.")
	m.timedOut = counter("jobs_timed_out_total", "Jobs that outran their CAN_DO_TIMEOUT.")
	m.cancelled = counter("jobs_cancelled_total", "Jobs cancelled by an administrator.")
	m.deniedVec = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gear", Name: "access_denied_total",
		Help: "Requests the access rules refused, by action: submit, register, admin_read, admin_write (Gearman port), http_read, http_write (HTTP API)."}, []string{"action"})
	buckets := prometheus.ExponentialBuckets(0.0005, 4, 12) // 0.5 ms .. ~35 min
	m.wait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "gear", Name: "job_wait_seconds",
		Help: "Time from a job's submission to its start on a worker.", Buckets: buckets}, []string{"function"})
	m.run = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "gear", Name: "job_run_seconds",
		Help: "Time from a job's start to its end (completed, failed, exception, timed out, worker lost).", Buckets: buckets}, []string{"function"})
	m.registry.MustRegister(m.submitted, m.completed, m.failed, m.exceptions, m.requeued, m.timedOut, m.cancelled,
		m.wait, m.run, m.deniedVec, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		gauges{m})
	return m
}

// Registry is where the metrics are registered, for serving and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Attach gives the metrics the server whose views the gauges read.
func (m *Metrics) Attach(srv *server.Server) {
	m.srvMu.Lock()
	m.srv = srv
	m.srvMu.Unlock()
}

// function returns the metrics of a function, or of "_other" past the cap.
func (m *Metrics) function(name string) *functionMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fm := m.byName[name]; fm != nil {
		return fm
	}
	label := name
	if len(m.byName) >= m.cap {
		if fm := m.byName[otherFunctions]; fm != nil {
			return fm
		}
		label = otherFunctions
		if !m.warned {
			m.warned = true
			m.log.Warn("more functions than the metrics count by name: the rest are counted as function=\"_other\"", "max", m.cap)
		}
	}
	fm := &functionMetrics{
		submitted: m.submitted.WithLabelValues(label), completed: m.completed.WithLabelValues(label),
		failed: m.failed.WithLabelValues(label), exceptions: m.exceptions.WithLabelValues(label),
		requeued: m.requeued.WithLabelValues(label), timedOut: m.timedOut.WithLabelValues(label),
		cancelled: m.cancelled.WithLabelValues(label), wait: m.wait.WithLabelValues(label), run: m.run.WithLabelValues(label),
	}
	m.byName[label] = fm
	return fm
}

// label is the function label the metrics use for name.
func (m *Metrics) label(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byName[name]; ok || len(m.byName) < m.cap {
		return name
	}
	return otherFunctions
}

// Observe counts a lifecycle event (core.Observer). It runs under the core's lock: atomic
// additions to the function's metrics, found through the event's slot (a map lookup the first time).
func (m *Metrics) Observe(e core.Event) {
	if e.Kind == core.EventDenied {
		m.denied(e.Detail)
		return
	}
	if e.Function == "" || e.Kind == core.EventRegistered || e.Kind == core.EventUnregistered {
		return
	}
	var fm *functionMetrics
	if e.Slot != nil {
		fm, _ = (*e.Slot).(*functionMetrics)
	}
	if fm == nil {
		fm = m.function(e.Function)
		if e.Slot != nil {
			*e.Slot = fm // the core keeps it with the function: no lookup next time
		}
	}
	switch e.Kind {
	case core.EventSubmitted:
		fm.submitted.Inc()
		m.totalSubmitted.Add(1)
	case core.EventStarted:
		fm.wait.Observe(e.Wait.Seconds())
	case core.EventCompleted:
		fm.completed.Inc()
		fm.run.Observe(e.Run.Seconds())
		m.totalCompleted.Add(1)
	case core.EventFailed: // WORK_FAIL or retries exhausted: a job that was running, like the rest
		fm.failed.Inc()
		fm.run.Observe(e.Run.Seconds())
		m.totalFailed.Add(1)
	case core.EventException:
		fm.exceptions.Inc()
		fm.run.Observe(e.Run.Seconds())
		m.totalFailed.Add(1)
	case core.EventRequeued:
		fm.requeued.Inc()
		fm.run.Observe(e.Run.Seconds())
	case core.EventTimedOut:
		fm.timedOut.Inc()
		fm.run.Observe(e.Run.Seconds())
		m.totalFailed.Add(1)
	case core.EventCancelled:
		fm.cancelled.Inc()
	}
}

// denied counts a request the access rules refused; action is one of a few fixed words.
func (m *Metrics) denied(action string) { m.deniedVec.WithLabelValues(action).Inc() }

// gauges collects the state the core's views show at the moment of a scrape.
type gauges struct{ m *Metrics }

var (
	descQueued        = prometheus.NewDesc("gear_queued_jobs", "Runnable jobs waiting in their queue, per function and priority.", []string{"function", "priority"}, nil)
	descScheduled     = prometheus.NewDesc("gear_scheduled_jobs", "Epoch jobs not yet due, per function.", []string{"function"}, nil)
	descRunning       = prometheus.NewDesc("gear_running_jobs", "Jobs assigned to a worker, per function.", []string{"function"}, nil)
	descWorkers       = prometheus.NewDesc("gear_workers", "Worker connections registered for a function.", []string{"function"}, nil)
	descPaused        = prometheus.NewDesc("gear_function_paused", "1 while a function is paused (no worker is given its jobs); under _other, how many are.", []string{"function"}, nil)
	descOldest        = prometheus.NewDesc("gear_oldest_queued_job_age_seconds", "How long the oldest queued job of a function has waited.", []string{"function"}, nil)
	descConns         = prometheus.NewDesc("gear_connections", "Open connections, by kind: worker (registered a function or asked for a job) or client.", []string{"kind"}, nil)
	descAccepted      = prometheus.NewDesc("gear_connections_accepted_total", "Connections accepted.", nil, nil)
	descTimedOut      = prometheus.NewDesc("gear_connections_timed_out_total", "Connections closed for a packet slower than --packet-timeout (reason packet) or for silence past --silent-timeout (reason silent).", []string{"reason"}, nil)
	descTLSFailed     = prometheus.NewDesc("gear_tls_handshake_failures_total", "TLS handshakes that failed or timed out (plaintext clients on a TLS port included).", nil, nil)
	descRefused       = prometheus.NewDesc("gear_connections_refused_total", "Connections refused for a limit: the server's total (--max-connections) or per remote address (--max-connections-per-ip).", []string{"limit"}, nil)
	descUp            = prometheus.NewDesc("gear_ready", "1 once the server listens with its stored jobs replayed.", nil, nil)
	descBytes         = prometheus.NewDesc("gear_network_bytes_total", "Bytes read from (in) and written to (out) Gearman peers.", []string{"direction"}, nil)
	descCommits       = prometheus.NewDesc("gear_store_commits_total", "Batches the durable store committed (one write, and with --sync always one fsync, each).", nil, nil)
	descCommitErr     = prometheus.NewDesc("gear_store_commit_errors_total", "Store batches that failed.", nil, nil)
	descStoreFailing  = prometheus.NewDesc("gear_store_failing_seconds", "How long the store's writes have been failing (a database that is down, a failed fsync): 0 while they succeed.", nil, nil)
	descCommitOps     = prometheus.NewDesc("gear_store_committed_operations_total", "Operations (adds, removals, updates) the store's batches carried: divided by commits, the batch size.", nil, nil)
	descCommitLatency = prometheus.NewDesc("gear_store_commit_duration_seconds", "Time to commit one store batch (with --sync always, its fsync included).", nil, nil)
	descBatchSize     = prometheus.NewDesc("gear_store_batch_operations", "Operations (adds, removals, updates) carried by one store batch.", nil, nil)
	descCommitSec     = prometheus.NewDesc("gear_store_commit_seconds_total", "Time spent committing store batches: divided by commits, the commit latency.", nil, nil)
	descAdoptions     = prometheus.NewDesc("gear_fleet_adoptions_total", "Servers of the fleet whose jobs this server adopted after their lease lapsed.", nil, nil)
	descJobsAdopted   = prometheus.NewDesc("gear_fleet_jobs_adopted_total", "Jobs this server adopted from servers of the fleet whose lease lapsed.", nil, nil)
	descFenced        = prometheus.NewDesc("gear_fleet_fenced", "1 while this server has no fleet lease: it hands out no jobs and refuses background submits.", nil, nil)
)

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueued, descScheduled, descRunning, descWorkers, descOldest, descPaused, descConns,
		descAccepted, descRefused, descTimedOut, descTLSFailed, descUp, descBytes, descCommits, descCommitErr, descStoreFailing, descCommitOps, descCommitSec, descCommitLatency, descBatchSize,
		descAdoptions, descJobsAdopted, descFenced} {
		ch <- d
	}
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	g.m.srvMu.RLock()
	srv := g.m.srv
	g.m.srvMu.RUnlock()
	if srv == nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	// Functions past the cap are summed under "_other"; the oldest age is the oldest among them.
	type agg struct {
		queued             protocol.PriorityInts
		scheduled, running int
		workers            int
		oldest             float64
		paused             int
	}
	byLabel := map[string]*agg{}
	var order []string
	for _, f := range srv.Core().Functions() {
		l := g.m.label(f.Name)
		a := byLabel[l]
		if a == nil {
			a = &agg{}
			byLabel[l] = a
			order = append(order, l)
		}
		a.queued.High += f.Queued.High
		a.queued.Normal += f.Queued.Normal
		a.queued.Low += f.Queued.Low
		a.scheduled += f.Scheduled
		a.running += f.Running
		a.workers += f.Workers
		a.oldest = max(a.oldest, f.OldestAge)
		if f.Paused {
			a.paused++
		}
	}
	for _, l := range order {
		a := byLabel[l]
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(a.queued.High), l, "high")
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(a.queued.Normal), l, "normal")
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(a.queued.Low), l, "low")
		ch <- prometheus.MustNewConstMetric(descScheduled, prometheus.GaugeValue, float64(a.scheduled), l)
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(a.running), l)
		ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(a.workers), l)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, a.oldest, l)
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, float64(a.paused), l)
	}
	if f := srv.Fleet(); f != nil {
		fs := f.Stats()
		fenced := 0.0
		if fs.Fenced {
			fenced = 1
		}
		ch <- prometheus.MustNewConstMetric(descAdoptions, prometheus.CounterValue, float64(fs.Adoptions))
		ch <- prometheus.MustNewConstMetric(descJobsAdopted, prometheus.CounterValue, float64(fs.JobsAdopted))
		ch <- prometheus.MustNewConstMetric(descFenced, prometheus.GaugeValue, fenced)
	}
	info := srv.Core().Info()
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(info.Workers), "worker")
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(info.Connections-info.Workers), "client")
	stats := srv.Stats()
	ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(stats.ConnectionsAccepted))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(stats.ConnectionsRefused), "total")
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(stats.ConnectionsRefusedPerIP), "per_address")
	ch <- prometheus.MustNewConstMetric(descTimedOut, prometheus.CounterValue, float64(stats.ConnectionsTimedOut), "packet")
	ch <- prometheus.MustNewConstMetric(descTimedOut, prometheus.CounterValue, float64(stats.ConnectionsSilent), "silent")
	ch <- prometheus.MustNewConstMetric(descTLSFailed, prometheus.CounterValue, float64(stats.TLSHandshakeErrors))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(stats.BytesIn), "in")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(stats.BytesOut), "out")
	if st, ok := srv.Core().StoreStats(); ok {
		ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(st.Commits))
		ch <- prometheus.MustNewConstMetric(descCommitErr, prometheus.CounterValue, float64(st.CommitErrors))
		failing := 0.0
		if !st.FailingSince.IsZero() {
			failing = time.Since(st.FailingSince).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descStoreFailing, prometheus.GaugeValue, failing)
		ch <- prometheus.MustNewConstMetric(descCommitOps, prometheus.CounterValue, float64(st.CommittedOps))
		ch <- prometheus.MustNewConstMetric(descCommitSec, prometheus.CounterValue, st.CommitTime.Seconds())
		if h := st.CommitLatency; h.Buckets != nil {
			ch <- prometheus.MustNewConstHistogram(descCommitLatency, h.Count, h.Sum, h.Buckets)
		}
		if h := st.BatchSize; h.Buckets != nil {
			ch <- prometheus.MustNewConstHistogram(descBatchSize, h.Count, h.Sum, h.Buckets)
		}
	}
}
