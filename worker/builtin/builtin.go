// Package builtin holds the functions `gear worker` serves out of the box — reverse and invoke — and
// the adapter that serves an external command as a function, as `gearman -w -f NAME -- CMD` does.
package builtin

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/worker"
)

// Reverse returns the job's text reversed by characters (UTF-8 runes), not bytes. Bytes that are not
// valid UTF-8 are kept, each as one character.
func Reverse(_ context.Context, j *worker.Job) ([]byte, error) {
	data := j.Data
	out := make([]byte, len(data))
	end := len(out)
	for len(data) > 0 {
		_, size := utf8.DecodeRune(data)
		copy(out[end-size:end], data[:size])
		end -= size
		data = data[size:]
	}
	return out, nil
}

// AdminViews are the commands Invoke allows by default: Gear's read-only admin views, returned as
// `gear admin VIEW` prints them.
var AdminViews = []string{"status", "workers", "version"}

// Invoker runs one of an allow-list of commands named by the job's data. There is never a shell,
// and nothing outside the list runs.
type Invoker struct {
	// Server is the job server whose admin views are shown ("host:port", "tls://host:port").
	Server string
	// TLS, when set, is the TLS configuration to reach Server with (see admin.DialTLS).
	TLS *tls.Config
	// Commands maps extra allowed names to the argv they run (no shell; the job data is the name
	// only, so no argument reaches the command from the client).
	Commands map[string][]string
}

// ErrNotAllowed is wrapped by the error for a command outside the allow-list.
var ErrNotAllowed = errors.New("command not allowed")

// Func is the `invoke` job function.
func (inv *Invoker) Func(ctx context.Context, j *worker.Job) ([]byte, error) {
	name := strings.TrimSpace(string(j.Data))
	if argv, ok := inv.Commands[name]; ok {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.WaitDelay = waitDelay
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("invoke %s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	if slices.Contains(AdminViews, name) {
		c, err := admin.DialTLS(ctx, inv.Server, inv.TLS)
		if err != nil {
			return nil, fmt.Errorf("invoke %s: %w", name, err)
		}
		defer c.Close()
		var buf bytes.Buffer
		if err := admin.ShowFrom(ctx, &buf, c, name, false); err != nil {
			return nil, fmt.Errorf("invoke %s: %w", name, err)
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("invoke: %q: %w (allowed: %s)", name, ErrNotAllowed, strings.Join(inv.allowed(), ", "))
}

func (inv *Invoker) allowed() []string {
	names := slices.Clone(AdminViews)
	for n := range inv.Commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// ParseAllow reads a `--allow NAME=COMMAND` value: COMMAND is split on spaces into argv.
func ParseAllow(spec string) (string, []string, error) {
	name, command, ok := strings.Cut(spec, "=")
	name = strings.TrimSpace(name)
	argv := strings.Fields(command)
	if !ok || name == "" || len(argv) == 0 {
		return "", nil, fmt.Errorf("--allow wants NAME=COMMAND, got %q", spec)
	}
	return name, argv, nil
}

// Command serves an external command as a function: the job's data on its stdin, its stdout as the
// result, each chunk of its stderr as a WORK_WARNING, a non-zero exit as WORK_FAIL.
func Command(argv []string) worker.Func {
	return func(ctx context.Context, j *worker.Job) ([]byte, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.WaitDelay = waitDelay
		cmd.Stdin = bytes.NewReader(j.Data)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = warningWriter{j}
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				// Killed at the function's timeout (or when the job's server went away): say so,
				// rather than report the kill as the command's own failure.
				return nil, fmt.Errorf("%s: %w", argv[0], ctx.Err())
			}
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return nil, worker.ErrFail
			}
			return nil, fmt.Errorf("%s: %w", argv[0], err)
		}
		return stdout.Bytes(), nil
	}
}

// waitDelay bounds how long a killed command's output pipes may stay open: a child the command
// started (`sh -c 'sleep 60; …'`) keeps them open after the command itself is killed, and without a
// bound the job — and the worker's slot — would wait for that child.
const waitDelay = time.Second

// warningWriter forwards a command's stderr as WORK_WARNING packets.
type warningWriter struct{ j *worker.Job }

func (w warningWriter) Write(p []byte) (int, error) {
	w.j.SendWarning(bytes.Clone(p))
	return len(p), nil
}
