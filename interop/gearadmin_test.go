package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gearhq/gear/server"
)

// TestGearadmin runs every gearadmin query against one server. Each subtest uses its own function
// names, so they only share the server.
func TestGearadmin(t *testing.T) {
	t.Parallel()
	needTools(t, "gearman", "gearadmin")
	needPHP(t)
	needPerl(t)
	g := startGear(t, nil)
	pfx := prefix(t)

	// submitBg queues a background job with `gearman -b` and returns its handle.
	submitBg := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errOut, err := run(t, nil, "gearman", g.gearman(append([]string{"-v", "-b"}, args...)...)...)
		if err != nil {
			t.Fatalf("gearman -b %s: %v (stderr %q)", strings.Join(args, " "), err, errOut)
		}
		handle, ok := strings.CutPrefix(strings.TrimSpace(out), "Task created: ")
		if !ok || handle == "" {
			t.Fatalf("gearman -v -b printed %q, want \"Task created: HANDLE\"", out)
		}
		return handle
	}

	t.Run("server-version", func(t *testing.T) {
		if got := strings.TrimSpace(g.gearadmin(t, "--server-version")); got != server.Version {
			t.Errorf("gearadmin --server-version printed %q, want %q", got, server.Version)
		}
	})

	t.Run("getpid", func(t *testing.T) {
		// The server runs inside this test binary.
		if got, want := strings.TrimSpace(g.gearadmin(t, "--getpid")), strconv.Itoa(os.Getpid()); got != want {
			t.Errorf("gearadmin --getpid printed %q, want this process's pid %s", got, want)
		}
	})

	t.Run("status and workers", func(t *testing.T) {
		wpfx := pfx + ".sw"
		phpW := g.startScriptWorker(t, "php", wpfx, "php-worker-7", false)
		perlW := g.startScriptWorker(t, "perl", wpfx, "perl-worker-8", false)
		queued := pfx + ".sw.queued"
		submitBg(t, "-f", queued, "one")
		submitBg(t, "-f", queued, "two")
		// One gate job holds one of the two workers.
		gate := filepath.Join(t.TempDir(), "gate")
		submitBg(t, "-f", wpfx+".gate", gate)
		g.waitStatus(t, wpfx+".gate", funcStatus{1, 1, 2})

		out := g.gearadmin(t, "--status")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if lines[len(lines)-1] != "." {
			t.Errorf("--status does not end with a \".\" line:\n%s", out)
		}
		fields := regexp.MustCompile(`^[^\t]+\t\d+\t\d+\t\d+$`)
		for _, l := range lines[:len(lines)-1] {
			if !fields.MatchString(l) {
				t.Errorf("--status line %q is not FUNCTION<TAB>TOTAL<TAB>RUNNING<TAB>WORKERS", l)
			}
		}
		for _, want := range []string{
			wpfx + ".gate\t1\t1\t2",
			wpfx + ".rev\t0\t0\t2",
			queued + "\t2\t0\t0",
		} {
			if !slices.Contains(lines, want) {
				t.Errorf("--status has no line %q:\n%s", want, out)
			}
		}

		out = g.gearadmin(t, "--workers")
		if !strings.HasSuffix(out, "\n.\n") {
			t.Errorf("--workers does not end with a \".\" line:\n%s", out)
		}
		var wantFns []string
		for _, f := range workerFunctions {
			wantFns = append(wantFns, wpfx+"."+f)
		}
		slices.Sort(wantFns)
		line := regexp.MustCompile(`^\d+ 127\.0\.0\.1 \S+ :( \S+)*$`)
		for _, w := range []*scriptWorker{phpW, perlW} {
			found := false
			for l := range strings.Lines(out) {
				if fns, ok := workerLine(l, w.id); ok {
					found = true
					if !line.MatchString(strings.TrimSuffix(l, "\n")) {
						t.Errorf("--workers line %q is not \"FD IP ID : FUNCTION...\"", l)
					}
					slices.Sort(fns)
					if !slices.Equal(fns, wantFns) {
						t.Errorf("--workers lists %s with %q, want %q", w.id, fns, wantFns)
					}
				}
			}
			if !found {
				t.Errorf("--workers has no line for the worker id %q:\n%s", w.id, out)
			}
		}
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		g.waitStatus(t, wpfx+".gate", funcStatus{0, 0, 2})
	})

	t.Run("show-jobs", func(t *testing.T) {
		fn := pfx + ".showjobs"
		h1 := submitBg(t, "-f", fn, "job1")
		h2 := submitBg(t, "-f", fn, "job2")
		out := g.gearadmin(t, "--show-jobs")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if lines[len(lines)-1] != "." {
			t.Errorf("--show-jobs does not end with a \".\" line:\n%s", out)
		}
		// HANDLE, RETRIES, IGNORE_JOB, JOB_QUEUED
		for _, h := range []string{h1, h2} {
			if want := h + "\t0\t0\t1"; !slices.Contains(lines, want) {
				t.Errorf("--show-jobs has no line %q:\n%s", want, out)
			}
		}
	})

	t.Run("show-unique-jobs", func(t *testing.T) {
		fn, unique := pfx+".showuniq", "the-unique-id-42"
		submitBg(t, "-u", unique, "-f", fn, "data")
		out := g.gearadmin(t, "--show-unique-jobs")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if !slices.Contains(lines, unique) || lines[len(lines)-1] != "." {
			t.Errorf("--show-unique-jobs does not list %q and end with \".\":\n%s", unique, out)
		}
	})

	t.Run("cancel-job", func(t *testing.T) {
		fn := pfx + ".cancel"
		cancelled := submitBg(t, "-f", fn, "cancel-me")
		submitBg(t, "-f", fn, "keep-me")
		if out := strings.TrimSpace(g.gearadmin(t, "--cancel-job", cancelled)); out != "OK" {
			t.Fatalf("gearadmin --cancel-job %s printed %q, want OK", cancelled, out)
		}
		g.waitStatus(t, fn, funcStatus{1, 0, 0})
		if out := g.gearadmin(t, "--show-jobs"); strings.Contains(out, cancelled+"\t") {
			t.Errorf("--show-jobs still lists the cancelled job %s:\n%s", cancelled, out)
		}
		if out := g.gearadmin(t, "--cancel-job", cancelled); strings.HasPrefix(out, "OK") {
			t.Errorf("cancelling %s twice printed %q, want an error", cancelled, out)
		}

		// A foreground client waiting on a cancelled job is told it failed.
		before := g.jobHandles(t)
		fg := start(t, nil, "gearman", g.gearman("-f", fn, "waiting")...)
		handle := g.waitNewJob(t, before)
		if out := strings.TrimSpace(g.gearadmin(t, "--cancel-job", handle)); out != "OK" {
			t.Fatalf("gearadmin --cancel-job %s printed %q, want OK", handle, out)
		}
		if err := fg.wait(t); err == nil {
			t.Errorf("the client of the cancelled foreground job exited 0 (stdout %q), want a failure", fg.stdout.String())
		}

		// libgearman always turns the exceptions option on; gearmand still sends such a client a
		// plain WORK_FAIL for a cancelled job, and PHP code tests for GEARMAN_WORK_FAIL.
		before = g.jobHandles(t)
		_, result := g.foregroundClient(t, "php", fn, "waiting too")
		handle = g.waitNewJob(t, before)
		if out := strings.TrimSpace(g.gearadmin(t, "--cancel-job", handle)); out != "OK" {
			t.Fatalf("gearadmin --cancel-job %s printed %q, want OK", handle, out)
		}
		if rc, ok := result(); ok || rc != "GEARMAN_WORK_FAIL" {
			t.Errorf("the PHP client of the cancelled job got %q (ok %v), want return code GEARMAN_WORK_FAIL", rc, ok)
		}

		ran := filepath.Join(t.TempDir(), "ran")
		if _, errOut, err := run(t, nil, "gearman", g.gearman("-w", "-c", "1", "-f", fn, "--", "sh", "-c", `cat > "$0"`, ran)...); err != nil {
			t.Fatalf("gearman -w -c 1: %v (stderr %q)", err, errOut)
		}
		if data, err := os.ReadFile(ran); err != nil || string(data) != "keep-me" {
			t.Errorf("the worker ran %q (%v), want only the job that was not cancelled, %q", data, err, "keep-me")
		}
		g.waitIdle(t, fn)
	})

	t.Run("create and drop function", func(t *testing.T) {
		fn := pfx + ".created"
		if out := strings.TrimSpace(g.gearadmin(t, "--create-function", fn)); out != "OK" {
			t.Fatalf("gearadmin --create-function printed %q, want OK", out)
		}
		if st, ok := g.status(t, fn); !ok || st != (funcStatus{0, 0, 0}) {
			t.Errorf("created function: status %v (listed %v), want 0 0 0", st, ok)
		}
		if out := strings.TrimSpace(g.gearadmin(t, "--drop-function", fn)); out != "OK" {
			t.Fatalf("gearadmin --drop-function printed %q, want OK", out)
		}
		if st, ok := g.status(t, fn); ok {
			t.Errorf("dropped function still in status: %v", st)
		}
		out := g.gearadmin(t, "--drop-function", pfx+".never-existed")
		if strings.HasPrefix(out, "OK") || !strings.Contains(out, "not found") {
			t.Errorf("dropping an unknown function printed %q, want a \"not found\" error", out)
		}
	})

	t.Run("priority-status", func(t *testing.T) {
		fn := pfx + ".priostatus"
		for _, flags := range [][]string{{"-I"}, {}, {}, {"-L"}, {"-L"}, {"-L"}} {
			submitBg(t, append(flags, "-f", fn, "x")...)
		}
		out := g.gearadmin(t, "--priority-status")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		// FUNCTION, HIGH, NORMAL, LOW, WORKERS
		if want := fmt.Sprintf("%s\t1\t2\t3\t0", fn); !slices.Contains(lines, want) || lines[len(lines)-1] != "." {
			t.Errorf("--priority-status has no line %q (or no closing \".\"):\n%s", want, out)
		}
	})
}
