//go:build unix

package server

import (
	"io"
	"syscall"
	"unsafe"
)

const canWriteNow = true

// writeNow writes as much of buf as the socket takes without waiting, and reports how much that was.
// A full socket is not an error: the caller hands the rest to the connection's writer goroutine.
func writeNow(rc syscall.RawConn, buf []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for n < len(buf) {
			// A raw syscall: the descriptor is non-blocking, so the call cannot park the thread, and
			// skipping the scheduler's syscall bookkeeping saves a wake-up of its monitor thread.
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&buf[n])), uintptr(len(buf)-n))
			m := int(r)
			if e == 0 {
				n += m
			}
			switch {
			case e == syscall.EINTR:
			case e == syscall.EAGAIN:
				return true
			case e != 0:
				werr = e
				return true
			case m <= 0:
				werr = syscall.EIO
				return true
			}
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

// readNow reads into p, waiting in the runtime's poller (not in a blocked thread) until the socket
// has data, with a raw syscall for the same reason as writeNow.
func readNow(rc syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				if n == 0 {
					rerr = io.EOF
				}
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until the socket is readable, then try again
			default:
				rerr = e
				return true
			}
		}
	})
	if err != nil {
		return n, err
	}
	return n, rerr
}
