package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/worker"
)

// Debian's gearman-job-server package, as shipped: its init script, its systemd unit and the
// PARAMS of /etc/default/gearman-job-server (--listen=localhost --daemon --log-file=...). Gear must
// run in gearmand's place with nothing else changed.
const (
	debianInitScript = "/etc/init.d/gearman-job-server"
	debianUnit       = "/lib/systemd/system/gearman-job-server.service"
	debianDefaults   = "/etc/default/gearman-job-server"
	debianPIDFile    = "/run/gearman/gearmand.pid"
)

// debianService prepares a run of Gear as Debian's gearmand: gear copied to DIR/sbin/gearmand, the
// package's PARAMS, the gearman account, and a port of the test's own (GEARMAND_PORT, which
// gearmand and gear both read, so the shipped PARAMS stay as they are).
type debianService struct {
	dir, daemon, params, port, logFile string
	gearman                            *user.User
	env                                []string
	dataDir                            string // the default for the gearman account
	removeDataDir                      bool
}

func newDebianService(t *testing.T) *debianService {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs Debian's init script, which needs root (CI runs as root)")
	}
	for _, f := range []string{debianInitScript, debianUnit, debianDefaults} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("Debian's gearman-job-server package is required (apt-get install gearman-job-server): %v", err)
		}
	}
	u, err := user.Lookup("gearman")
	if err != nil {
		t.Fatalf("the package's gearman account: %v", err)
	}
	d := &debianService{dir: t.TempDir(), gearman: u}
	for _, p := range []string{d.dir, filepath.Dir(d.dir)} { // the gearman account runs the copy
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.daemon = filepath.Join(d.dir, "sbin", "gearmand")
	if err := os.MkdirAll(filepath.Dir(d.daemon), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(gearBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.daemon, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// PARAMS as the package ships them, read the way its scripts read them.
	out, err := exec.Command("sh", "-c", ". "+debianDefaults+" && printf %s \"$PARAMS\"").Output()
	if err != nil {
		t.Fatal(err)
	}
	d.params = string(out)
	if !strings.Contains(d.params, "--daemon") {
		t.Fatalf("PARAMS %q: the package no longer daemonizes; this test needs a look", d.params)
	}
	if m := regexp.MustCompile(`--log-file=(\S+)`).FindStringSubmatch(d.params); m != nil {
		d.logFile = m[1]
	} else {
		t.Fatalf("PARAMS %q name no log file", d.params)
	}
	_, d.port, _ = strings.Cut(testenv.FreeAddr(t), ":")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GEAR_STORE=") && !strings.HasPrefix(kv, "GEAR_DATA_DIR=") {
			d.env = append(d.env, kv)
		}
	}
	d.env = append(d.env, "GEARMAND_PORT="+d.port)
	d.dataDir = filepath.Join(u.HomeDir, "gear-data")
	if _, err := os.Stat(d.dataDir); os.IsNotExist(err) {
		d.removeDataDir = true
		t.Cleanup(func() { os.RemoveAll(d.dataDir) })
	}
	os.MkdirAll(filepath.Dir(d.logFile), 0o755)
	os.Chown(filepath.Dir(d.logFile), mustAtoi(t, u.Uid), mustAtoi(t, u.Gid))
	return d
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readPID reads the pid file and checks the process: alive, running as gearman, detached (the
// leader of its own session, not a child of the command that started it).
func (d *debianService) checkDaemon(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(debianPIDFile)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("the daemon %d is not running: %v", pid, err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(status))
	if m == nil || m[1] != d.gearman.Uid || m[2] != d.gearman.Uid || m[3] != d.gearman.Uid {
		t.Errorf("the daemon runs as uid %v, want gearman's %s", m, d.gearman.Uid)
	}
	// /proc/PID/stat: "PID (COMM) STATE PPID PGRP SESSION ..."; COMM may hold spaces.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 4 || f[3] != strconv.Itoa(pid) {
		t.Errorf("the daemon's session is %v, want its own (%d): not detached", f[:min(4, len(f))], pid)
	}
	return pid
}

// serves runs jobs through the daemon: a foreground round trip, a background job run by a worker
// that connects later, and the admin status.
func (d *debianService) serves(t *testing.T) {
	t.Helper()
	addr := "127.0.0.1:" + d.port
	c := testenv.NewClient(t, addr)
	ctx := testenv.CtxTimeout(t, 20*time.Second)
	if _, err := c.SubmitBackground(ctx, "later", []byte("bg"), client.Submission{}); err != nil {
		t.Fatalf("background submit: %v", err)
	}
	ran := make(chan string, 1)
	testenv.StartWorker(t, []string{addr}, 1, map[string]worker.Func{
		"reverse": testenv.Reverse,
		"later": func(_ context.Context, j *worker.Job) ([]byte, error) {
			ran <- string(j.Data)
			return nil, nil
		},
	})
	got, err := c.Do(ctx, "reverse", []byte("debian"), client.Submission{})
	if err != nil || string(got) != "naibed" {
		t.Fatalf("reverse through the service: %q, %v", got, err)
	}
	select {
	case data := <-ran:
		if data != "bg" {
			t.Errorf("background job ran with %q", data)
		}
	case <-ctx.Done():
		t.Fatal("the background job never ran")
	}
	if out, err := exec.Command("gearadmin", "-h", "127.0.0.1", "-p", d.port, "--status").CombinedOutput(); err != nil || !strings.Contains(string(out), "reverse") {
		t.Errorf("gearadmin --status: %v\n%s", err, out)
	}
}

// waitGone waits until process pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("the daemon %d to exit", pid), 15*time.Second, func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}

// The package's init script, with only the daemon's path changed, starts Gear with the shipped
// PARAMS (and --user=gearman), and stops it.
func TestDebianService_InitScript(t *testing.T) {
	d := newDebianService(t)
	script, err := os.ReadFile(debianInitScript)
	if err != nil {
		t.Fatal(err)
	}
	const line = "DAEMON=${exec_prefix}/sbin/${NAME}"
	if !strings.Contains(string(script), line) {
		t.Fatalf("the init script has no line %q any more", line)
	}
	initScript := filepath.Join(d.dir, "gearman-job-server")
	if err := os.WriteFile(initScript, []byte(strings.Replace(string(script), line, "DAEMON="+d.daemon, 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(action string) {
		t.Helper()
		cmd := exec.Command(initScript, action)
		cmd.Env = d.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", initScript, action, err, out)
		}
	}
	logBefore, _ := os.ReadFile(d.logFile)
	run("start")
	pid := d.checkDaemon(t)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	d.serves(t)
	run("stop")
	waitGone(t, pid)
	if _, err := os.Stat(debianPIDFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind after stop: %v", err)
	}
	logAll, err := os.ReadFile(d.logFile)
	if err != nil {
		t.Fatalf("the configured log file: %v", err)
	}
	log := strings.TrimPrefix(string(logAll), string(logBefore))
	for _, want := range []string{"gear server started", "user=gearman", "data_dir=" + d.dataDir, "gear server stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %s lacks %q:\n%s", d.logFile, want, log)
		}
	}
}

// The package's systemd unit: ExecStart as the gearman user (User=gearman), Type=forking with
// PIDFile. The command must return once the server is up, leaving the daemon's pid in the file;
// systemd's stop is SIGTERM to it.
func TestDebianService_SystemdUnit(t *testing.T) {
	d := newDebianService(t)
	unit, err := os.ReadFile(debianUnit)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindStringSubmatch(string(unit))
	if m == nil || m[1] != "/usr/sbin/gearmand" || !strings.Contains(string(unit), "Type=forking") {
		t.Fatalf("the unit changed; ExecStart %v", m)
	}
	args := strings.Fields(strings.ReplaceAll(m[2], "$PARAMS", d.params))
	uid, gid := mustAtoi(t, d.gearman.Uid), mustAtoi(t, d.gearman.Gid)
	// ExecStartPre=/usr/bin/install -d -o gearman /run/gearman
	if out, err := exec.Command("/usr/bin/install", "-d", "-o", "gearman", "/run/gearman").CombinedOutput(); err != nil {
		t.Fatalf("install -d: %v\n%s", err, out)
	}
	cmd := exec.Command(d.daemon, args...)
	cmd.Args[0] = "/usr/sbin/gearmand" // as systemd starts it: the name says gearmand
	cmd.Env = append(d.env, "HOME="+d.gearman.HomeDir)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput() // Type=forking: returns when the daemon is ready
	if err != nil {
		t.Fatalf("ExecStart %v: %v\n%s", args, err, out)
	}
	pid := d.checkDaemon(t)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	d.serves(t)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if _, err := os.Stat(debianPIDFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind after stop: %v", err)
	}
}
