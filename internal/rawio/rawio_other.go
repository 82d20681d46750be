//go:build !unix

// Package rawio reads and writes sockets with raw system calls on their non-blocking descriptors;
// on this system it has none, and New returns nil.
package rawio

import "net"

// Conn is not available on this system.
type Conn struct{}

// New returns nil: callers use the net.Conn.
func New(net.Conn) *Conn { return nil }

func (*Conn) Read([]byte) (int, error)     { panic("rawio: not available on this system") }
func (*Conn) TryWrite([]byte) (int, error) { panic("rawio: not available on this system") }
func (*Conn) Write([]byte) (int, error)    { panic("rawio: not available on this system") }
