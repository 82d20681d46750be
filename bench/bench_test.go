package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/server"
)

// mustStartGear starts a real Gear server in-process on 127.0.0.1:0 and returns its address.
func mustStartGear(tb testing.TB) string {
	tb.Helper()
	opts := server.DefaultOptions()
	opts.Listen = nil
	s, err := server.New(opts)
	if err != nil {
		tb.Fatalf("server.New: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	if err := s.Serve(ln); err != nil {
		ln.Close()
		tb.Fatalf("Serve: %v", err)
	}
	return ln.Addr().String()
}

func mustRun(tb testing.TB, cfg Config) *Result {
	tb.Helper()
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		if res != nil {
			tb.Fatalf("%s: %v\n%s", cfg.Scenario, err, res.Summary())
		}
		tb.Fatalf("%s: %v", cfg.Scenario, err)
	}
	return res
}

// TestRun_GearServer runs every scenario against a real Gear server: all must verify.
func TestRun_GearServer(t *testing.T) {
	addr := mustStartGear(t)
	pid := 0
	if runtime.GOOS == "linux" {
		pid = os.Getpid() // the server runs in the test process: exercises /proc sampling
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"background", Config{Scenario: ScenarioBackground, Clients: 3, Workers: 2, Jobs: 1000}},
		{"background_pipelined", Config{Scenario: ScenarioBackground, Clients: 3, Workers: 2, Jobs: 2000, Pipeline: 16}},
		{"foreground", Config{Scenario: ScenarioForeground, Clients: 3, Workers: 2, Jobs: 1000}},
		{"foreground_pipelined", Config{Scenario: ScenarioForeground, Clients: 2, Workers: 3, Jobs: 1000, Pipeline: 8}},
		{"foreground_large_payload", Config{Scenario: ScenarioForeground, Clients: 2, Workers: 2, Jobs: 50, PayloadSize: 64 << 10}},
		{"foreground_plain_grab", Config{Scenario: ScenarioForeground, Clients: 2, Workers: 2, Jobs: 200, PlainGrab: true}},
		{"foreground_net_conn", Config{Scenario: ScenarioForeground, Clients: 3, Workers: 2, Jobs: 1000, NetConn: true}},
		{"drain_net_conn", Config{Scenario: ScenarioDrain, Clients: 2, Workers: 3, Jobs: 2000, NetConn: true}},
		{"drain", Config{Scenario: ScenarioDrain, Clients: 2, Workers: 3, Jobs: 2000}},
		{"priorities", Config{Scenario: ScenarioPriorities, Clients: 3, Workers: 3, Jobs: 1500}},
		{"unique", Config{Scenario: ScenarioUnique, Clients: 3, Workers: 2, Jobs: 1000}},
		{"flow", Config{Scenario: ScenarioFlow, Clients: 3, Workers: 2, Jobs: 2000}},
		{"flow_pipelined", Config{Scenario: ScenarioFlow, Clients: 2, Workers: 3, Jobs: 2000, Pipeline: 16}},
		{"idle", Config{Scenario: ScenarioIdle, Clients: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Server = addr
			cfg.ServerPID = pid
			res := mustRun(t, cfg)
			if res.Jobs == 0 || res.JobsPerSec <= 0 || res.Latency.Count == 0 || res.Latency.P99 < res.Latency.P50 {
				t.Errorf("implausible result:\n%s", res.Summary())
			}
			if pid != 0 && (res.Server == nil || res.Server.PeakRSSKiB <= 0 || res.Server.HWMKiB < res.Server.PeakRSSKiB/2) {
				t.Errorf("server stats not sampled: %+v", res.Server)
			}
			// Clients waiting for replies block: the process (server and generator here) switches.
			if pid != 0 && cfg.Scenario == ScenarioForeground && res.Server.Switches <= 0 {
				t.Errorf("no context switches counted: %+v", res.Server)
			}
			if want := " io=" + cfg.ioMode() + " "; !strings.Contains(res.Line(), want) {
				t.Errorf("result line lacks %q: %s", want, res.Line())
			}
			switch cfg.Scenario {
			case ScenarioPriorities:
				if p := res.Priorities; p[0] != 500 || p[1] != 500 || p[2] != 500 {
					t.Errorf("priorities run HIGH/NORMAL/LOW = %v, want 500 each", p)
				}
			case ScenarioUnique:
				if res.Executions != int64(cfg.Jobs) {
					t.Errorf("%d distinct keys ran %d times", cfg.Jobs, res.Executions)
				}
			case ScenarioIdle:
				if res.Conns != cfg.Clients {
					t.Errorf("held %d connections, want %d", res.Conns, cfg.Clients)
				}
			default:
				if res.Jobs != int64(cfg.Jobs) || res.Executions != int64(cfg.Jobs) {
					t.Errorf("timed %d jobs and ran %d, want %d", res.Jobs, res.Executions, cfg.Jobs)
				}
			}
			line := res.Line()
			for _, want := range []string{"RESULT scenario=" + cfg.Scenario + " ", " server=" + addr + " ", " errors=0"} {
				if !strings.Contains(line, want) {
					t.Errorf("result line lacks %q: %s", want, line)
				}
			}
			var m map[string]any
			if err := json.Unmarshal(res.JSON(), &m); err != nil || m["error"] != nil || m["jobs_per_sec"] == nil {
				t.Errorf("JSON %s: %v", res.JSON(), err)
			}
		})
	}
}

// TestRun_CatchesFaultyServers proves the verification: a server that loses, repeats or corrupts a
// single job, ignores priorities, or does not coalesce unique keys makes Run fail with that error,
// and only that one.
func TestRun_CatchesFaultyServers(t *testing.T) {
	all := []error{ErrLost, ErrDuplicated, ErrCorrupted, ErrOrder, ErrCoalesce}
	tests := []struct {
		name     string
		scenario string
		fault    fault
		want     []error
	}{
		{"background_sane", ScenarioBackground, faultNone, nil},
		{"foreground_sane", ScenarioForeground, faultNone, nil},
		{"drain_sane", ScenarioDrain, faultNone, nil},
		{"background_drop", ScenarioBackground, faultDrop, []error{ErrLost}},
		{"background_dup", ScenarioBackground, faultDup, []error{ErrDuplicated}},
		{"background_flip", ScenarioBackground, faultFlip, []error{ErrCorrupted}},
		{"foreground_drop", ScenarioForeground, faultDrop, []error{ErrLost}},
		{"foreground_dup", ScenarioForeground, faultDup, []error{ErrDuplicated}},
		{"foreground_flip", ScenarioForeground, faultFlip, []error{ErrCorrupted}},
		{"drain_drop", ScenarioDrain, faultDrop, []error{ErrLost}},
		{"drain_dup", ScenarioDrain, faultDup, []error{ErrDuplicated}},
		{"drain_flip", ScenarioDrain, faultFlip, []error{ErrCorrupted}},
		{"flow_sane", ScenarioFlow, faultNone, nil},
		{"flow_drop", ScenarioFlow, faultDrop, []error{ErrLost}},
		{"flow_dup", ScenarioFlow, faultDup, []error{ErrDuplicated}},
		{"flow_flip", ScenarioFlow, faultFlip, []error{ErrCorrupted}},
		{"priorities_ignored", ScenarioPriorities, faultNone, []error{ErrOrder}},
		{"unique_not_coalesced", ScenarioUnique, faultNone, []error{ErrDuplicated, ErrCoalesce}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startFake(t, tt.fault)
			cfg := Config{Server: addr, Scenario: tt.scenario, Clients: 2, Workers: 2, Jobs: 60,
				Timeout: 300 * time.Millisecond}
			res, err := Run(context.Background(), cfg, nil)
			if res == nil {
				t.Fatalf("Run: no result, error %v", err)
			}
			if !errors.Is(err, res.Err) && err != res.Err {
				t.Errorf("Run returned %v, Result.Err %v", err, res.Err)
			}
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("sane fake server: %v\n%s", err, res.Summary())
				}
				return
			}
			if err == nil {
				t.Fatalf("Run passed, want %v\n%s", tt.want, res.Summary())
			}
			for _, e := range all {
				wanted := false
				for _, w := range tt.want {
					wanted = wanted || w == e
				}
				if got := errors.Is(err, e); got != wanted {
					t.Errorf("errors.Is(err, %v) = %t, want %t; err:\n%v", e, got, wanted, err)
				}
			}
			if res.ErrorCount() == 0 || !strings.Contains(res.Line(), "errors=") || strings.Contains(res.Line(), " errors=0") {
				t.Errorf("result line does not count the errors: %s", res.Line())
			}
			t.Logf("caught: %v", err)
		})
	}
}

func TestRun_Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := Run(context.Background(), Config{Server: addr, Jobs: 10, Timeout: time.Second}, nil)
	if err == nil || res != nil {
		t.Fatalf("Run against a closed port: result %v, error %v", res, err)
	}
}

func TestRun_BadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"scenario":   {Scenario: "nope"},
		"payload":    {PayloadSize: 8},
		"server":     {Server: "localhost"},
		"negative":   {Clients: -1},
		"server_pid": {ServerPID: 1 << 30, Server: "127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			if res, err := Run(context.Background(), cfg, nil); err == nil || res != nil {
				t.Fatalf("Run(%+v) = %v, %v; want an error", cfg, res, err)
			}
		})
	}
}

// TestRun_Cancel stops a run through its context: the run ends promptly with the context's error.
func TestRun_Cancel(t *testing.T) {
	addr := startNullServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first progress report comes a second into the submit phase: cancel then.
	progress := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
	res, err := Run(ctx, Config{Server: addr, Scenario: ScenarioBackground, Clients: 2, Jobs: 3_000_000}, progress)
	if !errors.Is(err, context.Canceled) || res == nil {
		t.Fatalf("Run = %v, %v; want a result and context.Canceled", res, err)
	}
	if res.Jobs == 0 || res.Jobs == 3_000_000 {
		t.Errorf("cancelled run timed %d jobs", res.Jobs)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRun_Progress(t *testing.T) {
	addr := mustStartGear(t)
	var b strings.Builder
	if _, err := Run(context.Background(), Config{Server: addr, Scenario: ScenarioDrain, Clients: 1, Workers: 1, Jobs: 100}, &b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "drain prefill: 100/100") || !strings.Contains(b.String(), "drain drain: 100/100") {
		t.Errorf("progress output:\n%s", b.String())
	}
}

// BenchmarkGenerator measures the generator against a null server in another process: its own CPU per
// job, to compare with a real server's (the RESULT line's cpu_sec / jobs). Run it with
// -benchtime=200000x.
func BenchmarkGenerator(b *testing.B) {
	for _, tt := range []struct {
		name     string
		scenario string
		pipeline int
	}{
		{"background", ScenarioBackground, 1},
		{"background_pipeline32", ScenarioBackground, 32},
		{"foreground", ScenarioForeground, 1},
	} {
		b.Run(tt.name, func(b *testing.B) {
			addr, pid := startNullServerProcess(b)
			if runtime.GOOS != "linux" {
				pid = 0
			}
			b.ResetTimer()
			res, err := Run(context.Background(), Config{Server: addr, Scenario: tt.scenario, Clients: 8, Workers: 1,
				Jobs: b.N, Pipeline: tt.pipeline, ServerPID: pid}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.JobsPerSec, "jobs/s")
			b.ReportMetric(float64(res.BenchCPU.Nanoseconds())/float64(res.Jobs), "gen-cpu-ns/job")
			if res.Server != nil {
				b.ReportMetric(float64(res.Server.CPU.Nanoseconds())/float64(res.Jobs), "null-server-cpu-ns/job")
			}
		})
	}
}

// TestNullServerProcess is not a test: it is the null server run as a separate process by
// startNullServerProcess, so that the generator's CPU time (getrusage of its own process) excludes
// the server's.
func TestNullServerProcess(t *testing.T) {
	if os.Getenv("GEAR_BENCH_NULL_SERVER") != "1" {
		t.Skip("helper process for BenchmarkGenerator")
	}
	fmt.Printf("ADDR %s\n", startNullServer(t))
	io.Copy(io.Discard, os.Stdin) // serve until the parent goes away
}

// startNullServerProcess starts the null server in a child process and returns its address and pid.
func startNullServerProcess(tb testing.TB) (string, int) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNullServerProcess$")
	cmd.Env = append(os.Environ(), "GEAR_BENCH_NULL_SERVER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		tb.Fatalf("null server process: %q, %v", line, err)
	}
	return addr, cmd.Process.Pid
}
