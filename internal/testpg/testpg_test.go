package testpg

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Each NewDB is a database of its own, empty, reachable over the socket and over TCP.
func TestNewDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := NewDB(t), NewDB(t)
	if a == b {
		t.Fatalf("two NewDB calls returned the same database %s", a)
	}
	conn, err := pgconn.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	conn2, err := pgconn.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	if _, err := conn2.Exec(ctx, "SELECT * FROM t").ReadAll(); err == nil {
		t.Fatal("a table of one test's database is seen in another's")
	}
	c := Shared(t)
	tcp, err := pgconn.Connect(ctx, c.TCPURL("postgres"))
	if err != nil {
		t.Fatalf("over TCP: %v", err)
	}
	tcp.Close(ctx)
}
