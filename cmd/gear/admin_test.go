package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
)

// admStartServer starts a Gear server in-process on 127.0.0.1:0, handing out job handles
// PREFIX:1, PREFIX:2…, and returns its address.
func admStartServer(t *testing.T, prefix string) string {
	t.Helper()
	opts := server.DefaultOptions()
	opts.Listen = nil
	opts.HandlePrefix = prefix
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	return ln.Addr().String()
}

// admRun runs `gear admin ARGS...` to completion with the environment env added.
func admRun(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gearBin, append([]string{"admin"}, args...)...)
	// The race runtime sleeps a second before a successful exit unless told otherwise.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), "GEARMAN_SERVERS=", "GORACE="+gorace)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// admMustRun runs `gear admin ARGS...` against addr and fails the test unless it exits 0.
func admMustRun(t *testing.T, addr string, args ...string) string {
	t.Helper()
	out, errOut, code := admRun(t, nil, append([]string{"--server", addr}, args...)...)
	if code != 0 {
		t.Fatalf("gear admin %v: exit %d\n%s", args, code, errOut)
	}
	return out
}

// admPeer is a raw binary-protocol connection.
type admPeer struct {
	t   *testing.T
	nc  net.Conn
	dec *protocol.Decoder
}

func admConnect(t *testing.T, addr string) *admPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &admPeer{t: t, nc: nc, dec: protocol.NewDecoder(nc, 0)}
}

func (p *admPeer) send(typ protocol.Type, args ...string) {
	p.t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	if _, err := p.nc.Write(protocol.AppendRequest(nil, typ, bs...)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *admPeer) expect(typ protocol.Type) []string {
	p.t.Helper()
	f, err := p.dec.Next()
	if err != nil {
		p.t.Fatalf("waiting for %v: %v", typ, err)
	}
	if f.Packet.Type != typ {
		p.t.Fatalf("got %v %q, want %v", f.Packet.Type, f.Packet.Args, typ)
	}
	args := make([]string, len(f.Packet.Args))
	for i, a := range f.Packet.Args {
		args[i] = string(a)
	}
	return args
}

func (p *admPeer) submitBg(fn string) string {
	p.t.Helper()
	p.send(protocol.SubmitJobBg, fn, "", "data")
	return p.expect(protocol.JobCreated)[0]
}

// admBusyServer starts a server with three resize_image jobs (one running on worker "resizer") and
// one email job.
func admBusyServer(t *testing.T) string {
	addr := admStartServer(t, "H:test")
	admBusy(t, addr)
	return addr
}

const admBusyStatus = "" +
	"FUNCTION      TOTAL  RUNNING  WORKERS\n" +
	"email         1      0        0\n" +
	"resize_image  3      1        1\n"

func TestAdmin_StatusTable(t *testing.T) {
	addr := admBusyServer(t)
	if out := admMustRun(t, addr, "status"); out != admBusyStatus {
		t.Errorf("gear admin status:\n%s\nwant\n%s", out, admBusyStatus)
	}
	// The same from GEARMAN_SERVERS, and with -s.
	if out, errOut, code := admRun(t, []string{"GEARMAN_SERVERS=" + addr}, "status"); code != 0 || out != admBusyStatus {
		t.Errorf("with GEARMAN_SERVERS: exit %d %q\n%s", code, out, errOut)
	}
	if out := admMustRun(t, addr, "-s", addr, "status"); out != admBusyStatus {
		t.Errorf("with -s (a duplicate server): %q", out)
	}
}

func TestAdmin_Views(t *testing.T) {
	addr := admBusyServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"priority"}, "" +
			"FUNCTION      HIGH  NORMAL  LOW  WORKERS\n" +
			"email         0     1       0    0\n" +
			"resize_image  0     2       0    1\n"},
		{[]string{"jobs"}, "" +
			"HANDLE    RETRIES  IGNORED  QUEUED\n" +
			"H:test:1  0        no       no\n" +
			"H:test:2  0        no       yes\n" +
			"H:test:3  0        no       yes\n" +
			"H:test:4  0        no       yes\n"},
		{[]string{"unique"}, ""},
		{[]string{"version"}, server.Version + "\n"},
		{[]string{"pid"}, strconv.Itoa(os.Getpid()) + "\n"},
		{[]string{"verbose"}, "INFO\n"},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			if out := admMustRun(t, addr, tc.args...); out != tc.want {
				t.Errorf("got\n%s\nwant\n%s", out, tc.want)
			}
		})
	}
	out := admMustRun(t, addr, "workers")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID IP FD FUNCTIONS" {
		t.Fatalf("workers:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 4 || f[0] != "resizer" || f[1] != "127.0.0.1" || f[3] != "resize_image" {
		t.Errorf("workers row %q", lines[1])
	}
}

func TestAdmin_JSON(t *testing.T) {
	addr := admBusyServer(t)
	for _, args := range [][]string{{"--json", "status"}, {"status", "--json"}} {
		var s []admin.FunctionStatus
		out := admMustRun(t, addr, args...)
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		want := []admin.FunctionStatus{{Name: "email", Total: 1}, {Name: "resize_image", Total: 3, Running: 1, Workers: 1}}
		if !slices.Equal(s, want) {
			t.Errorf("%v: %+v, want %+v", args, s, want)
		}
	}
	var ws []admin.WorkerInfo
	if err := json.Unmarshal([]byte(admMustRun(t, addr, "--json", "workers")), &ws); err != nil || len(ws) != 1 || ws[0].ID != "resizer" {
		t.Errorf("workers --json: %v %+v", err, ws)
	}
	var js []admin.JobInfo
	if err := json.Unmarshal([]byte(admMustRun(t, addr, "--json", "jobs")), &js); err != nil || len(js) != 4 {
		t.Errorf("jobs --json: %v %+v", err, js)
	}
	if out := admMustRun(t, addr, "--json", "unique"); out != "[]\n" {
		t.Errorf("unique --json with no unique keys: %q, want []", out)
	}
	if out := admMustRun(t, addr, "--json", "version"); out != "{\n  \"version\": \""+server.Version+"\"\n}\n" {
		t.Errorf("version --json: %q", out)
	}
	if out := admMustRun(t, addr, "--json", "create", "f"); out != "{\n  \"ok\": true\n}\n" {
		t.Errorf("create --json: %q", out)
	}
}

func TestAdmin_Cancel(t *testing.T) {
	addr := admStartServer(t, "H:test")
	h := admConnect(t, addr).submitBg("resize_image")
	if out := admMustRun(t, addr, "cancel", h); out != "cancelled job "+h+"\n" {
		t.Errorf("cancel: %q", out)
	}
	if out := admMustRun(t, addr, "jobs"); strings.Contains(out, h) {
		t.Errorf("job still listed after cancel:\n%s", out)
	}
	out, errOut, code := admRun(t, nil, "--server", addr, "cancel", h)
	if code != 1 || out != "" || !strings.Contains(errOut, "UNKNOWN_JOB") || !strings.Contains(errOut, addr) {
		t.Errorf("cancelling it again: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestAdmin_CreateAndDrop(t *testing.T) {
	addr := admStartServer(t, "H:test")
	if out := admMustRun(t, addr, "create", "thumbnails"); out != "created function thumbnails\n" {
		t.Errorf("create: %q", out)
	}
	if out := admMustRun(t, addr, "status"); !strings.Contains(out, "\nthumbnails  0      0        0\n") {
		t.Errorf("status after create:\n%s", out)
	}
	if out := admMustRun(t, addr, "drop", "thumbnails"); out != "dropped function thumbnails\n" {
		t.Errorf("drop: %q", out)
	}
	if out := admMustRun(t, addr, "status"); out != "FUNCTION  TOTAL  RUNNING  WORKERS\n" {
		t.Errorf("status after drop:\n%s", out)
	}
	_, errOut, code := admRun(t, nil, "--server", addr, "drop", "thumbnails")
	if code != 1 || !strings.Contains(errOut, "function not found") {
		t.Errorf("dropping it again: exit %d, %q", code, errOut)
	}
	worker := admConnect(t, addr)
	worker.send(protocol.CanDo, "busy")
	worker.send(protocol.EchoReq, "sync")
	worker.expect(protocol.EchoRes)
	_, errOut, code = admRun(t, nil, "--server", addr, "drop", "busy")
	if code != 1 || !strings.Contains(errOut, "still connected workers") {
		t.Errorf("dropping a function with a worker: exit %d, %q", code, errOut)
	}
}

func TestAdmin_MaxQueue(t *testing.T) {
	addr := admStartServer(t, "H:test")
	client := admConnect(t, addr)
	if out := admMustRun(t, addr, "maxqueue", "limited", "1"); out != "maxqueue limited: 1\n" {
		t.Errorf("maxqueue: %q", out)
	}
	client.submitBg("limited")
	client.send(protocol.SubmitJobBg, "limited", "", "data")
	if got := client.expect(protocol.Error); got[0] != "QUEUE_ERROR" {
		t.Errorf("submit over the limit: %q", got)
	}
	if out := admMustRun(t, addr, "maxqueue", "limited", "5", "0", "-1"); out != "maxqueue limited: high 5, normal unlimited, low unlimited\n" {
		t.Errorf("maxqueue with three limits: %q", out)
	}
	client.submitBg("limited")
	if out := admMustRun(t, addr, "maxqueue", "limited"); out != "maxqueue limited: unlimited\n" {
		t.Errorf("maxqueue without limits: %q", out)
	}
	client.submitBg("limited")
	for _, bad := range [][]string{{"maxqueue", "limited", "x"}, {"maxqueue", "limited", "1", "2"}, {"maxqueue"}} {
		if _, errOut, code := admRun(t, nil, append([]string{"--server", addr}, bad...)...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d %q, want 2 and a message", bad, code, errOut)
		}
	}
}

// `shutdown --graceful` stops the listener at once and lets the running job finish.
func TestAdmin_ShutdownGraceful(t *testing.T) {
	addr := admStartServer(t, "H:test")
	client := admConnect(t, addr)
	worker := admConnect(t, addr)
	worker.send(protocol.CanDo, "slow")
	client.send(protocol.SubmitJob, "slow", "", "data")
	h := client.expect(protocol.JobCreated)[0]
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign)

	if out := admMustRun(t, addr, "shutdown", "--graceful"); !strings.HasPrefix(out, "shutting down gracefully") {
		t.Errorf("shutdown --graceful: %q", out)
	}
	waitFor(t, "the listener to close", 10*time.Second, func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		nc.Close()
		return false
	})
	worker.send(protocol.WorkComplete, h, "done")
	if got := client.expect(protocol.WorkComplete); got[1] != "done" {
		t.Errorf("result after a graceful shutdown: %q", got)
	}
}

func TestAdmin_Shutdown(t *testing.T) {
	addr := admStartServer(t, "H:test")
	if out := admMustRun(t, addr, "shutdown"); out != "shutting down\n" {
		t.Errorf("shutdown: %q", out)
	}
	waitFor(t, "the server to stop", 10*time.Second, func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		nc.Close()
		return false
	})
}

func admFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestAdmin_UnreachableServer(t *testing.T) {
	dead := admFreeAddr(t)
	out, errOut, code := admRun(t, nil, "--server", dead, "status")
	if code != 1 || out != "" || !strings.Contains(errOut, "gear admin: "+dead+": ") || !strings.Contains(errOut, "refused") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestAdmin_SeveralServers(t *testing.T) {
	a, b := admBusyServer(t), admStartServer(t, "H:b")
	want := "== " + a + "\n" + admBusyStatus + "\n== " + b + "\nFUNCTION  TOTAL  RUNNING  WORKERS\n"
	if out := admMustRun(t, a, "--server", b, "status"); out != want {
		t.Errorf("two servers:\n%s\nwant\n%s", out, want)
	}
	if out, _, code := admRun(t, []string{"GEARMAN_SERVERS=" + a + "," + b}, "status"); code != 0 || out != want {
		t.Errorf("two servers from GEARMAN_SERVERS: exit %d\n%s", code, out)
	}

	var byServer map[string][]admin.FunctionStatus
	if err := json.Unmarshal([]byte(admMustRun(t, a, "--server", b, "--json", "status")), &byServer); err != nil ||
		len(byServer) != 2 || len(byServer[a]) != 2 || byServer[b] == nil || len(byServer[b]) != 0 {
		t.Errorf("--json with two servers: %v %+v", err, byServer)
	}

	// A job lives on one server: cancel succeeds when one of them has it.
	h := admConnect(t, b).submitBg("only_on_b")
	out := admMustRun(t, a, "--server", b, "cancel", h)
	if !strings.Contains(out, "== "+a+"\njob not found here\n") || !strings.Contains(out, "== "+b+"\ncancelled job "+h+"\n") {
		t.Errorf("cancel on two servers:\n%s", out)
	}
	if _, errOut, code := admRun(t, nil, "--server", a, "--server", b, "cancel", h); code != 1 || !strings.Contains(errOut, "none of the servers") {
		t.Errorf("cancel of a job on neither server: exit %d %q", code, errOut)
	}

	// One server down: the other's answer is printed, the exit status is 1.
	dead := admFreeAddr(t)
	out, errOut, code := admRun(t, nil, "-s", a+","+dead, "status")
	if code != 1 || !strings.Contains(out, admBusyStatus) || !strings.Contains(errOut, dead) {
		t.Errorf("one server down: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = admRun(t, nil, "-s", a, "-s", dead, "--json", "version")
	var versions map[string]map[string]string
	if err := json.Unmarshal([]byte(out), &versions); err != nil || code != 1 ||
		versions[a]["version"] != server.Version || versions[dead]["error"] == "" {
		t.Errorf("--json with one server down: exit %d %v\n%s", code, err, out)
	}
}

func TestAdmin_UsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"missing handle", []string{"cancel"}, "cancel HANDLE"},
		{"extra argument", []string{"status", "now"}, "status takes no arguments"},
		{"graceful elsewhere", []string{"status", "--graceful"}, "--graceful"},
		{"unknown flag", []string{"--loud", "status"}, "flag provided but not defined"},
		{"bad port", []string{"--server", "127.0.0.1:99999", "status"}, "invalid port"},
		{"flag without value", []string{"status", "--server"}, "flag needs an argument"},
		{"whitespace in argument", []string{"drop", "a b"}, "not a valid argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := admRun(t, nil, tc.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "gear admin --help") {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tc.want)
			}
		})
	}
}

func TestAdmin_Help(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"status", "--help"}} {
		out, errOut, code := admRun(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: gear admin") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	out, _, _ := admRun(t, nil, "--help")
	for _, cmd := range []string{"status", "priority", "workers", "jobs", "unique", "version", "pid", "cancel HANDLE",
		"create FUNCTION", "drop FUNCTION", "maxqueue FUNCTION [MAX | HIGH NORMAL LOW]", "shutdown [--graceful]", "GEARMAN_SERVERS"} {
		if !strings.Contains(out, cmd) {
			t.Errorf("usage lacks %q", cmd)
		}
	}
}

// admBusy gives the server at addr three resize_image jobs (one running on worker "resizer") and
// one email job.
func admBusy(t *testing.T, addr string) {
	client := admConnect(t, addr)
	for range 3 {
		client.submitBg("resize_image")
	}
	client.submitBg("email")
	worker := admConnect(t, addr)
	worker.send(protocol.SetClientID, "resizer")
	worker.send(protocol.CanDo, "resize_image")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign)
}

// The same tables and JSON against the real gearmand: gear admin reads its replies into the views
// Gear's core renders.
func TestAdmin_AgainstGearmand(t *testing.T) {
	addr := testenv.StartGearmand(t)
	admBusy(t, addr)
	if out := admMustRun(t, addr, "status"); out != admBusyStatus {
		t.Errorf("gear admin status against gearmand:\n%s\nwant\n%s", out, admBusyStatus)
	}
	var s []admin.FunctionStatus
	if err := json.Unmarshal([]byte(admMustRun(t, addr, "--json", "status")), &s); err != nil {
		t.Fatal(err)
	}
	want := []admin.FunctionStatus{{Name: "email", Total: 1}, {Name: "resize_image", Total: 3, Running: 1, Workers: 1}}
	if !slices.Equal(s, want) {
		t.Errorf("status --json: %+v, want %+v", s, want)
	}
	if out := admMustRun(t, addr, "priority"); out != ""+
		"FUNCTION      HIGH  NORMAL  LOW  WORKERS\n"+
		"email         0     1       0    0\n"+
		"resize_image  0     2       0    1\n" {
		t.Errorf("priority:\n%s", out)
	}
	// gearmand lists clients and admin connections among its workers, with no functions.
	var ws []admin.WorkerInfo
	if err := json.Unmarshal([]byte(admMustRun(t, addr, "--json", "workers")), &ws); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range ws {
		if w.ID == "resizer" && slices.Equal(w.Functions, []string{"resize_image"}) {
			found = true
		}
	}
	if !found {
		t.Errorf("workers --json has no resizer: %+v", ws)
	}
	if out := admMustRun(t, addr, "workers"); !strings.Contains(out, "resizer") || !strings.HasPrefix(out, "ID ") {
		t.Errorf("workers table:\n%s", out)
	}
	var js []admin.JobInfo
	if err := json.Unmarshal([]byte(admMustRun(t, addr, "--json", "jobs")), &js); err != nil || len(js) != 4 {
		t.Errorf("jobs --json: %v %+v", err, js)
	}
	for _, j := range js {
		if !j.Queued { // gearmand 1.1 sets JOB_QUEUED for a running job too
			t.Errorf("gearmand job %+v not queued", j)
		}
	}
	if out := admMustRun(t, addr, "jobs"); strings.Count(out, "\n") != 5 || !strings.HasPrefix(out, "HANDLE ") {
		t.Errorf("jobs table:\n%s", out)
	}
}

// gear admin --http: the same tables and JSON read through the HTTP API, actions taken through it,
// with a bearer token from GEAR_HTTP_SECRET.
func TestAdmin_OverHTTP(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("adm-tok"), 0o600)
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "--job-handle-prefix", "H:test",
		"--http", "127.0.0.1:0", "--http-auth", "token", "--http-auth-secret-file", secretFile)
	addr := listenAddr(t, p)
	web := "http://" + httpListenAddr(t, p)
	admBusy(t, addr)
	tok := []string{"GEAR_HTTP_SECRET=adm-tok"}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut string
		var code int
		waitFor(t, "gear admin --http "+strings.Join(args, " "), 10*time.Second, func() bool {
			out, errOut, code = admRun(t, tok, append([]string{"--http", web}, args...)...)
			return code == 0 || !strings.Contains(errOut, "503") // 503: not attached yet
		})
		if code != 0 {
			t.Fatalf("gear admin --http %v: exit %d\n%s", args, code, errOut)
		}
		return out
	}
	if out := run("status"); out != admBusyStatus {
		t.Errorf("status over HTTP:\n%s\nwant\n%s", out, admBusyStatus)
	}
	if out := run("priority"); out != ""+
		"FUNCTION      HIGH  NORMAL  LOW  WORKERS\n"+
		"email         0     1       0    0\n"+
		"resize_image  0     2       0    1\n" {
		t.Errorf("priority over HTTP:\n%s", out)
	}
	var ws []admin.WorkerInfo
	if err := json.Unmarshal([]byte(run("--json", "workers")), &ws); err != nil || len(ws) != 1 || ws[0].ID != "resizer" {
		t.Errorf("workers --json over HTTP: %v %+v", err, ws)
	}
	if out := run("jobs"); strings.Count(out, "H:test:") != 4 {
		t.Errorf("jobs over HTTP:\n%s", out)
	}
	if out := run("cancel", "H:test:4"); out != "cancelled job H:test:4\n" {
		t.Errorf("cancel over HTTP: %q", out)
	}
	if out := run("status"); !strings.Contains(out, "email         0") {
		t.Errorf("after the cancel:\n%s", out)
	}
	if _, errOut, code := admRun(t, tok, "--http", web, "create", "f"); code != 1 || !strings.Contains(errOut, "not available through the HTTP API") {
		t.Errorf("create over HTTP: exit %d %s", code, errOut)
	}
	if _, errOut, code := admRun(t, nil, "--http", web, "status"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("without the token: exit %d %s", code, errOut)
	}
}
