package admin

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gearhq/gear/internal/serveraddr"
)

// DialTimeout bounds connecting to a server when the context has no earlier deadline.
const DialTimeout = 5 * time.Second

// Conn is a connection to a job server's admin port. It is safe for concurrent use; commands run
// one at a time. After an I/O error, a reply that does not parse or a cancelled call, the reply
// stream can no longer be trusted and every later call returns that first error. A server error
// (ERR) leaves the connection usable.
type Conn struct {
	mu     sync.Mutex
	nc     net.Conn
	r      *bufio.Reader
	broken error
}

// Dial connects to addr ("host:port", or "tls://host:port" over TLS verified against the system's
// CAs), giving up after DialTimeout or when ctx ends.
func Dial(ctx context.Context, addr string) (*Conn, error) { return DialTLS(ctx, addr, nil) }

// DialTLS is Dial over TLS with cfg (its ServerName, when empty, is the host dialled); a nil cfg
// is Dial.
func DialTLS(ctx context.Context, addr string, cfg *tls.Config) (*Conn, error) {
	d := net.Dialer{Timeout: DialTimeout}
	nc, err := serveraddr.DialContext(ctx, &d, addr, cfg)
	if err != nil {
		return nil, err
	}
	return &Conn{nc: nc, r: bufio.NewReaderSize(nc, 4096)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// pastDeadline interrupts a blocked read or write when the call's context ends.
var pastDeadline = time.Unix(1, 0)

// roundTrip sends one command line and reads its reply. ctx's deadline bounds the write and the
// read; cancelling ctx interrupts them.
func (c *Conn) roundTrip(ctx context.Context, line string, kind replyKind) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, c.broken
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline() // zero: none
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.nc.SetDeadline(pastDeadline)
		close(interrupted)
	})
	lines, err := c.exchange(line, kind)
	if !stop() {
		<-interrupted // so the next call's SetDeadline comes after this one
	}
	if n := c.r.Buffered(); err == nil && n > 0 {
		// The protocol is strictly one reply per command: more means the reply was not framed as
		// we read it (a function name holding "\n.\n" does that, on gearmand and Gear alike).
		err = fmt.Errorf("admin: %s: %d unexpected bytes after the reply", commandWord(line), n)
	}
	if err == nil || isServerError(err) {
		return lines, err
	}
	// The reply stream is now out of step (or gone): no later call can trust it. Report the
	// context's error when it caused this; the socket's deadline is the context's and may fire a
	// moment before ctx.Err() says so.
	var ne net.Error
	ctxErr := ctx.Err()
	if ctxErr == nil && errors.As(err, &ne) && ne.Timeout() && !deadline.IsZero() && !time.Now().Before(deadline) {
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil {
		err = fmt.Errorf("admin: %s: %w", commandWord(line), ctxErr)
	}
	c.broken = err
	return nil, err
}

// exchange writes one command and reads its reply. Commands end in "\r\n", as gearadmin sends them:
// gearmand's `create function` drops the last two bytes of its line as the line ending, so a bare
// "\n" would cost the function name its last character.
func (c *Conn) exchange(line string, kind replyKind) ([]string, error) {
	if _, err := io.WriteString(c.nc, line+"\r\n"); err != nil {
		return nil, fmt.Errorf("admin: %s: %w", commandWord(line), err)
	}
	lines, err := readReply(c.r, kind)
	if err != nil && !isServerError(err) {
		return nil, fmt.Errorf("admin: %s: %w", commandWord(line), err)
	}
	return lines, err
}

// checkParse passes on a parser's error; a reply that does not parse leaves the stream's framing in
// doubt, so the connection is not used again.
func (c *Conn) checkParse(err error) error {
	if err != nil {
		c.mu.Lock()
		if c.broken == nil {
			c.broken = err
		}
		c.mu.Unlock()
	}
	return err
}

func isServerError(err error) bool {
	var se *ServerError
	return errors.As(err, &se)
}

func commandWord(line string) string {
	for _, multi := range []string{"show unique jobs", "show jobs", "cancel job", "create function", "drop function"} {
		if strings.HasPrefix(line, multi) {
			return multi
		}
	}
	word, _, _ := strings.Cut(line, " ")
	return word
}

// checkArg refuses an argument the text protocol cannot carry: words are split on spaces and lines
// end at a newline, so "a b" or "x\nshutdown" would change the command.
func checkArg(what, v string) error {
	if v == "" {
		return fmt.Errorf("admin: empty %s", what)
	}
	if strings.ContainsAny(v, " \t\r\n\x00") {
		return fmt.Errorf("admin: %s %q contains whitespace, which the admin protocol cannot carry", what, v)
	}
	return nil
}

func (c *Conn) one(ctx context.Context, cmd string) (string, error) {
	lines, err := c.roundTrip(ctx, cmd, oneLine)
	if err != nil {
		return "", err
	}
	return lines[0], nil
}

func (c *Conn) ok(ctx context.Context, cmd string) error {
	line, err := c.one(ctx, cmd)
	if err != nil {
		return err
	}
	return c.checkParse(parseOK(line))
}

// Status runs `status`: every function the server knows, in the server's order.
func (c *Conn) Status(ctx context.Context) ([]FunctionStatus, error) {
	lines, err := c.roundTrip(ctx, "status", tabular)
	if err != nil {
		return nil, err
	}
	v, err := parseStatus(lines)
	return v, c.checkParse(err)
}

// PriorityStatus runs `prioritystatus` (gearmand 1.1.15 and later, Gear).
func (c *Conn) PriorityStatus(ctx context.Context) ([]PriorityStatus, error) {
	lines, err := c.roundTrip(ctx, "prioritystatus", tabular)
	if err != nil {
		return nil, err
	}
	v, err := parsePriorityStatus(lines)
	return v, c.checkParse(err)
}

// Workers runs `workers`. gearmand lists every connection, clients and admin consoles included;
// Gear lists only workers.
func (c *Conn) Workers(ctx context.Context) ([]WorkerInfo, error) {
	lines, err := c.roundTrip(ctx, "workers", list)
	if err != nil {
		return nil, err
	}
	v, err := parseWorkers(lines)
	return v, c.checkParse(err)
}

// Jobs runs `show jobs`: every unfinished job.
func (c *Conn) Jobs(ctx context.Context) ([]JobInfo, error) {
	lines, err := c.roundTrip(ctx, "show jobs", tabular)
	if err != nil {
		return nil, err
	}
	v, err := parseJobs(lines)
	return v, c.checkParse(err)
}

// UniqueJobs runs `show unique jobs`: the unique keys of unfinished jobs that have one.
func (c *Conn) UniqueJobs(ctx context.Context) ([]string, error) {
	lines, err := c.roundTrip(ctx, "show unique jobs", list)
	if err != nil {
		return nil, err
	}
	return parseUnique(lines), nil
}

// Version runs `version` and returns the server's version ("1.1.20+ds" from gearmand).
func (c *Conn) Version(ctx context.Context) (string, error) {
	line, err := c.one(ctx, "version")
	if err != nil {
		return "", err
	}
	return parseValue(line), nil
}

// PID runs `getpid` and returns the server's process ID.
func (c *Conn) PID(ctx context.Context) (int, error) {
	line, err := c.one(ctx, "getpid")
	if err != nil {
		return 0, err
	}
	v, err := parsePID(line)
	return v, c.checkParse(err)
}

// Verbose runs `verbose` and returns the server's log level name ("INFO", "WARNING"…).
func (c *Conn) Verbose(ctx context.Context) (string, error) {
	line, err := c.one(ctx, "verbose")
	if err != nil {
		return "", err
	}
	return parseValue(line), nil
}

// Cancel runs `cancel job HANDLE`. An unknown handle is a *ServerError with Code "UNKNOWN_JOB".
func (c *Conn) Cancel(ctx context.Context, handle string) error {
	if err := checkArg("job handle", handle); err != nil {
		return err
	}
	return c.ok(ctx, "cancel job "+handle)
}

// CreateFunction runs `create function NAME`. gearmand 1.1 creates the name minus its last two
// characters (a bug in its text.cc); Gear creates NAME.
func (c *Conn) CreateFunction(ctx context.Context, name string) error {
	if err := checkArg("function name", name); err != nil {
		return err
	}
	return c.ok(ctx, "create function "+name)
}

// DropFunction runs `drop function NAME`. Servers refuse while workers are registered or jobs run
// (Gear also while jobs wait) with a *ServerError.
func (c *Conn) DropFunction(ctx context.Context, name string) error {
	if err := checkArg("function name", name); err != nil {
		return err
	}
	return c.ok(ctx, "drop function "+name)
}

// MaxQueue runs `maxqueue FUNCTION [MAX | HIGH NORMAL LOW]`: no limits makes the queue unlimited,
// one limit applies to every priority, three are the high, normal and low limits. 0 (or less) means
// unlimited.
func (c *Conn) MaxQueue(ctx context.Context, function string, limits ...int) error {
	if err := checkArg("function name", function); err != nil {
		return err
	}
	switch len(limits) {
	case 0, 1, 3:
	default:
		return fmt.Errorf("admin: maxqueue takes 0, 1 or 3 limits, got %d", len(limits))
	}
	cmd := "maxqueue " + function
	for _, n := range limits {
		cmd += " " + strconv.Itoa(n)
	}
	return c.ok(ctx, cmd)
}

// Shutdown runs `shutdown`, or `shutdown graceful` which lets running jobs finish first. gearmand
// 1.1.15 and later removed the command (a *ServerError UNKNOWN_COMMAND). A server that closes the
// connection instead of answering has done what was asked, so that counts as success.
func (c *Conn) Shutdown(ctx context.Context, graceful bool) error {
	cmd := "shutdown"
	if graceful {
		cmd += " graceful"
	}
	err := c.ok(ctx, cmd)
	if err != nil && errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
