//go:build !unix

package server

import (
	"errors"
	"syscall"
)

// Without non-blocking writes every connection's output goes through its writer goroutine.
const canWriteNow = false

func writeNow(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}

func readNow(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
