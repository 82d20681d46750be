package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testpg"
)

func mustOpenLeased(tb testing.TB, url, owner string, ttl time.Duration) *Postgres {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	p, err := OpenPostgres(ctx, PostgresOptions{URL: url, Owner: owner, OwnerWait: time.Second, LeaseTTL: ttl})
	if err != nil {
		tb.Fatalf("OpenPostgres: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// waitLapsed waits until b sees the lease of owner lapsed.
func waitLapsed(tb testing.TB, b *Postgres, owner string) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		dead, err := b.Lapsed(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if slices.Contains(dead, owner) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the lease of %s did not lapse", owner)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A survivor adopts a lapsed server's jobs in one transaction: new numbers from its own sequence,
// everything else kept. The dead owner's store is fenced: its writes fail until it rejoins, and
// its removals cannot touch the adopted rows.
func TestFleet_AdoptFencesTheDeadOwner(t *testing.T) {
	url := testpg.NewDB(t)
	ctx := context.Background()
	a := mustOpenLeased(t, url, "H:a", 300*time.Millisecond)
	b := mustOpenLeased(t, url, "H:b", time.Minute)
	in := []*Job{
		{Seq: 1, Handle: "H:a:1", Function: "fn", Unique: "u1", Data: []byte("one"), Priority: 0, Retries: 2, Created: 11},
		{Seq: 2, Handle: "H:a:2", Function: "fn", Reducer: "r", Data: []byte{}, Priority: 2, When: 1_900_000_000, Created: 12},
		{Seq: 3, Handle: "H:a:3", Function: "other", Data: []byte("three"), Priority: 1, Created: 13},
	}
	for _, j := range in {
		mustAdd(t, a, j)
	}
	alloc := func(n int) uint64 {
		if n != len(in) {
			t.Errorf("alloc(%d), want %d", n, len(in))
		}
		return 100
	}
	if a, err := b.Adopt(ctx, "H:a", alloc); err != nil || a != nil {
		t.Fatalf("adopting a live server: %v, %v", a, err)
	}
	waitLapsed(t, b, "H:a")
	adoption, err := b.Adopt(ctx, "H:a", alloc)
	if err != nil || len(adoption.Jobs) != len(in) || len(adoption.Dead) != 0 {
		t.Fatalf("Adopt: %+v, %v", adoption, err)
	}
	for i, j := range adoption.Jobs {
		want := *in[i]
		want.Seq, want.Handle = 100+uint64(i), fmt.Sprintf("H:b:%d", 100+i)
		if j.Seq != want.Seq || j.Handle != want.Handle || j.Function != want.Function || j.Unique != want.Unique ||
			j.Reducer != want.Reducer || string(j.Data) != string(want.Data) || j.Priority != want.Priority ||
			j.When != want.When || j.Retries != want.Retries || j.Created != want.Created {
			t.Errorf("adopted job %d: %+v, want %+v", i, j, want)
		}
	}
	if len(replay(t, b)) != 3 {
		t.Fatalf("the adopter does not hold the jobs")
	}
	if n, jobs := b.FleetCounters(); n != 1 || jobs != 3 {
		t.Errorf("FleetCounters: %d adoptions, %d jobs", n, jobs)
	}

	// The dead owner, still running, is fenced.
	if err := add(a, &Job{Seq: 4, Handle: "H:a:4", Function: "fn", Data: []byte("4")}); !errors.Is(err, ErrFenced) {
		t.Fatalf("Add by a fenced store: %v, want ErrFenced", err)
	}
	if err := a.Renew(ctx, time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("Renew by a fenced store: %v", err)
	}
	if again, err := b.Adopt(ctx, "H:a", alloc); err != nil || again != nil {
		t.Fatalf("adopting twice: %v, %v", again, err)
	}
	before := a.Epoch()
	owned, ownedDead, err := a.Rejoin(ctx, time.Minute)
	if err != nil || len(owned) != 0 || len(ownedDead) != 0 || a.Epoch() <= before {
		t.Fatalf("Rejoin: %v, %v, %v, epoch %d after %d", owned, ownedDead, err, a.Epoch(), before)
	}
	mustAdd(t, a, &Job{Seq: 5, Handle: "H:a:5", Function: "fn", Data: []byte("5")})
	if got := replay(t, a); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("after rejoining, the owner holds %v", got)
	}
	v, err := b.Fleet(ctx)
	if err != nil || len(v.Servers) != 2 || v.Servers[0].Owner != "H:a" || !v.Servers[0].Alive || v.Servers[0].Jobs != 1 ||
		v.Servers[1].Jobs != 3 || v.Servers[1].JobsAdopted != 3 {
		t.Fatalf("Fleet: %+v, %v", v, err)
	}
}

// A lapsed server without jobs is adopted too (its row marked), with an empty list.
func TestFleet_AdoptNoJobs(t *testing.T) {
	url := testpg.NewDB(t)
	mustOpenLeased(t, url, "H:idle", 200*time.Millisecond)
	b := mustOpenLeased(t, url, "H:b", time.Minute)
	waitLapsed(t, b, "H:idle")
	a, err := b.Adopt(context.Background(), "H:idle", func(int) uint64 { t.Error("alloc for no jobs"); return 1 })
	if err != nil || a == nil || a.Jobs == nil || len(a.Jobs) != 0 || len(a.Dead) != 0 {
		t.Fatalf("Adopt: %+v, %v", a, err)
	}
	v, err := b.Fleet(context.Background())
	if err != nil || len(v.Servers) != 2 || v.Servers[1].Owner != "H:idle" || v.Servers[1].AdoptedBy != "H:b" ||
		v.Servers[1].Alive || !v.Servers[1].LeaseUntil.IsZero() || v.Servers[0].Adoptions != 1 {
		t.Fatalf("Fleet: %+v, %v", v, err)
	}
}

// One server at a time leads the schedules; another takes over when its lease lapses.
func TestFleet_ScheduleLeader(t *testing.T) {
	url := testpg.NewDB(t)
	ctx := context.Background()
	a := mustOpenLeased(t, url, "H:a", time.Minute)
	b := mustOpenLeased(t, url, "H:b", time.Minute)
	if ok, err := a.LeadSchedules(ctx, 300*time.Millisecond); !ok || err != nil {
		t.Fatalf("first leader: %v %v", ok, err)
	}
	if ok, err := b.LeadSchedules(ctx, time.Minute); ok || err != nil {
		t.Fatalf("second leader while the first leads: %v %v", ok, err)
	}
	if ok, err := a.LeadSchedules(ctx, 300*time.Millisecond); !ok || err != nil {
		t.Fatalf("renewal: %v %v", ok, err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, err := b.LeadSchedules(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader lease never passed to the second server")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, _ := a.LeadSchedules(ctx, time.Minute); ok {
		t.Fatal("two leaders")
	}
}

// The dead owner's store goes on writing while it is adopted (a paused server waking up): every Add
// it was told is committed is among the adopted jobs, and none committed after the adoption.
func TestFleet_AddsRacingAnAdoption(t *testing.T) {
	url := testpg.NewDB(t)
	a := mustOpenLeased(t, url, "H:a", 300*time.Millisecond)
	b := mustOpenLeased(t, url, "H:b", time.Minute)
	var mu sync.Mutex
	acked := map[string]bool{}
	failed := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seq := uint64(1 + w + 4*i)
				data := fmt.Sprintf("job %d", seq)
				err := add(a, &Job{Seq: seq, Handle: fmt.Sprintf("H:a:%d", seq), Function: "fn", Data: []byte(data)})
				mu.Lock()
				if err == nil {
					acked[data] = true
				} else if errors.Is(err, ErrFenced) {
					failed++
				} else {
					t.Errorf("Add: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	waitLapsed(t, b, "H:a")
	adoption, err := b.Adopt(context.Background(), "H:a", func(int) uint64 { return 1_000_000 })
	if err != nil {
		t.Fatal(err)
	}
	if adoption == nil {
		t.Fatal("Adopt did nothing: the owner's batches in flight kept the adoption out")
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		f := failed
		mu.Unlock()
		if f >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the adopted store's Adds did not fail")
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	adopted := map[string]bool{}
	for _, j := range adoption.Jobs {
		adopted[string(j.Data)] = true
	}
	for d := range acked {
		if !adopted[d] {
			t.Errorf("%s was acknowledged but not adopted", d)
		}
	}
	if left := replay(t, a); len(left) != 0 {
		t.Errorf("%d jobs committed under the adopted owner", len(left))
	}
	t.Logf("%d adds acknowledged and adopted, %d refused after the adoption", len(acked), failed)
}

// An adoption moves the dead set too, in the same transaction: the adopter gets the rows it does
// not hold already (its own of the same handle stays), the dead owner keeps none, and a rejoin
// tells the owner so. A dead job queued by the fenced owner is written nowhere until it rejoins,
// then under its new epoch.
func TestFleet_AdoptMovesTheDeadSet(t *testing.T) {
	url := testpg.NewDB(t)
	ctx := context.Background()
	a := mustOpenLeased(t, url, "H:a", 300*time.Millisecond)
	b := mustOpenLeased(t, url, "H:b", time.Minute)
	mustDead(t, a.AddDead("H:a:1", []byte("one")))
	mustDead(t, a.AddDead("H:a:2", []byte("two")))
	mustDead(t, a.AddDead("H:a:3", []byte("a's three")))
	mustAdd(t, a, &Job{Seq: 4, Handle: "H:a:4", Function: "fn", Data: []byte("4")})
	mustDead(t, b.AddDead("H:a:3", []byte("b's three")))
	mustDead(t, b.AddDead("H:b:1", []byte("b's own")))
	mustAdd(t, b, &Job{Seq: 1, Handle: "H:b:1", Function: "fn", Data: []byte("1")})

	waitLapsed(t, b, "H:a")
	adoption, err := b.Adopt(ctx, "H:a", func(int) uint64 { return 100 })
	if err != nil || adoption == nil || len(adoption.Jobs) != 1 {
		t.Fatalf("Adopt: %+v, %v", adoption, err)
	}
	moved := map[string]string{}
	for _, d := range adoption.Dead {
		moved[d.Handle] = string(d.Data)
	}
	if want := map[string]string{"H:a:1": "one", "H:a:2": "two"}; !maps.Equal(moved, want) {
		t.Errorf("adopted dead jobs %q, want %q", moved, want)
	}
	want := map[string]string{"H:a:1": "one", "H:a:2": "two", "H:a:3": "b's three", "H:b:1": "b's own"}
	if got := loadDead(t, b); !maps.Equal(got, want) {
		t.Errorf("the adopter's dead set: %q, want %q", got, want)
	}
	if got := loadDead(t, a); len(got) != 0 {
		t.Errorf("the adopted owner still holds dead jobs %q", got)
	}

	// The fenced owner queues a dead job: its batch is refused.
	mustDead(t, a.AddDead("H:a:5", []byte("late")))
	mustDead(t, a.DeleteDead("H:a:1")) // now b's: a's deletion must not touch it
	if err := add(a, &Job{Seq: 6, Handle: "H:a:6", Function: "fn", Data: []byte("6")}); !errors.Is(err, ErrFenced) {
		t.Fatalf("Add by a fenced store: %v", err)
	}
	var rows int
	if err := sqlConn(t, url).QueryRow(ctx, `SELECT count(*) FROM gear_dead WHERE handle = 'H:a:5' OR owner = 'H:a'`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("the fenced owner wrote %d dead rows (%v)", rows, err)
	}
	owned, ownedDead, err := a.Rejoin(ctx, time.Minute)
	if err != nil || len(owned) != 0 || !maps.Equal(ownedDead, map[string]bool{"H:a:5": true}) {
		t.Fatalf("Rejoin: %v, %v, %v; want only the queued dead job H:a:5", owned, ownedDead, err)
	}
	mustAdd(t, a, &Job{Seq: 7, Handle: "H:a:7", Function: "fn", Data: []byte("7")}) // after the retried writes
	if got := loadDead(t, a); !maps.Equal(got, map[string]string{"H:a:5": "late"}) {
		t.Errorf("after rejoining, the owner's dead set: %q", got)
	}
	if got := loadDead(t, b); !maps.Equal(got, want) {
		t.Errorf("after the owner rejoined, the adopter's dead set: %q, want %q", got, want)
	}
}

// The database restarting ends the session that held the owner's advisory lock. The next renewal
// takes the lock again, so a second server under the same owner is still refused.
func TestFleet_RenewRetakesTheOwnerLock(t *testing.T) {
	url := testpg.NewDB(t)
	proxy := testpg.Shared(t).NewProxy(t)
	p := mustOpenLeased(t, proxy.URL(url), "H:l", time.Minute)
	proxy.Cut() // every session of p ends, the lock's among them
	proxy.Heal()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	deadline := time.Now().Add(waitTimeout)
	for { // the pool meets its dead connections one by one
		err := p.Renew(ctx, time.Minute)
		if err == nil {
			break
		}
		if errors.Is(err, ErrFenced) || time.Now().After(deadline) {
			t.Fatalf("Renew after the reconnect: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	second, err := openPG(url, "H:l", SyncAlways)
	if err == nil {
		second.Close()
		t.Fatal("a second store opened under an owner whose server renews its lease")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second store: %v, want the owner in use", err)
	}
}
