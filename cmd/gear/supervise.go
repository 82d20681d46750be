package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gearhq/gear/alert"
	"github.com/gearhq/gear/supervise"
)

const superviseUsage = `usage: gear supervise [OPTIONS] -- COMMAND [ARGS...]   run -n copies of COMMAND
       gear supervise [OPTIONS] --config FILE           run the programs of a TOML file

Keeps worker programs running (any command: PHP, Perl, Python, gear worker) with each child's
memory (its whole process tree) watched: past --memory-warn an alert, at --memory-cap the child
is recycled (--stop-signal, --stop-grace, then SIGKILL); --max-lifetime recycles too. A child that
exits is restarted, after a backoff if it crashed; a program crashing more than --max-restarts
times in a minute is given up: every child is stopped and the supervisor exits 1.
Children get GEAR_WORKER_ID (their client ID for the job server, so --server can tell whether they
are running a job), GEAR_SUPERVISE_PROGRAM and GEAR_SUPERVISE_SLOT.

Signals: SIGTERM/SIGINT stop the children (their stop signal, then the grace period) and exit 0;
SIGHUP re-reads --config (programs added, removed or changed only).

Options:
`

func runSupervise(args []string) int {
	fs := flag.NewFlagSet("gear supervise", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), superviseUsage); fs.PrintDefaults() }
	var (
		configPath  string
		name        string
		count       int
		dir         string
		memWarn     byteSize
		memCap      byteSize
		maxLifetime time.Duration
		splay       float64
		maxRestarts int
		stopSignal  string
		stopGrace   time.Duration
		alertCmd    string
		alertURL    string
		server      string
		serverHTTP  string
		interval    time.Duration
		recycleWait time.Duration
		verbose     string
		logFormat   string
	)
	fs.StringVar(&configPath, "config", "", "TOML file of programs (see the README); SIGHUP re-reads it")
	fs.StringVar(&name, "name", "", "program name in logs and alerts (default: the command's base name)")
	fs.IntVar(&count, "n", 1, "copies of the command to run")
	fs.StringVar(&dir, "dir", "", "working directory of the command")
	fs.Var(&memWarn, "memory-warn", "alert when a child's memory (process tree) reaches this size")
	fs.Var(&memCap, "memory-cap", "recycle a child whose memory reaches this size")
	fs.DurationVar(&maxLifetime, "max-lifetime", 0, "recycle a child after this long (0: never)")
	fs.Float64Var(&splay, "lifetime-splay", supervise.DefaultLifetimeSplay, "add up to this fraction of --max-lifetime at random")
	fs.IntVar(&maxRestarts, "max-restarts", supervise.DefaultMaxRestarts, "crashes allowed within a minute before the program is given up")
	fs.StringVar(&stopSignal, "stop-signal", "TERM", "signal that asks a child to stop (TERM, INT, QUIT, HUP, USR1, USR2, KILL)")
	fs.DurationVar(&stopGrace, "stop-grace", supervise.DefaultStopGrace, "time a child has to exit after its stop signal, before SIGKILL")
	fs.StringVar(&alertCmd, "alert-command", "", "command run on each alert (warn, cap, recycled, crashed, crash-loop): shell-style quoting, no shell; the event in $GEAR_ALERT_* and as JSON on stdin")
	fs.StringVar(&alertURL, "alert-url", "", "URL each alert is POSTed to as JSON")
	fs.StringVar(&server, "server", "", "job server HOST:PORT (admin protocol) asked whether a child is running a job before it is recycled")
	fs.StringVar(&serverHTTP, "server-http", "", "the job server's HTTP API URL, instead of --server (bearer token from $GEAR_HTTP_SECRET)")
	fs.DurationVar(&interval, "interval", time.Second, "time between memory and lifetime checks")
	fs.DurationVar(&recycleWait, "recycle-wait", 30*time.Second, "with --server: how long a child due for recycling may finish its job first")
	fs.StringVar(&verbose, "verbose", "INFO", "log level: ERROR, WARNING, INFO, DEBUG")
	fs.StringVar(&logFormat, "log-format", "text", "log lines as text (key=value) or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "gear supervise: "+format+"\n", a...)
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	command := fs.Args()
	var cfg supervise.Config
	switch {
	case configPath != "" && len(command) > 0:
		return usageErr("give either --config or a command after --, not both")
	case configPath != "":
		for _, f := range []string{"name", "n", "dir", "memory-warn", "memory-cap", "max-lifetime", "lifetime-splay", "max-restarts", "stop-signal", "stop-grace"} {
			if set[f] {
				return usageErr("--%s applies to a command after --; with --config set it per program in the file", f)
			}
		}
		var err error
		if cfg, err = supervise.ReadConfig(configPath); err != nil {
			return usageErr("%v", err)
		}
	case len(command) == 0:
		return usageErr("nothing to run: give a command after -- or --config FILE (gear supervise --help)")
	default:
		sig, err := supervise.ParseSignal(stopSignal)
		if err != nil {
			return usageErr("%v", err)
		}
		if name == "" {
			name = filepath.Base(command[0])
		}
		if count < 1 {
			return usageErr("-n %d: at least 1", count)
		}
		p := supervise.Program{Name: name, Command: command, Count: count, Dir: dir, MemoryWarn: uint64(memWarn),
			MemoryCap: uint64(memCap), MaxLifetime: maxLifetime, LifetimeSplay: splay, MaxRestarts: maxRestarts,
			StopSignal: sig, StopGrace: stopGrace}
		if maxRestarts == 0 {
			return usageErr("--max-restarts 0: at least 1")
		}
		if err := p.Validate(); err != nil {
			return usageErr("%v", err)
		}
		cfg.Programs = []supervise.Program{p}
	}
	if set["alert-command"] {
		argv, err := alert.ParseCommand(alertCmd)
		if err != nil {
			return usageErr("--alert-command: %v", err)
		}
		cfg.AlertCommand = argv
	}
	if set["alert-url"] {
		cfg.AlertURL = alertURL
	}
	if set["server"] || set["server-http"] {
		cfg.Server, cfg.ServerHTTP = server, serverHTTP
	}
	level, err := parseLevel(verbose)
	if err != nil {
		return usageErr("%v", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	default:
		return usageErr("--log-format %q: text or json", logFormat)
	}

	alerts := alert.New(alert.Options{Command: cfg.AlertCommand, URL: cfg.AlertURL, Logger: logger})
	sup, err := supervise.New(supervise.Options{Programs: cfg.Programs, Alerts: alerts, Logger: logger, Interval: interval,
		Server: cfg.Server, ServerHTTP: cfg.ServerHTTP, ServerToken: os.Getenv("GEAR_HTTP_SECRET"), RecycleWait: recycleWait})
	if err != nil {
		return usageErr("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if configPath == "" {
				logger.Info("SIGHUP: no --config to re-read")
				continue
			}
			next, err := supervise.ReadConfig(configPath)
			if err == nil {
				err = sup.Reload(next.Programs)
			}
			if err != nil {
				logger.Error("SIGHUP: configuration not reloaded, the running one stays", "err", err)
			}
		}
	}()
	logger.Info("gear supervise started", "programs", len(cfg.Programs))
	runErr := sup.Run(ctx)
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := alerts.Close(actx); err != nil {
		logger.Error("alerts not delivered before exit", "err", err)
	}
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "gear supervise: %v\n", runErr)
		return 1
	}
	logger.Info("gear supervise stopped")
	return 0
}
