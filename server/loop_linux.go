//go:build linux

package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gearhq/gear/internal/rawio"
	"github.com/gearhq/gear/protocol"
)

// eventLoops reports that this system has the event loops of Options.IOLoops.
const eventLoops = true

// ioLoop serves many connections from one goroutine, the way gearmand's I/O thread does: it asks
// epoll which sockets are ready, reads and dispatches what each has sent, and then writes every
// connection it queued output to, once. A goroutine per connection pays the scheduler for every
// socket event instead — a park, a netpoll wake-up and often a second thread woken to run it —
// which on a small machine was most of the difference to gearmand in the foreground round trip.
//
// The loop's epoll set is level-triggered, so a read that returns less than the buffer holds need
// not be followed by one that fails with EAGAIN: if more arrives, epoll says so again. The loop
// blocks in epoll_pwait itself, on an OS thread of its own: a wake-up is that one system call
// returning. Waiting for the epoll descriptor in the runtime's poller instead (a zero-timeout poll,
// then a park until the runtime's own epoll reports the set readable, then a second poll) cost a
// round trip of one client and one worker 22 system calls per job against 13, and a quarter more
// server CPU. A goroutine blocked in a system call keeps its processor only while nothing else
// needs it: the runtime's monitor hands it to waiting goroutines when it next looks (every 20 µs
// to 10 ms), so the loop never holds up the rest of the server for long.
//
// The loop owns the sockets: only it reads, writes and closes them. Other goroutines (the store's
// acknowledgements, the scheduler, shutdown) queue output as before and wake the loop through an
// eventfd; to end a connection they shut its socket down, and the loop sees it end.
type ioLoop struct {
	s      *Server
	epfd   int // the epoll set
	efd    int // eventfd that wakes the loop
	events []syscall.EpollEvent
	n      int     // events returned by the last epoll_wait
	conns  []*conn // by descriptor; only the loop touches it
	count  int     // open connections
	batch  flushBatch

	mu       sync.Mutex // guards wakes, adds, closed
	wakes    []*conn    // connections with output queued from other goroutines, or closing
	adds     []*conn    // accepted connections to register
	closed   bool       // the eventfd is closed
	stopping atomic.Bool
}

// loopConn is the part of a connection that only an event loop uses.
type loopConn struct {
	fd         int // guarded by outMu for goroutines other than the loop; -1 once closed
	dec        *protocol.Decoder
	reads      int  // reads left for the current readiness event
	readClosed bool // the peer is done sending (or broke the protocol): only writes remain
	wantOut    bool // waiting for the socket to take the rest of a write
	wakeQueued bool // in loop.wakes; guarded by loop.mu
	closeTimer *time.Timer
}

// readsPerEvent bounds the reads from one connection per round, so a peer that keeps its socket
// full cannot starve the others; level-triggered epoll brings the loop back to it.
const readsPerEvent = 4

func newIOLoop(s *Server) (eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	efd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", errno)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(efd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(efd), &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(int(efd))
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return &ioLoop{s: s, epfd: epfd, efd: int(efd), events: make([]syscall.EpollEvent, 128)}, nil
}

// adopt takes c's socket from its net.Conn: the loop works on a duplicate of the descriptor, and
// closing the net.Conn takes the original out of the runtime's poller.
func (l *ioLoop) adopt(c *conn) error {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return errors.New("no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			dupErr = e
			return
		}
		fd = int(r)
	}); err != nil {
		return err
	}
	if dupErr != nil {
		return fmt.Errorf("dup: %w", dupErr)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return err
	}
	c.nc.Close()
	c.drv = l
	c.fd = fd
	c.batch = &l.batch
	c.dec = protocol.NewDecoder(loopReader{c}, l.s.opts.MaxPacketSize)
	c.dec.ReleaseWhenIdle() // an idle connection holds no read buffer
	return nil
}

// discard closes an adopted connection that the loop never saw (the server closed meanwhile).
func (l *ioLoop) discard(c *conn) {
	syscall.Close(c.fd)
	c.fd = -1
}

// add hands an adopted connection to the loop. Server.mu is held, so that a Close cannot stop the
// loop between the connection's counting in Server.wg and its arrival here.
func (l *ioLoop) add(c *conn) {
	l.mu.Lock()
	l.adds = append(l.adds, c)
	if len(l.adds) == 1 && len(l.wakes) == 0 {
		l.signal()
	}
	l.mu.Unlock()
}

// wake has the loop write out c's queued output (or finish closing it). Any goroutine may call it.
func (l *ioLoop) wake(c *conn) {
	l.mu.Lock()
	if !c.wakeQueued {
		c.wakeQueued = true
		l.wakes = append(l.wakes, c)
		if len(l.wakes) == 1 && len(l.adds) == 0 {
			l.signal()
		}
	}
	l.mu.Unlock()
}

// signal wakes the loop through its eventfd. l.mu is held: once the loop has closed the eventfd,
// its number may belong to another file.
func (l *ioLoop) signal() {
	if l.closed {
		return
	}
	one := uint64(1)
	// EAGAIN only when the counter is full, which still wakes the loop.
	syscall.Write(l.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// stop ends the loop once its connections are gone. The caller has shut them down.
func (l *ioLoop) stop() {
	l.stopping.Store(true)
	l.mu.Lock()
	l.signal()
	l.mu.Unlock()
}

// shutdown makes c's socket fail from any goroutine; the loop then drops the connection. The loop
// closes the descriptor itself, so its number cannot be reused under the loop's feet.
func (l *ioLoop) shutdown(c *conn) {
	c.outMu.Lock()
	if c.fd >= 0 {
		syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	}
	c.outMu.Unlock()
}

// closeWithin bounds how long a closing connection may take to send its last replies.
func (l *ioLoop) closeWithin(c *conn, d time.Duration) {
	c.outMu.Lock()
	if c.closeTimer == nil && c.fd >= 0 {
		c.closeTimer = time.AfterFunc(d, func() { l.shutdown(c) })
	}
	c.outMu.Unlock()
}

func (l *ioLoop) run() {
	defer l.s.wg.Done()
	defer l.close()
	runtime.LockOSThread() // the thread blocks in epoll_pwait: no other goroutine waits behind it
	defer runtime.UnlockOSThread()
	for {
		if l.stopping.Load() && l.count == 0 && l.noAdds() {
			return
		}
		if err := l.wait(); err != nil {
			l.s.log.Error("event loop: waiting for epoll failed", "err", err)
			return
		}
		for _, ev := range l.events[:l.n] {
			fd := int(ev.Fd)
			if fd == l.efd {
				l.woken()
				continue
			}
			if fd >= len(l.conns) || l.conns[fd] == nil {
				continue
			}
			c := l.conns[fd]
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 && !c.readClosed {
				l.readFrom(c)
			}
			if c.fd >= 0 && (c.wantOut || c.readClosed) && ev.Events&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				l.service(c)
			}
		}
		l.flush()
	}
}

func (l *ioLoop) noAdds() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.adds) == 0
}

// wait blocks in epoll_pwait until the set has events. Syscall6, not RawSyscall6: the runtime
// knows the thread is blocked and can give its processor to other goroutines meanwhile.
func (l *ioLoop) wait() error {
	for {
		r, _, e := syscall.Syscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), ^uintptr(0), 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		l.n = int(r)
		return nil
	}
}

// woken takes the connections handed over by other goroutines.
func (l *ioLoop) woken() {
	var buf [8]byte
	syscall.Read(l.efd, buf[:])
	l.mu.Lock()
	adds, wakes := l.adds, l.wakes
	l.adds, l.wakes = nil, nil
	for _, c := range wakes {
		c.wakeQueued = false
	}
	l.mu.Unlock()
	for _, c := range adds {
		l.register(c)
	}
	// A connection is added before anything can be queued to it (both under Server.mu, where the
	// core learns of it), and its adds come first: every one woken is registered, or finished (fd -1).
	for _, c := range wakes {
		l.service(c)
	}
}

func (l *ioLoop) register(c *conn) {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		c.log.Error("event loop: cannot watch the connection", "err", err)
		l.s.dropConn(c)
		l.finish(c)
		return
	}
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*conn, len(l.conns)+64)...)
	}
	l.conns[c.fd] = c
	l.count++
	// Output queued before the connection was registered (a shutdown's), and a server that is
	// closing, are seen now.
	l.service(c)
}

// readFrom reads what c's peer sent and dispatches every complete frame.
func (l *ioLoop) readFrom(c *conn) {
	c.reads = readsPerEvent
	if c.serve(c.dec) {
		l.endReading(c)
		return
	}
	c.in.waiting(c.dec.Buffered(), l.s.opts.Now)
	c.dec.Release() // unless it holds part of a frame
}

// endReading handles the end of c's input: the peer left, or broke the protocol. The connection is
// dropped; what is queued to it still goes out, then the socket closes.
func (l *ioLoop) endReading(c *conn) {
	l.s.dropConn(c)
	c.readClosed = true
	l.watch(c, syscall.EPOLLOUT)
	c.outMu.Lock()
	c.closing = true
	c.outMu.Unlock()
	l.service(c)
}

// watch sets the events epoll reports for c.
func (l *ioLoop) watch(c *conn, events uint32) {
	ev := syscall.EpollEvent{Events: events, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		c.log.Error("event loop: epoll_ctl", "err", err)
		l.shutdown(c)
	}
}

// The loop as the driver of its connections (see driver).

func (l *ioLoop) batchable(*conn) bool { return true }

// flushFrom writes c out when the caller is c's own loop; another loop hands it over.
func (l *ioLoop) flushFrom(c *conn, caller driver) {
	if caller == driver(l) {
		l.service(c)
	} else {
		l.wake(c)
	}
}

func (l *ioLoop) tryWrite(c *conn, b []byte) (int, error) { return l.write(c, b) }

// writesClosing: the loop writes a closing connection's last replies itself, and ends the
// connection once it sees it closing with nothing queued (writeFailed and closeFlushed need nothing).
func (l *ioLoop) writesClosing() bool { return true }
func (l *ioLoop) writeFailed(*conn)   {}
func (l *ioLoop) closeFlushed(*conn)  {}

// blocked has epoll report when c's socket takes more output. Called by the loop from flushNow.
func (l *ioLoop) blocked(c *conn) {
	if !c.wantOut && !c.readClosed {
		l.watch(c, syscall.EPOLLIN|syscall.EPOLLOUT)
	}
	c.wantOut = true
}

// service writes out c's queued output, and closes c once it is closing with nothing left to send.
func (l *ioLoop) service(c *conn) {
	if c.fd < 0 {
		return
	}
	c.flushNow()
	c.outMu.Lock()
	done := len(c.out) == 0
	closing := c.closing
	c.outMu.Unlock()
	if done && c.wantOut {
		c.wantOut = false
		if !c.readClosed {
			l.watch(c, syscall.EPOLLIN)
		}
	}
	if closing && done {
		l.s.dropConn(c)
		l.finish(c)
	}
}

// flush writes out every connection the loop queued output to in this round. A connection that
// ends meanwhile may queue output to others (its jobs go back to the queue): they are in the same
// batch, hence the loop over a slice that can grow.
func (l *ioLoop) flush() {
	for i := 0; i < len(l.batch.conns); i++ {
		c := l.batch.conns[i]
		l.batch.conns[i] = nil
		c.drv.flushFrom(c, l)
	}
	l.batch.conns = l.batch.conns[:0]
}

// finish closes c's socket and forgets it. c has been dropped from the server.
func (l *ioLoop) finish(c *conn) {
	c.outMu.Lock()
	fd := c.fd
	c.fd = -1
	c.closing = true
	c.out = nil
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	c.outMu.Unlock()
	if fd < len(l.conns) && l.conns[fd] == c {
		l.conns[fd] = nil
		l.count--
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	}
	syscall.Close(fd)
	c.dec.Release()
	c.dec = nil
	close(c.writerDone)
	l.s.wg.Done()
}

func (l *ioLoop) close() {
	syscall.Close(l.epfd)
	l.mu.Lock()
	l.closed = true
	syscall.Close(l.efd)
	l.mu.Unlock()
}

// write writes as much of b to c's socket as it takes without waiting. Only the loop calls it.
func (l *ioLoop) write(c *conn, b []byte) (int, error) { return rawio.WriteNonblock(uintptr(c.fd), b) }

// loopReader is the decoder's view of a socket served by a loop: it reads what is there and
// reports errWouldBlock, which the decoder passes on with its partial frame kept, once the
// socket is drained or the connection has had its share of reads this round.
type loopReader struct{ c *conn }

func (r loopReader) Read(p []byte) (int, error) {
	c := r.c
	if c.reads <= 0 || len(p) == 0 {
		return 0, errWouldBlock
	}
	n, err := rawio.ReadNonblock(uintptr(c.fd), p)
	if n > 0 {
		c.s.bytesIn.Add(uint64(n))
	}
	switch {
	case err == syscall.EAGAIN:
		c.reads = 0
		return 0, errWouldBlock
	case err == io.EOF:
		return 0, io.EOF
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
	case n < len(p):
		c.reads = 0 // drained, most likely; if not, epoll reports the socket again
	default:
		c.reads--
	}
	return n, nil
}
