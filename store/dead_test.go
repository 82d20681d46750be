package store

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testpg"
)

// loadDead reads a store's dead set as handle → data.
func loadDead(tb testing.TB, s Store) map[string]string {
	tb.Helper()
	got := map[string]string{}
	if err := s.(DeadStore).LoadDead(func(handle string, data []byte) error {
		if _, ok := got[handle]; ok {
			tb.Errorf("LoadDead gave %q twice", handle)
		}
		got[handle] = string(data)
		return nil
	}); err != nil {
		tb.Fatalf("LoadDead: %v", err)
	}
	return got
}

// mustDead runs a dead set write and fails the test on an error.
func mustDead(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// The dead set survives a restart: adds, an upsert of a handle, deletions (of a handle never added
// too); handles are bytes, and data may be empty. A LoadDead callback's error stops it.
func TestStore_DeadSetSurvivesReopen(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		ds := s.Store.(DeadStore)
		mustDead(t, ds.AddDead("H:x:1", []byte(`{"n":1}`)))
		mustDead(t, ds.AddDead("H:x:2", []byte(`{"n":2}`)))
		mustDead(t, ds.AddDead("H:x:3", []byte(`{"n":3}`)))
		mustDead(t, ds.AddDead("H:x:\x00\xff", nil))
		mustDead(t, ds.DeleteDead("H:x:2"))
		mustDead(t, ds.DeleteDead("H:x:never"))
		mustDead(t, ds.AddDead("H:x:3", []byte(`{"n":3,"again":true}`)))

		r := s.reopen(t)
		want := map[string]string{"H:x:1": `{"n":1}`, "H:x:3": `{"n":3,"again":true}`, "H:x:\x00\xff": ""}
		if got := loadDead(t, r.Store); !maps.Equal(got, want) {
			t.Fatalf("dead set after reopen: %q, want %q", got, want)
		}
		stop := errors.New("stop")
		calls := 0
		err := r.Store.(DeadStore).LoadDead(func(string, []byte) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("LoadDead with a failing callback: %v after %d calls", err, calls)
		}
		mustDead(t, r.Store.(DeadStore).DeleteDead("H:x:1"))
		delete(want, "H:x:1")
		if got := loadDead(t, r.reopen(t).Store); !maps.Equal(got, want) {
			t.Fatalf("dead set after a deletion and a reopen: %q, want %q", got, want)
		}
	})
}

// Owners' dead sets are apart; a closed store refuses dead set writes.
func TestPostgres_DeadSetPerOwnerAndClosed(t *testing.T) {
	url := testpg.NewDB(t)
	a := mustOpenPG(t, url, "H:a", SyncAlways)
	b := mustOpenPG(t, url, "H:b", SyncAlways)
	mustDead(t, a.AddDead("H:a:1", []byte("a")))
	mustDead(t, b.AddDead("H:a:1", []byte("b's own"))) // the same handle under another owner
	mustDead(t, b.DeleteDead("H:a:2"))
	for _, s := range []*Postgres{a, b} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.AddDead("H:late", []byte("x")); err == nil {
			t.Errorf("AddDead on a closed store: no error")
		}
		if err := s.DeleteDead("H:late"); err == nil {
			t.Errorf("DeleteDead on a closed store: no error")
		}
	}
	if got := loadDead(t, mustOpenPG(t, url, "H:a", SyncAlways)); !maps.Equal(got, map[string]string{"H:a:1": "a"}) {
		t.Errorf("H:a's dead set: %q", got)
	}
	if got := loadDead(t, mustOpenPG(t, url, "H:b", SyncAlways)); !maps.Equal(got, map[string]string{"H:a:1": "b's own"}) {
		t.Errorf("H:b's dead set: %q", got)
	}
}

// Dead set writes queued while a batch is in flight go into the next batch together, folded by
// handle: the later write wins (an add then a delete writes nothing, a delete then an add upserts).
func TestPostgres_DeadSetFoldsInOneBatch(t *testing.T) {
	url := testpg.NewDB(t)
	p := mustOpenPG(t, url, "H:test", SyncAlways)
	ctx := context.Background()
	mustDead(t, p.AddDead("H:test:2", []byte("old")))
	mustDead(t, p.AddDead("H:test:4", []byte("old")))
	mustAdd(t, p, job(1, 1)) // the Add's batch is the dead jobs' or a later one

	// Hold the batches: a transaction of the test locks the server row, which every batch's
	// gear_hold waits for.
	hold, err := sqlConn(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(ctx, `SELECT 1 FROM gear_servers WHERE owner = 'H:test' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	mustDead(t, p.AddDead("H:test:blocked", []byte("b")))
	waitQueueTaken(t, p)
	commits := p.Stats().Commits

	mustDead(t, p.AddDead("H:test:1", []byte("gone")))
	mustDead(t, p.DeleteDead("H:test:1"))
	mustDead(t, p.DeleteDead("H:test:2"))
	mustDead(t, p.AddDead("H:test:2", []byte("new")))
	mustDead(t, p.AddDead("H:test:3", []byte("v1")))
	mustDead(t, p.AddDead("H:test:3", []byte("v2")))
	mustDead(t, p.DeleteDead("H:test:4"))
	done := make(chan error, 1)
	p.Add(job(2, 1), func(err error) { done <- err })
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := p.Stats().Commits - commits; n != 2 {
		t.Errorf("%d batches after the held one was let go, want 2 (it and the folded one)", n)
	}
	want := map[string]string{"H:test:blocked": "b", "H:test:2": "new", "H:test:3": "v2"}
	if got := loadDead(t, p); !maps.Equal(got, want) {
		t.Fatalf("dead set: %q, want %q", got, want)
	}
	p.mu.Lock()
	pending := len(p.deadPending)
	p.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d dead jobs still counted pending after their commit", pending)
	}
}

// waitQueueTaken waits until the committer has taken everything queued.
func waitQueueTaken(tb testing.TB, p *Postgres) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		p.mu.Lock()
		n := len(p.queue)
		p.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("the committer did not take the queue")
		}
		time.Sleep(time.Millisecond)
	}
}
