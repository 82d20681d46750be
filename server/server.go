// Package server is Gear's job server: the transport around package core. It listens, reads and
// decodes what peers send, hands each packet and admin line to the core, and writes out what the
// core sends. It speaks the Gearman binary protocol and the text admin protocol on one port.
//
// # Concurrency
//
// On Linux, connections are served by event loops (Options.IOLoops, see ioLoop): a loop waits on its
// sockets with epoll, reads and dispatches what every ready one has sent, then writes out each
// connection it queued output to, once. Elsewhere, or with IOLoops 0, each connection has a reader
// goroutine (decode, dispatch) and a writer goroutine; the reader writes its replies, and what it
// pushes to other connections (NOOP, WORK_COMPLETE), itself with non-blocking writes once it has
// answered all the input it has (see flushBatch), and the writer takes what a socket does not accept
// at once. Either way, output from other goroutines (the store's acknowledgements, the tick loop)
// and a closing connection's last replies are written by whoever serves the connection. Job state
// is the core's, behind its one lock; the core hands output to a flushBatch (the caller's) or to
// directTx (no batch: the connection's loop or writer is woken).
//
// Lock order: Server.mu, then the core's lock, then conn.outMu, then ioLoop.mu. Nothing takes a
// lock earlier in that order while holding a later one; ioLoop.mu is held only to hand
// connections to a loop.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/internal/rawio"
)

// Server is a Gearman job server. Create it with New, start it with Start or Serve, stop it with
// Shutdown (graceful) or Close.
type Server struct {
	opts Options
	log  *slog.Logger
	core *core.Core

	mu       sync.Mutex // guards conns, admitted, listeners and closed
	conns    map[*conn]struct{}
	admitted admission
	refused  refusals
	// connections closed by the packet and silence timeouts (watch.go)
	closedSlow, closedSilent atomic.Uint64
	listeners                []listener
	closed                   bool
	nextConnID               atomic.Uint64         // also the count of connections accepted
	bytesIn                  atomic.Uint64         // read from peers
	bytesOut                 atomic.Uint64         // written to peers
	loops                    []eventLoop           // event loops that serve connections (Options.IOLoops); none: goroutines
	handshakes               handshakeLog          // failed TLS handshakes, counted and logged at a bounded rate
	fleet                    atomic.Pointer[Fleet] // on PostgreSQL: the fleet loop (fleet.go)

	done    chan struct{}   // closed by Close
	doneCtx context.Context // ends with done: bounds TLS handshakes in progress
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// listener is one listening socket; with tls, what it accepts must complete a TLS handshake first.
type listener struct {
	ln  net.Listener
	tls bool
}

// New validates opts and returns a server that is not yet listening. With a store, it replays the
// stored jobs first.
func New(opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c, err := core.New(opts.coreOptions(), directTx{})
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		core:     c,
		conns:    make(map[*conn]struct{}),
		admitted: admission{perIP: map[string]int{}},
		done:     make(chan struct{}),
	}
	s.doneCtx, s.stop = context.WithCancel(context.Background())
	for i := 0; i < opts.IOLoops && eventLoops; i++ {
		l, err := newIOLoop(s)
		if err != nil {
			s.log.Warn("no event loop; a goroutine per connection instead", "err", err)
			break
		}
		s.loops = append(s.loops, l)
	}
	s.wg.Add(1 + len(s.loops))
	go s.tickLoop()
	if opts.PacketTimeout > 0 || opts.SilentTimeout > 0 {
		s.wg.Add(1)
		go s.sweepLoop()
	}
	for _, l := range s.loops {
		go l.run()
	}
	return s, nil
}

// eventLoop is a driver that serves many connections from one goroutine (ioLoop, on Linux).
type eventLoop interface {
	driver
	// adopt takes c's socket from its net.Conn; add then hands c to the loop (Server.mu held).
	adopt(c *conn) error
	add(c *conn)
	// discard closes an adopted connection the loop never saw.
	discard(c *conn)
	// run serves until stop, once the loop's connections are gone.
	run()
	stop()
}

// Core is the server's rules and state: its typed views (Status, Workers, Jobs, ...) are what the
// admin protocol renders.
func (s *Server) Core() *core.Core { return s.core }

// Start listens on every address in Options.Listen (plain TCP) and Options.TLSListen (TLS) and
// serves each in the background.
func (s *Server) Start() error {
	for _, l := range []struct {
		addrs []string
		tls   bool
	}{{s.opts.Listen, false}, {s.opts.TLSListen, true}} {
		for _, addr := range l.addrs {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				s.Close()
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			s.log.Info("listening", "addr", ln.Addr().String(), "tls", l.tls)
			if err := s.serve(listener{ln, l.tls}); err != nil {
				ln.Close()
				return err
			}
		}
	}
	return nil
}

// Serve accepts plain TCP connections from ln in the background until the server closes.
func (s *Server) Serve(ln net.Listener) error { return s.serve(listener{ln: ln}) }

// ServeTLS accepts connections from ln (a plain TCP listener) in the background until the server
// closes, each of which must complete a TLS handshake with Options.TLS first.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opts.TLS == nil {
		return errors.New("ServeTLS without Options.TLS")
	}
	return s.serve(listener{ln: ln, tls: true})
}

func (s *Server) serve(l listener) error {
	s.mu.Lock()
	if s.closed || s.core.Draining() {
		s.mu.Unlock()
		return errors.New("server is shutting down")
	}
	s.listeners = append(s.listeners, l)
	s.wg.Add(1) // under the lock, so a concurrent Close waits for this loop too
	s.mu.Unlock()
	go s.acceptLoop(l)
	return nil
}

// Addrs returns the addresses the server listens on, plain and TLS, in the order they were opened.
func (s *Server) Addrs() []net.Addr { return s.addrs(func(listener) bool { return true }) }

// TLSAddrs returns the addresses the server listens on with TLS.
func (s *Server) TLSAddrs() []net.Addr { return s.addrs(func(l listener) bool { return l.tls }) }

func (s *Server) addrs(keep func(listener) bool) []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var addrs []net.Addr
	for _, l := range s.listeners {
		if keep(l) {
			addrs = append(addrs, l.ln.Addr())
		}
	}
	return addrs
}

func (s *Server) acceptLoop(l listener) {
	ln := l.ln
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
		// A TLS connection is admitted before its handshake: one in progress holds its place, so
		// the limits bound handshakes too.
		host := remoteHost(nc)
		s.mu.Lock()
		reason := s.admit(host)
		s.mu.Unlock()
		if reason != "" {
			s.refuse(nc, host, reason, !l.tls)
			continue
		}
		s.tuneTCP(nc)
		if l.tls {
			s.wg.Add(1) // this loop's own count is held: Close cannot be waiting on zero
			go s.handshake(nc, host)
			continue
		}
		s.startConn(nc, host, false)
	}
}

// tuneTCP sets the socket options of an accepted connection.
func (s *Server) tuneTCP(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		if s.opts.Keepalive {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: s.opts.KeepaliveIdle,
				Interval: s.opts.KeepaliveInterval, Count: s.opts.KeepaliveCount})
		} else {
			tc.SetKeepAlive(false)
		}
	}
}

// startConn serves an accepted connection, admitted for host: nc is a plain TCP connection, or
// with isTLS a *tls.Conn whose handshake is complete.
func (s *Server) startConn(nc net.Conn, host string, isTLS bool) {
	c := newConn(s, nc, s.nextConnID.Add(1))
	c.host = host
	var l eventLoop
	// An event loop reads and writes the socket's descriptor itself, which TLS records would
	// bypass: a TLS connection is served by goroutines (tlsDriver) through its tls.Conn.
	if len(s.loops) > 0 && !isTLS {
		l = s.loops[c.id%uint64(len(s.loops))]
		if err := l.adopt(c); err != nil {
			c.log.Warn("cannot hand the connection to an event loop; serving it with goroutines", "err", err)
			l = nil
		}
	}
	switch {
	case isTLS:
		c.drv = tlsDriver{}
	case l == nil:
		c.raw = rawio.New(nc)
	}
	s.mu.Lock()
	if s.closed {
		s.release(host)
		s.mu.Unlock()
		if l != nil {
			l.discard(c)
		} else {
			nc.Close()
		}
		return
	}
	s.conns[c] = struct{}{}
	s.core.Connect(c.peer) // before the first packet can arrive
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

// dropConn forgets a closed connection: the core requeues its running jobs, detaches it from the
// jobs it waits for and withdraws its functions; what that sends to others goes with c's batch.
func (s *Server) dropConn(c *conn) {
	s.core.Disconnect(c.batch, c.peer)
	s.mu.Lock()
	_, known := s.conns[c]
	if known {
		delete(s.conns, c)
		s.release(c.host)
	}
	s.mu.Unlock()
	if known {
		c.log.Debug("disconnected")
	}
}

// tickLoop runs the core's Tick when it falls due (epoch jobs, timeouts, wake checks, idle
// functions), and gives memory back when the core dropped a large index.
func (s *Server) tickLoop() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.opts.Now()
		next := s.core.Tick(directTx{}, now)
		if s.core.FreeMemory() {
			debug.FreeOSMemory()
		}
		timer.Reset(max(next.Sub(now), time.Millisecond))
		select {
		case <-timer.C:
		case <-s.core.TickWake():
		case <-s.done:
			return
		}
	}
}

// Shutdown stops accepting connections and new jobs, lets running jobs finish (or ctx expire), lets
// every connection send what is queued to it (the results of those last jobs), then closes
// everything. This is SIGUSR1 and `shutdown graceful`.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closeListeners()
	s.mu.Unlock()
	drained := s.core.Drain()
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

// closeListeners stops accepting connections. Server.mu is held.
func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
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
	s.stop() // handshakes in progress end
	s.closeListeners()
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

// CancelJob cancels an unfinished job by handle (core.Core.CancelJob); by names who asked.
func (s *Server) CancelJob(handle, by string) error { return s.core.CancelJob(directTx{}, handle, by) }

// CancelQueued cancels the queued jobs of a function (of one priority, or all with "").
func (s *Server) CancelQueued(function, priority, by string) (int, error) {
	return s.core.CancelQueued(directTx{}, function, priority, by)
}

// Stats are the transport's counters.
type Stats struct {
	ConnectionsAccepted uint64 // TLS ones once their handshake completed
	// ConnectionsRefused counts connections closed at once for a limit: the server's
	// (MaxConnections) and the per-address one (MaxConnectionsPerIP).
	ConnectionsRefused, ConnectionsRefusedPerIP uint64
	// ConnectionsTimedOut counts connections closed for a packet slower than PacketTimeout,
	// ConnectionsSilent for saying nothing within SilentTimeout.
	ConnectionsTimedOut, ConnectionsSilent uint64
	BytesIn, BytesOut                      uint64
	TLSHandshakeErrors                     uint64 // TLS connections closed because their handshake failed or timed out
}

// Stats reports the transport's counters.
func (s *Server) Stats() Stats {
	return Stats{ConnectionsAccepted: s.nextConnID.Load(), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		ConnectionsRefused: s.refused.total.Load(), ConnectionsRefusedPerIP: s.refused.perIP.Load(),
		ConnectionsTimedOut: s.closedSlow.Load(), ConnectionsSilent: s.closedSilent.Load(),
		TLSHandshakeErrors: s.handshakes.failed.Load()}
}

// Done is closed when the server has been closed (by Close, Shutdown or the admin `shutdown`).
func (s *Server) Done() <-chan struct{} { return s.done }
