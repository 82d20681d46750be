// Package bench is Gear's load generator: it speaks the raw Gearman binary protocol to any job server
// (Gear, gearmand, the Perl server), measures throughput and latency, samples the server's CPU time
// and memory, and verifies every job.
//
// # Verification
//
// Every payload carries the run's nonce, a job id and a CRC-32C (see payload.go). The tracker keeps one
// state word per job id and reports jobs that are lost (acknowledged by JOB_CREATED but never run, or
// never completed for a foreground client), duplicated (run or delivered more than once) and corrupted
// (payload that fails its checksum, or an echo that does not match). Any of them makes Result.Err
// non-nil. The bench's own workers never disconnect holding a job and never set CAN_DO_TIMEOUT, so a
// server has no legitimate reason to retry a job: every second execution is a duplicate.
//
// # Cost of the generator
//
// Each client and worker is one goroutine owning one TCP connection, one decoder and one output buffer,
// reused for the whole run: the steady state allocates nothing per job. Output is flushed only when the
// decoder has nothing buffered, so a pipelined client writes a burst of submits in one system call.
// Result.BenchCPU reports the generator's own CPU time next to the server's, so a run where the
// generator, not the server, is the bottleneck shows it.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Scenario names.
const (
	// ScenarioBackground times SUBMIT_JOB_BG → JOB_CREATED with no worker running, then drains and
	// verifies the queue (the drain rate is reported, untimed in the headline figure).
	ScenarioBackground = "background"
	// ScenarioForeground times SUBMIT_JOB → WORK_COMPLETE with workers echoing the payload.
	ScenarioForeground = "foreground"
	// ScenarioDrain pre-fills the queue with no worker, then times only the workers draining it.
	ScenarioDrain = "drain"
	// ScenarioPriorities pre-fills a mix of HIGH, NORMAL and LOW background jobs, then checks that each
	// worker received all its HIGH jobs before any NORMAL one and all NORMAL before any LOW one.
	ScenarioPriorities = "priorities"
	// ScenarioUnique submits background jobs with unique keys, many of them several times, then
	// checks that N distinct keys ran exactly N times.
	ScenarioUnique = "unique"
	// ScenarioFlow runs the workers while the clients submit SUBMIT_JOB_BG: a queue in steady state,
	// timed from the first submit until every job ran (jobs run per second, end to end), with the
	// submit → JOB_CREATED latency. Job systems measured by jobs worked while inserting (River's
	// benchmark, for one) compare with this figure.
	ScenarioFlow = "flow"
	// ScenarioIdle opens Clients connections that each do one ECHO round trip and then sit idle, and
	// reports the server's RSS growth per connection.
	ScenarioIdle = "idle"
)

// Scenarios lists every scenario in the order "all" runs them.
var Scenarios = []string{ScenarioBackground, ScenarioForeground, ScenarioDrain, ScenarioPriorities,
	ScenarioUnique, ScenarioFlow, ScenarioIdle}

// MinPayloadSize is the smallest payload: the nonce, job id and checksum header.
const MinPayloadSize = headerSize

// Config describes one run. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// Server is the job server, host:port (tls://host:port over TLS).
	Server string
	// TLS, when set, connects over TLS with this configuration. TLS connections are read and
	// written through crypto/tls rather than with raw system calls, so they cost the generator
	// more CPU per job.
	TLS *tls.Config
	// Scenario is one of the Scenario… names.
	Scenario string
	// Clients is the number of submitting connections (for idle: the number of idle connections).
	Clients int
	// Workers is the number of worker connections.
	Workers int
	// Jobs is the number of jobs (for unique: the number of distinct keys; submits are about 1.7×).
	Jobs int
	// PayloadSize is the size of every job's data in bytes, at least MinPayloadSize.
	PayloadSize int
	// Pipeline is how many submits each client keeps in flight in the timed phase.
	Pipeline int
	// Function is the function name; empty means "gear_bench_<nonce>", fresh for every run, so that
	// jobs left over by an aborted run never mix with this one's.
	Function string
	// ServerPID, when positive (Linux only), is the server's process: its CPU time and memory are
	// sampled from /proc.
	ServerPID int
	// Timeout is how long a phase may go without any progress before the jobs still outstanding are
	// declared lost (default 10s).
	Timeout time.Duration
	// PlainGrab makes workers send GRAB_JOB instead of GRAB_JOB_UNIQ (the unique scenario always uses
	// GRAB_JOB_UNIQ, it checks the unique keys).
	PlainGrab bool
	// NetConn makes every client and worker a goroutine reading and writing its net.Conn through
	// the Go runtime's poller, as most Go programs' Gearman clients do, instead of the raw system
	// calls the generator uses by default to keep its own share of the machine small. A server
	// that costs a net.Conn client more wake-ups shows it here.
	NetConn bool
}

func (c Config) ioMode() string {
	if c.NetConn {
		return "net"
	}
	return "raw"
}

// DefaultConfig returns the defaults: 127.0.0.1:4730, foreground, 8 clients, 4 workers, 100,000 jobs
// of 64 bytes, one submit in flight per client.
func DefaultConfig() Config {
	return Config{
		Server:      "127.0.0.1:4730",
		Scenario:    ScenarioForeground,
		Clients:     8,
		Workers:     4,
		Jobs:        100_000,
		PayloadSize: 64,
		Pipeline:    1,
		Timeout:     10 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig and validates the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Server == "" {
		c.Server = d.Server
	}
	if c.Scenario == "" {
		c.Scenario = d.Scenario
	}
	if c.Clients == 0 {
		c.Clients = d.Clients
	}
	if c.Workers == 0 {
		c.Workers = d.Workers
	}
	if c.Jobs == 0 {
		c.Jobs = d.Jobs
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = d.PayloadSize
	}
	if c.Pipeline == 0 {
		c.Pipeline = d.Pipeline
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	known := false
	for _, s := range Scenarios {
		known = known || s == c.Scenario
	}
	switch {
	case !known:
		return c, fmt.Errorf("unknown scenario %q (want one of %s)", c.Scenario, strings.Join(Scenarios, ", "))
	case c.Clients < 0 || c.Workers < 0 || c.Jobs < 0 || c.Pipeline < 0:
		return c, errors.New("clients, workers, jobs and pipeline must be positive")
	case c.PayloadSize < MinPayloadSize:
		return c, fmt.Errorf("payload must be at least %d bytes (job id and checksum), got %d", MinPayloadSize, c.PayloadSize)
	case c.Timeout < 0:
		return c, errors.New("timeout must be positive")
	case len(c.Function) > 512:
		return c, errors.New("function name longer than 512 bytes")
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return c, fmt.Errorf("server %q: want host:port", c.Server)
	}
	return c, nil
}

// Run executes one scenario against cfg.Server and returns its result. Progress goes to progress when
// it is not nil: a line rewritten in place when progress is a terminal, a line a second otherwise.
//
// A failed verification (lost, duplicated or corrupted jobs, priority order violated) or a broken
// connection sets Result.Err, and Run returns the same error, so the result can still be printed.
// Run returns a nil Result only when the run could not start (bad config, server unreachable).
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return nil, err
	}
	nonce := binary.BigEndian.Uint32(nb[:])
	if cfg.Function == "" {
		cfg.Function = fmt.Sprintf("gear_bench_%08x", nonce)
	}
	r := newRun(cfg, nonce, progress)
	if cfg.ServerPID > 0 {
		if r.proc, err = startSampler(cfg.ServerPID); err != nil {
			return nil, err
		}
		defer r.proc.stop()
	}
	res := &Result{Config: cfg}
	r.res = res
	defer r.closeAll()
	switch cfg.Scenario {
	case ScenarioBackground:
		err = r.background(ctx)
	case ScenarioForeground:
		err = r.foreground(ctx)
	case ScenarioDrain, ScenarioPriorities, ScenarioUnique:
		err = r.prefillAndDrain(ctx)
	case ScenarioFlow:
		err = r.flow(ctx)
	case ScenarioIdle:
		err = r.idle(ctx)
	}
	if err != nil && res.Elapsed == 0 && res.Jobs == 0 && !r.started.Load() {
		return nil, err // nothing ran: the server is unreachable or refused the handshake
	}
	r.finish(err)
	return res, res.Err
}

// Validate reports whether cfg (with defaults filled in) describes a run Run would start.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}
