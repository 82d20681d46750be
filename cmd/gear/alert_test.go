package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/worker"
)

// alertURLHook posts a JSON document describing the warning.
func TestAlertURL(t *testing.T) {
	t.Parallel()
	type alert struct {
		Event string `json:"event"`
		Bytes uint64 `json:"bytes"`
		PID   int    `json:"pid"`
		Host  string `json:"host"`
	}
	got := make(chan alert, 10)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("alert request %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("alert body %q: %v", body, err)
		}
		got <- a
	}))
	defer hs.Close()
	host, _ := os.Hostname()
	check := func(a alert, bytes uint64) {
		t.Helper()
		if a.Event != "worker_memory_warning" || a.Bytes != bytes || a.PID != os.Getpid() || a.Host != host {
			t.Errorf("alert %+v; want worker_memory_warning, %d bytes, pid %d, host %q", a, bytes, os.Getpid(), host)
		}
	}
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	alertURLHook(hs.URL, log)(12345)
	check(<-got, 12345)

	// As the worker's guard calls it: crossing the warning threshold posts once.
	addr, _ := testenv.StartGear(t)
	samples := make(chan struct{}) // unbuffered: a receive waits for a sample taken after it began
	w, err := worker.New(worker.Options{Servers: []string{addr}, Guard: worker.Guard{
		WarnBytes: 500, Interval: 2 * time.Millisecond, OnMemoryWarning: alertURLHook(hs.URL, log),
		Sample: func() uint64 {
			select {
			case samples <- struct{}{}:
			default:
			}
			return 700
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	w.Register("au.fn", testenv.Reverse, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case a := <-got:
		check(a, 700)
	case <-time.After(10 * time.Second):
		t.Fatal("no alert posted")
	}
	for range 10 {
		<-samples
	}
	if n := len(got); n != 0 {
		t.Errorf("%d more alerts for one crossing", n)
	}

	// An unreachable URL, or one that answers with an error, is logged, not fatal.
	alertURLHook("http://127.0.0.1:1/alert", log)(1)
	if !strings.Contains(logs.String(), `msg="alert URL failed" url=http://127.0.0.1:1/alert`) {
		t.Errorf("an unreachable alert URL was not logged:\n%s", logs.String())
	}
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	alertURLHook(notFound.URL, log)(1)
	if !strings.Contains(logs.String(), `status="404 Not Found"`) {
		t.Errorf("a 404 from the alert URL was not logged:\n%s", logs.String())
	}
}

// alertCommandHook runs a command (no shell of its own) with the size and PID in its environment.
func TestAlertCommand(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	out := filepath.Join(t.TempDir(), "alert")
	hook := alertCommandHook([]string{"sh", "-c", `printf '%s %s' "$GEAR_WORKER_MEMORY" "$GEAR_WORKER_PID" > "$0"`, out}, log)
	hook(4242)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("4242 %d", os.Getpid()); string(b) != want {
		t.Errorf("the alert command saw %q, want %q", b, want)
	}
	if logs.String() != "" {
		t.Errorf("a successful alert command logged:\n%s", logs.String())
	}
	alertCommandHook(nil, log)(1)                            // nothing to run
	alertCommandHook([]string{"sh", "-c", "exit 3"}, log)(1) // a failing command is logged, not fatal
	alertCommandHook([]string{filepath.Join(t.TempDir(), "missing")}, log)(1)
	if n := strings.Count(logs.String(), `msg="alert command failed"`); n != 2 {
		t.Errorf("%d failures logged, want 2:\n%s", n, logs.String())
	}
}
