package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
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
	if st := p.Stats(); !strings.Contains(st.LastError, "injected") || st.FailingSince.IsZero() {
		t.Errorf("Stats().LastError = %q, FailingSince %v: want the fsync error, and failing", st.LastError, st.FailingSince)
	}
}
