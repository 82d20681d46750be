// Package interop drives an in-process Gear server with real third-party Gearman programs: the
// `gearman` and `gearadmin` tools (libgearman), PHP's GearmanClient/GearmanWorker (pecl gearman on
// libgearman) and Perl's Gearman::Client/Gearman::Worker (over TLS too, with IO::Socket::SSL), and
// openssl s_client on a TLS port. The tests speak Gearman themselves only to watch the server: text
// admin commands (status, workers, show jobs) and GET_STATUS_UNIQUE.
//
// A missing tool is a test failure, not a skip: CI installs them (gearman-tools, php-cli with
// php-gearman, libgearman-client-perl, libio-socket-ssl-perl, openssl).
//
// Every test starts its own server on 127.0.0.1:0, so tests run in parallel and never see each
// other's jobs. Every process a test starts runs in its own process group, lives at most
// procLifetime and is SIGKILLed (group and all) in t.Cleanup. Tests wait for states by polling the
// server with a deadline, never by sleeping.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"

	"github.com/gearhq/gear/internal/testenv"
)

const (
	// procLifetime bounds every process a test starts, even if its cleanup never runs.
	procLifetime = 2 * time.Minute
	// cmdTimeout bounds one synchronous command (a client call, a gearadmin query).
	cmdTimeout = 30 * time.Second
	// waitTimeout bounds every poll for a server state. Generous: under -race and a parallel run
	// starting PHP and Perl takes a while; a healthy run never gets near it.
	waitTimeout = 20 * time.Second
)

// gear is an in-process Gear server listening on a free loopback port.
type gear struct {
	srv  *server.Server
	host string
	port string
	log  *syncBuffer
}

// startGear starts a server with the default options, changed by configure when it is not nil. Its
// debug log is printed if the test fails.
func startGear(t *testing.T, configure func(*server.Options)) *gear {
	t.Helper()
	logs := &syncBuffer{}
	opts := server.DefaultOptions()
	opts.Listen = nil
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if configure != nil {
		configure(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatalf("listen: %v", err)
	}
	if err := srv.Serve(ln); err != nil {
		ln.Close()
		srv.Close()
		t.Fatalf("serve: %v", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	g := &gear{srv: srv, host: host, port: port, log: logs}
	// Cleanups run last-in first-out: the server closes, then its log is shown.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gear server log:\n%s", logs.String())
		}
	})
	t.Cleanup(func() { srv.Close() })
	return g
}

func (g *gear) addr() string { return net.JoinHostPort(g.host, g.port) }

// gearman returns the arguments of a `gearman` invocation against g.
func (g *gear) gearman(args ...string) []string {
	return append([]string{"-h", g.host, "-p", g.port}, args...)
}

// gearadmin runs `gearadmin -h HOST -p PORT ARGS...` and returns its standard output and error
// together, as an operator sees them.
func (g *gear) gearadmin(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, nil, "gearadmin", append([]string{"-h", g.host, "-p", g.port}, args...)...)
	if err != nil {
		t.Fatalf("gearadmin %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out + errOut
}

// --- tools ----------------------------------------------------------------------------------------

// needTools fails the test unless every named program is on PATH.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("interop: %q is not installed (%v); install gearman-tools, php-cli + php-gearman "+
				"and libgearman-client-perl", tool, err)
		}
	}
}

var (
	phpGearman = sync.OnceValue(func() error {
		return probe("php", "-r", `exit(class_exists("GearmanClient") && class_exists("GearmanWorker") ? 0 : 3);`)
	})
	perlGearman = sync.OnceValue(func() error {
		return probe("perl", "-MGearman::Client", "-MGearman::Worker", "-MJSON::PP", "-e1")
	})
)

func probe(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// needPHP fails the test unless php with the gearman extension is installed.
func needPHP(t *testing.T) {
	t.Helper()
	needTools(t, "php")
	if err := phpGearman(); err != nil {
		t.Fatalf("interop: PHP has no gearman extension (install php-gearman): %v", err)
	}
}

// needPerl fails the test unless perl with Gearman::Client and Gearman::Worker is installed.
func needPerl(t *testing.T) {
	t.Helper()
	needTools(t, "perl")
	if err := perlGearman(); err != nil {
		t.Fatalf("interop: Perl has no Gearman::Client/Worker (install libgearman-client-perl): %v", err)
	}
}

// --- processes ------------------------------------------------------------------------------------

// proc is a program running in the background in its own process group.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{} // closed once the process has exited and its output is complete
	err    error         // Wait's result, valid after done
	quiet  bool          // its caller reports its output; do not log it again when the test fails
}

// start runs name with args in the background. It is killed, with its whole process group, when the
// test ends or procLifetime passes; if the test failed its output is logged.
func start(t *testing.T, stdin []byte, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procLifetime)
	p := &proc{name: name + " " + strings.Join(args, " "), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Cancel = p.kill
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if stdin != nil {
		p.cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not exit after SIGKILL", p.name)
		}
		if t.Failed() && !p.quiet {
			t.Logf("%s:\nstdout: %s\nstderr: %s", p.name, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// kill sends SIGKILL to the process and everything it started (its process group).
func (p *proc) kill() error {
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// killAndWait kills p's process group and waits until p has exited.
func (p *proc) killAndWait(t *testing.T) {
	t.Helper()
	if err := p.kill(); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	p.wait(t)
}

// wait waits for p to exit on its own and returns Wait's error.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(cmdTimeout):
		t.Fatalf("%s still running after %v\nstdout: %s\nstderr: %s", p.name, cmdTimeout, p.stdout.String(), p.stderr.String())
		return nil
	}
}

// exited reports whether p has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// run runs name with args to completion (at most cmdTimeout) and returns its output.
func run(t *testing.T, stdin []byte, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	p := start(t, stdin, name, args...)
	p.quiet = true
	err = p.wait(t)
	return p.stdout.String(), p.stderr.String(), err
}

// syncBuffer collects a child process's output while the test reads it.
type syncBuffer = testenv.SyncBuffer

// --- polling --------------------------------------------------------------------------------------

// waitFor polls cond until it reports true, failing the test after waitTimeout with what and the
// last detail cond gave.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", waitTimeout, what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// admin sends one text admin command over a fresh connection and returns the reply: every line up
// to the closing "." for the list commands (status, workers, show jobs, ...), else the first line.
func (g *gear) admin(t *testing.T, command string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", g.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("admin %q: %v", command, err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, command+"\n"); err != nil {
		t.Fatalf("admin %q: %v", command, err)
	}
	list := slices.Contains([]string{"status", "workers", "show jobs", "show unique jobs", "prioritystatus", "functions", "limits", "store", "dead list"}, command) || strings.HasPrefix(command, "dead list ")
	r := bufio.NewReader(nc)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("admin %q: %v after %q", command, err, b.String()+line)
		}
		b.WriteString(line)
		if !list || line == ".\n" {
			return b.String()
		}
	}
}

// funcStatus is one line of the admin `status`: jobs not finished, jobs running, workers.
type funcStatus struct{ total, running, workers int }

func (s funcStatus) String() string { return fmt.Sprintf("%d %d %d", s.total, s.running, s.workers) }

// status returns fn's line of the admin `status`; ok is false when fn is not listed.
func (g *gear) status(t *testing.T, fn string) (st funcStatus, ok bool) {
	t.Helper()
	for line := range strings.Lines(g.admin(t, "status")) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) == 4 && f[0] == fn {
			st.total, _ = strconv.Atoi(f[1])
			st.running, _ = strconv.Atoi(f[2])
			st.workers, _ = strconv.Atoi(f[3])
			return st, true
		}
	}
	return st, false
}

// waitStatus waits until fn's admin status is want. want.workers < 0 accepts any worker count.
func (g *gear) waitStatus(t *testing.T, fn string, want funcStatus) {
	t.Helper()
	waitFor(t, fmt.Sprintf("status of %s to be %v", fn, want), func() (bool, string) {
		st, ok := g.status(t, fn)
		if !ok {
			return false, "not listed"
		}
		if want.workers < 0 {
			st.workers = want.workers
		}
		return st == want, st.String()
	})
}

// waitIdle waits until fn has no unfinished job: listed as "0 0 W" or not listed at all.
func (g *gear) waitIdle(t *testing.T, fn string) {
	t.Helper()
	waitFor(t, fn+" to have no jobs", func() (bool, string) {
		st, ok := g.status(t, fn)
		return !ok || st.total == 0, st.String()
	})
}

// waitWorkers waits until every fn has at least n workers registered.
func (g *gear) waitWorkers(t *testing.T, n int, fns ...string) {
	t.Helper()
	for _, fn := range fns {
		waitFor(t, fmt.Sprintf("%d worker(s) for %s", n, fn), func() (bool, string) {
			st, _ := g.status(t, fn)
			return st.workers >= n, st.String()
		})
	}
}

// uniqueStatus asks the server about a unique id with GET_STATUS_UNIQUE and returns whether a job
// has it, whether it runs, and how many foreground clients wait for it.
func (g *gear) uniqueStatus(t *testing.T, unique string) (known, running bool, clients int) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", g.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("GET_STATUS_UNIQUE: %v", err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(protocol.AppendRequest(nil, protocol.GetStatusUnique, []byte(unique))); err != nil {
		t.Fatalf("GET_STATUS_UNIQUE: %v", err)
	}
	f, err := protocol.NewDecoder(nc, 1<<20).Next()
	if err != nil {
		t.Fatalf("GET_STATUS_UNIQUE: reading the reply: %v", err)
	}
	p := f.Packet
	if f.IsText || p.Type != protocol.StatusResUnique || len(p.Args) != 6 || string(p.Args[0]) != unique {
		t.Fatalf("GET_STATUS_UNIQUE %q: unexpected reply %s %q", unique, p.Type, p.Args)
	}
	clients, _ = strconv.Atoi(string(p.Args[5]))
	return string(p.Args[1]) == "1", string(p.Args[2]) == "1", clients
}

// --- names and files ------------------------------------------------------------------------------

var nameCleaner = regexp.MustCompile(`[^A-Za-z0-9]+`)

// prefix returns a function-name prefix unique to the test and to this run.
func prefix(t *testing.T) string {
	return fmt.Sprintf("it%d.%s", time.Now().UnixNano()%1e6, strings.Trim(nameCleaner.ReplaceAllString(t.Name(), "_"), "_"))
}

// testdata returns the absolute path of a helper script.
func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readLines returns the lines of a file a helper appends to; a missing file has none.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	// Only complete lines: a writer may have created the file, or be half-way through a line.
	text := string(data)
	text = text[:strings.LastIndexByte(text, '\n')+1]
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// decodeJSON decodes the single JSON line a client helper prints.
func decodeJSON(t *testing.T, what, stdout string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("%s: cannot decode output %q: %v", what, stdout, err)
	}
}

// --- PHP and Perl helpers -------------------------------------------------------------------------

// workerFunctions are the functions testdata/worker.php and worker.pl register, each as PREFIX.name.
var workerFunctions = []string{"rev", "fail", "exc", "progress", "gate"}

// scriptWorker is a running testdata/worker.{php,pl}.
type scriptWorker struct {
	*proc
	id     string
	prefix string
	log    string // one "name\thandle\tworkload" line per job it started
}

// jobLine is one job a script worker started.
type jobLine struct{ fn, handle, workload string }

// startScriptWorker starts the PHP ("php") or Perl ("perl") worker registering PREFIX.<function>
// under the worker id id, and waits until the server lists all its functions. With hang, every job
// it takes hangs until the worker is killed.
func (g *gear) startScriptWorker(t *testing.T, lang, pfx, id string, hang bool) *scriptWorker {
	t.Helper()
	script := map[string]string{"php": "worker.php", "perl": "worker.pl"}[lang]
	w := &scriptWorker{id: id, prefix: pfx, log: filepath.Join(t.TempDir(), id+".log")}
	args := []string{testdata(t, script), g.host, g.port, pfx, id, w.log}
	if hang {
		args = append(args, "hang")
	}
	w.proc = start(t, nil, lang, args...)
	fns := make([]string, len(workerFunctions))
	for i, f := range workerFunctions {
		fns[i] = pfx + "." + f
	}
	waitFor(t, id+" to register "+strings.Join(fns, " "), func() (bool, string) {
		if w.exited() {
			t.Fatalf("worker %s exited early: %v\nstderr: %s", id, w.err, w.stderr.String())
		}
		out := g.admin(t, "workers")
		for line := range strings.Lines(out) {
			if got, ok := workerLine(line, id); ok && len(got) == len(fns) {
				return true, out
			}
		}
		return false, out
	})
	return w
}

// workerLine parses one line of the admin `workers` ("FD IP ID : FUNCTION ...") and returns its
// functions if its id is id.
func workerLine(line, id string) (fns []string, ok bool) {
	head, tail, found := strings.Cut(strings.TrimSuffix(line, "\n"), " : ")
	if !found {
		head, found = strings.CutSuffix(strings.TrimSuffix(line, "\n"), " :")
	}
	f := strings.Fields(head)
	if !found || len(f) != 3 || f[2] != id {
		return nil, false
	}
	return strings.Fields(tail), true
}

// jobs returns the jobs the worker has started so far.
func (w *scriptWorker) jobs(t *testing.T) []jobLine {
	t.Helper()
	var js []jobLine
	for _, line := range readLines(t, w.log) {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("worker %s log: bad line %q", w.id, line)
		}
		js = append(js, jobLine{f[0], f[1], f[2]})
	}
	return js
}

// waitJob waits until the worker has started n jobs and returns the last.
func (w *scriptWorker) waitJob(t *testing.T, n int) jobLine {
	t.Helper()
	var js []jobLine
	waitFor(t, fmt.Sprintf("worker %s to start job #%d", w.id, n), func() (bool, string) {
		js = w.jobs(t)
		return len(js) >= n, fmt.Sprint(js)
	})
	return js[n-1]
}

// phpResult is what testdata/client.php prints.
type phpResult struct {
	RC     string   `json:"rc"`
	Result *string  `json:"result"`
	Handle string   `json:"handle"`
	Status []any    `json:"status"`
	Events []string `json:"events"`
}

// php runs testdata/client.php MODE ARGS... against g and decodes its output.
func (g *gear) php(t *testing.T, mode string, args ...string) phpResult {
	t.Helper()
	all := append([]string{testdata(t, "client.php"), g.host, g.port, mode}, args...)
	out, errOut, err := run(t, nil, "php", all...)
	if err != nil {
		t.Fatalf("php client.php %s %s: %v\nstdout: %s\nstderr: %s", mode, strings.Join(args, " "), err, out, errOut)
	}
	var r phpResult
	decodeJSON(t, "client.php "+mode, out, &r)
	return r
}

// perlResult is what testdata/client.pl prints.
type perlResult struct {
	Result *string    `json:"result"`
	Events []string   `json:"events"`
	Handle string     `json:"handle"`
	Tasks  [][]string `json:"tasks"`
}

// perl runs testdata/client.pl MODE ARGS... against g and decodes its output.
func (g *gear) perl(t *testing.T, mode string, args ...string) perlResult {
	t.Helper()
	all := append([]string{testdata(t, "client.pl"), g.host, g.port, mode}, args...)
	out, errOut, err := run(t, nil, "perl", all...)
	if err != nil {
		t.Fatalf("perl client.pl %s %s: %v\nstdout: %s\nstderr: %s", mode, strings.Join(args, " "), err, out, errOut)
	}
	var r perlResult
	decodeJSON(t, "client.pl "+mode, out, &r)
	return r
}

func show(s *string) string {
	if s == nil {
		return "null"
	}
	return strconv.Quote(*s)
}

// jobHandles lists the handles of every unfinished job (the admin `show jobs`).
func (g *gear) jobHandles(t *testing.T) []string {
	t.Helper()
	var hs []string
	for line := range strings.Lines(g.admin(t, "show jobs")) {
		if h, _, ok := strings.Cut(line, "\t"); ok {
			hs = append(hs, h)
		}
	}
	return hs
}

// waitNewJob waits until `show jobs` lists a handle that is not in before, and returns it.
func (g *gear) waitNewJob(t *testing.T, before []string) string {
	t.Helper()
	var handle string
	waitFor(t, "a new job in show jobs", func() (bool, string) {
		hs := g.jobHandles(t)
		for _, h := range hs {
			if !slices.Contains(before, h) {
				handle = h
				return true, h
			}
		}
		return false, strings.Join(hs, " ")
	})
	return handle
}
