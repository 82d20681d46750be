package main

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/gearhq/gear/alert"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testenv"
)

// gear supervise end to end: the real binary, real children (PHP workers, gear worker, sh), a real
// job server. Every supervisor runs in its own process group in dir; when the test ends it and
// every child it logged as started (each in a group of its own) are SIGKILLed, group and all.

func startSupervise(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(gearBin, append([]string{"supervise"}, args...)...), done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), guardEnv...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w := &procWriter{p: p}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		for _, pid := range childPIDs(p) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("gear supervise output:\n%s", p.output())
		}
	})
	return p
}

// stopSupervise sends SIGTERM and expects exit status 0 once the children have stopped.
func stopSupervise(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, p); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// procWriter collects a process's output into its proc.
type procWriter struct{ p *proc }

func (w *procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

var startedRe = regexp.MustCompile(`msg=started program=\S+ slot=\d+ pid=(\d+)`)

// childPIDs lists the children the supervisor has logged as started.
func childPIDs(p *proc) []int {
	var pids []int
	for _, m := range startedRe.FindAllStringSubmatch(p.output(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	return pids
}

// alertLines reads the "EVENT PID BYTES" lines the tests' alert command appends.
func alertLines(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for line := range strings.Lines(string(b)) {
		if strings.HasSuffix(line, "\n") {
			out = append(out, strings.Fields(line))
		}
	}
	return out
}

// alertCommand is an --alert-command appending "EVENT PID BYTES" to path.
func alertCommand(path string) string {
	return alert.QuoteCommand([]string{"sh", "-c", `echo "$GEAR_ALERT_EVENT $GEAR_ALERT_PID $GEAR_ALERT_BYTES" >> "$0"`, path})
}

// rssOf returns a process's resident size from /proc.
func rssOf(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

func needPHPGearman(t *testing.T) {
	t.Helper()
	out, err := exec.Command("php", "-r", `exit(class_exists("GearmanWorker") && function_exists("pcntl_signal") ? 0 : 3);`).CombinedOutput()
	if err != nil {
		t.Fatalf("php-cli with php-gearman is required (scripts/test.sh installs it): %v %s", err, out)
	}
}

// A PHP worker leaking 1 MiB per job, two copies under a 40 MiB cap: while 200 jobs run, the
// children are recycled at the cap, every job completes (each foreground client gets its one
// result, each background job runs), the alert command gets warn and cap for the PIDs that
// crossed them, and the supervisor's own memory stays flat.
func TestSupervise_PHPLeakRecycledAtCap(t *testing.T) {
	t.Parallel()
	needPHPGearman(t)
	addr := mustGear(t)
	dir := t.TempDir()
	jobLog, alerts := filepath.Join(dir, "jobs"), filepath.Join(dir, "alerts")
	script, err := filepath.Abs("testdata/leaky_worker.php")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	p := startSupervise(t, dir, "-n", "2", "--interval", "50ms", "--memory-warn", "30MiB", "--memory-cap", "40MiB",
		"--alert-command", alertCommand(alerts), "--", "php", script, host, port, "leak", jobLog, strconv.Itoa(1<<20))
	testenv.WaitWorkers(t, addr, "leak", 2)

	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	do := func(data string) error {
		out, err := c.Do(ctx, "leak", []byte(data), client.Submission{})
		if err != nil {
			return fmt.Errorf("job %s: %v", data, err)
		}
		if want := reverseString(data); string(out) != want {
			return fmt.Errorf("job %s = %q, want %q", data, out, want)
		}
		return nil
	}
	// Warm up, then take the supervisor's size as the baseline.
	for i := range 4 {
		if err := do(fmt.Sprintf("warm-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := rssOf(t, p.cmd.Process.Pid)

	const foreground, background, clients = 160, 40, 8
	var bg []string
	for i := range background {
		data := fmt.Sprintf("bg-%03d", i)
		if _, err := c.SubmitBackground(ctx, "leak", []byte(data), client.Submission{}); err != nil {
			t.Fatal(err)
		}
		bg = append(bg, data)
	}
	var wg sync.WaitGroup
	errs := make(chan error, foreground)
	for g := range clients {
		wg.Go(func() {
			for i := g; i < foreground; i += clients {
				if err := do(fmt.Sprintf("fg-%03d", i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every background job ran at least once.
	ran := map[string]int{}
	waitFor(t, "every background job to run", 60*time.Second, func() bool {
		b, err := os.ReadFile(jobLog)
		if err != nil {
			return false
		}
		clear(ran)
		for line := range strings.Lines(string(b)) {
			if _, data, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t"); ok {
				ran[data]++
			}
		}
		return !slices.ContainsFunc(bg, func(d string) bool { return ran[d] == 0 })
	})
	for i := range foreground {
		if d := fmt.Sprintf("fg-%03d", i); ran[d] != 1 {
			t.Logf("foreground job %s ran %d times in the workers (requeued after a recycle)", d, ran[d])
		}
	}

	// Children were recycled at the cap, and the alert command heard warn and cap for them.
	out := p.output()
	if n := strings.Count(out, `msg=stopping program=php`); n < 2 || !strings.Contains(out, `reason="memory cap:`) {
		t.Errorf("%d children stopped, want at least 2 recycled at the memory cap", n)
	}
	started := childPIDs(p)
	var warned, capped []string
	waitFor(t, "warn and cap alerts", 20*time.Second, func() bool {
		warned, capped = nil, nil
		for _, f := range alertLines(t, alerts) {
			switch {
			case len(f) != 3:
				t.Fatalf("alert line %q", f)
			case f[0] == "warn":
				warned = append(warned, f[1])
			case f[0] == "cap":
				capped = append(capped, f[1])
			}
		}
		return len(capped) >= 2
	})
	for _, pid := range capped {
		n, _ := strconv.Atoi(pid)
		if !slices.Contains(started, n) {
			t.Errorf("cap alert for pid %s, not a child (%v)", pid, started)
		}
		if !slices.Contains(warned, pid) {
			t.Errorf("cap alert for pid %s without its warn alert (warned: %v)", pid, warned)
		}
		if !regexp.MustCompile(`msg=stopping program=php slot=\d pid=` + pid + ` `).MatchString(out) {
			t.Errorf("pid %s reached the cap but was not stopped", pid)
		}
	}
	after := rssOf(t, p.cmd.Process.Pid)
	t.Logf("%d children started, %d warn and %d cap alerts; supervisor RSS %d KiB before, %d KiB after",
		len(started), len(warned), len(capped), before>>10, after>>10)
	if after > before+32<<20 {
		t.Errorf("the supervisor grew from %d to %d bytes over 200 jobs and %d recycles", before, after, len(capped))
	}

	stopSupervise(t, p)
}

// A program that cannot start: restarted after a growing backoff, then given up with a crash-loop
// alert and exit status 1. The alert command is the case, quoted for sh -c.
func TestSupervise_CrashLoopGivesUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startSupervise(t, dir, "--max-restarts", "2", "--alert-command", `sh -c "echo ALERT >> f"`,
		"--", "sh", "-c", "echo cannot start: no config >&2; exit 1")
	if code := waitExit(t, p); code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	out := p.output()
	for _, want := range []string{
		`msg="restarting after a crash" program=sh slot=1 in=250ms`,
		`msg="restarting after a crash" program=sh slot=1 in=500ms`,
		`gear supervise: program "sh" gave up: crash loop: 3 crashes within 1m0s (max_restarts 2); last: exit status 1`,
		"last stderr line: cannot start: no config",
		`msg="cannot start: no config" program=sh slot=1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if n := strings.Count(out, "msg=alert event=crashed"); n != 3 || !strings.Contains(out, "msg=alert event=crash-loop") {
		t.Errorf("%d crashed alerts (want 3) and a crash-loop one", n)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != strings.Repeat("ALERT\n", 4) {
		t.Errorf("the alert command wrote %q, %v; want ALERT for each crash and the crash loop", b, err)
	}
}

// SIGTERM to the supervisor: each child gets its stop signal, a job in hand finishes and reaches
// its client, and the supervisor exits 0 once the children have.
func TestSupervise_SIGTERMLetsJobsInHandFinish(t *testing.T) {
	t.Parallel()
	addr := mustGear(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	p := startSupervise(t, dir, "-n", "2", "--stop-grace", "60s", "--", gearBin, "worker", "--server", addr, "-f", "gated", "--",
		"sh", "-c", `while [ ! -e "$0" ]; do sleep 0.01; done; tr a-z A-Z`, gate)
	testenv.WaitWorkers(t, addr, "gated", 2)
	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	job, err := c.Submit(ctx, "gated", []byte("in hand"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to be running", 20*time.Second, func() bool {
		st, err := c.Status(ctx, job.Handle())
		return err == nil && st.Running
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "both children to get SIGTERM", 20*time.Second, func() bool {
		return strings.Count(p.output(), "msg=stopping program=gear slot=") == 2
	})
	waitFor(t, "the idle child to exit", 20*time.Second, func() bool {
		return strings.Count(p.output(), "msg=stopped program=gear") == 1
	})
	select {
	case <-p.done:
		t.Fatal("the supervisor exited with a job in hand")
	default:
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := job.Wait(ctx); err != nil || string(out) != "IN HAND" {
		t.Errorf("the job in hand = %q, %v", out, err)
	}
	if code := waitExit(t, p); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	out := p.output()
	if n := strings.Count(out, `status="exit status 0" reason="supervisor stopping"`); n != 2 {
		t.Errorf("%d children exited 0 after the stop signal, want 2", n)
	}
	if strings.Contains(out, "SIGKILL") {
		t.Error("a child was killed")
	}
}

// Told the job server's HTTP API, the supervisor recycles a child whose lifetime ended only when
// the server says it runs no job: the idle copy goes (again and again, as its replacements age),
// the busy one finishes its job first and goes then.
func TestSupervise_RecyclesIdleChildFirst(t *testing.T) {
	t.Parallel()
	srv := startGear(t, nil, gearBin, "server", "--port", "0", "--http", "127.0.0.1:0")
	addr, web := listenAddr(t, srv), httpListenAddr(t, srv)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	// The job notes the PID of the gear worker running it ($PPID of its sh), then waits for gate.
	p := startSupervise(t, dir, "-n", "2", "--max-lifetime", "3s", "--lifetime-splay", "0", "--interval", "50ms",
		"--server-http", "http://"+web, "--recycle-wait", "5m",
		"--", gearBin, "worker", "--server", addr, "-f", "gated", "--",
		"sh", "-c", `echo $PPID > "$0.pid"; while [ ! -e "$0" ]; do sleep 0.01; done; tr a-z A-Z`, gate)
	testenv.WaitWorkers(t, addr, "gated", 2)
	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	job, err := c.Submit(ctx, "gated", []byte("in hand"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	var busy string
	waitFor(t, "the job to start", 20*time.Second, func() bool {
		b, err := os.ReadFile(gate + ".pid")
		busy = strings.TrimSpace(string(b))
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	stoppedRe := regexp.MustCompile(`msg=stopping program=gear slot=\d pid=(\d+) signal=terminated reason="max lifetime reached \(idle\)"`)
	stopped := func() []string {
		var pids []string
		for _, m := range stoppedRe.FindAllStringSubmatch(p.output(), -1) {
			pids = append(pids, m[1])
		}
		return pids
	}
	waitFor(t, "the idle copy to be recycled twice", 30*time.Second, func() bool { return len(stopped()) >= 2 })
	if slices.Contains(stopped(), busy) || strings.Contains(p.output(), "pid="+busy+" signal=") {
		t.Fatalf("the child running a job (pid %s) was stopped", busy)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := job.Wait(ctx); err != nil || string(out) != "IN HAND" {
		t.Fatalf("the job = %q, %v", out, err)
	}
	waitFor(t, "the busy child to be recycled once idle", 30*time.Second, func() bool { return slices.Contains(stopped(), busy) })
	stopSupervise(t, p)
}

// SIGHUP re-reads the config: a removed program stops, an added one starts, a changed one is
// restarted, a count change adds a copy, an unchanged program is left alone; a broken file is
// logged and changes nothing.
func TestSupervise_SIGHUPReloadsConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "supervise.toml")
	prog := func(name, extra string) string {
		return fmt.Sprintf("[[program]]\nname = %q\ncommand = \"sh -c 'exec sleep 600'\"\n%s\n", name, extra)
	}
	write := func(doc string) {
		if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(prog("keep", "") + prog("grow", "") + prog("gone", "") + prog("edit", ""))
	p := startSupervise(t, dir, "--config", cfg)
	waitFor(t, "four children", 20*time.Second, func() bool { return len(childPIDs(p)) == 4 })
	keepRe := regexp.MustCompile(`msg=started program=keep slot=1 pid=(\d+)`)
	keep := keepRe.FindStringSubmatch(p.output())[1]

	write(prog("keep", "") + prog("grow", "count = 2") + prog("edit", `env = { CHANGED = "yes" }`) + prog("add", ""))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", 20*time.Second, func() bool {
		return strings.Contains(p.output(), "msg=\"configuration reloaded\" added=1 removed=1 changed=1 resized=1 unchanged=1")
	})
	waitFor(t, "seven children started in all", 20*time.Second, func() bool { return len(childPIDs(p)) == 7 })
	out := p.output()
	for _, want := range []string{"msg=started program=grow slot=2", "msg=started program=add slot=1",
		`msg=stopping program=gone slot=1`, `reason="program removed from the configuration"`,
		`msg=stopping program=edit slot=1`, `reason="program its configuration changed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("after the reload the log lacks %q", want)
		}
	}
	if strings.Contains(out, "program=keep slot=1 pid="+keep+" signal=") || strings.Count(out, "msg=started program=keep") != 1 {
		t.Error("the unchanged program was restarted")
	}

	write("[[program]]\nname = \"keep\"\ncomand = \"x\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refused reload", 20*time.Second, func() bool {
		return strings.Contains(p.output(), `msg="SIGHUP: configuration not reloaded, the running one stays"`)
	})
	if n := strings.Count(p.output(), "msg=stopping"); n != 2 {
		t.Errorf("%d children stopped after a broken reload, want still 2", n)
	}
	stopSupervise(t, p)
}

// The README's PHP example, under gear supervise as the README runs it: it serves reverse, and
// stops cleanly on SIGTERM.
func TestSupervise_READMEPHPExample(t *testing.T) {
	t.Parallel()
	needPHPGearman(t)
	addr := mustGear(t)
	script, err := filepath.Abs("../../examples/php/reverse_worker.php")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	p := startSupervise(t, t.TempDir(), "-n", "2", "--memory-cap", "256MiB", "--server", addr, "--", "php", script, host, port)
	testenv.WaitWorkers(t, addr, "reverse", 2)
	c := guardClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := c.Do(ctx, "reverse", []byte("supervised PHP"), client.Submission{}); err != nil || string(out) != "PHP desivrepus" {
		t.Fatalf("reverse = %q, %v", out, err)
	}
	stopSupervise(t, p)
	if n := strings.Count(p.output(), `status="exit status 0" reason="supervisor stopping"`); n != 2 {
		t.Errorf("%d PHP workers exited 0 on SIGTERM, want 2", n)
	}
}
