package interop

import (
	"slices"
	"strings"
	"testing"
)

// TestPerl drives a Perl Gearman::Worker with Gearman::Client calls.
func TestPerl(t *testing.T) {
	t.Parallel()
	needPerl(t)
	g := startGear(t, nil)
	pfx := prefix(t)
	w := g.startScriptWorker(t, "perl", pfx, "perl-w1", false)

	for _, prio := range []string{"normal", "high", "low"} {
		t.Run("do_task "+prio, func(t *testing.T) {
			data := "hello " + prio
			r := g.perl(t, "do", pfx+".rev", data, prio)
			want := reverse(data)
			if r.Result == nil || *r.Result != want || !slices.Equal(r.Events, []string{"complete:" + want}) {
				t.Errorf("do_task: result %s events %q, want %q", show(r.Result), r.Events, want)
			}
		})
	}

	t.Run("dispatch_background", func(t *testing.T) {
		before := len(w.jobs(t))
		r := g.perl(t, "bg", pfx+".rev", "in the background")
		// Gearman::Client returns "HOST:PORT//HANDLE".
		handle, ok := strings.CutPrefix(r.Handle, g.addr()+"//")
		if !ok || handle == "" {
			t.Fatalf("dispatch_background returned %q, want %q", r.Handle, g.addr()+"//HANDLE")
		}
		if got, want := w.waitJob(t, before+1), (jobLine{"rev", handle, "in the background"}); got != want {
			t.Errorf("the worker ran %+v, want %+v", got, want)
		}
	})

	t.Run("task set", func(t *testing.T) {
		r := g.perl(t, "taskset", "abc", pfx+".progress", pfx+".fail", pfx+".rev")
		want := [][]string{
			{"data:d1", "status:1/2", "warning:w1", "data:d2", "status:2/2", "complete:done:abc"},
			{"fail"},
			{"complete:cba"},
		}
		if !slices.EqualFunc(r.Tasks, want, slices.Equal) {
			t.Errorf("task callbacks %q, want %q", r.Tasks, want)
		}
	})

	t.Run("exception", func(t *testing.T) {
		// Gearman::Worker answers a job that died with WORK_EXCEPTION and then WORK_FAIL. Gear must
		// take the WORK_FAIL silently: an ERROR reply makes Gearman::Worker::work die.
		stillServes := func(t *testing.T, data string) {
			t.Helper()
			c := start(t, nil, "perl", testdata(t, "client.pl"), g.host, g.port, "do", pfx+".rev", data)
			waitFor(t, "the Perl worker to serve another job", func() (bool, string) {
				if w.exited() {
					t.Fatalf("the Perl worker died: %v\nstderr: %s", w.err, w.stderr.String())
				}
				return c.exited(), ""
			})
			var r perlResult
			decodeJSON(t, "client.pl do", c.stdout.String(), &r)
			if r.Result == nil || *r.Result != reverse(data) {
				t.Errorf("do_task after the exception: result %s events %q, want %q", show(r.Result), r.Events, reverse(data))
			}
		}

		r := g.perl(t, "do_exceptions", pfx+".exc", "x")
		if want := []string{"exception:perl boom: x\n"}; r.Result != nil || !slices.Equal(r.Events, want) {
			t.Errorf("do_task with exceptions: result %s callbacks %q, want none and %q", show(r.Result), r.Events, want)
		}
		stillServes(t, "still alive")

		// A client that did not ask for exceptions sees a plain failure.
		r = g.perl(t, "do", pfx+".exc", "y")
		if want := []string{"fail"}; r.Result != nil || !slices.Equal(r.Events, want) {
			t.Errorf("do_task without exceptions: result %s callbacks %q, want %q", show(r.Result), r.Events, want)
		}
		stillServes(t, "alive again")
		if log := w.stderr.String(); strings.Contains(log, "unexpected packet") {
			t.Errorf("the Perl worker got a packet it did not expect:\n%s", log)
		}
	})
	if !t.Failed() {
		g.waitStatus(t, pfx+".rev", funcStatus{0, 0, 1}) // nothing left over, the worker still there
	}
}
