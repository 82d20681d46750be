package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/httpapi"
	"github.com/gearhq/gear/internal/gcfloor"
	"github.com/gearhq/gear/internal/serveraddr"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/store"
)

// serverFlags is the gearmand option surface `gear server` accepts.
type serverFlags struct {
	fs            *flag.FlagSet
	port          string
	listen        addrFlag
	logFile       string
	verbose       string
	moreVerbose   bool
	pidFile       string
	jobRetries    int
	handlePrefix  string
	exceptions    bool
	workerWakeup  int
	wakeTimeout   time.Duration
	keepalive     bool
	keepaliveIdle int
	threads       int
	ioLoops       int
	roundRobin    bool
	configFile    string
	checkConfig   bool
	maxPacket     int
	maxConns      int
	accessRules   string
	maxJobs       int
	packetTimeout time.Duration
	silentTimeout time.Duration
	maxQueued     int64
	maxQueue      maxQueueFlag
	fnSettings    functionSettingsFlag
	schedules     scheduleFlag // server_schedule.go
	maxConnsPerIP int
	backlog       int
	functionTTL   time.Duration
	storeKind     string
	dataDir       string
	postgresURL   string
	leaseTTL      float64 // seconds
	syncMode      string
	queueType     string
	minFree       byteSize
	gcHeapFloor   byteSize
	gearmand      gearmandFlags
	httpAddr      string
	logFormat     string
	httpMaxFuncs  int
	httpAuth      string
	httpSecret    string
	httpReadOnly  bool
	httpOpenLivez bool
	tls           tlsServerFlags
	notes         []string        // how gearmand options were mapped, for the log at start
	fromConfig    map[string]bool // options the config file gave
}

func newServerFlags(name string) *serverFlags {
	f := &serverFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError), listen: addrFlag{listen: true},
		fromConfig: map[string]bool{}}
	fs := f.fs
	str := func(p *string, long, short, def, help string) {
		fs.StringVar(p, long, def, help)
		if short != "" {
			fs.StringVar(p, short, def, "short for --"+long)
		}
	}
	num := func(p *int, long, short string, def int, help string) {
		fs.IntVar(p, long, def, help)
		if short != "" {
			fs.IntVar(p, short, def, "short for --"+long)
		}
	}
	// The defaults are the server's own (server.DefaultOptions), stated here once for the flags.
	d := server.DefaultOptions()
	defHosts, defPort := splitListen(d.Listen)
	str(&f.port, "port", "p", defPort, "TCP port to listen on (env GEARMAND_PORT)")
	fs.Var(&f.listen, "listen", "address to listen on, HOST or HOST:PORT (repeatable; default "+strings.Join(defHosts, ",")+"; 0.0.0.0 for all)")
	fs.Var(&f.listen, "L", "short for --listen")
	str(&f.logFile, "log-file", "l", "stderr", "log destination: a file path, stderr or none")
	fs.StringVar(&f.verbose, "verbose", "INFO", "log level: FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG")
	fs.BoolVar(&f.moreVerbose, "v", false, "log at DEBUG level (deprecated in gearmand; use --verbose)")
	str(&f.pidFile, "pid-file", "P", "", "write the process ID to this file")
	num(&f.jobRetries, "job-retries", "j", d.JobRetries, "fail a job after its worker was lost this many times (0 = retry forever)")
	fs.StringVar(&f.handlePrefix, "job-handle-prefix", d.HandlePrefix, "job handle prefix (default: H: and the host name)")
	fs.BoolVar(&f.exceptions, "exceptions", d.Exceptions, "turn the exceptions option on for every connection")
	num(&f.workerWakeup, "worker-wakeup", "w", d.WorkerWakeup, "sleeping workers to wake per new job: -1 one per job, 0 all")
	fs.DurationVar(&f.wakeTimeout, "wake-timeout", d.WakeTimeout, "a woken worker that has not asked for a job within this is passed over: the next sleeping worker is woken")
	fs.BoolVar(&f.keepalive, "keepalive", d.Keepalive, "enable TCP keepalive on connections")
	fs.IntVar(&f.keepaliveIdle, "keepalive-idle", int(d.KeepaliveIdle/time.Second), "seconds of idleness before keepalive probes")
	num(&f.threads, "threads", "t", 0, "accepted for gearmand compatibility; see --io-loops")
	fs.IntVar(&f.ioLoops, "io-loops", d.IOLoops, "epoll event loops serving connections (Linux; 0: a goroutine per connection)")
	fs.BoolVar(&f.roundRobin, "round-robin", false, "accepted for gearmand compatibility; Gear always rotates among a worker's functions")
	fs.BoolVar(&f.roundRobin, "R", false, "short for --round-robin")
	str(&f.configFile, "config-file", "", "", "read options from this file: one OPTION=VALUE (or --option=value) per line, # comments")
	fs.BoolVar(&f.checkConfig, "check-config", false, "read the flags, environment and config file, print the effective options (name = value, sorted by name) and exit: 0 if they are valid, else 1 with the error; nothing listens and the data directory is not opened")
	fs.IntVar(&f.maxPacket, "max-packet-size", d.MaxPacketSize, "largest packet accepted, in bytes")
	fs.StringVar(&f.accessRules, "access-rules", "", "who may submit, serve and administer what: a TOML rules file (see README, \"Running it safely\"), reloaded on SIGHUP; without it everything is allowed")
	fs.DurationVar(&f.packetTimeout, "packet-timeout", d.PacketTimeout, "how long one packet may take to arrive once it has begun; a peer slower than that is closed (0: no limit)")
	fs.DurationVar(&f.silentTimeout, "silent-timeout", d.SilentTimeout, "how long a connection may stay without sending anything; then it is closed (0: no limit)")
	fs.IntVar(&f.maxJobs, "max-jobs", 0, "most unfinished jobs of all functions; a submit past it gets ERROR QUEUE_ERROR (0: no limit)")
	fs.Int64Var(&f.maxQueued, "max-queued-bytes", 0, "most bytes of job payloads held in memory; a submit past it gets ERROR QUEUE_ERROR (0: no limit)")
	fs.Var(f.fnSettings.kind("limit"), "function-limit", "FUNCTION=RUNNING,RATE[,BURST]: at most RUNNING of its jobs at once and RATE starts a second from the start (0: no limit; repeatable)")
	fs.Var(f.fnSettings.kind("retry"), "retry-policy", "FUNCTION=ATTEMPTS,BASE,CAP[,JITTER]: retry its failed background jobs, waiting BASE seconds doubling up to CAP (repeatable)")
	fs.Var(&f.maxQueue, "max-queue", "FUNCTION=N or FUNCTION=HIGH,NORMAL,LOW: a function's queue limit from the start, as the admin maxqueue sets it (repeatable)")
	fs.IntVar(&f.maxConns, "max-connections", 0, "most open connections; more are told ERROR CONNECTION_LIMIT and closed (0: no limit)")
	fs.IntVar(&f.maxConnsPerIP, "max-connections-per-ip", 0, "most open connections from one remote address (0: no limit)")
	fs.DurationVar(&f.functionTTL, "function-idle-ttl", d.FunctionIdleTTL, "how long the admin status view keeps listing a function with no workers and no jobs")
	fs.StringVar(&f.storeKind, "store", "pebble", "where background jobs are kept: pebble (durable, embedded), postgres (durable, in a PostgreSQL database: see --postgres-url) or memory (env GEAR_STORE)")
	fs.StringVar(&f.postgresURL, "postgres-url", "", "with --store postgres, the database: a postgres://USER:PASSWORD@HOST:PORT/DB URL or a \"host=... dbname=...\" string (env GEAR_POSTGRES_URL; if empty, PostgreSQL's PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD... say where)")
	fs.Float64Var(&f.leaseTTL, "lease-ttl", 10, "with --store postgres, the seconds a server's fleet lease lasts unrenewed (renewed every third of it): a server cut off this long is fenced and its jobs adopted by another server on the database")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory of the durable store (env GEAR_DATA_DIR; default: gear-data under the user's state directory)")
	fs.StringVar(&f.syncMode, "sync", "always", "always: fsync before acknowledging a background job; interval: fsync every second; none: leave it to the OS")
	f.minFree = 64 << 20
	fs.Var(&f.schedules, "schedule", `'NAME FUNCTION MIN HOUR DOM MON DOW [tz=ZONE] [priority=P] [unique=U] [data=...]' (or @daily…): a named schedule defined at start, as the admin "schedule add" (repeatable)`)
	f.gcHeapFloor = 64 << 20
	fs.Var(&f.gcHeapFloor, "gc-heap-floor", "let the Go heap grow to this size before garbage collection runs (above it, GOGC 100 as usual): a server with few queued jobs then collects far less often under load (default 64MiB with --store memory, 0 with a durable store, where it measured slower; 0: Go's default; ignored when GOGC is set)")
	fs.Var(&f.minFree, "min-free-space", "refuse background jobs (ERROR QUEUE_ERROR) while the data directory's disk has less free space (default 64MiB; 0 turns the check off)")
	str(&f.queueType, "queue-type", "q", "", "gearmand's queue plugin: builtin (= --store memory), or libsqlite3 or libpq/Postgres (its jobs are imported into Gear's store at start)")
	num(&f.backlog, "backlog", "b", 32, "accepted for gearmand compatibility (the kernel's listen backlog is used)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log lines as text (key=value) or json")
	fs.StringVar(&f.httpAddr, "http", "", "serve /metrics, /livez, /readyz and the JSON API /api/v1/ on HOST:PORT (a bare :PORT binds loopback; off by default)")
	fs.IntVar(&f.httpMaxFuncs, "http-max-functions", 1000, "functions the metrics count by name; the rest are counted as function=\"_other\"")
	fs.StringVar(&f.httpAuth, "http-auth", "", `require of every --http request a bearer token ("token") or basic auth ("user:NAME"); the secret from --http-auth-secret-file or GEAR_HTTP_SECRET`)
	fs.StringVar(&f.httpSecret, "http-auth-secret-file", "", "file holding the --http-auth token or password (else the environment's GEAR_HTTP_SECRET)")
	fs.BoolVar(&f.httpReadOnly, "http-read-only", false, "--http serves views, metrics and health only: every action is refused (403)")
	fs.BoolVar(&f.httpOpenLivez, "http-open-livez", false, "with --http-auth, let /livez answer without credentials (for probes)")
	f.tls.register(fs)
	f.gearmand.register(fs)
	// Errors are reported in one line, never with the whole usage (Go's flag package would print
	// it, in single-dash style, on every mistake); --help prints it in gearmand's style.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return f
}

// parse reads flags, then the config file for options not given as flags, then GEARMAND_PORT if no
// port was given on the command line: flag over environment over config file over default.
func (f *serverFlags) parse(args []string) error {
	args, err := gnuArgs(f.fs, args)
	if err != nil {
		return err
	}
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.configFile != "" {
		if err := f.loadConfig(f.configFile, set); err != nil {
			return err
		}
	}
	if p := os.Getenv("GEARMAND_PORT"); p != "" && !set["port"] && !set["p"] {
		f.port = p
	}
	if v := os.Getenv("GEAR_STORE"); v != "" && !set["store"] {
		f.storeKind = v
	}
	if v := os.Getenv("GEAR_DATA_DIR"); v != "" && !set["data-dir"] {
		f.dataDir = v
	}
	if v := os.Getenv("GEAR_POSTGRES_URL"); v != "" && !set["postgres-url"] {
		f.postgresURL = v
	}
	f.queueType = normalizeQueueType(f.queueType)
	if f.queueType == "builtin" && !set["store"] {
		f.storeKind = "memory"
	}
	given := maps.Clone(set)
	maps.Copy(given, f.fromConfig)
	// The floor pays only without a durable store: with Pebble or PostgreSQL each job leaves more
	// garbage, and collecting it in a 64 MiB heap instead of a few MiB measured slower (pipelined
	// submits 82-93k jobs/s with Pebble against 63-67k with the floor, 41-47k against 35k on
	// PostgreSQL, --sync always with 8 clients 12-13k against 9-11k).
	if !given["gc-heap-floor"] && f.storeKind != "memory" {
		f.gcHeapFloor = 0
	}
	notes, err := f.gearmand.check(f.queueType, given)
	if err != nil {
		return err
	}
	f.notes = append(f.notes, notes...)
	if notes, err = f.gearmand.mapSSL(&f.tls, given); err != nil {
		return err
	}
	f.notes = append(f.notes, notes...)
	return nil
}

func (f *serverFlags) loadConfig(path string, set map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return f.applyConfig(path, data, set)
}

// applyConfig sets the options of a config file's contents (read from path) that set does not hold.
func (f *serverFlags) applyConfig(path string, data []byte, set map[string]bool) error {
	settings, err := parseConfig(data)
	if err != nil {
		return fmt.Errorf("config file %s%w", path, err)
	}
	for _, st := range settings {
		fl := f.fs.Lookup(st.name)
		if fl == nil {
			return fmt.Errorf("config file %s:%d: unknown option %q", path, st.line, st.name)
		}
		if st.name == "config-file" || st.name == "check-config" {
			return fmt.Errorf("config file %s:%d: %s is a command-line option only", path, st.line, st.name)
		}
		f.fromConfig[st.name] = true
		if set[st.name] {
			continue
		}
		value := st.value
		if value == "" {
			if b, isBool := fl.Value.(interface{ IsBoolFlag() bool }); isBool && b.IsBoolFlag() {
				value = "true"
			}
		}
		if err := fl.Value.Set(value); err != nil {
			return fmt.Errorf("config file %s:%d: %s: %w", path, st.line, st.name, err)
		}
	}
	return nil
}

// configSetting is one option of a config file.
type configSetting struct {
	line        int // 1-based
	name, value string
}

// maxConfigLine bounds a config file's line, as the line scanner that read them used to.
const maxConfigLine = 64 << 10

// parseConfig reads a config file's contents: one option per line, as "name=value", "name value"
// or a bare "name" (a boolean option turned on), each optionally written "--name" as on the
// command line; spaces around names and values, blank lines and lines starting with # are ignored.
// It checks the syntax only: whether an option exists and takes the value is for the caller. Its
// errors start with ":LINE: ", to follow the file's name.
func parseConfig(data []byte) ([]configSetting, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf(": not UTF-8 text")
	}
	var out []configSetting
	for n, line := range strings.Split(string(data), "\n") {
		bad := func(format string, a ...any) ([]configSetting, error) {
			return nil, fmt.Errorf(":%d: %s", n+1, fmt.Sprintf(format, a...))
		}
		if len(line) > maxConfigLine {
			return bad("line longer than %d bytes", maxConfigLine)
		}
		line = strings.TrimSpace(line) // and the \r of a CRLF file
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsFunc(line, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) {
			return bad("control character in line")
		}
		name, value, ok := strings.Cut(strings.TrimLeft(line, "-"), "=")
		if !ok {
			if i := strings.IndexAny(name, " \t"); i >= 0 {
				name, value = name[:i], name[i+1:]
			}
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if name == "" {
			return bad("no option name in %q", line)
		}
		if strings.ContainsFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			return bad("invalid option name %q", name)
		}
		out = append(out, configSetting{line: n + 1, name: name, value: value})
	}
	return out, nil
}

// listenAddrs combines --listen and --port: "--listen 0.0.0.0 --port 4731" and
// "--listen 127.0.0.1:4731" both work.
func (f *serverFlags) listenAddrs() ([]string, error) {
	if _, err := strconv.ParseUint(f.port, 10, 16); err != nil {
		return nil, fmt.Errorf("invalid port %q", f.port)
	}
	listen := f.listen
	if !listen.given() {
		hosts, _ := splitListen(server.DefaultOptions().Listen)
		for _, h := range hosts {
			listen.Set(h)
		}
	}
	return listen.withPort(f.port), nil
}

// splitListen returns the hosts of the server's default listening addresses and the port of the
// first, the defaults of --listen and --port.
func splitListen(addrs []string) (hosts []string, port string) {
	for _, a := range addrs {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		hosts = append(hosts, h)
		if port == "" {
			port = p
		}
	}
	if port == "" {
		port = serveraddr.DefaultPort
	}
	return hosts, port
}

func parseLevel(name string) (slog.Level, error) {
	switch strings.ToUpper(name) {
	case "FATAL", "ALERT", "CRITICAL", "ERROR":
		return slog.LevelError, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "NOTICE", "INFO":
		return slog.LevelInfo, nil
	case "DEBUG":
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("unknown log level %q (FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG)", name)
}

// logSink is the log destination; SIGHUP reopens a log file (for logrotate), as gearmand does.
type logSink struct {
	mu   sync.Mutex
	path string
	w    io.Writer
	file *os.File
}

func openLog(path string) (*logSink, error) {
	l := &logSink{path: path}
	switch path {
	case "stderr", "":
		l.w = os.Stderr
	case "none":
		l.w = io.Discard
	default:
		if err := l.reopen(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *logSink) reopen() error {
	if l.w == os.Stderr || l.w == io.Discard {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	l.mu.Lock()
	old := l.file
	l.file, l.w = f, f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func runServer(name string, args []string) int { return serverMain(name, args, os.Stdout, os.Stderr) }

func serverMain(name string, args []string, stdout, stderr io.Writer) int {
	f := newServerFlags(name)
	if err := f.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.printHelp(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, friendlyFlagError(err))
		return 2
	}
	if f.gearmand.version {
		if filepath.Base(name) == "gearmand" {
			fmt.Fprintf(stdout, "gearmand %s (gear %s)\n", gearmandVersionCompat, server.Version)
		} else {
			fmt.Fprintf(stdout, "gear %s (gearmand %s compatible)\n", server.Version, gearmandVersionCompat)
		}
		return 0
	}
	if f.checkConfig {
		lines, err := f.effective()
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		fmt.Fprint(stdout, lines)
		return 0
	}
	notify := daemonChild()
	if f.gearmand.daemon && notify == nil {
		return daemonize(stderr)
	}
	if err := serve(f, notify); err != nil {
		err = fmt.Errorf("%s: %w", name, err)
		notifyParent(notify, err) // a daemon's stderr is /dev/null: its parent prints it
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// effective checks the options as serve would before it opens anything, and returns them as
// --check-config prints them: one "name = value" line per long option, sorted by name, with the
// values the server would use (listen with ports, the data directory resolved, verbose raised by
// -v). It neither listens, nor opens the log file, the pid file or the data directory.
func (f *serverFlags) effective() (string, error) {
	lv, err := f.level()
	if err != nil {
		return "", err
	}
	opts, err := f.options()
	if err != nil {
		return "", err
	}
	tlsFiles, err := f.tls.files() // the certificate files are read and checked
	if err != nil {
		return "", err
	}
	f.tls.apply(&opts, tlsFiles)
	if _, err := store.ParseSyncMode(f.syncMode); err != nil {
		return "", err
	}
	if f.storeKind == "postgres" { // the URL's syntax only: nothing is opened
		if _, err := store.ParsePostgresURL(f.postgresURL); err != nil {
			return "", err
		}
		if f.leaseTTL < 0.5 || f.leaseTTL > 3600 {
			return "", fmt.Errorf("--lease-ttl %g: from 0.5 to 3600 seconds", f.leaseTTL)
		}
	}
	var svc *serviceUser
	if f.gearmand.user != "" {
		if svc, err = lookupServiceUser(f.gearmand.user); err != nil {
			return "", err
		}
	}
	dataDir, err := f.resolvedDataDir(svc)
	if err != nil {
		return "", err
	}
	// The server's own checks: New validates the options; with no Listen and no Store it opens
	// nothing, and Close stops what it started.
	check := opts
	check.Listen, check.TLSListen, check.Store = nil, nil, nil
	srv, err := server.New(check)
	if err != nil {
		return "", err
	}
	srv.Close()

	values := map[string]string{}
	f.fs.VisitAll(func(fl *flag.Flag) {
		if strings.HasPrefix(fl.Usage, "short for --") || fl.Name == "v" || fl.Name == "check-config" {
			return
		}
		values[fl.Name] = fl.Value.String()
	})
	values["listen"] = strings.Join(opts.Listen, ",")
	values["tls-listen"] = strings.Join(opts.TLSListen, ",")
	values["job-handle-prefix"] = opts.HandlePrefix
	values["verbose"] = strings.ToUpper(lv.String())
	values["data-dir"] = dataDir
	if f.postgresURL != "" {
		values["postgres-url"] = store.MaskPostgresURL(f.postgresURL)
	}
	names := slices.Sorted(maps.Keys(values))
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s = %s\n", n, values[n])
	}
	return b.String(), nil
}

// level returns the log level --verbose and -v ask for.
func (f *serverFlags) level() (slog.Level, error) {
	lv, err := parseLevel(f.verbose)
	if err != nil {
		return 0, err
	}
	if f.moreVerbose {
		lv = slog.LevelDebug
	}
	return lv, nil
}

// options returns the server's options as the flags set them, starting from server.DefaultOptions
// (the flags' defaults are its values). Logger, Level and Store are left to the caller.
func (f *serverFlags) options() (server.Options, error) {
	opts := server.DefaultOptions()
	var err error
	if opts.Listen, err = f.listenAddrs(); err != nil {
		return opts, err
	}
	opts.JobRetries = f.jobRetries
	if f.handlePrefix != "" {
		opts.HandlePrefix = f.handlePrefix
	}
	opts.Exceptions = f.exceptions
	opts.WorkerWakeup = f.workerWakeup
	opts.WakeTimeout = f.wakeTimeout
	opts.Keepalive = f.keepalive
	opts.KeepaliveIdle = time.Duration(f.keepaliveIdle) * time.Second
	// gearmand's -1 is the system's value; a negative duration or count leaves it alone.
	opts.KeepaliveInterval = time.Duration(f.gearmand.keepaliveInterval) * time.Second
	opts.KeepaliveCount = f.gearmand.keepaliveCount
	opts.MaxPacketSize = f.maxPacket
	opts.MaxConnections, opts.MaxConnectionsPerIP = f.maxConns, f.maxConnsPerIP
	opts.MaxJobs, opts.MaxQueuedBytes, opts.MaxQueue = f.maxJobs, f.maxQueued, f.maxQueue.limits
	opts.Schedules = f.schedules.defs
	opts.PacketTimeout, opts.SilentTimeout = f.packetTimeout, f.silentTimeout
	opts.StartSettings = f.fnSettings.changes
	if f.accessRules != "" {
		if opts.Access, err = loadAccessRules(f.accessRules); err != nil {
			return opts, err
		}
	}
	opts.FunctionIdleTTL = f.functionTTL
	opts.IOLoops = f.ioLoops
	return opts, nil
}

// serve runs the server until it stops. notify, when this is a daemon's child, is told once the
// server is ready (serveMain tells it of an error).
func serve(f *serverFlags, notify *os.File) error {
	if err := f.gearmand.applyProcessOptions(); err != nil {
		return err
	}
	level := new(slog.LevelVar)
	lv, err := f.level()
	if err != nil {
		return err
	}
	level.Set(lv)
	opts, err := f.options()
	if err != nil {
		return err
	}
	tlsFiles, err := f.tls.files()
	if err != nil {
		return err
	}
	f.tls.apply(&opts, tlsFiles)
	var svc *serviceUser
	if f.gearmand.user != "" {
		if svc, err = lookupServiceUser(f.gearmand.user); err != nil {
			return err
		}
	}
	sink, err := openLog(f.logFile)
	if err != nil {
		return err
	}
	var out io.Writer = sink
	if f.gearmand.syslog {
		sys, err := openSyslog(filepath.Base(strings.Fields(f.fs.Name())[0])) // "gear" or "gearmand"
		if err != nil {
			return err
		}
		if f.logFile == "none" {
			out = sys
		} else {
			out = io.MultiWriter(sink, sys)
		}
	}
	var handler slog.Handler
	switch f.logFormat {
	case "text":
		handler = slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level})
	default:
		return fmt.Errorf("--log-format %q: text or json", f.logFormat)
	}
	logger := slog.New(handler)
	opts.Logger = logger
	opts.Level = level
	for _, n := range f.notes {
		logger.Info("gearmand option: " + n)
	}
	// From the start, so that a store's replay (with a floor given) has it too.
	if f.gcHeapFloor > 0 {
		if os.Getenv("GOGC") != "" {
			logger.Info("--gc-heap-floor is not applied: GOGC is set", "GOGC", os.Getenv("GOGC"))
		} else {
			defer gcfloor.Start(uint64(f.gcHeapFloor), 100).Stop()
		}
	}

	dataDir, err := f.resolvedDataDir(svc)
	if err != nil {
		return err
	}
	// The HTTP listener comes first: while a large store replays, /livez answers and /readyz says
	// not yet, so a probe does not kill a server that is recovering.
	var web *httpapi.HTTP
	if f.httpAddr != "" {
		metrics := httpapi.NewMetrics(f.httpMaxFuncs, logger)
		opts.Observer = metrics
		auth, err := f.httpAuthConfig()
		if err != nil {
			return err
		}
		if web, err = httpapi.Listen(httpapi.Options{Addr: f.httpAddr, Metrics: metrics, Log: logger,
			Auth: auth, OpenLivez: f.httpOpenLivez, ReadOnly: f.httpReadOnly}); err != nil {
			return err
		}
		defer web.Close()
	}
	st, err := openStore(f, dataDir, opts.HandlePrefix, logger)
	if err != nil {
		return err
	}
	if st != nil {
		opts.Store = st
		defer st.Close() // after the server, deferred below, has closed
	}
	var fleet *server.Fleet
	if pg, ok := st.(*store.Postgres); ok {
		fleet = server.NewFleet(pg, f.leaseDuration(), logger)
		opts.ScheduleLeader = fleet.Leader
	}
	srv, err := server.New(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	if fleet != nil {
		fleet.Start(srv)
		defer fleet.Close() // before the server and the store close
	}
	// Before anyone can connect: no worker takes a job twice.
	if q, ok, err := f.gearmandQueueOf(); err != nil {
		return err
	} else if ok {
		if err := importGearmandQueue(srv, dataDir, q, logger); err != nil {
			return err
		}
	}
	// Signals are caught before the server listens: once a client or a script can see it, SIGUSR1
	// must already mean a graceful shutdown rather than Go's default exit.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	signal.Ignore(syscall.SIGPIPE)
	defer signal.Stop(sigs)
	// The pid file exists before the server logs that it listens, so whoever waits for that line
	// (a test, an init script) finds it.
	if f.pidFile != "" {
		if err := os.WriteFile(f.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("pid file: %w", err)
		}
		defer os.Remove(f.pidFile)
	}
	if err := srv.Start(); err != nil {
		return err
	}
	if f.gearmand.protocol == "http" {
		web, err := serveGearmandHTTP(srv, opts, f.gearmand.httpPort, logger)
		if err != nil {
			return err
		}
		defer web.Close()
	}
	// The ports are bound and the data directory open and locked: now the service user takes
	// over, owning what the server goes on writing.
	if svc != nil {
		owned := []string{}
		if st != nil {
			owned = append(owned, dataDir)
		}
		if f.logFile != "stderr" && f.logFile != "none" && f.logFile != "" {
			owned = append(owned, f.logFile)
		}
		if err := svc.own(owned...); err != nil {
			return err
		}
		if err := svc.become(); err != nil {
			return err
		}
	}
	if web != nil {
		web.Attach(srv)
	}
	logger.Info("gear server started", "version", server.Version, "listen", strings.Join(opts.Listen, ","),
		"tls_listen", strings.Join(opts.TLSListen, ","), "pid", os.Getpid(), "user", currentUserName())
	if tlsFiles != nil {
		logger.Info("TLS certificate loaded", "files", tlsFiles.String(), "not_after", tlsFiles.NotAfter())
	}
	notifyParent(notify, nil)

	for {
		select {
		case <-srv.Done():
			logger.Info("gear server stopped")
			srv.Close()
			return nil
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				if err := sink.reopen(); err != nil {
					logger.Error("cannot reopen log file", "err", err)
				}
				if f.accessRules != "" {
					if rules, err := loadAccessRules(f.accessRules); err != nil {
						logger.Error("SIGHUP: access rules not reloaded; the old ones stay in force", "err", err)
					} else {
						srv.SetAccess(rules)
						logger.Info("SIGHUP: access rules reloaded", "file", f.accessRules)
					}
				}
				reloadTLS(tlsFiles, logger)
			case syscall.SIGUSR1:
				logger.Info("SIGUSR1: graceful shutdown")
				go srv.Shutdown(context.Background())
			default:
				logger.Info("stopping", "signal", sig.String())
				srv.Close()
			}
		}
	}
}

// functionSettingsFlag collects --function-limit and --retry-policy, per function.
type functionSettingsFlag struct {
	changes map[string]func(*core.FunctionSettings)
	given   []string
}

// kind is the flag.Value of one of its two flags.
func (m *functionSettingsFlag) kind(k string) flag.Value { return functionSettingsValue{m, k} }

type functionSettingsValue struct {
	m    *functionSettingsFlag
	kind string
}

func (v functionSettingsValue) String() string {
	if v.m == nil {
		return ""
	}
	var mine []string
	for _, g := range v.m.given {
		if k, rest, _ := strings.Cut(g, ":"); k == v.kind {
			mine = append(mine, rest)
		}
	}
	return strings.Join(mine, " ")
}

func (v functionSettingsValue) Set(s string) error {
	fn, spec, ok := strings.Cut(s, "=")
	if !ok || fn == "" || strings.ContainsAny(fn, "\r\n\x00") {
		return fmt.Errorf("%q: want FUNCTION=VALUES", s)
	}
	var nums []float64
	for _, part := range strings.Split(spec, ",") {
		n, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: the values are numbers, 0 or more", s)
		}
		nums = append(nums, n)
	}
	var change func(*core.FunctionSettings)
	switch {
	case v.kind == "limit" && (len(nums) == 2 || len(nums) == 3):
		burst := 0
		if len(nums) == 3 {
			burst = int(nums[2])
		}
		change = func(fs *core.FunctionSettings) {
			fs.MaxRunning, fs.RatePerSec, fs.RateBurst = int(nums[0]), nums[1], burst
		}
	case v.kind == "retry" && (len(nums) == 3 || len(nums) == 4):
		jitter := 0.0
		if len(nums) == 4 {
			jitter = nums[3]
		}
		change = func(fs *core.FunctionSettings) {
			fs.RetryAttempts, fs.RetryBaseSeconds, fs.RetryCapSeconds, fs.RetryJitter = int(nums[0]), nums[1], nums[2], jitter
		}
	case v.kind == "limit":
		return fmt.Errorf("%q: want FUNCTION=RUNNING,RATE[,BURST]", s)
	default:
		return fmt.Errorf("%q: want FUNCTION=ATTEMPTS,BASE,CAP[,JITTER]", s)
	}
	fs := core.FunctionSettings{}
	change(&fs)
	if err := core.ValidateSettings(fs); err != nil {
		return fmt.Errorf("%q: %s", s, strings.TrimPrefix(err.Error(), core.ErrBadSettings.Error()+"\n"))
	}
	if v.m.changes == nil {
		v.m.changes = map[string]func(*core.FunctionSettings){}
	}
	if prev := v.m.changes[fn]; prev != nil {
		v.m.changes[fn] = func(fs *core.FunctionSettings) { prev(fs); change(fs) }
	} else {
		v.m.changes[fn] = change
	}
	v.m.given = append(v.m.given, v.kind+":"+s)
	return nil
}

// maxQueueFlag collects --max-queue FUNCTION=N | FUNCTION=HIGH,NORMAL,LOW.
type maxQueueFlag struct {
	limits map[string]protocol.PriorityInts
	order  []string
}

func (m *maxQueueFlag) String() string {
	if m == nil {
		return ""
	}
	var parts []string
	for _, fn := range m.order {
		l := m.limits[fn]
		parts = append(parts, fmt.Sprintf("%s=%d,%d,%d", fn, l.High, l.Normal, l.Low))
	}
	return strings.Join(parts, " ")
}

func (m *maxQueueFlag) Set(v string) error {
	fn, spec, ok := strings.Cut(v, "=")
	if !ok || fn == "" || strings.ContainsAny(fn, "\r\n\x00") {
		return fmt.Errorf("%q: want FUNCTION=N or FUNCTION=HIGH,NORMAL,LOW", v)
	}
	var nums []int
	for _, part := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 0 {
			return fmt.Errorf("%q: limits are numbers, 0 (none) or more", v)
		}
		nums = append(nums, n)
	}
	var l protocol.PriorityInts
	switch len(nums) {
	case 1:
		l = protocol.PriorityInts{High: nums[0], Normal: nums[0], Low: nums[0]}
	case 3:
		l = protocol.PriorityInts{High: nums[0], Normal: nums[1], Low: nums[2]}
	default:
		return fmt.Errorf("%q: one limit for every priority, or three (high, normal, low)", v)
	}
	if m.limits == nil {
		m.limits = map[string]protocol.PriorityInts{}
	}
	if _, seen := m.limits[fn]; !seen {
		m.order = append(m.order, fn)
	}
	m.limits[fn] = l
	return nil
}

// loadAccessRules reads and checks a rules file.
func loadAccessRules(path string) (*access.Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--access-rules: %w", err)
	}
	rules, err := access.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("--access-rules %s: %w", path, err)
	}
	return rules, nil
}

// reloadTLS reads the TLS certificate files again (SIGHUP): established connections keep going,
// new handshakes see the new files; on an error the ones in use stay, and the log says why.
func reloadTLS(files *server.TLSFiles, logger *slog.Logger) {
	if files == nil {
		return
	}
	if err := files.Reload(); err != nil {
		logger.Error("TLS certificates not reloaded; serving the previous ones", "err", err)
		return
	}
	logger.Info("TLS certificates reloaded", "files", files.String(), "not_after", files.NotAfter())
}

// openStore opens the durable store the flags ask for (nil for --store memory). owner names the
// server in a PostgreSQL store: its handle prefix.
func openStore(f *serverFlags, dir, owner string, logger *slog.Logger) (store.Store, error) {
	mode, err := store.ParseSyncMode(f.syncMode)
	if err != nil {
		return nil, err
	}
	switch f.storeKind {
	case "memory":
		logger.Info("background jobs are kept in memory only (--store memory): they do not survive a restart")
		return nil, nil
	case "postgres":
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := store.OpenPostgres(ctx, store.PostgresOptions{URL: f.postgresURL, Owner: owner, Sync: mode, Log: logger,
			LeaseTTL: f.leaseDuration()})
		if err != nil {
			return nil, err
		}
		logger.Info("durable store", "engine", "postgres", "database", st.Stats().Path, "owner", owner, "sync", mode.String())
		return st, nil
	case "pebble":
	default:
		return nil, errUnknownStore(f.storeKind)
	}
	st, err := store.OpenPebble(dir, mode, logger)
	if err != nil {
		return nil, err
	}
	st.SetMinFree(uint64(f.minFree))
	logger.Info("durable store", "engine", "pebble", "data_dir", dir, "sync", mode.String())
	return st, nil
}

func errUnknownStore(kind string) error {
	return fmt.Errorf("unknown store %q (pebble, postgres or memory)", kind)
}

// resolvedDataDir is the durable store's directory: --data-dir, else the default for the user the
// server runs as (svc: the one --user switches to); "" for --store memory and postgres.
func (f *serverFlags) resolvedDataDir(svc *serviceUser) (string, error) {
	switch f.storeKind {
	case "memory", "postgres":
		return "", nil
	case "pebble":
	default:
		return "", errUnknownStore(f.storeKind)
	}
	if f.dataDir != "" {
		return f.dataDir, nil
	}
	if svc != nil {
		return filepath.Join(svc.home, "gear-data"), nil
	}
	// A service account (systemd's User=gearman) keeps its data in its home as the system gives
	// it, /var/lib/gearman for Debian's gearman, not under a $HOME the service may not have.
	if uid := os.Getuid(); uid > 0 && uid < 1000 {
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.HomeDir != "" && u.HomeDir != "/" {
			return filepath.Join(u.HomeDir, "gear-data"), nil
		}
	}
	return defaultDataDir()
}

// currentUserName names the user the process runs as, for the log.
func currentUserName() string {
	uid := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(uid); err == nil { // not user.Current: it caches the first answer
		return u.Username
	}
	return uid
}

// defaultDataDir is gear-data under the user's state directory ($XDG_STATE_HOME, else
// ~/.local/state).
func defaultDataDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "gear-data"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set --data-dir (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "gear-data"), nil
}

// httpAuthConfig reads --http-auth and its secret (a file, else GEAR_HTTP_SECRET); nil without it.
func (f *serverFlags) httpAuthConfig() (*httpapi.Auth, error) {
	if f.httpAuth == "" {
		if f.httpSecret != "" {
			return nil, errors.New("--http-auth-secret-file without --http-auth")
		}
		return nil, nil
	}
	var secret []byte
	if f.httpSecret != "" {
		b, err := os.ReadFile(f.httpSecret)
		if err != nil {
			return nil, fmt.Errorf("--http-auth-secret-file: %w", err)
		}
		secret = b
	} else {
		secret = []byte(os.Getenv("GEAR_HTTP_SECRET"))
	}
	return httpapi.ParseAuth(f.httpAuth, secret)
}

// leaseDuration is --lease-ttl as a duration.
func (f *serverFlags) leaseDuration() time.Duration {
	return time.Duration(f.leaseTTL * float64(time.Second))
}
