package store

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkPebble_Add: concurrent writers each adding one job at a time and waiting for its
// callback, as unpipelined clients do; b.N jobs in all.
func BenchmarkPebble_Add(b *testing.B) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval} {
		for _, writers := range []int{8, 32} {
			b.Run(fmt.Sprintf("%s/%d", mode, writers), func(b *testing.B) {
				p := mustOpen(b, b.TempDir(), mode)
				data := make([]byte, 64)
				base := p.wal.fsyncs.Load()
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
							s := seq
							next.Unlock()
							if s > uint64(b.N) {
								return
							}
							p.Add(&Job{Seq: s, Handle: "H:bench:1", Function: "bench", Data: data, Priority: 1}, cb)
							if err := <-done; err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/float64(max(1, p.wal.fsyncs.Load()-base)), "jobs/fsync")
			})
		}
	}
}
