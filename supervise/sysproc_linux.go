package supervise

import "syscall"

// memorySupported: the memory limits read /proc.
const memorySupported = true

// childAttr puts a child in a process group of its own (a terminal's Ctrl-C reaches the
// supervisor, which decides what the children get, and SIGKILL at the grace end reaches everything
// the child started) and has the kernel send it SIGTERM if the supervisor dies without stopping it
// (Pdeathsig; sent when the OS thread that forked dies, and Go's runtime keeps its threads).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
