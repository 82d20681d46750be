//go:build unix

// Package rawio reads and writes sockets with raw system calls on their non-blocking descriptors.
// The calls cannot park the thread, and skipping the scheduler's system-call bookkeeping saves a
// wake-up of its monitor thread (sysmon) per call: on a small VM that monitor's 20 µs ticks took
// 17% of a busy server's CPU and 11% of the load generator's. Waiting for a socket still happens
// in the runtime's poller, so deadlines set on the net.Conn apply.
package rawio

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// Conn is one socket's raw reads and writes. Reads belong to one goroutine at a time, and so do
// writes (TryWrite and Write); a read and a write may run at once.
type Conn struct {
	rd, wr, wrAll op
}

// op is one direction's state, bound once so a call allocates no closure.
type op struct {
	rc  syscall.RawConn
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// New returns nil when nc has no descriptor to use.
func New(nc net.Conn) *Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{rd: op{rc: rc}, wr: op{rc: rc}, wrAll: op{rc: rc}}
	c.rd.fn = c.rd.readOnce
	c.wr.fn = c.wr.writeNow
	c.wrAll.fn = c.wrAll.writeAll
	return c
}

// Read reads into p, waiting in the runtime's poller until the socket has data. It returns io.EOF
// at the end of the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return c.rd.run(p, c.rd.rc.Read)
}

// TryWrite writes as much of b as the socket takes without waiting and reports how much that was.
// A full socket is not an error.
func (c *Conn) TryWrite(b []byte) (int, error) {
	return c.wr.run(b, c.wr.rc.Write)
}

// Write writes all of b, waiting in the runtime's poller while the socket is full.
func (c *Conn) Write(b []byte) (int, error) {
	return c.wrAll.run(b, c.wrAll.rc.Write)
}

func (o *op) run(b []byte, do func(func(uintptr) bool) error) (int, error) {
	o.buf, o.n, o.err = b, 0, nil
	err := do(o.fn)
	n, opErr := o.n, o.err
	o.buf, o.err = nil, nil
	if err != nil {
		return n, err
	}
	return n, opErr
}

func (o *op) writeNow(fd uintptr) bool {
	o.n, o.err = WriteNonblock(fd, o.buf)
	return true // written, the socket full, or failed
}

func (o *op) writeAll(fd uintptr) bool {
	n, err := WriteNonblock(fd, o.buf[o.n:])
	o.n += n
	o.err = err
	return err != nil || o.n == len(o.buf) // else wait until the socket takes more
}

func (o *op) readOnce(fd uintptr) bool {
	n, err := ReadNonblock(fd, o.buf)
	if err == syscall.EAGAIN {
		return false // wait until the socket is readable, then try again
	}
	o.n, o.err = n, err
	return true
}

// WriteNonblock writes as much of b to the non-blocking descriptor fd as it takes now. A full
// socket is not an error: it returns what was written.
func WriteNonblock(fd uintptr, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
		switch e {
		case 0:
			if r == 0 {
				return n, io.ErrShortWrite
			}
			n += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return n, nil
		default:
			return n, e
		}
	}
	return n, nil
}

// ReadNonblock reads once from the non-blocking descriptor fd into p (not empty): io.EOF at the
// end of the stream, syscall.EAGAIN when nothing is there yet.
func ReadNonblock(fd uintptr, p []byte) (int, error) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EINTR:
		case e != 0:
			return 0, e
		case r == 0:
			return 0, io.EOF
		default:
			return int(r), nil
		}
	}
}
