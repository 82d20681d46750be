package main

// gear admin: the admin console. It parses its arguments, then calls package admin once per server.
// Identifiers here start with "admin" because other commands of this package (gear worker, gear
// client) also read server lists.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gearhq/gear/admin"
)

const adminUsage = `usage: gear admin [--server HOST:PORT ...] [--json] COMMAND [ARGS]

Query or control Gearman job servers (Gear, gearmand, the Perl server) over the text admin protocol.

Commands:
  status                    functions: jobs queued or running, jobs running, available workers
  functions                 functions with their state (active or paused) and limits (Gear only)
  priority                  functions: queued jobs per priority (high, normal, low), workers
  workers                   worker connections: client ID, IP, descriptor, functions
  jobs                      unfinished jobs: handle, retries, cancelled (ignored), queued
  unique                    unique keys of unfinished jobs
  store                     the durable store: engine, data directory, sync mode, jobs stored,
                            last sync, last error (Gear only)
  limits                    the server's limits and what is in use of each: connections,
                            packet size, jobs, queued payload bytes (Gear only)
  fleet                     the fleet of servers on the PostgreSQL store: owner, epoch, lease,
                            jobs owned, adoptions (Gear only, --store postgres)
  version                   the server's version
  pid                       the server's process ID
  verbose                   the server's log level
  cancel HANDLE             cancel a job; its clients get WORK_FAIL
  create FUNCTION           create a function, so status lists it before any worker comes
  drop FUNCTION             forget a function that has no workers and no running jobs
  maxqueue FUNCTION [MAX | HIGH NORMAL LOW]
                            limit a function's queue, per priority; no limit or 0 is unlimited
  pause FUNCTION            give no worker a job of FUNCTION until resumed; submits go on (Gear only)
  resume FUNCTION           hand out FUNCTION's jobs again (Gear only)
  limit FUNCTION RUNNING RATE [BURST]
                            at most RUNNING of its jobs at once, RATE starts a second (0: no
                            limit; BURST starts at once, default one second's worth) (Gear only)
  retry FUNCTION ATTEMPTS BASE CAP [JITTER]
                            retry its failed background jobs: ATTEMPTS in all, waiting BASE
                            seconds doubling up to CAP, ± JITTER of it (0-1) (Gear only)
  dead [FUNCTION]           the dead set: jobs that failed their last attempt (Gear only)
  dead-retry HANDLE | dead-retry function FUNCTION
                            submit dead jobs again, with fresh attempts (Gear only)
  dead-delete HANDLE | dead-delete function FUNCTION
                            forget dead jobs (Gear only)
  schedule list             named schedules: function, cron spec, zone, next and last tick (Gear only)
  schedule add NAME FUNCTION "MIN HOUR DOM MON DOW" [tz=ZONE] [priority=P] [unique=U] [data=...]
                            define or replace a named schedule (or @hourly, @daily…) (Gear only)
  schedule remove NAME      remove a named schedule (Gear only)
  shutdown [--graceful]     stop the server; --graceful lets running jobs finish first

Options:
  -s, --server HOST[:PORT]  server to talk to, repeatable or comma-separated (port 4730 if left out;
                            tls://HOST:PORT over TLS); default $GEARMAN_SERVERS, else 127.0.0.1:4730
  --json                    print JSON; with several servers, an object keyed by server
  --timeout DURATION        give up on a server after this long (default 10s)
  --graceful                with shutdown: let running jobs finish
  --tls                     connect over TLS (implied by the options below and by tls://HOST:PORT)
  --tls-ca FILE             verify servers against these CA certificates (PEM; default: the system's)
  --tls-cert FILE, --tls-key FILE
                            client certificate and key, for servers that require one
  --tls-server-name NAME    name the server's certificate must carry (default: the host)
  --http URL                read the views and take the actions through a Gear server's HTTP API
                            (gear server --http) instead of the Gearman port; bearer token from
                            $GEAR_HTTP_SECRET, basic auth as http://USER:PASSWORD@HOST:PORT
                            (create and shutdown are not offered over HTTP)

With several servers each one's output follows a line "== HOST:PORT". Exit status: 0 on success,
1 when a server cannot be reached or answers with an error, 2 for a usage error.
`

// adminRequest is a parsed command line.
type adminRequest struct {
	servers  []string
	json     bool
	timeout  time.Duration
	command  string
	args     []string
	limits   []int               // maxqueue
	limit    gateLimit           // limit
	retry    retryArgs           // retry
	schedule *admin.ScheduleInfo // schedule add
	graceful bool                // shutdown
	httpURL  string
	token    string      // for httpURL
	tls      *tls.Config // for the Gearman port; nil: plain TCP (but for tls:// servers)
}

func runAdmin(args []string) int {
	return adminMain(args, os.Stdout, os.Stderr, os.Getenv)
}

func adminMain(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	req, err := parseAdminArgs(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, adminUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gear admin: %v\nRun 'gear admin --help' for usage.\n", err)
		return 2
	}
	return runAdminRequest(req, stdout, stderr)
}

// parseAdminArgs reads the command line. Options may come before or after the command, so both
// `gear admin --json status` and `gear admin status --json` work; "--" ends the options.
func parseAdminArgs(args []string, getenv func(string) string) (*adminRequest, error) {
	var servers addrFlag
	var tlsFlags tlsClientFlags
	req := &adminRequest{}
	fs := flag.NewFlagSet("gear admin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.Var(&servers, "server", "")
	fs.Var(&servers, "s", "")
	fs.BoolVar(&req.json, "json", false, "")
	fs.BoolVar(&req.graceful, "graceful", false, "")
	fs.DurationVar(&req.timeout, "timeout", 10*time.Second, "")
	fs.StringVar(&req.httpURL, "http", "", "")
	tlsFlags.register(fs)

	var flags, words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			words = append(words, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' || adminIsNumber(a) { // "-1" is a maxqueue limit
			words = append(words, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && !adminIsBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("no command given")
	}
	if words[0] == "help" {
		return nil, flag.ErrHelp
	}
	req.command, req.args = words[0], words[1:]
	if req.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive, got %v", req.timeout)
	}
	if err := req.checkCommand(); err != nil {
		return nil, err
	}
	var err error
	if req.tls, err = tlsFlags.config(); err != nil {
		return nil, err
	}
	if req.httpURL != "" {
		if req.tls != nil {
			return nil, errors.New("the --tls options are for the Gearman port; --http takes an https:// URL")
		}
		if servers.given() {
			return nil, errors.New("--http and --server name two ways to one server: give one")
		}
		if _, err := admin.NewHTTP(req.httpURL, ""); err != nil {
			return nil, err
		}
		req.servers, req.token = []string{req.httpURL}, getenv("GEAR_HTTP_SECRET")
		return req, nil
	}
	if req.servers, err = servers.servers(getenv("GEARMAN_SERVERS")); err != nil {
		return nil, err
	}
	return req, nil
}

func adminIsNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func adminIsBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// checkCommand validates the command and its arguments before any server is contacted.
func (r *adminRequest) checkCommand() error {
	nargs := map[string][]int{
		"status": {0}, "priority": {0}, "workers": {0}, "jobs": {0}, "unique": {0}, "store": {0}, "limits": {0}, "version": {0},
		"pid": {0}, "fleet": {0}, "verbose": {0}, "cancel": {1}, "create": {1}, "drop": {1}, "maxqueue": {1, 2, 4},
		"shutdown": {0}, "functions": {0}, "pause": {1}, "resume": {1}, "limit": {3, 4},
		"retry": {4, 5}, "dead": {0, 1}, "dead-retry": {1, 2}, "dead-delete": {1, 2},
	}
	if r.command == "schedule" {
		return r.checkSchedule() // admin_schedule.go
	}
	want, ok := nargs[r.command]
	if !ok {
		return fmt.Errorf("unknown command %q", r.command)
	}
	if !slices.Contains(want, len(r.args)) {
		return fmt.Errorf("wrong number of arguments for %s: %s", r.command, adminCommandSyntax(r.command))
	}
	if r.graceful && r.command != "shutdown" {
		return fmt.Errorf("--graceful only goes with shutdown")
	}
	if len(r.args) > 0 {
		if v := r.args[0]; v == "" || strings.ContainsAny(v, " \t\r\n\x00") {
			return fmt.Errorf("%s: %q is not a valid argument (empty or with whitespace)", r.command, v)
		}
	}
	if r.command == "limit" {
		running, err1 := strconv.Atoi(r.args[1])
		rate, err2 := strconv.ParseFloat(r.args[2], 64)
		burst := 0
		var err3 error
		if len(r.args) == 4 {
			burst, err3 = strconv.Atoi(r.args[3])
		}
		if err1 != nil || err2 != nil || err3 != nil || running < 0 || rate < 0 || burst < 0 {
			return fmt.Errorf("limit: RUNNING and BURST are whole numbers, RATE a number, all 0 or more: %s", adminCommandSyntax("limit"))
		}
		r.limit = gateLimit{running, rate, burst}
	}
	if r.command == "retry" {
		attempts, err := strconv.Atoi(r.args[1])
		nums := []float64{0, 0, 0}
		for i, v := range r.args[2:] {
			if n, e := strconv.ParseFloat(v, 64); e == nil && n >= 0 {
				nums[i] = n
			} else {
				err = e
			}
		}
		if err != nil || attempts < 0 {
			return fmt.Errorf("retry: ATTEMPTS is a whole number, BASE, CAP and JITTER numbers, all 0 or more: %s", adminCommandSyntax("retry"))
		}
		r.retry = retryArgs{attempts, nums[0], nums[1], nums[2]}
	}
	if (r.command == "dead-retry" || r.command == "dead-delete") && len(r.args) == 2 && r.args[0] != "function" {
		return fmt.Errorf("%s: %s", r.command, adminCommandSyntax(r.command))
	}
	if r.command == "maxqueue" {
		for _, v := range r.args[1:] {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("maxqueue: limit %q is not a number", v)
			}
			r.limits = append(r.limits, n)
		}
	}
	return nil
}

func adminCommandSyntax(cmd string) string {
	switch cmd {
	case "cancel":
		return "cancel HANDLE"
	case "create", "drop", "pause", "resume":
		return cmd + " FUNCTION"
	case "limit":
		return "limit FUNCTION RUNNING RATE [BURST]"
	case "retry":
		return "retry FUNCTION ATTEMPTS BASE CAP [JITTER]"
	case "dead":
		return "dead [FUNCTION]"
	case "dead-retry", "dead-delete":
		return cmd + " HANDLE | " + cmd + " function FUNCTION"
	case "maxqueue":
		return "maxqueue FUNCTION [MAX | HIGH NORMAL LOW]"
	case "shutdown":
		return "shutdown [--graceful]"
	}
	return cmd + " takes no arguments"
}

// adminResult is what one server answered.
type adminResult struct {
	addr     string
	out      []byte // what to print: text, or one JSON value
	err      error
	notFound bool // cancel: the job is not on this server (others may have it)
}

// runAdminRequest runs the request against every server at once and prints the answers in the
// order the servers were given.
func runAdminRequest(req *adminRequest, stdout, stderr io.Writer) int {
	results := make([]adminResult, len(req.servers))
	var wg sync.WaitGroup
	for i, addr := range req.servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), req.timeout)
			defer cancel()
			results[i] = adminRunOne(ctx, req, addr)
		})
	}
	wg.Wait()

	// A job handle names a job on one server: with several, cancel succeeds if one of them had it.
	multiCancel := req.command == "cancel" && len(results) > 1
	found := false
	for i := range results {
		r := &results[i]
		var se *admin.ServerError
		if multiCancel && errors.As(r.err, &se) && se.Code == "UNKNOWN_JOB" {
			r.notFound = true
			r.out = []byte("job not found here\n")
			if req.json {
				r.out = []byte(`{"ok": false}`)
			}
			continue
		}
		found = found || r.err == nil
	}
	code := 0
	for _, r := range results {
		if r.err != nil && !r.notFound {
			fmt.Fprintf(stderr, "gear admin: %s: %v\n", r.addr, r.err)
			code = 1
		}
	}
	if multiCancel && !found && code == 0 {
		fmt.Fprintf(stderr, "gear admin: job %s is on none of the servers\n", req.args[0])
		code = 1
	}
	if req.json {
		adminPrintJSON(stdout, results)
		return code
	}
	for i, r := range results {
		if len(results) > 1 {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "== %s\n", r.addr)
		}
		stdout.Write(r.out)
	}
	return code
}

// adminPrintJSON prints one server's value as it is, several as an object keyed by server. A failed
// server's value there is {"error": "..."}.
func adminPrintJSON(w io.Writer, results []adminResult) {
	if len(results) == 1 {
		w.Write(results[0].out)
		return
	}
	values := make(map[string]json.RawMessage, len(results))
	for _, r := range results {
		if r.err != nil && !r.notFound {
			values[r.addr], _ = json.Marshal(map[string]string{"error": r.err.Error()})
			continue
		}
		values[r.addr] = json.RawMessage(r.out)
	}
	admin.WriteJSON(w, values)
}

// adminRunOne runs the request against one server.
func adminRunOne(ctx context.Context, req *adminRequest, addr string) adminResult {
	res := adminResult{addr: addr}
	var out bytes.Buffer
	switch {
	case req.httpURL != "":
		c, err := admin.NewHTTP(addr, req.token)
		if err != nil {
			res.err = err
			break
		}
		res.addr = c.Addr()
		switch req.command {
		case "fleet":
			var v json.RawMessage
			if v, res.err = c.Fleet(ctx); res.err == nil {
				res.err = json.Indent(&out, v, "", "  ")
				out.WriteByte('\n')
			}
		case "status", "priority", "functions", "workers", "jobs", "unique", "store", "limits", "version", "pid":
			res.err = admin.ShowFrom(ctx, &out, c, req.command, req.json)
		default:
			res.err = adminActOn(ctx, &out, req, c)
		}
	default:
		c, err := admin.DialTLS(ctx, addr, req.tls)
		if err != nil {
			res.err = err
			break
		}
		defer c.Close()
		switch req.command {
		case "fleet":
			var lines []string
			if lines, res.err = c.Fleet(ctx); res.err == nil {
				for _, l := range lines {
					out.WriteString(l + "\n")
				}
			}
		case "status", "priority", "functions", "workers", "jobs", "unique", "store", "limits", "version", "pid":
			res.err = admin.ShowFrom(ctx, &out, c, req.command, req.json)
		default:
			res.err = adminActOn(ctx, &out, req, c)
		}
	}
	if res.err == nil {
		res.out = out.Bytes()
	}
	return res
}

// adminActor takes the admin actions: a Conn on the Gearman port or an HTTPConn.
type adminActor interface {
	Verbose(context.Context) (string, error)
	Cancel(context.Context, string) error
	CreateFunction(context.Context, string) error
	DropFunction(context.Context, string) error
	MaxQueue(context.Context, string, ...int) error
	Pause(context.Context, string) error
	Resume(context.Context, string) error
	Limit(ctx context.Context, function string, maxRunning int, rate float64, burst int) error
	RetryPolicy(ctx context.Context, function string, attempts int, base, limit, jitter float64) error
	DeadList(ctx context.Context, function string) ([]admin.DeadLine, error)
	DeadAct(ctx context.Context, verb, handle, function string) (int, error)
	Shutdown(context.Context, bool) error
	adminScheduler
}

func adminActOn(ctx context.Context, w io.Writer, req *adminRequest, c adminActor) error {
	var err error
	var msg string
	switch req.command {
	case "verbose":
		level, err := c.Verbose(ctx)
		if err != nil {
			return err
		}
		if req.json {
			return admin.WriteJSON(w, map[string]string{"verbose": level})
		}
		_, err = fmt.Fprintln(w, level)
		return err
	case "cancel":
		err, msg = c.Cancel(ctx, req.args[0]), "cancelled job "+req.args[0]
	case "create":
		err, msg = c.CreateFunction(ctx, req.args[0]), "created function "+req.args[0]
	case "drop":
		err, msg = c.DropFunction(ctx, req.args[0]), "dropped function "+req.args[0]
	case "maxqueue":
		err, msg = c.MaxQueue(ctx, req.args[0], req.limits...), adminDescribeLimits(req.args[0], req.limits)
	case "retry":
		ra := req.retry
		err = c.RetryPolicy(ctx, req.args[0], ra.attempts, ra.base, ra.cap, ra.jitter)
		msg = fmt.Sprintf("retry %s: %d attempts in all, waiting %gs doubling up to %gs", req.args[0], ra.attempts, ra.base, ra.cap)
	case "dead":
		fn := ""
		if len(req.args) == 1 {
			fn = req.args[0]
		}
		dead, err := c.DeadList(ctx, fn)
		if err != nil {
			return err
		}
		if req.json {
			return admin.WriteJSON(w, dead)
		}
		return admin.WriteDead(w, dead)
	case "dead-retry", "dead-delete":
		verb := strings.TrimPrefix(req.command, "dead-")
		handle, fn := req.args[0], ""
		if len(req.args) == 2 {
			handle, fn = "", req.args[1]
		}
		var n int
		n, err = c.DeadAct(ctx, verb, handle, fn)
		msg = fmt.Sprintf("%s: %d dead jobs", map[string]string{"retry": "submitted again", "delete": "deleted"}[verb], n)
	case "pause":
		err, msg = c.Pause(ctx, req.args[0]), "paused function "+req.args[0]+": its jobs wait until resumed"
	case "resume":
		err, msg = c.Resume(ctx, req.args[0]), "resumed function "+req.args[0]
	case "limit":
		l := req.limit
		err = c.Limit(ctx, req.args[0], l.running, l.rate, l.burst)
		msg = fmt.Sprintf("limit %s: %s running at once, %s starts a second", req.args[0],
			unlimitedOr(float64(l.running)), unlimitedOr(l.rate))
	case "schedule":
		if req.args[0] == "list" {
			return adminScheduleList(ctx, w, req, c)
		}
		msg, err = adminScheduleChange(ctx, req, c)
	case "shutdown":
		err, msg = c.Shutdown(ctx, req.graceful), "shutting down"
		if req.graceful {
			msg = "shutting down gracefully: running jobs finish first"
		}
	default:
		return fmt.Errorf("unknown command %q", req.command) // checkCommand let it through: a bug
	}
	if err != nil {
		return err
	}
	if req.json {
		return admin.WriteJSON(w, map[string]bool{"ok": true})
	}
	_, err = fmt.Fprintln(w, msg)
	return err
}

// retryArgs is the arguments of `gear admin retry`.
type retryArgs struct {
	attempts          int
	base, cap, jitter float64
}

// gateLimit is the arguments of `gear admin limit`.
type gateLimit struct {
	running int
	rate    float64
	burst   int
}

func unlimitedOr(n float64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(n, 'g', -1, 64)
}

func adminDescribeLimits(fn string, limits []int) string {
	lim := func(n int) string {
		if n <= 0 {
			return "unlimited"
		}
		return strconv.Itoa(n)
	}
	switch len(limits) {
	case 1:
		return fmt.Sprintf("maxqueue %s: %s", fn, lim(limits[0]))
	case 3:
		return fmt.Sprintf("maxqueue %s: high %s, normal %s, low %s", fn, lim(limits[0]), lim(limits[1]), lim(limits[2]))
	}
	return fmt.Sprintf("maxqueue %s: unlimited", fn)
}
