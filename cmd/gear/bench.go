package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gearhq/gear/bench"
)

const benchUsage = `usage: gear bench [OPTIONS]

Load-tests a Gearman job server (Gear, gearmand, the Perl server...) over the raw binary protocol and
verifies every job: each payload carries a job id and a checksum, and any job lost, run twice or
corrupted fails the run.

Scenarios (--scenario, comma-separated, or all):
  background   clients submit SUBMIT_JOB_BG (timed: submit -> JOB_CREATED), then workers drain
  foreground   clients submit SUBMIT_JOB, workers echo the payload (timed: submit -> WORK_COMPLETE)
  drain        pre-fill --jobs background jobs, then time only the workers draining them
  priorities   pre-fill HIGH/NORMAL/LOW jobs; each worker must get all HIGH, then NORMAL, then LOW
  unique       submit unique keys, most of them repeatedly: N distinct keys must run exactly N times
  flow         workers run while clients submit SUBMIT_JOB_BG (timed: first submit -> every job ran)
  idle         open --clients connections, one ECHO each; with --server-pid, server RSS per connection

Prints a summary per scenario on stderr (progress too, on a terminal) and one machine-readable line
per scenario on stdout: "RESULT key=value ..." or, with --json, a JSON object. With --server-pid
(Linux) the server's CPU time over the timed phase and its peak RSS are measured.

Exit status: 0 all verified, 1 a job lost, duplicated or corrupted, or a connection failed, 2 bad usage.

Options:
`

func runBench(args []string) int { return benchMain(args, os.Stdout, os.Stderr) }

func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gear bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	cfg := bench.DefaultConfig()
	var (
		server    addrFlag
		scenarios string
		jsonOut   bool
		tlsFlags  tlsClientFlags
	)
	fs.Var(&server, "server", "job server `host:port` (port 4730 when omitted; default "+cfg.Server+")")
	fs.StringVar(&scenarios, "scenario", cfg.Scenario, "scenarios to run, comma-separated, or all: "+strings.Join(bench.Scenarios, ", "))
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "submitting connections (idle: connections to hold open)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "worker connections")
	fs.IntVar(&cfg.Jobs, "jobs", cfg.Jobs, "jobs per scenario (unique: distinct keys)")
	fs.IntVar(&cfg.PayloadSize, "payload", cfg.PayloadSize, fmt.Sprintf("payload size in `bytes` (at least %d)", bench.MinPayloadSize))
	fs.IntVar(&cfg.Pipeline, "pipeline", cfg.Pipeline, "submits in flight per client")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's `PID`: measure its CPU time and memory from /proc (Linux)")
	fs.StringVar(&cfg.Function, "function", "", "function name (default: gear_bench_<random>, fresh per run)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "declare the outstanding jobs lost after this long without progress")
	fs.BoolVar(&cfg.PlainGrab, "plain-grab", false, "workers send GRAB_JOB instead of GRAB_JOB_UNIQ")
	fs.Func("io", "how clients and workers do I/O: raw (system calls on the socket, the lightest generator) or net (a goroutine per connection on net.Conn, as most Go clients are)", func(v string) error {
		switch v {
		case "raw":
			cfg.NetConn = false
		case "net":
			cfg.NetConn = true
		default:
			return fmt.Errorf("want raw or net, got %q", v)
		}
		return nil
	})
	fs.BoolVar(&jsonOut, "json", false, "print each result as a JSON object instead of a RESULT line")
	tlsFlags.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "gear bench: "+format+"\n", a...)
		return code
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (see gear bench --help)", fs.Arg(0))
	}
	if server.given() {
		// GEARMAN_SERVERS is not read: a benchmark goes where it is told, or to the local default.
		servers, err := server.servers("")
		if err != nil {
			return fail(2, "%v", err)
		}
		if len(servers) > 1 {
			return fail(2, "one --server at a time, got %s", strings.Join(servers, ", "))
		}
		cfg.Server = servers[0]
	}
	var err error
	if cfg.TLS, err = tlsFlags.config(); err != nil {
		return fail(2, "%v", err)
	}
	var list []string
	for _, s := range strings.Split(scenarios, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "all":
			list = append(list, bench.Scenarios...)
		default:
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return fail(2, "no scenario given")
	}
	for _, s := range list {
		c := cfg
		c.Scenario = s
		if err := c.Validate(); err != nil {
			return fail(2, "%v", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var progress io.Writer
	if f, ok := stderr.(*os.File); ok && benchIsTerminal(f) {
		progress = f
	}
	var failed []string
	for _, s := range list {
		c := cfg
		c.Scenario = s
		res, err := bench.Run(ctx, c, progress)
		if res == nil {
			return fail(1, "%s: %v", s, err)
		}
		fmt.Fprint(stderr, res.Summary())
		if jsonOut {
			fmt.Fprintf(stdout, "%s\n", res.JSON())
		} else {
			fmt.Fprintln(stdout, res.Line())
		}
		if res.Err != nil {
			first, _, _ := strings.Cut(res.Err.Error(), "\n")
			failed = append(failed, s+": "+first)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(failed) > 0 {
		return fail(1, "FAILED %d of %d scenarios:\n  %s", len(failed), len(list), strings.Join(failed, "\n  "))
	}
	return 0
}

func benchIsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
