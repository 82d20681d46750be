package gearmandqueue

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearhq/gear/store"
)

// makeQueue writes a queue in gearmand's libsqlite3 schema (as gearmand 1.1.20 creates it).
func makeQueue(t *testing.T, table string, rows [][]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE " + table + " ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := db.Exec("INSERT INTO "+table+" VALUES (?, ?, ?, ?, ?)", r...); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestReadSQLite(t *testing.T) {
	path := makeQueue(t, "gearman_queue", [][]any{
		{"u2", "fn", 1, []byte("second"), 0},
		{"u1", "fn", 0, []byte("first"), 0},
		{"u3", "other", 2, []byte{0, 1, 2}, 1800000000},
	})
	jobs, err := ReadSQLite(path, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Job{
		{Function: "fn", Unique: "u2", Data: []byte("second"), Priority: 1},
		{Function: "fn", Unique: "u1", Data: []byte("first"), Priority: 0},
		{Function: "other", Unique: "u3", Data: []byte{0, 1, 2}, Priority: 2, When: 1800000000},
	}
	if len(jobs) != len(want) {
		t.Fatalf("%d jobs, want %d", len(jobs), len(want))
	}
	for i := range want {
		if jobs[i].Function != want[i].Function || jobs[i].Unique != want[i].Unique || string(jobs[i].Data) != string(want[i].Data) ||
			jobs[i].Priority != want[i].Priority || jobs[i].When != want[i].When {
			t.Errorf("job %d: %+v, want %+v (in gearmand's order)", i, jobs[i], want[i])
		}
	}
}

func TestReadSQLite_Refuses(t *testing.T) {
	good := makeQueue(t, "q", nil)
	badPrio := makeQueue(t, "gearman_queue", [][]any{{"u", "fn", 7, []byte("x"), 0}})
	noFn := makeQueue(t, "gearman_queue", [][]any{{"u", "", 1, []byte("x"), 0}})
	for _, tc := range []struct{ path, table, want string }{
		{good, "q; DROP TABLE q", "not a plain SQL identifier"},
		{good, "missing", "no such table"},
		{badPrio, "", "priority 7"},
		{noFn, "", "without a function"},
		{filepath.Join(t.TempDir(), "none.db"), "", "libsqlite3 queue"},
	} {
		if _, err := ReadSQLite(tc.path, tc.table); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", filepath.Base(tc.path), tc.table, err, tc.want)
		}
	}
	if jobs, err := ReadSQLite(good, "q"); err != nil || len(jobs) != 0 {
		t.Errorf("empty queue: %v %v", jobs, err)
	}
}
