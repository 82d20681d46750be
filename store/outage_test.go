package store

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/syncbuf"
	"github.com/gearhq/gear/internal/testpg"
)

// A database down under load fails a batch per submit: the log gets the first failure, then
// nothing more until faillog.Every has passed, and one line when writes succeed again.
func TestPostgres_OutageDoesNotFloodTheLog(t *testing.T) {
	url := testpg.NewDB(t)
	proxy := testpg.Shared(t).NewProxy(t)
	var log syncbuf.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	p, err := OpenPostgres(ctx, PostgresOptions{URL: proxy.URL(url), Owner: "H:f", Sync: SyncAlways,
		Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mustAdd(t, p, job(1, 1))
	proxy.Cut()
	const failing = 20
	for seq := uint64(2); seq < 2+failing; seq++ {
		if err := add(p, job(seq, 1)); err == nil {
			t.Fatalf("Add %d succeeded with the database down", seq)
		}
	}
	proxy.Heal()
	deadline := time.Now().Add(waitTimeout)
	for seq := uint64(100); add(p, job(seq, 1)) != nil; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("the store did not recover")
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := log.String()
	if n := strings.Count(out, `msg="store write failed"`); n != 1 {
		t.Errorf("%d failed writes logged %d lines, want 1:\n%s", failing, n, out)
	}
	m := regexp.MustCompile(`level=INFO msg="store writes succeed again" failed_writes=(\d+) failing_for=\S+`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("no line saying the writes succeed again after %d failures:\n%s", failing, out)
	} else if n, _ := strconv.Atoi(m[1]); n < failing {
		t.Errorf("the store says %d writes failed, want at least %d:\n%s", n, failing, out)
	}
	if st := p.Stats(); st.CommitErrors < failing {
		t.Errorf("%d commit errors counted, want at least %d", st.CommitErrors, failing)
	}
}
