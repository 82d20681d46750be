package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testpg"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

var gearBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gear-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gearBin = filepath.Join(dir, "gear")
	build := exec.Command("go", "build", "-race", "-o", gearBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gear:", err)
		os.Exit(1)
	}
	// Servers started by these tests keep jobs in memory unless a test asks for a store: they must
	// not share (and lock) the user's default data directory.
	os.Setenv("GEAR_STORE", "memory")
	code := m.Run()
	testpg.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running gear binary whose stderr is collected.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func startGear(t *testing.T, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	p.cmd.Stdout = pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var listenRe = regexp.MustCompile(`msg=listening addr=(\S+)`)

// listenAddr waits for the server's "listening" log line and returns the address.
func listenAddr(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	waitFor(t, "the listening log line", 20*time.Second, func() bool {
		if m := listenRe.FindStringSubmatch(p.output()); m != nil {
			addr = m[1]
			return true
		}
		select {
		case <-p.done:
			t.Fatalf("server exited: %v\n%s", p.err, p.output())
		default:
		}
		return false
	})
	return addr
}

func adminLine(t *testing.T, addr, line string) string {
	t.Helper()
	return adminReply(t, addr, line, false)
}

// adminReply sends one admin line on a new connection and returns the reply: its first line, or
// with list every line up to and including ".".
func adminReply(t *testing.T, addr, line string, list bool) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "%s\n", line)
	r := bufio.NewReader(nc)
	var b strings.Builder
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("admin %q: %v after %q", line, err, b.String())
		}
		b.WriteString(l)
		if !list || l == ".\n" {
			return b.String()
		}
	}
}

func echo(t *testing.T, addr string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write(protocol.AppendRequest(nil, protocol.EchoReq, []byte("ping")))
	f, err := protocol.NewDecoder(nc, 0).Next()
	if err != nil || f.Packet.Type != protocol.EchoRes || string(f.Packet.Args[0]) != "ping" {
		t.Fatalf("echo: %v %+v", err, f)
	}
}

func waitExit(t *testing.T, p *proc) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not exit\n%s", p.output())
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func TestServer_DefaultsLogListenAddressAndPIDFile(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "gear.pid")
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--pid-file", pidFile)
	addr := listenAddr(t, p)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("default listen address %s, want loopback", addr)
	}
	echo(t, addr)
	b, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(p.cmd.Process.Pid) {
		t.Errorf("pid file %q (%v), want %d", b, err, p.cmd.Process.Pid)
	}
	if got := adminLine(t, addr, "getpid"); got != "OK "+strconv.Itoa(p.cmd.Process.Pid)+"\n" {
		t.Errorf("getpid: %q", got)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, p); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, p.output())
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func TestServer_InvokedAsGearmand(t *testing.T) {
	link := filepath.Join(t.TempDir(), "gearmand")
	if err := os.Symlink(gearBin, link); err != nil {
		t.Fatal(err)
	}
	// The Perl test suite starts gearmand with exactly these options.
	p := startGear(t, nil, link, "--port", "0", "--listen", "127.0.0.1", "--log-file", "stderr", "--verbose", "INFO", "-t", "0")
	echo(t, listenAddr(t, p))
}

func TestServer_ListenHostPortForm(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--listen", "127.0.0.1:0")
	echo(t, listenAddr(t, p))
}

func TestServer_PortFromEnvironmentAndFlagWins(t *testing.T) {
	p := startGear(t, []string{"GEARMAND_PORT=0"}, gearBin, "server")
	echo(t, listenAddr(t, p))

	// A flag beats the environment: an unusable GEARMAND_PORT is ignored when --port is given.
	p2 := startGear(t, []string{"GEARMAND_PORT=notaport"}, gearBin, "server", "--port", "0")
	echo(t, listenAddr(t, p2))
}

func TestServer_ConfigFile(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "gear.log")
	conf := filepath.Join(dir, "gearmand.conf")
	content := "# gearmand-style options\nport=0\n--job-handle-prefix=H:conf\nexceptions\nverbose = DEBUG\nlog-file=" + logPath + "\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	startGear(t, nil, gearBin, "server", "--config-file", conf)
	var addr string
	waitFor(t, "the log file", 20*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		if m := listenRe.FindStringSubmatch(string(b)); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	if got := adminLine(t, addr, "verbose"); got != "OK DEBUG\n" {
		t.Errorf("verbose from config: %q", got)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write(protocol.AppendRequest(nil, protocol.SubmitJobBg, []byte("f"), nil, []byte("x")))
	f, err := protocol.NewDecoder(nc, 0).Next()
	if err != nil || !strings.HasPrefix(string(f.Packet.Arg(0)), "H:conf:") {
		t.Fatalf("handle prefix from config: %v %q", err, f.Packet.Arg(0))
	}
}

func TestServer_BadOptionsExitWithMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"server", "--no-such-flag"}, "unknown option --no-such-flag (--help lists the options)"},
		{"bad level", []string{"server", "--verbose", "LOUD"}, "unknown log level"},
		{"bad port", []string{"server", "--port", "99999"}, "invalid port"},
		{"missing config", []string{"server", "--config-file", "/nonexistent/gear.conf"}, "config file"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(gearBin, tc.args...).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, got %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q lacks %q", out, tc.want)
			}
		})
	}
}

func TestServer_PortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := exec.Command(gearBin, "server", "--listen", ln.Addr().String()).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v", err)
	}
	if !strings.Contains(string(out), "address already in use") {
		t.Errorf("output %q does not say the address is in use", out)
	}
}

// SIGUSR1 is a graceful shutdown: a running job finishes and its client gets the result.
func TestServer_SIGUSR1LetsRunningJobFinish(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0")
	addr := listenAddr(t, p)
	dial := func() (net.Conn, *protocol.Decoder) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		return nc, protocol.NewDecoder(nc, 0)
	}
	worker, wdec := dial()
	client, cdec := dial()
	worker.Write(protocol.AppendRequest(nil, protocol.CanDo, []byte("slow")))
	client.Write(protocol.AppendRequest(nil, protocol.SubmitJob, []byte("slow"), nil, []byte("data")))
	f, err := cdec.Next()
	if err != nil || f.Packet.Type != protocol.JobCreated {
		t.Fatalf("submit: %v %+v", err, f)
	}
	handle := string(f.Packet.Args[0])
	worker.Write(protocol.AppendRequest(nil, protocol.GrabJob))
	f, err = wdec.Next()
	if err != nil || f.Packet.Type != protocol.JobAssign {
		t.Fatalf("grab: %v %+v", err, f)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	// The listener closes; the running job's connections stay.
	waitFor(t, "the listener to close", 10*time.Second, func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		nc.Close()
		return false
	})
	worker.Write(protocol.AppendRequest(nil, protocol.WorkComplete, []byte(handle), []byte("done")))
	f, err = cdec.Next()
	if err != nil || f.Packet.Type != protocol.WorkComplete || string(f.Packet.Args[1]) != "done" {
		t.Fatalf("result after SIGUSR1: %v %+v", err, f)
	}
	if code := waitExit(t, p); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// --http :PORT serves health, metrics and the API on loopback, and is ready once the server is.
func TestServer_HTTP(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "--http", ":0")
	listenAddr(t, p)
	web := httpListenAddr(t, p)
	if !strings.HasPrefix(web, "127.0.0.1:") {
		t.Errorf("--http :0 bound %s, want loopback", web)
	}
	waitFor(t, "/readyz", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + web + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	resp, err := http.Get("http://" + web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "gear_ready 1") || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics:\n%.600s", body)
	}
}

// --http-auth token with the secret in a file: every request needs it, and the log never has it.
func TestServer_HTTPAuth(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("tok-42\n"), 0o600)
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "--http", "127.0.0.1:0",
		"--http-auth", "token", "--http-auth-secret-file", secretFile, "--http-read-only")
	listenAddr(t, p)
	web := httpListenAddr(t, p)
	code := func(method, path, token string) int {
		req, _ := http.NewRequest(method, "http://"+web+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := code("GET", "/metrics", ""); c != 401 {
		t.Errorf("no token: %d", c)
	}
	waitFor(t, "/readyz with the token", 10*time.Second, func() bool { return code("GET", "/readyz", "tok-42") == 200 })
	if c := code("POST", "/api/v1/jobs/H:x:1/cancel", "tok-42"); c != 403 {
		t.Errorf("an action in read-only mode: %d, want 403", c)
	}
	if strings.Contains(p.output(), "tok-42") {
		t.Error("the secret is in the log")
	}
	out, err := exec.Command(gearBin, "server", "--http", ":0", "--http-auth", "token").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "secret is empty") {
		t.Errorf("--http-auth without a secret: %v %s", err, out)
	}
}

// /readyz says not yet while a large store replays (the HTTP listener opens first, so /livez
// answers) and ready once the replay is done: a probe does not kill a recovering server.
func TestServer_ReadyzDuringReplay(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.OpenPebble(dir, store.SyncNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 150_000
	data := bytes.Repeat([]byte("x"), 512)
	done := make(chan error, n)
	for i := range n {
		st.Add(&store.Job{Seq: uint64(i + 1), Handle: fmt.Sprintf("H:replay:%d", i+1), Function: "replayed",
			Data: data, Priority: 1}, func(err error) { done <- err })
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	p := startGear(t, []string{"GEAR_STORE=pebble"}, gearBin, "server", "--port", "0", "--data-dir", dir, "--http", "127.0.0.1:0", "--sync", "none")
	web := httpListenAddr(t, p)
	status := func(path string) int {
		resp, err := http.Get("http://" + web + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sawNotReady := false
	waitFor(t, "/readyz to turn ready", 60*time.Second, func() bool {
		switch status("/readyz") {
		case http.StatusServiceUnavailable:
			sawNotReady = true
			if status("/livez") != 200 {
				t.Fatal("/livez does not answer during the replay")
			}
		case http.StatusOK:
			return true
		}
		return false
	})
	// Ready means replayed: the server already holds every job.
	resp, err := http.Get("http://" + web + "/api/v1/server")
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Jobs int }
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.Jobs != n {
		t.Errorf("ready with %d jobs, want all %d replayed", info.Jobs, n)
	}
	if !sawNotReady {
		t.Errorf("/readyz never said not ready, though %d jobs replayed", n)
	}
	if !strings.Contains(p.output(), "jobs=150000") {
		t.Errorf("replay log:\n%.2000s", p.output())
	}
}

// --log-format json writes one JSON object per line.
func TestServer_LogFormatJSON(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "--log-format", "json")
	waitFor(t, "a JSON listening line", 20*time.Second, func() bool { return strings.Contains(p.output(), `"msg":"listening"`) })
	for _, line := range strings.Split(strings.TrimSpace(p.output()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %q", line)
		}
	}
	out, err := exec.Command(gearBin, "server", "--log-format", "xml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "text or json") {
		t.Errorf("--log-format xml: %v %s", err, out)
	}
}

var httpListenRe = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

// httpListenAddr waits for the server's "http listening" log line and returns the address.
func httpListenAddr(t *testing.T, p *proc) string {
	t.Helper()
	return logMatch(t, p, httpListenRe, "the http listening log line")
}

// logMatch waits for a line of p's log that re matches and returns re's first group.
func logMatch(t *testing.T, p *proc, re *regexp.Regexp, what string) string {
	t.Helper()
	var m []string
	waitFor(t, what, 30*time.Second, func() bool {
		m = re.FindStringSubmatch(p.output())
		return m != nil
	})
	return m[1]
}
