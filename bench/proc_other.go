//go:build !linux

package bench

import (
	"errors"
	"time"
)

// sampler reads a server's CPU and memory from /proc: Linux only.
type sampler struct {
	start    int64
	startCPU time.Duration
}

func startSampler(pid int) (*sampler, error) {
	return nil, errors.New("sampling the server process (--server-pid) needs Linux /proc")
}

func (s *sampler) stop()                            {}
func (s *sampler) peak() int64                      { return 0 }
func (s *sampler) cpu() (time.Duration, error)      { return 0, nil }
func (s *sampler) mem() (rss, hwm int64, err error) { return 0, 0, nil }
func (s *sampler) switches() (int64, error)         { return 0, nil }
func selfCPU() time.Duration                        { return 0 }
