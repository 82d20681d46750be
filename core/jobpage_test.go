package core

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// JobPage against the whole list sorted the slow way, for every filter and many windows: the page
// must be exactly that list's slice, and the total its length.
func TestJobPage_MatchesTheFullListSorted(t *testing.T) {
	st := newHeldStore(t)
	c, clock := newTestCore(t, func(o *Options) { o.Store = st })
	client, worker, admin := connect(t, c), connect(t, c), connect(t, c)
	submit := map[string]protocol.Type{"high": protocol.SubmitJobHigh, "normal": protocol.SubmitJob, "low": protocol.SubmitJobLow}
	n := 0
	for i := range 30 {
		fn := []string{"beta", "alpha", "gamma"}[i%3]
		prio := []string{"low", "normal", "high", "normal"}[i%4]
		client.send(submit[prio], fn, "", fmt.Sprintf("job %d", i))
		n++
	}
	// two running (one of alpha, one of beta), two scheduled due in the reverse of their
	// submission order, one background job still being stored
	worker.send(protocol.CanDo, "alpha")
	worker.send(protocol.GrabJob)
	worker.send(protocol.CanDo, "beta")
	worker.send(protocol.CantDo, "alpha")
	worker.send(protocol.GrabJob)
	now := clock.Now()
	client.send(protocol.SubmitJobEpoch, "alpha", "", fmt.Sprint(now.Add(time.Hour).Unix()), "later")
	client.send(protocol.SubmitJobEpoch, "beta", "", fmt.Sprint(now.Add(time.Minute).Unix()), "sooner")
	st.releaseAll(t, 2) // epoch jobs are background jobs: stored first
	client.send(protocol.SubmitJobBg, "gamma", "", "stored")
	// a queued job cancelled: its ring entry stays behind, lazily removed
	if reply, _ := c.Admin(recorder{}, admin.p, []byte("cancel job "+handle(5))); !strings.HasPrefix(string(reply), "OK") {
		t.Fatalf("cancel job: %q", reply)
	}

	all := c.Jobs()
	rank := map[string]int{"running": 0, "queued": 1, "scheduled": 2, "persisting": 3}
	prioRank := map[string]int{"high": 0, "normal": 1, "low": 2}
	details := map[string]protocol.JobInfo{}
	for _, j := range all {
		d, ok := c.Job(j.Handle)
		if !ok {
			t.Fatalf("job %s listed but not found", j.Handle)
		}
		details[j.Handle] = d
	}
	slices.SortStableFunc(all, func(a, b protocol.JobInfo) int {
		if c := cmp.Compare(rank[a.State], rank[b.State]); c != 0 {
			return c
		}
		switch a.State {
		case "queued":
			if c := cmp.Compare(a.Function, b.Function); c != 0 {
				return c
			}
			return cmp.Compare(prioRank[a.Priority], prioRank[b.Priority])
		case "scheduled":
			return strings.Compare(details[a.Handle].Due, details[b.Handle].Due)
		}
		return 0 // submission order, as Jobs lists them
	})
	states := map[string]int{}
	for _, j := range all {
		states[j.State]++
	}
	if want := map[string]int{"queued": n - 3, "running": 2, "scheduled": 2, "persisting": 1}; !maps.Equal(states, want) {
		t.Fatalf("jobs by state %v, want %v", states, want)
	}
	for _, fn := range []string{"", "alpha", "beta", "gamma", "nosuch"} {
		for _, state := range []string{"", "queued", "running", "scheduled", "persisting"} {
			for _, prio := range []string{"", "high", "normal", "low"} {
				var want []string
				for _, j := range all {
					if (fn == "" || j.Function == fn) && (state == "" || j.State == state) && (prio == "" || j.Priority == prio) {
						want = append(want, j.Handle)
					}
				}
				for _, w := range [][2]int{{0, 1000}, {0, 1}, {1, 3}, {3, 5}, {7, 4}, {len(want) - 1, 2}, {len(want), 3}, {len(want) + 5, 3}} {
					off, limit := max(0, w[0]), w[1]
					page, err := c.JobPage(JobFilter{Function: fn, State: state, Priority: prio}, off, limit)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for _, j := range page.Jobs {
						got = append(got, j.Handle)
						if j != details[j.Handle] {
							t.Fatalf("page has %+v, the job's own view %+v", j, details[j.Handle])
						}
					}
					wantPage := want[min(off, len(want)):min(off+limit, len(want))]
					if page.Total != len(want) || !slices.Equal(got, wantPage) {
						t.Fatalf("fn=%q state=%q prio=%q offset %d limit %d: total %d %q, want %d %q",
							fn, state, prio, off, limit, page.Total, got, len(want), wantPage)
					}
				}
			}
		}
	}
	if _, err := c.JobPage(JobFilter{State: "done"}, 0, 10); err == nil {
		t.Fatal("state=done accepted")
	}
	if _, err := c.JobPage(JobFilter{Priority: "urgent"}, 0, 10); err == nil {
		t.Fatal("priority=urgent accepted")
	}
	st.releaseAll(t, 1)
}

func TestJobDetail_Fields(t *testing.T) {
	c, clock := newTestCore(t, func(o *Options) { o.Observer = ObserverFunc(func(Event) {}) })
	client, worker := connect(t, c), connect(t, c)
	client.send(protocol.SubmitJob, "fn", "u1", "hello\x00\nworld")
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.GrabJob)
	j, ok := c.Job(handle(1))
	if !ok {
		t.Fatal("job not found")
	}
	want := protocol.JobInfo{Handle: handle(1), Function: "fn", Unique: "u1", Priority: "normal", State: "running",
		Clients: 1, Size: 12, Preview: `hello\x00\nworld`, Worker: fmt.Sprint(worker.p.ID),
		Created: clock.Now().UTC().Format(time.RFC3339Nano)}
	if j != want {
		t.Fatalf("job view %+v, want %+v", j, want)
	}
}

func TestPreview(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 8, ""},
		{"plain", 8, "plain"},
		{"exactly8", 8, "exactly8"},
		{"longer than eight", 8, "longer t…"},
		{"<script>\"'", 16, `<script>\"'`},
		{"tab\there\x7f\xff", 16, `tab\there\x7f\xff`},
		{"héllo wörld", 6, "héllo…"},
		{"ééééé", 5, "éé…"},                        // the third é would be split: left out, not escaped
		{"zero\u200bwidth", 16, `zero\u200bwidth`}, // invisible characters are shown as escapes
	} {
		if got := Preview([]byte(c.in), c.n); got != c.want {
			t.Errorf("Preview(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
