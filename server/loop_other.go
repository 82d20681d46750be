//go:build !linux

package server

import "errors"

// eventLoops reports that this system has no event loops: every connection gets goroutines.
const eventLoops = false

// loopConn is the part of a connection only an event loop uses: none here.
type loopConn struct{}

func newIOLoop(*Server) (eventLoop, error) { return nil, errors.New("no event loops on this system") }
