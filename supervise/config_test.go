package supervise

import (
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

const exampleConfig = `
[server]
address = "127.0.0.1:4730"

[alert]
command = "sh -c 'echo $GEAR_ALERT_EVENT >> /tmp/alerts'"
url = "http://127.0.0.1:9000/alert"

[[program]]
name = "reverse"
command = "php worker.php --queue 'a b'"
count = 4
dir = "/srv/app"
env = { APP_ENV = "prod", A = "1" }
memory_warn = "200MiB"
memory_cap = "256MiB"
max_lifetime = "1h"
lifetime_splay = 0.2
max_restarts = 3
stop_signal = "SIGQUIT"
stop_grace = "30s"

[[program]]
name = "resize"
command = ["python3", "-u", "resize.py", "$NOT_EXPANDED"]
`

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		AlertCommand: []string{"sh", "-c", "echo $GEAR_ALERT_EVENT >> /tmp/alerts"}, AlertURL: "http://127.0.0.1:9000/alert",
		Server: "127.0.0.1:4730",
		Programs: []Program{
			{Name: "reverse", Command: []string{"php", "worker.php", "--queue", "a b"}, Count: 4, Dir: "/srv/app",
				Env: []string{"A=1", "APP_ENV=prod"}, MemoryWarn: 200 << 20, MemoryCap: 256 << 20, MaxLifetime: time.Hour,
				LifetimeSplay: 0.2, MaxRestarts: 3, StopSignal: syscall.SIGQUIT, StopGrace: 30 * time.Second},
			{Name: "resize", Command: []string{"python3", "-u", "resize.py", "$NOT_EXPANDED"}, Count: 1,
				LifetimeSplay: DefaultLifetimeSplay, MaxRestarts: DefaultMaxRestarts},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ParseConfig =\n%+v\nwant\n%+v", cfg, want)
	}
}

// Every mistake is an error that names what is wrong; nothing is silently ignored.
func TestParseConfig_Errors(t *testing.T) {
	prog := "[[program]]\nname = \"p\"\ncommand = \"w\"\n"
	for _, tc := range []struct{ doc, want string }{
		{prog + "cuont = 2\n", `unknown key "program.cuont"`},
		{"[alert]\ncomand = \"x\"\n" + prog, `unknown key "alert.comand"`},
		{"[servr]\n" + prog, `unknown key "servr"`},
		{"", "no [[program]]"},
		{"[[program]]\ncommand = \"w\"\n", "program name"},
		{"[[program]]\nname = \"p\"\n", "no command"},
		{prog + prog, `two programs named "p"`},
		{prog + "count = 0\n", "count 0"},
		{prog + "count = 100000\n", "count 100000"},
		{prog + "memory_warn = \"2G\"\nmemory_cap = \"1G\"\n", "above memory_cap"},
		{prog + "memory_cap = \"lots\"\n", `invalid size "lots"`},
		{prog + "max_lifetime = \"soon\"\n", "soon"},
		{prog + "max_lifetime = \"10ms\"\n", "at least 1s"},
		{prog + "lifetime_splay = 2.0\n", "lifetime_splay"},
		{prog + "stop_signal = \"STOP\"\n", `stop signal "STOP"`},
		{prog + "stop_grace = \"-1s\"\n", "stop_grace is negative"},
		{prog + "max_restarts = -1\n", "max_restarts is negative"},
		{"[[program]]\nname = \"p\"\ncommand = \"w > f\"\n", "sh -c"},
		{"[[program]]\nname = \"p\"\ncommand = [1, 2]\n", "not a string"},
		{"[[program]]\nname = \"p\"\ncommand = 5\n", "string or an array"},
		{"[[program]]\nname = \"a b\"\ncommand = \"w\"\n", "no spaces"},
		{"[alert]\ncommand = \"echo $X\"\n" + prog, "sh -c"},
		{"\xff", "UTF-8"},
		{"[[program]\n", "supervise config"},
	} {
		_, err := ParseConfig([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q) = %v; want an error containing %q", tc.doc, err, tc.want)
		}
	}
}

// FuzzParseConfig: any document is parsed or refused without a panic, and what is accepted is valid.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(exampleConfig))
	f.Add([]byte("[[program]]\nname = \"p\"\ncommand = [\"w\"]\ncount = 2\n"))
	f.Add([]byte("[[program]]\nname = \"p\"\ncommand = \"w 'x\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if len(cfg.Programs) == 0 {
			t.Fatal("accepted a config without programs")
		}
		for _, p := range cfg.Programs {
			if err := p.Validate(); err != nil {
				t.Fatalf("accepted an invalid program: %v", err)
			}
			if p.Count < 1 {
				t.Fatalf("accepted count %d", p.Count)
			}
		}
	})
}

// The README's example config file parses.
func TestParseConfig_README(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```toml\n")
	doc, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no toml block in the README")
	}
	cfg, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Programs) != 2 || cfg.Programs[0].Count != 4 || cfg.AlertCommand[0] != "sh" || cfg.Server == "" {
		t.Errorf("the README's config reads as %+v", cfg)
	}
}
