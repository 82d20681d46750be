package builtin_test

import (
	"context"
	"errors"
	"github.com/gearhq/gear/internal/testenv"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/worker"
	"github.com/gearhq/gear/worker/builtin"
)

func TestReverse(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"ascii", "reverse my text", "txet ym esrever"},
		{"latin accents", "héllo wörld", "dlröw olléh"},
		{"cjk", "日本語テキスト", "トスキテ語本日"},
		{"emoji", "a🙂b🚀", "🚀b🙂a"},
		{"mixed widths", "aé語🙂", "🙂語éa"},
		{"invalid bytes kept", "a\xffb\xfe", "\xfeb\xffa"},
		{"truncated sequence", "x\xe6\x97", "\x97\xe6x"},
		{"invalid among valid", "é\xffü", "ü\xffé"},
		{"nul bytes", "a\x00b", "b\x00a"},
		{"invalid bytes that reverse into a valid sequence", "\xa9\xc3", "\xc3\xa9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := builtin.Reverse(context.Background(), &worker.Job{Data: []byte(tc.in)})
			if err != nil || string(out) != tc.want {
				t.Errorf("Reverse(%q) = %q, %v; want %q", tc.in, out, err, tc.want)
			}
			if len(out) != len(tc.in) {
				t.Errorf("Reverse changed the length: %d bytes from %d", len(out), len(tc.in))
			}
			// Reversing twice gives valid UTF-8 back unchanged.
			if utf8.ValidString(tc.in) {
				if back, _ := builtin.Reverse(context.Background(), &worker.Job{Data: out}); string(back) != tc.in {
					t.Errorf("Reverse(Reverse(%q)) = %q", tc.in, back)
				}
			}
		})
	}
}

func TestInvoke_RefusesWhatIsNotAllowed(t *testing.T) {
	inv := &builtin.Invoker{Server: "127.0.0.1:1", Commands: map[string][]string{"hello": {"echo", "hi"}}}
	for _, data := range []string{
		"rm -rf /", "hello; rm -rf /", "hello world", "status && id", "../hello", "/bin/sh", "HELLO", "Status",
		"", "  ", "sh -c id", "$(id)", "`id`", "echo", "shutdown", "jobs",
	} {
		out, err := inv.Func(context.Background(), &worker.Job{Data: []byte(data)})
		if !errors.Is(err, builtin.ErrNotAllowed) {
			t.Errorf("invoke %q = %q, %v; want ErrNotAllowed", data, out, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "hello") || !strings.Contains(msg, "status") {
			t.Errorf("the refusal %q does not list what is allowed", msg)
		}
	}
}

func TestInvoke_RunsAllowedCommands(t *testing.T) {
	inv := &builtin.Invoker{Server: "127.0.0.1:1", Commands: map[string][]string{
		"hello":   {"echo", "hi", "there"},
		"failing": {"sh", "-c", "echo oops >&2; exit 3"},
		"missing": {"/nonexistent/command"},
	}}
	ctx := context.Background()
	for _, data := range []string{"hello", " hello\n"} {
		out, err := inv.Func(ctx, &worker.Job{Data: []byte(data)})
		if err != nil || string(out) != "hi there\n" {
			t.Errorf("invoke %q = %q, %v", data, out, err)
		}
	}
	_, err := inv.Func(ctx, &worker.Job{Data: []byte("failing")})
	if err == nil || errors.Is(err, builtin.ErrNotAllowed) || !strings.Contains(err.Error(), "oops") {
		t.Errorf("a failing allowed command: %v; want its stderr in the error", err)
	}
	if _, err := inv.Func(ctx, &worker.Job{Data: []byte("missing")}); err == nil || errors.Is(err, builtin.ErrNotAllowed) {
		t.Errorf("a missing allowed command: %v", err)
	}
}

// The admin views come from the worker's job server.
func TestInvoke_AdminViews(t *testing.T) {
	addr := testenvAddr(t)
	c, err := client.New(client.Options{Servers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.SubmitBackground(ctx, "inv.queued", []byte("x"), client.Submission{}); err != nil {
		t.Fatal(err)
	}
	inv := &builtin.Invoker{Server: addr}
	out, err := inv.Func(ctx, &worker.Job{Data: []byte("status")})
	if err != nil || !strings.Contains(string(out), "inv.queued") {
		t.Errorf("invoke status = %q, %v; want the queued function listed", out, err)
	}
	out, err = inv.Func(ctx, &worker.Job{Data: []byte("version")})
	if err != nil || !strings.Contains(string(out), server.Version) {
		t.Errorf("invoke version = %q, %v", out, err)
	}
	if _, err := inv.Func(ctx, &worker.Job{Data: []byte("workers")}); err != nil {
		t.Errorf("invoke workers: %v", err)
	}
	down := &builtin.Invoker{Server: freeAddr(t)}
	if _, err := down.Func(ctx, &worker.Job{Data: []byte("status")}); err == nil || errors.Is(err, builtin.ErrNotAllowed) {
		t.Errorf("invoke status with the server down: %v", err)
	}
}

func TestParseAllow(t *testing.T) {
	for _, tc := range []struct {
		spec string
		name string
		argv []string
	}{
		{"date=date -u", "date", []string{"date", "-u"}},
		{" up = uptime ", "up", []string{"uptime"}},
		{"disk=df  -h   /", "disk", []string{"df", "-h", "/"}},
		{"eq=env A=1 B=2", "eq", []string{"env", "A=1", "B=2"}},
	} {
		name, argv, err := builtin.ParseAllow(tc.spec)
		if err != nil || name != tc.name || !slices.Equal(argv, tc.argv) {
			t.Errorf("ParseAllow(%q) = %q, %q, %v; want %q, %q", tc.spec, name, argv, err, tc.name, tc.argv)
		}
	}
	for _, spec := range []string{"", "date", "=date", "date=", "date=   ", " = x", "="} {
		if name, argv, err := builtin.ParseAllow(spec); err == nil {
			t.Errorf("ParseAllow(%q) = %q, %q; want an error", spec, name, argv)
		}
	}
}

// Command serves a program: the job's data on its stdin, its stdout the result, its stderr sent as
// warnings before the result, a non-zero exit a WORK_FAIL. Run through a real worker and server,
// since the warnings travel over the job's connection.
func TestCommand(t *testing.T) {
	addr := testenvAddr(t)
	// One job at a time: a job that held its slot too long would hold up the next ones.
	w, err := worker.New(worker.Options{Servers: []string{addr}, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, argv := range map[string][]string{
		"cmd.upper":   {"tr", "a-z", "A-Z"},
		"cmd.warn":    {"sh", "-c", "echo first >&2; cat; echo second >&2"},
		"cmd.exit":    {"sh", "-c", "cat >/dev/null; echo partial; echo why >&2; exit 7"},
		"cmd.missing": {"/nonexistent/program"},
	} {
		if err := w.Register(name, builtin.Command(argv), 0); err != nil {
			t.Fatal(err)
		}
	}
	// A command that outlives its timeout, through a child that keeps stdout open.
	if err := w.Register("cmd.slow", builtin.Command(lingering(t)), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(context.Background()) }()
	defer func() {
		w.Stop()
		<-runDone
	}()
	c, err := client.New(client.Options{Servers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	out, err := c.Do(ctx, "cmd.upper", []byte("stdin to stdout\n"), client.Submission{})
	if err != nil || string(out) != "STDIN TO STDOUT\n" {
		t.Errorf("cmd.upper = %q, %v", out, err)
	}

	var mu sync.Mutex
	var warnings strings.Builder
	out, err = c.Do(ctx, "cmd.warn", []byte("body"), client.Submission{Handlers: client.Handlers{
		OnWarning: func(d []byte) { mu.Lock(); warnings.Write(d); mu.Unlock() },
		OnData:    func(d []byte) { t.Errorf("unexpected WORK_DATA %q", d) },
	}})
	mu.Lock()
	if err != nil || string(out) != "body" || warnings.String() != "first\nsecond\n" {
		t.Errorf("cmd.warn = %q, %v, warnings %q; want body and the stderr lines as warnings", out, err, warnings.String())
	}
	mu.Unlock()

	warnings.Reset()
	_, err = c.Do(ctx, "cmd.exit", []byte("x"), client.Submission{Handlers: client.Handlers{
		OnWarning: func(d []byte) { mu.Lock(); warnings.Write(d); mu.Unlock() },
	}})
	if _, ok := err.(*client.JobFailedError); !ok {
		t.Errorf("a non-zero exit: %v; want *JobFailedError", err)
	}
	mu.Lock()
	if warnings.String() != "why\n" {
		t.Errorf("warnings before the failure %q", warnings.String())
	}
	mu.Unlock()

	_, err = c.Do(ctx, "cmd.missing", nil, client.Submission{})
	if ee, ok := err.(*client.JobExceptionError); !ok || !strings.Contains(string(ee.Data), "/nonexistent/program") {
		t.Errorf("a program that cannot start: %v; want an exception naming it", err)
	}

	// Whichever gives up first reports it: the worker (an exception with the context error) or the
	// server, whose CAN_DO_TIMEOUT (raised to its 1 s floor) fails the job with WORK_FAIL.
	_, err = c.Do(ctx, "cmd.slow", nil, client.Submission{})
	var exc *client.JobExceptionError
	var failed *client.JobFailedError
	if !errors.As(err, &exc) && !errors.As(err, &failed) {
		t.Errorf("a command past its timeout: %v; want an exception or a failure", err)
	}
	// The worker serves on: the timed-out command gave its slot back.
	if out, err := c.Do(ctx, "cmd.upper", []byte("ok"), client.Submission{}); err != nil || string(out) != "OK" {
		t.Errorf("cmd.upper afterwards = %q, %v", out, err)
	}
}

// lingering returns a command that starts a long sleep in the background, which inherits its
// stdout and stderr, and waits for it; the sleep is killed when the test ends.
func lingering(t *testing.T) []string {
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return []string{"sh", "-c", `sleep 30 & echo $! > "$0"; wait`, pidFile}
}

// A command killed at its context's end returns the context's error at once, even when a child it
// started still holds its output open; it is not reported as the command's own failure.
func TestCommand_ContextEndsTheJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := builtin.Command(lingering(t))(ctx, &worker.Job{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, worker.ErrFail) {
			t.Errorf("Command past its deadline: %v; want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Command did not return when its context ended")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testenvAddr(t *testing.T) string {
	addr, _ := testenv.StartGear(t)
	return addr
}
