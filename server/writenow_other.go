//go:build !unix

package server

import "net"

// Without raw descriptors every connection's output goes through its writer goroutine and input
// through net.Conn.Read.
type rawConn struct{}

func newRawConn(net.Conn) *rawConn { return nil }

func (*rawConn) write([]byte) (int, error) { panic("unreachable") }
func (*rawConn) read([]byte) (int, error)  { panic("unreachable") }
