package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// --access-rules with the real binary: the rules hold on the Gearman port, --check-config
// validates the file, SIGHUP reloads it, and a bad file on SIGHUP leaves the old rules in force.
func TestServer_AccessRulesReloadedOnSIGHUP(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "access.toml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(rules, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[[rule]]\nwho = [\"net:127.0.0.0/8\"]\nadmin = \"read\"\n")
	if _, errOut, code := checkConfig(t, "--access-rules", rules); code != 0 {
		t.Fatalf("--check-config with good rules: %d %s", code, errOut)
	}
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--access-rules", rules)
	addr := listenAddr(t, p)
	if got := adminLine(t, addr, "status"); got != ".\n" {
		t.Fatalf("status with read access: %q", got)
	}
	if got := adminLine(t, addr, "create function f"); !strings.HasPrefix(got, "ERR PERMISSION_DENIED") {
		t.Fatalf("create function with read access: %q", got)
	}

	write("[[rule]]\nwho = [\"net:127.0.0.0/8\"]\nadmin = \"write\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reloaded rules", 10*time.Second, func() bool {
		return adminLine(t, addr, "create function f") == "OK\r\n"
	})

	write("[[rule]]\nwho = [\"nobody:x\"]\n")
	if _, errOut, code := checkConfig(t, "--access-rules", rules); code != 1 || !strings.Contains(errOut, "rule 1") {
		t.Fatalf("--check-config with a bad rules file: %d %q", code, errOut)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refused reload in the log", 10*time.Second, func() bool {
		return strings.Contains(p.output(), "access rules not reloaded")
	})
	if got := adminLine(t, addr, "create function g"); got != "OK\r\n" {
		t.Fatalf("after a bad reload the old rules should stay: %q", got)
	}
	if !strings.Contains(p.output(), "access denied") {
		t.Errorf("no log line for the denied command:\n%s", p.output())
	}
}

// The limits given as flags are in force and visible through `gear admin limits`, on the Gearman
// port and over the HTTP API.
func TestServer_LimitsFlagsAndAdminView(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--http", "127.0.0.1:0", "--max-jobs", "2",
		"--max-queued-bytes", "1000", "--max-queue", "capped=1", "--max-connections", "50", "--max-connections-per-ip", "40")
	addr := listenAddr(t, p)
	web := httpListenAddr(t, p)
	if _, errOut, code := gearCmd(t, addr, "", "client", "--background", "capped", "a"); code != 0 {
		t.Fatalf("first submit: %d %s", code, errOut)
	}
	if _, errOut, code := gearCmd(t, addr, "", "client", "--background", "capped", "b"); code == 0 || !strings.Contains(errOut, "QUEUE_ERROR") {
		t.Fatalf("a submit past --max-queue capped=1: %d %q", code, errOut)
	}
	if _, errOut, code := gearCmd(t, addr, "", "client", "--background", "other", "c"); code != 0 {
		t.Fatalf("second job: %d %s", code, errOut)
	}
	if _, errOut, code := gearCmd(t, addr, "", "client", "--background", "other", "d"); code == 0 || !strings.Contains(errOut, "job limit") {
		t.Fatalf("a submit past --max-jobs 2: %d %q", code, errOut)
	}
	want := []string{"connections ", "50", "connections per address  -", "40", "jobs ", "2 ", "queued payload bytes     2", "1000"}
	for _, via := range [][]string{{"--server", addr}, {"--http", "http://" + web}} {
		out, errOut, code := admRun(t, nil, append(via, "limits")...)
		if code != 0 {
			t.Fatalf("gear admin %v limits: %d %s", via, code, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("gear admin %v limits lacks %q:\n%s", via, w, out)
			}
		}
	}
}

// gear admin pause, resume, limit and functions, on the Gearman port and over HTTP.
func TestAdmin_PauseResumeLimit(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--http", "127.0.0.1:0")
	addr := listenAddr(t, p)
	web := "http://" + httpListenAddr(t, p)
	for _, via := range [][]string{{"--server", addr}, {"--http", web}} {
		run := func(args ...string) string { t.Helper(); return admOK(t, via, args...) }
		if out := run("pause", "images"); !strings.Contains(out, "paused function images") {
			t.Errorf("pause: %q", out)
		}
		if out := run("limit", "images", "3", "2.5"); !strings.Contains(out, "3 running at once, 2.5 starts a second") {
			t.Errorf("limit: %q", out)
		}
		out := run("functions")
		if !strings.Contains(out, "images") || !strings.Contains(out, "paused") || !strings.Contains(out, "2.5") {
			t.Errorf("functions via %v:\n%s", via, out)
		}
		run("resume", "images")
		run("limit", "images", "0", "0")
		if out := run("functions"); !strings.Contains(out, "active") {
			t.Errorf("functions after resume via %v:\n%s", via, out)
		}
	}
	if _, errOut, code := admRun(t, nil, "--server", addr, "limit", "images", "x", "1"); code == 0 || !strings.Contains(errOut, "whole numbers") {
		t.Errorf("a bad limit: %d %q", code, errOut)
	}
}

// gear admin retry, dead, dead-retry and dead-delete, on the Gearman port and over HTTP.
func TestAdmin_RetryAndDeadSet(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--http", "127.0.0.1:0")
	addr := listenAddr(t, p)
	web := "http://" + httpListenAddr(t, p)
	// failOnce takes one job of fn and fails it, as a worker would.
	failOnce := func(fn string) {
		t.Helper()
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		nc.Write(protocol.AppendRequest(protocol.AppendRequest(nil, protocol.CanDo, []byte(fn)), protocol.GrabJob))
		f, err := protocol.NewDecoder(nc, 0).Next()
		if err != nil || f.Packet.Type != protocol.JobAssign {
			t.Fatalf("grab: %v %+v", err, f)
		}
		nc.Write(protocol.AppendRequest(protocol.AppendRequest(nil, protocol.WorkFail, f.Packet.Args[0]), protocol.EchoReq, []byte("x")))
		protocol.NewDecoder(nc, 0).Next()
	}
	for i, via := range [][]string{{"--server", addr}, {"--http", web}} {
		fn := fmt.Sprintf("doomed%d", i)
		run := func(args ...string) string { t.Helper(); return admOK(t, via, args...) }
		if out := run("retry", fn, "1", "0", "0"); !strings.Contains(out, "1 attempts in all") {
			t.Errorf("retry: %q", out)
		}
		if _, errOut, code := gearCmd(t, addr, "", "client", "--background", fn, "payload"); code != 0 {
			t.Fatalf("submit: %s", errOut)
		}
		failOnce(fn)
		out := run("dead", fn)
		if !strings.Contains(out, fn) || !strings.Contains(out, "WORK_FAIL") {
			t.Fatalf("dead via %v:\n%s", via, out)
		}
		if out := run("dead-retry", "function", fn); !strings.Contains(out, "submitted again: 1 dead jobs") {
			t.Errorf("dead-retry: %q", out)
		}
		failOnce(fn)
		if out := run("dead-delete", "function", fn); !strings.Contains(out, "deleted: 1 dead jobs") {
			t.Errorf("dead-delete: %q", out)
		}
	}
}

// --function-limit and --retry-policy set functions' run limits and retry policies from the start.
func TestServer_FunctionSettingsFlags(t *testing.T) {
	if _, errOut, code := checkConfig(t, "--function-limit", "images=-1,2"); code != 2 || !strings.Contains(errOut, "0 or more") {
		t.Errorf("a negative limit: %d %q", code, errOut)
	}
	if _, errOut, code := checkConfig(t, "--retry-policy", "flaky=3,1,10,2"); code != 2 || !strings.Contains(errOut, "jitter must be from 0 to 1") {
		t.Errorf("a jitter of 2: %d %q", code, errOut)
	}
	out, errOut, code := checkConfig(t, "--function-limit", "images=3,2.5", "--retry-policy", "flaky=3,1,10")
	if code != 0 || !strings.Contains(out, "function-limit = images=3,2.5") || !strings.Contains(out, "retry-policy = flaky=3,1,10") {
		t.Fatalf("--check-config: %d %s %s", code, out, errOut)
	}
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--function-limit", "images=3,2.5", "--retry-policy", "flaky=3,1,10")
	addr := listenAddr(t, p)
	got := adminList(t, addr, "functions")
	for _, want := range []string{"images\t0\t0\t0\tactive\t3\t2.5\n", "flaky\t0\t0\t0\tactive\t0\t0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("functions lacks %q:\n%s", want, got)
		}
	}
}

// adminList sends one admin line and returns the list it answers, up to and including ".".
func adminList(t *testing.T, addr, line string) string {
	t.Helper()
	return adminReply(t, addr, line, true)
}

// admOK runs `gear admin` through via (--server ADDR or --http URL) and fails the test unless it
// exits 0; it returns the output.
func admOK(t *testing.T, via []string, args ...string) string {
	t.Helper()
	out, errOut, code := admRun(t, nil, append(via, args...)...)
	if code != 0 {
		t.Fatalf("gear admin %v %v: %d %s", via, args, code, errOut)
	}
	return out
}
