package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		floor, live uint64
		want        int
	}{
		{64 * mib, 0, 1600},         // nothing live yet: the runtime's minimum goal is the floor
		{64 * mib, 1 * mib, 1600},   // the same: 1 MiB × 17 would be below the minimum goal
		{64 * mib, 8 * mib, 700},    // 8 MiB × 8 = 64 MiB
		{64 * mib, 32 * mib, 100},   // the base reaches the floor
		{64 * mib, 300 * mib, 100},  // a big heap: GOGC as usual
		{64 * mib, 300 * mib, 50},   // ... whatever the base
		{2 * mib, 0, 100},           // a floor below the runtime's minimum changes nothing
		{256 * mib, 16 * mib, 1500}, // 16 MiB × 16 = 256 MiB
	} {
		base := 100
		if tc.want == 50 {
			base = 50
		}
		if got := Percent(tc.floor, tc.live, base); got != tc.want {
			t.Errorf("Percent(%d MiB, %d MiB, %d) = %d, want %d", tc.floor/mib, tc.live/mib, base, got, tc.want)
		}
	}
}

// heapGoal reads the collector's current goal.
func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// With the tuner the goal stays at the floor while little is live, after every collection (the
// finalizer re-arms), grows with a live heap past half the floor as GOGC 100 makes it, and goes
// back to GOGC 100 once stopped.
func TestTuner_KeepsTheGoalAtTheFloor(t *testing.T) {
	const floor = 128 << 20
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := Start(floor, 100)
	defer tu.Stop()
	waitGoal := func(what string, ok func(uint64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(heapGoal()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: heap goal %d MiB", what, heapGoal()>>20)
			}
			runtime.GC() // the tuner runs after a collection
			time.Sleep(10 * time.Millisecond)
		}
	}
	near := func(want uint64) func(uint64) bool {
		return func(g uint64) bool { return g >= want*9/10 && g <= want*11/10 }
	}
	for i := range 3 {
		runtime.GC()
		waitGoal("little live, collection "+string(rune('1'+i)), near(floor))
	}
	big := make([][]byte, 0, 200)
	for range 200 {
		big = append(big, make([]byte, 1<<20)) // 200 MiB live
	}
	waitGoal("200 MiB live", func(g uint64) bool { return g >= 380<<20 && g <= 440<<20 })
	runtime.KeepAlive(big)
	big = nil
	tu.Stop()
	runtime.GC()
	if g := heapGoal(); g > 16<<20 {
		t.Errorf("heap goal %d MiB after Stop with little live, want GOGC 100's few MiB", g>>20)
	}
}
