package interop

import (
	"slices"
	"strings"
	"testing"
)

// TestMixed has clients of one language served by workers of another: PHP clients and Perl workers,
// Perl clients and PHP workers, the gearman CLI and PHP workers.
func TestMixed(t *testing.T) {
	t.Parallel()
	needTools(t, "gearman")
	needPHP(t)
	needPerl(t)
	g := startGear(t, nil)
	pfx := prefix(t)
	phpFns, perlFns := pfx+".php", pfx+".perl"
	g.startScriptWorker(t, "php", phpFns, "php-mixed", false)
	g.startScriptWorker(t, "perl", perlFns, "perl-mixed", false)
	progress := []string{"data:d1", "status:1/2", "warning:w1", "data:d2", "status:2/2", "complete:done:abc"}

	t.Run("PHP client, Perl worker", func(t *testing.T) {
		r := g.php(t, "do", "normal", perlFns+".rev", "from php")
		if r.RC != "GEARMAN_SUCCESS" || r.Result == nil || *r.Result != "php morf" {
			t.Errorf("doNormal: rc %s result %s, want GEARMAN_SUCCESS %q", r.RC, show(r.Result), "php morf")
		}
		if r = g.php(t, "tasks", perlFns+".progress", "abc"); !slices.Equal(r.Events, progress) {
			t.Errorf("callbacks %q, want %q", r.Events, progress)
		}
		if r = g.php(t, "do", "normal", perlFns+".fail", "x"); r.RC != "GEARMAN_WORK_FAIL" {
			t.Errorf("doNormal of a failing job: rc %s, want GEARMAN_WORK_FAIL", r.RC)
		}
	})

	t.Run("Perl client, PHP worker", func(t *testing.T) {
		r := g.perl(t, "do", phpFns+".rev", "from perl")
		if r.Result == nil || *r.Result != "lrep morf" {
			t.Errorf("do_task: result %s events %q, want %q", show(r.Result), r.Events, "lrep morf")
		}
		if r = g.perl(t, "do", phpFns+".progress", "abc"); !slices.Equal(r.Events, progress) {
			t.Errorf("callbacks %q, want %q", r.Events, progress)
		}
		if r = g.perl(t, "do", phpFns+".fail", "x"); r.Result != nil || !slices.Equal(r.Events, []string{"fail"}) {
			t.Errorf("do_task of a failing job: result %s callbacks %q, want [fail]", show(r.Result), r.Events)
		}
	})

	t.Run("gearman CLI client, PHP worker", func(t *testing.T) {
		out, errOut, err := run(t, nil, "gearman", g.gearman("-f", phpFns+".rev", "from the cli")...)
		if err != nil || out != "ilc eht morf" {
			t.Errorf("gearman -f: %q, %v (stderr %q), want %q", out, err, errOut, "ilc eht morf")
		}
		// With -n every line is a job, sent with its newline, and results are printed as they are.
		out, errOut, err = run(t, []byte("line one\nline two\n"), "gearman", g.gearman("-n", "-f", phpFns+".rev")...)
		if want := "\neno enil\nowt enil"; err != nil || out != want {
			t.Errorf("gearman -n -f: %q, %v (stderr %q), want %q", out, err, errOut, want)
		}
		if _, errOut, err := run(t, nil, "gearman", g.gearman("-f", phpFns+".fail", "x")...); err == nil {
			t.Errorf("gearman -f of a failing job exited 0, want a failure (stderr %q)", errOut)
		}
	})

	t.Run("PHP client, gearman CLI worker", func(t *testing.T) {
		fn := pfx + ".cli.upper"
		start(t, nil, "gearman", g.gearman("-w", "-f", fn, "--", "tr", "a-z", "A-Z")...)
		g.waitWorkers(t, 1, fn)
		r := g.php(t, "do", "normal", fn, "shout")
		if r.RC != "GEARMAN_SUCCESS" || r.Result == nil || strings.TrimSpace(*r.Result) != "SHOUT" {
			t.Errorf("doNormal: rc %s result %s, want GEARMAN_SUCCESS \"SHOUT\"", r.RC, show(r.Result))
		}
	})
}
