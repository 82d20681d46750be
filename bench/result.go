package bench

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Result is the outcome of one Run.
type Result struct {
	// Config is the effective configuration (defaults filled in, function named).
	Config Config
	// Jobs is the number of jobs (for idle: connections) done in the timed phase, Elapsed its length.
	Jobs       int64
	Elapsed    time.Duration
	JobsPerSec float64
	// Latency is the timed phase's latency: submit → JOB_CREATED (background), submit → WORK_COMPLETE
	// (foreground), GRAB → JOB_ASSIGN (drain, priorities, unique), connect + ECHO (idle).
	Latency Latency
	// DrainPerSec is, for background, the rate at which the workers then drained the queue.
	DrainPerSec float64
	// Server holds the server's CPU time and memory when Config.ServerPID is set.
	Server *ServerStats
	// BenchCPU is the generator's own CPU time (user + system) during the timed phase.
	BenchCPU time.Duration

	// Verification. Lost, Duplicated, Corrupted, OrderViolations and Uncoalesced make Err non-nil.
	Lost, Duplicated, Corrupted int64
	OrderViolations             int64    // priorities: grabs that returned a higher priority than an earlier grab
	Uncoalesced                 int64    // unique: repeated keys that got a new handle
	Foreign                     int64    // valid jobs of another run handed to the workers (a warning)
	ServerErrors                int64    // ERROR, WORK_FAIL and WORK_EXCEPTION packets received
	Executions                  int64    // jobs the workers ran, repeats included
	Priorities                  [3]int64 // priorities: jobs run at HIGH, NORMAL, LOW

	// Idle: connections held open and the server's RSS growth per connection, in bytes.
	Conns      int
	RSSPerConn float64

	Err error
}

// ServerStats are the server process's resources, read from /proc.
type ServerStats struct {
	PID int
	// CPU is user + system time consumed during the timed phase; RunCPU during the whole run
	// (background: the drain too; drain, priorities, unique: the prefill too).
	CPU, RunCPU time.Duration
	// PeakRSSKiB is the largest VmRSS sampled (every 50 ms) during the run; HWMKiB is the process's
	// VmHWM at the end (its peak since it started); StartRSSKiB is VmRSS when the run began.
	PeakRSSKiB, HWMKiB, StartRSSKiB int64
	// LoadedRSSKiB is VmRSS with the queue full (drain, priorities, unique) or all connections open
	// (idle); AfterRSSKiB is VmRSS shortly after the drain.
	LoadedRSSKiB, AfterRSSKiB int64
	// Switches is the context switches of all its threads during the timed phase.
	Switches int64
}

// ErrorCount is the number of problems found: lost, duplicated and corrupted jobs, order violations,
// uncoalesced keys and server errors; at least 1 when Err is set.
func (r *Result) ErrorCount() int64 {
	n := r.Lost + r.Duplicated + r.Corrupted + r.OrderViolations + r.Uncoalesced + r.ServerErrors
	if n == 0 && r.Err != nil {
		n = 1
	}
	return n
}

func us(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }

// fields are the machine-readable key/value pairs, in order.
func (r *Result) fields() [][2]string {
	c := r.Config
	f := [][2]string{
		{"scenario", c.Scenario}, {"server", c.Server},
		{"clients", strconv.Itoa(c.Clients)}, {"workers", strconv.Itoa(c.Workers)},
		{"jobs", strconv.Itoa(c.Jobs)}, {"payload", strconv.Itoa(c.PayloadSize)},
		{"pipeline", strconv.Itoa(c.Pipeline)}, {"io", c.ioMode()},
		{"jobs_per_sec", strconv.FormatFloat(r.JobsPerSec, 'f', 0, 64)},
		{"p50_us", us(r.Latency.P50)}, {"p99_us", us(r.Latency.P99)}, {"p999_us", us(r.Latency.P999)},
		{"max_us", us(r.Latency.Max)},
	}
	na := func(k string) { f = append(f, [2]string{k, "na"}) }
	if s := r.Server; s != nil {
		f = append(f, [2]string{"cpu_sec", strconv.FormatFloat(s.CPU.Seconds(), 'f', 3, 64)},
			[2]string{"run_cpu_sec", strconv.FormatFloat(s.RunCPU.Seconds(), 'f', 3, 64)},
			[2]string{"peak_rss_kib", strconv.FormatInt(s.PeakRSSKiB, 10)},
			[2]string{"hwm_kib", strconv.FormatInt(s.HWMKiB, 10)},
			[2]string{"start_rss_kib", strconv.FormatInt(s.StartRSSKiB, 10)},
			[2]string{"server_switches", strconv.FormatInt(s.Switches, 10)})
	} else {
		na("cpu_sec")
		na("peak_rss_kib")
	}
	f = append(f, [2]string{"bench_cpu_sec", strconv.FormatFloat(r.BenchCPU.Seconds(), 'f', 3, 64)},
		[2]string{"elapsed_sec", strconv.FormatFloat(r.Elapsed.Seconds(), 'f', 3, 64)})
	switch c.Scenario {
	case ScenarioBackground:
		f = append(f, [2]string{"drain_jobs_per_sec", strconv.FormatFloat(r.DrainPerSec, 'f', 0, 64)})
	case ScenarioPriorities:
		f = append(f, [2]string{"high", strconv.FormatInt(r.Priorities[0], 10)},
			[2]string{"normal", strconv.FormatInt(r.Priorities[1], 10)},
			[2]string{"low", strconv.FormatInt(r.Priorities[2], 10)},
			[2]string{"order_violations", strconv.FormatInt(r.OrderViolations, 10)})
	case ScenarioUnique:
		f = append(f, [2]string{"executions", strconv.FormatInt(r.Executions, 10)},
			[2]string{"uncoalesced", strconv.FormatInt(r.Uncoalesced, 10)})
	case ScenarioIdle:
		f = append(f, [2]string{"conns", strconv.Itoa(r.Conns)},
			[2]string{"rss_per_conn_b", strconv.FormatFloat(r.RSSPerConn, 'f', 0, 64)})
	}
	if s := r.Server; s != nil && s.LoadedRSSKiB > 0 {
		f = append(f, [2]string{"loaded_rss_kib", strconv.FormatInt(s.LoadedRSSKiB, 10)})
	}
	if s := r.Server; s != nil && s.AfterRSSKiB > 0 {
		f = append(f, [2]string{"after_rss_kib", strconv.FormatInt(s.AfterRSSKiB, 10)})
	}
	return append(f, [2]string{"lost", strconv.FormatInt(r.Lost, 10)},
		[2]string{"duplicated", strconv.FormatInt(r.Duplicated, 10)},
		[2]string{"corrupted", strconv.FormatInt(r.Corrupted, 10)},
		[2]string{"foreign", strconv.FormatInt(r.Foreign, 10)},
		[2]string{"errors", strconv.FormatInt(r.ErrorCount(), 10)})
}

// Line is the machine-readable summary: "RESULT key=value …" on one line. Values never contain
// spaces; unmeasured ones are "na".
func (r *Result) Line() string {
	var b strings.Builder
	b.WriteString("RESULT")
	for _, kv := range r.fields() {
		b.WriteByte(' ')
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(kv[1], " ", "_"))
	}
	return b.String()
}

// JSON is the same summary as one JSON object (numbers as numbers, "na" as null), plus "error".
func (r *Result) JSON() []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range r.fields() {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[0])
		b.Write(k)
		b.WriteByte(':')
		if kv[1] == "na" {
			b.WriteString("null")
		} else if _, err := strconv.ParseFloat(kv[1], 64); err == nil {
			b.WriteString(kv[1])
		} else {
			v, _ := json.Marshal(kv[1])
			b.Write(v)
		}
	}
	b.WriteString(`,"error":`)
	if r.Err != nil {
		v, _ := json.Marshal(r.Err.Error())
		b.Write(v)
	} else {
		b.WriteString("null")
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// Summary is a human-readable report of several lines.
func (r *Result) Summary() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "%s against %s: %d clients, %d workers, %d jobs of %d B, pipeline %d\n",
		c.Scenario, c.Server, c.Clients, c.Workers, c.Jobs, c.PayloadSize, c.Pipeline)
	unit := "jobs"
	if c.Scenario == ScenarioIdle {
		unit = "conns"
	}
	fmt.Fprintf(&b, "  throughput  %.0f %s/s (%d in %.3fs)\n", r.JobsPerSec, unit, r.Jobs, r.Elapsed.Seconds())
	if l := r.Latency; l.Count > 0 {
		fmt.Fprintf(&b, "  latency     %s: p50 %s  p99 %s  p99.9 %s  max %s µs\n", l.Kind, us(l.P50), us(l.P99),
			us(l.P999), us(l.Max))
	}
	if r.DrainPerSec > 0 {
		fmt.Fprintf(&b, "  drain       %.0f jobs/s\n", r.DrainPerSec)
	}
	if s := r.Server; s != nil {
		perJob := ""
		if r.Jobs > 0 {
			one := strings.TrimSuffix(unit, "s")
			perJob = fmt.Sprintf(" (%.1f µs/%s, %.2f context switches/%s)", float64(s.CPU.Microseconds())/float64(r.Jobs), one,
				float64(s.Switches)/float64(r.Jobs), one)
		}
		fmt.Fprintf(&b, "  server      pid %d: cpu %.3fs%s (whole run %.3fs), rss start %d KiB, peak %d KiB, hwm %d KiB\n",
			s.PID, s.CPU.Seconds(), perJob, s.RunCPU.Seconds(), s.StartRSSKiB, s.PeakRSSKiB, s.HWMKiB)
		if s.LoadedRSSKiB > 0 {
			fmt.Fprintf(&b, "  memory      rss loaded %d KiB", s.LoadedRSSKiB)
			if s.AfterRSSKiB > 0 {
				fmt.Fprintf(&b, ", after drain %d KiB", s.AfterRSSKiB)
			}
			b.WriteByte('\n')
		}
	}
	if c.Scenario == ScenarioIdle && r.Server != nil {
		fmt.Fprintf(&b, "  idle        %d connections, %.0f bytes of server RSS each\n", r.Conns, r.RSSPerConn)
	}
	fmt.Fprintf(&b, "  generator   cpu %.3fs\n", r.BenchCPU.Seconds())
	switch c.Scenario {
	case ScenarioPriorities:
		fmt.Fprintf(&b, "  priorities  HIGH %d, NORMAL %d, LOW %d; %d order violations\n", r.Priorities[0],
			r.Priorities[1], r.Priorities[2], r.OrderViolations)
	case ScenarioUnique:
		fmt.Fprintf(&b, "  unique      %d distinct keys ran %d times\n", c.Jobs, r.Executions)
	}
	if r.Foreign > 0 {
		fmt.Fprintf(&b, "  warning     %d jobs of another run were drained\n", r.Foreign)
	}
	if r.Err != nil {
		fmt.Fprintf(&b, "  FAILED      %s\n", strings.ReplaceAll(r.Err.Error(), "\n", "\n              "))
	} else if c.Scenario != ScenarioIdle {
		fmt.Fprintf(&b, "  verified    every job ran once with an intact payload\n")
	}
	return b.String()
}
