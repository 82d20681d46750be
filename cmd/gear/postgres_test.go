package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testpg"
	"github.com/gearhq/gear/protocol"
)

// --check-config reads --postgres-url without connecting (the host here does not exist) and prints
// it with the password masked; a URL that does not parse is an error naming the flag.
func TestPostgres_CheckConfig(t *testing.T) {
	out, errOut, code := checkConfig(t, "--store", "postgres", "--postgres-url", "postgres://u:pw@db.invalid:5432/gear")
	if code != 0 || !strings.Contains(out, "postgres-url = postgres://u:xxxxx@db.invalid:5432/gear\n") ||
		!strings.Contains(out, "store = postgres\n") || strings.Contains(out, ":pw@") {
		t.Fatalf("--check-config: exit %d\n%s%s", code, out, errOut)
	}
	for _, bad := range []string{"postgres://u@db:99999999/gear", "host=db port=x"} {
		_, errOut, code := checkConfig(t, "--store", "postgres", "--postgres-url", bad)
		if code != 1 || !strings.Contains(errOut, "--postgres-url") {
			t.Errorf("--check-config with %q: exit %d, %q", bad, code, errOut)
		}
	}
	// A bad URL matters only to the postgres store.
	if _, errOut, code := checkConfig(t, "--store", "memory", "--postgres-url", "host=db port=x"); code != 0 {
		t.Errorf("--check-config --store memory with a bad --postgres-url: exit %d, %q", code, errOut)
	}
}

// A database that cannot be reached stops the server at start, naming it without its password.
func TestPostgres_UnreachableAtStart(t *testing.T) {
	proxy := testpg.Shared(t).NewProxy(t)
	url := strings.Replace(proxy.URL(testpg.NewDB(t)), "gear@", "gear:s3cret@", 1)
	proxy.Cut()
	code, out := runGear(t, nil, "server", "--port", "0", "--store", "postgres", "--postgres-url", url)
	if code != 1 || !strings.Contains(out, "xxxxx@127.0.0.1") || strings.Contains(out, "s3cret") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// While the database is away, a background submit gets ERROR QUEUE_ERROR at once and the
// connection lives; foreground jobs go on; once it is back, submits are acknowledged again without
// a restart.
func TestPostgres_DatabaseDownAnswersQueueError(t *testing.T) {
	proxy := testpg.Shared(t).NewProxy(t)
	url := proxy.URL(testpg.NewDB(t))
	p, addr := startStored(t, durableStore{flags: []string{"--store", "postgres", "--postgres-url", url}})
	client := admConnect(t, addr)
	client.submitBg("fn")
	proxy.Cut()
	began := time.Now()
	client.send(protocol.SubmitJobBg, "fn", "", "while down")
	if got := client.expect(protocol.Error); got[0] != protocol.CodeQueueError {
		t.Fatalf("submit while the database is down: ERROR %q", got)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the error took %v", took)
	}
	fgWorker := dialRaw(t, addr)
	if _, err := fgWorker.nc.Write(protocol.AppendRequest(nil, protocol.CanDo, []byte("fg"))); err != nil {
		t.Fatal(err)
	}
	if err := foregroundJob(dialRaw(t, addr), fgWorker); err != nil {
		t.Fatalf("a foreground job while the database is down: %v", err)
	}

	proxy.Heal()
	waitFor(t, "a background submit to be acknowledged again", 10*time.Second, func() bool {
		client.send(protocol.SubmitJobBg, "fn", "", "after")
		f, err := client.dec.Next()
		return err == nil && f.Packet.Type == protocol.JobCreated
	})
	stopGear(t, p)
}

// gear admin fleet shows the servers sharing the database, on the Gearman port and over HTTP
// (/api/v1/fleet); a server on another store is not in a fleet.
func TestPostgres_AdminFleet(t *testing.T) {
	url := testpg.NewDB(t)
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--http", "127.0.0.1:0", "--store", "postgres",
		"--postgres-url", url, "--job-handle-prefix", "H:one", "--lease-ttl", "5")
	addr, web := listenAddr(t, p), httpListenAddr(t, p)
	other, _ := startStored(t, durableStore{flags: []string{"--store", "postgres", "--postgres-url", url, "--job-handle-prefix", "H:two"}})
	if _, errOut, code := gearCmd(t, addr, "", "client", "--background", "fn", "a"); code != 0 {
		t.Fatalf("submit: %d %s", code, errOut)
	}
	out, errOut, code := admRun(t, nil, "--server", addr, "fleet")
	if code != 0 || !strings.Contains(out, "self=H:one epoch=1 serving schedule_leader=") ||
		!strings.Contains(out, "H:one epoch=1 alive lease_until=") || !strings.Contains(out, " jobs=1 adoptions=0") ||
		!strings.Contains(out, "H:two epoch=1 alive") {
		t.Fatalf("gear admin fleet: %d %s%s", code, out, errOut)
	}
	out, errOut, code = admRun(t, nil, "--http", "http://"+web, "fleet")
	if code != 0 || !strings.Contains(out, `"self": "H:one"`) || !strings.Contains(out, `"owner": "H:two"`) ||
		!strings.Contains(out, `"alive": true`) {
		t.Fatalf("gear admin --http fleet: %d %s%s", code, out, errOut)
	}
	resp, err := http.Get("http://" + web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(body)
	for _, want := range []string{"gear_fleet_adoptions_total 0\n", "gear_fleet_jobs_adopted_total 0\n", "gear_fleet_fenced 0\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	mem := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory")
	if out, errOut, code := admRun(t, nil, "--server", listenAddr(t, mem), "fleet"); code == 0 || !strings.Contains(errOut+out, "NOT_A_FLEET") {
		t.Fatalf("gear admin fleet on a memory server: %d %s%s", code, out, errOut)
	}
	stopGear(t, other)
	stopGear(t, p)
	stopGear(t, mem)
}
