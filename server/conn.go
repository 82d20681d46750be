package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/internal/rawio"
	"github.com/gearhq/gear/protocol"
)

// conn is the transport's side of one peer: its socket, its decoder and its outbound buffer. What
// Gearman knows of the peer (abilities, sleeping, jobs) is the core's, in peer.
//
// The outbound buffer has its own lock, taken after the core's when both are needed (lock order:
// the core's lock, then conn.outMu); the writer goroutine takes only outMu and never holds it
// across I/O.
type conn struct {
	s    *Server
	nc   net.Conn
	id   uint64
	log  *slog.Logger
	peer *core.Peer
	host string // remote address without the port: what MaxConnectionsPerIP counts
	in   inputWatch
	rdec *protocol.Decoder // the reader goroutine's decoder (nil under an event loop: loopConn.dec)

	// batch lists the connections this connection's reader sent to while answering what it has read
	// so far; it writes them out before it next waits for input. Owned by the reader goroutine
	// (and passed to the core as the Tx of the calls it makes). Under an event loop it is the loop's
	// batch, written out once per round of ready connections.
	batch    *flushBatch
	ownBatch flushBatch
	raw      *rawio.Conn // raw reads and non-blocking writes; nil under a loop or without a descriptor

	// drv serves the socket: the connection's own goroutines, or an event loop (see ioLoop), which
	// owns the socket: then there is no reader or writer goroutine, and the loop's fields are in
	// loopConn (fd is -1 once the loop has closed it; others read it only under outMu).
	drv driver
	loopConn

	outMu      sync.Mutex
	out        []byte // packets waiting to be written
	spare      []byte // a drained buffer, reused for out
	pending    bool   // out is in some reader's batch, which will flush it
	writing    bool   // a goroutine is writing to the socket: it writes what is added meanwhile too
	closing    bool   // flush what is queued, then close
	outSignal  chan struct{}
	writerDone chan struct{} // closed when writeLoop returns
	holds      []*heldReply  // replies waiting for the store, oldest first
}

// closeFlushTimeout bounds each write once a connection is closing, so a peer that does not read
// cannot hold up a shutdown.
var closeFlushTimeout = 5 * time.Second

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	remote := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	c := &conn{
		s:          s,
		nc:         nc,
		id:         id,
		log:        s.log.With("conn", id, "peer", nc.RemoteAddr().String()),
		outSignal:  make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	c.peer = core.NewPeer(id, remote, c.log, c)
	c.peer.Identity = identityOf(nc)
	c.in.connected = s.opts.Now().UnixNano()
	c.batch = &c.ownBatch
	c.drv = goroutines{}
	return c
}

// driver serves connections' sockets: the connection's own reader and writer goroutines
// (goroutines), or an event loop (ioLoop) that serves many from one. Only a connection's driver
// reads, closes and, but for a non-blocking write that it allows, writes its socket.
type driver interface {
	// wake has the driver write out c's queued output, or finish closing it. Any goroutine.
	wake(c *conn)
	// batchable reports whether whoever holds a batch may write c's output (tryWrite).
	batchable(c *conn) bool
	// flushFrom writes out c's output when caller (the calling event loop; nil for a reader
	// goroutine) may touch c's socket, and hands it to c's driver otherwise.
	flushFrom(c *conn, caller driver)
	// tryWrite writes as much of b as the socket takes without waiting.
	tryWrite(c *conn, b []byte) (int, error)
	// writesClosing reports whether flushNow writes a closing connection's last replies; if not,
	// the driver's own writer does.
	writesClosing() bool
	// blocked: the socket took only part of a write; the rest is the driver's to write when the
	// socket takes more.
	blocked(c *conn)
	// writeFailed ends a connection whose write failed; closeFlushed: flushNow left a closing
	// connection with nothing queued.
	writeFailed(c *conn)
	closeFlushed(c *conn)
	// shutdown makes the socket fail from any goroutine: pending I/O ends and c is dropped.
	shutdown(c *conn)
	// closeWithin bounds the time c may take to send its last replies.
	closeWithin(c *conn, d time.Duration)
}

// goroutines is the driver of a connection served by its own goroutines: readLoop reads and
// answers, and whoever holds output writes it without blocking; writeLoop takes what the socket
// does not accept at once, and the last replies of a closing connection.
type goroutines struct{}

func (goroutines) wake(c *conn) {
	select {
	case c.outSignal <- struct{}{}:
	default:
	}
}

func (goroutines) batchable(c *conn) bool                  { return c.raw != nil }
func (goroutines) flushFrom(c *conn, _ driver)             { c.flushNow() }
func (goroutines) tryWrite(c *conn, b []byte) (int, error) { return c.raw.TryWrite(b) }
func (goroutines) writesClosing() bool                     { return false }
func (g goroutines) blocked(c *conn)                       { g.wake(c) }
func (g goroutines) writeFailed(c *conn)                   { c.nc.Close(); g.wake(c) }
func (g goroutines) closeFlushed(c *conn)                  { g.wake(c) } // the writer closes the socket
func (goroutines) shutdown(c *conn)                        { c.nc.Close() }
func (goroutines) closeWithin(c *conn, d time.Duration) {
	c.nc.SetWriteDeadline(time.Now().Add(d))
}

// directTx is the core's Tx for output outside any batch (store acknowledgements, the tick loop):
// the connection's loop or writer goroutine is woken to write it.
type directTx struct{}

func (directTx) Send(to *core.Peer, pkt *protocol.Packet) { sendTo(nil, to, pkt) }

// sendTo queues pkt to a connection through batch b, or hands it to an in-process peer.
func sendTo(b *flushBatch, to *core.Peer, pkt *protocol.Packet) {
	if c, ok := to.Link.(*conn); ok {
		c.sendVia(b, pkt.Type, pkt.Args...)
		return
	}
	to.Link.(core.Receiver).Receive(pkt)
}

// reply queues a packet from c's own reader goroutine, outside the core's lock: it goes out with the
// reader's batch.
func (c *conn) reply(t protocol.Type, args ...[]byte) { c.sendVia(c.batch, t, args...) }

// sendVia queues one response packet. With a batch, the batch's owner writes it out (see
// flushBatch); without one, the writer goroutine does.
func (c *conn) sendVia(b *flushBatch, t protocol.Type, args ...[]byte) {
	c.outMu.Lock()
	if c.closing {
		c.outMu.Unlock()
		return
	}
	if n := len(c.holds); n > 0 {
		h := c.holds[n-1]
		h.after = protocol.AppendResponse(h.after, t, args...)
		c.outMu.Unlock()
		return
	}
	c.out = protocol.AppendResponse(c.out, t, args...)
	c.queued(b)
}

// heldReply is a reply that must wait — a background job's JOB_CREATED until the job is on stable
// storage — together with everything sent to the connection after it, so replies keep their order.
type heldReply struct {
	c     *conn
	ready bool
	reply []byte
	after []byte
}

// Hold reserves the place of a reply that Release fills in later (core.Link).
func (c *conn) Hold() core.Held {
	h := &heldReply{c: c}
	c.outMu.Lock()
	c.holds = append(c.holds, h)
	c.outMu.Unlock()
	return h
}

// Release fills in a held reply and sends every reply that is no longer waiting, in order
// (core.Held).
func (h *heldReply) Release(pkt *protocol.Packet) {
	c := h.c
	c.outMu.Lock()
	h.reply = protocol.AppendResponse(nil, pkt.Type, pkt.Args...)
	h.ready = true
	if c.closing {
		c.outMu.Unlock()
		return
	}
	for len(c.holds) > 0 && c.holds[0].ready {
		c.out = append(c.out, c.holds[0].reply...)
		c.out = append(c.out, c.holds[0].after...)
		c.holds[0] = nil
		c.holds = c.holds[1:]
	}
	c.queued(nil)
}

// replyText queues raw admin-protocol text from c's own reader goroutine, outside the core's lock.
func (c *conn) replyText(text []byte) {
	c.outMu.Lock()
	if c.closing {
		c.outMu.Unlock()
		return
	}
	if n := len(c.holds); n > 0 {
		c.holds[n-1].after = append(c.holds[n-1].after, text...)
		c.outMu.Unlock()
		return
	}
	c.out = append(c.out, text...)
	c.queued(c.batch)
}

// queued finishes a send: outMu is held on entry and released here. It arranges the write: nothing
// to do if a batch or a writing goroutine already has the buffer in hand, else the batch b takes it,
// else the writer goroutine.
func (c *conn) queued(b *flushBatch) {
	if len(c.out) > c.s.opts.MaxOutbound {
		// The peer stopped reading: drop it rather than buffer without bound.
		c.closing = true
		c.out = nil
		c.outMu.Unlock()
		c.log.Warn("peer is not reading its replies; closing", "limit", c.s.opts.MaxOutbound)
		c.closeSocket()
		c.wakeWriter()
		return
	}
	if c.pending || c.writing {
		c.outMu.Unlock()
		return
	}
	if b != nil && c.drv.batchable(c) {
		c.pending = true
		c.outMu.Unlock()
		b.conns = append(b.conns, c)
		return
	}
	c.outMu.Unlock()
	c.wakeWriter()
}

func (c *conn) wakeWriter() { c.drv.wake(c) }

// flushBatch is the set of connections one goroutine queued output to and will write out itself,
// so that a reply or a push costs no hand-off to another goroutine: a reader answering a burst of
// pipelined requests, and pushing WORK_COMPLETE or NOOP to other peers on the way, writes each
// peer's packets with one syscall once it has answered everything it has read.
type flushBatch struct {
	conns []*conn
}

// Send queues a packet the core sends to a peer; the batch's owner writes it out (core.Tx).
func (b *flushBatch) Send(to *core.Peer, pkt *protocol.Packet) { sendTo(b, to, pkt) }

// flush writes out every connection in the batch, last the one whose reader owns it: its own peer's
// reply (JOB_CREATED, NO_JOB) is less urgent than the packets that let another peer go on (NOOP to
// a sleeping worker, WORK_COMPLETE to a waiting client). It must be called without the core's lock.
func (b *flushBatch) flush(owner *conn) {
	own := false
	for i, c := range b.conns {
		if c == owner {
			own = true
		} else {
			c.drv.flushFrom(c, nil)
		}
		b.conns[i] = nil
	}
	b.conns = b.conns[:0]
	if own {
		owner.flushNow()
	}
}

// flushNow writes c's queued output from the calling goroutine without blocking. What the socket
// does not take at once (the peer is slow to read) goes to the writer goroutine, which may block;
// the caller — usually another peer's reader — never does.
func (c *conn) flushNow() {
	c.outMu.Lock()
	c.pending = false
	// A closing connection's last replies are the writer goroutine's to send, or the loop's.
	for !c.writing && (!c.closing || c.drv.writesClosing()) && len(c.out) > 0 {
		buf := c.out
		c.out, c.spare = c.spare[:0], nil
		c.writing = true
		c.outMu.Unlock()
		n, err := c.drv.tryWrite(c, buf)
		c.s.bytesOut.Add(uint64(max(n, 0)))
		c.outMu.Lock()
		c.writing = false
		if err != nil {
			c.closing = true
			c.out = nil
			c.outMu.Unlock()
			c.drv.writeFailed(c)
			return
		}
		if n < len(buf) {
			// The socket is full: the rest goes before anything queued meanwhile, by the writer
			// (or the loop, once the socket is writable again).
			rest := copy(buf, buf[n:])
			c.spare = c.out[:0]
			c.out = append(buf[:rest], c.out...)
			c.outMu.Unlock()
			c.drv.blocked(c)
			return
		}
		c.keepSpare(buf)
	}
	closing := c.closing
	c.outMu.Unlock()
	if closing {
		c.drv.closeFlushed(c)
	}
}

// closeSocket makes the connection fail: its pending I/O ends with an error and it is dropped.
// Any goroutine may call it.
func (c *conn) closeSocket() { c.drv.shutdown(c) }

// keepSpare keeps a written buffer for reuse, unless it is large. outMu must be held.
func (c *conn) keepSpare(buf []byte) {
	if cap(buf) <= 1<<20 { // do not pin a large buffer to an idle connection
		c.spare = buf[:0]
	}
}

// closeAfterFlush lets the writer send what is queued (an ERROR explaining why, say) and then close.
func (c *conn) closeAfterFlush() {
	c.outMu.Lock()
	c.closing = true
	c.outMu.Unlock()
	c.wakeWriter()
}

// flushAndClose is closeAfterFlush for the server's own shutdown: it also bounds a write already in
// progress, and returns a channel closed once the writer has sent everything and closed the socket.
func (c *conn) flushAndClose() <-chan struct{} {
	c.drv.closeWithin(c, closeFlushTimeout)
	c.closeAfterFlush()
	return c.writerDone
}

// writeLoop writes what the batches leave to it: output queued outside any batch, the rest of a
// write the socket did not take at once, and the last replies of a closing connection. Whatever
// accumulated since its last write goes out in one syscall. Its writes may block, and are bounded
// by closeFlushTimeout once the connection is closing.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer close(c.writerDone)
	for range c.outSignal {
		for {
			c.outMu.Lock()
			if c.writing { // a flushNow in progress writes the rest or signals again
				c.outMu.Unlock()
				break
			}
			if len(c.out) == 0 {
				closing := c.closing
				c.outMu.Unlock()
				if closing {
					c.nc.Close()
					return
				}
				break
			}
			buf := c.out
			c.out, c.spare = c.spare[:0], nil
			c.writing = true
			closing := c.closing
			c.outMu.Unlock()
			if closing {
				c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			}
			n, err := c.nc.Write(buf)
			c.s.bytesOut.Add(uint64(n))
			c.outMu.Lock()
			c.writing = false
			c.keepSpare(buf)
			c.outMu.Unlock()
			if err != nil {
				c.nc.Close()
				c.drainAfterError()
				return
			}
		}
	}
}

// drainAfterError discards further output once the socket is dead.
func (c *conn) drainAfterError() {
	c.outMu.Lock()
	c.closing = true
	c.out = nil
	c.outMu.Unlock()
}

// socketReader is what the decoder reads from: before every read of the socket, which may block, it
// writes out the reader's batch — the replies and pushes made while answering the requests already
// buffered. Flushing only when the buffer is empty would strand them behind a packet the peer has
// sent only part of (a request followed by the start of the next in one segment), for as long as
// the rest takes. Owned by the reader goroutine.
type socketReader struct {
	c *conn
}

func (r socketReader) Read(p []byte) (int, error) {
	r.c.ownBatch.flush(r.c)
	r.c.in.waiting(r.c.rdec.Buffered(), r.c.s.opts.Now)
	if r.c.raw != nil {
		n, err := r.c.raw.Read(p)
		r.c.s.bytesIn.Add(uint64(max(n, 0)))
		return n, err
	}
	n, err := r.c.nc.Read(p)
	r.c.s.bytesIn.Add(uint64(n))
	return n, err
}

// readLoop decodes frames and dispatches them until the peer leaves or breaks the protocol.
func (c *conn) readLoop() {
	defer c.s.wg.Done()
	c.rdec = protocol.NewDecoder(socketReader{c}, c.s.opts.MaxPacketSize)
	c.serve(c.rdec)
	c.s.dropConn(c)
	c.ownBatch.flush(c) // pushes to other peers, made while reading or when leaving
	c.closeAfterFlush()
}

// errWouldBlock is what an event loop's reader returns when the socket has nothing more for now.
var errWouldBlock = errors.New("would block")

// serve decodes and dispatches frames until dec has no more input for now (false: an event loop's
// socket is drained) or the connection ends — the peer left or broke the protocol (true).
func (c *conn) serve(dec *protocol.Decoder) (ended bool) {
	for {
		f, err := dec.Next()
		if err != nil {
			if err == errWouldBlock {
				return false
			}
			if !c.handleDecodeError(f, err) {
				return true
			}
			continue
		}
		c.in.sawFrame()
		if f.IsText {
			c.admin(f.Line)
		} else {
			c.s.core.Handle(c.batch, c.peer, &f.Packet)
		}
	}
}

// admin answers one admin line through the core, and carries out a shutdown it asks for.
func (c *conn) admin(line []byte) {
	if isFleetCommand(line) {
		if refusal := c.s.core.AdminReadRefusal(c.peer, "fleet"); refusal != nil {
			c.replyText(refusal)
		} else {
			c.replyText(c.s.fleetText())
		}
		return
	}
	reply, act := c.s.core.Admin(c.batch, c.peer, line)
	if reply != nil {
		c.replyText(reply)
	}
	s := c.s
	switch act {
	case core.AdminShutdownGraceful:
		// The core drains already; stop accepting connections before the admin reads OK.
		s.mu.Lock()
		s.closeListeners()
		s.mu.Unlock()
		go s.Shutdown(context.Background()) // not in Server.wg: it ends by waiting for it
	case core.AdminShutdown:
		// Close would drop the queued OK: let it reach the admin first.
		go func() {
			<-c.flushAndClose()
			s.Close()
		}()
	}
}

// handleDecodeError answers a bad frame and reports whether the connection can go on.
func (c *conn) handleDecodeError(f *protocol.Frame, err error) bool {
	var argErr *protocol.ArgCountError
	switch {
	case errors.As(err, &argErr):
		c.log.Info("packet with too few arguments", "type", argErr.Type, "want", argErr.Want, "got", argErr.Got)
		c.sendError(protocol.CodeInvalidArgument, "Packet has too few arguments for "+argErr.Type.String())
		return true
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return false
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Info("peer closed in the middle of a packet")
	case errors.Is(err, protocol.ErrTooLarge):
		c.log.Warn("packet too large; closing", "type", f.Packet.Type, "limit", c.s.opts.MaxPacketSize)
		c.sendError(protocol.CodeArgumentTooLarge, "Packet larger than the server's maximum")
	case errors.Is(err, protocol.ErrUnknownType):
		c.log.Warn("unknown packet type; closing", "type", uint32(f.Packet.Type))
		c.sendError(protocol.CodeInvalidCommand, "Invalid command expected")
	case errors.Is(err, protocol.ErrBadMagic):
		c.log.Warn("bad packet magic; closing")
	case errors.Is(err, protocol.ErrLineTooLong):
		c.log.Warn("admin line too long; closing")
		c.replyText([]byte("ERR LINE_TOO_LONG Admin+line+too+long\r\n"))
	default:
		c.log.Debug("read error", "err", err)
	}
	return false
}

// sendError answers with an ERROR packet from c's own reader goroutine, outside the core's lock.
func (c *conn) sendError(code, text string) {
	c.reply(protocol.Error, []byte(code), []byte(text))
}
