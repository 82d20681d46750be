package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/gearhq/gear/bench"
	"github.com/gearhq/gear/protocol"
)

// benchStartBlackHole starts a server that acknowledges every submit and never hands out a job: every
// job is lost.
func benchStartBlackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				dec := protocol.NewDecoder(nc, 0)
				for {
					f, err := dec.Next()
					if err != nil {
						return
					}
					var reply []byte
					switch f.Packet.Type {
					case protocol.EchoReq:
						reply = protocol.AppendResponse(nil, protocol.EchoRes, f.Packet.Arg(0))
					case protocol.SubmitJobBg:
						reply = protocol.AppendResponse(nil, protocol.JobCreated, []byte("H:hole:1"))
					case protocol.GrabJob, protocol.GrabJobUniq:
						reply = protocol.AppendResponse(nil, protocol.NoJob)
					}
					nc.Write(reply)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func benchRun(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = benchMain(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestBench_AllScenariosAgainstGear(t *testing.T) {
	addr := mustGear(t)
	out, errOut, code := benchRun("--server", addr, "--scenario", "all", "--clients", "2", "--workers", "2",
		"--jobs", "300", "--pipeline", "4")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(bench.Scenarios) {
		t.Fatalf("%d result lines, want %d:\n%s", len(lines), len(bench.Scenarios), out)
	}
	for i, l := range lines {
		want := "RESULT scenario=" + bench.Scenarios[i] + " server=" + addr + " clients=2 workers=2 jobs=300 payload=64 pipeline=4 io=raw jobs_per_sec="
		if !strings.HasPrefix(l, want) || !strings.HasSuffix(l, " errors=0") {
			t.Errorf("line %d: %s\nwant prefix %s", i, l, want)
		}
	}
	if !strings.Contains(errOut, "verified    every job ran once") {
		t.Errorf("no human summary on stderr:\n%s", errOut)
	}
}

func TestBench_JSON(t *testing.T) {
	addr := mustGear(t)
	out, errOut, code := benchRun("--server", addr, "--scenario", "foreground,drain", "--jobs", "200", "--json", "--io", "net")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines:\n%s", out)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if m["errors"] != 0.0 || m["error"] != nil || m["jobs"] != 200.0 || m["io"] != "net" {
			t.Errorf("JSON result %s", l)
		}
	}
}

// TestBench_LostJobsFail: a server that loses jobs makes gear bench exit 1 with a message naming them.
func TestBench_LostJobsFail(t *testing.T) {
	addr := benchStartBlackHole(t)
	out, errOut, code := benchRun("--server", addr, "--scenario", "background", "--jobs", "50",
		"--clients", "1", "--workers", "1", "--timeout", "300ms")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errOut)
	}
	if !strings.Contains(out, " lost=50 ") || !strings.Contains(out, " errors=50") {
		t.Errorf("result line: %s", out)
	}
	if !strings.Contains(errOut, "FAILED 1 of 1 scenarios") || !strings.Contains(errOut, "lost jobs: 50 acknowledged but never run") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

func TestBench_Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, errOut, code := benchRun("--server", addr, "--jobs", "10")
	if code != 1 || !strings.Contains(errOut, "gear bench: foreground:") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestBench_Usage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"help", []string{"--help"}, 0, "usage: gear bench"},
		{"unknown_flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"unknown_scenario", []string{"--scenario", "nope"}, 2, `unknown scenario "nope"`},
		{"tiny_payload", []string{"--payload", "4"}, 2, "payload must be at least 16 bytes"},
		{"argument", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"empty_scenario", []string{"--scenario", ","}, 2, "no scenario given"},
		{"bad_io", []string{"--io", "epoll"}, 2, `want raw or net, got "epoll"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := benchRun(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errOut, tt.code, tt.msg)
			}
		})
	}
}

// TestBench_Command: "gear bench" is wired into the command switch.
func TestBench_Command(t *testing.T) {
	if code := run([]string{"gear", "bench", "--help"}); code != 0 {
		t.Fatalf("gear bench --help: exit %d", code)
	}
}
