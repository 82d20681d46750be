package faillog

import (
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/gearhq/gear/internal/syncbuf"
)

// A run of failures longer than Every gets a line per period, with the failures since the last
// one; the success after it one line with them all; a new run starts over.
func TestRun_Paced(t *testing.T) {
	var log syncbuf.Buffer
	l := slog.New(slog.NewTextHandler(&log, nil))
	f := Run{Failure: "write failed", Recovery: "writes succeed again", Count: "failed_writes", Level: slog.LevelError}
	down := errors.New("down")
	for range 5 {
		f.Failed(l, down, "try", 1)
	}
	if !f.Failing() || f.Since().IsZero() {
		t.Fatalf("failing %v since %v during a run", f.Failing(), f.Since())
	}
	f.lastLine = f.lastLine.Add(-Every) // a period passes
	f.Failed(l, down, "try", 2)
	f.Failed(l, down, "try", 3)
	f.OK(l)
	f.OK(l)
	if f.Failing() || !f.Since().IsZero() {
		t.Fatalf("failing %v since %v after a success", f.Failing(), f.Since())
	}
	f.Failed(l, down) // a new run
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	want := []string{
		`level=ERROR msg="write failed" err=down try=1$`,
		`level=ERROR msg="write failed" err=down try=2 failed_writes=5 failing_for=\S+$`,
		`level=INFO msg="writes succeed again" failed_writes=7 failing_for=\S+$`,
		`level=ERROR msg="write failed" err=down$`,
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s", log.String())
	}
	for i, w := range want {
		if !regexp.MustCompile(w).MatchString(lines[i]) {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
}
