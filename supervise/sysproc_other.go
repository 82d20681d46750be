//go:build !linux

package supervise

import "syscall"

// memorySupported: the memory limits read Linux's /proc; elsewhere they are refused.
const memorySupported = false

// childAttr puts a child in a process group of its own (see the Linux version; there is no
// Pdeathsig here).
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// procTable has nothing to read outside Linux; Validate refuses memory limits there.
type procTable struct{}

func (t *procTable) read()              {}
func (t *procTable) treeRSS(int) uint64 { return 0 }
