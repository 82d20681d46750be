package gearmandqueue

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gearhq/gear/internal/testpg"
	"github.com/gearhq/gear/store"
)

// makePostgresQueue creates a table in gearmand's libpq schema (as gearmand 1.1.20's Postgres
// plugin creates it) in a fresh database of the test cluster and inserts rows; it returns the URL.
func makePostgresQueue(t *testing.T, table string, rows [][]any) string {
	t.Helper()
	url := testpg.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (unique_key VARCHAR(64), function_name VARCHAR(255), priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))"); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := conn.Exec(ctx, "INSERT INTO "+table+" VALUES ($1, $2, $3, $4, $5)", r...); err != nil {
			t.Fatal(err)
		}
	}
	return url
}

func TestReadPostgres(t *testing.T) {
	url := makePostgresQueue(t, "queue", [][]any{
		{"u2", "fn", 1, []byte("second"), 0},
		{"u1", "fn", 0, []byte("first"), 0},
		{nil, "other", 2, []byte{0, 1, 2}, 1800000000},
	})
	jobs, err := ReadPostgres(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Job{
		{Function: "fn", Unique: "u2", Data: []byte("second"), Priority: 1},
		{Function: "fn", Unique: "u1", Data: []byte("first"), Priority: 0},
		{Function: "other", Data: []byte{0, 1, 2}, Priority: 2, When: 1800000000},
	}
	if !slices.EqualFunc(jobs, want, func(a, b store.Job) bool {
		return a.Function == b.Function && a.Unique == b.Unique && string(a.Data) == string(b.Data) && a.Priority == b.Priority && a.When == b.When
	}) {
		t.Fatalf("jobs %+v, want %+v", jobs, want)
	}
}

func TestReadPostgres_Refusals(t *testing.T) {
	url := makePostgresQueue(t, "gq", [][]any{{"u", nil, 1, []byte("x"), 0}})
	if _, err := ReadPostgres(context.Background(), url, "gq"); err == nil || !strings.Contains(err.Error(), "without a function") {
		t.Errorf("a row without a function: %v", err)
	}
	if _, err := ReadPostgres(context.Background(), url, "gq; DROP TABLE gq"); err == nil || !strings.Contains(err.Error(), "identifier") {
		t.Errorf("a table name that is not an identifier: %v", err)
	}
	if _, err := ReadPostgres(context.Background(), url, "missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing table: %v", err)
	}
	bad := makePostgresQueue(t, "queue", [][]any{{"u", "fn", 7, []byte("x"), 0}})
	if _, err := ReadPostgres(context.Background(), bad, ""); err == nil || !strings.Contains(err.Error(), "priority 7") {
		t.Errorf("priority 7: %v", err)
	}
}
