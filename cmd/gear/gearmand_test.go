package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
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
		"listen": implemented, "pid-file": implemented, "protocol": refused, "round-robin": mapped,
		"queue-type": implemented, "config-file": implemented, "syslog": implemented, "coredump": implemented,
		"threads": mapped, "user": implemented, "verbose": implemented, "version": implemented,
		"worker-wakeup": implemented, "http-port": mapped, "port": implemented,
		"ssl": refused, "ssl-ca-file": refused, "ssl-certificate": refused, "ssl-key": refused,
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
	for _, q := range []string{"libsqlite3", "libpq", "mysql", "redis", "libmemcached"} {
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
