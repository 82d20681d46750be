package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/worker"
)

// The address forms themselves are tested in internal/serveraddr; these are the client's entry
// points to it.
func TestParseServers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"host", []string{"host:4730"}},
		{" a:1 , b ,, [::1]:9,[::1], ::1 ", []string{"a:1", "b:4730", "[::1]:9", "[::1]:4730"}},
	} {
		if got, err := client.ParseServers(tc.in); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseServers(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"a,:1", "h:x", "h:0", "h:70000", "[h]"} {
		if got, err := client.ParseServers(bad); err == nil {
			t.Errorf("ParseServers(%q) = %q; want an error", bad, got)
		}
	}
	if got, err := client.ParseServer("::1"); err != nil || got != "[::1]:4730" {
		t.Errorf("ParseServer(::1) = %q, %v", got, err)
	}
}

func TestServersFromEnv(t *testing.T) {
	t.Setenv("GEARMAN_SERVERS", "x:1,y")
	if got, err := client.ServersFromEnv(); err != nil || !slices.Equal(got, []string{"x:1", "y:4730"}) {
		t.Errorf("ServersFromEnv = %q, %v", got, err)
	}
	t.Setenv("GEARMAN_SERVERS", "")
	if got, err := client.ServersFromEnv(); err != nil || !slices.Equal(got, []string{client.DefaultServer}) {
		t.Errorf("ServersFromEnv without the variable = %q, %v", got, err)
	}
	t.Setenv("GEARMAN_SERVERS", "x:1,y:port")
	if got, err := client.ServersFromEnv(); err == nil || !strings.Contains(err.Error(), "GEARMAN_SERVERS") {
		t.Errorf("ServersFromEnv with a bad port = %q, %v; want an error naming GEARMAN_SERVERS", got, err)
	}
}

// New refuses a malformed address, from Options.Servers or from GEARMAN_SERVERS, before any
// connection is tried.
func TestNew_BadServers(t *testing.T) {
	for _, servers := range [][]string{{"h:0"}, {"ok", ":4730"}, {""}, {"a b"}} {
		if c, err := client.New(client.Options{Servers: servers}); err == nil {
			c.Close()
			t.Errorf("New with servers %q: no error", servers)
		}
	}
	t.Setenv("GEARMAN_SERVERS", "[::1")
	if c, err := client.New(client.Options{}); err == nil || !strings.Contains(err.Error(), "GEARMAN_SERVERS") {
		if c != nil {
			c.Close()
		}
		t.Errorf("New with a bad GEARMAN_SERVERS: %v", err)
	}
}

func TestParsePriority(t *testing.T) {
	for in, want := range map[string]client.Priority{"high": client.High, "normal": client.Normal, "": client.Normal, "low": client.Low} {
		if got, err := client.ParsePriority(in); err != nil || got != want {
			t.Errorf("ParsePriority(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := client.ParsePriority("urgent"); err == nil || !strings.Contains(err.Error(), "urgent") {
		t.Errorf("ParsePriority(urgent): %v", err)
	}
}

// Requests the client can refuse by itself never reach a server.
func TestClient_RefusesBadSubmissions(t *testing.T) {
	addr, _ := mustStartGear(t)
	c := newClient(t, addr)
	ctx := ctxTimeout(t, 5*time.Second)
	if _, err := c.SubmitBackground(ctx, "f", nil, client.Submission{Unique: strings.Repeat("u", 65)}); err == nil {
		t.Error("a 65-byte unique key was accepted")
	}
	if _, err := c.SubmitBackground(ctx, "f", nil, client.Submission{Unique: strings.Repeat("u", 64)}); err != nil {
		t.Errorf("a 64-byte unique key: %v", err)
	}
	if _, err := c.Submit(ctx, "f", nil, client.Submission{At: time.Now().Add(time.Hour)}); err == nil {
		t.Error("a foreground scheduled job was accepted")
	}
}

// Close fails the jobs still waiting with ErrClosed, and every later request.
func TestClient_Close(t *testing.T) {
	addr, _ := mustStartGear(t)
	g := newGate()
	defer g.Open()
	startWorker(t, []string{addr}, 1, map[string]worker.Func{"cl.block": g.Fn})
	c, err := client.New(client.Options{Servers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	job, err := c.Submit(ctx, "cl.block", []byte("x"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	g.WaitStarted(t)
	c.Close()
	if _, err := job.Wait(ctx); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Wait after Close: %v; want ErrClosed", err)
	}
	if _, err := c.Do(ctx, "cl.block", nil, client.Submission{}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Do after Close: %v; want ErrClosed", err)
	}
	if _, err := c.Echo(context.Background(), nil); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Echo after Close: %v; want ErrClosed", err)
	}
}
