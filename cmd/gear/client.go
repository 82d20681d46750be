package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gearhq/gear/client"
)

const clientUsage = `usage: gear client [OPTIONS] FUNCTION [DATA]     run a job (DATA from stdin when omitted)
       gear client [OPTIONS] --status HANDLE         show a job's status

Prints the result on stdout, warnings on stderr, and a progress bar on a terminal. Exits 1 when the
job fails or raises an exception (the reason goes to stderr), 2 on bad usage.

Options:
`

func runClient(args []string) int {
	fs := flag.NewFlagSet("gear client", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), clientUsage); fs.PrintDefaults() }
	var (
		servers    addrFlag
		background bool
		priority   string
		unique     string
		at         string
		timeout    time.Duration
		status     string
		tlsFlags   tlsClientFlags
	)
	fs.Var(&servers, "server", "job server host:port, or tls://host:port over TLS (repeatable; default $GEARMAN_SERVERS or 127.0.0.1:4730)")
	fs.Var(&servers, "s", "short for --server")
	fs.BoolVar(&background, "background", false, "queue the job and print its handle without waiting")
	fs.BoolVar(&background, "b", false, "short for --background")
	fs.StringVar(&priority, "priority", "normal", "high, normal or low")
	fs.StringVar(&unique, "unique", "", "unique key: jobs with the same function and key run once")
	fs.StringVar(&unique, "u", "", "short for --unique")
	fs.StringVar(&at, "at", "", "run the (background) job at this time: RFC 3339, Unix seconds, or +DURATION")
	fs.DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait forever)")
	fs.StringVar(&status, "status", "", "show the status of this job handle and exit")
	tlsFlags.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "gear client: "+format+"\n", a...)
		return code
	}
	prio, err := client.ParsePriority(priority)
	if err != nil {
		return fail(2, "%v", err)
	}
	sub := client.Submission{Priority: prio, Unique: unique}
	if at != "" {
		if sub.At, err = parseAt(at, time.Now()); err != nil {
			return fail(2, "%v", err)
		}
		background = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	srv, err := servers.servers(os.Getenv("GEARMAN_SERVERS"))
	if err != nil {
		return fail(2, "%v", err)
	}
	tlsConfig, err := tlsFlags.config()
	if err != nil {
		return fail(2, "%v", err)
	}
	c, err := client.New(client.Options{Servers: srv, TLS: tlsConfig})
	if err != nil {
		return fail(1, "%v", err)
	}
	defer c.Close()

	if status != "" {
		st, err := c.Status(ctx, status)
		if err != nil {
			return fail(1, "%v", err)
		}
		fmt.Printf("%s known=%t running=%t numerator=%d denominator=%d\n", status, st.Known, st.Running,
			st.Numerator, st.Denominator)
		return 0
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return 2
	}
	function := fs.Arg(0)
	var data []byte
	if fs.NArg() == 2 {
		data = []byte(fs.Arg(1))
	} else if data, err = io.ReadAll(os.Stdin); err != nil {
		return fail(1, "reading stdin: %v", err)
	}

	if background {
		h, err := c.SubmitBackground(ctx, function, data, sub)
		if err != nil {
			return fail(1, "%v", err)
		}
		fmt.Println(h)
		return 0
	}
	tty := isTerminal(os.Stdout)
	bar := &progressBar{enabled: tty && isTerminal(os.Stderr)}
	sub.Handlers = client.Handlers{
		OnData:    func(d []byte) { bar.clear(); os.Stdout.Write(d) },
		OnWarning: func(d []byte) { bar.clear(); os.Stderr.Write(d); os.Stderr.WriteString("\n") },
		OnStatus:  bar.update,
	}
	out, err := c.Do(ctx, function, data, sub)
	bar.clear()
	if err != nil {
		var exc *client.JobExceptionError
		var failed *client.JobFailedError
		switch {
		case errors.As(err, &exc):
			return fail(1, "job raised an exception: %s", exc.Data)
		case errors.As(err, &failed):
			return fail(1, "job failed")
		case errors.Is(err, context.DeadlineExceeded):
			return fail(1, "timed out after %v", timeout)
		}
		return fail(1, "%v", err)
	}
	os.Stdout.Write(out)
	if tty && (len(out) == 0 || out[len(out)-1] != '\n') {
		os.Stdout.WriteString("\n")
	}
	return 0
}

// parseAt reads --at: RFC 3339, Unix seconds, or +DURATION from now.
func parseAt(s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutPrefix(s, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil {
			return time.Time{}, fmt.Errorf("--at %q: %v", s, err)
		}
		return now.Add(dur), nil
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: want RFC 3339 (2026-01-02T15:04:05Z), Unix seconds or +DURATION", s)
	}
	return t, nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws WORK_STATUS on stderr when it is a terminal.
type progressBar struct {
	enabled bool
	drawn   bool
}

func (p *progressBar) update(num, den uint64) {
	if !p.enabled || den == 0 {
		return
	}
	frac := min(float64(num)/float64(den), 1)
	const width = 40
	filled := int(frac * width)
	fmt.Fprintf(os.Stderr, "\r[%s%s] %3.0f%% %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		frac*100, num, den)
	p.drawn = true
}

func (p *progressBar) clear() {
	if p.drawn {
		fmt.Fprint(os.Stderr, "\r\033[K")
		p.drawn = false
	}
}
