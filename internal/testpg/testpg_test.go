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

// A cluster of the test's own goes down and comes back on the same port with its data.
func TestDownUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := New(t)
	if c == Shared(t) {
		t.Fatal("New returned the shared cluster")
	}
	url := c.TCPURL("postgres")
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.Down("fast"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
		t.Fatal("a session outlived pg_ctl stop -m fast")
	}
	conn.Close(ctx)
	if _, err := pgconn.Connect(ctx, url); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if _, err := c.CreateDB(); err == nil {
		t.Fatal("CreateDB on a stopped server")
	}
	port := c.Port()
	if err := c.Up(); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Fatalf("port %d after Up, was %d", c.Port(), port)
	}
	conn, err = pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatalf("after Up: %v", err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "SELECT x FROM kept").ReadAll()
	if err != nil || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "7" {
		t.Fatalf("the table after Up: %v %v", res, err)
	}
	if _, err := c.CreateDB(); err != nil {
		t.Fatalf("CreateDB after Up: %v", err)
	}
}
