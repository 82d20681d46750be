// Package crashtest kills a real gear server (SIGKILL) while clients submit background jobs and
// workers run them, restarts it on the same data directory, and checks what durability promises:
// every acknowledged job runs at least once, nothing runs that was never submitted, unique keys
// still coalesce, and each priority keeps its submission order.
package crashtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/internal/testpg"
)

// gearBin is the gear binary under test, built once by TestMain (with -race when the tests are).
var gearBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gear-crashtest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gearBin = filepath.Join(dir, "gear")
	args := []string{"build", "-o", gearBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/gearhq/gear/cmd/gear")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gear:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	testpg.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `gear server` process.
type server struct {
	t    testing.TB
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, once done

	mu  sync.Mutex
	log bytes.Buffer // stderr
}

// lockedWriter collects the server's stderr.
type lockedWriter struct{ s *server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

var listenRe = regexp.MustCompile(`msg=listening addr=(\S+)`)

// httpListenRe finds the address of a server's --http listener in its log.
var httpListenRe = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

// httpURL is the base URL of the server's --http listener (it logs it before it listens for jobs).
func (s *server) httpURL() string {
	s.t.Helper()
	m := httpListenRe.FindStringSubmatch(s.output())
	if m == nil {
		s.t.Fatalf("the server logged no http listener:\n%s", s.output())
	}
	return "http://" + m[1]
}

// httpGet fetches url and returns the status code and the body.
func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	code, body := testenv.HTTPGet(t, url)
	return code, string(body)
}

// pebbleStore is the flags of a Pebble store in a new data directory.
func pebbleStore(t testing.TB) []string {
	return []string{"--store", "pebble", "--data-dir", t.TempDir()}
}

// postgresStore is the flags of a PostgreSQL store in a new database of the test cluster.
func postgresStore(t testing.TB) []string {
	return []string{"--store", "postgres", "--postgres-url", testpg.NewDB(t)}
}

// startServer starts `gear server` on a free loopback port with the store storeFlags choose, plus
// extra flags, and waits until it listens. The process is killed when the test ends if still running.
func startServer(t testing.TB, storeFlags []string, extra ...string) *server {
	t.Helper()
	args := append(append([]string{"server", "--port", "0", "--job-handle-prefix", "H:crash"}, storeFlags...), extra...)
	s := &server{t: t, cmd: exec.Command(gearBin, args...), done: make(chan struct{})}
	// The race runtime reports to stderr and goes on; it must not sleep before exiting.
	s.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0 atexit_sleep_ms=0", "GEAR_STORE=", "GEAR_DATA_DIR=")
	s.cmd.Stderr = lockedWriter{s}
	s.cmd.Stdout = io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listenRe.FindStringSubmatch(s.output()); m != nil {
			s.addr = m[1]
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("gear server exited before listening: %v\n%s", s.err, s.output())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gear server did not listen within 30s\n%s", s.output())
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.checkLog()
}

// stop sends SIGTERM and expects a clean exit; the log may hold the errors allowed names (checkLog).
func (s *server) stop(allowed ...string) {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("gear server did not stop on SIGTERM\n%s", s.output())
	}
	if s.err != nil {
		s.t.Errorf("gear server exited with %v after SIGTERM\n%s", s.err, s.output())
	}
	s.checkLog(allowed...)
}

// checkLog fails the test on a data race or an error the server logged, but for error lines that
// contain one of allowed (the errors a test provokes).
func (s *server) checkLog(allowed ...string) {
	s.t.Helper()
	out := s.output()
	if strings.Contains(out, "DATA RACE") {
		s.t.Errorf("the race detector fired in gear server:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=ERROR") && !slices.ContainsFunc(allowed, func(a string) bool { return strings.Contains(line, a) }) {
			s.t.Errorf("gear server logged an error: %s", line)
		}
	}
}
