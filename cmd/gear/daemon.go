//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// daemonNotifyEnv names, in a daemon's child, the descriptor on which it tells its parent that it
// is ready ("ok") or why it failed.
const daemonNotifyEnv = "GEAR_DAEMON_NOTIFY_FD"

// daemonize runs this command again, detached (a new session, no terminal, standard streams on
// /dev/null), and waits until the child reports that it listens and wrote its pid file, so that an
// init script's start-stop-daemon and systemd's Type=forking see the server up when this parent
// exits. Go cannot fork a running runtime: the child is a fresh exec of the same binary, with the
// same arguments, and knows it is the child by daemonNotifyEnv.
func daemonize(stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "--daemon: %v\n", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "--daemon: %v\n", err)
		return 1
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "--daemon: %v\n", err)
		return 1
	}
	cmd := &exec.Cmd{
		Path: exe, Args: os.Args, Env: append(os.Environ(), daemonNotifyEnv+"=3"),
		Stdin: null, Stdout: null, Stderr: null, ExtraFiles: []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	w.Close()
	null.Close()
	if err != nil {
		fmt.Fprintf(stderr, "--daemon: %v\n", err)
		return 1
	}
	msg, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	r.Close()
	if string(msg) == "ok\n" {
		cmd.Process.Release() // the daemon lives on
		return 0
	}
	cmd.Wait()
	text := strings.TrimSpace(string(msg))
	if text == "" {
		text = "the daemon exited before it was ready"
	}
	fmt.Fprintf(stderr, "%s\n", text)
	return 1
}

// daemonChild is the pipe to the parent when this process is a daemon's child, else nil.
func daemonChild() *os.File {
	fd, err := strconv.Atoi(os.Getenv(daemonNotifyEnv))
	if err != nil || fd < 3 {
		return nil
	}
	os.Unsetenv(daemonNotifyEnv)
	return os.NewFile(uintptr(fd), "daemon-notify")
}

// notifyParent tells a waiting daemon parent that the server is ready (err nil) or why not.
func notifyParent(pipe *os.File, err error) {
	if pipe == nil {
		return
	}
	if err == nil {
		pipe.WriteString("ok\n")
	} else {
		pipe.WriteString(err.Error() + "\n")
	}
	pipe.Close()
}

// serviceUser is the account --user names.
type serviceUser struct {
	name     string
	uid, gid int
	home     string
}

func lookupServiceUser(name string) (*serviceUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--user %s: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("--user %s: %w", name, err)
	}
	if uid != os.Geteuid() && os.Geteuid() != 0 {
		return nil, fmt.Errorf("--user %s: only root can switch to another user", name)
	}
	return &serviceUser{name: u.Username, uid: uid, gid: gid, home: u.HomeDir}, nil
}

// own gives the user the paths the server keeps writing to after it switched (the data
// directory, whole, and the log file), so that it can go on, and reopen the log after rotation.
func (u *serviceUser) own(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		err := filepath.WalkDir(p, func(path string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, u.uid, u.gid)
		})
		if err != nil {
			return fmt.Errorf("--user %s: cannot give it %s: %w", u.name, p, err)
		}
	}
	return nil
}

// become switches the whole process (every thread: Go applies setuid to all) to the user.
func (u *serviceUser) become() error {
	if os.Geteuid() == u.uid {
		return nil
	}
	if err := syscall.Setgroups([]int{u.gid}); err != nil {
		return fmt.Errorf("--user %s: setgroups: %w", u.name, err)
	}
	if err := syscall.Setgid(u.gid); err != nil {
		return fmt.Errorf("--user %s: setgid: %w", u.name, err)
	}
	if err := syscall.Setuid(u.uid); err != nil {
		return fmt.Errorf("--user %s: setuid: %w", u.name, err)
	}
	return nil
}

// applyProcessOptions sets what gearmand's -f and --coredump ask of the process.
func (g *gearmandFlags) applyProcessOptions() error {
	if g.coredump {
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: ^uint64(0), Max: ^uint64(0)}); err != nil {
			// An unprivileged process may raise the soft limit up to its hard one.
			var rl syscall.Rlimit
			if syscall.Getrlimit(syscall.RLIMIT_CORE, &rl) == nil {
				rl.Cur = rl.Max
				err = syscall.Setrlimit(syscall.RLIMIT_CORE, &rl)
			}
			if err != nil {
				return fmt.Errorf("--coredump: %w", err)
			}
		}
		debug.SetTraceback("crash") // a fatal error aborts with SIGABRT, which dumps core
	}
	if g.fileDescriptors < 0 {
		return fmt.Errorf("--file-descriptors must not be negative, got %d", g.fileDescriptors)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("--file-descriptors: %w", err)
	}
	want := rl.Max
	if g.fileDescriptors > 0 {
		want = uint64(g.fileDescriptors)
	}
	if want == rl.Cur {
		return nil
	}
	next := syscall.Rlimit{Cur: want, Max: max(rl.Max, want)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		return fmt.Errorf("--file-descriptors %d: %w (the hard limit is %d)", want, err, rl.Max)
	}
	return nil
}

// openSyslog is the system log, for --syslog.
func openSyslog(tag string) (io.Writer, error) {
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, tag)
	if err != nil {
		return nil, fmt.Errorf("--syslog: %w", err)
	}
	return w, nil
}
