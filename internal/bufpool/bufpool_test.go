package bufpool

import "testing"

func TestGetPut(t *testing.T) {
	for _, tc := range []struct{ n, wantCap int }{
		{0, 0}, {100, 100}, {Min - 1, Min - 1}, {Min, 8 << 10}, {8 << 10, 8 << 10},
		{8<<10 + 1, 16 << 10}, {64 << 10, 64 << 10}, {100000, 128 << 10},
	} {
		b := Get(tc.n)
		if len(b) != tc.n || cap(b) != tc.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.n, len(b), cap(b), tc.n, tc.wantCap)
		}
		Put(b)
	}
	// A returned buffer is handed out again for a length of the same class.
	b := Get(20 << 10)
	b[0] = 42
	Put(b)
	again := Get(30 << 10)
	if len(again) != 30<<10 || cap(again) != 32<<10 {
		t.Fatalf("len %d cap %d", len(again), cap(again))
	}
	// Odd capacities are not pooled: Get never returns them.
	Put(make([]byte, 10000))
	if c := cap(Get(10000)); c != 16<<10 {
		t.Fatalf("cap %d, want 16384", c)
	}
}
