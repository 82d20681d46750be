// Package server is Gear's job server: a drop-in for gearmand that speaks the Gearman binary protocol
// and the text admin protocol on one port.
//
// # Concurrency
//
// On Linux, connections are served by event loops (Options.IOLoops, see ioLoop): a loop waits on its
// sockets with epoll, reads and dispatches what every ready one has sent, then writes out each
// connection it queued output to, once. Elsewhere, or with IOLoops 0, each connection has a reader
// goroutine (decode, dispatch) and a writer goroutine; the reader writes its replies, and what it
// pushes to other connections (NOOP, WORK_COMPLETE), itself with non-blocking writes once it has
// answered all the input it has (see flushBatch), and the writer takes what a socket does not accept
// at once. Either way, output from other goroutines (the store's acknowledgements, the scheduler)
// and a closing connection's last replies are written by whoever serves the connection. All job
// state — functions, queues, jobs, and the per-connection fields marked "guarded by Server.mu" —
// sits behind the one Server.mu, as gearmand keeps it in one processing thread: a handler's work
// under the lock is a few map and slice operations, never I/O.
//
// Lock order: Server.mu, then conn.outMu, then ioLoop.mu. Nothing takes Server.mu while holding a
// conn.outMu, and ioLoop.mu is held only to hand connections to a loop.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/internal/rawio"
	"github.com/gearhq/gear/store"
)

// Server is a Gearman job server. Create it with New, start it with Start or Serve, stop it with
// Shutdown (graceful) or Close.
type Server struct {
	opts Options
	log  *slog.Logger

	mu          sync.Mutex // guards the job state below and conn fields marked so
	functions   map[string]*function
	jobs        map[uint64]*job // every unfinished job, by seq
	jobsPeak    int             // largest len(jobs) since it was last rebuilt
	foreignJobs map[string]*job // replayed jobs whose handle is not HandlePrefix:seq, by handle
	prefix      string          // HandlePrefix + ":"
	conns       map[*conn]struct{}
	acks        map[*job][]ack // JOB_CREATED replies waiting for their job to be stored
	handleSeq   uint64
	reservedSeq uint64 // handles up to this are reserved in the store
	draining    bool   // graceful shutdown: no new jobs handed out or accepted
	epochs      jobHeap
	timeouts    jobHeap
	wakeChecks  []wakeCheck // NOOPs sent, oldest first, to see whether their workers acted on them
	listeners   []net.Listener
	closed      bool
	drainedCh   chan struct{} // closed when draining and no job is running
	nextConnID  atomic.Uint64
	// batch collects the connections sent to by the goroutine holding mu, when that goroutine
	// writes them out itself after unlocking (a connection's reader); nil otherwise.
	batch *flushBatch
	loops []*ioLoop // event loops that serve connections (Options.IOLoops); none: goroutines

	schedWake chan struct{}
	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
}

// New validates opts and returns a server that is not yet listening.
func New(opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		functions: make(map[string]*function),
		jobs:      make(map[uint64]*job),
		prefix:    opts.HandlePrefix + ":",
		acks:      make(map[*job][]ack),
		conns:     make(map[*conn]struct{}),
		schedWake: make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.epochs.less = func(a, b *job) bool { return a.x.when.Before(b.x.when) }
	s.timeouts.less = func(a, b *job) bool { return a.x.deadline.Before(b.x.deadline) }
	if st := opts.Store; st != nil {
		s.mu.Lock()
		err := st.Replay(func(r *store.Job) error { s.restore(r); return nil })
		s.handleSeq = max(s.handleSeq, st.NextSeq()-1) // handles stay unique across restarts
		s.reservedSeq = s.handleSeq
		s.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("replaying stored jobs: %w", err)
		}
		if n := len(s.jobs); n > 0 {
			s.log.Info("replayed stored background jobs", "jobs", n)
		}
	}
	for i := 0; i < opts.IOLoops && eventLoops; i++ {
		l, err := newIOLoop(s)
		if err != nil {
			s.log.Warn("no event loop; a goroutine per connection instead", "err", err)
			break
		}
		s.loops = append(s.loops, l)
	}
	s.wg.Add(1 + len(s.loops))
	go s.scheduleLoop()
	for _, l := range s.loops {
		go l.run()
	}
	return s, nil
}

// Start listens on every address in Options.Listen and serves each in the background.
func (s *Server) Start() error {
	for _, addr := range s.opts.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.Close()
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		s.log.Info("listening", "addr", ln.Addr().String())
		if err := s.Serve(ln); err != nil {
			ln.Close()
			return err
		}
	}
	return nil
}

// Serve accepts connections from ln in the background until the server closes.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed || s.draining {
		s.mu.Unlock()
		return errors.New("server is shutting down")
	}
	s.listeners = append(s.listeners, ln)
	s.wg.Add(1) // under the lock, so a concurrent Close waits for this loop too
	s.mu.Unlock()
	go s.acceptLoop(ln)
	return nil
}

// Addrs returns the addresses the server listens on.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := make([]net.Addr, len(s.listeners))
	for i, ln := range s.listeners {
		addrs[i] = ln.Addr()
	}
	return addrs
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: log once per pause and retry, as net/http does, instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-s.done:
				return
			}
		}
		backoff = 0
		s.startConn(nc)
	}
}

func (s *Server) startConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		if s.opts.Keepalive {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: s.opts.KeepaliveIdle})
		} else {
			tc.SetKeepAlive(false)
		}
	}
	c := newConn(s, nc, s.nextConnID.Add(1))
	var l *ioLoop
	if len(s.loops) > 0 {
		l = s.loops[c.id%uint64(len(s.loops))]
		if err := l.adopt(c); err != nil {
			c.log.Warn("cannot hand the connection to an event loop; serving it with goroutines", "err", err)
			l = nil
		}
	}
	if l == nil {
		c.raw = rawio.New(nc)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if l != nil {
			l.discard(c)
		} else {
			nc.Close()
		}
		return
	}
	s.conns[c] = struct{}{}
	if l != nil {
		s.wg.Add(1) // done when the loop closes the socket
		l.add(c)
		s.mu.Unlock()
		c.log.Debug("connected")
		return
	}
	s.wg.Add(2)
	s.mu.Unlock()
	c.log.Debug("connected")
	go c.readLoop()
	go c.writeLoop()
}

// dropConn forgets a closed connection: its running jobs go back to the queue, its waiting
// foreground jobs lose their client, its abilities are withdrawn.
func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	s.batch = c.batch
	defer func() {
		s.batch = nil
		s.mu.Unlock()
	}()
	if c.gone {
		return
	}
	c.gone = true
	delete(s.conns, c)
	for j := range c.running {
		s.requeueLost(j)
	}
	c.running = nil
	for j := range c.waiting {
		s.detachClient(j, c)
	}
	c.waiting = nil
	s.resetAbilities(c)
	c.log.Debug("disconnected")
	s.checkDrained()
}

// newSeq numbers a new job; its handle is HandlePrefix:seq. Server.mu must be held.
func (s *Server) newSeq() uint64 {
	s.handleSeq++
	if s.opts.Store != nil && s.handleSeq > s.reservedSeq {
		// Foreground jobs are not stored: reserve their numbers in blocks, so a handle given out
		// before a restart is never given to another job after it.
		s.reservedSeq = s.handleSeq + handleReserveBlock
		s.opts.Store.ReserveSeq(s.reservedSeq + 1)
	}
	return s.handleSeq
}

// A job's handle is not kept as a string: it is HandlePrefix:seq, written out when sent (which
// saves an allocation and 40 bytes per job), except for replayed jobs stored under another prefix.

// appendHandle appends j's handle to dst. Server.mu must be held.
func (s *Server) appendHandle(dst []byte, j *job) []byte {
	if j.x != nil && j.x.handle != "" {
		return append(dst, j.x.handle...)
	}
	return strconv.AppendUint(append(dst, s.prefix...), j.seq, 10)
}

// handleOf is j's handle as a string, for logs and listings. Server.mu must be held.
func (s *Server) handleOf(j *job) string {
	var buf [64]byte
	return string(s.appendHandle(buf[:0], j))
}

// jobByHandle finds an unfinished job by its handle; nil if there is none. Server.mu must be held.
func (s *Server) jobByHandle(h []byte) *job {
	if seq, ok := s.parseHandle(h); ok {
		if j := s.jobs[seq]; j != nil && (j.x == nil || j.x.handle == "") {
			return j
		}
	}
	return s.foreignJobs[string(h)]
}

// parseHandle returns the seq of a handle of the form HandlePrefix:seq, written as appendHandle
// writes it: decimal, no sign (ParseUint takes none), no leading zeros.
func (s *Server) parseHandle(h []byte) (uint64, bool) {
	if len(h) <= len(s.prefix) || string(h[:len(s.prefix)]) != s.prefix || h[len(s.prefix)] == '0' {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(h[len(s.prefix):]), 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}

const handleReserveBlock = 10000

// Shutdown stops accepting connections and new jobs, lets running jobs finish (or ctx expire), lets
// every connection send what is queued to it (the results of those last jobs), then closes
// everything. This is SIGUSR1 and `shutdown graceful`.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.startDrain()
	drained := s.drainedCh
	s.mu.Unlock()
	var err error
	select {
	case <-drained:
		err = s.flushConns(ctx)
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.done:
	}
	s.Close()
	return err
}

// startDrain begins a graceful shutdown: the listeners close and from now on no job is accepted or
// handed out. Server.mu must be held.
func (s *Server) startDrain() {
	if s.draining {
		return
	}
	s.draining = true
	s.drainedCh = make(chan struct{})
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.log.Info("graceful shutdown: waiting for running jobs", "running", s.runningCount())
	s.checkDrained()
}

// flushConns has every connection send what is queued to it and close, and waits for that (each
// write bounded by closeFlushTimeout) or for ctx. Close alone would drop replies still queued.
func (s *Server) flushConns(ctx context.Context) error {
	s.mu.Lock()
	flushed := make([]<-chan struct{}, 0, len(s.conns))
	for c := range s.conns {
		flushed = append(flushed, c.flushAndClose())
	}
	s.mu.Unlock()
	for _, ch := range flushed {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return nil
		}
	}
	return nil
}

// runningCount counts jobs assigned to workers. Server.mu must be held.
func (s *Server) runningCount() int {
	n := 0
	for _, f := range s.functions {
		n += f.running
	}
	return n
}

// checkDrained ends a graceful shutdown once nothing runs. Server.mu must be held.
func (s *Server) checkDrained() {
	if s.draining && s.drainedCh != nil && s.runningCount() == 0 {
		select {
		case <-s.drainedCh:
		default:
			close(s.drainedCh)
		}
	}
}

// Close stops the server at once: listeners and connections close, goroutines end.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.closeSocket()
	}
	for _, l := range s.loops {
		l.stop()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Done is closed when the server has been closed (by Close, Shutdown or the admin `shutdown`).
func (s *Server) Done() <-chan struct{} { return s.done }

// pid is reported by the admin `getpid`.
var pid = os.Getpid()
