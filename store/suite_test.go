package store

// The shared suite: every behaviour the Store interface promises, run against each engine. A test
// here is TestStore_X with one subtest per engine (-run 'TestStore_X/postgres' runs one).

import (
	"context"
	"errors"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testpg"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpg.Stop()
	os.Exit(code)
}

// engine makes stores of one kind for the shared suite: fresh names a new, empty place (a
// directory, a database); open opens a store there, as a restarted server would.
type engine struct {
	name  string
	fresh func(tb testing.TB) string
	open  func(where string, mode SyncMode) (Store, error)
}

var engines = []engine{
	{"pebble", func(tb testing.TB) string { return tb.TempDir() },
		func(dir string, mode SyncMode) (Store, error) { return OpenPebble(dir, mode, nil) }},
	{"postgres", testpg.NewDB,
		func(url string, mode SyncMode) (Store, error) { return openPG(url, "H:test", mode) }},
}

func openPG(url, owner string, mode SyncMode) (*Postgres, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return OpenPostgres(ctx, PostgresOptions{URL: url, Owner: owner, Sync: mode, OwnerWait: time.Second})
}

// testStore is a store under test, with where it lives, so that it can be reopened.
type testStore struct {
	Store
	e     engine
	where string
	mode  SyncMode
}

// eachEngine runs fn as a subtest per engine.
func eachEngine(t *testing.T, fn func(t *testing.T, e engine)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { fn(t, e) })
	}
}

// openNew opens a store of e in a fresh place.
func (e engine) openNew(tb testing.TB, mode SyncMode) *testStore {
	tb.Helper()
	return e.openAt(tb, e.fresh(tb), mode)
}

// openAt opens a store of e at where, closed when the test ends (Close is idempotent).
func (e engine) openAt(tb testing.TB, where string, mode SyncMode) *testStore {
	tb.Helper()
	s, err := e.open(where, mode)
	if err != nil {
		tb.Fatalf("open %s store: %v", e.name, err)
	}
	tb.Cleanup(func() { s.Close() })
	return &testStore{Store: s, e: e, where: where, mode: mode}
}

// reopen closes s and opens its place again.
func (s *testStore) reopen(tb testing.TB) *testStore {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return s.e.openAt(tb, s.where, s.mode)
}

// sync waits until every operation queued so far is committed: an Add rides in the same or a later
// batch. Remove and SetRetries have no callback.
func (s *testStore) sync(tb testing.TB, seq uint64) {
	tb.Helper()
	mustAdd(tb, s, job(seq, 1))
}

// checkReopened reopens s and checks that it replays the jobs want, in that order, with the retry
// counts retries gives for some of them.
func (s *testStore) checkReopened(tb testing.TB, want []uint64, retries map[uint64]uint32) {
	tb.Helper()
	got := replay(tb, s.reopen(tb))
	if !slices.Equal(seqs(got), want) {
		tb.Fatalf("replayed %v, want %v", seqs(got), want)
	}
	for _, j := range got {
		if j.Retries != retries[j.Seq] {
			tb.Errorf("job %d has %d retries, want %d", j.Seq, j.Retries, retries[j.Seq])
		}
	}
}

func TestStore_AddIsDurableWhenCallbackRuns(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
			t.Run(mode.String(), func(t *testing.T) {
				s := e.openNew(t, mode)
				want := job(1, 0)
				want.Unique, want.Reducer, want.When, want.Retries = "u", "r", 1_900_000_000, 3
				mustAdd(t, s, want)
				if got := s.Stats().Jobs; got != 1 {
					t.Errorf("Stats().Jobs = %d after the callback, want 1", got)
				}
				got := replay(t, s.reopen(t))
				if len(got) != 1 || !jobsEqual(got[0], want) {
					t.Fatalf("after reopen: %+v, want %+v", got, want)
				}
			})
		}
	})
}

// Every field comes back as it went in: empty and large data, extreme values, NUL and non-UTF-8
// bytes in the strings.
func TestStore_FieldsRoundTrip(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		jobs := sampleJobs()
		seq := uint64(1)
		want := map[uint64]*Job{}
		for _, name := range slices.Sorted(maps.Keys(jobs)) {
			j := *jobs[name]
			j.Seq = seq // every engine keeps sequence numbers up to MaxInt64; the suite's are small
			want[seq] = &j
			mustAdd(t, s, &j)
			seq++
		}
		got := replay(t, s.reopen(t))
		if len(got) != len(want) {
			t.Fatalf("replayed %d jobs, want %d", len(got), len(want))
		}
		for _, j := range got {
			if w := want[j.Seq]; !jobsEqual(j, w) || j.Data == nil {
				t.Errorf("job %d came back as %+v, want %+v", j.Seq, trim(j), trim(w))
			}
		}
	})
}

func TestStore_RemoveAndSetRetries(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		for seq := uint64(1); seq <= 3; seq++ {
			mustAdd(t, s, job(seq, 1))
		}
		s.Remove(2)
		j3 := job(3, 1)
		j3.Retries = 4
		s.SetRetries(j3)
		s.sync(t, 4)
		if got := s.Stats().Jobs; got != 3 {
			t.Errorf("Stats().Jobs = %d, want 3", got)
		}
		s.checkReopened(t, []uint64{1, 3, 4}, map[uint64]uint32{3: 4})
	})
}

// A job added and removed in the same batch leaves nothing behind; one added and given a retry
// count in the same batch is stored with it.
func TestStore_AddThenRemoveInOneBatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		done := make(chan error, 2)
		s.Add(job(1, 1), func(err error) { done <- err })
		s.Remove(1)
		j2 := job(2, 1)
		s.Add(j2, func(err error) { done <- err })
		r := *j2
		r.Retries = 7
		s.SetRetries(&r)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		s.sync(t, 3)
		s.checkReopened(t, []uint64{2, 3}, map[uint64]uint32{2: 7})
	})
}

// Replay goes by sequence number, whatever order the jobs were added in, and beyond 255.
func TestStore_ReplayInSeqOrder(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		order := []uint64{300, 2, 256, 1, 70000, 255, 1 << 40, math.MaxInt64}
		for _, seq := range order {
			mustAdd(t, s, job(seq, uint8(seq%3)))
		}
		want := slices.Sorted(slices.Values(order))
		if got := seqs(replay(t, s)); !slices.Equal(got, want) {
			t.Fatalf("replay %v, want %v", got, want)
		}
		if got := seqs(replay(t, s.reopen(t))); !slices.Equal(got, want) {
			t.Fatalf("replay after reopen %v, want %v", got, want)
		}
	})
}

func TestStore_ReplayStopsAtCallbackError(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		for seq := uint64(1); seq <= 3; seq++ {
			mustAdd(t, s, job(seq, 1))
		}
		stop := errors.New("stop")
		n := 0
		err := s.Replay(func(*Job) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Fatalf("Replay: %v after %d jobs, want the callback's error after 1", err, n)
		}
	})
}

// Handles never repeat: the next sequence number survives a restart even when every job was removed,
// and it moves on as jobs are added.
func TestStore_NextSeqSurvivesReopen(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		if got := s.NextSeq(); got != 1 {
			t.Fatalf("NextSeq of a new store = %d, want 1", got)
		}
		for seq := uint64(1); seq <= 5; seq++ {
			mustAdd(t, s, job(seq, 1))
		}
		if got := s.NextSeq(); got != 6 {
			t.Errorf("NextSeq after adding 1..5 = %d, want 6", got)
		}
		for seq := uint64(1); seq <= 5; seq++ {
			s.Remove(seq)
		}
		s = s.reopen(t)
		if got := replay(t, s); len(got) != 0 {
			t.Fatalf("replayed %v after removing every job", seqs(got))
		}
		if got := s.NextSeq(); got != 6 {
			t.Fatalf("NextSeq after reopening an emptied store = %d, want 6", got)
		}
		// Adding a lower sequence number never moves it back.
		mustAdd(t, s, job(3, 1))
		if got := s.reopen(t).NextSeq(); got != 6 {
			t.Fatalf("NextSeq after adding seq 3 = %d, want 6", got)
		}
	})
}

func TestStore_ReserveSeqSurvivesReopen(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		s.ReserveSeq(5000)
		if got := s.reopen(t).NextSeq(); got < 5000 {
			t.Fatalf("NextSeq after a reservation of 5000 and reopen: %d", got)
		}
	})
}

func TestStore_Stats(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		st := s.Stats()
		if st.Engine != e.name || st.Path == "" || st.Sync != SyncAlways || st.Jobs != 0 ||
			!st.LastSync.IsZero() || st.LastError != "" || st.Commits != 0 {
			t.Fatalf("Stats of a new store: %+v", st)
		}
		before := time.Now()
		mustAdd(t, s, job(1, 1))
		mustAdd(t, s, job(2, 1))
		st = s.Stats()
		if st.Jobs != 2 || st.LastSync.Before(before) || st.LastSync.After(time.Now()) {
			t.Fatalf("Stats after two adds: %+v (added after %v)", st, before)
		}
		if st.Commits < 1 || st.CommittedOps < 2 || st.CommitTime <= 0 ||
			st.CommitLatency.Count != uint64(st.Commits) || st.BatchSize.Count != uint64(st.Commits) ||
			st.BatchSize.Sum != float64(st.CommittedOps) {
			t.Errorf("commit counters after two adds: %+v", st)
		}
		s.Remove(1)
		s.sync(t, 3)
		if got := s.Stats().Jobs; got != 2 {
			t.Errorf("Jobs after a remove and an add = %d, want 2", got)
		}
		// Replay counts what is stored.
		s = s.reopen(t)
		if got := s.Stats().Jobs; got != 0 {
			t.Errorf("Jobs before Replay = %d (nothing is counted until Replay)", got)
		}
		replay(t, s)
		if got := s.Stats().Jobs; got != 2 {
			t.Errorf("Jobs after Replay = %d, want 2", got)
		}
	})
}

// A second store on the same place is refused while the first is open, with an error saying so.
func TestStore_SecondOpenIsRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		s2, err := e.open(s.where, SyncAlways)
		if err == nil {
			s2.Close()
			t.Fatal("a second open of the same store succeeded")
		}
		if !strings.Contains(err.Error(), "in use") {
			t.Fatalf("error %q should say the store is in use", err)
		}
		// Once the first is closed, the place is free.
		s.reopen(t)
	})
}

func TestStore_CloseIsIdempotent(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		mustAdd(t, s, job(1, 1))
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = s.Close() })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Close #%d: %v", i, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close after Close: %v", err)
		}
		// Every Close returned after the store let go: it can be opened again at once.
		e.openAt(t, s.where, SyncAlways)
	})
}

func TestStore_AddAfterClose(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// The callback must not run on the caller's goroutine: the server calls Add holding the lock
		// its callback takes. A callback run inline would deadlock here.
		var mu sync.Mutex
		got := make(chan error, 1)
		mu.Lock()
		s.Add(job(1, 1), func(err error) {
			mu.Lock()
			defer mu.Unlock()
			got <- err
		})
		mu.Unlock()
		select {
		case err := <-got:
			if err == nil || !strings.Contains(err.Error(), "closed") {
				t.Fatalf("Add after Close: %v, want a closed error", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Add after Close never called back")
		}
		s.Remove(1) // no callback, no panic
		s.SetRetries(job(1, 1))
		s.ReserveSeq(10)
	})
}

// Operations queued before Close are applied by it.
func TestStore_CloseAppliesQueued(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		var wg sync.WaitGroup
		for seq := uint64(1); seq <= 100; seq++ {
			wg.Add(1)
			s.Add(job(seq, 1), func(err error) {
				if err != nil {
					t.Errorf("Add %d: %v", seq, err)
				}
				wg.Done()
			})
		}
		s.Remove(100)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if got := replay(t, e.openAt(t, s.where, SyncAlways)); len(got) != 99 {
			t.Fatalf("replayed %d jobs, want 99", len(got))
		}
	})
}

// Group commit: 64 goroutines adding one job at a time share commits, so there are far fewer
// commits than jobs.
func TestStore_GroupCommit(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		const writers, perWriter = 64, 20
		s := e.openNew(t, SyncAlways)
		addConcurrently(t, s, writers, perWriter, func(uint64) {})
		st := s.Stats()
		t.Logf("%d jobs in %d commits", writers*perWriter, st.Commits)
		if st.Commits > writers*perWriter/4 {
			t.Fatalf("%d commits for %d jobs: Adds are not sharing them", st.Commits, writers*perWriter)
		}
		if got := replay(t, s.reopen(t)); len(got) != writers*perWriter {
			t.Fatalf("replayed %d jobs, want %d", len(got), writers*perWriter)
		}
	})
}

// Many operations, interleaved from many goroutines: what is replayed is exactly what was added
// and not removed.
func TestStore_ConcurrentAddRemove(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		const writers, perWriter = 16, 50
		s := e.openNew(t, SyncAlways)
		addConcurrently(t, s, writers, perWriter, func(seq uint64) {
			if seq%2 == 0 {
				s.Remove(seq)
			}
		})
		got := seqs(replay(t, s.reopen(t)))
		var want []uint64
		for seq := uint64(1); seq <= writers*perWriter; seq += 2 {
			want = append(want, seq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("replayed %d jobs (%v...), want the %d odd ones", len(got), got[:min(len(got), 5)], len(want))
		}
	})
}

// addConcurrently adds jobs 1 to writers*perWriter from writers goroutines, each adding one job at a
// time and calling then(seq) once it is acknowledged.
func addConcurrently(t *testing.T, s Store, writers, perWriter int, then func(seq uint64)) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				seq := uint64(1 + w*perWriter + i)
				if err := add(s, job(seq, uint8(seq%3))); err != nil {
					t.Errorf("Add %d: %v", seq, err)
					return
				}
				then(seq)
			}
		})
	}
	wg.Wait()
}

// A function's settings survive a restart; nil forgets them; names are bytes.
func TestStore_SettingsSurviveReopen(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		ss := s.Store.(SettingsStore)
		for name, data := range map[string]string{"resize": `{"paused":true}`, "a\x00\xff": "x", "gone": "y"} {
			if err := ss.SaveSettings(name, []byte(data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := ss.SaveSettings("resize", []byte(`{"max_running":2}`)); err != nil {
			t.Fatal(err)
		}
		if err := ss.SaveSettings("gone", nil); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		err := s.reopen(t).Store.(SettingsStore).LoadSettings(func(name string, data []byte) error {
			got[name] = string(data)
			return nil
		})
		want := map[string]string{"resize": `{"max_running":2}`, "a\x00\xff": "x"}
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("LoadSettings after reopen: %q, %v; want %q", got, err, want)
		}
	})
}
