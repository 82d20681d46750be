package store

import (
	"maps"
	"testing"
)

// A schedule's definition and its last tick survive a restart; a tick is stored with its job;
// removing a schedule forgets its tick, and a tick recorded after the removal does not bring it back.
func TestStore_SchedulesSurviveReopen(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		s := e.openNew(t, SyncAlways)
		ss := s.Store.(ScheduleStore)
		for _, name := range []string{"nightly", "gone", "a\x00b"} {
			if err := ss.SaveSchedule(name, []byte(`{"name":"`+name+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 3)
		ss.AddFired(&Job{Seq: 7, Handle: "H:test:7", Function: "backup", Data: []byte("x")}, "nightly", 1700000000, func(err error) { done <- err })
		ss.AddFired(nil, "a\x00b", 1700000060, func(err error) { done <- err })
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if err := ss.SaveSchedule("gone", nil); err != nil {
			t.Fatal(err)
		}
		ss.AddFired(nil, "gone", 1700000120, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := ss.SaveSchedule("nightly", []byte(`{"name":"nightly","spec":"@daily"}`)); err != nil {
			t.Fatal(err) // a new definition keeps the last tick
		}

		r := s.reopen(t)
		type rec struct {
			def   string
			fired int64
		}
		got := map[string]rec{}
		err := r.Store.(ScheduleStore).LoadSchedules(func(name string, def []byte, fired int64) error {
			got[name] = rec{string(def), fired}
			return nil
		})
		want := map[string]rec{
			"nightly": {`{"name":"nightly","spec":"@daily"}`, 1700000000},
			"a\x00b":  {`{"name":"a` + "\x00" + `b"}`, 1700000060},
		}
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("LoadSchedules after reopen: %+v, %v; want %+v", got, err, want)
		}
		var jobs []uint64
		if err := r.Replay(func(j *Job) error { jobs = append(jobs, j.Seq); return nil }); err != nil || len(jobs) != 1 || jobs[0] != 7 {
			t.Fatalf("replayed jobs %v, %v; want the fired job 7", jobs, err)
		}
	})
}
