package core

import "testing"

// A map that fell to an eighth of its peak (and had a large peak) is replaced by a right-sized copy
// with the same entries; small maps and maps still near their peak are left alone.
func TestShrunk(t *testing.T) {
	m := make(map[int]int)
	peak := 0
	for i := range shrinkMinPeak {
		m[i] = i
		m, _ = shrunk(m, &peak)
	}
	if peak != shrinkMinPeak {
		t.Fatalf("peak %d, want %d", peak, shrinkMinPeak)
	}
	orig := m
	for i := range shrinkMinPeak - shrinkMinPeak/8 {
		delete(m, i)
		m, _ = shrunk(m, &peak)
		if len(m) > shrinkMinPeak/8 && len(m) != len(orig) {
			t.Fatalf("map replaced at %d entries", len(m))
		}
	}
	if peak != len(m) || len(m) != shrinkMinPeak/8 {
		t.Fatalf("after the fall: len %d, peak %d", len(m), peak)
	}
	for i := shrinkMinPeak - shrinkMinPeak/8; i < shrinkMinPeak; i++ {
		if m[i] != i {
			t.Fatalf("entry %d lost in the copy", i)
		}
	}
	small, p := map[int]int{1: 1, 2: 2}, 0
	small, _ = shrunk(small, &p)
	delete(small, 1)
	delete(small, 2)
	if _, shrank := shrunk(small, &p); shrank || p != 2 {
		t.Fatalf("a small map was rebuilt (peak reset to %d)", p)
	}
}
