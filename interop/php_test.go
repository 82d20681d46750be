package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPHP drives a PHP GearmanWorker with PHP GearmanClient calls.
func TestPHP(t *testing.T) {
	t.Parallel()
	needPHP(t)
	g := startGear(t, nil)
	pfx := prefix(t)
	w := g.startScriptWorker(t, "php", pfx, "php-w1", false)
	jobs := 0 // jobs the worker has started so far

	for _, prio := range []string{"normal", "high", "low"} {
		t.Run("do "+prio, func(t *testing.T) {
			r := g.php(t, "do", prio, pfx+".rev", "hello "+prio)
			if want := reverse("hello " + prio); r.RC != "GEARMAN_SUCCESS" || r.Result == nil || *r.Result != want {
				t.Errorf("do %s: rc %s result %s, want GEARMAN_SUCCESS %q", prio, r.RC, show(r.Result), want)
			}
			jobs++
		})
	}

	for _, prio := range []string{"normal", "high", "low"} {
		t.Run("background "+prio, func(t *testing.T) {
			data := "bg-" + prio
			r := g.php(t, "bg", prio, pfx+".rev", data)
			if r.RC != "GEARMAN_SUCCESS" || r.Handle == "" {
				t.Fatalf("background %s: rc %s handle %q", prio, r.RC, r.Handle)
			}
			jobs++
			if got, want := w.waitJob(t, jobs), (jobLine{"rev", r.Handle, data}); got != want {
				t.Errorf("the worker ran %+v, want %+v", got, want)
			}
		})
	}

	t.Run("jobStatus", func(t *testing.T) {
		gate := filepath.Join(t.TempDir(), "gate")
		r := g.php(t, "bg", "normal", pfx+".gate", gate)
		if r.RC != "GEARMAN_SUCCESS" || r.Handle == "" {
			t.Fatalf("doBackground: rc %s handle %q", r.RC, r.Handle)
		}
		jobs++
		// The worker reports 1/2, then waits for the gate.
		running := []any{true, true, 1.0, 2.0}
		waitFor(t, "jobStatus known, running, 1/2", func() (bool, string) {
			st := g.php(t, "status", r.Handle).Status
			return slices.Equal(st, running), fmt.Sprint(st)
		})
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "jobStatus to forget the finished job", func() (bool, string) {
			st := g.php(t, "status", r.Handle).Status
			return slices.Equal(st, []any{false, false, 0.0, 0.0}), fmt.Sprint(st)
		})
		if st := g.php(t, "status", "H:no-such-job:1").Status; !slices.Equal(st, []any{false, false, 0.0, 0.0}) {
			t.Errorf("jobStatus of an unknown handle: %v, want [false false 0 0]", st)
		}
	})

	t.Run("callbacks in order", func(t *testing.T) {
		r := g.php(t, "tasks", pfx+".progress", "abc")
		jobs++
		want := []string{"data:d1", "status:1/2", "warning:w1", "data:d2", "status:2/2", "complete:done:abc"}
		if !slices.Equal(r.Events, want) {
			t.Errorf("callbacks %q, want %q", r.Events, want)
		}
	})

	t.Run("exception callback", func(t *testing.T) {
		r := g.php(t, "tasks", pfx+".exc", "x")
		jobs++
		if want := []string{"exception:php boom: x"}; !slices.Equal(r.Events, want) {
			t.Errorf("callbacks %q, want %q", r.Events, want)
		}
		// libgearman always asks for exceptions, so doNormal sees one too.
		r = g.php(t, "do", "normal", pfx+".exc", "y")
		jobs++
		if r.RC != "GEARMAN_WORK_EXCEPTION" {
			t.Errorf("doNormal of a job that threw: rc %s, want GEARMAN_WORK_EXCEPTION", r.RC)
		}
	})

	t.Run("work fail", func(t *testing.T) {
		r := g.php(t, "do", "normal", pfx+".fail", "x")
		jobs++
		if r.RC != "GEARMAN_WORK_FAIL" {
			t.Errorf("doNormal of a failing job: rc %s result %s, want GEARMAN_WORK_FAIL", r.RC, show(r.Result))
		}
		r = g.php(t, "tasks", pfx+".fail", "x")
		jobs++
		if want := []string{"fail"}; !slices.Equal(r.Events, want) {
			t.Errorf("callbacks %q, want %q", r.Events, want)
		}
	})

	if got := len(w.jobs(t)); got != jobs {
		t.Errorf("the worker ran %d jobs, want %d (one per call)", got, jobs)
	}
	if w.exited() {
		t.Errorf("the PHP worker exited: %v\n%s", w.err, w.stderr.String())
	}
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}
