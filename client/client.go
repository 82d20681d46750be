// Package client submits jobs to Gearman job servers (Gear, gearmand, or any other).
//
// One Client keeps one connection per server and pipelines any number of jobs over it. Jobs with a
// unique key go to the server chosen by hashing the key (so coalescing works across a fleet); the
// others are spread round-robin. A server that is down is skipped, and retried after a backoff.
//
//	c, err := client.New(client.Options{Servers: []string{"127.0.0.1:4730"}})
//	if err != nil { ... }
//	defer c.Close()
//	out, err := c.Do(ctx, "reverse", []byte("hello"), client.Submission{})
//
// The examples (example_test.go) are compiled with the tests.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/internal/serveraddr"
	"github.com/gearhq/gear/protocol"
)

// DefaultServer is used when neither Options.Servers nor GEARMAN_SERVERS names one.
const DefaultServer = serveraddr.Default

// Options configure a Client.
type Options struct {
	// Servers lists job servers, each an address or a comma-separated list of them, in any form
	// ParseServers reads ("host", "host:port", "[v6]:port"...; port 4730 if omitted; duplicates
	// dropped; "tls://host:port" for a server reached over TLS). Empty: GEARMAN_SERVERS
	// (comma-separated, as libgearman reads it), else DefaultServer.
	Servers []string
	// TLS, when set, connects to every server over TLS with this configuration (its ServerName,
	// when empty, is the host dialled). Nil: plain TCP, but for "tls://" servers, which are
	// verified against the system's CAs.
	TLS *tls.Config
	// DialTimeout bounds each connection attempt (default 5 s).
	DialTimeout time.Duration
	// MaxBackoff caps the wait before a failed server is tried again (default 30 s; it starts at
	// 100 ms and doubles).
	MaxBackoff time.Duration
	// Logger receives connection events (default: discarded).
	Logger *slog.Logger
}

// ServersFromEnv returns the servers named by GEARMAN_SERVERS, or DefaultServer when it names none.
// A malformed entry is an error naming the variable.
func ServersFromEnv() ([]string, error) {
	return serveraddr.Servers(nil, os.Getenv(serveraddr.EnvVar))
}

// ParseServers reads a comma-separated server list, as GEARMAN_SERVERS holds it, and returns each
// server as "host:port", without duplicates. An entry is "host", "host:port", "[v6]", "[v6]:port"
// or a bare IPv6 address (port 4730 where none is given); spaces around entries and empty entries
// are ignored; an entry with no host or a port that is not a number from 1 to 65535 is an error.
func ParseServers(list string) ([]string, error) {
	return serveraddr.ParseList(list)
}

// ParseServer reads one server address as ParseServers does and returns it as "host:port".
func ParseServer(addr string) (string, error) {
	return serveraddr.Parse(addr)
}

// Client submits jobs. It is safe for concurrent use.
type Client struct {
	opts    Options
	servers []*server
	next    atomic.Uint32
	closed  atomic.Bool
}

// New returns a client for opts.Servers. It does not connect until the first request, so a server
// that is down at start is not an error; a malformed address is.
func New(opts Options) (*Client, error) {
	servers, err := serveraddr.Servers(opts.Servers, os.Getenv(serveraddr.EnvVar))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	opts.Servers = servers
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Client{opts: opts}
	for _, addr := range opts.Servers {
		c.servers = append(c.servers, &server{addr: addr, c: c})
	}
	return c, nil
}

// Close closes every connection; jobs still waiting fail with ErrClosed.
func (c *Client) Close() error {
	c.closed.Store(true)
	for _, s := range c.servers {
		s.close()
	}
	return nil
}

// order returns the servers to try, best first: by hash of key when set, else round-robin.
func (c *Client) order(key string) []*server {
	n := len(c.servers)
	var start int
	if key != "" {
		start = int(crc32.ChecksumIEEE([]byte(key)) % uint32(n))
	} else {
		start = int(c.next.Add(1) % uint32(n))
	}
	out := make([]*server, n)
	for i := range out {
		out[i] = c.servers[(start+i)%n]
	}
	return out
}

// withConn runs f on the first server of order that is up, failing over to the next on connection
// errors. It returns the last error when every server failed.
func (c *Client) withConn(ctx context.Context, key string, f func(*conn) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	var errs []error
	for _, s := range c.order(key) {
		if err := ctx.Err(); err != nil {
			return err
		}
		cn, err := s.get(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = f(cn)
		var ce *ConnError
		if errors.As(err, &ce) {
			errs = append(errs, err)
			continue
		}
		return err
	}
	return &NoServerError{Errs: errs}
}

// server is one job server and its current connection.
type server struct {
	addr string
	c    *Client

	mu       sync.Mutex
	cn       *conn
	failures int
	retryAt  time.Time
}

// get returns a live connection, dialling if needed unless the server is in its backoff period.
func (s *server) get(ctx context.Context) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cn != nil && !s.cn.isDead() {
		return s.cn, nil
	}
	if s.c.closed.Load() {
		return nil, ErrClosed
	}
	if now := time.Now(); now.Before(s.retryAt) {
		return nil, &ConnError{Addr: s.addr, Err: errors.New("server down; next attempt in " + s.retryAt.Sub(now).Round(time.Millisecond).String())}
	}
	cn, err := dial(ctx, s.addr, s.c.opts.TLS, s.c.opts.DialTimeout, s.c.opts.Logger)
	if err != nil {
		s.failures++
		backoff := min(100*time.Millisecond<<min(s.failures-1, 20), s.c.opts.MaxBackoff)
		s.retryAt = time.Now().Add(backoff)
		s.c.opts.Logger.Warn("cannot connect to job server", "addr", s.addr, "err", err, "retry_in", backoff)
		return nil, &ConnError{Addr: s.addr, Err: err}
	}
	s.failures = 0
	s.cn = cn
	return cn, nil
}

func (s *server) close() {
	s.mu.Lock()
	cn := s.cn
	s.cn = nil
	s.mu.Unlock()
	if cn != nil {
		cn.fail(ErrClosed)
	}
}

// Echo sends data to a server and returns what it echoed.
func (c *Client) Echo(ctx context.Context, data []byte) ([]byte, error) {
	var out []byte
	err := c.withConn(ctx, "", func(cn *conn) error {
		p, err := cn.request(ctx, protocol.EchoReq, protocol.EchoRes, data)
		if err == nil {
			out = p.Args[0]
		}
		return err
	})
	return out, err
}

// Status is a job's state as a server reports it.
type Status struct {
	Handle      string // GET_STATUS: the handle asked about
	Unique      string // GET_STATUS_UNIQUE: the unique asked about
	Known       bool   // the server has the job (queued or running)
	Running     bool   // a worker has it
	Numerator   uint64 // last WORK_STATUS
	Denominator uint64
	Waiting     int // GET_STATUS_UNIQUE: clients waiting for it
}

// Status asks every server about handle (handles do not say which server made them) and returns the
// first that knows it, or a Status with Known false.
func (c *Client) Status(ctx context.Context, handle string) (Status, error) {
	st := Status{Handle: handle}
	var lastErr error
	reached := false
	for _, s := range c.servers {
		cn, err := s.get(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		p, err := cn.request(ctx, protocol.GetStatus, protocol.StatusRes, []byte(handle))
		if err != nil {
			lastErr = err
			continue
		}
		reached = true
		if got := parseStatus(p.Args[1:]); got.Known {
			got.Handle = handle
			return got, nil
		}
	}
	if !reached && lastErr != nil {
		return st, lastErr
	}
	return st, nil
}

// StatusUnique asks for the job with the given unique key (GET_STATUS_UNIQUE), on the server the key
// hashes to first.
func (c *Client) StatusUnique(ctx context.Context, unique string) (Status, error) {
	var st Status
	err := c.withConn(ctx, unique, func(cn *conn) error {
		p, err := cn.request(ctx, protocol.GetStatusUnique, protocol.StatusResUnique, []byte(unique))
		if err != nil {
			return err
		}
		st = parseStatus(p.Args[1:])
		st.Unique = unique
		if len(p.Args) > 5 {
			st.Waiting = int(parseUint(p.Args[5]))
		}
		return nil
	})
	return st, err
}

// parseStatus reads "KNOWN\0RUNNING\0NUM\0DEN".
func parseStatus(args [][]byte) Status {
	get := func(i int) []byte {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	return Status{
		Known:       string(get(0)) == "1",
		Running:     string(get(1)) == "1",
		Numerator:   parseUint(get(2)),
		Denominator: parseUint(get(3)),
	}
}

func parseUint(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
