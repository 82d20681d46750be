package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gearhq/gear/alert"
	"github.com/gearhq/gear/internal/bytesize"
	"github.com/gearhq/gear/worker"
	"github.com/gearhq/gear/worker/builtin"
)

// Exit statuses of `gear worker` when it recycles itself, so a supervisor can tell why.
const (
	exitMemoryCap   = 3
	exitMaxJobs     = 4
	exitMaxLifetime = 5
)

const workerUsage = `usage: gear worker [OPTIONS]                 serve the built-in functions reverse and invoke
       gear worker [OPTIONS] -f NAME -- CMD [ARGS...]   serve a command as function NAME

The command gets the job's data on stdin; its stdout is the result, its stderr is sent as warnings,
a non-zero exit fails the job.

Exit status: 0 after SIGTERM/SIGINT (jobs in hand finish first), 1 on error, 2 on bad usage,
3 memory cap reached, 4 --max-jobs done, 5 --max-lifetime reached (unless --restart).

Options:
`

// byteSize is a flag holding a size such as 512MiB, 2G or 1048576.
type byteSize = bytesize.Size

func runWorker(args []string) int {
	fs := flag.NewFlagSet("gear worker", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), workerUsage); fs.PrintDefaults() }
	var (
		servers     addrFlag
		allow       []string
		fnName      string
		concurrency int
		id          string
		timeout     time.Duration
		memWarn     byteSize
		memCap      byteSize
		alertCmd    string
		alertURL    string
		restart     bool
		maxJobs     uint64
		maxLifetime time.Duration
		splay       float64
		verbose     string
		tlsFlags    tlsClientFlags
	)
	fs.Var(&servers, "server", "job server host:port, or tls://host:port over TLS (repeatable; default $GEARMAN_SERVERS or 127.0.0.1:4730)")
	fs.Var(&servers, "s", "short for --server")
	fs.Func("allow", "let invoke run NAME=COMMAND (repeatable; the command is split on spaces, never a shell)", func(v string) error {
		allow = append(allow, v)
		return nil
	})
	fs.StringVar(&fnName, "f", "", "serve the command after -- as this function")
	fs.IntVar(&concurrency, "concurrency", 1, "jobs run at once")
	fs.IntVar(&concurrency, "c", 1, "short for --concurrency")
	fs.StringVar(&id, "id", os.Getenv("GEAR_WORKER_ID"), "worker ID shown by the admin workers view (default $GEAR_WORKER_ID, which gear supervise sets)")
	fs.DurationVar(&timeout, "timeout", 0, "per-job time limit for the functions served (0: none)")
	fs.Var(&memWarn, "memory-warn", "warn and run the alert hook when memory reaches this size")
	fs.Var(&memCap, "memory-cap", "stop taking jobs, finish those in hand and exit (or restart) at this size")
	fs.StringVar(&alertCmd, "alert-command", "", "command run on each alert (warn, cap, recycled): shell-style quoting, no shell; the event in $GEAR_ALERT_* and as JSON on stdin")
	fs.StringVar(&alertURL, "alert-url", "", "URL each alert is POSTed to as JSON")
	fs.BoolVar(&restart, "restart", false, "re-execute this worker instead of exiting when a limit is reached")
	fs.Uint64Var(&maxJobs, "max-jobs", 0, "recycle the worker after this many jobs (0: never)")
	fs.DurationVar(&maxLifetime, "max-lifetime", 0, "recycle the worker after this long (0: never)")
	fs.Float64Var(&splay, "lifetime-splay", 0.1, "add up to this fraction of --max-lifetime at random")
	fs.StringVar(&verbose, "verbose", "INFO", "log level: ERROR, WARNING, INFO, DEBUG")
	tlsFlags.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "gear worker: "+format+"\n", a...)
		return 2
	}
	command := fs.Args()
	if fnName == "" && len(command) > 0 {
		return usageErr("unexpected argument %q (serve a command with -f NAME -- CMD)", command[0])
	}
	if fnName != "" && len(command) == 0 {
		return usageErr("-f %s needs a command after --", fnName)
	}
	level, err := parseLevel(verbose)
	if err != nil {
		return usageErr("%v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	alertArgv, err := alert.ParseCommand(alertCmd)
	if err != nil {
		return usageErr("--alert-command: %v", err)
	}
	program := id
	if program == "" {
		program = "gear worker"
	}
	alerts := alert.New(alert.Options{Command: alertArgv, URL: alertURL, Logger: logger})
	// Alerts are delivered before the process exits or re-executes itself.
	closeAlerts := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := alerts.Close(ctx); err != nil {
			logger.Error("alerts not delivered before exit", "err", err)
		}
	}
	memoryEvent := func(kind alert.Kind, threshold uint64) func(uint64) {
		return func(used uint64) {
			alerts.Send(alert.Event{Kind: kind, Program: program, PID: os.Getpid(), Bytes: used,
				Reason: fmt.Sprintf("memory %d bytes, %s threshold %d", used, kind, threshold)})
		}
	}
	guard := worker.Guard{WarnBytes: uint64(memWarn), MaxBytes: uint64(memCap), MaxJobs: maxJobs,
		MaxLifetime: maxLifetime, Splay: splay,
		OnMemoryWarning: memoryEvent(alert.Warn, uint64(memWarn)), OnMemoryCap: memoryEvent(alert.Cap, uint64(memCap))}
	srv, err := servers.servers(os.Getenv("GEARMAN_SERVERS"))
	if err != nil {
		return usageErr("%v", err)
	}
	tlsConfig, err := tlsFlags.config()
	if err != nil {
		return usageErr("%v", err)
	}
	w, err := worker.New(worker.Options{Servers: srv, TLS: tlsConfig, ID: id, Concurrency: concurrency, Guard: guard, Logger: logger})
	if err != nil {
		return usageErr("%v", err)
	}
	if fnName != "" {
		err = w.Register(fnName, builtin.Command(command), timeout)
	} else {
		inv := &builtin.Invoker{Server: srv[0], TLS: tlsConfig, Commands: map[string][]string{}}
		for _, spec := range allow {
			name, argv, err := builtin.ParseAllow(spec)
			if err != nil {
				return usageErr("%v", err)
			}
			inv.Commands[name] = argv
		}
		err = errors.Join(w.Register("reverse", builtin.Reverse, timeout), w.Register("invoke", inv.Func, timeout))
	}
	if err != nil {
		return usageErr("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Info("gear worker started", "servers", strings.Join(srv, ","), "concurrency", concurrency)
	err = w.Run(ctx)
	code := 0
	switch {
	case err == nil:
		closeAlerts()
		return 0
	case errors.Is(err, worker.ErrMemoryCap):
		code = exitMemoryCap
	case errors.Is(err, worker.ErrMaxJobs):
		code = exitMaxJobs
	case errors.Is(err, worker.ErrMaxLifetime):
		code = exitMaxLifetime
	default:
		closeAlerts()
		fmt.Fprintf(os.Stderr, "gear worker: %v\n", err)
		return 1
	}
	alerts.Send(alert.Event{Kind: alert.Recycled, Program: program, PID: os.Getpid(), Reason: err.Error()})
	closeAlerts()
	if restart {
		logger.Info("restarting", "reason", err)
		exe, xerr := os.Executable()
		if xerr == nil {
			xerr = syscall.Exec(exe, os.Args, os.Environ())
		}
		fmt.Fprintf(os.Stderr, "gear worker: cannot restart: %v\n", xerr)
		return 1
	}
	logger.Info("exiting", "reason", err, "status", code)
	return code
}
