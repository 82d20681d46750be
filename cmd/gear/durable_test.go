package main

// gear server with a durable store, as the binary: flags and environment, a restart that keeps
// background jobs, and storage that is unusable, taken, corrupt or full.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/internal/testpg"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// noExitSleep keeps the race runtime from sleeping a second before the server exits.
var noExitSleep = "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")

// startDurable starts `gear server --store pebble --data-dir dir --port 0 extra...` and returns it
// with its address.
func startDurable(t *testing.T, dir string, extra ...string) (*proc, string) {
	t.Helper()
	p := startGear(t, []string{noExitSleep}, gearBin,
		append([]string{"server", "--store", "pebble", "--data-dir", dir, "--port", "0"}, extra...)...)
	return p, listenAddr(t, p)
}

// stopGear sends SIGTERM and expects exit status 0.
func stopGear(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, p); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.output())
	}
}

// storeInfo runs `gear admin store --json` against addr.
func storeInfo(t *testing.T, addr string) admin.StoreInfo {
	t.Helper()
	var info admin.StoreInfo
	out := admMustRun(t, addr, "store", "--json")
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("gear admin store --json: %v\n%s", err, out)
	}
	return info
}

// jobHandles lists the handles `show jobs` reports.
func jobHandles(t *testing.T, addr string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	jobs, err := c.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var hs []string
	for _, j := range jobs {
		hs = append(hs, j.Handle)
	}
	slices.Sort(hs)
	return hs
}

// durableStore is where a test's servers keep their jobs: the flags that choose it, what the start
// log says of it, and the path the store view shows.
type durableStore struct {
	name, log, path string
	flags           []string
}

func pebbleStore(t *testing.T) durableStore {
	dir := t.TempDir()
	return durableStore{name: "pebble", log: `msg="durable store" engine=pebble data_dir=` + dir + " sync=always",
		path: dir, flags: []string{"--store", "pebble", "--data-dir", dir}}
}

// postgresStore is a new database on the test cluster, its URL given with a password (the cluster
// trusts local connections and ignores it) that the server must never show.
func postgresStore(t *testing.T) durableStore {
	url := strings.Replace(testpg.NewDB(t), "gear@", "gear:s3cret@", 1)
	return durableStore{name: "postgres", log: `msg="durable store" engine=postgres database=`,
		path: store.MaskPostgresURL(url), flags: []string{"--store", "postgres", "--postgres-url", url}}
}

// startStored starts `gear server --port 0` on st and returns it with its address.
func startStored(t *testing.T, st durableStore) (*proc, string) {
	t.Helper()
	p := startGear(t, []string{noExitSleep}, gearBin, append([]string{"server", "--port", "0"}, st.flags...)...)
	return p, listenAddr(t, p)
}

// onEachStore runs fn as a subtest on a Pebble store and on a PostgreSQL one.
func onEachStore(t *testing.T, fn func(t *testing.T, st durableStore)) {
	for _, mk := range []func(*testing.T) durableStore{pebbleStore, postgresStore} {
		st := mk(t)
		t.Run(st.name, func(t *testing.T) { fn(t, st) })
	}
}

func TestDurable_RestartKeepsJobs(t *testing.T) { onEachStore(t, restartKeepsJobs) }

func restartKeepsJobs(t *testing.T, st durableStore) {
	p, addr := startStored(t, st)
	if !strings.Contains(p.output(), st.log) {
		t.Errorf("the start log does not name the store:\n%s", p.output())
	}
	client := admConnect(t, addr)
	var handles []string
	for _, sub := range []struct {
		typ          protocol.Type
		unique, data string
	}{
		{protocol.SubmitJobLowBg, "", "low"},
		{protocol.SubmitJobBg, "report-42", "normal"},
		{protocol.SubmitJobHighBg, "", "high"},
	} {
		client.send(sub.typ, "fn", sub.unique, sub.data)
		handles = append(handles, client.expect(protocol.JobCreated)[0])
	}
	stopGear(t, p)

	p, addr = startStored(t, st)
	info := storeInfo(t, addr)
	if info.Engine != st.name || info.Path != st.path || info.Sync != "always" || info.Jobs != 3 || info.LastError != "" {
		t.Fatalf("store after restart: %+v", info)
	}
	table := admMustRun(t, addr, "store")
	if strings.Contains(table+p.output(), "s3cret") {
		t.Errorf("the password shows:\n%s\n%s", table, p.output())
	}
	if !regexp.MustCompile(`^engine      ` + st.name + `\npath        ` + regexp.QuoteMeta(st.path) +
		`\nsync        always\njobs        3\nlast sync   \S+\nlast error  -\n$`).MatchString(table) {
		t.Errorf("gear admin store:\n%s", table)
	}
	client = admConnect(t, addr)
	client.send(protocol.SubmitJobBg, "fn", "report-42", "again")
	if got := client.expect(protocol.JobCreated)[0]; got != handles[1] {
		t.Errorf("unique report-42 after restart: %s, want %s", got, handles[1])
	}
	worker := admConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	for _, i := range []int{2, 1, 0} {
		worker.send(protocol.GrabJob)
		got := worker.expect(protocol.JobAssign)
		if got[0] != handles[i] {
			t.Fatalf("worker got %q, want %s", got, handles[i])
		}
		worker.send(protocol.WorkComplete, got[0], "")
	}
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob)
	waitFor(t, "the store to empty", 10*time.Second, func() bool { return storeInfo(t, addr).Jobs == 0 })
}

// The dead set survives a restart on either store: a job failed on its only attempt is listed
// after the restart, and retrying it by handle runs it again and takes it out of the dead set for
// good.
func TestDurable_RestartKeepsDeadSet(t *testing.T) { onEachStore(t, restartKeepsDeadSet) }

func restartKeepsDeadSet(t *testing.T, st durableStore) {
	p, addr := startStored(t, st)
	if got := adminLine(t, addr, "retry doomed 1 0 0"); got != "OK\r\n" {
		t.Fatalf("retry doomed 1 0 0: %q", got)
	}
	h := admConnect(t, addr).submitBg("doomed")
	worker := admConnect(t, addr)
	worker.send(protocol.CanDo, "doomed")
	worker.send(protocol.GrabJob)
	if got := worker.expect(protocol.JobAssign); got[0] != h {
		t.Fatalf("worker got %q, want %s", got, h)
	}
	worker.send(protocol.WorkFail, h)
	listed := h + "\tdoomed\t1\t"
	waitFor(t, "the failed job in the dead set", 10*time.Second, func() bool {
		return strings.Contains(adminList(t, addr, "dead list"), listed)
	})
	stopGear(t, p)

	p, addr = startStored(t, st)
	if got := adminList(t, addr, "dead list"); !strings.Contains(got, listed) || !strings.HasSuffix(got, "WORK_FAIL\n.\n") {
		t.Fatalf("dead list after a restart:\n%s", got)
	}
	if got := adminLine(t, addr, "dead retry "+h); got != "OK 1\n" {
		t.Fatalf("dead retry %s: %q", h, got)
	}
	worker = admConnect(t, addr)
	worker.send(protocol.CanDo, "doomed")
	worker.send(protocol.GrabJob)
	got := worker.expect(protocol.JobAssign)
	if got[0] == h || got[2] != "data" {
		t.Fatalf("the retried dead job: %q", got)
	}
	worker.send(protocol.WorkComplete, got[0], "")
	waitFor(t, "the store to empty", 10*time.Second, func() bool { return storeInfo(t, addr).Jobs == 0 })
	stopGear(t, p)

	p, addr = startStored(t, st)
	if got := adminList(t, addr, "dead list"); got != ".\n" {
		t.Errorf("dead list after the retried job ran and a restart:\n%s", got)
	}
	stopGear(t, p)
}

// GEAR_STORE and GEAR_DATA_DIR choose the store when no flag does; --sync shows in `store`; without
// a data directory the store goes to gear-data under $XDG_STATE_HOME.
func TestDurable_StoreSelection(t *testing.T) {
	dir := t.TempDir()
	state := t.TempDir()
	pg := testpg.NewDB(t)
	cluster := testpg.Shared(t)
	pgDB := pg[strings.LastIndex(pg, "/")+1 : strings.Index(pg, "?")]
	pgEnv := []string{"GEAR_STORE=postgres", "PGHOST=" + cluster.Dir(), "PGPORT=" + strconv.Itoa(cluster.Port()),
		"PGUSER=gear", "PGDATABASE=" + pgDB, "PGPASSWORD=s3cret"}
	pgEnvPath := store.MaskPostgresURL(fmt.Sprintf("host=%s port=%d user=gear dbname=%s", cluster.Dir(), cluster.Port(), pgDB))
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want admin.StoreInfo
	}{
		{"environment", []string{"GEAR_STORE=pebble", "GEAR_DATA_DIR=" + dir}, nil,
			admin.StoreInfo{Engine: "pebble", Path: dir, Sync: "always"}},
		{"flag over environment", []string{"GEAR_STORE=pebble", "GEAR_DATA_DIR=" + dir}, []string{"--store", "memory"},
			admin.StoreInfo{Engine: "memory"}},
		{"sync interval", nil, []string{"--store", "pebble", "--data-dir", dir, "--sync", "interval"},
			admin.StoreInfo{Engine: "pebble", Path: dir, Sync: "interval"}},
		{"sync none", nil, []string{"--store", "pebble", "--data-dir", dir, "--sync", "none"},
			admin.StoreInfo{Engine: "pebble", Path: dir, Sync: "none"}},
		{"default directory", []string{"GEAR_STORE=pebble", "XDG_STATE_HOME=" + state}, nil,
			admin.StoreInfo{Engine: "pebble", Path: filepath.Join(state, "gear-data"), Sync: "always"}},
		{"gearmand's -q builtin", []string{"GEAR_STORE="}, []string{"-q", "builtin"}, admin.StoreInfo{Engine: "memory"}},
		{"postgres from the environment", []string{"GEAR_STORE=postgres", "GEAR_POSTGRES_URL=" + pg}, nil,
			admin.StoreInfo{Engine: "postgres", Path: store.MaskPostgresURL(pg), Sync: "always"}},
		{"postgres from PG variables", pgEnv, []string{"--sync", "interval"},
			admin.StoreInfo{Engine: "postgres", Path: pgEnvPath, Sync: "interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startGear(t, append(tc.env, noExitSleep), gearBin, append([]string{"server", "--port", "0"}, tc.args...)...)
			addr := listenAddr(t, p)
			if got := storeInfo(t, addr); got != tc.want {
				t.Errorf("store: %+v, want %+v", got, tc.want)
			}
			stopGear(t, p) // the next case may use the same directory
		})
	}
}

// runGear runs the binary to completion and returns its exit status and output.
func runGear(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(gearBin, args...)
	cmd.Env = append(append(os.Environ(), noExitSleep), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatal(err)
	return 0, ""
}

// Storage the server cannot use stops it at start with status 1 and a message naming the directory.
// The tests run as root, which file permissions do not stop, so the directories here fail for root
// too: under a regular file, a regular file itself, a directory of /proc.
func TestDurable_UnusableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "regular-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir, want string }{
		{"under a regular file", filepath.Join(file, "sub"), "not a directory"},
		{"a regular file", file, "not a directory"},
		{"in /proc", "/proc/gear-data", "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runGear(t, nil, "server", "--store", "pebble", "--data-dir", tc.dir, "--port", "0")
			if code != 1 || !strings.Contains(out, "data directory "+tc.dir) || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want 1 and a message naming %s (%s)", code, out, tc.dir, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, flag, value, want string }{
		{"bad sync mode", "--sync", "sometimes", "sync mode must be always, interval or none"},
		{"unknown store", "--store", "redis", `unknown store "redis"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runGear(t, nil, "server", "--data-dir", t.TempDir(), "--port", "0", tc.flag, tc.value)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want 1 and %q", code, out, tc.want)
			}
		})
	}
}

// A second server on a data directory in use stops at once; the first goes on serving.
func TestDurable_DataDirInUse(t *testing.T) {
	dir := t.TempDir()
	_, addr := startDurable(t, dir)
	code, out := runGear(t, nil, "server", "--store", "pebble", "--data-dir", dir, "--port", "0")
	if code != 1 || !strings.Contains(out, "data directory "+dir+" is in use") {
		t.Fatalf("second server: exit %d, output %q; want 1 and \"in use\"", code, out)
	}
	if strings.Contains(out, "msg=listening") {
		t.Errorf("the second server listened before giving up:\n%s", out)
	}
	echo(t, addr)
}

// A job record that does not decode stops the server at start rather than dropping the job.
func TestDurable_CorruptRecord(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenPebble(dir, store.SyncAlways, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	st.Add(&store.Job{Seq: 1, Handle: "H:x:1", Function: "fn", Data: []byte("ok")}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64([]byte("j"), 2) // the store's key for job 2
	if err := db.Set(key, []byte{0xde, 0xad}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out := runGear(t, nil, "server", "--store", "pebble", "--data-dir", dir, "--port", "0")
	if code != 1 || !strings.Contains(out, "replaying stored jobs") || !strings.Contains(out, "corrupt job record 2") {
		t.Fatalf("exit %d, output %q; want 1 and a corrupt record error", code, out)
	}
}

// quietLogger keeps Pebble's informational lines out of the test output.
type quietLogger struct{ t *testing.T }

func (quietLogger) Infof(string, ...any)           {}
func (l quietLogger) Errorf(f string, args ...any) { l.t.Logf("pebble: "+f, args...) }
func (l quietLogger) Fatalf(f string, args ...any) { l.t.Fatalf("pebble: "+f, args...) }

// rawPeer is a binary-protocol connection whose calls return errors instead of failing the test, for
// a server that may die under it.
type rawPeer struct {
	nc  net.Conn
	dec *protocol.Decoder
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	return &rawPeer{nc: nc, dec: protocol.NewDecoder(nc, 0)}
}

// call sends one request (if typ is not 0) and reads one packet.
func (p *rawPeer) call(typ protocol.Type, args ...string) (protocol.Type, []string, error) {
	if typ != 0 {
		bs := make([][]byte, len(args))
		for i, a := range args {
			bs[i] = []byte(a)
		}
		if _, err := p.nc.Write(protocol.AppendRequest(nil, typ, bs...)); err != nil {
			return 0, nil, err
		}
	}
	f, err := p.dec.Next()
	if err != nil {
		return 0, nil, err
	}
	out := make([]string, len(f.Packet.Args))
	for i, a := range f.Packet.Args {
		out[i] = string(a)
	}
	return f.Packet.Type, out, nil
}

// foregroundJob runs one foreground job from client to worker and back.
func foregroundJob(client, worker *rawPeer) error {
	typ, args, err := client.call(protocol.SubmitJob, "fg", "", "ping")
	if err != nil || typ != protocol.JobCreated {
		return errors.Join(err, errors.New("foreground submit: "+typ.String()))
	}
	h := args[0]
	if typ, _, err = worker.call(protocol.GrabJob); err != nil || typ != protocol.JobAssign {
		return errors.Join(err, errors.New("grab: "+typ.String()))
	}
	if _, err := worker.nc.Write(protocol.AppendRequest(nil, protocol.WorkComplete, []byte(h), []byte("pong"))); err != nil {
		return err
	}
	if typ, args, err = client.call(0); err != nil || typ != protocol.WorkComplete || args[1] != "pong" {
		return errors.Join(err, errors.New("result: "+typ.String()))
	}
	return nil
}

// The disk fills up: the server runs with RLIMIT_FSIZE at 1 MiB, so a WAL write fails with EFBIG
// (the Go runtime ignores SIGXFSZ, so the write fails rather than the process being killed). Large
// background jobs go in, with a foreground job between each, until a submit is refused or the server
// stops. Whichever happens, every job acknowledged before must be there after a restart without the
// limit.
//
// What happens today: Pebble treats a failed WAL write as fatal. Its commit pipeline cannot go on, so
// it calls Logger.Fatalf ("pebble: fatal commit error: write DIR/NNNNNN.log: file too large") and the
// store's logger exits with status 1. The submit in flight gets no reply (the connection closes), not
// ERROR QUEUE_ERROR; foreground jobs were served until then.
func TestDurable_FullDisk(t *testing.T) {
	dir := t.TempDir()
	// dash counts ulimit -f in 512-byte blocks (bash in 1024): 2048 is 1 or 2 MiB.
	p := startGear(t, []string{noExitSleep}, "/bin/sh", "-c", `ulimit -f 2048 && exec "$0" "$@"`,
		gearBin, "server", "--store", "pebble", "--data-dir", dir, "--port", "0")
	addr := listenAddr(t, p)
	bg, fgClient, fgWorker := dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr)
	if _, err := fgWorker.nc.Write(protocol.AppendRequest(nil, protocol.CanDo, []byte("fg"))); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10)
	var acked []string
	refused := false
	foreground := 0
	for len(acked) < 200 && !refused {
		typ, args, err := bg.call(protocol.SubmitJobBg, "big", "", big)
		if err != nil {
			t.Logf("the connection closed after %d acknowledged jobs: %v", len(acked), err)
			break
		}
		switch typ {
		case protocol.JobCreated:
			acked = append(acked, args[0])
		case protocol.Error:
			if args[0] != "QUEUE_ERROR" {
				t.Fatalf("ERROR %q, want QUEUE_ERROR", args)
			}
			t.Logf("refused after %d acknowledged jobs: ERROR %q", len(acked), args)
			refused = true
			continue
		default:
			t.Fatalf("submit answered %v %q", typ, args)
		}
		if err := foregroundJob(fgClient, fgWorker); err != nil {
			t.Logf("foreground job failed after %d background jobs: %v", len(acked), err)
			break
		}
		foreground++
	}
	if len(acked) == 0 || len(acked) == 200 {
		t.Fatalf("%d jobs acknowledged: the limit did not bite where expected\n%s", len(acked), p.output())
	}
	t.Logf("%d background jobs acknowledged, %d foreground jobs served meanwhile", len(acked), foreground)
	if foreground < len(acked)-1 {
		t.Errorf("only %d foreground jobs served between %d background jobs", foreground, len(acked))
	}

	if refused {
		// The server must go on: foreground jobs still run, and `store` shows the error.
		if err := foregroundJob(fgClient, fgWorker); err != nil {
			t.Fatalf("foreground job after the refusal: %v", err)
		}
		if info := storeInfo(t, addr); info.LastError == "" {
			t.Errorf("store after a failed write: %+v, want last_error set", info)
		}
		stopGear(t, p)
	} else {
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("the connection closed but the server did not exit\n%s", p.output())
		}
		var ee *exec.ExitError
		if !errors.As(p.err, &ee) {
			t.Fatalf("server exited with %v\n%s", p.err, p.output())
		}
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			t.Fatalf("server killed by %v: the runtime did not ignore SIGXFSZ\n%s", ws.Signal(), p.output())
		}
		if ee.ExitCode() != 1 || !strings.Contains(p.output(), "file too large") || !strings.Contains(p.output(), dir) {
			t.Fatalf("exit %d; want 1 and a log naming the failed write in %s\n%s", ee.ExitCode(), dir, p.output())
		}
		for _, line := range strings.Split(p.output(), "\n") {
			if strings.Contains(line, "level=ERROR") {
				t.Logf("server log: %.300s", line)
			}
		}
	}

	// Without the limit, every acknowledged job is back; at most the one submit in flight when the
	// write failed may be there too (it was never acknowledged, so either way is right).
	_, addr = startDurable(t, dir)
	got := jobHandles(t, addr)
	for _, h := range acked {
		if !slices.Contains(got, h) {
			t.Errorf("acknowledged job %s lost (replayed %d jobs, acknowledged %d)", h, len(got), len(acked))
		}
	}
	if len(got) > len(acked)+1 {
		t.Errorf("replayed %d jobs, but only %d were acknowledged and one was in flight", len(got), len(acked))
	}
}

// `gear admin store` against a memory-only server, several servers, and gearmand, which lacks it.
func TestAdmin_Store(t *testing.T) {
	mem := admStartServer(t, "H:test")
	if out := admMustRun(t, mem, "store"); out != "engine  memory\n" {
		t.Errorf("gear admin store (memory): %q", out)
	}
	dir := t.TempDir()
	_, durable := startDurable(t, dir)
	out, errOut, code := admRun(t, nil, "--server", mem+","+durable, "--json", "store")
	var both map[string]admin.StoreInfo
	if err := json.Unmarshal([]byte(out), &both); code != 0 || err != nil {
		t.Fatalf("gear admin --json store on two servers: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if both[mem].Engine != "memory" || both[durable].Engine != "pebble" || both[durable].Path != dir {
		t.Errorf("gear admin --json store on two servers: %+v", both)
	}

	// A server without the command answers as gearmand 1.1 does, verbatim.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				buf := make([]byte, 64)
				nc.Read(buf)
				nc.Write([]byte("ERR UNKNOWN_COMMAND Unknown+server+commandstore\r\n"))
			}()
		}
	}()
	out, errOut, code = admRun(t, nil, "--server", ln.Addr().String(), "store")
	if code != 1 || out != "" || !strings.Contains(errOut, "Gear extension") || !strings.Contains(errOut, "UNKNOWN_COMMAND") {
		t.Errorf("gear admin store on gearmand: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Below --min-free-space the server refuses background jobs with ERROR QUEUE_ERROR (a full disk,
// seen before the engine runs out of room for its log) and keeps serving foreground jobs.
func TestDurable_MinFreeSpaceRefusesBackgroundJobs(t *testing.T) {
	dir := t.TempDir()
	p := startGear(t, nil, gearBin, "server", "--store", "pebble", "--data-dir", dir, "--port", "0",
		"--min-free-space", "1e9GiB")
	addr := listenAddr(t, p)
	bg, fgClient, fgWorker := dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr)
	if _, err := fgWorker.nc.Write(protocol.AppendRequest(nil, protocol.CanDo, []byte("fg"))); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		typ, args, err := bg.call(protocol.SubmitJobBg, "bg", "", "data")
		if err != nil || typ != protocol.Error || args[0] != "QUEUE_ERROR" || !strings.Contains(args[1], "free") {
			t.Fatalf("background submit with a full disk: %v %q %v", typ, args, err)
		}
		if err := foregroundJob(fgClient, fgWorker); err != nil {
			t.Fatalf("foreground job with a full disk: %v", err)
		}
	}
	out, errOut, code := gearCmd(t, addr, "", "admin", "store")
	if code != 0 || !strings.Contains(out, "not enough free disk space") {
		t.Errorf("gear admin store: exit %d\n%s%s", code, out, errOut)
	}
}
