package protocol

import (
	"reflect"
	"strings"
	"testing"
)

// lines splits a rendered list into its lines without the closing ".".
func lines(t *testing.T, b []byte) []string {
	t.Helper()
	s := string(b)
	if !strings.HasSuffix(s, ".\n") {
		t.Fatalf("list %q does not end with .", s)
	}
	s = strings.TrimSuffix(s, ".\n")
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// Every view renders as gearmand writes it and parses back into the same struct.
func TestViews_RenderAndParse(t *testing.T) {
	fs := []FunctionStatus{{Name: "a", Total: 3, Running: 1, Workers: 2}, {Name: "tab\tname", Total: 0, Running: 0, Workers: 0}}
	if got := string(AppendStatus(nil, fs)); got != "a\t3\t1\t2\ntab\tname\t0\t0\t0\n.\n" {
		t.Fatalf("status %q", got)
	}
	if back, err := ParseStatus(lines(t, AppendStatus(nil, fs))); err != nil || !reflect.DeepEqual(back, fs) {
		t.Fatalf("status back %+v %v", back, err)
	}
	ps := []PriorityStatus{{Name: "a", High: 1, Normal: 2, Low: 3, Workers: 4}}
	if back, err := ParsePriorityStatus(lines(t, AppendPriorityStatus(nil, ps))); err != nil || !reflect.DeepEqual(back, ps) {
		t.Fatalf("prioritystatus back %+v %v", back, err)
	}
	ws := []WorkerInfo{{FD: "7", IP: "::1", ID: "w", Functions: []string{"a", "b"}}, {FD: "9", IP: "10.0.0.1", ID: "-", Functions: []string{}}}
	if got := string(AppendWorkers(nil, ws)); got != "7 ::1 w : a b\n9 10.0.0.1 - :\n.\n" {
		t.Fatalf("workers %q", got)
	}
	if back, err := ParseWorkers(lines(t, AppendWorkers(nil, ws))); err != nil || !reflect.DeepEqual(back, ws) {
		t.Fatalf("workers back %+v %v", back, err)
	}
	js := []JobInfo{{Handle: "H:x:1", Retries: 2, Queued: true}, {Handle: "H:x:2"}}
	if got := string(AppendJobs(nil, js)); got != "H:x:1\t2\t0\t1\nH:x:2\t0\t0\t0\n.\n" {
		t.Fatalf("jobs %q", got)
	}
	if back, err := ParseJobs(lines(t, AppendJobs(nil, js))); err != nil || !reflect.DeepEqual(back, js) {
		t.Fatalf("jobs back %+v %v", back, err)
	}
	if back := ParseUniqueJobs(lines(t, AppendUniqueJobs(nil, []string{"u1", "u2"}))); !reflect.DeepEqual(back, []string{"u1", "u2"}) {
		t.Fatalf("unique back %q", back)
	}
	st := StoreInfo{Engine: "pebble", Path: "/d", Sync: "always", Jobs: 5, LastSync: "2026-12-03T06:00:00Z"}
	if got := string(AppendStore(nil, st)); got != "engine\tpebble\npath\t/d\nsync\talways\njobs\t5\nlast_sync\t2026-12-03T06:00:00Z\nlast_error\t-\n.\n" {
		t.Fatalf("store %q", got)
	}
	if back, err := ParseStore(lines(t, AppendStore(nil, st))); err != nil || back != st {
		t.Fatalf("store back %+v %v", back, err)
	}
	if got := string(AppendStore(nil, StoreInfo{Engine: "memory"})); got != "engine\tmemory\n.\n" {
		t.Fatalf("memory store %q", got)
	}
}
