package store

import (
	"maps"
	"sync"
	"testing"
)

func TestHistogram(t *testing.T) {
	h := NewHistogram(1, 2, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, v := range []float64{0.5, 1, 1.5, 4, 9} {
				h.Observe(v)
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	// an observation equal to a bound falls in that bound's bucket, as in Prometheus (le)
	want := map[float64]uint64{1: 8, 2: 12, 4: 16}
	if s.Count != 20 || s.Sum != 4*16 || !maps.Equal(s.Buckets, want) {
		t.Fatalf("snapshot %+v, want count 20, sum 64, buckets %v", s, want)
	}
	if (*Histogram)(nil).Snapshot().Buckets != nil {
		t.Fatal("a nil histogram has buckets")
	}
}
