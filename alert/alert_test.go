package alert

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/syncbuf"
)

func closeSender(t *testing.T, s *Sender) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// The command gets the event in its environment and as JSON on stdin, one run per event, in order;
// Close waits for the queued ones.
func TestSender_Command(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "alerts")
	var logs syncbuf.Buffer
	argv, err := ParseCommand(`sh -c 'printf "%s %s %s %s %s|" "$GEAR_ALERT_EVENT" "$GEAR_ALERT_PROGRAM" "$GEAR_ALERT_PID" "$GEAR_ALERT_BYTES" "$GEAR_ALERT_REASON" >> "$0"; cat >> "$0"' ` + QuoteCommand([]string{out}))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Command: argv, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.Send(Event{Kind: Warn, Program: "php worker", PID: 42, Bytes: 1000, Reason: "above 900"})
	s.Send(Event{Kind: Cap, Program: "php worker", PID: 42, Bytes: 2000, Reason: "at 1500"})
	closeSender(t, s)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") // "ENV...|JSON" per run
	if len(lines) != 2 {
		t.Fatalf("the command saw %q; want two runs", b)
	}
	for i, want := range []string{"warn php worker 42 1000 above 900", "cap php worker 42 2000 at 1500"} {
		env, body, _ := strings.Cut(lines[i], "|")
		var ev Event
		if err := json.Unmarshal([]byte(body), &ev); env != want || err != nil || string(ev.Kind) != strings.Fields(want)[0] ||
			ev.PID != 42 || ev.Program != "php worker" || ev.Host == "" || ev.Time.IsZero() {
			t.Errorf("run %d saw %q and %+v (%v); want %q", i, env, ev, err, want)
		}
	}
	if !strings.Contains(logs.String(), `msg=alert event=warn program="php worker" pid=42 bytes=1000 reason="above 900"`) {
		t.Errorf("the event was not logged:\n%s", logs.String())
	}
}

// The case: sh -c with a quoted redirection reaches sh as one argument.
func TestSender_ShDashCQuoting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	argv, err := ParseCommand(`sh -c "echo ALERT >> f"`)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Command: argv, Logger: slog.New(slog.DiscardHandler)})
	// The command runs in the sender's working directory; chdir is process-wide, so the relative
	// file is made absolute instead by running the same line from dir through a wrapper.
	s.opts.Command = append([]string{"env", "-C", dir}, argv...)
	s.Send(Event{Kind: Warn})
	closeSender(t, s)
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "ALERT\n" {
		t.Errorf("f = %q, %v; want ALERT", b, err)
	}
}

// The URL gets each event as JSON; errors and non-2xx answers are logged, not fatal.
func TestSender_URL(t *testing.T) {
	t.Parallel()
	got := make(chan Event, 10)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("alert request %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("alert body %q: %v", body, err)
		}
		got <- ev
	}))
	defer hs.Close()
	s := New(Options{URL: hs.URL, Logger: slog.New(slog.DiscardHandler)})
	s.Send(Event{Kind: CrashLoop, Program: "p", PID: 7, Reason: "5 crashes in a minute"})
	closeSender(t, s)
	if ev := <-got; ev.Kind != CrashLoop || ev.Program != "p" || ev.PID != 7 || ev.Reason != "5 crashes in a minute" {
		t.Errorf("posted %+v", ev)
	}

	var logs syncbuf.Buffer
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	for _, url := range []string{"http://127.0.0.1:1/alert", notFound.URL} {
		s := New(Options{URL: url, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		s.Send(Event{Kind: Warn})
		closeSender(t, s)
	}
	if n := strings.Count(logs.String(), `msg="alert URL failed"`); n != 2 || !strings.Contains(logs.String(), "404 Not Found") {
		t.Errorf("%d failures logged, want 2 (one a 404):\n%s", n, logs.String())
	}
}

// A failing or missing command is logged; a full queue drops the event with a log line instead
// of blocking the caller.
func TestSender_FailuresAndFullQueue(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, argv := range [][]string{{"sh", "-c", "exit 3"}, {filepath.Join(t.TempDir(), "missing")}} {
		s := New(Options{Command: argv, Logger: log})
		s.Send(Event{Kind: Crashed})
		closeSender(t, s)
	}
	if n := strings.Count(logs.String(), `msg="alert command failed"`); n != 2 {
		t.Errorf("%d failures logged, want 2:\n%s", n, logs.String())
	}

	gate := filepath.Join(t.TempDir(), "gate")
	s := New(Options{Command: []string{"sh", "-c", `while [ ! -e "$0" ]; do sleep 0.01; done`, gate}, Logger: log, Queue: 1})
	for range 5 { // one in delivery (waiting for the gate), one queued, the rest dropped
		s.Send(Event{Kind: Warn, Program: "full"})
	}
	if n := strings.Count(logs.String(), `msg="alert dropped`); n < 3 {
		t.Errorf("%d drops logged, want at least 3:\n%s", n, logs.String())
	}
	os.WriteFile(gate, nil, 0o644)
	closeSender(t, s)
	s.Send(Event{Kind: Warn, Program: "late"})
	if !strings.Contains(logs.String(), "the sender is closed") {
		t.Errorf("a Send after Close was not logged:\n%s", logs.String())
	}
}
