package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gearhq/gear/server"
)

// With no flags, gear server runs with server.DefaultOptions: the flags take their defaults from it
// rather than restating them.
func TestServerFlags_DefaultsAreTheServers(t *testing.T) {
	t.Setenv("GEARMAND_PORT", "")
	f := newServerFlags("gear server")
	if err := f.parse(nil); err != nil {
		t.Fatal(err)
	}
	got, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	want := server.DefaultOptions()
	if !slices.Equal(got.Listen, want.Listen) {
		t.Errorf("Listen = %q, want %q", got.Listen, want.Listen)
	}
	if got.JobRetries != want.JobRetries || got.HandlePrefix != want.HandlePrefix || got.Exceptions != want.Exceptions ||
		got.WorkerWakeup != want.WorkerWakeup || got.Keepalive != want.Keepalive || got.KeepaliveIdle != want.KeepaliveIdle ||
		got.MaxPacketSize != want.MaxPacketSize || got.IOLoops != want.IOLoops || got.FunctionIdleTTL != want.FunctionIdleTTL ||
		got.MaxOutbound != want.MaxOutbound {
		t.Errorf("options from the default flags differ from server.DefaultOptions:\n got %+v\nwant %+v", got, want)
	}
}

// checkConfig runs `gear server --check-config` in-process with args and returns its output and
// exit status.
func checkConfig(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = serverMain("gear server", append([]string{"--check-config"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// clearServerEnv unsets the variables gear server reads, for the test's duration.
func clearServerEnv(t *testing.T) {
	for _, v := range []string{"GEARMAND_PORT", "GEAR_STORE", "GEAR_DATA_DIR"} {
		t.Setenv(v, "")
	}
}

// --check-config prints every long option once, "name = value", sorted by name, and exits 0.
func TestServer_CheckConfigDefaults(t *testing.T) {
	clearServerEnv(t)
	t.Setenv("XDG_STATE_HOME", "/state")
	out, errOut, code := checkConfig(t)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var names []string
	for _, l := range lines {
		name, _, ok := strings.Cut(l, " = ")
		if !ok {
			t.Errorf("line %q is not name = value", l)
		}
		names = append(names, name)
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("names not sorted or repeated: %q", names)
	}
	d := server.DefaultOptions()
	for _, want := range []string{"port = 4730", "listen = " + strings.Join(d.Listen, ","), "verbose = INFO",
		"store = pebble", "data-dir = /state/gear-data", "job-handle-prefix = " + d.HandlePrefix,
		"max-packet-size = 67108864", "worker-wakeup = -1", "sync = always"} {
		if !slices.Contains(lines, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, short := range []string{"p", "L", "j", "check-config", "v"} {
		if slices.Contains(names, short) {
			t.Errorf("output lists %q", short)
		}
	}
}

// The heap floor is on by default only with --store memory (with a durable store it measured
// slower), and a floor given is kept whatever the store.
func TestServer_CheckConfigHeapFloor(t *testing.T) {
	clearServerEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "gc-heap-floor = 0"},
		{[]string{"--store", "memory"}, "gc-heap-floor = 67108864"},
		{[]string{"--store", "memory", "--gc-heap-floor", "0"}, "gc-heap-floor = 0"},
		{[]string{"--gc-heap-floor", "32MiB"}, "gc-heap-floor = 33554432"},
	} {
		out, errOut, code := checkConfig(t, tc.args...)
		if code != 0 || !slices.Contains(strings.Split(out, "\n"), tc.want) {
			t.Errorf("%v: exit %d, want %q in:\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
}

// Flags win over the environment, which wins over the config file; nothing is opened or created,
// and nothing listens (the port in use does not matter).
func TestServer_CheckConfigPrecedence(t *testing.T) {
	clearServerEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, busyPort, _ := net.SplitHostPort(ln.Addr().String())

	dir := t.TempDir()
	conf := filepath.Join(dir, "gear.conf")
	logFile, pidFile, dataDir := filepath.Join(dir, "gear.log"), filepath.Join(dir, "gear.pid"), filepath.Join(dir, "data")
	content := "# comment\r\nport=1111\n--job-handle-prefix=H:conf\nexceptions\nverbose = WARNING\n" +
		"listen 127.0.0.1, [::1]\nstore=memory\nlog-file=" + logFile + "\npid-file=" + pidFile + "\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GEARMAND_PORT", busyPort)
	t.Setenv("GEAR_STORE", "pebble")
	t.Setenv("GEAR_DATA_DIR", dataDir)
	out, errOut, code := checkConfig(t, "--config-file", conf, "--job-handle-prefix", "H:flag", "-v")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"port = " + busyPort, // env over config file
		"listen = 127.0.0.1:" + busyPort + ",[::1]:" + busyPort,  // config file, env's port
		"job-handle-prefix = H:flag",                             // flag over config file
		"exceptions = true", "verbose = DEBUG", "store = pebble", // -v over config; env over config
		"data-dir = " + dataDir, "log-file = " + logFile, "config-file = " + conf,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, p := range []string{logFile, pidFile, dataDir} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("--check-config created %s (%v)", p, err)
		}
	}
}

func TestServer_CheckConfigErrors(t *testing.T) {
	clearServerEnv(t)
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "gear.conf")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad level", []string{"--verbose", "LOUD"}, 1, "unknown log level"},
		{"bad port", []string{"--port", "x"}, 1, `invalid port "x"`},
		{"bad listen", []string{"--listen", ":4730"}, 2, "no host"},
		{"unknown store", []string{"--store", "tape"}, 1, `unknown store "tape"`},
		{"bad sync", []string{"--sync", "sometimes"}, 1, "sometimes"},
		{"server's own check", []string{"--job-retries", "-1"}, 1, "job retries"},
		{"long handle prefix", []string{"--job-handle-prefix", strings.Repeat("h", 41)}, 1, "too long"},
		{"unknown option in file", []string{"--config-file", write("port=1\nloud=yes\n")}, 2, ":2: unknown option \"loud\""},
		{"bad value in file", []string{"--config-file", write("\n\nmax-packet-size=big\n")}, 2, ":3: max-packet-size"},
		{"syntax in file", []string{"--config-file", write("=5\n")}, 2, ":1: no option name"},
		{"nested config file", []string{"--config-file", write("config-file=" + filepath.Join(dir, "x") + "\n")}, 2, "command-line option only"},
		{"missing file", []string{"--config-file", filepath.Join(dir, "missing")}, 2, "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := checkConfig(t, tc.args...)
			if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tc.code, tc.want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	got, err := parseConfig([]byte("# c\n\n  port = 1 \r\n--exceptions\nlisten\t0.0.0.0 , [::1]\n--verbose=DEBUG=x\n  # indented comment\nv"))
	want := []configSetting{{3, "port", "1"}, {4, "exceptions", ""}, {5, "listen", "0.0.0.0 , [::1]"},
		{6, "verbose", "DEBUG=x"}, {8, "v", ""}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseConfig = %+v, %v; want %+v", got, err, want)
	}
	for in, why := range map[string]string{
		"=1":                       ":1: no option name",
		"ok=1\n--\n":               ":2: no option name",
		"a b=c":                    "invalid option name",
		"na\x00me=1":               "control character",
		"port=\xff":                "not UTF-8",
		strings.Repeat("x", 70000): "longer than",
		"x=1\n" + "y=\x1b[31m\n":   ":2: control character",
	} {
		if got, err := parseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseConfig(%.40q) = %+v, %v; want an error with %q", in, got, err, why)
		}
	}
}

// FuzzParseConfig: any file is read or refused, never a panic, and so is applying what was read to
// gear server's flags.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"port=0\n--job-handle-prefix=H:conf\nexceptions\nverbose = DEBUG\n",
		"listen 127.0.0.1,[::1]:0\nmin-free-space=1GiB\n", "# only a comment", "=\n-\n--=", "keepalive-idle=x",
		"config-file=/x", "io-loops=-1\nworker-wakeup=9999999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		settings, err := parseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), ":") {
				t.Errorf("error %q does not start with ':' (it follows the file name)", err)
			}
			return
		}
		last := 0
		for _, st := range settings {
			if st.name == "" || st.line <= last || strings.ContainsAny(st.name, "= \t\n") {
				t.Fatalf("setting %+v after line %d", st, last)
			}
			last = st.line
		}
		fl := newServerFlags("gear server")
		fl.fs.SetOutput(io.Discard)
		fl.applyConfig("fuzz.conf", data, map[string]bool{})
	})
}
