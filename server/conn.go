package server

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gearhq/gear/protocol"
)

// ability is one function a worker connection registered, with its CAN_DO_TIMEOUT (0 = none).
type ability struct {
	fn      *function
	timeout time.Duration
}

// recentEnds is how many handles a worker connection remembers after their job left it, so a late
// WORK_* packet for one (WORK_FAIL after WORK_EXCEPTION, a result after a timeout or a cancel) is
// dropped quietly instead of getting an ERROR that kills libgearman and Perl workers.
const recentEnds = 16

// conn is one peer: a client, a worker, an admin console, or several at once.
//
// Fields under "guarded by Server.mu" are touched only with the server lock held. The outbound
// buffer has its own lock, taken after Server.mu when both are needed (lock order: Server.mu, then
// conn.outMu); the writer goroutine takes only outMu and never holds it across I/O.
type conn struct {
	s      *Server
	nc     net.Conn
	id     uint64
	remote string // peer IP, for the `workers` view
	log    *slog.Logger

	// guarded by Server.mu
	clientID   string
	abilities  []ability
	grabNext   int  // round-robin start among abilities
	isWorker   bool // registered a function or asked for a job
	sleeping   bool // sent PRE_SLEEP and has not asked for work since
	noopSent   bool // a NOOP is on its way for the current sleep
	exceptions bool
	running    map[*job]struct{} // jobs assigned to this worker
	waiting    map[*job]struct{} // foreground jobs this client waits on
	ended      [recentEnds]string
	endedNext  int
	gone       bool // the connection is closed; never send to it again

	outMu      sync.Mutex
	out        []byte // packets waiting for the writer
	spare      []byte // the writer's buffer between flushes
	corked     bool   // the reader has more input buffered: hold the flush until it has answered all of it
	closing    bool   // flush what is queued, then close
	outSignal  chan struct{}
	writerDone chan struct{} // closed when writeLoop returns
	holds      []*heldReply  // replies waiting for the store, oldest first
}

// closeFlushTimeout bounds each write once a connection is closing, so a peer that does not read
// cannot hold up a shutdown.
const closeFlushTimeout = 5 * time.Second

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	remote := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	return &conn{
		s:          s,
		nc:         nc,
		id:         id,
		remote:     remote,
		log:        s.log.With("conn", id, "peer", nc.RemoteAddr().String()),
		clientID:   "-",
		exceptions: s.opts.Exceptions,
		outSignal:  make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
}

// send queues one response packet. Safe to call with or without Server.mu held.
func (c *conn) send(t protocol.Type, args ...[]byte) {
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
	c.queued()
}

// heldReply is a reply that must wait — a background job's JOB_CREATED until the job is on stable
// storage — together with everything sent to the connection after it, so replies keep their order.
type heldReply struct {
	ready bool
	reply []byte
	after []byte
}

// hold reserves the place of a reply that release fills in later.
func (c *conn) hold() *heldReply {
	h := &heldReply{}
	c.outMu.Lock()
	c.holds = append(c.holds, h)
	c.outMu.Unlock()
	return h
}

// release fills in a held reply and sends every reply that is no longer waiting, in order.
func (c *conn) release(h *heldReply, t protocol.Type, args ...[]byte) {
	c.outMu.Lock()
	h.reply = protocol.AppendResponse(nil, t, args...)
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
	c.queued()
}

// sendText queues raw admin-protocol text.
func (c *conn) sendText(text []byte) {
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
	c.queued()
}

// queued finishes a send: outMu is held on entry and released here.
func (c *conn) queued() {
	if len(c.out) > c.s.opts.MaxOutbound {
		// The peer stopped reading: drop it rather than buffer without bound.
		c.closing = true
		c.out = nil
		c.outMu.Unlock()
		c.log.Warn("peer is not reading its replies; closing", "limit", c.s.opts.MaxOutbound)
		c.nc.Close()
		c.wakeWriter()
		return
	}
	signal := !c.corked
	c.outMu.Unlock()
	if signal {
		c.wakeWriter()
	}
}

func (c *conn) wakeWriter() {
	select {
	case c.outSignal <- struct{}{}:
	default:
	}
}

func (c *conn) setCorked(corked bool) {
	c.outMu.Lock()
	c.corked = corked
	pending := len(c.out) > 0
	c.outMu.Unlock()
	if !corked && pending {
		c.wakeWriter()
	}
}

// closeAfterFlush lets the writer send what is queued (an ERROR explaining why, say) and then close.
func (c *conn) closeAfterFlush() {
	c.outMu.Lock()
	c.closing = true
	c.corked = false
	c.outMu.Unlock()
	c.wakeWriter()
}

// flushAndClose is closeAfterFlush for the server's own shutdown: it also bounds a write already in
// progress, and returns a channel closed once the writer has sent everything and closed the socket.
func (c *conn) flushAndClose() <-chan struct{} {
	c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	c.closeAfterFlush()
	return c.writerDone
}

// writeLoop is the only writer to the socket. Whatever accumulated since its last write goes out in
// one syscall, so a burst of replies or pushes costs one write.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer close(c.writerDone)
	for range c.outSignal {
		c.outMu.Lock()
		buf := c.out
		c.out = c.spare[:0]
		closing := c.closing
		c.outMu.Unlock()
		if len(buf) > 0 {
			if closing {
				c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			}
			if _, err := c.nc.Write(buf); err != nil {
				c.nc.Close()
				c.drainAfterError()
				return
			}
		}
		if cap(buf) > 1<<20 {
			buf = nil // do not pin a large buffer to an idle connection
		}
		c.spare = buf[:0]
		if closing {
			c.outMu.Lock()
			empty := len(c.out) == 0
			c.outMu.Unlock()
			if empty {
				c.nc.Close()
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
// releases the replies corked while the reader answered requests already buffered. Uncorking only
// when the buffer is empty would strand them behind a packet the peer has sent only part of (a
// request followed by the start of the next in one segment), for as long as the rest takes.
// Owned by the reader goroutine.
type socketReader struct {
	c      *conn
	corked bool
}

func (r *socketReader) Read(p []byte) (int, error) {
	if r.corked {
		r.c.setCorked(false)
		r.corked = false
	}
	return r.c.nc.Read(p)
}

// readLoop decodes frames and dispatches them until the peer leaves or breaks the protocol.
func (c *conn) readLoop() {
	defer c.s.wg.Done()
	sr := &socketReader{c: c}
	dec := protocol.NewDecoder(sr, c.s.opts.MaxPacketSize)
	for {
		f, err := dec.Next()
		if err != nil {
			if !c.handleDecodeError(f, err) {
				break
			}
			continue
		}
		if more := dec.Buffered() > 0; more != sr.corked {
			c.setCorked(more)
			sr.corked = more
		}
		if f.IsText {
			c.s.handleAdmin(c, f.Line)
		} else {
			c.s.dispatch(c, &f.Packet)
		}
	}
	c.s.dropConn(c)
	c.closeAfterFlush()
}

// handleDecodeError answers a bad frame and reports whether the connection can go on.
func (c *conn) handleDecodeError(f *protocol.Frame, err error) bool {
	var argErr *protocol.ArgCountError
	switch {
	case errors.As(err, &argErr):
		c.log.Info("packet with too few arguments", "type", argErr.Type, "want", argErr.Want, "got", argErr.Got)
		c.sendError(errInvalidArgument, "Packet has too few arguments for "+argErr.Type.String())
		return true
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return false
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Info("peer closed in the middle of a packet")
	case errors.Is(err, protocol.ErrTooLarge):
		c.log.Warn("packet too large; closing", "type", f.Packet.Type, "limit", c.s.opts.MaxPacketSize)
		c.sendError(errArgumentTooLarge, "Packet larger than the server's maximum")
	case errors.Is(err, protocol.ErrUnknownType):
		c.log.Warn("unknown packet type; closing", "type", uint32(f.Packet.Type))
		c.sendError(errInvalidCommand, "Invalid command expected")
	case errors.Is(err, protocol.ErrBadMagic):
		c.log.Warn("bad packet magic; closing")
	case errors.Is(err, protocol.ErrLineTooLong):
		c.log.Warn("admin line too long; closing")
		c.sendText([]byte("ERR LINE_TOO_LONG Admin+line+too+long\r\n"))
	default:
		c.log.Debug("read error", "err", err)
	}
	return false
}

func (c *conn) sendError(code, text string) {
	c.send(protocol.Error, []byte(code), []byte(text))
}

// rememberEnded notes that a job left this worker, so its late packets are dropped quietly.
// Server.mu must be held.
func (c *conn) rememberEnded(handle string) {
	c.ended[c.endedNext] = handle
	c.endedNext = (c.endedNext + 1) % recentEnds
}

// recentlyEnded reports whether handle left this worker recently. Server.mu must be held.
func (c *conn) recentlyEnded(handle []byte) bool {
	for _, h := range c.ended {
		if h != "" && h == string(handle) {
			return true
		}
	}
	return false
}
