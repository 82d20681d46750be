package store

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

const waitTimeout = 10 * time.Second

// mustOpen opens a Pebble store in dir and closes it when the test ends (Close is idempotent, so a
// test may close it earlier).
func mustOpen(tb testing.TB, dir string, mode SyncMode) *Pebble {
	tb.Helper()
	p, err := OpenPebble(dir, mode, nil)
	if err != nil {
		tb.Fatalf("OpenPebble: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// job returns a stored job with sequence number seq.
func job(seq uint64, prio uint8) *Job {
	return &Job{
		Seq: seq, Handle: fmt.Sprintf("H:t:%d", seq), Function: "fn", Data: []byte(fmt.Sprintf("data-%d", seq)),
		Priority: prio, Created: int64(seq) * 1000,
	}
}

// mustAdd adds j and waits for its callback, failing on an error.
func mustAdd(tb testing.TB, s Store, j *Job) {
	tb.Helper()
	if err := add(s, j); err != nil {
		tb.Fatalf("Add %d: %v", j.Seq, err)
	}
}

// add adds j and waits for its callback.
func add(s Store, j *Job) error {
	ch := make(chan error, 1)
	s.Add(j, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(waitTimeout):
		return errors.New("Add: no callback")
	}
}

// replay returns every stored job in replay order.
func replay(tb testing.TB, s Store) []*Job {
	tb.Helper()
	var got []*Job
	if err := s.Replay(func(j *Job) error { got = append(got, j); return nil }); err != nil {
		tb.Fatalf("Replay: %v", err)
	}
	return got
}

func seqs(js []*Job) []uint64 {
	out := make([]uint64, len(js))
	for i, j := range js {
		out[i] = j.Seq
	}
	return out
}

// reopen closes p and opens its directory again.
func reopen(tb testing.TB, p *Pebble) *Pebble {
	tb.Helper()
	if err := p.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return mustOpen(tb, p.path, p.mode)
}

// flush waits until every operation queued so far is committed: a no-op Add rides in the same or a
// later batch. Remove and SetRetries have no callback.
func flush(tb testing.TB, p *Pebble, seq uint64) {
	tb.Helper()
	mustAdd(tb, p, job(seq, 1))
}

func TestPebble_AddIsDurableWhenCallbackRuns(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			p := mustOpen(t, t.TempDir(), mode)
			want := job(1, 0)
			want.Unique, want.Reducer, want.When, want.Retries = "u", "r", 1_900_000_000, 3
			mustAdd(t, p, want)
			if got := p.Stats().Jobs; got != 1 {
				t.Errorf("Stats().Jobs = %d after the callback, want 1", got)
			}
			got := replay(t, reopen(t, p))
			if len(got) != 1 || !jobsEqual(got[0], want) {
				t.Fatalf("after reopen: %+v, want %+v", got, want)
			}
		})
	}
}

func TestPebble_RemoveAndSetRetries(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	for seq := uint64(1); seq <= 3; seq++ {
		mustAdd(t, p, job(seq, 1))
	}
	p.Remove(2)
	j3 := job(3, 1)
	j3.Retries = 4
	p.SetRetries(j3)
	flush(t, p, 4)
	if got := p.Stats().Jobs; got != 3 {
		t.Errorf("Stats().Jobs = %d, want 3", got)
	}
	got := replay(t, reopen(t, p))
	if !slices.Equal(seqs(got), []uint64{1, 3, 4}) {
		t.Fatalf("replayed %v, want [1 3 4]", seqs(got))
	}
	if got[1].Retries != 4 {
		t.Errorf("job 3 has %d retries, want 4", got[1].Retries)
	}
}

// A job added and removed in the same batch leaves nothing behind.
func TestPebble_AddThenRemoveInOneBatch(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	done := make(chan error, 1)
	p.Add(job(1, 1), func(err error) { done <- err })
	p.Remove(1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	flush(t, p, 2)
	if got := replay(t, reopen(t, p)); !slices.Equal(seqs(got), []uint64{2}) {
		t.Fatalf("replayed %v, want [2]", seqs(got))
	}
}

// Replay goes by sequence number, whatever order the jobs were added in, and beyond 255 (the keys
// are big-endian, so byte order is numeric order).
func TestPebble_ReplayInSeqOrder(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	order := []uint64{300, 2, 256, 1, 70000, 255, 1 << 40}
	for _, seq := range order {
		mustAdd(t, p, job(seq, uint8(seq%3)))
	}
	want := slices.Sorted(slices.Values(order))
	if got := seqs(replay(t, p)); !slices.Equal(got, want) {
		t.Fatalf("replay %v, want %v", got, want)
	}
	if got := seqs(replay(t, reopen(t, p))); !slices.Equal(got, want) {
		t.Fatalf("replay after reopen %v, want %v", got, want)
	}
}

func TestPebble_ReplayStopsAtCallbackError(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	for seq := uint64(1); seq <= 3; seq++ {
		mustAdd(t, p, job(seq, 1))
	}
	stop := errors.New("stop")
	n := 0
	err := p.Replay(func(*Job) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Replay: %v after %d jobs, want the callback's error after 1", err, n)
	}
}

// Handles never repeat: the next sequence number survives a restart even when every job was removed,
// and it moves on as jobs are added.
func TestPebble_NextSeqSurvivesReopen(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	if got := p.NextSeq(); got != 1 {
		t.Fatalf("NextSeq of a new store = %d, want 1", got)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		mustAdd(t, p, job(seq, 1))
	}
	if got := p.NextSeq(); got != 6 {
		t.Errorf("NextSeq after adding 1..5 = %d, want 6", got)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		p.Remove(seq)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = mustOpen(t, p.path, SyncAlways)
	if got := replay(t, p); len(got) != 0 {
		t.Fatalf("replayed %v after removing every job", seqs(got))
	}
	if got := p.NextSeq(); got != 6 {
		t.Fatalf("NextSeq after reopening an emptied store = %d, want 6", got)
	}
	// Adding a lower sequence number never moves it back.
	mustAdd(t, p, job(3, 1))
	if got := reopen(t, p).NextSeq(); got != 6 {
		t.Fatalf("NextSeq after adding seq 3 = %d, want 6", got)
	}
}

func TestPebble_Stats(t *testing.T) {
	dir := t.TempDir()
	p := mustOpen(t, dir, SyncAlways)
	st := p.Stats()
	if st.Engine != "pebble" || st.Path != dir || st.Sync != SyncAlways || st.Jobs != 0 ||
		!st.LastSync.IsZero() || st.LastError != "" {
		t.Fatalf("Stats of a new store: %+v", st)
	}
	before := time.Now()
	mustAdd(t, p, job(1, 1))
	mustAdd(t, p, job(2, 1))
	st = p.Stats()
	if st.Jobs != 2 || st.LastSync.Before(before) || st.LastSync.After(time.Now()) {
		t.Fatalf("Stats after two adds: %+v (added after %v)", st, before)
	}
	p.Remove(1)
	flush(t, p, 3)
	if got := p.Stats().Jobs; got != 2 {
		t.Errorf("Jobs after a remove and an add = %d, want 2", got)
	}
	// Replay counts what is on disk.
	p = reopen(t, p)
	if got := p.Stats().Jobs; got != 0 {
		t.Errorf("Jobs before Replay = %d (nothing is counted until Replay)", got)
	}
	replay(t, p)
	if got := p.Stats().Jobs; got != 2 {
		t.Errorf("Jobs after Replay = %d, want 2", got)
	}
}

// SyncInterval fsyncs on its ticker; the last sync time shows it.
func TestPebble_IntervalSyncs(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncInterval)
	mustAdd(t, p, job(1, 1))
	if !p.Stats().LastSync.IsZero() {
		t.Error("SyncInterval reported a sync at once")
	}
	deadline := time.Now().Add(waitTimeout)
	for p.Stats().LastSync.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("SyncInterval never synced")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPebble_SecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	mustOpen(t, dir, SyncAlways)
	p2, err := OpenPebble(dir, SyncAlways, nil)
	if err == nil {
		p2.Close()
		t.Fatal("a second OpenPebble on the same directory succeeded")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q should say the directory %s is in use", err, dir)
	}
}

// A directory that cannot be created is an error naming it.
func TestPebble_OpenUnusableDirectory(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := writeFile(file); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, file + "/sub"} {
		if p, err := OpenPebble(dir, SyncAlways, nil); err == nil {
			p.Close()
			t.Fatalf("OpenPebble(%s) succeeded", dir)
		} else if !strings.Contains(err.Error(), dir) {
			t.Errorf("error %q does not name %s", err, dir)
		}
	}
}

func TestPebble_CloseIsIdempotent(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	mustAdd(t, p, job(1, 1))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = p.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close #%d: %v", i, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close after Close: %v", err)
	}
	// Every Close returned after the engine closed: the directory can be opened again at once.
	mustOpen(t, p.path, SyncAlways)
}

func TestPebble_AddAfterClose(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// The callback must not run on the caller's goroutine: the server calls Add holding the lock
	// its callback takes. A callback run inline would deadlock here.
	var mu sync.Mutex
	got := make(chan error, 1)
	mu.Lock()
	p.Add(job(1, 1), func(err error) {
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
	p.Remove(1) // no callback, no panic
	p.SetRetries(job(1, 1))
}

// Operations queued before Close are applied by it.
func TestPebble_CloseAppliesQueued(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	var wg sync.WaitGroup
	for seq := uint64(1); seq <= 100; seq++ {
		wg.Add(1)
		p.Add(job(seq, 1), func(err error) {
			if err != nil {
				t.Errorf("Add %d: %v", seq, err)
			}
			wg.Done()
		})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := replay(t, mustOpen(t, p.path, SyncAlways)); len(got) != 100 {
		t.Fatalf("replayed %d jobs, want 100", len(got))
	}
}

// Group commit: 64 goroutines adding one job at a time share fsyncs, so there are far fewer
// fsyncs than jobs.
func TestPebble_GroupCommit(t *testing.T) {
	const writers, perWriter = 64, 20
	p := mustOpen(t, t.TempDir(), SyncAlways)
	base := p.wal.fsyncs.Load()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				seq := uint64(1 + w*perWriter + i)
				if err := add(p, job(seq, uint8(seq%3))); err != nil {
					t.Errorf("Add %d: %v", seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	fsyncs := p.wal.fsyncs.Load() - base
	t.Logf("%d jobs in %d commits, %d fsyncs", writers*perWriter, p.commits.Load(), fsyncs)
	if fsyncs > writers*perWriter/4 {
		t.Fatalf("%d fsyncs for %d jobs: Adds are not sharing them", fsyncs, writers*perWriter)
	}
	if got := replay(t, reopen(t, p)); len(got) != writers*perWriter {
		t.Fatalf("replayed %d jobs, want %d", len(got), writers*perWriter)
	}
}

func TestPebble_CorruptRecordFailsReplay(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	mustAdd(t, p, job(1, 1))
	if err := p.db.Set(putJobKey(make([]byte, 9), 2), []byte{recordVersion, 9}, nil); err != nil {
		t.Fatal(err)
	}
	err := p.Replay(func(*Job) error { return nil })
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Replay over a corrupt record: %v, want ErrCorrupt", err)
	}
}

func jobsEqual(a, b *Job) bool {
	return a.Seq == b.Seq && a.Handle == b.Handle && a.Function == b.Function && a.Unique == b.Unique &&
		a.Reducer == b.Reducer && string(a.Data) == string(b.Data) && a.Priority == b.Priority &&
		a.When == b.When && a.Retries == b.Retries && a.Created == b.Created
}

func writeFile(path string) error { return os.WriteFile(path, []byte("not a directory"), 0o644) }

// Which commits fsync: under SyncAlways every batch holding an Add, and nothing else; under the other
// modes none (SyncInterval fsyncs on its ticker instead).
func TestPebble_FsyncPerMode(t *testing.T) {
	for _, tc := range []struct {
		mode   SyncMode
		fsyncs bool
	}{{SyncAlways, true}, {SyncInterval, false}, {SyncNone, false}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			p := mustOpen(t, t.TempDir(), tc.mode)
			base := p.wal.fsyncs.Load()
			for seq := uint64(1); seq <= 3; seq++ {
				mustAdd(t, p, job(seq, 1))
			}
			added := p.wal.fsyncs.Load() - base
			if tc.fsyncs && added < 3 {
				t.Errorf("%d fsyncs for 3 Adds committed one by one, want at least 3", added)
			}
			if !tc.fsyncs && added != 0 {
				t.Errorf("%d fsyncs for 3 Adds, want none", added)
			}
			before := p.wal.fsyncs.Load()
			for seq := uint64(1); seq <= 3; seq++ {
				p.Remove(seq)
			}
			deadline := time.Now().Add(waitTimeout)
			for p.Stats().Jobs != 0 {
				if time.Now().After(deadline) {
					t.Fatal("removals never committed")
				}
				time.Sleep(time.Millisecond)
			}
			if n := p.wal.fsyncs.Load() - before; n != 0 {
				t.Errorf("%d fsyncs for removals, want none", n)
			}
		})
	}
}

// Below the minimum free space Add refuses the job with ErrDiskFull instead of letting the engine
// run out of room for its log (which Pebble treats as fatal).
func TestPebble_MinFreeRefusesAdds(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	p.SetMinFree(1 << 62)
	errc := make(chan error, 1)
	p.Add(&Job{Seq: 1, Function: "f"}, func(err error) { errc <- err })
	if err := <-errc; !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Add below the free-space minimum: %v, want ErrDiskFull", err)
	}
	if st := p.Stats(); st.Jobs != 0 || !strings.Contains(st.LastError, "free") {
		t.Errorf("stats after a refused add: %+v", st)
	}
	p.SetMinFree(0)
	p.Add(&Job{Seq: 2, Function: "f"}, func(err error) { errc <- err })
	if err := <-errc; err != nil {
		t.Fatalf("Add with the check off: %v", err)
	}
}

// The callbacks of refused operations run on goroutines of their own, and Close waits for them; one
// refused after Close still runs.
func TestPebble_CloseWaitsForRefusalCallbacks(t *testing.T) {
	p := mustOpen(t, t.TempDir(), SyncAlways)
	p.SetMinFree(1 << 62)
	release := make(chan struct{})
	var finished atomic.Bool
	p.Add(&Job{Seq: 1, Function: "f"}, func(err error) {
		<-release
		finished.Store(true)
	})
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a callback was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Error("Close returned before the callback finished")
	}
	errc := make(chan error, 1)
	p.SetMinFree(0)
	p.Remove(1) // no callback: nothing to run
	p.Add(&Job{Seq: 2, Function: "f"}, func(err error) { errc <- err })
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Add after Close: %v, want an error saying the store is closed", err)
	}
}

func TestPebble_ReserveSeqSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	p := mustOpen(t, dir, SyncAlways)
	p.ReserveSeq(5000)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = mustOpen(t, dir, SyncAlways)
	if got := p.NextSeq(); got < 5000 {
		t.Fatalf("NextSeq after a reservation of 5000 and reopen: %d", got)
	}
}

// failingFS makes the fsyncs of WAL files fail once failing is set.
type failingFS struct {
	vfs.FS
	failing atomic.Bool
}

func (fs *failingFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return &failingFile{File: f, fs: fs}, err
}

func (fs *failingFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return &failingFile{File: f, fs: fs}, err
}

type failingFile struct {
	vfs.File
	fs *failingFS
}

var errInjected = errors.New("injected I/O error")

func (f *failingFile) SyncData() error {
	if f.fs.failing.Load() {
		return errInjected
	}
	return f.File.SyncData()
}

// A failed fsync of the log fails the Adds it covered, and every later one: the log may have lost
// records a later fsync would not report, so the store takes no more writes (as Pebble does after
// its own log fails).
func TestPebble_FsyncErrorIsSticky(t *testing.T) {
	fs := &failingFS{FS: vfs.Default}
	p, err := openPebble(t.TempDir(), SyncAlways, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	mustAdd(t, p, job(1, 1))
	fs.failing.Store(true)
	if err := add(p, job(2, 1)); !errors.Is(err, errInjected) {
		t.Fatalf("Add with a failing fsync: %v, want the injected error", err)
	}
	fs.failing.Store(false)
	if err := add(p, job(3, 1)); !errors.Is(err, errInjected) {
		t.Fatalf("Add after a failed fsync: %v, want the same error", err)
	}
	if st := p.Stats(); !strings.Contains(st.LastError, "injected") {
		t.Errorf("Stats().LastError = %q, want the fsync error", st.LastError)
	}
}
