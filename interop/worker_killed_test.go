package interop

import (
	"slices"
	"strings"
	"testing"

	"github.com/gearhq/gear/server"
)

// foregroundClient starts a foreground client of lang ("php", "perl" or "gearman") running fn on
// data, and returns it with a function that waits for it and returns its result (ok false if it
// reported a failure).
func (g *gear) foregroundClient(t *testing.T, lang, fn, data string) (p *proc, result func() (string, bool)) {
	t.Helper()
	switch lang {
	case "php":
		p = start(t, nil, "php", testdata(t, "client.php"), g.host, g.port, "do", "normal", fn, data)
		return p, func() (string, bool) {
			if err := p.wait(t); err != nil {
				t.Fatalf("php client: %v\nstderr: %s", err, p.stderr.String())
			}
			var r phpResult
			decodeJSON(t, "client.php do", p.stdout.String(), &r)
			if r.RC != "GEARMAN_SUCCESS" || r.Result == nil {
				return r.RC, false
			}
			return *r.Result, true
		}
	case "perl":
		p = start(t, nil, "perl", testdata(t, "client.pl"), g.host, g.port, "do", fn, data)
		return p, func() (string, bool) {
			if err := p.wait(t); err != nil {
				t.Fatalf("perl client: %v\nstderr: %s", err, p.stderr.String())
			}
			var r perlResult
			decodeJSON(t, "client.pl do", p.stdout.String(), &r)
			if r.Result == nil {
				return strings.Join(r.Events, " "), false
			}
			return *r.Result, true
		}
	case "gearman":
		p = start(t, nil, "gearman", g.gearman("-f", fn, data)...)
		return p, func() (string, bool) {
			if err := p.wait(t); err != nil {
				return err.Error() + ": " + p.stderr.String(), false
			}
			return p.stdout.String(), true
		}
	}
	t.Fatalf("no client for %q", lang)
	return nil, nil
}

// victim is a worker that takes one job and hangs in it.
type victim struct {
	*proc
	handle func() string // the handle of the job it hangs in, once it has one
}

// startVictim starts a worker of lang ("php", "perl" or "gearman") for pfx.rev that hangs in every
// job until it is killed.
func (g *gear) startVictim(t *testing.T, lang, pfx string) victim {
	t.Helper()
	if lang == "gearman" {
		// `gearman -w` runs the command in a child that inherits the server connection, so
		// killing the CLI alone would leave the job running: the whole process group goes.
		fn := pfx + ".rev"
		p := start(t, nil, "gearman", g.gearman("-w", "-f", fn, "--", "sleep", "600")...)
		g.waitWorkers(t, 1, fn)
		return victim{p, func() string {
			var h string
			waitFor(t, "the CLI worker to take the job", func() (bool, string) {
				st, _ := g.status(t, fn)
				if hs := g.jobHandles(t); st.running == 1 && len(hs) == 1 {
					h = hs[0]
					return true, h
				}
				return false, st.String()
			})
			return h
		}}
	}
	w := g.startScriptWorker(t, lang, pfx, lang+"-victim", true)
	return victim{w.proc, func() string { return w.waitJob(t, 1).handle }}
}

// TestWorkerKilledMidJob kills a worker while it runs a foreground job: the job goes back to the
// queue, a second worker (of another language) runs it, and the waiting client gets its result.
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	cases := []struct{ victim, rescuer, client string }{
		{"php", "perl", "php"},
		{"perl", "php", "perl"},
		{"gearman", "php", "gearman"},
	}
	for _, c := range cases {
		t.Run(c.victim+" worker killed, "+c.rescuer+" worker, "+c.client+" client", func(t *testing.T) {
			t.Parallel()
			needTools(t, "gearman", "gearadmin")
			needPHP(t)
			needPerl(t)
			g := startGear(t, nil)
			pfx := prefix(t)
			fn := pfx + ".rev"

			v := g.startVictim(t, c.victim, pfx)
			client, result := g.foregroundClient(t, c.client, fn, "abc")
			handle := v.handle()
			g.waitStatus(t, fn, funcStatus{1, 1, 1})

			v.killAndWait(t)
			// Back in the queue, with one attempt counted; the client still waits.
			g.waitStatus(t, fn, funcStatus{1, 0, 0})
			if jobs := g.admin(t, "show jobs"); !slices.Contains(strings.Split(jobs, "\n"), handle+"\t1\t0\t1") {
				t.Errorf("show jobs after the kill has no line %q:\n%s", handle+"\t1\t0\t1", jobs)
			}
			if client.exited() {
				t.Fatalf("the client gave up when the worker died: %v\nstdout: %s", client.err, client.stdout.String())
			}

			rescuer := g.startScriptWorker(t, c.rescuer, pfx, c.rescuer+"-rescuer", false)
			if got, ok := result(); !ok || got != "cba" {
				t.Errorf("the client got %q (ok %v), want %q", got, ok, "cba")
			}
			if got, want := rescuer.jobs(t), []jobLine{{"rev", handle, "abc"}}; !slices.Equal(got, want) {
				t.Errorf("the second worker ran %+v, want the same job %+v", got, want)
			}
			g.waitStatus(t, fn, funcStatus{0, 0, 1})
		})
	}
}

// TestWorkerKilledJobRetries: with Options.JobRetries = 1 a job whose worker dies is failed at once,
// and its client is told.
func TestWorkerKilledJobRetries(t *testing.T) {
	t.Parallel()
	cases := []struct{ victim, client string }{
		{"php", "gearman"},
		{"perl", "php"},
		{"gearman", "perl"},
	}
	for _, c := range cases {
		t.Run(c.victim+" worker killed, "+c.client+" client", func(t *testing.T) {
			t.Parallel()
			needTools(t, "gearman", "gearadmin")
			needPHP(t)
			needPerl(t)
			g := startGear(t, func(o *server.Options) { o.JobRetries = 1 })
			pfx := prefix(t)
			fn := pfx + ".rev"

			v := g.startVictim(t, c.victim, pfx)
			_, result := g.foregroundClient(t, c.client, fn, "abc")
			v.handle()
			g.waitStatus(t, fn, funcStatus{1, 1, 1})

			v.killAndWait(t)
			got, ok := result()
			if ok {
				t.Errorf("the client got the result %q, want a failure", got)
			}
			switch c.client {
			case "php":
				if got != "GEARMAN_WORK_FAIL" {
					t.Errorf("the PHP client's return code is %s, want GEARMAN_WORK_FAIL", got)
				}
			case "perl":
				if got != "fail" {
					t.Errorf("the Perl client's callbacks are %q, want on_fail only", got)
				}
			}
			g.waitIdle(t, fn)
			if hs := g.jobHandles(t); len(hs) != 0 {
				t.Errorf("jobs left after the failure: %q", hs)
			}
		})
	}
}
