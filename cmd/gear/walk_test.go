package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// gearCmd runs the gear binary to completion with GEARMAN_SERVERS pointing at addr.
func gearCmd(t *testing.T, addr string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gearBin, args...)
	// The race runtime otherwise sleeps a second before every exit.
	cmd.Env = append(os.Environ(), "GEARMAN_SERVERS="+addr, "GORACE=atexit_sleep_ms=0")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("gear %v did not finish", args)
	}
	return out.String(), errb.String(), code
}

// waitForWorker polls the admin status until function has a worker.
func waitForWorker(t *testing.T, addr, function string) {
	t.Helper()
	waitForWorkerWith(t, addr, function)
}

// waitForWorkerWith is waitForWorker with extra `gear admin` options (--tls-ca...).
func waitForWorkerWith(t *testing.T, addr, function string, adminArgs ...string) {
	t.Helper()
	waitFor(t, "a worker for "+function, 20*time.Second, func() bool {
		out, _, _ := gearCmd(t, addr, "", append(append([]string{"admin"}, adminArgs...), "status")...)
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 4 && f[0] == function && f[3] != "0" {
				return true
			}
		}
		return false
	})
}

// TestFiveMinuteWalk is the README's first steps, run exactly as a user types them.
func TestFiveMinuteWalk(t *testing.T) {
	srv := startGear(t, nil, gearBin, "server", "--port", "0")
	addr := listenAddr(t, srv)
	env := []string{"GEARMAN_SERVERS=" + addr}
	startGear(t, env, gearBin, "worker")
	waitForWorker(t, addr, "reverse")
	waitForWorker(t, addr, "invoke")

	out, errOut, code := gearCmd(t, addr, "", "client", "reverse", "reverse my text")
	if code != 0 || out != "txet ym esrever" {
		t.Fatalf("gear client reverse: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, errOut, code = gearCmd(t, addr, "", "client", "invoke", "status")
	if code != 0 {
		t.Fatalf("gear client invoke status: exit %d, stderr %q", code, errOut)
	}
	// The worker returns the status table as `gear admin status` prints it; while it runs, the
	// invoke job itself is the one running job.
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "FUNCTION TOTAL RUNNING WORKERS" {
		t.Fatalf("invoke status output:\n%s", out)
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "invoke 1 1 1" {
		t.Errorf("invoke line %q, want \"invoke 1 1 1\"", got)
	}
	if got := strings.Join(strings.Fields(lines[2]), " "); got != "reverse 0 0 1" {
		t.Errorf("reverse line %q, want \"reverse 0 0 1\"", got)
	}
	adminOut, _, _ := gearCmd(t, addr, "", "admin", "status")
	if strings.Fields(adminOut)[0] != "FUNCTION" || len(strings.Split(strings.TrimRight(adminOut, "\n"), "\n")) != 3 {
		t.Errorf("gear admin status prints a different table:\n%s", adminOut)
	}
}

func TestClientAndWorker_CLI(t *testing.T) {
	srv := startGear(t, nil, gearBin, "server", "--port", "0")
	addr := listenAddr(t, srv)
	env := []string{"GEARMAN_SERVERS=" + addr}
	startGear(t, env, gearBin, "worker", "--allow", "hello=echo hello from invoke")
	// A command served as a function: stdin in, stdout out, stderr as warnings, exit code as failure.
	startGear(t, env, gearBin, "worker", "-f", "shout", "--", "sh", "-c", "echo warned >&2; tr a-z A-Z")
	startGear(t, env, gearBin, "worker", "-f", "broken", "--", "sh", "-c", "exit 3")
	for _, f := range []string{"reverse", "invoke", "shout", "broken"} {
		waitForWorker(t, addr, f)
	}

	t.Run("invoke refuses a command that is not allowed", func(t *testing.T) {
		out, errOut, code := gearCmd(t, addr, "", "client", "invoke", "rm -rf /")
		if code == 0 || out != "" || !strings.Contains(errOut, "not allowed") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("invoke runs an --allow command", func(t *testing.T) {
		out, errOut, code := gearCmd(t, addr, "", "client", "invoke", "hello")
		if code != 0 || out != "hello from invoke\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("invoke version", func(t *testing.T) {
		out, _, code := gearCmd(t, addr, "", "client", "invoke", "version")
		if code != 0 || !strings.Contains(out, "0.") {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})
	t.Run("data from stdin", func(t *testing.T) {
		out, _, code := gearCmd(t, addr, "héllo wörld", "client", "reverse")
		if code != 0 || out != "dlröw olléh" {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})
	t.Run("command function with warning", func(t *testing.T) {
		out, errOut, code := gearCmd(t, addr, "", "client", "shout", "quiet words")
		if code != 0 || out != "QUIET WORDS" || !strings.Contains(errOut, "warned") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("failing command exits non-zero", func(t *testing.T) {
		_, errOut, code := gearCmd(t, addr, "", "client", "broken", "x")
		if code != 1 || !strings.Contains(errOut, "failed") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("background job and status", func(t *testing.T) {
		out, errOut, code := gearCmd(t, addr, "", "client", "--background", "nobody-serves-this", "x")
		handle := strings.TrimSpace(out)
		if code != 0 || !strings.HasPrefix(handle, "H:") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		out, _, code = gearCmd(t, addr, "", "client", "--status", handle)
		if code != 0 || out != handle+" known=true running=false numerator=0 denominator=0\n" {
			t.Errorf("status: exit %d, %q", code, out)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		_, errOut, code := gearCmd(t, addr, "", "client", "--timeout", "200ms", "nobody-serves-this", "x")
		if code != 1 || !strings.Contains(errOut, "timed out") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("bad usage", func(t *testing.T) {
		for _, args := range [][]string{{"client"}, {"client", "--priority", "urgent", "f", "x"}, {"worker", "-f", "x"}} {
			if _, _, code := gearCmd(t, addr, "", args...); code != 2 {
				t.Errorf("gear %v: exit %d, want 2", args, code)
			}
		}
	})
}

func TestClient_ServerDown(t *testing.T) {
	_, errOut, code := gearCmd(t, "127.0.0.1:1", "", "client", "reverse", "x")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
