package store

import (
	"fmt"
	"sync"
	"testing"

	"github.com/gearhq/gear/internal/testpg"
)

// BenchmarkPebble_Add: concurrent writers each adding one job at a time and waiting for its
// callback, as unpipelined clients do; b.N jobs in all.
func BenchmarkPebble_Add(b *testing.B) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval} {
		for _, writers := range []int{8, 32} {
			b.Run(fmt.Sprintf("%s/%d", mode, writers), func(b *testing.B) {
				p := mustOpen(b, b.TempDir(), mode)
				base := p.wal.fsyncs.Load()
				benchAdd(b, p, writers)
				b.ReportMetric(float64(b.N)/float64(max(1, p.wal.fsyncs.Load()-base)), "jobs/fsync")
			})
		}
	}
}

// BenchmarkPostgres_Add: the same on the test binary's PostgreSQL cluster (fsync on, as installed),
// a database per run; jobs/commit is the batch size the group commit reached.
func BenchmarkPostgres_Add(b *testing.B) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval} {
		for _, writers := range []int{8, 32, 128} {
			b.Run(fmt.Sprintf("%s/%d", mode, writers), func(b *testing.B) {
				p, err := openPG(testpg.NewDB(b), "H:bench", mode)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				benchAdd(b, p, writers)
			})
		}
	}
}

// benchAdd adds b.N jobs of 64 bytes from writers goroutines, each waiting for its callback, and
// reports the jobs per commit.
func benchAdd(b *testing.B, s Store, writers int) {
	data := make([]byte, 64)
	base := s.Stats().Commits
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	var next sync.Mutex
	seq := uint64(0)
	for range writers {
		wg.Go(func() {
			done := make(chan error, 1)
			cb := func(err error) { done <- err }
			for {
				next.Lock()
				seq++
				n := seq
				next.Unlock()
				if n > uint64(b.N) {
					return
				}
				s.Add(&Job{Seq: n, Handle: "H:bench:1", Function: "bench", Data: data, Priority: 1}, cb)
				if err := <-done; err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(max(1, s.Stats().Commits-base)), "jobs/commit")
}
