// Package alert delivers the events of a worker's memory guard and of gear supervise — one
// mechanism for both: each event is logged, and sent to a command and/or POSTed as JSON to a URL.
//
// Events: warn (memory crossed the warning threshold), cap (memory reached the cap: the worker is
// being recycled), recycled (a worker was stopped to be replaced, with the reason), crashed (a
// worker exited without being asked to) and crash-loop (a program kept crashing: no more restarts).
//
// The command runs without a shell: its argv comes from ParseCommand (shell-style quoting) or is
// given verbatim. It gets the event as JSON on stdin and in its environment GEAR_ALERT_EVENT,
// GEAR_ALERT_PROGRAM, GEAR_ALERT_PID, GEAR_ALERT_BYTES, GEAR_ALERT_REASON and GEAR_ALERT_HOST (and, for
// the scripts written for gear worker's first hook, GEAR_WORKER_MEMORY and GEAR_WORKER_PID).
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Kind names an event.
type Kind string

const (
	Warn      Kind = "warn"
	Cap       Kind = "cap"
	Recycled  Kind = "recycled"
	Crashed   Kind = "crashed"
	CrashLoop Kind = "crash-loop"
)

// Event is one alert. Its JSON form is what the URL receives and the command reads on stdin.
type Event struct {
	Kind    Kind      `json:"event"`
	Program string    `json:"program"`
	PID     int       `json:"pid"`
	Bytes   uint64    `json:"bytes"` // the memory sampled (0 when the event is not about memory)
	Reason  string    `json:"reason"`
	Host    string    `json:"host"`
	Time    time.Time `json:"time"`
}

// Options says where events go besides the log.
type Options struct {
	Command []string // argv run for each event (no shell); nil for none
	URL     string   // POSTed to with the event as JSON; "" for none
	Logger  *slog.Logger
	// Output receives the command's stdout and stderr (default os.Stderr).
	Output io.Writer
	// Timeout bounds one delivery: the command's run, or the POST (default 30 s).
	Timeout time.Duration
	// Queue is how many events may wait for delivery (default 64); past it an event is logged
	// and dropped, so a hung alert command cannot make its caller grow.
	Queue int
}

// Sender delivers events one at a time, in order, on a goroutine of its own: Send never blocks
// its caller (a memory guard, a supervisor loop). Close delivers what is queued and stops it.
type Sender struct {
	opts  Options
	log   *slog.Logger
	host  string
	queue chan Event
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex // guards closed against a Send racing Close
	shut  bool
}

// New starts a Sender. With neither a command nor a URL it only logs.
func New(opts Options) *Sender {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.Output == nil {
		opts.Output = os.Stderr
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Queue <= 0 {
		opts.Queue = 64
	}
	host, _ := os.Hostname()
	s := &Sender{opts: opts, log: opts.Logger, host: host, queue: make(chan Event, opts.Queue), done: make(chan struct{})}
	if opts.Command == nil && opts.URL == "" {
		close(s.done) // nothing to deliver: no goroutine
		return s
	}
	go s.run()
	return s
}

// Send logs ev and queues it for delivery. Host and Time are filled in when empty.
func (s *Sender) Send(ev Event) {
	if ev.Host == "" {
		ev.Host = s.host
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	level := slog.LevelWarn
	if ev.Kind == Recycled {
		level = slog.LevelInfo
	} else if ev.Kind == CrashLoop {
		level = slog.LevelError
	}
	s.log.Log(context.Background(), level, "alert", "event", string(ev.Kind), "program", ev.Program, "pid", ev.PID,
		"bytes", ev.Bytes, "reason", ev.Reason)
	if s.opts.Command == nil && s.opts.URL == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		s.log.Error("alert not delivered: the sender is closed", "event", string(ev.Kind), "program", ev.Program)
		return
	}
	select {
	case s.queue <- ev:
	default:
		s.log.Error("alert dropped: too many waiting for delivery", "event", string(ev.Kind), "program", ev.Program, "pid", ev.PID)
	}
}

// Close delivers the events already queued, then stops the sender. If ctx ends first the rest are
// dropped (the delivery under way is cut short) and ctx's error is returned.
func (s *Sender) Close(ctx context.Context) error {
	s.once.Do(func() {
		s.mu.Lock()
		s.shut = true
		close(s.queue)
		s.mu.Unlock()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Sender) run() {
	defer close(s.done)
	for ev := range s.queue {
		s.deliver(ev)
	}
}

func (s *Sender) deliver(ev Event) {
	body, _ := json.Marshal(ev) // an Event always marshals
	if len(s.opts.Command) > 0 {
		if err := s.runCommand(ev, body); err != nil {
			s.log.Error("alert command failed", "command", s.opts.Command[0], "event", string(ev.Kind), "err", err)
		}
	}
	if s.opts.URL != "" {
		if err := s.post(body); err != nil {
			s.log.Error("alert URL failed", "url", s.opts.URL, "event", string(ev.Kind), "err", err)
		}
	}
}

func (s *Sender) runCommand(ev Event, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	argv := s.opts.Command
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	pid, bytesStr := strconv.Itoa(ev.PID), strconv.FormatUint(ev.Bytes, 10)
	cmd.Env = append(os.Environ(),
		"GEAR_ALERT_EVENT="+string(ev.Kind), "GEAR_ALERT_PROGRAM="+ev.Program, "GEAR_ALERT_PID="+pid,
		"GEAR_ALERT_BYTES="+bytesStr, "GEAR_ALERT_REASON="+ev.Reason, "GEAR_ALERT_HOST="+ev.Host,
		"GEAR_WORKER_MEMORY="+bytesStr, "GEAR_WORKER_PID="+pid)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	cmd.Stdout, cmd.Stderr = s.opts.Output, s.opts.Output
	cmd.WaitDelay = time.Second // a grandchild holding the output open does not hold the sender
	return cmd.Run()
}

func (s *Sender) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New("status " + resp.Status)
	}
	return nil
}
