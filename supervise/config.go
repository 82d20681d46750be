package supervise

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/gearhq/gear/alert"
	"github.com/gearhq/gear/internal/bytesize"
)

// Program is one worker program and how many copies of it run.
type Program struct {
	Name          string
	Command       []string // argv: Command[0] is looked up in PATH
	Count         int      // copies (default 1)
	Dir           string   // working directory ("" the supervisor's)
	Env           []string // KEY=VALUE added to the supervisor's environment, sorted by key
	MemoryWarn    uint64   // alert past this resident size of the child's process tree (0: off)
	MemoryCap     uint64   // recycle the child at this size (0: off)
	MaxLifetime   time.Duration
	LifetimeSplay float64        // 0..1: up to this fraction of MaxLifetime is added at random
	MaxRestarts   int            // crashes allowed in any minute before the program is given up (default 5)
	StopSignal    syscall.Signal // sent to stop a child (default SIGTERM)
	StopGrace     time.Duration  // then SIGKILL to its process group (default 10 s)
}

// Defaults of a Program's zero fields.
const (
	DefaultMaxRestarts = 5
	DefaultStopGrace   = 10 * time.Second
)

// withDefaults fills the zero fields.
func (p Program) withDefaults() Program {
	if p.Count == 0 {
		p.Count = 1
	}
	if p.MaxRestarts == 0 {
		p.MaxRestarts = DefaultMaxRestarts
	}
	if p.StopSignal == 0 {
		p.StopSignal = syscall.SIGTERM
	}
	if p.StopGrace == 0 {
		p.StopGrace = DefaultStopGrace
	}
	return p
}

// maxCount bounds copies of one program: a typo (count = 40000) should fail, not fork-bomb.
const maxCount = 1024

// Validate checks p as written (zero fields take their defaults).
func (p Program) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("program %q: %s", p.Name, fmt.Sprintf(format, a...))
	}
	switch {
	case p.Name == "" || strings.ContainsAny(p.Name, " \t\r\n") || !utf8.ValidString(p.Name) || len(p.Name) > 128:
		return fmt.Errorf("program name %q: want 1 to 128 characters, no spaces", p.Name)
	case len(p.Command) == 0 || p.Command[0] == "":
		return bad("no command")
	case p.Count < 0 || p.Count > maxCount:
		return bad("count %d: want 1 to %d", p.Count, maxCount)
	case !memorySupported && (p.MemoryWarn > 0 || p.MemoryCap > 0):
		return bad("memory limits read Linux's /proc: not available on this system")
	case p.MemoryCap > 0 && p.MemoryWarn > p.MemoryCap:
		return bad("memory_warn %d above memory_cap %d", p.MemoryWarn, p.MemoryCap)
	case p.MaxLifetime < 0:
		return bad("max_lifetime is negative")
	case p.MaxLifetime > 0 && p.MaxLifetime < time.Second:
		return bad("max_lifetime %v: at least 1s", p.MaxLifetime)
	case !(p.LifetimeSplay >= 0 && p.LifetimeSplay <= 1):
		return bad("lifetime_splay %v: want 0 to 1", p.LifetimeSplay)
	case p.MaxRestarts < 0:
		return bad("max_restarts is negative")
	case p.StopGrace < 0:
		return bad("stop_grace is negative")
	}
	for _, kv := range p.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return bad("environment entry %q: want KEY=VALUE", kv)
		}
	}
	for _, a := range p.Command {
		if strings.ContainsRune(a, 0) {
			return bad("a NUL byte in the command")
		}
	}
	return nil
}

// Config is a supervisor's programs, where alerts go and which job server to ask about them.
type Config struct {
	Programs []Program
	// AlertCommand and AlertURL: where alerts go besides the log.
	AlertCommand []string
	AlertURL     string
	// Server (admin protocol, HOST:PORT) or ServerHTTP (the HTTP API's base URL) is the job server
	// the workers use, asked whether a child is running a job before it is recycled.
	Server     string
	ServerHTTP string
}

// The TOML document. Every key is listed here: an unknown one is an error.
type configFile struct {
	Server struct {
		Address string `toml:"address"`
		HTTP    string `toml:"http"`
	} `toml:"server"`
	Alert struct {
		Command argvValue `toml:"command"`
		URL     string    `toml:"url"`
	} `toml:"alert"`
	Program []programFile `toml:"program"`
}

type programFile struct {
	Name          string            `toml:"name"`
	Command       argvValue         `toml:"command"`
	Count         *int              `toml:"count"`
	Dir           string            `toml:"dir"`
	Env           map[string]string `toml:"env"`
	MemoryWarn    bytesize.Size     `toml:"memory_warn"`
	MemoryCap     bytesize.Size     `toml:"memory_cap"`
	MaxLifetime   duration          `toml:"max_lifetime"`
	LifetimeSplay *float64          `toml:"lifetime_splay"`
	MaxRestarts   *int              `toml:"max_restarts"`
	StopSignal    string            `toml:"stop_signal"`
	StopGrace     duration          `toml:"stop_grace"`
}

// argvValue is a command in the file: a string, split with shell-style quoting (no shell is
// run), or an array of strings taken verbatim.
type argvValue []string

func (a *argvValue) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		argv, err := alert.ParseCommand(v)
		if err != nil {
			return err
		}
		*a = argv
		return nil
	case []any:
		argv := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("command: element %d is not a string", i+1)
			}
			argv[i] = s
		}
		*a = argv
		return nil
	}
	return fmt.Errorf("command: want a string or an array of strings, not %T", v)
}

// duration is a TOML string such as "90s" or "1h30m".
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = duration(v)
	return err
}

// DefaultLifetimeSplay is lifetime_splay when not given, as gear worker's --lifetime-splay.
const DefaultLifetimeSplay = 0.1

// ParseConfig reads a config file. Unknown keys, a program without a name or a command, two
// programs with one name and values out of range are errors naming the program.
func ParseConfig(data []byte) (Config, error) {
	if !utf8.Valid(data) {
		return Config{}, errors.New("supervise config: not UTF-8 text")
	}
	var f configFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return Config{}, fmt.Errorf("supervise config: %w", err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return Config{}, fmt.Errorf("supervise config: unknown key %q", undecoded[0].String())
	}
	cfg := Config{AlertCommand: f.Alert.Command, AlertURL: f.Alert.URL, Server: f.Server.Address, ServerHTTP: f.Server.HTTP}
	seen := map[string]bool{}
	for i, pf := range f.Program {
		p := Program{Name: pf.Name, Command: pf.Command, Count: 1, Dir: pf.Dir, MemoryWarn: uint64(pf.MemoryWarn),
			MemoryCap: uint64(pf.MemoryCap), MaxLifetime: time.Duration(pf.MaxLifetime), LifetimeSplay: DefaultLifetimeSplay,
			MaxRestarts: DefaultMaxRestarts, StopGrace: time.Duration(pf.StopGrace)}
		if pf.Count != nil {
			if p.Count = *pf.Count; p.Count < 1 {
				return Config{}, fmt.Errorf("supervise config: program %q: count %d: want 1 to %d", p.Name, p.Count, maxCount)
			}
		}
		if pf.LifetimeSplay != nil {
			p.LifetimeSplay = *pf.LifetimeSplay
		}
		if pf.MaxRestarts != nil {
			p.MaxRestarts = *pf.MaxRestarts
		}
		for _, k := range slices.Sorted(maps.Keys(pf.Env)) {
			p.Env = append(p.Env, k+"="+pf.Env[k])
		}
		if pf.StopSignal != "" {
			if p.StopSignal, err = ParseSignal(pf.StopSignal); err != nil {
				return Config{}, fmt.Errorf("supervise config: program %q: %v", p.Name, err)
			}
		}
		if err := p.Validate(); err != nil {
			return Config{}, fmt.Errorf("supervise config: program %d: %v", i+1, err)
		}
		if seen[p.Name] {
			return Config{}, fmt.Errorf("supervise config: two programs named %q", p.Name)
		}
		seen[p.Name] = true
		cfg.Programs = append(cfg.Programs, p)
	}
	if len(cfg.Programs) == 0 {
		return Config{}, errors.New("supervise config: no [[program]]")
	}
	return cfg, nil
}

// ReadConfig reads and parses a config file.
func ReadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

var signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "HUP": syscall.SIGHUP,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "KILL": syscall.SIGKILL,
}

// ParseSignal reads a stop signal: TERM, SIGTERM, INT, QUIT, HUP, USR1, USR2 or KILL.
func ParseSignal(s string) (syscall.Signal, error) {
	if sig, ok := signals[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("stop signal %q: want TERM, INT, QUIT, HUP, USR1, USR2 or KILL", s)
}
