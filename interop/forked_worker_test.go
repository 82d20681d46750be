package interop

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/server"
)

// A Perl worker forked from a parent that holds its socket, then killed, leaves a sleeping worker
// that never reads its NOOP on a connection that stays open (issue 11). Under wake-one a job must
// still reach the other sleeping worker of its function: the unresponsive one is passed over after
// the wake timeout.
func TestForkedWorkerKilled_JobReachesTheOtherWorker(t *testing.T) {
	needPerl(t)
	g := startGear(t, func(o *server.Options) { o.WakeTimeout = 300 * time.Millisecond })
	pfx := prefix(t)
	fn := pfx + ".rev"

	forked := start(t, nil, "perl", testdata(t, "forked_worker.pl"), g.host, g.port, fn, "forked")
	var child int
	waitFor(t, "the forked child to start", func() (bool, string) {
		m := regexp.MustCompile(`child (\d+)`).FindStringSubmatch(forked.stdout.String())
		if m == nil {
			return false, forked.stdout.String()
		}
		child, _ = strconv.Atoi(m[1])
		return true, ""
	})
	waitSleeping(t, g, fn, "forked")
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the forked child %d: %v", child, err)
	}

	other := g.startScriptWorker(t, "perl", pfx, "other", false)
	waitSleeping(t, g, fn, other.id)

	// The forked worker registered first, so it is first in the wake-up rotation.
	r := g.perl(t, "do", fn, "reverse me")
	if r.Result == nil || *r.Result != "em esrever" {
		t.Fatalf("the job did not run on the other worker: %+v", r)
	}
	if got := other.jobs(t); len(got) != 1 {
		t.Fatalf("the other worker ran %d jobs, want 1", len(got))
	}
	if !strings.Contains(g.log.String(), "woken worker has not asked for a job") {
		t.Fatalf("the job ran, but not through passing over the dead sleeper: the test does not test the fix")
	}
}

// waitSleeping waits until the worker with client id id, registered for fn, has sent PRE_SLEEP.
func waitSleeping(t *testing.T, g *gear, fn, id string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("worker %s to sleep", id), func() (bool, string) {
		ws := g.srv.Core().Workers()
		for _, w := range ws {
			if w.ID == id && slices.Contains(w.Functions, fn) && w.Sleeping {
				return true, ""
			}
		}
		return false, fmt.Sprint(ws)
	})
}
