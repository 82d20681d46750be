package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testcerts"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/internal/testpg"
	"github.com/gearhq/gear/worker"
)

// gearmandOption is one option `gearmand --help` lists.
type gearmandOption struct {
	long, short string
	takesArg    bool
}

// gearmandHelpOptions runs the real gearmand's --help and returns its options.
func gearmandHelpOptions(t *testing.T) []gearmandOption {
	t.Helper()
	out, err := exec.Command("/usr/sbin/gearmand", "--help").CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Fatalf("gearmand --help (apt-get install gearman-job-server): %v", err)
	}
	re := regexp.MustCompile(`(?m)^  (?:-(\w) \[ )?--([\w-]+)(?: \])?( arg)?`)
	var opts []gearmandOption
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		opts = append(opts, gearmandOption{long: m[2], short: m[1], takesArg: m[3] != ""})
	}
	if len(opts) < 40 {
		t.Fatalf("found only %d options in gearmand --help:\n%s", len(opts), out)
	}
	return opts
}

// Every option of gearmand 1.1 is understood, long and short, "--opt=value" and "--opt value":
// implemented, mapped (with a line for the log), or refused with its reason. None is unknown.
func TestGearmandOptions_EveryOneUnderstood(t *testing.T) {
	type outcome int
	const (
		implemented outcome = iota
		mapped
		refused
	)
	want := map[string]outcome{
		"backlog": mapped, "daemon": implemented, "exceptions": implemented, "file-descriptors": implemented,
		"help": implemented, "job-retries": implemented, "job-handle-prefix": implemented,
		"hashtable-buckets": mapped, "keepalive": implemented, "keepalive-idle": implemented,
		"keepalive-interval": implemented, "keepalive-count": implemented, "log-file": implemented,
		"listen": implemented, "pid-file": implemented, "protocol": implemented, "round-robin": mapped,
		"queue-type": implemented, "config-file": implemented, "syslog": implemented, "coredump": implemented,
		"threads": mapped, "user": implemented, "verbose": implemented, "version": implemented,
		"worker-wakeup": implemented, "http-port": mapped, "port": implemented,
		// --ssl alone lacks its certificate; the files alone are ignored, as gearmand ignores them
		"ssl": refused, "ssl-ca-file": mapped, "ssl-certificate": mapped, "ssl-key": mapped,
	}
	for _, names := range pluginOptions {
		for _, n := range names {
			want[n] = mapped // ignored, and said so, without the -q that uses them
		}
	}
	dir := t.TempDir()
	conf := dir + "/gearmand.conf"
	if err := os.WriteFile(conf, []byte("# empty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"backlog": "64", "file-descriptors": "1024", "job-retries": "3", "job-handle-prefix": "H:x",
		"hashtable-buckets": "991", "keepalive-idle": "30", "keepalive-interval": "5", "keepalive-count": "4",
		"log-file": "none", "listen": "127.0.0.1", "pid-file": dir + "/pid", "protocol": "http",
		"queue-type": "builtin", "config-file": conf, "threads": "4", "user": "root", "verbose": "INFO",
		"worker-wakeup": "1", "http-port": "8080", "port": "4730", "ssl-ca-file": "/ca", "ssl-certificate": "/c",
		"ssl-key": "/k", "libmemcached-servers": "a:1", "mysql-port": "3306", "redis-port": "6379",
	}
	for _, o := range gearmandHelpOptions(t) {
		w, known := want[o.long]
		if !known {
			t.Errorf("--%s: gearmand has it, this test does not say what Gear does with it", o.long)
			continue
		}
		value := values[o.long]
		if value == "" {
			value = "x"
		}
		forms := [][]string{{"--" + o.long}}
		if o.takesArg {
			forms = [][]string{{"--" + o.long + "=" + value}, {"--" + o.long, value}}
			if o.short != "" {
				forms = append(forms, []string{"-" + o.short, value})
			}
		} else if o.short != "" {
			forms = append(forms, []string{"-" + o.short})
		}
		for _, args := range forms {
			f := newServerFlags("gearmand")
			err := f.parse(args)
			switch {
			case o.long == "help":
				if err == nil || !strings.Contains(err.Error(), "help requested") {
					t.Errorf("%v: %v, want the help", args, err)
				}
			case w == refused:
				if err == nil || strings.Contains(err.Error(), "not defined") || len(err.Error()) < 30 {
					t.Errorf("%v: %v, want a refusal with its reason", args, err)
				}
			case err != nil:
				t.Errorf("%v: %v", args, err)
			case w == mapped && len(f.notes) == 0:
				t.Errorf("%v: mapped, but nothing for the log says how", args)
			case w == implemented && len(f.notes) != 0:
				t.Errorf("%v: implemented, but noted %q", args, f.notes)
			}
		}
	}
}

// A queue plugin gearmand users have is refused with what to do instead, until its import lands.
func TestGearmandOptions_QueuePlugins(t *testing.T) {
	if err := newServerFlags("gearmand").parse([]string{"-q", "libsqlite3"}); err == nil || !strings.Contains(err.Error(), "--libsqlite3-db") {
		t.Errorf("-q libsqlite3 without its database: %v", err)
	}
	if err := newServerFlags("gearmand").parse([]string{"-q", "libsqlite3", "--libsqlite3-db=/q.db"}); err != nil {
		t.Errorf("-q libsqlite3: %v", err)
	}
	for _, q := range []string{"libpq", "Postgres", "postgres"} {
		f := newServerFlags("gearmand")
		if err := f.parse([]string{"-q", q, "--libpq-conninfo", "host=/run/postgresql dbname=gearman"}); err != nil || f.queueType != "libpq" {
			t.Errorf("-q %s: %v, queue type %q", q, err, f.queueType)
		}
	}
	for _, q := range []string{"mysql", "redis", "libmemcached"} {
		f := newServerFlags("gearmand")
		err := f.parse([]string{"-q", q})
		if err == nil || !strings.Contains(err.Error(), "drain the queue with gearmand first") {
			t.Errorf("-q %s: %v", q, err)
		}
	}
}

// --help prints gearmand-style double-dash options, and an error is one line, never the usage.
func TestGearmandOptions_HelpAndErrors(t *testing.T) {
	out, err := exec.Command(gearBin, "server", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-d, --daemon") || strings.Contains(string(out), "\n  -daemon") {
		t.Errorf("--help: %v\n%s", err, out)
	}
	out, _ = exec.Command(gearBin, "server", "--ssl").CombinedOutput()
	if lines := strings.Count(string(out), "\n"); lines != 1 || !strings.Contains(string(out), "TLS") {
		t.Errorf("--ssl: want one line with the reason, got\n%s", out)
	}
	out, err = exec.Command(gearBin, "server", "-V").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "gear ") {
		t.Errorf("-V: %v %s", err, out)
	}
}

// gearmand's TLS options are Gear's: with --ssl its certificate, key and CA file (or gearmand's
// environment variables) serve TLS on the --listen ports, and a TLS client with that CA is served.
func TestGearmandOptions_SSLIsGearsTLS(t *testing.T) {
	clearServerEnv(t)
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	crt := ca.Server(t, "server")
	out, errOut, code := checkConfig(t, "--ssl", "--ssl-certificate", crt.CertFile, "--ssl-key", crt.KeyFile, "--ssl-ca-file", ca.File)
	for _, want := range []string{"tls-cert = " + crt.CertFile, "tls-key = " + crt.KeyFile, "tls-ca = " + ca.File} {
		if code != 0 || !slices.Contains(strings.Split(out, "\n"), want) {
			t.Errorf("--ssl options: exit %d, want %q in:\n%s%s", code, want, out, errOut)
		}
	}
	t.Setenv("GEARMAND_SERVER_PEM", crt.CertFile)
	t.Setenv("GEARMAND_SERVER_KEY", crt.KeyFile)
	if out, errOut, code := checkConfig(t, "--ssl"); code != 0 || !strings.Contains(out, "tls-cert = "+crt.CertFile) || !strings.Contains(out, "tls-key = "+crt.KeyFile) {
		t.Errorf("--ssl with gearmand's environment: exit %d:\n%s%s", code, out, errOut)
	}
	if _, errOut, code := checkConfig(t, "--ssl", "--tls-cert", crt.CertFile); code == 0 || !strings.Contains(errOut, "same option") {
		t.Errorf("GEARMAND_SERVER_PEM and --tls-cert: exit %d, stderr %q", code, errOut)
	}
	t.Setenv("GEARMAND_SERVER_PEM", "")
	t.Setenv("GEARMAND_SERVER_KEY", "")
	if out, errOut, code := checkConfig(t, "--ssl-certificate", crt.CertFile); code != 0 || strings.Contains(out, "tls-cert = "+crt.CertFile) {
		t.Errorf("--ssl-certificate without --ssl should be ignored: exit %d:\n%s%s", code, out, errOut)
	}

	srv := startGear(t, nil, gearBin, "server", "--port", "0", "--ssl", "--ssl-certificate", crt.CertFile, "--ssl-key", crt.KeyFile)
	addr := tlsListenAddr(t, srv)
	if !strings.Contains(srv.output(), "--ssl is mapped to Gear's TLS") {
		t.Errorf("no log line for the mapping:\n%s", srv.output())
	}
	if out, errOut, code := gearCmd(t, "tls://"+addr, "", "admin", "--tls-ca", ca.File, "version"); code != 0 || out == "" {
		t.Errorf("gear admin version over the --ssl listener: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// gearmand's HTTP protocol, with curl, against gearmand and against Gear alike.
func TestGearmandHTTPProtocol_CurlAgainstBoth(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is required (apt-get install curl): %v", err)
	}
	httpPort := func() string {
		_, p, _ := strings.Cut(testenv.FreeAddr(t), ":")
		return p
	}
	// gearmand -r http
	gmdPort, gmdHTTP := httpPort(), httpPort()
	gmd := exec.Command("/usr/sbin/gearmand", "-t", "0", "--listen", "127.0.0.1", "--port", gmdPort,
		"--log-file", "none", "-r", "http", "--http-port", gmdHTTP)
	if err := gmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gmd.Process.Kill(); gmd.Wait() })
	// gear server --protocol http
	gearHTTP := httpPort()
	gear := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "--protocol", "http", "--http-port", gearHTTP)
	gearAddr := listenAddr(t, gear)

	for _, srv := range []struct{ name, addr, http string }{
		{"gearmand", "127.0.0.1:" + gmdPort, gmdHTTP},
		{"gear", gearAddr, gearHTTP},
	} {
		t.Run(srv.name, func(t *testing.T) {
			testenv.WaitFor(t, srv.name+" to listen", 10*time.Second, func() bool {
				c, err := net.Dial("tcp", "127.0.0.1:"+srv.http)
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			testenv.StartWorker(t, []string{srv.addr}, 1, map[string]worker.Func{"reverse": testenv.Reverse})
			testenv.WaitWorkers(t, srv.addr, "reverse", 1)
			curl := func(args ...string) (status string, headers map[string]string, body string) {
				t.Helper()
				out, err := exec.Command("curl", append([]string{"-s", "-i", "-m", "20"}, args...)...).Output()
				if err != nil {
					t.Fatalf("curl %v: %v", args, err)
				}
				head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
				lines := strings.Split(head, "\n")
				headers = map[string]string{}
				for _, l := range lines[1:] {
					k, v, _ := strings.Cut(l, ":")
					headers[strings.ToLower(k)] = strings.TrimSpace(v)
				}
				f := strings.Fields(lines[0])
				return f[1], headers, body
			}
			url := "http://127.0.0.1:" + srv.http + "/reverse"
			status, h, body := curl("-X", "POST", "--data", "reverse my text", url)
			if status != "200" || body != "txet ym esrever" || h["x-gearman-command"] != "WORK_COMPLETE" || h["x-gearman-job-handle"] == "" {
				t.Errorf("POST /reverse: %s %q %v", status, body, h)
			}
			status, h, body = curl("-X", "POST", "-H", "X-Gearman-Priority: high", "-H", "X-Gearman-Unique: u7", "--data", "abc", url)
			if status != "200" || body != "cba" {
				t.Errorf("high priority, unique: %s %q %v", status, body, h)
			}
			status, h, _ = curl("-X", "POST", "-H", "X-Gearman-Background: true", "--data", "later", url)
			if status != "200" || h["x-gearman-command"] != "JOB_CREATED" {
				t.Errorf("background: %s %v", status, h)
			}
			if status, _, _ = curl("-X", "POST", "--data", "x", "http://127.0.0.1:"+srv.http+"/"); status != "404" {
				t.Errorf("POST /: %s, want 404", status)
			}
		})
	}
}

// gearmand's libsqlite3 queue comes along: 1,000 background jobs that real gearmand stored (mixed
// priorities, each with a unique key, some epoch) run on Gear started with the same options, all
// exactly once, in priority order; a restart does not import them again.
func TestGearmandQueue_SQLiteImport(t *testing.T) {
	db := filepath.Join(t.TempDir(), "gearmand-queue.db")
	gearmandQueueImport(t, "libsqlite3", "-q", "libsqlite3", "--libsqlite3-db="+db)
}

// The same with gearmand's PostgreSQL queue (-q Postgres --libpq-conninfo), on a database of the
// test's PostgreSQL cluster: `gear -q libpq` with gearmand's options takes its jobs over once.
func TestGearmandQueue_PostgresImport(t *testing.T) {
	conninfo := testpg.NewDB(t)
	gearmandQueueImport(t, "libpq", "-q", "Postgres", "--libpq-conninfo="+conninfo)
}

// gearmandQueueImport: real gearmand with the queue options queues 1,000 background jobs (three
// priorities, a unique key each, every tenth an epoch job already due) and is stopped; gear started
// with the same options imports them once (logged with the count of kind's queue), a worker runs
// every one exactly once in priority order, and a restart imports nothing again.
func gearmandQueueImport(t *testing.T, kind string, queueArgs ...string) {
	dir := t.TempDir()
	gmdAddr := testenv.FreeAddr(t)
	_, gmdPort, _ := strings.Cut(gmdAddr, ":")
	gmd := exec.Command("/usr/sbin/gearmand", append([]string{"-t", "0", "--listen", "127.0.0.1", "--port", gmdPort,
		"--log-file", "none"}, queueArgs...)...)
	if err := gmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gmd.Process.Kill(); gmd.Wait() })
	testenv.WaitFor(t, "gearmand to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", gmdAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	const n = 1000
	c := testenv.NewClient(t, gmdAddr)
	ctx := testenv.CtxTimeout(t, 60*time.Second)
	prio := map[string]int{} // unique -> 0 high, 1 normal, 2 low
	past := time.Now().Add(-time.Minute)
	for i := range n {
		unique := fmt.Sprintf("job-%04d", i)
		s := client.Submission{Unique: unique}
		switch {
		case i%10 == 9:
			s.At = past // epoch, already due: a normal job
			prio[unique] = 1
		case i%3 == 0:
			s.Priority = client.High
			prio[unique] = 0
		case i%3 == 1:
			prio[unique] = 1
		default:
			s.Priority = client.Low
			prio[unique] = 2
		}
		if _, err := c.SubmitBackground(ctx, "imported", []byte(unique), s); err != nil {
			t.Fatalf("submit %d to gearmand: %v", i, err)
		}
	}
	gmd.Process.Signal(syscall.SIGTERM)
	gmd.Wait()

	data := filepath.Join(dir, "gear-data")
	args := append([]string{"server", "--port", "0", "--store", "pebble", "--data-dir", data}, queueArgs...)
	gear := startGear(t, nil, gearBin, args...)
	addr := listenAddr(t, gear)
	if !strings.Contains(gear.output(), "imported gearmand's "+kind+" queue") || !strings.Contains(gear.output(), fmt.Sprintf("jobs=%d", n)) {
		t.Fatalf("no import logged:\n%s", gear.output())
	}
	var mu sync.Mutex
	var order []string
	testenv.StartWorker(t, []string{addr}, 1, map[string]worker.Func{"imported": func(_ context.Context, j *worker.Job) ([]byte, error) {
		mu.Lock()
		order = append(order, string(j.Data))
		mu.Unlock()
		return nil, nil
	}})
	testenv.WaitFor(t, "every imported job to run", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= n
	})
	// A job run twice would come after all of them had run once: give it the time to.
	if st := testenv.FunctionStatus(t, addr, "imported"); st.Total != 0 {
		t.Errorf("after every job ran: %+v, want none left", st)
	}
	mu.Lock()
	seen := map[string]int{}
	last := 0
	for i, u := range order {
		seen[u]++
		if p := prio[u]; p < last {
			t.Errorf("job %d (%s, priority %d) ran after a priority-%d job", i, u, p, last)
			break
		} else {
			last = p
		}
	}
	mu.Unlock()
	if len(seen) != n {
		t.Errorf("%d distinct jobs ran, want %d", len(seen), n)
	}
	for u, k := range seen {
		if k != 1 {
			t.Errorf("%s ran %d times", u, k)
		}
	}
	// Restarted with the same options, it imports nothing again.
	gear.cmd.Process.Signal(syscall.SIGTERM)
	<-gear.done
	again := startGear(t, nil, gearBin, args...)
	addr = listenAddr(t, again)
	if !strings.Contains(again.output(), "was imported before; not again") {
		t.Errorf("second start:\n%s", again.output())
	}
	if st := testenv.FunctionStatus(t, addr, "imported"); st.Total != 0 {
		t.Errorf("after a restart: %+v, want no job", st)
	}
}

// procLimit reads one limit of a process from /proc/PID/limits: soft and hard.
func procLimit(t *testing.T, pid int, name string) (soft, hard string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0], f[1]
			}
		}
	}
	t.Fatalf("no %q in /proc/%d/limits:\n%s", name, pid, b)
	return "", ""
}

// -f sets the open-files limit, --coredump lifts the core size limit, as gearmand's do.
func TestGearmandOptions_ProcessLimits(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "-f", "1500", "--coredump")
	listenAddr(t, p)
	pid := p.cmd.Process.Pid
	if soft, _ := procLimit(t, pid, "Max open files"); soft != "1500" {
		t.Errorf("open files limit %s, want 1500", soft)
	}
	_, hard := procLimit(t, pid, "Max core file size")
	if soft, _ := procLimit(t, pid, "Max core file size"); soft != hard || soft == "0" && hard != "0" {
		t.Errorf("core size limit %s (hard %s), want it raised to the hard limit", soft, hard)
	}
}

// --syslog sends the log to the system log (/dev/log) as well. Where no syslog daemon runs, the
// test is one: it listens on /dev/log itself (which needs root, as CI has).
func TestGearmandOptions_Syslog(t *testing.T) {
	if _, err := os.Stat("/dev/log"); err == nil {
		p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "--syslog")
		listenAddr(t, p) // a real system log takes it; its content is the daemon's to keep
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("no /dev/log, and creating one needs root (CI runs as root)")
	}
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "/dev/log", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); os.Remove("/dev/log") })
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, _, err := ln.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory", "--syslog")
	listenAddr(t, p)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-got:
			if strings.Contains(m, "gear server started") {
				if !strings.Contains(m, " gear[") {
					t.Errorf("syslog message without the program's tag: %q", m)
				}
				return
			}
		case <-deadline:
			t.Fatal("no 'gear server started' in the system log")
		}
	}
}

// The command-line forms of gearmand's option parser: stuck short values, bundled switches,
// unambiguous long prefixes.
func TestGearmandOptions_GNUForms(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want func(*serverFlags) bool
	}{
		{[]string{"-p4731"}, func(f *serverFlags) bool { return f.port == "4731" }},
		{[]string{"-j3", "-w0"}, func(f *serverFlags) bool { return f.jobRetries == 3 && f.workerWakeup == 0 }},
		{[]string{"-dR"}, func(f *serverFlags) bool { return f.gearmand.daemon && f.roundRobin }},
		{[]string{"--daem", "--job-ret=2"}, func(f *serverFlags) bool { return f.gearmand.daemon && f.jobRetries == 2 }},
		{[]string{"--log-fi", "none"}, func(f *serverFlags) bool { return f.logFile == "none" }},
		{[]string{"-port", "4732"}, func(f *serverFlags) bool { return f.port == "4732" }}, // Go's single-dash long form
		{[]string{"--port=4733", "--", "x"}, nil},                                          // after --: an argument
	} {
		f := newServerFlags("gearmand")
		err := f.parse(tc.args)
		if tc.want == nil {
			if err == nil || !strings.Contains(err.Error(), "unexpected argument") {
				t.Errorf("%v: %v, want the argument refused", tc.args, err)
			}
			continue
		}
		if err != nil || !tc.want(f) {
			t.Errorf("%v: %v", tc.args, err)
		}
	}
	if err := newServerFlags("gearmand").parse([]string{"--keep"}); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("--keep: %v, want ambiguous", err)
	}
}

// Whatever the command line, parsing gives an error or options, never a panic, and gnuArgs keeps
// every argument after "--".
func FuzzGNUArgs(f *testing.F) {
	for _, seed := range []string{"-p4730", "-dR", "--daem", "--keep", "-port 4730", "-- -x", "-=", "--=", "-", "--log-file=x -vv -q libsqlite3"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		fl := newServerFlags("gearmand")
		out, err := gnuArgs(fl.fs, args)
		if err != nil {
			return
		}
		for i, a := range args {
			if a == "--" && !slices.Equal(out[len(out)-(len(args)-i):], args[i:]) {
				t.Fatalf("%q: the arguments after -- changed: %q", args, out)
			}
		}
		fl.parse(args)
	})
}

// A daemon that cannot start (its port is taken) makes the command fail with the child's reason,
// as gearmand does, instead of returning 0 for a server that is not there.
func TestGearmandOptions_DaemonReportsFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cmd := exec.Command(gearBin, "server", "--daemon", "--listen", "127.0.0.1", "--port", port, "--store", "memory")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("--daemon on a taken port: %v\n%s", err, out)
	}
}
