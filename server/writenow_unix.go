//go:build unix

package server

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a socket with raw syscalls on its non-blocking descriptor: the calls
// cannot park the thread, and skipping the scheduler's syscall bookkeeping saves a wake-up of its
// monitor thread per call. Reads wait for data in the runtime's poller; writes never wait.
// The read side belongs to the reader goroutine; the write side to whoever holds conn.writing.
type rawConn struct {
	rd, wr rawOp
}

// rawOp is one direction's state, bound once so a call allocates no closure.
type rawOp struct {
	rc  syscall.RawConn
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// newRawConn returns nil when nc has no descriptor to use (the writer goroutine does all writes).
func newRawConn(nc net.Conn) *rawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawConn{rd: rawOp{rc: rc}, wr: rawOp{rc: rc}}
	r.rd.fn = r.rd.readOnce
	r.wr.fn = r.wr.writeAll
	return r
}

// write writes as much of b as the socket takes without waiting, and reports how much that was.
// A full socket is not an error: the caller hands the rest to the connection's writer goroutine.
func (r *rawConn) write(b []byte) (int, error) {
	return r.wr.run(b, r.wr.rc.Write)
}

// read reads into p, waiting in the runtime's poller until the socket has data.
func (r *rawConn) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return r.rd.run(p, r.rd.rc.Read)
}

func (o *rawOp) run(b []byte, do func(func(uintptr) bool) error) (int, error) {
	o.buf, o.n, o.err = b, 0, nil
	err := do(o.fn)
	n, opErr := o.n, o.err
	o.buf, o.err = nil, nil
	if err != nil {
		return n, err
	}
	return n, opErr
}

func (o *rawOp) writeAll(fd uintptr) bool {
	o.n, o.err = writeNonblock(fd, o.buf)
	return true // written, the socket full (the caller hands the rest on), or failed
}

func (o *rawOp) readOnce(fd uintptr) bool {
	n, err := readNonblock(fd, o.buf)
	if err == syscall.EAGAIN {
		return false // wait until the socket is readable, then try again
	}
	o.n, o.err = n, err
	return true
}

// writeNonblock writes as much of b to the non-blocking descriptor fd as it takes now. A full
// socket is not an error: it returns what was written.
func writeNonblock(fd uintptr, b []byte) (int, error) {
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

// readNonblock reads once from the non-blocking descriptor fd into p (not empty): io.EOF at the
// end of the stream, syscall.EAGAIN when nothing is there yet.
func readNonblock(fd uintptr, p []byte) (int, error) {
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
