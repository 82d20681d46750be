package server

import (
	"context"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Imported jobs are stored before Import returns, keep priority and due time, and importing the
// same jobs again (an import cut short and redone) adds none: they coalesce on function and unique.
func TestImport_StoredOnceInPriorityOrder(t *testing.T) {
	st, err := store.OpenPebble(t.TempDir(), store.SyncAlways, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := mustStartServer(t, func(o *Options) { o.Store = st })
	jobs := []store.Job{
		{Function: "fn", Unique: "n", Data: []byte("normal"), Priority: 1},
		{Function: "fn", Unique: "l", Data: []byte("low"), Priority: 2},
		{Function: "fn", Unique: "h", Data: []byte("high"), Priority: 0},
		{Function: "fn", Unique: "e", Data: []byte("epoch"), Priority: 1, When: time.Now().Add(-time.Second).Unix()},
		{Function: "fn", Unique: "later", Data: []byte("later"), Priority: 1, When: time.Now().Add(time.Hour).Unix()},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := range 2 {
		n, err := s.Import(ctx, jobs)
		if err != nil || n != len(jobs) {
			t.Fatalf("import round %d: %d, %v", round, n, err)
		}
		if got := st.Stats().Jobs; got != int64(len(jobs)) {
			t.Fatalf("round %d: %d jobs stored, want %d", round, got, len(jobs))
		}
	}
	w := mustConnect(t, addrOf(t, s))
	w.send(protocol.CanDo, "fn")
	for _, want := range []string{"high", "normal", "epoch", "low"} {
		w.send(protocol.GrabJobUniq)
		p := w.expectType(protocol.JobAssignUniq)
		if p.args[3] != want {
			t.Fatalf("got %q, want %q", p.args[3], want)
		}
		w.send(protocol.WorkComplete, p.args[0], "")
	}
	w.send(protocol.GrabJob)
	w.expect(protocol.NoJob) // "later" is not due
	if ps := s.Core().PriorityStatus(); len(ps) != 1 || ps[0].Normal != 1 {
		t.Fatalf("priority status %+v, want the scheduled job", ps)
	}
}

// A refused job (a full queue) is reported; the others are taken.
func TestImport_Refusal(t *testing.T) {
	s := mustStartServer(t, nil)
	s.Core().Admin(directTx{}, nil, []byte("maxqueue fn 1"))
	n, err := s.Import(context.Background(), []store.Job{{Function: "fn", Unique: "a"}, {Function: "fn", Unique: "b"}})
	if n != 1 || err == nil {
		t.Fatalf("%d, %v: want 1 taken and the refusal", n, err)
	}
}
