package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testpg"
	"github.com/jackc/pgx/v5"
)

// mustOpenPG opens a Postgres store as owner, closed when the test ends.
func mustOpenPG(tb testing.TB, url, owner string, mode SyncMode) *Postgres {
	tb.Helper()
	p, err := openPG(url, owner, mode)
	if err != nil {
		tb.Fatalf("OpenPostgres: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// sqlConn connects to url for a test's own queries.
func sqlConn(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// Servers starting at once on a new database: one creates the schema, the others wait for it and
// find it made; every one of them gets its server row.
func TestPostgres_ConcurrentStartsMigrateOnce(t *testing.T) {
	url := testpg.NewDB(t)
	const servers = 6
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			p, err := openPG(url, fmt.Sprintf("H:s%d", i), SyncAlways)
			if err != nil {
				t.Errorf("server %d: %v", i, err)
				return
			}
			p.Close()
		})
	}
	wg.Wait()
	var versions []int
	rows, err := sqlConn(t, url).Query(context.Background(), `SELECT version FROM gear_schema_version`)
	if err != nil {
		t.Fatal(err)
	}
	if versions, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(versions, []int{SchemaVersion}) {
		t.Fatalf("schema versions %v, want [%d]", versions, SchemaVersion)
	}
	var n int
	if err := sqlConn(t, url).QueryRow(context.Background(), `SELECT count(*) FROM gear_servers`).Scan(&n); err != nil || n != servers {
		t.Fatalf("%d server rows (%v), want %d", n, err, servers)
	}
}

// A database whose schema a newer gear made is refused, not written to.
func TestPostgres_NewerSchemaIsRefused(t *testing.T) {
	url := testpg.NewDB(t)
	if err := mustOpenPG(t, url, "H:a", SyncAlways).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlConn(t, url).Exec(context.Background(), `UPDATE gear_schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	p, err := openPG(url, "H:a", SyncAlways)
	if err == nil {
		p.Close()
		t.Fatal("opened a database of schema version 999")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("error %q should say the schema is newer", err)
	}
}

// Servers sharing a database keep their jobs apart: each replays its own, numbers its own.
func TestPostgres_OwnersAreSeparate(t *testing.T) {
	url := testpg.NewDB(t)
	a := mustOpenPG(t, url, "H:a", SyncAlways)
	b := mustOpenPG(t, url, "H:b", SyncAlways)
	for seq := uint64(1); seq <= 3; seq++ {
		mustAdd(t, a, job(seq, 1))
	}
	mustAdd(t, b, job(1, 1)) // the same number under another owner
	b.Remove(2)              // not b's: a's job 2 stays
	mustAdd(t, b, job(10, 1))
	a.Close()
	b.Close()
	a = mustOpenPG(t, url, "H:a", SyncAlways)
	b = mustOpenPG(t, url, "H:b", SyncAlways)
	if got := seqs(replay(t, a)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("owner a replayed %v, want [1 2 3]", got)
	}
	if got := seqs(replay(t, b)); !slices.Equal(got, []uint64{1, 10}) {
		t.Errorf("owner b replayed %v, want [1 10]", got)
	}
	if a.NextSeq() != 4 || b.NextSeq() != 11 {
		t.Errorf("NextSeq a %d b %d, want 4 and 11", a.NextSeq(), b.NextSeq())
	}
}

// Each start of a server under an owner is a new epoch (the fleet's fencing will compare them).
func TestPostgres_EpochGrowsAtEachStart(t *testing.T) {
	url := testpg.NewDB(t)
	for want := int64(1); want <= 3; want++ {
		p := mustOpenPG(t, url, "H:e", SyncAlways)
		if p.Epoch() != want || p.Owner() != "H:e" {
			t.Fatalf("start %d: owner %q epoch %d", want, p.Owner(), p.Epoch())
		}
		p.Close()
	}
}

// The database going away: Adds fail fast with an error (the server answers ERROR QUEUE_ERROR), a
// removal made meanwhile is kept and committed later, and once the database is back the store
// works again by itself. Nothing acknowledged is lost.
func TestPostgres_DatabaseDown(t *testing.T) {
	url := testpg.NewDB(t)
	proxy := testpg.Shared(t).NewProxy(t)
	p := mustOpenPG(t, proxy.URL(url), "H:d", SyncAlways)
	for seq := uint64(1); seq <= 3; seq++ {
		mustAdd(t, p, job(seq, 1))
	}
	proxy.Cut()
	p.Remove(1)
	began := time.Now()
	if err := add(p, job(4, 1)); err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Fatalf("Add with the database down: %v, want an error", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Add took %v to fail with the database down", took)
	}
	if st := p.Stats(); st.CommitErrors == 0 || st.LastError == "" {
		t.Errorf("stats after a failed commit: %+v", st)
	}
	proxy.Heal()
	// The pool reconnects; the first Add may still meet a connection it had not yet seen die.
	deadline := time.Now().Add(waitTimeout)
	for seq := uint64(5); ; seq++ {
		err := add(p, job(seq, 1))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Close()
	got := seqs(replay(t, mustOpenPG(t, url, "H:d", SyncAlways)))
	if len(got) < 3 || got[0] != 2 || got[1] != 3 || slices.Contains(got, 1) || slices.Contains(got, 4) {
		t.Fatalf("replayed %v: want 2 and 3 (acknowledged), not 1 (removed while down) nor 4 (refused)", got)
	}
}

// Stats.FailingSince (what /readyz reads) is set by the first failed batch and cleared once the
// database answers again, by the store's own check when nothing is written: a server that a load
// balancer stopped sending clients to must not stay unready for want of a submit.
func TestPostgres_FailingSinceClearsWithoutWrites(t *testing.T) {
	proxy := testpg.Shared(t).NewProxy(t)
	p := mustOpenPG(t, proxy.URL(testpg.NewDB(t)), "H:f", SyncAlways)
	mustAdd(t, p, job(1, 1))
	if st := p.Stats(); !st.FailingSince.IsZero() {
		t.Fatalf("FailingSince %v with the database up", st.FailingSince)
	}
	proxy.Cut()
	cut := time.Now()
	if err := add(p, job(2, 1)); err == nil {
		t.Fatal("Add with the database cut off succeeded")
	}
	if st := p.Stats(); st.FailingSince.IsZero() || st.FailingSince.Before(cut) {
		t.Fatalf("FailingSince %v after a failed batch (cut at %v)", st.FailingSince, cut)
	}
	proxy.Heal()
	for deadline := time.Now().Add(waitTimeout); !p.Stats().FailingSince.IsZero(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("FailingSince still %v %v after the database came back, with nothing written", p.Stats().FailingSince, waitTimeout)
		}
	}
	mustAdd(t, p, job(3, 1))
}

// A database that cannot be reached at start is an error naming it, without its password.
func TestPostgres_OpenUnreachable(t *testing.T) {
	proxy := testpg.Shared(t).NewProxy(t)
	url := proxy.URL(testpg.NewDB(t))
	proxy.Cut()
	withPassword := strings.Replace(url, "gear@", "gear:s3cret@", 1)
	_, err := openPG(withPassword, "H:u", SyncAlways)
	if err == nil {
		t.Fatal("opened a store on an unreachable database")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx") {
		t.Fatalf("error %q should name the database with its password masked", err)
	}
}

func TestMaskPostgresURL(t *testing.T) {
	t.Setenv("PGHOST", "/run/pg")
	t.Setenv("PGPORT", "5433")
	t.Setenv("PGUSER", "envuser")
	t.Setenv("PGDATABASE", "envdb")
	t.Setenv("PGPASSWORD", "envsecret")
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:secret@db.example:5432/gear?sslmode=require", "postgres://u:xxxxx@db.example:5432/gear?sslmode=require"},
		{"postgresql://u@db/gear?password=secret", "postgresql://u@db/gear?password=xxxxx"},
		{"postgres://db/gear", "postgres://db/gear"},
		{"host=db.example port=5432 user=u password=secret dbname=gear", "postgres://u@db.example:5432/gear"},
		{"", "postgres://envuser@/envdb?host=%2Frun%2Fpg&port=5433"},
		{"host=db port=notaport", "(invalid)"},
	} {
		if got := MaskPostgresURL(tc.in); got != tc.want {
			t.Errorf("MaskPostgresURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(MaskPostgresURL(tc.in), "secret") {
			t.Errorf("MaskPostgresURL(%q) shows the password", tc.in)
		}
	}
}

func TestParsePostgresURL(t *testing.T) {
	for _, good := range []string{"postgres://u@h/db", "host=/tmp dbname=x", ""} {
		if _, err := ParsePostgresURL(good); err != nil {
			t.Errorf("ParsePostgresURL(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"postgres://u@h:99999999/db", "host=h port=x", "postgres://%zz"} {
		if _, err := ParsePostgresURL(bad); err == nil || !strings.Contains(err.Error(), "--postgres-url") {
			t.Errorf("ParsePostgresURL(%q): %v, want an error naming the flag", bad, err)
		}
	}
}

// A sequence number past a bigint is refused for that job alone.
func TestPostgres_SeqBeyondBigint(t *testing.T) {
	p := mustOpenPG(t, testpg.NewDB(t), "H:b", SyncAlways)
	if err := add(p, job(1<<63, 1)); err == nil {
		t.Fatal("Add of sequence number 2^63 succeeded")
	}
	mustAdd(t, p, job(1, 1))
}

// A database made by an older gear is migrated forward, keeping its jobs.
func TestPostgres_MigratesAnOlderSchema(t *testing.T) {
	url := testpg.NewDB(t)
	c := sqlConn(t, url)
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE gear_schema_version (version int NOT NULL)`, migrations[0],
		`INSERT INTO gear_schema_version VALUES (1)`,
		`INSERT INTO gear_servers (owner, epoch, next_seq) VALUES ('H:old', 4, 100)`,
		`INSERT INTO gear_jobs VALUES ('H:old', 7, 'H:old:7', 'fn', '', '', 1, 0, 0, 0, 'data')`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	p := mustOpenPG(t, url, "H:old", SyncAlways)
	if got := replay(t, p); len(got) != 1 || got[0].Seq != 7 || string(got[0].Data) != "data" || p.Epoch() != 5 || p.NextSeq() != 100 {
		t.Fatalf("after migration: %v, epoch %d, next %d", got, p.Epoch(), p.NextSeq())
	}
	var v int
	if err := c.QueryRow(ctx, `SELECT version FROM gear_schema_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("schema version %d (%v), want %d", v, err, SchemaVersion)
	}
	if err := p.SaveSettings("fn", []byte("{}")); err != nil {
		t.Fatalf("settings after migration: %v", err)
	}
	mustDead(t, p.AddDead("H:old:3", []byte("{}")))
	mustAdd(t, p, job(8, 1))
	if got := loadDead(t, p); len(got) != 1 {
		t.Fatalf("dead set after migration: %q", got)
	}
}
