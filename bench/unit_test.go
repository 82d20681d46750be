package bench

import (
	"math"
	"testing"
	"time"
)

func TestHistogram_IndexIsMonotonicAndTight(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d after %d (buckets %d)", v, i, prev, histBuckets)
		}
		prev = i
		if v < 1<<50 {
			if got := histValue(i); math.Abs(float64(got)-float64(v)) > float64(v)/60+1 {
				t.Errorf("histValue(histIndex(%d)) = %d: more than 1.6%% off", v, got)
			}
		}
	}
}

func TestHistogram_Quantiles(t *testing.T) {
	var h, other histogram
	for i := 1; i <= 1000; i++ {
		h.record(int64(i) * int64(time.Microsecond))
	}
	other.record(int64(time.Second))
	h.merge(&other)
	s := h.summary("test")
	near := func(name string, got, want time.Duration) {
		if math.Abs(float64(got-want)) > float64(want)/50 {
			t.Errorf("%s = %v, want about %v", name, got, want)
		}
	}
	near("p50", s.P50, 500*time.Microsecond)
	near("p99", s.P99, 990*time.Microsecond)
	near("p99.9", s.P999, 1000*time.Microsecond)
	if s.Max != time.Second || s.Count != 1001 {
		t.Errorf("max %v count %d", s.Max, s.Count)
	}
}

func TestCodec(t *testing.T) {
	c := newCodec(64, 0xfeedbeef)
	p := c.build(nil, 42)
	if id, st := c.check(p); id != 42 || st != payloadOK {
		t.Fatalf("check(build(42)) = %d, %v", id, st)
	}
	for i := range p {
		q := append([]byte(nil), p...)
		q[i] ^= 1
		if _, st := c.check(q); st != payloadCorrupt {
			t.Errorf("flipping byte %d: status %v, want corrupt", i, st)
		}
	}
	if _, st := c.check(p[:63]); st != payloadCorrupt {
		t.Errorf("truncated payload not corrupt")
	}
	other := newCodec(64, 1)
	if id, st := c.check(other.build(nil, 7)); st != payloadForeign || id != -1 {
		t.Errorf("another run's payload: %d, %v; want foreign", id, st)
	}
	// Building into a reused buffer gives the same bytes.
	buf := c.build(nil, 1)
	if string(c.build(buf, 42)) != string(c.build(nil, 42)) {
		t.Error("build into a reused buffer differs")
	}
}

func TestPlan_UniqueRepeats(t *testing.T) {
	p := newPlan(10, true)
	count := map[int64]int{}
	for s := int64(0); s < p.total; s++ {
		count[p.id(s)]++
	}
	for id := int64(0); id < 10; id++ {
		want := 1
		if id%2 == 0 {
			want++
		}
		if id%5 == 0 {
			want++
		}
		if count[id] != want {
			t.Errorf("key %d submitted %d times, want %d", id, count[id], want)
		}
	}
	if len(count) != 10 {
		t.Errorf("plan names %d keys, want 10", len(count))
	}
}
