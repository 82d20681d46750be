//go:build !linux

package server

import (
	"errors"
	"time"

	"github.com/gearhq/gear/protocol"
)

// eventLoops reports that this system has no event loops: every connection gets goroutines.
const eventLoops = false

// ioLoop is never created here (see loop_linux.go); its methods only satisfy the callers.
type ioLoop struct{}

type loopConn struct {
	fd  int
	dec *protocol.Decoder
}

func newIOLoop(*Server) (*ioLoop, error)           { return nil, errors.New("no event loops on this system") }
func (l *ioLoop) adopt(*conn) error                { return errors.New("no event loops on this system") }
func (l *ioLoop) discard(*conn)                    {}
func (l *ioLoop) add(*conn)                        {}
func (l *ioLoop) wake(*conn)                       {}
func (l *ioLoop) stop()                            {}
func (l *ioLoop) run()                             {}
func (l *ioLoop) shutdown(*conn)                   {}
func (l *ioLoop) closeWithin(*conn, time.Duration) {}
func (l *ioLoop) wantWrite(*conn)                  {}
func (l *ioLoop) service(*conn)                    {}
func (l *ioLoop) write(*conn, []byte) (int, error) {
	return 0, errors.New("no event loops on this system")
}
